# workerd configuration of the leaktrace Worker's tests: everything listens on 127.0.0.1.
#
#   leaktrace        the Worker (../worker.mjs): sessions and revocations from the directories
#                    of the disk services `sessions` and `revoked` (one file per session id, as
#                    KV keys), origin at $LEAKTRACE_ORIGIN
#   leaktrace-names  the same Worker with LEAKTRACE_POSITION_FROM_NAME=1
#   selftest         ./test-worker.mjs: the selector vectors and the CPU measurements
#
# Ports and directories are set on the command line, e.g.
#   workerd serve config.capnp -s http=127.0.0.1:8801 -s names=127.0.0.1:8802 \
#     -s selftest=127.0.0.1:8803 -d sessions=/tmp/kv/sessions -d revoked=/tmp/kv/revoked
# with LEAKTRACE_ORIGIN, LEAKTRACE_MASTER_KEYS and LEAKTRACE_ES256_KEYS in the environment.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "leaktrace", worker = .leaktrace),
    (name = "leaktrace-names", worker = .leaktraceNames),
    (name = "selftest", worker = .selftest),
    (name = "sessions", disk = (path = "/nonexistent/sessions")),
    (name = "revoked", disk = (path = "/nonexistent/revoked")),
    # Origin fetches may reach loopback only.
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8801", http = (), service = "leaktrace"),
    (name = "names", address = "127.0.0.1:8802", http = (), service = "leaktrace-names"),
    (name = "selftest", address = "127.0.0.1:8803", http = (), service = "selftest"),
  ],
);

const leaktrace :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "../worker.mjs"),
    (name = "selector.mjs", esModule = embed "../selector.mjs"),
    (name = "@noble/hashes/blake3.js", esModule = embed "../../node_modules/@noble/hashes/blake3.js"),
    (name = "@noble/hashes/blake2.js", esModule = embed "../../node_modules/@noble/hashes/blake2.js"),
    (name = "@noble/hashes/_blake.js", esModule = embed "../../node_modules/@noble/hashes/_blake.js"),
    (name = "@noble/hashes/_md.js", esModule = embed "../../node_modules/@noble/hashes/_md.js"),
    (name = "@noble/hashes/_u64.js", esModule = embed "../../node_modules/@noble/hashes/_u64.js"),
    (name = "@noble/hashes/utils.js", esModule = embed "../../node_modules/@noble/hashes/utils.js"),
  ],
  compatibilityDate = "2026-11-01",
  globalOutbound = "loopback",
  bindings = [
    (name = "LEAKTRACE_ORIGIN", fromEnvironment = "LEAKTRACE_ORIGIN"),
    (name = "LEAKTRACE_MASTER_KEYS", fromEnvironment = "LEAKTRACE_MASTER_KEYS"),
    (name = "LEAKTRACE_ES256_KEYS", fromEnvironment = "LEAKTRACE_ES256_KEYS"),
    (name = "LEAKTRACE_WMOPID", text = "1"),
    (name = "LEAKTRACE_KV_CACHE_TTL", text = "0"),
    (name = "SESSIONS", kvNamespace = "sessions"),
    (name = "REVOKED", kvNamespace = "revoked"),
  ],
);

const leaktraceNames :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "../worker.mjs"),
    (name = "selector.mjs", esModule = embed "../selector.mjs"),
    (name = "@noble/hashes/blake3.js", esModule = embed "../../node_modules/@noble/hashes/blake3.js"),
    (name = "@noble/hashes/blake2.js", esModule = embed "../../node_modules/@noble/hashes/blake2.js"),
    (name = "@noble/hashes/_blake.js", esModule = embed "../../node_modules/@noble/hashes/_blake.js"),
    (name = "@noble/hashes/_md.js", esModule = embed "../../node_modules/@noble/hashes/_md.js"),
    (name = "@noble/hashes/_u64.js", esModule = embed "../../node_modules/@noble/hashes/_u64.js"),
    (name = "@noble/hashes/utils.js", esModule = embed "../../node_modules/@noble/hashes/utils.js"),
  ],
  compatibilityDate = "2026-11-01",
  globalOutbound = "loopback",
  bindings = [
    (name = "LEAKTRACE_ORIGIN", fromEnvironment = "LEAKTRACE_ORIGIN"),
    (name = "LEAKTRACE_MASTER_KEYS", fromEnvironment = "LEAKTRACE_MASTER_KEYS"),
    (name = "LEAKTRACE_ES256_KEYS", fromEnvironment = "LEAKTRACE_ES256_KEYS"),
    (name = "LEAKTRACE_WMOPID", text = "1"),
    (name = "LEAKTRACE_KV_CACHE_TTL", text = "0"),
    (name = "LEAKTRACE_POSITION_FROM_NAME", text = "1"),
    (name = "SESSIONS", kvNamespace = "sessions"),
    (name = "REVOKED", kvNamespace = "revoked"),
  ],
);

const selftest :Workerd.Worker = (
  modules = [
    (name = "test/test-worker.mjs", esModule = embed "test-worker.mjs"),
    (name = "test/vectors.mjs", esModule = embed "vectors.mjs"),
    (name = "selector.mjs", esModule = embed "../selector.mjs"),
    (name = "@noble/hashes/blake3.js", esModule = embed "../../node_modules/@noble/hashes/blake3.js"),
    (name = "@noble/hashes/blake2.js", esModule = embed "../../node_modules/@noble/hashes/blake2.js"),
    (name = "@noble/hashes/_blake.js", esModule = embed "../../node_modules/@noble/hashes/_blake.js"),
    (name = "@noble/hashes/_md.js", esModule = embed "../../node_modules/@noble/hashes/_md.js"),
    (name = "@noble/hashes/_u64.js", esModule = embed "../../node_modules/@noble/hashes/_u64.js"),
    (name = "@noble/hashes/utils.js", esModule = embed "../../node_modules/@noble/hashes/utils.js"),
    # A path from the repository root: workerd is started with `--import-path <repository root>`.
    (name = "test/selector-v2.json", json = embed "/crates/edge/tests/vectors/selector-v2.json"),
  ],
  compatibilityDate = "2026-11-01",
);
