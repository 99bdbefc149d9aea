//! End to end detection on the real corpus: embed the 20 s trailer at 360p, issue 50 sessions,
//! assemble one session's stream from its codeword (what the edge serves), re-encode it with the
//! ffmpeg CLI (640x360, libx264 600 kbit/s: the 360p analogue of "720p 1.5 Mbps"), and run
//! `leaktrace detect --json`. Also: an unmarked copy accuses no one; bad input exits distinctly.
//!
//! 20 s = 10 positions. With 50 sessions the smallest false-accusation probability 10
//! positions can give is far above 10⁻⁶ (each position carries at most one bit), so the test
//! asserts that the pirate has the top score and that nobody is accused at 10⁻⁶, and prints
//! the figures; it does not invent a threshold.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

/// A work dir with `clip` embedded as title `bbb` at 360p (plus `extra` embed options) and 50
/// sessions issued; returns the dir and the session ids in issue order.
fn setup(clip: &Path, extra: &[&str]) -> (tempfile::TempDir, Vec<String>) {
    let d = init_workdir();
    let dir = d.path();
    ok(bin()
        .current_dir(dir)
        .arg("embed")
        .arg(clip)
        .args([
            "--out", "pkg", "--title", "bbb", "--ladder", "360p", "--preset", "veryfast",
        ])
        .args(extra));
    let sessions = issue_sessions(dir, "bbb", 50);
    (d, sessions)
}

fn ffmpeg_reencode(input: &Path, output: &Path) {
    ok(ffmpeg_command()
        .arg("-i")
        .arg(input)
        .args([
            "-an",
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx264",
            "-b:v",
            "600k",
            "-preset",
            "veryfast",
        ])
        .arg(output));
}

/// Every position of the report `v` decided as `bits` served it ("A"/"B" per position),
/// with a margin of |z| > 3.
fn assert_decided_as_served(v: &Value, bits: &str) {
    for (p, pos) in v["positions"].as_array().unwrap().iter().enumerate() {
        let z = pos["z"].as_f64().unwrap();
        let want = if &bits[p..=p] == "A" { 1.0 } else { -1.0 };
        assert!(
            z * want > 3.0,
            "position {p}: z {z}, served {}",
            &bits[p..=p]
        );
    }
}

fn detect(dir: &Path, suspect: &Path) -> (Value, std::process::Output) {
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(suspect)
        // Every session in `top`: with 10 positions several innocents can tie with the pirate,
        // and a tie must not push it out of a short list.
        .args([
            "--title",
            "bbb",
            "--reference",
            "pkg/reference",
            "--json",
            "--top",
            "50",
        ])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (v, out)
}

