//! Viewing sessions: ids, the claims of their tokens, and the edge's A/B choice (pure parts).
//!
//! The I/O half (recording the session durably, then signing its token) lives in the
//! `leaktrace-session` crate; the HTTP half in `leaktrace-edge`. Everything both sides and the
//! detector must agree on is here:
//!
//! - **Session ids** ([`SessionId`]: 1–128 URL-safe bytes; [`session_id_from_random`]: 128 random bits as 26 characters of RFC 4648
//!   base32, lower case, no padding (`[a-z2-7]{26}`), URL-safe and case-insensitive on sight).
//! - **Token claims** ([`session_claims`]): a TS 104 002 WM token. Indirect mode (the default):
//!   `wmid` = session id, `wmopid` and `wmvnd` from the [`TokenPolicy`] (defaults 1 and 0),
//!   `wmkeyver` = the master key version, `wmpatlen` = 65 535 (leaktrace's codeword never wraps),
//!   `wmsegduration` = `[segment ms, 1000]`. Direct mode: `wmpattern` = the session's codeword
//!   bits at positions `0..n` packed big-endian (position 0 = MSB of byte 0), `wmpatlen` = n,
//!   and the session id in `cti` (UTF-8 bytes) so the edge can still check the session's title.
//! - **Variant selection** ([`select_variant`]): position -1 (`None`) → A; indirect mode →
//!   [`Codebook::bit`] of `wmid` at the position, with the title's codebook
//!   ([`crate::MasterKey::codebook`]); direct mode → [`PatternClaims::pattern_bit`].
//!
//! ```
//! use leaktrace_core::{KeyVersion, MasterKey, TitleId, Variant};
//! use leaktrace_core::session::{self, TokenPolicy, TokenRequest};
//! use leaktrace_core::token::{self, Signer, TokenMode};
//!
//! let key = MasterKey::from_bytes([9; 32], KeyVersion::new(1));
//! let title = TitleId::new("bbb")?;
//! let book = key.codebook(&title);
//! let sid = session::session_id_from_random([7; 16]);
//! assert_eq!(sid.as_str().len(), 26);
//! let request = TokenRequest {
//!     session: &sid,
//!     key_version: key.version(),
//!     issued_at: 1_700_000_000,
//!     expires_at: 1_700_021_600,
//!     segment_ms: Some(2000),
//!     mode: TokenMode::Indirect,
//!     positions: 0,
//! };
//! let claims = session::session_claims(&TokenPolicy::default(), &book, &request)?;
//! let signer = Signer::hmac_sha256(key.token_mac_key().as_bytes());
//! let wire = token::encode(&claims, &signer)?;
//! let back = token::decode_and_verify(&wire, &signer.verifier(), 1_700_000_100)?;
//! assert_eq!(session::session_of(&back), Some(sid.clone()));
//! assert_eq!(session::select_variant(&book, &back, None), Variant::A);
//! assert_eq!(session::select_variant(&book, &back, Some(5)), book.bit(&sid, 5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codeword::{Codebook, Variant};
use crate::key::KeyVersion;
use crate::token::{PatternClaims, SegDuration, TokenError, TokenMode, WmToken};
use std::fmt;
use std::str::FromStr;

/// RFC 4648 base32 alphabet, lower case.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Length of a generated session id: 128 bits in base32 is 26 characters.
pub const SESSION_ID_LEN: usize = 26;

/// Default `wmopid` (operator id) of issued tokens.
pub const DEFAULT_WMOPID: u64 = 1;

/// Default `wmvnd` (vendor id). 0 means "not registered": leaktrace has no DASH-IF vendor id;
/// an operator that has one sets it in the policy.
pub const DEFAULT_WMVND: u64 = 0;

/// `wmpatlen` of indirect-mode tokens: the largest value the claim allows. The codeword itself is
/// defined for every `u32` position and never wraps.
pub const INDIRECT_PATLEN: u16 = u16::MAX;

/// Why a text is not a [`SessionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionIdError {
    /// The session id is empty or longer than [`SessionId::MAX_LEN`] bytes.
    #[error("session id must be 1 to 128 bytes long, got {0} bytes")]
    Length(usize),
    /// The session id contains a byte outside `[A-Za-z0-9._~-]`.
    #[error(
        "session id may only contain A-Z, a-z, 0-9, '.', '_', '~' and '-'; byte {index} is {byte:#04x}"
    )]
    Byte {
        /// Offset of the first offending byte.
        index: usize,
        /// The offending byte.
        byte: u8,
    },
}

