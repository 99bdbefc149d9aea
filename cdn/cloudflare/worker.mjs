// leaktrace edge sequencer as a Cloudflare Worker: each viewing session gets its own A/B sequence
// from a leaktrace package kept on an origin, as crates/edge does (see cdn/README.md).
//
//   /wmt/<token>/<title>/master.m3u8 | manifest.mpd          manifests, as on the origin
//   /wmt/<token>/<title>/<rendition>/<file>                  playlists, init and media segments
//
// The same paths without `/wmt/<token>` take the token from `?wmt=` or `Authorization: Bearer`.
//
// Bindings (cdn/cloudflare/wrangler.toml):
//   LEAKTRACE_ORIGIN            base URL of the origin; title T's package is at <origin>/T/
//   LEAKTRACE_MASTER_KEYS       secret: "<version>:<64 hex>[,<version>:<64 hex>...]"
//   LEAKTRACE_ES256_KEYS        optional: comma-separated P-256 public keys, SEC1 uncompressed hex
//   LEAKTRACE_WMOPID            the operator id tokens must carry (default 1)
//   LEAKTRACE_CORS_ORIGIN       Access-Control-Allow-Origin (default "*", empty: no CORS headers)
//   LEAKTRACE_POSITION_FROM_NAME "1": seg_NNNNN.m4s carries its position, no sidecar fetch
//   LEAKTRACE_KV_CACHE_TTL      seconds KV reads may be cached at the Cloudflare location
//                               (default 60, the least KV allows; "0": no cacheTtl)
//   SESSIONS                    KV: session id -> {"title", "key_version", "title_key_version"}
//   REVOKED                     KV: session id -> anything (present = revoked)

import {
  blake3,
  Codebook,
  Deny,
  Verifiers,
  authorize,
  bearerToken,
  bytesToHex,
  contentType,
  hexToBytes,
  isIsobmff,
  isManifest,
  neutralizeWmpi,
  parsePath,
  parseRange,
  parseSessionRecord,
  positionFromWireAndName,
  queryToken,
  segmentFilePosition,
  selectVariant,
  sessionOf,
  sidecarPosition,
  verifyToken,
} from "./selector.mjs";

const CACHE_MEDIA = "private, max-age=86400";
const CACHE_MANIFEST = "private, max-age=300";
const CACHE_LIVE_MANIFEST = "private, max-age=1";
const CACHE_ERROR = "no-store";

const ERROR_TEXT = {
  400: "bad request\n",
  403: "forbidden\n",
  404: "not found\n",
  405: "method not allowed\n",
  413: "request body not accepted\n",
  416: "range not satisfiable\n",
  500: "internal error\n",
};

/** Bounds of the per-isolate caches (entries); a full cache is emptied and refilled. */
const MAX_TOKENS = 10000;
const MAX_BOOKS = 256;
/** Path prefix of the Cache API keys of egress bodies (not a path a viewer can be served). */
const EGRESS_KEY_PREFIX = "/__leaktrace_egress/";

/** Per-isolate state, rebuilt when the configuration changes. */
let isolate = null;

const configSource = (env) => [env.LEAKTRACE_MASTER_KEYS, env.LEAKTRACE_ES256_KEYS, env.LEAKTRACE_WMOPID].join("|");

