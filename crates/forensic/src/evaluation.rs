//! What the suite measured and how: the outcome of each leak ([`LeakResult`]) judged from
//! its decisions, the pirates of one attack pooled into one row, the invisibility figures and
//! the [`Report`] that gathers them.

use crate::attack::Target;
use crate::error::io;
use crate::jobs::{Job, Outcome};
use crate::quality;
use crate::stats::{self, Accuracy, Innocents, Sweep};
use crate::tasks::{Task, Uniform};
use crate::{Config, ForensicError};
use leaktrace_core::{Codebook, MasterKey, SessionId, TitleId, Variant};
use leaktrace_embed::PipelineConfig;
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

/// Which leak a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Group {
    /// One pirate, one attack.
    Attack,
    /// Several colluders.
    Collusion,
    /// No registered session made it.
    Innocent,
}

/// The outcome of one leak.
#[derive(Clone, Debug, Serialize)]
pub struct LeakResult {
    /// Name.
    pub name: String,
    /// Attack, collusion or innocent.
    pub group: Group,
    /// What it is.
    pub description: String,
    /// The ffmpeg arguments (empty: the served bytes as they are).
    pub command: String,
    /// The target it is judged against.
    pub target: Target,
    /// Colluders (1 for a single pirate, 0 for an innocent source).
    pub colluders: usize,
    /// ffmpeg wall time (s).
    pub ffmpeg_s: f64,
    /// `decide` wall time (s).
    pub decide_s: f64,
    /// Registration offset (frames).
    pub offset: i64,
    /// Suspect frames decoded.
    pub frames: u64,
    /// Positions the detector observed.
    pub observed: usize,
    /// Erasures among them.
    pub erased: usize,
    /// Per-position accuracy (positions where the leak carries one variant), pooled over the
    /// pirates of the row.
    pub accuracy: Option<Accuracy>,
    /// Capture-length sweep (guilty sessions); with several pirates, the median pirate's (the
    /// lower middle one by segments to accuse).
    pub sweep: Option<Sweep>,
    /// Segments to accuse for each pirate of the row (`None`: not within the capture), in the
    /// order they were run; one entry for a single pirate, none when nobody is guilty.
    pub per_pirate: Vec<Option<usize>>,
    /// Sessions that did not make the leak, scored against it.
    pub innocents: Innocents,
    /// Why the leak could not be decided, if it could not.
    pub error: Option<String>,
}

/// Facts about the package the suite measured.
#[derive(Clone, Debug, Serialize)]
pub struct PackageInfo {
    /// Width × height.
    pub size: (usize, usize),
    /// Frame rate.
    pub fps: f64,
    /// Positions.
    pub positions: u32,
    /// Segment duration (s).
    pub segment_s: f64,
    /// Embed wall time (s).
    pub embed_s: f64,
    /// Sessions issued into the store.
    pub sessions: usize,
}

/// Invisibility figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Invisibility {
    /// A vs the plain encode.
    pub a_vs_plain: quality::Quality,
    /// B vs the plain encode.
    pub b_vs_plain: quality::Quality,
    /// VMAF of plain, A and B against the mezzanine, `None` when not measured.
    pub vmaf: Option<[f64; 3]>,
    /// Why VMAF is missing.
    pub vmaf_note: Option<String>,
    /// Mark-only PSNR (before encoding).
    pub mark_only: quality::MarkOnly,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The settings.
    pub config: Config,
    /// The package.
    pub package: PackageInfo,
    /// SHA-256 of each corpus file used.
    pub corpus_sha256: Vec<(String, String)>,
    /// Machine, OS and tool versions.
    pub machine: Vec<(String, String)>,
    /// Single-pirate attacks.
    pub attacks: Vec<LeakResult>,
    /// Collusion.
    pub collusion: Vec<LeakResult>,
    /// Innocent sources.
    pub innocent_sources: Vec<LeakResult>,
    /// All innocent trials (unregistered sessions against every leak, registered and
    /// unregistered sessions against the innocent sources).
    pub innocents_total: Innocents,
    /// Invisibility.
    pub invisibility: Invisibility,
    /// Wall time of each stage (s), in order; the leak jobs and the invisibility
    /// measurements run together on the run's threads.
    pub stages: Vec<(String, f64)>,
    /// CPU seconds of the run: this process (embedding, decoding, deciding) and the ffmpeg
    /// processes it ran; `None` where not measurable.
    pub cpu_s: Option<[f64; 2]>,
    /// Total wall time (s).
    pub elapsed_s: f64,
}

