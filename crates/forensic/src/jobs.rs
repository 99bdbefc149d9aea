//! The leak jobs of a run: what each one feeds to ffmpeg and the detector (the served
//! stream, the single-pirate attacks, collusion, the innocent sources), and running one into
//! its decisions.

use crate::attack::{self, Attack, Source, Target};
use crate::error::{chain, io};
use crate::stream::{self, Package};
use crate::tasks::Uniform;
use crate::{AttackSet, Config, ForensicError, Group};
use leaktrace_core::{Codebook, SessionId, Variant};
use leaktrace_detect::{DecideOptions, Decisions, decide, decide_frames};
use leaktrace_reference::Reference;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a job feeds to its attack (or straight to the detector).
enum Input {
    /// Render this variant sequence and use it as is (or attack it).
    Stream(Vec<Variant>),
    /// An existing file.
    File(PathBuf),
    /// Render each sequence and blend the decoded streams.
    Average(Vec<Vec<Variant>>),
}

/// One leak to make and decode.
pub(crate) struct Job {
    /// Unique job name (its work directory).
    pub(crate) name: String,
    /// The report row it belongs to (several pirates of one attack share a row).
    pub(crate) row: String,
    pub(crate) group: Group,
    pub(crate) description: String,
    input: Input,
    attack: Option<Attack>,
    pub(crate) target: Target,
    pub(crate) guilty: Vec<SessionId>,
    /// Variant in the leak per position, where it is a single one.
    pub(crate) truth: Vec<Option<Variant>>,
}

/// What running a job gave.
pub(crate) struct Outcome {
    pub(crate) command: String,
    pub(crate) ffmpeg_s: f64,
    pub(crate) decide_s: f64,
    pub(crate) decisions: Result<Decisions, String>,
}

/// The leak jobs of a run, in report order: the stream as served, the single-pirate attacks
/// (each on `cfg.pirates` sessions' streams), collusion, then the innocent sources.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_jobs(
    cfg: &Config,
    pkg: &Package,
    book: &Codebook,
    sessions: &[SessionId],
    (plain, other): (&Path, &Path),
    src: Source,
    font: &Path,
    nonce: &str,
) -> Result<Vec<Job>, ForensicError> {
    let attacks = match cfg.attacks {
        AttackSet::None => Vec::new(),
        AttackSet::Smoke => attack::smoke_table(src),
        AttackSet::Standard => attack::table(src),
        AttackSet::Wild => attack::wild_table(src, font),
    };
    let word = |s: &SessionId| pkg.codeword(book, s);
    let mut jobs = Vec::new();
    // The stream as served.
    let p0 = sessions[0].clone();
    jobs.push(Job {
        name: "none".into(),
        row: "none".into(),
        group: Group::Attack,
        description: "no attack: the stream exactly as the edge serves it".into(),
        input: Input::Stream(word(&p0)),
        attack: None,
        target: Target::None,
        truth: some(&word(&p0)),
        guilty: vec![p0],
    });
    let pirates = cfg.pirates.clamp(1, sessions.len());
    for (i, a) in attacks.into_iter().enumerate() {
        for k in 0..pirates {
            // Consecutive sessions (distinct within an attack, as pirates ≤ sessions).
            let p = sessions[(1 + i * pirates + k) % sessions.len()].clone();
            let name = if k == 0 {
                a.name.clone()
            } else {
                format!("{}.p{}", a.name, k + 1)
            };
            jobs.push(Job {
                name,
                row: a.name.clone(),
                group: Group::Attack,
                description: a.description.clone(),
                input: Input::Stream(word(&p)),
                target: a.target,
                attack: Some(a.clone()),
                truth: some(&word(&p)),
                guilty: vec![p],
            });
        }
    }
    // Collusion: colluders drawn from the end of the session list.
    for &c in &cfg.colluders {
        if c > sessions.len() {
            continue;
        }
        let group: Vec<SessionId> = sessions[sessions.len() - c..].to_vec();
        jobs.extend(collusion_jobs(cfg, pkg, book, c, &group, nonce)?);
    }
    // Innocent sources.
    jobs.extend(innocent_jobs(cfg, pkg, (plain, other), font, nonce));
    Ok(jobs)
}

