//! `leaktrace session revoke|restore|revoked|history`: cutting a viewer off, and the audit
//! trail that records who did it, when and why.
//!
//! The edge follows the store's revocations (every second by default) and refuses a revoked
//! session's next request with 403; see `crates/edge/src/revocation.rs`.

use crate::cmd::session::rfc3339;
use crate::config::Loaded;
use crate::exit::{Code, ConflictError, NotFoundError, UsageError};
use anyhow::{Context, Result};
use clap::Args;
use leaktrace_store::{RevocationEvent, RevocationTarget, Store, StoreError};
use std::path::Path;

/// `leaktrace session revoke` and `leaktrace session restore`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["session_id", "account"])))]
pub struct RevokeArgs {
    /// The session id (as in `session new` and in detect's report).
    pub session_id: Option<String>,
    /// Every session of this account instead of one session.
    #[arg(long)]
    pub account: Option<String>,
    /// Why (recorded in the audit trail).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who (recorded in the audit trail; default: the login name, else `cli`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace session revoked`.
#[derive(Debug, Args)]
pub struct RevokedArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the list for a CDN's key-value store instead: `cloudflare` (a JSON array of
    /// `{"key", "value"}` for `wrangler kv bulk put` into the Worker's `REVOKED` namespace; the
    /// value is the revocation time) or `cloudfront` (a CloudFront KeyValueStore import file,
    /// `{"data": [{"key", "value"}]}`, value `1`: the store holds at most 5 MB).
    #[arg(long, value_name = "CDN", conflicts_with = "json")]
    pub kv: Option<String>,
}

/// The revoked sessions in the key-value form a CDN function reads (see [`RevokedArgs::kv`]).
fn kv_export(cdn: &str, all: &[leaktrace_store::RevokedSession]) -> Result<serde_json::Value> {
    let entries =
        |value: &dyn Fn(&leaktrace_store::RevokedSession) -> String| -> Vec<serde_json::Value> {
            all.iter()
                .map(|r| serde_json::json!({"key": r.session_id, "value": value(r)}))
                .collect()
        };
    match cdn {
        "cloudflare" => Ok(serde_json::Value::Array(entries(&|r| rfc3339(r.at)))),
        "cloudfront" => Ok(serde_json::json!({ "data": entries(&|_| "1".to_owned()) })),
        other => Err(UsageError(format!(
            "unknown CDN {other:?} for --kv (expected cloudflare or cloudfront)"
        ))
        .into()),
    }
}

/// `leaktrace session export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The title (or live channel) whose sessions to write.
    #[arg(long)]
    pub title: String,
    /// The CDN: `cloudflare` (a JSON array for `wrangler kv bulk put` into the Worker's
    /// `SESSIONS` namespace: key = session id, value = `{"title", "key_version",
    /// "title_key_version"}`, expiring with the session's token plus a minute) or `cloudfront`
    /// (a KeyValueStore import file `{"data": [{"key", "value"}]}`: key `s:<session id>`, value
    /// `<key version> <title key version> <title>`; the store keeps no expiry, so export again
    /// and delete what is gone as sessions expire).
    #[arg(long, value_name = "CDN")]
    pub kv: String,
}

/// `session export`: a title's sessions whose tokens have not expired, for a CDN function.
pub fn export(config: Option<&Path>, a: &ExportArgs) -> Result<Code> {
    if a.kv != "cloudflare" && a.kv != "cloudfront" {
        return Err(UsageError(format!(
            "unknown CDN {:?} for --kv (expected cloudflare or cloudfront)",
            a.kv
        ))
        .into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (title_key_version, sessions) = with_store(config, async |store| {
        let title = store
            .get_title(&a.title)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "title",
                id: a.title.clone(),
            })?;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .sessions_page(&a.title, after.as_deref(), 10_000)
                .await?;
            let full = page.len() == 10_000;
            after = page.last().map(|s| s.session_id.clone());
            all.extend(page.into_iter().filter(|s| s.expires_at + 60 > now));
            if !full {
                break;
            }
        }
        Ok((title.key_version, all))
    })?;
    if a.kv == "cloudfront" {
        let data: Vec<serde_json::Value> = sessions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "key": format!("s:{}", s.session_id),
                    "value": format!("{} {title_key_version} {}", s.key_version, s.title_id),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "data": data }));
        eprintln!(
            "{} session(s) of {} for cloudfront",
            sessions.len(),
            a.title
        );
        return Ok(Code::Success);
    }
    let entries: Vec<serde_json::Value> = sessions
        .iter()
        .map(|s| {
            let value = serde_json::json!({
                "title": s.title_id,
                "key_version": s.key_version,
                "title_key_version": title_key_version,
            });
            // KV refuses an expiration less than 60 s ahead.
            let expiration = (s.expires_at + 60).max(now + 61);
            serde_json::json!({"key": s.session_id, "value": value.to_string(), "expiration": expiration})
        })
        .collect();
    println!("{}", serde_json::Value::Array(entries));
    eprintln!("{} session(s) of {} for {}", sessions.len(), a.title, a.kv);
    Ok(Code::Success)
}

