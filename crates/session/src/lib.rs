//! # leaktrace-session
//!
//! Issues viewing sessions for a playback / license service: one call records the session
//! durably in the store and only then returns its signed TS 104 002 WM token.
//!
//! ## The flow of [`issue_session`]
//!
//! 1. Check the request: the title must exist in the store ([`SessionError::UnknownTitle`]
//!    otherwise), the TTL must be within [`MIN_TTL`]..=[`MAX_TTL`], the account reference 1–256
//!    bytes without control characters.
//! 2. Draw the session id: 128 bits from the operating system's CSPRNG, written as 26 base32
//!    characters ([`leaktrace_core::session::session_id_from_random`]).
//! 3. Record the session (`session_id`, `title_id`, `account_ref`, `issued_at`, `expires_at`,
//!    `key_version`) with [`Store::insert_session`], which returns only after the commit is on
//!    stable storage. A token is never handed out for a session the detector cannot find.
//! 4. Build the claims ([`leaktrace_core::session::session_claims`]) and sign them.
//!
//! ## Token settings
//!
//! - Mode: indirect by default (`wmid` = session id, `wmkeyver` = key version, `wmpatlen` =
//!   65 535); direct mode puts the session's codeword bits for the title's positions into
//!   `wmpattern` and the session id into `cti`.
//! - `wmopid` (default 1), `wmvnd` (default 0: leaktrace has no DASH-IF vendor id) and `iss`
//!   (default none) come from the [`TokenPolicy`].
//! - Signature: HMAC-256/256 with `master.derive(TokenMac)` by default ([`Issuer::new`]);
//!   ES256 with [`Issuer::with_signer`] and [`leaktrace_core::token::Signer::es256_from_bytes`]
//!   (a 32-byte P-256 secret scalar). Edges verify ES256 with the public key only.
//!
//! ## Example
//!
//! ```no_run
//! use std::time::Duration;
//! use leaktrace_core::{KeyVersion, MasterKey, TitleId, TokenMode};
//! use leaktrace_session::{Issuer, issue_session};
//! use leaktrace_store::Store;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("sqlite:///var/lib/leaktrace/store.sqlite").await?;
//! let issuer = Issuer::new(MasterKey::from_hex(&std::fs::read_to_string("master.key")?, KeyVersion::new(1))?);
//! let title = TitleId::new("bbb")?;
//! let issued = issue_session(&store, &issuer, &title, "account-42", Duration::from_secs(6 * 3600), TokenMode::Indirect).await?;
//! println!("https://edge.example/wmt/{}/bbb/master.m3u8", issued.token);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leaktrace_core::TokenMode;
use leaktrace_core::session::{TokenPolicy, TokenRequest, session_claims, session_id_from_random};
use leaktrace_core::token::{self, Signer, TokenError, WmToken};
use leaktrace_core::{KeyVersion, Keyring, MasterKey, TitleId};
use leaktrace_store::{NewSession, Session, Store, StoreError};

/// Shortest session lifetime accepted.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest session lifetime accepted (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest account reference, in bytes.
pub const MAX_ACCOUNT_LEN: usize = 256;
/// Session-id draws before giving up on collisions (128-bit ids: one draw in practice).
const ID_ATTEMPTS: usize = 3;

/// Errors of [`issue_session`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The title is not in the store (embed it first).
    #[error("unknown title `{0}`: embed it first (`leaktrace embed`) or check the id")]
    UnknownTitle(String),
    /// The title was marked with a key version the keyring does not hold.
    #[error("title `{title}`: {source}")]
    Keys {
        /// The title.
        title: String,
        /// Why its keys are missing.
        source: leaktrace_core::CoreError,
    },
    /// The TTL is outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("session ttl {secs} s out of range (expected 60 s to 30 days, 2592000 s)")]
    InvalidTtl {
        /// The TTL asked for, in seconds.
        secs: u64,
    },
    /// The account reference is empty, too long or has control characters.
    #[error("invalid account reference: {0} (expected 1 to 256 bytes, no control characters)")]
    InvalidAccount(&'static str),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
    /// Three random session ids in a row already existed (a broken random source?).
    #[error("could not draw an unused session id in 3 attempts")]
    IdCollision,
    /// A direct-mode token carries the codeword for the title's positions, and a live channel
    /// has no end: its sessions use indirect mode.
    #[error(
        "title `{0}` is a live channel (no fixed number of positions): issue its sessions in \
         indirect mode (the default), a direct-mode token cannot carry an endless codeword"
    )]
    DirectModeForChannel(String),
    /// The store failed; the session was not recorded and no token was issued.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building or signing the token failed (the session is recorded but no token was issued).
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// What issues tokens: the keyring, the signing key and the token policy.
///
/// Tokens are MAC'd with the current key (and carry its version); a session's codeword comes
/// from the keys of the version its title was marked with, so titles marked before a key
/// rotation keep their codebook.
#[derive(Debug)]
pub struct Issuer {
    keys: Keyring,
    signer: Signer,
    policy: TokenPolicy,
}

