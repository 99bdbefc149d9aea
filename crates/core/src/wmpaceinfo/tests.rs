//! Unit tests of the WMPaceInfo codecs: the spec's examples and hand-written golden bytes,
//! round trips through every form, and every rejection.

use base64::Engine as _;

use super::sidecar::B64URL;
use super::*;

const POSITIONS: [Option<u16>; 4] = [Some(0), Some(1), Some(MAX_POSITION), None];

// ---------------------------------------------------------------- wmpi box

#[test]
fn wmpi_box_golden_bytes_written_by_hand() {
    // version 1, variant 1 (B), position 33 = 0b000_0000_0010_0001,
    // firstpart 1, lastpart 0, reserved 0.
    let info = PaceInfo::new(1, Some(33), true, false);
    let expected = [
        0x00, 0x00, 0x00, 0x0D, // size 13
        b'w', b'm', b'p', b'i', // type
        0x01, // version
        0x01, // variant
        0x80, // emulation_1 = 1, position bits 14..8 = 0
        0x21, // position bits 7..0 = 33
        0xC0, // emulation_2 = 1, firstpart = 1, lastpart = 0, reserved = 0
    ];
    assert_eq!(info.to_wmpi_box().unwrap(), expected);
    assert_eq!(PaceInfo::from_wmpi_box(&expected).unwrap(), info);
}

#[test]
fn wmpi_box_golden_not_watermarked_and_high_position() {
    // position -1 -> 15-bit 0x7FFF; variant 0; firstpart and lastpart set.
    let none = PaceInfo::new(0, None, true, true);
    assert_eq!(
        none.to_wmpi_payload().unwrap(),
        [0x01, 0x00, 0xFF, 0xFF, 0xE0]
    );
    // position 0x1234: the high 7 bits share a byte with emulation_1.
    let mid = PaceInfo::new(0, Some(0x1234), false, true);
    assert_eq!(
        mid.to_wmpi_payload().unwrap(),
        [0x01, 0x00, 0x92, 0x34, 0xA0]
    );
    let top = PaceInfo::new(255, Some(MAX_IN_BAND_POSITION), false, false);
    assert_eq!(
        top.to_wmpi_payload().unwrap(),
        [0x01, 0xFF, 0xFF, 0xFE, 0x80]
    );
}

#[test]
fn wmpi_box_round_trips_every_in_band_position() {
    let mut positions: Vec<Option<u16>> = (0..=MAX_IN_BAND_POSITION).map(Some).collect();
    positions.push(None);
    for position in positions {
        for (first, last) in [(false, false), (true, false), (false, true), (true, true)] {
            for variant in [0, 1, 255] {
                let info = PaceInfo::new(variant, position, first, last);
                let bytes = info.to_wmpi_box().unwrap();
                assert_eq!(PaceInfo::from_wmpi_box(&bytes).unwrap(), info);
            }
        }
    }
}

#[test]
fn wmpi_box_positions_0_1_none_round_trip_and_32767_is_refused() {
    for position in [Some(0), Some(1), None] {
        let info = PaceInfo::new(0, position, true, true);
        let bytes = info.to_wmpi_box().unwrap();
        assert_eq!(PaceInfo::from_wmpi_box(&bytes).unwrap(), info);
    }
    let err = PaceInfo::new(0, Some(MAX_POSITION), true, true)
        .to_wmpi_box()
        .unwrap_err();
    assert_eq!(err, WmPaceInfoError::PositionNotInBandEncodable);
    assert!(err.to_string().contains("0..=32766"));
    for p in [32768, u16::MAX] {
        let err = PaceInfo::new(0, Some(p), true, true)
            .to_wmpi_box()
            .unwrap_err();
        assert_eq!(
            err,
            WmPaceInfoError::PositionOutOfRange { position: p.into() }
        );
        assert!(
            err.to_string()
                .contains("-1 (not watermarked) and 0..=32767")
        );
    }
}

