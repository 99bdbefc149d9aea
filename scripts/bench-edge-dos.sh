#!/usr/bin/env bash
# Denial-of-service bench of the leaktrace edge, on loopback only (127.0.0.0/8).
#
# Usage: scripts/bench-edge-dos.sh [--quick] [--no-build]
#
#   1. builds `leaktrace` (release) unless --no-build, makes a package from the corpus clip
#      (20 s, 360p+240p, 1 s segments) and one session in a temporary directory;
#   2. starts the edge (`leaktrace edge --threads 2`, default limits) on 127.0.0.1;
#   3. baseline: 200 honest clients at 127.0.0.2, each a player (keep-alive, one random segment
#      with the token, then 0.5 s pause), for 20 s (--quick: 10 s): p50/p99/max latency;
#   4. attack: the same honest clients for 40 s (--quick: 20 s) while 2 000 slow connections
#      from 127.0.1.1-10 (200 per address, under the per-address cap) hold on: half send their
#      request headers one byte per second without any token, half ask for a segment with the
#      token and read one byte per second (4 KiB receive buffer); each reconnects when cut, or
#      after 30 s. Another 1 000 slow connections come from 127.0.0.1 alone (beyond the
#      per-address cap they are refused). Reports the honest clients' latency (target: p99
#      < 1 s), their errors, the slow connections opened, cut and refused, and the most
#      connections the edge held at once (sampled with ss);
#   5. flood: 10^6 requests (--quick: 10^5) from 127.0.0.3, 64 keep-alive connections, 32
#      pipelined requests at a time: a third with a random bit of the token flipped, a third
#      with the token re-encoded (random kid in the unprotected header), a third with the valid
#      token in the Authorization header asking for random missing renditions and files (names
#      up to 4 000 characters). Reports the statuses, requests/s and the edge's RSS before and
#      after and its peak (VmHWM) (target: < 1 GB).
#
# Needs: ffmpeg, python3, ss (iproute2), and the corpus (corpus/fetch.sh, or LEAKTRACE_CORPUS).
# Every server and client stays on loopback; every phase is bounded in time or count; the script
# stops what it started (by PID) on exit.
set -euo pipefail

QUICK=0
BUILD=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CORPUS="${LEAKTRACE_CORPUS:-$ROOT/corpus/cache}"
CLIP="$CORPUS/trailer_bbb_20s.mp4"
BASELINE=20
ATTACK=40
FLOOD=1000000
if [[ $QUICK == 1 ]]; then BASELINE=10; ATTACK=20; FLOOD=100000; fi
for tool in ffmpeg python3 ss curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[[ -f "$CLIP" ]] || { echo "missing $CLIP (run corpus/fetch.sh or set LEAKTRACE_CORPUS)" >&2; exit 2; }
# Each side holds a few thousand sockets.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -q -p leaktrace)
fi
LT="${CARGO_TARGET_DIR:-$ROOT/target}/release/leaktrace"
[[ -x "$LT" ]] || { echo "missing $LT (build without --no-build)" >&2; exit 2; }

WORK="$(mktemp -d /tmp/leaktrace-bench-dos.XXXXXX)"
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

PORT="$(free_port)"
RUST_LOG=warn "$LT" edge --root "$WORK/pkg" --listen "127.0.0.1:$PORT" --threads 2 \
    >"$WORK/edge.out" 2>"$WORK/edge.err" &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/wmt/$TOKEN/bbb/master.m3u8" && break
    sleep 0.2
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/wmt/$TOKEN/bbb/360p/seg_00000.m4s")
[[ $code == 200 ]] || { echo "edge answered $code for a segment" >&2; exit 1; }

rss() { # VmRSS and VmHWM of the edge, in MiB
    awk '/^VmRSS|^VmHWM/ { printf "%s=%.0fMiB ", $1, $2 / 1024 }' "/proc/$EDGE_PID/status" | sed 's/://g'
}

