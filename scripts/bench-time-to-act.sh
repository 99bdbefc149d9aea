#!/usr/bin/env bash
# Time to act on a live restream, on loopback: from a pirate restream's first segment to the
# accusation, to the edge's refusal of the session, and to the restream's end.
#
# Usage: scripts/bench-time-to-act.sh [--runs N] [--readrate R] [--segment 2s] [--quick]
#
# Runs the end-to-end test `tests/time_to_act.rs` (release-like test build) with:
#   - bbb.mp4 embedded at 360p, 300 s (7200 frames) in positions of --segment (default 2s);
#   - 20 sessions issued, the accusation threshold set to 2e-11 over the registry: a session
#     accused at 1e-12 on its own, the bound of 1e-6 among 1e6 sessions;
#   - N runs (default 5), each with another pirate session restreaming at R x real time
#     (default 1: a live restream as it plays), re-encoded at 720p, found by `crawl --once`
#     on a loopback site, decided while captured, revoked by the `auto` policy;
# then prints each run's figures and the median and the worst of each.
# --quick: 2 runs at 4x real time with 1-s positions (a check of the script, not the figure).
#
# Needs ffmpeg, python3 and the corpus (corpus/fetch.sh). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
READRATE=1
SEGMENT=2s
FRAMES=7200
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --readrate) READRATE="$2"; shift 2 ;;
        --segment) SEGMENT="$2"; shift 2 ;;
        --quick) RUNS=2; READRATE=4; SEGMENT=1s; FRAMES=2400; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

bash corpus/fetch.sh >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
LEAKTRACE_TTA_RUNS="$RUNS" LEAKTRACE_TTA_READRATE="$READRATE" LEAKTRACE_TTA_SEGMENT="$SEGMENT" \
LEAKTRACE_TTA_FRAMES="$FRAMES" LEAKTRACE_TTA_FP=2e-11 \
    cargo test --release --test time_to_act -- --nocapture 2>&1 | tee "$log" | grep -E "^time-to-act|panicked|FAILED|test result" || true

python3 - "$log" <<'EOF'
import re, statistics, sys
rows = [tuple(map(float, m.groups())) for m in
        (re.search(r"accused ([\d.]+) s refused ([\d.]+) s pirate-ended ([\d.]+) s", l)
         for l in open(sys.argv[1])) if m]
if not rows:
    sys.exit("no run finished")
for name, i in (("accusation", 0), ("refused by the edge", 1), ("restream ended", 2)):
    v = [r[i] for r in rows]
    print(f"{name:>20}: median {statistics.median(v):6.1f} s   worst {max(v):6.1f} s   ({len(v)} runs)")
EOF
