// leaktrace A/B selection for CDN workers: token verification (CWT over COSE_Mac0 / COSE_Sign1),
// key derivation, the Tardos codeword bit, WMPaceInfo sidecars, request paths and the egress
// rewrite of in-band WMPaceInfo. Pure functions over bytes and WebCrypto: no bindings, no I/O,
// so the same module runs in the Worker, in its tests and in node. Its one dependency is
// @noble/hashes (BLAKE3 of whole files, for ETags).
//
// Reference: crates/edge/src/lib.rs (per-request steps), crates/core/src/token.rs (wire format and
// validation), crates/core/src/codeword.rs (bias and codeword), and the vectors
// crates/edge/tests/vectors/selector-v2.json, whose "algorithm" field this module implements.

// BLAKE3 of whole files (ETags) comes from @noble/hashes; re-exported so that every module of the
// Worker reaches it through this one.
export { blake3 } from "@noble/hashes/blake3.js";

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** Longest token accepted, in base64url characters (as the edge). */
export const MAX_TOKEN_LEN = 16 * 1024;
/** Longest request path accepted: a maximal token plus room for the rest. */
export const MAX_PATH_LEN = MAX_TOKEN_LEN + 1024;
/** Clock-skew allowance on exp, iat and nbf, in seconds. */
export const LEEWAY_SECS = 60;
/** The default Tardos cutoff of leaktrace codebooks. */
export const TARDOS_CUTOFF = 0.1;
/** Directory names a viewer may never address (origin-only data). */
export const RESERVED_DIRS = ["a", "b", "wmpaceinfo", "reference"];
/** Positions the sidecar's 15-bit field distinguishes (it wraps modulo this). */
export const WIRE_POSITIONS = 0x7fff;

const CWT_TAG = 61;
const COSE_MAC0_TAG = 17;
const COSE_SIGN1_TAG = 18;
const ALG_HMAC_256_256 = 5;
const ALG_ES256 = -7;
const MAX_CLAIMS = 64;

const CTX_TOKEN_MAC = "leaktrace 2026-11-21 token mac v1";
const CTX_TARDOS_BIAS = "leaktrace 2026-11-21 tardos bias v1";
const CTX_SESSION_CODEWORD = "leaktrace 2026-11-21 session codeword v1";

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** A refusal: every one is answered 403 by the Worker; `reason` is only for logs and tests. */
export class Deny extends Error {
  constructor(reason) {
    super(reason);
    this.name = "Deny";
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------------

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error("not a hex string");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_INDEX = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[B64URL.charCodeAt(i)] = i;
  return t;
})();

/**
 * Decodes unpadded base64url, refusing anything but its one canonical spelling (no padding, no
 * other characters, no stray bits in the last character), as the edge does.
 */
