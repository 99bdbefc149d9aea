# Sourced by scripts/bench-live.sh and scripts/bench-glass.sh (from the repository root, with
# BUILD=0 to skip the build): the corpus, the release `leaktrace` (in $CARGO_TARGET_DIR or
# target/), the live feed's source and a working directory removed on exit. Sets BIN, SRC, WORK.
#
# The source: the first 120 s of the corpus's bbb.mp4 at 720p30 (x264 CRF 16, no audio), cached
# in target/bench-live/.
bash corpus/fetch.sh >/dev/null
[[ ${BUILD:-1} == 0 ]] || cargo build --release -q --locked
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/leaktrace"
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
