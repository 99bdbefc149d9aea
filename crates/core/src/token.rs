//! Watermarking tokens (WM tokens) per ETSI TS 104 002 clause 5.4.
//!
//! A WM token is a CBOR Web Token (CWT, RFC 8392) whose claims set carries the session's
//! watermarking information; the edge verifies it on every segment request and picks variant A or
//! B from it. This module encodes and verifies such tokens; it does no I/O.
//!
//! # Wire format
//!
//! ```text
//! token   = base64url-without-padding( CBOR( #6.61( COSE ) ) )
//! COSE    = #6.17([ h'A10105', {}, claims-bstr, tag ])        ; COSE_Mac0, HMAC 256/256 (alg 5)
//!         / #6.18([ h'A10126', {}, claims-bstr, signature ])  ; COSE_Sign1, ES256 (alg -7)
//! claims  = { ? 1: tstr, 4: uint, 6: uint, ? 7: bstr,       ; iss, exp, iat, cti
//!             300: 1, 301: uint, 302: uint .size 2,          ; wmver, wmvnd, wmpatlen
//!             ? 303: [ticks: uint, timescale: uint],         ; wmsegduration
//!             ( 304: bstr                                    ; wmpattern (direct mode)
//!             // 305: tstr, 306: uint, ? 307: uint ) }       ; wmid, wmopid, wmkeyver (indirect)
//! ```
//!
//! * The claims set is encoded with RFC 8949 §4.2.1 core deterministic encoding: shortest-form
//!   integers and lengths, definite lengths only, map keys sorted by their encoded bytes. The whole
//!   token is encoded the same way, so a given (claims, key) always yields the same string
//!   (ES256 signatures are deterministic too: RFC 6979 nonces).
//! * The COSE object is wrapped in the CWT tag 61 (RFC 8392 §6), its unprotected header is an
//!   empty map.
//! * Input must be exactly what [`encode`] writes: tag 61 around the COSE tag (17 or 18, which
//!   must match the verifier), an empty unprotected header, and deterministic CBOR throughout,
//!   in the envelope, the protected header and the claims (shortest-form integers, lengths and
//!   tags, definite lengths, map keys sorted by their encoding, no duplicates). A token in any
//!   other encoding is refused with [`TokenError::NonCanonical`], even when its MAC or
//!   signature verifies: a token has one spelling, so a cache keyed by token text holds one
//!   entry per token. (An ES256 signature `(r, s)` also verifies as `(r, n - s)`, so an ES256
//!   token has two spellings; that cannot grow further.)
//! * The `alg` header must be in the protected header and must match the verifier's algorithm;
//!   a protected `crit` header is rejected (no critical extensions are understood).
//! * Input is bounded: at most [`MAX_TOKEN_LEN`] characters (a direct-mode token with a full
//!   65 535-bit pattern is about 11 KiB of base64url).
//!
//! # Validation
//!
//! [`decode_and_verify`] checks, in order: the size limit, base64url, the CBOR/COSE structure and
//! its canonical form, the algorithm, the canonical form of the protected header, the MAC or
//! signature, then the claims: `exp` and `iat` present, `exp + leeway > now`,
//! `iat ≤ now + leeway` (and `nbf ≤ now + leeway` if an `nbf` claim is present), `wmver == 1`,
//! `wmvnd` present, `0 < wmpatlen ≤ 65 535`, and exactly one of direct (`wmpattern`) or indirect
//! (`wmid` + `wmopid`) mode. The leeway is [`DEFAULT_LEEWAY_SECS`] (60 s, as Akamai's reference
//! EdgeWorkers module defaults to). Unknown claims are ignored; duplicate claim keys are rejected.
//! Last, the claims must be deterministic CBOR. Nothing is trusted before the MAC or signature
//! has been verified.
//!
//! # Direct-mode bit addressing
//!
//! `wmpattern` is read big-endian: position 0 is the most significant bit of byte 0
//! (TS 104 002 example: pattern `0x0A0B0C0D` at position 3 gives bit 0). Positions at or beyond
//! `wmpatlen` wrap modulo `wmpatlen`, as the deployed TS 104 002 edges do (see
//! [`PatternClaims::pattern_bit`]). Indirect mode is leaktrace's default: the edge derives each bit from
//! `wmid` with [`crate::codeword::Codebook`], which never wraps.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value;
use coset::{
    AsCborValue, CoseMac0, CoseMac0Builder, CoseSign1, CoseSign1Builder, HeaderBuilder,
    RegisteredLabelWithPrivate, iana,
};
use hmac::{KeyInit, Mac};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use sha2::Sha256;

