#!/usr/bin/env bash
# Glass-to-glass latency of a live channel: the wall clock burned into the source's pictures,
# read back from the pictures a real player puts on screen.
#
# Usage: scripts/bench-glass.sh [--seconds N] [--part DURATION] [--ladder LIST] [--audio] [--quick]
#                                [--no-build]
#
# The source: the first 120 s of the corpus's bbb.mp4 at 720p30 (as scripts/bench-live.sh),
# looped at its own rate by FFmpeg, which burns the wall clock (`time(0)`, in centiseconds,
# 24 bits) into each picture as it emits it: a bar of 24 black or white 40×40 squares along the
# top edge. The feed goes to UDP MPEG-TS on 127.0.0.1 (x264 ultrafast, zerolatency, 8 Mbit/s).
#
# Two chains, one after the other, each played by hls.js in headless Chromium for N seconds
# (default 60) with its default live target (three segments behind the live edge) and
# `maxLiveSyncPlaybackRate: 1.5`, so that a slow start is caught up and both chains are measured
# at the player's steady distance from their live edge:
#   (a) `leaktrace live udp://…` (A and B, `--ladder`, default 720p, 2-s segments) served by
#       `leaktrace edge` to one session;
#   (b) FFmpeg's own live HLS packaging of the same feed at the same settings (one x264
#       veryfast CRF 20 encode at 720p, keyframe every 2 s, fMP4, 2-s segments) served by a
#       static loopback HTTP server.
# With --audio the feed also carries a 440-Hz tone (AAC, 48 kHz), which chain (a) packages as
# its audio rendition (in parts with --part) and chain (b) muxes into its segments.
# With --part DURATION, chain (a) publishes LL-HLS parts (`live --part`) and hls.js plays it in
# its low-latency mode; chain (b) stays as it is (FFmpeg's HLS muxer has no parts).
#
# The page draws every frame the video element presents (requestVideoFrameCallback) into a
# canvas, reads the squares, and takes `expected display time − burned time` as that frame's
# latency: the whole chain from the source's clock to the screen (feed encode, UDP, packaging,
# HTTP, the player's buffer, decode). Both chains share every step but the packaging, so their
# difference is what leaktrace adds. Reads that disagree with their neighbours (a square caught
# mid-change by the encoder) are dropped; the figures are medians over the frames of the second
# half of the play (after the player's catch-up).
#
# Needs ffmpeg, python3, Debian's chromium (scripts/install-system-deps.sh chromium), hls.js
# (npm ci --prefix crates/edge/tests/player) and the corpus (corpus/fetch.sh). Every server
# and client stays on 127.0.0.1; the script stops what it started on exit. --no-build uses the
# release binary already built (in $CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PLAYED=60
PART=
LADDER=720p
BUILD=1
AUDIO=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECONDS_PLAYED="$2"; shift 2 ;;
        --part) PART="$2"; shift 2 ;;
        --ladder) LADDER="$2"; shift 2 ;;
        --quick) SECONDS_PLAYED=20; shift ;;
        --no-build) BUILD=0; shift ;;
        --audio) AUDIO=1; shift ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[[ $SECONDS_PLAYED =~ ^[0-9]+$ && $SECONDS_PLAYED -ge 10 && $SECONDS_PLAYED -le 3600 ]] \
    || { echo "--seconds takes 10 to 3600" >&2; exit 2; }

HLS_JS="$PWD/crates/edge/tests/player/node_modules/hls.js/dist/hls.min.js"
[[ -f $HLS_JS ]] || { echo "needs hls.js: npm ci --prefix crates/edge/tests/player" >&2; exit 2; }
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[[ -n $BROWSER ]] || { echo "needs chromium: scripts/install-system-deps.sh chromium" >&2; exit 2; }

source scripts/bench-live-setup.sh

python3 - "$BIN" "$SRC" "$WORK" "$SECONDS_PLAYED" "$PART" "$LADDER" "$HLS_JS" "$BROWSER" "$AUDIO" <<'PY'
import http.server, json, os, socket, socketserver, statistics, subprocess, sys, threading, time

bin_, src, work, play_s, part, ladder, hls_js, browser, audio = sys.argv[1:10]
play_s, audio = int(play_s), audio == "1"
# The tone of --audio, and how each FFmpeg treats the audio.
TONE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
FEED_AUDIO = ["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k"] if audio else ["-an"]
PACKAGE_AUDIO = ["-c:a", "aac", "-b:a", "128k"] if audio else ["-an"]
BITS, SQUARE = 24, 40