#[test]
fn wmpi_box_rejects_bad_type_size_and_length() {
    let good = PaceInfo::new(0, Some(5), true, true).to_wmpi_box().unwrap();

    let mut bad_type = good;
    bad_type[4..8].copy_from_slice(b"free");
    assert_eq!(
        PaceInfo::from_wmpi_box(&bad_type).unwrap_err(),
        WmPaceInfoError::BoxType {
            found: "free".into()
        }
    );

    for size in [0u32, 8, 12, 14, 21, u32::MAX] {
        let mut bad = good;
        bad[..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(
            PaceInfo::from_wmpi_box(&bad).unwrap_err(),
            WmPaceInfoError::BoxSize { size: size.into() },
            "size {size}"
        );
    }

    for len in 0..WMPI_BOX_LEN {
        assert!(
            matches!(
                PaceInfo::from_wmpi_box(&good[..len]),
                Err(WmPaceInfoError::BoxLength { .. })
            ),
            "truncated to {len}"
        );
    }

    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(
        PaceInfo::from_wmpi_box(&long).unwrap_err(),
        WmPaceInfoError::BoxLength {
            expected: 13,
            actual: 14
        }
    );
}

#[test]
fn wmpi_box_accepts_largesize_form() {
    let info = PaceInfo::new(1, Some(700), false, true);
    let payload = info.to_wmpi_payload().unwrap();
    let mut large = Vec::new();
    large.extend_from_slice(&1u32.to_be_bytes());
    large.extend_from_slice(b"wmpi");
    large.extend_from_slice(&21u64.to_be_bytes());
    large.extend_from_slice(&payload);
    assert_eq!(PaceInfo::from_wmpi_box(&large).unwrap(), info);

    large[8..16].copy_from_slice(&22u64.to_be_bytes());
    assert_eq!(
        PaceInfo::from_wmpi_box(&large).unwrap_err(),
        WmPaceInfoError::BoxSize { size: 22 }
    );
    assert!(matches!(
        PaceInfo::from_wmpi_box(&large[..12]),
        Err(WmPaceInfoError::BoxLength { .. })
    ));
}

#[test]
fn wmpi_payload_rejects_emulation_version_overwrite_and_length() {
    let good = PaceInfo::new(0, Some(9), false, false)
        .to_wmpi_payload()
        .unwrap();

    let mut e1 = good;
    e1[2] &= 0x7F;
    assert_eq!(
        PaceInfo::from_wmpi_payload(&e1).unwrap_err(),
        WmPaceInfoError::EmulationBits {
            emulation_1: false,
            emulation_2: true
        }
    );
    let mut e2 = good;
    e2[4] &= 0x7F;
    assert_eq!(
        PaceInfo::from_wmpi_payload(&e2).unwrap_err(),
        WmPaceInfoError::EmulationBits {
            emulation_1: true,
            emulation_2: false
        }
    );

    for version in [0u8, 2, 254] {
        let mut v = good;
        v[0] = version;
        assert_eq!(
            PaceInfo::from_wmpi_payload(&v).unwrap_err(),
            WmPaceInfoError::UnsupportedVersion {
                version: version.into()
            }
        );
    }

    assert_eq!(
        PaceInfo::from_wmpi_payload(&[0xFF; 5]).unwrap_err(),
        WmPaceInfoError::Overwritten
    );
    let mut overwritten_box = [0xFFu8; WMPI_BOX_LEN];
    overwritten_box[..8].copy_from_slice(&[0, 0, 0, 13, b'w', b'm', b'p', b'i']);
    assert_eq!(
        PaceInfo::from_wmpi_box(&overwritten_box).unwrap_err(),
        WmPaceInfoError::Overwritten
    );

    for len in [0usize, 4, 6] {
        assert_eq!(
            PaceInfo::from_wmpi_payload(&vec![0x80; len]).unwrap_err(),
            WmPaceInfoError::PayloadLength { actual: len }
        );
    }

    let bad_version = PaceInfo {
        version: 2,
        ..PaceInfo::new(0, Some(1), false, false)
    };
    assert!(matches!(
        bad_version.to_wmpi_box(),
        Err(WmPaceInfoError::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn wmpi_payload_ignores_reserved_bits() {
    let mut bytes = PaceInfo::new(1, Some(42), true, false)
        .to_wmpi_payload()
        .unwrap();
    bytes[4] |= 0x1F;
    assert_eq!(
        PaceInfo::from_wmpi_payload(&bytes).unwrap(),
        PaceInfo::new(1, Some(42), true, false)
    );
}

// ------------------------------------------------------------ sidecar CBOR

#[test]
fn discrete_one_segment_sidecar_exact_deterministic_bytes() {
    let cases: [(Option<u16>, &[u8]); 5] = [
        // {1: 1, 2: [{6: 33}]}
        (
            Some(33),
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x18, 0x21],
        ),
        (Some(0), &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00]),
        (Some(1), &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x01]),
        (
            Some(32767),
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0x7F, 0xFF],
        ),
        // -1 is major type 1, argument 0.
        (None, &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x20]),
    ];
    for (position, bytes) in cases {
        let sidecar = Sidecar::for_discrete_segment(position);
        assert_eq!(sidecar.to_cbor().unwrap(), bytes, "{position:?}");
        assert_eq!(Sidecar::from_cbor_strict(bytes).unwrap(), sidecar);
    }
}