#[test]
fn detect_end_to_end_360p() {
    let clip = corpus("trailer_bbb_20s.mp4");
    let (d, sessions) = setup(&clip, &[]);
    let dir = d.path();
    let pirate = &sessions[17];
    let bits = assemble(dir, pirate);
    assert_eq!(bits.len(), 10);
    ffmpeg_reencode(&dir.join("session.mp4"), &dir.join("leak.mp4"));

    let (v, out) = detect(dir, &dir.join("leak.mp4"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["schema"], "leaktrace.detect.v1");
    let zs: Vec<String> = v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{:.1}", p["z"].as_f64().unwrap()))
        .collect();
    eprintln!("pirate bits {bits}; z per position after re-encode: {zs:?}");
    eprintln!(
        "registration {}; calibration {}; top {}",
        v["registration"], v["calibration"], v["top"][0]
    );
    // Every position decided correctly, with margin.
    assert_decided_as_served(&v, &bits);
    assert_eq!(v["registration"]["offset_frames"], 0);
    // The pirate has the highest score. With 10 positions an innocent whose codeword agrees on
    // all of them ties with it (probability Π q' per session, a few percent here), so ties are
    // allowed; the per-position check above is the strong one.
    assert_best_scored(&v, pirate, "re-encoded leak");
    let top = v["top"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|t| t["session_id"] == pirate.as_str() && t["account"] == "acct-17"),
        "{top:?}"
    );
    // 10 positions cannot reach 1e-6 over 50 sessions: stated, not faked.
    let best = v["calibration"]["best_possible"].as_f64().unwrap();
    assert!(best > 1e-6, "best possible {best}");
    assert_eq!(v["verdict"], "no accusation");
    assert!(v["accused"].as_array().unwrap().is_empty());
    // At a looser requested probability the pirate, and only the pirate, is accused.
    let fp = (best * 1.01).min(0.1);
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(dir.join("leak.mp4"))
        // Every session in `top`: with 10 positions several innocents can tie with the pirate,
        // and a tie must not push it out of a short list.
        .args([
            "--title",
            "bbb",
            "--reference",
            "pkg/reference",
            "--json",
            "--top",
            "50",
        ])
        .args(["--fp", &format!("{fp:e}")])
        .output()
        .unwrap();
    let loose: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("at fp {fp:e}: accused {}", loose["accused"]);
    if best < 0.1 {
        let acc = loose["accused"].as_array().unwrap();
        assert!(
            acc.iter().any(|a| a["session_id"] == pirate.as_str()),
            "{acc:?}"
        );
    }

    // A trimmed head (first 5 s = 120 frames cut) is registered by the thumbnail search.
    ok(ffmpeg_command()
        .args(["-ss", "5", "-i"])
        .arg(dir.join("leak.mp4"))
        .args([
            "-an", "-c:v", "libx264", "-b:v", "600k", "-preset", "veryfast",
        ])
        .arg(dir.join("trimmed.mp4")));
    let (v, out) = detect(dir, &dir.join("trimmed.mp4"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zs: Vec<String> = v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("p{}:{:.1}", p["position"], p["z"].as_f64().unwrap()))
        .collect();
    eprintln!(
        "trimmed: registration {}; z {zs:?}; top {}",
        v["registration"], v["top"][0]
    );
    let off = v["registration"]["offset_frames"].as_i64().unwrap();
    assert!((119..=121).contains(&off), "offset {off}");
    // Every position fully inside the trimmed copy is decided as served. Position 2 is only
    // half there and is compared against the mean of the whole position, so it is usually
    // erased. 7 positions cannot single out the pirate among 50 (many innocents agree on all of
    // them), so nobody is accused.
    for pos in v["positions"].as_array().unwrap() {
        let p = pos["position"].as_u64().unwrap() as usize;
        let z = pos["z"].as_f64().unwrap();
        if p >= 3 {
            let want = if &bits[p..=p] == "A" { 1.0 } else { -1.0 };
            assert!(z * want > 3.0, "trimmed position {p}: z {z}");
        }
    }
    assert_eq!(v["verdict"], "no accusation");

    // An unmarked copy (the mezzanine re-encoded) accuses no one.
    ffmpeg_reencode(&clip, &dir.join("clean.mp4"));
    let (v, out) = detect(dir, &dir.join("clean.mp4"));
    assert!(out.status.success());
    let zs: Vec<String> = v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{:.1}", p["z"].as_f64().unwrap()))
        .collect();
    eprintln!("unmarked copy z: {zs:?}; top {}", v["top"][0]);
    assert_eq!(v["verdict"], "no accusation");
    // Its per-position z are the decoy-calibrated noise: no position shows a mark. (A bare
    // "nobody accused" at a loose `--fp` would be wrong in up to that fraction of runs by the
    // bound's own statement; the calibration itself is tested over 10⁴ innocents in
    // `leaktrace-detect`'s accuse_sim and the forensic smoke test.) A z is a correlation over
    // the RMS of 24 decoys', so without a mark it follows Student's t with 24 degrees of
    // freedom, whose tails are heavier than N(0, 1)'s: |z| ≥ 5 in one of 10 positions has
    // probability 4e-4, |z| ≥ 6 3.4e-5.
    for pos in v["positions"].as_array().unwrap() {
        let z = pos["z"].as_f64().unwrap();
        assert!(
            z.abs() < 6.0,
            "unmarked copy, position {}: z {z}",
            pos["position"]
        );
    }

    // Human summary.
    let text = ok(bin()
        .current_dir(dir)
        .arg("detect")
        .arg(dir.join("leak.mp4"))
        .args([
            "--title",
            "bbb",
            "--reference",
            "pkg/reference",
            "--top",
            "50",
        ]));
    // Every session listed: innocents whose codewords match the pirate's on all 10 positions
    // tie with it (0.4 of them a run), and a tie is listed in registry order.
    assert!(text.contains("verdict"), "{text}");
    assert!(text.contains(pirate.as_str()), "{text}");

    // Bad input: not a video (3), unknown title (6).
    std::fs::write(dir.join("notes.txt"), "not a video").unwrap();
    let (_, out) = detect(dir, &dir.join("notes.txt"));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(dir.join("leak.mp4"))
        .args(["--title", "nope", "--reference", "pkg/reference"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(2 | 6)), "{out:?}");
}

/// Enough positions to accuse at 10⁻⁶: the first 2 minutes of the full film (60 positions),
/// same attack. Slow (minutes), so ignored by default: `cargo test --test detect -- --ignored`.
#[test]
#[ignore = "slow: embeds and re-encodes 2 minutes of video"]
fn detect_accuses_at_1e6_with_60_positions() {
    let (d, sessions) = setup(&corpus("bbb.mp4"), &["--max-frames", "2880"]);
    let dir = d.path();
    let pirate = &sessions[23];
    let p = assemble(dir, pirate).len();
    ffmpeg_reencode(&dir.join("session.mp4"), &dir.join("leak.mp4"));
    let (v, out) = detect(dir, &dir.join("leak.mp4"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{p} positions; calibration {}; accused {}; top {}",
        v["calibration"], v["accused"], v["top"]
    );
    let acc = v["accused"].as_array().unwrap();
    assert_eq!(v["verdict"], "accused");
    assert_eq!(acc.len(), 1, "{acc:?}");
    assert_eq!(acc[0]["session_id"], pirate.as_str());
    assert!(acc[0]["probability"].as_f64().unwrap() <= 1e-6);
}

/// `src` with MP4's `rotate` tag of 90 (a display matrix a phone writes; players turn the
/// pictures a quarter counter-clockwise), the pictures untouched, into `dst`.
fn tag_rotate_90(src: &Path, dst: &Path) {
    ok(ffmpeg_command()
        .arg("-i")
        .arg(src)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(dst));
}

/// A phone's recording: landscape pictures stored with a display matrix that turns them to
/// portrait. The package is made of the pictures as shown (portrait renditions, no display
/// matrix left for a player to apply), and a leak recorded the same way (stored sideways,
/// turned back by its own display matrix) is registered as it is shown and traced.
#[test]
fn portrait_by_display_matrix_packaged_and_traced_as_shown() {
    let d = init_workdir();
    let dir = d.path();
    // 16 s of the trailer stored as 640x360 pictures with MP4's `rotate` tag: shown 360x640.
    ok(ffmpeg_command()
        .arg("-i")
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args(["-t", "16", "-an", "-vf", "scale=640:360"])
        .args(["-c:v", "libx264", "-crf", "16", "-preset", "veryfast"])
        .arg(dir.join("stored.mp4")));
    tag_rotate_90(&dir.join("stored.mp4"), &dir.join("phone.mp4"));
    ok(bin()
        .current_dir(dir)
        .arg("embed")
        .arg(dir.join("phone.mp4"))
        .args(["--out", "pkg", "--title", "bbb", "--ladder", "360p"])
        .args(["--preset", "veryfast"]));
    let init = dir.join("pkg/360p/a/init.mp4");
    let shown = ffprobe(
        &[
            "-show_entries",
            "stream=width,height:stream_side_data=rotation",
            "-of",
            "compact=p=0:nk=1",
        ],
        &init,
    );
    assert_eq!(
        shown.trim(),
        "202|360",
        "the 360p rendition as stored: {shown}"
    );

    let sessions = issue_sessions(dir, "bbb", 20);
    let pirate = &sessions[7];
    let bits = assemble_rendition(dir, "bbb", "360p", pirate);
    assert_eq!(bits.len(), 8);
    // The leak recorded sideways: pictures turned a quarter clockwise, and the display
    // matrix that turns them back.
    ok(ffmpeg_command()
        .arg("-i")
        .arg(dir.join("session.mp4"))
        .args(["-an", "-vf", "transpose=clock,scale=480:270"])
        .args(["-c:v", "libx264", "-b:v", "500k", "-preset", "veryfast"])
        .arg(dir.join("sideways.mp4")));
    tag_rotate_90(&dir.join("sideways.mp4"), &dir.join("leak.mp4"));
    let (v, out) = detect(dir, &dir.join("leak.mp4"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg = &v["registration"]["details"]["registration"];
    eprintln!("pirate bits {bits}; registration {reg}");
    assert_eq!(reg["suspect_size"], serde_json::json!([270, 480]), "{reg}");
    assert_eq!(
        reg["suspect_turned"], "a quarter turn counter-clockwise",
        "{reg}"
    );
    assert_decided_as_served(&v, &bits);
    assert_best_scored(&v, pirate, "a leak stored sideways");
}