/// The truth of a leak that is the variant sequence `w`: a single variant at every position.
fn some(w: &[Variant]) -> Vec<Option<Variant>> {
    w.iter().copied().map(Some).collect()
}

/// The collusion jobs of the `c` sessions of `group`: segment interleaving, majority,
/// minority, a random pick and frame averaging (only the first in the smoke attack set).
fn collusion_jobs(
    cfg: &Config,
    pkg: &Package,
    book: &Codebook,
    c: usize,
    group: &[SessionId],
    nonce: &str,
) -> Result<Vec<Job>, ForensicError> {
    let words: Vec<Vec<Variant>> = group.iter().map(|s| pkg.codeword(book, s)).collect();
    let single = |p: usize| {
        let v = words[0][p];
        words.iter().all(|w| w[p] == v).then_some(v)
    };
    let mixed: Vec<Option<Variant>> = (0..pkg.positions as usize).map(single).collect();
    let coin = |p: usize| fair_coin("leaktrace forensic majority tie v1", nonce, p as u64);
    let pick =
        |p: usize| (draw("leaktrace forensic random pick v1", nonce, p as u64) % c as u64) as usize;
    let inter = stream::interleave(&words);
    let maj = stream::majority(&words, coin);
    let min = stream::minority(&words, coin);
    let picked = stream::random_pick(&words, pick);
    let strategies: Vec<(&str, String, Input, Vec<Option<Variant>>)> = vec![
        (
            "interleave",
            format!(
                "segment interleaving of {c} sessions (position p from colluder p mod {c}), served bytes"
            ),
            Input::Stream(inter.clone()),
            some(&inter),
        ),
        (
            "majority",
            format!("per-position majority of {c} sessions (ties: a fair coin), served bytes"),
            Input::Stream(maj.clone()),
            some(&maj),
        ),
        (
            "minority",
            format!(
                "per-position minority of {c} sessions (where they differ, the variant fewer hold; ties: a fair coin), served bytes"
            ),
            Input::Stream(min.clone()),
            some(&min),
        ),
        (
            "random-pick",
            format!(
                "each position from a colluder drawn at random (a fair {c}-sided die per position), served bytes"
            ),
            Input::Stream(picked.clone()),
            some(&picked),
        ),
        (
            "average",
            format!(
                "frame averaging of {c} sessions' decoded streams (ffmpeg mix), then a re-encode, x264 CRF 23"
            ),
            Input::Average(words.clone()),
            mixed.clone(),
        ),
    ];
    let mut jobs = Vec::new();
    if cfg.attacks == AttackSet::Smoke {
        let (n, d, i, t) = strategies
            .into_iter()
            .next()
            .ok_or_else(|| ForensicError::Invalid("no collusion strategy".into()))?;
        jobs.push(collusion_job(c, n, d, i, t, group));
    } else {
        for (n, d, i, t) in strategies {
            jobs.push(collusion_job(c, n, d, i, t, group));
        }
    }
    Ok(jobs)
}

/// The innocent sources: the unmarked copy and another title, re-encoded (in the wild attack
/// set both again with the pirates' overlays), and a random codeword.
fn innocent_jobs(
    cfg: &Config,
    pkg: &Package,
    (plain, other): (&Path, &Path),
    font: &Path,
    nonce: &str,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let reencode = Attack {
        name: "x264-crf23".into(),
        description: String::new(),
        filters: String::new(),
        encoder: attack::default_encoder(),
        target: Target::None,
    };
    jobs.push(Job {
        name: "unmarked".into(),
        row: "unmarked".into(),
        group: Group::Innocent,
        description: "unmarked copy: the plain encode of the same excerpt, re-encoded x264 CRF 23"
            .into(),
        input: Input::File(plain.to_path_buf()),
        attack: Some(reencode.clone()),
        target: Target::None,
        guilty: vec![],
        truth: vec![],
    });
    jobs.push(Job {
        name: "other-title".into(),
        row: "other-title".into(),
        group: Group::Innocent,
        description: format!(
            "another title: {} (unmarked), re-encoded x264 CRF 23",
            cfg.other.file
        ),
        input: Input::File(other.to_path_buf()),
        attack: Some(reencode),
        target: Target::None,
        guilty: vec![],
        truth: vec![],
    });
    if cfg.attacks == AttackSet::Wild {
        // Innocent copies that carry the same overlays as the pirates' (what a site adds to
        // everything it republishes).
        let overlaid = attack::overlaid_innocent(font);
        for (name, what, file) in [
            (
                "unmarked+overlays",
                "the plain encode of the same excerpt",
                plain,
            ),
            ("other-title+overlays", "another title (unmarked)", other),
        ] {
            jobs.push(Job {
                name: name.into(),
                row: name.into(),
                group: Group::Innocent,
                description: format!("{what}, with {}", overlaid.description),
                input: Input::File(file.to_path_buf()),
                attack: Some(overlaid.clone()),
                target: Target::None,
                guilty: vec![],
                truth: vec![],
            });
        }
    }
    let random: Vec<Variant> = (0..pkg.positions)
        .map(|p| fair_coin("leaktrace forensic random codeword v1", nonce, u64::from(p)))
        .collect();
    jobs.push(Job {
        name: "random-codeword".into(),
        row: "random-codeword".into(),
        group: Group::Innocent,
        description:
            "marked stream with a random (fair-coin) A/B sequence that is no session's codeword"
                .into(),
        truth: some(&random),
        input: Input::Stream(random),
        attack: None,
        target: Target::None,
        guilty: vec![],
    });
    jobs
}

