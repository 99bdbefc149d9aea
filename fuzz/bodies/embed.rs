// Fuzz bodies of leaktrace-embed: the subtitle parser (SubRip and WebVTT files given to the
// packager) and the key file and `--pssh` readers of Common Encryption.
//
// `include!`d by fuzz/fuzz_targets/subtitles.rs and by crates/embed/tests/fuzz_corpus.rs (the
// stable replay of the corpus). Must not panic on any input; the assertions are properties of
// every file the parser accepts.

use leaktrace_embed::drm::{KeyFile, parse_pssh};
use leaktrace_embed::subtitles::{SubtitleFormat, SubtitleLimits, parse, segments, webvtt};

/// A key file, then (after the first NUL byte) a `--pssh` value. An accepted key file has a
/// video key and, when it has an audio key, another key ID; an accepted `--pssh` value makes a
/// `pssh` box whose size field is its length.
pub fn key_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, pssh) = text.split_once('\0').unwrap_or((&text, ""));
    if let Ok(keys) = KeyFile::parse(file)
        && let Some(audio) = &keys.audio
    {
        assert_ne!(audio.kid, keys.video.kid, "a key ID used twice was accepted");
    }
    if let Ok(p) = parse_pssh(pssh) {
        let b = p.to_box();
        assert_eq!(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize, b.len());
        assert_eq!(&b[4..8], b"pssh");
    }
}

/// Byte 0 bit 0 picks the format (SubRip, WebVTT); the rest is the file (lossy UTF-8). Accepted
/// cues are sorted, end after they start and hold no `-->`; the WebVTT written from them parses
/// back to the same cues, and so does every per-position segment (each holding exactly the cues
/// that overlap it).
pub fn subtitles(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 0 {
        SubtitleFormat::SubRip
    } else {
        SubtitleFormat::WebVtt
    };
    let text = String::from_utf8_lossy(rest);
    let limits = SubtitleLimits {
        max_bytes: 1 << 20,
        max_cues: 4096,
        max_cue_bytes: 4096,
    };
    let Ok(cues) = parse(&text, format, &limits) else {
        return;
    };
    for w in cues.windows(2) {
        assert!((w[0].start_ms, w[0].end_ms) <= (w[1].start_ms, w[1].end_ms), "not sorted");
    }
    for c in &cues {
        assert!(c.end_ms > c.start_ms, "a cue ends before it starts");
        assert!(!c.text.contains("-->"), "cue text holds -->");
    }
    let doc = webvtt(&cues);
    match parse(&doc, SubtitleFormat::WebVtt, &SubtitleLimits::default()) {
        Ok(back) => assert_eq!(back, cues, "the WebVTT output does not parse back:\n{doc}"),
        Err(e) => panic!("the WebVTT output does not parse: {e}\n{doc}"),
    }
    let end = cues.iter().map(|c| c.end_ms).max().unwrap_or(0);
    let step = (end / 4).max(1);
    let bounds: Vec<(u64, u64)> = (0..5).map(|k| (k * step, (k + 1) * step)).collect();
    for (seg, &(s, e)) in segments(&cues, &bounds).iter().zip(&bounds) {
        let Ok(back) = parse(seg, SubtitleFormat::WebVtt, &SubtitleLimits::default()) else {
            panic!("a segment does not parse:\n{seg}");
        };
        let want: Vec<_> = cues
            .iter()
            .filter(|c| c.start_ms < e && c.end_ms > s)
            .cloned()
            .collect();
        assert_eq!(back, want, "segment [{s}, {e})");
    }
}