use crate::codeword::{SessionId, Variant};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Longest token accepted or produced, in base64url characters (16 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Clock-skew allowance applied to `exp`, `iat` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Most entries accepted in a claims map (a WM token has at most 14 known claims).
pub const MAX_CLAIMS: usize = 64;

/// The only `wmver` value defined by TS 104 002.
pub const WMVER: u64 = 1;

/// CWT tag (RFC 8392 §6).
pub const CWT_TAG: u64 = 61;
/// COSE_Mac0 tag (RFC 9052).
pub const COSE_MAC0_TAG: u64 = 17;
/// COSE_Sign1 tag (RFC 9052).
pub const COSE_SIGN1_TAG: u64 = 18;

/// Integer claim keys used by WM tokens (RFC 8392 §4 and TS 104 002 clause 5.4).
pub mod claim {
    /// `iss`: issuer (text).
    pub const ISS: u64 = 1;
    /// `exp`: expiration time (NumericDate).
    pub const EXP: u64 = 4;
    /// `nbf`: not before (NumericDate); honoured if present, never emitted.
    pub const NBF: u64 = 5;
    /// `iat`: issued at (NumericDate).
    pub const IAT: u64 = 6;
    /// `cti`: CWT id (bytes).
    pub const CTI: u64 = 7;
    /// `wmver`: token version, = 1.
    pub const WMVER: u64 = 300;
    /// `wmvnd`: watermarking vendor id (DASH-IF registry).
    pub const WMVND: u64 = 301;
    /// `wmpatlen`: pattern length in bits (`uint .size 2`).
    pub const WMPATLEN: u64 = 302;
    /// `wmsegduration`: `[ticks, timescale]`.
    pub const WMSEGDURATION: u64 = 303;
    /// `wmpattern`: the pattern bytes (direct mode).
    pub const WMPATTERN: u64 = 304;
    /// `wmid`: session/watermark id (indirect mode).
    pub const WMID: u64 = 305;
    /// `wmopid`: operator id (indirect mode).
    pub const WMOPID: u64 = 306;
    /// `wmkeyver`: key version (indirect mode).
    pub const WMKEYVER: u64 = 307;
}

/// Errors from encoding or verifying a WM token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is longer than [`MAX_TOKEN_LEN`] characters.
    #[error("token is {len} characters long, the limit is {max}")]
    TooLarge {
        /// Length of the rejected token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is not unpadded base64url.
    #[error("token is not unpadded base64url")]
    Base64,
    /// The CBOR or COSE structure is invalid.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token carries a CBOR tag other than 61, 17 or 18 where a COSE object is expected, or a
    /// COSE tag that does not match the verifier's algorithm.
    #[error("unexpected CBOR tag {0}")]
    UnexpectedTag(u64),
    /// The protected `alg` header is missing or is not the verifier's algorithm.
    #[error("algorithm mismatch: expected COSE alg {expected}, token has {found:?}")]
    AlgorithmMismatch {
        /// COSE algorithm id the verifier expects.
        expected: i64,
        /// COSE algorithm id in the token's protected header (`None`: absent or not an integer).
        found: Option<i64>,
    },
    /// The protected header lists critical extensions, which are not supported.
    #[error("token has critical header parameters, none are supported")]
    CriticalHeader,
    /// The token is not in the one encoding the issuer writes (see the module documentation):
    /// a missing tag, a non-empty unprotected header, or CBOR that is not deterministic
    /// (longer integer or length forms than needed, indefinite lengths, unsorted map keys).
    #[error("token is not canonically encoded: {0}")]
    NonCanonical(&'static str),
    /// The MAC or signature does not verify.
    #[error("MAC or signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("missing claim: {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an out-of-range value.
    #[error("invalid claim: {0}")]
    InvalidClaim(&'static str),
    /// `wmver` is not 1.
    #[error("unsupported wmver {0}, only 1 is defined")]
    UnsupportedVersion(u64),
    /// `exp + leeway ≤ now`.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// The verification time.
        now: u64,
    },
    /// `iat` (or `nbf`) is later than `now + leeway`.
    #[error("token not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The `iat` or `nbf` claim that is in the future.
        not_before: u64,
        /// The verification time.
        now: u64,
    },
    /// An ES256 key could not be parsed.
    #[error("invalid ES256 key")]
    InvalidKey,
    /// Producing the MAC or signature failed.
    #[error("signing failed")]
    Signing,
}

/// The `wmsegduration` claim: segment duration `ticks / timescale` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegDuration {
    /// Duration in `timescale` units (> 0).
    pub ticks: u64,
    /// Ticks per second (> 0).
    pub timescale: u64,
}

