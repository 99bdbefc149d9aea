#!/usr/bin/env bash
# Invisibility and encode-cost measurement on real content (method in docs/BENCHMARKS.md).
#
# For each clip: one `leaktrace bench encode --keep` run encodes the plain (unmarked) stream
# and the A/B package with identical settings and prints the time ratio; then A and B (their
# segments joined) are compared with the plain encode (PSNR-Y, SSIM-Y by ffmpeg's own filters;
# VMAF by the libvmaf ffmpeg of PyPI imageio-ffmpeg), the VMAF drop is measured against the
# mezzanine, and the boundary flicker is measured.
#
# Usage: bash scripts/bench-invisibility.sh [OUTDIR]   (needs a release build and the corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/bench-invisibility}"
LT="${LEAKTRACE_BIN:-target/release/leaktrace}"
PRESET="${PRESET:-medium}"
mkdir -p "$OUT"
join() { # join VARIANT_DIR OUTFILE
    cat "$1/init.mp4" "$1"/seg_*.m4s > "$2"
}
for spec in "trailer_bbb_20s.mp4:720p" "flower_pan_1080p.mp4:1080p"; do
    clip="${spec%%:*}"; rung="${spec##*:}"
    name="${clip%.mp4}"
    dir="$OUT/$name"
    rm -rf "$dir"
    echo "== $clip at $rung (x264 preset $PRESET, CRF 20)" >&2
    "$LT" bench encode "corpus/cache/$clip" --title "$name" --ladder "$rung" --preset "$PRESET" --keep "$dir" --json > "$dir.encode.json"
    join "$dir/ab/$rung/a" "$dir/a.mp4"
    join "$dir/ab/$rung/b" "$dir/b.mp4"
    plain="$dir/plain/$rung.mp4"
    # Mezzanine at the rendition size (the clips are already at their rung's size).
    bash tools/quality.sh "$dir/a.mp4" "$plain" > "$dir.a-vs-plain.json"
    bash tools/quality.sh "$dir/b.mp4" "$plain" > "$dir.b-vs-plain.json"
    bash tools/quality.sh "$plain" "corpus/cache/$clip" > "$dir.plain-vs-mezz.json"
    bash tools/quality.sh "$dir/a.mp4" "corpus/cache/$clip" > "$dir.a-vs-mezz.json"
    bash tools/quality.sh "$dir/b.mp4" "corpus/cache/$clip" > "$dir.b-vs-mezz.json"
    "$LT" bench flicker "$dir/a.mp4" "$plain" --json > "$dir.flicker-a.json"
    "$LT" bench flicker "$dir/b.mp4" "$plain" --json > "$dir.flicker-b.json"
    python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
j = lambda s: json.load(open(f"{d}.{s}.json"))
enc = j("encode")
print(f"{d}: ratio A/B pair / plain = {enc['ratio']:.3f} (plain {enc['plain_seconds']:.1f} s, A/B {enc['ab_seconds']:.1f} s, mark {enc['mark_seconds']:.2f} s)")
for v in "ab":
    q = j(f"{v}-vs-plain")
    print(f"  {v.upper()} vs plain: PSNR-Y mean {q['psnr_y_mean']:.2f} dB, worst frame {q['psnr_y_min']:.2f} dB; SSIM-Y mean {q['ssim_y_mean']:.5f}, min {q['ssim_y_min']:.5f}; VMAF {q['vmaf_mean']}")
pm = j("plain-vs-mezz")["vmaf_mean"]
for v in "ab":
    vm = j(f"{v}-vs-mezz")["vmaf_mean"]
    if pm is not None and vm is not None:
        print(f"  VMAF vs mezzanine: plain {pm:.3f}, {v.upper()} {vm:.3f}, drop {pm - vm:+.3f}")
for v in "ab":
    f = j(f"flicker-{v}")
    print(f"  flicker {v.upper()}: residual RMS {f['residual_rms']:.3f}; residual change at boundaries {f['residual_change_at_boundaries_mean_abs']:.3f} (max {f['residual_change_at_boundaries_max_abs']:.3f}), inside segments {f['residual_change_inside_segments_mean_abs']:.3f}; content change {f['content_change_mean_abs']:.3f} grey levels")
PY
done