export function base64urlDecode(s) {
  if (s.length % 4 === 1) throw new Deny("token is not unpadded base64url");
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64URL_INDEX[c] : -1;
    if (v < 0) throw new Deny("token is not unpadded base64url");
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) {
    throw new Deny("token is not canonically encoded: base64url with stray bits");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// BLAKE3 for inputs of one chunk (at most 1024 bytes), with XOF output at any block
//
// Everything the selection hashes is short (keys, contexts, titles, positions, session ids of at
// most 128 bytes), so one chunk is the whole tree and its last block is the root node. BLAKE3's
// output blocks are independent: block i of the XOF stream is the root compression with output
// counter i, which gives the seek to byte 2p that the codeword needs for any u32 position.
// ---------------------------------------------------------------------------------------------

const IV = Uint32Array.of(
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
);
const CHUNK_START = 1;
const CHUNK_END = 2;
const ROOT = 8;
const KEYED_HASH = 16;
const DERIVE_KEY_CONTEXT = 32;
const DERIVE_KEY_MATERIAL = 64;
const CHUNK_LEN = 1024;
// The message word schedule of the 7 rounds: round r reads m[SCHEDULE[16r + i]].
const SCHEDULE = (() => {
  const perm = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const out = [];
  let s = [...Array(16).keys()];
  for (let r = 0; r < 7; r++) {
    out.push(...s);
    s = perm.map((i) => s[i]);
  }
  return Uint8Array.from(out);
})();

const st = new Uint32Array(16);

function g(a, b, c, d, x, y) {
  st[a] = st[a] + st[b] + x;
  st[d] = ((st[d] ^ st[a]) >>> 16) | ((st[d] ^ st[a]) << 16);
  st[c] = st[c] + st[d];
  st[b] = ((st[b] ^ st[c]) >>> 12) | ((st[b] ^ st[c]) << 20);
  st[a] = st[a] + st[b] + y;
  st[d] = ((st[d] ^ st[a]) >>> 8) | ((st[d] ^ st[a]) << 24);
  st[c] = st[c] + st[d];
  st[b] = ((st[b] ^ st[c]) >>> 7) | ((st[b] ^ st[c]) << 25);
}

/** The BLAKE3 compression function; writes the 16 output words to `out`. */
function compress(cv, m, counter, blockLen, flags, out) {
  st.set(cv, 0);
  st[8] = IV[0];
  st[9] = IV[1];
  st[10] = IV[2];
  st[11] = IV[3];
  st[12] = counter >>> 0;
  st[13] = Math.floor(counter / 0x100000000) >>> 0;
  st[14] = blockLen;
  st[15] = flags;
  for (let r = 0; r < 7; r++) {
    const s = r * 16;
    g(0, 4, 8, 12, m[SCHEDULE[s]], m[SCHEDULE[s + 1]]);
    g(1, 5, 9, 13, m[SCHEDULE[s + 2]], m[SCHEDULE[s + 3]]);
    g(2, 6, 10, 14, m[SCHEDULE[s + 4]], m[SCHEDULE[s + 5]]);
    g(3, 7, 11, 15, m[SCHEDULE[s + 6]], m[SCHEDULE[s + 7]]);
    g(0, 5, 10, 15, m[SCHEDULE[s + 8]], m[SCHEDULE[s + 9]]);
    g(1, 6, 11, 12, m[SCHEDULE[s + 10]], m[SCHEDULE[s + 11]]);
    g(2, 7, 8, 13, m[SCHEDULE[s + 12]], m[SCHEDULE[s + 13]]);
    g(3, 4, 9, 14, m[SCHEDULE[s + 14]], m[SCHEDULE[s + 15]]);
  }
  for (let i = 0; i < 8; i++) {
    out[i] = st[i] ^ st[i + 8];
    out[i + 8] = st[i + 8] ^ cv[i];
  }
}

function blockWords(bytes, offset, len) {
  const m = new Uint32Array(16);
  for (let i = 0; i < len; i++) m[i >> 2] |= bytes[offset + i] << (8 * (i & 3));
  return m;
}

function keyWords(key) {
  if (key.length !== 32) throw new Error("BLAKE3 keys are 32 bytes");
  return blockWords(key, 0, 32).subarray(0, 8);
}

/**
 * The root node of a one-chunk BLAKE3 input: what every output block is computed from. `key` is
 * 8 words (the IV, a key, or a derived context key), `mode` the mode flag.
 */
export class Blake3Root {
  constructor(keyW, mode, input) {
    if (input.length > CHUNK_LEN) throw new Error("one-chunk BLAKE3 takes at most 1024 bytes");
    const blocks = Math.max(1, Math.ceil(input.length / 64));
    let cv = Uint32Array.from(keyW);
    const out = new Uint32Array(16);
    for (let i = 0; i < blocks - 1; i++) {
      compress(cv, blockWords(input, i * 64, 64), 0, 64, mode | (i === 0 ? CHUNK_START : 0), out);
      cv = out.slice(0, 8);
    }
    const lastLen = input.length - (blocks - 1) * 64;
    this.cv = cv;
    this.m = blockWords(input, (blocks - 1) * 64, lastLen);
    this.blockLen = lastLen;
    this.flags = mode | (blocks === 1 ? CHUNK_START : 0) | CHUNK_END | ROOT;
    this.out = new Uint32Array(16);
  }

  /** Output block `i` (64 bytes of the XOF stream from byte 64i) as 16 little-endian words. */
  block(i) {
    compress(this.cv, this.m, i, this.blockLen, this.flags, this.out);
    return this.out;
  }

  /** The first 32 bytes of output. */
  digest() {
    const w = this.block(0);
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = (w[i >> 2] >>> (8 * (i & 3))) & 0xff;
    return out;
  }
}

/** BLAKE3-keyed_hash(key, input), 32 bytes. */
export function blake3Keyed(key, input) {
  return new Blake3Root(keyWords(key), KEYED_HASH, input).digest();
}

/** BLAKE3 (unkeyed) of a short input, 32 bytes. */
export function blake3Short(input) {
  return new Blake3Root(IV, 0, input).digest();
}

/** BLAKE3-derive_key(context, material), 32 bytes. */
export function blake3DeriveKey(context, material) {
  const ctxKey = new Blake3Root(IV, DERIVE_KEY_CONTEXT, utf8.encode(context)).digest();
  return new Blake3Root(keyWords(ctxKey), DERIVE_KEY_MATERIAL, material).digest();
}

// ---------------------------------------------------------------------------------------------
// Key derivation and the codeword
// ---------------------------------------------------------------------------------------------

/** derive(ctx) = BLAKE3-derive_key(ctx, master(32) ‖ version as u32 LE). */
export function derive(context, master, version) {
  const material = new Uint8Array(36);
  material.set(master, 0);
  new DataView(material.buffer).setUint32(32, version, true);
  return blake3DeriveKey(context, material);
}

/** for_title(k, title) = BLAKE3-keyed_hash(k, "title\0" ‖ title). */
export function forTitle(key, title) {
  return blake3Keyed(key, concat(utf8.encode("title\0"), utf8.encode(title)));
}

/** The HMAC key of tokens MAC'd under a master key version. */
export function tokenMacKey(master, version) {
  return derive(CTX_TOKEN_MAC, master, version);
}

/** The codebook of a title marked with a master key version: its bias and codeword keys. */
export class Codebook {
  constructor(master, version, title, cutoff = TARDOS_CUTOFF) {
    this.biasKey = forTitle(derive(CTX_TARDOS_BIAS, master, version), title);
    this.codewordKey = forTitle(derive(CTX_SESSION_CODEWORD, master, version), title);
    this.biasKeyW = keyWords(this.biasKey);
    this.codewordKeyW = keyWords(this.codewordKey);
    this.angleLo = Math.asin(Math.sqrt(cutoff));
    this.angleSpan = Math.PI / 2 - 2 * this.angleLo;
    this.posBytes = new Uint8Array(8);
  }

  /** T_p: the 16-bit bias threshold at `position` (q_p = T_p / 65536). */
  threshold(position) {
    const b = this.posBytes;
    new DataView(b.buffer).setUint32(0, position >>> 0, true);
    const w = new Blake3Root(this.biasKeyW, KEYED_HASH, b).block(0);
    // unit = (u64 LE of the first 8 bytes >> 11) / 2^53, exact in a double.
    const unit = (w[1] * 2 ** 21 + (w[0] >>> 11)) / 2 ** 53;
    const s = Math.sin(this.angleLo + unit * this.angleSpan);
    const t = Math.round(s * s * 65536);
    return Number.isNaN(t) ? 1 : Math.min(65535, Math.max(1, t));
  }

  /** q_p as a number. */
  bias(position) {
    return this.threshold(position) / 65536;
  }

  /** The root node of a session's XOF stream (cache it per session to save the input blocks). */
  sessionStream(sessionId) {
    return new Blake3Root(this.codewordKeyW, KEYED_HASH, utf8.encode(sessionId));
  }

  /** X_p: the u16 LE at bytes [2p, 2p+2) of the session's XOF stream. */
  word(stream, position) {
    const byte = 2 * (position >>> 0);
    const w = stream.block(Math.floor(byte / 64));
    const inBlock = byte % 64;
    return (w[inBlock >> 2] >>> (8 * (inBlock & 3))) & 0xffff;
  }

  /** The variant ("a" or "b") of `sessionId` at `position`. */
  variant(sessionId, position) {
    const x = this.word(this.sessionStream(sessionId), position);
    return x < this.threshold(position) ? "b" : "a";
  }
}

/** Direct mode: the wmpattern bit at `position` (wraps modulo wmpatlen, MSB of byte 0 first). */
export function patternVariant(pattern, patlen, position) {
  if (!patlen) return "a";
  const idx = (position >>> 0) % patlen;
  const byte = pattern[idx >> 3];
  if (byte === undefined) return "a";
  return (byte >> (7 - (idx & 7))) & 1 ? "b" : "a";
}

/**
 * The variant served for a verified token at `position` (null = -1, not watermarked: "a").
 * `codebook` is the title's (needed in indirect mode only).
 */
export function selectVariant(codebook, claims, position) {
  if (position === null || position === undefined) return "a";
  if (claims.mode === "direct") return patternVariant(claims.wmpattern, claims.wmpatlen, position);
  return codebook.variant(claims.wmid, position);
}

// ---------------------------------------------------------------------------------------------
// Deterministic CBOR (RFC 8949 §4.2.1), strict: the one spelling the issuer writes
// ---------------------------------------------------------------------------------------------

const MAX_DEPTH = 16;

/** A decoded CBOR map: entries in encoded order, with their encoded keys. */
class CborMap {
  constructor(entries) {
    this.entries = entries;
  }

  get(intKey) {
    for (const [k, v] of this.entries) if (k === intKey) return v;
    return undefined;
  }
}

class CborTag {
  constructor(tag, value) {
    this.tag = tag;
    this.value = value;
  }
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * Decodes one deterministic CBOR item filling all of `bytes`. Integers beyond 2^53 - 1 come back
 * as BigInt, negative integers as numbers (or BigInt), byte strings as Uint8Array, maps as
 * CborMap, tags as CborTag. Refused: indefinite lengths, non-shortest heads, unsorted or
 * duplicate map keys, floats and reserved simple values, invalid UTF-8, trailing bytes.
 */
export function cborDecode(bytes) {
  let pos = 0;
  const need = (n) => {
    if (bytes.length - pos < n) throw new Deny("malformed token: truncated CBOR");
  };
  const head = () => {
    need(1);
    const ib = bytes[pos++];
    const major = ib >> 5;
    const ai = ib & 31;
    let arg;
    if (ai < 24) arg = ai;
    else if (ai === 24) {
      need(1);
      arg = bytes[pos++];
      if (arg < 24) throw new Deny("token is not canonically encoded: long integer form");
    } else if (ai === 25) {
      need(2);
      arg = (bytes[pos] << 8) | bytes[pos + 1];
      pos += 2;
      if (arg < 0x100) throw new Deny("token is not canonically encoded: long integer form");
    } else if (ai === 26) {
      need(4);
      arg = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
      pos += 4;
      if (arg < 0x10000) throw new Deny("token is not canonically encoded: long integer form");
    } else if (ai === 27) {
      need(8);
      let v = 0n;
      for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(bytes[pos + i]);
      pos += 8;
      if (v < 0x100000000n) throw new Deny("token is not canonically encoded: long integer form");
      arg = v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    } else {
      // 28-30 reserved, 31 indefinite length (or break).
      throw new Deny("token is not canonically encoded: indefinite or reserved length");
    }
    return [major, ai, arg];
  };
  const length = (arg) => {
    if (typeof arg !== "number" || arg > bytes.length - pos) {
      throw new Deny("malformed token: truncated CBOR");
    }
    return arg;
  };
  const item = (depth) => {
    if (depth > MAX_DEPTH) throw new Deny("malformed token: CBOR nested too deep");
    const [major, ai, arg] = head();
    switch (major) {
      case 0:
        return arg;
      case 1:
        return typeof arg === "number" && arg < Number.MAX_SAFE_INTEGER ? -1 - arg : -1n - BigInt(arg);
      case 2: {
        const n = length(arg);
        const v = bytes.subarray(pos, pos + n);
        pos += n;
        return v;
      }
      case 3: {
        const n = length(arg);
        let s;
        try {
          s = utf8Strict.decode(bytes.subarray(pos, pos + n));
        } catch {
          throw new Deny("malformed token: invalid UTF-8");
        }
        pos += n;
        return s;
      }
      case 4: {
        const n = length(arg);
        const out = [];
        for (let i = 0; i < n; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        const n = length(arg);
        const entries = [];
        let prev = null;
        for (let i = 0; i < n; i++) {
          const start = pos;
          const k = item(depth + 1);
          const keyBytes = bytes.subarray(start, pos);
          if (prev !== null && compareBytes(prev, keyBytes) >= 0) {
            throw new Deny("token is not canonically encoded: map keys unsorted or repeated");
          }
          prev = keyBytes;
          entries.push([k, item(depth + 1)]);
        }
        return new CborMap(entries);
      }
      case 6:
        return new CborTag(arg, item(depth + 1));
      default:
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        if (ai === 23) return undefined;
        throw new Deny("malformed token: unsupported CBOR simple value or float");
    }
  };
  const value = item(0);
  if (pos !== bytes.length) throw new Deny("malformed token: trailing bytes after CBOR item");
  return value;
}

function cborHead(major, n) {
  if (n < 24) return Uint8Array.of((major << 5) | n);
  if (n < 0x100) return Uint8Array.of((major << 5) | 24, n);
  if (n < 0x10000) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
  return Uint8Array.of((major << 5) | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function cborBytes(b) {
  return concat(cborHead(2, b.length), b);
}

// ---------------------------------------------------------------------------------------------
// WM tokens (ETSI TS 104 002 clause 5.4)
// ---------------------------------------------------------------------------------------------

const CLAIM = {
  ISS: 1, EXP: 4, NBF: 5, IAT: 6, CTI: 7,
  WMVER: 300, WMVND: 301, WMPATLEN: 302, WMSEGDURATION: 303,
  WMPATTERN: 304, WMID: 305, WMOPID: 306, WMKEYVER: 307,
};

const isUint = (v) => (typeof v === "number" && v >= 0) || (typeof v === "bigint" && v >= 0n);

function uintClaim(v, name) {
  if (!isUint(v)) throw new Deny(`invalid claim: ${name}`);
  return v;
}

/** A big u64 as a number for time comparisons (precision beyond 2^53 does not matter there). */
const num = (v) => (typeof v === "bigint" ? Number(v) : v);

/** Whether `s` is a valid session id: 1 to 128 bytes of [A-Za-z0-9._~-]. */
export function isSessionId(s) {
  return typeof s === "string" && s.length >= 1 && s.length <= 128 && /^[A-Za-z0-9._~-]+$/.test(s);
}

/** Claims of a verified token, checked as the edge does (`build_token` in crates/core). */
function claimsFrom(payload, now) {
  const map = cborDecode(payload);
  if (!(map instanceof CborMap)) throw new Deny("malformed token: claims set must be a CBOR map");
  if (map.entries.length > MAX_CLAIMS) throw new Deny("malformed token: too many claims");
  const c = {};
  for (const [k, v] of map.entries) {
    if (typeof k !== "number" || k < 0) continue;
    switch (k) {
      case CLAIM.ISS:
        if (typeof v !== "string") throw new Deny("invalid claim: iss");
        c.iss = v;
        break;
      case CLAIM.EXP: c.exp = uintClaim(v, "exp"); break;
      case CLAIM.NBF: c.nbf = uintClaim(v, "nbf"); break;
      case CLAIM.IAT: c.iat = uintClaim(v, "iat"); break;
      case CLAIM.CTI:
        if (!(v instanceof Uint8Array)) throw new Deny("invalid claim: cti");
        c.cti = v;
        break;
      case CLAIM.WMVER: c.wmver = uintClaim(v, "wmver"); break;
      case CLAIM.WMVND: c.wmvnd = uintClaim(v, "wmvnd"); break;
      case CLAIM.WMPATLEN: c.wmpatlen = uintClaim(v, "wmpatlen"); break;
      case CLAIM.WMSEGDURATION: {
        if (!Array.isArray(v) || v.length !== 2) throw new Deny("invalid claim: wmsegduration");
        const [ticks, timescale] = v.map((x) => uintClaim(x, "wmsegduration"));
        if (!ticks || !timescale) throw new Deny("invalid claim: wmsegduration");
        c.wmsegduration = [ticks, timescale];
        break;
      }
      case CLAIM.WMPATTERN:
        if (!(v instanceof Uint8Array)) throw new Deny("invalid claim: wmpattern");
        c.wmpattern = v;
        break;
      case CLAIM.WMID:
        if (typeof v !== "string") throw new Deny("invalid claim: wmid");
        c.wmid = v;
        break;
      case CLAIM.WMOPID: c.wmopid = uintClaim(v, "wmopid"); break;
      case CLAIM.WMKEYVER: c.wmkeyver = uintClaim(v, "wmkeyver"); break;
      default:
        break;
    }
  }
  if (c.exp === undefined) throw new Deny("missing claim: exp");
  if (c.iat === undefined) throw new Deny("missing claim: iat");
  if (c.wmver === undefined) throw new Deny("missing claim: wmver");
  if (c.wmver !== 1) throw new Deny(`unsupported wmver ${c.wmver}, only 1 is defined`);
  if (c.wmvnd === undefined) throw new Deny("missing claim: wmvnd");
  if (c.wmpatlen === undefined) throw new Deny("missing claim: wmpatlen");
  if (typeof c.wmpatlen !== "number" || c.wmpatlen < 1 || c.wmpatlen > 65535) {
    throw new Deny("invalid claim: wmpatlen must be in 1..=65535");
  }
  if (c.wmpattern !== undefined && c.wmid !== undefined) {
    throw new Deny("invalid claim: wmpattern and wmid are mutually exclusive");
  }
  if (c.wmpattern === undefined && c.wmid === undefined) {
    throw new Deny("missing claim: wmid or wmpattern");
  }
  if (c.wmpattern !== undefined) {
    if (c.wmpattern.length !== Math.ceil(c.wmpatlen / 8)) {
      throw new Deny("invalid claim: wmpattern must be ceil(wmpatlen / 8) bytes");
    }
    c.mode = "direct";
  } else {
    if (!isSessionId(c.wmid)) throw new Deny("invalid claim: wmid");
    if (c.wmopid === undefined) throw new Deny("missing claim: wmopid");
    c.mode = "indirect";
  }
  if (num(c.exp) + LEEWAY_SECS <= now) throw new Deny(`token expired at ${c.exp} (now ${now})`);
  if (num(c.iat) > now + LEEWAY_SECS) throw new Deny(`token not valid before ${c.iat} (now ${now})`);
  if (c.nbf !== undefined && num(c.nbf) > now + LEEWAY_SECS) {
    throw new Deny(`token not valid before ${c.nbf} (now ${now})`);
  }
  return c;
}

/** The session a token names: wmid (indirect), or cti as a session id (direct); else null. */
export function sessionOf(claims) {
  if (claims.mode === "indirect") return claims.wmid;
  if (!claims.cti) return null;
  let s;
  try {
    s = utf8Strict.decode(claims.cti);
  } catch {
    return null;
  }
  return isSessionId(s) ? s : null;
}

// P-256 group order, for the low-S rule (an ES256 token has one spelling).
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

function bigFromBytes(b) {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/**
 * Token verifiers: HMAC-SHA256 keys by key version (newest first) and ES256 public keys, as
 * WebCrypto keys. Build once per isolate with `Verifiers.create`.
 */
export class Verifiers {
  constructor(hmac, es256) {
    this.hmac = hmac; // [{version, key: CryptoKey}]
    this.es256 = es256; // [CryptoKey]
  }

  /**
   * `masters`: [{version, key: Uint8Array(32)}]; `es256Keys`: SEC1 uncompressed points (65
   * bytes) of P-256 public keys.
   */
  static async create(masters, es256Keys = [], subtle = crypto.subtle) {
    const sorted = [...masters].sort((a, b) => b.version - a.version);
    const hmac = [];
    for (const m of sorted) {
      const raw = tokenMacKey(m.key, m.version);
      const key = await subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
      hmac.push({ version: m.version, key });
    }
    const es256 = [];
    for (const point of es256Keys) {
      es256.push(await subtle.importKey("raw", point, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]));
    }
    return new Verifiers(hmac, es256);
  }
}

/**
 * Decodes and verifies a WM token at time `now` (unix seconds). Returns the claims with
 * `verifiedBy` (the HMAC key version, or null for ES256); throws Deny.
 */
export async function verifyToken(token, verifiers, now, subtle = crypto.subtle) {
  if (typeof token !== "string" || token.length === 0) throw new Deny("no token");
  if (token.length > MAX_TOKEN_LEN) {
    throw new Deny(`token is ${token.length} characters long, the limit is ${MAX_TOKEN_LEN}`);
  }
  const raw = base64urlDecode(token);
  const outer = cborDecode(raw);
  if (!(outer instanceof CborTag)) throw new Deny("token is not canonically encoded: the CWT tag 61 is missing");
  if (outer.tag !== CWT_TAG) throw new Deny(`unexpected CBOR tag ${outer.tag}`);
  const cose = outer.value;
  if (!(cose instanceof CborTag)) throw new Deny("token is not canonically encoded: the COSE tag is missing");
  let alg;
  let context;
  if (cose.tag === COSE_MAC0_TAG) {
    alg = ALG_HMAC_256_256;
    context = "MAC0";
  } else if (cose.tag === COSE_SIGN1_TAG) {
    alg = ALG_ES256;
    context = "Signature1";
  } else {
    throw new Deny(`unexpected CBOR tag ${cose.tag}`);
  }
  const items = cose.value;
  if (!Array.isArray(items) || items.length !== 4) {
    throw new Deny("malformed token: COSE object must be a 4-element array");
  }
  const [protectedBytes, unprotected, payload, tag] = items;
  if (!(protectedBytes instanceof Uint8Array)) throw new Deny("malformed token: invalid COSE header");
  if (!(unprotected instanceof CborMap)) throw new Deny("malformed token: invalid COSE header");
  if (unprotected.entries.length !== 0) {
    throw new Deny("token is not canonically encoded: the unprotected header must be empty");
  }
  if (!(payload instanceof Uint8Array)) throw new Deny("malformed token: detached payload");
  if (!(tag instanceof Uint8Array)) throw new Deny("malformed token: invalid MAC or signature");
  const header = protectedBytes.length === 0 ? new CborMap([]) : cborDecode(protectedBytes);
  if (!(header instanceof CborMap)) throw new Deny("malformed token: invalid COSE header");
  if (header.get(2) !== undefined) throw new Deny("token has critical header parameters, none are supported");
  const found = header.get(1);
  if (found !== alg) throw new Deny(`algorithm mismatch: expected COSE alg ${alg}, token has ${found}`);
  // MAC_structure / Sig_structure: [context, protected, external_aad = h'', payload].
  const toBeSigned = concat(
    Uint8Array.of(0x84),
    cborHead(3, context.length),
    utf8.encode(context),
    cborBytes(protectedBytes),
    Uint8Array.of(0x40),
    cborBytes(payload),
  );
  let verifiedBy;
  if (alg === ALG_HMAC_256_256) {
    for (const { version, key } of verifiers.hmac) {
      if (await subtle.verify("HMAC", key, tag, toBeSigned)) {
        verifiedBy = version;
        break;
      }
    }
  } else if (tag.length === 64) {
    const s = bigFromBytes(tag.subarray(32));
    if (s <= P256_HALF_N) {
      for (const key of verifiers.es256) {
        if (await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, tag, toBeSigned)) {
          verifiedBy = null;
          break;
        }
      }
    }
  }
  if (verifiedBy === undefined) throw new Deny("MAC or signature does not verify");
  const claims = claimsFrom(payload, now);
  claims.verifiedBy = verifiedBy;
  return claims;
}

/**
 * The edge's checks after the signature (crates/edge/src/auth.rs), given the session's facts
 * (`{title, key_version, title_key_version}` or null when unknown) and whether it is revoked.
 * Returns the session id and the key version of the title's codebook; throws Deny.
 */
export function authorize(claims, { wmopid, keyVersions, title, facts, revoked }) {
  const held = (v) =>
    typeof v === "number" && keyVersions.includes(v) && (claims.verifiedBy === null || claims.verifiedBy === v);
  if (claims.mode === "indirect") {
    if (claims.wmopid !== wmopid) throw new Deny(`wmopid ${claims.wmopid} is not this edge's`);
    if (claims.wmkeyver !== undefined && !held(claims.wmkeyver)) {
      throw new Deny(`key version ${claims.wmkeyver} not held`);
    }
  }
  const session = sessionOf(claims);
  if (session === null) throw new Deny("the token names no session");
  if (revoked) throw new Deny("session revoked");
  if (!facts) throw new Deny("unknown session");
  if (facts.title !== title) throw new Deny("the session belongs to another title");
  if (!held(facts.key_version)) throw new Deny(`key version ${facts.key_version} not held`);
  const titleVersion = facts.title_key_version;
  if (typeof titleVersion !== "number") throw new Deny("the session's title has no key version");
  if (!keyVersions.includes(titleVersion)) throw new Deny(`key version ${titleVersion} not held`);
  return { session, titleKeyVersion: titleVersion };
}

/**
 * Parses a session record of the SESSIONS namespace: JSON `{"title": "...", "key_version": 1,
 * "title_key_version": 1}` (`title_key_version` defaults to `key_version`). null if unusable.
 */
export function parseSessionRecord(text) {
  if (typeof text !== "string") return null;
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v.title !== "string" || !Number.isInteger(v.key_version)) return null;
  const tkv = v.title_key_version === undefined ? v.key_version : v.title_key_version;
  if (!Number.isInteger(tkv)) return null;
  return { title: v.title, key_version: v.key_version, title_key_version: tkv };
}

// ---------------------------------------------------------------------------------------------
// Positions: WMPaceInfo sidecars and segment file names
// ---------------------------------------------------------------------------------------------

/**
 * The position a `seg_NNNNN.m4s` name, or a low-latency part's `seg_NNNNN.pJ.m4s`, carries
 * (5 to 10 digits, a u32), else null (leaktrace_core::segment_file_position).
 */
export function segmentFilePosition(name) {
  const m = /^seg_([0-9]{5,10})(?:\.p(?:0|[1-9][0-9]{0,4}))?\.m4s$/.exec(name);
  if (!m) return null;
  const p = Number(m[1]);
  return p <= 0xffffffff ? p : null;
}

/** The whole position from the sidecar's wire value and the file name (Position::from_wire_and_name). */
export function positionFromWireAndName(wire, name) {
  const p = segmentFilePosition(name);
  return p !== null && p % WIRE_POSITIONS === wire ? p : wire;
}

/**
 * The wire position (0..32767, or null for -1) a discrete WMPaceInfo sidecar gives its file: the
 * one entry's, or of several the one without segmentRegex. Throws Error for sidecars the edge
 * refuses too (byterange sidecars, malformed CBOR, out-of-range positions).
 */
export function sidecarPosition(bytes) {
  // Sidecars are not authenticated tokens: decode leniently (any key order), as the edge does.
  const v = cborDecodeLenient(bytes);
  if (!(v instanceof Map)) throw new Error("sidecar is not a map");
  if (v.get(1) !== 1) throw new Error("sidecar version is not 1");
  if (v.has(3)) throw new Error("byterange sidecars are not supported");
  const segs = v.get(2);
  if (!Array.isArray(segs) || segs.length === 0) throw new Error("sidecar has no segments");
  const positions = [];
  for (const s of segs) {
    if (!(s instanceof Map)) throw new Error("sidecar segment is not a map");
    if (s.has(4)) throw new Error("startRange in a discrete sidecar");
    const p = s.get(6);
    if (p !== -1 && !(Number.isInteger(p) && p >= 0 && p <= 32767)) throw new Error("position out of range");
    positions.push({ regex: s.has(5), position: p === -1 ? null : p });
  }
  if (positions.length === 1) return positions[0].position;
  const plain = positions.find((s) => !s.regex);
  if (!plain) throw new Error("every sidecar entry has a segmentRegex");
  return plain.position;
}

/** A small lenient CBOR reader for sidecars: maps become Map, definite lengths only. */
function cborDecodeLenient(bytes) {
  let pos = 0;
  const need = (n) => {
    if (bytes.length - pos < n) throw new Error("truncated CBOR");
  };
  const item = (depth) => {
    if (depth > MAX_DEPTH) throw new Error("CBOR nested too deep");
    need(1);
    const ib = bytes[pos++];
    const major = ib >> 5;
    const ai = ib & 31;
    let arg;
    if (ai < 24) arg = ai;
    else if (ai === 24) { need(1); arg = bytes[pos]; pos += 1; }
    else if (ai === 25) { need(2); arg = (bytes[pos] << 8) | bytes[pos + 1]; pos += 2; }
    else if (ai === 26) {
      need(4);
      arg = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
      pos += 4;
    } else if (ai === 27) {
      need(8);
      arg = 0;
      for (let i = 0; i < 8; i++) arg = arg * 256 + bytes[pos + i];
      pos += 8;
    } else throw new Error("indefinite or reserved CBOR length");
    const len = () => {
      if (arg > bytes.length - pos) throw new Error("truncated CBOR");
      return arg;
    };
    switch (major) {
      case 0: return arg;
      case 1: return -1 - arg;
      case 2: { const n = len(); const b = bytes.subarray(pos, pos + n); pos += n; return b; }
      case 3: { const n = len(); const s = utf8Strict.decode(bytes.subarray(pos, pos + n)); pos += n; return s; }
      case 4: {
        const n = len();
        const out = [];
        for (let i = 0; i < n; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        const n = len();
        const m = new Map();
        for (let i = 0; i < n; i++) {
          const k = item(depth + 1);
          if (m.has(k)) throw new Error("duplicate CBOR map key");
          m.set(k, item(depth + 1));
        }
        return m;
      }
      case 6: return item(depth + 1);
      default:
        if (ai === 20) return false;
        if (ai === 21) return true;
        throw new Error("unsupported CBOR simple value");
    }
  };
  const v = item(0);
  if (pos !== bytes.length) throw new Error("trailing bytes after the sidecar");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Request paths (crates/edge/src/path.rs)
// ---------------------------------------------------------------------------------------------

const CONTENT_TYPES = {
  m3u8: "application/vnd.apple.mpegurl",
  mpd: "application/dash+xml",
  m4s: "video/iso.segment",
  mp4: "video/mp4",
  m4v: "video/mp4",
  cmfv: "video/mp4",
  m4a: "audio/mp4",
  cmfa: "audio/mp4",
  vtt: "text/vtt",
  ts: "video/mp2t",
  aac: "audio/aac",
};

/** The media type of a served file, or undefined when the extension is not served. */
export function contentType(file) {
  const dot = file.lastIndexOf(".");
  return dot < 0 ? undefined : CONTENT_TYPES[file.slice(dot + 1)];
}

export const isManifest = (file) => file.endsWith(".m3u8") || file.endsWith(".mpd");

/** Whether files with this name are ISOBMFF (they get the egress rewrite). */
export function isIsobmff(file) {
  return /\.(m4s|mp4|m4v|m4a|cmfv|cmfa)$/.test(file);
}

const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/**
 * Parses a request path (without the query) into `{token, title, rendition, file}` (`token`
 * undefined without the `/wmt/<token>` prefix, `rendition` undefined for a root manifest), or
 * `{status: 400 | 404}`.
 */
export function parsePath(path) {
  if (path.length > MAX_PATH_LEN || !path.startsWith("/")) return { status: 400 };
  let segs = path.slice(1).split("/");
  for (const s of segs) if (!SEGMENT.test(s) || s.startsWith(".")) return { status: 400 };
  let token;
  if (segs[0] === "wmt") {
    if (segs.length === 1) return { status: 404 };
    token = segs[1];
    segs = segs.slice(2);
  }
  let out;
  if (segs.length === 2 && isManifest(segs[1])) {
    out = { token, title: segs[0], file: segs[1] };
  } else if (segs.length === 3) {
    if (RESERVED_DIRS.includes(segs[1].toLowerCase()) || contentType(segs[2]) === undefined) {
      return { status: 404 };
    }
    out = { token, title: segs[0], rendition: segs[1], file: segs[2] };
  } else {
    return { status: 404 };
  }
  if (out.title.length > 128) return { status: 400 };
  return out;
}

/** The `wmt` parameter of a query string, if present and made of URL-safe characters. */
export function queryToken(search) {
  const q = search.startsWith("?") ? search.slice(1) : search;
  for (const kv of q.split("&")) {
    if (kv.startsWith("wmt=")) {
      const t = kv.slice(4);
      return t.length > 0 && t.length <= MAX_TOKEN_LEN && SEGMENT.test(t) ? t : undefined;
    }
  }
  return undefined;
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(value) {
  if (!value) return undefined;
  const sp = value.indexOf(" ");
  if (sp < 0 || value.slice(0, sp).toLowerCase() !== "bearer") return undefined;
  const t = value.slice(sp + 1).trim();
  return t || undefined;
}

// ---------------------------------------------------------------------------------------------
// Egress: in-band WMPaceInfo neutralised (crates/edge/src/egress.rs)
// ---------------------------------------------------------------------------------------------

const MAX_BOXES = 100000;

/**
 * Every top-level `wmpi` box of an ISOBMFF file becomes a `free` box of the same size filled
 * with 0xFF, in place. Stops quietly at the first malformed box header. Returns how many.
 */
export function neutralizeWmpi(bytes) {
  const len = bytes.length;
  let offset = 0;
  let count = 0;
  for (let n = 0; n < MAX_BOXES; n++) {
    if (len - offset < 8) break;
    const size32 =
      ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
    let size;
    let header = 8;
    if (size32 === 0) size = len - offset;
    else if (size32 === 1) {
      if (len - offset < 16) break;
      size = 0;
      for (let i = 8; i < 16; i++) size = size * 256 + bytes[offset + i];
      header = 16;
    } else size = size32;
    if (size < header || size > len - offset) break;
    if (bytes[offset + 4] === 0x77 && bytes[offset + 5] === 0x6d && bytes[offset + 6] === 0x70 && bytes[offset + 7] === 0x69) {
      bytes[offset + 4] = 0x66; // f
      bytes[offset + 5] = 0x72; // r
      bytes[offset + 6] = 0x65; // e
      bytes[offset + 7] = 0x65; // e
      bytes.fill(0xff, offset + header, offset + size);
      count++;
    }
    offset += size;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Ranges (crates/edge/src/range.rs)
// ---------------------------------------------------------------------------------------------

/**
 * One `Range` header against a body of `len` bytes: `{full: true}`, `{start, end}` (inclusive)
 * or `{unsatisfiable: true}`. Several ranges, other units and malformed values: the whole body.
 */
export function parseRange(header, len) {
  if (header === null || header === undefined) return { full: true };
  const value = header.trim();
  if (!value.startsWith("bytes=")) return { full: true };
  const spec = value.slice(6).trim();
  if (spec.includes(",")) return { full: true };
  const dash = spec.indexOf("-");
  if (dash < 0) return { full: true };
  const first = spec.slice(0, dash).trim();
  const last = spec.slice(dash + 1).trim();
  const digits = (s) => s.length > 0 && s.length <= 19 && /^[0-9]+$/.test(s);
  if (first === "") {
    if (!digits(last)) return { full: true };
    const n = Number(last);
    if (n === 0 || len === 0) return { unsatisfiable: true };
    return { start: Math.max(0, len - n), end: len - 1 };
  }
  if (!digits(first)) return { full: true };
  const start = Number(first);
  let end;
  if (last !== "") {
    if (!digits(last)) return { full: true };
    end = Number(last);
    if (end < start) return { full: true };
  }
  if (start >= len) return { unsatisfiable: true };
  return { start, end: end === undefined ? len - 1 : Math.min(end, len - 1) };
}