cat >"$WORK/dos.py" <<'PYEOF'
"""Clients of bench-edge-dos.sh: honest players, slow connections, and the request flood."""
import asyncio
import base64
import json
import os
import random
import socket
import sys
import time

HOST = "127.0.0.1"


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


async def honest(port, token, seconds, clients, src):
    paths = [f"/wmt/{token}/bbb/{r}/seg_{p:05d}.m4s" for r in ("360p", "240p") for p in range(20)]
    latencies, errors = [], {}
    until = time.monotonic() + seconds

    async def player(i):
        rng = random.Random(i)
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, port, local_addr=(src, 0)), 10)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                await asyncio.sleep(0.5)
                continue
            try:
                while time.monotonic() < until:
                    path = rng.choice(paths)
                    t0 = time.monotonic()
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n".encode())
                    status = await asyncio.wait_for(read_response(reader), 10)
                    if status != 200:
                        errors[f"status {status}"] = errors.get(f"status {status}", 0) + 1
                    latencies.append(time.monotonic() - t0)
                    await asyncio.sleep(0.5)
            except Exception as e:  # noqa: BLE001
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            finally:
                writer.close()

    await asyncio.gather(*(player(i) for i in range(clients)))
    lat = sorted(latencies)
    print(json.dumps({
        "requests": len(lat),
        "p50_ms": round(percentile(lat, 50) * 1000, 1),
        "p99_ms": round(percentile(lat, 99) * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "errors": errors,
    }))


async def slow(port, token, seconds, spread, per_address, single):
    """Slow connections: header tricklers (no token) and slow readers (token, 1 byte/s)."""
    until = time.monotonic() + seconds
    stats = {"opened": 0, "cut_or_refused": 0, "connect_failed": 0, "recycled": 0}
    header = (f"GET /bbb/master.m3u8 HTTP/1.1\r\nHost: edge\r\nUser-Agent: {'x' * 200}\r\n"
              "\r\n").encode()
    request = f"GET /wmt/{token}/bbb/360p/seg_00003.m4s HTTP/1.1\r\nHost: edge\r\n\r\n".encode()
    loop = asyncio.get_running_loop()

    async def one(src, trickle):
        while time.monotonic() < until:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            try:
                s.bind((src, 0))
                await asyncio.wait_for(loop.sock_connect(s, (HOST, port)), 10)
            except Exception:  # noqa: BLE001
                stats["connect_failed"] += 1
                s.close()
                await asyncio.sleep(1)
                continue
            stats["opened"] += 1
            held_until = min(until, time.monotonic() + 30)
            closed = False
            try:
                if not trickle:
                    await loop.sock_sendall(s, request)
                i = 0
                while time.monotonic() < held_until:
                    if trickle and i < len(header):
                        await loop.sock_sendall(s, header[i:i + 1])
                        i += 1
                    await asyncio.sleep(1)
                    try:
                        data = s.recv(1)
                    except BlockingIOError:
                        continue
                    if trickle and data:  # a refusal or timeout answer
                        closed = True
                        break
                    if not data:
                        closed = True
                        break
            except OSError:
                closed = True
            finally:
                s.close()
            stats["cut_or_refused" if closed else "recycled"] += 1

    tasks = []
    for a in range(spread):
        src = f"127.0.1.{a + 1}"
        for k in range(per_address):
            tasks.append(one(src, k % 2 == 0))
    for k in range(single):
        tasks.append(one("127.0.0.1", k % 2 == 0))
    await asyncio.gather(*tasks)
    print(json.dumps(stats))


async def flood(port, token, total, connections, depth, src):
    raw = unb64(token)
    assert raw[8] == 0xA0, "unexpected token layout"
    counts = {}
    per_connection = (1000 // depth) * depth  # the edge closes after 1 000 requests
    left = [total]
    rng = random.Random(7)

    def one_request():
        kind = rng.randrange(3)
        if kind == 0:
            t = bytearray(raw)
            bit = rng.randrange(len(t) * 8)
            t[bit // 8] ^= 1 << (bit % 8)
            return f"GET /wmt/{b64(bytes(t))}/bbb/master.m3u8 HTTP/1.1\r\nHost: edge\r\n\r\n"
        if kind == 1:
            t = raw[:8] + b"\xa1\x04\x48" + os.urandom(8) + raw[9:]
            return f"GET /wmt/{b64(t)}/bbb/master.m3u8 HTTP/1.1\r\nHost: edge\r\n\r\n"
        rendition = b64(os.urandom(rng.randrange(1, 48)))
        name = b64(os.urandom(rng.randrange(1, 3000)))[:4000]
        return (f"GET /bbb/{rendition}/{name}.m4s HTTP/1.1\r\nHost: edge\r\n"
                f"Authorization: Bearer {token}\r\n\r\n")

    async def worker():
        while left[0] > 0:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(src, 0))
            sent_here = 0
            try:
                while left[0] > 0 and sent_here < per_connection:
                    n = min(depth, left[0])
                    left[0] -= n
                    writer.write("".join(one_request() for _ in range(n)).encode())
                    for _ in range(n):
                        status = await asyncio.wait_for(read_response(reader), 30)
                        counts[status] = counts.get(status, 0) + 1
                    sent_here += n
            finally:
                writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - t0
    done = sum(counts.values())
    print(json.dumps({"requests": done, "seconds": round(elapsed, 1),
                      "per_second": round(done / elapsed), "statuses": counts}))


def main():
    mode, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    args = [int(a) for a in sys.argv[4:]]
    if mode == "honest":
        asyncio.run(honest(port, token, args[0], args[1], "127.0.0.2"))
    elif mode == "slow":
        asyncio.run(slow(port, token, *args))
    elif mode == "flood":
        asyncio.run(flood(port, token, args[0], 64, 32, "127.0.0.3"))


main()
PYEOF

echo "== edge: $(rss)"
echo "== baseline: 200 honest players for ${BASELINE}s"
BASE=$(python3 "$WORK/dos.py" honest "$PORT" "$TOKEN" "$BASELINE" 200)
echo "honest $BASE"

echo "== attack: 2 000 slow connections from 127.0.1.1-10 + 1 000 from 127.0.0.1, 200 honest players, ${ATTACK}s"
python3 "$WORK/dos.py" slow "$PORT" "$TOKEN" "$((ATTACK + 5))" 10 200 1000 >"$WORK/slow.json" &
SLOW_PID=$!
PIDS+=("$SLOW_PID")
sleep 5 # let the slow connections take their places first
(
    max=0
    end=$((SECONDS + ATTACK))
    while ((SECONDS < end)); do
        n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
        ((n > max)) && max=$n
        sleep 2
    done
    echo "$max" >"$WORK/estab.max"
) &
SAMPLER_PID=$!
PIDS+=("$SAMPLER_PID")
ATT=$(python3 "$WORK/dos.py" honest "$PORT" "$TOKEN" "$ATTACK" 200)
wait "$SLOW_PID" || true
wait "$SAMPLER_PID" || true
echo "honest under attack $ATT"
echo "slow connections $(cat "$WORK/slow.json")"
echo "most connections the edge held at once (ESTAB): $(cat "$WORK/estab.max" 2>/dev/null || echo '?')"
echo "== edge: $(rss)"

echo "== flood: $FLOOD requests with mutated tokens and random missing names"
FL=$(python3 "$WORK/dos.py" flood "$PORT" "$TOKEN" "$FLOOD")
echo "flood $FL"
echo "== edge: $(rss)"
kill -0 "$EDGE_PID" || { echo "the edge died" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/wmt/$TOKEN/bbb/360p/seg_00000.m4s")
echo "after the flood, a segment: $code"
grep -v '^$' "$WORK/edge.err" | tail -3 || true
