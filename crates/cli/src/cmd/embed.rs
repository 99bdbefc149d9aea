//! `leaktrace embed`.

use crate::cli::EmbedArgs;
use crate::config::Loaded;
use crate::exit::Code;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leaktrace_embed::{ProgressEvent, embed_file};
use std::path::Path;

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(json: bool) -> ProgressBar {
    let pb = ProgressBar::new(0);
    if json {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:20} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// Feeds pipeline progress events into a bar.
pub fn on_progress(pb: &ProgressBar) -> impl FnMut(ProgressEvent) + '_ {
    move |ev| match ev {
        ProgressEvent::Started { total_frames } => {
            pb.set_length(total_frames);
            pb.set_message("marking + encoding");
        }
        ProgressEvent::Frames(n) => pb.set_position(n),
        ProgressEvent::Stage(s) => pb.set_message(s),
    }
}

pub fn run(config: Option<&Path>, a: &EmbedArgs) -> Result<Code> {
    let cfg = super::pipeline_config(&a.encode)?;
    let loaded = Loaded::find(config)?;
    let key = loaded.master_key()?;
    let pb = progress_bar(a.json);
    let summary = embed_file(&a.mezzanine, &a.out, &key, &cfg, &mut on_progress(&pb));
    pb.finish_and_clear();
    let summary = summary?;
    super::store::record_title(&loaded, &summary)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "embedded {} -> {} ({} frames, {} positions of {} ms, {:.1} s content) in {:.1} s ({:.1} fps, marking {:.1} s)",
            summary.title,
            summary.output.display(),
            summary.frames,
            summary.positions,
            summary.segment_ms,
            summary.duration_seconds,
            summary.elapsed_seconds,
            summary.frames as f64 / summary.elapsed_seconds.max(1e-9),
            summary.mark_seconds
        );
        for r in &summary.renditions {
            println!(
                "  {:>6} {}x{} {:<22} {} segments  A {:.2} MB  B {:.2} MB  peak {:.0} kbit/s",
                r.name,
                r.width,
                r.height,
                r.codec,
                r.segments,
                r.bytes_a as f64 / 1e6,
                r.bytes_b as f64 / 1e6,
                r.peak_bps as f64 / 1000.0
            );
        }
    }
    Ok(Code::Success)
}