/// The TS 104 002 token mode: how the edge obtains the session's A/B pattern. The claims
/// that go with each mode are [`PatternClaims`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenMode {
    /// `wmid` carries the session id; the edge derives each bit (default).
    #[default]
    Indirect,
    /// `wmpattern` carries the session's codeword bits for positions `0..n`.
    Direct,
}

/// The claims that carry (direct mode) or derive (indirect mode) the session's A/B pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PatternClaims {
    /// Indirect mode (leaktrace's default): the edge derives bits from `wmid` and its keys.
    Indirect {
        /// `wmid` (305): the session id.
        wmid: SessionId,
        /// `wmopid` (306): operator id.
        wmopid: u64,
        /// `wmkeyver` (307): version of the key that derives the pattern, if given.
        wmkeyver: Option<u64>,
        /// `wmpatlen` (302). leaktrace's codeword never wraps, so its tokens use 65 535
        /// ("the whole position range"); the value is carried for interoperability.
        patlen: u16,
    },
    /// Direct mode: the pattern travels in the token, unencrypted.
    Direct {
        /// `wmpattern` (304): `ceil(patlen / 8)` bytes, big-endian bit order.
        pattern: Vec<u8>,
        /// `wmpatlen` (302): number of meaningful bits in `pattern` (1..=65 535).
        patlen: u16,
    },
}

impl PatternClaims {
    /// The mode these claims belong to.
    #[must_use]
    pub const fn mode(&self) -> TokenMode {
        match self {
            Self::Indirect { .. } => TokenMode::Indirect,
            Self::Direct { .. } => TokenMode::Direct,
        }
    }

    /// The `wmpatlen` claim.
    #[must_use]
    pub const fn patlen(&self) -> u16 {
        match self {
            Self::Indirect { patlen, .. } | Self::Direct { patlen, .. } => *patlen,
        }
    }

    /// Direct mode: the variant at `position`; `None` in indirect mode or if the pattern is
    /// shorter than `patlen` bits.
    ///
    /// Bits are addressed big-endian (position 0 = MSB of byte 0, TS 104 002's example
    /// `0x0A0B0C0D` at position 3 → 0). Positions `≥ patlen` wrap: the index is
    /// `position mod patlen`. The TS 104 002 text available to us does not say what an edge does
    /// past `wmpatlen`; wrapping is what the deployed implementations do (Akamai's EdgeWorkers
    /// watermarking module, the DASH-IF/Unified Streaming demo edge).
    #[must_use]
    pub fn pattern_bit(&self, position: u32) -> Option<Variant> {
        match self {
            Self::Indirect { .. } => None,
            Self::Direct { pattern, patlen } => {
                if *patlen == 0 {
                    return None;
                }
                let idx = position % u32::from(*patlen);
                let byte = *pattern.get((idx / 8) as usize)?;
                Some(Variant::from_bit((byte >> (7 - idx % 8)) & 1 == 1))
            }
        }
    }
}

/// The claims of a WM token. `wmver` is implied (always 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WmToken {
    /// `iss` (1): issuer, optional.
    pub iss: Option<String>,
    /// `exp` (4): expiration, seconds since the Unix epoch. Required.
    pub exp: u64,
    /// `iat` (6): issue time, seconds since the Unix epoch. Required.
    pub iat: u64,
    /// `cti` (7): token id, optional.
    pub cti: Option<Vec<u8>>,
    /// `wmvnd` (301): vendor id. Required.
    pub wmvnd: u64,
    /// `wmsegduration` (303): optional fallback for deriving positions from time.
    pub wmsegduration: Option<SegDuration>,
    /// Direct or indirect mode, with their claims (302, 304–307).
    pub pattern: PatternClaims,
}

impl WmToken {
    /// The `wmpatlen` claim.
    #[must_use]
    pub const fn wmpatlen(&self) -> u16 {
        self.pattern.patlen()
    }
}

/// Signature algorithms supported for WM tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256, 256-bit tag (COSE alg 5), in a COSE_Mac0.
    Hmac256_256,
    /// ECDSA P-256 with SHA-256 (COSE alg -7), in a COSE_Sign1.
    Es256,
}

