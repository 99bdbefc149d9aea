//! A file handed to leaktrace (a suspect copy, a mezzanine) is read as itself: a manifest or
//! playlist saved under a video's name cannot make FFmpeg read the files or URLs it names.
//! Checked on a real DASH manifest that points at a real local video (which FFmpeg's DASH
//! demuxer would happily decode) and on a concat script; a real MP4 still opens.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_testkit::{ffmpeg_command, ok};
use std::path::Path;

/// A 2-s 64x64 H.264 MP4 made by the ffmpeg CLI.
fn real_video(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("real.mp4");
    ok(ffmpeg_command()
        .args(["-f", "lavfi"])
        .args(["-i", "testsrc=size=64x64:rate=10", "-t", "2"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&p));
    p
}

#[test]
fn a_dash_manifest_named_like_a_video_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_video(dir.path());
    assert!(leaktrace_media::probe(&real).is_ok());
    let mpd = format!(
        r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"
     minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period><AdaptationSet mimeType="video/mp4">
  <Representation id="1" bandwidth="100000" width="64" height="64" codecs="avc1.42c00a">
   <BaseURL>file://{}</BaseURL>
  </Representation></AdaptationSet></Period></MPD>
"#,
        real.display()
    );
    for name in ["leak.mp4", "leak.mpd"] {
        let p = dir.path().join(name);
        std::fs::write(&p, &mpd).unwrap();
        let probed = leaktrace_media::probe(&p);
        assert!(
            probed.is_err(),
            "{name}: read through the manifest: {probed:?}"
        );
        let opened = leaktrace_media::Decoder::open(&p);
        assert!(opened.is_err(), "{name}: decoder opened the manifest");
    }
}

#[test]
fn a_concat_script_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_video(dir.path());
    let p = dir.path().join("leak.mkv");
    std::fs::write(
        &p,
        format!("ffconcat version 1.0\nfile '{}'\n", real.display()),
    )
    .unwrap();
    assert!(leaktrace_media::probe(&p).is_err());
}
