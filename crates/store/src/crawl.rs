//! The crawler's tables: the frontier (`crawl_jobs`, with leases, retries and a
//! dead-letter state) and the findings (`findings`, what a takedown notice needs).
//!
//! # Frontier
//!
//! One row per canonical URL, ever: [`Store::enqueue_jobs`] never creates a
//! second row for a URL. Workers call [`Store::claim_jobs`], which moves up to
//! `n` due rows to `leased` with a deadline, atomically: on PostgreSQL the
//! candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so concurrent
//! workers never claim the same row; on SQLite the single `UPDATE … RETURNING`
//! statement runs under the database write lock. A worker then calls
//! [`Store::complete_job`] or [`Store::fail_job`]; both only act while the
//! caller still holds the lease, so a worker whose lease ran out (it was slow,
//! or it was killed and another worker took over) cannot finish the job a
//! second time. A worker killed with `kill -9` loses nothing: its leases run
//! out and the rows are claimed again.
//!
//! `skipped` rows are recorded but not fetched. Most are final (magnets, trap
//! limits); pages that a crawl run's budget left out are recorded with that run's
//! generation ([`JobDone::deferred`]) and queued again by a later run that finds them.
//!
//! # Findings
//!
//! [`Store::insert_finding`] is idempotent on `(media_url, sha256)`: the same
//! bytes at the same location are one finding, however often they are crawled.
//!
//! The SQL here uses `$N` placeholders on both backends (SQLite treats `$1` as a
//! named parameter whose index is its first appearance; every statement
//! introduces them in ascending order, so indexes match).

use crate::StoreError;
use crate::store::{Pools, Store, now_unix};

/// What a frontier row points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// An HTML page: fetched, links extracted.
    Page,
    /// A direct media file (MP4, MKV, …): captured and analysed.
    Media,
    /// An HLS media or multivariant playlist: captured (bounded) and analysed.
    Playlist,
    /// A magnet link: recorded, never fetched.
    Magnet,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Page => "page",
            JobKind::Media => "media",
            JobKind::Playlist => "playlist",
            JobKind::Magnet => "magnet",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<JobKind, StoreError> {
        Ok(match s {
            "page" => JobKind::Page,
            "media" => JobKind::Media,
            "playlist" => JobKind::Playlist,
            "magnet" => JobKind::Magnet,
            other => {
                return Err(StoreError::Corrupt {
                    detail: format!("job kind `{other}` (expected page, media, playlist, magnet)"),
                });
            }
        })
    }
}

/// Where a frontier row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting; claimable once `not_before` has passed.
    Queued,
    /// Claimed by a worker until `lease_until`.
    Leased,
    /// Processed.
    Done,
    /// Failed `max_attempts` times: the dead-letter state, never retried automatically.
    Dead,
    /// Recorded, not fetched: a magnet or a URL a trap limit refuses (never fetched), or a
    /// page a crawl budget left out of its run (a later run may queue it).
    Skipped,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<JobState, StoreError> {
        Ok(match s {
            "queued" => JobState::Queued,
            "leased" => JobState::Leased,
            "done" => JobState::Done,
            "dead" => JobState::Dead,
            "skipped" => JobState::Skipped,
            other => {
                return Err(StoreError::Corrupt {
                    detail: format!(
                        "job state `{other}` (expected queued, leased, done, dead, skipped)"
                    ),
                });
            }
        })
    }
}

/// A URL to put in the frontier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Canonical URL (the caller canonicalizes); non-empty; the row's key.
    pub url: String,
    /// What it points at.
    pub kind: JobKind,
    /// Link distance from a seed (0 for seeds).
    pub depth: u32,
    /// The page the URL was found on.
    pub referrer: Option<String>,
    /// Catalogue title the context matched, if any.
    pub title_hint: Option<String>,
}

/// A frontier row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Canonical URL.
    pub url: String,
    /// What it points at.
    pub kind: JobKind,
    /// Link distance from a seed.
    pub depth: u32,
    /// The page the URL was found on.
    pub referrer: Option<String>,
    /// Catalogue title the context matched, if any.
    pub title_hint: Option<String>,
    /// Where it is in its life.
    pub state: JobState,
    /// Claims so far (a claim whose worker died counts).
    pub attempts: u32,
    /// Not claimable before this time (UTC unix seconds).
    pub not_before: i64,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease deadline (UTC unix seconds).
    pub lease_until: Option<i64>,
    /// The last failure, or why the row was skipped.
    pub last_error: Option<String>,
    /// The crawl run that last queued the row (a row deferred by a crawl budget: the run
    /// that deferred it; other skipped rows: 0).
    pub generation: i64,
    /// First seen (UTC unix seconds).
    pub created_at: i64,
    /// Last state change (UTC unix seconds).
    pub updated_at: i64,
}