#[test]
fn sidecar_round_trips_every_position() {
    let mut positions: Vec<Option<u16>> = (0..=MAX_POSITION).map(Some).collect();
    positions.push(None);
    for position in positions {
        let sidecar = Sidecar::for_discrete_segment(position);
        let bytes = sidecar.to_cbor().unwrap();
        assert_eq!(Sidecar::from_cbor_strict(&bytes).unwrap(), sidecar);
    }
}

#[test]
fn sidecar_spec_discrete_example_golden_bytes() {
    // TS 104 002 clause 5.5.3.2, regexes verbatim as printed.
    let regex_123 = "video_segment_ .*?_123.mp4";
    let regex_124 = "video_segment_ .*?_124.mp4";
    let sidecar = Sidecar {
        version: 1,
        file_size: None,
        segments: vec![
            SidecarSegment {
                segment_regex: Some(regex_123.into()),
                ..SidecarSegment::discrete(Some(21))
            },
            SidecarSegment {
                segment_regex: Some(regex_124.into()),
                ..SidecarSegment::discrete(Some(22))
            },
        ],
    };
    let mut expected = vec![0xA2, 0x01, 0x01, 0x02, 0x82];
    expected.extend_from_slice(&[0xA2, 0x05, 0x78, 26]);
    expected.extend_from_slice(regex_123.as_bytes());
    expected.extend_from_slice(&[0x06, 0x15]);
    expected.extend_from_slice(&[0xA2, 0x05, 0x78, 26]);
    expected.extend_from_slice(regex_124.as_bytes());
    expected.extend_from_slice(&[0x06, 0x16]);
    assert_eq!(sidecar.to_cbor().unwrap(), expected);
    assert_eq!(Sidecar::from_cbor_strict(&expected).unwrap(), sidecar);
}

/// The spec's byterange track: init 0..=1117 (-1) then the ranges of the
/// HLS example in clause 5.6.4.3 (`1700094@1118`, ... `1563219@7020425`).
fn hls_example_track() -> (Sidecar, Vec<u8>) {
    let sidecar = Sidecar::for_byterange_track(
        7_020_425 + 1_563_219,
        [
            (0, None),
            (1118, Some(0)),
            (1_701_212, Some(1)),
            (3_490_693, Some(2)),
            (5_268_281, Some(3)),
            (7_020_425, Some(4)),
        ],
    )
    .unwrap();
    let expected = vec![
        0xA3, // map(3)
        0x01, 0x01, // version: 1
        0x02, 0x86, // segments: array(6)
        0xA2, 0x04, 0x00, 0x06, 0x20, // {startRange: 0, position: -1}
        0xA2, 0x04, 0x19, 0x04, 0x5E, 0x06, 0x00, // {1118, 0}
        0xA2, 0x04, 0x1A, 0x00, 0x19, 0xF5, 0x5C, 0x06, 0x01, // {1701212, 1}
        0xA2, 0x04, 0x1A, 0x00, 0x35, 0x43, 0x85, 0x06, 0x02, // {3490693, 2}
        0xA2, 0x04, 0x1A, 0x00, 0x50, 0x63, 0x39, 0x06, 0x03, // {5268281, 3}
        0xA2, 0x04, 0x1A, 0x00, 0x6B, 0x1F, 0x89, 0x06, 0x04, // {7020425, 4}
        0x03, 0x1A, 0x00, 0x82, 0xF9, 0xDC, // fileSize: 8583644
    ];
    (sidecar, expected)
}

