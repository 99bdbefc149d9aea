#!/usr/bin/env bash
# Load bench of the leaktrace edge against nginx serving the same files, on loopback only.
#
# Usage: scripts/bench-edge.sh [--quick] [--no-build] [--revoked N] [--baseline BIN]
#
#   1. builds `leaktrace` (release) unless --no-build, makes a package from the corpus clip
#      (20 s, 360p+240p, 1 s segments) and one session in a temporary directory;
#   2. starts the edge (`leaktrace edge`) and nginx (2 workers, sendfile, open_file_cache,
#      access log off) on 127.0.0.1, both serving the package's media segments;
#   3. runs wrk (1 thread, 64 connections) with a Lua script that requests random segments:
#      the edge through /wmt/<token>/... (token check, sidecar, codeword, wmpi rewrite from
#      cache), nginx the a/ files directly. nginx and the edge take turns: 5 rounds of 4 s each
#      (--quick: 2 rounds of 3 s), so that a change in the machine's load falls on both;
#   4. prints, for each round and as the median over the rounds, requests/s, p50/p99 latency,
#      errors and the CPU time each server spent per request (user + system, from /proc), and
#      the ratio edge/nginx (target >= 1.0): the median of the rounds' ratios. Twice: for
#      segments, and for small files (media playlists: the per-request overhead);
#      With --revoked N, N other sessions of the title are recorded and revoked first
#      (`leaktrace session revoke --account`), so the edge holds N revoked sessions.
#      With --baseline BIN, the other side is not nginx but the edge of another `leaktrace`
#      build (BIN) on the same package, store and paths: two builds compared side by side,
#      without nginx's own spread in the ratio.
#   5. holds 10 000 concurrent connections against the edge (wrk -c 10000) and reports errors.
#      They all come from 127.0.0.1, so beyond the edge's per-address cap (256 by default) they
#      are refused at once (503 or reset, counted by wrk as errors): this step measures the
#      edge serving its per-address share while shedding the rest.
#
# Needs: wrk and nginx (scripts/install-system-deps.sh wrk nginx-light), ffmpeg, and the corpus
# (corpus/fetch.sh, or LEAKTRACE_CORPUS=dir). Every server and client stays on 127.0.0.1; every
# run is bounded in time; the script stops what it started (by PID) on exit.
set -euo pipefail

QUICK=0
BUILD=1
REVOKED=0
BASELINE=""
while [[ $# -gt 0 ]]; do
    arg="$1"
    shift
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --revoked)
            REVOKED="${1:-}"
            shift || true
            [[ $REVOKED =~ ^[0-9]+$ && $REVOKED -le 10000000 ]] || { echo "--revoked takes a number of sessions (0 to 10000000)" >&2; exit 2; }
            ;;
        --baseline)
            BASELINE="${1:-}"
            shift || true
            [[ -x $BASELINE ]] || { echo "--baseline takes the path of another leaktrace binary" >&2; exit 2; }
            ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CORPUS="${LEAKTRACE_CORPUS:-$ROOT/corpus/cache}"
CLIP="$CORPUS/trailer_bbb_20s.mp4"
DURATION=10
ROUNDS=5
ROUND_SECS=4
if [[ $QUICK == 1 ]]; then
    DURATION=5
    ROUNDS=2
    ROUND_SECS=3
fi
# The other side of the comparison: nginx, or the edge of the --baseline build.
OTHER=nginx
[[ -n $BASELINE ]] && OTHER=baseline
for tool in wrk ffmpeg $([[ $OTHER == nginx ]] && echo nginx); do
    command -v "$tool" >/dev/null || { echo "missing $tool (scripts/install-system-deps.sh wrk nginx-light)" >&2; exit 2; }
done
[[ -f "$CLIP" ]] || { echo "missing $CLIP (run corpus/fetch.sh or set LEAKTRACE_CORPUS)" >&2; exit 2; }

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release --locked -q -p leaktrace)
fi
LT="${CARGO_TARGET_DIR:-$ROOT/target}/release/leaktrace"
[[ -x "$LT" ]] || { echo "missing $LT (build without --no-build)" >&2; exit 2; }

WORK="$(mktemp -d /tmp/leaktrace-bench-edge.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

