// Test-only Worker: runs the selector vectors and the CPU measurements inside workerd.
//
//   GET /vectors                    every check of vectors.mjs -> {ok, checked, failures}
//   GET /bench?n=10000&batch=100    per-request token check + session checks + selection
//   GET /bench-egress?bytes=N&n=50  wmpi neutralisation + BLAKE3 ETag of an N-byte segment
//
// workerd's clock ticks in whole milliseconds, so requests are timed in batches: each batch of
// `batch` requests gives one per-request figure (its time / batch).

import vectors from "./selector-v2.json";
import {
  blake3, Codebook, Verifiers, authorize, bytesToHex, hexToBytes, neutralizeWmpi, selectVariant, sessionOf, verifyToken,
} from "../selector.mjs";
import { checkVectors } from "./vectors.mjs";

function stats(perRequestMs) {
  const s = [...perRequestMs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { samples: s.length, median_ms: at(0.5), p99_ms: at(0.99), max_ms: s[s.length - 1], mean_ms: mean };
}

/** One request's CPU work before the origin: verify, check, select (no per-isolate token cache). */
async function oneRequest(verifiers, books, token, now, position) {
  const claims = await verifyToken(token, verifiers, now);
  const auth = authorize(claims, {
    wmopid: vectors.wmopid,
    keyVersions: [vectors.key_version],
    title: "big-buck-bunny",
    facts: { title: "big-buck-bunny", key_version: vectors.key_version, title_key_version: vectors.key_version },
    revoked: false,
  });
  let book = books.get("big-buck-bunny");
  if (!book) {
    book = new Codebook(hexToBytes(vectors.master_key_hex), auth.titleKeyVersion, "big-buck-bunny");
    books.set("big-buck-bunny", book);
  }
  if (sessionOf(claims) === null) throw new Error("no session");
  return selectVariant(book, claims, position);
}

async function bench(url) {
  const n = Number(url.searchParams.get("n") ?? 10000);
  const batch = Number(url.searchParams.get("batch") ?? 100);
  const master = hexToBytes(vectors.master_key_hex);
  const verifiers = await Verifiers.create([{ version: vectors.key_version, key: master }], [hexToBytes(vectors.es256_public_key_hex)]);
  const out = {};
  for (const [name, index] of [["hmac_indirect", 0], ["es256_indirect", 1], ["hmac_direct", 2]]) {
    const tv = vectors.tokens[index];
    const books = new Map();
    // Warm-up (JIT), then the measured requests: fresh positions, the token verified every time.
    for (let i = 0; i < 200; i++) await oneRequest(verifiers, books, tv.token, tv.verify_at, i);
    const per = [];
    let b = 0;
    let bCount = 0;
    const t0 = performance.now();
    let tb = t0;
    for (let i = 0; i < n; i++) {
      await oneRequest(verifiers, books, tv.token, tv.verify_at, (i * 7919) >>> 0);
      if (++bCount === batch) {
        const t = performance.now();
        per.push((t - tb) / batch);
        tb = t;
        bCount = 0;
        b++;
      }
    }
    const total = performance.now() - t0;
    out[name] = { requests: n, batch, total_ms: total, ...stats(per) };
  }
  // Selection alone (codeword bit at a far position), for scale.
  const book = new Codebook(master, vectors.key_version, "big-buck-bunny");
  const t0 = performance.now();
  let x = 0;
  for (let i = 0; i < n * 10; i++) x += book.variant("eusskjjfeusskjjfeusskjjfeu", (i * 2654435761) >>> 0) === "b" ? 1 : 0;
  out.selection_only = { selections: n * 10, mean_us: ((performance.now() - t0) * 1000) / (n * 10), b_share: x / (n * 10) };
  return out;
}

function benchEgress(url) {
  const size = Number(url.searchParams.get("bytes") ?? 1 << 20);
  const n = Number(url.searchParams.get("n") ?? 50);
  const seg = new Uint8Array(size);
  for (let i = 0; i < size; i++) seg[i] = (i * 31) & 0xff;
  // styp, wmpi, then one mdat with the rest.
  seg.set([0, 0, 0, 16, 0x73, 0x74, 0x79, 0x70], 0);
  seg.set([0, 0, 0, 13, 0x77, 0x6d, 0x70, 0x69], 16);
  const rest = size - 29;
  seg.set([rest >>> 24, (rest >> 16) & 0xff, (rest >> 8) & 0xff, rest & 0xff, 0x6d, 0x64, 0x61, 0x74], 29);
  const per = [];
  let etag = "";
  for (let i = 0; i < n + 3; i++) {
    const t = performance.now();
    const copy = seg.slice();
    neutralizeWmpi(copy);
    etag = bytesToHex(blake3(copy).subarray(0, 16));
    if (i >= 3) per.push(performance.now() - t);
  }
  return { bytes: size, etag, ...stats(per) };
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    let body;
    if (url.pathname === "/vectors") body = await checkVectors(vectors);
    else if (url.pathname === "/bench") body = await bench(url);
    else if (url.pathname === "/bench-egress") body = benchEgress(url);
    else return new Response("not found\n", { status: 404 });
    return new Response(JSON.stringify(body, null, 1), { headers: { "Content-Type": "application/json" } });
  },
};