impl Algorithm {
    /// The COSE algorithm identifier.
    #[must_use]
    pub const fn cose_id(self) -> i64 {
        match self {
            Self::Hmac256_256 => 5,
            Self::Es256 => -7,
        }
    }

    const fn iana(self) -> iana::Algorithm {
        match self {
            Self::Hmac256_256 => iana::Algorithm::HMAC_256_256,
            Self::Es256 => iana::Algorithm::ES256,
        }
    }

    const fn cose_tag(self) -> u64 {
        match self {
            Self::Hmac256_256 => COSE_MAC0_TAG,
            Self::Es256 => COSE_SIGN1_TAG,
        }
    }
}

enum SignerKey {
    Hmac([u8; 32]),
    Es256(p256::ecdsa::SigningKey),
}

/// A token-signing key: HMAC-256/256 or ES256.
pub struct Signer(SignerKey);

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({:?}, <redacted>)", self.algorithm())
    }
}

impl Signer {
    /// HMAC 256/256 with a 32-byte key (e.g. derived with BLAKE3 `derive_key`).
    #[must_use]
    pub fn hmac_sha256(key: &[u8; 32]) -> Self {
        Self(SignerKey::Hmac(*key))
    }

    /// ES256 with a P-256 signing key.
    #[must_use]
    pub fn es256(key: p256::ecdsa::SigningKey) -> Self {
        Self(SignerKey::Es256(key))
    }

    /// ES256 from a 32-byte big-endian secret scalar.
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] if the scalar is zero or not below the group order.
    pub fn es256_from_bytes(secret: &[u8; 32]) -> Result<Self, TokenError> {
        p256::ecdsa::SigningKey::from_slice(secret)
            .map(Self::es256)
            .map_err(|_| TokenError::InvalidKey)
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self.0 {
            SignerKey::Hmac(_) => Algorithm::Hmac256_256,
            SignerKey::Es256(_) => Algorithm::Es256,
        }
    }

    /// The matching verifier (same HMAC key, or the ES256 public key).
    #[must_use]
    pub fn verifier(&self) -> Verifier {
        match &self.0 {
            SignerKey::Hmac(k) => Verifier(VerifierKey::Hmac(*k)),
            SignerKey::Es256(k) => Verifier(VerifierKey::Es256(*k.verifying_key())),
        }
    }
}

#[derive(Clone)]
enum VerifierKey {
    Hmac([u8; 32]),
    Es256(p256::ecdsa::VerifyingKey),
}

/// A token-verification key: the HMAC key or an ES256 public key.
#[derive(Clone)]
pub struct Verifier(VerifierKey);

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VerifierKey::Hmac(_) => f.write_str("Verifier(Hmac256_256, <redacted>)"),
            VerifierKey::Es256(k) => write!(f, "Verifier(Es256, {k:?})"),
        }
    }
}

impl Verifier {
    /// HMAC 256/256 with a 32-byte key.
    #[must_use]
    pub fn hmac_sha256(key: &[u8; 32]) -> Self {
        Self(VerifierKey::Hmac(*key))
    }

    /// ES256 with a P-256 public key.
    #[must_use]
    pub fn es256(key: p256::ecdsa::VerifyingKey) -> Self {
        Self(VerifierKey::Es256(key))
    }

    /// ES256 from a SEC1-encoded public key (compressed or uncompressed point).
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] if the bytes are not a valid P-256 point.
    pub fn es256_from_sec1(bytes: &[u8]) -> Result<Self, TokenError> {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(Self::es256)
            .map_err(|_| TokenError::InvalidKey)
    }

    /// The algorithm this key verifies.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self.0 {
            VerifierKey::Hmac(_) => Algorithm::Hmac256_256,
            VerifierKey::Es256(_) => Algorithm::Es256,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CBOR helpers
// ---------------------------------------------------------------------------------------------

fn cbor_to_vec(value: &Value) -> Result<Vec<u8>, TokenError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|_| TokenError::Malformed("CBOR encoding"))?;
    Ok(out)
}

/// Decodes exactly one CBOR item from `bytes`, rejecting trailing data.
fn cbor_from_slice(bytes: &[u8]) -> Result<Value, TokenError> {
    let mut rest = bytes;
    let value: Value =
        ciborium::from_reader(&mut rest).map_err(|_| TokenError::Malformed("invalid CBOR"))?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(TokenError::Malformed("trailing bytes after CBOR item"))
    }
}

