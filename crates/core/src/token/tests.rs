use super::*;

const NOW: u64 = 1_700_000_000;
const HMAC_KEY: [u8; 32] = [0x5a; 32];
/// A fixed P-256 secret scalar (any value in 1..n works).
const ES256_SECRET: [u8; 32] = [
    0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16, 0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
    0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12, 0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21,
];

fn hmac() -> Signer {
    Signer::hmac_sha256(&HMAC_KEY)
}

fn es256() -> Signer {
    Signer::es256_from_bytes(&ES256_SECRET).unwrap()
}

fn indirect() -> WmToken {
    WmToken {
        iss: Some("leaktrace".into()),
        exp: NOW + 3600,
        iat: NOW,
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
    }
}

fn direct() -> WmToken {
    WmToken {
        iss: None,
        exp: NOW + 60,
        iat: NOW - 5,
        cti: None,
        wmvnd: 1,
        wmsegduration: None,
        pattern: PatternClaims::Direct {
            pattern: vec![0x0A, 0x0B, 0x0C, 0x0D],
            patlen: 32,
        },
    }
}

/// Signs an arbitrary claims map (keys sorted as the issuer sorts them) for negative tests.
fn raw_token(entries: Vec<(u64, Value)>, signer: &Signer) -> String {
    let map = deterministic_map(entries).unwrap();
    sign_payload(cbor_to_vec(&map).unwrap(), signer).unwrap()
}

/// Signs a claims map in the given key order.
fn raw_token_unsorted(entries: Vec<(u64, Value)>, signer: &Signer) -> String {
    let map = Value::Map(entries.into_iter().map(|(k, v)| (uint(k), v)).collect());
    sign_payload(cbor_to_vec(&map).unwrap(), signer).unwrap()
}

/// The claims of `indirect()` as raw entries, minus `skip`.
fn indirect_entries(skip: &[u64]) -> Vec<(u64, Value)> {
    vec![
        (claim::EXP, uint(NOW + 3600)),
        (claim::IAT, uint(NOW)),
        (claim::WMVER, uint(1)),
        (claim::WMVND, uint(42)),
        (claim::WMPATLEN, uint(65_535)),
        (claim::WMID, Value::Text("session-0001".into())),
        (claim::WMOPID, uint(7)),
    ]
    .into_iter()
    .filter(|(k, _)| !skip.contains(k))
    .collect()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds a tagged COSE_Mac0 by hand (for header-tampering tests).
fn craft_mac0(protected: coset::Header, unprotected: coset::Header, payload: Vec<u8>) -> String {
    let mac0 = CoseMac0Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload)
        .try_create_tag(&[], |data| hmac_tag(&HMAC_KEY, data))
        .unwrap()
        .build();
    let v = Value::Tag(
        CWT_TAG,
        Box::new(Value::Tag(
            COSE_MAC0_TAG,
            Box::new(mac0.to_cbor_value().unwrap()),
        )),
    );
    b64(&cbor_to_vec(&v).unwrap())
}

fn claims_bytes() -> Vec<u8> {
    encode_claims(&indirect()).unwrap()
}

// --- round trips --------------------------------------------------------------------------

#[test]
fn round_trip_hmac() {
    for claims in [indirect(), direct()] {
        let t = encode(&claims, &hmac()).unwrap();
        assert_eq!(
            decode_and_verify(&t, &hmac().verifier(), NOW).unwrap(),
            claims
        );
        assert_eq!(
            decode_and_verify(&t, &Verifier::hmac_sha256(&HMAC_KEY), NOW).unwrap(),
            claims
        );
    }
}

#[test]
fn round_trip_es256() {
    let signer = es256();
    let public = signer.verifier();
    for claims in [indirect(), direct()] {
        let t = encode(&claims, &signer).unwrap();
        assert_eq!(decode_and_verify(&t, &public, NOW).unwrap(), claims);
    }
    // Through the SEC1 public key, compressed and uncompressed.
    let sk = p256::ecdsa::SigningKey::from_slice(&ES256_SECRET).unwrap();
    let vk = sk.verifying_key();
    for compress in [false, true] {
        let point = vk.to_sec1_point(compress);
        let v = Verifier::es256_from_sec1(point.as_bytes()).unwrap();
        let t = encode(&indirect(), &signer).unwrap();
        assert_eq!(decode_and_verify(&t, &v, NOW).unwrap(), indirect());
    }
    assert_eq!(
        Verifier::es256_from_sec1(&[4; 65]).unwrap_err(),
        TokenError::InvalidKey
    );
    assert_eq!(
        Signer::es256_from_bytes(&[0; 32]).unwrap_err(),
        TokenError::InvalidKey
    );
    assert_eq!(
        Signer::es256_from_bytes(&[0xff; 32]).unwrap_err(),
        TokenError::InvalidKey
    );
}

#[test]
fn encoding_is_deterministic() {
    for s in [hmac(), es256()] {
        assert_eq!(
            encode(&indirect(), &s).unwrap(),
            encode(&indirect(), &s).unwrap()
        );
    }
}

#[test]
fn full_length_direct_pattern_fits() {
    let pattern: Vec<u8> = (0..8192u32).map(|i| (i * 37 % 251) as u8).collect();
    let claims = WmToken {
        pattern: PatternClaims::Direct {
            pattern,
            patlen: u16::MAX,
        },
        ..direct()
    };
    for s in [hmac(), es256()] {
        let t = encode(&claims, &s).unwrap();
        assert!(t.len() < MAX_TOKEN_LEN, "{}", t.len());
        let back = decode_and_verify(&t, &s.verifier(), NOW).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.wmpatlen(), 65_535);
        // Last meaningful bit is index 65 534: byte 8191, bit 6 from the MSB.
        let last = claims.pattern.pattern_bit(65_534).unwrap();
        let byte = 8191u32 * 37 % 251;
        assert_eq!(last.bit(), ((byte >> 1) & 1) as u8);
    }
}

