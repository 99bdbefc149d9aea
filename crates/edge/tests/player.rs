//! A real player: hls.js in headless Chromium plays a session's stream through the edge, and
//! every segment it received is byte-identical to the `a/` or `b/` file the session's codeword
//! names (in their egress form: the in-band `wmpi` box neutralised, see `leaktrace_edge::egress`).
//! The package's audio rendition is listed, every one of its segments comes through the edge
//! as it is and is decoded; the subtitle rendition is listed, its WebVTT segments come through
//! the edge as they are, and each cue reaches the video element's text track once.
//!
//! Shaka Player plays the DASH manifest the same way, clear and under Common Encryption (`cenc`
//! and `cbcs`, ClearKey, keys given to the player); with a wrong key it fails to decode. hls.js
//! plays both encrypted titles over HLS with ClearKey through EME, its licence from a loopback
//! licence service.
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
use leaktrace_testkit::browser;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn hls_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player/node_modules/hls.js/dist/hls.min.js")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PAGE: &str = r#"<!doctype html>
<html><body><video id="v" playsinline></video>
<script src="PLAYER_JS"></script>
<script>
const SRC = "SRC_URL", REPORT = "REPORT_URL";
const out = { mse: false, frags: [], errors: [], ended: false, done: null };
PRELUDE_JS
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
  const hls = new Hls({ loader: Tap, maxBufferLength: 60, capLevelToPlayerSize: false, HLS_DRM });
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

/// Whether the browser and `script` are there (see [`browser::player_available`]).
fn player_available(script: &Path) -> Option<&'static str> {
    browser::player_available(script, "npm ci --prefix crates/edge/tests/player")
}

/// What both player pages start with: the video element, SHA-256 in hex, and `finish`, which
/// waits for every pending hash and fills the playback fields every report has (the page's own
/// fields follow it).
const PRELUDE_JS: &str = r#"const pending = [];
const v = document.getElementById("v");
function hex(buf) { return Array.from(new Uint8Array(buf)).map(b => b.toString(16).padStart(2, "0")).join(""); }
function finish(reason) {
  if (out.done) return;
  out.done = reason;
  Promise.all(pending).then(() => {
    out.currentTime = v.currentTime;
    out.duration = v.duration;"#;

/// Opens `page` (with `PRELUDE_JS`, `PLAYER_JS` and `SRC_URL` filled in) in headless `browser`
/// and returns the report it posts.
fn run_page(browser: &str, page: &str, script: &Path, src: &str) -> serde_json::Value {
    let html = page
        .replace("PRELUDE_JS", PRELUDE_JS)
        .replace("PLAYER_JS", &format!("file://{}", script.display()))
        .replace("SRC_URL", src);
    let report = browser::run_page(browser, &html, Duration::from_secs(120));
    serde_json::from_str(&report).unwrap()
}

#[test]
fn hls_js_in_headless_chromium_receives_the_sessions_codeword() {
    let Some(browser) = player_available(&hls_js()) else {
        return;
    };
    let f = fixture();
    let (sid, token) = &f.tokens.s2;
    let src = format!("http://{}/wmt/{token}/{TITLE}/master.m3u8", f.addr);
    let r = run_page(
        browser,
        &PAGE.replace("HLS_DRM", "emeEnabled: false"),
        &hls_js(),
        &src,
    );
    let report = r.to_string();
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

fn shaka() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/player/node_modules/shaka-player/dist/shaka-player.compiled.js")
}

/// Shaka Player: plays the DASH manifest, hashes every segment response (init and media, in a
/// response filter, before Shaka parses it) and posts the report.
const SHAKA_PAGE: &str = r#"<!doctype html>
<html><body><video id="v" playsinline></video>
<script src="PLAYER_JS"></script>
<script>
const SRC = "SRC_URL", REPORT = "REPORT_URL";
const out = { frags: [], errors: [], ended: false, done: null };
PRELUDE_JS
    out.videoError = v.error ? v.error.code : null;
    out.audioDecodedBytes = v.webkitAudioDecodedByteCount;
    out.videoDecodedBytes = v.webkitVideoDecodedByteCount;
    fetch(REPORT, { method: "POST", mode: "no-cors", body: JSON.stringify(out) });
  });
}
(async () => {
  try {
    shaka.polyfill.installAll();
    out.supported = shaka.Player.isBrowserSupported();
    const player = new shaka.Player();
    await player.attach(v);
    player.configure({ streaming: { bufferingGoal: 60 }, drm: { clearKeys: CLEAR_KEYS } });
    player.getNetworkingEngine().registerResponseFilter((type, response) => {
      if (type !== shaka.net.NetworkingEngine.RequestType.SEGMENT) return;
      const d = response.data;
      const copy = ArrayBuffer.isView(d) ? d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength) : d.slice(0);
      const rec = { url: response.uri, len: copy.byteLength };
      out.frags.push(rec);
      pending.push(crypto.subtle.digest("SHA-256", copy).then(h => { rec.sha256 = hex(h); }));
    });
    player.addEventListener("error", e => {
      out.errors.push({ code: e.detail.code, category: e.detail.category, severity: e.detail.severity, data: String(e.detail.data) });
      if (e.detail.severity === 2) finish("fatal");
    });
    v.addEventListener("ended", () => { out.ended = true; finish("ended"); });
    await player.load(SRC);
    out.audioLanguages = player.getAudioTracks().map(t => t.language);
    out.variants = player.getVariantTracks().map(t => ({ height: t.height, video: t.videoCodec, audio: t.audioCodec, lang: t.language }));
    v.playbackRate = 4;
    await v.play();
  } catch (err) {
    out.errors.push({ code: err.code || null, data: String(err.message || err), severity: 2 });
    finish("exception");
  }
  setTimeout(() => finish("timeout"), 60000);
})();
</script></body></html>
"#;

