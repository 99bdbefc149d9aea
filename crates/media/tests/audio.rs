//! Audio renditions from real encodes: tracks are listed with language and role, AAC-LC at
//! 48 kHz is copied and anything else encoded, segments start where the video's positions
//! start, and the packaged track, decoded by the ffmpeg CLI, keeps the source's timing to
//! the sample (a tone that starts at 3 s in the source starts at 3 s in the package).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_media::audio::{self, AudioConfig, AudioRole};
use leaktrace_media::{Limits, MediaError};
use leaktrace_testkit::{concat, ffmpeg};
use std::path::{Path, PathBuf};
use std::process::Command;

/// 5 s of 24 fps video with two audio tracks: English mono at 44.1 kHz (silence, then a
/// 1 kHz tone from 3 s; re-encoded) and French stereo AAC-LC at 48 kHz marked commentary
/// (copied).
fn mezzanine(dir: &Path) -> PathBuf {
    let p = dir.join("mezz.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=24:duration=5",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=exprs='if(gte(t,3),0.5*sin(2*PI*1000*t),0)':s=44100:d=5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:sample_rate=48000:duration=5",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a:0",
        "libmp3lame",
        "-c:a:1",
        "aac",
        "-ac:a:1",
        "2",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        "-disposition:a:1",
        "comment",
        p.to_str().unwrap(),
    ]);
    p
}

/// Positions of 2 s, 2 s and 1 s in the video's 90 kHz timescale.
fn config() -> AudioConfig {
    AudioConfig {
        bitrate: 128_000,
        segment_ends: vec![180_000, 360_000, 450_000],
        timescale: 90_000,
        force_encode: false,
        protection: None,
    }
}

fn seg(p: u32) -> String {
    format!("seg_{p:05}.m4s")
}

/// The init and segments of `dir` concatenated into one playable fragmented MP4.
fn joined(dir: &Path, n: u32) -> PathBuf {
    let out = dir.join("joined.mp4");
    concat(
        &dir.join("init.mp4"),
        (0..n).map(|p| dir.join(seg(p))),
        &out,
    );
    out
}

/// The track decoded to 48 kHz mono f32 by the ffmpeg CLI.
fn decode(file: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(file)
        .args(["-ac", "1", "-f", "f32le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn tracks_are_listed_with_language_role_and_copyability() {
    let dir = tempfile::tempdir().unwrap();
    let mezz = mezzanine(dir.path());
    let tracks = audio::audio_streams(&mezz, &Limits::default()).unwrap();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert_eq!(tracks[0].language.as_deref(), Some("eng"));
    assert_eq!(tracks[0].role, AudioRole::Main);
    assert_eq!((tracks[0].sample_rate, tracks[0].channels), (44_100, 1));
    assert!(!tracks[0].copyable);
    assert_eq!(tracks[1].language.as_deref(), Some("fra"));
    assert_eq!(tracks[1].role, AudioRole::Commentary);
    assert!(tracks[1].copyable, "{:?}", tracks[1]);
}

#[test]
fn an_encoded_track_keeps_the_source_timing_to_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mezz = mezzanine(dir.path());
    let tracks = audio::audio_streams(&mezz, &Limits::default()).unwrap();
    let out = dir.path().join("eng");
    std::fs::create_dir(&out).unwrap();
    let t = audio::package(&mezz, &tracks[0], &config(), &out, "init.mp4", seg).unwrap();
    assert!(!t.copied);
    assert_eq!(
        (t.codec.as_str(), t.channels, t.timescale),
        ("mp4a.40.2", 2, 48_000)
    );
    assert_eq!(t.durations.len(), 3);
    // Each segment starts within one AAC frame after its position's start.
    let mut start = 0u64;
    for (p, (&d, want)) in t.durations.iter().zip([0u64, 96_000, 192_000]).enumerate() {
        assert!(
            start >= want && start < want + 1024,
            "segment {p} starts at {start}, position at {want}"
        );
        start += d;
    }
    assert!(
        (239_000..=241_100).contains(&start),
        "track ends at {start}"
    );
    let pcm = decode(&joined(&out, 3));
    assert!(
        (pcm.len() as i64 - 240_000).abs() <= 1024,
        "{} samples decoded",
        pcm.len()
    );
    let onset = pcm.iter().position(|s| s.abs() > 0.05).unwrap();
    assert!(
        (onset as i64 - 144_000).abs() <= 8,
        "the tone starts at sample {onset}, the source's at 144000 (3 s)"
    );
}

#[test]
fn aac_lc_at_48_khz_is_copied_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mezz = mezzanine(dir.path());
    let tracks = audio::audio_streams(&mezz, &Limits::default()).unwrap();
    let out = dir.path().join("fra");
    std::fs::create_dir(&out).unwrap();
    let t = audio::package(&mezz, &tracks[1], &config(), &out, "init.mp4", seg).unwrap();
    assert!(t.copied);
    assert_eq!(t.codec, "mp4a.40.2");
    assert_eq!(t.durations.len(), 3);
    let pcm = decode(&joined(&out, 3));
    assert!(pcm.len() > 230_000, "{} samples", pcm.len());
    // The same track re-encoded has other bytes: the copy did not go through the encoder.
    let again = dir.path().join("fra-encoded");
    std::fs::create_dir(&again).unwrap();
    let cfg = AudioConfig {
        force_encode: true,
        ..config()
    };
    let e = audio::package(&mezz, &tracks[1], &cfg, &again, "init.mp4", seg).unwrap();
    assert!(!e.copied);
    assert_ne!(
        std::fs::read(out.join(seg(1))).unwrap(),
        std::fs::read(again.join(seg(1))).unwrap()
    );
}

#[test]
fn rates_channels_and_bitrates_out_of_range_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let low = dir.path().join("low.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=4000:duration=1",
        "-c:v",
        "libx264",
        "-c:a",
        "pcm_s16le",
        low.to_str().unwrap(),
    ]);
    let e = audio::audio_streams(&low, &Limits::default()).unwrap_err();
    assert!(matches!(e, MediaError::BadAudio { stream: 1, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("4000 Hz (expected 8000 to 192000 Hz)"),
        "{e}"
    );

    let mezz = mezzanine(dir.path());
    let tracks = audio::audio_streams(&mezz, &Limits::default()).unwrap();
    let cfg = AudioConfig {
        bitrate: 8_000,
        ..config()
    };
    let e = audio::package(&mezz, &tracks[0], &cfg, dir.path(), "init.mp4", seg).unwrap_err();
    assert!(e.to_string().contains("expected 32000 to 512000"), "{e}");
}