/// `leaktrace session history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The session id.
    pub session_id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `f` on the configured store.
fn with_store<T>(
    config: Option<&Path>,
    f: impl AsyncFnOnce(&Store) -> Result<T, StoreError>,
) -> Result<T> {
    let loaded = Loaded::find(config)?;
    let url = super::store::resolved_url(&loaded)?;
    runtime()?.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let r = f(&store).await;
        store.close().await;
        r.map_err(|e| match e {
            StoreError::NotFound { .. } => NotFoundError(e.to_string()).into(),
            StoreError::Unchanged { .. } => ConflictError(e.to_string()).into(),
            StoreError::InvalidInput { .. } => UsageError(e.to_string()).into(),
            other => anyhow::Error::new(other),
        })
    })
}

fn actor(a: &RevokeArgs) -> String {
    a.actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cli".to_owned())
}

/// The event's JSON with its time also as RFC 3339.
fn event_json(e: &RevocationEvent) -> serde_json::Value {
    let mut v = e.to_json();
    if let Some(o) = v.as_object_mut() {
        o.insert("time".into(), rfc3339(e.at).into());
    }
    v
}

fn print_events(events: &[RevocationEvent], json: bool) {
    if json {
        let v: Vec<_> = events.iter().map(event_json).collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for e in events {
            println!(
                "{:<8} {}  {}  by {}{}",
                e.action,
                e.session_id,
                rfc3339(e.at),
                e.actor,
                if e.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", e.reason)
                }
            );
        }
    }
}

/// `session revoke` (`restore = false`) and `session restore`.
pub fn change(config: Option<&Path>, a: &RevokeArgs, restore: bool) -> Result<Code> {
    let target = match (&a.session_id, &a.account) {
        (Some(s), None) => RevocationTarget::Session(s),
        (None, Some(acct)) => RevocationTarget::Account(acct),
        _ => {
            return Err(UsageError("give a session id or --account, not both".into()).into());
        }
    };
    let actor = actor(a);
    let events = with_store(config, async |store| {
        if restore {
            store.restore(target, &actor, &a.reason).await
        } else {
            store.revoke(target, &actor, &a.reason).await
        }
    })?;
    print_events(&events, a.json);
    Ok(Code::Success)
}

/// `session revoked`: the sessions revoked now.
pub fn list(config: Option<&Path>, a: &RevokedArgs) -> Result<Code> {
    let all = with_store(config, async |store| {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.revoked_sessions(after.as_deref(), 10_000).await?;
            let full = page.len() == 10_000;
            after = page.last().map(|r| r.session_id.clone());
            all.extend(page);
            if !full {
                break;
            }
        }
        Ok(all)
    })?;
    if let Some(cdn) = &a.kv {
        let v = kv_export(cdn, &all)?;
        println!("{}", serde_json::to_string(&v)?);
        eprintln!("{} revoked session(s) for {cdn}", all.len());
        return Ok(Code::Success);
    }
    if a.json {
        let v: Vec<_> = all
            .iter()
            .map(|r| serde_json::json!({"session_id": r.session_id, "seq": r.seq, "at": r.at, "time": rfc3339(r.at)}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for r in &all {
            println!("{}  revoked {}", r.session_id, rfc3339(r.at));
        }
        eprintln!("{} revoked session(s)", all.len());
    }
    Ok(Code::Success)
}

/// `session history`: one session's audit trail.
pub fn history(config: Option<&Path>, a: &HistoryArgs) -> Result<Code> {
    let events = with_store(config, async |store| {
        if store.get_session(&a.session_id).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "session",
                id: a.session_id.clone(),
            });
        }
        store.revocation_history(&a.session_id).await
    })?;
    print_events(&events, a.json);
    Ok(Code::Success)
}
