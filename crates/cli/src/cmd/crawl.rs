//! `leaktrace crawl`, `leaktrace worker`, `leaktrace findings`.
//!
//! The crawler configuration is its own TOML file (`--crawler`, default
//! `crawler.toml` beside the leaktrace config; see docs/crawler.md). The
//! frontier and findings live in the leaktrace store, so `leaktrace worker`
//! processes started on other hosts against the same PostgreSQL store share
//! the work of a `leaktrace crawl`.

use crate::config::Loaded;
use crate::exit::{Code, NotFoundError, UsageError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use leaktrace_core::{DetectionKeys, KeyVersion, TitleId};
use leaktrace_crawler::analyze::{Analyzer, DetectAnalyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::net::Lookup;
use leaktrace_crawler::worker::{Crawler, RunStats};
use leaktrace_store::{Finding, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `leaktrace crawl`.
#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Crawler configuration (TOML).
    #[arg(long, default_value = "crawler.toml")]
    pub crawler: PathBuf,
    /// One run: queue the sources, crawl until nothing is left, exit.
    #[arg(long, conflicts_with = "schedule")]
    pub once: bool,
    /// Run at each `schedule.cron` match (UTC), else every `schedule.interval_secs`, until
    /// SIGTERM/SIGINT (finishes in-flight jobs).
    #[arg(long)]
    pub schedule: bool,
    /// Print the run's counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Crawler configuration (TOML).
    #[arg(long, default_value = "crawler.toml")]
    pub crawler: PathBuf,
    /// Exit when nothing is due and nothing is leased (else run until SIGTERM).
    #[arg(long)]
    pub until_idle: bool,
}

/// `leaktrace findings`.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List findings, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one finding in full.
    Show {
        /// The finding id (`F-…`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn load_crawler(loaded: &Loaded, path: &Path) -> Result<Config> {
    let p = if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        loaded.dir.join(path)
    };
    let text = std::fs::read_to_string(&p)
        .map_err(|e| UsageError(format!("cannot read crawler config {} ({e})", p.display())))?;
    let mut cfg =
        Config::from_toml(&text).map_err(|e| UsageError(format!("{}: {e}", p.display())))?;
    if cfg.fetch.capture_dir.is_relative() {
        cfg.fetch.capture_dir = loaded.dir.join(&cfg.fetch.capture_dir);
    }
    Ok(cfg)
}

fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    format!(
        "{host}-{}-{:02x}{:02x}{:02x}{:02x}",
        std::process::id(),
        r[0],
        r[1],
        r[2],
        r[3]
    )
}

async fn crawler(loaded: &Loaded, cfg: Config) -> Result<(Arc<Crawler>, Store)> {
    let url = super::store::resolved_url(loaded)?;
    let store = Store::open(&url).await.context("opening the store")?;
    let keys = detection_keys(loaded, &cfg, &store).await?;
    let refs = cfg
        .catalogue
        .iter()
        .filter_map(|t| {
            t.reference
                .as_ref()
                .map(|r| (t.title_id.clone(), loaded.dir.join(r)))
        })
        .collect();
    let analyzer: Arc<dyn Analyzer> = Arc::new(DetectAnalyzer::new(
        store.clone(),
        Arc::new(keys),
        cfg.detect.fp,
        cfg.detect.max_offset_s,
        refs,
    )?);
    let c = Crawler::new(
        store.clone(),
        Arc::new(cfg),
        Lookup::System,
        Some(analyzer),
        owner(),
    )?;
    Ok((c, store))
}

/// The keys the crawler's detection uses: the set `[detect] keys` names, or else the set of
/// every stored title derived from the keyring, which is then dropped: no master key stays in
/// the process that parses hostile pages and media.
async fn detection_keys(loaded: &Loaded, cfg: &Config, store: &Store) -> Result<DetectionKeys> {
    if let Some(file) = &cfg.detect.keys {
        let keys = crate::config::read_detection_keys(&loaded.dir.join(file))?;
        tracing::info!(titles = keys.len(), "detection keys loaded");
        return Ok(keys);
    }
    let ring = loaded.keyring()?;
    let held: Vec<KeyVersion> = ring.versions().collect();
    let titles = store.list_titles().await.context("listing titles")?;
    let mut wanted = Vec::new();
    for t in titles {
        let version = KeyVersion::new(t.key_version);
        match TitleId::new(t.title_id.clone()) {
            Ok(id) if held.contains(&version) => wanted.push((id, version)),
            Ok(_) => tracing::warn!(
                title = %t.title_id,
                key_version = t.key_version,
                "title marked with a key version the keyring does not hold: not detectable"
            ),
            Err(e) => tracing::warn!(title = %t.title_id, error = %e, "skipping title"),
        }
    }
    let keys = ring.detection_keys(wanted)?;
    tracing::info!(
        titles = keys.len(),
        "detection keys derived from the keyring; set [detect] keys in the crawler config to keep the master key off this machine"
    );
    Ok(keys)
}

