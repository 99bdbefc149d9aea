#!/usr/bin/env bash
# Full-reference quality of a distorted clip against its reference, as one JSON object:
#
#   tools/quality.sh [--no-vmaf] DISTORTED REFERENCE
#   {"psnr_y_mean":..,"psnr_y_min":..,"psnr_y_inf_frames":N,"ssim_y_mean":..,"ssim_y_min":..,
#    "vmaf_mean":..|null,"frames":N}
#
# PSNR and SSIM (luma only) come from the system ffmpeg's `psnr` and `ssim` filters, read from
# their per-frame stats files. psnr_y_mean is the arithmetic mean of the per-frame Y PSNR in dB;
# frames that are identical have PSNR inf, which is counted as 100 dB (in the mean and the min)
# and reported in psnr_y_inf_frames. VMAF (model vmaf_v0.6.1, pooled mean) needs an ffmpeg
# built with libvmaf, which Debian does not ship: the static ffmpeg 9.0.2 from PyPI
# imageio-ffmpeg==0.8.1 is installed into tools/.venv on first use. If that cannot be had,
# vmaf_mean is null (the reason goes to stderr) and the script still succeeds.
#
# Frames are paired by timestamp after both starts are reset to 0, and the comparison stops at
# the end of the shorter clip. If the sizes differ, DISTORTED is scaled (bicubic) to the size
# of REFERENCE. Both are converted to the reference's YUV format (yuv420p if it is not YUV).
#
# Environment:
#   LEAKTRACE_VMAF_FFMPEG   path of an ffmpeg with the libvmaf filter (skips the venv)
#   LEAKTRACE_NO_VMAF=1     same as --no-vmaf
#   LEAKTRACE_VMAF_THREADS  libvmaf n_threads (default 2)
#
# stdout carries only the JSON; progress and notes go to stderr. Exit 1 on error, 2 on usage.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly VENV="$SCRIPT_DIR/.venv"
readonly IMAGEIO_FFMPEG_VERSION=0.8.1
readonly IMAGEIO_FFMPEG_BINARY=ffmpeg-linux-x86_64-v9.0.2
readonly PSNR_INF_AS=100

note() { printf '[quality] %s\n' "$*" >&2; }
die() { printf '[quality] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

want_vmaf=1
[[ "${LEAKTRACE_NO_VMAF:-0}" == 1 ]] && want_vmaf=0
args=()
for arg in "$@"; do
    case "$arg" in
        --no-vmaf) want_vmaf=0 ;;
        -h|--help) usage ;;
        -*) printf 'quality.sh: unknown option %s\n' "$arg" >&2; usage ;;
        *) args+=("$arg") ;;
    esac
