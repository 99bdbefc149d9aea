//! `leaktrace detect --follow` on copies that are still being written: a pirate's re-encode
//! recorded to an MPEG-TS file, and the same restreamed as a live HLS playlist with fMP4
//! segments and a sliding window. Each is accused while it is still growing, with a line (a
//! JSON object with `--json`) per round of decisions; and bad input is refused with the
//! documented exit codes.
//!
//! Needs ffmpeg.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// FFmpeg re-encoding `input` at 720p (x264 veryfast, 1.5 Mbit/s) at 3× real time, into
/// `out` with the output options `format`.
fn pirate(dir: &Path, input: &Path, format: &[&str], out: &str) -> Proc {
    Proc(
        Command::new("ffmpeg")
            .current_dir(dir)
            .args(["-nostdin", "-v", "error", "-readrate", "3", "-i"])
            .arg(input)
            .args(["-map", "0:v:0", "-vf", "scale=1280:720", "-c:v", "libx264"])
            .args(["-preset", "veryfast", "-b:v", "1500k", "-g", "48"])
            .args(["-x264-params", "threads=1"])
            .args(format)
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Runs `detect --follow SOURCE --json`; returns the update lines and the final report line.
fn follow(dir: &Path, source: &str) -> (Vec<Value>, Value) {
    let out = ok(bin().current_dir(dir).args([
        "detect", "--follow", source, "--title", "bbb", "--json", "--idle", "20",
    ]));
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.pop().unwrap();
    assert_eq!(last["event"], "report", "{last}");
    assert!(lines.iter().all(|l| l["event"] == "update"), "{out}");
    (lines, last)
}

/// Checks a followed copy of `pirate`'s stream: accused, first at the last round, before the
/// whole copy (`total_s` seconds) was read, with rounds at least 4 s of capture apart.
fn check(what: &str, updates: &[Value], report: &Value, session: &str, total_s: f64) {
    assert!(updates.len() >= 2, "{what}: {updates:?}");
    let captured: Vec<f64> = updates
        .iter()
        .map(|u| u["captured_s"].as_f64().unwrap())
        .collect();
    assert!(captured[0] >= 10.0, "{what}: first round at {captured:?}");
    assert!(
        captured.windows(2).all(|w| w[1] >= w[0] + 3.9),
        "{what}: rounds {captured:?}"
    );
    let last = updates.last().unwrap();
    assert_eq!(last["verdict"], "accused", "{what}: {last}");
    assert!(
        updates[..updates.len() - 1]
            .iter()
            .all(|u| u["verdict"] == "no accusation"),
        "{what}: following goes on after an accusation"
    );
    assert_eq!(last["accused"], serde_json::json!([session]), "{what}");
    let r = &report["report"];
    assert_eq!(r["verdict"], "accused");
    assert_eq!(r["accused"][0]["session_id"], session);
    assert!(r["accused"][0]["probability"].as_f64().unwrap() <= 1e-6);
    let at = *captured.last().unwrap();
    assert!(
        at < total_s - 10.0,
        "{what}: accused only after {at} s of {total_s} s"
    );
    eprintln!(
        "{what}: accused after {at:.1} s of capture, {:.1} s of following, {} rounds",
        last["elapsed_s"].as_f64().unwrap(),
        updates.len()
    );
}

#[test]
fn copies_still_being_written_are_accused_while_they_grow() {
    let d = init_workdir();
    let dir = d.path();
    // 80 s in 1-s positions.
    embed_bbb(dir, "1920", &["--segment", "1s"]);
    let sessions = issue_sessions(dir, "bbb", 20);
    let total_s = 80.0;

    // A recording still being written (MPEG-TS).
    let pirate_a = &sessions[4];
    assemble(dir, pirate_a);
    std::fs::rename(dir.join("session.mp4"), dir.join("a.mp4")).unwrap();
    let rec = pirate(dir, &dir.join("a.mp4"), &["-f", "mpegts"], "rec.ts");
    let (updates, report) = follow(dir, "rec.ts");
    check("growing MPEG-TS", &updates, &report, pirate_a, total_s);
    drop(rec);

    // A live playlist with fMP4 segments and a sliding window.
    let pirate_b = &sessions[11];
    assemble(dir, pirate_b);
    std::fs::rename(dir.join("session.mp4"), dir.join("b.mp4")).unwrap();
    std::fs::create_dir_all(dir.join("live")).unwrap();
    let hls = [
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "30",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "delete_segments",
    ];
    let live = pirate(dir, &dir.join("b.mp4"), &hls, "live/stream.m3u8");
    let (updates, report) = follow(dir, "live/stream.m3u8");
    check("live fMP4 playlist", &updates, &report, pirate_b, total_s);
    drop(live);

    // Bad input: the exit codes of `detect`.
    let code = |args: &[&str]| {
        let o = bin()
            .current_dir(dir)
            .args(["detect", "--title", "bbb"])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (c, e) = code(&["--follow", "rec.ts", "--every", "0.5"]);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("1 to 600"), "{e}");
    let (c, e) = code(&["--follow", "rec.ts", "--idle", "0"]);
    assert_eq!(c, 2, "{e}");
    let (c, e) = code(&["--follow", "rec.ts", "--plot", "x.png"]);
    assert_eq!(c, 2, "{e}");
    let (c, e) = code(&["--follow", "rec.ts", "--crawler-config", "c.toml"]);
    assert_eq!(c, 2, "{e}");
    let (c, e) = code(&["rec.ts", "--every", "5"]);
    assert_eq!(c, 2, "--every without --follow: {e}");
    // Nothing is ever written: input error once the idle time has passed.
    let (c, e) = code(&["--follow", "never.ts", "--idle", "1"]);
    assert_eq!(c, 3, "{e}");
    assert!(e.contains("nothing was written"), "{e}");
    // A playlist whose segments point outside its folder.
    std::fs::write(
        dir.join("evil.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n../master.key\n",
    )
    .unwrap();
    let (c, e) = code(&["--follow", "evil.m3u8", "--idle", "1"]);
    assert_eq!(c, 3, "{e}");
    assert!(e.contains("not a relative path under"), "{e}");
}