#[test]
fn sidecar_byterange_golden_bytes_and_lookup() {
    let (sidecar, expected) = hls_example_track();
    assert!(sidecar.is_byterange());
    assert_eq!(sidecar.to_cbor().unwrap(), expected);
    assert_eq!(Sidecar::from_cbor_strict(&expected).unwrap(), sidecar);

    assert_eq!(sidecar.position_at(0), Some(None));
    assert_eq!(sidecar.position_at(1117), Some(None));
    assert_eq!(sidecar.position_at(1118), Some(Some(0)));
    assert_eq!(sidecar.position_at(1_701_211), Some(Some(0)));
    assert_eq!(sidecar.position_at(1_701_212), Some(Some(1)));
    assert_eq!(sidecar.position_at(8_583_643), Some(Some(4)));
    assert_eq!(sidecar.position_at(8_583_644), None);
    assert_eq!(sidecar.position_at(u64::MAX), None);

    // The playlist's own ranges: 1789481@1701212 is all of position 1.
    assert_eq!(
        sidecar.position_for_byte_range(1_701_212, 1_701_212 + 1_789_481 - 1),
        Some(Some(1))
    );
    assert_eq!(sidecar.position_for_byte_range(0, 1117), Some(None));
    // A chunk inside a segment is fine; a range across two positions is not.
    assert_eq!(
        sidecar.position_for_byte_range(2_000_000, 2_000_999),
        Some(Some(1))
    );
    assert_eq!(sidecar.position_for_byte_range(1000, 2000), None);
    assert_eq!(sidecar.position_for_byte_range(1118, 3_490_693), None);
    assert_eq!(sidecar.position_for_byte_range(20, 10), None);
    assert_eq!(sidecar.position_for_byte_range(8_000_000, 8_583_644), None);

    // Neighbouring segments with the same position may be spanned.
    let same =
        Sidecar::for_byterange_track(300, [(0, Some(7)), (100, Some(7)), (200, Some(8))]).unwrap();
    assert_eq!(same.position_for_byte_range(50, 150), Some(Some(7)));
    assert_eq!(same.position_for_byte_range(50, 250), None);

    // A discrete sidecar answers no byte offset.
    let discrete = Sidecar::for_discrete_segment(Some(3));
    assert_eq!(discrete.position_at(0), None);
    assert_eq!(discrete.position_for_byte_range(0, 0), None);
}

#[test]
fn sidecar_spec_byterange_example_boundaries() {
    // TS 104 002 clause 5.5.3.2: the entries the spec prints (it elides
    // positions 2..=117).
    let sidecar = Sidecar::for_byterange_track(
        262_445_216,
        [
            (0, None),
            (1118, Some(0)),
            (1_701_212, Some(1)),
            (261_083_393, Some(118)),
            (262_073_936, Some(119)),
        ],
    )
    .unwrap();
    let bytes = sidecar.to_cbor().unwrap();
    assert_eq!(
        &bytes[bytes.len() - 6..],
        &[0x03, 0x1A, 0x0F, 0xA4, 0x98, 0xA0]
    );
    let back = Sidecar::from_cbor_strict(&bytes).unwrap();
    assert_eq!(back, sidecar);
    assert_eq!(back.position_at(1117), Some(None));
    assert_eq!(back.position_at(262_073_935), Some(Some(118)));
    assert_eq!(back.position_at(262_073_936), Some(Some(119)));
    assert_eq!(back.position_at(262_445_215), Some(Some(119)));
    assert_eq!(back.position_at(262_445_216), None);
}

#[test]
fn sidecar_rejects_every_truncation_and_trailing_bytes() {
    let (_, bytes) = hls_example_track();
    for len in 0..bytes.len() {
        assert!(
            Sidecar::from_cbor(&bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    let mut long = bytes.clone();
    long.push(0x00);
    assert_eq!(
        Sidecar::from_cbor(&long).unwrap_err(),
        WmPaceInfoError::CborTrailing { count: 1 }
    );
}

#[test]
fn sidecar_rejects_wrong_types() {
    let cases: [&[u8]; 9] = [
        // version as text "1"
        &[0xA2, 0x01, 0x61, b'1', 0x02, 0x81, 0xA1, 0x06, 0x00],
        // top level is an array
        &[0x82, 0x01, 0x01],
        // segments is a map
        &[0xA2, 0x01, 0x01, 0x02, 0xA1, 0x06, 0x00],
        // position as text
        &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x61, b'3'],
        // position as bool
        &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xF5],
        // firstpart as integer 1
        &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x07, 0x01],
        // segmentRegex as a byte string
        &[
            0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x41, b'x', 0x06, 0x00,
        ],
        // startRange negative
        &[
            0xA3, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x04, 0x20, 0x06, 0x00, 0x03, 0x0A,
        ],
        // text key
        &[0xA2, 0x61, b'v', 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00],
    ];
    for bytes in cases {
        let err = Sidecar::from_cbor(bytes).unwrap_err();
        assert!(
            matches!(err, WmPaceInfoError::CborType { .. }),
            "{bytes:02X?}: {err}"
        );
    }
}