echo "== package and session (in $WORK)"
"$LT" init "$WORK/w" >/dev/null
cd "$WORK/w"
"$LT" embed "$CLIP" --title bbb --out "$WORK/pkg/bbb" --ladder 360p,240p --preset ultrafast \
    --segment 1s --max-frames 480 >/dev/null
TOKEN="$("$LT" session new --title bbb --account bench --ttl 1h --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
if [[ $REVOKED -gt 0 ]]; then
    # N sessions of another account, recorded in one transaction, then revoked by leaktrace.
    python3 - "$WORK/w/leaktrace.db" "$REVOKED" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
n, now = int(sys.argv[2]), int(time.time())
with db:
    db.executemany(
        "INSERT INTO sessions (session_id, title_id, account_ref, issued_at, expires_at, "
        "key_version, created_at) VALUES (?, 'bbb', 'bench-revoked', ?, ?, 1, ?)",
        ((f"revoked-{i:08d}", now, now + 3600, now) for i in range(n)),
    )
db.close()
PY
    start=$(date +%s.%N)
    "$LT" session revoke --account bench-revoked --reason bench --json >/dev/null
    echo "revoked $REVOKED sessions in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
fi

EDGE_PORT="$(free_port)"
# The baseline edge is asked the edge's paths; nginx the a/ files directly.
OTHER_PREFIX=""
[[ $OTHER == baseline ]] && OTHER_PREFIX="/wmt/$TOKEN"
NGINX_PORT="$(free_port)"
# Every load client here connects from 127.0.0.1: the per-address cap is raised to the global
# one, as behind a reverse proxy, so this measures throughput (scripts/bench-edge-dos.sh
# measures the caps).
RUST_LOG=warn "$LT" edge --root "$WORK/pkg" --listen "127.0.0.1:$EDGE_PORT" --threads 2 \
    --max-connections-per-ip 16384 \
    >"$WORK/edge.out" 2>"$WORK/edge.err" &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 12000; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    etag on;
    types { video/iso.segment m4s; video/mp4 mp4; application/vnd.apple.mpegurl m3u8; }
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        root $WORK/pkg;
    }
}
EOF
if [[ $OTHER == nginx ]]; then
    nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
else
    RUST_LOG=warn "$BASELINE" edge --root "$WORK/pkg" --listen "127.0.0.1:$NGINX_PORT" --threads 2 \
        --max-connections-per-ip 16384 >"$WORK/baseline.out" 2>"$WORK/baseline.err" &
fi
PIDS+=($!)

for i in $(seq 50); do
    if curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT$OTHER_PREFIX/bbb/master.m3u8" \
        && curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/wmt/$TOKEN/bbb/master.m3u8"; then
        break
    fi
    sleep 0.2
done

# Paths: 20 positions x 2 renditions.
: >"$WORK/edge.paths"
: >"$WORK/nginx.paths"
for r in 360p 240p; do
    for p in $(seq 0 19); do
        seg=$(printf 'seg_%05d.m4s' "$p")
        echo "/wmt/$TOKEN/bbb/$r/$seg" >>"$WORK/edge.paths"
        if [[ $OTHER == nginx ]]; then
            echo "/bbb/$r/a/$seg" >>"$WORK/nginx.paths"
        else
            echo "/wmt/$TOKEN/bbb/$r/$seg" >>"$WORK/nginx.paths"
        fi
    done
done
# Sanity: the edge answers 200 on every path.
while read -r path; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EDGE_PORT$path")
    [[ $code == 200 ]] || { echo "edge answered $code for a segment" >&2; exit 1; }
done <"$WORK/edge.paths"