/// Whether every map in `value` has its keys in strictly ascending order of their encodings
/// (RFC 8949 §4.2.1), which also excludes duplicate keys. The depth is bounded by the decoder's
/// recursion limit.
fn maps_sorted(value: &Value) -> Result<bool, TokenError> {
    Ok(match value {
        Value::Map(entries) => {
            let mut previous: Option<Vec<u8>> = None;
            for (k, v) in entries {
                let key = cbor_to_vec(k)?;
                if previous.as_ref().is_some_and(|p| *p >= key)
                    || !maps_sorted(k)?
                    || !maps_sorted(v)?
                {
                    return Ok(false);
                }
                previous = Some(key);
            }
            true
        }
        Value::Array(items) => {
            for item in items {
                if !maps_sorted(item)? {
                    return Ok(false);
                }
            }
            true
        }
        Value::Tag(_, inner) => maps_sorted(inner)?,
        _ => true,
    })
}

/// Checks that `bytes` are `value` in core deterministic encoding: re-encoding the decoded
/// value (every integer, length and tag in its shortest form, definite lengths) gives the same
/// bytes, and every map is sorted.
fn check_deterministic(value: &Value, bytes: &[u8], what: &'static str) -> Result<(), TokenError> {
    if cbor_to_vec(value)? == bytes && maps_sorted(value)? {
        Ok(())
    } else {
        Err(TokenError::NonCanonical(what))
    }
}

fn uint(v: u64) -> Value {
    Value::Integer(v.into())
}

/// Builds a map with RFC 8949 §4.2.1 key order (bytewise order of the encoded keys).
fn deterministic_map(mut entries: Vec<(u64, Value)>) -> Result<Value, TokenError> {
    let mut keyed = Vec::with_capacity(entries.len());
    for (k, v) in entries.drain(..) {
        keyed.push((cbor_to_vec(&uint(k))?, k, v));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Map(
        keyed.into_iter().map(|(_, k, v)| (uint(k), v)).collect(),
    ))
}

