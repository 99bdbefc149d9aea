//! The pipeline steps the CLI runs: file notices for a finding, send what is approved,
//! re-check noticed URLs and escalate.

use std::path::PathBuf;
use std::time::Duration;

use leaktrace_store::{
    NewNotice, NoticeChannel, NoticeDelivery, NoticeDisposition, NoticeRecord, Store,
};

use crate::config::{Mode, TakedownConfig};
use crate::deliver::{Deliverer, SendOutcome};
use crate::evidence::EvidenceSigner;
use crate::net::NetPolicy;
use crate::notice::{Channel, Level, Notice, Recipient};
use crate::rdap::Resolver;
use crate::{FindingEvidence, TakedownError, evidence};

/// One notice made by [`file_finding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    /// Notice id.
    pub notice_id: String,
    /// False when the notice already existed (a re-run): nothing new was stored.
    pub inserted: bool,
    /// Delivery state it starts in (or is in, for a notice filed before).
    pub delivery: NoticeDelivery,
}

/// The evidence bundle directory of a finding.
pub fn bundle_dir(cfg: &TakedownConfig, finding_id: &str) -> PathBuf {
    let safe: String = finding_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cfg.evidence_dir.join(safe)
}

fn delivery_for(mode: Mode) -> NoticeDelivery {
    match mode {
        Mode::Approval => NoticeDelivery::PendingApproval,
        Mode::Auto => NoticeDelivery::Approved,
        Mode::DryRun => NoticeDelivery::DryRun,
    }
}

fn new_notice(n: &Notice, delivery: NoticeDelivery) -> Result<NewNotice, TakedownError> {
    let (recipient, channel) = match &n.recipient.channel {
        Channel::Email { to } => (to.clone(), NoticeChannel::Email),
        Channel::Http { endpoint } => (endpoint.clone(), NoticeChannel::Http),
    };
    Ok(NewNotice {
        notice_id: n.notice_id.clone(),
        finding_id: n.finding_id.clone(),
        url: n.infringing_urls.first().cloned().unwrap_or_default(),
        host: n.host(),
        level: n.recipient.level.into(),
        recipient,
        channel,
        delivery,
        notice_json: serde_json::to_string(n)?,
        found_at: n.found_at,
        created_at: n.created_at,
    })
}

/// Makes the notice for `finding` at `level` (the first rung is normally `site` or `host`):
/// gate, recipient, validation, evidence bundle (directory and tar archive), stored notice in
/// the state the mode gives. The bundle is signed by `signer`.
/// Returns `Ok(None)` when no recipient is known at that level.
pub async fn file_finding(
    cfg: &TakedownConfig,
    store: &Store,
    resolver: &Resolver,
    finding: &FindingEvidence,
    level: Level,
    now: i64,
    signer: &EvidenceSigner,
) -> Result<Option<Filed>, TakedownError> {
    // Gate first: no lookups, no files for a finding without a positive match.
    crate::gate(finding, cfg.fp_max)?;
    let host = finding.host().unwrap_or_default();
    let Some(recipient) = resolver
        .resolve(&host, finding.resolved_ip, level, now)
        .await?
    else {
        return Ok(None);
    };
    let work = cfg
        .works
        .get(&finding.title_id)
        .cloned()
        .unwrap_or_default();
    let notice = Notice::build(finding, &cfg.complainant, &work, recipient, cfg.fp_max, now)?;
    let dir = bundle_dir(cfg, &finding.finding_id);
    if !dir.join(evidence::MANIFEST).exists() {
        evidence::write_bundle(&dir, finding, now, signer)?;
        evidence::write_archive(&dir)?;
    }
    let delivery = delivery_for(cfg.mode);
    let inserted = store.insert_notice(&new_notice(&notice, delivery)?).await?;
    let stored = store.get_notice(&notice.notice_id).await?;
    Ok(Some(Filed {
        notice_id: notice.notice_id,
        inserted,
        delivery: stored.map_or(delivery, |r| r.delivery),
    }))
}