/// A processed job to complete with [`Store::finish_jobs`]: what it found goes into the
/// frontier in the same transaction as its completion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobDone {
    /// The job's URL (leased by the caller).
    pub url: String,
    /// A note kept in `last_error` (what was done).
    pub note: Option<String>,
    /// URLs found, queued as by [`Store::enqueue_jobs`] (in `generation`).
    pub found: Vec<NewJob>,
    /// URLs found but never to be fetched, with the reason, as by [`Store::record_skipped`].
    pub skipped: Vec<(NewJob, String)>,
    /// URLs found but not fetched in this run because a crawl budget ran out, with the
    /// reason: recorded as `skipped` like [`JobDone::skipped`], but as part of `generation`,
    /// so a later run that finds them again queues them (see [`Store::enqueue_jobs`]).
    pub deferred: Vec<(NewJob, String)>,
    /// The crawl run the found URLs belong to.
    pub generation: i64,
}

/// Rows per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Waiting.
    pub queued: u64,
    /// Claimed.
    pub leased: u64,
    /// Processed.
    pub done: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Recorded, never fetched.
    pub skipped: u64,
}

impl JobCounts {
    /// Rows still to process (queued or leased).
    pub fn pending(&self) -> u64 {
        self.queued + self.leased
    }
}

/// Retry rule of [`Store::fail_job`]: after failure number `k` (1-based) the
/// row waits `min(base_secs · 2^(k-1), max_secs)` seconds (or longer if the
/// server asked, e.g. `Retry-After`); the failure number `max_attempts` sends it
/// to the dead-letter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before dead-lettering (1 to 100).
    pub max_attempts: u32,
    /// First backoff, seconds.
    pub base_secs: u32,
    /// Longest backoff, seconds.
    pub max_secs: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_secs: 30,
            max_secs: 3600,
        }
    }
}

impl RetryPolicy {
    /// Backoff after failure number `attempt` (1-based), seconds.
    pub fn backoff_secs(&self, attempt: u32) -> i64 {
        let shift = attempt.saturating_sub(1).min(30);
        let b = i64::from(self.base_secs).saturating_mul(1i64 << shift);
        b.min(i64::from(self.max_secs))
    }
}

/// A leak found by the crawler: everything a takedown notice needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    /// Stable id (the caller derives it from `media_url` and `sha256`).
    pub finding_id: String,
    /// The URL of the media (file or playlist) as first requested.
    pub media_url: String,
    /// The page it was found on.
    pub page_url: Option<String>,
    /// Every URL requested for the media, first to last (redirect hops), as JSON array text.
    pub redirect_chain: Vec<String>,
    /// The HTTP status of each request in `redirect_chain`, in the same order (redirects,
    /// then the final 2xx); empty for findings stored before schema v4.
    pub redirect_statuses: Vec<u16>,
    /// The server address the final hop connected to.
    pub resolved_ip: Option<String>,
    /// `direct` (one file) or `hls` (a playlist and its segments).
    pub kind: String,
    /// A file name for notices (from the URL path).
    pub file_name: String,
    /// Content-Type of the media response.
    pub content_type: Option<String>,
    /// Bytes captured.
    pub byte_len: u64,
    /// BLAKE3 of the captured bytes, lowercase hex.
    pub blake3: String,
    /// SHA-256 of the captured bytes, lowercase hex.
    pub sha256: String,
    /// Where the captured bytes are kept.
    pub capture_path: String,
    /// The catalogue title matched (or analysed against).
    pub title_id: Option<String>,
    /// Title match score, 0 to 100.
    pub title_score: u32,
    /// `accused`, `no accusation` or `error`.
    pub verdict: String,
    /// Accused sessions as JSON text: `[{"session_id", "account", "score", "probability"}]`.
    pub accused: String,
    /// The detect report (JSON text).
    pub report: String,
    /// Capture start (UTC unix seconds).
    pub capture_started_at: i64,
    /// Capture end (UTC unix seconds).
    pub capture_finished_at: i64,
}

/// A stored finding: [`NewFinding`] plus when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The finding as recorded.
    pub record: NewFinding,
    /// When it was stored (UTC unix seconds).
    pub created_at: i64,
}