/// The claims set as deterministic CBOR bytes.
fn encode_claims(claims: &WmToken) -> Result<Vec<u8>, TokenError> {
    let mut e: Vec<(u64, Value)> = Vec::with_capacity(12);
    if let Some(iss) = &claims.iss {
        e.push((claim::ISS, Value::Text(iss.clone())));
    }
    e.push((claim::EXP, uint(claims.exp)));
    e.push((claim::IAT, uint(claims.iat)));
    if let Some(cti) = &claims.cti {
        e.push((claim::CTI, Value::Bytes(cti.clone())));
    }
    e.push((claim::WMVER, uint(WMVER)));
    e.push((claim::WMVND, uint(claims.wmvnd)));
    let patlen = claims.pattern.patlen();
    if patlen == 0 {
        return Err(TokenError::InvalidClaim("wmpatlen must be at least 1"));
    }
    e.push((claim::WMPATLEN, uint(u64::from(patlen))));
    if let Some(sd) = claims.wmsegduration {
        if sd.ticks == 0 || sd.timescale == 0 {
            return Err(TokenError::InvalidClaim(
                "wmsegduration ticks and timescale must be positive",
            ));
        }
        e.push((
            claim::WMSEGDURATION,
            Value::Array(vec![uint(sd.ticks), uint(sd.timescale)]),
        ));
    }
    match &claims.pattern {
        PatternClaims::Direct { pattern, patlen } => {
            if pattern.len() != usize::from(*patlen).div_ceil(8) {
                return Err(TokenError::InvalidClaim(
                    "wmpattern must be ceil(wmpatlen / 8) bytes",
                ));
            }
            e.push((claim::WMPATTERN, Value::Bytes(pattern.clone())));
        }
        PatternClaims::Indirect {
            wmid,
            wmopid,
            wmkeyver,
            ..
        } => {
            e.push((claim::WMID, Value::Text(wmid.as_str().to_owned())));
            e.push((claim::WMOPID, uint(*wmopid)));
            if let Some(kv) = wmkeyver {
                e.push((claim::WMKEYVER, uint(*kv)));
            }
        }
    }
    cbor_to_vec(&deterministic_map(e)?)
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn hmac_tag(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, TokenError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| TokenError::Signing)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Wraps a claims payload in COSE + CWT tag and base64url-encodes it.
fn sign_payload(payload: Vec<u8>, signer: &Signer) -> Result<String, TokenError> {
    let alg = signer.algorithm();
    let protected = HeaderBuilder::new().algorithm(alg.iana()).build();
    let cose = match &signer.0 {
        SignerKey::Hmac(key) => CoseMac0Builder::new()
            .protected(protected)
            .payload(payload)
            .try_create_tag(&[], |data| hmac_tag(key, data))?
            .build()
            .to_cbor_value(),
        SignerKey::Es256(key) => CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .try_create_signature(&[], |data| {
                // Low-S form: the one spelling the verifier accepts.
                key.try_sign(data)
                    .map(|sig: p256::ecdsa::Signature| sig.normalize_s().to_bytes().to_vec())
                    .map_err(|_| TokenError::Signing)
            })?
            .build()
            .to_cbor_value(),
    }
    .map_err(|_| TokenError::Malformed("COSE encoding"))?;
    let tagged = Value::Tag(
        CWT_TAG,
        Box::new(Value::Tag(alg.cose_tag(), Box::new(cose))),
    );
    let token = URL_SAFE_NO_PAD.encode(cbor_to_vec(&tagged)?);
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    Ok(token)
}

/// Encodes and signs a WM token.
///
/// # Errors
/// [`TokenError::InvalidClaim`] if `wmpatlen` is 0, a direct-mode pattern is not
/// `ceil(wmpatlen / 8)` bytes, or `wmsegduration` has a zero field; [`TokenError::TooLarge`] if the
/// result would exceed [`MAX_TOKEN_LEN`]; [`TokenError::Signing`] if the signature fails.
pub fn encode(claims: &WmToken, signer: &Signer) -> Result<String, TokenError> {
    sign_payload(encode_claims(claims)?, signer)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Unwraps the CWT tag and the COSE tag, which must match `alg`.
fn unwrap_tags(value: Value, alg: Algorithm) -> Result<Value, TokenError> {
    let inner = match value {
        Value::Tag(CWT_TAG, inner) => *inner,
        Value::Tag(tag, _) if tag != COSE_MAC0_TAG && tag != COSE_SIGN1_TAG => {
            return Err(TokenError::UnexpectedTag(tag));
        }
        _ => return Err(TokenError::NonCanonical("the CWT tag 61 is missing")),
    };
    match inner {
        Value::Tag(tag, cose) if tag == alg.cose_tag() => Ok(*cose),
        Value::Tag(tag, _) => Err(TokenError::UnexpectedTag(tag)),
        _ => Err(TokenError::NonCanonical("the COSE tag is missing")),
    }
}

/// Checks that a protected header is deterministic CBOR (it is authenticated, so only its
/// issuer could have written it otherwise).
fn check_protected_bytes(header: &coset::ProtectedHeader) -> Result<(), TokenError> {
    let bytes = header.original_data.as_deref().unwrap_or_default();
    check_deterministic(
        &cbor_from_slice(bytes)?,
        bytes,
        "the protected header is not deterministic CBOR",
    )
}

fn check_protected_header(header: &coset::Header, alg: Algorithm) -> Result<(), TokenError> {
    if !header.crit.is_empty() {
        return Err(TokenError::CriticalHeader);
    }
    match &header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) if *a == alg.iana() => Ok(()),
        Some(RegisteredLabelWithPrivate::Assigned(a)) => Err(TokenError::AlgorithmMismatch {
            expected: alg.cose_id(),
            found: Some(*a as i64),
        }),
        Some(RegisteredLabelWithPrivate::PrivateUse(a)) => Err(TokenError::AlgorithmMismatch {
            expected: alg.cose_id(),
            found: Some(*a),
        }),
        _ => Err(TokenError::AlgorithmMismatch {
            expected: alg.cose_id(),
            found: None,
        }),
    }
}

