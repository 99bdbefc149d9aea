//! Shared helpers of the embed integration tests: corpus lookup and ffmpeg/ffprobe runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus cache (`$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache`).
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("LEAKTRACE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/cache"))
}

/// A corpus file; panics with instructions when it has not been fetched.
pub fn corpus(name: &str) -> PathBuf {
    let p = corpus_dir().join(name);
    assert!(
        p.is_file(),
        "corpus file {} missing: run corpus/fetch.sh first",
        p.display()
    );
    p
}

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ffmpeg -y -hide_banner -loglevel error ARGS`.
pub fn ffmpeg(args: &[&str]) {
    run(Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args));
}

/// Concatenates an init segment and media segments into one playable file.
pub fn concat(init: &Path, segments: &[PathBuf], out: &Path) {
    let mut bytes = std::fs::read(init).unwrap();
    for s in segments {
        bytes.extend(std::fs::read(s).unwrap());
    }
    std::fs::write(out, bytes).unwrap();
}

/// The sorted media segments of a variant directory.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "m4s"))
        .collect();
    v.sort();
    v
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