/// A stop flag raised by SIGTERM or SIGINT.
fn stop_on_signals() -> Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping: finishing in-flight jobs");
        let _ = tx.send(true);
    });
    Ok(rx)
}

fn report(stats: &RunStats, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(stats)?);
    } else {
        println!(
            "done {}  retried {}  dead {}  new findings {}  lost leases {}",
            stats.done, stats.retried, stats.dead, stats.findings, stats.lost_leases
        );
    }
    Ok(())
}

/// Runs `leaktrace crawl`.
pub fn crawl(config: Option<&Path>, a: &CrawlArgs) -> Result<Code> {
    if a.once == a.schedule {
        return Err(UsageError("give exactly one of --once and --schedule".into()).into());
    }
    let loaded = Loaded::find(config)?;
    let cfg = load_crawler(&loaded, &a.crawler)?;
    let schedule = cfg.schedule.clone();
    runtime()?.block_on(async {
        let (c, store) = crawler(&loaded, cfg).await?;
        let mut stop = stop_on_signals()?;
        // --once and an interval start at once; a cron schedule at its first match.
        let now = now_ms() / 1000;
        let mut next_at = match &schedule.cron {
            Some(_) if a.schedule => schedule.next_start(now, now)?,
            _ => now,
        };
        loop {
            let wait_ms = next_at.saturating_mul(1000) - now_ms();
            if wait_ms > 0 {
                tracing::info!(next_at, "next crawl run");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())) => {}
                    _ = stop.changed() => break,
                }
            }
            let generation = now_ms() / 1000;
            let queued = c.seed(generation).await?;
            tracing::info!(generation, queued, "crawl run started");
            let stats = c.run(stop.clone(), true).await?;
            report(&stats, a.json)?;
            if a.once || *stop.borrow() {
                break;
            }
            next_at = schedule.next_start(generation, now_ms() / 1000)?;
        }
        store.close().await;
        Ok(Code::Success)
    })
}

/// UTC unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `leaktrace worker`.
pub fn worker(config: Option<&Path>, a: &WorkerArgs) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    let cfg = load_crawler(&loaded, &a.crawler)?;
    runtime()?.block_on(async {
        let (c, store) = crawler(&loaded, cfg).await?;
        let stop = stop_on_signals()?;
        let stats = c.run(stop, a.until_idle).await?;
        report(&stats, false)?;
        store.close().await;
        Ok(Code::Success)
    })
}

fn finding_json(f: &Finding) -> serde_json::Value {
    let r = &f.record;
    let parse =
        |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "finding_id": r.finding_id,
        "media_url": r.media_url,
        "page_url": r.page_url,
        "redirect_chain": r.redirect_chain,
        "redirect_statuses": r.redirect_statuses,
        "resolved_ip": r.resolved_ip,
        "kind": r.kind.as_str(),
        "file_name": r.file_name,
        "content_type": r.content_type,
        "byte_len": r.byte_len,
        "blake3": r.blake3,
        "sha256": r.sha256,
        "capture_path": r.capture_path,
        "title_id": r.title_id,
        "title_score": r.title_score,
        "verdict": r.verdict.as_str(),
        "accused": parse(&r.accused),
        "capture_started_at": r.capture_started_at,
        "capture_finished_at": r.capture_finished_at,
        "created_at": f.created_at,
        "report": parse(&r.report),
    })
}

/// Runs `leaktrace findings`.
pub fn findings(config: Option<&Path>, c: &FindingsCommand) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    let url = super::store::resolved_url(&loaded)?;
    runtime()?.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let r = match c {
            FindingsCommand::List { limit, json } => {
                let list = store.findings_list(None, *limit).await?;
                if *json {
                    let v: Vec<serde_json::Value> = list
                        .iter()
                        .map(|f| {
                            let mut j = finding_json(f);
                            if let Some(o) = j.as_object_mut() {
                                o.remove("report");
                            }
                            j
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for f in &list {
                        let r = &f.record;
                        println!(
                            "{}  {}  {}  {}  {}",
                            r.finding_id,
                            r.title_id.as_deref().unwrap_or("-"),
                            r.verdict,
                            r.kind,
                            r.media_url
                        );
                    }
                }
                Ok(Code::Success)
            }
            FindingsCommand::Show { id, json } => match store.finding_get(id).await? {
                None => Err(NotFoundError(format!("no finding {id:?}")).into()),
                Some(f) => {
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&finding_json(&f))?);
                    } else {
                        let j = finding_json(&f);
                        if let Some(o) = j.as_object() {
                            for (k, v) in o {
                                if k != "report" {
                                    println!("{k:<20} {v}");
                                }
                            }
                        }
                    }
                    Ok(Code::Success)
                }
            },
        };
        store.close().await;
        r
    })
}
