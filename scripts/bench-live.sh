#!/usr/bin/env bash
# A live channel on this machine: does `leaktrace live` keep up with a 720p30 feed plus a 360p
# rung, A and B, x264 veryfast, in real time, and how much latency does it add against a plain
# FFmpeg live HLS packaging of the same feed at the same settings?
#
# Usage: scripts/bench-live.sh [--minutes N] [--quick]
#
# The feed: the first 120 s of the corpus's bbb.mp4 converted to 720p30 (cached in
# target/bench-live/), read at its own rate (--realtime) and looped.
#   1. margin: the channel packaged as fast as it goes (no pacing), 60 s of channel: channel
#      seconds published per wall-clock second (≥ 1.0 is real time; the excess is the margin);
#   2. sustained: N minutes (default 10) at the feed's rate: how far the packager ever fell
#      behind the feed's clock (max_lag_s), frames dropped or repeated (0 = no input lost),
#      and the publication latency of each position (first frame in → position published);
#   3. latency: 60 s of the feed at its rate into (a) `leaktrace live --ladder 720p` and (b)
#      `ffmpeg -re … -f hls -hls_time 2` (one 720p encode, keyframe every 2 s, fMP4), both
#      started by the same watcher, which notes when each segment k first appears in the
#      playlist; latency_k = that time − (start + 2 k) for both. The figure is the median of
#      (a) − (b): what the A/B marking adds, against the target of one segment duration.
# --quick: 1 minute sustained and 20 s of latency (a check of the script, not the figure).
#
# Needs ffmpeg, python3 and the corpus (corpus/fetch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=10
LAT_S=60
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --quick) MINUTES=1; LAT_S=20; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

bash corpus/fetch.sh >/dev/null
cargo build --release -q
BIN="$PWD/target/release/leaktrace"
CACHE="$PWD/target/bench-live"
mkdir -p "$CACHE"
SRC="$CACHE/bbb-720p30.mp4"
if [[ ! -s "$SRC" ]]; then
    ffmpeg -nostdin -v error -y -i corpus/cache/bbb.mp4 -t 120 -an -vf fps=30 \
        -c:v libx264 -preset veryfast -crf 16 "$SRC"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" init "$WORK" >/dev/null

echo "== 1. margin: 720p + 360p, A and B, as fast as it goes (60 s of channel)"
(cd "$WORK" && "$BIN" live "$SRC" --out margin --title margin --ladder 720p,360p \
    --max-positions 30 --json) | tail -1 > "$WORK/margin.json"
python3 - "$WORK/margin.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
speed = s["published_seconds"] / s["elapsed_seconds"]
fps = s["frames"] / s["elapsed_seconds"]
print(f"published {s['published_seconds']:.0f} s of channel in {s['elapsed_seconds']:.1f} s: "
      f"{speed:.2f}x real time ({fps:.1f} fps against 30)")
PY

echo "== 2. sustained: $MINUTES min at the feed's rate"
(cd "$WORK" && "$BIN" live "$SRC" --realtime --loop --out ch --title ch --ladder 720p,360p \
    --max-positions $((MINUTES * 30)) --json) > "$WORK/sustained.jsonl"
python3 - "$WORK/sustained.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
s = [r for r in rows if r["event"] == "summary"][-1]
lat = sorted(r["latency_s"] for r in rows if r["event"] == "published")
print(f"{s['positions']} positions ({s['published_seconds']:.0f} s) in {s['elapsed_seconds']:.1f} s; "
      f"fell behind the feed by {s['max_lag_s']:.3f} s at worst; "
      f"{s['dropped']} frames dropped, {s['repeated']} repeated, {s['reconnects']} reconnects")
print(f"publication latency: median {lat[len(lat)//2]:.2f} s, p95 {lat[int(len(lat)*0.95)]:.2f} s, "
      f"worst {lat[-1]:.2f} s (a position's first frame in -> published; the segment is 2 s)")
PY

echo "== 3. latency added against plain FFmpeg live HLS ($LAT_S s, 720p only)"
python3 - "$BIN" "$SRC" "$WORK" "$LAT_S" <<'PY'
import os, subprocess, sys, time, statistics
bin_, src, work, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n = secs // 2

def watch(cmd, playlist, cwd):
    seen = {}
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = start + secs + 60
    while len(seen) < n - 1 and time.monotonic() < deadline:
        try:
            text = open(playlist).read()
        except OSError:
            text = ""
        now = time.monotonic()
        seq = 0
        names = []
        for line in text.splitlines():
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                seq = int(line.split(":")[1])
            elif line and not line.startswith("#"):
                names.append(line)
        for k in range(len(names)):
            seen.setdefault(seq + k, now - start)
        time.sleep(0.01)
    p.terminate()
    p.wait()
    return {k: t - 2 * k for k, t in seen.items() if k < n - 1}

os.makedirs(f"{work}/ff", exist_ok=True)
ours = watch([bin_, "live", src, "--realtime", "--out", "lat", "--title", "lat", "--ladder", "720p",
              "--max-positions", str(n), "--window", str(n)], f"{work}/lat/720p/playlist.m3u8", work)
ff = watch(["ffmpeg", "-nostdin", "-v", "error", "-re", "-i", src, "-t", str(secs), "-an",
            "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
            "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
            "-f", "hls", "-hls_time", "2", "-hls_list_size", str(n), "-hls_segment_type", "fmp4",
            "playlist.m3u8"], f"{work}/ff/playlist.m3u8", f"{work}/ff")
both = sorted(set(ours) & set(ff))
diff = [ours[k] - ff[k] for k in both]
print(f"segments compared: {len(both)}")
print(f"leaktrace live: median {statistics.median(ours[k] for k in both):.2f} s after the segment's first frame")
print(f"ffmpeg hls:     median {statistics.median(ff[k] for k in both):.2f} s")
print(f"added by A/B marking: median {statistics.median(diff):.2f} s, worst {max(diff):.2f} s "
      f"(target: at most one segment, 2 s)")
PY
