//! Hostile-input limits of the decoder ([`Limits`]): a picture, a frame count or a duration
//! over the limit is refused on open when the container declares it and stopped at the first
//! frame that goes over it when it does not (or lies), with an error naming the limit. Checked
//! on small real files made by the ffmpeg CLI; a normal clip still decodes under the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_media::{Decoder, LimitKind, Limits, MediaError, probe, probe_with_limits};
use leaktrace_testkit::{ffmpeg_command, ok};
use std::path::{Path, PathBuf};

/// Runs the ffmpeg CLI on a lavfi test source: `seconds` of `size` at 10 fps, H.264, into
/// `dir/name`, with `extra` output arguments.
fn make(dir: &Path, name: &str, size: &str, seconds: &str, extra: &[&str]) -> PathBuf {
    let p = dir.join(name);
    ok(ffmpeg_command()
        .args(["-f", "lavfi"])
        .args(["-i", &format!("testsrc=size={size}:rate=10"), "-t", seconds])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(extra)
        .arg(&p));
    p
}

/// Decodes every frame; `Ok(frame count)` or the first error.
fn decode_all(path: &Path, limits: Limits) -> Result<u64, MediaError> {
    let mut d = Decoder::open_with_limits(path, limits)?;
    let mut n = 0;
    while d.next_frame()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Decodes with `next_luma` until the first error; returns the frames decoded and the error.
fn luma_until_error(path: &Path, limits: Limits) -> (u64, MediaError) {
    let mut d = Decoder::open_with_limits(path, limits).unwrap();
    let mut n = 0;
    loop {
        match d.next_luma(16, 16) {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("{}: all {n} frames decoded, no limit hit", path.display()),
            Err(e) => return (n, e),
        }
    }
}

fn too_large(e: &MediaError) -> (LimitKind, String) {
    match e {
        MediaError::TooLarge(o) => (o.limit, e.to_string()),
        other => panic!("expected TooLarge, got {other:?}: {other}"),
    }
}

#[test]
fn a_normal_clip_decodes_under_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "2", &[]);
    let info = probe(&mp4).unwrap();
    assert_eq!(
        (info.width, info.height, info.declared_frames),
        (64, 64, 20)
    );
    assert_eq!(decode_all(&mp4, Limits::default()).unwrap(), 20);
    let mut d = Decoder::open(&mp4).unwrap();
    assert_eq!(d.limits(), &Limits::default());
    let mut n = 0;
    while d.next_luma(16, 16).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 20);
    // Limits exactly at the clip pass: 64x64, 4096 pixels, 20 frames, 2 s.
    let exact = Limits {
        max_width: 64,
        max_height: 64,
        max_pixels: 64 * 64,
        max_frames: 20,
        max_duration_s: 2.0,
    };
    assert!(probe_with_limits(&mp4, exact).is_ok());
    assert_eq!(decode_all(&mp4, exact).unwrap(), 20);
}

#[test]
fn a_picture_over_the_size_limit_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "1", &[]);
    let narrow = Limits {
        max_width: 32,
        ..Limits::default()
    };
    let (kind, msg) = too_large(&Decoder::open_with_limits(&mp4, narrow).unwrap_err());
    assert_eq!(kind, LimitKind::Size);
    assert!(
        msg.ends_with(
            "the declared picture (64x64) is larger than the limit 32x8192 \
             (Limits::max_width/max_height)"
        ),
        "{msg}"
    );
    assert!(msg.contains("clip.mp4"), "{msg}");
    let (kind, _) = too_large(&probe_with_limits(&mp4, narrow).unwrap_err());
    assert_eq!(kind, LimitKind::Size);

    let few_pixels = Limits {
        max_pixels: 4000,
        ..Limits::default()
    };
    let (kind, msg) = too_large(&Decoder::open_with_limits(&mp4, few_pixels).unwrap_err());
    assert_eq!(kind, LimitKind::Pixels);
    assert!(
        msg.ends_with(
            "the declared picture (64x64 = 4096 pixels) is larger than the limit 4000 pixels \
             (Limits::max_pixels)"
        ),
        "{msg}"
    );
}

#[test]
fn a_declared_9000x9000_picture_is_refused_under_the_defaults() {
    // A 1-kB file whose header declares an 81-MP picture (121 MB a frame): refused from the
    // header, nothing decoded.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("leak.y4m");
    let mut bytes = b"YUV4MPEG2 W9000 H9000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    bytes.resize(1024, 16);
    std::fs::write(&p, bytes).unwrap();
    for err in [
        probe(&p).unwrap_err(),
        Decoder::open(&p).unwrap_err(),
        decode_all(&p, Limits::default()).unwrap_err(),
    ] {
        let (kind, msg) = too_large(&err);
        assert_eq!(kind, LimitKind::Size);
        assert!(
            msg.ends_with(
                "the declared picture (9000x9000) is larger than the limit 8192x8192 \
                 (Limits::max_width/max_height)"
            ),
            "{msg}"
        );
    }
}