// --- deterministic CBOR ---------------------------------------------------------------------

#[test]
fn claims_are_core_deterministic_cbor() {
    let bytes = claims_bytes();
    let expected = concat!(
        "ab", // map(11)
        "01",
        "69",
        "6c65616b7472616365", // 1: "leaktrace"
        "04",
        "1a6553ff10", // 4: 1700003600
        "06",
        "1a6553f100", // 6: 1700000000
        "07",
        "4401020304", // 7: h'01020304'
        "19012c",
        "01", // 300: 1
        "19012d",
        "182a", // 301: 42
        "19012e",
        "19ffff", // 302: 65535
        "19012f",
        "82",
        "19ea60",
        "192710", // 303: [60000, 10000]
        "190131",
        "6c",
        "73657373696f6e2d30303031", // 305: "session-0001"
        "190132",
        "07", // 306: 7
        "190133",
        "01", // 307: 1
    );
    assert_eq!(hex(&bytes), expected);
}

#[test]
fn deterministic_map_sorts_by_encoded_key() {
    let m = deterministic_map(vec![
        (300, uint(0)),
        (24, uint(0)),
        (1, uint(0)),
        (65_536, uint(0)),
        (23, uint(0)),
        (256, uint(0)),
    ])
    .unwrap();
    let Value::Map(entries) = m else { panic!() };
    let keys: Vec<u64> = entries
        .iter()
        .map(|(k, _)| as_u64(k, "k").unwrap())
        .collect();
    assert_eq!(keys, [1, 23, 24, 256, 300, 65_536]);
}

#[test]
fn unsorted_claims_are_refused() {
    let v = hmac().verifier();
    let entries = indirect_entries(&[]);
    assert!(decode_and_verify(&raw_token(entries.clone(), &hmac()), &v, NOW).is_ok());
    let mut reversed = entries;
    reversed.reverse();
    assert_eq!(
        decode_and_verify(&raw_token_unsorted(reversed, &hmac()), &v, NOW),
        Err(TokenError::NonCanonical(
            "claims are not deterministic CBOR"
        ))
    );
}

// --- golden vectors ---------------------------------------------------------------------------

/// Fixed key, claims and time → exact token. Any change here breaks every deployed verifier.
#[test]
fn golden_hmac() {
    let t = encode(&indirect(), &hmac()).unwrap();
    assert_eq!(t, GOLDEN_HMAC);
    assert_eq!(
        decode_and_verify(GOLDEN_HMAC, &Verifier::hmac_sha256(&HMAC_KEY), NOW).unwrap(),
        indirect()
    );
}

/// ES256 with RFC 6979 deterministic nonces is reproducible too.
#[test]
fn golden_es256() {
    let t = encode(&indirect(), &es256()).unwrap();
    assert_eq!(t, GOLDEN_ES256);
    assert_eq!(
        decode_and_verify(GOLDEN_ES256, &es256().verifier(), NOW).unwrap(),
        indirect()
    );
}

// Cross-checked outside Rust: Python `cbor2` decodes both and re-encodes them canonically to the
// same bytes, the standard library's `hmac` verifies the MAC over ["MAC0", h'A10105', h'', claims],
// and `cryptography` verifies the ES256 signature over ["Signature1", h'A10126', h'', claims]
// (the low-S form, the one the verifier accepts).
const GOLDEN_HMAC: &str = "2D3RhEOhAQWgWE-rAWlsZWFrdHJhY2UEGmVT_xAGGmVT8QAHRAECAwQZASwBGQEtGCoZAS4Z__8ZAS-CGepgGScQGQExbHNlc3Npb24tMDAwMRkBMgcZATMBWCD-oo_hALdpyxQqTblaJgh14lyzYwbIMxn9pCly_vrj0A";
const GOLDEN_ES256: &str = "2D3ShEOhASagWE-rAWlsZWFrdHJhY2UEGmVT_xAGGmVT8QAHRAECAwQZASwBGQEtGCoZAS4Z__8ZAS-CGepgGScQGQExbHNlc3Npb24tMDAwMRkBMgcZATMBWECLBR8n9rLTkVxnBztaR853L9ulRV8Q91n_4j5UAuMzTGpCESevAkF-0Gxd0FI3gYIYD9Mr5V2MOvVm052C87fB";

#[test]
fn wire_layout() {
    let bytes = unb64(&encode(&indirect(), &hmac()).unwrap());
    // tag 61, tag 17, array(4), bstr(3) {1: 5}, {} , bstr(len) ...
    assert_eq!(hex(&bytes[..9]), "d83dd18443a10105a0");
    let bytes = unb64(&encode(&indirect(), &es256()).unwrap());
    assert_eq!(hex(&bytes[..9]), "d83dd28443a10126a0");
    // 64-byte raw r||s signature at the end.
    assert_eq!(hex(&bytes[bytes.len() - 66..bytes.len() - 64]), "5840");
}

// --- tag handling -----------------------------------------------------------------------------

#[test]
fn tags_are_required_on_input() {
    let bytes = unb64(&encode(&indirect(), &hmac()).unwrap());
    let v = hmac().verifier();
    assert_eq!(
        decode_and_verify(&b64(&bytes), &v, NOW).unwrap(),
        indirect()
    );
    // Without tag 61 (starts with d1).
    let no61 = &bytes[2..];
    assert_eq!(
        decode_and_verify(&b64(no61), &v, NOW),
        Err(TokenError::NonCanonical("the CWT tag 61 is missing"))
    );
    // Without any tag (bare COSE_Mac0 array).
    let bare = &bytes[3..];
    assert_eq!(
        decode_and_verify(&b64(bare), &v, NOW),
        Err(TokenError::NonCanonical("the CWT tag 61 is missing"))
    );
    // Tag 61 directly around the bare array.
    let mut only61 = bytes[..2].to_vec();
    only61.extend_from_slice(bare);
    assert_eq!(
        decode_and_verify(&b64(&only61), &v, NOW),
        Err(TokenError::NonCanonical("the COSE tag is missing"))
    );
}

