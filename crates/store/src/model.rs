//! The catalogue's records: titles and the sessions issued for them.
//!
//! Integers are stored as 64-bit signed integers on both backends (SQLite
//! `INTEGER`, PostgreSQL `BIGINT`); timestamps are UTC unix seconds (`i64`).

use crate::StoreError;

/// A title (one piece of content) as registered for watermarking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTitle {
    /// Stable identifier of the title; primary key, non-empty.
    pub title_id: String,
    /// Human-readable name.
    pub name: String,
    /// Segment duration in milliseconds (one watermark position per segment); > 0.
    pub segment_duration_ms: u32,
    /// Number of watermark positions (segments) of the title.
    pub position_count: u32,
    /// Version of the operator master key the title was embedded with.
    pub key_version: u32,
    /// Where the reference index (or mezzanine) for informed detection lives, if known.
    pub reference_path: Option<String>,
}

/// A stored title: [`NewTitle`] plus the time the store first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title {
    /// Stable identifier of the title.
    pub title_id: String,
    /// Human-readable name.
    pub name: String,
    /// Segment duration in milliseconds.
    pub segment_duration_ms: u32,
    /// Number of watermark positions.
    pub position_count: u32,
    /// Version of the operator master key the title was embedded with.
    pub key_version: u32,
    /// When the title was first stored (UTC unix seconds); kept by later upserts.
    pub created_at: i64,
    /// Where the reference index (or mezzanine) lives, if known.
    pub reference_path: Option<String>,
}

/// A viewing session to record; its id is what the token's `wmid` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Session identifier; primary key, non-empty.
    pub session_id: String,
    /// The title being watched; must exist.
    pub title_id: String,
    /// Opaque reference to the account behind the session (what enforcement reports).
    pub account_ref: String,
    /// Token issue time (UTC unix seconds).
    pub issued_at: i64,
    /// Token expiry (UTC unix seconds); `>= issued_at`.
    pub expires_at: i64,
    /// Key version the session's codeword was derived with.
    pub key_version: u32,
}

/// A stored session: [`NewSession`] plus the time the store committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session identifier.
    pub session_id: String,
    /// The title watched.
    pub title_id: String,
    /// Opaque account reference.
    pub account_ref: String,
    /// Token issue time (UTC unix seconds).
    pub issued_at: i64,
    /// Token expiry (UTC unix seconds).
    pub expires_at: i64,
    /// Key version the session's codeword was derived with.
    pub key_version: u32,
    /// When the store recorded the session (UTC unix seconds).
    pub created_at: i64,
}

impl NewTitle {
    /// Checks what the schema's constraints would reject, with a clearer message.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.title_id.is_empty() {
            return Err(StoreError::invalid("title_id", "must not be empty"));
        }
        if self.segment_duration_ms == 0 {
            return Err(StoreError::invalid(
                "segment_duration_ms",
                "must be > 0 (milliseconds)",
            ));
        }
        Ok(())
    }
}

impl NewSession {
    /// Checks what the schema's constraints would reject, with a clearer message.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.session_id.is_empty() {
            return Err(StoreError::invalid("session_id", "must not be empty"));
        }
        if self.title_id.is_empty() {
            return Err(StoreError::invalid("title_id", "must not be empty"));
        }
        if self.expires_at < self.issued_at {
            return Err(StoreError::invalid(
                "expires_at",
                "must be >= issued_at (UTC unix seconds)",
            ));
        }
        Ok(())
    }

    /// The stored record, given the commit time.
    pub(crate) fn stored(&self, created_at: i64) -> Session {
        Session {
            session_id: self.session_id.clone(),
            title_id: self.title_id.clone(),
            account_ref: self.account_ref.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            key_version: self.key_version,
            created_at,
        }
    }
}
