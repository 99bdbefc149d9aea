// Fuzz bodies of leaktrace-core: TS 104 002 tokens (CWT over COSE_Mac0 / COSE_Sign1) and the
// WMPaceInfo codecs (`wmpi` box, 40-bit payload, ingest JSON, CBOR sidecars, egress header).
//
// This file is `include!`d by the fuzz targets (fuzz/fuzz_targets/*.rs) and by the replay test
// crates/core/tests/fuzz_corpus.rs, so the corpus is replayed on stable by `cargo test` with
// exactly the code the fuzzer ran. Each body must not panic on any input; its assertions are
// properties that hold for every input the library accepts.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use leaktrace_core::codeword::SessionId;
use leaktrace_core::session::{select_variant, session_of};
use leaktrace_core::token::{
    self, DEFAULT_LEEWAY_SECS, MAX_TOKEN_LEN, PatternClaims, SegDuration, Signer, TokenError,
    Verifier, WmToken, decode_and_verify,
};
use leaktrace_core::wmpaceinfo::{
    IN_BAND_NOT_WATERMARKED, MAX_EGRESS_HEADER_LEN, MAX_POSITION, PaceInfo, Sidecar,
    SidecarSegment, WMPI_BOX_LEN, WmPaceInfoError,
};
use leaktrace_core::{Codebook, KeyVersion, MasterKey, TitleId};

/// HMAC-256/256 key of the fuzzed tokens (the token unit tests' key).
pub const HMAC_KEY: [u8; 32] = [0x5a; 32];
/// ES256 secret scalar of the fuzzed tokens (the token unit tests' key).
pub const ES256_SECRET: [u8; 32] = [
    0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16, 0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
    0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12, 0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21,
];
/// The verification time of every fuzzed token (seconds since the Unix epoch).
pub const NOW: u64 = 1_700_000_000;

struct Keys {
    hmac: Signer,
    es256: Signer,
    verifiers: [Verifier; 2],
    codebook: Codebook,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hmac = Signer::hmac_sha256(&HMAC_KEY);
        let es256 = match Signer::es256_from_bytes(&ES256_SECRET) {
            Ok(s) => s,
            Err(e) => panic!("fixed ES256 key: {e}"),
        };
        let verifiers = [hmac.verifier(), es256.verifier()];
        let title = match TitleId::new("fuzz") {
            Ok(t) => t,
            Err(e) => panic!("fixed title: {e}"),
        };
        let codebook = MasterKey::from_bytes([0x3c; 32], KeyVersion::new(1)).codebook(&title);
        Keys {
            hmac,
            es256,
            verifiers,
            codebook,
        }
    })
}

/// What must hold of claims that `decode_and_verify(_, verifier, NOW)` accepted; `signer` is
/// the key matching `verifier`.
fn check_verified(claims: &WmToken, signer: &Signer, verifier: &Verifier) {
    assert!(
        claims.exp.saturating_add(DEFAULT_LEEWAY_SECS) > NOW,
        "expired token accepted"
    );
    assert!(
        claims.iat <= NOW + DEFAULT_LEEWAY_SECS,
        "future token accepted"
    );
    assert!(claims.wmpatlen() >= 1, "wmpatlen 0 accepted");
    if let Some(sd) = claims.wmsegduration {
        assert!(
            sd.ticks > 0 && sd.timescale > 0,
            "zero wmsegduration accepted"
        );
    }
    if let PatternClaims::Direct { pattern, patlen } = &claims.pattern {
        assert_eq!(pattern.len(), usize::from(*patlen).div_ceil(8));
    }
    // What the edge does with verified claims: the session, then a variant per position.
    let _ = session_of(claims);
    for p in [0, 1, 7, u32::from(claims.wmpatlen()), u32::MAX] {
        let v = select_variant(&keys().codebook, claims, Some(p));
        if claims.pattern.pattern_bit(p).is_some() {
            assert_eq!(Some(v), claims.pattern.pattern_bit(p));
        }
    }
    // Re-encoding verified claims gives a token that verifies to the same claims.
    match token::encode(claims, signer) {
        Ok(again) => assert_eq!(
            decode_and_verify(&again, verifier, NOW).as_ref(),
            Ok(claims)
        ),
        // The input may have been a few bytes shorter (tags are optional on input).
        Err(TokenError::TooLarge { .. }) => {}
        Err(e) => panic!("verified claims do not re-encode: {e}"),
    }
}

