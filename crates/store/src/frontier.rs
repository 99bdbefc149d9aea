//! The frontier, `crawl_jobs`: the URLs a crawl found, with leases, retries and a
//! dead-letter state.
//!
//! One row per canonical URL, ever: [`Store::enqueue_jobs`] never creates a second row for a
//! URL. Workers call [`Store::claim_jobs`], which moves up to `n` due rows to `leased` with a
//! deadline, atomically: on PostgreSQL the candidate rows are locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same row; on SQLite the
//! single `UPDATE … RETURNING` statement runs under the database write lock. A worker then
//! calls [`Store::complete_job`] (or [`Store::finish_jobs`]) or [`Store::fail_job`]; these
//! only act while the caller still holds the lease, so a worker whose lease ran out (it was
//! slow, or it was killed and another worker took over) cannot finish the job a second time.
//! A worker killed with `kill -9` loses nothing: its leases run out and the rows are claimed
//! again.
//!
//! When a failed job is retried, and after how long, is the crawler's policy: it passes the
//! outcome to [`Store::fail_job`].
//!
//! `skipped` rows are recorded but not fetched. Most are final (magnets, trap limits); pages
//! that a crawl run's budget left out are recorded with that run's generation
//! ([`JobDone::deferred`]) and queued again by a later run that finds them.

use crate::StoreError;
use crate::sql;
use crate::store::{Store, now_unix};

text_enum! {
    /// What a frontier row points at (`crawl_jobs.kind`).
    #[non_exhaustive]
    pub enum JobKind ("job kind") {
        /// An HTML page: fetched, links extracted.
        Page = "page",
        /// A direct media file (MP4, MKV, …): captured and analysed.
        Media = "media",
        /// An HLS media or multivariant playlist: captured (bounded) and analysed.
        Playlist = "playlist",
        /// A magnet link: recorded, never fetched.
        Magnet = "magnet",
    }
}

