// Checks selector.mjs against crates/edge/tests/vectors/selector-v2.json: derived keys, biases,
// session words and bits at every listed position (far ones included), and every token: accepted
// or refused as the vectors say, the same claims, the edge's decision for the token's title, and
// the variant at each listed position. Runs in workerd (test-worker.mjs) and in node.

import {
  blake3,
  Codebook,
  Deny,
  Verifiers,
  authorize,
  blake3DeriveKey,
  blake3Keyed,
  blake3Short,
  bytesToHex,
  hexToBytes,
  selectVariant,
  tokenMacKey,
  verifyToken,
} from "../selector.mjs";

/** Runs every check; returns `{ok, checked, failures: [..]}` (at most 20 failures listed). */
export async function checkVectors(v) {
  const failures = [];
  let checked = 0;
  const expect = (cond, what) => {
    checked++;
    if (!cond && failures.length < 20) failures.push(what);
  };
  const master = hexToBytes(v.master_key_hex);
  const version = v.key_version;

  // The one-chunk BLAKE3 of the selector against @noble/hashes (hash, keyed, derive_key, XOF).
  for (const n of [0, 1, 63, 64, 65, 127, 128, 129, 500, 1024]) {
    const input = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
    const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
    expect(bytesToHex(blake3Short(input)) === bytesToHex(blake3(input)), `blake3 of ${n} bytes`);
    expect(bytesToHex(blake3Keyed(key, input)) === bytesToHex(blake3(input, { key })), `keyed blake3 of ${n} bytes`);
    const ctx = "leaktrace selftest context";
    expect(
      bytesToHex(blake3DeriveKey(ctx, input)) === bytesToHex(blake3(input, { context: new TextEncoder().encode(ctx) })),
      `derive_key of ${n} bytes`,
    );
  }
  {
    // Seeking the XOF: words at positions inside the first 4 KiB against a sequential read.
    const book = new Codebook(master, version, "seek-check");
    const sid = "seek-check-session";
    const stream = blake3(new TextEncoder().encode(sid), { key: book.codewordKey, dkLen: 4096 });
    const s = book.sessionStream(sid);
    for (let p = 0; p < 2048; p += 37) {
      expect(book.word(s, p) === (stream[2 * p] | (stream[2 * p + 1] << 8)), `xof word at position ${p}`);
    }
  }

  expect(bytesToHex(tokenMacKey(master, version)) === v.token_mac_key_hex, "token mac key");
  const books = new Map();
  for (const t of v.titles) {
    const book = new Codebook(master, version, t.title, v.tardos_cutoff);
    books.set(t.title, book);
    expect(bytesToHex(book.biasKey) === t.bias_key_hex, `${t.title}: bias key`);
    expect(bytesToHex(book.codewordKey) === t.codeword_key_hex, `${t.title}: codeword key`);
    t.positions.forEach((p, i) => {
      expect(book.bias(p) === t.biases[i], `${t.title}: bias at ${p}: ${book.bias(p)} != ${t.biases[i]}`);
    });
    for (const s of t.sessions) {
      const stream = book.sessionStream(s.session_id);
      t.positions.forEach((p, i) => {
        const u = book.word(stream, p) / 65536;
        const bit = u < book.bias(p) ? "1" : "0";
        expect(u === s.uniforms[i], `${t.title}/${s.session_id}: uniform at ${p}: ${u} != ${s.uniforms[i]}`);
        expect(bit === s.bits[i], `${t.title}/${s.session_id}: bit at ${p}`);
        const variant = book.variant(s.session_id, p);
        expect(variant === (s.bits[i] === "1" ? "b" : "a"), `${t.title}/${s.session_id}: variant at ${p}`);
      });
    }
  }

  const verifiers = await Verifiers.create([{ version, key: master }], [hexToBytes(v.es256_public_key_hex)]);
  for (const tv of v.tokens) {
    const what = `token "${tv.description}"`;
    let claims = null;
    let error = null;
    try {
      claims = await verifyToken(tv.token, verifiers, tv.verify_at);
    } catch (e) {
      if (!(e instanceof Deny)) throw e;
      error = e.message;
    }
    expect((claims !== null) === tv.valid, `${what}: valid ${claims !== null}, expected ${tv.valid} (${error})`);
    if (claims && tv.claims) {
      const c = tv.claims;
      expect(claims.exp === c.exp && claims.iat === c.iat, `${what}: exp/iat`);
      expect(claims.wmpatlen === c.wmpatlen, `${what}: wmpatlen`);
      expect((claims.iss ?? null) === c.iss, `${what}: iss`);
      expect((claims.cti ? bytesToHex(claims.cti) : null) === c.cti_hex, `${what}: cti`);
      expect((claims.wmpattern ? bytesToHex(claims.wmpattern) : null) === c.wmpattern_hex, `${what}: wmpattern`);
      expect((claims.wmid ?? null) === c.wmid, `${what}: wmid`);
      expect((claims.wmopid ?? null) === c.wmopid, `${what}: wmopid`);
      expect((claims.wmkeyver ?? null) === c.wmkeyver, `${what}: wmkeyver`);
      expect(claims.wmvnd === c.wmvnd, `${what}: wmvnd`);
      const sd = claims.wmsegduration ?? null;
      expect(JSON.stringify(sd) === JSON.stringify(c.wmsegduration), `${what}: wmsegduration`);
    }
    // The edge's decision: the vectors' sessions all belong to big-buck-bunny (key version 1).
    let served = false;
    if (claims) {
      try {
        authorize(claims, {
          wmopid: v.wmopid,
          keyVersions: [version],
          title: tv.title,
          facts: { title: "big-buck-bunny", key_version: version, title_key_version: version },
          revoked: false,
        });
        served = true;
      } catch (e) {
        if (!(e instanceof Deny)) throw e;
      }
    }
    expect(served === tv.edge_serves, `${what}: served ${served}, expected ${tv.edge_serves}`);
    if (served) {
      const book = books.get(tv.title);
      for (const sel of tv.selections ?? []) {
        const got = selectVariant(book, claims, sel.position < 0 ? null : sel.position);
        expect(got === sel.variant, `${what}: position ${sel.position}: ${got} != ${sel.variant}`);
      }
    }
  }
  return { ok: failures.length === 0, checked, failures };
}
