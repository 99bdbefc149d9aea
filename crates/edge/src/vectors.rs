//! Selector test vectors: what a CDN reimplementation of this edge must compute.
//!
//! [`generate`] builds the vectors from fixed inputs (a published test key, never an operator
//! key), deterministically: `leaktrace session vectors --out FILE` writes them, and the repository
//! keeps them at `crates/edge/tests/vectors/selector-v2.json`. [`check`] recomputes every expected
//! value of a vectors file from its inputs with the code the edge runs.
//!
//! A file holds:
//!
//! - the master key (hex), its version and the Tardos cutoff; the derived token-MAC key and, per
//!   title, the derived bias and codeword keys (hex), so an implementation can be debugged step
//!   by step;
//! - per title: a list of positions (0..64 and some far ones up to 2³² − 1), the bias `q_p` of
//!   each, and for several sessions their uniform draws `u_p` and their bits as a string of `0`
//!   (A, directory `a/`) and `1` (B, `b/`), one character per listed position;
//! - tokens (HMAC-256/256 and ES256, indirect and direct mode, forged, expired, foreign-key and
//!   foreign-operator ones) with the time to verify them at, whether they verify, their claims,
//!   whether the edge serves them, and the variant directory for a few positions (position -1 is
//!   always `a`).
//!
//! Floating-point note: `q_p = sin²(r)` uses the platform's `sin`; an implementation whose `sin`
//! differs by an ulp can only disagree on a bit when `|u_p − q_p|` is within a few ulps, which
//! has probability about 10⁻¹⁵ per position.

use leaktrace_core::session::{
    TokenPolicy, TokenRequest, select_variant, session_claims, session_id_from_random,
};
use leaktrace_core::token::{self, PatternClaims, Signer, TokenMode, Verifier, WmToken};
use leaktrace_core::{KeyVersion, MasterKey, TitleId, Variant};
use leaktrace_core::{SessionId, codeword::TardosParams};
use serde::{Deserialize, Serialize};

use crate::EdgeError;

/// Format version of the vectors file.
pub const FORMAT_VERSION: u32 = 2;
/// `iat` of the vector tokens: 2026-01-01T00:00:00Z.
pub const VECTOR_IAT: u64 = 1_767_225_600;
/// Lifetime of the vector tokens (6 h).
pub const VECTOR_TTL: u64 = 6 * 3600;

/// The whole vectors file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vectors {
    /// What this is.
    pub name: String,
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// How the file was made.
    pub generated_by: String,
    /// The algorithm in words.
    pub algorithm: Vec<String>,
    /// The test master key, 64 hex characters.
    pub master_key_hex: String,
    /// Its version.
    pub key_version: u32,
    /// Tardos cutoff `t`.
    pub tardos_cutoff: f64,
    /// `derive(TokenMac)`, hex.
    pub token_mac_key_hex: String,
    /// ES256 public key of the ES256 tokens, SEC1 uncompressed, hex.
    pub es256_public_key_hex: String,
    /// Expected `wmopid`.
    pub wmopid: u64,
    /// Per title.
    pub titles: Vec<TitleVectors>,
    /// Tokens.
    pub tokens: Vec<TokenVector>,
}

/// The codeword vectors of one title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleVectors {
    /// Title id.
    pub title: String,
    /// Bias key, hex.
    pub bias_key_hex: String,
    /// Codeword key, hex.
    pub codeword_key_hex: String,
    /// Positions the lists below refer to.
    pub positions: Vec<u32>,
    /// `q_p` for each position.
    pub biases: Vec<f64>,
    /// Sessions.
    pub sessions: Vec<SessionVectors>,
}

/// One session's draws and bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionVectors {
    /// Session id (`wmid`).
    pub session_id: String,
    /// `u_p` for each position.
    pub uniforms: Vec<f64>,
    /// `0` (A) or `1` (B) for each position.
    pub bits: String,
}

/// One token and what must become of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenVector {
    /// What the case is.
    pub description: String,
    /// The token (base64url).
    pub token: String,
    /// `HMAC-256/256` or `ES256`: the key to verify with.
    pub alg: String,
    /// Verification time (UTC unix seconds).
    pub verify_at: u64,
    /// Whether the CWT verifies (signature and time claims).
    pub valid: bool,
    /// The error text when it does not.
    pub error: Option<String>,
    /// Its claims when it does.
    pub claims: Option<ClaimsJson>,
    /// Whether an edge with this file's key and `wmopid` serves it (for `title`).
    pub edge_serves: bool,
    /// The title requested.
    pub title: String,
    /// Variant directory per position (`-1` = not watermarked) when the edge serves it.
    pub selections: Vec<Selection>,
}

