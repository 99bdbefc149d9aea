//! Statements on the frontier, `crawl_jobs`.

use super::{Stmt, stored_int, stored_text};
use crate::frontier::{Job, NewJob};
use crate::{Backend, JobState, StoreError};

/// Columns of `crawl_jobs`, as in [`JobRow`].
macro_rules! job_cols {
    () => {
        "url, kind, depth, referrer, title_hint, state, attempts, not_before, lease_owner, \
         lease_until, last_error, generation, created_at, updated_at"
    };
}

table_row! {
    /// A row of `crawl_jobs`.
    struct JobRow {
        url: String,
        kind: String,
        depth: i64,
        referrer: Option<String>,
        title_hint: Option<String>,
        state: String,
        attempts: i64,
        not_before: i64,
        lease_owner: Option<String>,
        lease_until: Option<i64>,
        last_error: Option<String>,
        generation: i64,
        created_at: i64,
        updated_at: i64,
    }
}

table_row! {
    /// Rows per state ([`count_by_state`]).
    struct StateCount {
        state: String,
        n: i64,
    }
}

/// Insert a row, or re-queue a page row of an older run that is done or was deferred by a
/// crawl budget (skipped rows of generation > 0; other skipped rows have generation 0).
pub(crate) fn enqueue(job: &NewJob, now: i64, generation: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO crawl_jobs (url, kind, depth, referrer, title_hint, state, \
         attempts, not_before, generation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $6, $6) \
         ON CONFLICT (url) DO UPDATE SET state = 'queued', attempts = 0, \
         not_before = excluded.not_before, generation = excluded.generation, \
         updated_at = excluded.updated_at, last_error = NULL \
         WHERE (crawl_jobs.state = 'done' \
         OR (crawl_jobs.state = 'skipped' AND crawl_jobs.generation > 0)) \
         AND crawl_jobs.generation < excluded.generation AND crawl_jobs.kind = 'page'",
    )
    .bind(job.url.as_str())
    .bind(job.kind)
    .bind(job.depth)
    .bind(job.referrer.as_deref())
    .bind(job.title_hint.as_deref())
    .bind(now)
    .bind(generation)
}

/// Record a row as skipped with the reason, unless the URL has a row.
pub(crate) fn record_skipped(job: &NewJob, now: i64, reason: &str, generation: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO crawl_jobs (url, kind, depth, referrer, title_hint, \
         state, attempts, not_before, last_error, generation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'skipped', 0, $6, $7, $8, $6, $6) \
         ON CONFLICT (url) DO NOTHING",
    )
    .bind(job.url.as_str())
    .bind(job.kind)
    .bind(job.depth)
    .bind(job.referrer.as_deref())
    .bind(job.title_hint.as_deref())
    .bind(now)
    .bind(reason)
    .bind(generation)
}

/// The run of pagination hops ending at a row: its ancestors along `referrer` as long as
/// each has the same depth as its child (pagination links add no depth, every other link
/// adds one), at most `limit` hops. One integer.
pub(crate) fn pagination_run(url: &str, limit: u32) -> Stmt {
    Stmt::new(
        "WITH RECURSIVE chain(url, referrer, depth, n) AS (\
         SELECT url, referrer, depth, 0 FROM crawl_jobs WHERE url = $1 \
         UNION ALL \
         SELECT p.url, p.referrer, p.depth, c.n + 1 FROM crawl_jobs p \
         JOIN chain c ON p.url = c.referrer WHERE p.depth = c.depth AND c.n < $2) \
         SELECT CAST(COALESCE(MAX(n), 0) AS BIGINT) FROM chain",
    )
    .bind(url)
    .bind(limit)
}

/// Lease up to `n` due queued rows to `owner` until `lease_until`, shallowest first, and
/// return them. On PostgreSQL the candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers never take the same row; on SQLite the one statement runs under the
/// database's write lock.
pub(crate) fn claim(backend: Backend, owner: &str, lease_until: i64, now: i64, n: u32) -> Stmt {
    /// The statement, with the row lock of the backend's subquery.
    macro_rules! claim {
        ($lock:literal) => {
            concat!(
                "UPDATE crawl_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1, updated_at = $3 WHERE url IN (SELECT url \
                 FROM crawl_jobs WHERE state = 'queued' AND not_before <= $3 \
                 ORDER BY depth, not_before LIMIT $4",
                $lock,
                ") RETURNING ",
                job_cols!()
            )
        };
    }
    let sql = match backend {
        Backend::Sqlite => claim!(""),
        Backend::Postgres => claim!(" FOR UPDATE SKIP LOCKED"),
    };
    Stmt::new(sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(n)
}

/// Rows whose lease ran out (the worker died or overran its lease) go back to the queue, due
/// at once; those claimed `max_attempts` times go to the dead-letter state instead, with
/// `dead_note` as their error (a crash loop must not go on forever).
pub(crate) fn sweep_expired(max_attempts: u32, dead_note: &str, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE crawl_jobs SET \
         state = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'queued' END, \
         last_error = CASE WHEN attempts >= $1 THEN $2 ELSE last_error END, \
         lease_owner = NULL, lease_until = NULL, updated_at = $3 \
         WHERE state = 'leased' AND lease_until < $3",
    )
    .bind(max_attempts)
    .bind(dead_note)
    .bind(now)
}