#[test]
fn wrong_tags_rejected() {
    let bytes = unb64(&encode(&indirect(), &hmac()).unwrap());
    // Tag 17 replaced by tag 18 (COSE_Sign1) under an HMAC verifier.
    let mut t = bytes.clone();
    t[2] = 0xd2;
    assert_eq!(
        decode_and_verify(&b64(&t), &hmac().verifier(), NOW),
        Err(TokenError::UnexpectedTag(18))
    );
    // Tag 61 replaced by tag 60.
    let mut t = bytes.clone();
    t[1] = 60;
    assert_eq!(
        decode_and_verify(&b64(&t), &hmac().verifier(), NOW),
        Err(TokenError::UnexpectedTag(60))
    );
}

// --- canonical encoding -------------------------------------------------------------------

/// A CBOR head: major type and argument, the argument in `width` extra bytes (0: in the initial
/// byte, which needs `arg < 24`).
fn cbor_head(major: u8, arg: u64, width: u8) -> Vec<u8> {
    let mt = major << 5;
    match width {
        0 => vec![mt | arg as u8],
        1 => vec![mt | 24, arg as u8],
        2 => [&[mt | 25][..], &(arg as u16).to_be_bytes()].concat(),
        4 => [&[mt | 26][..], &(arg as u32).to_be_bytes()].concat(),
        _ => [&[mt | 27][..], &arg.to_be_bytes()].concat(),
    }
}

fn shortest_width(arg: u64) -> u8 {
    match arg {
        0..24 => 0,
        24..0x100 => 1,
        0x100..0x1_0000 => 2,
        0x1_0000..0x1_0000_0000 => 4,
        _ => 8,
    }
}

/// A byte string with its length in `width` bytes (`None`: the shortest form).
fn bstr_w(bytes: &[u8], width: Option<u8>) -> Vec<u8> {
    let len = bytes.len() as u64;
    [
        cbor_head(2, len, width.unwrap_or_else(|| shortest_width(len))),
        bytes.to_vec(),
    ]
    .concat()
}

/// The pieces of an issued token: COSE tag, protected header bytes, payload, MAC or signature.
fn token_parts(token: &str) -> (u64, Vec<u8>, Vec<u8>, Vec<u8>) {
    let Value::Tag(CWT_TAG, inner) = cbor_from_slice(&unb64(token)).unwrap() else {
        panic!("no tag 61")
    };
    let Value::Tag(tag, cose) = *inner else {
        panic!("no COSE tag")
    };
    let Value::Array(items) = *cose else {
        panic!("not an array")
    };
    let [
        Value::Bytes(protected),
        Value::Map(_),
        Value::Bytes(payload),
        Value::Bytes(sig),
    ] = items.as_slice()
    else {
        panic!("not a COSE_Mac0/COSE_Sign1")
    };
    (tag, protected.clone(), payload.clone(), sig.clone())
}

/// The framing of a token, piece by piece (the canonical one from [`Framing::canonical`]).
#[derive(Clone)]
struct Framing {
    before: Vec<u8>,
    cwt_tag: Vec<u8>,
    cose_tag: Vec<u8>,
    array: Vec<u8>,
    protected: Vec<u8>,
    unprotected: Vec<u8>,
    payload: Vec<u8>,
    sig: Vec<u8>,
    after: Vec<u8>,
}

impl Framing {
    fn canonical(tag: u64, protected: &[u8], payload: &[u8], sig: &[u8]) -> Self {
        Self {
            before: Vec::new(),
            cwt_tag: cbor_head(6, CWT_TAG, 1),
            cose_tag: cbor_head(6, tag, 0),
            array: vec![0x84],
            protected: bstr_w(protected, None),
            unprotected: vec![0xa0],
            payload: bstr_w(payload, None),
            sig: bstr_w(sig, None),
            after: Vec::new(),
        }
    }

    fn token(&self) -> String {
        b64(&[
            &self.before[..],
            &self.cwt_tag,
            &self.cose_tag,
            &self.array,
            &self.protected,
            &self.unprotected,
            &self.payload,
            &self.sig,
            &self.after,
        ]
        .concat())
    }
}

