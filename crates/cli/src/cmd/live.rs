//! `leaktrace live`: a live channel, marked in real time.

use crate::cli::LiveArgs;
use crate::config::Loaded;
use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use leaktrace_embed::live::{LiveConfig, LiveEvent, run_live};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Parses `5s`, `500ms` or `1.5s`.
fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let secs = if let Some(v) = t.strip_suffix("ms") {
        v.trim().parse::<f64>().ok().map(|v| v / 1000.0)
    } else if let Some(v) = t.strip_suffix('s') {
        v.trim().parse::<f64>().ok()
    } else {
        None
    };
    match secs {
        Some(v) if v.is_finite() && (0.1..=3600.0).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(UsageError(format!(
            "duration {s:?} out of range (expected 0.1s to 3600s, e.g. 5s or 500ms)"
        ))
        .into()),
    }
}

fn config(a: &LiveArgs) -> Result<LiveConfig> {
    let e = &a.settings;
    let (channel, codec, mask) = super::encode_basics(&a.title, &e.codec, e.crf, e.strength)?;
    let mut cfg = LiveConfig::new(channel);
    cfg.segment = super::parse_segment(&e.segment)?;
    cfg.codec = codec;
    cfg.crf = e.crf;
    cfg.preset = e.preset.clone();
    cfg.ladder = e.ladder.clone();
    cfg.threads = e.threads;
    cfg.bit_depth = e.bit_depth;
    cfg.mask = mask;
    if !(1..=1000).contains(&a.window) {
        return Err(UsageError(format!(
            "window {} out of range (expected 1 to 1000 segments)",
            a.window
        ))
        .into());
    }
    if a.keep > 100_000 {
        return Err(UsageError(format!(
            "keep {} out of range (expected 0 to 100000 segments)",
            a.keep
        ))
        .into());
    }
    cfg.window = a.window;
    cfg.keep = a.keep;
    cfg.realtime = a.realtime;
    cfg.loop_input = a.loop_input;
    cfg.stall = parse_duration(&a.stall)?;
    cfg.max_positions = a.max_positions;
    cfg.audio = !a.no_audio;
    cfg.audio_bitrate = super::audio_bitrate(&a.audio_bitrate)?;
    if let Some(part) = &a.part {
        let d = parse_duration(part)?;
        let half = cfg.segment.as_secs_f64() / 2.0;
        if d.as_secs_f64() > half {
            return Err(UsageError(format!(
                "part {part:?} out of range (expected 0.1s to half the segment, {half}s)"
            ))
            .into());
        }
        cfg.part = Some(d);
    }
    if a.max_positions == Some(0) {
        return Err(UsageError("max-positions must be at least 1".into()).into());
    }
    Ok(cfg)
}

/// Sets `stop` on SIGINT or SIGTERM.
fn stop_on_signal(stop: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => tokio::select! {
                            _ = tokio::signal::ctrl_c() => {},
                            _ = term.recv() => {},
                        },
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            });
            stop.store(true, Ordering::Relaxed);
        })
        .context("starting the signal handler")?;
    Ok(())
}

fn event_json(e: &LiveEvent) -> serde_json::Value {
    match e {
        LiveEvent::SourceOpened {
            width,
            height,
            frame_rate,
        } => {
            serde_json::json!({"event": "source_opened", "width": width, "height": height, "frame_rate": frame_rate})
        }
        LiveEvent::SourceLost { reason } => {
            serde_json::json!({"event": "source_lost", "reason": reason})
        }
        LiveEvent::SourceResized { width, height } => {
            serde_json::json!({"event": "source_resized", "width": width, "height": height})
        }
        LiveEvent::Reanchored { jump_s } => {
            serde_json::json!({"event": "reanchored", "jump_s": jump_s})
        }
        LiveEvent::Resumed { position } => {
            serde_json::json!({"event": "resumed", "position": position})
        }
        LiveEvent::Abandoned { position } => {
            serde_json::json!({"event": "abandoned", "position": position})
        }
        LiveEvent::Audio { message } => {
            serde_json::json!({"event": "audio", "message": message})
        }
        LiveEvent::Published {
            position,
            latency_s,
            dropped,
            repeated,
        } => serde_json::json!({
            "event": "published", "position": position, "latency_s": latency_s,
            "dropped": dropped, "repeated": repeated,
        }),
        _ => serde_json::json!({"event": "other"}),
    }
}

fn event_text(e: &LiveEvent) -> String {
    match e {
        LiveEvent::SourceOpened {
            width,
            height,
            frame_rate,
        } => format!("source opened: {width}x{height} at {frame_rate:.3} fps"),
        LiveEvent::SourceLost { reason } => format!("source lost ({reason}); reopening"),
        LiveEvent::SourceResized { width, height } => {
            format!("source changed to {width}x{height}; scalers rebuilt")
        }
        LiveEvent::Reanchored { jump_s } => {
            format!("source timestamps jumped by {jump_s:.2} s; frame clock re-anchored")
        }
        LiveEvent::Resumed { position } => format!("channel resumed at position {position}"),
        LiveEvent::Audio { message } => message.clone(),
        LiveEvent::Abandoned { position } => format!(
            "position {position} was opened for low-latency parts and never completed: \
             abandoned, never used again"
        ),
        LiveEvent::Published {
            position,
            latency_s,
            dropped,
            repeated,
        } => format!(
            "published position {position} ({latency_s:.2} s after its first frame; {dropped} \
             frames dropped, {repeated} repeated so far)"
        ),
        other => format!("{other:?}"),
    }
}

pub fn run(config_path: Option<&Path>, a: &LiveArgs) -> Result<Code> {
    let cfg = config(a)?;
    let loaded = Loaded::find(config_path)?;
    let key = loaded.master_key()?;
    super::store::record_channel(
        &loaded,
        cfg.channel.as_str(),
        cfg.segment.as_millis(),
        key.version().get(),
        &a.out,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone())?;
    let json = a.json;
    let mut on_event = |e: LiveEvent| {
        if json {
            println!("{}", event_json(&e));
        } else {
            eprintln!("{}", event_text(&e));
        }
    };
    let summary = run_live(&a.source, &a.out, &key, &cfg, &stop, &mut on_event)?;
    if json {
        let mut v = serde_json::to_value(&summary)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), "summary".into());
        }
        println!("{v}");
    } else {
        println!(
            "channel {}: {} positions published from {} ({:.1} s of channel in {:.1} s; \
             latency median {:.2} s, worst {:.2} s{}; fell behind by {:.2} s at worst; {} \
             dropped, {} repeated, {} reconnects)",
            summary.channel,
            summary.positions,
            summary.first_position,
            summary.published_seconds,
            summary.elapsed_seconds,
            summary.latency_median_s,
            summary.latency_max_s,
            if summary.parts > 0 {
                format!(
                    "; {} parts, part latency median {:.2} s, worst {:.2} s",
                    summary.parts, summary.part_latency_median_s, summary.part_latency_max_s
                )
            } else {
                String::new()
            },
            summary.max_lag_s,
            summary.dropped,
            summary.repeated,
            summary.reconnects
        );
    }
    Ok(Code::Success)
}