#[test]
fn sidecar_rejects_out_of_range_positions() {
    let cases: [(&[u8], i128); 4] = [
        (
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0x80, 0x00],
            32768,
        ),
        (
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0xFF, 0xFF],
            65535,
        ),
        (&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x21], -2),
        (
            &[
                0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF,
            ],
            -18_446_744_073_709_551_616,
        ),
    ];
    for (bytes, position) in cases {
        let err = Sidecar::from_cbor(bytes).unwrap_err();
        assert_eq!(err, WmPaceInfoError::PositionOutOfRange { position });
        assert!(err.to_string().contains("valid positions are -1"));
    }
    let invalid = Sidecar::for_discrete_segment(Some(32768));
    assert!(matches!(
        invalid.to_cbor(),
        Err(WmPaceInfoError::PositionOutOfRange { position: 32768 })
    ));
}

#[test]
fn sidecar_rejects_bad_keys_and_counts() {
    // unknown top-level key 9
    assert!(matches!(
        Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0x09, 0x00]),
        Err(WmPaceInfoError::UnknownKey { key: 9, .. })
    ));
    // unknown segment key 1
    assert!(matches!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x01, 0x00]),
        Err(WmPaceInfoError::UnknownKey { key: 1, .. })
    ));
    // duplicate position
    assert_eq!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x06, 0x01])
            .unwrap_err(),
        WmPaceInfoError::DuplicateKey {
            key: 6,
            map: "segment"
        }
    );
    // duplicate version
    assert!(matches!(
        Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00]),
        Err(WmPaceInfoError::DuplicateKey { key: 1, .. })
    ));
    // missing position
    assert!(matches!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x07, 0xF5]),
        Err(WmPaceInfoError::MissingKey { key: 6, .. })
    ));
    // missing version, missing segments
    assert!(matches!(
        Sidecar::from_cbor(&[0xA1, 0x02, 0x81, 0xA1, 0x06, 0x00]),
        Err(WmPaceInfoError::MissingKey { key: 1, .. })
    ));
    assert!(matches!(
        Sidecar::from_cbor(&[0xA1, 0x01, 0x01]),
        Err(WmPaceInfoError::MissingKey { key: 2, .. })
    ));
    // empty segments
    assert_eq!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x80]).unwrap_err(),
        WmPaceInfoError::NoSegments
    );
    // version 2
    assert_eq!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x02, 0x02, 0x81, 0xA1, 0x06, 0x00]).unwrap_err(),
        WmPaceInfoError::UnsupportedVersion { version: 2 }
    );
}

#[test]
fn sidecar_segment_count_is_capped_without_allocating() {
    // Declares 1 000 001 segments: refused by count, before reading any.
    let err =
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x9A, 0x00, 0x0F, 0x42, 0x41]).unwrap_err();
    assert_eq!(err, WmPaceInfoError::TooManySegments { count: 1_000_001 });
    assert!(err.to_string().contains("at most 1000000"));
    // Declares u64::MAX segments.
    assert!(matches!(
        Sidecar::from_cbor(&[
            0xA2, 0x01, 0x01, 0x02, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
        ]),
        Err(WmPaceInfoError::TooManySegments { .. })
    ));
    // Declares exactly 1 000 000 but carries none: truncated, no big Vec.
    assert!(matches!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x9A, 0x00, 0x0F, 0x42, 0x40]),
        Err(WmPaceInfoError::CborTruncated { .. })
    ));
    // A huge declared map or text length is refused as truncated too.
    assert!(matches!(
        Sidecar::from_cbor(&[0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        Err(WmPaceInfoError::CborTruncated { .. })
    ));
    assert!(matches!(
        Sidecar::from_cbor(&[
            0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0x06, 0x00
        ]),
        Err(WmPaceInfoError::CborTruncated { .. })
    ));
    // validate() applies the same cap to hand-built sidecars.
    let big = Sidecar {
        version: 1,
        file_size: None,
        segments: vec![SidecarSegment::discrete(None); MAX_SIDECAR_SEGMENTS + 1],
    };
    assert!(matches!(
        big.validate(),
        Err(WmPaceInfoError::TooManySegments { .. })
    ));
}

#[test]
fn sidecar_rejects_forbidden_cbor_constructs() {
    let cases: [&[u8]; 5] = [
        // indefinite-length array
        &[0xA2, 0x01, 0x01, 0x02, 0x9F, 0xA1, 0x06, 0x00, 0xFF],
        // indefinite-length map
        &[0xBF, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0xFF],
        // reserved additional information 28
        &[0xA2, 0x01, 0x1C, 0x02, 0x81, 0xA1, 0x06, 0x00],
        // invalid UTF-8 in segmentRegex
        &[
            0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x61, 0xFF, 0x06, 0x00,
        ],
        // lone break
        &[0xFF],
    ];
    for bytes in cases {
        assert!(
            matches!(
                Sidecar::from_cbor(bytes),
                Err(WmPaceInfoError::CborMalformed { .. })
            ),
            "{bytes:02X?}"
        );
    }
    // a tag (1: epoch time) around the position, and a float position
    assert!(matches!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xC1, 0x00]),
        Err(WmPaceInfoError::CborType { .. })
    ));
    assert!(matches!(
        Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xF9, 0x3C, 0x00]),
        Err(WmPaceInfoError::CborType { .. })
    ));
}

