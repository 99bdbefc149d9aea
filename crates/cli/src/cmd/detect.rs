//! `leaktrace detect`: from a suspect copy to the accused session(s).
//!
//! A thin wrapper over [`leaktrace_detect::investigate::investigate`]: it opens the configured
//! store, runs the investigation (progress bar on stderr when it is a terminal), prints the
//! report as JSON (`--json`, schema `leaktrace.detect.v1`, documented in
//! `docs/detect-report.md` and `docs/schemas/leaktrace.detect.v1.json`) or as a human summary,
//! and optionally draws it as a PNG (`--plot report.png`; both in one run is fine).
//!
//! The suspect may be any file FFmpeg reads, or a captured HLS stream (a local `.m3u8` with
//! its segments; the highest-bandwidth video rendition of a multivariant playlist). Without
//! `--reference` the reference index recorded for the title at embed time is used; when there
//! is none (or with `--blind`) the blind fallback decides without a reference (the suspect is
//! taken as the whole picture from the title start, or from `--blind-start`; it needs more of
//! the copy, see `leaktrace_detect::blind`), and the report says `"mode": "blind"`.
//!
//! With `--follow` the suspect is still growing: a live HLS stream (an `http(s)://` playlist,
//! captured through the crawler's fetcher and its limits, `--crawler-config`), a local
//! playlist that is still being updated, or a file still being written (MPEG-TS, Matroska).
//! Every `--every` seconds of new capture the positions seen so far are decided again and the
//! sessions scored ([`leaktrace_detect::follow`]); each round prints one line (one JSON object
//! per line with `--json`, the last one `{"event":"report",...}` holding the full report), and
//! following stops at the first accusation (or, with `--until-end`, when the capture ends).
//!
//! Exit codes: 0 report produced (also for "no accusation", a verdict); 9 report produced but
//! there was nothing to score (the title has no registered session); 2 bad option or reference
//! of another title;
//! 3 bad input (not a video, truncated, unreadable reference); 7 no match (the suspect decodes but
//! does not match the title's reference: another title, or no overlap in time);
//! 4 the plot cannot be written; 5 configuration or key; 6 unknown title; 1 anything else
//! (e.g. the store failing).

use crate::config::Loaded;
use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use leaktrace_core::{TitleId, TitleKeySource};
use leaktrace_detect::investigate::{Options, Progress, investigate};
use leaktrace_detect::{DecideOptions, DetectError, plot};
use leaktrace_store::Store;
use std::path::{Path, PathBuf};

/// `leaktrace detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The suspect copy: any container/codec FFmpeg reads, or a local HLS playlist (.m3u8).
    pub suspect: PathBuf,
    /// Title id.
    #[arg(long)]
    pub title: String,
    /// A detection key set (`leaktrace key export`, mode 0600) instead of the configured
    /// keyring: detect on a machine that does not hold the master key.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// The reference index directory written at embed time (PKG/reference); default: the
    /// location recorded for the title in the store.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Decide without the reference index even when one is known (blind fallback: the copy
    /// is taken as the whole picture, from the title start or `--blind-start`).
    #[arg(long)]
    pub blind: bool,
    /// Blind fallback: title time at the copy's first frame, in seconds (0 to 360000).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub blind_start: f64,
    /// Requested false-accusation probability over all registered sessions (1e-12 to 0.1).
    #[arg(long, default_value_t = 1e-6)]
    pub fp: f64,
    /// Search the start offset within ± this many seconds (0 to 3600; 0 = assume aligned).
    #[arg(long, default_value_t = 60.0)]
    pub max_offset: f64,
    /// Positions with |z| below this are erasures (0 to 10; default 0: every position counts,
    /// weighed by its strength).
    #[arg(long)]
    pub erasure_z: Option<f64>,
    /// Best-scoring sessions listed besides the accused (0 to 1000).
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print the report as JSON (schema leaktrace.detect.v1).
    #[arg(long)]
    pub json: bool,
    /// Also draw the report as a PNG (decision margins over time; scores vs threshold).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// The suspect is still growing (a live HLS URL, a local playlist being updated, a file
    /// being written): decide it as it arrives, print each round, stop at the first
    /// accusation.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: seconds of new capture between two rounds of decisions (1 to 600).
    #[arg(
        long,
        default_value_t = 4.0,
        value_name = "SECONDS",
        requires = "follow"
    )]
    pub every: f64,
    /// With --follow: the capture has ended once this many seconds pass without new data
    /// (1 to 3600).
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECONDS",
        requires = "follow"
    )]
    pub idle: f64,
    /// With --follow: keep deciding after an accusation, until the capture ends.
    #[arg(long, requires = "follow")]
    pub until_end: bool,
    /// With --follow on a URL: the crawler configuration whose fetch limits and capture
    /// folder apply (default: the crawler's defaults, captures under `captures/`).
    #[arg(long, value_name = "FILE", requires = "follow")]
    pub crawler_config: Option<PathBuf>,
}

