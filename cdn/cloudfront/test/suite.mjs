// The CloudFront Function's checks, in the runtime stand-in of runtime.mjs (node:vm):
//
//   1. the deployable file is the build of src/function.js and fits the 10 KB limit;
//   2. every check of crates/edge/tests/vectors/selector-v2.json, as the Worker's test makes
//      them: the derived keys, the biases and session words at every listed position (up to
//      2^32 - 1), each session's bit there through the handler (a token for the session, the
//      rewritten origin path), every token accepted or refused with the same claims, the edge's
//      decision for its title and the variant of each selection; ES256 tokens are refused here
//      by design (no ECDSA in the runtime);
//   3. the function's BLAKE3 and codeword against selector.mjs (@noble/hashes) on other inputs;
//   4. refusals: forged, expired, other key, other operator, other title, unrecorded, revoked
//      (and restored), key versions not held, non-canonical and invalid-UTF-8 tokens, no token;
//      paths refused as the edge refuses them; methods; tokens from the query and the header.
//
// `node cdn/cloudfront/test/suite.mjs` prints a JSON report ({ok, checked, failures, ...}) and
// exits 1 on a failure.

import { readFileSync } from "node:fs";
import vm from "node:vm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, SOURCE, OUTPUT } from "../build.mjs";
import { KeyValueStore, SIZE_LIMIT, loadFunction, outcome, viewerRequest } from "./runtime.mjs";
import { CLAIM, openToken, reissue, sealToken } from "./tokens.mjs";
import {
  blake3, Codebook, bytesToHex, derive, hexToBytes, parsePath, tokenMacKey,
} from "../../cloudflare/selector.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, "..", "..", "..");
export const VECTORS_PATH = join(REPO, "crates/edge/tests/vectors/selector-v2.json");

const CTX_BIAS = "leaktrace 2026-11-21 tardos bias v1";
const CTX_CODEWORD = "leaktrace 2026-11-21 session codeword v1";

/** The `leaktrace:config` value for master keys `[{version, key}]` and operator `wmopid`. */
export function configValue(masters, wmopid) {
  const keys = {};
  for (const { version, key } of masters) {
    keys[version] = bytesToHex(tokenMacKey(key, version)) + bytesToHex(derive(CTX_BIAS, key, version)) + bytesToHex(derive(CTX_CODEWORD, key, version));
  }
  return JSON.stringify({ wmopid, keys });
}

/** The session record of `session export --kv cloudfront`: "<key version> <title key version> <title>". */
export const sessionRecord = (title, keyVersion = 1, titleKeyVersion = keyVersion) => `${keyVersion} ${titleKeyVersion} ${title}`;

const segName = (p) => `seg_${String(p).padStart(5, "0")}.m4s`;

/**
 * Runs every check; `record(case)`, when given, receives each request the handler answered as
 * `{event, now, kv, status, uri}` (the event as sent, the store at that moment), for replaying
 * the same requests in another engine.
 */
