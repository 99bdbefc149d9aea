#!/usr/bin/env bash
# Install the Debian 12 (bookworm) packages that leaktrace needs to build and test.
#
# Usage: scripts/install-system-deps.sh [EXTRA_PACKAGE...]
#
#   scripts/install-system-deps.sh                    # base set only
#   scripts/install-system-deps.sh postgresql wrk     # base set + extras for a given test
#
# Idempotent: every package is checked with `dpkg -s` first, and `apt-get update` +
# `apt-get install` run (once) only when something is actually missing. Needs root, or sudo.
#
# The Rust toolchain is not a Debian package here (rustup cannot be fetched from this
# network), so it is only checked: the script fails at the end if `cargo` is missing.
set -euo pipefail

readonly BASE_PACKAGES=(
    pkg-config
    libclang-dev
    libavcodec-dev
    libavformat-dev
    libavutil-dev
    libswscale-dev
    libswresample-dev
    ffmpeg
    libsqlite3-dev
    sqlite3
    libxml2-utils
    fonts-dejavu-core
    nodejs
    npm
    python3-venv
    ca-certificates
    xz-utils
    unzip
    curl
)

log() { printf '[install-system-deps] %s\n' "$*"; }
die() { printf '[install-system-deps] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option '$arg' (extra arguments are Debian package names)" ;;
        *)
            # Debian package names: lowercase alnum plus + - . ; optional :arch or =version.
            [[ "$arg" =~ ^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$ ]] \
                || die "'$arg' does not look like a Debian package name"
            ;;
    esac
done

for tool in dpkg apt-get; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: this script targets Debian 12 (bookworm)"
done

if [[ -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    os_id=$(. /etc/os-release && printf '%s %s' "${ID:-?}" "${VERSION_CODENAME:-?}")
    [[ "$os_id" == "debian bookworm" ]] \
        || log "warning: tested on Debian 12 (bookworm), this is '$os_id'; continuing"
fi

# node/npm may come from another source (e.g. NodeSource's nodejs, which bundles npm and
# conflicts with Debian's npm package). If both are already on PATH, leave them alone.
skip_node=0
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    skip_node=1
    log "node $(node --version 2>/dev/null || echo '?') and npm $(npm --version 2>/dev/null || echo '?') already on PATH; not managing nodejs/npm"
fi

# is_installed PKG: true when dpkg reports the package (name, without =version) installed.
is_installed() {
    local name=${1%%=*} status
    status=$(dpkg -s "$name" 2>/dev/null | sed -n 's/^Status: //p') || return 1
    [[ "$status" == "install ok installed" ]]
}

wanted=()
for pkg in "${BASE_PACKAGES[@]}"; do
    if [[ $skip_node -eq 1 && ( "$pkg" == nodejs || "$pkg" == npm ) ]]; then
        continue
    fi
    wanted+=("$pkg")
done
wanted+=("$@")

missing=()
declare -A seen=()
for pkg in "${wanted[@]}"; do
    [[ -n "${seen[$pkg]:-}" ]] && continue
    seen[$pkg]=1
    is_installed "$pkg" || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#seen[@]} packages already installed; nothing to do"
else
    log "missing: ${missing[*]}"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available; run as root"
        sudo_cmd=(sudo)
    fi
    log "running apt-get update"
    "${sudo_cmd[@]}" apt-get update -q
    log "running apt-get install for ${#missing[@]} package(s)"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    still_missing=()
    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || still_missing+=("$pkg")
    done
    [[ ${#still_missing[@]} -eq 0 ]] || die "still not installed after apt-get: ${still_missing[*]}"
    log "installed: ${missing[*]}"
fi

# Rust toolchain: check only.
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        die "cargo exists at ${CARGO_HOME:-$HOME/.cargo}/bin/cargo but is not on PATH; add that directory to PATH"
    fi
    die "cargo (Rust toolchain) not found. It cannot be installed by this script (rustup is not reachable from this network); install Rust with rustup or your distribution's rustc/cargo and put cargo on PATH"
fi
log "cargo: $(cargo --version 2>/dev/null || echo 'present (version unknown)')"
