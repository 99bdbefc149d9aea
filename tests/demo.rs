//! The README's first command, `scripts/demo.sh`, run as a test on the binary under test, so the
//! demo cannot rot: init, embed (120 s of the film instead of 150 s, to keep the suite short;
//! not less: over 30 positions of 2 s some viewers' codewords cannot reach 1e-6 at all),
//! five viewers through the edge, a leak re-encoded and accused, an unrelated copy accusing no
//! one, a crawl of a loopback pirate site, the takedown notice in dry-run mode, the evidence
//! check. The script itself fails when anyone but the leaking viewer is accused; this test
//! also reads its output.
//!
//! Needs what the demo needs: ffmpeg, xmllint, python3, node with `tools/node_modules`
//! (`scripts/test.sh` installs them all).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::repo;
use std::process::Command;

#[test]
fn the_demo_runs_the_whole_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("demo");
    let out = Command::new("bash")
        .arg(repo().join("scripts/demo.sh"))
        .arg(&work)
        .env("LEAKTRACE_DEMO_BIN", env!("CARGO_BIN_EXE_leaktrace"))
        .env("LEAKTRACE_DEMO_SECONDS", "120")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Five viewers, each with their own variant sequence.
    let sequences: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" session ") && l.contains(" variants "))
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    assert_eq!(sequences.len(), 5, "{stdout}");
    for s in &sequences {
        assert_eq!(s.len(), 60, "120 s in 2-s positions: {s}");
        assert!(s.chars().all(|c| c == 'A' || c == 'B'), "{s}");
    }
    let mut distinct = sequences.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        5,
        "two viewers got the same stream: {sequences:?}"
    );
    assert!(
        stdout.contains("a segment request without a token: HTTP 403"),
        "{stdout}"
    );
    // The leak accuses carol alone; the unrelated copy no one; the crawl finds the leak;
    // the notice is filed and the unrelated finding refused; the evidence is intact.
    assert!(stdout.contains("account carol: probability"), "{stdout}");
    assert!(stdout.contains("=> no one is accused"), "{stdout}");
    assert!(stdout.contains("accuses carol"), "{stdout}");
    assert!(stdout.contains("(dry_run)"), "{stdout}");
    assert!(stdout.contains("no positive match"), "{stdout}");
    assert!(stdout.contains("intact:"), "{stdout}");
    for f in ["leak-carol.png", "leak-carol.mp4", "package/manifest.mpd"] {
        assert!(work.join(f).is_file(), "{f} missing");
    }
}