#[cfg(test)]
const JOB_COLS: &str = "url, kind, depth, referrer, title_hint, state, attempts, not_before, \
     lease_owner, lease_until, last_error, generation, created_at, updated_at";

type JobRow = (
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i64,
);

fn job_from_row(r: JobRow) -> Result<Job, StoreError> {
    let range = |what: &str, v: i64| StoreError::Corrupt {
        detail: format!("{what} {v} out of range (0 to 2^32-1)"),
    };
    Ok(Job {
        url: r.0,
        kind: JobKind::parse(&r.1)?,
        depth: u32::try_from(r.2).map_err(|_| range("depth", r.2))?,
        referrer: r.3,
        title_hint: r.4,
        state: JobState::parse(&r.5)?,
        attempts: u32::try_from(r.6).map_err(|_| range("attempts", r.6))?,
        not_before: r.7,
        lease_owner: r.8,
        lease_until: r.9,
        last_error: r.10,
        generation: r.11,
        created_at: r.12,
        updated_at: r.13,
    })
}

macro_rules! job_select {
    ($tail:literal) => {
        concat!(
            "SELECT url, kind, depth, referrer, title_hint, state, attempts, not_before, \
             lease_owner, lease_until, last_error, generation, created_at, updated_at \
             FROM crawl_jobs ",
            $tail
        )
    };
}

macro_rules! job_returning {
    () => {
        " RETURNING url, kind, depth, referrer, title_hint, state, attempts, not_before, \
         lease_owner, lease_until, last_error, generation, created_at, updated_at"
    };
}

/// Insert a row, or re-queue a page row of an older run that is done or was deferred by a
/// crawl budget (skipped rows of generation > 0; other skipped rows have generation 0).
const ENQUEUE: &str = "INSERT INTO crawl_jobs (url, kind, depth, referrer, title_hint, state, \
     attempts, not_before, generation, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $6, $6) \
     ON CONFLICT (url) DO UPDATE SET state = 'queued', attempts = 0, not_before = excluded.not_before, \
     generation = excluded.generation, updated_at = excluded.updated_at, last_error = NULL \
     WHERE (crawl_jobs.state = 'done' OR (crawl_jobs.state = 'skipped' AND crawl_jobs.generation > 0)) \
     AND crawl_jobs.generation < excluded.generation AND crawl_jobs.kind = 'page'";

/// The run of pagination hops ending at a row: its ancestors along `referrer` as long as
/// each has the same depth as its child (pagination links add no depth, every other link
/// adds one), at most `$2` hops.
const PAGINATION_RUN: &str = "WITH RECURSIVE chain(url, referrer, depth, n) AS (\
     SELECT url, referrer, depth, 0 FROM crawl_jobs WHERE url = $1 \
     UNION ALL \
     SELECT p.url, p.referrer, p.depth, c.n + 1 FROM crawl_jobs p \
     JOIN chain c ON p.url = c.referrer WHERE p.depth = c.depth AND c.n < $2) \
     SELECT CAST(COALESCE(MAX(n), 0) AS BIGINT) FROM chain";

const RECORD_SKIPPED: &str = "INSERT INTO crawl_jobs (url, kind, depth, referrer, title_hint, \
     state, attempts, not_before, last_error, generation, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, 'skipped', 0, $6, $7, $8, $6, $6) ON CONFLICT (url) DO NOTHING";

const CLAIM_SQLITE: &str = concat!(
    "UPDATE crawl_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 WHERE url IN (SELECT url FROM crawl_jobs \
     WHERE state = 'queued' AND not_before <= $3 ORDER BY depth, not_before LIMIT $4)",
    job_returning!()
);

const CLAIM_POSTGRES: &str = concat!(
    "UPDATE crawl_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
     attempts = attempts + 1, updated_at = $3 WHERE url IN (SELECT url FROM crawl_jobs \
     WHERE state = 'queued' AND not_before <= $3 ORDER BY depth, not_before LIMIT $4 \
     FOR UPDATE SKIP LOCKED)",
    job_returning!()
);

/// Rows whose lease ran out (the worker died or overran `lease_secs`) go back to the
/// queue, due at once; those claimed `max_attempts` times go to the dead-letter state
/// instead (a crash loop must not go on forever).
const SWEEP_EXPIRED: &str = "UPDATE crawl_jobs SET \
     state = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'queued' END, \
     last_error = CASE WHEN attempts >= $1 THEN $2 ELSE last_error END, \
     lease_owner = NULL, lease_until = NULL, updated_at = $3 \
     WHERE state = 'leased' AND lease_until < $3";