/// A keyed draw for position `p`: 64 bits of BLAKE3 keyed by `context` and the run's `nonce`
/// (the same position gives the same draw within a run, another one in the next run).
fn draw(context: &str, nonce: &str, p: u64) -> u64 {
    let key = blake3::derive_key(context, nonce.as_bytes());
    let h = blake3::keyed_hash(&key, &p.to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// A fair coin for position `p` ([`draw`]'s lowest bit).
fn fair_coin(context: &str, nonce: &str, p: u64) -> Variant {
    if draw(context, nonce, p) & 1 == 0 {
        Variant::A
    } else {
        Variant::B
    }
}

/// One collusion job of the `c` sessions of `group` (its row is `c<c>-<name>`).
fn collusion_job(
    c: usize,
    name: &str,
    description: String,
    input: Input,
    truth: Vec<Option<Variant>>,
    group: &[SessionId],
) -> Job {
    let target = Target::None;
    Job {
        name: format!("c{c}-{name}"),
        row: format!("c{c}-{name}"),
        group: Group::Collusion,
        description,
        input,
        attack: None,
        target,
        guilty: group.to_vec(),
        truth,
    }
}

/// Keeps the jobs of the rows named in `only` (all of them when it is empty); a name that is
/// no row of this run is an error.
pub(crate) fn keep_only(jobs: &mut Vec<Job>, only: &[String]) -> Result<(), ForensicError> {
    if !only.is_empty() {
        let mut names: Vec<String> = jobs.iter().map(|j| j.row.clone()).collect();
        names.dedup();
        if let Some(unknown) = only.iter().find(|n| !names.contains(n)) {
            return Err(ForensicError::Invalid(format!(
                "no leak named {unknown:?} in this mode (expected one of: {})",
                names.join(", ")
            )));
        }
        jobs.retain(|j| only.contains(&j.row));
    }
    Ok(())
}

/// What every job reads: the package, the work directory, the reference and the pattern
/// key, and the decoded all-A and all-B streams that the served-bytes leaks are spliced from.
pub(crate) struct Context<'a> {
    pub(crate) pkg: &'a Package,
    pub(crate) work: &'a Path,
    /// The work files are kept (`--keep`): each job writes what is needed to re-examine it.
    pub(crate) keep: bool,
    pub(crate) reference: &'a Reference,
    pub(crate) pattern_key: &'a leaktrace_core::DerivedKey,
    pub(crate) uniform: &'a Uniform<'a>,
}

impl Job {
    /// The variant sequence of a leak that is served bytes unchanged (no attack, no blend).
    pub(crate) fn served(&self) -> Option<&[Variant]> {
        match (&self.input, &self.attack) {
            (Input::Stream(v), None) => Some(v),
            _ => None,
        }
    }
}

/// Makes one leak in its work directory, decodes it and, when the run is kept, writes what
/// is needed to re-examine it offline. A leak of served bytes is decided on frames spliced
/// from the decoded all-A and all-B streams ([`Uniform::splice`]); it decodes its own file
/// only when they cannot be spliced.
pub(crate) fn run_job(job: &Job, i: usize, ctx: &Context<'_>) -> Outcome {
    let dir = ctx.work.join(format!("job{i:02}-{}", job.name));
    let mut command = String::new();
    let mut ffmpeg_s = 0.0;
    let mut decide_s = 0.0;
    let result = (|| -> Result<Decisions, ForensicError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let opts = DecideOptions::default();
        let spliced = match job.served() {
            Some(v) => {
                let t = Instant::now();
                let frames = ctx.uniform.splice(v, ctx.reference).ok();
                decide_s += t.elapsed().as_secs_f64();
                frames
            }
            None => None,
        };
        let d = match spliced {
            Some(mut frames) => {
                if ctx.keep {
                    make_input(&job.input, ctx.pkg, &dir, &mut ffmpeg_s, &mut command)?;
                }
                let t = Instant::now();
                let d = decide_frames(&mut frames, ctx.reference, ctx.pattern_key, &opts);
                decide_s += t.elapsed().as_secs_f64();
                d
            }
            None => {
                let input = make_input(&job.input, ctx.pkg, &dir, &mut ffmpeg_s, &mut command)?;
                let suspect = match &job.attack {
                    Some(a) => {
                        let out = dir.join("attacked.mp4");
                        ffmpeg_s += a.run(&input, &out)?;
                        command = a.command(Path::new("IN"), Path::new("OUT.mp4")).join(" ");
                        out
                    }
                    None => input,
                };
                let t = Instant::now();
                let d = decide(&suspect, ctx.reference, ctx.pattern_key, &opts);
                decide_s += t.elapsed().as_secs_f64();
                d
            }
        }
        .map_err(ForensicError::Detect);
        if let (true, Ok(d)) = (ctx.keep, &d) {
            write_kept(job, &dir, d)?;
        }
        d
    })();
    if !ctx.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Outcome {
        command,
        ffmpeg_s,
        decide_s,
        decisions: result.map_err(|e| chain(&e)),
    }
}

