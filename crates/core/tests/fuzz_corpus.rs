//! Replays the fuzz corpora of leaktrace-core on stable (fuzz/README.md): every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` goes through the same body as the fuzz
//! target (fuzz/bodies/core.rs, included here). A panic names the file.
//!
//! `write_seed_corpus` (ignored) writes the seed inputs of these targets with the library's own
//! encoders: `cargo test -p leaktrace-core --test fuzz_corpus -- --ignored write_seed_corpus`.

#[allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
mod body {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/bodies/core.rs"
    ));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/bodies/replay.rs"
));

#[test]
fn token_decode() {
    assert!(replay("token_decode", body::token_decode) > 0);
}

#[test]
fn token_claims() {
    assert!(replay("token_claims", body::token_claims) > 0);
}

#[test]
fn wmpi_box() {
    assert!(replay("wmpi_box", body::wmpi_box) > 0);
}

#[test]
fn sidecar() {
    assert!(replay("sidecar", body::sidecar) > 0);
}

/// The claims set (CBOR) inside a token: the third element of its COSE array.
#[allow(clippy::unwrap_used)]
fn claims_payload(token: &str) -> Vec<u8> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap();
    let mut value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    while let ciborium::Value::Tag(_, inner) = value {
        value = *inner;
    }
    let ciborium::Value::Array(items) = value else {
        panic!("COSE object is not an array");
    };
    match &items[2] {
        ciborium::Value::Bytes(b) => b.clone(),
        other => panic!("payload is {other:?}"),
    }
}