class Config {
  constructor(env) {
    this.source = configSource(env);
    this.masters = parseMasterKeys(env.LEAKTRACE_MASTER_KEYS);
    this.es256 = (env.LEAKTRACE_ES256_KEYS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((h) => {
        const point = hexToBytes(h);
        if (point.length !== 65 || point[0] !== 4) throw new Error("ES256 keys must be SEC1 uncompressed (65 bytes)");
        return point;
      });
    this.keyVersions = this.masters.map((m) => m.version);
    const wmopid = env.LEAKTRACE_WMOPID === undefined || env.LEAKTRACE_WMOPID === "" ? 1 : Number(env.LEAKTRACE_WMOPID);
    if (!Number.isSafeInteger(wmopid) || wmopid < 0) throw new Error("LEAKTRACE_WMOPID must be an integer");
    this.wmopid = wmopid;
  }
}

/** "<version>:<hex>,..." -> [{version, key}] */
function parseMasterKeys(text) {
  const out = [];
  for (const part of (text ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const colon = part.indexOf(":");
    const version = Number(part.slice(0, colon));
    const key = hexToBytes(part.slice(colon + 1).trim());
    if (colon < 1 || !Number.isInteger(version) || version < 0 || version > 0xffffffff || key.length !== 32) {
      throw new Error("LEAKTRACE_MASTER_KEYS must be <version>:<64 hex digits>, comma-separated");
    }
    out.push({ version, key });
  }
  if (out.length === 0) throw new Error("LEAKTRACE_MASTER_KEYS holds no key");
  return out;
}

async function state(env) {
  if (isolate && isolate.config.source === configSource(env)) return isolate;
  const config = new Config(env);
  isolate = {
    config,
    verifiers: await Verifiers.create(config.masters, config.es256),
    tokens: new Map(),
    books: new Map(),
  };
  return isolate;
}

function codebook(st, title, version) {
  const id = `${title}\0${version}`;
  let book = st.books.get(id);
  if (!book) {
    const master = st.config.masters.find((m) => m.version === version);
    if (!master) return null;
    if (st.books.size >= MAX_BOOKS) st.books.clear();
    book = new Codebook(master.key, version, title);
    st.books.set(id, book);
  }
  return book;
}

/** A verified token's claims (cached per isolate: one token is one spelling). */
async function verified(st, token, now) {
  const hit = st.tokens.get(token);
  if (hit) {
    if (Number(hit.exp) + 60 <= now) throw new Deny(`token expired at ${hit.exp} (now ${now})`);
    return hit;
  }
  const claims = await verifyToken(token, st.verifiers, now);
  if (st.tokens.size >= MAX_TOKENS) st.tokens.clear();
  st.tokens.set(token, claims);
  return claims;
}

function corsOrigin(env) {
  const v = env.LEAKTRACE_CORS_ORIGIN;
  return v === undefined ? "*" : v || null;
}

function baseHeaders(h, cors) {
  h.set("X-Content-Type-Options", "nosniff");
  if (cors) {
    h.set("Access-Control-Allow-Origin", cors);
    h.set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges, ETag");
  }
}

/** A refusal or error: fixed body per status, no validators, nothing about the file. */
function plainError(status, cors) {
  const h = new Headers({
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": CACHE_ERROR,
    Vary: "Authorization",
  });
  if (status === 405) h.set("Allow", "GET, HEAD, OPTIONS");
  baseHeaders(h, cors);
  return new Response(ERROR_TEXT[status] ?? ERROR_TEXT[500], { status, headers: h });
}

function preflight(cors) {
  const h = new Headers({ Allow: "GET, HEAD, OPTIONS" });
  if (cors) {
    h.set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    h.set("Access-Control-Allow-Headers", "Authorization, Range, If-None-Match, If-Range");
    h.set("Access-Control-Max-Age", "86400");
  }
  baseHeaders(h, cors);
  return new Response(null, { status: 204, headers: h });
}

/** The request path exactly as sent (no dot-segment resolution), and its query. */
function rawTarget(url) {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const target = start < 0 ? "/" : url.slice(start);
  const q = target.indexOf("?");
  const hash = target.indexOf("#");
  const pathEnd = q >= 0 ? q : hash >= 0 ? hash : target.length;
  return { path: target.slice(0, pathEnd), query: q >= 0 ? target.slice(q + 1, hash > q ? hash : undefined) : "" };
}

/** A file of the origin: `{status, bytes}` (404 when absent), or throws on origin trouble. */
async function originGet(env, relPath, { ttl = 86400, head = false } = {}) {
  const base = String(env.LEAKTRACE_ORIGIN ?? "").replace(/\/+$/, "");
  if (!base) throw new Error("LEAKTRACE_ORIGIN is not set");
  // The origin URL of each variant file is its own cache key: the shared cache holds A and B
  // apart, and the per-session choice happens here, never in a cache.
  const resp = await fetch(`${base}/${relPath}`, {
    method: head ? "HEAD" : "GET",
    cf: { cacheEverything: true, cacheTtl: ttl },
  });
  if (resp.status === 404 || resp.status === 403 || resp.status === 410) {
    await resp.body?.cancel();
    return { status: 404 };
  }
  if (resp.status !== 200) {
    await resp.body?.cancel();
    throw new Error(`origin answered ${resp.status} for ${relPath}`);
  }
  if (head) return { status: 200 };
  return { status: 200, bytes: new Uint8Array(await resp.arrayBuffer()) };
}

/** Whether `bytes` are a live manifest (an HLS media playlist without ENDLIST, a dynamic MPD). */
function isLiveManifest(bytes) {
  const text = new TextDecoder().decode(bytes);
  if (text.startsWith("#EXTM3U")) return text.includes("#EXTINF") && !text.includes("#EXT-X-ENDLIST");
  return text.includes("<MPD") && text.includes('type="dynamic"');
}

class Broken extends Error {}

/**
 * Resolves a viewer's resource to an origin file: `{rel, watermarked}` or null (404); throws
 * Broken for an inconsistent package (500). `choose(position)` picks "a" or "b".
 */
async function resolve(env, target, choose, sidecarPromise) {
  const { title, rendition, file } = target;
  if (rendition === undefined) return { rel: `${title}/${file}`, watermarked: false };
  const dir = `${title}/${rendition}`;
  const sidecar = await sidecarPromise;
  if (sidecar.status === 200) {
    let wire;
    try {
      wire = sidecarPosition(sidecar.bytes);
    } catch (e) {
      throw new Broken(`${dir}/WMPaceInfo/${file}: ${e.message}`);
    }
    const position = wire === null ? null : positionFromWireAndName(wire, file);
    return { rel: `${dir}/${choose(position)}/${file}`, watermarked: true, position };
  }
  const a = await originGet(env, `${dir}/a/${file}`, { head: true });
  if (a.status === 200) {
    const b = await originGet(env, `${dir}/b/${file}`, { head: true });
    if (b.status === 200) throw new Broken(`${dir}/${file} has variants A and B but no WMPaceInfo sidecar`);
    return { rel: `${dir}/a/${file}`, watermarked: false };
  }
  return { rel: `${dir}/${file}`, watermarked: false };
}

/**
 * The bytes a viewer gets for an origin file (in-band WMPaceInfo neutralised) and their ETag,
 * through the Cache API under one key per origin file (so per variant) when `cacheable`.
 */
async function egressBody(env, ctx, request, rel, file, cacheable) {
  let cache = cacheable && typeof caches !== "undefined" ? caches.default : null;
  const key = cache ? new Request(new URL(`${EGRESS_KEY_PREFIX}${rel}`, request.url).toString()) : null;
  if (cache) {
    // A runtime without a cache (workerd with none configured) throws: go to the origin.
    try {
      const hit = await cache.match(key);
      if (hit) {
        return { bytes: new Uint8Array(await hit.arrayBuffer()), etag: hit.headers.get("ETag") };
      }
    } catch {
      cache = null;
    }
  }
  const got = await originGet(env, rel, { ttl: isManifest(file) ? 1 : 86400 });
  if (got.status !== 200) return null;
  const bytes = got.bytes;
  if (isIsobmff(file)) neutralizeWmpi(bytes);
  const etag = `"${bytesToHex(blake3(bytes).subarray(0, 16))}"`;
  if (cache) {
    const stored = new Response(bytes.slice(), {
      headers: { ETag: etag, "Cache-Control": "public, max-age=86400", "Content-Type": "application/octet-stream" },
    });
    ctx?.waitUntil?.(cache.put(key, stored).catch(() => {}));
  }
  return { bytes, etag };
}

function etagMatches(list, etag) {
  return list
    .split(",")
    .map((t) => t.trim())
    .some((t) => t === "*" || (t.startsWith("W/") ? t.slice(2) : t) === etag);
}

function serveBytes(request, body, file, cors) {
  const { bytes, etag } = body;
  const live = isManifest(file) && isLiveManifest(bytes);
  const cache = live ? CACHE_LIVE_MANIFEST : isManifest(file) ? CACHE_MANIFEST : CACHE_MEDIA;
  const h = new Headers({ "Cache-Control": cache, Vary: "Authorization", "Accept-Ranges": "bytes", ETag: etag });
  const inm = request.headers.get("If-None-Match");
  if (inm !== null && etagMatches(inm, etag)) {
    baseHeaders(h, cors);
    return new Response(null, { status: 304, headers: h });
  }
  const ifRange = request.headers.get("If-Range");
  const range = ifRange === null || ifRange.trim() === etag ? parseRange(request.headers.get("Range"), bytes.length) : { full: true };
  if (range.unsatisfiable) {
    const r = plainError(416, cors);
    r.headers.set("Content-Range", `bytes */${bytes.length}`);
    return r;
  }
  let status = 200;
  let slice = bytes;
  if (!range.full) {
    status = 206;
    slice = bytes.subarray(range.start, range.end + 1);
    h.set("Content-Range", `bytes ${range.start}-${range.end}/${bytes.length}`);
  }
  h.set("Content-Type", contentType(file) ?? "application/octet-stream");
  h.set("Content-Length", String(slice.length));
  baseHeaders(h, cors);
  return new Response(request.method === "HEAD" ? null : slice, { status, headers: h });
}

async function kvGet(ns, key, ttl) {
  if (!ns) return null;
  return ttl > 0 ? ns.get(key, { cacheTtl: ttl }) : ns.get(key);
}

/** Answers one request. */
async function handle(request, env, ctx) {
  const cors = corsOrigin(env);
  const method = request.method;
  if (method === "OPTIONS") return preflight(cors);
  if (method !== "GET" && method !== "HEAD") return plainError(405, cors);
  const length = request.headers.get("Content-Length");
  if ((length !== null && length !== "0") || request.headers.has("Transfer-Encoding")) return plainError(413, cors);
  const { path, query } = rawTarget(request.url);
  const target = parsePath(path);
  if (target.status) return plainError(target.status, cors);
  const token = target.token ?? queryToken(query) ?? bearerToken(request.headers.get("Authorization"));

  let st;
  try {
    st = await state(env);
  } catch (e) {
    console.error(`leaktrace worker configuration: ${e.message}`);
    return plainError(500, cors);
  }
  const now = Math.floor(Date.now() / 1000);
  let claims;
  let auth;
  let sidecarPromise;
  try {
    if (token === undefined) throw new Deny("no token");
    claims = await verified(st, token, now);
    // The session's facts and revocation, and (for a rendition file) the sidecar, in parallel.
    const ttl = env.LEAKTRACE_KV_CACHE_TTL === undefined ? 60 : Number(env.LEAKTRACE_KV_CACHE_TTL) || 0;
    const lookups = async (session) => {
      if (session === null) return [null, false];
      const [facts, revoked] = await Promise.all([
        kvGet(env.SESSIONS, session, ttl),
        kvGet(env.REVOKED, session, ttl),
      ]);
      return [parseSessionRecord(facts), revoked !== null];
    };
    const session = sessionOf(claims);
    const fromName =
      env.LEAKTRACE_POSITION_FROM_NAME === "1" && target.rendition !== undefined ? segmentFilePosition(target.file) : null;
    if (target.rendition !== undefined && fromName === null) {
      sidecarPromise = originGet(env, `${target.title}/${target.rendition}/WMPaceInfo/${target.file}`, { ttl: 86400 });
      sidecarPromise.catch(() => {});
    }
    const [facts, revoked] = await lookups(session);
    auth = authorize(claims, {
      wmopid: st.config.wmopid,
      keyVersions: st.config.keyVersions,
      title: target.title,
      facts,
      revoked,
    });
    auth.fromName = fromName;
  } catch (e) {
    if (e instanceof Deny) {
      console.log(`refused (${e.message}): ${redact(path)}`);
      return plainError(403, cors);
    }
    console.error(`KV lookup failed: ${e.message}`);
    return plainError(403, cors);
  }
  const book = claims.mode === "indirect" ? codebook(st, target.title, auth.titleKeyVersion) : null;
  if (claims.mode === "indirect" && !book) return plainError(403, cors);
  const choose = (position) => selectVariant(book, claims, position);
  try {
    let body = null;
    const media = !isManifest(target.file);
    if (auth.fromName !== null) {
      // The package names its segments by position: no sidecar needed. Fall back to the sidecar
      // when the variant file is not there (e.g. an unwatermarked track named the same way).
      const rel = `${target.title}/${target.rendition}/${choose(auth.fromName)}/${target.file}`;
      body = await egressBody(env, ctx, request, rel, target.file, true);
      if (body === null) {
        sidecarPromise = originGet(env, `${target.title}/${target.rendition}/WMPaceInfo/${target.file}`, { ttl: 86400 });
      }
    }
    if (body === null) {
      const resolved = await resolve(env, target, choose, sidecarPromise);
      body = await egressBody(env, ctx, request, resolved.rel, target.file, media);
      if (body === null) {
        if (resolved.watermarked) throw new Broken(`${resolved.rel} is missing`);
        return plainError(404, cors);
      }
    }
    return serveBytes(request, body, target.file, cors);
  } catch (e) {
    console.error(`package or origin problem: ${e.message} (${redact(path)})`);
    return plainError(500, cors);
  }
}

/** A path fit for logs: the token cut to its first 6 characters. */
function redact(path) {
  if (!path.startsWith("/wmt/")) return path.slice(0, 256);
  const rest = path.slice(5);
  const slash = rest.indexOf("/");
  const token = slash < 0 ? rest : rest.slice(0, slash);
  return `/wmt/${token.slice(0, 6)}…/${slash < 0 ? "" : rest.slice(slash + 1, slash + 257)}`;
}

export default {
  fetch: handle,
};
