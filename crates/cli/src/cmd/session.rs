//! `leaktrace session new`, `session vectors`, and (in [`super::revocation`]) `session
//! revoke`, `restore`, `revoked` and `history`.
//!
//! Token settings come from the optional `[token]` section of `leaktrace.toml`:
//!
//! ```toml
//! [token]
//! wmopid = 1                        # operator id (default 1); the edge requires the same
//! wmvnd = 0                         # DASH-IF vendor id (default 0: none registered)
//! issuer = "leaktrace"              # `iss` claim (default: none)
//! es256_key_file = "token-es256.key" # sign ES256 with this P-256 scalar (64 hex, mode 0600);
//!                                   # default: HMAC-256/256 with the master key's token-MAC key
//! es256_public_keys = ["04ab..."]   # more ES256 public keys (SEC1 hex) the edge accepts
//! ```

use crate::config::Loaded;
use crate::exit::{Code, ConfigError, UsageError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use leaktrace_core::TitleId;
use leaktrace_core::TokenMode;
use leaktrace_core::session::TokenPolicy;
use leaktrace_core::token::{Signer, Verifier};
use leaktrace_session::{Issuer, issue_session};
use leaktrace_store::Store;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `leaktrace session ...`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Record a new viewing session and print its token.
    New(SessionNewArgs),
    /// Write the selector test vectors (JSON) a CDN reimplementation is checked against.
    Vectors(SessionVectorsArgs),
    /// Revoke a session (or every session of an account): the edge refuses its next request.
    Revoke(super::revocation::RevokeArgs),
    /// Restore a revoked session (or every revoked session of an account).
    Restore(super::revocation::RevokeArgs),
    /// List the sessions revoked now.
    Revoked(super::revocation::RevokedArgs),
    /// Show a session's revocation audit trail (who, when, why).
    History(super::revocation::HistoryArgs),
    /// Write a title's live sessions for a CDN function's key-value store (`--kv cloudflare`
    /// for the Worker's SESSIONS namespace, `--kv cloudfront` for the CloudFront Function's
    /// KeyValueStore).
    Export(super::revocation::ExportArgs),
}

