//! `leaktrace takedown file|review|approve|send|recheck|mark|list|show` and
//! `leaktrace evidence verify`.
//!
//! Configuration: `takedown.toml` beside `leaktrace.toml` (or `--takedown-config FILE`);
//! relative paths in it (evidence_dir, rdap.bootstrap_dir) are relative to that file. See
//! docs/takedown.md. Notices live in the store (tables `takedown_*`).

use crate::config::Loaded;
use crate::exit::{Code, ConfigError, ConflictError, NotFoundError, UsageError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use leaktrace_store::{NoticeDelivery, NoticeRecord, Store};
use leaktrace_takedown::deliver::{Deliverer, SendOutcome};
use leaktrace_takedown::evidence::{EvidenceSigner, SignatureStatus};
use leaktrace_takedown::net::NetPolicy;
use leaktrace_takedown::pipeline::{self, timings};
use leaktrace_takedown::rdap::Resolver;
use leaktrace_takedown::{
    Disposition, FindingEvidence, Level, Notice, TakedownConfig, TakedownError, evidence, render,
};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `leaktrace takedown ...`.
#[derive(Debug, Subcommand)]
pub enum TakedownCommand {
    /// Make the notice for a finding (gate, recipient, validation, evidence bundle).
    File(FileArgs),
    /// Show notices waiting for approval, with their letters.
    Review(CommonArgs),
    /// Approve notices for sending (waiting for approval, made in dry-run mode, or failed).
    Approve(ApproveArgs),
    /// Send approved notices (once each; never again after a crash mid-send).
    Send(CommonArgs),
    /// Re-check noticed URLs that are due (404/410 closes) and escalate past grace periods.
    Recheck(CommonArgs),
    /// Set a notice's disposition by hand (open, closed, rejected, counter_notice); a move
    /// its current state does not allow is refused (exit 8).
    Mark(MarkArgs),
    /// List notices with their states and times.
    List(CommonArgs),
    /// Show one notice in full.
    Show(ShowArgs),
}

/// `leaktrace evidence ...`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Re-hash an evidence bundle (directory or .tar archive) against its manifest and check
    /// its signature: intact (exit 0) or tampered (exit 3).
    Verify(VerifyArgs),
    /// Sign a bundle sealed before manifests were signed (its files must match its manifest),
    /// with the current key's evidence key; rewrites its archive.
    Sign(SignArgs),
}

/// `evidence sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Bundle directory.
    pub bundle: PathBuf,
}