#[test]
#[ignore = "writes the seed corpus under fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    use base64::Engine as _;
    use leaktrace_core::SessionId;
    use leaktrace_core::token::{PatternClaims, SegDuration, Signer, WmToken, encode};
    use leaktrace_core::wmpaceinfo::{PaceInfo, Sidecar, SidecarSegment};

    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let with = |sel: u8, rest: &[u8]| [&[sel][..], rest].concat();

    // Tokens: indirect and direct mode, HMAC and ES256.
    let now = body::NOW;
    let indirect = WmToken {
        iss: Some("leaktrace".into()),
        exp: now + 3600,
        iat: now,
        cti: Some(vec![1, 2, 3, 4]),
        wmvnd: 42,
        wmsegduration: Some(SegDuration {
            ticks: 60_000,
            timescale: 10_000,
        }),
        pattern: PatternClaims::Indirect {
            wmid: SessionId::new("session-0001").unwrap(),
            wmopid: 7,
            wmkeyver: Some(1),
            patlen: u16::MAX,
        },
    };
    let direct = WmToken {
        iss: None,
        exp: now + 60,
        iat: now - 5,
        cti: Some(b"aaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec()),
        wmvnd: 1,
        wmsegduration: None,
        pattern: PatternClaims::Direct {
            pattern: vec![0x0A, 0x0B, 0x0C, 0x0D],
            patlen: 32,
        },
    };
    let hmac = Signer::hmac_sha256(&body::HMAC_KEY);
    let es256 = Signer::es256_from_bytes(&body::ES256_SECRET).unwrap();
    for (name, claims) in [("indirect", &indirect), ("direct", &direct)] {
        for (alg, signer) in [("hmac", &hmac), ("es256", &es256)] {
            let t = encode(claims, signer).unwrap();
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t)
                .unwrap();
            put(
                "token_decode",
                &format!("seed-{name}-{alg}.txt"),
                &with(0, t.as_bytes()),
            );
            put(
                "token_decode",
                &format!("seed-{name}-{alg}.cbor"),
                &with(1, &raw),
            );
            if alg == "hmac" {
                let payload = claims_payload(&t);
                put(
                    "token_claims",
                    &format!("seed-{name}-tagged"),
                    &with(3, &payload),
                );
                put(
                    "token_claims",
                    &format!("seed-{name}-bare"),
                    &with(0, &payload),
                );
            }
        }
    }
    // Structured claims (first byte bit 7): flags, then the fields claims_from reads.
    put(
        "token_claims",
        "seed-structured-indirect",
        &[
            0x80, 0x17, 4, b'l', b't', b'r', b'c', 0x0e, 0x10, 0, 5, 2, 0xca, 0xfe, 0, 0, 0, 0, 0,
            0, 0, 42, 0, 0, 0, 0, 0, 0, 0xea, 0x60, 0, 0, 0, 0, 0, 0, 0x27, 0x10, 0xff, 0xff, 12,
            b's', b'e', b's', b's', b'i', b'o', b'n', b'-', b'0', b'0', b'0', b'1', 0, 0, 0, 0, 0,
            0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1,
        ],
    );
    put(
        "token_claims",
        "seed-structured-direct-es256",
        &[
            0xc0, 0x08, 0, 60, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32, 0x0a, 0x0b, 0x0c, 0x0d,
        ],
    );

    // PaceInfo: boxes, payloads, the 21-byte largesize box, ingest JSON.
    let infos = [
        PaceInfo::new(0, Some(7), true, true),
        PaceInfo::new(1, Some(32766), false, true),
        PaceInfo::new(1, None, true, false),
        PaceInfo::new(255, Some(0), false, false),
    ];
    for (i, p) in infos.iter().enumerate() {
        let b = p.to_wmpi_box().unwrap();
        put("wmpi_box", &format!("seed-box-{i}"), &b);
        put(
            "wmpi_box",
            &format!("seed-payload-{i}"),
            &p.to_wmpi_payload().unwrap(),
        );
        put(
            "wmpi_box",
            &format!("seed-json-{i}"),
            p.to_ingest_json().unwrap().as_bytes(),
        );
        let mut large = vec![0, 0, 0, 1];
        large.extend_from_slice(b"wmpi");
        large.extend_from_slice(&21u64.to_be_bytes());
        large.extend_from_slice(&b[8..]);
        assert_eq!(PaceInfo::from_wmpi_box(&large).unwrap(), *p);
        put("wmpi_box", &format!("seed-largebox-{i}"), &large);
    }
    put(
        "wmpi_box",
        "seed-json-spec",
        br#"{"version": 1, "variant": 0, "position": 33, "firstpart": true, "lastpart": true}"#,
    );
    put(
        "wmpi_box",
        "seed-json-aws",
        br#"{"version":1,"variant":0,"position":32767,"firstpart":true,"lastpart":false}"#,
    );
    put("wmpi_box", "seed-overwritten", &[0xff; 13]);

    // Sidecars: discrete (one segment, the spec's regex example, parts), byterange (the spec's
    // track), and egress headers.
    let regex = |re: &str, p: u16| SidecarSegment {
        segment_regex: Some(re.into()),
        ..SidecarSegment::discrete(Some(p))
    };
    let sidecars = [
        Sidecar::for_discrete_segment(Some(21)),
        Sidecar::for_discrete_segment(None),
        Sidecar {
            version: 1,
            file_size: None,
            segments: vec![
                regex("video_segment_ .*?_123.mp4", 21),
                regex("video_segment_ .*?_124.mp4", 22),
            ],
        },
        Sidecar {
            version: 1,
            file_size: None,
            segments: vec![SidecarSegment {
                first_part: Some(true),
                last_part: Some(false),
                ..SidecarSegment::discrete(Some(32767))
            }],
        },
        Sidecar::for_byterange_track(
            262_445_216,
            [
                (0, None),
                (1118, Some(0)),
                (1_701_212, Some(1)),
                (3_490_693, Some(2)),
                (5_268_281, Some(3)),
                (7_020_425, Some(3)),
                (262_073_936, Some(119)),
            ],
        )
        .unwrap(),
    ];
    for (i, s) in sidecars.iter().enumerate() {
        put("sidecar", &format!("seed-cbor-{i}"), &s.to_cbor().unwrap());
        if let Ok(h) = s.to_egress_header() {
            put("sidecar", &format!("seed-egress-{i}"), h.as_bytes());
        }
    }
}
