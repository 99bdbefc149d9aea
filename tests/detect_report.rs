//! `leaktrace detect` as a report: JSON validated against the published JSON Schema (with the
//! `jsonschema` crate), the human summary, the PNG plot, a captured HLS stream as the suspect
//! (a session playlist listing the session's variant of each segment, as the edge serves it,
//! under a multivariant playlist whose highest-bandwidth rendition is the pirate's), and bad
//! input: each case one line on stderr and its own exit code, never a panic.
//!
//! Real content: the 20 s trailer embedded at 360p (10 positions), 20 sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, Variant};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// The variants (`"A"`/`"B"`) of `session` at the package's positions.
fn bits(dir: &Path, session: &str, positions: usize) -> String {
    let key_hex = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let key = MasterKey::from_hex(key_hex.trim(), KeyVersion::new(1)).unwrap();
    let book = key.codebook(&TitleId::new("bbb").unwrap());
    let sid = SessionId::new(session.to_owned()).unwrap();
    (0..positions as u32)
        .map(|p| {
            if book.bit(&sid, p) == Variant::A {
                'A'
            } else {
                'B'
            }
        })
        .collect()
}

/// Writes `pkg/360p/<name>.m3u8`: the package's media playlist with each segment taken from
/// the variant `bits` gives (what the edge serves that session). Returns the playlist path.
fn session_playlist(dir: &Path, name: &str, bits: &str) -> std::path::PathBuf {
    let rend = dir.join("pkg/360p");
    let neutral = std::fs::read_to_string(rend.join("playlist.m3u8")).unwrap();
    let mut p = 0usize;
    let mut out = String::new();
    for line in neutral.lines() {
        if line.starts_with("#EXT-X-MAP:") {
            out.push_str(&line.replace("URI=\"", "URI=\"a/"));
        } else if !line.starts_with('#') && line.ends_with(".m4s") {
            let v = if &bits[p..=p] == "A" { "a" } else { "b" };
            out.push_str(&format!("{v}/{line}"));
            p += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert_eq!(p, bits.len(), "segments in the package playlist");
    let path = rend.join(format!("{name}.m3u8"));
    std::fs::write(&path, out).unwrap();
    path
}

fn detect(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .arg("detect")
        .args(args)
        .output()
        .unwrap()
}

/// One line on stderr, no panic, the expected exit code; returns the line.
fn fails(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn schema() -> Value {
    let text =
        std::fs::read_to_string(repo().join("docs/schemas/leaktrace.detect.v1.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Validates `report` against the schema; returns the error messages.
fn violations(report: &Value) -> Vec<String> {
    let schema = schema();
    jsonschema::meta::validate(&schema).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    v.iter_errors(report).map(|e| e.to_string()).collect()
}

#[test]
fn detect_report_hls_plot_and_bad_input() {
    let d = init_workdir();
    let dir = d.path();
    ok(bin()
        .current_dir(dir)
        .arg("embed")
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args([
            "--out", "pkg", "--title", "bbb", "--ladder", "360p", "--preset", "veryfast",
        ]));
    let positions = std::fs::read_dir(dir.join("pkg/360p/a"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".m4s")
        })
        .count();
    assert_eq!(positions, 10);

    // Empty store: the title is known but has no session yet. The report is printed, with the
    // reason stated, and the exit code (9) says there was nothing to score.
    let nobody = session_playlist(dir, "nobody", &bits(dir, "nobody", positions));
    let out = detect(dir, &[nobody.to_str().unwrap(), "--title", "bbb", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "no accusation");
    assert_eq!(v["sessions"], 0);
    assert!(
        v["reason"].as_str().unwrap().contains("no session"),
        "{}",
        v["reason"]
    );
    assert!(violations(&v).is_empty(), "{:?}", violations(&v));
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(&nobody)
        .args(["--title", "bbb"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no accusation") && text.contains("no session"),
        "{text}"
    );

    let sessions: Vec<String> = (0..20)
        .map(|i| {
            let out = ok(bin().current_dir(dir).args([
                "session",
                "new",
                "--title",
                "bbb",
                "--account",
                &format!("acct-{i}"),
                "--json",
            ]));
            let v: Value = serde_json::from_str(&out).unwrap();
            v["session_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let pirate = &sessions[7];
    let pirate_bits = bits(dir, pirate, positions);
    let other_bits = bits(dir, &sessions[3], positions);
    session_playlist(dir, "pirate", &pirate_bits);
    session_playlist(dir, "other", &other_bits);
    // Multivariant: the pirate's rendition has the higher bandwidth (listed second).
    std::fs::write(
        dir.join("pkg/capture.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:7\n\
         #EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=640x360,CODECS=\"avc1.64001e\"\n360p/other.m3u8\n\
         #EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS=\"avc1.64001e\"\n360p/pirate.m3u8\n",
    )
    .unwrap();

    // JSON and plot in one run; the reference comes from the title's record.
    let out = detect(
        dir,
        &[
            "pkg/capture.m3u8",
            "--title",
            "bbb",
            "--json",
            "--plot",
            "report.png",
            // Every session listed: with 10 positions several tie with the pirate.
            "--top",
            "20",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = violations(&v);
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
    // The validator is not a rubber stamp: a broken report fails it.
    let mut broken = v.clone();
    broken["verdict"] = "maybe".into();
    broken["positions"][0]["z"] = "high".into();
    assert_eq!(violations(&broken).len(), 2);
    let mut broken = v.clone();
    broken.as_object_mut().unwrap().remove("calibration");
    assert!(!violations(&broken).is_empty());

    assert_eq!(v["schema"], "leaktrace.detect.v1");
    assert_eq!(v["sessions"], 20);
    assert!(
        v["reference"].as_str().unwrap().ends_with("reference"),
        "{}",
        v["reference"]
    );
    assert_best_scored(&v, pirate, "the pirate's rendition");
    let top = v["top"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|t| t["session_id"] == pirate.as_str() && t["account"] == "acct-7"),
        "{top:?}"
    );
    let served = v["positions"].as_array().unwrap();
    assert_eq!(served.len(), positions);
    for pos in served {
        let p = pos["position"].as_u64().unwrap() as usize;
        let z = pos["z"].as_f64().unwrap();
        let want = if &pirate_bits[p..=p] == "A" {
            1.0
        } else {
            -1.0
        };
        assert!(
            z * want > 3.0,
            "position {p}: z {z}, served {}",
            &pirate_bits[p..=p]
        );
    }
    let c = &v["calibration"];
    assert_eq!(
        c["positions_used"].as_u64().unwrap() + c["positions_erased"].as_u64().unwrap(),
        c["positions_observed"].as_u64().unwrap()
    );
    eprintln!(
        "report: verdict {} ({}); calibration {c}",
        v["verdict"], v["reason"]
    );

    let png = std::fs::read(dir.join("report.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 900));
    assert!(
        png.len() > 20_000,
        "plot of {} bytes looks empty",
        png.len()
    );
    if let Some(keep) = std::env::var_os("LEAKTRACE_KEEP_PLOT") {
        std::fs::copy(dir.join("report.png"), keep).unwrap();
    }

    // Human summary of the media playlist, with the reference given explicitly.
    let text = ok(bin().current_dir(dir).args([
        "detect",
        "pkg/360p/pirate.m3u8",
        "--title",
        "bbb",
        "--reference",
        "pkg/reference",
        "--top",
        "20",
    ]));
    eprintln!("{text}");
    for want in [
        "title",
        "bbb",
        "verdict",
        "positions",
        "registration",
        "offset",
        pirate,
        "acct-7",
    ] {
        assert!(text.contains(want), "summary lacks {want:?}:\n{text}");
    }

    // Bad input.
    std::fs::write(dir.join("notes.txt"), "not a video\n").unwrap();
    let err = fails(&detect(dir, &["notes.txt", "--title", "bbb"]), 3);
    assert!(err.contains("notes.txt"), "{err}");

    // Truncated: a complete MP4 (moov first) cut in half.
    ffmpeg(&[
        "-i",
        dir.join("pkg/360p/pirate.m3u8").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        dir.join("full.mp4").to_str().unwrap(),
    ]);
    let full = std::fs::read(dir.join("full.mp4")).unwrap();
    std::fs::write(dir.join("half.mp4"), &full[..full.len() / 2]).unwrap();
    let err = fails(&detect(dir, &["half.mp4", "--title", "bbb"]), 3);
    assert!(
        err.contains("half.mp4") && err.contains("truncated"),
        "{err}"
    );

    // Another clip: nothing of the title in it.
    let other = corpus("vtest.avi");
    let err = fails(
        &detect(dir, &[other.to_str().unwrap(), "--title", "bbb"]),
        7,
    );
    assert!(
        err.contains("does not match") || err.contains("overlap"),
        "{err}"
    );

    // Unknown title.
    let err = fails(&detect(dir, &["full.mp4", "--title", "nope"]), 6);
    assert!(err.contains("nope"), "{err}");

    // Unreadable reference: missing, and a directory without the index files.
    let err = fails(
        &detect(
            dir,
            &["full.mp4", "--title", "bbb", "--reference", "missing"],
        ),
        3,
    );
    assert!(err.contains("missing"), "{err}");
    std::fs::create_dir(dir.join("empty-ref")).unwrap();
    let err = fails(
        &detect(
            dir,
            &["full.mp4", "--title", "bbb", "--reference", "empty-ref"],
        ),
        3,
    );
    assert!(err.contains("empty-ref"), "{err}");

    // A playlist that points at the network is refused without any connection attempt.
    std::fs::write(
        dir.join("remote.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nhttp://192.0.2.1/v.m3u8\n",
    )
    .unwrap();
    let err = fails(&detect(dir, &["remote.m3u8", "--title", "bbb"]), 3);
    assert!(err.contains("remote"), "{err}");

    // Plot: wrong name (usage), unwritable location (output).
    fails(
        &detect(dir, &["full.mp4", "--title", "bbb", "--plot", "r.txt"]),
        2,
    );
    fails(
        &detect(
            dir,
            &["full.mp4", "--title", "bbb", "--plot", "no/such/dir/r.png"],
        ),
        4,
    );
}