/// Sends every open `approved` (and retryable `failed`) notice once, if its finding's evidence
/// bundle verifies ([`SendOutcome::EvidenceRefused`] otherwise). Claims older than the
/// lease that were never recorded become `in_doubt` first (never resent). Each sent notice is
/// added to its finding's evidence bundle as sent (after the bundle is verified, see
/// [`evidence::add_notice`]) and re-signed by `signer`, and the bundle's archive is rewritten.
///
/// In dry-run mode nothing is contacted and nothing is written: the `dry_run` notices and the
/// ones that would be sent come back rendered ([`SendOutcome::DryRun`]).
pub async fn send_approved(
    cfg: &TakedownConfig,
    store: &Store,
    deliverer: &Deliverer,
    now: i64,
    signer: &EvidenceSigner,
) -> Result<Vec<(String, SendOutcome)>, TakedownError> {
    let max_attempts = 3 * i64::from(cfg.retry.attempts);
    let todo = if cfg.mode == Mode::DryRun {
        let mut todo: Vec<NoticeRecord> = store
            .list_notices(Some(NoticeDelivery::DryRun))
            .await?
            .into_iter()
            .filter(|r| r.disposition == NoticeDisposition::Open)
            .collect();
        todo.extend(store.sendable_notices(max_attempts).await?);
        todo
    } else {
        let lease = i64::try_from(cfg.claim_lease_s).unwrap_or(i64::MAX);
        store.mark_in_doubt(now.saturating_sub(lease)).await?;
        store.sendable_notices(max_attempts).await?
    };
    let mut out = Vec::new();
    for rec in todo {
        // A notice cites its evidence: it goes out only while the bundle verifies, so the
        // bundle can take the notice as sent afterwards.
        if cfg.mode != Mode::DryRun
            && let Some(reason) = evidence::refusal(&bundle_dir(cfg, &rec.finding_id), signer)
        {
            out.push((rec.notice_id, SendOutcome::EvidenceRefused { reason }));
            continue;
        }
        let outcome = deliverer.send(&rec, now).await?;
        if let SendOutcome::Sent { .. } = &outcome {
            let notice: Notice = serde_json::from_str(&rec.notice_json)?;
            let dir = bundle_dir(cfg, &rec.finding_id);
            evidence::add_notice(&dir, &notice, now, signer)?;
            evidence::write_archive(&dir)?;
        }
        out.push((rec.notice_id, outcome));
    }
    Ok(out)
}

/// A notice's disposition (ACNS NoticeStatus vocabulary), changed by re-checks (`closed`) and
/// by a human with `leaktrace takedown mark` ([`mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// Waiting for removal (re-checked, escalated after the grace period).
    Open,
    /// Content removed, or the case closed by hand. Final.
    Closed,
    /// The recipient refused to act.
    Rejected,
    /// The recipient forwarded a counter-notice.
    CounterNotice,
}

impl Disposition {
    /// Every disposition.
    pub const ALL: [Disposition; 4] = [
        Disposition::Open,
        Disposition::Closed,
        Disposition::Rejected,
        Disposition::CounterNotice,
    ];

    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Open => "open",
            Disposition::Closed => "closed",
            Disposition::Rejected => "rejected",
            Disposition::CounterNotice => "counter_notice",
        }
    }

    /// Parses [`Disposition::as_str`].
    pub fn parse(s: &str) -> Option<Disposition> {
        Disposition::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether a notice may move from `self` to `to`; `delivered` says whether the recipient
    /// may have it (delivery `sent` or `in_doubt`). The error says why not and what is
    /// allowed.
    ///
    /// - `open` → `closed` (any time; an unsent notice is then withdrawn, never sent),
    ///   `rejected` or `counter_notice` (only once delivered: the recipient answers a notice
    ///   it received);
    /// - `rejected`, `counter_notice` → `open` (re-checks and escalation resume) or `closed`;
    /// - `closed` is final: content that comes back is a new finding.
    pub fn check_move(self, to: Disposition, delivered: bool) -> Result<(), String> {
        use Disposition::*;
        match (self, to) {
            (a, b) if a == b => Err(format!("it is already {}", a.as_str())),
            (Closed, _) => Err(
                "closed is final (content found removed, or closed by hand); content that comes back is a new finding".into(),
            ),
            (Open, Rejected | CounterNotice) if !delivered => Err(format!(
                "the recipient has not received it; only a sent (or in-doubt) notice can be {}",
                to.as_str()
            )),
            (Open, _) | (Rejected | CounterNotice, Open | Closed) => Ok(()),
            (Rejected | CounterNotice, _) => Err(format!(
                "from {} a notice can go back to open or be closed",
                self.as_str()
            )),
        }
    }
}