text_enum! {
    /// Where a frontier row is in its life (`crawl_jobs.state`).
    #[non_exhaustive]
    pub enum JobState ("job state") {
        /// Waiting; claimable once `not_before` has passed.
        Queued = "queued",
        /// Claimed by a worker until `lease_until`.
        Leased = "leased",
        /// Processed.
        Done = "done",
        /// Failed too often: the dead-letter state, never retried automatically.
        Dead = "dead",
        /// Recorded, not fetched: a magnet or a URL a trap limit refuses (never fetched), or a
        /// page a crawl budget left out of its run (a later run may queue it).
        Skipped = "skipped",
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

/// The note of a row dead-lettered because its lease ran out on its last allowed attempt.
const EXPIRED_DEAD_NOTE: &str =
    "lease expired on the last allowed attempt (the worker died or overran lease_secs each time)";

fn check_url(url: &str) -> Result<(), StoreError> {
    if url.is_empty() {
        return Err(StoreError::invalid("url", "must not be empty"));
    }
    Ok(())
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
            check_url(&j.url)?;
        }
        let now = now_unix();
        let mut tx = self.begin().await?;
        let mut n = 0;
        for j in jobs {
            n += tx
                .execute(sql::frontier::enqueue(j, now, generation))
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Records a URL that is never fetched (a magnet link, or one refused by
    /// robots.txt or a trap limit), with the reason. A URL already present is
    /// left alone. Returns whether a row was added.
    pub async fn record_skipped(&self, job: &NewJob, reason: &str) -> Result<bool, StoreError> {
        check_url(&job.url)?;
        let stmt = sql::frontier::record_skipped(job, now_unix(), reason, 0);
        Ok(self.execute(stmt).await? > 0)
    }

    /// Claims up to `n` due rows for `owner` for `lease_secs` seconds (queued
    /// rows whose `not_before` has passed, and leased rows whose lease ran out),
    /// shallowest first. Each claim counts as an attempt, including a claim whose
    /// worker died: a row whose lease ran out after `max_attempts` claims is not
    /// claimed again but dead-lettered (see [`Store::sweep_expired_leases`]), so a
    /// URL that crashes every worker that takes it cannot crash-loop the crawl.
    /// `max_attempts` is 1 to 100 (the crawler's retry limit).
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
        let stmt = sql::frontier::claim(self.backend(), owner, now + i64::from(lease_secs), now, n);
        let rows: Vec<sql::frontier::JobRow> = self.fetch_all(stmt).await?;
        let mut jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by(|a, b| a.depth.cmp(&b.depth).then(a.url.cmp(&b.url)));
        Ok(jobs)
    }

    /// Ends every lease that ran out (its worker died, or overran `lease_secs`): the row
    /// is queued again, due at once, or, if it has been claimed `max_attempts` times or
    /// more, dead-lettered. [`Store::claim_jobs`] calls it first; returns the rows changed.
    pub async fn sweep_expired_leases(&self, max_attempts: u32) -> Result<u64, StoreError> {
        let stmt = sql::frontier::sweep_expired(max_attempts, EXPIRED_DEAD_NOTE, now_unix());
        Ok(self.execute(stmt).await?)
    }

    /// How many pagination links in a row lead to the row of `url`, at most `limit`: 0 for a
    /// row reached otherwise (a seed, a link that adds depth), 1 for the first "next" page of
    /// a listing, and so on. Derived from the rows' referrers and depths (a pagination link
    /// is the one kind of link that adds no depth), in one query; 0 for an unknown URL.
    pub async fn pagination_run(&self, url: &str, limit: u32) -> Result<u32, StoreError> {
        let n: i64 = self
            .fetch_scalar(sql::frontier::pagination_run(url, limit))
            .await?;
        sql::stored_int("pagination run", n)
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
            check_url(&j.url)?;
            for f in j
                .found
                .iter()
                .chain(j.skipped.iter().chain(&j.deferred).map(|(f, _)| f))
            {
                check_url(&f.url)?;
            }
        }
        let now = now_unix();
        let mut out = Vec::with_capacity(jobs.len());
        let mut tx = self.begin().await?;
        for j in jobs {
            for f in &j.found {
                tx.execute(sql::frontier::enqueue(f, now, j.generation))
                    .await?;
            }
            let skipped = j.skipped.iter().map(|s| (s, 0));
            let deferred = j.deferred.iter().map(|s| (s, j.generation));
            for ((f, reason), generation) in skipped.chain(deferred) {
                tx.execute(sql::frontier::record_skipped(f, now, reason, generation))
                    .await?;
            }
            let stmt = sql::frontier::complete(j.note.as_deref(), now, &j.url, owner);
            out.push(tx.execute(stmt).await? > 0);
        }
        tx.commit().await?;
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
        let stmt = sql::frontier::complete(note, now_unix(), url, owner);
        Ok(self.execute(stmt).await? > 0)
    }

    /// Records a failed attempt of a leased row, with the error: back to `queued`, due at
    /// `retry_at`, or, with `retry_at` `None`, to `dead` (the caller's retry policy
    /// decides). Returns the new state, `None` (and changes nothing) if `owner` no longer
    /// holds the lease.
    pub async fn fail_job(
        &self,
        url: &str,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<Option<JobState>, StoreError> {
        let now = now_unix();
        let (state, not_before) = match retry_at {
            Some(at) => (JobState::Queued, at),
            None => (JobState::Dead, now),
        };
        let stmt = sql::frontier::fail(state, error, not_before, now, url, owner);
        Ok((self.execute(stmt).await? > 0).then_some(state))
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
        let now = now_unix();
        let stmt = sql::frontier::renew(now + i64::from(lease_secs), now, url, owner);
        Ok(self.execute(stmt).await? > 0)
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
        let stmt = sql::frontier::release(not_before, now_unix(), url, owner);
        Ok(self.execute(stmt).await? > 0)
    }

    /// The frontier row of a URL.
    pub async fn get_job(&self, url: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<sql::frontier::JobRow> =
            self.fetch_optional(sql::frontier::get(url)).await?;
        row.map(Job::try_from).transpose()
    }

    /// Frontier rows in a state, by URL, at most `limit`.
    pub async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<sql::frontier::JobRow> = self
            .fetch_all(sql::frontier::in_state(state, limit))
            .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Rows per state.
    pub async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        let rows: Vec<sql::frontier::StateCount> =
            self.fetch_all(sql::frontier::count_by_state()).await?;
        let mut c = JobCounts::default();
        for row in rows {
            let (state, n) = row.parse()?;
            match state {
                JobState::Queued => c.queued = n,
                JobState::Leased => c.leased = n,
                JobState::Done => c.done = n,
                JobState::Dead => c.dead = n,
                JobState::Skipped => c.skipped = n,
            }
        }
        Ok(c)
    }
}
