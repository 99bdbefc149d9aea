#!/usr/bin/env bash
# leaktrace's main job end to end, on the bundled defaults (SQLite, the real corpus), from a
# fresh Debian 12 machine (run as root). Everything it starts listens on 127.0.0.1.
#
#  1. installs what is missing, fetches the corpus (Big Buck Bunny, CC-BY 3.0), builds leaktrace;
#  2. `leaktrace init` a working directory (config, 0600 master key, SQLite database);
#  3. `leaktrace embed` 2.5 minutes of the film into a TS 104 002 A/B package (720p + 360p H.264)
#     and checks it with tools no one here wrote (hls-parser, xmllint with the DASH MPD schema);
#  4. issues five viewing sessions and plays each one's stream through the edge: every viewer
#     gets their own sequence of A/B variants; a request without a token is refused;
#  5. one viewer leaks: their stream is cropped, scaled down and re-encoded as pirates do;
#     `leaktrace detect` on the leak accuses exactly that viewer and draws the plot; a copy of
#     the film from outside leaktrace accuses no one;
#  6. a small pirate site on loopback offers the leak; `leaktrace crawl --once` finds it;
#  7. `leaktrace takedown` files the notice for that finding and sends it in dry-run mode;
#     `leaktrace evidence verify` checks the evidence bundle.
#
# Usage: bash scripts/demo.sh [WORKDIR]   (default: ./demo; replaced if it exists)
#        LEAKTRACE_DEMO_SECONDS=N   length of the excerpt embedded (default 150; 120..596: over
#                                   fewer 2-s positions some viewers' codewords cannot reach
#                                   the 1e-6 the demo accuses at)
#        LEAKTRACE_DEMO_BIN=PATH    run this leaktrace binary instead of building one (the
#                                   end-to-end test tests/demo.rs runs the demo this way)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
export PATH="$HOME/.cargo/bin:$PATH"
WORK="${1:-demo}"
SECONDS_EMBEDDED="${LEAKTRACE_DEMO_SECONDS:-150}"
[[ "$SECONDS_EMBEDDED" =~ ^[0-9]+$ ]] && ((SECONDS_EMBEDDED >= 120 && SECONDS_EMBEDDED <= 596)) \
    || { echo "LEAKTRACE_DEMO_SECONDS must be a whole number of seconds in 120..596" >&2; exit 2; }

step=0
log() { step=$((step + 1)); printf '\n\033[1m[demo %d] %s\033[0m\n' "$step" "$*"; }
note() { printf '  %s\n' "$*"; }
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }

log "system packages, test corpus, npm validators"
bash scripts/install-system-deps.sh
bash corpus/fetch.sh --no-derived
if [ ! -d tools/node_modules/hls-parser ]; then
    (cd tools && npm ci --no-audit --no-fund)
fi
if [ -n "${LEAKTRACE_DEMO_BIN:-}" ]; then
    LT="$LEAKTRACE_DEMO_BIN"
    [ -x "$LT" ] || { echo "LEAKTRACE_DEMO_BIN=$LT is not an executable" >&2; exit 2; }
else
    log "build (release)"
    cargo build --release --locked -p leaktrace
    LT="$REPO/target/release/leaktrace"
fi
FILM="$REPO/corpus/cache/bbb.mp4"
t_start=$(date +%s)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rm -rf "$WORK"
log "leaktrace init $WORK"
"$LT" init "$WORK"
WORK="$(cd "$WORK" && pwd)"
cd "$WORK"