/// The exit code of an investigation error.
pub(crate) fn code_of(e: &DetectError) -> Code {
    match e {
        DetectError::Invalid(_) | DetectError::ReferenceMismatch { .. } => Code::Usage,
        DetectError::UnknownTitle(_) => Code::NotFound,
        DetectError::NoMatch { .. } | DetectError::NoOverlap { .. } => Code::NoMatch,
        DetectError::LoadReference { .. }
        | DetectError::Media { .. }
        | DetectError::Empty
        | DetectError::Suspect { .. }
        | DetectError::Reference(_)
        | DetectError::Io(_) => Code::Input,
        _ => Code::Internal,
    }
}

/// Prints an error on one line, as `main` does.
pub(crate) fn fail(e: &dyn std::fmt::Display, code: Code) -> Code {
    let msg = e.to_string();
    eprintln!(
        "error: {}",
        msg.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    code
}

/// A spinner/bar on stderr, drawn only when stderr is a terminal.
fn progress_bar() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn on_progress(pb: &ProgressBar, p: Progress) {
    match p {
        Progress::Stage(s) => pb.set_message(s),
        Progress::Scored { done, total } => {
            if pb.length() != Some(total) {
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner} scoring sessions [{bar:40}] {pos}/{len} {per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                pb.set_length(total);
            }
            pb.set_position(done);
        }
        _ => {}
    }
}

/// Runs `leaktrace detect`.
pub fn run(config: Option<&Path>, a: &DetectArgs) -> Result<Code> {
    let title = TitleId::new(a.title.clone()).map_err(|e| UsageError(e.to_string()))?;
    if let Some(p) = &a.plot
        && !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        return Err(UsageError(format!("--plot {} must end in .png", p.display())).into());
    }
    let loaded = Loaded::find(config)?;
    let keys: Box<dyn TitleKeySource> = match &a.keys {
        Some(file) => Box::new(crate::config::read_detection_keys(file)?),
        None => Box::new(loaded.keyring()?),
    };
    let url = super::store::resolved_url(&loaded)?;
    let opts = Options {
        fp: a.fp,
        decide: DecideOptions {
            max_offset_s: a.max_offset,
            erasure_z: a.erasure_z.unwrap_or(DecideOptions::default().erasure_z),
            ..DecideOptions::default()
        },
        top: a.top,
        blind: a.blind,
        blind_start_s: a.blind_start,
        blind_erasure_z: a
            .erasure_z
            .unwrap_or(leaktrace_detect::blind::BLIND_ERASURE_Z),
        ..Options::default()
    };
    if a.follow {
        return super::detect_follow::run(&loaded, keys, &url, &title, &opts, a);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let pb = progress_bar();
    let cb = |p: Progress| on_progress(&pb, p);
    let result = rt.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let r = investigate(
            &store,
            keys.as_ref(),
            &a.suspect,
            &title,
            a.reference.as_deref(),
            &opts,
            Some(&cb),
        )
        .await;
        store.close().await;
        anyhow::Ok(r)
    });
    pb.finish_and_clear();
    let report = match result? {
        Ok(r) => r,
        Err(e) => return Ok(fail(&leaktrace_core::error_chain(&e), code_of(&e))),
    };

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
    }
    if let Some(p) = &a.plot {
        // A frame a third into the copy, to show what the decisions left out.
        let third = report.registration.suspect_frames as f64
            / report
                .registration
                .details
                .get("registration")
                .and_then(|r| r.get("suspect_fps"))
                .and_then(serde_json::Value::as_f64)
                .filter(|f| *f > 0.0)
                .unwrap_or(25.0)
            / 3.0;
        let still = plot::Still::from_suspect(&a.suspect, third).ok();
        if let Err(e) = plot::write_png_with_still(&report, still.as_ref(), p, plot::SIZE) {
            return Ok(fail(&e, Code::Output));
        }
        if !a.json {
            println!("{:<13}{}", "plot", p.display());
        }
    }
    Ok(if report.sessions == 0 {
        Code::NoSessions
    } else {
        Code::Success
    })
}
