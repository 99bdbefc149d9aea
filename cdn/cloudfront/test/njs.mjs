// The function in njs, NGINX's JavaScript engine (Debian package `njs`): a bytecode interpreter
// without a JIT, with the feature set CloudFront's runtime documents (ES 5.1 plus let/const,
// arrow functions, async/await, typed arrays, Buffer and the crypto module; no BigInt, no Map).
// njs parses the deployable file as it is; the requests the node suite made are replayed
// there, and each must be answered alike (status and origin path). With `bench`, one request
// kind is repeated in batches (njs's clock counts milliseconds) for the CPU per request.
//
// The driver goes to njs on its standard input, with the `cloudfront` module from test/njs/;
// its data is one JSON string literal (njs's parser does not take an object literal that large).

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { OUTPUT } from "../build.mjs";

const here = dirname(fileURLToPath(import.meta.url));

/** The njs version, or null when the `njs` command is not installed. */
export function njsVersion() {
  const r = spawnSync("njs", ["-v"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function runDriver(driver) {
  const source = readFileSync(OUTPUT, "utf8");
  // njs looks a module up in its working directory before the -p path: run it in test/njs.
  const r = spawnSync("njs", ["-t", "module", "-p", join(here, "njs"), "-"], {
    cwd: join(here, "njs"),
    input: `${source}\n${driver}`,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`njs failed (${r.status}): ${r.stderr}${r.stdout.slice(0, 2000)}`);
  const line = r.stdout.trim().split("\n").at(-1);
  return JSON.parse(line);
}

/** Replays `cases` ({event, now, kv, status, uri}) in njs: `{replayed, mismatches: [...]}`. */
export function replay(cases) {
  const driver = `
const __cases = JSON.parse(${JSON.stringify(JSON.stringify(cases))});
(async function () {
  const mismatches = [];
  for (let i = 0; i < __cases.length; i++) {
    const c = __cases[i];
    globalThis.__kv = c.kv;
    Date.now = function () { return c.now * 1000; };
    let status;
    let uri = null;
    try {
      const r = await handler(c.event);
      if (r.statusCode !== undefined) status = r.statusCode;
      else {
        status = 200;
        uri = r.uri;
      }
    } catch (e) {
      status = 'threw ' + e;
    }
    if (status !== c.status || uri !== c.uri) mismatches.push({ i: i, status: status, uri: uri, want: [c.status, c.uri], path: c.event.request.uri.slice(0, 120) });
  }
  console.log(JSON.stringify({ replayed: __cases.length, mismatches: mismatches.slice(0, 20), failed: mismatches.length }));
})();
`;
  return runDriver(driver);
}

/**
 * CPU per request in njs: `n` requests of `c` (a recorded case) with the position of its
 * segment name varied, timed in batches of `batch`. Returns per-request milliseconds per batch.
 */
export function benchCase(c, n, batch) {
  const driver = `
const __c = JSON.parse(${JSON.stringify(JSON.stringify(c))});
(async function () {
  const clock = Date.now;
  globalThis.__kv = __c.kv;
  Date.now = function () { return __c.now * 1000; };
  const uri = __c.event.request.uri;
  const at = uri.lastIndexOf('/seg_');
  const event = (k) => {
    const e = JSON.parse(JSON.stringify(__c.event));
    if (at >= 0) e.request.uri = uri.slice(0, at) + '/seg_' + String((k * 7919) % 4294967296).padStart(5, '0') + '.m4s';
    return e;
  };
  for (let k = 0; k < 200; k++) await handler(event(k));
  const per = [];
  let t0 = clock.call(Date);
  for (let k = 0; k < ${n}; k++) {
    await handler(event(k));
    if ((k + 1) % ${batch} === 0) {
      const t = clock.call(Date);
      per.push((t - t0) / ${batch});
      t0 = clock.call(Date);
    }
  }
  console.log(JSON.stringify(per));
})();
`;
  return runDriver(driver);
}
