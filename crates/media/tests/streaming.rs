//! A streaming encoder: fragments come out of the pipe while frames are still going in, one per
//! forced keyframe, on the timeline the frames were given (a live channel's frame counter).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use leaktrace_media::cmaf::{FragmentReader, Piece};
use leaktrace_media::{
    Codec, Encoder, EncoderConfig, PixelLayout, Rational, Samples, TRACK_TIMESCALE, VideoFrame,
};
use std::sync::mpsc;

fn frame(i: u64, w: usize, h: usize) -> VideoFrame {
    let y = (0..w * h)
        .map(|p| ((p % w + p / w + 3 * i as usize) % 200 + 20) as u8)
        .collect();
    let c = w.div_ceil(2) * h.div_ceil(2);
    VideoFrame {
        index: i,
        width: w,
        height: h,
        layout: PixelLayout::Yuv420p8,
        y: Samples::U8(y),
        u: Samples::U8(vec![128; c]),
        v: Samples::U8(vec![128; c]),
    }
}

#[test]
fn fragments_arrive_while_encoding_on_the_given_timeline() {
    let (w, h, fps, per) = (160usize, 96usize, 25i32, 25u64);
    let cfg = EncoderConfig {
        codec: Codec::H264,
        width: w,
        height: h,
        layout: PixelLayout::Yuv420p8,
        frame_rate: Rational { num: fps, den: 1 },
        crf: 30,
        preset: "veryfast".into(),
        max_segment_frames: per as u32,
        threads: 1,
        max_kbps: None,
        part_frames: None,
        colour: Default::default(),
        hdr: Default::default(),
    };
    let (reader, writer) = std::io::pipe().unwrap();
    let (tx, rx) = mpsc::channel();
    let reading = std::thread::spawn(move || {
        let mut r = FragmentReader::new(reader);
        while let Some(piece) = r.next_piece().unwrap() {
            tx.send(piece).unwrap();
        }
    });
    let mut enc = Encoder::create_streaming(&writer, &cfg).unwrap();
    // A channel that has been on air for 1000 positions: the timeline does not start at 0.
    let first = 1000 * per;
    let mut seen_before_end = 0;
    for i in 0..5 * per {
        enc.encode(&frame(i, w, h), (first + i) as i64, i % per == 0)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        while let Ok(Piece::Fragment(_)) = rx.try_recv() {
            seen_before_end += 1;
        }
    }
    // Fragments of the first positions came out before the encoder was flushed.
    assert!(
        seen_before_end >= 2,
        "{seen_before_end} fragments before the end"
    );
    enc.finish().unwrap();
    drop(writer);
    reading.join().unwrap();
    let rest: Vec<Piece> = rx.try_iter().collect();
    let frags = rest
        .iter()
        .filter(|p| matches!(p, Piece::Fragment(_)))
        .count();
    assert_eq!(seen_before_end + frags, 5, "one fragment per position");
}

#[test]
fn fragment_times_follow_the_frame_counter() {
    let (w, h, fps, per) = (160usize, 96usize, 30i32, 60u64);
    let cfg = EncoderConfig {
        codec: Codec::H264,
        width: w,
        height: h,
        layout: PixelLayout::Yuv420p8,
        frame_rate: Rational { num: fps, den: 1 },
        crf: 30,
        preset: "veryfast".into(),
        max_segment_frames: per as u32,
        threads: 0,
        max_kbps: None,
        part_frames: None,
        colour: Default::default(),
        hdr: Default::default(),
    };
    let (reader, writer) = std::io::pipe().unwrap();
    let reading = std::thread::spawn(move || {
        let mut r = FragmentReader::new(reader);
        let mut out = Vec::new();
        while let Some(piece) = r.next_piece().unwrap() {
            out.push(piece);
        }
        out
    });
    let mut enc = Encoder::create_streaming(&writer, &cfg).unwrap();
    let first = 7 * per;
    for i in 0..3 * per {
        enc.encode(&frame(i, w, h), (first + i) as i64, i % per == 0)
            .unwrap();
    }
    enc.finish().unwrap();
    drop(writer);
    let pieces = reading.join().unwrap();
    assert!(matches!(pieces.first(), Some(Piece::Init(_))));
    let tick = u64::from(TRACK_TIMESCALE) / fps as u64;
    let frags: Vec<_> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Fragment(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frags.len(), 3);
    for (k, f) in frags.iter().enumerate() {
        assert!(f.starts_with_sync);
        assert_eq!(f.samples as u64, per);
        assert_eq!(f.duration, per * tick);
        let mut moved = (*f).clone();
        let t = (first + k as u64 * per) * tick;
        moved.set_decode_time(t).unwrap();
        let again =
            leaktrace_media::cmaf::split(&[init_bytes(&pieces), moved.bytes.clone()].concat())
                .unwrap();
        assert_eq!(again.fragments[0].decode_time, t);
        assert_eq!(again.fragments[0].bytes.len(), f.bytes.len());
    }
}

fn init_bytes(pieces: &[Piece]) -> Vec<u8> {
    match pieces.first() {
        Some(Piece::Init(i)) => i.bytes.clone(),
        _ => panic!("no init"),
    }
}

/// Low-latency parts: a fragment every `k` frames after each keyframe, the last part of a
/// segment shorter when the segment is not a multiple of `k`; only each segment's first part
/// starts with a keyframe, and the parts follow each other on the timeline.
#[test]
fn parts_are_cut_every_k_frames_after_each_keyframe() {
    for (fps, segments, k) in [
        (Rational { num: 30, den: 1 }, vec![60u64, 60, 45], 15u32),
        (
            Rational {
                num: 30000,
                den: 1001,
            },
            vec![60, 59, 60],
            16,
        ),
    ] {
        let (w, h) = (160usize, 96usize);
        let cfg = EncoderConfig {
            codec: Codec::H264,
            width: w,
            height: h,
            layout: PixelLayout::Yuv420p8,
            frame_rate: fps,
            crf: 30,
            preset: "veryfast".into(),
            max_segment_frames: 60,
            threads: 0,
            max_kbps: None,
            part_frames: Some(k),
            colour: Default::default(),
            hdr: Default::default(),
        };
        let (reader, writer) = std::io::pipe().unwrap();
        let reading = std::thread::spawn(move || {
            let mut r = FragmentReader::new(reader);
            let mut out = Vec::new();
            while let Some(piece) = r.next_piece().unwrap() {
                out.push(piece);
            }
            out
        });
        let mut enc = Encoder::create_streaming(&writer, &cfg).unwrap();
        let mut i = 0u64;
        for &n in &segments {
            for j in 0..n {
                enc.encode(&frame(i, w, h), i as i64, j == 0).unwrap();
                i += 1;
            }
        }
        enc.finish().unwrap();
        drop(writer);
        let pieces = reading.join().unwrap();
        let frags: Vec<_> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Fragment(f) => Some(f),
                _ => None,
            })
            .collect();
        let mut expected = Vec::new();
        for &n in &segments {
            let mut left = n;
            let mut first = true;
            while left > 0 {
                let take = left.min(u64::from(k));
                expected.push((take, first));
                first = false;
                left -= take;
            }
        }
        let got: Vec<(u64, bool)> = frags
            .iter()
            .map(|f| (u64::from(f.samples), f.starts_with_sync))
            .collect();
        assert_eq!(got, expected, "{fps:?}");
        for pair in frags.windows(2) {
            assert_eq!(pair[0].decode_time + pair[0].duration, pair[1].decode_time);
        }
    }
}