def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

procs = []
def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    procs.append(p)
    return p

def stop_all():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()

def feed(port):
    """The source: the clip looped at its own rate, the wall clock burned into each picture."""
    boxes = [f"drawbox=x=0:y=0:w={BITS * SQUARE}:h={SQUARE}:color=black:t=fill"]
    for k in range(BITS):
        boxes.append(f"drawbox=x={k * SQUARE}:y=0:w={SQUARE}:h={SQUARE}:color=white:t=fill:"
                     f"enable='gte(mod(time(0)*100/{2 ** k},2),1)'")
    return start(["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", src]
                 + TONE + FEED_AUDIO +
                 ["-vf", ",".join(boxes), "-c:v", "libx264", "-preset", "ultrafast",
                  "-tune", "zerolatency", "-b:v", "8M", "-maxrate", "8M", "-bufsize", "1M",
                  "-g", "30", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def wait_for(path, count, timeout=60):
    """Waits until the playlist at `path` lists `count` segments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            n = sum(1 for l in open(path) if l.strip() and not l.startswith("#"))
            if n >= count:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{path}: fewer than {count} segments after {timeout} s")

class Static(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()
    def log_message(self, *a):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

PAGE = """<!doctype html><html><body><video id="v" playsinline muted></video>
<canvas id="c"></canvas><script src="file://HLS_JS"></script><script>
const BITS = %(bits)d, SQUARE = %(square)d, PLAY_S = %(play)d;
const out = { reads: [], errors: [], waiting: 0, done: null, width: 0, pdt: [], edge: [] };
const v = document.getElementById("v"), c = document.getElementById("c");
const g = c.getContext("2d", { willReadFrequently: true });
function finish(reason) {
  if (out.done) return;
  out.done = reason;
  fetch("REPORT", { method: "POST", mode: "no-cors", body: JSON.stringify(out) });
}
function read(now, meta) {
  const w = v.videoWidth, s = w / 1280;
  if (w > 0 && out.done === null) {
    out.width = w;
    c.width = Math.ceil(BITS * SQUARE * s); c.height = Math.ceil(SQUARE * s);
    g.drawImage(v, 0, 0, c.width, c.height, 0, 0, c.width, c.height);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let value = 0, sure = true;
    for (let k = 0; k < BITS; k++) {
      const x = Math.round((k + 0.5) * SQUARE * s), y = Math.round(SQUARE * s / 2);
      const luma = px[(y * c.width + x) * 4 + 1];
      if (luma > 80 && luma < 176) sure = false;
      if (luma >= 128) value += 2 ** k;
    }
    const shown = performance.timeOrigin + (meta ? meta.expectedDisplayTime : now);
    if (sure) out.reads.push([value, shown]);
  }
  v.requestVideoFrameCallback(read);
}
const hls = new Hls(HLS_CONFIG);
hls.on(Hls.Events.ERROR, (e, d) => { out.errors.push(String(d.details)); if (d.fatal) finish("fatal"); });
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play().catch(err => out.errors.push(String(err))));
v.addEventListener("waiting", () => { out.waiting++; });
v.addEventListener("playing", () => { if (!out.started) { out.started = true; setTimeout(() => finish("played"), PLAY_S * 1000); } }, { once: false });
v.requestVideoFrameCallback(read);
setInterval(() => {
  if (!out.started || out.done) return;
  const at = hls.playingDate;
  if (at) out.pdt.push((Date.now() - at.getTime()) / 1000);
  if (Number.isFinite(hls.latency)) out.edge.push(hls.latency);
}, 1000);
hls.loadSource("SRC");
hls.attachMedia(v);
setTimeout(() => finish("timeout"), (PLAY_S + 60) * 1000);
</script></body></html>"""

def play(url, config, name):
    """Plays `url` in hls.js for play_s seconds; returns the page's report."""
    got = {}
    class Collect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got["body"] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
        def log_message(self, *a):
            pass
    collector = Server(("127.0.0.1", 0), Collect)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    page = os.path.join(work, f"{name}.html")
    with open(page, "w") as f:
        f.write((PAGE % {"bits": BITS, "square": SQUARE, "play": play_s})
                .replace("HLS_JS", hls_js).replace("HLS_CONFIG", config).replace("SRC", url)
                .replace("REPORT", f"http://127.0.0.1:{collector.server_address[1]}/report"))
    chrome = start([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--no-default-browser-check",
                    "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files",
                    f"--user-data-dir={work}/{name}-profile", f"file://{page}"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + play_s + 120
    while "body" not in got and time.monotonic() < deadline:
        time.sleep(0.2)
    chrome.terminate()
    collector.shutdown()
    if "body" not in got:
        raise SystemExit(f"{name}: the player sent no report")
    return json.loads(got["body"])

def latencies(report):
    """Per frame read: display time − burned time (s), keeping reads whose burned time agrees
    with both neighbours' to within 0.5 s (a square caught mid-change reads as garbage)."""
    reads = report["reads"]
    now_cs = time.time() * 100
    wrap = 2 ** BITS
    # The burned value is the wall clock in centiseconds modulo 2^24: unwrap against now.
    times = [(now_cs - ((now_cs - v) % wrap)) / 100 for v, _ in reads]
    out = []
    for i in range(len(reads) // 2, len(reads) - 1):
        if abs(times[i] - times[i - 1]) < 0.5 and abs(times[i + 1] - times[i]) < 0.5:
            out.append(reads[i][1] / 1000 - times[i])
    return out

def summary(name, report, lat):
    if not lat:
        raise SystemExit(f"{name}: no frame read ({report.get('done')}, errors {report['errors'][:5]})")
    q = sorted(lat)
    print(f"{name}: glass to glass median {statistics.median(q):.2f} s, p5 {q[len(q) // 20]:.2f} s, "
          f"p95 {q[len(q) * 19 // 20]:.2f} s over {len(q)} frames "
          f"({len(report['reads'])} read, width {report['width']}); waiting {report['waiting']}, "
          f"errors {len(report['errors'])}, ended: {report['done']}")
    if report["pdt"]:
        print(f"  program date time of the picture on screen: median "
              f"{statistics.median(report['pdt']):.2f} s behind the wall clock; hls.js distance "
              f"to the live edge median {statistics.median(report['edge'] or [float('nan')]):.2f} s")
    return statistics.median(q)

results = {}
try:
    # (a) leaktrace live + edge.
    port = free_port(socket.SOCK_DGRAM)
    live = start([bin_, "live", f"udp://127.0.0.1:{port}", "--out", "ch", "--title", "glass",
                  "--ladder", ladder, "--window", "8", "--keep", "20"]
                 + (["--part", part] if part else []),
                 cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feed(port)
    first = ladder.split(",")[0]
    wait_for(f"{work}/ch/{first}/playlist.m3u8", 4)
    edge = start([bin_, "edge", "--root", "ch", "--listen", "127.0.0.1:0", "--threads", "1"],
                 cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = edge.stdout.readline().split()[1]
    s = json.loads(subprocess.run([bin_, "session", "new", "--title", "glass", "--account",
                                   "viewer", "--json"], cwd=work, check=True,
                                  capture_output=True, text=True).stdout)
    config = ("{ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 }" if part
              else "{ liveSyncDurationCount: 3, maxLiveSyncPlaybackRate: 1.5 }")
    name = f"leaktrace live{' --part ' + part if part else ''}"
    r = play(f"{addr}{s['path']}", config, "leaktrace")
    results["leaktrace"] = summary(name, r, latencies(r))
    stop_all()

    # (b) FFmpeg's own live HLS packaging of the same feed, same settings.
    port = free_port(socket.SOCK_DGRAM)
    ff = os.path.join(work, "ff")
    os.makedirs(ff)
    start(["ffmpeg", "-nostdin", "-v", "error", "-i", f"udp://127.0.0.1:{port}?fifo_size=100000",
           *PACKAGE_AUDIO, "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
           "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
           "-f", "hls", "-hls_time", "2", "-hls_list_size", "8", "-hls_segment_type", "fmp4",
           "-hls_flags", "delete_segments+program_date_time", "playlist.m3u8"],
          cwd=ff, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feed(port)
    wait_for(f"{ff}/playlist.m3u8", 4)
    static = Server(("127.0.0.1", 0),
                    lambda *a, **k: Static(*a, directory=ff, **k))
    threading.Thread(target=static.serve_forever, daemon=True).start()
    r = play(f"http://127.0.0.1:{static.server_address[1]}/playlist.m3u8",
             "{ liveSyncDurationCount: 3, maxLiveSyncPlaybackRate: 1.5 }", "ffmpeg")
    results["ffmpeg"] = summary("ffmpeg hls", r, latencies(r))
    static.shutdown()
finally:
    stop_all()

added = results["leaktrace"] - results["ffmpeg"]
print(f"added by leaktrace against FFmpeg's packaging: {added:+.2f} s "
      f"(target: at most one segment, 2 s)")
PY
