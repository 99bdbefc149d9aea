// CPU of the Worker's per-request work, inside workerd (npm run bench, from cdn/):
//   1. token check + session checks + A/B selection, 10^4 requests per token kind, timed in
//      batches of 100 (workerd's clock ticks in milliseconds);
//   2. the egress rewrite + BLAKE3 ETag of a segment (what a cache miss adds);
//   3. the same per-request work in node with a nanosecond clock, one sample per request, for
//      the distribution (same V8 family, not the same build as workerd).
// Also runs the selector vectors first. Listens on 127.0.0.1 only.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { createServer } from "node:net";
import { Codebook, Verifiers, authorize, hexToBytes, selectVariant, verifyToken } from "../selector.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const cdn = join(here, "..", "..");
const vectors = JSON.parse(readFileSync(join(cdn, "..", "crates/edge/tests/vectors/selector-v2.json"), "utf8"));

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const kv = mkdtempSync(join(tmpdir(), "leaktrace-kv-"));
const ports = [await freePort(), await freePort(), await freePort()];
const child = spawn(
  join(cdn, "node_modules/.bin/workerd"),
  ["serve", "cloudflare/test/config.capnp", "--import-path", join(cdn, ".."),
    "-s", `http=127.0.0.1:${ports[0]}`, "-s", `names=127.0.0.1:${ports[1]}`, "-s", `selftest=127.0.0.1:${ports[2]}`,
    "-d", `sessions=${kv}`, "-d", `revoked=${kv}`],
  {
    cwd: cdn,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, LEAKTRACE_ORIGIN: "http://127.0.0.1:9", LEAKTRACE_MASTER_KEYS: `1:${vectors.master_key_hex}`, LEAKTRACE_ES256_KEYS: "" },
  },
);
const base = `http://127.0.0.1:${ports[2]}`;
try {
  for (let i = 0; ; i++) {
    try {
      await fetch(`${base}/`);
      break;
    } catch {
      if (i > 300) throw new Error("workerd did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const get = async (p) => (await fetch(base + p)).json();
  const v = await get("/vectors");
  console.log(`selector vectors in workerd: ${v.ok ? "ok" : "FAILED"}, ${v.checked} checks`, v.failures);
  console.log("workerd, per request (batches of 100):", JSON.stringify(await get("/bench?n=10000&batch=100"), null, 1));
  for (const bytes of [262144, 1048576, 4194304]) {
    console.log("workerd, egress rewrite + ETag:", JSON.stringify(await get(`/bench-egress?bytes=${bytes}&n=30`)));
  }
  // node: one sample per request.
  const master = hexToBytes(vectors.master_key_hex);
  const verifiers = await Verifiers.create([{ version: 1, key: master }], [hexToBytes(vectors.es256_public_key_hex)]);
  const book = new Codebook(master, 1, "big-buck-bunny");
  for (const [name, i] of [["hmac_indirect", 0], ["es256_indirect", 1], ["hmac_direct", 2]]) {
    const tv = vectors.tokens[i];
    const one = async (p) => {
      const c = await verifyToken(tv.token, verifiers, tv.verify_at);
      authorize(c, { wmopid: 1, keyVersions: [1], title: "big-buck-bunny", facts: { title: "big-buck-bunny", key_version: 1, title_key_version: 1 }, revoked: false });
      return selectVariant(book, c, p);
    };
    for (let k = 0; k < 500; k++) await one(k);
    const samples = [];
    for (let k = 0; k < 10000; k++) {
      const t = process.hrtime.bigint();
      await one((k * 7919) >>> 0);
      samples.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    samples.sort((a, b) => a - b);
    console.log(`node ${process.version}, ${name}: median ${samples[5000].toFixed(4)} ms, p99 ${samples[9900].toFixed(4)} ms, max ${samples[9999].toFixed(3)} ms (10^4 requests)`);
  }
} finally {
  child.kill();
  rmSync(kv, { recursive: true, force: true });
}