/// Makes a job's input in its directory `dir`: the rendered stream, the file as it is, or the
/// colluders' rendered streams averaged (adding that ffmpeg run's time to `ffmpeg_s` and its
/// arguments to `command`).
fn make_input(
    input: &Input,
    pkg: &Package,
    dir: &Path,
    ffmpeg_s: &mut f64,
    command: &mut String,
) -> Result<PathBuf, ForensicError> {
    Ok(match input {
        Input::Stream(v) => {
            let f = dir.join("stream.mp4");
            pkg.render(v, &f)?;
            f
        }
        Input::File(f) => f.clone(),
        Input::Average(words) => {
            let mut files = Vec::new();
            for (k, w) in words.iter().enumerate() {
                let f = dir.join(format!("colluder{k}.mp4"));
                pkg.render(w, &f)?;
                files.push(f);
            }
            let out = dir.join("averaged.mp4");
            let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
            *ffmpeg_s += attack::average(&refs, &out)?;
            *command = format!(
                "-filter_complex {}mix=inputs={} {}",
                (0..files.len())
                    .map(|k| format!("[{k}:v]"))
                    .collect::<String>(),
                files.len(),
                attack::default_encoder().join(" ")
            );
            out
        }
    })
}

/// Writes a kept job's truth, guilty sessions and decisions into its directory `dir`, so
/// that the leak can be re-examined offline.
fn write_kept(job: &Job, dir: &Path, d: &Decisions) -> Result<(), ForensicError> {
    // The leak's variant per position: A, B, or - where the leak has no single one.
    let truth: String = job
        .truth
        .iter()
        .map(|t| t.map_or_else(|| "-".to_owned(), |v| v.to_string()))
        .collect();
    let f = dir.join("truth.txt");
    std::fs::write(&f, truth).map_err(io(&f))?;
    let guilty: Vec<&str> = job.guilty.iter().map(SessionId::as_str).collect();
    let f = dir.join("guilty.txt");
    std::fs::write(&f, guilty.join("\n")).map_err(io(&f))?;
    let f = dir.join("decisions.json");
    let json = serde_json::to_vec_pretty(d).map_err(crate::error::json("decisions as JSON"))?;
    std::fs::write(&f, json).map_err(io(&f))?;
    Ok(())
}
