//! The crawl loop: claim jobs from the store, process them, record outcomes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use leaktrace_store::{
    FindingKind, FindingVerdict, Job, JobDone, JobKind, JobState, NewFinding, NewJob,
    RevocationTarget, Store, StoreError,
};
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use url::Url;

use crate::CrawlError;
use crate::analyze::{Accused, Analysis, Analyzer};
use crate::budget::Budgets;
use crate::canon::{canonicalize, trap_check};
use crate::capture::{
    Answer, Capture, SNIFF_BYTES, SegmentTap, capture_direct, capture_hls_fetched,
    capture_hls_tapped, capture_opened, now_unix, sniff,
};
use crate::config::{Config, RevocationPolicy};
use crate::extract::{LinkKind, extract_feed, extract_html};
use crate::fetch::{FetchError, Fetcher, MAX_RETRY_AFTER, Meta, Opened};
use crate::net::Lookup;
use crate::retry::RetryPolicy;
use crate::title::best_match;

/// Counts of one [`Crawler::run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Jobs finished (done, including robots refusals and known media).
    pub done: u64,
    /// Jobs that failed and were re-queued with backoff.
    pub retried: u64,
    /// Jobs dead-lettered.
    pub dead: u64,
    /// New findings stored.
    pub findings: u64,
    /// Jobs whose lease was lost before they finished (another worker took over).
    pub lost_leases: u64,
    /// Jobs given back to the frontier without counting an attempt, due when their host is
    /// (it asked to wait longer than a worker waits in-process).
    pub rescheduled: u64,
}

enum Outcome {
    Done(Finished),
    Failed(FetchErrorKind, String, Option<Duration>),
    /// Not attempted: give the job back, due after the delay, without counting the attempt.
    Reschedule(String, Duration),
    /// The lease could not be renewed (another worker holds the job now): nothing recorded.
    LeaseLost,
}

/// A job processed: what to record with its completion (in one transaction).
#[derive(Default)]
struct Finished {
    note: Option<String>,
    findings: u64,
    found: Vec<NewJob>,
    skipped: Vec<(NewJob, String)>,
    deferred: Vec<(NewJob, String)>,
}

impl Finished {
    fn note(note: impl Into<String>) -> Outcome {
        Outcome::Done(Finished {
            note: Some(note.into()),
            ..Finished::default()
        })
    }
}

enum FetchErrorKind {
    Retry,
    Fatal,
}

type JobResult = Result<Outcome, CrawlError>;

/// The jobs in flight, each in its own task. A task that panics costs its job, not the run:
/// the panic is caught at the task boundary (its `JoinError`) and the job comes back as a
/// permanent failure with the panic message, recorded as dead like any other.
#[derive(Default)]
struct Tasks {
    set: JoinSet<JobResult>,
    jobs: HashMap<Id, Job>,
}