/// `decode_and_verify` on arbitrary input. First byte: bit 0 set = the rest is the raw CBOR of
/// the token (base64url-encoded here, so the fuzzer works on the structure), else the rest is
/// the token text. Both the HMAC and the ES256 verifier are tried: a forged token is rejected
/// by the MAC or signature; mutations outside the authenticated bytes (the unprotected header,
/// the tags) of the valid seed tokens get through to the claims checks.
pub fn token_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode & 1 == 1 {
        URL_SAFE_NO_PAD.encode(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let k = keys();
    for (signer, verifier) in [(&k.hmac, &k.verifiers[0]), (&k.es256, &k.verifiers[1])] {
        match decode_and_verify(&text, verifier, NOW) {
            Ok(claims) => check_verified(&claims, signer, verifier),
            Err(TokenError::TooLarge { len, max }) => {
                assert_eq!((len, max), (text.len(), MAX_TOKEN_LEN));
                assert!(len > MAX_TOKEN_LEN);
            }
            Err(TokenError::Signing) => panic!("decoding reported a signing error"),
            Err(_) => {}
        }
    }
}

/// Appends a CBOR head (major type, argument) in the shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn cbor_bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A COSE_Mac0 (HMAC 256/256, protected header `{1: 5}`) around an arbitrary claims payload,
/// MAC'd with [`HMAC_KEY`], optionally tagged 61 (CWT) and 17 (COSE_Mac0).
pub fn mac0_token(payload: &[u8], cwt_tag: bool, cose_tag: bool) -> String {
    const PROTECTED: [u8; 3] = [0xa1, 0x01, 0x05];
    // MAC_structure = ["MAC0", protected, external_aad = h'', payload] (RFC 9052 §6.3).
    let mut to_mac = vec![0x84];
    cbor_head(&mut to_mac, 3, 4);
    to_mac.extend_from_slice(b"MAC0");
    cbor_bstr(&mut to_mac, &PROTECTED);
    cbor_bstr(&mut to_mac, &[]);
    cbor_bstr(&mut to_mac, payload);
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&HMAC_KEY) {
        Ok(m) => m,
        Err(e) => panic!("HMAC key: {e}"),
    };
    mac.update(&to_mac);
    let tag = mac.finalize().into_bytes();
    let mut out = Vec::with_capacity(payload.len() + 64);
    if cwt_tag {
        cbor_head(&mut out, 6, 61);
    }
    if cose_tag {
        cbor_head(&mut out, 6, 17);
    }
    out.push(0x84);
    cbor_bstr(&mut out, &PROTECTED);
    out.push(0xa0);
    cbor_bstr(&mut out, payload);
    cbor_bstr(&mut out, &tag);
    URL_SAFE_NO_PAD.encode(out)
}

/// A little reader of fuzz bytes for structured inputs: zeros once the input is used up.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn slice(&mut self, len: usize) -> &'a [u8] {
        let n = len.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8());
        String::from_utf8_lossy(self.slice(n)).into_owned()
    }
}

/// Claims built from fuzz bytes: valid at [`NOW`] unless the bytes ask for a zero `wmpatlen` or
/// `wmsegduration` (which `encode` must refuse).
fn claims_from(b: &mut Bytes<'_>) -> Option<WmToken> {
    let flags = b.u8();
    let iss = (flags & 1 != 0).then(|| b.text());
    let exp = NOW + u64::from(b.u16());
    let iat = NOW - u64::from(b.u16());
    let cti = (flags & 2 != 0).then(|| {
        let n = usize::from(b.u8());
        b.slice(n).to_vec()
    });
    let wmvnd = b.u64();
    let wmsegduration = (flags & 4 != 0).then(|| SegDuration {
        ticks: b.u64(),
        timescale: b.u64(),
    });
    let patlen = b.u16();
    let pattern = if flags & 8 != 0 {
        let n = usize::from(patlen).div_ceil(8);
        let mut pattern = b.slice(n).to_vec();
        pattern.resize(n, 0x5a);
        PatternClaims::Direct { pattern, patlen }
    } else {
        PatternClaims::Indirect {
            wmid: SessionId::new(b.text()).ok()?,
            wmopid: b.u64(),
            wmkeyver: (flags & 16 != 0).then(|| b.u64()),
            patlen,
        }
    };
    Some(WmToken {
        iss,
        exp,
        iat,
        cti,
        wmvnd,
        wmsegduration,
        pattern,
    })
}

