// Validate an AsyncAPI document with the AsyncAPI initiative's own parser
// (@asyncapi/parser from npm): `node scripts/check-asyncapi.mjs FILE`. Prints every
// diagnostic of severity error (0) or warning (1); exits 1 when there is an error.
// The parser is installed by scripts/ensure-asyncapi-parser.sh (make test).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ASYNCAPI_PARSER_DIR + "/");
const { Parser } = require("@asyncapi/parser");

const document = readFileSync(process.argv[2], "utf8");
const { diagnostics } = await new Parser().parse(document);
let errors = 0;
for (const d of diagnostics) {
  if (d.severity > 1) continue;
  if (d.severity === 0) errors += 1;
  console.log(`${d.severity === 0 ? "error" : "warning"} ${d.code} ${d.path.join(".")}: ${d.message}`);
}
process.exit(errors ? 1 : 0);