export async function runSuite({ record } = {}) {
  const failures = [];
  let checked = 0;
  const expect = (cond, what) => {
    checked++;
    if (!cond && failures.length < 30) failures.push(what);
  };
  const report = {};

  // 1. The deployable file.
  const source = readFileSync(OUTPUT, "utf8");
  expect(source === build(readFileSync(SOURCE, "utf8")), "cdn/cloudfront/function.js is not the build of src/function.js (node cdn/cloudfront/build.mjs)");
  report.bytes = Buffer.byteLength(source);
  report.size_limit = SIZE_LIMIT;
  expect(report.bytes <= SIZE_LIMIT, `function.js is ${report.bytes} bytes, over ${SIZE_LIMIT}`);

  const v = JSON.parse(readFileSync(VECTORS_PATH, "utf8"));
  const master = hexToBytes(v.master_key_hex);
  const version = v.key_version;
  const macKey = tokenMacKey(master, version);
  const store = new KeyValueStore();
  store.put("leaktrace:config", configValue([{ version, key: master }], v.wmopid));
  const f = loadFunction(source, store);
  const inCtx = (name) => new vm.Script(name).runInContext(f.context);
  const cfgKeys = JSON.parse(store.data["leaktrace:config"]).keys;
  const keyHex = cfgKeys[version];
  let now = 0;
  const setNow = (t) => {
    now = t;
    f.setNow(t);
  };
  const request = async (target, opts) => {
    const event = viewerRequest(target, opts);
    const sent = record ? JSON.parse(JSON.stringify(event)) : null;
    const r = outcome(await f.run(event));
    if (record) record({ event: sent, now, kv: { ...store.data }, status: r.status, uri: r.uri ?? null });
    return r;
  };

  // 2a. Derived keys: the token MAC key, and the per-title keys the function derives.
  expect(bytesToHex(macKey) === v.token_mac_key_hex, "token mac key");
  expect(keyHex.slice(0, 64) === v.token_mac_key_hex, "config: token mac key");
  const forTitle = inCtx("forTitle");
  const keyWords = inCtx("keyWords");
  const threshold = inCtx("threshold");
  const word = inCtx("word");
  const wordsHex = (w) => bytesToHex(Uint8Array.from({ length: 32 }, (_, i) => (w[i >> 2] >>> (8 * (i & 3))) & 0xff));
  for (const t of v.titles) {
    expect(wordsHex(forTitle(keyWords(keyHex.slice(64, 128)), t.title)) === t.bias_key_hex, `${t.title}: bias key`);
    expect(wordsHex(forTitle(keyWords(keyHex.slice(128)), t.title)) === t.codeword_key_hex, `${t.title}: codeword key`);
    t.positions.forEach((p, i) => {
      expect(threshold(keyHex, t.title, p) / 65536 === t.biases[i], `${t.title}: bias at ${p}`);
    });
    for (const s of t.sessions) {
      t.positions.forEach((p, i) => {
        const u = word(keyHex, t.title, s.session_id, p) / 65536;
        expect(u === s.uniforms[i], `${t.title}/${s.session_id}: uniform at ${p}: ${u} != ${s.uniforms[i]}`);
      });
    }
  }

  // 2b. Each session's bit through the handler: a token for the session, the origin path.
  const base = v.tokens[0];
  expect(sealToken(openToken(base.token).protectedBytes, openToken(base.token).entries, macKey) === base.token, "the test encoder re-encodes a vector token byte for byte");
  setNow(base.verify_at);
  let viaHandler = 0;
  for (const t of v.titles) {
    for (const s of t.sessions) {
      const token = reissue(base.token, { [CLAIM.wmid]: s.session_id }, macKey);
      store.put(`s:${s.session_id}`, sessionRecord(t.title, version));
      for (let i = 0; i < t.positions.length; i++) {
        const p = t.positions[i];
        const r = await request(`/wmt/${token}/${t.title}/720p/${segName(p)}`);
        const want = s.bits[i] === "1" ? "b" : "a";
        expect(r.status === 200 && r.uri === `/${t.title}/720p/${want}/${segName(p)}`, `${t.title}/${s.session_id} at ${p}: ${JSON.stringify([r.status, r.uri])}, expected ${want} (${f.logs.at(-1)})`);
        viaHandler++;
      }
      store.delete(`s:${s.session_id}`);
    }
  }
  report.bits_through_handler = viaHandler;

  // 2c. The vector tokens: accepted or refused, claims, the edge's decision, the selections.
  const verify = inCtx("verify");
  const sessionOf = inCtx("sessionOf");
  const tokenResults = [];
  for (const tv of v.tokens) {
    const what = `token "${tv.description}"`;
    const es256 = tv.alg === "ES256";
    let claims = null;
    let error = null;
    try {
      claims = verify(tv.token, cfgKeys, tv.verify_at);
    } catch (e) {
      error = String(e);
    }
    const wantValid = tv.valid && !es256;
    expect((claims !== null) === wantValid, `${what}: valid ${claims !== null}, expected ${wantValid} (${error})`);
    if (claims && tv.claims) {
      const c = tv.claims;
      const hex = (b) => (b === undefined ? null : bytesToHex(b));
      expect(claims.exp === c.exp && claims.iat === c.iat, `${what}: exp/iat`);
      expect(claims.wmpatlen === c.wmpatlen && claims.wmvnd === c.wmvnd && claims.wmver === c.wmver, `${what}: wmpatlen/wmvnd/wmver`);
      expect((claims.iss ?? null) === c.iss, `${what}: iss`);
      expect(hex(claims.cti) === c.cti_hex, `${what}: cti`);
      expect(hex(claims.wmpattern) === c.wmpattern_hex, `${what}: wmpattern`);
      expect((claims.wmid ?? null) === c.wmid, `${what}: wmid`);
      expect((claims.wmopid ?? null) === c.wmopid, `${what}: wmopid`);
      expect((claims.wmkeyver ?? null) === c.wmkeyver, `${what}: wmkeyver`);
      expect(JSON.stringify(claims.wmsegduration ? Array.from(claims.wmsegduration) : null) === JSON.stringify(c.wmsegduration), `${what}: wmsegduration`);
    }
    // The edge's decision for the vectors' store: every session is of big-buck-bunny.
    const sid = claims ? sessionOf(claims) : c0(tv);
    if (sid) store.put(`s:${sid}`, sessionRecord("big-buck-bunny", version));
    setNow(tv.verify_at);
    const r = await request(`/wmt/${tv.token}/${tv.title}/720p/${segName(7)}`);
    const wantServed = tv.edge_serves && !es256;
    expect((r.status === 200) === wantServed, `${what}: status ${r.status}, edge serves ${tv.edge_serves} (${f.logs.at(-1)})`);
    if (!wantServed) expect(r.status === 403, `${what}: refused with ${r.status}`);
    let selections = 0;
    if (r.status === 200) {
      for (const sel of tv.selections ?? []) {
        if (sel.position < 0) {
          // Position -1 (not watermarked): a file not named by position, served as it is.
          const q = await request(`/wmt/${tv.token}/${tv.title}/720p/init.mp4`);
          expect(q.uri === `/${tv.title}/720p/init.mp4`, `${what}: position -1: ${q.uri}`);
        } else {
          const q = await request(`/wmt/${tv.token}/${tv.title}/720p/${segName(sel.position)}`);
          expect(q.uri === `/${tv.title}/720p/${sel.variant}/${segName(sel.position)}`, `${what}: position ${sel.position}: ${q.uri}, expected ${sel.variant}`);
        }
        selections++;
      }
    }
    if (sid) store.delete(`s:${sid}`);
    tokenResults.push({ description: tv.description, status: r.status, selections });
  }
  report.tokens = tokenResults;

  // 3. BLAKE3 and the codeword against selector.mjs on other titles, sessions and positions.
  for (const title of ["x", "a-title-of-fifty-eight-characters-long-to-fill-one-block.x", "t".repeat(128)]) {
    const book = new Codebook(master, version, title);
    for (const sid of ["s", "A.b_c~d-e", "q".repeat(63), "r".repeat(64), "w".repeat(65), "z".repeat(128)]) {
      for (const p of [0, 1, 31, 32, 33, 4095, 32767, 65536, 123456789, 4294967295]) {
        const x = word(keyHex, title, sid, p);
        expect(x === book.word(book.sessionStream(sid), p), `word ${title}/${sid}/${p}`);
        expect(threshold(keyHex, title, p) === book.threshold(p), `threshold ${title}/${p}`);
      }
    }
  }
  {
    // A multi-block keyed hash (the title key of a 128-character title) against @noble/hashes.
    const title = "t".repeat(128);
    const key = derive(CTX_BIAS, master, version);
    const want = bytesToHex(blake3(Buffer.from("title\0" + title), { key }));
    expect(wordsHex(forTitle(keyWords(bytesToHex(key)), title)) === want, "three-block keyed BLAKE3");
  }

  // 4. Refusals.
  const sid = base.claims.wmid;
  const title = "big-buck-bunny";
  const seg = `${title}/720p/${segName(3)}`;
  setNow(base.verify_at);
  store.put(`s:${sid}`, sessionRecord(title, version));
  const okPath = `/wmt/${base.token}/${seg}`;
  const served = await request(okPath);
  expect(served.status === 200, `base token served: ${served.status} ${f.logs.at(-1)}`);
  const refusals = [];
  const refused = async (what, target, why, opts) => {
    const r = await request(target, opts);
    const log = f.logs.at(-1) ?? "";
    expect(r.status === 403 && log.includes(why), `${what}: ${r.status} (${log}), expected 403 for ${why}`);
    if (r.status === 403) {
      const h = r.response.headers;
      expect(h["cache-control"].value === "no-store" && r.response.body.data === "forbidden\n", `${what}: the refusal's headers and body`);
    }
    refusals.push(what);
  };
  await refused("forged", `/wmt/${v.tokens[3].token}/${seg}`, "mac");
  setNow(v.tokens[4].verify_at);
  await refused("expired", `/wmt/${v.tokens[4].token}/${seg}`, "expired");
  setNow(base.verify_at);
  await refused("another HMAC key", `/wmt/${v.tokens[5].token}/${seg}`, "mac");
  await refused("wmopid 2", `/wmt/${v.tokens[6].token}/${seg}`, "operator");
  await refused("ES256 (no ECDSA here)", `/wmt/${v.tokens[1].token}/${seg}`, "tag");
  await refused("other title", `/wmt/${base.token}/tears-of-steel/720p/${segName(3)}`, "other title");
  await refused("no token", `/${seg}`, "no token");
  await refused("not a token", `/wmt/abc/${seg}`, "cbor");
  setNow(base.claims.iat - 61);
  await refused("not yet valid", okPath, "not yet valid");
  setNow(base.verify_at);
  // Revoked, then restored.
  store.put(sid, "1");
  await refused("revoked", okPath, "revoked");
  store.delete(sid);
  expect((await request(okPath)).status === 200, "restored: served again");
  // Unrecorded session; key versions not held.
  await refused("unrecorded session", `/wmt/${reissue(base.token, { [CLAIM.wmid]: "never-recorded" }, macKey)}/${seg}`, "unknown session");
  await refused("wmkeyver 2", `/wmt/${reissue(base.token, { [CLAIM.wmkeyver]: 2 }, macKey)}/${seg}`, "key version");
  store.put(`s:${sid}`, sessionRecord(title, 2));
  await refused("session of key version 2", okPath, "key version");
  store.put(`s:${sid}`, sessionRecord(title, 1, 2));
  await refused("title of key version 2", okPath, "title key version");
  store.put(`s:${sid}`, sessionRecord("tears-of-steel", 1));
  await refused("session recorded for another title", okPath, "other title");
  store.put(`s:${sid}`, "garbage");
  await refused("unreadable session record", okPath, "unknown session");
  store.put(`s:${sid}`, sessionRecord(title, version));
  // Spellings the edge refuses: a long-form integer, invalid UTF-8, a float, trailing bytes.
  await refused("non-canonical integer", `/wmt/${reissue(base.token, { [CLAIM.wmvnd]: { longUint: 0 } }, macKey)}/${seg}`, "cbor");
  await refused("overlong UTF-8", `/wmt/${reissue(base.token, { [CLAIM.iss]: { rawText: Buffer.from([0xc0, 0x80]) } }, macKey)}/${seg}`, "utf8");
  await refused("float claim", `/wmt/${reissue(base.token, { 400: { raw: [0xf9, 0x3c, 0x00] } }, macKey)}/${seg}`, "cbor");
  {
    const raw = Buffer.from(base.token, "base64url");
    await refused("trailing byte", `/wmt/${Buffer.concat([raw, Buffer.from([0])]).toString("base64url")}/${seg}`, "cbor");
    // A last character with bits that are not part of any byte: another spelling of the token.
    const stray = (t2) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const last = alphabet.indexOf(t2.at(-1));
      return t2.slice(0, -1) + alphabet[last ^ 1];
    };
    const odd = base.token.length % 4 === 0 ? Buffer.concat([raw, Buffer.from([0])]).toString("base64url") : base.token;
    await refused("stray bits in base64url", `/wmt/${stray(odd)}/${seg}`, odd === base.token ? "base64url" : "");
  }
  await refused("both modes", `/wmt/${reissue(base.token, { [CLAIM.wmpattern]: Buffer.alloc(8192) }, macKey)}/${seg}`, "mode");
  await refused("wmver 2", `/wmt/${reissue(base.token, { [CLAIM.wmver]: 2 }, macKey)}/${seg}`, "claims");
  await refused("text exp", `/wmt/${reissue(base.token, { [CLAIM.exp]: "never" }, macKey)}/${seg}`, "claim exp");
  report.refusals = refusals.length;

  // Configuration missing: 500, nothing served.
  const cfg = store.data["leaktrace:config"];
  store.delete("leaktrace:config");
  expect((await request(okPath)).status === 500, "no leaktrace:config: 500");
  store.put("leaktrace:config", cfg);

  // Paths: the edge's statuses (selector.mjs's parsePath is the Worker's copy of them).
  const t = base.token;
  for (const p of [
    `/wmt/${t}/bbb/360p/a/seg_00000.m4s`, `/wmt/${t}/bbb/360p/B/seg_00000.m4s`, `/wmt/${t}/bbb/360p/WMPaceInfo/seg_00000.m4s`,
    `/wmt/${t}/bbb/reference/meta.json`, `/wmt/${t}/bbb/title.json`, `/wmt/${t}/bbb/360p/seg_00000.exe`, `/wmt/${t}/bbb/../title.json`,
    `/wmt/${t}/bbb/%2e%2e/360p/seg_00000.m4s`, `/wmt/${t}/bbb//360p/seg_00000.m4s`, `/wmt/${t}`, "/wmt", "/", "",
    `/wmt/${t}/bbb/x/y/z.m4s`, `/wmt/${t}/${"t".repeat(129)}/master.m3u8`, `/wmt/${t}/bbb/.hidden/seg.m4s`, `/wmt/${t}/bbb/360p/seg 1.m4s`,
  ]) {
    const want = parsePath(p).status ?? 200;
    const r = await request(p);
    const got = r.status === 200 || r.status === 403 ? 200 : r.status;
    expect(got === want, `path ${p}: ${r.status}, the edge's ${want}`);
  }
  expect((await request(okPath, { method: "POST" })).status === 405, "POST: 405");
  expect((await request(okPath, { method: "OPTIONS" })).status === 204, "OPTIONS: 204");
  expect((await request(okPath, { method: "HEAD" })).status === 200, "HEAD: served");

  // The token from the query and from the header: the same origin path, and neither passed on.
  const byQuery = await request(`/${seg}?wmt=${t}&x=1`);
  expect(byQuery.uri === served.uri && Object.keys(byQuery.request.querystring).length === 0, "query token");
  const byHeader = await request(`/${seg}`, { headers: { Authorization: `Bearer ${t}` } });
  expect(byHeader.uri === served.uri && !byHeader.request.headers.authorization, "header token");
  // Root manifests and plain files of a rendition.
  expect((await request(`/wmt/${t}/${title}/master.m3u8`)).uri === `/${title}/master.m3u8`, "root manifest");
  expect((await request(`/wmt/${t}/${title}/text-en/seg_00003.vtt`)).uri === `/${title}/text-en/seg_00003.vtt`, "subtitle segment");
  expect((await request(`/wmt/${t}/${title}/720p/playlist.m3u8`)).uri === `/${title}/720p/playlist.m3u8`, "rendition playlist");
  expect((await request(`/wmt/${t}/${title}/720p/seg_4294967296.m4s`)).uri === `/${title}/720p/seg_4294967296.m4s`, "a name past u32 carries no position");

  report.kvs_reads = store.reads;
  return { ok: failures.length === 0, checked, failures, ...report };
}

/** The session of a vector token the function refuses (for the store), else null. */
function c0(tv) {
  return tv.claims ? tv.claims.wmid ?? null : null;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await runSuite();
  console.log(JSON.stringify(r, null, 1));
  process.exit(r.ok ? 0 : 1);
}