impl Issuer {
    /// HMAC-256/256 with `key.derive(TokenMac)` and the default [`TokenPolicy`]; `key` is the
    /// only key (titles marked under another version cannot be issued).
    #[must_use]
    pub fn new(key: MasterKey) -> Self {
        Self::with_keyring(Keyring::new(key))
    }

    /// HMAC-256/256 with the current key's token-MAC key, codewords from the key version
    /// each title was marked with.
    #[must_use]
    pub fn with_keyring(keys: Keyring) -> Self {
        let signer = Signer::hmac_sha256(keys.current().token_mac_key().as_bytes());
        Self {
            keys,
            signer,
            policy: TokenPolicy::default(),
        }
    }

    /// Signs with another key (e.g. ES256).
    #[must_use]
    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = signer;
        self
    }

    /// Uses another token policy (`wmopid`, `wmvnd`, `iss`).
    #[must_use]
    pub fn with_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The current master key.
    #[must_use]
    pub fn key(&self) -> &MasterKey {
        self.keys.current()
    }

    /// The keyring.
    #[must_use]
    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// The signing key.
    #[must_use]
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The token policy.
    #[must_use]
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }
}

/// A recorded session and its token.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    /// The stored record.
    pub session: Session,
    /// The token (base64url CWT), to hand to the player.
    pub token: String,
    /// The token's claims.
    pub claims: WmToken,
}

/// Records a new session of `title` for `account`, valid for `ttl` from now, and returns it with
/// its token. See the crate documentation for the steps.
///
/// # Errors
/// [`SessionError::UnknownTitle`], [`SessionError::InvalidTtl`],
/// [`SessionError::InvalidAccount`], [`SessionError::Store`] (nothing recorded, no token),
/// [`SessionError::Random`], [`SessionError::IdCollision`], [`SessionError::Token`].
pub async fn issue_session(
    store: &Store,
    issuer: &Issuer,
    title: &TitleId,
    account: &str,
    ttl: Duration,
    mode: TokenMode,
) -> Result<IssuedSession, SessionError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    issue_session_at(store, issuer, title, account, ttl, mode, now).await
}

