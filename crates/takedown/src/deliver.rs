//! Delivery: SMTP (lettre) and HTTP (reqwest), with retries and exponential backoff,
//! per-recipient rate limits, and an outbox claim that makes a notice go out at most once.
//!
//! Sending one notice:
//!
//! 1. [`Store::claim_outbox`] inserts the outbox row keyed by the notice id (exclusive) and
//!    sets the notice `sending`, unless the recipient's rate limit is reached.
//! 2. The message goes to the transport, with attempts and backoff on failures the transport
//!    reports (nothing was accepted).
//! 3. [`Store::record_sent`] records the Message-ID and response.
//!
//! A crash between 2 and 3 leaves the claim: the notice is never sent again automatically
//! (it becomes `in_doubt`, for a human to reconcile).
//!
//! Failures: 5xx, 408, 429 and connection errors are transient (retried with backoff in the
//! run, and in later runs); any other 4xx (and an SMTP 5xx) is a permanent refusal: no retry,
//! the notice is `failed` with the status, and only a new approval sends it again. The Message-ID is derived from the
//! notice id, so even a manual resend is recognisable as the same notice by the receiver.
//!
//! HTTP endpoints obey the outbound address policy ([`crate::net`], as re-checks and RDAP
//! do): an IP-literal or `localhost` endpoint the policy refuses (loopback unless
//! `allow_loopback`, private, link-local and cloud metadata, CGNAT, ...) is not contacted, and
//! a host name is resolved through the [`net::GuardedResolver`], so a name resolving only to
//! refused addresses is not connected to either. Both are permanent failures (the
//! configuration has to change), and nothing is sent, token or notice. Redirects are not
//! followed. At most [`HTTP_MAX_BODY`] bytes of an endpoint's answer are read; the rest is
//! never downloaded.

use std::time::Duration;

use leaktrace_store::{NoticeRecord, OutboxClaim, Store};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Mode, SmtpSecurity, TakedownConfig};
use crate::net::NetPolicy;
use crate::notice::{Channel, Notice};
use crate::{TakedownError, net, render};

/// The most of an HTTP endpoint's answer that is read (64 KiB): the response summary keeps
/// its first 500 characters; anything beyond the cap is never downloaded (the connection is
/// dropped).
pub const HTTP_MAX_BODY: usize = 64 * 1024;

/// Characters of an HTTP endpoint's answer kept in the response summary (after the status).
const SUMMARY_CHARS: usize = 500;

/// Timeout of one HTTP delivery attempt (connection, request and the capped answer).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What happened to one notice in a send run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// Delivered now.
    Sent {
        /// Message-ID (e-mail) or idempotency key (HTTP).
        message_id: String,
        /// The transport's answer.
        response: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// Already claimed by an earlier run (sent, or maybe sent before a crash): not sent.
    AlreadyClaimed,
    /// The recipient's rate limit is reached: left for a later run.
    RateLimited,
    /// The notice is `failed`: every attempt failed on transient errors (5xx, 429, 408,
    /// timeouts; `retryable`: a later run tries again), or the recipient refused it
    /// permanently (another 4xx, an SMTP 5xx: not retried; `leaktrace takedown approve`
    /// asks for a new attempt).
    Failed {
        /// Last error (the HTTP status or SMTP reply first).
        error: String,
        /// Whether a later send run retries it.
        retryable: bool,
    },
    /// Not sent: the finding's evidence bundle does not verify (a file changed, missing or
    /// added, or no valid signature by a trusted key). Nothing was contacted or recorded; the
    /// notice stays as it was until the bundle is repaired.
    EvidenceRefused {
        /// What is wrong with the bundle.
        reason: String,
    },
    /// Dry-run mode: rendered as it would go out, nothing contacted, nothing recorded.
    DryRun {
        /// Recipient address or endpoint.
        to: String,
        /// The e-mail text (DMCA letter + ACNS XML) or the HTTP JSON body.
        rendered: String,
    },
}

