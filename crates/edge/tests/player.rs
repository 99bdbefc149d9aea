//! A real player: hls.js in headless Chromium plays a session's stream through the edge, and
//! every segment it received is byte-identical to the `a/` or `b/` file the session's codeword
//! names (in their egress form: the in-band `wmpi` box neutralised, see `leaktrace_edge::egress`).
//! The package's audio rendition is listed, every one of its segments comes through the edge
//! as it is and is decoded; the subtitle rendition is listed, its WebVTT segments come through
//! the edge as they are, and each cue reaches the video element's text track once.
//!
//! Needs Debian's `chromium` (`scripts/install-system-deps.sh chromium`) and hls.js
//! (`npm ci --prefix crates/edge/tests/player`); skipped with a notice when either is missing,
//! unless `LEAKTRACE_REQUIRE_PLAYER=1`.
//!
//! The page (a `file://` URL) loads hls.js from `node_modules`, plays
//! `http://127.0.0.1:PORT/wmt/<token>/bbb/master.m3u8` at 4× speed, hashes every fragment hls.js
//! loads (SHA-256 of each binary response, taken in a loader subclass before hls.js parses it)
//! and posts the report to a one-shot collector on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use common::*;
use leaktrace_core::Variant;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn hls_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player/node_modules/hls.js/dist/hls.min.js")
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts one POST on 127.0.0.1 and hands its body over.
fn collector() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/report", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let body = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned());
                }
            };
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            );
            if let Some(b) = body.filter(|b| !b.is_empty()) {
                let _ = tx.send(b);
            }
        }
    });
    (url, rx)
}

const PAGE: &str = r#"<!doctype html>
<html><body><video id="v" playsinline></video>
<script src="HLS_JS"></script>
<script>
const SRC = "SRC_URL", REPORT = "REPORT_URL";
const out = { mse: false, frags: [], errors: [], ended: false, done: null };
const pending = [];
const v = document.getElementById("v");
function hex(buf) { return Array.from(new Uint8Array(buf)).map(b => b.toString(16).padStart(2, "0")).join(""); }
function finish(reason) {
  if (out.done) return;
  out.done = reason;
  Promise.all(pending).then(() => {
    out.currentTime = v.currentTime;
    out.duration = v.duration;
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    if (q) { out.totalFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames; }
    out.videoError = v.error ? v.error.code : null;
    out.audioDecodedBytes = v.webkitAudioDecodedByteCount;
    out.cues = Array.from(v.textTracks).map(t => ({ lang: t.language, mode: t.mode, cues: t.cues ? Array.from(t.cues).map(c => c.text) : null }));
    fetch(REPORT, { method: "POST", mode: "no-cors", body: JSON.stringify(out) });
  });
}
try {
  out.mse = Hls.isSupported();
  out.h264 = window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.42c01e"') : false;
  // Tap every binary response the player's loader gets (init and media segments), before
  // hls.js touches it.
  const Base = Hls.DefaultConfig.loader;
  class Tap extends Base {
    load(context, config, callbacks) {
      const onSuccess = callbacks.onSuccess;
      callbacks.onSuccess = (response, stats, ctx, details) => {
        if (response.data instanceof ArrayBuffer || (typeof response.data === "string" && ctx.url.endsWith(".vtt"))) {
          const copy = typeof response.data === "string" ? new TextEncoder().encode(response.data).buffer : response.data.slice(0);
          const rec = { url: ctx.url, len: copy.byteLength };
          out.frags.push(rec);
          pending.push(crypto.subtle.digest("SHA-256", copy).then(h => { rec.sha256 = hex(h); }));
        }
        onSuccess(response, stats, ctx, details);
      };
      super.load(context, config, callbacks);
    }
  }
  const hls = new Hls({ loader: Tap, maxBufferLength: 60, capLevelToPlayerSize: false });
  hls.on(Hls.Events.ERROR, (e, d) => {
    out.errors.push({ type: String(d.type), details: String(d.details), fatal: !!d.fatal,
      message: d.error ? String(d.error.message || d.error) : (d.err ? String(d.err) : null) });
    if (d.fatal) finish("fatal");
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (e, d) => {
    out.audioTracks = d.audioTracks.map(t => t.name);
  });
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (e, d) => {
    out.subtitleTracks = d.subtitleTracks.map(t => t.lang);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    // Subtitles are off by default (DEFAULT=NO): turn the track on as a viewer would.
    setTimeout(() => { hls.subtitleDisplay = true; hls.subtitleTrack = 0; }, 0);
    v.playbackRate = 4;
    v.play().catch(err => out.errors.push({ type: "play", details: String(err), fatal: false }));
  });
  v.addEventListener("ended", () => { out.ended = true; finish("ended"); });
  hls.loadSource(SRC);
  hls.attachMedia(v);
  setTimeout(() => finish("timeout"), 60000);
} catch (err) {
  out.errors.push({ type: "exception", details: String(err), fatal: true });
  finish("exception");
}
</script></body></html>
"#;

