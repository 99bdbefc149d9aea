//! Helpers shared by the end-to-end tests: the `leaktrace` binary, working directories made by
//! `leaktrace init`, sessions and their streams; the repository, the corpus, commands and
//! ffmpeg come from the test kit (`leaktrace-testkit`), re-exported here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod live;
pub mod loopback;

use std::path::Path;
use std::process::Command;

#[allow(unused_imports)] // each test binary uses its own part, like the items below
pub use leaktrace_testkit::{
    Proc, acns_xsd, assert_acns_valid, concat, corpus, decode_framemd5, ffmpeg, ffmpeg_command,
    ffprobe, frame_hashes, free_port, http_get, ok, repo, segments, shaka_packager,
    spawn_first_line, trace_headers,
};

/// The `leaktrace` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leaktrace"))
}

/// Embeds the first `frames` frames of the corpus's `bbb.mp4` as title `bbb` at 360p
/// (x264 veryfast) into `dir/pkg`, with `extra` embed options.
pub fn embed_bbb(dir: &Path, frames: &str, extra: &[&str]) {
    ok(bin()
        .current_dir(dir)
        .arg("embed")
        .arg(corpus("bbb.mp4"))
        .args(["--out", "pkg", "--title", "bbb", "--ladder", "360p"])
        .args(["--preset", "veryfast", "--max-frames", frames])
        .args(extra));
}

/// Embeds `clip` as title `title` at 360p (x264 veryfast) into `dir/pkg`.
pub fn embed_clip(dir: &Path, clip: &Path, title: &str) {
    ok(bin()
        .current_dir(dir)
        .arg("embed")
        .arg(clip)
        .args(["--out", "pkg", "--title", title, "--ladder", "360p"])
        .args(["--preset", "veryfast"]));
}

/// A working directory made by `leaktrace init`.
pub fn init_workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    ok(bin().arg("init").arg(d.path()));
    d
}

/// Issues `n` sessions of `title` (accounts `acct-0` …) in the work dir `dir`; returns the
/// session ids in issue order.
pub fn issue_sessions(dir: &Path, title: &str, n: usize) -> Vec<String> {
    new_sessions(dir, title, n)
        .iter()
        .map(|v| v["session_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Like [`issue_sessions`], returning each `session new --json` answer whole (id, path, …).
pub fn new_sessions(dir: &Path, title: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let out = ok(bin().current_dir(dir).args([
                "session",
                "new",
                "--title",
                title,
                "--account",
                &format!("acct-{i}"),
                "--json",
            ]));
            serde_json::from_str(&out).unwrap()
        })
        .collect()
}

/// Assembles `session`'s stream of title `bbb` (rendition `pkg/360p`) from its codeword, as the
/// edge serves it, into `dir/session.mp4`, over every position the package has; returns the
/// variants as "A"/"B".
pub fn assemble(dir: &Path, session: &str) -> String {
    assemble_title(dir, "bbb", session)
}

/// [`assemble`] for title `title` (package `dir/pkg`, rendition 360p).
pub fn assemble_title(dir: &Path, title: &str, session: &str) -> String {
    assemble_rendition(dir, title, "360p", session)
}

/// [`assemble`] for title `title` and rendition `rendition` of the package `dir/pkg`.
pub fn assemble_rendition(dir: &Path, title: &str, rendition: &str, session: &str) -> String {
    use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, Variant};
    let key_hex = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let key = MasterKey::from_hex(key_hex.trim(), KeyVersion::new(1)).unwrap();
    let book = key.codebook(&TitleId::new(title).unwrap());
    let sid = SessionId::new(session.to_owned()).unwrap();
    let rend = dir.join("pkg").join(rendition);
    let mut stream = std::fs::read(rend.join("a/init.mp4")).unwrap();
    let mut bits = String::new();
    for p in 0u32.. {
        let v = book.bit(&sid, p);
        let Ok(seg) = std::fs::read(rend.join(v.dir()).join(format!("seg_{p:05}.m4s"))) else {
            break;
        };
        bits.push_str(if v == Variant::A { "A" } else { "B" });
        stream.extend(seg);
    }
    std::fs::write(dir.join("session.mp4"), &stream).unwrap();
    bits
}

/// Asserts that `session` has the best score of the `detect --json` report `report` (its
/// `top` list must hold every session). A short copy can leave sessions whose codewords agree
/// on every observed position: they tie, and no detector can order them, so a tie at the top
/// counts.
pub fn assert_best_scored(report: &serde_json::Value, session: &str, what: &str) {
    let top = report["top"].as_array().expect("a top list");
    let score = |s: &serde_json::Value| s["score"].as_f64().unwrap_or(f64::NAN);
    let best = top.first().map(score).unwrap_or(f64::NAN);
    let found = top
        .iter()
        .find(|s| s["session_id"] == session)
        .unwrap_or_else(|| panic!("{what}: {session} is not in the top list"));
    assert!(
        score(found) >= best - 1e-9,
        "{what}: {session} scores {}, the best {best} ({})",
        score(found),
        top[0]
    );
}