/// Judges one leak from its job and outcome: what the detector observed, the per-position
/// accuracy, the capture-length sweep of the guilty sessions and the innocent trials.
pub(crate) fn evaluate(
    cfg: &Config,
    job: &Job,
    out: Outcome,
    book: &Codebook,
    sessions: &[SessionId],
    nonce: &str,
) -> LeakResult {
    let mut row = LeakResult {
        name: job.row.clone(),
        group: job.group,
        description: job.description.clone(),
        command: out.command,
        target: job.target,
        colluders: job.guilty.len(),
        ffmpeg_s: out.ffmpeg_s,
        decide_s: out.decide_s,
        offset: 0,
        frames: 0,
        observed: 0,
        erased: 0,
        accuracy: None,
        sweep: None,
        per_pirate: Vec::new(),
        innocents: Innocents::default(),
        error: None,
    };
    let d = match out.decisions {
        Ok(d) => d,
        Err(e) => {
            row.error = Some(e);
            return row;
        }
    };
    row.offset = d.offset;
    row.frames = d.suspect_frames;
    row.observed = d.positions.len();
    row.erased = d.positions.iter().filter(|p| p.erased).count();
    if !job.truth.is_empty() {
        row.accuracy = Some(stats::accuracy(&d.positions, &job.truth));
    }
    if !job.guilty.is_empty() {
        let s = stats::sweep(&d.positions, book, cfg.op, &job.guilty);
        row.per_pirate = vec![s.needed];
        row.sweep = Some(s);
    }
    let n = if job.group == Group::Innocent {
        cfg.innocents_per_source
    } else {
        cfg.innocents_per_leak
    };
    let mut inn = stats::innocents(
        &d.positions,
        book,
        cfg.op,
        stats::unregistered(nonce, &job.name, n),
        400,
    );
    if job.group == Group::Innocent {
        // Registered sessions too: none of them made this leak.
        let reg = stats::innocents(&d.positions, book, cfg.op, sessions.iter().cloned(), 0);
        let th = inn.threshold_normalised;
        inn.merge(&reg);
        inn.threshold_normalised = th;
    }
    row.innocents = inn;
    row
}

/// Pools adjacent rows of the same name (the pirates of one attack) into one row: counts and
/// times add up, the accuracy and the innocent trials pool, and the sweep shown is the median
/// pirate's. A failed pirate makes the row report the failure.
fn pool(rows: Vec<LeakResult>) -> Vec<LeakResult> {
    // Each pooled row with its pirates' sweeps.
    let mut out: Vec<(LeakResult, Vec<Sweep>)> = Vec::new();
    for mut r in rows {
        let sweep = r.sweep.take();
        match out.last_mut() {
            Some((last, sweeps)) if last.name == r.name => {
                last.ffmpeg_s += r.ffmpeg_s;
                last.decide_s += r.decide_s;
                last.frames += r.frames;
                last.observed += r.observed;
                last.erased += r.erased;
                last.accuracy = match (last.accuracy, r.accuracy) {
                    (Some(mut a), Some(b)) => {
                        a.add(&b);
                        Some(a)
                    }
                    (a, b) => a.or(b),
                };
                let th = last.innocents.threshold_normalised;
                last.innocents.merge(&r.innocents);
                last.innocents.threshold_normalised = th;
                if last.error.is_none() {
                    last.error = r
                        .error
                        .map(|e| format!("pirate {}: {e}", last.per_pirate.len() + 1));
                }
                last.per_pirate.extend(r.per_pirate);
                sweeps.extend(sweep);
            }
            _ => out.push((r, sweep.into_iter().collect())),
        }
    }
    out.into_iter()
        .map(|(mut row, mut sweeps)| {
            sweeps.sort_by_key(|x| x.needed.unwrap_or(usize::MAX));
            if !sweeps.is_empty() {
                row.sweep = Some(sweeps.swap_remove((sweeps.len() - 1) / 2));
            }
            row
        })
        .collect()
}

