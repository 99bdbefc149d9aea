//! Persistent store of leaktrace: the catalogue (titles and the sessions issued for them),
//! session revocations, the crawler's frontier and findings, and the takedown notices.
//!
//! One [`Store`] type fronts two backends with the same schema:
//!
//! - **SQLite** (the default, one file): `sqlite:///var/lib/leaktrace/store.sqlite`
//!   or `sqlite:relative/path.sqlite`. The file is created if missing and opened
//!   with the WAL journal (readers never block the writer), `synchronous = FULL`,
//!   foreign keys on, and a busy timeout.
//! - **PostgreSQL** (several workers or hosts): `postgres://user:password@host/db`. TLS is
//!   built in (rustls): `?sslmode=verify-full` checks the server against the webpki roots, or
//!   against a private CA with `&sslrootcert=/path/ca.crt`; `require` encrypts without checking.
//!
//! [`Store::open`] connects and applies the embedded migrations (the SQL under
//! `migrations/sqlite` and `migrations/postgres` is compiled into the crate, so an
//! installed binary needs no files beside it).
//!
//! # What it holds
//!
//! - The catalogue: [`Title`], a piece of content as embedded (segment duration, number of
//!   positions, key version, where its reference index lives), and [`Session`], one viewing
//!   session of a title (the id carried by the token, the account behind it, issue/expiry
//!   times and key version).
//! - The crawler's frontier (`crawl_jobs`): a [`Job`] per canonical URL found, with its
//!   [`JobKind`] and [`JobState`]. Workers lease due rows ([`Store::claim_jobs`], exclusive
//!   on both backends), renew the leases while they work, and complete or fail them; a
//!   lease that runs out (a killed worker) makes the row claimable again, and a row that
//!   fails too often is dead-lettered. See the [`Store::enqueue_jobs`] family.
//! - The crawler's findings (`findings`): a [`Finding`] per captured leak, with its
//!   [`FindingKind`], the redirect chain, hashes and the detector's [`FindingVerdict`] and
//!   report: what a takedown notice needs. Idempotent on (media URL, SHA-256).
//! - The takedown notices (`takedown_notices`, `takedown_outbox`, `takedown_rdap_cache`): a
//!   [`NoticeRecord`] per notice, with its [`NoticeLevel`], [`NoticeChannel`],
//!   [`NoticeDelivery`] and [`NoticeDisposition`]; the outbox claim that makes a send
//!   exclusive even across a crash ([`Store::claim_outbox`]); cached RDAP answers.
//! - Session revocation (`revocation_events`, `revoked_sessions`): [`Store::revoke`] and
//!   [`Store::restore`] a session or every session of an account, each change a
//!   [`RevocationEvent`] of an audit trail the schema keeps append-only (who, when, why);
//!   the edge follows it by `seq` ([`Store::revocation_events`]).
//!
//! The store records; the rules are its callers': when a failed crawl job is retried (the
//! crawler's retry policy, passed to [`Store::fail_job`] as a time), which disposition may
//! follow which (the takedown crate's).
//!
//! Status columns are TEXT in the database. Each has an enum here whose `as_str` is the
//! stored text (also what the CLI prints) and whose `FromStr` fails with an
//! [`UnknownValue`] naming the valid texts; a stored text that names none reads back as
//! [`StoreError::Corrupt`].
//!
//! Timestamps are UTC unix seconds (`i64`) on both backends; no date-time type
//! mapping is involved.
//!
//! # SQL
//!
//! One private module writes every statement, once for both backends (`$N` placeholders,
//! which sqlx binds on SQLite as on PostgreSQL), and reads rows by column name; the
//! dialects differ only in their migrations and in the claim of frontier rows.
//!
//! # Durability
//!
//! [`Store::insert_session`] returns only after the commit reached stable
//! storage: a session whose token was handed out is never lost, since the
//! detector can only accuse sessions it finds here. SQLite runs with
//! `synchronous = FULL` rather than `NORMAL` for that reason: in WAL mode
//! `NORMAL` survives a crash of the process but may lose the last commits on a
//! power cut or kernel crash; `FULL` fsyncs the WAL at every commit. The cost is
//! one fsync per commit; bulk callers use [`Store::insert_sessions`] (one
//! transaction). On PostgreSQL every connection sets `synchronous_commit = on`.
//!
//! # Large titles
//!
//! The detector scores every session of a title (10⁶ or more). Use
//! [`Store::sessions_for_title`], a stream of batches fetched by keyset
//! pagination, never a `Vec` of everything.
//!
//! # Errors
//!
//! All methods return [`StoreError`]. URLs in errors are passed through
//! [`redact_url`], so a password never reaches a log.
//!
//! # Example
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use leaktrace_store::{NewSession, NewTitle, Store, StoreError};
//!
//! # async fn run() -> Result<(), StoreError> {
//! let store = Store::open("sqlite:///var/lib/leaktrace/store.sqlite").await?;
//! store
//!     .upsert_title(&NewTitle {
//!         title_id: "bbb".into(),
//!         name: "Big Buck Bunny".into(),
//!         segment_duration_ms: 2000,
//!         position_count: 298,
//!         key_version: 1,
//!         reference_path: Some("/srv/ref/bbb.refidx".into()),
//!     })
//!     .await?;
//!
//! // Playback service: record the session, then issue its token.
//! store
//!     .insert_session(&NewSession {
//!         session_id: "s-0001".into(),
//!         title_id: "bbb".into(),
//!         account_ref: "acct-42".into(),
//!         issued_at: 1_767_225_600,
//!         expires_at: 1_767_229_200,
//!         key_version: 1,
//!     })
//!     .await?;
//!
//! // Detector: walk every session of the title, 10 000 at a time.
//! let mut batches = std::pin::pin!(store.sessions_for_title("bbb", 10_000));
//! while let Some(batch) = batches.try_next().await? {
//!     for session in &batch {
//!         let _ = (&session.session_id, &session.account_ref);
//!     }
//! }
//! assert_eq!(store.count_sessions("bbb").await?, 1);
//! store.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

#[macro_use]
mod text;

mod error;
mod findings;
mod frontier;
mod location;
mod model;
mod notices;
mod revocations;
mod sql;
mod store;

pub use error::{ACCEPTED_URLS, StoreError};
pub use findings::{Finding, FindingKind, FindingVerdict, NewFinding};
pub use frontier::{Job, JobCounts, JobDone, JobKind, JobState, NewJob};
pub use location::redact_url;
pub use model::{NewSession, NewTitle, Session, Title};
pub use notices::{
    NewNotice, NoticeChannel, NoticeDelivery, NoticeDisposition, NoticeLevel, NoticeRecord,
    OutboxClaim,
};
pub use revocations::{
    MAX_AUDIT_TEXT, RevocationAction, RevocationEvent, RevocationTarget, RevokedSession,
};
pub(crate) use store::now_unix;
pub use store::{Backend, Store, StoreOptions};
pub use text::UnknownValue;

/// Schema version this build migrates to.
pub const SCHEMA_VERSION: i64 = 6;