/// The claims parser behind a valid MAC. First byte: bit 0 = CWT tag, bit 1 = COSE tag; bit 7
/// set = the rest builds claims (structured) that are encoded, signed, and must decode to the
/// same claims; else the rest is the CBOR claims set itself, MAC'd here with the verifier's key
/// so that `decode_and_verify` reaches the claims checks for every input.
pub fn token_claims(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    if sel & 0x80 != 0 {
        let Some(claims) = claims_from(&mut Bytes(rest)) else {
            return;
        };
        let signer = if sel & 0x40 != 0 { &k.es256 } else { &k.hmac };
        let verifier = signer.verifier();
        match token::encode(&claims, signer) {
            Ok(t) => {
                assert!(t.len() <= MAX_TOKEN_LEN);
                assert_eq!(decode_and_verify(&t, &verifier, NOW).as_ref(), Ok(&claims));
                // The other algorithm's verifier never accepts it.
                let other = if sel & 0x40 != 0 {
                    &k.verifiers[0]
                } else {
                    &k.verifiers[1]
                };
                assert!(decode_and_verify(&t, other, NOW).is_err());
            }
            Err(TokenError::InvalidClaim(_)) => {
                let zero_seg = claims
                    .wmsegduration
                    .is_some_and(|s| s.ticks == 0 || s.timescale == 0);
                assert!(claims.wmpatlen() == 0 || zero_seg, "valid claims refused");
            }
            Err(TokenError::TooLarge { .. }) => {}
            Err(e) => panic!("encode failed: {e}"),
        }
        return;
    }
    let token = mac0_token(rest, sel & 1 != 0, sel & 2 != 0);
    match decode_and_verify(&token, &k.verifiers[0], NOW) {
        Ok(claims) => check_verified(&claims, &k.hmac, &k.verifiers[0]),
        Err(TokenError::BadSignature | TokenError::AlgorithmMismatch { .. }) => {
            if token.len() <= MAX_TOKEN_LEN {
                panic!("a correctly MAC'd token was refused as forged");
            }
        }
        Err(_) => {}
    }
    // The ES256 verifier refuses every COSE_Mac0.
    assert!(decode_and_verify(&token, &k.verifiers[1], NOW).is_err());
}