/// Sorts the [`pool`]ed rows into attacks, collusion and innocent sources, with all their
/// innocent trials together.
pub(crate) fn by_group(
    rows: Vec<LeakResult>,
) -> (Vec<LeakResult>, Vec<LeakResult>, Vec<LeakResult>, Innocents) {
    let (mut attacks, mut collusion, mut innocent_sources) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = Innocents::default();
    for row in pool(rows) {
        total.merge(&row.innocents);
        match row.group {
            Group::Attack => attacks.push(row),
            Group::Collusion => collusion.push(row),
            Group::Innocent => innocent_sources.push(row),
        }
    }
    total.threshold_normalised = None;
    (attacks, collusion, innocent_sources, total)
}

/// A measurement's result, filled in by the task that makes it.
type Slot<T> = Mutex<Option<Result<T, ForensicError>>>;

/// The invisibility measurements (A and B against the plain encode, VMAF when an ffmpeg with
/// libvmaf is given, the mark-only PSNR), each a task of its own that runs beside the leak
/// jobs.
#[derive(Default)]
pub(crate) struct Quality {
    a_vs_plain: Slot<quality::Quality>,
    b_vs_plain: Slot<quality::Quality>,
    /// Plain, A and B against the mezzanine.
    vmaf: [Slot<f64>; 3],
    mark_only: Slot<quality::MarkOnly>,
}

/// What the invisibility measurements read.
pub(crate) struct QualityInputs<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) uniform: &'a Uniform<'a>,
    pub(crate) work: &'a Path,
    pub(crate) mezz: &'a Path,
    pub(crate) plain: &'a Path,
    pub(crate) key: &'a MasterKey,
    pub(crate) title: &'a TitleId,
    pub(crate) pcfg: &'a PipelineConfig,
}

fn fill<T>(slot: &Slot<T>, r: Result<T, ForensicError>) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(r);
    }
}

fn take<T>(slot: Slot<T>, what: &str) -> Result<T, ForensicError> {
    slot.into_inner()
        .ok()
        .flatten()
        .unwrap_or_else(|| Err(ForensicError::Invalid(format!("{what} was not measured"))))
}

/// Each measurement in its own directory under `work/quality` (the filters write fixed
/// file names).
fn quality_dir(work: &Path, name: &str) -> Result<std::path::PathBuf, ForensicError> {
    let d = work.join("quality").join(name);
    std::fs::create_dir_all(&d).map_err(io(&d))?;
    Ok(d)
}

