// A stand-in for the CloudFront Functions runtime (cloudfront-js-2.0) under node, strict where
// the real one is: the function runs in a `node:vm` context of its own with only the globals
// and modules that runtime documents, and is refused when it reaches for more.
//
//   - size: at most 10 240 bytes (CloudFront's quota on a function's code);
//   - modules: `import X from '<module>'` lines at the top only, for `cloudfront` (KeyValueStore:
//     get, exists, meta) and `crypto` (createHash and createHmac with md5, sha1 or sha256:
//     update, digest); no other import, no `require`;
//   - globals: the ECMAScript built-ins the runtime lists, plus Buffer and console.log. Removed
//     from the context: Map, Set, WeakMap, WeakSet, WeakRef, BigInt, Symbol, Proxy, Reflect,
//     DataView, Intl, WebAssembly, SharedArrayBuffer, Atomics, Array.from; no process, no
//     require, no timers (setTimeout, setInterval, setImmediate, queueMicrotask), no fetch or
//     other network, no file system; eval and the Function constructor throw (code generation
//     from strings is off);
//   - syntax: a scan of the source refuses class, destructuring, spread, for-of, generators,
//     optional chaining, `??`, BigInt literals and default parameters, none of which the
//     runtime's feature list has, and an `await` inside an expression (no async arguments);
//   - Date.now() is the time the test sets (CloudFront fixes it at the function's start);
//   - KeyValueStore: one store, read-only, filled from files in the import format
//     (`{"data": [{"key", "value"}]}`) the leaktrace CLI writes, with the service's limits
//     (keys of at most 512 bytes, values of at most 1 024, 5 MB in all, no duplicate keys); a
//     get of a missing key rejects, as the runtime's does.

import vm from "node:vm";
import nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";

/** CloudFront Functions' quota on a function's code, in bytes. */
export const SIZE_LIMIT = 10240;
/** KeyValueStore limits: key bytes, value bytes, total bytes of keys and values. */
export const KVS_LIMITS = { key: 512, value: 1024, total: 5 * 1024 * 1024 };

const REMOVED_GLOBALS = [
  "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "BigInt", "BigInt64Array",
  "BigUint64Array", "Symbol", "Proxy", "Reflect", "DataView", "Intl", "WebAssembly",
  "SharedArrayBuffer", "Atomics", "escape", "unescape", "Iterator", "AggregateError",
];
const ABSENT = ["process", "require", "module", "setTimeout", "setInterval", "setImmediate",
  "clearTimeout", "queueMicrotask", "fetch", "XMLHttpRequest", "WebSocket", "TextEncoder",
  "TextDecoder", "crypto", "structuredClone", "Deno", "Bun"];

