//! Token checks: signature, expiry, operator, key version, and the session's title (store).

use std::mem::size_of;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use leaktrace_core::SessionId;
use leaktrace_core::session::session_of;
use leaktrace_core::token::{
    DEFAULT_LEEWAY_SECS, PatternClaims, TokenError, Verifier, WmToken, decode_and_verify,
};
use leaktrace_core::{KeyVersion, TitleId};
use leaktrace_store::Store;

use crate::cache::ByteCache;
use crate::revocation::Revocations;

/// How long a session looked up in the store is remembered.
const SESSION_TTL: Duration = Duration::from_secs(300);
/// How long "no such session" is remembered.
const SESSION_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Why a request's token was refused (all answered 403; the reason is only logged).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deny {
    /// No token in the path, the query or the header.
    Missing,
    /// The token failed decoding, its signature, or its claims (expired, not yet valid, ...).
    Token(TokenError),
    /// `wmopid` is not this edge's operator id.
    Operator(u64),
    /// `wmkeyver` (or the session's key version) is not this edge's key version.
    KeyVersion(u64),
    /// The token names no session (direct mode without `cti`).
    NoSession,
    /// The session is not in the store.
    UnknownSession,
    /// The session was revoked.
    Revoked,
    /// The session belongs to another title.
    WrongTitle,
    /// The store could not be asked (also 403: fail closed).
    Store,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The verified claims.
    pub claims: Arc<WmToken>,
    /// The session.
    pub session: SessionId,
    /// The key version the session's title was marked with (its codebook's).
    pub title_key_version: KeyVersion,
}

/// The last token a connection presented and what its check found. A player sends the same
/// token with every request of a connection: the next check of that token skips the token and
/// session caches (shared by every connection, so each lookup is a lock and a hash of the
/// whole token), while still refusing it once it expires or its session is revoked, and
/// reading the session again as often as the session cache would.
#[derive(Debug, Default)]
pub(crate) struct AuthMemo(Mutex<Option<Memo>>);

#[derive(Debug)]
struct Memo {
    token: Box<str>,
    title: TitleId,
    authorized: Arc<Authorized>,
    /// When the session's facts were read from the store.
    facts_read: Instant,
}

#[derive(Debug, Clone)]
struct SessionFacts {
    title: String,
    key_version: u32,
    /// The title's key version; `None` when the title is not in the store.
    title_key_version: Option<u32>,
}

/// A verified token and the key version whose HMAC key verified it (`None`: an ES256 key).
type Verified = (Arc<WmToken>, Option<u32>);

/// A cached session lookup: the facts (`None`: not in the store) and when they were read.
type SessionEntry = (Option<SessionFacts>, Instant);

/// Bytes a verified token's claims own (they are charged to the token cache with its key).
fn claims_bytes(c: &WmToken) -> usize {
    let mode = match &c.pattern {
        PatternClaims::Indirect { wmid, .. } => wmid.as_str().len(),
        PatternClaims::Direct { pattern, .. } => pattern.len(),
        _ => 0,
    };
    // The claims live in an `Arc`: two counts, then the struct.
    2 * size_of::<usize>()
        + size_of::<WmToken>()
        + c.iss.as_ref().map_or(0, String::len)
        + c.cti.as_ref().map_or(0, Vec::len)
        + mode
}

/// Verifies tokens and checks their sessions, with caches bounded by bytes.
#[derive(Debug)]
pub struct Auth {
    verifiers: Vec<(Option<u32>, Verifier)>,
    wmopid: u64,
    key_versions: Vec<u32>,
    store: Store,
    sessions: ByteCache<str, SessionEntry>,
    tokens: ByteCache<str, Verified>,
    revocations: Arc<Revocations>,
}

impl Auth {
    /// Checks tokens with `verifiers` (tried in order; each HMAC verifier with the key version
    /// it belongs to), for operator `wmopid` and the key versions held (`key_versions`),
    /// looking sessions up in `store`; caches at most `token_cache_bytes` of verified tokens
    /// and `session_cache_bytes` of sessions.
    pub fn new(
        verifiers: Vec<(Option<u32>, Verifier)>,
        wmopid: u64,
        key_versions: Vec<u32>,
        store: Store,
        token_cache_bytes: u64,
        session_cache_bytes: u64,
    ) -> Self {
        Self {
            verifiers,
            wmopid,
            key_versions,
            store,
            sessions: ByteCache::new(session_cache_bytes),
            tokens: ByteCache::new(token_cache_bytes),
            revocations: Arc::new(Revocations::default()),
        }
    }