/// A viewing-session identifier: 1–128 URL-safe bytes (`[A-Za-z0-9._~-]`, RFC 3986 unreserved).
///
/// It is carried in the token's `wmid` claim (indirect mode) and keys the session's codeword, so it
/// can go into a URL path unescaped and is compared byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Longest accepted session id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps a session id.
    ///
    /// # Errors
    /// [`SessionIdError::Length`] if it is empty or longer than 128 bytes,
    /// [`SessionIdError::Byte`] if it has a character outside `[A-Za-z0-9._~-]`.
    pub fn new(id: impl Into<String>) -> Result<Self, SessionIdError> {
        let id = id.into();
        Self::validate(&id)?;
        Ok(Self(id))
    }

    /// Wraps a string the caller built from `[A-Za-z0-9._~-]` only, 1–128 bytes.
    pub(crate) fn from_trusted(id: String) -> Self {
        debug_assert!(Self::validate(&id).is_ok());
        Self(id)
    }

    fn validate(id: &str) -> Result<(), SessionIdError> {
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(SessionIdError::Length(id.len()));
        }
        if let Some((index, &byte)) =
            id.as_bytes().iter().enumerate().find(|(_, b)| {
                !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
            })
        {
            return Err(SessionIdError::Byte { index, byte });
        }
        Ok(())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as bytes (what the codeword XOF is keyed on).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Unwraps the inner string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SessionId {
    type Err = SessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for SessionId {
    type Error = SessionIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SessionId {
    type Error = SessionIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A session id from 16 random bytes (use a CSPRNG): base32, lower case, no padding.
#[must_use]
pub fn session_id_from_random(bytes: [u8; 16]) -> SessionId {
    let mut out = String::with_capacity(SESSION_ID_LEN);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
    // Only base32 characters, 26 of them: always a valid SessionId.
    SessionId::from_trusted(out)
}

/// Operator-wide token settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// `iss` claim, if any (default none: shorter tokens).
    pub issuer: Option<String>,
    /// `wmvnd` (default [`DEFAULT_WMVND`] = 0).
    pub wmvnd: u64,
    /// `wmopid` (default [`DEFAULT_WMOPID`] = 1).
    pub wmopid: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            issuer: None,
            wmvnd: DEFAULT_WMVND,
            wmopid: DEFAULT_WMOPID,
        }
    }
}

/// Packs variants big-endian (position 0 = most significant bit of byte 0; A = 0, B = 1).
#[must_use]
pub fn pack_pattern(bits: &[Variant]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, v) in bits.iter().enumerate() {
        if *v == Variant::B {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
    out
}

/// What a session's token is issued for: the facts of one session that its claims carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    /// The session (`wmid` in indirect mode, `cti` in direct mode).
    pub session: &'a SessionId,
    /// The master key version the title's codebook comes from (`wmkeyver`).
    pub key_version: KeyVersion,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: u64,
    /// `exp`, seconds since the Unix epoch (not earlier than `issued_at`).
    pub expires_at: u64,
    /// The title's segment duration in ms; fills `wmsegduration` as `[segment_ms, 1000]`.
    pub segment_ms: Option<u64>,
    /// Which token mode to issue.
    pub mode: TokenMode,
    /// The title's number of positions; it only matters in direct mode, where the pattern
    /// covers positions `0..clamp(positions, 1, 65 535)` (positions past it wrap, as TS 104 002
    /// edges do).
    pub positions: u32,
}

/// The claims of a session's token, with `codebook` the title's
/// ([`crate::MasterKey::codebook`]).
///
/// # Errors
/// [`TokenError::InvalidClaim`] if `expires_at < issued_at` or `segment_ms` is 0.
pub fn session_claims(
    policy: &TokenPolicy,
    codebook: &Codebook,
    request: &TokenRequest<'_>,
) -> Result<WmToken, TokenError> {
    let TokenRequest {
        session,
        key_version,
        issued_at,
        expires_at,
        segment_ms,
        mode,
        positions,
    } = *request;
    if expires_at < issued_at {
        return Err(TokenError::InvalidClaim("exp must not be earlier than iat"));
    }
    let wmsegduration = match segment_ms {
        None => None,
        Some(0) => {
            return Err(TokenError::InvalidClaim(
                "wmsegduration ticks must be positive",
            ));
        }
        Some(ms) => Some(SegDuration {
            ticks: ms,
            timescale: 1000,
        }),
    };
    let (pattern, cti) = match mode {
        TokenMode::Indirect => (
            PatternClaims::Indirect {
                wmid: session.clone(),
                wmopid: policy.wmopid,
                wmkeyver: Some(u64::from(key_version.get())),
                patlen: INDIRECT_PATLEN,
            },
            None,
        ),
        TokenMode::Direct => {
            let n = positions.clamp(1, u32::from(u16::MAX));
            let bits = codebook.bits(session, 0..n);
            (
                PatternClaims::Direct {
                    pattern: pack_pattern(&bits),
                    patlen: u16::try_from(n).unwrap_or(u16::MAX),
                },
                Some(session.as_bytes().to_vec()),
            )
        }
    };
    Ok(WmToken {
        iss: policy.issuer.clone(),
        exp: expires_at,
        iat: issued_at,
        cti,
        wmvnd: policy.wmvnd,
        wmsegduration,
        pattern,
    })
}

