//! A picture as it is shown. A stream whose display matrix turns its pictures (a phone's
//! portrait recording, stored as landscape pictures) decodes as players show it: the
//! decoder's frames match, sample for sample, what the `ffmpeg` command line decodes from the
//! same file (it turns the pictures by default), and the area-averaged luma matches that of an
//! upright copy of the file. A stream of non-square pixels reports the width it is shown at.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_media::{Decoder, Orientation, Rational, Samples, VideoFrame, probe};
use leaktrace_testkit::{ffmpeg_command, ok};
use std::path::{Path, PathBuf};

const W: usize = 96;
const H: usize = 64;
const FRAMES: usize = 5;

/// A lossless H.264 clip of `testsrc2` (no two corners alike), `W × H`.
fn source(dir: &Path) -> PathBuf {
    let p = dir.join("source.mp4");
    ok(ffmpeg_command()
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={W}x{H}:rate=10"))
        .args(["-frames:v", &FRAMES.to_string()])
        .args(["-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p"])
        .arg(&p));
    p
}

/// `source` with the MP4 `rotate` tag set to `degrees` (the muxer writes it as the track's
/// display matrix), the pictures untouched.
fn tagged(dir: &Path, source: &Path, degrees: u32) -> PathBuf {
    let p = dir.join(format!("rotate{degrees}.mp4"));
    ok(ffmpeg_command()
        .arg("-i")
        .arg(source)
        .args(["-c", "copy", "-metadata:s:v:0"])
        .arg(format!("rotate={degrees}"))
        .arg(&p));
    p
}

/// What `ffmpeg` decodes from `file`, turned as it turns it: raw 4:2:0 planes, frame after
/// frame.
fn ffmpeg_raw(file: &Path) -> Vec<u8> {
    let out = ffmpeg_command()
        .arg("-i")
        .arg(file)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn planes(frame: &VideoFrame) -> Vec<u8> {
    let mut bytes = Vec::new();
    for p in [&frame.y, &frame.u, &frame.v] {
        match p {
            Samples::U8(v) => bytes.extend_from_slice(v),
            other => panic!("expected 8-bit samples, got {other:?}"),
        }
    }
    bytes
}

fn all_frames(file: &Path) -> (Decoder, Vec<VideoFrame>) {
    let mut d = Decoder::open(file).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        frames.push(f);
    }
    (d, frames)
}

fn all_luma(file: &Path, w: usize, h: usize) -> Vec<Vec<u16>> {
    let mut d = Decoder::open(file).unwrap();
    let mut out = Vec::new();
    while let Some(l) = d.next_luma(w, h).unwrap() {
        out.push(l);
    }
    out
}

fn streamed_luma(file: &Path, w: usize, h: usize) -> Vec<Vec<u16>> {
    let mut d = Decoder::open(file).unwrap();
    let mut out = Vec::new();
    d.for_each_luma(w, h, usize::MAX, |l| {
        out.push(l.samples);
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

#[test]
fn turned_streams_decode_as_ffmpeg_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    // The turn `ffmpeg` gives each `rotate` tag as Debian 12's FFmpeg muxes it (`ffprobe`
    // prints the matrix's rotation as the tag's angle, counter-clockwise).
    for (degrees, orientation) in [
        (0, Orientation::UPRIGHT),
        (90, Orientation::COUNTER_CLOCKWISE),
        (180, Orientation::HALF_TURN),
        (270, Orientation::CLOCKWISE),
    ] {
        let file = tagged(dir.path(), &source, degrees);
        let (d, frames) = all_frames(&file);
        assert_eq!(d.orientation(), orientation, "rotate={degrees}");
        let (w, h) = orientation.display_size(W, H);
        assert_eq!(d.size(), (w, h), "rotate={degrees}");
        let info = probe(&file).unwrap();
        assert_eq!((info.width, info.height), (w, h), "rotate={degrees}");
        assert_eq!(frames.len(), FRAMES);
        for f in &frames {
            assert_eq!((f.width, f.height), (w, h), "rotate={degrees}");
        }

        // Sample for sample what the ffmpeg command line shows.
        let ours: Vec<u8> = frames.iter().flat_map(planes).collect();
        let theirs = ffmpeg_raw(&file);
        assert_eq!(ours.len(), theirs.len(), "rotate={degrees}");
        assert!(
            ours == theirs,
            "rotate={degrees}: the turned frames differ from ffmpeg's"
        );

        // The luma averaged to a working size, frame by frame and streamed, is that of an
        // upright copy made by ffmpeg (lossless, so the same pictures).
        let upright = dir.path().join(format!("upright{degrees}.mp4"));
        ok(ffmpeg_command()
            .arg("-i")
            .arg(&file)
            .args(["-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p"])
            .arg(&upright));
        assert_eq!(
            Decoder::open(&upright).unwrap().orientation(),
            Orientation::UPRIGHT
        );
        let (lw, lh) = (w / 3, h / 4);
        let want = all_luma(&upright, lw, lh);
        assert_eq!(want.len(), FRAMES);
        assert_eq!(want[0].len(), lw * lh);
        assert_eq!(all_luma(&file, lw, lh), want, "rotate={degrees}: next_luma");
        assert_eq!(
            streamed_luma(&file, lw, lh),
            want,
            "rotate={degrees}: for_each_luma"
        );
    }
}

#[test]
fn non_square_pixels_report_the_width_they_are_shown_at() {
    let dir = tempfile::tempdir().unwrap();
    let clip = |name: &str, sar: &str, rotate: Option<&str>| -> PathBuf {
        let stored = dir.path().join(format!("{name}-stored.mp4"));
        ok(ffmpeg_command()
            .args(["-f", "lavfi", "-i", "testsrc2=size=720x576:rate=10"])
            .args(["-frames:v", "2", "-vf"])
            .arg(format!("setsar={sar}"))
            .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
            .arg(&stored));
        let Some(degrees) = rotate else {
            return stored;
        };
        let p = dir.path().join(format!("{name}.mp4"));
        ok(ffmpeg_command()
            .arg("-i")
            .arg(&stored)
            .args(["-c", "copy", "-metadata:s:v:0"])
            .arg(format!("rotate={degrees}"))
            .arg(&p));
        p
    };
    // PAL 16:9: shown 1024 wide.
    let d = Decoder::open(&clip("pal", "64/45", None)).unwrap();
    assert_eq!(d.pixel_aspect(), Rational::new(64, 45));
    assert_eq!((d.size(), d.display_width()), ((720, 576), 1024));
    // Turned a quarter: the pixel's shape turns with the picture (576 × 45/64 = 405).
    let d = Decoder::open(&clip("turned", "64/45", Some("90"))).unwrap();
    assert_eq!(d.pixel_aspect(), Rational::new(45, 64));
    assert_eq!((d.size(), d.display_width()), ((576, 720), 405));
    // Square pixels, and a shape no format has (100:1), are shown as stored.
    for (name, sar) in [("square", "1"), ("absurd", "100")] {
        let d = Decoder::open(&clip(name, sar, None)).unwrap();
        assert_eq!(d.pixel_aspect(), Rational::new(1, 1), "{name}");
        assert_eq!(d.display_width(), 720, "{name}");
    }
}