/// The MAC_structure / Sig_structure of RFC 9052 over `protected` and `payload`, MACed with the
/// test HMAC key or signed with the test ES256 key.
fn authenticate(tag: u64, protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let context = if tag == COSE_MAC0_TAG {
        "MAC0"
    } else {
        "Signature1"
    };
    let structure = cbor_to_vec(&Value::Array(vec![
        Value::Text(context.into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
    .unwrap();
    if tag == COSE_MAC0_TAG {
        hmac_tag(&HMAC_KEY, &structure).unwrap()
    } else {
        let key = p256::ecdsa::SigningKey::from_slice(&ES256_SECRET).unwrap();
        let sig: p256::ecdsa::Signature = key.try_sign(&structure).unwrap();
        sig.normalize_s().to_bytes().to_vec()
    }
}

/// Re-encodings of one valid token that carry the same protected header, claims and MAC (or
/// signature) in another CBOR or COSE form: each must be refused, so that a token has exactly
/// one accepted spelling (the edge caches verified tokens by their text).
#[test]
fn non_canonical_encodings_are_refused() {
    for signer in [hmac(), es256()] {
        let v = signer.verifier();
        let token = encode(&indirect(), &signer).unwrap();
        let (tag, protected, payload, sig) = token_parts(&token);
        let canonical = Framing::canonical(tag, &protected, &payload, &sig);
        assert_eq!(canonical.token(), token, "the test framing is the issuer's");
        assert_eq!(decode_and_verify(&token, &v, NOW).unwrap(), indirect());

        let half = payload.len() / 2;
        let variants: Vec<(&str, Framing)> = vec![
            (
                "no CWT tag",
                Framing {
                    cwt_tag: vec![],
                    ..canonical.clone()
                },
            ),
            (
                "no tags at all",
                Framing {
                    cwt_tag: vec![],
                    cose_tag: vec![],
                    ..canonical.clone()
                },
            ),
            (
                "no COSE tag",
                Framing {
                    cose_tag: vec![],
                    ..canonical.clone()
                },
            ),
            (
                "CWT tag argument in 2 bytes",
                Framing {
                    cwt_tag: cbor_head(6, CWT_TAG, 2),
                    ..canonical.clone()
                },
            ),
            (
                "COSE tag argument in 1 byte",
                Framing {
                    cose_tag: cbor_head(6, tag, 1),
                    ..canonical.clone()
                },
            ),
            (
                "COSE tag argument in 8 bytes",
                Framing {
                    cose_tag: cbor_head(6, tag, 8),
                    ..canonical.clone()
                },
            ),
            (
                "array length in 1 byte",
                Framing {
                    array: cbor_head(4, 4, 1),
                    ..canonical.clone()
                },
            ),
            (
                "indefinite-length array",
                Framing {
                    array: vec![0x9f],
                    after: vec![0xff],
                    ..canonical.clone()
                },
            ),
            (
                "protected header length in 1 byte",
                Framing {
                    protected: bstr_w(&protected, Some(1)),
                    ..canonical.clone()
                },
            ),
            (
                "payload length in 2 bytes",
                Framing {
                    payload: bstr_w(&payload, Some(2)),
                    ..canonical.clone()
                },
            ),
            (
                "payload length in 8 bytes",
                Framing {
                    payload: bstr_w(&payload, Some(8)),
                    ..canonical.clone()
                },
            ),
            (
                "payload as an indefinite-length byte string",
                Framing {
                    payload: [
                        &[0x5f][..],
                        &bstr_w(&payload[..half], None),
                        &bstr_w(&payload[half..], None),
                        &[0xff],
                    ]
                    .concat(),
                    ..canonical.clone()
                },
            ),
            (
                "MAC or signature length in 4 bytes",
                Framing {
                    sig: bstr_w(&sig, Some(4)),
                    ..canonical.clone()
                },
            ),
            (
                "unprotected kid",
                Framing {
                    unprotected: [&[0xa1, 0x04][..], &bstr_w(b"k1", None)].concat(),
                    ..canonical.clone()
                },
            ),
            (
                "unprotected private label",
                Framing {
                    unprotected: vec![0xa1, 0x3a, 0x00, 0x01, 0x00, 0x00, 0xf6],
                    ..canonical.clone()
                },
            ),
            (
                "empty unprotected map, length in 1 byte",
                Framing {
                    unprotected: cbor_head(5, 0, 1),
                    ..canonical.clone()
                },
            ),
            (
                "empty unprotected map, indefinite length",
                Framing {
                    unprotected: vec![0xbf, 0xff],
                    ..canonical.clone()
                },
            ),
        ];
        let mut wrong = Vec::new();
        for (what, framing) in &variants {
            let t = framing.token();
            assert_ne!(t, token, "{what}: not a re-encoding");
            let got = decode_and_verify(&t, &v, NOW);
            if !matches!(got, Err(TokenError::NonCanonical(_))) {
                wrong.push(format!("{what}: {}", outcome(&got)));
            }
        }
        // Tags the issuer does not write.
        let self_described = Framing {
            before: cbor_head(6, 55_799, 2),
            ..canonical.clone()
        };
        assert_eq!(
            decode_and_verify(&self_described.token(), &v, NOW),
            Err(TokenError::UnexpectedTag(55_799))
        );
        let payload_tagged = Framing {
            payload: [cbor_head(6, 24, 1), bstr_w(&payload, None)].concat(),
            ..canonical.clone()
        };
        assert!(decode_and_verify(&payload_tagged.token(), &v, NOW).is_err());

        // Authenticated parts in another form, MACed or signed again with the issuer's key.
        let signed = |protected: Vec<u8>, payload: Vec<u8>| {
            let sig = authenticate(tag, &protected, &payload);
            Framing::canonical(tag, &protected, &payload, &sig).token()
        };
        assert_eq!(
            decode_and_verify(&signed(protected.clone(), payload.clone()), &v, NOW).unwrap(),
            indirect(),
            "re-authenticating the same bytes gives a valid token"
        );
        let exp_hex = "041a6553ff10";
        let payload_hex = hex(&payload);
        assert!(payload_hex.contains(exp_hex));
        let unhex = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        let claims_variants: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "protected alg in 1 byte",
                {
                    let mut p = protected.clone();
                    let alg = p.pop().unwrap();
                    if alg < 0x20 {
                        p.extend_from_slice(&[0x18, alg]);
                    } else {
                        p.extend_from_slice(&[0x38, alg - 0x20]);
                    }
                    p
                },
                payload.clone(),
            ),
            (
                "protected map indefinite",
                {
                    let mut p = protected.clone();
                    p[0] = 0xbf;
                    p.push(0xff);
                    p
                },
                payload.clone(),
            ),
            (
                "exp in 8 bytes",
                protected.clone(),
                unhex(&payload_hex.replace(exp_hex, "041b000000006553ff10")),
            ),
            ("claims map indefinite", protected.clone(), {
                let mut p = payload.clone();
                p[0] = 0xbf;
                p.push(0xff);
                p
            }),
            (
                "claims map length in 1 byte",
                protected.clone(),
                [&[0xb8, payload[0] - 0xa0][..], &payload[1..]].concat(),
            ),
            (
                "wmid as an indefinite-length text string",
                protected.clone(),
                unhex(&payload_hex.replace(
                    "6c73657373696f6e2d30303031",
                    "7f6773657373696f6e652d30303031ff",
                )),
            ),
        ];
        for (what, p, pl) in claims_variants {
            assert!(
                p != protected || pl != payload,
                "{what}: the test did not change anything"
            );
            let got = decode_and_verify(&signed(p, pl), &v, NOW);
            if !matches!(got, Err(TokenError::NonCanonical(_))) {
                wrong.push(format!("{what}: {}", outcome(&got)));
            }
        }
        assert!(
            wrong.is_empty(),
            "{:?}: {} of {} re-encodings not refused as non-canonical:\n{}",
            signer.algorithm(),
            wrong.len(),
            variants.len() + 6,
            wrong.join("\n")
        );
    }
}

fn outcome(r: &Result<WmToken, TokenError>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => format!("refused: {e}"),
    }
}

// --- signatures and algorithms ----------------------------------------------------------------

#[test]
fn forged_signature_rejected() {
    let v = hmac().verifier();
    let token = encode(&indirect(), &hmac()).unwrap();
    let bytes = unb64(&token);
    // Flip one bit of the MAC tag (the last byte).
    let mut t = bytes.clone();
    let last = t.len() - 1;
    t[last] ^= 1;
    assert_eq!(
        decode_and_verify(&b64(&t), &v, NOW),
        Err(TokenError::BadSignature)
    );
    // Same structure, other key.
    assert_eq!(
        decode_and_verify(&token, &Verifier::hmac_sha256(&[0x5b; 32]), NOW),
        Err(TokenError::BadSignature)
    );
    // Swap in the payload of a different token (wmopid changed) but keep the old tag.
    let other = WmToken {
        pattern: PatternClaims::Indirect {
            wmid: SessionId::new("session-0001").unwrap(),
            wmopid: 8,
            wmkeyver: Some(1),
            patlen: u16::MAX,
        },
        ..indirect()
    };
    let other_bytes = unb64(&encode(&other, &hmac()).unwrap());
    let mut spliced = other_bytes[..other_bytes.len() - 32].to_vec();
    spliced.extend_from_slice(&bytes[bytes.len() - 32..]);
    assert_eq!(
        decode_and_verify(&b64(&spliced), &v, NOW),
        Err(TokenError::BadSignature)
    );
    // Truncated MAC tag (HMAC 256/64 style) is not HMAC 256/256.
    let mac0 = CoseMac0::from_cbor_value(cbor_from_slice(&bytes[3..]).unwrap()).unwrap();
    let mut short = mac0.clone();
    short.tag.truncate(8);
    let tagged = Value::Tag(
        CWT_TAG,
        Box::new(Value::Tag(
            COSE_MAC0_TAG,
            Box::new(short.to_cbor_value().unwrap()),
        )),
    );
    let t = b64(&cbor_to_vec(&tagged).unwrap());
    assert_eq!(
        decode_and_verify(&t, &v, NOW),
        Err(TokenError::BadSignature)
    );

    // ES256: flip a signature bit; verify with another key.
    let es = es256();
    let t = unb64(&encode(&indirect(), &es).unwrap());
    let mut f = t.clone();
    let last = f.len() - 1;
    f[last] ^= 0x80;
    assert_eq!(
        decode_and_verify(&b64(&f), &es.verifier(), NOW),
        Err(TokenError::BadSignature)
    );
    let mut other_secret = ES256_SECRET;
    other_secret[31] ^= 1;
    let other = Signer::es256_from_bytes(&other_secret).unwrap();
    assert_eq!(
        decode_and_verify(&b64(&t), &other.verifier(), NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn wrong_algorithm_rejected() {
    let hm = encode(&indirect(), &hmac()).unwrap();
    let es = encode(&indirect(), &es256()).unwrap();
    // HMAC token to an ES256 verifier and the reverse: the COSE tag does not match.
    assert_eq!(
        decode_and_verify(&hm, &es256().verifier(), NOW),
        Err(TokenError::UnexpectedTag(17))
    );
    assert_eq!(
        decode_and_verify(&es, &hmac().verifier(), NOW),
        Err(TokenError::UnexpectedTag(18))
    );
    // The right COSE tag around the other algorithm's structure: the protected alg decides.
    let mut retagged = unb64(&hm);
    retagged[2] = 0xd2;
    assert_eq!(
        decode_and_verify(&b64(&retagged), &es256().verifier(), NOW),
        Err(TokenError::AlgorithmMismatch {
            expected: -7,
            found: Some(5)
        })
    );
    // A Mac0 claiming ES256, or HMAC 256/64, in its protected header.
    for (alg, id) in [
        (iana::Algorithm::ES256, -7),
        (iana::Algorithm::HMAC_256_64, 4),
        (iana::Algorithm::HMAC_384_384, 6),
    ] {
        let t = craft_mac0(
            HeaderBuilder::new().algorithm(alg).build(),
            coset::Header::default(),
            claims_bytes(),
        );
        assert_eq!(
            decode_and_verify(&t, &hmac().verifier(), NOW),
            Err(TokenError::AlgorithmMismatch {
                expected: 5,
                found: Some(id)
            })
        );
    }
    // No alg at all.
    let t = craft_mac0(
        coset::Header::default(),
        coset::Header::default(),
        claims_bytes(),
    );
    assert_eq!(
        decode_and_verify(&t, &hmac().verifier(), NOW),
        Err(TokenError::AlgorithmMismatch {
            expected: 5,
            found: None
        })
    );
    // The alg only in the unprotected header: refused before it is even looked at.
    let t = craft_mac0(
        coset::Header::default(),
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::HMAC_256_256)
            .build(),
        claims_bytes(),
    );
    assert_eq!(
        decode_and_verify(&t, &hmac().verifier(), NOW),
        Err(TokenError::NonCanonical(
            "the unprotected header must be empty"
        ))
    );
    // Critical headers are refused.
    let t = craft_mac0(
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::HMAC_256_256)
            .add_critical(iana::HeaderParameter::Kid)
            .build(),
        coset::Header::default(),
        claims_bytes(),
    );
    assert_eq!(
        decode_and_verify(&t, &hmac().verifier(), NOW),
        Err(TokenError::CriticalHeader)
    );
    // Anything in the unprotected header (here a kid) is refused: the issuer writes none, and
    // it is not covered by the MAC.
    let t = craft_mac0(
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::HMAC_256_256)
            .build(),
        HeaderBuilder::new().key_id(b"k1".to_vec()).build(),
        claims_bytes(),
    );
    assert_eq!(
        decode_and_verify(&t, &hmac().verifier(), NOW),
        Err(TokenError::NonCanonical(
            "the unprotected header must be empty"
        ))
    );
}

// --- time claims ------------------------------------------------------------------------------

#[test]
fn expiry_with_leeway() {
    let v = hmac().verifier();
    let at = |exp: u64| {
        let claims = WmToken {
            exp,
            iat: NOW - 7200,
            ..indirect()
        };
        decode_and_verify(&encode(&claims, &hmac()).unwrap(), &v, NOW)
    };
    assert!(at(NOW + 1).is_ok());
    assert!(at(NOW).is_ok(), "within leeway");
    assert!(at(NOW - DEFAULT_LEEWAY_SECS + 1).is_ok(), "within leeway");
    assert_eq!(
        at(NOW - DEFAULT_LEEWAY_SECS),
        Err(TokenError::Expired {
            exp: NOW - DEFAULT_LEEWAY_SECS,
            now: NOW
        })
    );
    assert_eq!(at(0), Err(TokenError::Expired { exp: 0, now: NOW }));
    // Saturating arithmetic at the top of the range.
    assert!(at(u64::MAX).is_ok());
    let t = encode(&indirect(), &hmac()).unwrap();
    assert!(decode_and_verify(&t, &v, u64::MAX).is_err());
}

#[test]
fn issued_in_future_rejected() {
    let v = hmac().verifier();
    let at = |iat: u64| {
        let claims = WmToken {
            iat,
            exp: NOW + 10_000,
            ..indirect()
        };
        decode_and_verify(&encode(&claims, &hmac()).unwrap(), &v, NOW)
    };
    assert!(at(NOW + DEFAULT_LEEWAY_SECS).is_ok());
    assert_eq!(
        at(NOW + DEFAULT_LEEWAY_SECS + 1),
        Err(TokenError::NotYetValid {
            not_before: NOW + DEFAULT_LEEWAY_SECS + 1,
            now: NOW
        })
    );
    // nbf is honoured when present.
    let mut e = indirect_entries(&[]);
    e.push((claim::NBF, uint(NOW + 3000)));
    assert_eq!(
        decode_and_verify(&raw_token(e, &hmac()), &v, NOW),
        Err(TokenError::NotYetValid {
            not_before: NOW + 3000,
            now: NOW
        })
    );
    let mut e = indirect_entries(&[]);
    e.push((claim::NBF, uint(NOW)));
    assert!(decode_and_verify(&raw_token(e, &hmac()), &v, NOW).is_ok());
}

#[test]
fn missing_claims() {
    let v = hmac().verifier();
    let check = |skip: &[u64], name: &'static str| {
        let t = raw_token(indirect_entries(skip), &hmac());
        assert_eq!(
            decode_and_verify(&t, &v, NOW),
            Err(TokenError::MissingClaim(name)),
            "{name}"
        );
    };
    check(&[claim::EXP], "exp");
    check(&[claim::IAT], "iat");
    check(&[claim::EXP, claim::IAT], "exp");
    check(&[claim::WMVER], "wmver");
    check(&[claim::WMVND], "wmvnd");
    check(&[claim::WMPATLEN], "wmpatlen");
    check(&[claim::WMOPID], "wmopid");
    check(&[claim::WMID], "wmid or wmpattern");
}

