//! [`TakedownConfig`]: the `takedown.toml` file (see docs/takedown.md for an example).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::TakedownError;
use crate::notice::{Complainant, Level, Work};

/// How notices leave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Mode {
    /// Every notice waits for `leaktrace takedown approve` (the default).
    #[default]
    Approval,
    /// Notices are sent without review.
    Auto,
    /// Notices are made, rendered and stored, never sent.
    DryRun,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain SMTP (loopback relays and tests only).
    None,
    /// STARTTLS required (the default).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: String,
    /// Port (default 587).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// `From:` address.
    pub from: String,
    /// Environment variable holding the user name (optional).
    #[serde(default)]
    pub username_env: Option<String>,
    /// Environment variable holding the password (optional).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Per-command timeout in seconds (1 to 300, default 30).
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_timeout() -> u64 {
    30
}

/// `[retry]`: attempts per send run and exponential backoff between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per run (1 to 10, default 4).
    pub attempts: u32,
    /// First backoff in milliseconds (doubles each attempt; 1 to 60000, default 500).
    pub base_ms: u64,
    /// Backoff cap in milliseconds (default 30000).
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 4,
            base_ms: 500,
            max_ms: 30_000,
        }
    }
}

/// `[rate_limit]`: at most `per_recipient` sends to one recipient per `window_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sends per window (>= 1, default 20).
    pub per_recipient: u32,
    /// Window in seconds (>= 1, default 3600).
    pub window_s: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_recipient: 20,
            window_s: 3600,
        }
    }
}

/// `[status]`: re-checks and escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Seconds between re-checks of a noticed URL (>= 1, default 3600).
    pub recheck_interval_s: u64,
    /// Grace period per level before escalating to the next one, in seconds
    /// (defaults: site 86400, host 172800, cdn 172800).
    pub grace_s: BTreeMap<Level, u64>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            recheck_interval_s: 3600,
            grace_s: BTreeMap::from([
                (Level::Site, 86_400),
                (Level::Host, 172_800),
                (Level::Cdn, 172_800),
            ]),
        }
    }
}

/// `[[recipient]]`: a fixed recipient for a host and level (overrides RDAP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientOverride {
    /// Host name the override applies to (`*` for every host).
    pub host: String,
    /// Level on the ladder.
    pub level: Level,
    /// Organisation name.
    pub name: String,
    /// Contact e-mail.
    pub email: String,
    /// HTTP endpoint (Cloudflare-format JSON is POSTed there) instead of e-mail.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Environment variable holding this endpoint's bearer token (sent only to `endpoint`,
    /// only over https, or to loopback with `allow_loopback`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `[rdap]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdapConfig {
    /// Directory with IANA bootstrap files `ipv4.json`, `ipv6.json`, `dns.json`
    /// (default: the snapshot compiled into the binary).
    #[serde(default)]
    pub bootstrap_dir: Option<PathBuf>,
    /// Seconds an answer stays cached (default 86400).
    #[serde(default = "default_rdap_ttl")]
    pub cache_ttl_s: u64,
}

fn default_rdap_ttl() -> u64 {
    86_400
}

impl Default for RdapConfig {
    fn default() -> Self {
        RdapConfig {
            bootstrap_dir: None,
            cache_ttl_s: default_rdap_ttl(),
        }
    }
}