/// `PaceInfo` codecs: the `wmpi` box, the 40-bit payload and the `WMPaceInfoIngest` JSON, on the
/// whole input each; then a `PaceInfo` built from the input's first bytes is encoded.
pub fn wmpi_box(data: &[u8]) {
    if let Ok(p) = PaceInfo::from_wmpi_box(data) {
        assert!(p.validate().is_ok());
        assert!(data.len() == WMPI_BOX_LEN || data.len() == 21);
        let b = match p.to_wmpi_box() {
            Ok(b) => b,
            Err(e) => panic!("decoded box does not re-encode: {e}"),
        };
        assert_eq!(PaceInfo::from_wmpi_box(&b), Ok(p));
        // Same payload bytes but for the 5 reserved bits.
        let payload = &data[data.len() - 5..];
        assert_eq!(&b[8..12], &payload[..4]);
        assert_eq!(b[12], payload[4] & 0xe0);
    }
    if let Ok(p) = PaceInfo::from_wmpi_payload(data) {
        assert_eq!(data.len(), 5);
        match p.to_wmpi_payload() {
            Ok(b) => assert_eq!(PaceInfo::from_wmpi_payload(&b), Ok(p)),
            Err(e) => panic!("decoded payload does not re-encode: {e}"),
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(p) = PaceInfo::from_ingest_json(text)
    {
        assert!(p.validate().is_ok());
        match p.to_ingest_json() {
            Ok(j) => assert_eq!(PaceInfo::from_ingest_json(&j), Ok(p)),
            Err(e) => panic!("decoded ingest JSON does not re-encode: {e}"),
        }
        // In-band carriage: every position but 32767.
        assert_eq!(
            p.to_wmpi_box().is_ok(),
            p.position != Some(MAX_POSITION),
            "{p:?}"
        );
    }
    // Encoder side: any PaceInfo either encodes and decodes back, or is refused for a reason.
    let mut b = Bytes(data);
    let raw = b.u16();
    let p = PaceInfo {
        version: b.u8(),
        variant: b.u8(),
        position: (raw != u16::MAX).then_some(raw & 0x7fff),
        first_part: b.bool(),
        last_part: b.bool(),
    };
    match p.to_wmpi_box() {
        Ok(bx) => {
            assert_eq!(PaceInfo::from_wmpi_box(&bx), Ok(p));
            assert_ne!(p.position, Some(IN_BAND_NOT_WATERMARKED));
        }
        Err(WmPaceInfoError::PositionNotInBandEncodable) => {
            assert_eq!(p.position, Some(IN_BAND_NOT_WATERMARKED));
        }
        Err(_) => assert!(p.validate().is_err()),
    }
    match p.to_ingest_json() {
        Ok(j) => assert_eq!(PaceInfo::from_ingest_json(&j), Ok(p)),
        Err(_) => assert!(p.validate().is_err()),
    }
}

/// What must hold of a decoded (so valid) sidecar.
fn check_sidecar(s: &Sidecar) {
    assert!(s.validate().is_ok());
    let enc = match s.to_cbor() {
        Ok(e) => e,
        Err(e) => panic!("decoded sidecar does not re-encode: {e}"),
    };
    assert_eq!(Sidecar::from_cbor(&enc).as_ref(), Ok(s));
    assert_eq!(Sidecar::from_cbor_strict(&enc).as_ref(), Ok(s));
    let single = s.file_size.is_none() && s.segments.len() == 1;
    match s.to_egress_header() {
        Ok(h) => {
            assert!(single);
            let back = match Sidecar::from_egress_header(&h) {
                Ok(b) => b,
                Err(e) => panic!("egress header does not decode: {e}"),
            };
            assert_eq!(back, Sidecar::for_discrete_segment(s.segments[0].position));
        }
        Err(_) => assert!(!single),
    }
    // Byterange look-ups: a one-byte range is the position at that byte, and a range across two
    // segments of different positions is refused (clause 5.7.5.4).
    if let Some(size) = s.file_size {
        let starts: Vec<u64> = s.segments.iter().filter_map(|g| g.start_range).collect();
        let mut probes = vec![0, size - 1, size, u64::MAX];
        for &x in starts.iter().take(32) {
            probes.extend([x, x.saturating_sub(1), x.saturating_add(1)]);
        }
        for &x in &probes {
            assert_eq!(s.position_for_byte_range(x, x), s.position_at(x));
            if x >= size {
                assert_eq!(s.position_at(x), None);
            }
        }
        for (i, pair) in s.segments.windows(2).enumerate().take(32) {
            let (Some(a), Some(b)) = (pair[0].start_range, pair[1].start_range) else {
                panic!("byterange segment {i} without startRange");
            };
            assert_eq!(s.position_at(a), Some(pair[0].position));
            assert_eq!(s.position_at(b - 1), Some(pair[0].position));
            let across = s.position_for_byte_range(a, b);
            if pair[0].position == pair[1].position {
                assert_eq!(across, Some(pair[0].position));
            } else {
                assert_eq!(across, None);
            }
        }
    } else {
        assert_eq!(s.position_at(0), None);
    }
}

/// A sidecar built from fuzz bytes (valid or not).
fn sidecar_from(b: &mut Bytes<'_>) -> Sidecar {
    let flags = b.u8();
    let file_size = (flags & 1 != 0).then(|| b.u64() >> (b.u8() % 64));
    let count = usize::from(b.u8() % 8);
    let mut segments = Vec::with_capacity(count);
    let mut start = 0u64;
    for _ in 0..count {
        let raw = b.u16();
        let f = b.u8();
        let mut seg = SidecarSegment {
            position: (raw != u16::MAX).then_some(raw & 0x7fff),
            ..SidecarSegment::default()
        };
        if f & 1 != 0 {
            seg.start_range = Some(start);
            start = start.saturating_add(u64::from(b.u16()));
        }
        if f & 2 != 0 {
            seg.segment_regex = Some(b.text());
        }
        if f & 4 != 0 {
            seg.first_part = Some(f & 8 != 0);
        }
        if f & 16 != 0 {
            seg.last_part = Some(f & 32 != 0);
        }
        segments.push(seg);
    }
    Sidecar {
        version: if flags & 2 != 0 { b.u8() } else { 1 },
        file_size,
        segments,
    }
}

/// Sidecar codecs: CBOR (lenient and strict), the `WMPaceInfoEgress` header (the input as header
/// text, and the input's base64url), byterange look-ups; then a sidecar built from the input is
/// encoded and must decode back.
pub fn sidecar(data: &[u8]) {
    let lenient = Sidecar::from_cbor(data);
    if let Ok(s) = &lenient {
        check_sidecar(s);
    }
    if let Ok(s) = Sidecar::from_cbor_strict(data) {
        assert_eq!(lenient.as_ref(), Ok(&s));
        assert_eq!(s.to_cbor().ok().as_deref(), Some(data));
    }
    // The header is the base64url of the CBOR: it decodes exactly when the CBOR does and holds
    // one discrete segment.
    let header = URL_SAFE_NO_PAD.encode(data);
    if header.len() <= MAX_EGRESS_HEADER_LEN {
        let expect = lenient
            .as_ref()
            .is_ok_and(|s| s.file_size.is_none() && s.segments.len() == 1);
        assert_eq!(Sidecar::from_egress_header(&header).is_ok(), expect);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(s) = Sidecar::from_egress_header(text)
    {
        assert!(s.file_size.is_none() && s.segments.len() == 1);
        check_sidecar(&s);
    }
    let built = sidecar_from(&mut Bytes(data));
    match built.to_cbor() {
        Ok(enc) => {
            assert!(built.validate().is_ok());
            assert_eq!(Sidecar::from_cbor_strict(&enc).as_ref(), Ok(&built));
            check_sidecar(&built);
        }
        Err(_) => assert!(built.validate().is_err()),
    }
}