/// Verifies the COSE structure and returns the authenticated claims payload.
fn verify_cose(bytes: &[u8], verifier: &Verifier) -> Result<Vec<u8>, TokenError> {
    let alg = verifier.algorithm();
    let value = cbor_from_slice(bytes)?;
    // The envelope (tags, array, byte strings, unprotected map) is not authenticated: only its
    // one deterministic form is accepted.
    check_deterministic(&value, bytes, "the envelope is not deterministic CBOR")?;
    let value = unwrap_tags(value, alg)?;
    let Value::Array(items) = &value else {
        return Err(TokenError::Malformed(
            "COSE object must be a 4-element array",
        ));
    };
    if items.len() != 4 {
        return Err(TokenError::Malformed(
            "COSE object must be a 4-element array",
        ));
    }
    if matches!(items.get(1), Some(Value::Map(m)) if !m.is_empty()) {
        return Err(TokenError::NonCanonical(
            "the unprotected header must be empty",
        ));
    }
    match &verifier.0 {
        VerifierKey::Hmac(key) => {
            let mac0 = CoseMac0::from_cbor_value(value)
                .map_err(|_| TokenError::Malformed("invalid COSE_Mac0"))?;
            check_protected_header(&mac0.protected.header, alg)?;
            check_protected_bytes(&mac0.protected)?;
            mac0.verify_payload_tag(
                &[],
                || TokenError::Malformed("detached payload"),
                |tag, data| {
                    let mut mac =
                        HmacSha256::new_from_slice(key).map_err(|_| TokenError::BadSignature)?;
                    mac.update(data);
                    mac.verify_slice(tag).map_err(|_| TokenError::BadSignature)
                },
            )?;
            mac0.payload
                .ok_or(TokenError::Malformed("detached payload"))
        }
        VerifierKey::Es256(key) => {
            let sign1 = CoseSign1::from_cbor_value(value)
                .map_err(|_| TokenError::Malformed("invalid COSE_Sign1"))?;
            check_protected_header(&sign1.protected.header, alg)?;
            check_protected_bytes(&sign1.protected)?;
            if sign1.payload.is_none() {
                return Err(TokenError::Malformed("detached payload"));
            }
            sign1.verify_signature(&[], |sig, data| {
                let sig = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| TokenError::BadSignature)?;
                // (r, s) and (r, n - s) both verify; only the low-S one is the issuer's
                // spelling, so a token has one text and one cache entry at the edge.
                if sig.normalize_s() != sig {
                    return Err(TokenError::BadSignature);
                }
                key.verify(data, &sig).map_err(|_| TokenError::BadSignature)
            })?;
            sign1
                .payload
                .ok_or(TokenError::Malformed("detached payload"))
        }
    }
}

fn as_u64(value: &Value, name: &'static str) -> Result<u64, TokenError> {
    match value {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| TokenError::InvalidClaim(name)),
        _ => Err(TokenError::InvalidClaim(name)),
    }
}

/// Parsed but not yet cross-checked claims.
#[derive(Default)]
struct RawClaims {
    iss: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    cti: Option<Vec<u8>>,
    wmver: Option<u64>,
    wmvnd: Option<u64>,
    wmpatlen: Option<u64>,
    wmsegduration: Option<SegDuration>,
    wmpattern: Option<Vec<u8>>,
    wmid: Option<String>,
    wmopid: Option<u64>,
    wmkeyver: Option<u64>,
}

fn parse_claims(payload: &[u8]) -> Result<RawClaims, TokenError> {
    let Value::Map(entries) = cbor_from_slice(payload)? else {
        return Err(TokenError::Malformed("claims set must be a CBOR map"));
    };
    if entries.len() > MAX_CLAIMS {
        return Err(TokenError::Malformed("too many claims"));
    }
    let mut seen: Vec<&Value> = Vec::with_capacity(entries.len());
    for (k, _) in &entries {
        if seen.contains(&k) {
            return Err(TokenError::Malformed("duplicate claim key"));
        }
        seen.push(k);
    }
    let mut c = RawClaims::default();
    for (k, v) in entries {
        let Value::Integer(k) = k else { continue };
        let Ok(k) = u64::try_from(k) else { continue };
        match k {
            claim::ISS => match v {
                Value::Text(s) => c.iss = Some(s),
                _ => return Err(TokenError::InvalidClaim("iss")),
            },
            claim::EXP => c.exp = Some(as_u64(&v, "exp")?),
            claim::NBF => c.nbf = Some(as_u64(&v, "nbf")?),
            claim::IAT => c.iat = Some(as_u64(&v, "iat")?),
            claim::CTI => match v {
                Value::Bytes(b) => c.cti = Some(b),
                _ => return Err(TokenError::InvalidClaim("cti")),
            },
            claim::WMVER => c.wmver = Some(as_u64(&v, "wmver")?),
            claim::WMVND => c.wmvnd = Some(as_u64(&v, "wmvnd")?),
            claim::WMPATLEN => c.wmpatlen = Some(as_u64(&v, "wmpatlen")?),
            claim::WMSEGDURATION => {
                let Value::Array(a) = v else {
                    return Err(TokenError::InvalidClaim("wmsegduration"));
                };
                let [ticks, timescale] = a.as_slice() else {
                    return Err(TokenError::InvalidClaim("wmsegduration"));
                };
                let sd = SegDuration {
                    ticks: as_u64(ticks, "wmsegduration")?,
                    timescale: as_u64(timescale, "wmsegduration")?,
                };
                if sd.ticks == 0 || sd.timescale == 0 {
                    return Err(TokenError::InvalidClaim("wmsegduration"));
                }
                c.wmsegduration = Some(sd);
            }
            claim::WMPATTERN => match v {
                Value::Bytes(b) => c.wmpattern = Some(b),
                _ => return Err(TokenError::InvalidClaim("wmpattern")),
            },
            claim::WMID => match v {
                Value::Text(s) => c.wmid = Some(s),
                _ => return Err(TokenError::InvalidClaim("wmid")),
            },
            claim::WMOPID => c.wmopid = Some(as_u64(&v, "wmopid")?),
            claim::WMKEYVER => c.wmkeyver = Some(as_u64(&v, "wmkeyver")?),
            _ => {}
        }
    }
    Ok(c)
}