frames=$((SECONDS_EMBEDDED * 24))
log "leaktrace embed: the first $SECONDS_EMBEDDED s of Big Buck Bunny, A/B variants at 720p and 360p"
"$LT" embed "$FILM" --title bbb --out package --ladder 720p,360p --max-frames "$frames" --preset veryfast
note "package: $(du -sh package | cut -f1), $(ls package/720p/a | grep -c '^seg_') positions per rendition"
node "$REPO/tools/check-hls.mjs" package/master.m3u8 package/*/playlist.m3u8
xmllint --noout --nonet --schema "$REPO/tests/schemas/dash/DASH-MPD.xsd" package/manifest.mpd

log "five viewers, each streamed through the edge on loopback"
"$LT" edge --root package --listen 127.0.0.1:0 > edge.out 2> edge.log &
PIDS+=($!)
for _ in $(seq 300); do grep -q '^listening' edge.out 2>/dev/null && break; sleep 0.1; done
EDGE="$(awk '/^listening/ {print $2; exit}' edge.out)"
[ -n "$EDGE" ] || { cat edge.log >&2; echo "the edge did not start" >&2; exit 1; }
note "edge: $EDGE"
declare -A SID
for viewer in alice bob carol dave erin; do
    json=$("$LT" session new --title bbb --account "$viewer" --ttl 2h --json)
    SID[$viewer]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])' <<<"$json")
    path=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])' <<<"$json")
    got=$(python3 "$REPO/scripts/demo_stream.py" "$EDGE" "$path" package "$viewer.mp4")
    printf '  %-6s session %s  %s\n' "$viewer" "${SID[$viewer]}" "$got"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$EDGE/bbb/720p/seg_00000.m4s")
note "a segment request without a token: HTTP $code"
note "the streams differ only in the A/B variant at each position; the pictures look the same"

log "carol leaks: her stream, cropped 8 %, scaled to 640x360 and re-encoded (x264 CRF 28)"
ffmpeg -hide_banner -loglevel error -y -i carol.mp4 -an \
    -vf "crop=iw*0.92:ih*0.92,scale=640:360" -c:v libx264 -preset veryfast -crf 28 \
    leak-carol.mp4
note "leak-carol.mp4: $(du -h leak-carol.mp4 | cut -f1)"

log "leaktrace detect leak-carol.mp4 --title bbb --plot leak-carol.png"
"$LT" detect leak-carol.mp4 --title bbb --plot leak-carol.png | tee leak-carol.txt
# check_accused FILE SESSION|none: the demo fails unless the report accuses exactly SESSION.
check_accused() {
    local got
    got=$(awk '$1 == "accused" && $2 == "session" {print $3}' "$1" | sort -u | paste -sd, -)
    if [ "$2" = none ]; then
        [ -z "$got" ] || { echo "demo: $1 accuses $got, expected no one" >&2; exit 1; }
    else
        [ "$got" = "$2" ] || { echo "demo: $1 accuses '${got:-no one}', expected $2" >&2; exit 1; }
    fi
}
check_accused leak-carol.txt "${SID[carol]}"
note "=> carol (${SID[carol]}) is accused, and no one else of the five"

log "an unrelated copy: the same film from outside leaktrace (never marked), same re-encode"
ffmpeg -hide_banner -loglevel error -y -i "$FILM" -frames:v "$frames" -an \
    -vf "crop=iw*0.92:ih*0.92,scale=640:360" -c:v libx264 -preset veryfast -crf 28 \
    unrelated.mp4
"$LT" detect unrelated.mp4 --title bbb | tee unrelated.txt
check_accused unrelated.txt none
note "=> no one is accused"

log "a pirate site on loopback offers both copies; leaktrace crawl --once"
mkdir -p site/watch site/media
cp leak-carol.mp4 site/media/Big.Buck.Bunny.2008.720p.WEB-DL.mp4
cp unrelated.mp4 site/media/Big.Buck.Bunny.2008.360p.CAM.mp4
cat > site/index.html <<'HTML'
<html><head><title>FreeFlix - new releases</title></head><body>
<a href="/watch/big-buck-bunny-2008.html">Big Buck Bunny (2008) 720p WEB-DL</a>
<a href="/watch/big-buck-bunny-2008-cam.html">Big Buck Bunny (2008) CAM</a>
<a href="/watch/cooking.html">Cooking with herbs (2021)</a>
</body></html>
HTML
cat > site/watch/big-buck-bunny-2008.html <<'HTML'
<html><head><title>Watch Big Buck Bunny (2008) online free - FreeFlix</title></head><body>
<video controls><source src="/media/Big.Buck.Bunny.2008.720p.WEB-DL.mp4" type="video/mp4"></video>
</body></html>
HTML
cat > site/watch/big-buck-bunny-2008-cam.html <<'HTML'
<html><head><title>Big Buck Bunny (2008) CAM - FreeFlix</title></head><body>
<video controls src="/media/Big.Buck.Bunny.2008.360p.CAM.mp4"></video>
</body></html>
HTML
cat > site/watch/cooking.html <<'HTML'
<html><head><title>Cooking with herbs (2021)</title></head><body>Basil, thyme.</body></html>
HTML
SITE_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory site "$SITE_PORT" > site.log 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$SITE_PORT/" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$SITE_PORT/" \
    || { cat site.log >&2; echo "demo: the pirate site did not start" >&2; exit 1; }
note "pirate site: http://127.0.0.1:$SITE_PORT/"
cat > crawler.toml <<TOML
[sources]
seeds = ["http://127.0.0.1:$SITE_PORT/index.html"]

[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
year = 2008

[politeness]
min_delay_ms = 0

[fetch]
allow_loopback = true   # the demo's site is on loopback; never in production
concurrency = 2

[detect]
fp = 1e-6
TOML
"$LT" crawl --once
"$LT" findings list
"$LT" findings list --json > findings.json
# finding_of SUFFIX: the id of the finding whose media URL ends in SUFFIX.
finding_of() {
    python3 -c 'import json, sys
for f in json.load(open(sys.argv[1])):
    if f["media_url"].endswith(sys.argv[2]): print(f["finding_id"])' findings.json "$1"
}
LEAK_FINDING=$(finding_of /Big.Buck.Bunny.2008.720p.WEB-DL.mp4)
CAM_FINDING=$(finding_of /Big.Buck.Bunny.2008.360p.CAM.mp4)
[ -n "$LEAK_FINDING" ] || { echo "demo: the crawl did not find the leak" >&2; exit 1; }
"$LT" findings show "$LEAK_FINDING" --json > finding.json
python3 - "${SID[carol]}" finding.json <<'PY'
import json, sys
f = json.load(open(sys.argv[2]))
ids = [a["session_id"] for a in f.get("accused", [])]
if ids != [sys.argv[1]]:
    sys.exit(f"demo: the crawler's finding accuses {ids}, expected [{sys.argv[1]}]")
p = f["accused"][0]["probability"]
print(f"  => finding {f['finding_id']}: {f['media_url']} accuses carol ({ids[0]}), p = {p:.1e}")
PY

log "leaktrace takedown: file the notice for the leak, send it (dry-run), verify the evidence"
cat > takedown.toml <<'TOML'
mode = "dry-run"          # "approval" (the default) or "auto" send for real
fp_max = 1e-6
evidence_dir = "evidence"

[complainant]
name = "Jane Roe"
organization = "Example Studios Anti-Piracy"
principal = "Blender Foundation"
email = "antipiracy@studio.test"
address = "1 Example Way, Springfield, US"

[works.bbb]
title = "Big Buck Bunny"
description = "Animated short film (2008)"
authorized_url = "https://studio.test/films/bbb"

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
from = "Example Studios Anti-Piracy <antipiracy@studio.test>"

[[recipient]]
host = "127.0.0.1"
level = "host"
name = "Loopback Hosting"
email = "abuse@hosting.test"
TOML
"$LT" takedown file "$LEAK_FINDING"
if [ -n "$CAM_FINDING" ]; then
    note "the unrelated copy's finding meets the same gate:"
    "$LT" takedown file "$CAM_FINDING" || true
fi
"$LT" takedown send > send.txt
sed -n '1,45p' send.txt
note "... ($(wc -l < send.txt) lines in all: $WORK/send.txt)"
"$LT" takedown list
"$LT" evidence verify "evidence/$LEAK_FINDING.tar"

log "done in $(elapsed) after the build"
note "work directory: $WORK"
note "  package/             the A/B package (HLS + DASH, WMPaceInfo, reference index)"
note "  alice.mp4 ... .mp4   each viewer's stream as the edge served it"
note "  leak-carol.mp4       the pirate copy; leak-carol.png the detection plot"
note "  evidence/            the evidence bundle filed with the notice"