const EXPIRED_DEAD_NOTE: &str =
    "lease expired on the last allowed attempt (the worker died or overran lease_secs each time)";

const COMPLETE: &str = "UPDATE crawl_jobs SET state = 'done', lease_owner = NULL, \
     lease_until = NULL, last_error = $1, updated_at = $2 \
     WHERE url = $3 AND state = 'leased' AND lease_owner = $4";

const RETRY: &str = "UPDATE crawl_jobs SET state = $1, lease_owner = NULL, lease_until = NULL, \
     last_error = $2, not_before = $3, updated_at = $4 \
     WHERE url = $5 AND state = 'leased' AND lease_owner = $6";

const RENEW: &str = "UPDATE crawl_jobs SET lease_until = $1, updated_at = $2 \
     WHERE url = $3 AND state = 'leased' AND lease_owner = $4";

const RELEASE: &str = "UPDATE crawl_jobs SET state = 'queued', lease_owner = NULL, \
     lease_until = NULL, attempts = attempts - 1, not_before = $1, updated_at = $2 \
     WHERE url = $3 AND state = 'leased' AND lease_owner = $4 AND attempts > 0";

const COUNTS: &str = "SELECT state, COUNT(*) FROM crawl_jobs GROUP BY state";

const FINDING_COLS_INSERT: &str = "INSERT INTO findings (finding_id, media_url, page_url, \
     redirect_chain, resolved_ip, kind, file_name, content_type, byte_len, blake3, sha256, \
     capture_path, title_id, title_score, verdict, accused, report, capture_started_at, \
     capture_finished_at, created_at, redirect_statuses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
     $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
     ON CONFLICT (media_url, sha256) DO NOTHING";

macro_rules! finding_select {
    ($tail:literal) => {
        concat!(
            "SELECT finding_id, media_url, page_url, redirect_chain, resolved_ip, kind, \
             file_name, content_type, byte_len, blake3, sha256, capture_path, title_id, \
             title_score, verdict, accused, report, capture_started_at, capture_finished_at, \
             created_at, redirect_statuses FROM findings ",
            $tail
        )
    };
}

struct FindingRow {
    finding_id: String,
    media_url: String,
    page_url: Option<String>,
    redirect_chain: String,
    resolved_ip: Option<String>,
    kind: String,
    file_name: String,
    content_type: Option<String>,
    byte_len: i64,
    blake3: String,
    sha256: String,
    capture_path: String,
    title_id: Option<String>,
    title_score: i64,
    verdict: String,
    accused: String,
    report: String,
    capture_started_at: i64,
    capture_finished_at: i64,
    created_at: i64,
    redirect_statuses: String,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for FindingRow
where
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(FindingRow {
            finding_id: row.try_get("finding_id")?,
            media_url: row.try_get("media_url")?,
            page_url: row.try_get("page_url")?,
            redirect_chain: row.try_get("redirect_chain")?,
            resolved_ip: row.try_get("resolved_ip")?,
            kind: row.try_get("kind")?,
            file_name: row.try_get("file_name")?,
            content_type: row.try_get("content_type")?,
            byte_len: row.try_get("byte_len")?,
            blake3: row.try_get("blake3")?,
            sha256: row.try_get("sha256")?,
            capture_path: row.try_get("capture_path")?,
            title_id: row.try_get("title_id")?,
            title_score: row.try_get("title_score")?,
            verdict: row.try_get("verdict")?,
            accused: row.try_get("accused")?,
            report: row.try_get("report")?,
            capture_started_at: row.try_get("capture_started_at")?,
            capture_finished_at: row.try_get("capture_finished_at")?,
            created_at: row.try_get("created_at")?,
            redirect_statuses: row.try_get("redirect_statuses")?,
        })
    }
}

impl TryFrom<FindingRow> for Finding {
    type Error = StoreError;
    fn try_from(r: FindingRow) -> Result<Finding, StoreError> {
        let chain: Vec<String> = parse_chain(&r.redirect_chain)?;
        Ok(Finding {
            record: NewFinding {
                finding_id: r.finding_id,
                media_url: r.media_url,
                page_url: r.page_url,
                redirect_chain: chain,
                redirect_statuses: parse_statuses(&r.redirect_statuses)?,
                resolved_ip: r.resolved_ip,
                kind: r.kind,
                file_name: r.file_name,
                content_type: r.content_type,
                byte_len: u64::try_from(r.byte_len).map_err(|_| StoreError::Corrupt {
                    detail: format!("byte_len {} negative", r.byte_len),
                })?,
                blake3: r.blake3,
                sha256: r.sha256,
                capture_path: r.capture_path,
                title_id: r.title_id,
                title_score: u32::try_from(r.title_score).map_err(|_| StoreError::Corrupt {
                    detail: format!("title_score {} out of range (0 to 100)", r.title_score),
                })?,
                verdict: r.verdict,
                accused: r.accused,
                report: r.report,
                capture_started_at: r.capture_started_at,
                capture_finished_at: r.capture_finished_at,
            },
            created_at: r.created_at,
        })
    }
}

