//! FFmpeg and ffprobe as the tests run them, and CMAF files joined for playback.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ok;

/// `ffmpeg -y -hide_banner -loglevel error`, ready for more arguments (paths among them);
/// run it with [`ok`].
pub fn ffmpeg_command() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-y", "-hide_banner", "-loglevel", "error"]);
    c
}

/// `ffmpeg -y -hide_banner -loglevel error ARGS`.
///
/// # Panics
/// Unless it succeeds (the message has ffmpeg's stderr).
pub fn ffmpeg(args: &[&str]) {
    ok(ffmpeg_command().args(args));
}

/// `ffprobe -v error ARGS FILE`; returns its stdout.
///
/// # Panics
/// Unless it succeeds and prints nothing on stderr: any error ffprobe reports about the file
/// fails the test.
pub fn ffprobe(args: &[&str], file: &Path) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]).args(args).arg(file);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{cmd:?} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?} printed something other than UTF-8: {e}"))
}

/// What FFmpeg's bitstream tracer (`-c copy -bsf:v trace_headers`) prints of `file`'s video:
/// each syntax element of its parameter sets, SEI messages and slice headers, one per line,
/// with FFmpeg's other messages. `before` goes before `-i` (e.g. `-f hevc`), `after` after it
/// (e.g. `-frames:v 1`).
///
/// # Panics
/// Unless ffmpeg runs and succeeds (the message has its stderr).
pub fn trace_headers(before: &[&str], file: &Path, after: &[&str]) -> String {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostats"])
        .args(before)
        .arg("-i")
        .arg(file)
        .args(after)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} ({}): {log}", out.status);
    log
}

/// Writes the init segment `init` followed by the media `segments`, in order, to `out`: one
/// playable fragmented MP4.
///
/// # Panics
/// If a file cannot be read or `out` written.
pub fn concat(init: &Path, segments: impl IntoIterator<Item = impl AsRef<Path>>, out: &Path) {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut bytes = read(init);
    for s in segments {
        bytes.extend(read(s.as_ref()));
    }
    std::fs::write(out, bytes).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// The media segments (`*.m4s`) of a rendition or variant directory, sorted by name (which
/// is position order for the packager's `seg_NNNNN.m4s`).
///
/// # Panics
/// If `dir` cannot be listed.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == "m4s"))
        .collect();
    v.sort();
    v
}

/// FFmpeg's decode of `file` (with the Common Encryption `key`, hex, when given) to frame MD5s
/// (`-f framemd5`, `-xerror`); the output, successful or not, for the caller to judge.
///
/// # Panics
/// If ffmpeg cannot be started.
pub fn decode_framemd5(file: &Path, key: Option<&str>) -> std::process::Output {
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-xerror"]);
    if let Some(k) = key {
        c.args(["-decryption_key", k]);
    }
    c.arg("-i")
        .arg(file)
        .args(["-f", "framemd5", "-"])
        .output()
        .unwrap_or_else(|e| panic!("starting ffmpeg: {e}"))
}

/// The hash column of FFmpeg's `framemd5` lines (timestamps written differently by another
/// muxer do not count).
pub fn hash_column(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
        .collect()
}

/// The MD5 of every decoded frame of `file` ([`hash_column`] of its `framemd5`).
///
/// # Panics
/// Unless FFmpeg decodes it without error.
pub fn frame_hashes(file: &Path) -> Vec<String> {
    let o = decode_framemd5(file, None);
    assert!(
        o.status.success(),
        "ffmpeg {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    hash_column(&o)
}

/// Shaka Packager's Linux binary, from the npm package in `tools/` (`npm ci --prefix tools`).
///
/// # Panics
/// If it is not installed.
pub fn shaka_packager() -> PathBuf {
    let p = crate::repo().join("tools/node_modules/shaka-packager/bin/packager-linux-x64");
    assert!(
        p.is_file(),
        "{} missing: npm ci --prefix tools",
        p.display()
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn write(p: &Path, bytes: &[u8]) {
        std::fs::write(p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    #[test]
    fn segments_are_the_sorted_m4s_files() {
        let d = tmp();
        for name in [
            "seg_00002.m4s",
            "init.mp4",
            "seg_00000.m4s",
            "seg_00001.m4s",
            "x.txt",
        ] {
            write(&d.path().join(name), name.as_bytes());
        }
        let names: Vec<_> = segments(d.path())
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["seg_00000.m4s", "seg_00001.m4s", "seg_00002.m4s"]);
    }

    #[test]
    fn concat_writes_init_then_segments() {
        let d = tmp();
        let p = |n: &str| d.path().join(n);
        write(&p("init.mp4"), b"I");
        write(&p("seg_00000.m4s"), b"0");
        write(&p("seg_00001.m4s"), b"1");
        concat(&p("init.mp4"), segments(d.path()), &p("out.mp4"));
        assert_eq!(std::fs::read(p("out.mp4")).ok(), Some(b"I01".to_vec()));
    }

    #[test]
    fn ffmpeg_writes_what_ffprobe_counts() {
        let d = tmp();
        let out = d.path().join("t.mp4");
        ok(ffmpeg_command()
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10",
                "-frames:v",
                "7",
            ])
            .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
            .arg(&out));
        let count = [
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ];
        assert_eq!(ffprobe(&count, &out).trim(), "7");
    }

    #[test]
    #[should_panic(expected = "Invalid data found")]
    fn ffprobe_fails_on_a_broken_file() {
        let d = tmp();
        let bad = d.path().join("bad.mp4");
        write(&bad, b"not a video");
        ffprobe(&["-show_streams"], &bad);
    }
}
