//! `leaktrace bench forensic`: the forensic evaluation suite (crates/forensic) on the corpus.

use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use leaktrace_forensic::{Config, Event, Mode};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `leaktrace bench forensic`.
#[derive(Debug, Args)]
pub struct BenchForensicArgs {
    /// A few minutes on 2 cores: a 192 s excerpt at 360p, every attack (the default).
    #[arg(long, conflicts_with_all = ["full", "smoke"])]
    pub quick: bool,
    /// About 1 h 30 min on 2 cores: the whole film at 720p, every attack.
    #[arg(long, conflicts_with_all = ["smoke", "collusion"])]
    pub full: bool,
    /// Collusion on real video: the whole film at 360p with 1-s positions (596), collusion of
    /// 2, 3 and 4 sessions, the innocent sources; no single-pirate attack, no VMAF.
    #[arg(long, conflicts_with_all = ["smoke", "quick"])]
    pub collusion: bool,
    /// CI-sized: an 80 s excerpt, two attacks, one collusion, no VMAF, FP 1e-2 among 100.
    #[arg(long)]
    pub smoke: bool,
    /// Copies the way pirate sites publish them: logos in each corner, subtitles, a ticker,
    /// a player's chrome, mirror, picture-in-picture, 5 % faster; alone, with a 720p
    /// re-encode, and on a camcorder copy; innocents carry the same overlays.
    #[arg(long, conflicts_with_all = ["full", "smoke", "collusion", "quick"])]
    pub wild: bool,
    /// Mark this corpus file instead of the mode's clip (a name in the corpus directory, e.g.
    /// `tree.avi`); the report is then `forensic-MODE-<file stem>.md`.
    #[arg(long, value_name = "FILE")]
    pub clip: Option<String>,
    /// Where the excerpt of the clip starts, in seconds (default: the mode's start for its own
    /// clip, 0 for another).
    #[arg(long, value_name = "S", requires = "clip")]
    pub clip_start: Option<f64>,
    /// How long the excerpt is, in seconds (default: the mode's duration; a shorter clip is
    /// used whole).
    #[arg(long, value_name = "S")]
    pub clip_duration: Option<f64>,
    /// Output directory for forensic-MODE.md and .json and the plots.
    #[arg(long, default_value = "docs/bench")]
    pub out: PathBuf,
    /// Keep the work files (package, store, leaks) in this directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Concurrent ffmpeg attack jobs (1 or 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub jobs: u8,
    /// Run only these leaks (comma-separated names as in the report, e.g. `camcord,unmarked`);
    /// for investigating an attack. With `--keep`, each job's files and decisions.json stay.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub only: Vec<String>,
    /// Package height instead of the mode's (360 to 2160); at 1080p and above the CRF 40/45
    /// attacks run at 1080p.
    #[arg(long, value_parser = clap::value_parser!(u32).range(360..=2160))]
    pub height: Option<u32>,
    /// Position (segment) duration in milliseconds instead of the mode's (1000 to 6000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1000..=6000))]
    pub segment_ms: Option<u64>,
    /// Mark strength relative to the default mask (0.1 to 4.0), as `leaktrace embed --strength`.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// Pirates per single-pirate attack (1 to 40): each attack runs on this many sessions'
    /// streams and its row pools them (accuracy over all their positions; segments to accuse
    /// as the median and range). Use it to measure a decision rate over thousands of positions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=40))]
    pub pirates: u16,
    /// Do not measure VMAF.
    #[arg(long)]
    pub no_vmaf: bool,
    /// Print the JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

/// An ffmpeg with libvmaf: $LEAKTRACE_VMAF_FFMPEG, else the imageio-ffmpeg binary in
/// tools/.venv (installed by tools/quality.sh).
fn vmaf_ffmpeg() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LEAKTRACE_VMAF_FFMPEG") {
        return Some(PathBuf::from(p));
    }
    let lib = Path::new("tools/.venv/lib");
    for py in std::fs::read_dir(lib).ok()?.flatten() {
        let bin = py.path().join("site-packages/imageio_ffmpeg/binaries");
        if let Ok(rd) = std::fs::read_dir(&bin) {
            for f in rd.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with("ffmpeg-") {
                    return Some(f.path());
                }
            }
        }
    }
    None
}

