//! A real player on a live channel: FFmpeg loops a corpus clip in real time into UDP on
//! loopback, `leaktrace live` marks it, the edge serves one session, and hls.js in headless
//! Chromium plays the channel for more than two minutes. Every segment the player received is
//! the `a/` or `b/` file the session's codeword names (in its egress form), both variants occur,
//! and playback never stalls once it has started. The feed carries its audio: the player loads
//! the channel's audio rendition too (the same files for every session), in parts on the
//! low-latency channel.
//!
//! A second test plays a low-latency channel (`--part 500ms`: LL-HLS parts and blocking
//! playlist reloads) with hls.js in its low-latency mode, and checks that the player stays
//! closer to the live edge than on the same channel without parts. Both report the latency
//! from a frame reaching the packager to its display: the wall clock less the
//! `EXT-X-PROGRAM-DATE-TIME` of the picture on screen (`hls.playingDate`), sampled every second.
//!
//! Needs Debian's `chromium` and hls.js (`npm ci --prefix crates/edge/tests/player`); skipped
//! with a notice when either is missing, unless `LEAKTRACE_REQUIRE_PLAYER=1`. Set
//! `LEAKTRACE_LIVE_PLAY_S` to play longer or shorter (default 130 s; the low-latency test
//! plays half as long).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use common::live::{edge, session_path};
use common::*;
use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, Variant};
use leaktrace_testkit::browser::{player_available, run_page};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAGE: &str = r#"<!doctype html>
<html><body><video id="v" playsinline muted></video>
<script src="PLAYER_JS"></script>
<script>
const SRC = "SRC_URL", REPORT = "REPORT_URL", PLAY_S = PLAY_SECONDS;
const out = { frags: [], errors: [], waiting: [], playing: null, done: null, latency: [], edge: [] };
const pending = [];
const v = document.getElementById("v");
function hex(buf) { return Array.from(new Uint8Array(buf)).map(b => b.toString(16).padStart(2, "0")).join(""); }
function finish(reason) {
  if (out.done) return;
  out.done = reason;
  Promise.all(pending).then(() => {
    out.currentTime = v.currentTime;
    const q = v.getVideoPlaybackQuality();
    out.totalFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames;
    out.videoError = v.error ? v.error.code : null;
    fetch(REPORT, { method: "POST", mode: "no-cors", body: JSON.stringify(out) });
  });
}
try {
  const Base = Hls.DefaultConfig.loader;
  class Tap extends Base {
    load(context, config, callbacks) {
      // What was asked for and when (playlists with their blocking-reload directives).
      out.reqs = out.reqs || [];
      if (out.reqs.length < 2000) out.reqs.push({ u: context.url.split("/").pop(), t: Math.round(performance.now()) });
      const onSuccess = callbacks.onSuccess;
      callbacks.onSuccess = (response, stats, ctx, details) => {
        if (response.data instanceof ArrayBuffer) {
          const copy = response.data.slice(0);
          const rec = { url: ctx.url, len: copy.byteLength };
          out.frags.push(rec);
          pending.push(crypto.subtle.digest("SHA-256", copy).then(h => { rec.sha256 = hex(h); }));
        }
        onSuccess(response, stats, ctx, details);
      };
      super.load(context, config, callbacks);
    }
  }
  // Warnings and errors of hls.js go into the report (for a failure's message).
  out.logs = [];
  const keep = (k) => (...a) => { if (out.logs.length < 200) out.logs.push(k + " " + a.map(String).join(" ").slice(0, 300)); };
  const quiet = () => {};
  const hls = new Hls(Object.assign({ loader: Tap, debug: { log: quiet, info: quiet, debug: quiet, trace: quiet, warn: keep("W"), error: keep("E") } }, HLS_CONFIG));
  setInterval(() => {
    if (out.playing === null || out.done) return;
    const at = hls.playingDate;
    if (at) out.latency.push((Date.now() - at.getTime()) / 1000);
    if (Number.isFinite(hls.latency)) out.edge.push(hls.latency);
  }, 1000);
  hls.on(Hls.Events.ERROR, (e, d) => {
    out.errors.push({ type: String(d.type), details: String(d.details), fatal: !!d.fatal, at: v.currentTime });
    if (d.fatal) finish("fatal");
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    v.play().catch(err => out.errors.push({ type: "play", details: String(err), fatal: false }));
  });
  v.addEventListener("playing", () => {
    if (out.playing === null) {
      out.playing = performance.now();
      out.startTime = v.currentTime;
      setTimeout(() => finish("played"), PLAY_S * 1000);
    }
  });
  v.addEventListener("waiting", () => {
    if (out.playing !== null) out.waiting.push({ at: v.currentTime, wall: (performance.now() - out.playing) / 1000 });
  });
  hls.loadSource(SRC);
  hls.attachMedia(v);
  setTimeout(() => finish("timeout"), (PLAY_S + 90) * 1000);
} catch (err) {
  out.errors.push({ type: "exception", details: String(err), fatal: true });
  finish("exception");
}
</script></body></html>
"#;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn egress_file(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    leaktrace_edge::egress::neutralize_wmpi(&mut bytes);
    bytes
}

