#!/usr/bin/env bash
# The AsyncAPI document is checked with the AsyncAPI initiative's own parser
# (@asyncapi/parser from npm). `make test` runs this first: it installs the
# parser once into build/asyncapi-parser (a no-op when it is there). Without
# node/npm it says why, and that one test skips with the reason in pytest's
# summary; the document is then still checked by the Python tests.
set -u
cd "$(dirname "$0")/.."
DIR=build/asyncapi-parser
VERSION=3.6.6
if [ -f "$DIR/node_modules/@asyncapi/parser/package.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "ensure-asyncapi-parser: no node/npm on this machine; the AsyncAPI parser" \
         "test is skipped until then" >&2
    exit 0
fi
echo "ensure-asyncapi-parser: installing @asyncapi/parser@$VERSION (once) into $DIR"
mkdir -p "$DIR"
if ! npm install --prefix "$DIR" --silent --no-audit --no-fund "@asyncapi/parser@$VERSION"; then
    echo "ensure-asyncapi-parser: npm install failed (see above); the AsyncAPI parser" \
         "test is skipped" >&2
fi
exit 0