#[test]
fn invalid_claims() {
    let v = hmac().verifier();
    let run = |replace: (u64, Value)| {
        let mut e = indirect_entries(&[replace.0]);
        e.push(replace);
        decode_and_verify(&raw_token(e, &hmac()), &v, NOW)
    };
    assert_eq!(
        run((claim::WMVER, uint(2))),
        Err(TokenError::UnsupportedVersion(2))
    );
    assert!(matches!(
        run((claim::WMPATLEN, uint(65_536))),
        Err(TokenError::InvalidClaim(_))
    ));
    assert!(matches!(
        run((claim::WMPATLEN, uint(0))),
        Err(TokenError::InvalidClaim(_))
    ));
    assert_eq!(
        run((claim::EXP, Value::Integer((-5).into()))),
        Err(TokenError::InvalidClaim("exp"))
    );
    assert_eq!(
        run((claim::EXP, Value::Float(1.7e9))),
        Err(TokenError::InvalidClaim("exp"))
    );
    assert_eq!(
        run((claim::IAT, Value::Text("now".into()))),
        Err(TokenError::InvalidClaim("iat"))
    );
    assert_eq!(
        run((claim::WMID, Value::Text("has space".into()))),
        Err(TokenError::InvalidClaim("wmid"))
    );
    assert_eq!(
        run((claim::WMID, uint(12))),
        Err(TokenError::InvalidClaim("wmid"))
    );
    assert_eq!(
        run((claim::ISS, uint(1))),
        Err(TokenError::InvalidClaim("iss"))
    );
    assert_eq!(
        run((claim::WMSEGDURATION, Value::Array(vec![uint(1)]))),
        Err(TokenError::InvalidClaim("wmsegduration"))
    );
    assert_eq!(
        run((claim::WMSEGDURATION, Value::Array(vec![uint(1), uint(0)]))),
        Err(TokenError::InvalidClaim("wmsegduration"))
    );
    // Both modes at once.
    assert!(matches!(
        run((claim::WMPATTERN, Value::Bytes(vec![0; 8192]))),
        Err(TokenError::InvalidClaim(_))
    ));
    // Direct pattern of the wrong size for wmpatlen (also what an encrypted pattern looks like).
    let mut e = indirect_entries(&[claim::WMID, claim::WMOPID]);
    e.push((claim::WMPATTERN, Value::Bytes(vec![0xd0, 0x83, 0x40])));
    assert!(matches!(
        decode_and_verify(&raw_token(e, &hmac()), &v, NOW),
        Err(TokenError::InvalidClaim(_))
    ));
    // Duplicate keys.
    let mut e = indirect_entries(&[]);
    e.push((claim::WMOPID, uint(8)));
    assert_eq!(
        decode_and_verify(&raw_token(e, &hmac()), &v, NOW),
        Err(TokenError::Malformed("duplicate claim key"))
    );
    // A claims map with too many entries.
    let e: Vec<(u64, Value)> = (1000..=1000 + MAX_CLAIMS as u64)
        .map(|k| (k, uint(0)))
        .collect();
    assert_eq!(
        decode_and_verify(&raw_token(e, &hmac()), &v, NOW),
        Err(TokenError::Malformed("too many claims"))
    );
    // Unknown claims and text keys are ignored (text keys sort after integer keys).
    let mut e = indirect_entries(&[]);
    e.push((999, Value::Text("x".into())));
    e.push((2, Value::Text("subject".into())));
    let Value::Map(mut sorted) = deterministic_map(e).unwrap() else {
        panic!("not a map")
    };
    sorted.push((Value::Text("custom".into()), Value::Bool(true)));
    let map = Value::Map(sorted);
    let t = sign_payload(cbor_to_vec(&map).unwrap(), &hmac()).unwrap();
    assert!(decode_and_verify(&t, &v, NOW).is_ok());
}

