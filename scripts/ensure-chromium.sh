#!/usr/bin/env bash
# The dashboard test loads the page in Debian's headless Chromium. `make test`
# runs this first: it installs the package once (a no-op when it is there).
# When installing is impossible it says why, and the test skips with that
# reason in pytest's summary; it never passes without a browser.
set -u
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get on this machine; install Chromium yourself" \
         "(the dashboard browser test is skipped until then)" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure-chromium: not root and no password-less sudo: cannot run" \
         "'apt-get install chromium' (the dashboard browser test is skipped)" >&2
    exit 0
fi
echo "ensure-chromium: installing Debian's chromium (once) for the dashboard test"
if ! { $SUDO apt-get update -qq && \
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
    echo "ensure-chromium: apt-get install chromium failed (see above);" \
         "the dashboard browser test is skipped" >&2
fi
exit 0