done
[[ ${#args[@]} -eq 2 ]] || usage
readonly DISTORTED=${args[0]} REFERENCE=${args[1]}
for f in "$DISTORTED" "$REFERENCE"; do
    [[ -f "$f" && -r "$f" ]] || die "cannot read $f"
done
for tool in ffmpeg ffprobe python3; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "$tool not found (Debian: scripts/install-system-deps.sh installs ffmpeg and python3-venv)"
done
VMAF_THREADS=${LEAKTRACE_VMAF_THREADS:-2}
[[ "$VMAF_THREADS" =~ ^[1-9][0-9]*$ ]] || die "LEAKTRACE_VMAF_THREADS must be a positive integer"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/quality.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# WORK goes into filter option strings, where ':' ',' ';' '[' and quotes are special.
[[ "$WORK" =~ ^[A-Za-z0-9_./-]+$ ]] || die "temporary directory path '$WORK' has characters ffmpeg filter options cannot take; set TMPDIR"

# probe FILE: prints "width height pix_fmt r_frame_rate" of the first video stream.
probe() {
    local out key value
    local -A kv=()
    out=$(ffprobe -v error -select_streams v:0 \
        -show_entries stream=width,height,pix_fmt,r_frame_rate -of default=nw=1 "$1") \
        || die "$1: ffprobe cannot read it"
    while IFS='=' read -r key value; do
        kv[$key]=$value
    done <<<"$out"
    [[ -n "${kv[width]:-}" && -n "${kv[height]:-}" ]] || die "$1: no video stream"
    printf '%s %s %s %s\n' "${kv[width]}" "${kv[height]}" "${kv[pix_fmt]:-unknown}" "${kv[r_frame_rate]:-0/0}"
}
d_info=$(probe "$DISTORTED")
r_info=$(probe "$REFERENCE")
read -r d_w d_h _ d_fps <<<"$d_info"
read -r r_w r_h r_pix r_fps <<<"$r_info"

case "$r_pix" in
    yuv420p|yuv422p|yuv444p|yuv420p10le|yuv422p10le|yuv444p10le) pix=$r_pix ;;
    *) pix=yuv420p; note "reference pixel format $r_pix; comparing in yuv420p" ;;
esac
[[ "$d_fps" == "$r_fps" ]] \
    || note "frame rates differ (distorted $d_fps, reference $r_fps); frames are paired by timestamp"

dist_chain="settb=AVTB,setpts=PTS-STARTPTS"
if [[ "$d_w" != "$r_w" || "$d_h" != "$r_h" ]]; then
    note "distorted is ${d_w}x${d_h}, reference ${r_w}x${r_h}: scaling distorted (bicubic)"
    dist_chain+=",scale=${r_w}:${r_h}:flags=bicubic"
fi
dist_chain+=",format=$pix"
ref_chain="settb=AVTB,setpts=PTS-STARTPTS,format=$pix"

# --- PSNR + SSIM (system ffmpeg). psnr passes its first input through, so ssim is chained.
note "PSNR/SSIM with $(command -v ffmpeg)"
ffmpeg -nostdin -hide_banner -loglevel error -i "$DISTORTED" -i "$REFERENCE" -filter_complex \
    "[0:v]${dist_chain}[d];[1:v]${ref_chain},split[r1][r2];[d][r1]psnr=stats_file=$WORK/psnr.log:shortest=1[p];[p][r2]ssim=stats_file=$WORK/ssim.log:shortest=1[out]" \
    -map '[out]' -f null - || die "ffmpeg psnr/ssim failed"

# --- VMAF ----------------------------------------------------------------------------------
# has_libvmaf FFMPEG: the binary runs here and lists the libvmaf filter.
has_libvmaf() {
    local filters
    filters=$("$1" -hide_banner -filters 2>/dev/null) || return 1
    [[ "$filters" == *" libvmaf "* ]]
}

# find_vmaf_ffmpeg: prints the path of an ffmpeg with libvmaf, or returns 1 (reason on stderr).
find_vmaf_ffmpeg() {
    local bin
    if [[ -n "${LEAKTRACE_VMAF_FFMPEG:-}" ]]; then
        has_libvmaf "$LEAKTRACE_VMAF_FFMPEG" && { printf '%s\n' "$LEAKTRACE_VMAF_FFMPEG"; return 0; }
        note "LEAKTRACE_VMAF_FFMPEG=$LEAKTRACE_VMAF_FFMPEG does not run or has no libvmaf filter"
        return 1
    fi
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        note "the imageio-ffmpeg static build is Linux x86_64 only; set LEAKTRACE_VMAF_FFMPEG"
        return 1
    fi
    mkdir -p "$VENV" || { note "cannot create $VENV"; return 1; }
    exec 8>"$VENV/.lock"
    flock 8   # concurrent runs: one creates the venv, the others wait
    bin=$("$VENV/bin/python" -c 'import imageio_ffmpeg, os; print(os.path.dirname(imageio_ffmpeg.__file__))' 2>/dev/null || true)
    if [[ -z "$bin" ]]; then
        note "installing imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION into $VENV (68 MB wheel, once)"
        if ! python3 -m venv "$VENV" >&2; then
            note "python3 -m venv failed (Debian: apt-get install python3-venv)"
            return 1
        fi
        if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION" >&2; then
            note "pip install imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION failed"
            return 1
        fi
        bin=$("$VENV/bin/python" -c 'import imageio_ffmpeg, os; print(os.path.dirname(imageio_ffmpeg.__file__))') \
            || { note "imageio_ffmpeg does not import after install"; return 1; }
    fi
    bin="$bin/binaries/$IMAGEIO_FFMPEG_BINARY"
    if [[ ! -x "$bin" ]]; then
        note "$bin missing (did the imageio-ffmpeg wheel change?)"
        return 1
    fi
    has_libvmaf "$bin" || { note "$bin has no libvmaf filter"; return 1; }
    printf '%s\n' "$bin"
}

vmaf_log=""
if [[ $want_vmaf -eq 1 ]]; then
    if vmaf_ffmpeg=$(find_vmaf_ffmpeg); then
        note "VMAF with $vmaf_ffmpeg (n_threads=$VMAF_THREADS)"
        if "$vmaf_ffmpeg" -nostdin -hide_banner -loglevel error -i "$DISTORTED" -i "$REFERENCE" -filter_complex \
            "[0:v]${dist_chain}[d];[1:v]${ref_chain}[r];[d][r]libvmaf=log_fmt=json:log_path=$WORK/vmaf.json:n_threads=$VMAF_THREADS:shortest=1" \
            -f null -; then
            vmaf_log=$WORK/vmaf.json
        else
            note "VMAF run failed; vmaf_mean is null"
        fi
    else
        note "no ffmpeg with libvmaf available; vmaf_mean is null"
    fi
fi

# --- JSON ------------------------------------------------------------------------------------
python3 - "$WORK/psnr.log" "$WORK/ssim.log" "$vmaf_log" "$PSNR_INF_AS" <<'PY'
import json, math, sys

psnr_path, ssim_path, vmaf_path, inf_as = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

def per_frame(path, key):
    """Values of `key` from an ffmpeg psnr/ssim stats file (lines of key:value pairs)."""
    values = []
    with open(path) as f:
        for line in f:
            fields = dict(kv.split(":", 1) for kv in line.split() if ":" in kv)
            if key not in fields:
                sys.exit(f"[quality] ERROR: no '{key}' in {path}: {line.strip()}")
            values.append(float(fields[key]))  # float() accepts "inf"
    return values

psnr = per_frame(psnr_path, "psnr_y")
ssim = per_frame(ssim_path, "Y")
if not psnr:
    sys.exit("[quality] ERROR: no frames were compared (empty or non-overlapping clips?)")
if len(psnr) != len(ssim):
    sys.exit(f"[quality] ERROR: psnr saw {len(psnr)} frames but ssim {len(ssim)}")
inf_frames = sum(1 for v in psnr if math.isinf(v))
psnr_capped = [inf_as if math.isinf(v) else v for v in psnr]
if inf_frames:
    print(f"[quality] {inf_frames} of {len(psnr)} frames identical in Y (PSNR inf, counted as {inf_as:g} dB)",
          file=sys.stderr)

vmaf = None
if vmaf_path:
    with open(vmaf_path) as f:
        log = json.load(f)
    vmaf = log["pooled_metrics"]["vmaf"]["mean"]
    n = len(log.get("frames", []))
    if n != len(psnr):
        print(f"[quality] note: VMAF saw {n} frames, PSNR/SSIM {len(psnr)}", file=sys.stderr)

out = {
    "psnr_y_mean": round(sum(psnr_capped) / len(psnr_capped), 4),
    "psnr_y_min": round(min(psnr_capped), 4),
    "psnr_y_inf_frames": inf_frames,
    "ssim_y_mean": round(sum(ssim) / len(ssim), 6),
    "ssim_y_min": round(min(ssim), 6),
    "vmaf_mean": None if vmaf is None else round(vmaf, 4),
    "frames": len(psnr),
}
print(json.dumps(out))
PY
