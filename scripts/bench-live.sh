#!/usr/bin/env bash
# A live channel on this machine: does `leaktrace live` keep up with a 720p30 feed plus a 360p
# rung, A and B, x264 veryfast, in real time, and how much latency does it add against a plain
# FFmpeg live HLS packaging of the same feed at the same settings?
#
# Usage: scripts/bench-live.sh [--minutes N] [--quick] [--part DURATION]
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
# --part DURATION (e.g. 500ms): the same stages with LL-HLS low-latency parts (`live --part`,
#   x264 `zerolatency`). Stages 1 and 2 also give the parts published and the part latency (a
#   part's first frame in -> the part published); stage 3 notes, for leaktrace, when the first
#   part of segment k (seg_%05d.p0.m4s, an EXT-X-PART line of the 720p playlist) and when the
#   whole segment appear, each against the same FFmpeg segment k.
#
# Needs ffmpeg, python3 and the corpus (corpus/fetch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=10
LAT_S=60
PART=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --quick) MINUTES=1; LAT_S=20; shift ;;
        --part) PART="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

source scripts/bench-live-setup.sh
# With --part every `live` run below publishes low-latency parts.
PART_ARGS=()
WITH=""
if [[ -n "$PART" ]]; then
    PART_ARGS=(--part "$PART")
    WITH=", LL-HLS parts of $PART"
fi

echo "== 1. margin: 720p + 360p, A and B, as fast as it goes (60 s of channel$WITH)"
(cd "$WORK" && "$BIN" live "$SRC" --out margin --title margin --ladder 720p,360p \
    --max-positions 30 ${PART_ARGS[@]+"${PART_ARGS[@]}"} --json) | tail -1 > "$WORK/margin.json"
python3 - "$WORK/margin.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
speed = s["published_seconds"] / s["elapsed_seconds"]
fps = s["frames"] / s["elapsed_seconds"]
print(f"published {s['published_seconds']:.0f} s of channel in {s['elapsed_seconds']:.1f} s: "
      f"{speed:.2f}x real time ({fps:.1f} fps against 30)")
if s.get("parts", 0) > 0:
    print(f"{s['parts']} parts published")
PY

echo "== 2. sustained: $MINUTES min at the feed's rate$WITH"
(cd "$WORK" && "$BIN" live "$SRC" --realtime --loop --out ch --title ch --ladder 720p,360p \
    --max-positions $((MINUTES * 30)) ${PART_ARGS[@]+"${PART_ARGS[@]}"} --json) \
    > "$WORK/sustained.jsonl"
python3 - "$WORK/sustained.jsonl" "$PART" <<'PY'
import json, sys
part = sys.argv[2]
rows = [json.loads(l) for l in open(sys.argv[1])]
s = [r for r in rows if r["event"] == "summary"][-1]
lat = sorted(r["latency_s"] for r in rows if r["event"] == "published")
print(f"{s['positions']} positions ({s['published_seconds']:.0f} s) in {s['elapsed_seconds']:.1f} s; "
      f"fell behind the feed by {s['max_lag_s']:.3f} s at worst; "
      f"{s['dropped']} frames dropped, {s['repeated']} repeated, {s['reconnects']} reconnects")
print(f"publication latency: median {lat[len(lat)//2]:.2f} s, p95 {lat[int(len(lat)*0.95)]:.2f} s, "
      f"worst {lat[-1]:.2f} s (a position's first frame in -> published; the segment is 2 s)")
if part:
    print(f"part latency: median {s['part_latency_median_s']:.2f} s, worst "
          f"{s['part_latency_max_s']:.2f} s over {s['parts']} parts (a part's first frame in -> "
          f"published; the part is {part})")
PY

echo "== 3. latency added against plain FFmpeg live HLS ($LAT_S s, 720p only$WITH)"
python3 - "$BIN" "$SRC" "$WORK" "$LAT_S" "$PART" <<'PY'
import os, re, subprocess, sys, time, statistics
bin_, src, work, secs, part = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
n = secs // 2
# The first part of segment k in an LL-HLS playlist (not the preload hint, which names a part
# not yet published).
PART0 = re.compile(r'^#EXT-X-PART:.*URI="seg_(\d+)\.p0\.m4s"')

def watch(cmd, playlist, cwd):
    """Runs cmd and notes when segment k, and the first part of segment k, first appear in the
    playlist: {k: seconds after start - 2 k} for each."""
    seen = {}
    seen_part0 = {}
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
            elif m := PART0.match(line):
                seen_part0.setdefault(int(m.group(1)), now - start)
            elif line and not line.startswith("#"):
                names.append(line)
        for k in range(len(names)):
            seen.setdefault(seq + k, now - start)
        time.sleep(0.01)
    p.terminate()
    p.wait()
    def rel(d):
        return {k: t - 2 * k for k, t in d.items() if k < n - 1}
    return rel(seen), rel(seen_part0)

os.makedirs(f"{work}/ff", exist_ok=True)
ours, ours_part0 = watch(
    [bin_, "live", src, "--realtime", "--out", "lat", "--title", "lat", "--ladder", "720p",
     "--max-positions", str(n), "--window", str(n)] + (["--part", part] if part else []),
    f"{work}/lat/720p/playlist.m3u8", work)
ff, _ = watch(["ffmpeg", "-nostdin", "-v", "error", "-re", "-i", src, "-t", str(secs), "-an",
               "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
               "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
               "-f", "hls", "-hls_time", "2", "-hls_list_size", str(n), "-hls_segment_type", "fmp4",
               "playlist.m3u8"], f"{work}/ff/playlist.m3u8", f"{work}/ff")
both = sorted(set(ours) & set(ff))
diff = [ours[k] - ff[k] for k in both]
print(f"segments compared: {len(both)}")
if part:
    both0 = sorted(set(ours_part0) & set(ff))
    diff0 = [ours_part0[k] - ff[k] for k in both0]
    print(f"leaktrace live, first part ({part}): median "
          f"{statistics.median(ours_part0[k] for k in both0):.2f} s after the segment's first frame "
          f"({len(both0)} segments)")
    print(f"leaktrace live, whole segment: median {statistics.median(ours[k] for k in both):.2f} s")
    print(f"ffmpeg hls:     median {statistics.median(ff[k] for k in both):.2f} s")
    print(f"first part - ffmpeg segment: median {statistics.median(diff0):.2f} s, "
          f"worst {max(diff0):.2f} s")
    print(f"whole segment - ffmpeg segment: median {statistics.median(diff):.2f} s, "
          f"worst {max(diff):.2f} s (target: at most one segment, 2 s)")
else:
    print(f"leaktrace live: median {statistics.median(ours[k] for k in both):.2f} s after the segment's first frame")
    print(f"ffmpeg hls:     median {statistics.median(ff[k] for k in both):.2f} s")
    print(f"added by A/B marking: median {statistics.median(diff):.2f} s, worst {max(diff):.2f} s "
          f"(target: at most one segment, 2 s)")
PY