cat >"$WORK/bench.lua" <<'EOF'
local paths = {}
local file = os.getenv("PATHS_FILE")
for line in io.lines(file) do paths[#paths + 1] = line end
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[(i * 7919) % #paths + 1])
end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d max_us=%d requests=%d bytes=%d " ..
        "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        latency.max, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

EDGE_PID=${PIDS[0]}
NGINX_PID=${PIDS[1]}
# CPU ticks (user + system) of a server: the edge process, or nginx's master and workers.
ticks() {
    local pids=$1
    [[ $1 == nginx ]] && pids="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
    [[ $1 == edge ]] && pids=$EDGE_PID
    [[ $1 == baseline ]] && pids=$NGINX_PID
    local sum=0 p
    for p in $pids; do
        [[ -r /proc/$p/stat ]] || continue
        # Fields 14 and 15 (utime, stime), counted after the command name's closing parenthesis.
        sum=$((sum + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$sum"
}
HZ="$(getconf CLK_TCK)"
run_wrk() { # name port paths connections duration
    local server=${1%%-*} before after out requests
    before=$(ticks "$server")
    out=$(PATHS_FILE="$3" wrk -t1 -c"$4" -d"$5"s --timeout 10s -s "$WORK/bench.lua" "http://127.0.0.1:$2" \
        | grep '^RESULT' | sed "s/^RESULT/$1/")
    after=$(ticks "$server")
    requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$out")
    echo "$out cpu_us_per_req=$(python3 -c "print(f'{($after - $before) * 1e6 / $HZ / max($requests, 1):.1f}')")"
}

# Rounds of nginx then the edge on the same paths; prints each run, the medians and the median
# of the rounds' ratios (edge/nginx requests/s), and sets RATIO.
compare() { # label edge-paths nginx-paths
    local runs="$WORK/runs.$1" i
    : >"$runs"
    for i in $(seq "$ROUNDS"); do
        run_wrk "$OTHER$1" "$NGINX_PORT" "$3" 64 "$ROUND_SECS" | sed "s/^/round $i /" | tee -a "$runs"
        run_wrk "edge$1" "$EDGE_PORT" "$2" 64 "$ROUND_SECS" | sed "s/^/round $i /" | tee -a "$runs"
    done
    RATIO=$(python3 - "$runs" "$OTHER" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, n, server, rest = line.split(" ", 3)
    runs.setdefault(server.split("-")[0], {})[int(n)] = dict(re.findall(r"(\w+)=([\d.]+)", rest))
other = sys.argv[2]
for server in (other, "edge"):
    med = {k: statistics.median(float(r[k]) for r in runs[server].values())
           for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")}
    errors = sum(int(r[k]) for r in runs[server].values() for k in r if k.startswith("errors_"))
    print(f"median {server}: rps={med['rps']:.1f} p50_us={med['p50_us']:.0f} "
          f"p99_us={med['p99_us']:.0f} cpu_us_per_req={med['cpu_us_per_req']:.1f} errors={errors}",
          file=sys.stderr)
ratios = [float(runs["edge"][n]["rps"]) / float(runs[other][n]["rps"]) for n in runs["edge"]]
print(f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
PY
    )
}

echo "== wrk -t1 -c64, random segments (~175 KB each), $ROUNDS rounds of ${ROUND_SECS}s each, alternating; load: $(cut -d' ' -f1-3 /proc/loadavg)"
compare "" "$WORK/edge.paths" "$WORK/nginx.paths" 2>&1
echo "ratio edge/$OTHER (requests/s, median of rounds) = $RATIO$([[ $OTHER == nginx ]] && echo ' (target >= 1.0)')"

echo "== wrk -t1 -c64, media playlists (~1 KB: per-request overhead, token check included), $ROUNDS rounds of ${ROUND_SECS}s each"
for r in 360p 240p; do echo "/wmt/$TOKEN/bbb/$r/playlist.m3u8"; done >"$WORK/edge.small"
for r in 360p 240p; do echo "$OTHER_PREFIX/bbb/$r/playlist.m3u8"; done >"$WORK/nginx.small"
compare "-small" "$WORK/edge.small" "$WORK/nginx.small" 2>&1
echo "ratio edge/$OTHER (requests/s, small files, median of rounds) = $RATIO"

echo "== 10 000 concurrent connections on the edge from one address (wrk -t2 -c10000 -d${DURATION}s; per-address cap raised to 16 384)"
ED10K=$(PATHS_FILE="$WORK/edge.paths" wrk -t2 -c10000 -d"$DURATION"s --timeout 20s -s "$WORK/bench.lua" \
    "http://127.0.0.1:$EDGE_PORT" | grep '^RESULT' | sed 's/^RESULT/edge-10k/')
echo "$ED10K"
grep -v '^$' "$WORK/edge.err" | tail -3 || true
