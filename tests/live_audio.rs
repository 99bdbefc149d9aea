//! Audio in a live channel: FFmpeg sends a corpus clip with its AAC audio (44.1 kHz stereo) as
//! MPEG-TS over UDP on loopback at 3× its rate, `leaktrace live` passes the audio through as an
//! AAC-LC 48 kHz rendition cut at the video's positions; the source stalls and comes back
//! without audio, then with it again, and the channel is restarted. Every listed audio segment
//! exists and decodes, lines up with its position's video within one AAC frame, and the audio
//! timeline is contiguous within each run. A feed without audio makes a channel without an
//! audio rendition. A low-latency channel (`--part 500ms`) has audio parts cut on the video's
//! part boundaries, listed in an LL-HLS audio playlist the edge holds blocking reloads on; a
//! position abandoned on restart loses its audio parts with its video parts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use common::live::{Live, edge, get_hinted_part, listed_parts, session, timed_get};
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Samples per AAC frame.
const AAC_FRAME: i64 = 1024;

/// FFmpeg sending `seconds` of the corpus's `bbb.mp4` from `from` s (stream copy; its audio
/// too when `audio`) as MPEG-TS to udp://127.0.0.1:`port` at 3× speed.
fn sender(port: u16, from: u32, seconds: u32, audio: bool) -> Proc {
    sender_at(port, "3", from, seconds, audio)
}

/// [`sender`] at `rate`× speed.
fn sender_at(port: u16, rate: &str, from: u32, seconds: u32, audio: bool) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-readrate", rate])
        .args(["-ss", &from.to_string(), "-t", &seconds.to_string()])
        .arg("-i")
        .arg(corpus("bbb.mp4"))
        .args(["-map", "0:v:0"]);
    if audio {
        cmd.args(["-map", "0:a:0"]);
    }
    cmd.args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc(cmd.spawn().unwrap())
}

/// The segment names a media playlist lists, with its media sequence, and the index of each
/// segment that follows an `EXT-X-DISCONTINUITY`.
fn listed(playlist: &str) -> (u64, Vec<String>, Vec<usize>) {
    let seq = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut names = Vec::new();
    let mut breaks = Vec::new();
    for l in playlist.lines() {
        if l == "#EXT-X-DISCONTINUITY" {
            breaks.push(names.len());
        } else if !l.starts_with('#') && !l.trim().is_empty() {
            names.push(l.trim().to_owned());
        }
    }
    (seq, names, breaks)
}

/// The payload of the first box named `name` among the boxes of `buf`.
fn child<'a>(buf: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0;
    while at + 8 <= buf.len() {
        let size = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        if size < 8 || at + size > buf.len() {
            return None;
        }
        if &buf[at + 4..at + 8] == name {
            return Some(&buf[at + 8..at + size]);
        }
        at += size;
    }
    None
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// `tfdt` and the summed sample durations (`trun`, or `tfhd`'s default) of a media segment.
fn timing(segment: &[u8]) -> (u64, u64) {
    let traf = child(child(segment, b"moof").unwrap(), b"traf").unwrap();
    let tfdt = child(traf, b"tfdt").unwrap();
    let start = if tfdt[0] == 1 {
        u64::from_be_bytes(tfdt[4..12].try_into().unwrap())
    } else {
        u64::from(u32_at(tfdt, 4))
    };
    let tfhd = child(traf, b"tfhd").unwrap();
    let tf_flags = u32_at(tfhd, 0) & 0xff_ffff;
    let mut at = 8; // version/flags, track id
    for (bit, len) in [(0x1, 8), (0x2, 4)] {
        if tf_flags & bit != 0 {
            at += len;
        }
    }
    let default = (tf_flags & 0x8 != 0).then(|| u32_at(tfhd, at));
    let trun = child(traf, b"trun").unwrap();
    let flags = u32_at(trun, 0) & 0xff_ffff;
    let count = u32_at(trun, 4);
    let mut at = 8 + if flags & 0x1 != 0 { 4 } else { 0 } + if flags & 0x4 != 0 { 4 } else { 0 };
    let mut total = 0u64;
    for _ in 0..count {
        if flags & 0x100 != 0 {
            total += u64::from(u32_at(trun, at));
            at += 4;
        } else {
            total += u64::from(default.unwrap());
        }
        for bit in [0x200, 0x400, 0x800] {
            if flags & bit != 0 {
                at += 4;
            }
        }
    }
    (start, total)
}