#[test]
fn shaka_player_plays_the_dash_package_with_the_sessions_codeword() {
    let Some(browser) = player_available(&shaka()) else {
        return;
    };
    let f = fixture();
    let (sid, token) = &f.tokens.s1;
    shaka_session(browser, f, TITLE, sid, token, "{}");
}

/// Both encrypted titles (`cenc` and `cbcs`) play with ClearKey, the keys given to the player
/// as a viewer's licence would: every segment decrypts and decodes, and is the session's.
#[test]
fn shaka_player_plays_the_encrypted_packages_with_clearkey() {
    let Some(browser) = player_available(&shaka()) else {
        return;
    };
    let f = fixture();
    let keys = leaktrace_embed::drm::KeyFile::parse(DRM_KEYS).unwrap();
    let hex = |b: &[u8; 16]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let audio = keys.audio.as_ref().unwrap();
    let clear_keys = format!(
        r#"{{"{}": "{}", "{}": "{}"}}"#,
        hex(&keys.video.kid),
        hex(&keys.video.key),
        hex(&audio.kid),
        hex(&audio.key)
    );
    for ((title, scheme), (sid, token)) in DRM_TITLES.iter().zip(&f.tokens.drm) {
        eprintln!("{title} ({})", scheme.name());
        // The package is encrypted: its MPD signals it and no sample is in the clear.
        let mpd =
            std::fs::read_to_string(f.pkg.with_file_name(title).join("manifest.mpd")).unwrap();
        assert!(
            mpd.contains(&format!(r#"value="{}""#, scheme.name())),
            "{mpd}"
        );
        shaka_session(browser, f, title, sid, token, &clear_keys);
    }
    // With a wrong key the same stream does not play: the samples are really encrypted.
    let (title, _) = DRM_TITLES[0];
    let token = &f.tokens.drm[0].1;
    let wrong = clear_keys.replace(&hex(&keys.video.key), &"00".repeat(16));
    let src = format!("http://{}/wmt/{token}/{title}/manifest.mpd", f.addr);
    let r = run_page(
        browser,
        &SHAKA_PAGE.replace("CLEAR_KEYS", &wrong),
        &shaka(),
        &src,
    );
    eprintln!(
        "shaka {title} with a wrong key: done={} errors={}",
        r["done"], r["errors"]
    );
    assert_ne!(r["ended"], true, "played with a wrong key: {r}");
    assert!(!r["errors"].as_array().unwrap().is_empty(), "{r}");
}

/// Plays `title` as session `sid` in Shaka Player and checks every segment it received.
fn shaka_session(
    browser: &str,
    f: &Fixture,
    title: &str,
    sid: &leaktrace_core::SessionId,
    token: &str,
    clear_keys: &str,
) {
    let src = format!("http://{}/wmt/{token}/{title}/manifest.mpd", f.addr);
    let page = SHAKA_PAGE.replace("CLEAR_KEYS", clear_keys);
    let r = run_page(browser, &page, &shaka(), &src);
    let pkg = f.pkg.with_file_name(title);
    let report = r.to_string();
    eprintln!(
        "shaka: done={} ended={} t={} fragments={} audio bytes={} variants={} errors={}",
        r["done"],
        r["ended"],
        r["currentTime"],
        r["frags"].as_array().map_or(0, Vec::len),
        r["audioDecodedBytes"],
        r["variants"],
        r["errors"]
    );
    assert_eq!(r["supported"], true, "Shaka Player: browser not supported");
    assert_eq!(r["errors"], serde_json::json!([]), "{report}");
    assert_eq!(r["ended"], true, "playback did not reach the end: {report}");
    assert!(r["videoError"].is_null());
    assert_eq!(r["audioLanguages"], serde_json::json!(["und"]), "{report}");
    for v in r["variants"].as_array().unwrap() {
        assert_eq!(v["audio"], "mp4a.40.2", "{report}");
    }
    assert!(r["audioDecodedBytes"].as_u64().unwrap_or(0) > 0, "{report}");
    let (mut positions, mut audio) = (std::collections::BTreeSet::new(), 0u32);
    for frag in r["frags"].as_array().unwrap() {
        let url = frag["url"].as_str().unwrap();
        let hash = frag["sha256"].as_str().unwrap();
        let rest = url
            .split_once(&format!("/wmt/{token}/{title}/"))
            .expect("segment URL outside the session's prefix")
            .1;
        let (rendition, file) = rest.split_once('/').unwrap();
        let dir = pkg.join(rendition);
        if rendition == AUDIO {
            assert_eq!(hash, sha256_hex(&std::fs::read(dir.join(file)).unwrap()));
            audio += 1;
            continue;
        }
        if file == "init.mp4" {
            assert_eq!(hash, sha256_hex(&egress_file(&dir.join("a/init.mp4"))));
            continue;
        }
        let p: u32 = file
            .strip_prefix("seg_")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected segment {url}"));
        let want = codeword_of(title, sid, p);
        let named = egress_file(&dir.join(want.dir()).join(file));
        assert_eq!(
            hash,
            sha256_hex(&named),
            "{rendition}/{file}: not the {want} file ({} bytes received, {} in the file)",
            frag["len"],
            named.len()
        );
        positions.insert(p);
    }
    assert_eq!(audio, POSITIONS + 1, "audio init + segments: {report}");
    assert_eq!(
        positions.len() as u32,
        POSITIONS,
        "positions: {positions:?}"
    );
}

/// A ClearKey licence service on 127.0.0.1: answers every licence request (and its CORS
/// preflight) with the JSON Web Key set of `keys`.
fn licence_server(keys: &leaktrace_embed::drm::KeyFile) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8; 16]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut jwks = vec![(keys.video.kid, keys.video.key)];
    if let Some(a) = &keys.audio {
        jwks.push((a.kid, a.key));
    }
    let body = serde_json::json!({
        "keys": jwks.iter().map(|(kid, k)| serde_json::json!({"kty": "oct", "kid": b64(kid), "k": b64(k)})).collect::<Vec<_>>(),
        "type": "temporary",
    })
    .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/licence", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let preflight =
                browser::read_request(&mut s).is_some_and(|(head, _)| head.starts_with("options"));
            let cors = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: POST, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\n";
            let reply = if preflight {
                format!("HTTP/1.1 204 No Content\r\n{cors}Connection: close\r\n\r\n")
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\n{cors}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    url
}

/// hls.js plays both encrypted titles (`cbcs` as `SAMPLE-AES`, `cenc` as `SAMPLE-AES-CTR`)
/// with ClearKey through EME, the licence from a loopback licence service: every segment
/// decrypts and decodes, and is the session's.
#[test]
fn hls_js_plays_the_encrypted_packages_with_clearkey() {
    let Some(browser) = player_available(&hls_js()) else {
        return;
    };
    let f = fixture();
    let keys = leaktrace_embed::drm::KeyFile::parse(DRM_KEYS).unwrap();
    let licence = licence_server(&keys);
    for ((title, _), (sid, token)) in DRM_TITLES.iter().zip(&f.tokens.drm) {
        hls_js_drm_session(browser, f, title, sid, token, &licence);
    }
}

fn hls_js_drm_session(
    browser: &str,
    f: &Fixture,
    title: &str,
    sid: &leaktrace_core::SessionId,
    token: &str,
    licence: &str,
) {
    let drm = format!(
        "emeEnabled: true, drmSystems: {{ 'org.w3.clearkey': {{ licenseUrl: '{licence}' }} }}"
    );
    let src = format!("http://{}/wmt/{token}/{title}/master.m3u8", f.addr);
    let r = run_page(browser, &PAGE.replace("HLS_DRM", &drm), &hls_js(), &src);
    let report = r.to_string();
    eprintln!(
        "hls.js {title}: done={} ended={} t={} fragments={} audio bytes={} errors={}",
        r["done"],
        r["ended"],
        r["currentTime"],
        r["frags"].as_array().map_or(0, Vec::len),
        r["audioDecodedBytes"],
        r["errors"]
    );
    let fatal: Vec<&serde_json::Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fatal"] == true)
        .collect();
    assert!(fatal.is_empty(), "fatal player errors: {report}");
    assert_eq!(r["ended"], true, "playback did not reach the end: {report}");
    assert!(r["audioDecodedBytes"].as_u64().unwrap_or(0) > 0, "{report}");
    let pkg = f.pkg.with_file_name(title);
    let mut positions = std::collections::BTreeSet::new();
    for frag in r["frags"].as_array().unwrap() {
        let url = frag["url"].as_str().unwrap();
        let rest = url.split_once(&format!("/wmt/{token}/{title}/")).unwrap().1;
        let (rendition, file) = rest.split_once('/').unwrap();
        let Some(p) = file
            .strip_prefix("seg_")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if rendition == AUDIO {
            continue;
        }
        let want = codeword_of(title, sid, p);
        let named = egress_file(&pkg.join(rendition).join(want.dir()).join(file));
        assert_eq!(
            frag["sha256"].as_str().unwrap(),
            sha256_hex(&named),
            "{url}"
        );
        positions.insert(p);
    }
    assert_eq!(positions.len() as u32, POSITIONS, "{positions:?}");
}