/// Sends notices. Holds the transports; cheap to reuse across notices.
pub struct Deliverer {
    cfg: TakedownConfig,
    store: Store,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<Mailbox>,
    http: reqwest::Client,
    /// The `allow_loopback` of the policy `http` was built with.
    allow_loopback: bool,
    worker: String,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// The e-mail for a notice: the DMCA letter with the ACNS XML inline (where receivers'
/// parsers look for it), and the same XML as an `application/xml` attachment. The
/// Message-ID is [`Notice::message_id`].
pub fn email_message(notice: &Notice, from: Mailbox) -> Result<Message, TakedownError> {
    let to: Mailbox = notice
        .recipient
        .email
        .parse()
        .map_err(|e| TakedownError::Delivery {
            recipient: notice.recipient.email.clone(),
            message: format!("bad recipient address: {e}"),
        })?;
    let to = match &notice.recipient.channel {
        Channel::Email { to: addr } => addr.parse().unwrap_or(to),
        Channel::Http { .. } => to,
    };
    let xml = render::acns_xml(notice);
    let body = email_text(notice);
    let subject = format!(
        "Notice of copyright infringement ({}) - {}",
        notice.notice_id, notice.work.title
    );
    let xml_type = ContentType::parse("application/xml; charset=utf-8").map_err(|e| {
        TakedownError::Delivery {
            recipient: notice.recipient.email.clone(),
            message: e.to_string(),
        }
    })?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(notice.message_id()))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body))
                .singlepart(
                    Attachment::new(format!("{}.acns.xml", notice.notice_id)).body(xml, xml_type),
                ),
        )
        .map_err(|e| TakedownError::Delivery {
            recipient: notice.recipient.email.clone(),
            message: e.to_string(),
        })
}

/// The text part of a notice's e-mail: the DMCA letter, then the ACNS XML inline.
pub fn email_text(notice: &Notice) -> String {
    format!(
        "{}\n----- ACNS 1.2 -----\n{}",
        render::dmca_letter(notice),
        render::acns_xml(notice)
    )
}

/// What a notice would send, without sending: (recipient, the e-mail text or the HTTP JSON
/// body).
pub fn preview(notice: &Notice) -> Result<(String, String), TakedownError> {
    Ok(match &notice.recipient.channel {
        Channel::Email { to } => (to.clone(), email_text(notice)),
        Channel::Http { endpoint } => (
            endpoint.clone(),
            serde_json::to_string_pretty(&render::cloudflare_json(notice))?,
        ),
    })
}

/// The bearer token for a notice POSTed to `endpoint`, if one is configured for it: the
/// `token_env` of the `[[recipient]]` with that endpoint, else `http_token_env` when the
/// endpoint's host is `http_token_host`. Other endpoints get no token (`Ok(None)`).
///
/// A token is only sent over https, or over plain http to a loopback endpoint when
/// `allow_loopback` is set; otherwise, and when its variable is unset, the error says why
/// (the delivery is refused, not sent without it).
pub fn token_for(cfg: &TakedownConfig, endpoint: &str) -> Result<Option<String>, String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
    let host = url.host_str().unwrap_or_default().trim_end_matches('.');
    let per_recipient = cfg
        .recipients
        .iter()
        .find(|o| o.endpoint.as_deref() == Some(endpoint) && o.token_env.is_some())
        .and_then(|o| o.token_env.clone());
    let var = per_recipient.or_else(|| match (&cfg.http_token_env, &cfg.http_token_host) {
        (Some(v), Some(h)) if h.trim_end_matches('.').eq_ignore_ascii_case(host) => Some(v.clone()),
        _ => None,
    });
    let Some(var) = var else { return Ok(None) };
    let transport_ok = url.scheme() == "https"
        || (url.scheme() == "http" && cfg.allow_loopback && net::is_loopback_host(&url));
    if !transport_ok {
        return Err(format!(
            "refusing to send the API token to {endpoint}: tokens go over https only (plain http only to loopback, with allow_loopback)"
        ));
    }
    std::env::var(&var)
        .map(Some)
        .map_err(|_| format!("${var} (the API token for {host}) is not set"))
}

/// Backoff before attempt `n` (1-based, n >= 2): `base * 2^(n-2)`, capped.
pub fn backoff(cfg: &crate::config::RetryConfig, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(2).min(20);
    Duration::from_millis(cfg.base_ms.saturating_mul(1 << exp).min(cfg.max_ms))
}