/// `leaktrace session new`.
#[derive(Debug, Args)]
pub struct SessionNewArgs {
    /// Title id (must have been embedded).
    #[arg(long)]
    pub title: String,
    /// Account reference behind the session (what enforcement reports; 1-256 bytes).
    #[arg(long)]
    pub account: String,
    /// Lifetime, e.g. 6h, 90m, 3600s, 2d (1 minute to 30 days).
    #[arg(long, default_value = "6h")]
    pub ttl: String,
    /// Issue a direct-mode token (the codeword in `wmpattern`) instead of indirect mode.
    #[arg(long)]
    pub direct: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace session vectors`.
#[derive(Debug, Args)]
pub struct SessionVectorsArgs {
    /// Output file (e.g. crates/edge/tests/vectors/selector-v2.json); `-` for stdout.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `session` subcommand.
pub fn run(config: Option<&Path>, cmd: &SessionCommand) -> Result<Code> {
    match cmd {
        SessionCommand::New(a) => new(config, a),
        SessionCommand::Vectors(a) => vectors(a),
        SessionCommand::Revoke(a) => super::revocation::change(config, a, false),
        SessionCommand::Restore(a) => super::revocation::change(config, a, true),
        SessionCommand::Revoked(a) => super::revocation::list(config, a),
        SessionCommand::History(a) => super::revocation::history(config, a),
        SessionCommand::Export(a) => super::revocation::export(config, a),
    }
}

/// Parses `6h`, `90m`, `3600s`, `2d` or a number of seconds.
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let secs = num
        .parse::<u64>()
        .ok()
        .filter(|_| mult > 0)
        .and_then(|n| n.checked_mul(mult));
    secs.map(Duration::from_secs).ok_or_else(|| {
        UsageError(format!(
            "invalid ttl {s:?} (expected e.g. 6h, 90m, 3600s or 2d, from 1 minute to 30 days)"
        ))
        .into()
    })
}

/// The token policy from `[token]`.
pub fn policy(loaded: &Loaded) -> TokenPolicy {
    let t = &loaded.config.token;
    let d = TokenPolicy::default();
    TokenPolicy {
        issuer: t.issuer.clone(),
        wmvnd: t.wmvnd.unwrap_or(d.wmvnd),
        wmopid: t.wmopid.unwrap_or(d.wmopid),
    }
}

/// The ES256 signing key from `[token] es256_key_file`, if configured.
pub fn es256_signer(loaded: &Loaded) -> Result<Option<Signer>> {
    let Some(file) = &loaded.config.token.es256_key_file else {
        return Ok(None);
    };
    let text = loaded.secret_file(file)?;
    let bytes = hex32(text.trim()).ok_or_else(|| {
        ConfigError(format!(
            "ES256 key file {}: expected 64 hexadecimal characters (a P-256 secret scalar)",
            file.display()
        ))
    })?;
    let signer = Signer::es256_from_bytes(&bytes)
        .map_err(|e| ConfigError(format!("ES256 key file {}: {e}", file.display())))?;
    Ok(Some(signer))
}

/// The ES256 verifiers the edge accepts besides HMAC: the configured key's and the listed ones.
pub fn es256_verifiers(loaded: &Loaded) -> Result<Vec<Verifier>> {
    let mut out = Vec::new();
    if let Some(signer) = es256_signer(loaded)? {
        out.push(signer.verifier());
    }
    for (i, hex) in loaded
        .config
        .token
        .es256_public_keys
        .iter()
        .flatten()
        .enumerate()
    {
        let bytes = hex_bytes(hex.trim()).ok_or_else(|| {
            ConfigError(format!("[token] es256_public_keys[{i}]: not hexadecimal"))
        })?;
        out.push(
            Verifier::es256_from_sec1(&bytes)
                .map_err(|e| ConfigError(format!("[token] es256_public_keys[{i}]: {e}")))?,
        );
    }
    Ok(out)
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex_bytes(s)?.try_into().ok()
}

/// UTC RFC 3339 time of unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn new(config: Option<&Path>, a: &SessionNewArgs) -> Result<Code> {
    let title = TitleId::new(a.title.clone()).map_err(|e| UsageError(e.to_string()))?;
    let ttl = parse_ttl(&a.ttl)?;
    let loaded = Loaded::find(config)?;
    let mut issuer = Issuer::with_keyring(loaded.keyring()?).with_policy(policy(&loaded));
    if let Some(signer) = es256_signer(&loaded)? {
        issuer = issuer.with_signer(signer);
    }
    let mode = if a.direct {
        TokenMode::Direct
    } else {
        TokenMode::Indirect
    };
    let url = super::store::resolved_url(&loaded)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let issued = rt.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let issued = issue_session(&store, &issuer, &title, &a.account, ttl, mode).await;
        store.close().await;
        anyhow::Ok(issued?)
    })?;
    let s = &issued.session;
    let path = format!("/wmt/{}/{}/master.m3u8", issued.token, s.title_id);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "session_id": s.session_id,
                "title": s.title_id,
                "account": s.account_ref,
                "issued_at": s.issued_at,
                "expires_at": s.expires_at,
                "expires": rfc3339(s.expires_at),
                "key_version": s.key_version,
                "mode": if a.direct { "direct" } else { "indirect" },
                "alg": format!("{:?}", issuer.signer().algorithm()),
                "token": issued.token,
                "path": path,
            })
        );
    } else {
        println!("session  {}", s.session_id);
        println!("title    {}", s.title_id);
        println!("account  {}", s.account_ref);
        println!("expires  {} ({})", rfc3339(s.expires_at), s.expires_at);
        println!("token    {}", issued.token);
        println!("path     {path}");
    }
    Ok(Code::Success)
}

fn vectors(a: &SessionVectorsArgs) -> Result<Code> {
    let v = leaktrace_edge::vectors::generate()?;
    let json = leaktrace_edge::vectors::to_json(&v)?;
    let report = leaktrace_edge::vectors::check(&json)?;
    if a.out.as_os_str() == "-" {
        print!("{json}");
    } else {
        std::fs::write(&a.out, &json).with_context(|| format!("writing {}", a.out.display()))?;
        eprintln!(
            "wrote {} ({} bits, {} tokens, {} selections, all rechecked)",
            a.out.display(),
            report.bits,
            report.tokens,
            report.selections
        );
    }
    Ok(Code::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("6h").unwrap(), Duration::from_secs(21_600));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "6x", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }
}