/// A token's claims in JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsJson {
    /// `iss`.
    pub iss: Option<String>,
    /// `exp`.
    pub exp: u64,
    /// `iat`.
    pub iat: u64,
    /// `cti`, hex.
    pub cti_hex: Option<String>,
    /// `wmver`.
    pub wmver: u64,
    /// `wmvnd`.
    pub wmvnd: u64,
    /// `wmpatlen`.
    pub wmpatlen: u16,
    /// `wmsegduration` `[ticks, timescale]`.
    pub wmsegduration: Option<[u64; 2]>,
    /// `wmpattern`, hex (direct mode).
    pub wmpattern_hex: Option<String>,
    /// `wmid` (indirect mode).
    pub wmid: Option<String>,
    /// `wmopid` (indirect mode).
    pub wmopid: Option<u64>,
    /// `wmkeyver` (indirect mode).
    pub wmkeyver: Option<u64>,
}

/// The variant served at one position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Position (-1: not watermarked).
    pub position: i64,
    /// `a` or `b`.
    pub variant: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, EdgeError> {
    if !s.len().is_multiple_of(2) {
        return Err(VectorsError::Invalid(format!("odd-length hex {s:?}")).into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| EdgeError::from(VectorsError::Invalid(format!("bad hex {s:?}"))))
        })
        .collect()
}

fn claims_json(c: &WmToken) -> ClaimsJson {
    let (wmpattern_hex, wmid, wmopid, wmkeyver) = match &c.pattern {
        PatternClaims::Direct { pattern, .. } => (Some(hex(pattern)), None, None, None),
        PatternClaims::Indirect {
            wmid,
            wmopid,
            wmkeyver,
            ..
        } => (None, Some(wmid.to_string()), Some(*wmopid), *wmkeyver),
        _ => (None, None, None, None),
    };
    ClaimsJson {
        iss: c.iss.clone(),
        exp: c.exp,
        iat: c.iat,
        cti_hex: c.cti.as_deref().map(hex),
        wmver: token::WMVER,
        wmvnd: c.wmvnd,
        wmpatlen: c.wmpatlen(),
        wmsegduration: c.wmsegduration.map(|s| [s.ticks, s.timescale]),
        wmpattern_hex,
        wmid,
        wmopid,
        wmkeyver,
    }
}

fn vector_key() -> MasterKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    MasterKey::from_bytes(bytes, KeyVersion::new(1))
}