/// [`issue_session`] at an explicit time `now` (UTC unix seconds), for tests and replays.
///
/// # Errors
/// As [`issue_session`].
pub async fn issue_session_at(
    store: &Store,
    issuer: &Issuer,
    title: &TitleId,
    account: &str,
    ttl: Duration,
    mode: TokenMode,
    now: u64,
) -> Result<IssuedSession, SessionError> {
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(SessionError::InvalidTtl {
            secs: ttl.as_secs(),
        });
    }
    check_account(account)?;
    let Some(stored_title) = store.get_title(title.as_str()).await? else {
        return Err(SessionError::UnknownTitle(title.to_string()));
    };
    if mode == TokenMode::Direct && stored_title.position_count == 0 {
        return Err(SessionError::DirectModeForChannel(title.to_string()));
    }
    let expires = now.saturating_add(ttl.as_secs());
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let key = issuer.keys.current();
    let title_key = issuer
        .keys
        .get(KeyVersion::new(stored_title.key_version))
        .map_err(|source| SessionError::Keys {
            title: title.to_string(),
            source,
        })?;
    let codebook = title_key.codebook(title);
    for _ in 0..ID_ATTEMPTS {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(SessionError::Random)?;
        let sid = session_id_from_random(bytes);
        let record = NewSession {
            session_id: sid.as_str().to_owned(),
            title_id: title.as_str().to_owned(),
            account_ref: account.to_owned(),
            issued_at: to_i64(now),
            expires_at: to_i64(expires),
            key_version: key.version().get(),
        };
        let session = match store.insert_session(&record).await {
            Ok(s) => s,
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound { .. }) => {
                return Err(SessionError::UnknownTitle(title.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        // Durable from here on: now the token may be issued.
        let request = TokenRequest {
            session: &sid,
            key_version: key.version(),
            issued_at: now,
            expires_at: expires,
            segment_ms: Some(u64::from(stored_title.segment_duration_ms)),
            mode,
            positions: stored_title.position_count,
        };
        let claims = session_claims(&issuer.policy, &codebook, &request)?;
        let token = token::encode(&claims, &issuer.signer)?;
        return Ok(IssuedSession {
            session,
            token,
            claims,
        });
    }
    Err(SessionError::IdCollision)
}

fn check_account(account: &str) -> Result<(), SessionError> {
    if account.is_empty() {
        return Err(SessionError::InvalidAccount("empty"));
    }
    if account.len() > MAX_ACCOUNT_LEN {
        return Err(SessionError::InvalidAccount("too long"));
    }
    if account.chars().any(char::is_control) {
        return Err(SessionError::InvalidAccount("control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaktrace_core::KeyVersion;
    use leaktrace_core::session::{select_variant, session_of};
    use leaktrace_core::token::{PatternClaims, decode_and_verify};
    use leaktrace_store::NewTitle;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("s.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        store
            .upsert_title(&NewTitle {
                title_id: "bbb".into(),
                name: "bbb".into(),
                segment_duration_ms: 2000,
                position_count: 40,
                key_version: 1,
                reference_path: None,
            })
            .await
            .unwrap();
        store
    }

    fn issuer() -> Issuer {
        Issuer::new(MasterKey::from_bytes([1; 32], KeyVersion::new(1)))
    }

    #[tokio::test]
    async fn issues_recorded_sessions_with_valid_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let iss = issuer();
        let title = TitleId::new("bbb").unwrap();
        let ttl = Duration::from_secs(3600);
        let a = issue_session_at(&store, &iss, &title, "acct", ttl, TokenMode::Indirect, 1000)
            .await
            .unwrap();
        let b = issue_session(&store, &iss, &title, "acct", ttl, TokenMode::Direct)
            .await
            .unwrap();
        assert_ne!(a.session.session_id, b.session.session_id);
        assert_eq!(a.session.session_id.len(), 26);
        let stored = store
            .get_session(&a.session.session_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.title_id, "bbb");
        assert_eq!(stored.account_ref, "acct");
        assert_eq!((stored.issued_at, stored.expires_at), (1000, 4600));
        let verifier = iss.signer().verifier();
        let claims = decode_and_verify(&a.token, &verifier, 1500).unwrap();
        assert_eq!(claims, a.claims);
        assert!(
            matches!(&claims.pattern, PatternClaims::Indirect { wmid, wmopid: 1, wmkeyver: Some(1), .. } if wmid.as_str() == a.session.session_id)
        );
        assert_eq!(claims.wmvnd, 0);
        assert!(decode_and_verify(&a.token, &verifier, 4600 + 61).is_err());
        // Direct mode carries the same codeword for the title's 40 positions.
        let direct = &b.claims;
        assert_eq!(direct.wmpatlen(), 40);
        let sid = session_of(direct).unwrap();
        let book = iss.key().codebook(&title);
        for p in 0..40 {
            assert_eq!(select_variant(&book, direct, Some(p)), book.bit(&sid, p));
        }
    }

    #[tokio::test]
    async fn refuses_bad_requests_without_recording() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let iss = issuer();
        let title = TitleId::new("bbb").unwrap();
        let other = TitleId::new("nope").unwrap();
        let hour = Duration::from_secs(3600);
        let r = issue_session(&store, &iss, &other, "a", hour, TokenMode::Indirect).await;
        assert!(matches!(r, Err(SessionError::UnknownTitle(t)) if t == "nope"));
        for ttl in [Duration::from_secs(59), MAX_TTL + Duration::from_secs(1)] {
            let r = issue_session(&store, &iss, &title, "a", ttl, TokenMode::Indirect).await;
            let e = r.unwrap_err();
            assert!(e.to_string().contains("60 s to 30 days"), "{e}");
        }
        for acct in ["", "a\nb", &"x".repeat(257)] {
            let r = issue_session(&store, &iss, &title, acct, hour, TokenMode::Indirect).await;
            assert!(matches!(r, Err(SessionError::InvalidAccount(_))));
        }
        assert_eq!(store.count_sessions("bbb").await.unwrap(), 0);
    }
}