#[test]
fn encode_rejects_inconsistent_claims() {
    let bad_len = WmToken {
        pattern: PatternClaims::Direct {
            pattern: vec![1, 2, 3],
            patlen: 32,
        },
        ..direct()
    };
    assert!(matches!(
        encode(&bad_len, &hmac()),
        Err(TokenError::InvalidClaim(_))
    ));
    let zero = WmToken {
        pattern: PatternClaims::Direct {
            pattern: vec![],
            patlen: 0,
        },
        ..direct()
    };
    assert!(matches!(
        encode(&zero, &hmac()),
        Err(TokenError::InvalidClaim(_))
    ));
    let seg = WmToken {
        wmsegduration: Some(SegDuration {
            ticks: 0,
            timescale: 1,
        }),
        ..direct()
    };
    assert!(matches!(
        encode(&seg, &hmac()),
        Err(TokenError::InvalidClaim(_))
    ));
}

// --- hostile input ----------------------------------------------------------------------------

#[test]
fn every_truncation_fails_without_panic() {
    for s in [hmac(), es256()] {
        let v = s.verifier();
        for claims in [indirect(), direct()] {
            let token = encode(&claims, &s).unwrap();
            for i in 0..token.len() {
                assert!(
                    decode_and_verify(&token[..i], &v, NOW).is_err(),
                    "prefix {i}"
                );
            }
            let bytes = unb64(&token);
            for i in 0..bytes.len() {
                let t = b64(&bytes[..i]);
                assert!(decode_and_verify(&t, &v, NOW).is_err(), "byte prefix {i}");
            }
            // Trailing data after the COSE object.
            let mut extra = bytes.clone();
            extra.push(0x00);
            assert_eq!(
                decode_and_verify(&b64(&extra), &v, NOW),
                Err(TokenError::Malformed("trailing bytes after CBOR item"))
            );
        }
    }
}

