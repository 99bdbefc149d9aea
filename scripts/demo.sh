#!/usr/bin/env bash
# leaktrace end to end on the bundled defaults (SQLite, the real corpus), from a fresh
# Debian 12 machine (run as root).
#
# 1. installs what is missing and fetches the corpus (Big Buck Bunny trailer, CC-BY 3.0);
# 2. builds leaktrace (release);
# 3. `leaktrace init` a working directory (config, 0600 master key, SQLite database);
# 4. `leaktrace embed` the 20 s trailer clip into a TS 104 002 A/B package (720p + 360p H.264);
# 5. checks the package with tools no one here wrote: hls-parser (strict), xmllint with the
#    DASH MPD schema, ffprobe on a segment of each variant;
# 6. issues two viewing sessions (signed CWT tokens recorded in SQLite), serves the package
#    through the edge on 127.0.0.1, and has ffmpeg fetch each session's stream through it:
#    each gets its own A/B sequence; a request without a token is refused.
#
# Usage: bash scripts/demo.sh [WORKDIR]   (default: ./demo)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
WORK="${1:-demo}"
log() { printf '\n[demo] %s\n' "$*"; }

log "system packages"
bash scripts/install-system-deps.sh
log "test corpus"
bash corpus/fetch.sh
if [ ! -d tools/node_modules/hls-parser ]; then
    (cd tools && npm ci --no-audit --no-fund)
fi
log "build"
cargo build --release --locked -p leaktrace-cli
LT="$PWD/target/release/leaktrace"

rm -rf "$WORK"
log "leaktrace init $WORK"
"$LT" init "$WORK"
log "leaktrace embed (A/B variants, 720p + 360p)"
CLIP="$PWD/corpus/cache/trailer_bbb_20s.mp4"
(cd "$WORK" && "$LT" embed "$CLIP" --title bbb-trailer --out package --ladder 720p,360p)

log "validating the package with external tools"
node tools/check-hls.mjs "$WORK/package/master.m3u8" "$WORK"/package/*/playlist.m3u8
xmllint --noout --nonet --schema ../shared/schemas/dash/DASH-MPD.xsd "$WORK/package/manifest.mpd"
for v in a b; do
    cat "$WORK/package/720p/$v/init.mp4" "$WORK/package/720p/$v/seg_00003.m4s" > "$WORK/probe-$v.mp4"
    printf '720p/%s/seg_00003.m4s: ' "$v"
    ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$WORK/probe-$v.mp4"
    rm -f "$WORK/probe-$v.mp4"
done
printf 'titles in the store: '
sqlite3 "$WORK/leaktrace.db" "select title_id || ' (' || position_count || ' positions)' from titles"
log "sessions and the edge (loopback only)"
PORT="${LEAKTRACE_DEMO_PORT:-18080}"
(cd "$WORK" && exec "$LT" edge --root package --listen "127.0.0.1:$PORT") > "$WORK/edge.log" 2>&1 &
EDGE_PID=$!
trap 'kill "$EDGE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
for viewer in alice bob; do
    path=$(cd "$WORK" && "$LT" session new --title bbb-trailer --account "$viewer" --ttl 1h --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
    ffmpeg -hide_banner -loglevel error -y -i "http://127.0.0.1:$PORT$path" -map 0:v:0 -c copy "$WORK/$viewer.mp4"
    frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$WORK/$viewer.mp4")
    printf '%-6s got %s frames through the edge, stream sha256 %s\n' "$viewer" "$frames" "$(sha256sum "$WORK/$viewer.mp4" | cut -c1-16)"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/bbb-trailer/720p/seg_00000.m4s")
echo "a segment request without a token: HTTP $code"
kill "$EDGE_PID"; wait "$EDGE_PID" 2>/dev/null || true
trap - EXIT
log "done: package in $WORK/package, the two sessions' streams in $WORK/{alice,bob}.mp4"