/// FFmpeg decodes `file` with no error; returns its mean volume (dB).
fn decode_audio(file: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(file)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .env("AV_LOG_FORCE_NOCOLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} does not decode: {err}",
        file.display()
    );
    // volumedetect reports at info level: run it again at that level for the figure.
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(file)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no mean volume for {}: {text}", file.display()))
}

#[test]
fn a_live_channel_carries_the_feeds_audio_through_a_stall_and_a_restart() {
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let url = format!("udp://127.0.0.1:{port}");
    let args = ["--window", "30", "--keep", "10", "--stall", "1s"];
    let started = Instant::now();
    let live = Live::start(dir, &url, &args);
    let mut seen = Vec::new();
    let wait = Duration::from_secs(120);
    // 12 s of the clip with its audio, then a stall.
    let first = sender(port, 30, 12, true);
    live.wait_audio("encoded to AAC-LC", wait, &mut seen);
    live.wait("source_lost", wait, &mut seen);
    drop(first);
    // The source comes back without audio: silence stands in, and is logged.
    let second = sender(port, 60, 8, false);
    live.wait_audio("no audio stream", wait, &mut seen);
    live.wait_audio("no audio from the feed", wait, &mut seen);
    live.wait("source_lost", wait, &mut seen);
    drop(second);
    // With audio again.
    let third = sender(port, 90, 8, true);
    live.wait_audio("is back", wait, &mut seen);
    live.wait("source_lost", wait, &mut seen);
    drop(third);
    let summary = live.finish(true, &mut seen);
    let first_run = summary["positions"].as_u64().unwrap();
    assert!(first_run >= 10, "{summary}");
    // Restarted: the channel keeps its audio rendition.
    let fourth = sender(port, 120, 10, true);
    let live = Live::start(dir, &url, &[&args[..], &["--max-positions", "3"]].concat());
    live.wait("resumed", wait, &mut seen);
    let summary = live.finish(false, &mut seen);
    assert_eq!(summary["positions"], 3, "{summary}");
    drop(fourth);
    eprintln!("channel run in {:.1} s", started.elapsed().as_secs_f64());

    let ch = dir.join("ch");
    let master = std::fs::read_to_string(ch.join("master.m3u8")).unwrap();
    let media_line = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .unwrap_or_else(|| panic!("no audio rendition: {master}"));
    for attr in ["GROUP-ID=\"audio\"", "DEFAULT=YES", "AUTOSELECT=YES"] {
        assert!(media_line.contains(attr), "{media_line}");
    }
    let uri = media_line
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let audio_dir = ch.join(uri.trim_end_matches("/playlist.m3u8"));
    assert!(uri.starts_with("audio-") && audio_dir.is_dir(), "{uri}");
    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert!(!variants.is_empty());
    for v in &variants {
        assert!(
            v.contains("AUDIO=\"audio\"") && v.contains("mp4a.40.2"),
            "{v}"
        );
    }

    // The audio playlist has the video's window, sequence, date-times and discontinuities.
    let audio_pl = std::fs::read_to_string(ch.join(uri)).unwrap();
    let video_pl = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    let (a_seq, a_names, a_breaks) = listed(&audio_pl);
    let (v_seq, v_names, v_breaks) = listed(&video_pl);
    assert_eq!((a_seq, &a_names, &a_breaks), (v_seq, &v_names, &v_breaks));
    assert_eq!(a_breaks.len(), 1, "one restart: {audio_pl}");
    assert!(a_names.len() >= 13, "{audio_pl}");
    let pdt = |pl: &str| -> Vec<String> {
        pl.lines()
            .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(pdt(&audio_pl), pdt(&video_pl));
    assert_eq!(pdt(&audio_pl).len(), a_names.len());

    // The MPD: an audio adaptation set in every period.
    let mpd = std::fs::read_to_string(ch.join("manifest.mpd")).unwrap();
    let periods = mpd.matches("<Period ").count();
    assert!(periods >= 2, "{mpd}");
    assert_eq!(
        mpd.matches("contentType=\"audio\"").count(),
        periods,
        "{mpd}"
    );
    assert!(mpd.contains("codecs=\"mp4a.40.2\"") && mpd.contains("audioSamplingRate=\"48000\""));

    // Every listed audio segment exists, lines up with its video, and each run's audio is
    // contiguous and decodes.
    let init = std::fs::read(audio_dir.join("init.mp4")).unwrap();
    let mut worst_start = 0i64;
    let mut worst_duration = 0i64;
    let runs = [(0, a_breaks[0]), (a_breaks[0], a_names.len())];
    let mut volumes = Vec::new();
    for (k, &(from, to)) in runs.iter().enumerate() {
        let mut stream = init.clone();
        let mut expected_next: Option<u64> = None;
        for i in from..to {
            let name = &a_names[i];
            let audio = std::fs::read(audio_dir.join(name))
                .unwrap_or_else(|e| panic!("{name} is listed but missing: {e}"));
            let video = std::fs::read(ch.join("360p/a").join(name)).unwrap();
            let (a_start, a_dur) = timing(&audio);
            let (v_start, _) = timing(&video);
            // Video at 90 kHz; audio at 48 kHz.
            let v_start = (v_start * 48_000 + 45_000) / 90_000;
            let lead = a_start as i64 - v_start as i64;
            assert!(
                (0..AAC_FRAME).contains(&lead),
                "{name}: audio starts {lead} samples after its video"
            );
            worst_start = worst_start.max(lead);
            if i + 1 < to {
                let next = std::fs::read(ch.join("360p/a").join(&a_names[i + 1])).unwrap();
                let v_dur = (timing(&next).0 * 48_000 + 45_000) / 90_000 - v_start;
                let off = (a_dur as i64 - v_dur as i64).abs();
                assert!(
                    off < AAC_FRAME,
                    "{name}: audio {a_dur}, video {v_dur} samples"
                );
                worst_duration = worst_duration.max(off);
            }
            if let Some(e) = expected_next {
                assert_eq!(a_start, e, "{name}: a gap or overlap in the audio timeline");
            }
            expected_next = Some(a_start + a_dur);
            stream.extend(audio);
        }
        let file = dir.join(format!("run{k}.mp4"));
        std::fs::write(&file, &stream).unwrap();
        volumes.push(decode_audio(&file));
    }
    // The feed's audio is there (bbb's soundtrack, not silence).
    assert!(
        volumes.iter().all(|&v| v > -50.0),
        "mean volume of each run: {volumes:?} dB"
    );
    eprintln!(
        "audio/video alignment over {} positions: start at most {worst_start} samples after the \
         video, duration within {worst_duration} samples; mean volume {volumes:?} dB",
        a_names.len()
    );
    // Old segments were deleted with the video's, and only listed/kept ones remain.
    let on_disk = std::fs::read_dir(&audio_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
        .count();
    let video_on_disk = std::fs::read_dir(ch.join("360p/a"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
        .count();
    assert_eq!(on_disk, video_on_disk);
}

#[test]
fn a_feed_without_audio_makes_a_channel_without_an_audio_rendition() {
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--max-positions", "2", "--stall", "2s"],
    );
    let _feed = sender(port, 10, 10, false);
    let mut seen = Vec::new();
    live.wait_audio("no audio stream", Duration::from_secs(120), &mut seen);
    let summary = live.finish(false, &mut seen);
    assert_eq!(summary["positions"], 2, "{summary}");
    assert_no_audio_rendition(&dir.join("ch"));
}

#[test]
fn no_audio_leaves_the_feeds_audio_out_and_a_bad_bitrate_is_refused() {
    let dir = init_workdir();
    let dir = dir.path();
    let out = bin()
        .current_dir(dir)
        .args([
            "live",
            "udp://127.0.0.1:9",
            "--out",
            "ch",
            "--title",
            "news",
        ])
        .args(["--audio-bitrate", "8k"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("32000") && err.contains("512000"), "{err}");
    let port = free_port();
    let live = Live::start(
        dir,
        &format!("udp://127.0.0.1:{port}"),
        &["--max-positions", "2", "--stall", "2s", "--no-audio"],
    );
    let _feed = sender(port, 10, 10, true);
    let mut seen = Vec::new();
    let summary = live.finish(false, &mut seen);
    assert_eq!(summary["positions"], 2, "{summary}");
    assert_no_audio_rendition(&dir.join("ch"));
}

/// The channel in `ch` lists no audio anywhere and has no audio directory; its video playlist
/// lists two segments.
fn assert_no_audio_rendition(ch: &Path) {
    let master = std::fs::read_to_string(ch.join("master.m3u8")).unwrap();
    assert!(
        !master.contains("TYPE=AUDIO") && !master.contains("mp4a"),
        "{master}"
    );
    let mpd = std::fs::read_to_string(ch.join("manifest.mpd")).unwrap();
    assert!(!mpd.contains("contentType=\"audio\""), "{mpd}");
    let audio_dirs = std::fs::read_dir(ch)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("audio-"))
        .count();
    assert_eq!(audio_dirs, 0);
    let (_, names, _) = listed(&std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap());
    assert_eq!(names.len(), 2);
}

/// Position and number of a part file name (`seg_00042.p3.m4s`).
fn part_of(name: &str) -> (u32, u32) {
    let (seg, part) = name
        .strip_prefix("seg_")
        .and_then(|n| n.strip_suffix(".m4s"))
        .and_then(|n| n.split_once(".p"))
        .unwrap_or_else(|| panic!("not a part: {name}"));
    (seg.parse().unwrap(), part.parse().unwrap())
}

/// The lines of a playlist that start with `prefix`.
fn tag_lines<'a>(playlist: &'a str, prefix: &str) -> Vec<&'a str> {
    playlist.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The audio playlist of a low-latency channel, read after the video's (the channel writes the
/// audio playlist first, so it is at least as new): every part it lists exists, and its last
/// part is at most one part behind the video's last.
fn check_low_latency_snapshot(ch: &Path, adir: &Path) -> (usize, usize) {
    let video = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    let audio = std::fs::read_to_string(adir.join("playlist.m3u8")).unwrap();
    let (a_parts, v_parts) = (listed_parts(&audio), listed_parts(&video));
    for part in &a_parts {
        assert!(adir.join(part).is_file(), "{part} is listed but missing");
    }
    if let Some(v_last) = v_parts.last() {
        let (vp, vj) = part_of(v_last);
        let a_last = a_parts.last().map(|p| part_of(p));
        let ok = a_last.is_some_and(|a| a >= (vp, vj.saturating_sub(1)))
            || (vj == 0 && listed(&audio).1.contains(&format!("seg_{:05}.m4s", vp - 1)));
        assert!(
            ok,
            "the audio lags the video by more than a part: {a_last:?} vs {v_last}\n{audio}\n{video}"
        );
    }
    (a_parts.len(), v_parts.len())
}

#[test]
fn a_low_latency_channel_has_audio_parts_on_the_video_parts() {
    let dir = init_workdir();
    let dir = dir.path();
    let port = free_port();
    let url = format!("udp://127.0.0.1:{port}");
    let args = [
        "--window", "6", "--keep", "40", "--stall", "2s", "--part", "500ms",
    ];
    let started = Instant::now();
    let live = Live::start(dir, &url, &args);
    let _feed = sender_at(port, "1.5", 30, 40, true);
    let mut seen = Vec::new();
    let wait = Duration::from_secs(120);
    live.wait_audio("encoded to AAC-LC", wait, &mut seen);
    let ch = dir.join("ch");
    let master_at = Instant::now();
    while !ch.join("master.m3u8").is_file() {
        assert!(master_at.elapsed() < wait, "no master playlist");
        std::thread::sleep(Duration::from_millis(50));
    }
    let master = std::fs::read_to_string(ch.join("master.m3u8")).unwrap();
    let uri = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no audio rendition: {master}"))
        .to_owned();
    let rendition = uri.trim_end_matches("/playlist.m3u8").to_owned();
    let adir = ch.join(&rendition);
    // While on air: the audio playlist is there whenever the master is, its parts exist and
    // keep up with the video's.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (ch, adir, done) = (ch.clone(), adir.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut snapshots, mut most) = (0, (0, 0));
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, v) = check_low_latency_snapshot(&ch, &adir);
                most = (most.0.max(a), most.1.max(v));
                snapshots += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (snapshots, most)
        })
    };
    for _ in 0..4 {
        live.wait("published", wait, &mut seen);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (snapshots, most) = watcher.join().expect("a playlist snapshot failed");
    let audio_pl = std::fs::read_to_string(adir.join("playlist.m3u8")).unwrap();
    let video_pl = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    // The LL-HLS tags of the video's; each playlist's part target is at least every part it
    // lists, and the audio's is at most one AAC frame over the video's.
    let version = tag_lines(&audio_pl, "#EXT-X-VERSION:");
    assert_eq!(version.len(), 1, "{audio_pl}");
    assert_eq!(version, tag_lines(&video_pl, "#EXT-X-VERSION:"));
    let part_target = |pl: &str| -> f64 {
        let target: f64 = pl
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
            .unwrap_or_else(|| panic!("no PART-INF: {pl}"))
            .parse()
            .unwrap();
        for l in pl
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        {
            let d: f64 = l.split(',').next().unwrap().parse().unwrap();
            assert!(
                d <= target,
                "a part of {d} s over the part target {target} s: {pl}"
            );
        }
        assert_eq!(tag_lines(pl, "#EXT-X-SERVER-CONTROL:").len(), 1, "{pl}");
        target
    };
    let (audio_target, video_target) = (part_target(&audio_pl), part_target(&video_pl));
    assert!(
        audio_target >= video_target && audio_target - video_target <= 1024.0 / 48_000.0 + 1e-5,
        "part targets: audio {audio_target} s, video {video_target} s"
    );
    assert!(audio_pl.contains("CAN-BLOCK-RELOAD=YES"), "{audio_pl}");
    assert_eq!(
        tag_lines(&audio_pl, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg_").len(),
        1,
        "{audio_pl}"
    );
    assert!(listed_parts(&audio_pl).len() >= 8, "{audio_pl}");

    // Through the edge: a blocking reload of the audio playlist is held until it lists the
    // part asked for, and the preload hint's part is held until it is published.
    let (_edge, eport) = edge(dir);
    let prefix = session(dir, "viewer").1;
    let (status, body, _) = timed_get(eport, &format!("{prefix}/{uri}"));
    assert_eq!(status, 200);
    let now = String::from_utf8(body).unwrap();
    let (seq, names, _) = listed(&now);
    let ahead = seq + names.len() as u64 + 1;
    let (status, body, took) = timed_get(
        eport,
        &format!("{prefix}/{uri}?_HLS_msn={ahead}&_HLS_part=1"),
    );
    assert_eq!(status, 200);
    let held = String::from_utf8(body).unwrap();
    // The playlist fetched just before did not list that segment at all: an answer that
    // lists its part came from a later playlist (how long that took depends on the
    // packager's pace, which a loaded host makes bursty: no wall-clock bound).
    assert!(
        held.contains(&format!("seg_{ahead:05}.p1.m4s")),
        "not held until the part: {held}"
    );
    let hint = held
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.split('"').next())
        .unwrap()
        .to_owned();
    let (body, hint_took) = get_hinted_part(eport, &format!("{prefix}/{rendition}/{hint}"));
    assert_eq!(body, std::fs::read(adir.join(&hint)).unwrap(), "{hint}");
    eprintln!("audio blocking reload held {took:?}; preload hint {hint} after {hint_took:?}");

    // Killed while parts of a position are out: its audio parts go with its video parts.
    let t = Instant::now();
    let open = loop {
        assert!(t.elapsed() < wait, "no open position seen");
        let state: serde_json::Value = std::fs::read(ch.join("live.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let parts = state["open"]["audio_parts"].as_array().map_or(0, Vec::len);
        if (1..3).contains(&parts) {
            break state["open"]["position"].as_u64().unwrap() as u32;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut live = live;
    ok(Command::new("kill")
        .arg("-KILL")
        .arg(live.proc.0.id().to_string()));
    let _ = live.proc.0.wait();
    let abandoned_part = adir.join(format!("seg_{open:05}.p0.m4s"));
    assert!(abandoned_part.is_file());
    let live = Live::start(dir, &url, &args);
    let e = live.wait("abandoned", wait, &mut seen);
    assert_eq!(e["position"].as_u64(), Some(u64::from(open)));
    for _ in 0..2 {
        live.wait("published", wait, &mut seen);
    }
    let leftovers: Vec<String> = std::fs::read_dir(&adir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("seg_{open:05}")))
        .collect();
    assert!(leftovers.is_empty(), "abandoned audio files: {leftovers:?}");
    let summary = live.stop(&mut seen);
    assert!(summary["parts"].as_u64().unwrap() >= 8, "{summary}");
    eprintln!(
        "low-latency channel run in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // After the run: the audio playlist keeps the video's window and discontinuity; the parts
    // of every complete segment it lists are the segment's bytes, and each part starts within
    // one AAC frame of its video part.
    let audio_pl = std::fs::read_to_string(adir.join("playlist.m3u8")).unwrap();
    let video_pl = std::fs::read_to_string(ch.join("360p/playlist.m3u8")).unwrap();
    let (a_seq, a_names, a_breaks) = listed(&audio_pl);
    assert_eq!(
        (a_seq, a_names.clone(), a_breaks.clone()),
        listed(&video_pl)
    );
    assert_eq!(a_breaks.len(), 1, "{audio_pl}");
    assert!(!audio_pl.contains(&format!("seg_{open:05}")), "{audio_pl}");
    let parts = listed_parts(&audio_pl);
    let mut checked_segments = 0;
    let mut worst = 0i64;
    let mut silent = 0;
    for name in &a_names {
        let p: u32 = name[4..9].parse().unwrap();
        let mine: Vec<&String> = parts.iter().filter(|q| part_of(q).0 == p).collect();
        if mine.is_empty() {
            continue;
        }
        let mut joined = Vec::new();
        for q in &mine {
            let bytes = std::fs::read(adir.join(q)).unwrap();
            let video = std::fs::read(ch.join("360p/a").join(q))
                .unwrap_or_else(|e| panic!("video part {q}: {e}\n{audio_pl}\n{video_pl}"));
            let (a_start, _) = timing(&bytes);
            let v_start = (timing(&video).0 * 48_000 + 45_000) / 90_000;
            let lead = a_start as i64 - v_start as i64;
            assert!(
                (0..AAC_FRAME).contains(&lead),
                "{q}: audio starts {lead} samples after its video part"
            );
            worst = worst.max(lead);
            joined.extend(bytes);
        }
        let whole = std::fs::read(adir.join(name)).unwrap();
        assert_eq!(joined, whole, "the audio parts of {name} are its bytes");
        checked_segments += 1;
        let mut file = std::fs::read(adir.join("init.mp4")).unwrap();
        file.extend(whole);
        let f = dir.join(format!("ll{p}.mp4"));
        std::fs::write(&f, file).unwrap();
        let volume = decode_audio(&f);
        eprintln!("{name}: {} parts, mean volume {volume:.1} dB", mine.len());
        // Not digital silence (the feed's audio, not what stands in for it).
        silent += usize::from(volume < -80.0);
    }
    assert!(checked_segments >= 3, "{audio_pl}");
    let audio_events: Vec<&str> = seen
        .iter()
        .filter(|e| e["event"] == "audio")
        .filter_map(|e| e["message"].as_str())
        .collect();
    eprintln!("audio events: {audio_events:#?}");
    assert_eq!(silent, 0, "segments of silence");
    let fills = seen
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("no audio from the feed"))
        })
        .count();
    eprintln!(
        "low latency: {snapshots} playlist snapshots (at most {} audio / {} video parts listed), \
         {} audio parts in the last playlist over {checked_segments} segments, starts at most \
         {worst} samples after their video parts; silence filled {fills} time(s)",
        most.0,
        most.1,
        parts.len()
    );
}