/// Statuses are stored as a JSON array of integers.
fn encode_statuses(statuses: &[u16]) -> String {
    serde_json::to_string(statuses).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_statuses(s: &str) -> Result<Vec<u16>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        detail: format!(
            "redirect_statuses is not a JSON array of integers 0 to 65535 ({e}): {s:.80}"
        ),
    })
}

/// The redirect chain is stored as a JSON array of strings.
fn encode_chain(chain: &[String]) -> String {
    serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_chain(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        detail: format!("redirect_chain is not a JSON array of strings ({e}): {s:.80}"),
    })
}

macro_rules! on_pool {
    ($store:expr, |$pool:ident, $pg:ident| $body:expr) => {
        match &$store.pools {
            Pools::Sqlite($pool) => {
                let $pg = false;
                let _ = $pg;
                $body
            }
            Pools::Postgres($pool) => {
                let $pg = true;
                let _ = $pg;
                $body
            }
        }
    };
}

fn to_i64(v: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::invalid(field, "must be below 2^63"))
}

impl Store {
    /// Adds URLs to the frontier in one transaction, all due now, as part of
    /// crawl run `generation`. A URL already present is left alone, except a
    /// page of an older generation that is `done` or was deferred by a crawl budget
    /// ([`JobDone::deferred`]), which is queued again (a re-crawl re-reads pages, and
    /// reaches what an earlier run's budget left out; media already captured are not
    /// fetched again). Returns how many rows were inserted or re-queued.
    pub async fn enqueue_jobs(&self, jobs: &[NewJob], generation: i64) -> Result<u64, StoreError> {
        for j in jobs {
            if j.url.is_empty() {
                return Err(StoreError::invalid("url", "must not be empty"));
            }
        }
        let now = now_unix();
        let mut n = 0;
        on_pool!(self, |pool, _pg| {
            let mut tx = pool.begin().await?;
            for j in jobs {
                n += sqlx::query(ENQUEUE)
                    .bind(&j.url)
                    .bind(j.kind.as_str())
                    .bind(i64::from(j.depth))
                    .bind(&j.referrer)
                    .bind(&j.title_hint)
                    .bind(now)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(n)
    }

    /// Records a URL that is never fetched (a magnet link, or one refused by
    /// robots.txt or a trap limit), with the reason. A URL already present is
    /// left alone. Returns whether a row was added.
    pub async fn record_skipped(&self, job: &NewJob, reason: &str) -> Result<bool, StoreError> {
        if job.url.is_empty() {
            return Err(StoreError::invalid("url", "must not be empty"));
        }
        let now = now_unix();
        let n = on_pool!(self, |pool, _pg| sqlx::query(RECORD_SKIPPED)
            .bind(&job.url)
            .bind(job.kind.as_str())
            .bind(i64::from(job.depth))
            .bind(&job.referrer)
            .bind(&job.title_hint)
            .bind(now)
            .bind(reason)
            .bind(0i64)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Claims up to `n` due rows for `owner` for `lease_secs` seconds (queued
    /// rows whose `not_before` has passed, and leased rows whose lease ran out),
    /// shallowest first. Each claim counts as an attempt, including a claim whose
    /// worker died: a row whose lease ran out after `max_attempts` claims is not
    /// claimed again but dead-lettered (see [`Store::sweep_expired_leases`]), so a
    /// URL that crashes every worker that takes it cannot crash-loop the crawl.
    /// `max_attempts` is 1 to 100 (as [`RetryPolicy::max_attempts`]).
    pub async fn claim_jobs(
        &self,
        owner: &str,
        n: u32,
        lease_secs: u32,
        max_attempts: u32,
    ) -> Result<Vec<Job>, StoreError> {
        if owner.is_empty() {
            return Err(StoreError::invalid("owner", "must not be empty"));
        }
        if !(1..=100).contains(&max_attempts) {
            return Err(StoreError::invalid("max_attempts", "must be 1 to 100"));
        }
        self.sweep_expired_leases(max_attempts).await?;
        let now = now_unix();
        let rows: Vec<JobRow> = on_pool!(self, |pool, pg| {
            sqlx::query_as(if pg { CLAIM_POSTGRES } else { CLAIM_SQLITE })
                .bind(owner)
                .bind(now + i64::from(lease_secs))
                .bind(now)
                .bind(i64::from(n))
                .fetch_all(pool)
                .await?
        });
        let mut jobs = rows
            .into_iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.url.cmp(&b.url)));
        Ok(jobs)
    }

    /// Ends every lease that ran out (its worker died, or overran `lease_secs`): the row
    /// is queued again, due at once, or, if it has been claimed `max_attempts` times or
    /// more, dead-lettered. [`Store::claim_jobs`] calls it first; returns the rows changed.
    pub async fn sweep_expired_leases(&self, max_attempts: u32) -> Result<u64, StoreError> {
        let now = now_unix();
        let n = on_pool!(self, |pool, _pg| sqlx::query(SWEEP_EXPIRED)
            .bind(i64::from(max_attempts))
            .bind(EXPIRED_DEAD_NOTE)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n)
    }

    /// How many pagination links in a row lead to the row of `url`, at most `limit`: 0 for a
    /// row reached otherwise (a seed, a link that adds depth), 1 for the first "next" page of
    /// a listing, and so on. Derived from the rows' referrers and depths (a pagination link
    /// is the one kind of link that adds no depth), in one query; 0 for an unknown URL.
    pub async fn pagination_run(&self, url: &str, limit: u32) -> Result<u32, StoreError> {
        let n: i64 = on_pool!(self, |pool, _pg| sqlx::query_scalar(PAGINATION_RUN)
            .bind(url)
            .bind(i64::from(limit))
            .fetch_one(pool)
            .await?);
        u32::try_from(n).map_err(|_| StoreError::Corrupt {
            detail: format!("pagination run {n} out of range"),
        })
    }

    /// Completes several leased jobs of `owner` in one transaction (one commit, one
    /// disk sync, however many jobs): for each, its found URLs are queued, its skipped
    /// URLs recorded, and its row marked done if `owner` still holds the lease. The
    /// found URLs are queued even when the lease was lost (queueing is idempotent).
    /// Returns, per job in order, whether it was completed by this call.
    pub async fn finish_jobs(
        &self,
        owner: &str,
        jobs: &[JobDone],
    ) -> Result<Vec<bool>, StoreError> {
        for j in jobs {
            if j.url.is_empty()
                || j.found.iter().any(|f| f.url.is_empty())
                || j.skipped
                    .iter()
                    .chain(&j.deferred)
                    .any(|(f, _)| f.url.is_empty())
            {
                return Err(StoreError::invalid("url", "must not be empty"));
            }
        }
        let now = now_unix();
        let mut out = Vec::with_capacity(jobs.len());
        on_pool!(self, |pool, _pg| {
            let mut tx = pool.begin().await?;
            for j in jobs {
                for f in &j.found {
                    sqlx::query(ENQUEUE)
                        .bind(&f.url)
                        .bind(f.kind.as_str())
                        .bind(i64::from(f.depth))
                        .bind(&f.referrer)
                        .bind(&f.title_hint)
                        .bind(now)
                        .bind(j.generation)
                        .execute(&mut *tx)
                        .await?;
                }
                let skipped = j.skipped.iter().map(|s| (s, 0i64));
                let deferred = j.deferred.iter().map(|s| (s, j.generation));
                for ((f, reason), generation) in skipped.chain(deferred) {
                    sqlx::query(RECORD_SKIPPED)
                        .bind(&f.url)
                        .bind(f.kind.as_str())
                        .bind(i64::from(f.depth))
                        .bind(&f.referrer)
                        .bind(&f.title_hint)
                        .bind(now)
                        .bind(reason)
                        .bind(generation)
                        .execute(&mut *tx)
                        .await?;
                }
                let n = sqlx::query(COMPLETE)
                    .bind(&j.note)
                    .bind(now)
                    .bind(&j.url)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                out.push(n > 0);
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// Marks a leased row done (with an optional note). Returns `false`, and
    /// changes nothing, if `owner` no longer holds the lease.
    pub async fn complete_job(
        &self,
        url: &str,
        owner: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_unix();
        let n = on_pool!(self, |pool, _pg| sqlx::query(COMPLETE)
            .bind(note)
            .bind(now)
            .bind(url)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Records a failed attempt of a leased row: back to `queued` after the
    /// policy's backoff (or `not_before_at_least`, e.g. from `Retry-After`,
    /// whichever is later), or to `dead` once `attempts` reached
    /// `policy.max_attempts`. Returns the new state, `None` if `owner` no longer
    /// holds the lease.
    pub async fn fail_job(
        &self,
        job: &Job,
        owner: &str,
        error: &str,
        policy: &RetryPolicy,
        not_before_at_least: Option<i64>,
    ) -> Result<Option<JobState>, StoreError> {
        let now = now_unix();
        let (state, not_before) = if job.attempts >= policy.max_attempts {
            (JobState::Dead, now)
        } else {
            let t = now + policy.backoff_secs(job.attempts);
            (JobState::Queued, t.max(not_before_at_least.unwrap_or(0)))
        };
        let n = on_pool!(self, |pool, _pg| sqlx::query(RETRY)
            .bind(state.as_str())
            .bind(error)
            .bind(not_before)
            .bind(now)
            .bind(&job.url)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok((n > 0).then_some(state))
    }

    /// Extends the lease of a row `owner` holds to `lease_secs` from now (a worker renews
    /// the leases of the jobs it is still processing). Returns `false`, and changes nothing,
    /// if `owner` no longer holds the lease (it ran out and the row was taken back).
    pub async fn renew_lease(
        &self,
        url: &str,
        owner: &str,
        lease_secs: u32,
    ) -> Result<bool, StoreError> {
        let until = now_unix() + i64::from(lease_secs);
        self.update_held(RENEW, until, url, owner).await
    }

    /// Runs `sql` (binding a time, now, the URL and the owner) on a row `owner` leases;
    /// whether it held the lease.
    async fn update_held(
        &self,
        sql: &'static str,
        at: i64,
        url: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let now = now_unix();
        let n = on_pool!(self, |pool, _pg| sqlx::query(sql)
            .bind(at)
            .bind(now)
            .bind(url)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Gives a leased row back without counting the attempt (the worker is
    /// shutting down, or the host asked to wait), claimable again at `not_before`.
    /// Returns whether `owner` held the lease.
    pub async fn release_job(
        &self,
        url: &str,
        owner: &str,
        not_before: i64,
    ) -> Result<bool, StoreError> {
        self.update_held(RELEASE, not_before, url, owner).await
    }

    /// The frontier row of a URL.
    pub async fn get_job(&self, url: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = on_pool!(self, |pool, _pg| sqlx::query_as(job_select!(
            "WHERE url = $1"
        ))
        .bind(url)
        .fetch_optional(pool)
        .await?);
        row.map(job_from_row).transpose()
    }

    /// Frontier rows in a state, by URL, at most `limit`.
    pub async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = on_pool!(self, |pool, _pg| sqlx::query_as(job_select!(
            "WHERE state = $1 ORDER BY url LIMIT $2"
        ))
        .bind(state.as_str())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(job_from_row).collect()
    }

    /// Rows per state.
    pub async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool, _pg| sqlx::query_as(COUNTS)
            .fetch_all(pool)
            .await?);
        let mut c = JobCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match JobState::parse(&state)? {
                JobState::Queued => c.queued = n,
                JobState::Leased => c.leased = n,
                JobState::Done => c.done = n,
                JobState::Dead => c.dead = n,
                JobState::Skipped => c.skipped = n,
            }
        }
        Ok(c)
    }

    /// Stores a finding. Returns `true` if it is new, `false` if a finding for
    /// the same `(media_url, sha256)` exists (nothing is changed then).
    pub async fn insert_finding(&self, f: &NewFinding) -> Result<bool, StoreError> {
        if f.finding_id.is_empty() || f.media_url.is_empty() {
            return Err(StoreError::invalid(
                "finding",
                "finding_id and media_url must not be empty",
            ));
        }
        if f.blake3.len() != 64 || f.sha256.len() != 64 {
            return Err(StoreError::invalid(
                "finding",
                "blake3 and sha256 must be 64 hex digits",
            ));
        }
        let now = now_unix();
        let n = on_pool!(self, |pool, _pg| sqlx::query(FINDING_COLS_INSERT)
            .bind(&f.finding_id)
            .bind(&f.media_url)
            .bind(&f.page_url)
            .bind(encode_chain(&f.redirect_chain))
            .bind(&f.resolved_ip)
            .bind(&f.kind)
            .bind(&f.file_name)
            .bind(&f.content_type)
            .bind(to_i64(f.byte_len, "byte_len")?)
            .bind(&f.blake3)
            .bind(&f.sha256)
            .bind(&f.capture_path)
            .bind(&f.title_id)
            .bind(i64::from(f.title_score))
            .bind(&f.verdict)
            .bind(&f.accused)
            .bind(&f.report)
            .bind(f.capture_started_at)
            .bind(f.capture_finished_at)
            .bind(now)
            .bind(encode_statuses(&f.redirect_statuses))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Findings, oldest first, at most `limit`, starting after `after` (a
    /// finding id from the previous page; keyset pagination on `(created_at, finding_id)`).
    pub async fn findings_list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Finding>, StoreError> {
        let rows: Vec<FindingRow> = match after {
            None => on_pool!(self, |pool, _pg| sqlx::query_as(finding_select!(
                "ORDER BY created_at, finding_id LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?),
            Some(after) => on_pool!(self, |pool, _pg| sqlx::query_as(finding_select!(
                "WHERE (created_at, finding_id) > \
                 (SELECT created_at, finding_id FROM findings WHERE finding_id = $1) \
                 ORDER BY created_at, finding_id LIMIT $2"
            ))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?),
        };
        rows.into_iter().map(Finding::try_from).collect()
    }

    /// The finding with this id.
    pub async fn finding_get(&self, finding_id: &str) -> Result<Option<Finding>, StoreError> {
        let row: Option<FindingRow> = on_pool!(self, |pool, _pg| sqlx::query_as(finding_select!(
            "WHERE finding_id = $1"
        ))
        .bind(finding_id)
        .fetch_optional(pool)
        .await?);
        row.map(Finding::try_from).transpose()
    }

    /// Some finding whose captured bytes have this SHA-256 (the oldest).
    pub async fn finding_by_sha256(&self, sha256: &str) -> Result<Option<Finding>, StoreError> {
        let row: Option<FindingRow> = on_pool!(self, |pool, _pg| sqlx::query_as(finding_select!(
            "WHERE sha256 = $1 ORDER BY created_at, finding_id LIMIT 1"
        ))
        .bind(sha256)
        .fetch_optional(pool)
        .await?);
        row.map(Finding::try_from).transpose()
    }

    /// Findings whose analysis may serve again for bytes with this SHA-256 analysed for
    /// `title_id`: those of the same bytes and title whose analysis did not fail (verdict
    /// other than `error`), newest first, at most 50. The caller checks the analysis inputs.
    pub async fn findings_for_reuse(
        &self,
        sha256: &str,
        title_id: &str,
    ) -> Result<Vec<Finding>, StoreError> {
        let rows: Vec<FindingRow> = on_pool!(self, |pool, _pg| sqlx::query_as(finding_select!(
            "WHERE sha256 = $1 AND title_id = $2 AND verdict <> 'error' \
             ORDER BY created_at DESC, finding_id DESC LIMIT 50"
        ))
        .bind(sha256)
        .bind(title_id)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(Finding::try_from).collect()
    }

    /// Whether a finding exists for this media URL.
    pub async fn finding_exists_for_url(&self, media_url: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, |pool, _pg| sqlx::query_scalar(
            "SELECT COUNT(*) FROM findings WHERE media_url = $1"
        )
        .bind(media_url)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    /// Number of findings.
    pub async fn count_findings(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, |pool, _pg| sqlx::query_scalar(
            "SELECT COUNT(*) FROM findings"
        )
        .fetch_one(pool)
        .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_round_trips() {
        let c = vec![
            "http://a/\"x\"".to_owned(),
            "http://b/\\y\n".to_owned(),
            String::new(),
        ];
        assert_eq!(parse_chain(&encode_chain(&c)).unwrap(), c);
        assert_eq!(parse_chain("[]").unwrap(), Vec::<String>::new());
        assert!(parse_chain("{").is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for v in [vec![], vec![200], vec![301, 302, 307, 200]] {
            assert_eq!(parse_statuses(&encode_statuses(&v)).unwrap(), v);
        }
        assert_eq!(parse_statuses(" [ 301 , 200 ] ").unwrap(), [301, 200]);
        assert!(parse_statuses("[70000]").is_err());
        assert!(parse_statuses("301").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_secs: 10,
            max_secs: 35,
        };
        assert_eq!(p.backoff_secs(1), 10);
        assert_eq!(p.backoff_secs(2), 20);
        assert_eq!(p.backoff_secs(3), 35);
        assert_eq!(p.backoff_secs(99), 35);
    }

    #[test]
    fn job_cols_constant_matches_macro() {
        assert!(job_select!("").contains(JOB_COLS));
    }
}