/// The session a verified token stands for: `wmid` (indirect mode) or `cti` read as a session
/// id (direct mode, as [`session_claims`] writes it). `None` if there is none.
#[must_use]
pub fn session_of(token: &WmToken) -> Option<SessionId> {
    match &token.pattern {
        PatternClaims::Indirect { wmid, .. } => Some(wmid.clone()),
        PatternClaims::Direct { .. } => {
            let cti = token.cti.as_deref()?;
            SessionId::new(std::str::from_utf8(cti).ok()?).ok()
        }
    }
}

/// The variant a token's session receives for a segment at `position` (`None` = -1, not
/// watermarked, always A). `codebook` must be the title's ([`crate::MasterKey::codebook`]).
#[must_use]
pub fn select_variant(codebook: &Codebook, token: &WmToken, position: Option<u32>) -> Variant {
    let Some(p) = position else {
        return Variant::A;
    };
    match &token.pattern {
        PatternClaims::Indirect { wmid, .. } => codebook.bit(wmid, p),
        PatternClaims::Direct { .. } => token.pattern.pattern_bit(p).unwrap_or(Variant::A),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MasterKey, TitleId};

    #[test]
    fn session_ids_are_base32_and_distinct() {
        let a = session_id_from_random([0; 16]);
        assert_eq!(a.as_str(), "a".repeat(26));
        let b = session_id_from_random([0xff; 16]);
        assert_eq!(b.as_str(), format!("{}4", "7".repeat(25)));
        // RFC 4648 test vector prefix: "f" -> "my" (lower case).
        let mut f = [0u8; 16];
        f[0] = b'f';
        assert!(session_id_from_random(f).as_str().starts_with("my"));
        assert_ne!(
            session_id_from_random([1; 16]),
            session_id_from_random([2; 16])
        );
        let s = session_id_from_random([0x5a; 16]);
        assert!(s.as_str().bytes().all(|c| BASE32.contains(&c)));
    }

    #[test]
    fn pattern_packing_is_big_endian() {
        use Variant::{A, B};
        assert_eq!(pack_pattern(&[A, A, A, A, B, A, B, A, A]), vec![0x0A, 0x00]);
        assert!(pack_pattern(&[]).is_empty());
    }

    #[test]
    fn direct_and_indirect_select_the_same_bits() {
        let key = MasterKey::from_bytes([3; 32], KeyVersion::new(2));
        let title = TitleId::new("t").unwrap();
        let book = key.codebook(&title);
        let sid = session_id_from_random([4; 16]);
        let policy = TokenPolicy::default();
        let request = TokenRequest {
            session: &sid,
            key_version: key.version(),
            issued_at: 10,
            expires_at: 20,
            segment_ms: Some(2000),
            mode: TokenMode::Indirect,
            positions: 100,
        };
        let ind = session_claims(&policy, &book, &request).unwrap();
        let dir = session_claims(
            &policy,
            &book,
            &TokenRequest {
                segment_ms: None,
                mode: TokenMode::Direct,
                ..request
            },
        )
        .unwrap();
        assert_eq!(dir.wmpatlen(), 100);
        assert_eq!(
            (ind.pattern.mode(), dir.pattern.mode()),
            (TokenMode::Indirect, TokenMode::Direct)
        );
        for p in 0..100 {
            assert_eq!(
                select_variant(&book, &ind, Some(p)),
                select_variant(&book, &dir, Some(p))
            );
        }
        assert_eq!(session_of(&ind), Some(sid.clone()));
        assert_eq!(session_of(&dir), Some(sid.clone()));
        assert!(matches!(
            ind.pattern,
            PatternClaims::Indirect {
                wmopid: 1,
                wmkeyver: Some(2),
                ..
            }
        ));
        let other = session_id_from_random([0; 16]);
        let backwards = TokenRequest {
            session: &other,
            issued_at: 20,
            expires_at: 10,
            ..request
        };
        assert!(session_claims(&policy, &book, &backwards).is_err());
    }

    #[test]
    fn session_id_validation() {
        assert!(SessionId::new("abc-DEF_0.9~").is_ok());
        assert!(SessionId::new("x".repeat(128)).is_ok());
        assert_eq!(SessionId::new(""), Err(SessionIdError::Length(0)));
        assert_eq!(
            SessionId::new("x".repeat(129)),
            Err(SessionIdError::Length(129))
        );
        assert_eq!(
            SessionId::new("ab/c"),
            Err(SessionIdError::Byte {
                index: 2,
                byte: b'/'
            })
        );
        assert!(SessionId::new("a b").is_err());
        assert!(SessionId::new("é").is_err());
        assert!(SessionId::new("a%20").is_err());
        let s: SessionId = "sess-1".parse().unwrap();
        assert_eq!(s.as_str(), "sess-1");
        assert_eq!(s.to_string(), "sess-1");
    }
}