/// The disposition as the store keeps it.
impl From<Disposition> for NoticeDisposition {
    fn from(d: Disposition) -> NoticeDisposition {
        match d {
            Disposition::Open => NoticeDisposition::Open,
            Disposition::Closed => NoticeDisposition::Closed,
            Disposition::Rejected => NoticeDisposition::Rejected,
            Disposition::CounterNotice => NoticeDisposition::CounterNotice,
        }
    }
}

/// The disposition of a stored notice.
impl From<NoticeDisposition> for Disposition {
    fn from(d: NoticeDisposition) -> Disposition {
        match d {
            NoticeDisposition::Open => Disposition::Open,
            NoticeDisposition::Closed => Disposition::Closed,
            NoticeDisposition::Rejected => Disposition::Rejected,
            NoticeDisposition::CounterNotice => Disposition::CounterNotice,
        }
    }
}

/// `leaktrace takedown mark`: moves a notice's disposition by hand, if
/// [`Disposition::check_move`] allows it (compare and set in the store, so a concurrent
/// change is not overwritten). Returns the updated record.
pub async fn mark(
    store: &Store,
    notice_id: &str,
    to: Disposition,
    now: i64,
) -> Result<NoticeRecord, TakedownError> {
    let unknown = || TakedownError::UnknownNotice(notice_id.to_owned());
    let rec = store.get_notice(notice_id).await?.ok_or_else(unknown)?;
    let refuse = |why: String| TakedownError::Transition {
        notice_id: notice_id.to_owned(),
        from: rec.disposition.as_str().to_owned(),
        to: to.as_str().to_owned(),
        why,
    };
    let from = Disposition::from(rec.disposition);
    let delivered = matches!(rec.delivery, NoticeDelivery::Sent | NoticeDelivery::InDoubt);
    from.check_move(to, delivered).map_err(&refuse)?;
    if !store
        .set_disposition(notice_id, from.into(), to.into(), now)
        .await?
    {
        return Err(refuse("it was changed meanwhile; look again".into()));
    }
    store.get_notice(notice_id).await?.ok_or_else(unknown)
}

/// Result of one re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Notice.
    pub notice_id: String,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// 404 or 410: the content is gone and the notice is closed.
    pub removed: bool,
    /// Seconds from notice sent to removal, when removed.
    pub notice_to_removal_s: Option<i64>,
    /// Why there was no answer (status 0): the address policy refused the URL (nothing was
    /// contacted), or the request failed.
    pub error: Option<String>,
}

/// Re-checks every open, sent notice whose check is due: GET the URL (no redirects
/// followed, the body is never read: only the status counts); 404 or 410 closes the notice
/// with the time of removal.
///
/// The URL comes from a hostile site, so it obeys the address policy ([`crate::net`]): an
/// IP literal the policy refuses (loopback unless `allow_loopback`, private, link-local and
/// cloud metadata, ...) is not contacted, and `client` (from [`recheck_client_with`]) refuses
/// such addresses when it resolves a host name. A refused check records status 0 and says
/// why in [`Check::error`].
pub async fn recheck_due(
    cfg: &TakedownConfig,
    store: &Store,
    client: &reqwest::Client,
    now: i64,
) -> Result<Vec<Check>, TakedownError> {
    let interval = i64::try_from(cfg.status.recheck_interval_s).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for rec in store.due_checks(now).await? {
        let checked = url::Url::parse(&rec.url)
            .map_err(|e| format!("{}: {e}", rec.url))
            .and_then(|u| {
                crate::net::check_url(&u, cfg.allow_loopback)
                    .map(|()| u)
                    .map_err(|why| format!("{}: refused by the address policy: {why}", rec.url))
            });
        let (status, error) = match checked {
            Err(why) => (0, Some(why)),
            // The response is dropped unread: no body is downloaded.
            Ok(u) => match client.get(u).send().await {
                Ok(r) => (r.status().as_u16(), None),
                Err(e) => (0, Some(crate::net::error_chain(&e))),
            },
        };
        let removed = matches!(status, 404 | 410);
        store
            .record_check(
                &rec.notice_id,
                i64::from(status),
                now,
                now.saturating_add(interval),
                removed,
            )
            .await?;
        out.push(Check {
            notice_id: rec.notice_id.clone(),
            status,
            removed,
            notice_to_removal_s: removed.then(|| now - rec.sent_at.unwrap_or(now)),
            error,
        });
    }
    Ok(out)
}