impl Quality {
    /// The measurements as named tasks, each filling its slot of `self`.
    pub(crate) fn tasks<'a>(&'a self, q: &'a QualityInputs<'a>) -> Vec<(String, Task<'a>)> {
        let mut tasks: Vec<(String, Task<'a>)> = Vec::new();
        for (v, slot) in [
            (Variant::A, &self.a_vs_plain),
            (Variant::B, &self.b_vs_plain),
        ] {
            tasks.push((
                format!("invisibility: {v} against the plain encode"),
                Box::new(move || {
                    fill(
                        slot,
                        (|| {
                            let dir = quality_dir(q.work, &format!("psnr-{}", v.dir()))?;
                            quality::psnr_ssim(q.uniform.file(v)?, q.plain, &dir)
                        })(),
                    );
                }),
            ));
        }
        if let Some(ff) = &q.cfg.vmaf_ffmpeg {
            for (k, slot) in self.vmaf.iter().enumerate() {
                let name = ["plain", "a", "b"][k];
                tasks.push((
                    format!("invisibility: VMAF of {name}"),
                    Box::new(move || {
                        fill(
                            slot,
                            (|| {
                                let dir = quality_dir(q.work, &format!("vmaf-{name}"))?;
                                let distorted = match k {
                                    0 => q.plain,
                                    1 => q.uniform.file(Variant::A)?,
                                    _ => q.uniform.file(Variant::B)?,
                                };
                                quality::vmaf(ff, distorted, q.mezz, &dir)
                            })(),
                        );
                    }),
                ));
            }
        }
        tasks.push((
            "invisibility: the mark alone".into(),
            Box::new(move || {
                fill(
                    &self.mark_only,
                    quality::mark_only(
                        q.mezz,
                        q.key,
                        q.title,
                        q.pcfg.segment,
                        q.pcfg.mask,
                        q.cfg.mark_step,
                    ),
                );
            }),
        ));
        tasks
    }

    /// The figures, once every task has run; a VMAF failure becomes the report's note.
    pub(crate) fn finish(self, cfg: &Config) -> Result<Invisibility, ForensicError> {
        let a_vs_plain = take(self.a_vs_plain, "PSNR/SSIM of A")?;
        let b_vs_plain = take(self.b_vs_plain, "PSNR/SSIM of B")?;
        let [plain, a, b] = self.vmaf;
        let (vmaf, vmaf_note) = if cfg.vmaf_ffmpeg.is_some() {
            let r = (|| -> Result<[f64; 3], ForensicError> {
                Ok([
                    take(plain, "VMAF of the plain encode")?,
                    take(a, "VMAF of A")?,
                    take(b, "VMAF of B")?,
                ])
            })();
            match r {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(crate::error::chain(&e))),
            }
        } else {
            (
                None,
                Some("no ffmpeg with libvmaf given (set LEAKTRACE_VMAF_FFMPEG or install tools/.venv: tools/quality.sh does it)".into()),
            )
        };
        let mark_only = take(self.mark_only, "the mark-only PSNR")?;
        Ok(Invisibility {
            a_vs_plain,
            b_vs_plain,
            vmaf,
            vmaf_note,
            mark_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, correct: usize, wrong: usize, needed: Option<usize>) -> LeakResult {
        LeakResult {
            name: name.into(),
            group: Group::Attack,
            description: String::new(),
            command: String::new(),
            target: Target::Decisions,
            colluders: 1,
            ffmpeg_s: 1.0,
            decide_s: 2.0,
            offset: 0,
            frames: 100,
            observed: correct + wrong,
            erased: 0,
            accuracy: Some(Accuracy {
                observed: correct + wrong,
                erased: 0,
                correct,
                wrong,
            }),
            sweep: Some(Sweep {
                needed,
                needed_stable: needed,
                capture: correct + wrong,
                log10_probability: -7.0,
                accused_guilty: usize::from(needed.is_some()),
            }),
            per_pirate: vec![needed],
            innocents: Innocents {
                trials: 10,
                ..Innocents::default()
            },
            error: None,
        }
    }

    #[test]
    fn pirates_of_one_attack_pool_into_one_row() {
        let rows = vec![
            row("crf40", 190, 2, Some(60)),
            row("crf40", 192, 0, None),
            row("crf40", 191, 1, Some(40)),
            row("camcord", 150, 42, Some(70)),
        ];
        let out = pool(rows);
        assert_eq!(out.len(), 2);
        let a = &out[0];
        assert_eq!(a.observed, 576);
        assert_eq!(a.accuracy.map(|x| (x.correct, x.wrong)), Some((573, 3)));
        assert_eq!(a.innocents.trials, 30);
        assert_eq!(a.per_pirate, vec![Some(60), None, Some(40)]);
        // Sorted 40, 60, not reached: the median pirate needed 60.
        assert_eq!(a.sweep.as_ref().and_then(|s| s.needed), Some(60));
        assert!((a.ffmpeg_s - 3.0).abs() < 1e-9);
        assert_eq!(out[1].per_pirate, vec![Some(70)]);
        assert!(out.iter().all(|r| r.error.is_none()));

        let mut failed = row("crf40", 0, 0, None);
        failed.error = Some("ffmpeg failed".into());
        failed.accuracy = None;
        failed.sweep = None;
        failed.per_pirate.clear();
        let out = pool(vec![row("crf40", 192, 0, Some(50)), failed]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].error.as_deref(), Some("pirate 2: ffmpeg failed"));
    }
}
