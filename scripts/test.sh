#!/usr/bin/env bash
# The whole leaktrace test suite, from a fresh Debian 12 machine (run as root).
#
# Installs what is missing (Debian packages incl. PostgreSQL, the npm validators), fetches and
# checks the test corpus, starts a throwaway PostgreSQL on loopback so the store tests run on
# both backends, then checks that no tracked file reaches outside the repository, and runs
# rustfmt, rustdoc (warnings denied), clippy (as the test build's compiler) and every test of
# the workspace: unit, crate integration and the end-to-end tests in tests/ (tests/README.md).
#
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\n[test] %s\n' "$*"; }

# A one-shot build gains nothing from incremental compilation and its caches take gigabytes;
# the whole suite needs about 3.5 GiB of disk for target/ (the build) and the corpus, 6 GiB
# leave room for the temporary packages the tests write.
export CARGO_INCREMENTAL=0
free_kib="$(df -Pk . | awk 'NR == 2 { print $4 }')"
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((6 * 1024 * 1024)) ]; then
    printf '[test] warning: only %s MiB free on %s; the suite needs about 6 GiB (target/ and corpus/cache)\n' \
        "$((free_kib / 1024))" "$(df -P . | awk 'NR == 2 { print $6 }')" >&2
fi

log "system packages"
bash scripts/install-system-deps.sh postgresql chromium njs

log "test corpus"
bash corpus/fetch.sh

log "npm validators (hls-parser, Shaka Packager) and the test players (hls.js, Shaka Player)"
if [ ! -d tools/node_modules/hls-parser ] || [ ! -d tools/node_modules/shaka-packager ]; then
    (cd tools && npm ci --no-audit --no-fund)
fi
if [ ! -d crates/edge/tests/player/node_modules/hls.js ] || [ ! -d crates/edge/tests/player/node_modules/shaka-player ]; then
    npm ci --prefix crates/edge/tests/player --no-audit --no-fund
fi
export LEAKTRACE_REQUIRE_PLAYER=1

log "workerd (Cloudflare's runtime) for the CDN selector Worker"
if [ ! -d cdn/node_modules/workerd ] || [ ! -d cdn/node_modules/@noble/hashes ]; then
    npm ci --prefix cdn --no-audit --no-fund
fi
export LEAKTRACE_REQUIRE_CDN=1
# njs, nginx's JavaScript interpreter, runs the CloudFront Function as its runtime does
# (no JIT, no BigInt): the function's suite is replayed there.
export LEAKTRACE_REQUIRE_NJS=1

log "PostgreSQL on loopback"
export LEAKTRACE_TEST_PG_URL
LEAKTRACE_TEST_PG_URL="$(bash scripts/pg-test-server.sh start)"
export LEAKTRACE_TEST_PG_TLS_URL
LEAKTRACE_TEST_PG_TLS_URL="$(bash scripts/pg-test-server.sh url-tls)"
export LEAKTRACE_REQUIRE_PG=1
trap 'bash scripts/pg-test-server.sh stop >/dev/null 2>&1 || true' EXIT

log "nothing outside the repository"
bash scripts/check-paths.sh

log "rustfmt"
cargo fmt --all -- --check

log "rustdoc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# Clippy runs as the compiler of the workspace's own crates (scripts/clippy-rustc.sh), so the
# lints (-D warnings) and the test build are one compile instead of two (`cargo clippy` would
# check every dependency again); a lint is a compile error and stops the suite here.
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"

log "clippy: the benches (built, not run)"
cargo test --workspace --benches --locked --no-run

log "clippy and the test build: lib, bins, examples, unit and integration tests"
mkdir -p target
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics > target/test-build.json

# The test binaries run three at a time (scripts/run-tests.py): many end-to-end tests wait on
# real time (a live feed at its rate, a player playing for two minutes, a copy still being
# written, a crawl), and side by side they fill each other's idle time. Each binary's output is
# in target/test-logs/; a failing one's is printed at the end.
log "tests (logs: target/test-logs/)"
python3 scripts/run-tests.py --jobs 3 --log-dir target/test-logs < target/test-build.json
