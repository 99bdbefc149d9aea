//! Helpers shared by the CLI integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `leaktrace` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leaktrace"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A corpus file (`$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache`); panics with instructions
/// when it has not been fetched.
pub fn corpus(name: &str) -> PathBuf {
    let dir = std::env::var_os("LEAKTRACE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("corpus/cache"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "corpus file {} missing: run corpus/fetch.sh first",
        p.display()
    );
    p
}

/// Runs `cmd`, panicking with its stderr unless it succeeds; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ffmpeg -y -hide_banner -loglevel error ARGS`, which must succeed.
pub fn ffmpeg(args: &[&str]) {
    ok(Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args));
}

/// A working directory made by `leaktrace init`.
pub fn init_workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    ok(bin().arg("init").arg(d.path()));
    d
}