#[test]
fn sidecar_shape_rules() {
    let invalid = |s: Sidecar| {
        let err = s.validate().unwrap_err();
        assert!(s.to_cbor().is_err());
        err
    };
    // byterange segment without startRange
    let e = invalid(Sidecar {
        version: 1,
        file_size: Some(100),
        segments: vec![SidecarSegment::discrete(None)],
    });
    assert!(matches!(e, WmPaceInfoError::MissingKey { key: 4, .. }));
    // startRange without fileSize
    let e = invalid(Sidecar {
        version: 1,
        file_size: None,
        segments: vec![SidecarSegment::byterange(0, None)],
    });
    assert!(matches!(e, WmPaceInfoError::InvalidSidecar { .. }));
    // not increasing, equal, beyond fileSize
    for ranges in [
        vec![(0, None), (50, Some(1)), (40, Some(2))],
        vec![(0, None), (50, Some(1)), (50, Some(2))],
        vec![(0, None), (100, Some(1))],
    ] {
        assert!(matches!(
            Sidecar::for_byterange_track(100, ranges),
            Err(WmPaceInfoError::InvalidSidecar { .. })
        ));
    }
    // firstpart in a byterange segment
    let e = invalid(Sidecar {
        version: 1,
        file_size: Some(100),
        segments: vec![SidecarSegment {
            first_part: Some(true),
            ..SidecarSegment::byterange(0, Some(1))
        }],
    });
    assert!(matches!(e, WmPaceInfoError::InvalidSidecar { .. }));
    // version 0, no segments
    let e = invalid(Sidecar {
        version: 0,
        ..Sidecar::for_discrete_segment(None)
    });
    assert!(matches!(
        e,
        WmPaceInfoError::UnsupportedVersion { version: 0 }
    ));
    let e = invalid(Sidecar {
        version: 1,
        file_size: None,
        segments: Vec::new(),
    });
    assert_eq!(e, WmPaceInfoError::NoSegments);
    // The same shape errors come out of from_cbor: {1:1, 2:[{6:0}], 3:10}
    assert!(matches!(
        Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0x03, 0x0A]),
        Err(WmPaceInfoError::MissingKey { key: 4, .. })
    ));
}

#[test]
fn sidecar_lenient_decode_and_strict_decode() {
    let deterministic = Sidecar::for_discrete_segment(Some(5)).to_cbor().unwrap();
    // Keys out of order: {2: [{6: 5}], 1: 1}
    let reordered = [0xA2, 0x02, 0x81, 0xA1, 0x06, 0x05, 0x01, 0x01];
    // Non-shortest integer: position 5 as 0x18 0x05
    let wide = [0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x18, 0x05];
    for bytes in [&reordered[..], &wide[..]] {
        let lenient = Sidecar::from_cbor(bytes).unwrap();
        assert_eq!(lenient.to_cbor().unwrap(), deterministic);
        assert_eq!(
            Sidecar::from_cbor_strict(bytes).unwrap_err(),
            WmPaceInfoError::NotDeterministic
        );
    }
}

