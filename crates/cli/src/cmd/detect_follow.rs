//! `leaktrace detect --follow`: a suspect decided while it is still growing.
//!
//! The source is told by its name: an `http(s)://` URL is a live HLS stream, captured by the
//! crawler's fetcher (its address guard, byte and time limits and capture folder, from
//! `--crawler-config` or the crawler's defaults) with each segment handed to the detection as
//! it arrives; a local `.m3u8` is a playlist still being updated; anything else is a file
//! still being written. The detection itself is [`leaktrace_detect::follow::follow`].

use super::detect::{DetectArgs, code_of, fail};
use crate::config::Loaded;
use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use leaktrace_core::{TitleId, TitleKeySource};
use leaktrace_crawler::capture::{SegmentTap, capture_hls_tapped};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::fetch::Fetcher;
use leaktrace_crawler::net::Lookup;
use leaktrace_detect::follow::{FollowOptions, Source, Update, follow};
use leaktrace_detect::investigate::Options;
use leaktrace_detect::report::{Report, format_probability};
use leaktrace_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Runs `leaktrace detect --follow`.
pub fn run(
    loaded: &Loaded,
    keys: Box<dyn TitleKeySource>,
    store_url: &str,
    title: &TitleId,
    opts: &Options,
    a: &DetectArgs,
) -> Result<Code> {
    if a.plot.is_some() {
        return Err(UsageError("--plot is not available with --follow".into()).into());
    }
    if !(1.0..=3600.0).contains(&a.idle) {
        return Err(UsageError(format!(
            "--idle {} out of range (expected 1 to 3600 seconds)",
            a.idle
        ))
        .into());
    }
    let follow_opts = FollowOptions {
        investigate: opts.clone(),
        every_s: a.every,
        until_end: a.until_end,
        ..FollowOptions::default()
    };
    let idle = Duration::from_secs_f64(a.idle);
    let name = a.suspect.to_string_lossy().into_owned();
    let is_url = name.starts_with("http://") || name.starts_with("https://");
    let crawler_cfg = match (&a.crawler_config, is_url) {
        (Some(p), true) => Some(super::crawl::load_crawler(loaded, p)?),
        (None, true) => {
            let mut cfg = Config::from_toml("").map_err(|e| UsageError(e.to_string()))?;
            cfg.fetch.capture_dir = loaded.dir.join(&cfg.fetch.capture_dir);
            Some(cfg)
        }
        (Some(_), false) => {
            return Err(UsageError(
                "--crawler-config applies to a URL only (the suspect is a local file)".into(),
            )
            .into());
        }
        (None, false) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let json = a.json;
    let mut print = move |u: &Update| print_update(u, json);
    let result = rt.block_on(async {
        let store = Store::open(store_url).await.context("opening the store")?;
        let (source, capture) = match crawler_cfg {
            Some(cfg) => {
                let url = url::Url::parse(&name)
                    .map_err(|e| UsageError(format!("{name}: not a URL ({e})")))?;
                let fetcher = Fetcher::new(Arc::new(cfg), Lookup::System).map_err(|e| {
                    UsageError(format!(
                        "crawler configuration: {:#}",
                        anyhow::Error::new(e)
                    ))
                })?;
                let (tx, rx) = std::sync::mpsc::channel();
                let stop = Arc::new(AtomicBool::new(false));
                let tap = SegmentTap {
                    segments: tx,
                    stop: stop.clone(),
                };
                let task =
                    tokio::spawn(
                        async move { capture_hls_tapped(&fetcher, &url, Some(tap)).await },
                    );
                (Source::Segments(rx), Some((task, stop)))
            }
            None if is_playlist(&a.suspect) => (
                Source::Playlist {
                    path: a.suspect.clone(),
                    idle,
                },
                None,
            ),
            None => (
                Source::Growing {
                    path: a.suspect.clone(),
                    idle,
                },
                None,
            ),
        };
        let r = follow(
            &store,
            keys.as_ref(),
            source,
            title,
            a.reference.as_deref(),
            &follow_opts,
            &mut print,
        )
        .await;
        // The capture of a URL ends with the detection: kept as evidence.
        let captured = match capture {
            Some((task, stop)) => {
                stop.store(true, Ordering::Release);
                match task.await {
                    Ok(Ok(c)) => Some(Ok(c)),
                    Ok(Err(e)) => Some(Err(e.to_string())),
                    Err(e) => Some(Err(e.to_string())),
                }
            }
            None => None,
        };
        store.close().await;
        anyhow::Ok((r, captured))
    });
    let (r, captured) = result?;
    let mut report = match r {
        Ok(r) => r,
        Err(e) => {
            if let Some(Err(c)) = &captured {
                eprintln!("capture: {c}");
            }
            return Ok(fail(&leaktrace_core::error_chain(&e), code_of(&e)));
        }
    };
    if let Some(Ok(c)) = &captured {
        // The decisions were taken on the segments of this capture, kept as one file.
        report.suspect = c.path.display().to_string();
        report.suspect_sha256 = Some(c.sha256.clone());
    }
    match &captured {
        Some(Ok(c)) if !json => println!(
            "{:<13}{} ({} segments, sha256 {})",
            "capture",
            c.path.display(),
            c.segments,
            c.sha256
        ),
        Some(Err(c)) => eprintln!("capture: {c}"),
        _ => {}
    }
    if json {
        let mut line = serde_json::json!({ "event": "report", "report": &report });
        if let (Some(Ok(c)), Some(o)) = (&captured, line.as_object_mut()) {
            o.insert(
                "capture".into(),
                serde_json::json!({
                    "path": c.path.display().to_string(),
                    "sha256": c.sha256,
                    "segments": c.segments,
                }),
            );
        }
        println!("{line}");
    } else {
        print!("{}", report.summary());
    }
    Ok(if report.sessions == 0 {
        Code::NoSessions
    } else {
        Code::Success
    })
}

/// A local HLS playlist, by its extension.
fn is_playlist(p: &std::path::Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("m3u8") || e.eq_ignore_ascii_case("m3u"))
}

/// One round: a line of text, or a JSON object on one line.
fn print_update(u: &Update, json: bool) {
    let r: &Report = &u.report;
    let best = r.top.first();
    if json {
        let line = serde_json::json!({
            "event": "update",
            "captured_s": u.captured_s,
            "elapsed_s": u.elapsed_s,
            "ended": u.ended,
            "verdict": r.verdict,
            "positions_observed": r.calibration.positions_observed,
            "positions_used": r.calibration.positions_used,
            "best": best.map(|b| serde_json::json!({
                "session_id": b.session_id,
                "probability": b.probability,
            })),
            "accused": r.accused.iter().map(|s| &s.session_id).collect::<Vec<_>>(),
        });
        println!("{line}");
    } else {
        let verdict = serde_json::to_value(r.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{:>7.1} s captured  {:>7.1} s elapsed  {:>4} positions  {:<14} best {} p = {}",
            u.captured_s,
            u.elapsed_s,
            r.calibration.positions_used,
            verdict,
            best.map_or("-", |b| b.session_id.as_str()),
            format_probability(best.map_or(1.0, |b| b.probability)),
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
