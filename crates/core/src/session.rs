//! Viewing sessions: ids, the claims of their tokens, and the edge's A/B choice (pure parts).
//!
//! The I/O half (recording the session durably, then signing its token) lives in the
//! `leaktrace-session` crate; the HTTP half in `leaktrace-edge`. Everything both sides and the
//! detector must agree on is here:
//!
//! - **Session ids** ([`session_id_from_random`]): 128 random bits as 26 characters of RFC 4648
//!   base32, lower case, no padding (`[a-z2-7]{26}`), URL-safe and case-insensitive on sight.
//! - **Token claims** ([`session_claims`]): a TS 104 002 WM token. Indirect mode (the default):
//!   `wmid` = session id, `wmopid` and `wmvnd` from the [`TokenPolicy`] (defaults 1 and 0),
//!   `wmkeyver` = the master key version, `wmpatlen` = 65 535 (leaktrace's codeword never wraps),
//!   `wmsegduration` = `[segment ms, 1000]`. Direct mode: `wmpattern` = the session's codeword
//!   bits at positions `0..n` packed big-endian (position 0 = MSB of byte 0), `wmpatlen` = n,
//!   and the session id in `cti` (UTF-8 bytes) so the edge can still check the session's title.
//! - **Variant selection** ([`select_variant`]): position -1 (`None`) → A; indirect mode →
//!   [`Codebook::bit`] of `wmid` at the position, with the title's codebook
//!   ([`crate::MasterKey::codebook`]); direct mode → [`Mode::pattern_bit`].
//!
//! ```
//! use leaktrace_core::{KeyVersion, MasterKey, TitleId, Variant};
//! use leaktrace_core::session::{self, TokenMode, TokenPolicy};
//! use leaktrace_core::token::{self, Signer};
//!
//! let key = MasterKey::from_bytes([9; 32], KeyVersion::new(1));
//! let title = TitleId::new("bbb")?;
//! let book = key.codebook(&title);
//! let sid = session::session_id_from_random([7; 16]);
//! assert_eq!(sid.as_str().len(), 26);
//! let claims = session::session_claims(&TokenPolicy::default(), &sid, key.version(), 1_700_000_000,
//!     1_700_021_600, Some(2000), TokenMode::Indirect, &book, 0)?;
//! let signer = Signer::hmac_sha256(key.token_mac_key().as_bytes());
//! let wire = token::encode(&claims, &signer)?;
//! let back = token::decode_and_verify(&wire, &signer.verifier(), 1_700_000_100)?;
//! assert_eq!(session::session_of(&back), Some(sid.clone()));
//! assert_eq!(session::select_variant(&book, &back, None), Variant::A);
//! assert_eq!(session::select_variant(&book, &back, Some(5)), book.bit(&sid, 5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codeword::{Codebook, SessionId, Variant};
use crate::key::KeyVersion;
use crate::token::{Mode, SegDuration, TokenError, WmToken};

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

/// Which TS 104 002 token mode to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenMode {
    /// `wmid` carries the session id; the edge derives each bit (default).
    #[default]
    Indirect,
    /// `wmpattern` carries the session's codeword bits for positions `0..n`.
    Direct,
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

/// The claims of a session's token.
///
/// `segment_ms` fills `wmsegduration` as `[segment_ms, 1000]` when given. `positions` is the
/// title's number of positions; it only matters in direct mode, where the pattern covers
/// positions `0..clamp(positions, 1, 65 535)` (positions past it wrap, as TS 104 002 edges do).
///
/// # Errors
/// [`TokenError::InvalidClaim`] if `expires_at < issued_at` or `segment_ms` is 0.
#[allow(clippy::too_many_arguments)]
pub fn session_claims(
    policy: &TokenPolicy,
    session: &SessionId,
    key_version: KeyVersion,
    issued_at: u64,
    expires_at: u64,
    segment_ms: Option<u64>,
    mode: TokenMode,
    codebook: &Codebook,
    positions: u32,
) -> Result<WmToken, TokenError> {
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
    let (mode, cti) = match mode {
        TokenMode::Indirect => (
            Mode::Indirect {
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
                Mode::Direct {
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
        mode,
    })
}

/// The session a verified token stands for: `wmid` (indirect mode) or `cti` read as a session
/// id (direct mode, as [`session_claims`] writes it). `None` if there is none.
#[must_use]
pub fn session_of(token: &WmToken) -> Option<SessionId> {
    match &token.mode {
        Mode::Indirect { wmid, .. } => Some(wmid.clone()),
        Mode::Direct { .. } => {
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
    match &token.mode {
        Mode::Indirect { wmid, .. } => codebook.bit(wmid, p),
        Mode::Direct { .. } => token.mode.pattern_bit(p).unwrap_or(Variant::A),
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
        let ind = session_claims(
            &policy,
            &sid,
            key.version(),
            10,
            20,
            Some(2000),
            TokenMode::Indirect,
            &book,
            100,
        )
        .unwrap();
        let dir = session_claims(
            &policy,
            &sid,
            key.version(),
            10,
            20,
            None,
            TokenMode::Direct,
            &book,
            100,
        )
        .unwrap();
        assert_eq!(dir.wmpatlen(), 100);
        for p in 0..100 {
            assert_eq!(
                select_variant(&book, &ind, Some(p)),
                select_variant(&book, &dir, Some(p))
            );
        }
        assert_eq!(session_of(&ind), Some(sid.clone()));
        assert_eq!(session_of(&dir), Some(sid));
        assert!(matches!(
            ind.mode,
            Mode::Indirect {
                wmopid: 1,
                wmkeyver: Some(2),
                ..
            }
        ));
        assert!(
            session_claims(
                &policy,
                &session_id_from_random([0; 16]),
                key.version(),
                20,
                10,
                None,
                TokenMode::Indirect,
                &book,
                1
            )
            .is_err()
        );
    }
}