#[test]
fn sidecar_discrete_with_all_optional_fields_round_trips() {
    let sidecar = Sidecar {
        version: 1,
        file_size: None,
        segments: vec![
            SidecarSegment {
                segment_regex: Some("seg_.*_7\\.m4s".into()),
                first_part: Some(true),
                last_part: Some(false),
                ..SidecarSegment::discrete(Some(300))
            },
            SidecarSegment {
                last_part: Some(true),
                ..SidecarSegment::discrete(None)
            },
        ],
    };
    let bytes = sidecar.to_cbor().unwrap();
    // Segment 2 is {6: -1, 8: true}: keys in ascending order.
    assert_eq!(&bytes[bytes.len() - 5..], &[0xA2, 0x06, 0x20, 0x08, 0xF5]);
    assert_eq!(Sidecar::from_cbor_strict(&bytes).unwrap(), sidecar);
}

// ----------------------------------------------------------- egress header

#[test]
fn egress_header_golden_and_round_trip() {
    // base64url of A2 01 01 02 81 A1 06 18 21, computed independently.
    let header = Sidecar::for_discrete_segment(Some(33))
        .to_egress_header()
        .unwrap();
    assert_eq!(header, "ogEBAoGhBhgh");
    assert_eq!(
        Sidecar::for_discrete_segment(None)
            .to_egress_header()
            .unwrap(),
        "ogEBAoGhBiA"
    );
    for position in POSITIONS {
        let sidecar = Sidecar::for_discrete_segment(position);
        let header = sidecar.to_egress_header().unwrap();
        assert!(!header.contains('='));
        assert_eq!(Sidecar::from_egress_header(&header).unwrap(), sidecar);
    }
    // Padding and surrounding whitespace are tolerated on read.
    assert_eq!(
        Sidecar::from_egress_header(" ogEBAoGhBiA= ").unwrap(),
        Sidecar::for_discrete_segment(None)
    );
}

#[test]
fn egress_header_drops_ingest_only_fields() {
    let ingest = Sidecar {
        version: 1,
        file_size: None,
        segments: vec![SidecarSegment {
            segment_regex: Some("x".into()),
            first_part: Some(true),
            last_part: Some(true),
            ..SidecarSegment::discrete(Some(33))
        }],
    };
    assert_eq!(ingest.to_egress_header().unwrap(), "ogEBAoGhBhgh");
}

#[test]
fn egress_header_rejections() {
    let (track, _) = hls_example_track();
    assert!(matches!(
        track.to_egress_header(),
        Err(WmPaceInfoError::NotSingleDiscrete { .. })
    ));
    let two = Sidecar {
        version: 1,
        file_size: None,
        segments: vec![SidecarSegment::discrete(Some(1)); 2],
    };
    assert!(matches!(
        two.to_egress_header(),
        Err(WmPaceInfoError::NotSingleDiscrete { .. })
    ));
    let two_header = B64URL.encode(two.to_cbor().unwrap());
    assert!(matches!(
        Sidecar::from_egress_header(&two_header),
        Err(WmPaceInfoError::NotSingleDiscrete { .. })
    ));
    // standard-alphabet characters, bad length, non-canonical last char
    for bad in ["og+BAoGhBiA", "o", "ogEBAoGhBiB", "ogEB AoGhBiA"] {
        assert!(
            matches!(
                Sidecar::from_egress_header(bad),
                Err(WmPaceInfoError::Base64 { .. })
            ),
            "{bad}"
        );
    }
    // valid base64url, truncated CBOR
    assert!(matches!(
        Sidecar::from_egress_header("ogEBAoGhBg"),
        Err(WmPaceInfoError::CborTruncated { .. })
    ));
    let long = "A".repeat(MAX_EGRESS_HEADER_LEN + 1);
    assert!(matches!(
        Sidecar::from_egress_header(&long),
        Err(WmPaceInfoError::HeaderTooLong { .. })
    ));
}

// ------------------------------------------------------------ ingest JSON

