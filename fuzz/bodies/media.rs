// Fuzz body of leaktrace-media: the CMAF splitter (ISO-BMFF box reading of a fragmented MP4).
//
// `include!`d by fuzz/fuzz_targets/cmaf_split.rs and by crates/media/tests/fuzz_corpus.rs (the
// stable replay of the corpus). Must not panic on any input; the assertions are properties of
// every file the splitter accepts.

use leaktrace_media::cmaf::{boxes, media_segment, split, styp};

/// `cmaf::boxes` over the whole input, then `cmaf::split`; an accepted file yields an init
/// segment and fragments that are well-formed boxes, media segments (`styp`, a `wmpi`-sized
/// extra box, the fragment) that parse back, and, when every top-level box has a plain 32-bit
/// size, a reassembled file (init + fragments) that splits to the same track.
pub fn cmaf_split(data: &[u8]) {
    let mut plain_sizes = false;
    if let Ok(top) = boxes(data, 0, data.len()) {
        let mut at = 0;
        for b in &top {
            assert_eq!(b.start, at, "boxes leave a gap");
            assert!(b.start < b.payload && b.payload <= b.end && b.end <= data.len());
            at = b.end;
        }
        assert_eq!(at, data.len(), "boxes do not cover the input");
        plain_sizes = top
            .iter()
            .all(|b| b.payload - b.start == 8 && data[b.start..b.start + 4] != [0, 0, 0, 0]);
    }
    let Ok(track) = split(data) else {
        return;
    };
    assert!(track.timescale > 0);
    assert!(!track.fragments.is_empty());
    assert!(!track.codec.is_empty() && track.codec.is_ascii());
    let init = match boxes(&track.init, 0, track.init.len()) {
        Ok(b) => b,
        Err(e) => panic!("init segment is not a box sequence: {e}"),
    };
    assert_eq!(&init[0].kind, b"ftyp");
    let wmpi = [0, 0, 0, 13, b'w', b'm', b'p', b'i', 1, 0, 0x80, 0, 0xe0];
    for f in &track.fragments {
        assert_eq!(f.bytes.get(4..8), Some(&b"moof"[..]));
        let seg = media_segment(f, &[&wmpi]);
        assert_eq!(seg.len(), styp().len() + wmpi.len() + f.bytes.len());
        let kinds: Vec<[u8; 4]> = match boxes(&seg, 0, seg.len()) {
            Ok(b) => b.iter().map(|b| b.kind).collect(),
            Err(e) => panic!("media segment is not a box sequence: {e}"),
        };
        assert_eq!(&kinds[..3], &[*b"styp", *b"wmpi", *b"moof"]);
    }
    if plain_sizes {
        let mut again = track.init.clone();
        for f in &track.fragments {
            again.extend_from_slice(&f.bytes);
        }
        match split(&again) {
            Ok(t) => assert_eq!(t, track),
            Err(e) => panic!("reassembled init + fragments do not split again: {e}"),
        }
    }
}
