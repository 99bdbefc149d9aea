//! A live channel end to end: FFmpeg sends a corpus clip as MPEG-TS over UDP on loopback at
//! 4× its rate, `leaktrace live` marks it into A/B live CMAF with a sliding window, the edge
//! serves two sessions while it is on air, one session's captured stream is accused by
//! `leaktrace detect` against the reference index the channel is still appending to; the
//! channel is stopped and resumed without ever serving two pictures under one position.
//!
//! A low-latency channel publishes each segment as parts (LL-HLS `EXT-X-PART`, CMAF chunks)
//! as they are encoded; the edge serves the parts per session and holds blocking playlist
//! reloads; a packager killed while parts of a position are out abandons that position.
//!
//! A third test feeds a source that misbehaves: a picture-size change mid-stream, garbage
//! datagrams, a stall, and a new sender at another frame rate. The channel keeps going, every
//! segment it publishes decodes cleanly, and every playlist entry names files that exist.
//!
//! Contribution feeds over SRT and RTMP: FFmpeg serves the feed as an SRT listener and as an
//! RTMP server, `leaktrace live` connects to each and publishes marked positions that decode.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use common::live::{Live, edge, get, get_hinted_part, listed_parts, session, timed_get};
use common::*;
use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, Variant};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// FFmpeg sending `input` (stream copy) as MPEG-TS to udp://127.0.0.1:`port` at `rate`× speed.
fn sender(input: &Path, port: u16, rate: &str, extra: &[&str]) -> Proc {
    Proc(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-readrate", rate])
            .args(extra)
            .arg("-i")
            .arg(input)
            .args(["-map", "0:v:0", "-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Which variant's file (`a/` or `b/` of the 360p rendition, in its egress form) `body` is.
fn served_as(dir: &Path, name: &str, body: &[u8]) -> Option<char> {
    ['a', 'b'].into_iter().find(|v| {
        std::fs::read(dir.join("ch/360p").join(v.to_string()).join(name)).is_ok_and(|mut f| {
            leaktrace_edge::egress::neutralize_wmpi(&mut f);
            f == body
        })
    })
}

/// The segment names a media playlist lists, with its media sequence.
fn listed(playlist: &str) -> (u64, Vec<String>) {
    let seq = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let names = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .collect();
    (seq, names)
}

/// A session's live stream through the edge, joined where the playlist starts: `count`
/// positions from the first one listed, each body checked against the `a/` and `b/` files.
/// Returns the stream (init + segments), the variant of each position, and the first position.
fn capture(dir: &Path, port: u16, prefix: &str, count: u32) -> (Vec<u8>, BTreeMap<u32, char>, u32) {
    let (status, head, init) = get(port, &format!("{prefix}/360p/init.mp4"));
    assert_eq!(status, 200);
    assert!(head.contains("max-age=86400"), "{head}");
    let mut got: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut variants = BTreeMap::new();
    let t = Instant::now();
    let mut positions: Option<std::ops::Range<u32>> = None;
    while !positions
        .clone()
        .is_some_and(|r| r.clone().all(|p| got.contains_key(&p)))
    {
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "positions {:?} not all listed in time; got {:?}",
            positions,
            got.keys().collect::<Vec<_>>()
        );
        let (status, head, body) = get(port, &format!("{prefix}/360p/playlist.m3u8"));
        assert_eq!(status, 200);
        assert!(
            head.contains("max-age=1"),
            "a live playlist is cached briefly: {head}"
        );
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
        let (seq, names) = listed(&text);
        let positions = positions
            .get_or_insert(seq as u32..seq as u32 + count)
            .clone();
        for (k, name) in names.iter().enumerate() {
            let p = seq as u32 + k as u32;
            assert_eq!(name, &format!("seg_{p:05}.m4s"), "{text}");
            if !positions.contains(&p) || got.contains_key(&p) {
                continue;
            }
            let (status, _, body) = get(port, &format!("{prefix}/360p/{name}"));
            assert_eq!(status, 200, "{name} is listed, so it is served");
            let variant = served_as(dir, name, &body)
                .unwrap_or_else(|| panic!("{name}: served bytes are neither a/ nor b/"));
            variants.insert(p, variant);
            got.insert(p, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let positions = positions.unwrap_or_default();
    let mut stream = init;
    for p in positions.clone() {
        stream.extend(&got[&p]);
    }
    (stream, variants, positions.start)
}

/// Every segment and part a playlist lists exists, in both variants, with its sidecar.
fn playlist_files_exist(ch: &Path) {
    let text = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    let (_, mut names) = listed(&text);
    names.extend(listed_parts(&text));
    for name in names {
        for sub in ["a", "b", "WMPaceInfo"] {
            assert!(
                ch.join("360p").join(sub).join(&name).is_file(),
                "{sub}/{name} is listed but missing"
            );
        }
    }
}

#[test]
fn a_live_channel_is_served_captured_and_traced_while_on_air() {
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let mut seen = Vec::new();
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--window", "6", "--keep", "40", "--stall", "3s"],
    );
    let _send = sender(&corpus("bbb.mp4"), port, "4", &[]);
    let first = live.wait("published", Duration::from_secs(60), &mut seen);
    assert_eq!(first["position"], 0);
    let (_edge, eport) = edge(dir);
    let (pirate, pirate_prefix) = session(dir, "pirate");
    // A channel has no end: a direct-mode token cannot carry its codeword.
    let direct = bin()
        .current_dir(dir)
        .args([
            "session",
            "new",
            "--title",
            "news",
            "--account",
            "x",
            "--direct",
        ])
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(2), "{direct:?}");
    assert!(String::from_utf8_lossy(&direct.stderr).contains("indirect mode"));
    let (other_id, other_prefix) = session(dir, "viewer");
    for _ in 0..9 {
        live.wait("published", Duration::from_secs(60), &mut seen);
    }
    // The multivariant playlist and the dynamic MPD, through the edge.
    let (status, _, master) = get(eport, &format!("{pirate_prefix}/master.m3u8"));
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(master)
            .unwrap()
            .contains("360p/playlist.m3u8")
    );
    let (status, head, mpd) = get(eport, &format!("{pirate_prefix}/manifest.mpd"));
    assert_eq!(status, 200);
    assert!(head.contains("max-age=1"), "{head}");
    let mpd = String::from_utf8(mpd).unwrap();
    assert!(mpd.contains(r#"type="dynamic""#) && mpd.contains("availabilityStartTime"));

    // Two sessions, two sequences; the pirate's capture is traced while the channel runs.
    let other = {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || capture(&dir, eport, &other_prefix, 12).1)
    };
    // 45 positions: enough for 10⁻⁶ over the two sessions whatever the channel's random key.
    // With 30, about one key in five gives codewords whose best possible probability stays
    // above 10⁻⁶ (367 of 2 000 simulated keys at the strengths this copy shows; 1 of 2 000 at
    // 40 positions, none at 45).
    let (stream, pirate_variants, _) = capture(dir, eport, &pirate_prefix, 45);
    let other_variants = other.join().unwrap();
    let both: Vec<u32> = other_variants
        .keys()
        .filter(|p| pirate_variants.contains_key(p))
        .copied()
        .collect();
    assert!(both.len() >= 6, "the two captures overlap on {both:?}");
    // Each session is served its own codeword at every position it fetched. Two codewords
    // agree at a position with probability E[p² + (1 − p)²] ≈ 3/4 over the biases, so a dozen
    // shared positions alone would leave them identical about once in 30 channels: that they
    // differ is checked over the pirate's 45 positions (3/4⁴⁵ ≈ 2·10⁻⁶).
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let key = MasterKey::from_hex(key.trim(), KeyVersion::new(1)).unwrap();
    let book = key.codebook(&TitleId::new("news").unwrap());
    let (pirate_id, other_id) = (
        SessionId::new(pirate.clone()).unwrap(),
        SessionId::new(other_id).unwrap(),
    );
    for (id, variants) in [(&pirate_id, &pirate_variants), (&other_id, &other_variants)] {
        for (&p, &v) in variants {
            let want = if book.bit(id, p) == Variant::A {
                'a'
            } else {
                'b'
            };
            assert_eq!(
                v, want,
                "session {id} at position {p}: served {v}, its codeword {want}"
            );
        }
    }
    assert!(
        pirate_variants
            .keys()
            .any(|&p| book.bit(&pirate_id, p) != book.bit(&other_id, p)),
        "two sessions' codewords agree on all of {:?}",
        pirate_variants.keys().collect::<Vec<_>>()
    );
    std::fs::write(dir.join("capture.mp4"), &stream).unwrap();
    let leak = dir.join("leak.mp4");
    ok(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(dir.join("capture.mp4"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "26"])
        .arg(&leak));
    let out = ok(bin().current_dir(dir).args(["detect"]).arg(&leak).args([
        "--title",
        "news",
        "--reference",
        "ch/reference",
        "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "accused", "{report}");
    assert_eq!(
        report["accused"][0]["session_id"],
        pirate.as_str(),
        "{report}"
    );
    assert_eq!(report["accused"].as_array().unwrap().len(), 1, "{report}");
    playlist_files_exist(&dir.join("ch"));

    // Stop, keep a served segment's bytes, resume: the channel goes on after the last
    // position it published, and nothing published before is rewritten.
    let summary = live.stop(&mut seen);
    let last = summary["first_position"].as_u64().unwrap() + summary["positions"].as_u64().unwrap();
    assert!(last >= 32, "{summary}");
    let kept = dir
        .join("ch/360p/a")
        .join(format!("seg_{:05}.m4s", last - 2));
    let before = std::fs::read(&kept).unwrap();
    let reference = std::fs::read(dir.join("ch/reference/index.json")).unwrap();
    let reference: Value = serde_json::from_slice(&reference).unwrap();
    assert_eq!(reference["positions"].as_u64().unwrap(), last);
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--window", "6", "--keep", "40", "--stall", "3s"],
    );
    let resumed = live.wait("resumed", Duration::from_secs(60), &mut seen);
    assert_eq!(resumed["position"].as_u64().unwrap(), last);
    let next = live.wait("published", Duration::from_secs(60), &mut seen);
    assert_eq!(next["position"].as_u64().unwrap(), last);
    live.wait("published", Duration::from_secs(60), &mut seen);
    assert_eq!(std::fs::read(&kept).unwrap(), before);
    let playlist = std::fs::read_to_string(dir.join("ch/360p/playlist.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
    playlist_files_exist(&dir.join("ch"));
    let mpd = std::fs::read_to_string(dir.join("ch/manifest.mpd")).unwrap();
    assert!(
        mpd.matches("<Period").count() >= 2,
        "a restart starts a period: {mpd}"
    );

    // Killed outright in the middle of a position: the next run resumes after the last
    // position whose reference record was written, and removes whatever a later position had
    // on disk (never served: its sidecars were not written yet).
    let mut live = live;
    live.wait("published", Duration::from_secs(60), &mut seen);
    std::thread::sleep(Duration::from_millis(700));
    ok(Command::new("kill")
        .arg("-KILL")
        .arg(live.proc.0.id().to_string()));
    let _ = live.proc.0.wait();
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("ch/reference/index.json")).unwrap())
            .unwrap();
    let done = index["positions"].as_u64().unwrap();
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--window", "6", "--keep", "40", "--stall", "3s"],
    );
    let resumed = live.wait("resumed", Duration::from_secs(60), &mut seen);
    assert_eq!(resumed["position"].as_u64().unwrap(), done);
    let next = live.wait("published", Duration::from_secs(60), &mut seen);
    assert_eq!(next["position"].as_u64().unwrap(), done);
    for sub in ["a", "b", "WMPaceInfo"] {
        let later = dir
            .join("ch/360p")
            .join(sub)
            .join(format!("seg_{:05}.m4s", done + 5));
        assert!(!later.exists(), "{} left behind", later.display());
    }
    playlist_files_exist(&dir.join("ch"));
    live.stop(&mut seen);
}

/// Encodes `seconds` of a test pattern at `size` and `rate` into an MPEG-TS file.
fn pattern_ts(dir: &Path, name: &str, size: &str, rate: u32, seconds: u32) -> PathBuf {
    let out = dir.join(name);
    ok(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={size}:rate={rate}:duration={seconds}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-f",
            "mpegts",
        ])
        .arg(&out));
    out
}

/// The init segment and `seg` decode without a single FFmpeg error, into `frames` frames.
fn decodes_cleanly(ch: &Path, seg: &str) -> usize {
    let rend = ch.join("360p");
    let mut bytes = std::fs::read(rend.join("a/init.mp4")).unwrap();
    bytes.extend(std::fs::read(rend.join("a").join(seg)).unwrap());
    let tmp = tempfile::NamedTempFile::with_suffix(".mp4").unwrap();
    std::fs::write(tmp.path(), &bytes).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(tmp.path())
        .args(["-f", "framemd5", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "{seg}: {errors}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

#[test]
fn a_misbehaving_source_never_breaks_the_channel() {
    let dir = init_workdir();
    let dir = dir.path();
    // 6 s at 640x360 then 6 s at 480x270 in one MPEG-TS stream: a size change mid-stream.
    let a = pattern_ts(dir, "a.ts", "640x360", 25, 6);
    let b = pattern_ts(dir, "b.ts", "480x270", 25, 6);
    let mut ab = std::fs::read(&a).unwrap();
    ab.extend(std::fs::read(&b).unwrap());
    std::fs::write(dir.join("ab.ts"), ab).unwrap();
    let c = pattern_ts(dir, "c.ts", "640x360", 30, 8);
    let port = free_port();
    let mut seen = Vec::new();
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--window", "5", "--keep", "100", "--stall", "1s"],
    );
    {
        let send = sender(&dir.join("ab.ts"), port, "2", &[]);
        live.wait("published", Duration::from_secs(60), &mut seen);
        // Garbage datagrams in the middle of the stream.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for k in 0..50u8 {
            let junk: Vec<u8> = (0..1316)
                .map(|i| (i as u8).wrapping_mul(k) ^ 0x5a)
                .collect();
            sock.send_to(&junk, ("127.0.0.1", port)).unwrap();
        }
        let mut send = send;
        let t = Instant::now();
        while send.0.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The sender is gone: a stall. Then another sender at another frame rate.
    live.wait("source_lost", Duration::from_secs(30), &mut seen);
    std::thread::sleep(Duration::from_secs(2));
    let mut send = sender(&c, port, "2", &[]);
    live.wait("source_opened", Duration::from_secs(30), &mut seen);
    let t = Instant::now();
    while send.0.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let summary = live.stop(&mut seen);
    let kinds: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"source_resized"), "{kinds:?}");
    assert!(kinds.contains(&"source_lost"), "{kinds:?}");
    let ch = dir.join("ch");
    playlist_files_exist(&ch);
    // Every published position decodes cleanly and holds a whole segment's frames at the
    // channel's rate (25 fps, the first source's): positions are contiguous.
    let published: Vec<u64> = seen
        .iter()
        .filter(|e| e["event"] == "published")
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(published, (0..published.len() as u64).collect::<Vec<_>>());
    assert!(published.len() >= 8, "{summary}");
    for &p in &published[..published.len() - 1] {
        assert_eq!(
            decodes_cleanly(&ch, &format!("seg_{p:05}.m4s")),
            50,
            "position {p}"
        );
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(ch.join("live.json")).unwrap()).unwrap();
    assert_eq!(state["frame_rate"], serde_json::json!([25, 1]));
    eprintln!("{summary}");
}

/// FFmpeg serving `input` in a loop at twice its rate as a contribution feed on 127.0.0.1:`port`,
/// waiting for the packager to connect: an SRT listener (MPEG-TS) or an RTMP server (FLV).
/// Returns it and the URL `leaktrace live` reads.
fn contribution_feed(input: &Path, protocol: &str, port: u16) -> (Proc, String) {
    let (format, serve, read) = match protocol {
        "srt" => (
            "mpegts",
            format!("srt://127.0.0.1:{port}?mode=listener"),
            format!("srt://127.0.0.1:{port}"),
        ),
        "rtmp" => (
            "flv",
            format!("rtmp://127.0.0.1:{port}/live/feed"),
            format!("rtmp://127.0.0.1:{port}/live/feed"),
        ),
        other => panic!("no feed for {other}"),
    };
    let listen: &[&str] = if protocol == "rtmp" {
        &["-listen", "1"]
    } else {
        &[]
    };
    let proc = Proc(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-readrate",
                "2",
                "-stream_loop",
                "-1",
            ])
            .arg("-i")
            .arg(input)
            .args(["-map", "0:v:0", "-c", "copy", "-f", format])
            .args(listen)
            .arg(serve)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (proc, read)
}

#[test]
fn srt_and_rtmp_contribution_feeds_are_marked() {
    for protocol in ["srt", "rtmp"] {
        let dir = init_workdir();
        let dir = dir.path();
        let source = pattern_ts(dir, "feed.ts", "640x360", 25, 4);
        let (_feed, url) = contribution_feed(&source, protocol, free_port());
        // The packager may connect before the feed listens: it retries every reconnect delay.
        let live = Live::start(dir, &url, &["--max-positions", "3", "--stall", "2s"]);
        let mut seen = Vec::new();
        let summary = live.wait("summary", Duration::from_secs(90), &mut seen);
        assert_eq!(summary["positions"], 3, "{protocol}: {seen:?}");
        let ch = dir.join("ch");
        playlist_files_exist(&ch);
        for p in 0..3 {
            let seg = format!("seg_{p:05}.m4s");
            assert_eq!(decodes_cleanly(&ch, &seg), 50, "{protocol}: position {p}");
            let rend = ch.join("360p");
            assert_ne!(
                std::fs::read(rend.join("a").join(&seg)).unwrap(),
                std::fs::read(rend.join("b").join(&seg)).unwrap(),
                "{protocol}: position {p} has one picture under A and B"
            );
        }
        eprintln!("{protocol}: {summary}");
    }
}

#[test]
fn a_low_latency_channel_serves_parts_and_abandons_an_interrupted_position() {
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let mut seen = Vec::new();
    let args = [
        "--window", "6", "--keep", "40", "--stall", "3s", "--part", "500ms",
    ];
    let live = Live::start(dir, &format!("udp://127.0.0.1:{port}"), &args);
    let _send = sender(&corpus("bbb.mp4"), port, "1.5", &[]);
    for _ in 0..3 {
        live.wait("published", Duration::from_secs(60), &mut seen);
    }
    let (_edge, eport) = edge(dir);
    let (_, prefix) = session(dir, "viewer");
    let (status, head, body) = get(eport, &format!("{prefix}/360p/playlist.m3u8"));
    assert_eq!(status, 200);
    assert!(head.contains("max-age=1"), "{head}");
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("#EXT-X-VERSION:9"), "{text}");
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.5"), "{text}");
    assert!(
        text.contains("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5"),
        "{text}"
    );
    let (seq, names) = listed(&text);
    assert!(!names.is_empty(), "{text}");
    let last_complete = seq + names.len() as u64 - 1;

    // The parts of a complete segment, through the edge: each is the session's variant's part
    // file, and together they are the segment the session gets.
    let name = format!("seg_{last_complete:05}.m4s");
    let (status, _, whole) = get(eport, &format!("{prefix}/360p/{name}"));
    assert_eq!(status, 200);
    let parts: Vec<String> = listed_parts(&text)
        .into_iter()
        .filter(|p| p.starts_with(&format!("seg_{last_complete:05}.p")))
        .collect();
    assert_eq!(parts.len(), 4, "2-s segments in 0.5-s parts: {text}");
    let mut joined = Vec::new();
    let mut variants = Vec::new();
    for part in &parts {
        let (status, _, body) = get(eport, &format!("{prefix}/360p/{part}"));
        assert_eq!(status, 200, "{part}");
        let variant = served_as(dir, part, &body)
            .unwrap_or_else(|| panic!("{part}: served bytes are neither a/ nor b/"));
        variants.push(variant);
        joined.extend(body);
    }
    assert!(variants.windows(2).all(|w| w[0] == w[1]), "{variants:?}");
    assert_eq!(joined, whole, "the parts of {name} are its bytes");

    // Blocking playlist reload: a request for the segment after the one being published is
    // held until the playlist holds it; one far ahead is refused. The segment asked for is
    // worked out from the playlist on disk just before the request, so the answer listing it
    // shows that it waited for a later playlist (how long depends on the packager's pace,
    // which a loaded host makes bursty: no wall-clock bound).
    let on_disk = std::fs::read_to_string(dir.join("ch/360p/playlist.m3u8")).unwrap();
    let (disk_seq, disk_names) = listed(&on_disk);
    let ahead = disk_seq + disk_names.len() as u64 + 1;
    let (status, body, took) = timed_get(
        eport,
        &format!("{prefix}/360p/playlist.m3u8?_HLS_msn={ahead}&_HLS_part=0"),
    );
    assert_eq!(status, 200);
    let held = String::from_utf8(body).unwrap();
    assert!(
        held.contains(&format!("seg_{ahead:05}.p0.m4s"))
            || held.contains(&format!("seg_{ahead:05}.m4s")),
        "{held}"
    );
    assert!(
        !disk_names
            .iter()
            .chain(&listed_parts(&on_disk))
            .any(|n| n.starts_with(&format!("seg_{ahead:05}."))),
        "{ahead} was listed before the request: {on_disk}"
    );
    eprintln!("blocking reload for {ahead} answered after {took:?}");
    let (status, _, _) = get(
        eport,
        &format!("{prefix}/360p/playlist.m3u8?_HLS_msn={}", ahead + 50),
    );
    assert_eq!(status, 400);
    let (status, _, _) = get(eport, &format!("{prefix}/360p/playlist.m3u8?_HLS_part=1"));
    assert_eq!(status, 400);
    // The preload hint names the next part before it exists: a request for it is held until
    // it is published, then served as the session's variant.
    let hint = held
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no preload hint: {held}"))
        .to_owned();
    let (body, took) = get_hinted_part(eport, &format!("{prefix}/360p/{hint}"));
    assert!(
        served_as(dir, &hint, &body).is_some(),
        "{hint}: neither a/ nor b/"
    );
    eprintln!("preload hint {hint} answered after {took:?}");
    playlist_files_exist(&dir.join("ch"));

    // Killed while parts of a position are out: that position is abandoned on restart and
    // never used again; the channel goes on after it.
    let ch = dir.join("ch");
    let t = Instant::now();
    let open = loop {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no open position seen"
        );
        let state: Value = std::fs::read(ch.join("live.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let parts = state["open"]["parts"].as_array().map_or(0, Vec::len);
        if (1..3).contains(&parts) {
            break state["open"]["position"].as_u64().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut live = live;
    ok(Command::new("kill")
        .arg("-KILL")
        .arg(live.proc.0.id().to_string()));
    let _ = live.proc.0.wait();
    let index: Value =
        serde_json::from_slice(&std::fs::read(ch.join("reference/index.json")).unwrap()).unwrap();
    assert_eq!(index["opened"].as_u64(), Some(open), "{index}");
    assert_eq!(index["positions"].as_u64(), Some(open), "{index}");
    let served_part = ch.join("360p/a").join(format!("seg_{open:05}.p0.m4s"));
    assert!(served_part.is_file());
    let live = Live::start(dir, &format!("udp://127.0.0.1:{port}"), &args);
    let abandoned = live.wait("abandoned", Duration::from_secs(60), &mut seen);
    assert_eq!(abandoned["position"].as_u64(), Some(open));
    let resumed = live.wait("resumed", Duration::from_secs(60), &mut seen);
    assert_eq!(resumed["position"].as_u64(), Some(open + 1));
    let next = live.wait("published", Duration::from_secs(60), &mut seen);
    assert_eq!(next["position"].as_u64(), Some(open + 1));
    assert!(
        !served_part.exists(),
        "the abandoned position's parts are removed"
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(ch.join("reference/index.json")).unwrap()).unwrap();
    assert!(
        index.get("opened").is_none_or(|o| o.as_u64() != Some(open)),
        "{index}"
    );
    assert!(index["positions"].as_u64().unwrap() >= open + 2, "{index}");
    let playlist = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    assert!(!playlist.contains(&format!("seg_{open:05}")), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
    playlist_files_exist(&ch);
    let summary = live.stop(&mut seen);
    assert!(summary["parts"].as_u64().unwrap() >= 4, "{summary}");
    eprintln!("{summary}");
}