#[test]
fn ingest_json_spec_and_aws_examples() {
    // TS 104 002 clause 5.5.3.3, as printed.
    let spec = "{\n\"version\": 1,\n\"variant\": 0,\n\"position\": 33,\n\"firstpart\": true,\n\"lastpart\": true\n}";
    assert_eq!(
        PaceInfo::from_ingest_json(spec).unwrap(),
        PaceInfo::new(0, Some(33), true, true)
    );
    // AWS Elemental MediaPackage's example, byte for byte.
    let aws = r#"{"version":1,"variant":0,"position":1024,"firstpart":true,"lastpart":false}"#;
    let info = PaceInfo::from_ingest_json(aws).unwrap();
    assert_eq!(info, PaceInfo::new(0, Some(1024), true, false));
    assert_eq!(info.to_ingest_json().unwrap(), aws);
    assert_eq!(
        PaceInfo::new(1, None, false, true)
            .to_ingest_json()
            .unwrap(),
        r#"{"version":1,"variant":1,"position":-1,"firstpart":false,"lastpart":true}"#
    );
}

#[test]
fn ingest_json_round_trips() {
    for position in POSITIONS {
        for variant in [0, 1, 255] {
            for (first, last) in [(false, false), (true, true), (true, false)] {
                let info = PaceInfo::new(variant, position, first, last);
                let json = info.to_ingest_json().unwrap();
                assert_eq!(PaceInfo::from_ingest_json(&json).unwrap(), info);
            }
        }
    }
}

#[test]
fn ingest_json_rejections() {
    let json_error = |s: &str| {
        let err = PaceInfo::from_ingest_json(s).unwrap_err();
        assert!(
            matches!(err, WmPaceInfoError::IngestJson { .. }),
            "{s}: {err}"
        );
    };
    json_error(r#"{"version":1,"variant":0,"position":3,"firstpart":true}"#);
    json_error(r#"{"version":1,"variant":0,"position":3,"firstpart":true,"lastpart":true,"x":1}"#);
    json_error(r#"{"version":1,"variant":0,"position":"3","firstpart":true,"lastpart":true}"#);
    json_error(r#"{"version":1,"variant":0,"position":3.0,"firstpart":true,"lastpart":true}"#);
    json_error(r#"{"version":1,"variant":0,"position":3,"firstpart":1,"lastpart":true}"#);
    json_error(
        r#"{"version":1,"variant":0,"position":3,"position":4,"firstpart":true,"lastpart":true}"#,
    );
    json_error("not json");
    json_error(r#"[1,0,3,true,true]"#);
    let variant = PaceInfo::from_ingest_json(
        r#"{"version":1,"variant":256,"position":3,"firstpart":true,"lastpart":true}"#,
    )
    .unwrap_err();
    assert!(variant.to_string().contains("0..=255"));

    for (position, value) in [("32768", 32768), ("-2", -2)] {
        let s = format!(
            r#"{{"version":1,"variant":0,"position":{position},"firstpart":true,"lastpart":true}}"#
        );
        assert_eq!(
            PaceInfo::from_ingest_json(&s).unwrap_err(),
            WmPaceInfoError::PositionOutOfRange { position: value }
        );
    }
    assert_eq!(
        PaceInfo::from_ingest_json(
            r#"{"version":2,"variant":0,"position":3,"firstpart":true,"lastpart":true}"#
        )
        .unwrap_err(),
        WmPaceInfoError::UnsupportedVersion { version: 2 }
    );
    let long = format!("{{{}}}", " ".repeat(MAX_INGEST_JSON_LEN));
    assert!(matches!(
        PaceInfo::from_ingest_json(&long),
        Err(WmPaceInfoError::HeaderTooLong { .. })
    ));
    assert!(matches!(
        PaceInfo::new(0, Some(40_000), false, false).to_ingest_json(),
        Err(WmPaceInfoError::PositionOutOfRange { position: 40_000 })
    ));
}

#[test]
fn forms_agree_with_each_other() {
    // One PaceInfo, carried in-band and in the ingest header, then turned
    // into the egress sidecar by an origin: the position survives.
    for position in [Some(0), Some(1), Some(MAX_IN_BAND_POSITION), None] {
        let info = PaceInfo::new(1, position, true, true);
        let from_box = PaceInfo::from_wmpi_box(&info.to_wmpi_box().unwrap()).unwrap();
        let from_json = PaceInfo::from_ingest_json(&info.to_ingest_json().unwrap()).unwrap();
        assert_eq!(from_box, from_json);
        let header = Sidecar::for_discrete_segment(from_box.position)
            .to_egress_header()
            .unwrap();
        let egress = Sidecar::from_egress_header(&header).unwrap();
        assert_eq!(egress.segments[0].position, position);
    }
}