/// Why selector vectors could not be built, written, read or matched (the cause of
/// [`EdgeError::Vectors`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorsError {
    /// A value differs from what the edge's code computes, or is malformed (the message says
    /// which).
    #[error("{0}")]
    Invalid(String),
    /// The vectors are not JSON of their shape, or could not be written as JSON.
    #[error("{action}: {source}")]
    Json {
        /// `parse` or `serialise`.
        action: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A key or title id refused by the core.
    #[error("{0}")]
    Core(#[source] leaktrace_core::CoreError),
    /// A session id refused by the core.
    #[error("{0}")]
    SessionId(#[source] leaktrace_core::session::SessionIdError),
    /// Tardos parameters refused by the core.
    #[error("{0}")]
    Params(#[source] leaktrace_core::codeword::CodewordError),
    /// A token could not be built, or a verifying key not read.
    #[error("{0}")]
    Token(#[source] token::TokenError),
    /// The ES256 test key could not be made (a bug).
    #[error("{0}")]
    Key(#[source] p256::ecdsa::Error),
}

impl From<VectorsError> for EdgeError {
    fn from(e: VectorsError) -> Self {
        EdgeError::Vectors(e)
    }
}

/// The ES256 test key: the P-256 scalar BLAKE3("leaktrace selector vectors v1: ES256 test key").
fn es256_key() -> Result<p256::ecdsa::SigningKey, EdgeError> {
    let secret = blake3::hash(b"leaktrace selector vectors v1: ES256 test key");
    p256::ecdsa::SigningKey::from_slice(secret.as_bytes()).map_err(|e| VectorsError::Key(e).into())
}

fn positions() -> Vec<u32> {
    (0..64)
        .chain([
            100,
            1000,
            32_766,
            32_767,
            65_535,
            65_536,
            1_000_000,
            u32::MAX,
        ])
        .collect()
}

fn sessions() -> Vec<SessionId> {
    let mut out: Vec<SessionId> = (1u8..=3)
        .map(|i| session_id_from_random([i.wrapping_mul(37); 16]))
        .collect();
    for s in ["s-0001", "A.b_c~d-e"] {
        if let Ok(id) = SessionId::new(s) {
            out.push(id);
        }
    }
    out
}

fn selections(key: &MasterKey, title: &TitleId, claims: &WmToken) -> Vec<Selection> {
    let book = key.codebook(title);
    std::iter::once(None)
        .chain((0..24).map(Some))
        .chain([Some(40), Some(65_536)])
        .map(|p| Selection {
            position: p.map_or(-1, i64::from),
            variant: select_variant(&book, claims, p).dir().to_owned(),
        })
        .collect()
}

fn variant_bit(v: Variant) -> char {
    char::from(b'0' + v.bit())
}

/// Builds the vectors (deterministic: the same bytes every time).
///
/// # Errors
/// [`EdgeError::Vectors`] if a token cannot be built (a bug).
pub fn generate() -> Result<Vectors, EdgeError> {
    let key = vector_key();
    let params = TardosParams::default();
    let policy = TokenPolicy::default();
    let vec_err = |e: token::TokenError| EdgeError::from(VectorsError::Token(e));
    let titles: Vec<TitleId> = ["big-buck-bunny", "tears-of-steel"]
        .into_iter()
        .filter_map(|t| TitleId::new(t).ok())
        .collect();
    let pos = positions();
    let mut title_vectors = Vec::new();
    for title in &titles {
        let book = key.codebook_with(title, params);
        title_vectors.push(TitleVectors {
            title: title.to_string(),
            bias_key_hex: hex(key.bias_key(title).as_bytes()),
            codeword_key_hex: hex(key.codeword_key(title).as_bytes()),
            positions: pos.clone(),
            biases: pos.iter().map(|&p| book.bias(p)).collect(),
            sessions: sessions()
                .iter()
                .map(|s| SessionVectors {
                    session_id: s.to_string(),
                    uniforms: pos.iter().map(|&p| book.session_uniform(s, p)).collect(),
                    bits: pos.iter().map(|&p| variant_bit(book.bit(s, p))).collect(),
                })
                .collect(),
        });
    }

    let hmac = Signer::hmac_sha256(key.token_mac_key().as_bytes());
    let es256_sk = es256_key()?;
    let es256_public_key_hex = hex(es256_sk.verifying_key().to_sec1_point(false).as_bytes());
    let es256 = Signer::es256(es256_sk);
    let sids = sessions();
    let (t0, t1) = (&titles[0], &titles[1]);
    let s0 = &sids[0];
    let book0 = key.codebook(t0);
    let claims = |sid: &SessionId, mode: TokenMode, positions: u32| {
        let request = TokenRequest {
            session: sid,
            key_version: key.version(),
            issued_at: VECTOR_IAT,
            expires_at: VECTOR_IAT + VECTOR_TTL,
            segment_ms: Some(2000),
            mode,
            positions,
        };
        session_claims(&policy, &book0, &request).map_err(vec_err)
    };
    let indirect = claims(s0, TokenMode::Indirect, 0)?;
    let direct = claims(&sids[1], TokenMode::Direct, 40)?;
    let mut foreign_op = indirect.clone();
    if let PatternClaims::Indirect { wmopid, .. } = &mut foreign_op.pattern {
        *wmopid = 2;
    }
    let hmac_token = token::encode(&indirect, &hmac).map_err(vec_err)?;
    let mut forged = token::encode(&indirect, &hmac).map_err(vec_err)?;
    {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        if let Ok(mut raw) = engine.decode(&forged)
            && let Some(last) = raw.last_mut()
        {
            *last ^= 0x01;
            forged = engine.encode(raw);
        }
    }
    let other_key = Signer::hmac_sha256(&[0x42; 32]);
    let at = VECTOR_IAT + 3600;
    let cases: Vec<(&str, String, &str, u64, &TitleId, &WmToken)> = vec![
        (
            "HMAC-256/256, indirect mode: served",
            hmac_token.clone(),
            "HMAC-256/256",
            at,
            t0,
            &indirect,
        ),
        (
            "ES256, indirect mode, same claims: served",
            token::encode(&indirect, &es256).map_err(vec_err)?,
            "ES256",
            at,
            t0,
            &indirect,
        ),
        (
            "HMAC-256/256, direct mode (40-bit wmpattern, session id in cti): served",
            token::encode(&direct, &hmac).map_err(vec_err)?,
            "HMAC-256/256",
            at,
            t0,
            &direct,
        ),
        (
            "forged: last byte of the MAC flipped",
            forged,
            "HMAC-256/256",
            at,
            t0,
            &indirect,
        ),
        (
            "expired: verified 61 s after exp (60 s leeway)",
            hmac_token.clone(),
            "HMAC-256/256",
            VECTOR_IAT + VECTOR_TTL + 61,
            t0,
            &indirect,
        ),
        (
            "signed with another HMAC key",
            token::encode(&indirect, &other_key).map_err(vec_err)?,
            "HMAC-256/256",
            at,
            t0,
            &indirect,
        ),
        (
            "valid CWT but wmopid 2: refused by an edge of operator 1",
            token::encode(&foreign_op, &hmac).map_err(vec_err)?,
            "HMAC-256/256",
            at,
            t0,
            &foreign_op,
        ),
        (
            "valid CWT requested for another title: refused (the store says its title)",
            hmac_token,
            "HMAC-256/256",
            at,
            t1,
            &indirect,
        ),
    ];
    let mut tokens = Vec::new();
    for (description, tok, alg, verify_at, title, expected) in cases {
        let verifier = if alg == "ES256" {
            es256.verifier()
        } else {
            hmac.verifier()
        };
        let verified = token::decode_and_verify(&tok, &verifier, verify_at);
        let serves = title == t0
            && verified.as_ref().is_ok_and(|c| match &c.pattern {
                PatternClaims::Indirect { wmopid, .. } => *wmopid == policy.wmopid,
                PatternClaims::Direct { .. } => true,
                _ => false,
            });
        tokens.push(TokenVector {
            description: description.to_owned(),
            token: tok,
            alg: alg.to_owned(),
            verify_at,
            valid: verified.is_ok(),
            error: verified.as_ref().err().map(ToString::to_string),
            claims: verified.as_ref().ok().map(claims_json),
            edge_serves: serves,
            title: title.to_string(),
            selections: if serves {
                selections(&key, title, expected)
            } else {
                Vec::new()
            },
        });
    }
    Ok(Vectors {
        name: "leaktrace selector test vectors".into(),
        version: FORMAT_VERSION,
        generated_by: "leaktrace session vectors --out crates/edge/tests/vectors/selector-v2.json"
            .into(),
        algorithm: vec![
            "derive(ctx) = BLAKE3-derive_key(ctx, master_key(32) || key_version as u32 LE)".into(),
            "for_title(k, title) = BLAKE3-keyed_hash(k, \"title\\0\" || title UTF-8)".into(),
            "token_mac_key = derive(\"leaktrace 2026-11-21 token mac v1\")".into(),
            "bias_key = for_title(derive(\"leaktrace 2026-11-21 tardos bias v1\"), title)".into(),
            "codeword_key = for_title(derive(\"leaktrace 2026-11-21 session codeword v1\"), title)"
                .into(),
            "unit(8 bytes) = (u64 LE >> 11) / 2^53".into(),
            "t' = asin(sqrt(t)); r = t' + unit(BLAKE3-keyed_hash(bias_key, position as u64 LE)[0..8]) * (pi/2 - 2 t'); T_p = clamp(round_half_up(sin(r)^2 * 65536), 1, 65535); q_p = T_p / 65536".into(),
            "X_p = u16 LE at bytes [2p, 2p+2) of BLAKE3-keyed XOF(codeword_key, session_id UTF-8); u_p = X_p / 65536".into(),
            "bit_p = 1 (B, dir b/) if X_p < T_p (equivalently u_p < q_p) else 0 (A, dir a/); position -1 (WMPaceInfo) -> a/".into(),
            "direct mode: bit_p = wmpattern bit (p mod wmpatlen), big-endian (MSB of byte 0 first)".into(),
            "token: CWT (tag 61) of COSE_Mac0 (HMAC 256/256, alg 5) or COSE_Sign1 (ES256, alg -7), base64url without padding; exp/iat checked with 60 s leeway".into(),
            "edge: wmopid must equal the edge's, wmkeyver its key version, and the session (wmid, or cti in direct mode) must belong to the requested title".into(),
        ],
        master_key_hex: key.to_hex(),
        key_version: key.version().get(),
        tardos_cutoff: params.cutoff(),
        token_mac_key_hex: hex(key.token_mac_key().as_bytes()),
        es256_public_key_hex,
        wmopid: policy.wmopid,
        titles: title_vectors,
        tokens,
    })
}

/// The vectors as the file holds them: pretty JSON and a final newline.
///
/// # Errors
/// [`EdgeError::Vectors`] if serialisation fails.
pub fn to_json(v: &Vectors) -> Result<String, EdgeError> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| {
            VectorsError::Json {
                action: "serialise",
                source: e,
            }
            .into()
        })
}

/// What [`check`] verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Bits compared.
    pub bits: usize,
    /// Tokens checked.
    pub tokens: usize,
    /// Selections compared.
    pub selections: usize,
}

fn mismatch(what: String) -> EdgeError {
    VectorsError::Invalid(format!("mismatch: {what}")).into()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-15
}

/// Recomputes every expected value of a vectors file from its inputs with the edge's code.
///
/// # Errors
/// [`EdgeError::Vectors`] naming the first value that differs, or a malformed file.
pub fn check(json: &str) -> Result<CheckReport, EdgeError> {
    let v: Vectors = serde_json::from_str(json).map_err(|e| {
        EdgeError::from(VectorsError::Json {
            action: "parse",
            source: e,
        })
    })?;
    let key = MasterKey::from_hex(&v.master_key_hex, KeyVersion::new(v.key_version))
        .map_err(|e| EdgeError::from(VectorsError::Core(e)))?;
    let params =
        TardosParams::new(v.tardos_cutoff).map_err(|e| EdgeError::from(VectorsError::Params(e)))?;
    let mut report = CheckReport::default();
    if hex(key.token_mac_key().as_bytes()) != v.token_mac_key_hex {
        return Err(mismatch("token_mac_key_hex".into()));
    }
    for t in &v.titles {
        let title =
            TitleId::new(t.title.clone()).map_err(|e| EdgeError::from(VectorsError::Core(e)))?;
        if hex(key.bias_key(&title).as_bytes()) != t.bias_key_hex
            || hex(key.codeword_key(&title).as_bytes()) != t.codeword_key_hex
        {
            return Err(mismatch(format!("derived keys of {title}")));
        }
        let book = key.codebook_with(&title, params);
        if t.biases.len() != t.positions.len() {
            return Err(mismatch(format!(
                "{title}: biases and positions differ in length"
            )));
        }
        for (&p, &q) in t.positions.iter().zip(&t.biases) {
            if !close(book.bias(p), q) {
                return Err(mismatch(format!("{title}: bias at {p}")));
            }
        }
        for s in &t.sessions {
            let sid = SessionId::new(s.session_id.clone())
                .map_err(|e| EdgeError::from(VectorsError::SessionId(e)))?;
            if s.bits.len() != t.positions.len() || s.uniforms.len() != t.positions.len() {
                return Err(mismatch(format!("{title}/{sid}: list lengths")));
            }
            for ((&p, &u), expected) in t.positions.iter().zip(&s.uniforms).zip(s.bits.chars()) {
                if !close(book.session_uniform(&sid, p), u) {
                    return Err(mismatch(format!("{title}/{sid}: u at {p}")));
                }
                if variant_bit(book.bit(&sid, p)) != expected {
                    return Err(mismatch(format!("{title}/{sid}: bit at {p}")));
                }
                report.bits += 1;
            }
        }
    }
    let hmac = Verifier::hmac_sha256(key.token_mac_key().as_bytes());
    let es256 = Verifier::es256_from_sec1(&unhex(&v.es256_public_key_hex)?)
        .map_err(|e| EdgeError::from(VectorsError::Token(e)))?;
    for tv in &v.tokens {
        let verifier = if tv.alg == "ES256" { &es256 } else { &hmac };
        let got = token::decode_and_verify(&tv.token, verifier, tv.verify_at);
        if got.is_ok() != tv.valid
            || got.as_ref().err().map(ToString::to_string) != tv.error
            || got.as_ref().ok().map(claims_json) != tv.claims
        {
            return Err(mismatch(format!("token {:?}", tv.description)));
        }
        report.tokens += 1;
        let Ok(claims) = got else { continue };
        let title =
            TitleId::new(tv.title.clone()).map_err(|e| EdgeError::from(VectorsError::Core(e)))?;
        let book = key.codebook_with(&title, params);
        for sel in &tv.selections {
            let p = u32::try_from(sel.position).ok();
            if select_variant(&book, &claims, p).dir() != sel.variant {
                return Err(mismatch(format!(
                    "token {:?}: variant at {}",
                    tv.description, sel.position
                )));
            }
            report.selections += 1;
        }
    }
    Ok(report)
}