#[test]
fn hls_js_in_headless_chromium_receives_the_sessions_codeword() {
    let required = std::env::var("LEAKTRACE_REQUIRE_PLAYER").as_deref() == Ok("1");
    let (Some(browser), true) = (chromium(), hls_js().is_file()) else {
        assert!(
            !required,
            "LEAKTRACE_REQUIRE_PLAYER=1 but chromium or hls.js is missing"
        );
        eprintln!("SKIPPED: needs chromium and hls.js (npm ci --prefix crates/edge/tests/player)");
        return;
    };
    let f = fixture();
    let (sid, token) = &f.tokens.s2;
    let (report_url, reports) = collector();
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("player.html");
    let src = format!("http://{}/wmt/{token}/{TITLE}/master.m3u8", f.addr);
    std::fs::write(
        &page,
        PAGE.replace("HLS_JS", &format!("file://{}", hls_js().display()))
            .replace("SRC_URL", &src)
            .replace("REPORT_URL", &report_url),
    )
    .unwrap();
    let profile = tmp.path().join("profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--no-default-browser-check",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = reports.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let report = report.expect("the page sent no report within 120 s");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    eprintln!("player: h264={}", r["h264"]);
    eprintln!(
        "player: done={} ended={} t={} frames={} dropped={} fragments={} errors={}",
        r["done"],
        r["ended"],
        r["currentTime"],
        r["totalFrames"],
        r["droppedFrames"],
        r["frags"].as_array().map_or(0, Vec::len),
        r["errors"]
    );
    assert_eq!(r["mse"], true, "MSE not supported by this Chromium");
    let fatal: Vec<&serde_json::Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "fatal player errors: {fatal:?}");
    assert_eq!(r["ended"], true, "playback did not reach the end: {report}");
    assert!(r["videoError"].is_null());

    let mut positions = std::collections::BTreeSet::new();
    let mut inits = 0;
    let mut texts = 0;
    let mut audio = 0;
    for frag in r["frags"].as_array().unwrap() {
        let url = frag["url"].as_str().unwrap();
        let hash = frag["sha256"].as_str().unwrap();
        let rest = url
            .split_once(&format!("/wmt/{token}/{TITLE}/"))
            .expect("fragment URL outside the session's prefix")
            .1;
        let (rendition, file) = rest.split_once('/').unwrap();
        let dir = f.pkg.join(rendition);
        if rendition.starts_with("text-") || rendition == AUDIO {
            // Subtitles and sound are the same for every viewer: the plain file.
            assert_eq!(hash, sha256_hex(&std::fs::read(dir.join(file)).unwrap()));
            if rendition == AUDIO {
                audio += 1;
            } else {
                texts += 1;
            }
            continue;
        }
        if file == "init.mp4" {
            assert_eq!(hash, sha256_hex(&egress_file(&dir.join("a/init.mp4"))));
            inits += 1;
            continue;
        }
        let p: u32 = file
            .strip_prefix("seg_")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected fragment {url}"));
        let want = codeword(sid, p);
        let named = egress_file(&dir.join(want.dir()).join(file));
        let other = egress_file(&dir.join(want.other().dir()).join(file));
        assert_eq!(
            hash,
            sha256_hex(&named),
            "{rendition}/{file}: not the {want} file"
        );
        assert_ne!(hash, sha256_hex(&other));
        positions.insert(p);
    }
    assert!(inits >= 1, "no init segment seen");
    // The audio rendition: listed, its init and every segment fetched through the edge as the
    // plain files, and decoded (Chromium counts the audio bytes it decoded).
    assert_eq!(r["audioTracks"], serde_json::json!(["und"]), "{report}");
    assert_eq!(
        audio as u32,
        POSITIONS + 1,
        "audio init + segments: {report}"
    );
    assert!(
        r["audioDecodedBytes"].as_u64().unwrap_or(0) > 0,
        "no audio decoded: {report}"
    );
    // The subtitle rendition: listed, its WebVTT segments fetched through the edge, and its
    // cues in the video element's text track.
    assert_eq!(r["subtitleTracks"], serde_json::json!(["en"]), "{report}");
    assert!(texts >= 1, "no WebVTT segment fetched: {report}");
    let cues: Vec<String> = r["cues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lang"] == "en")
        .flat_map(|t| t["cues"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    for want in ["First <i>line</i>", "Across a boundary", "Third"] {
        assert_eq!(
            cues.iter().filter(|c| *c == want).count(),
            1,
            "cue {want:?} once in the text track: {cues:?}"
        );
    }
    assert_eq!(
        positions.len() as u32,
        POSITIONS,
        "positions received: {positions:?}"
    );
    let seq: String = (0..POSITIONS)
        .map(|p| {
            if codeword(sid, p) == Variant::A {
                'A'
            } else {
                'B'
            }
        })
        .collect();
    eprintln!("session {sid}: codeword {seq}, all {POSITIONS} segments matched");
}