fn git_commit() -> String {
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    match head {
        Some(h) if dirty => format!("{h} (with uncommitted changes)"),
        Some(h) => h,
        None => "unknown (not a git checkout)".into(),
    }
}

/// Runs the suite and writes the report.
pub fn run(a: &BenchForensicArgs) -> Result<Code> {
    let mode = if a.full {
        Mode::Full
    } else if a.collusion {
        Mode::Collusion
    } else if a.smoke {
        Mode::Smoke
    } else if a.wild {
        Mode::Wild
    } else {
        Mode::Quick
    };
    let corpus = std::env::var_os("LEAKTRACE_CORPUS")
        .map_or_else(|| PathBuf::from("corpus/cache"), PathBuf::from);
    if !corpus.is_dir() {
        return Err(UsageError(format!(
            "corpus directory {} missing (run corpus/fetch.sh or set LEAKTRACE_CORPUS)",
            corpus.display()
        ))
        .into());
    }
    let mut cfg = Config::for_mode(mode, corpus, a.out.clone());
    if let Some(file) = &a.clip {
        if file.contains('/') || file.starts_with('.') || !cfg.corpus.join(file).is_file() {
            return Err(UsageError(format!(
                "--clip {file}: expected the name of a file in the corpus directory {}",
                cfg.corpus.display()
            ))
            .into());
        }
        cfg.clip.file = file.clone();
        cfg.clip.start_s = a.clip_start.unwrap_or(0.0);
    }
    if let Some(d) = a.clip_duration {
        cfg.clip.duration_s = d;
    }
    if !(0.0..=36_000.0).contains(&cfg.clip.start_s)
        || !(4.0..=36_000.0).contains(&cfg.clip.duration_s)
    {
        return Err(UsageError(format!(
            "clip excerpt from {} s for {} s out of range (expected a start of 0 to 36000 s and a duration of 4 to 36000 s)",
            cfg.clip.start_s, cfg.clip.duration_s
        ))
        .into());
    }
    cfg.work = a.keep.clone();
    cfg.only = a.only.clone();
    cfg.strength = a.strength;
    cfg.pirates = usize::from(a.pirates);
    if let Some(h) = a.height {
        cfg.height = h;
    }
    if let Some(ms) = a.segment_ms {
        cfg.segment_ms = ms;
    }
    cfg.jobs = usize::from(a.jobs);
    cfg.vmaf_ffmpeg = if a.no_vmaf || matches!(mode, Mode::Smoke | Mode::Collusion) {
        None
    } else {
        vmaf_ffmpeg()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    cfg.command = format!("leaktrace {}", args.join(" "));
    cfg.commit = git_commit();

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = leaktrace_forensic::run(&cfg, &|e| match e {
        Event::Stage(s) => bar.set_message(s),
        Event::Jobs(n) => {
            bar.set_length(n as u64);
            bar.set_message("attacks, collusion, innocents");
        }
        Event::JobDone(name) => {
            bar.inc(1);
            bar.set_message(format!("done {name}"));
        }
        _ => {}
    })
    .context("forensic suite")?;
    bar.finish_and_clear();
    let written = leaktrace_forensic::report::write(&report).context("writing the report")?;
    if a.json {
        println!("{}", std::fs::read_to_string(&written.json)?);
    } else {
        for t in leaktrace_forensic::report::targets(&report) {
            let status = match t.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "not measurable",
            };
            println!(
                "{:<14} {} — wanted {}, measured {}",
                status, t.what, t.target, t.measured
            );
        }
        println!("report  {}", written.markdown.display());
        for p in &written.plots {
            println!("plot    {}", p.display());
        }
    }
    Ok(Code::Success)
}