fn build_token(c: RawClaims, now: u64) -> Result<WmToken, TokenError> {
    let exp = c.exp.ok_or(TokenError::MissingClaim("exp"))?;
    let iat = c.iat.ok_or(TokenError::MissingClaim("iat"))?;
    let wmver = c.wmver.ok_or(TokenError::MissingClaim("wmver"))?;
    if wmver != WMVER {
        return Err(TokenError::UnsupportedVersion(wmver));
    }
    let wmvnd = c.wmvnd.ok_or(TokenError::MissingClaim("wmvnd"))?;
    let patlen = c.wmpatlen.ok_or(TokenError::MissingClaim("wmpatlen"))?;
    let patlen = u16::try_from(patlen)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(TokenError::InvalidClaim("wmpatlen must be in 1..=65535"))?;

    let pattern = match (c.wmpattern, c.wmid) {
        (Some(_), Some(_)) => {
            return Err(TokenError::InvalidClaim(
                "wmpattern and wmid are mutually exclusive",
            ));
        }
        (None, None) => return Err(TokenError::MissingClaim("wmid or wmpattern")),
        (Some(pattern), None) => {
            if pattern.len() != usize::from(patlen).div_ceil(8) {
                return Err(TokenError::InvalidClaim(
                    "wmpattern must be ceil(wmpatlen / 8) bytes (encrypted patterns are not supported)",
                ));
            }
            PatternClaims::Direct { pattern, patlen }
        }
        (None, Some(wmid)) => PatternClaims::Indirect {
            wmid: SessionId::new(wmid).map_err(|_| TokenError::InvalidClaim("wmid"))?,
            wmopid: c.wmopid.ok_or(TokenError::MissingClaim("wmopid"))?,
            wmkeyver: c.wmkeyver,
            patlen,
        },
    };

    if exp.saturating_add(DEFAULT_LEEWAY_SECS) <= now {
        return Err(TokenError::Expired { exp, now });
    }
    let horizon = now.saturating_add(DEFAULT_LEEWAY_SECS);
    if iat > horizon {
        return Err(TokenError::NotYetValid {
            not_before: iat,
            now,
        });
    }
    if let Some(nbf) = c.nbf.filter(|&nbf| nbf > horizon) {
        return Err(TokenError::NotYetValid {
            not_before: nbf,
            now,
        });
    }

    Ok(WmToken {
        iss: c.iss,
        exp,
        iat,
        cti: c.cti,
        wmvnd,
        wmsegduration: c.wmsegduration,
        pattern,
    })
}

/// Decodes a base64url WM token, verifies its MAC or signature and validates its claims at time
/// `now` (seconds since the Unix epoch). Only the encoding [`encode`] writes is accepted.
///
/// # Errors
/// Any [`TokenError`] variant except `Signing`; see the module documentation for the checks.
/// Never panics, whatever the input.
pub fn decode_and_verify(
    token: &str,
    verifier: &Verifier,
    now: u64,
) -> Result<WmToken, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| TokenError::Base64)?;
    if URL_SAFE_NO_PAD.encode(&bytes) != token {
        return Err(TokenError::NonCanonical("base64url with stray bits"));
    }
    let payload = verify_cose(&bytes, verifier)?;
    let claims = build_token(parse_claims(&payload)?, now)?;
    check_deterministic(
        &cbor_from_slice(&payload)?,
        &payload,
        "claims are not deterministic CBOR",
    )?;
    Ok(claims)
}

#[cfg(test)]
mod tests;