/** Constructs outside the runtime's documented language subset: [pattern, name]. */
const FORBIDDEN_SYNTAX = [
  [/\bclass\s+[A-Za-z_$]/, "class declarations"],
  [/\bfor\s*\([^;)]*\bof\b/, "for...of"],
  [/\.\.\./, "spread or rest syntax"],
  [/\b(?:const|let|var)\s*[[{]/, "destructuring"],
  [/\bfunction\s*\*|\byield\b/, "generators"],
  [/\?\./, "optional chaining"],
  [/\?\?/, "nullish coalescing"],
  [/\b\d+n\b/, "BigInt literals"],
  [/\bfunction\s*[A-Za-z_$]*\s*\([^)]*=/, "default parameters"],
  [/\brequire\s*\(/, "require()"],
  [/\b(?:eval|Function)\s*\(/, "dynamic code"],
  [/\bimport\s*\(/, "dynamic import"],
  [/\bexport\b/, "exports (a function is a script with a global handler)"],
];

/** The source with string, template and regular-expression literals emptied (for the scan). */
function codeOnly(source) {
  return source
    .split("\n")
    .filter((l) => !l.trim().startsWith("//"))
    .join("\n")
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, "''")
    .replace(/\/(?:[^/\\\n[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+\/[a-z]*/g, "/x/");
}

/** Refuses a source the runtime would not run; returns `{imports, body}`. */
export function checkSource(source) {
  const bytes = Buffer.byteLength(source);
  if (bytes > SIZE_LIMIT) throw new Error(`function is ${bytes} bytes, over the ${SIZE_LIMIT}-byte limit`);
  const lines = source.split("\n");
  const imports = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^import\s+([A-Za-z_$][\w$]*)\s+from\s*'([^']+)';?\s*$/.exec(lines[i]);
    if (!m) break;
    if (m[2] !== "cloudfront" && m[2] !== "crypto") throw new Error(`module "${m[2]}" is not one the runtime provides here`);
    imports.push({ name: m[1], module: m[2] });
  }
  const body = lines.slice(i).join("\n");
  if (/^\s*import\b/m.test(body)) throw new Error("imports must come first");
  const code = codeOnly(body);
  for (const [re, what] of FORBIDDEN_SYNTAX) {
    if (re.test(code)) throw new Error(`the runtime has no ${what}: ${code.match(re)[0]}`);
  }
  // `await` only as a whole expression statement, right-hand side or return value: the runtime
  // documents no async arguments (njs, its engine family, crashes on an await inside a call's
  // arguments).
  for (const m of code.matchAll(/\bawait\b/g)) {
    const before = code.slice(0, m.index).trimEnd();
    if (!/(?:[=;{}]|\breturn|^)$/.test(before)) {
      throw new Error(`await inside an expression: ${code.slice(Math.max(0, m.index - 30), m.index + 20)}`);
    }
  }
  if (!/\b(?:async\s+)?function\s+handler\s*\(/.test(code)) throw new Error("no handler function");
  return { imports, body, bytes };
}

/** A KeyValueStore filled from import files (`{"data": [...]}`), merged; limits enforced. */
export class KeyValueStore {
  constructor() {
    this.data = Object.create(null);
    this.bytes = 0;
    this.reads = 0;
  }

  static fromFiles(paths) {
    const s = new KeyValueStore();
    for (const p of paths) s.load(JSON.parse(readFileSync(p, "utf8")));
    return s;
  }

  /** Adds the entries of one import file (an object `{"data": [{"key", "value"}]}`). */
  load(file) {
    if (!file || !Array.isArray(file.data)) throw new Error('a KeyValueStore import file is {"data": [...]}');
    for (const e of file.data) this.put(e.key, e.value, true);
    return this;
  }

  put(key, value, fresh = false) {
    if (typeof key !== "string" || typeof value !== "string") throw new Error("keys and values are strings");
    const kb = Buffer.byteLength(key);
    const vb = Buffer.byteLength(value);
    if (kb === 0 || kb > KVS_LIMITS.key) throw new Error(`key of ${kb} bytes (limit ${KVS_LIMITS.key})`);
    if (vb > KVS_LIMITS.value) throw new Error(`value of ${vb} bytes for ${key} (limit ${KVS_LIMITS.value})`);
    if (key in this.data) {
      if (fresh) throw new Error(`duplicate key ${key}`);
      this.bytes -= kb + Buffer.byteLength(this.data[key]);
    }
    this.data[key] = value;
    this.bytes += kb + vb;
    if (this.bytes > KVS_LIMITS.total) throw new Error(`store over ${KVS_LIMITS.total} bytes`);
  }

  delete(key) {
    if (key in this.data) {
      this.bytes -= Buffer.byteLength(key) + Buffer.byteLength(this.data[key]);
      delete this.data[key];
    }
  }
}

function hashObject(make, alg) {
  if (!["md5", "sha1", "sha256"].includes(alg)) throw new Error(`crypto: unsupported algorithm ${alg}`);
  const h = make();
  const o = {
    update(data) {
      h.update(typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data));
      return o;
    },
    digest(encoding) {
      if (encoding === undefined) return h.digest();
      if (!["hex", "base64", "base64url"].includes(encoding)) throw new Error(`crypto: unsupported encoding ${encoding}`);
      return h.digest(encoding);
    },
  };
  return o;
}

/** The `crypto` module of the runtime: createHash and createHmac, nothing else. */
function cryptoModule() {
  return Object.freeze({
    createHash: (alg) => hashObject(() => nodeCrypto.createHash(alg), alg),
    createHmac: (alg, key) => {
      const k = typeof key === "string" ? Buffer.from(key, "utf8") : Buffer.from(key);
      return hashObject(() => nodeCrypto.createHmac(alg, k), alg);
    },
  });
}

/** The `cloudfront` module: `kvs()` over `store`. */
function cloudfrontModule(store) {
  const handle = Object.freeze({
    get(key, options) {
      store.reads++;
      if (!(key in store.data)) return Promise.reject(new Error(`KeyValueStore: key not found: ${key}`));
      const v = store.data[key];
      const format = options && options.format ? options.format : "string";
      if (format === "string") return Promise.resolve(v);
      if (format === "json") return Promise.resolve(JSON.parse(v));
      if (format === "bytes") return Promise.resolve(Buffer.from(v, "utf8"));
      return Promise.reject(new Error(`KeyValueStore: unknown format ${format}`));
    },
    exists(key) {
      store.reads++;
      return Promise.resolve(key in store.data);
    },
    meta() {
      return Promise.resolve({ creationDateTime: "2026-01-01T00:00:00Z", lastUpdatedDateTime: "2026-01-01T00:00:00Z", keyCount: Object.keys(store.data).length });
    },
  });
  return Object.freeze({ kvs: () => handle });
}

/**
 * Loads a function source into a fresh restricted context. Returns `{handler, context, store,
 * logs, setNow, run}`: `setNow(seconds)` fixes Date.now(), `run(event)` calls the handler and
 * returns its result; `context` exposes the function's top-level declarations (for tests).
 */
export function loadFunction(source, store = new KeyValueStore()) {
  const { imports, body, bytes } = checkSource(source);
  const logs = [];
  let nowMs = 0;
  const sandbox = {};
  const context = vm.createContext(sandbox, { codeGeneration: { strings: false, wasm: false }, name: "cloudfront-js-2.0" });
  const modules = { cloudfront: cloudfrontModule(store), crypto: cryptoModule() };
  // The runtime's extras: Buffer, console.log, and the modules bound to the import names.
  Object.defineProperty(sandbox, "Buffer", { value: Buffer, enumerable: false });
  Object.defineProperty(sandbox, "console", { value: Object.freeze({ log: (...a) => logs.push(a.join(" ")) }), enumerable: false });
  Object.defineProperty(sandbox, "__modules", { value: modules, enumerable: false });
  Object.defineProperty(sandbox, "__now", { value: () => nowMs, enumerable: false });
  vm.runInContext(
    `"use strict";
     for (const g of ${JSON.stringify(REMOVED_GLOBALS)}) delete globalThis[g];
     delete Array.from;
     Date.now = function () { return __now(); };
     const RealDate = Date;
     globalThis.Date = function (...a) { return a.length ? new RealDate(...a) : new RealDate(__now()); };
     globalThis.Date.now = RealDate.now;
     globalThis.Date.UTC = RealDate.UTC;
     globalThis.Date.parse = RealDate.parse;`,
    context,
  );
  for (const g of [...REMOVED_GLOBALS, ...ABSENT]) {
    if (vm.runInContext(`typeof globalThis[${JSON.stringify(g)}]`, context) !== "undefined") {
      throw new Error(`the context still has ${g}`);
    }
  }
  const prologue = imports.map((i) => `const ${i.name} = __modules[${JSON.stringify(i.module)}];`).join("\n");
  // Functions run in strict mode in the runtime, as here.
  new vm.Script(`"use strict";\n${prologue}\n${body}`, { filename: "function.js" }).runInContext(context);
  const handler = vm.runInContext("handler", context);
  return {
    bytes,
    handler,
    context,
    store,
    logs,
    setNow(seconds) {
      nowMs = Math.round(seconds * 1000);
    },
    run(event) {
      return handler(event);
    },
  };
}

/** A viewer-request event for `method` and `target` (a path with an optional query). */
export function viewerRequest(target, { method = "GET", headers = {} } = {}) {
  const q = target.indexOf("?");
  const uri = q < 0 ? target : target.slice(0, q);
  const querystring = {};
  if (q >= 0) {
    for (const kv of target.slice(q + 1).split("&")) {
      if (!kv) continue;
      const eq = kv.indexOf("=");
      const k = eq < 0 ? kv : kv.slice(0, eq);
      const v = eq < 0 ? "" : kv.slice(eq + 1);
      if (querystring[k]) (querystring[k].multiValue ??= [{ value: querystring[k].value }]).push({ value: v });
      else querystring[k] = { value: v };
    }
  }
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = { value: v };
  return {
    version: "1.0",
    context: { eventType: "viewer-request", distributionId: "EDFDVBD6EXAMPLE", requestId: "test" },
    viewer: { ip: "127.0.0.1" },
    request: { method, uri, querystring, headers: h, cookies: {} },
  };
}

/** The result of a handler as `{status, uri}`: a request passed on (200, its new uri) or a response. */
export function outcome(result) {
  if (result && typeof result.uri === "string" && result.method !== undefined) return { status: 200, uri: result.uri, request: result };
  if (!result || typeof result.statusCode !== "number") throw new Error(`the handler returned neither a request nor a response: ${JSON.stringify(result)}`);
  for (const [k, v] of Object.entries(result.headers ?? {})) {
    if (k !== k.toLowerCase() || typeof v.value !== "string") throw new Error(`response header ${k} is not {value: string} under a lower-case name`);
  }
  if (result.body !== undefined && !(typeof result.body.data === "string" && ["text", "base64"].includes(result.body.encoding))) {
    throw new Error("a response body is {encoding: text|base64, data: string}");
  }
  return { status: result.statusCode, response: result };
}