/// Reads at most `cap` bytes of `resp`'s body, then stops (the rest is never read; dropping
/// the response closes the connection). A body that fails midway gives what arrived.
async fn read_capped(resp: &mut reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        resp.content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(cap),
    );
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap.saturating_sub(body.len());
                body.extend(chunk.iter().take(room));
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

impl Deliverer {
    /// Builds the transports from the configuration. `worker` names this sender in claims.
    /// HTTP endpoints obey the address policy of `cfg` ([`NetPolicy::from_config`]: loopback
    /// only with `allow_loopback`); see [`Deliverer::with_policy`].
    pub fn new(
        cfg: TakedownConfig,
        store: Store,
        worker: &str,
    ) -> Result<Deliverer, TakedownError> {
        cfg.validate()?;
        let (smtp, from) = match &cfg.smtp {
            None => (None, None),
            Some(s) => {
                let builder = match s.security {
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    }
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                            .map_err(|source| TakedownError::SmtpHost { source })?
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                        .map_err(|source| TakedownError::SmtpHost { source })?,
                };
                let mut builder = builder
                    .port(s.port)
                    .timeout(Some(Duration::from_secs(s.timeout_s)));
                if let (Some(u), Some(p)) = (&s.username_env, &s.password_env) {
                    let user = std::env::var(u).map_err(|_| {
                        TakedownError::InvalidConfig(format!("smtp.username_env: ${u} is not set"))
                    })?;
                    let pass = std::env::var(p).map_err(|_| {
                        TakedownError::InvalidConfig(format!("smtp.password_env: ${p} is not set"))
                    })?;
                    builder = builder.credentials(Credentials::new(user, pass));
                }
                let from: Mailbox = s.from.parse().map_err(|source| TakedownError::SmtpFrom {
                    from: s.from.clone(),
                    source,
                })?;
                (Some(builder.build()), Some(from))
            }
        };
        let policy = NetPolicy::from_config(&cfg);
        let http = http_client(&policy)?;
        Ok(Deliverer {
            cfg,
            store,
            smtp,
            from,
            http,
            allow_loopback: policy.allow_loopback,
            worker: worker.to_owned(),
        })
    }

    /// The same deliverer with HTTP endpoints under `policy` instead of the configuration's
    /// (e.g. a [`net::Lookup::Static`] table in tests; keep `allow_loopback` from
    /// [`NetPolicy::from_config`]). Tokens still follow the configuration ([`token_for`]).
    pub fn with_policy(mut self, policy: &NetPolicy) -> Result<Deliverer, TakedownError> {
        self.http = http_client(policy)?;
        self.allow_loopback = policy.allow_loopback;
        Ok(self)
    }

    /// Sends one stored notice (claim → send with retries → record). See the module docs.
    /// In dry-run mode it only renders it ([`SendOutcome::DryRun`]): no claim, no transport.
    pub async fn send(&self, rec: &NoticeRecord, now: i64) -> Result<SendOutcome, TakedownError> {
        let notice: Notice = serde_json::from_str(&rec.notice_json)?;
        notice.validate()?;
        if self.cfg.mode == Mode::DryRun {
            let (to, rendered) = preview(&notice)?;
            return Ok(SendOutcome::DryRun { to, rendered });
        }
        let window_start =
            now.saturating_sub(i64::try_from(self.cfg.rate_limit.window_s).unwrap_or(i64::MAX));
        let claim = self
            .store
            .claim_outbox(
                &rec.notice_id,
                &rec.notice_id,
                &rec.recipient,
                &self.worker,
                now,
                i64::from(self.cfg.rate_limit.per_recipient),
                window_start,
            )
            .await?;
        match claim {
            OutboxClaim::Claimed => {}
            OutboxClaim::AlreadyClaimed => return Ok(SendOutcome::AlreadyClaimed),
            OutboxClaim::RateLimited => return Ok(SendOutcome::RateLimited),
            // Any other answer means this caller does not own the send: never send twice.
            _ => return Ok(SendOutcome::AlreadyClaimed),
        }
        let mut last = String::new();
        let mut permanent = false;
        for attempt in 1..=self.cfg.retry.attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(&self.cfg.retry, attempt)).await;
            }
            match self.try_once(&notice).await {
                Ok((message_id, response)) => {
                    let next = now.saturating_add(
                        i64::try_from(self.cfg.status.recheck_interval_s).unwrap_or(i64::MAX),
                    );
                    self.store
                        .record_sent(
                            &rec.notice_id,
                            &rec.notice_id,
                            &message_id,
                            &response,
                            now,
                            next,
                        )
                        .await?;
                    return Ok(SendOutcome::Sent {
                        message_id,
                        response,
                        attempts: attempt,
                    });
                }
                Err(Attempt::Permanent(e)) => {
                    last = e;
                    permanent = true;
                    break;
                }
                Err(Attempt::Transient(e)) => last = e,
            }
        }
        self.store
            .release_claim(&rec.notice_id, &rec.notice_id, &last, permanent)
            .await?;
        Ok(SendOutcome::Failed {
            error: last,
            retryable: !permanent,
        })
    }

    async fn try_once(&self, notice: &Notice) -> Result<(String, String), Attempt> {
        match &notice.recipient.channel {
            Channel::Email { .. } => {
                let (Some(smtp), Some(from)) = (&self.smtp, &self.from) else {
                    return Err(Attempt::Permanent(
                        "no [smtp] section in the takedown configuration".into(),
                    ));
                };
                let msg = email_message(notice, from.clone())
                    .map_err(|e| Attempt::Permanent(e.to_string()))?;
                match smtp.send(msg).await {
                    Ok(resp) => Ok((
                        notice.message_id(),
                        format!(
                            "{} {}",
                            resp.code(),
                            resp.message().collect::<Vec<_>>().join(" ")
                        ),
                    )),
                    Err(e) if e.is_permanent() => Err(Attempt::Permanent(e.to_string())),
                    Err(e) => Err(Attempt::Transient(e.to_string())),
                }
            }
            Channel::Http { endpoint } => {
                let token = token_for(&self.cfg, endpoint).map_err(Attempt::Permanent)?;
                let refused = |reason: String| {
                    Attempt::Permanent(
                        TakedownError::Refused {
                            url: endpoint.clone(),
                            reason,
                        }
                        .to_string(),
                    )
                };
                let url = url::Url::parse(endpoint)
                    .map_err(|e| Attempt::Permanent(format!("endpoint {endpoint:?}: {e}")))?;
                net::check_url(&url, self.allow_loopback).map_err(refused)?;
                let mut req = self
                    .http
                    .post(url)
                    .header("Idempotency-Key", &notice.notice_id)
                    .json(&render::cloudflare_json(notice));
                if let Some(tok) = token {
                    req = req.bearer_auth(tok);
                }
                match req.send().await {
                    Ok(mut r) => {
                        let status = r.status();
                        let body = read_capped(&mut r, HTTP_MAX_BODY).await;
                        drop(r);
                        let summary = format!(
                            "{} {}",
                            status.as_u16(),
                            String::from_utf8_lossy(&body)
                                .chars()
                                .take(SUMMARY_CHARS)
                                .collect::<String>()
                        );
                        if status.is_success() {
                            Ok((notice.notice_id.clone(), summary))
                        } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                            Err(Attempt::Transient(summary))
                        } else {
                            Err(Attempt::Permanent(summary))
                        }
                    }
                    Err(e) => match net::policy_refusal(&e) {
                        // The guarded resolver refused every address of the host name.
                        Some(why) => Err(refused(format!(
                            "{} resolves only to refused addresses: {}",
                            why.host,
                            why.refused.join(", ")
                        ))),
                        None => Err(Attempt::Transient(net::error_chain(&e))),
                    },
                }
            }
        }
    }
}

/// The HTTP delivery client: every connection through the [`net::GuardedResolver`] of
/// `policy`, no redirects followed.
fn http_client(policy: &NetPolicy) -> Result<reqwest::Client, TakedownError> {
    policy.client(HTTP_TIMEOUT, reqwest::redirect::Policy::none())
}

enum Attempt {
    Transient(String),
    Permanent(String),
}