/// A re-check client under the default address policy (no loopback): short timeout, no
/// redirects (a redirect away from the file is not a removal; its status is recorded as is).
pub fn recheck_client() -> Result<reqwest::Client, TakedownError> {
    recheck_client_with(&NetPolicy::default())
}

/// A re-check client under `policy` (e.g. [`NetPolicy::from_config`] to honour
/// `allow_loopback`): host names resolve through the guard, no redirects are followed.
pub fn recheck_client_with(policy: &NetPolicy) -> Result<reqwest::Client, TakedownError> {
    policy.client(Duration::from_secs(20), reqwest::redirect::Policy::none())
}

/// Escalates open, sent notices whose level's grace period has passed: a notice with the
/// same content goes to the next rung that has a recipient (site → host → CDN → registrar).
/// Returns (old notice, new notice) ids.
pub async fn escalate_due(
    cfg: &TakedownConfig,
    store: &Store,
    resolver: &Resolver,
    now: i64,
) -> Result<Vec<(String, Filed)>, TakedownError> {
    let mut out = Vec::new();
    for rec in store.list_notices(Some(NoticeDelivery::Sent)).await? {
        if rec.disposition != NoticeDisposition::Open || rec.escalated_at.is_some() {
            continue;
        }
        let level = Level::from(rec.level);
        let Some(grace) = cfg.grace(level) else {
            continue;
        };
        let Some(sent) = rec.sent_at else { continue };
        if now - sent < i64::try_from(grace).unwrap_or(i64::MAX) {
            continue;
        }
        let old: Notice = serde_json::from_str(&rec.notice_json)?;
        let mut next = level.next();
        while let Some(l) = next {
            if let Some(r) = resolver.resolve(&rec.host, old.ip, l, now).await? {
                let filed = escalate_notice(cfg, store, &old, r, now).await?;
                store.mark_escalated(&rec.notice_id, now).await?;
                out.push((rec.notice_id.clone(), filed));
                break;
            }
            next = l.next();
        }
    }
    Ok(out)
}

async fn escalate_notice(
    cfg: &TakedownConfig,
    store: &Store,
    old: &Notice,
    recipient: Recipient,
    now: i64,
) -> Result<Filed, TakedownError> {
    let mut n = old.clone();
    n.notice_id = Notice::id_for(&old.finding_id, recipient.level, &recipient.email);
    n.recipient = recipient;
    n.created_at = now;
    n.validate()?;
    let delivery = delivery_for(cfg.mode);
    let inserted = store.insert_notice(&new_notice(&n, delivery)?).await?;
    let stored = store.get_notice(&n.notice_id).await?;
    Ok(Filed {
        notice_id: n.notice_id,
        inserted,
        delivery: stored.map_or(delivery, |r| r.delivery),
    })
}

/// Times of a notice: (finding → notice sent, notice sent → removal), in seconds.
pub fn timings(rec: &NoticeRecord) -> (Option<i64>, Option<i64>) {
    let to_notice = rec.sent_at.map(|s| s - rec.found_at);
    let to_removal = match (rec.sent_at, rec.closed_at) {
        (Some(s), Some(c)) => Some(c - s),
        _ => None,
    };
    (to_notice, to_removal)
}
