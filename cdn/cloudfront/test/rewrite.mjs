// Runs the CloudFront Function on requests read as JSON from standard input and writes what it
// did with each to standard output (for crates/edge/tests/cdn_cloudfront.rs):
//
//   in:  {"now": <unix seconds>, "kvs": [<import file>...], "requests": [{"method", "target",
//         "headers"}...]}  (an import file is {"data": [{"key", "value"}]}, as the CLI writes)
//   out: [{"status": 200, "uri": "/<origin path>"} | {"status": 403}...]
//
// Nothing but standard input is read besides the function itself.

import { readFileSync } from "node:fs";
import { OUTPUT } from "../build.mjs";
import { KeyValueStore, loadFunction, outcome, viewerRequest } from "./runtime.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const store = new KeyValueStore();
for (const file of input.kvs) store.load(file);
const f = loadFunction(readFileSync(OUTPUT, "utf8"), store);
f.setNow(input.now);
const out = [];
for (const r of input.requests) {
  const o = outcome(await f.run(viewerRequest(r.target, { method: r.method ?? "GET", headers: r.headers ?? {} })));
  out.push(o.status === 200 ? { status: 200, uri: o.uri } : { status: o.status, log: f.logs.at(-1) ?? null });
}
console.log(JSON.stringify(out));