/// An MPEG-TS stream of 10 frames at 32x32, then 10 at 128x128: it declares 32x32.
fn growing_stream(dir: &Path) -> PathBuf {
    let small = make(dir, "small.ts", "32x32", "1", &[]);
    let large = make(dir, "large.ts", "128x128", "1", &["-output_ts_offset", "1"]);
    let mut bytes = std::fs::read(small).unwrap();
    bytes.extend(std::fs::read(large).unwrap());
    let p = dir.join("grows.ts");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_stream_that_grows_mid_way_is_stopped_at_the_first_large_frame() {
    let dir = tempfile::tempdir().unwrap();
    let ts = growing_stream(dir.path());
    assert_eq!(decode_all(&ts, Limits::default()).unwrap(), 20);
    let limits = Limits {
        max_width: 64,
        max_height: 64,
        ..Limits::default()
    };
    assert_eq!(probe_with_limits(&ts, limits).unwrap().width, 32);
    let mut d = Decoder::open_with_limits(&ts, limits).unwrap();
    for i in 0..10 {
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.index, f.width, f.height), (i, 32, 32));
    }
    let (kind, msg) = too_large(&d.next_frame().unwrap_err());
    assert_eq!(kind, LimitKind::Size);
    assert!(
        msg.ends_with(
            "frame 10 (128x128) is larger than the limit 64x64 (Limits::max_width/max_height)"
        ),
        "{msg}"
    );
    // The 128x128 frames after it are not returned either: the decoder has stopped.
    assert_eq!(d.next_frame().unwrap_err().to_string(), msg);
    let (n, e) = luma_until_error(&ts, limits);
    assert_eq!(n, 10);
    assert_eq!(too_large(&e).0, LimitKind::Size);
}

#[test]
fn a_stream_that_grows_over_the_pixel_limit_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let ts = growing_stream(dir.path());
    // 128x128 = 16384 pixels: over the 2048 limit and over the allocation ceiling FFmpeg is
    // given for it (2048 + alignment margin for 64x64 at most), so FFmpeg itself refuses to
    // allocate the larger pictures; the error still names the limit.
    let limits = Limits {
        max_width: 64,
        max_height: 64,
        max_pixels: 2048,
        ..Limits::default()
    };
    // The pictures in flight when it does (frame threads) are lost with it.
    let (n, e) = luma_until_error(&ts, limits);
    assert!((1..=10).contains(&n), "{n} frames before {e}");
    let (kind, msg) = too_large(&e);
    assert_eq!(kind, LimitKind::Size);
    assert!(
        msg.ends_with(&format!(
            "the picture the stream switches to after {n} frames (128x128) is larger than the \
             limit 64x64 (Limits::max_width/max_height)"
        )),
        "{msg}"
    );
    // Under a pixel limit alone (the size limits at their defaults), the frame check names it.
    let pixels_only = Limits {
        max_pixels: 2048,
        ..Limits::default()
    };
    let (n, e) = luma_until_error(&ts, pixels_only);
    assert_eq!(n, 10, "{e}");
    let (kind, msg) = too_large(&e);
    assert_eq!(kind, LimitKind::Pixels);
    assert!(
        msg.ends_with(
            "frame 10 (128x128 = 16384 pixels) is larger than the limit 2048 pixels \
             (Limits::max_pixels)"
        ),
        "{msg}"
    );
}

