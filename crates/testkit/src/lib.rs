//! The test kit: helpers shared by the workspace's integration tests, examples and benches.
//!
//! - the repository and its media corpus: [`repo`], [`corpus_dir`], [`corpus`];
//! - commands that must succeed ([`ok`]) and child processes killed on drop ([`Proc`],
//!   [`spawn_first_line`]);
//! - FFmpeg and ffprobe ([`ffmpeg`], [`ffmpeg_command`], [`ffprobe`]) and CMAF files joined
//!   into one playable file ([`concat()`], [`segments`]); decoded frames as MD5s
//!   ([`decode_framemd5`], [`frame_hashes`]) and Shaka Packager ([`shaka_packager`]);
//! - headless Chromium for player pages ([`browser`]);
//! - loopback networking: [`free_port`], a plain [`http_get`], and (feature `site`, on by
//!   default) a hyper site on 127.0.0.1 ([`site`]);
//! - the vendored XML schemas: [`acns_xsd`], [`assert_acns_valid`];
//! - a package made by hand for edge tests that need no media tools: [`hand_made_package`].
//!
//! It is a dev-dependency only (`publish = false`) and depends on no leaktrace crate: it sits
//! beneath every crate, so any crate's tests can use it without a dependency cycle (which would
//! give a crate's tests a second copy of its own types). Helpers that need a crate's types
//! stay in that crate's tests. Every helper panics on failure, with what failed: in a test a
//! panic is the failure report.
//!
//! ```no_run
//! use leaktrace_testkit::{corpus, ffmpeg, ffprobe};
//!
//! // A corpus file: `$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache` (`bash corpus/fetch.sh`).
//! let clip = corpus("bbb.mp4");
//! let out = std::env::temp_dir().join("bbb-48-frames.mp4");
//! let (clip, out_str) = (clip.to_str().unwrap(), out.to_str().unwrap());
//! ffmpeg(&["-i", clip, "-frames:v", "48", "-c:v", "libx264", "-an", out_str]);
//! let count = ["-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"];
//! assert_eq!(ffprobe(&count, &out).trim(), "48");
//! ```

pub mod browser;
mod media;
mod net;
mod package;
mod process;
mod schemas;
#[cfg(feature = "site")]
pub mod site;

pub use media::{
    concat, decode_framemd5, ffmpeg, ffmpeg_command, ffprobe, frame_hashes, hash_column, segments,
    shaka_packager, trace_headers,
};
pub use net::{free_port, http_get};
pub use package::hand_made_package;
pub use process::{Proc, ok, spawn_first_line};
pub use schemas::{acns_xsd, assert_acns_valid};

use std::path::{Path, PathBuf};

/// The repository root (the workspace directory, two levels above this crate).
///
/// # Panics
/// If it does not look like the leaktrace repository (no `Cargo.toml` or `corpus/` there).
pub fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no grandparent", here.display()));
    assert!(
        root.join("Cargo.toml").is_file() && root.join("corpus").is_dir(),
        "{} is not the repository root (no Cargo.toml and corpus/)",
        root.display()
    );
    root.to_path_buf()
}

/// The media corpus: `$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache` (where
/// `bash corpus/fetch.sh` puts it). Whether it holds anything is not checked: see [`corpus`].
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("LEAKTRACE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("corpus/cache"))
}

/// The corpus file `name` (in [`corpus_dir`]).
///
/// # Panics
/// If it is not there, saying how to fetch it.
pub fn corpus(name: &str) -> PathBuf {
    let p = corpus_dir().join(name);
    assert!(
        p.is_file(),
        "corpus file {} missing: run corpus/fetch.sh first (or set LEAKTRACE_CORPUS)",
        p.display()
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_is_the_workspace_root() {
        let r = repo();
        assert!(r.join("crates/testkit/Cargo.toml").is_file());
        assert!(r.is_absolute());
        assert!(
            r.components().all(|c| c != std::path::Component::ParentDir),
            "{} is not normalised",
            r.display()
        );
    }

    #[test]
    fn corpus_dir_honours_the_environment() {
        let want = std::env::var_os("LEAKTRACE_CORPUS")
            .map_or_else(|| repo().join("corpus/cache"), PathBuf::from);
        assert_eq!(corpus_dir(), want);
    }

    #[test]
    #[should_panic(expected = "run corpus/fetch.sh")]
    fn a_missing_corpus_file_says_how_to_fetch_it() {
        corpus("no-such-file-in-the-corpus.mp4");
    }
}
