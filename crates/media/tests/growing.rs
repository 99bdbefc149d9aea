//! A file still being written, read as it grows: [`Decoder::open_growing`] returns every frame
//! the writer adds, however the bytes arrive, and ends once the file stops growing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_media::{Decoder, Limits, MediaError};
use leaktrace_testkit::ffmpeg;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// 3 s of 24 fps test pattern as MPEG-TS.
fn transport_stream(dir: &Path) -> Vec<u8> {
    let p = dir.join("whole.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=24:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "24",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mpegts",
        p.to_str().unwrap(),
    ]);
    std::fs::read(p).unwrap()
}

fn frames_of(dec: &mut Decoder) -> Vec<f64> {
    let mut times = Vec::new();
    while dec.next_luma(16, 9).unwrap().is_some() {
        times.push(dec.last_time().unwrap_or(f64::NAN));
    }
    times
}

#[test]
fn a_file_written_in_pieces_is_read_to_its_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = transport_stream(dir.path());
    let whole = frames_of(&mut Decoder::open(&dir.path().join("whole.ts")).unwrap());
    assert_eq!(whole.len(), 72);

    // The writer: the first 188-byte packets at once, the rest in odd-sized pieces (cut
    // inside packets) over about a second and a half.
    let growing = dir.path().join("growing.ts");
    let head = 188 * 40;
    std::fs::write(&growing, &bytes[..head]).unwrap();
    let writer = {
        let (growing, bytes) = (growing.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&growing)
                .unwrap();
            for piece in bytes[head..].chunks(7001) {
                std::thread::sleep(Duration::from_millis(40));
                f.write_all(piece).unwrap();
                f.flush().unwrap();
            }
        })
    };
    let mut dec =
        Decoder::open_growing(&growing, Limits::default(), Duration::from_millis(800)).unwrap();
    let followed = frames_of(&mut dec);
    // It read on until the writer had finished, then ended on its own.
    assert!(
        writer.is_finished(),
        "the decoder ended while the file was growing"
    );
    writer.join().unwrap();
    assert_eq!(
        followed.len(),
        whole.len(),
        "frames read while the file grew"
    );
    assert_eq!(followed, whole, "the same timestamps");
}

#[test]
fn a_playlist_is_not_a_growing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("live.m3u8");
    std::fs::write(&p, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n").unwrap();
    let e = Decoder::open_growing(&p, Limits::default(), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(e, MediaError::InvalidSetting(_)), "{e}");
    assert!(e.to_string().contains("segment by segment"), "{e}");
}
