// Fuzz bodies of leaktrace-media: the CMAF splitter (ISO-BMFF box reading of a fragmented MP4)
// and Common Encryption of HEVC tracks (the `hvcC` record, parameter sets and slice segment
// headers, and the protector).
//
// `include!`d by fuzz/fuzz_targets/cmaf_split.rs, fuzz/fuzz_targets/cenc_hevc.rs and by
// crates/media/tests/fuzz_corpus.rs (the stable replay of the corpus). Must not panic on any
// input; the assertions are properties of every input accepted.

use leaktrace_media::cenc::{ContentKey, HevcConfig, Protection, Scheme};
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

/// Common Encryption of HEVC. Byte 0 bit 0 clear: the rest is a u16 big-endian `hvcC` size, the
/// `hvcC` payload (`HevcConfig::parse`), then samples, each a u16 big-endian size and its bytes
/// (a short last one takes what is left), cut into NAL units by the record's length size
/// (`nal_units`) and read unit by unit (`clear_bytes`, which also takes in-band parameter
/// sets). Byte 0 bit 0 set: the rest is a fragmented MP4 whose track is protected
/// (`Protection::init`, then `Protector::protect` on every fragment) with `cbcs` when bit 1 is
/// set, else `cenc`.
pub fn cenc_hevc(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        hevc_units(rest);
    } else {
        protect_track(rest, mode & 2 != 0);
    }
}

fn be16(data: &[u8]) -> Option<usize> {
    data.get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
}

/// NAL units tile each sample exactly; a clear size lies between the NAL header (2 bytes) and
/// the unit's end; reading a unit again from the same state gives the same answer.
fn hevc_units(data: &[u8]) {
    let Some(len) = be16(data) else {
        return;
    };
    let Some(record) = data.get(2..2 + len) else {
        return;
    };
    let Ok(mut cfg) = HevcConfig::parse(record) else {
        return;
    };
    assert!(matches!(cfg.length_size, 1 | 2 | 4));
    let mut rest = &data[2 + len..];
    while !rest.is_empty() {
        let n = be16(rest).unwrap_or(0);
        let body = rest.get(2..).unwrap_or(&[]);
        let (sample, tail) = body.split_at(n.min(body.len()));
        rest = tail;
        let Ok(units) = cfg.nal_units(sample) else {
            continue;
        };
        let mut at = 0;
        for &(start, total) in &units {
            assert_eq!(start, at, "NAL units leave a gap");
            assert!(total > cfg.length_size, "an empty NAL unit");
            at += total;
        }
        assert_eq!(at, sample.len(), "NAL units do not cover the sample");
        for (start, total) in units {
            let nal = &sample[start + cfg.length_size..start + total];
            let mut again = cfg.clone();
            let got = cfg.clear_bytes(nal);
            if let Ok(clear) = &got {
                assert!(
                    (2..=nal.len()).contains(clear),
                    "clear {clear} of {}",
                    nal.len()
                );
            }
            assert_eq!(
                again.clear_bytes(nal).ok(),
                got.ok(),
                "the same unit read twice"
            );
        }
    }
}

/// A protected init segment is a box sequence starting `ftyp`; a protected fragment has the
/// same samples, is not shorter, and is a box sequence starting `moof`.
fn protect_track(data: &[u8], cbcs: bool) {
    let Ok(track) = split(data) else {
        return;
    };
    let protection = Protection {
        scheme: if cbcs { Scheme::Cbcs } else { Scheme::Cenc },
        key: ContentKey {
            kid: [0x11; 16],
            key: [0x22; 16],
        },
        pssh: Vec::new(),
        constant_iv: [0x33; 16],
    };
    let Ok((init, mut protector)) = protection.init(&track.init) else {
        return;
    };
    match boxes(&init, 0, init.len()) {
        Ok(b) => assert_eq!(&b[0].kind, b"ftyp"),
        Err(e) => panic!("protected init segment is not a box sequence: {e}"),
    }
    for f in &track.fragments {
        let Ok(enc) = protector.protect(f) else {
            continue;
        };
        assert_eq!(enc.samples, f.samples);
        assert!(enc.bytes.len() >= f.bytes.len());
        match boxes(&enc.bytes, 0, enc.bytes.len()) {
            Ok(b) => assert_eq!(&b[0].kind, b"moof"),
            Err(e) => panic!("protected fragment is not a box sequence: {e}"),
        }
    }
}
