// CPU per request of the CloudFront Function (`npm run --prefix cdn bench:cloudfront`):
// 10^4 viewer requests per kind, each a fresh segment position (so a fresh codeword block), the
// token verified every time (the runtime keeps nothing between requests), the three
// KeyValueStore reads answered at once (their waiting is not CPU).
//
//   node (V8, JIT): the handler in the node:vm stand-in, one sample per request (nanosecond
//     clock), median / p99 / max;
//   njs (interpreter, when installed): the same requests in batches of 100 (its clock counts
//     milliseconds), one per-request figure per batch, median / p99 of the batches.
//
// CloudFront documents the limit only as "compute utilization", 0-100 % of a maximum it does not
// state; 1 ms is the figure commonly reported for it.

import { readFileSync } from "node:fs";
import { OUTPUT } from "../build.mjs";
import { KeyValueStore, loadFunction, outcome, viewerRequest } from "./runtime.mjs";
import { VECTORS_PATH, configValue, sessionRecord } from "./suite.mjs";
import { benchCase, njsVersion } from "./njs.mjs";
import { hexToBytes } from "../../cloudflare/selector.mjs";

const N = Number(process.env.BENCH_REQUESTS ?? 10000);
const v = JSON.parse(readFileSync(VECTORS_PATH, "utf8"));
const store = new KeyValueStore();
store.put("leaktrace:config", configValue([{ version: v.key_version, key: hexToBytes(v.master_key_hex) }], v.wmopid));
store.put(`s:${v.tokens[0].claims.wmid}`, sessionRecord("big-buck-bunny", v.key_version));
const cti = Buffer.from(v.tokens[2].claims.cti_hex, "hex").toString("utf8");
store.put(`s:${cti}`, sessionRecord("big-buck-bunny", v.key_version));
const source = readFileSync(OUTPUT, "utf8");
const f = loadFunction(source, store);

const kinds = [
  ["HMAC token, indirect mode (token, session checks, codeword)", v.tokens[0], 200],
  ["HMAC token, direct mode (token, session checks, pattern bit)", v.tokens[2], 200],
  ["forged token (refused after the MAC)", v.tokens[3], 403],
  ["ES256 token (refused: no ECDSA here)", v.tokens[1], 403],
];
const target = (tv, k) => `/wmt/${tv.token}/big-buck-bunny/720p/seg_${String((k * 7919) % 4294967296).padStart(5, "0")}.m4s`;
const pct = (s, q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
const ms = (x) => Number(x.toFixed(4));

const results = { bytes: Buffer.byteLength(source), requests: N, node: process.version, kinds: [] };
for (const [name, tv, want] of kinds) {
  f.setNow(tv.verify_at);
  for (let k = 0; k < 500; k++) await f.run(viewerRequest(target(tv, k)));
  const samples = [];
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < N; k++) {
    const e = viewerRequest(target(tv, k));
    const t = process.hrtime.bigint();
    const r = await f.run(e);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (k === 0 && outcome(r).status !== want) throw new Error(`${name}: status ${outcome(r).status}`);
  }
  const cpu = process.cpuUsage(cpu0);
  samples.sort((a, b) => a - b);
  const row = {
    kind: name,
    node: { median_ms: ms(pct(samples, 0.5)), p99_ms: ms(pct(samples, 0.99)), max_ms: ms(samples.at(-1)), cpu_mean_ms: ms((cpu.user + cpu.system) / 1000 / N) },
  };
  results.kinds.push(row);
}

const version = njsVersion();
results.njs = version;
if (version) {
  for (let i = 0; i < kinds.length; i++) {
    const tv = kinds[i][1];
    const c = { event: viewerRequest(target(tv, 1)), now: tv.verify_at, kv: { ...store.data } };
    const per = benchCase(c, N, 100).sort((a, b) => a - b);
    results.kinds[i].njs = { batches: per.length, median_ms: ms(pct(per, 0.5)), p99_ms: ms(pct(per, 0.99)), max_ms: ms(per.at(-1)) };
  }
}

console.log(JSON.stringify(results, null, 1));
console.log(`\nfunction.js: ${results.bytes} bytes of 10240; ${N} requests per kind`);
console.log("| work per request | node median | node p99 | njs median (batches of 100) | njs p99 |");
console.log("|---|---|---|---|---|");
for (const r of results.kinds) {
  const n = r.njs ?? {};
  console.log(`| ${r.kind} | ${r.node.median_ms} ms | ${r.node.p99_ms} ms | ${n.median_ms ?? "-"} ms | ${n.p99_ms ?? "-"} ms |`);
}