fn play_seconds() -> u64 {
    std::env::var("LEAKTRACE_LIVE_PLAY_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(130)
}

fn median(v: &Value) -> f64 {
    let mut x: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    x.sort_by(f64::total_cmp);
    x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn hls_js_plays_a_live_channel_through_the_edge() {
    let r = play_channel(&[], "{ liveSyncDurationCount: 3 }", play_seconds());
    eprintln!(
        "live player: latency from the packager's input to the screen, median {:.2} s",
        median(&r["latency"])
    );
}

#[test]
fn hls_js_plays_a_low_latency_channel_through_the_edge() {
    // A player that starts late (its first loads slowed by a busy host) sits behind the edge
    // for good at 1x: hls.js only moves back to its target latency when it may play faster,
    // as low-latency players are set up to. Up to 1.5x, and only with a second of buffer.
    let r = play_channel(
        &["--part", "500ms"],
        "{ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 }",
        play_seconds().div_ceil(2),
    );
    let parts = r["frags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["url"]
                .as_str()
                .is_some_and(|u| u.contains(".p") && !u.contains("/audio-"))
        })
        .count();
    assert!(parts > 20, "hls.js loaded {parts} video parts: {r}");
    let latency = median(&r["latency"]);
    eprintln!(
        "live player, low latency: {parts} video parts; latency from the packager's input to the \
         screen median {latency:.2} s; hls.js distance to the live edge median {:.2} s",
        median(&r["edge"])
    );
    // Without parts hls.js plays three 2-s segments behind the edge, and a segment is
    // published after it is whole: more than 6 s. With 0.5-s parts it holds back 1.5 s.
    assert!(latency < 5.0, "latency {latency:.2} s: {r}");
}

/// Runs a channel (`extra` flags for `leaktrace live`) and plays it in hls.js (`config`) for
/// `play_s` seconds through the edge; checks playback and that every fragment is the
/// session's variant; returns the page's report.
fn play_channel(extra: &[&str], config: &str, play_s: u64) -> Value {
    let hls_js = repo().join("crates/edge/tests/player/node_modules/hls.js/dist/hls.min.js");
    let Some(browser) = player_available(&hls_js, "npm ci --prefix crates/edge/tests/player")
    else {
        return Value::Null;
    };
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let mut live = Proc(
        bin()
            .current_dir(dir)
            .arg("live")
            .arg(format!("udp://127.0.0.1:{port}"))
            .args(["--out", "ch", "--title", "news", "--ladder", "360p"])
            .args(["--window", "8", "--keep", "200", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The feed: the clip looped at its own rate, stream copy, as a contribution encoder sends.
    let _feed = Proc(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(corpus("bbb.mp4"))
            .args([
                "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "mpegts",
            ])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(live.0.stdout.take().unwrap()).lines();
    // hls.js starts three segments behind the live edge: wait for four.
    let mut published = 0;
    while published < 4 {
        let line = lines.next().expect("live ended early").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "published" {
            published += 1;
        }
    }
    // The packager's own pace: how long after its first frame each segment was published. A
    // stall's message says whether the packager fell behind (a machine short of CPU) or not.
    let pace = std::sync::Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let pace_in = pace.clone();
    std::thread::spawn(move || {
        for line in lines.by_ref().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if let (true, Some(s)) = (v["event"] == "published", v["latency_s"].as_f64()) {
                pace_in.lock().unwrap().push(s);
            }
        }
    });
    let (_edge, port) = edge(dir);
    let (sid, path) = session_path(dir, "viewer");
    let src = format!("http://127.0.0.1:{port}{path}");
    let page = PAGE
        .replace("PLAYER_JS", &format!("file://{}", hls_js.display()))
        .replace("SRC_URL", &src)
        .replace("HLS_CONFIG", config)
        .replace("PLAY_SECONDS", &play_s.to_string());
    let r: Value =
        serde_json::from_str(&run_page(browser, &page, Duration::from_secs(play_s + 150))).unwrap();
    let report = r.to_string();
    eprintln!(
        "live player: done={} played from {} to {} s, frames {} (dropped {}), fragments {}, \
         waiting {}, errors {}",
        r["done"],
        r["startTime"],
        r["currentTime"],
        r["totalFrames"],
        r["droppedFrames"],
        r["frags"].as_array().map_or(0, Vec::len),
        r["waiting"],
        r["errors"]
    );
    assert_eq!(r["done"], "played", "{report}");
    assert!(r["videoError"].is_null(), "{report}");
    let fatal: Vec<&Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "fatal player errors: {fatal:?}");
    let pace = pace.lock().unwrap().clone();
    let pace = match (
        pace.iter().copied().reduce(f64::min),
        pace.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!("{lo:.2}–{hi:.2} s after their first frame"),
        _ => "no segment after the first four".to_string(),
    };
    assert_eq!(
        r["waiting"],
        serde_json::json!([]),
        "playback stalled; the packager published segments {pace}: {report}"
    );
    let played = r["currentTime"].as_f64().unwrap() - r["startTime"].as_f64().unwrap();
    assert!(
        played >= play_s as f64 - 3.0,
        "played {played:.1} s of {play_s} s: {report}"
    );

    // Every segment is the session's variant, and both variants occur.
    let key_hex = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let key = MasterKey::from_hex(key_hex.trim(), KeyVersion::new(1)).unwrap();
    let book = key.codebook(&TitleId::new("news").unwrap());
    let session = SessionId::new(sid).unwrap();
    let rend = dir.join("ch/360p");
    let mut seen = [0usize; 2];
    let mut audio = 0usize;
    let mut audio_parts = 0usize;
    for frag in r["frags"].as_array().unwrap() {
        let url = frag["url"].as_str().unwrap();
        let file = url.rsplit('/').next().unwrap();
        let hash = frag["sha256"].as_str().unwrap();
        // The feed's audio: the same files for every session.
        if let Some(adir) = url.rsplit('/').nth(1).filter(|d| d.starts_with("audio-")) {
            assert_eq!(
                hash,
                sha256_hex(&std::fs::read(dir.join("ch").join(adir).join(file)).unwrap()),
                "{url}: not the audio rendition's file"
            );
            audio += usize::from(file != "init.mp4");
            audio_parts += usize::from(file.contains(".p"));
            continue;
        }
        if file == "init.mp4" {
            assert_eq!(hash, sha256_hex(&egress_file(&rend.join("a/init.mp4"))));
            continue;
        }
        let p = leaktrace_core::segment_file_position(file)
            .unwrap_or_else(|| panic!("unexpected fragment {url}"));
        let want = book.bit(&session, p);
        assert_eq!(
            hash,
            sha256_hex(&egress_file(&rend.join(want.dir()).join(file))),
            "{file}: not the {want} file"
        );
        seen[usize::from(want == Variant::B)] += 1;
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "A/B switches: {seen:?} segments A/B"
    );
    // The audio rendition plays along; on a low-latency channel, in parts.
    assert!(audio >= 3, "hls.js loaded {audio} audio segments: {report}");
    if extra.contains(&"--part") {
        assert_eq!(
            r["errors"],
            serde_json::json!([]),
            "player errors: {report}"
        );
        assert!(
            audio_parts > 20,
            "hls.js loaded {audio_parts} audio parts: {report}"
        );
    }
    eprintln!("live player: {audio} audio files ({audio_parts} parts)");
    let _ = live.0.kill();
    r
}
