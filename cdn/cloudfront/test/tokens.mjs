// Test tokens for the CloudFront Function: the selector vectors' tokens re-issued with other
// claims (another session, key version or operator; deliberately non-canonical spellings), MAC'd
// with the vectors' token key. The encoder writes deterministic CBOR as leaktrace's issuer does,
// so re-encoding a vector token unchanged gives it back byte for byte (checked by the suite).

import nodeCrypto from "node:crypto";
import { cborDecode } from "../../cloudflare/selector.mjs";

const cat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));

function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  if (n < 0x100000000) return Buffer.from([(major << 5) | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  const b = Buffer.alloc(9);
  b[0] = (major << 5) | 27;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

/**
 * CBOR of `v`: numbers, strings, Uint8Array, arrays, decoded maps (`{entries}`) and tags
 * (`{tag, value}`) from selector.mjs's decoder, booleans and null; `{raw}` is the given bytes as
 * they are, `{rawText}` a text string of the given bytes (valid UTF-8 or not), `{longUint}` an
 * unsigned integer in the 8-byte form.
 */
export function encode(v) {
  if (typeof v === "number") return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === "bigint") return v >= 0n ? head(0, Number(v)) : head(1, Number(-1n - v));
  if (typeof v === "string") {
    const b = Buffer.from(v, "utf8");
    return cat(head(3, b.length), b);
  }
  if (v === false || v === true || v === null) return Buffer.from([v === false ? 0xf4 : v === true ? 0xf5 : 0xf6]);
  if (v instanceof Uint8Array) return cat(head(2, v.length), v);
  if (Array.isArray(v)) return cat(head(4, v.length), ...v.map(encode));
  if (v && v.raw) return Buffer.from(v.raw);
  if (v && v.rawText) return cat(head(3, v.rawText.length), v.rawText);
  if (v && v.longUint !== undefined) {
    const b = Buffer.alloc(9);
    b[0] = 27;
    b.writeBigUInt64BE(BigInt(v.longUint), 1);
    return b;
  }
  if (v && Array.isArray(v.entries)) return cat(head(5, v.entries.length), ...v.entries.flatMap(([k, x]) => [encode(k), encode(x)]));
  if (v && v.tag !== undefined) return cat(head(6, v.tag), encode(v.value));
  throw new Error(`cannot encode ${v}`);
}

/** The parts of a COSE_Mac0 token: `{protectedBytes, payload: entries [[label, value]...]}`. */
export function openToken(token) {
  const outer = cborDecode(Buffer.from(token, "base64url"));
  const [protectedBytes, , payload] = outer.value.value;
  return { protectedBytes, entries: cborDecode(payload).entries.map(([k, v]) => [k, v]) };
}

/**
 * A COSE_Mac0 CWT of `entries` (claims in the order given) under `macKey` (32 bytes), with the
 * protected header bytes of a leaktrace token.
 */
export function sealToken(protectedBytes, entries, macKey) {
  const payload = encode({ entries });
  const toMac = cat(Buffer.from([0x84]), encode("MAC0"), encode(protectedBytes), Buffer.from([0x40]), encode(payload));
  const tag = nodeCrypto.createHmac("sha256", Buffer.from(macKey)).update(toMac).digest();
  const cose = encode({ tag: 61, value: { tag: 17, value: [protectedBytes, { entries: [] }, payload, tag] } });
  return cose.toString("base64url");
}

/** `token` with claims replaced (`{label: value}`; `undefined` removes one), re-MAC'd. */
export function reissue(token, changes, macKey) {
  const { protectedBytes, entries } = openToken(token);
  let out = entries.map(([k, v]) => [k, k in changes ? changes[k] : v]).filter(([, v]) => v !== undefined);
  for (const [k, v] of Object.entries(changes)) {
    const label = Number(k);
    if (v !== undefined && !out.some(([l]) => l === label)) out.push([label, v]);
  }
  // Deterministic order: by encoded key (for the small integer labels used here, numerically).
  out = out.sort((a, b) => Buffer.compare(encode(a[0]), encode(b[0])));
  return sealToken(protectedBytes, out, macKey);
}

/** Claim labels (RFC 8392 and TS 104 002). */
export const CLAIM = { iss: 1, exp: 4, nbf: 5, iat: 6, cti: 7, wmver: 300, wmvnd: 301, wmpatlen: 302, wmsegduration: 303, wmpattern: 304, wmid: 305, wmopid: 306, wmkeyver: 307 };