/// `takedown.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakedownConfig {
    /// Approval (default), auto or dry-run.
    #[serde(default)]
    pub mode: Mode,
    /// Positive-match gate: largest false-accusation probability accepted (0 < p <= 1,
    /// default 1e-6).
    #[serde(default = "default_fp")]
    pub fp_max: f64,
    /// Where evidence bundles are written (one directory per finding).
    #[serde(default = "default_evidence_dir")]
    pub evidence_dir: PathBuf,
    /// The sender.
    pub complainant: Complainant,
    /// Works by title id.
    #[serde(default)]
    pub works: BTreeMap<String, Work>,
    /// SMTP relay (needed for e-mail recipients).
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Environment variable holding a bearer token for the HTTP endpoints on
    /// `http_token_host` (required with it). Sent only over https (or to loopback with
    /// `allow_loopback`); endpoints on other hosts never get it (give them `token_env`).
    #[serde(default)]
    pub http_token_env: Option<String>,
    /// The one endpoint host `http_token_env`'s token is for (e.g. `api.cloudflare.com`).
    #[serde(default)]
    pub http_token_host: Option<String>,
    /// Lets re-checks, RDAP look-ups and HTTP notice deliveries (with or without a token)
    /// reach loopback addresses (tests, local use; default false).
    #[serde(default)]
    pub allow_loopback: bool,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Per-recipient rate limit.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Seconds after which an unrecorded claim is shown as `in_doubt` (default 600).
    #[serde(default = "default_lease")]
    pub claim_lease_s: u64,
    /// Re-checks and escalation.
    #[serde(default)]
    pub status: StatusConfig,
    /// RDAP.
    #[serde(default)]
    pub rdap: RdapConfig,
    /// Fixed recipients per host and level.
    #[serde(default, rename = "recipient")]
    pub recipients: Vec<RecipientOverride>,
}

fn default_fp() -> f64 {
    1e-6
}
fn default_evidence_dir() -> PathBuf {
    PathBuf::from("evidence")
}
fn default_lease() -> u64 {
    600
}

impl TakedownConfig {
    /// Checks ranges; the error says the valid one.
    pub fn validate(&self) -> Result<(), TakedownError> {
        let bad = |m: String| Err(TakedownError::InvalidConfig(m));
        if !(self.fp_max > 0.0 && self.fp_max <= 1.0) {
            return bad(format!("fp_max = {} out of range (0, 1]", self.fp_max));
        }
        if !(1..=10).contains(&self.retry.attempts) {
            return bad(format!(
                "retry.attempts = {} out of range 1..=10",
                self.retry.attempts
            ));
        }
        if !(1..=60_000).contains(&self.retry.base_ms) || self.retry.max_ms < self.retry.base_ms {
            return bad(format!(
                "retry.base_ms = {} must be in 1..=60000 and <= retry.max_ms = {}",
                self.retry.base_ms, self.retry.max_ms
            ));
        }
        if self.rate_limit.per_recipient == 0 || self.rate_limit.window_s == 0 {
            return bad("rate_limit.per_recipient and rate_limit.window_s must be >= 1".into());
        }
        if self.status.recheck_interval_s == 0 {
            return bad("status.recheck_interval_s must be >= 1".into());
        }
        if let Some(s) = &self.smtp {
            if !(1..=300).contains(&s.timeout_s) {
                return bad(format!(
                    "smtp.timeout_s = {} out of range 1..=300",
                    s.timeout_s
                ));
            }
            if s.security == SmtpSecurity::None && !is_loopback_name(&s.host) {
                return bad(format!(
                    "smtp.security = \"none\" (plaintext) is allowed only to a loopback relay (localhost, 127.0.0.1, ::1); smtp.host = {:?} needs security = \"starttls\" or \"tls\"",
                    s.host
                ));
            }
        }
        match (&self.http_token_env, &self.http_token_host) {
            (Some(_), None) => {
                return bad(
                    "http_token_env needs http_token_host: the one endpoint host the token is for (other endpoints take a per-recipient token_env)".into(),
                );
            }
            (None, Some(_)) => {
                return bad("http_token_host is set without http_token_env".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// Grace period of a level (registrar: none, it is the top).
    pub fn grace(&self, level: Level) -> Option<u64> {
        self.status.grace_s.get(&level).copied()
    }
}

/// `localhost` (or a `.localhost` name) or a loopback IP literal (`[::1]` brackets allowed).
fn is_loopback_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}