/// Options shared by the takedown subcommands.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Takedown configuration (default: takedown.toml beside the leaktrace config).
    #[arg(long, value_name = "FILE")]
    pub takedown_config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `takedown file`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// A crawler finding id in the store (`F-…`, see `leaktrace findings list`), or a
    /// FindingEvidence JSON file.
    pub finding: String,
    /// A `leaktrace detect --json` report to attach (fills verdict and accusations).
    #[arg(long, value_name = "FILE")]
    pub detect_report: Option<PathBuf>,
    /// Rung of the escalation ladder to notify first: site, host, cdn, registrar.
    #[arg(long, default_value = "host")]
    pub level: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `takedown approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Notice ids.
    #[arg(required_unless_present = "all")]
    pub ids: Vec<String>,
    /// Approve every notice waiting for approval.
    #[arg(long)]
    pub all: bool,
    /// Who approves (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `takedown mark`.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// Notice id.
    pub id: String,
    /// open, closed, rejected or counter_notice.
    #[arg(long)]
    pub state: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `takedown show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Notice id.
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `evidence verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Bundle directory, or its tar archive (`<bundle>.tar`, written beside it).
    pub bundle: PathBuf,
    /// A trusted evidence public key (64 hex characters, from `leaktrace key list`);
    /// repeatable. Default: the keys of the configured keyring, when there is one.
    #[arg(long = "public-key", value_name = "HEX")]
    pub public_keys: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Loads `takedown.toml`, resolving relative paths against its directory.
fn load_config(config: Option<&Path>, explicit: Option<&Path>) -> Result<(Loaded, TakedownConfig)> {
    let loaded = Loaded::find(config)?;
    let path = explicit.map_or_else(|| loaded.dir.join("takedown.toml"), Path::to_path_buf);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError(format!(
            "cannot read {} ({e}); see docs/takedown.md for an example",
            path.display()
        ))
    })?;
    let mut cfg: TakedownConfig = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if cfg.evidence_dir.is_relative() {
        cfg.evidence_dir = dir.join(&cfg.evidence_dir);
    }
    if let Some(b) = cfg.rdap.bootstrap_dir.as_mut()
        && b.is_relative()
    {
        *b = dir.join(&*b);
    }
    cfg.validate().map_err(|e| ConfigError(e.to_string()))?;
    Ok((loaded, cfg))
}

fn map_err(e: TakedownError) -> anyhow::Error {
    match e {
        TakedownError::InvalidConfig(m) => ConfigError(m).into(),
        TakedownError::SmtpHost { .. }
        | TakedownError::SmtpFrom { .. }
        | TakedownError::HttpClient(_)
        | TakedownError::RdapBootstrap { .. } => {
            ConfigError(leaktrace_core::error_chain(&e)).into()
        }
        TakedownError::UnknownNotice(_) => NotFoundError(e.to_string()).into(),
        TakedownError::Transition { .. } => ConflictError(e.to_string()).into(),
        TakedownError::UnusableFinding { .. } => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}

struct Ctx {
    cfg: TakedownConfig,
    store: Store,
    rt: tokio::runtime::Runtime,
    loaded: Loaded,
}

impl Ctx {
    /// The evidence signer: the current key's evidence key, trusting every version held.
    fn signer(&self) -> Result<EvidenceSigner> {
        signer(&self.loaded.keyring()?)
    }
}

/// Signs with the current key's evidence key; trusts the evidence keys of every version held.
fn signer(ring: &leaktrace_core::Keyring) -> Result<EvidenceSigner> {
    Ok(EvidenceSigner::new(
        ring.current().evidence_key(),
        ring.keys().map(|k| k.evidence_key().public_key()),
    ))
}

fn ctx(config: Option<&Path>, c: &CommonArgs) -> Result<Ctx> {
    let (loaded, cfg) = load_config(config, c.takedown_config.as_deref())?;
    let url = crate::cmd::store::resolved_url(&loaded)?;
    let rt = runtime()?;
    let store = rt.block_on(Store::open(&url))?;
    Ok(Ctx {
        cfg,
        store,
        rt,
        loaded,
    })
}

fn record_json(r: &NoticeRecord) -> serde_json::Value {
    let (to_notice, to_removal) = timings(r);
    json!({
        "notice_id": r.notice_id, "finding_id": r.finding_id, "url": r.url, "host": r.host,
        "level": r.level.as_str(), "recipient": r.recipient, "channel": r.channel.as_str(),
        "delivery": r.delivery.as_str(), "disposition": r.disposition.as_str(),
        "found_at": r.found_at, "created_at": r.created_at, "approved_at": r.approved_at,
        "approved_by": r.approved_by, "sent_at": r.sent_at, "message_id": r.message_id,
        "attempts": r.attempts, "last_error": r.last_error, "closed_at": r.closed_at,
        "last_check_at": r.last_check_at, "last_check_status": r.last_check_status,
        "next_check_at": r.next_check_at, "escalated_at": r.escalated_at,
        "finding_to_notice_s": to_notice, "notice_to_removal_s": to_removal,
    })
}

fn secs(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s}s"))
}

/// Runs `leaktrace takedown ...`.
pub fn run(config: Option<&Path>, cmd: &TakedownCommand) -> Result<Code> {
    match cmd {
        TakedownCommand::File(a) => file(config, a),
        TakedownCommand::Review(c) => review(config, c),
        TakedownCommand::Approve(a) => approve(config, a),
        TakedownCommand::Send(c) => send(config, c),
        TakedownCommand::Recheck(c) => recheck(config, c),
        TakedownCommand::Mark(a) => mark(config, a),
        TakedownCommand::List(c) => list(config, c),
        TakedownCommand::Show(a) => show(config, a),
    }
}

fn file(config: Option<&Path>, a: &FileArgs) -> Result<Code> {
    let level = Level::parse(&a.level).ok_or_else(|| {
        UsageError(format!(
            "--level {:?}: expected site, host, cdn or registrar",
            a.level
        ))
    })?;
    let read_json = |p: &Path| -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", p.display())).into())
    };
    let c = ctx(config, &a.common)?;
    let as_file = Path::new(&a.finding);
    let mut finding: FindingEvidence = if as_file.is_file() {
        serde_json::from_value(read_json(as_file)?)
            .map_err(|e| UsageError(format!("{}: not a FindingEvidence: {e}", as_file.display())))?
    } else if a.finding.starts_with("F-") {
        let stored =
            c.rt.block_on(c.store.finding_get(&a.finding))?
                .ok_or_else(|| NotFoundError(format!("no finding {:?} in the store", a.finding)))?;
        FindingEvidence::from_finding(&stored, &c.cfg.works).map_err(map_err)?
    } else {
        return Err(UsageError(format!(
            "{:?}: neither a FindingEvidence JSON file nor a crawler finding id (F-…)",
            a.finding
        ))
        .into());
    };
    if let Some(r) = &a.detect_report {
        finding = finding
            .with_detect_report(read_json(r)?)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    let resolver = Resolver::new(c.cfg.recipients.clone(), &c.cfg.rdap, None, c.store.clone())
        .and_then(|r| r.with_policy(&NetPolicy::from_config(&c.cfg)))
        .map_err(map_err)?;
    let signer = c.signer()?;
    let res = c.rt.block_on(pipeline::file_finding(
        &c.cfg,
        &c.store,
        &resolver,
        &finding,
        level,
        now_unix(),
        &signer,
    ));
    c.rt.block_on(c.store.close());
    let out = match res {
        Ok(Some(f)) => {
            json!({ "finding_id": finding.finding_id, "notice_id": f.notice_id, "inserted": f.inserted, "delivery": f.delivery.as_str() })
        }
        Ok(None) => {
            json!({ "finding_id": finding.finding_id, "notice_id": null, "refused": format!("no recipient known at level {}", level.as_str()) })
        }
        Err(e @ (TakedownError::NoPositiveMatch { .. } | TakedownError::Incomplete { .. })) => {
            json!({ "finding_id": finding.finding_id, "notice_id": null, "refused": e.to_string() })
        }
        Err(e) => return Err(map_err(e)),
    };
    if a.common.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(r) = out.get("refused") {
        println!(
            "no notice for {}: {}",
            finding.finding_id,
            r.as_str().unwrap_or_default()
        );
    } else {
        println!(
            "notice {} ({}){}",
            out["notice_id"].as_str().unwrap_or_default(),
            out["delivery"].as_str().unwrap_or_default(),
            if out["inserted"] == false {
                ", already filed"
            } else {
                ""
            }
        );
    }
    Ok(Code::Success)
}

fn review(config: Option<&Path>, c: &CommonArgs) -> Result<Code> {
    let x = ctx(config, c)?;
    let pending =
        x.rt.block_on(x.store.list_notices(Some(NoticeDelivery::PendingApproval)))?;
    x.rt.block_on(x.store.close());
    if c.json {
        let v: Vec<_> = pending.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Code::Success);
    }
    if pending.is_empty() {
        println!("nothing waits for approval");
    }
    for r in &pending {
        let n: Notice = serde_json::from_str(&r.notice_json)?;
        println!("=== {} -> {} ({}) ===", r.notice_id, r.recipient, r.level);
        println!("{}", render::dmca_letter(&n));
        println!("approve with: leaktrace takedown approve {}\n", r.notice_id);
    }
    Ok(Code::Success)
}

fn approve(config: Option<&Path>, a: &ApproveArgs) -> Result<Code> {
    let x = ctx(config, &a.common)?;
    let now = now_unix();
    let ids: Vec<String> = if a.all {
        x.rt.block_on(x.store.list_notices(Some(NoticeDelivery::PendingApproval)))?
            .into_iter()
            .map(|r| r.notice_id)
            .collect()
    } else {
        a.ids.clone()
    };
    let mut approved = Vec::new();
    let mut unchanged = Vec::new();
    for id in &ids {
        if x.rt.block_on(x.store.approve_notice(id, &a.by, now))? {
            approved.push(id.clone());
        } else {
            unchanged.push(id.clone());
        }
    }
    x.rt.block_on(x.store.close());
    if a.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "approved": approved, "not_pending": unchanged })
            )?
        );
    } else {
        for id in &approved {
            println!("approved {id}");
        }
        for id in &unchanged {
            println!("{id}: not approvable (unknown, not open, or already approved or sent)");
        }
    }
    if !a.all && approved.is_empty() && !ids.is_empty() {
        return Err(NotFoundError(format!("no approvable notice among {ids:?}")).into());
    }
    Ok(Code::Success)
}

fn send(config: Option<&Path>, c: &CommonArgs) -> Result<Code> {
    let x = ctx(config, c)?;
    let worker = format!("{}:{}", std::process::id(), now_unix());
    let d = Deliverer::new(x.cfg.clone(), x.store.clone(), &worker).map_err(map_err)?;
    let signer = x.signer()?;
    let results =
        x.rt.block_on(pipeline::send_approved(
            &x.cfg,
            &x.store,
            &d,
            now_unix(),
            &signer,
        ))
        .map_err(map_err)?;
    x.rt.block_on(x.store.close());
    let mut failed = false;
    let rows: Vec<_> = results
        .iter()
        .map(|(id, o)| match o {
            SendOutcome::Sent { message_id, response, attempts } => {
                json!({ "notice_id": id, "outcome": "sent", "message_id": message_id, "response": response, "attempts": attempts })
            }
            SendOutcome::AlreadyClaimed => json!({ "notice_id": id, "outcome": "already_claimed" }),
            SendOutcome::RateLimited => json!({ "notice_id": id, "outcome": "rate_limited" }),
            SendOutcome::Failed { error, retryable } => {
                failed = true;
                json!({ "notice_id": id, "outcome": "failed", "error": error, "retryable": retryable })
            }
            SendOutcome::DryRun { to, rendered } => {
                json!({ "notice_id": id, "outcome": "dry_run", "to": to, "rendered": rendered })
            }
            SendOutcome::EvidenceRefused { reason } => {
                failed = true;
                json!({ "notice_id": id, "outcome": "evidence_refused", "error": reason, "retryable": false })
            }
            other => {
                failed = true;
                json!({ "notice_id": id, "outcome": "unknown", "error": format!("{other:?}"), "retryable": false })
            }
        })
        .collect();
    if c.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        if rows.is_empty() {
            println!("nothing to send");
        }
        for r in &rows {
            println!(
                "{} {}{}",
                r["notice_id"].as_str().unwrap_or_default(),
                r["outcome"].as_str().unwrap_or_default(),
                r.get("error")
                    .and_then(|e| e.as_str())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            if let (Some(to), Some(text)) = (r["to"].as_str(), r["rendered"].as_str()) {
                println!("--- dry run: not sent to {to} ---\n{text}");
            }
        }
    }
    Ok(if failed {
        Code::Internal
    } else {
        Code::Success
    })
}

fn recheck(config: Option<&Path>, c: &CommonArgs) -> Result<Code> {
    let x = ctx(config, c)?;
    let now = now_unix();
    let policy = NetPolicy::from_config(&x.cfg);
    let client = pipeline::recheck_client_with(&policy).map_err(map_err)?;
    let checks =
        x.rt.block_on(pipeline::recheck_due(&x.cfg, &x.store, &client, now))
            .map_err(map_err)?;
    let resolver = Resolver::new(x.cfg.recipients.clone(), &x.cfg.rdap, None, x.store.clone())
        .and_then(|r| r.with_policy(&policy))
        .map_err(map_err)?;
    let escalated =
        x.rt.block_on(pipeline::escalate_due(&x.cfg, &x.store, &resolver, now))
            .map_err(map_err)?;
    x.rt.block_on(x.store.close());
    let checks_json: Vec<_> = checks
        .iter()
        .map(|k| json!({ "notice_id": k.notice_id, "status": k.status, "removed": k.removed, "notice_to_removal_s": k.notice_to_removal_s, "error": k.error }))
        .collect();
    let esc_json: Vec<_> = escalated
        .iter()
        .map(|(old, f)| json!({ "from": old, "notice_id": f.notice_id, "delivery": f.delivery.as_str() }))
        .collect();
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "checks": checks_json, "escalated": esc_json }))?
        );
    } else {
        for k in &checks {
            if let Some(err) = &k.error {
                println!("{} no answer: {err}", k.notice_id);
                continue;
            }
            println!(
                "{} HTTP {} {}",
                k.notice_id,
                k.status,
                if k.removed {
                    format!("removed, closed after {}", secs(k.notice_to_removal_s))
                } else {
                    "still up".into()
                }
            );
        }
        for (old, f) in &escalated {
            println!("{old} escalated to {} ({})", f.notice_id, f.delivery);
        }
    }
    Ok(Code::Success)
}

fn mark(config: Option<&Path>, a: &MarkArgs) -> Result<Code> {
    let to = Disposition::parse(&a.state).ok_or_else(|| {
        UsageError(format!(
            "--state {:?}: expected open, closed, rejected or counter_notice",
            a.state
        ))
    })?;
    let x = ctx(config, &a.common)?;
    let res =
        x.rt.block_on(pipeline::mark(&x.store, &a.id, to, now_unix()));
    x.rt.block_on(x.store.close());
    let r = res.map_err(map_err)?;
    if a.common.json {
        println!("{}", serde_json::to_string_pretty(&record_json(&r))?);
    } else {
        println!("{} {}", r.notice_id, r.disposition);
    }
    Ok(Code::Success)
}

fn list(config: Option<&Path>, c: &CommonArgs) -> Result<Code> {
    let x = ctx(config, c)?;
    let all = x.rt.block_on(x.store.list_notices(None))?;
    x.rt.block_on(x.store.close());
    if c.json {
        let v: Vec<_> = all.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Code::Success);
    }
    println!(
        "{:<20} {:<10} {:<17} {:<15} {:>14} {:>14}  recipient / url",
        "notice", "level", "delivery", "disposition", "finding->sent", "sent->removed"
    );
    for r in &all {
        let (a, b) = timings(r);
        println!(
            "{:<20} {:<10} {:<17} {:<15} {:>14} {:>14}  {} / {}",
            r.notice_id,
            r.level,
            r.delivery,
            r.disposition,
            secs(a),
            secs(b),
            r.recipient,
            r.url
        );
    }
    Ok(Code::Success)
}

fn show(config: Option<&Path>, a: &ShowArgs) -> Result<Code> {
    let x = ctx(config, &a.common)?;
    let r = x.rt.block_on(x.store.get_notice(&a.id))?;
    x.rt.block_on(x.store.close());
    let r = r.ok_or_else(|| NotFoundError(format!("notice `{}` not found", a.id)))?;
    let n: Notice = serde_json::from_str(&r.notice_json)?;
    if a.common.json {
        let mut v = record_json(&r);
        v["notice"] = serde_json::to_value(&n)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Code::Success);
    }
    let (to_notice, to_removal) = timings(&r);
    println!("notice       {}", r.notice_id);
    println!("finding      {}", r.finding_id);
    println!("url          {}", r.url);
    println!("recipient    {} ({}, {})", r.recipient, r.level, r.channel);
    println!(
        "delivery     {}{}",
        r.delivery,
        r.last_error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    println!("disposition  {}", r.disposition);
    println!("message-id   {}", r.message_id.as_deref().unwrap_or("-"));
    println!("found        {}", render::rfc3339(r.found_at));
    println!(
        "sent         {}",
        r.sent_at.map_or_else(|| "-".into(), render::rfc3339)
    );
    println!(
        "closed       {}",
        r.closed_at.map_or_else(|| "-".into(), render::rfc3339)
    );
    println!(
        "last check   {} (HTTP {})",
        r.last_check_at.map_or_else(|| "-".into(), render::rfc3339),
        r.last_check_status
            .map_or_else(|| "-".into(), |s| s.to_string())
    );
    println!("finding -> notice  {}", secs(to_notice));
    println!("notice -> removal  {}", secs(to_removal));
    println!();
    print!("{}", render::dmca_letter(&n));
    Ok(Code::Success)
}

/// Runs `leaktrace evidence ...`.
///
/// The bundle is intact when every file matches the manifest and the manifest's signature is
/// valid; the signing key must then be a trusted one: `--public-key`, or else every evidence
/// key of the configured keyring. With neither, the signature is checked but its key is not
/// (reported, not a failure).
pub fn run_evidence(config: Option<&Path>, cmd: &EvidenceCommand) -> Result<Code> {
    let a = match cmd {
        EvidenceCommand::Verify(a) => a,
        EvidenceCommand::Sign(a) => {
            let ring = Loaded::find(config)?.keyring()?;
            let hash = evidence::sign_unsigned(&a.bundle, now_unix(), &signer(&ring)?)
                .map_err(|e| UsageError(e.to_string()))?;
            evidence::write_archive(&a.bundle).map_err(|e| UsageError(e.to_string()))?;
            println!(
                "signed {} with evidence key version {} (manifest BLAKE3 {hash})",
                a.bundle.display(),
                ring.current().version()
            );
            return Ok(Code::Success);
        }
    };
    let v = evidence::verify(&a.bundle).map_err(|e| UsageError(e.to_string()))?;
    let mut trusted = Vec::new();
    for k in &a.public_keys {
        trusted.push(
            leaktrace_core::keyring::parse_public_key(k)
                .map_err(|e| UsageError(format!("--public-key {k:?}: {e}")))?,
        );
    }
    if trusted.is_empty()
        && let Ok(ring) = Loaded::find(config).and_then(|l| l.keyring())
    {
        trusted.extend(ring.keys().map(|k| k.evidence_key().public_key()));
    }
    let trust = if trusted.is_empty() {
        None
    } else {
        Some(v.is_trusted(&trusted))
    };
    let ok = v.is_intact() && trust != Some(false);
    if a.json {
        let mut j = serde_json::to_value(&v)?;
        j["intact_bundle"] = json!(v.is_intact());
        j["trusted_key"] = json!(trust);
        j["verified"] = json!(ok);
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        if v.is_intact() {
            println!(
                "intact: {} files match the manifest (manifest BLAKE3 {})",
                v.intact.len(),
                v.manifest_blake3
            );
        } else {
            println!("TAMPERED");
            for p in &v.modified {
                println!("  modified {p}");
            }
            for p in &v.missing {
                println!("  missing  {p}");
            }
            for p in &v.added {
                println!("  added    {p}");
            }
        }
        match (&v.signature, trust) {
            (
                SignatureStatus::Valid {
                    key_version,
                    public_key,
                },
                Some(true),
            ) => println!(
                "signed by the operator's evidence key, version {key_version} ({public_key})"
            ),
            (SignatureStatus::Valid { public_key, .. }, Some(false)) => {
                println!("  signature  valid, but by {public_key}, which is not a trusted key")
            }
            (
                SignatureStatus::Valid {
                    key_version,
                    public_key,
                },
                None,
            ) => println!(
                "signed by {public_key} (key version {key_version}); not checked against a trusted key: pass --public-key or run where leaktrace.toml is"
            ),
            (SignatureStatus::Unsigned, _) => {
                println!("  signature  missing ({})", evidence::SIGNATURE)
            }
            (SignatureStatus::Invalid { reason }, _) => println!("  signature  invalid: {reason}"),
            (other, _) => println!("  signature  {other:?}"),
        }
    }
    Ok(if ok { Code::Success } else { Code::Input })
}