/// Mark a row `owner` leases done, with a note.
pub(crate) fn complete(note: Option<&str>, now: i64, url: &str, owner: &str) -> Stmt {
    Stmt::new(
        "UPDATE crawl_jobs SET state = 'done', lease_owner = NULL, \
         lease_until = NULL, last_error = $1, updated_at = $2 \
         WHERE url = $3 AND state = 'leased' AND lease_owner = $4",
    )
    .bind(note)
    .bind(now)
    .bind(url)
    .bind(owner)
}

/// End the lease of a row `owner` holds after a failure: `state` is `queued` (due at
/// `not_before`) or `dead`.
pub(crate) fn fail(
    state: JobState,
    error: &str,
    not_before: i64,
    now: i64,
    url: &str,
    owner: &str,
) -> Stmt {
    Stmt::new(
        "UPDATE crawl_jobs SET state = $1, lease_owner = NULL, lease_until = NULL, \
         last_error = $2, not_before = $3, updated_at = $4 \
         WHERE url = $5 AND state = 'leased' AND lease_owner = $6",
    )
    .bind(state)
    .bind(error)
    .bind(not_before)
    .bind(now)
    .bind(url)
    .bind(owner)
}

/// Extend the lease of a row `owner` holds to `lease_until`.
pub(crate) fn renew(lease_until: i64, now: i64, url: &str, owner: &str) -> Stmt {
    Stmt::new(
        "UPDATE crawl_jobs SET lease_until = $1, updated_at = $2 \
         WHERE url = $3 AND state = 'leased' AND lease_owner = $4",
    )
    .bind(lease_until)
    .bind(now)
    .bind(url)
    .bind(owner)
}

/// Give a row `owner` leases back to the queue, due at `not_before`, without counting the
/// attempt.
pub(crate) fn release(not_before: i64, now: i64, url: &str, owner: &str) -> Stmt {
    Stmt::new(
        "UPDATE crawl_jobs SET state = 'queued', lease_owner = NULL, \
         lease_until = NULL, attempts = attempts - 1, not_before = $1, updated_at = $2 \
         WHERE url = $3 AND state = 'leased' AND lease_owner = $4 AND attempts > 0",
    )
    .bind(not_before)
    .bind(now)
    .bind(url)
    .bind(owner)
}

pub(crate) fn get(url: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        job_cols!(),
        " FROM crawl_jobs WHERE url = $1"
    ))
    .bind(url)
}

pub(crate) fn in_state(state: JobState, limit: u32) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        job_cols!(),
        " FROM crawl_jobs WHERE state = $1 ORDER BY url LIMIT $2"
    ))
    .bind(state)
    .bind(limit)
}

/// [`StateCount`] rows.
pub(crate) fn count_by_state() -> Stmt {
    Stmt::new("SELECT state, COUNT(*) AS n FROM crawl_jobs GROUP BY state")
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Job, StoreError> {
        Ok(Job {
            url: r.url,
            kind: stored_text("crawl_jobs.kind", &r.kind)?,
            depth: stored_int("crawl_jobs.depth", r.depth)?,
            referrer: r.referrer,
            title_hint: r.title_hint,
            state: stored_text("crawl_jobs.state", &r.state)?,
            attempts: stored_int("crawl_jobs.attempts", r.attempts)?,
            not_before: r.not_before,
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
            last_error: r.last_error,
            generation: r.generation,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl StateCount {
    /// The state and its number of rows.
    pub(crate) fn parse(&self) -> Result<(JobState, u64), StoreError> {
        Ok((
            stored_text("crawl_jobs.state", &self.state)?,
            stored_int("COUNT(*)", self.n)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_list_matches_the_row() {
        assert_eq!(job_cols!(), JobRow::COLUMNS.join(", "));
    }
}