    /// The revoked sessions this edge refuses.
    pub(crate) fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The store sessions are looked up in.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Bytes of the token and session caches.
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.tokens.bytes(), self.sessions.bytes())
    }

    fn verify(&self, token: &str, now: u64) -> Result<Verified, Deny> {
        // Only the issuer's encoding of a token verifies (see `leaktrace_core::token`), so one
        // token is one key here: re-encodings cannot multiply the entries.
        if let Some(hit) = self.tokens.get(token) {
            // Verified before: only time can have changed.
            if hit.0.exp.saturating_add(DEFAULT_LEEWAY_SECS) <= now {
                return Err(Deny::Token(TokenError::Expired {
                    exp: hit.0.exp,
                    now,
                }));
            }
            return Ok(hit);
        }
        let mut last = TokenError::BadSignature;
        for (version, v) in &self.verifiers {
            match decode_and_verify(token, v, now) {
                Ok(claims) => {
                    let claims = Arc::new(claims);
                    let bytes = claims_bytes(&claims);
                    let hit = (claims, *version);
                    self.tokens.insert(Arc::from(token), hit.clone(), bytes);
                    return Ok(hit);
                }
                Err(
                    e @ (TokenError::AlgorithmMismatch { .. }
                    | TokenError::UnexpectedTag(_)
                    | TokenError::BadSignature),
                ) => last = e,
                Err(e) => return Err(Deny::Token(e)),
            }
        }
        Err(Deny::Token(last))
    }

    /// The session's facts (`None`: not in the store) and when they were read.
    async fn session(&self, sid: &SessionId) -> Result<SessionEntry, Deny> {
        if let Some((facts, at)) = self.sessions.get(sid.as_str()) {
            let ttl = if facts.is_some() {
                SESSION_TTL
            } else {
                SESSION_NEGATIVE_TTL
            };
            if at.elapsed() < ttl {
                return Ok((facts, at));
            }
        }
        let found = self.store.get_session(sid.as_str()).await.map_err(|e| {
            tracing::error!(error = %e, "session lookup failed");
            Deny::Store
        })?;
        let facts = match found {
            None => None,
            Some(s) => {
                let title = self.store.get_title(&s.title_id).await.map_err(|e| {
                    tracing::error!(error = %e, "title lookup failed");
                    Deny::Store
                })?;
                Some(SessionFacts {
                    title: s.title_id,
                    key_version: s.key_version,
                    title_key_version: title.map(|t| t.key_version),
                })
            }
        };
        let owned = facts.as_ref().map_or(0, |f| f.title.len());
        let read = Instant::now();
        self.sessions
            .insert(Arc::from(sid.as_str()), (facts.clone(), read), owned);
        Ok((facts, read))
    }

    /// Checks `token` for a request of `title` at time `now` (UTC unix seconds), remembering
    /// the last success in a connection's `memo`.
    ///
    /// # Errors
    /// A [`Deny`] reason; the edge answers every one with 403.
    pub(crate) async fn authorize(
        &self,
        token: Option<&str>,
        title: &TitleId,
        now: u64,
        memo: Option<&AuthMemo>,
    ) -> Result<Arc<Authorized>, Deny> {
        let token = token.ok_or(Deny::Missing)?;
        if let Some(memo) = memo {
            let last = memo.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(m) = last.as_ref()
                && *m.token == *token
                && m.title == *title
                && m.facts_read.elapsed() < SESSION_TTL
            {
                // What a hit in the token cache checks, then the revocation.
                let exp = m.authorized.claims.exp;
                if exp.saturating_add(DEFAULT_LEEWAY_SECS) <= now {
                    return Err(Deny::Token(TokenError::Expired { exp, now }));
                }
                if self.revocations.is_revoked(m.authorized.session.as_str()) {
                    return Err(Deny::Revoked);
                }
                return Ok(m.authorized.clone());
            }
        }
        let (authorized, facts_read) = self.check(token, title, now).await?;
        let authorized = Arc::new(authorized);
        if let Some(memo) = memo {
            *memo.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Memo {
                token: token.into(),
                title: title.clone(),
                authorized: authorized.clone(),
                facts_read,
            });
        }
        Ok(authorized)
    }

    /// Every check of a token, through the token and session caches; with when the session's
    /// facts were read.
    async fn check(
        &self,
        token: &str,
        title: &TitleId,
        now: u64,
    ) -> Result<(Authorized, Instant), Deny> {
        let (claims, verified_by) = self.verify(token, now)?;
        let held = |v: u64| {
            u32::try_from(v).is_ok_and(|v| self.key_versions.contains(&v))
                && verified_by.is_none_or(|by| u64::from(by) == v)
        };
        if let PatternClaims::Indirect {
            wmopid, wmkeyver, ..
        } = &claims.pattern
        {
            if *wmopid != self.wmopid {
                return Err(Deny::Operator(*wmopid));
            }
            if let Some(kv) = wmkeyver
                && !held(*kv)
            {
                return Err(Deny::KeyVersion(*kv));
            }
        }
        let sid = session_of(&claims).ok_or(Deny::NoSession)?;
        if self.revocations.is_revoked(sid.as_str()) {
            return Err(Deny::Revoked);
        }
        let (facts, facts_read) = self.session(&sid).await?;
        let facts = facts.ok_or(Deny::UnknownSession)?;
        if facts.title != title.as_str() {
            return Err(Deny::WrongTitle);
        }
        if !held(u64::from(facts.key_version)) {
            return Err(Deny::KeyVersion(u64::from(facts.key_version)));
        }
        let title_version = facts.title_key_version.ok_or(Deny::WrongTitle)?;
        if !self.key_versions.contains(&title_version) {
            return Err(Deny::KeyVersion(u64::from(title_version)));
        }
        Ok((
            Authorized {
                claims,
                session: sid,
                title_key_version: KeyVersion::new(title_version),
            },
            facts_read,
        ))
    }
}