#[test]
fn more_frames_than_max_frames_are_refused_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let ten = Limits {
        max_frames: 10,
        ..Limits::default()
    };
    // MP4 declares its 20 frames: refused on open.
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "2", &[]);
    let (kind, msg) = too_large(&Decoder::open_with_limits(&mp4, ten).unwrap_err());
    assert_eq!(kind, LimitKind::Frames);
    assert!(
        msg.ends_with(
            "the declared frame count (20) is larger than the limit 10 (Limits::max_frames)"
        ),
        "{msg}"
    );
    assert_eq!(
        too_large(&probe_with_limits(&mp4, ten).unwrap_err()).0,
        LimitKind::Frames
    );
    // A raw H.264 stream declares no count: 10 frames come out, the 11th stops the decoder.
    let raw = make(dir.path(), "clip.h264", "64x64", "2", &[]);
    assert_eq!(probe(&raw).unwrap().declared_frames, 0);
    let mut d = Decoder::open_with_limits(&raw, ten).unwrap();
    for _ in 0..10 {
        assert!(d.next_frame().unwrap().is_some());
    }
    let (kind, msg) = too_large(&d.next_frame().unwrap_err());
    assert_eq!(kind, LimitKind::Frames);
    assert!(
        msg.ends_with(
            "the decoded frame count (at least 11) is larger than the limit 10 \
             (Limits::max_frames)"
        ),
        "{msg}"
    );
    // The decoder has stopped: every later call gives the same error, nothing is decoded.
    for _ in 0..3 {
        assert_eq!(d.next_frame().unwrap_err().to_string(), msg);
        assert_eq!(d.next_luma(16, 16).unwrap_err().to_string(), msg);
    }
    let (n, e) = luma_until_error(&raw, ten);
    assert_eq!((n, too_large(&e).0), (10, LimitKind::Frames));
    // Exactly as many frames as the limit: a normal end.
    let twenty = Limits {
        max_frames: 20,
        ..Limits::default()
    };
    assert_eq!(decode_all(&raw, twenty).unwrap(), 20);
}

#[test]
fn a_stream_longer_than_max_duration_is_refused_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let one_second = Limits {
        max_duration_s: 1.0,
        ..Limits::default()
    };
    // Declared 2 s: refused on open.
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "2", &[]);
    let (kind, msg) = too_large(&Decoder::open_with_limits(&mp4, one_second).unwrap_err());
    assert_eq!(kind, LimitKind::Duration);
    assert!(
        msg.ends_with(
            "the declared duration (2.000 s) is larger than the limit 1.000 s \
             (Limits::max_duration_s)"
        ),
        "{msg}"
    );
    // A captured HLS playlist that says 0.5 s over a 2-s segment: the timestamps (from 1.4 s
    // in MPEG-TS) stop it after 1 s of frames.
    make(dir.path(), "seg0.ts", "64x64", "2", &[]);
    let m3u8 = dir.path().join("leak.m3u8");
    std::fs::write(
        &m3u8,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:0.5,\nseg0.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    assert_eq!(decode_all(&m3u8, Limits::default()).unwrap(), 20);
    let mut d = Decoder::open_with_limits(&m3u8, one_second).unwrap();
    for _ in 0..10 {
        assert!(d.next_frame().unwrap().is_some());
    }
    let (kind, msg) = too_large(&d.next_frame().unwrap_err());
    assert_eq!(kind, LimitKind::Duration);
    assert!(
        msg.ends_with(
            "the decoded duration (1.100 s at frame 10) is larger than the limit 1.000 s \
             (Limits::max_duration_s)"
        ),
        "{msg}"
    );
    // Without timestamps (raw H.264) the duration is frames over the frame rate.
    let raw = make(dir.path(), "clip.h264", "64x64", "2", &[]);
    let (n, e) = luma_until_error(&raw, one_second);
    assert_eq!((n, too_large(&e).0), (10, LimitKind::Duration));
}

#[test]
fn a_luma_size_over_the_limits_is_refused() {
    // The caller derives the luma size from the input's aspect ratio; a 2-pixel-wide input
    // must not make it ask for a million rows.
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "1", &[]);
    let mut d = Decoder::open(&mp4).unwrap();
    let (kind, msg) = too_large(&d.next_luma(256, 1 << 20).unwrap_err());
    assert_eq!(kind, LimitKind::Size);
    assert!(
        msg.ends_with(
            "the luma asked of frame 0 (256x1048576) is larger than the limit 8192x8192 \
             (Limits::max_width/max_height)"
        ),
        "{msg}"
    );
}

#[test]
fn invalid_limits_are_refused_with_the_valid_range() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make(dir.path(), "clip.mp4", "64x64", "1", &[]);
    for (limits, want) in [
        (
            Limits {
                max_duration_s: f64::NAN,
                ..Limits::default()
            },
            "invalid decoding limits: Limits::max_duration_s is NaN; it must be greater than 0 \
             seconds (f64::INFINITY for no limit)",
        ),
        (
            Limits {
                max_frames: 0,
                ..Limits::default()
            },
            "invalid decoding limits: Limits::max_frames is 0; it must be at least 1",
        ),
    ] {
        let e = Decoder::open_with_limits(&mp4, limits).unwrap_err();
        assert!(matches!(e, MediaError::InvalidLimits(_)), "{e:?}");
        assert_eq!(e.to_string(), want);
        assert_eq!(
            probe_with_limits(&mp4, limits).unwrap_err().to_string(),
            want
        );
    }
    assert_eq!(decode_all(&mp4, Limits::no_limits()).unwrap(), 10);
}