fn panic_text(e: JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

impl Tasks {
    fn spawn<F>(&mut self, job: Job, task: F)
    where
        F: Future<Output = JobResult> + Send + 'static,
    {
        let h = self.set.spawn(task);
        self.jobs.insert(h.id(), job);
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next job to finish and its result (cancel safe).
    async fn join_next(&mut self) -> Option<(Job, JobResult)> {
        loop {
            let r = self.set.join_next_with_id().await?;
            if let Some(done) = self.settle(r) {
                return Some(done);
            }
        }
    }

    /// A job that has finished already, if any.
    fn try_join_next(&mut self) -> Option<(Job, JobResult)> {
        loop {
            let r = self.set.try_join_next_with_id()?;
            if let Some(done) = self.settle(r) {
                return Some(done);
            }
        }
    }

    fn settle(&mut self, r: Result<(Id, JobResult), JoinError>) -> Option<(Job, JobResult)> {
        match r {
            Ok((id, out)) => Some((self.jobs.remove(&id)?, out)),
            Err(e) => {
                let job = self.jobs.remove(&e.id())?;
                let why = if e.is_panic() {
                    format!("panicked while processing: {}", panic_text(e))
                } else {
                    format!("processing task ended: {e}")
                };
                tracing::error!(
                    url = %job.url,
                    error = %why,
                    "job task failed: the job is recorded as dead, the run goes on"
                );
                Some((job, Ok(Outcome::Failed(FetchErrorKind::Fatal, why, None))))
            }
        }
    }
}

/// A crawler worker: shares the frontier in the store with any number of others.
pub struct Crawler {
    store: Store,
    cfg: Arc<Config>,
    fetcher: Fetcher,
    analyzer: Option<Arc<dyn Analyzer>>,
    owner: String,
    poll: Duration,
    budgets: Budgets,
}

impl Crawler {
    /// A worker named `owner` (unique per process: leases are held in its name).
    /// Without an analyzer, captures are hashed and stored but no finding is made.
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        lookup: Lookup,
        analyzer: Option<Arc<dyn Analyzer>>,
        owner: String,
    ) -> Result<Arc<Crawler>, CrawlError> {
        let fetcher = Fetcher::new(cfg.clone(), lookup)?;
        Ok(Arc::new(Crawler {
            store,
            cfg,
            fetcher,
            analyzer,
            owner,
            poll: Duration::from_millis(500),
            budgets: Budgets::default(),
        }))
    }

    /// The fetcher (for tests and benches).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Queues the configured sources as crawl run `generation` (seeds, sitemaps,
    /// feeds, and each search template for each catalogue name and alias).
    /// Returns the rows inserted or re-queued.
    pub async fn seed(&self, generation: i64) -> Result<u64, CrawlError> {
        let s = &self.cfg.sources;
        let mut urls: Vec<String> = s
            .seeds
            .iter()
            .chain(&s.sitemaps)
            .chain(&s.feeds)
            .cloned()
            .collect();
        for t in &s.search_templates {
            for c in &self.cfg.catalogue {
                for n in c.names.iter().chain(&c.aliases) {
                    let q: String = url::form_urlencoded::byte_serialize(n.as_bytes()).collect();
                    urls.push(t.replace("{title}", &q));
                }
            }
        }
        let mut jobs = Vec::new();
        for u in urls {
            let parsed =
                Url::parse(&u).map_err(|e| CrawlError::Config(format!("source `{u}`: {e}")))?;
            let c = canonicalize(&parsed)
                .map_err(|e| CrawlError::Config(format!("source `{u}`: {e}")))?;
            jobs.push(NewJob {
                url: c.to_string(),
                kind: JobKind::Page,
                depth: 0,
                referrer: None,
                title_hint: None,
            });
        }
        Ok(self.store.enqueue_jobs(&jobs, generation).await?)
    }

    /// Claims and processes jobs until `stop` turns true or, with `until_idle`,
    /// until nothing is due and nothing is leased. In-flight jobs are finished
    /// before returning (graceful shutdown); unclaimed work stays in the store.
    pub async fn run(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
        until_idle: bool,
    ) -> Result<RunStats, CrawlError> {
        let mut stats = RunStats::default();
        let mut set = Tasks::default();
        let policy = RetryPolicy {
            max_attempts: self.cfg.fetch.max_attempts,
            base_secs: self.cfg.fetch.backoff_secs,
            max_secs: 3600,
        };
        let conc = self.cfg.fetch.concurrency;
        loop {
            let stopping = *stop.borrow();
            // Claims come in batches: refill once half the slots are free (one claim
            // transaction per batch, not per job).
            if !stopping && set.len() <= conc / 2 {
                let want = u32::try_from(conc - set.len()).unwrap_or(1);
                let jobs = self
                    .store
                    .claim_jobs(
                        &self.owner,
                        want,
                        self.cfg.fetch.lease_secs,
                        self.cfg.fetch.max_attempts,
                    )
                    .await?;
                for job in jobs {
                    self.spawn_job(&mut set, job);
                }
            }
            if set.is_empty() {
                if stopping {
                    break;
                }
                if until_idle {
                    let c = self.store.job_counts().await?;
                    if c.leased == 0 {
                        // Nothing leased anywhere and our claim found nothing due.
                        let again = self
                            .store
                            .claim_jobs(
                                &self.owner,
                                1,
                                self.cfg.fetch.lease_secs,
                                self.cfg.fetch.max_attempts,
                            )
                            .await?;
                        if again.is_empty() {
                            break;
                        }
                        for job in again {
                            self.spawn_job(&mut set, job);
                        }
                        continue;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let joined = if set.len() > conc / 2 || stopping {
                set.join_next().await
            } else {
                // Poll for more work now and then while jobs run.
                tokio::select! {
                    j = set.join_next() => j,
                    _ = tokio::time::sleep(self.poll) => None,
                }
            };
            let Some(first) = joined else { continue };
            // Every job finished by now is recorded with this one: one transaction for
            // all completions (group commit), failures one by one.
            let mut finished = Vec::new();
            let mut next = Some(first);
            while let Some((job, out)) = next {
                // Only a store failure ends the run; a job's own failures are recorded.
                match out? {
                    Outcome::Done(f) => finished.push((job, f)),
                    Outcome::Failed(kind, msg, ra) => {
                        self.record_failure(&job, kind, &msg, ra, &policy, &mut stats)
                            .await?;
                    }
                    Outcome::Reschedule(msg, after) => {
                        let after = after.min(MAX_RETRY_AFTER);
                        let at = now_unix()
                            .saturating_add(i64::try_from(after.as_secs()).unwrap_or(0))
                            .saturating_add(i64::from(after.subsec_nanos() > 0));
                        tracing::info!(url = %job.url, reason = %msg, due = at, "job rescheduled");
                        if self.store.release_job(&job.url, &self.owner, at).await? {
                            stats.rescheduled += 1;
                        } else {
                            stats.lost_leases += 1;
                        }
                    }
                    Outcome::LeaseLost => stats.lost_leases += 1,
                }
                next = set.try_join_next();
            }
            if !finished.is_empty() {
                let batch: Vec<JobDone> = finished
                    .iter_mut()
                    .map(|(job, f)| JobDone {
                        url: job.url.clone(),
                        note: f.note.take(),
                        found: std::mem::take(&mut f.found),
                        skipped: std::mem::take(&mut f.skipped),
                        deferred: std::mem::take(&mut f.deferred),
                        generation: job.generation,
                    })
                    .collect();
                let held = self.store.finish_jobs(&self.owner, &batch).await?;
                for ((_, f), held) in finished.iter().zip(held) {
                    stats.findings += f.findings;
                    if held {
                        stats.done += 1;
                    } else {
                        stats.lost_leases += 1;
                    }
                }
            }
        }
        Ok(stats)
    }

    fn spawn_job(self: &Arc<Self>, set: &mut Tasks, job: Job) {
        let me = self.clone();
        let j = job.clone();
        set.spawn(job, async move { me.process_leased(&j).await });
    }

    /// Processes a job while renewing its lease every third of `lease_secs`, so a job that
    /// runs longer than its lease (a long capture, a slow analysis) keeps it. The renewal only
    /// succeeds while this worker still holds the lease (the guard of completion); if it
    /// fails, another worker has the job: processing stops and nothing is recorded.
    async fn process_leased(&self, job: &Job) -> JobResult {
        let lease = self.cfg.fetch.lease_secs;
        let every = (Duration::from_secs(u64::from(lease)) / 3).max(Duration::from_millis(100));
        let work = self.process(job);
        tokio::pin!(work);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = beat.tick() => {
                    match self.store.renew_lease(&job.url, &self.owner, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                url = %job.url,
                                "lease lost while processing: another worker has the job"
                            );
                            return Ok(Outcome::LeaseLost);
                        }
                        // The store may be back at the next beat; the lease has time left.
                        Err(e) => tracing::warn!(url = %job.url, error = %e, "lease renewal failed"),
                    }
                }
            }
        }
    }

    async fn record_failure(
        &self,
        job: &Job,
        kind: FetchErrorKind,
        msg: &str,
        retry_after: Option<Duration>,
        policy: &RetryPolicy,
        stats: &mut RunStats,
    ) -> Result<(), CrawlError> {
        tracing::info!(url = %job.url, error = %msg, "job failed");
        let p = match kind {
            FetchErrorKind::Retry => *policy,
            FetchErrorKind::Fatal => RetryPolicy {
                max_attempts: 1,
                ..*policy
            },
        };
        let now = now_unix();
        let at = retry_after.map(|d| {
            let secs = d.min(MAX_RETRY_AFTER).as_secs();
            now.saturating_add(i64::try_from(secs).unwrap_or(0))
        });
        let retry_at = p.retry_at(job.attempts, now, at);
        match self
            .store
            .fail_job(&job.url, &self.owner, msg, retry_at)
            .await?
        {
            Some(JobState::Dead) => stats.dead += 1,
            Some(_) => stats.retried += 1,
            None => stats.lost_leases += 1,
        }
        Ok(())
    }

    fn failed(e: CrawlError) -> Result<Outcome, CrawlError> {
        match e {
            CrawlError::Fetch(FetchError::Robots(u)) => {
                Ok(Finished::note(format!("robots.txt disallows {u}")))
            }
            CrawlError::Fetch(e @ FetchError::HostBusy(after)) => {
                Ok(Outcome::Reschedule(e.to_string(), after))
            }
            CrawlError::Fetch(f) => {
                let ra = match &f {
                    FetchError::Throttled { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let kind = if f.retryable() {
                    FetchErrorKind::Retry
                } else {
                    FetchErrorKind::Fatal
                };
                Ok(Outcome::Failed(kind, f.to_string(), ra))
            }
            CrawlError::Playlist(m) => Ok(Outcome::Failed(FetchErrorKind::Fatal, m, None)),
            // The store is the run's own failure: it ends the run.
            e @ CrawlError::Store(_) => Err(e),
            // Writing a capture may work later (disk space); the rest will not.
            e @ CrawlError::Io(..) => {
                Ok(Outcome::Failed(FetchErrorKind::Retry, e.to_string(), None))
            }
            e => Ok(Outcome::Failed(FetchErrorKind::Fatal, e.to_string(), None)),
        }
    }

    async fn process(&self, job: &Job) -> Result<Outcome, CrawlError> {
        let url = match Url::parse(&job.url) {
            Ok(u) => u,
            Err(e) => {
                return Ok(Outcome::Failed(
                    FetchErrorKind::Fatal,
                    format!("bad URL: {e}"),
                    None,
                ));
            }
        };
        let r = match job.kind {
            JobKind::Page => self.process_page(job, &url).await,
            JobKind::Media | JobKind::Playlist => self.process_media(job, &url).await,
            JobKind::Magnet => Ok(Finished::note("magnet: recorded only")),
            other => Ok(Finished::note(format!("{}: not fetched", other.as_str()))),
        };
        match r {
            Ok(o) => Ok(o),
            Err(e) => Self::failed(e),
        }
    }

    /// A page job: what it is is decided by the answer at the end of its redirect chain (its
    /// Content-Type and first bytes), not by its URL. A page's links are extracted; media is
    /// captured from the response already open (downloaded once).
    async fn process_page(&self, job: &Job, url: &Url) -> Result<Outcome, CrawlError> {
        let mut o = self.fetcher.open(url).await?;
        let deadline = self.fetcher.body_deadline();
        let mut head = Vec::new();
        let ended = self
            .fetcher
            .read_head(&mut o.response, &mut head, SNIFF_BYTES, deadline)
            .await?;
        let answer = sniff(o.meta.content_type.as_deref(), &head);
        if answer != Answer::Page {
            return self.page_answered_media(job, o, head, ended, answer).await;
        }
        let lim = &self.cfg.limits;
        let body = self
            .fetcher
            .read_rest(&mut o.response, head, ended, lim.max_page_bytes, deadline)
            .await?;
        let meta = o.meta;
        let text = String::from_utf8_lossy(&body.bytes);
        let ct = meta
            .content_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_feed = ct.contains("xml") && !ct.contains("html")
            || text.trim_start().starts_with("<?xml") && !text.contains("<html");
        let (heading, links) = if is_feed {
            (
                String::new(),
                extract_feed(&text, &meta.final_url, lim.max_links_per_page),
            )
        } else {
            let info = extract_html(&text, &meta.final_url, lim.max_links_per_page);
            (info.heading, info.links)
        };
        let threshold = self.cfg.fetch.title_threshold;
        let page_match = best_match(&self.cfg.catalogue, &heading).filter(|m| m.score >= threshold);
        let page_hint = page_match
            .map(|m| m.title_id)
            .or_else(|| job.title_hint.clone());
        // Where a "next" link of this page stands in its pagination chain (asked only when
        // there is one).
        let next_position = if links.iter().any(|l| l.kind == LinkKind::NextPage) {
            let run = self
                .store
                .pagination_run(&job.url, lim.max_pagination)
                .await?;
            run.saturating_add(1)
        } else {
            0
        };
        let here = meta.final_url.host_str().unwrap_or("").to_owned();
        let mut jobs = Vec::new();
        let mut skipped: Vec<(NewJob, String)> = Vec::new();
        let mut deferred: Vec<(NewJob, String)> = Vec::new();
        for l in links {
            let raw = match Url::parse(&l.url) {
                Ok(u) => u,
                Err(_) => continue,
            };
            if l.kind == LinkKind::Magnet {
                skipped.push((
                    NewJob {
                        url: l.url.clone(),
                        kind: JobKind::Magnet,
                        depth: job.depth + 1,
                        referrer: Some(job.url.clone()),
                        title_hint: page_hint.clone(),
                    },
                    "magnet link: recorded, not fetched".to_owned(),
                ));
                continue;
            }
            let Ok(c) = canonicalize(&raw) else { continue };
            let (kind, depth) = match l.kind {
                LinkKind::Page if raw.host_str() == Some(here.as_str()) => {
                    (JobKind::Page, job.depth + 1)
                }
                LinkKind::Page => continue,
                LinkKind::NextPage => (JobKind::Page, job.depth),
                LinkKind::Embed => (JobKind::Page, job.depth + 1),
                LinkKind::Media => (JobKind::Media, job.depth + 1),
                LinkKind::Hls => (JobKind::Playlist, job.depth + 1),
                LinkKind::Dash => (JobKind::Media, job.depth + 1),
                LinkKind::Magnet => continue,
            };
            let hint = if matches!(kind, JobKind::Media | JobKind::Playlist) {
                let link_text =
                    format!("{} {}", l.text, c.path().replace(['/', '-', '_', '.'], " "));
                let lm =
                    best_match(&self.cfg.catalogue, &link_text).filter(|m| m.score >= threshold);
                lm.map(|m| m.title_id).or_else(|| page_hint.clone())
            } else {
                page_hint.clone()
            };
            let nj = NewJob {
                url: c.to_string(),
                kind,
                depth,
                referrer: Some(job.url.clone()),
                title_hint: hint.clone(),
            };
            let refuse = if l.kind == LinkKind::Dash {
                Some("DASH manifest: capture not implemented".to_owned())
            } else if matches!(kind, JobKind::Media | JobKind::Playlist) && hint.is_none() {
                Some("no catalogue title matched".to_owned())
            } else {
                trap_check(&c, depth, lim).err()
            };
            if let Some(reason) = refuse {
                skipped.push((nj, reason));
                continue;
            }
            if kind == JobKind::Page {
                let budget = if l.kind == LinkKind::NextPage && next_position > lim.max_pagination {
                    tracing::info!(
                        budget = "max_pagination",
                        limit = lim.max_pagination,
                        url = %c,
                        page = %job.url,
                        "crawl budget reached: pagination chain not followed further"
                    );
                    Err(format!(
                        "crawl budget max_pagination ({}) reached: page {next_position} of a \
                         pagination chain, not queued in this run",
                        lim.max_pagination
                    ))
                } else {
                    self.budgets.admit(job.generation, &c, lim)
                };
                if let Err(reason) = budget {
                    deferred.push((nj, reason));
                    continue;
                }
            }
            jobs.push(nj);
        }
        Ok(Outcome::Done(Finished {
            note: Some(format!(
                "{} links found, {} skipped, {} over a crawl budget{}",
                jobs.len(),
                skipped.len(),
                deferred.len(),
                if body.truncated {
                    ", page truncated"
                } else {
                    ""
                }
            )),
            findings: 0,
            found: jobs,
            skipped,
            deferred,
        }))
    }

    /// A page job whose answer is media (a link that does not look like media, redirected to
    /// a file or a playlist): captured like a media job from the open response `o`, whose
    /// first bytes `head` were read (`ended`: the body ended there).
    async fn page_answered_media(
        &self,
        job: &Job,
        mut o: Opened,
        head: Vec<u8>,
        ended: bool,
        answer: Answer,
    ) -> Result<Outcome, CrawlError> {
        let what = if answer == Answer::Hls {
            "an HLS playlist"
        } else {
            "a media file"
        };
        let ct = o.meta.content_type.clone().unwrap_or_default();
        let threshold = self.cfg.fetch.title_threshold;
        let title = job.title_hint.clone().or_else(|| {
            let words = o.meta.final_url.path().replace(['/', '-', '_', '.'], " ");
            best_match(&self.cfg.catalogue, &words)
                .filter(|m| m.score >= threshold)
                .map(|m| m.title_id)
        });
        let Some(title) = title else {
            return Ok(Finished::note(format!(
                "answered with {what} ({ct}), no catalogue title matched: not captured"
            )));
        };
        if self.store.finding_exists_for_url(&job.url).await? {
            return Ok(Finished::note(format!(
                "answered with {what}: already captured"
            )));
        }
        tracing::info!(
            url = %job.url,
            final_url = %o.meta.final_url,
            content_type = %ct,
            "link answered with {what}: capturing it"
        );
        let url = o.meta.url.clone();
        if answer == Answer::Hls {
            let deadline = self.fetcher.body_deadline();
            let cap = self.cfg.limits.max_page_bytes;
            let body = self
                .fetcher
                .read_rest(&mut o.response, head, ended, cap, deadline)
                .await?;
            return self
                .capture_hls_and_record(job, &url, Some((o.meta, body.bytes)), title)
                .await;
        }
        let cap = capture_opened(&self.fetcher, &url, o, head, ended).await?;
        self.record_capture(job, cap, title).await
    }

    async fn process_media(&self, job: &Job, url: &Url) -> Result<Outcome, CrawlError> {
        if self.store.finding_exists_for_url(&job.url).await? {
            return Ok(Finished::note("already captured"));
        }
        let Some(title) = job.title_hint.clone() else {
            return Ok(Finished::note("no catalogue title"));
        };
        if job.kind == JobKind::Playlist {
            return self.capture_hls_and_record(job, url, None, title).await;
        }
        let cap = capture_direct(&self.fetcher, url).await?;
        self.record_capture(job, cap, title).await
    }

    /// Captures an HLS stream (its first playlist already fetched when `first` is given) and
    /// records the finding. When the analyzer can follow a capture, the stream is decided while
    /// it is captured: a live restream is accused, and its capture ended, as soon as enough of
    /// it has been seen, not when a capture bound is reached.
    async fn capture_hls_and_record(
        &self,
        job: &Job,
        url: &Url,
        first: Option<(Meta, Vec<u8>)>,
        title: String,
    ) -> Result<Outcome, CrawlError> {
        let capture = |tap| async {
            match first {
                Some((meta, body)) => {
                    capture_hls_fetched(&self.fetcher, url, meta, body, tap).await
                }
                None => capture_hls_tapped(&self.fetcher, url, tap).await,
            }
        };
        let Some(analyzer) = self.analyzer.clone().filter(|a| a.follows()) else {
            let cap = capture(None).await?;
            return self.record_capture(job, cap, title).await;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let tap = SegmentTap {
            segments: tx,
            stop: stop.clone(),
        };
        let t = title.clone();
        let follower = tokio::task::spawn_blocking(move || {
            let analysis = analyzer.analyze_following(rx, &t);
            stop.store(true, Ordering::Release);
            analysis
        });
        let cap = capture(Some(tap)).await;
        // The tap went with the capture: the follower has seen the end, or has stopped it.
        let followed = follower
            .await
            .map_err(|e| CrawlError::Detect(format!("following the capture: {}", panic_text(e))))?;
        let cap = cap?;
        let analysed = followed.map(|mut a| {
            if let Some(o) = a.report.as_object_mut() {
                // The report names the capture its decisions were taken on, as one file.
                o.insert("suspect".into(), cap.path.display().to_string().into());
                o.insert("suspect_sha256".into(), cap.sha256.clone().into());
            }
            a
        });
        let analysed = match analysed {
            Ok(a) => {
                let inputs = self.analysis_inputs(&title).await?;
                Ok(Analysed::from_analysis(a, inputs))
            }
            Err(e) => Err(e),
        };
        self.record_analysed(job, cap, title, analysed).await
    }

    /// Analyses a capture, or reuses an earlier analysis of the same bytes for the same title
    /// with the same inputs ([`Analyzer::inputs`]; a failed analysis is never reused), and
    /// stores the finding. A failed analysis fails the job, to be retried like a failed fetch;
    /// on the job's last attempt it is stored as a finding with the verdict `error`.
    async fn record_capture(
        &self,
        job: &Job,
        cap: Capture,
        title: String,
    ) -> Result<Outcome, CrawlError> {
        let Some(analyzer) = self.analyzer.clone() else {
            return Ok(Finished::note(format!(
                "captured {} bytes sha256 {} (no analyzer)",
                cap.byte_len, cap.sha256
            )));
        };
        let analysed = self.analyse(&analyzer, &cap, &title).await?;
        self.record_analysed(job, cap, title, analysed).await
    }

    /// Stores the finding of `cap` with its analysis (or the analysis's failure, retried like a
    /// failed fetch until the job's last attempt), after the revocation policy.
    async fn record_analysed(
        &self,
        job: &Job,
        cap: Capture,
        title: String,
        analysed: Result<Analysed, CrawlError>,
    ) -> Result<Outcome, CrawlError> {
        let (verdict, accused, report) = match analysed {
            Ok(a) => (a.verdict, a.accused, a.report),
            Err(e) if job.attempts < self.cfg.fetch.max_attempts => {
                return Ok(Outcome::Failed(
                    FetchErrorKind::Retry,
                    format!("analysis failed: {e}"),
                    None,
                ));
            }
            Err(e) => (
                FindingVerdict::Error,
                "[]".to_owned(),
                serde_json::json!({ "error": e.to_string() }).to_string(),
            ),
        };
        let report = self.apply_revocation_policy(&accused, report).await?;
        let score = best_match(
            &self.cfg.catalogue,
            &format!("{} {}", job.url, job.referrer.as_deref().unwrap_or("")),
        )
        .filter(|m| m.title_id == title)
        .map_or(self.cfg.fetch.title_threshold, |m| m.score);
        let f = finding_record(job, &cap, title, score, verdict, accused, report);
        let new = self.store.insert_finding(&f).await?;
        Ok(Outcome::Done(Finished {
            note: Some(format!("finding {} ({})", f.finding_id, f.verdict)),
            findings: u64::from(new),
            ..Finished::default()
        }))
    }
}

impl Crawler {
    /// The revocation policy on a finding's accused sessions (`accused`, JSON as stored):
    /// those whose probability clears `revocation.fp` are revoked (`auto`) or named for an
    /// operator (`review`); what was done is recorded in the report under [`REVOCATION_KEY`],
    /// so the finding and its evidence bundle carry it. A session revoked already is left as
    /// it is.
    async fn apply_revocation_policy(
        &self,
        accused: &str,
        report: String,
    ) -> Result<String, CrawlError> {
        let policy = &self.cfg.revocation;
        if policy.policy == RevocationPolicy::Off {
            return Ok(report);
        }
        let accused: Vec<Accused> = serde_json::from_str(accused).unwrap_or_default();
        let eligible: Vec<&Accused> = accused
            .iter()
            .filter(|a| a.probability <= policy.fp)
            .collect();
        let mut revoked = Vec::new();
        let mut already = Vec::new();
        if policy.policy == RevocationPolicy::Auto {
            for a in &eligible {
                let reason = format!(
                    "accused with false-accusation probability {:.2e} <= {:.0e}",
                    a.probability, policy.fp
                );
                match self
                    .store
                    .revoke(
                        RevocationTarget::Session(&a.session_id),
                        AUTO_ACTOR,
                        &reason,
                    )
                    .await
                {
                    Ok(events) => revoked.extend(events.into_iter().map(|e| {
                        serde_json::json!({
                            "session_id": e.session_id,
                            "seq": e.seq,
                            "at": e.at,
                            "actor": e.actor,
                            "reason": e.reason,
                        })
                    })),
                    Err(StoreError::Unchanged { .. }) => already.push(a.session_id.clone()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !revoked.is_empty() {
                tracing::warn!(sessions = revoked.len(), "revoked accused sessions");
            }
        }
        let mut report: serde_json::Value =
            serde_json::from_str(&report).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(o) = report.as_object_mut() {
            o.insert(
                REVOCATION_KEY.to_owned(),
                serde_json::json!({
                    "policy": policy.policy.as_str(),
                    "fp": policy.fp,
                    "eligible": eligible.iter().map(|a| &a.session_id).collect::<Vec<_>>(),
                    "revoked": revoked,
                    "already_revoked": already,
                }),
            );
        }
        Ok(report.to_string())
    }
}

/// The actor recorded for revocations the crawler's policy makes.
pub const AUTO_ACTOR: &str = "policy:auto";

/// The key under which a finding's report records what the revocation policy did.
pub const REVOCATION_KEY: &str = "revocation";

/// The key under which a finding's report records the inputs its analysis used.
const INPUTS_KEY: &str = "analysis_inputs";

impl Crawler {
    /// The analysis of `cap` for `title`: an earlier one of the same bytes, title and inputs
    /// if the store has one, else a new one. The outer error ends the run (the store
    /// failed); the inner one is the analysis's own failure.
    async fn analyse(
        &self,
        analyzer: &Arc<dyn Analyzer>,
        cap: &Capture,
        title: &str,
    ) -> Result<Result<Analysed, CrawlError>, CrawlError> {
        let a = analyzer.clone();
        let t = title.to_owned();
        let inputs = match blocking(move || a.inputs(&t)).await? {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        for prev in self.store.findings_for_reuse(&cap.sha256, title).await? {
            let r = prev.record;
            let same = serde_json::from_str::<serde_json::Value>(&r.report)
                .ok()
                .is_some_and(|v| v.get(INPUTS_KEY).and_then(|i| i.as_str()) == Some(&inputs));
            if same {
                return Ok(Ok(Analysed {
                    verdict: r.verdict,
                    accused: r.accused,
                    report: r.report,
                }));
            }
        }
        let (a, path, t) = (analyzer.clone(), cap.path.clone(), title.to_owned());
        Ok(blocking(move || a.analyze(&path, &t))
            .await?
            .map(|a| Analysed::from_analysis(a, inputs)))
    }

    /// What an analysis of `title` depends on besides the bytes ([`Analyzer::inputs`]); empty
    /// without an analyzer or when it cannot say.
    async fn analysis_inputs(&self, title: &str) -> Result<String, CrawlError> {
        let Some(a) = self.analyzer.clone() else {
            return Ok(String::new());
        };
        let t = title.to_owned();
        Ok(blocking(move || a.inputs(&t)).await?.unwrap_or_default())
    }
}

/// An analysis as a finding stores it: the verdict, the accused (JSON) and the report (JSON,
/// with the analysis inputs under [`INPUTS_KEY`]).
struct Analysed {
    verdict: FindingVerdict,
    accused: String,
    report: String,
}

impl Analysed {
    fn from_analysis(a: Analysis, inputs: String) -> Self {
        let mut report = a.report;
        if let Some(o) = report.as_object_mut() {
            o.insert(INPUTS_KEY.to_owned(), serde_json::Value::String(inputs));
        }
        Analysed {
            verdict: a.verdict,
            accused: serde_json::to_string(&a.accused).unwrap_or_else(|_| "[]".into()),
            report: report.to_string(),
        }
    }
}

/// Runs `f` on a blocking thread. A panic in it is this job's panic: the job task's boundary
/// catches it and records the job as dead; the run goes on.
async fn blocking<T, F>(f: F) -> Result<T, CrawlError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(CrawlError::Detect(format!("analysis task: {e}"))),
    }
}

/// The stable id of a finding: `F-` and 20 hex digits of BLAKE3(media URL, SHA-256).
pub fn finding_id(media_url: &str, sha256: &str) -> String {
    let h = blake3::hash(format!("{media_url}\n{sha256}").as_bytes());
    format!("F-{}", &h.to_hex()[..20])
}

fn finding_record(
    job: &Job,
    cap: &Capture,
    title: String,
    score: u32,
    verdict: FindingVerdict,
    accused: String,
    report: String,
) -> NewFinding {
    let file_name = cap
        .meta
        .final_url
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            format!(
                "{}.{}",
                cap.sha256,
                if cap.kind == FindingKind::Hls {
                    "mp4"
                } else {
                    "bin"
                }
            )
        });
    NewFinding {
        finding_id: finding_id(&job.url, &cap.sha256),
        media_url: job.url.clone(),
        page_url: job.referrer.clone(),
        redirect_chain: cap.meta.chain.clone(),
        redirect_statuses: cap.meta.statuses.clone(),
        resolved_ip: cap.meta.remote_ip.map(|i| i.to_string()),
        kind: cap.kind,
        file_name,
        content_type: cap.meta.content_type.clone(),
        byte_len: cap.byte_len,
        blake3: cap.blake3.clone(),
        sha256: cap.sha256.clone(),
        capture_path: cap.path.display().to_string(),
        title_id: Some(title),
        title_score: score,
        verdict,
        accused,
        report,
        capture_started_at: cap.started_at,
        capture_finished_at: cap.finished_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(url: &str) -> Job {
        Job {
            url: url.to_owned(),
            kind: JobKind::Page,
            depth: 0,
            referrer: None,
            title_hint: None,
            state: JobState::Leased,
            attempts: 1,
            not_before: 0,
            lease_owner: Some("w".into()),
            lease_until: None,
            last_error: None,
            generation: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    async fn explode() -> JobResult {
        panic!("index 7 is not a char boundary")
    }

    #[tokio::test]
    async fn a_panicking_job_comes_back_as_a_permanent_failure_of_that_job() {
        let mut t = Tasks::default();
        t.spawn(job("http://x.test/bad"), explode());
        t.spawn(job("http://x.test/good"), async {
            Ok(Finished::note("fine"))
        });
        let mut seen = Vec::new();
        while let Some((j, out)) = t.join_next().await {
            match out {
                Ok(Outcome::Failed(FetchErrorKind::Fatal, msg, None)) => {
                    assert_eq!(j.url, "http://x.test/bad");
                    assert_eq!(
                        msg,
                        "panicked while processing: index 7 is not a char boundary"
                    );
                    seen.push("failed");
                }
                Ok(Outcome::Done(f)) => {
                    assert_eq!(j.url, "http://x.test/good");
                    assert_eq!(f.note.as_deref(), Some("fine"));
                    seen.push("done");
                }
                _ => panic!("unexpected outcome for {}", j.url),
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, ["done", "failed"]);
        assert!(t.is_empty() && t.jobs.is_empty());
    }
}
