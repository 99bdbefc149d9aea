//! The crawl loop: claim jobs from the store, process them, record outcomes.

use std::sync::Arc;
use std::time::Duration;

use leaktrace_store::{Job, JobDone, JobKind, NewFinding, NewJob, RetryPolicy, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

use crate::CrawlError;
use crate::analyze::Analyzer;
use crate::canon::{canonicalize, trap_check};
use crate::capture::{Capture, capture_direct, capture_hls, now_unix};
use crate::config::Config;
use crate::extract::{LinkKind, extract_feed, extract_html};
use crate::fetch::{FetchError, Fetcher};
use crate::net::Lookup;
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
}

enum Outcome {
    Done(Finished),
    Failed(FetchErrorKind, String, Option<Duration>),
}

/// A job processed: what to record with its completion (in one transaction).
#[derive(Default)]
struct Finished {
    note: Option<String>,
    findings: u64,
    found: Vec<NewJob>,
    skipped: Vec<(NewJob, String)>,
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

/// A crawler worker: shares the frontier in the store with any number of others.
pub struct Crawler {
    store: Store,
    cfg: Arc<Config>,
    fetcher: Fetcher,
    analyzer: Option<Arc<dyn Analyzer>>,
    owner: String,
    poll: Duration,
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
        let mut set: JoinSet<Result<(Outcome, Job), CrawlError>> = JoinSet::new();
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
            while let Some(joined) = next {
                let (outcome, job) = match joined {
                    Ok(r) => r?,
                    Err(e) => return Err(CrawlError::Detect(format!("worker task failed: {e}"))),
                };
                match outcome {
                    Outcome::Done(f) => finished.push((job, f)),
                    Outcome::Failed(kind, msg, ra) => {
                        self.record_failure(&job, kind, &msg, ra, &policy, &mut stats)
                            .await?;
                    }
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

    fn spawn_job(
        self: &Arc<Self>,
        set: &mut JoinSet<Result<(Outcome, Job), CrawlError>>,
        job: Job,
    ) {
        let me = self.clone();
        set.spawn(async move {
            let out = me.process(&job).await?;
            Ok((out, job))
        });
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
        let at = retry_after.map(|d| now_unix() + i64::try_from(d.as_secs()).unwrap_or(0));
        match self.store.fail_job(job, &self.owner, msg, &p, at).await? {
            Some(leaktrace_store::JobState::Dead) => stats.dead += 1,
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
            other => Err(other),
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
        };
        match r {
            Ok(o) => Ok(o),
            Err(e) => Self::failed(e),
        }
    }

    async fn process_page(&self, job: &Job, url: &Url) -> Result<Outcome, CrawlError> {
        let (meta, body) = self.fetcher.get_page(url).await?;
        let text = String::from_utf8_lossy(&body.bytes);
        let lim = &self.cfg.limits;
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
        let here = meta.final_url.host_str().unwrap_or("").to_owned();
        let mut jobs = Vec::new();
        let mut skipped: Vec<(NewJob, String)> = Vec::new();
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
            jobs.push(nj);
        }
        Ok(Outcome::Done(Finished {
            note: Some(format!(
                "{} links found, {} skipped{}",
                jobs.len(),
                skipped.len(),
                if body.truncated {
                    ", page truncated"
                } else {
                    ""
                }
            )),
            findings: 0,
            found: jobs,
            skipped,
        }))
    }

    async fn process_media(&self, job: &Job, url: &Url) -> Result<Outcome, CrawlError> {
        if self.store.finding_exists_for_url(&job.url).await? {
            return Ok(Finished::note("already captured"));
        }
        let Some(title) = job.title_hint.clone() else {
            return Ok(Finished::note("no catalogue title"));
        };
        let cap = if job.kind == JobKind::Playlist {
            capture_hls(&self.fetcher, url).await?
        } else {
            capture_direct(&self.fetcher, url).await?
        };
        let Some(analyzer) = self.analyzer.clone() else {
            return Ok(Finished::note(format!(
                "captured {} bytes sha256 {} (no analyzer)",
                cap.byte_len, cap.sha256
            )));
        };
        let (verdict, accused, report) = match self.store.finding_by_sha256(&cap.sha256).await? {
            Some(prev) => (prev.record.verdict, prev.record.accused, prev.record.report),
            None => {
                let path = cap.path.clone();
                let t = title.clone();
                let r = tokio::task::spawn_blocking(move || analyzer.analyze(&path, &t))
                    .await
                    .map_err(|e| CrawlError::Detect(format!("analysis task: {e}")))?;
                match r {
                    Ok(a) => (
                        a.verdict,
                        serde_json::to_string(&a.accused).unwrap_or_else(|_| "[]".into()),
                        a.report.to_string(),
                    ),
                    Err(e) => (
                        "error".to_owned(),
                        "[]".to_owned(),
                        serde_json::json!({ "error": e.to_string() }).to_string(),
                    ),
                }
            }
        };
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
    verdict: String,
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
                if cap.kind == "hls" { "mp4" } else { "bin" }
            )
        });
    NewFinding {
        finding_id: finding_id(&job.url, &cap.sha256),
        media_url: job.url.clone(),
        page_url: job.referrer.clone(),
        redirect_chain: cap.meta.chain.clone(),
        redirect_statuses: cap.meta.statuses.clone(),
        resolved_ip: cap.meta.remote_ip.map(|i| i.to_string()),
        kind: cap.kind.to_owned(),
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