#[test]
fn every_bit_flip_fails_without_panic() {
    for s in [hmac(), es256()] {
        let v = s.verifier();
        let bytes = unb64(&encode(&indirect(), &s).unwrap());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut t = bytes.clone();
                t[i] ^= 1 << bit;
                assert!(
                    decode_and_verify(&b64(&t), &v, NOW).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn garbage_fails_without_panic() {
    let v = hmac().verifier();
    let es = es256().verifier();
    let mut rng = blake3::Hasher::new_derive_key("leaktrace token fuzz").finalize_xof();
    for len in 0..600usize {
        let mut buf = vec![0u8; len];
        rng.fill(&mut buf);
        let t = b64(&buf);
        assert!(decode_and_verify(&t, &v, NOW).is_err());
        assert!(decode_and_verify(&t, &es, NOW).is_err());
        // Garbage behind a valid-looking prefix (tag 61, tag 17, array(4)).
        let mut framed = vec![0xd8, 0x3d, 0xd1, 0x84];
        framed.extend_from_slice(&buf);
        assert!(decode_and_verify(&b64(&framed), &v, NOW).is_err());
        if let Ok(s) = std::str::from_utf8(&buf) {
            assert!(decode_and_verify(s, &v, NOW).is_err());
        }
    }
    for s in [
        "", "=", "====", "a", "ab=", "!!!!", "a b", "\u{0}", "é", "AAAA+/==", "AAAA\n",
    ] {
        assert!(decode_and_verify(s, &v, NOW).is_err(), "{s:?}");
    }
    // Padded base64url is not accepted.
    let t = encode(&indirect(), &hmac()).unwrap();
    let padded = base64::engine::general_purpose::URL_SAFE.encode(unb64(&t));
    if padded != t {
        assert_eq!(decode_and_verify(&padded, &v, NOW), Err(TokenError::Base64));
    }
}

#[test]
fn hostile_cbor_fails_without_panic() {
    let v = hmac().verifier();
    let cases: &[&[u8]] = &[
        // Huge declared lengths.
        &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[
            0xd8, 0x3d, 0xd1, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // Indefinite-length items and a lone break.
        &[0x9f, 0x01, 0x02],
        &[0x5f, 0x41, 0x00],
        &[0xff],
        // Reserved additional info.
        &[0x1c],
        // An array of 4 with wrong element types.
        &[0x84, 0x01, 0x02, 0x03, 0x04],
        &[0x84, 0x40, 0xa0, 0xf6, 0x40], // null (detached) payload
        // Not an array.
        &[0xa0],
        &[0xd8, 0x3d, 0x01],
    ];
    for c in cases {
        assert!(decode_and_verify(&b64(c), &v, NOW).is_err(), "{}", hex(c));
    }
    // Deep nesting: 10 000 nested arrays must not overflow the stack.
    let mut deep = vec![0x81u8; 10_000];
    deep.push(0x00);
    assert!(decode_and_verify(&b64(&deep), &v, NOW).is_err());
    let mut deep_tags = [0xd8u8, 0x3d].repeat(5000);
    deep_tags.push(0x00);
    assert!(decode_and_verify(&b64(&deep_tags), &v, NOW).is_err());
    // Claims that are not a map, or a map with a huge declared size, behind a valid MAC.
    for payload in [
        vec![0x80u8],
        vec![0xbb, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        vec![0xa1],
    ] {
        let t = sign_payload(payload, &hmac()).unwrap();
        assert!(matches!(
            decode_and_verify(&t, &v, NOW),
            Err(TokenError::Malformed(_))
        ));
    }
}

#[test]
fn size_limit() {
    let v = hmac().verifier();
    let long = "A".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        decode_and_verify(&long, &v, NOW),
        Err(TokenError::TooLarge {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        })
    );
    // A validly signed but oversized token is refused before any parsing.
    let mut e = indirect_entries(&[]);
    e.push((999, Value::Bytes(vec![0; MAX_TOKEN_LEN])));
    let map = Value::Map(e.into_iter().map(|(k, v)| (uint(k), v)).collect());
    assert!(matches!(
        sign_payload(cbor_to_vec(&map).unwrap(), &hmac()),
        Err(TokenError::TooLarge { .. })
    ));
}

// --- direct-mode bit addressing ---------------------------------------------------------------

/// TS 104 002 clause 5.4: pattern 0x0A0B0C0D, position 3 → bit 0 (big-endian addressing).
#[test]
fn spec_bit_example() {
    let mode = PatternClaims::Direct {
        pattern: vec![0x0A, 0x0B, 0x0C, 0x0D],
        patlen: 32,
    };
    assert_eq!(mode.pattern_bit(3), Some(Variant::A));
    assert_eq!(mode.pattern_bit(4), Some(Variant::B));
    let bits: String = (0..32)
        .map(|p| char::from(b'0' + mode.pattern_bit(p).unwrap().bit()))
        .collect();
    assert_eq!(bits, "00001010000010110000110000001101");
    // Wrap-around at wmpatlen.
    assert_eq!(mode.pattern_bit(35), mode.pattern_bit(3));
    assert_eq!(mode.pattern_bit(32 + 4), Some(Variant::B));
    let short = PatternClaims::Direct {
        pattern: vec![0x0A, 0x0B, 0x0C, 0x0D],
        patlen: 30,
    };
    assert_eq!(short.pattern_bit(30), short.pattern_bit(0));
    assert_eq!(short.pattern_bit(34), Some(Variant::B)); // 34 mod 30 = 4
    assert_eq!(
        short.pattern_bit(u32::MAX),
        short.pattern_bit(u32::MAX % 30)
    );
    // Through a token round trip.
    let t = encode(&direct(), &hmac()).unwrap();
    let back = decode_and_verify(&t, &hmac().verifier(), NOW).unwrap();
    assert_eq!(back.pattern.pattern_bit(3), Some(Variant::A));
    // Indirect mode and inconsistent patterns have no direct bit.
    assert_eq!(indirect().pattern.pattern_bit(0), None);
    let broken = PatternClaims::Direct {
        pattern: vec![0xff],
        patlen: 16,
    };
    assert_eq!(broken.pattern_bit(7), Some(Variant::B));
    assert_eq!(broken.pattern_bit(8), None);
    let empty = PatternClaims::Direct {
        pattern: vec![],
        patlen: 0,
    };
    assert_eq!(empty.pattern_bit(0), None);
}

#[test]
fn debug_redacts_keys() {
    let s = format!("{:?} {:?}", hmac(), hmac().verifier());
    assert!(s.contains("redacted"), "{s}");
    assert!(!s.contains("90"), "{s}"); // 0x5a = 90
    let s = format!("{:?}", es256());
    assert!(s.contains("redacted"), "{s}");
}

/// `(r, s)` and `(r, n - s)` are both valid ECDSA signatures of the same data: only the
/// issuer's low-S spelling verifies, so one ES256 token has exactly one text.
#[test]
fn es256_high_s_spelling_is_refused() {
    let signer = es256();
    let public = signer.verifier();
    let t = encode(&indirect(), &signer).unwrap();
    let (tag, protected, payload, sig) = token_parts(&t);
    let low = p256::ecdsa::Signature::from_slice(&sig).unwrap();
    assert_eq!(low.normalize_s(), low, "the issuer signs low-S");
    let (r, s) = low.split_scalars();
    let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    assert_ne!(high, low);
    // The high-S twin is a mathematically valid signature...
    use p256::ecdsa::signature::Verifier as _;
    let sk = p256::ecdsa::SigningKey::from_slice(&ES256_SECRET).unwrap();
    let data = coset::sig_structure_data(
        coset::SignatureContext::CoseSign1,
        coset::ProtectedHeader::from_cbor_bstr(Value::Bytes(protected.clone())).unwrap(),
        None,
        &[],
        &payload,
    );
    assert!(sk.verifying_key().verify(&data, &high).is_ok());
    // ...but not a spelling the token verifier takes.
    let twin = Framing::canonical(tag, &protected, &payload, &high.to_bytes()).token();
    assert_ne!(twin, t);
    assert_eq!(
        decode_and_verify(&twin, &public, NOW),
        Err(TokenError::BadSignature)
    );
    assert_eq!(decode_and_verify(&t, &public, NOW).unwrap(), indirect());
}
