//! One run of the suite: it checks the settings, cuts and embeds the excerpt, encodes the
//! plain baseline, issues the sessions, runs the leak jobs, evaluates them and measures
//! invisibility into a [`Report`].

use crate::attack::{self, Source};
use crate::error::io;
use crate::evaluation::{Quality, QualityInputs, by_group, evaluate};
use crate::jobs::{Context, Outcome, build_jobs, keep_only, run_job};
use crate::stream::Package;
use crate::tasks::{self, Task, Uniform};
use crate::{Clip, Config, ForensicError, LeakResult, PackageInfo, Report, report};
use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId};
use leaktrace_embed::PipelineConfig;
use leaktrace_reference::Reference;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Progress events.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A preparation stage started.
    Stage(String),
    /// The leak jobs start; this many in all.
    Jobs(usize),
    /// One leak job finished.
    JobDone(String),
}

/// Runs the suite.
pub fn run(cfg: &Config, progress: &(dyn Fn(Event) + Sync)) -> Result<Report, ForensicError> {
    let started = Instant::now();
    let cpu_at_start = process_cpu();
    check(cfg)?;
    let tmp = tempfile::Builder::new()
        .prefix("leaktrace-forensic-")
        .tempdir()
        .map_err(io(Path::new("temporary directory")))?;
    let work = match &cfg.work {
        Some(w) => {
            std::fs::create_dir_all(w).map_err(io(w))?;
            w.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let corpus_sha256 = hash_corpus(cfg, progress)?;
    let mut stages = Stages::default();

    progress(Event::Stage("cutting the mezzanine".into()));
    let mezz = work.join("mezzanine.mp4");
    cut(&cfg.corpus, &cfg.clip, cfg.height, true, &mezz)?;
    let other = work.join("other-title.mp4");
    cut(&cfg.corpus, &cfg.other, cfg.height, false, &other)?;
    stages.done("cutting the mezzanine and the other title");

    progress(Event::Stage("embedding".into()));
    let key = MasterKey::from_bytes(random_bytes()?, KeyVersion::new(1));
    let title = TitleId::new("forensic").map_err(|source| ForensicError::Core {
        what: "title id",
        source,
    })?;
    let mut pcfg = PipelineConfig::new(title.clone());
    pcfg.ladder = Some(format!("{}p", cfg.height));
    pcfg.preset = Some(cfg.preset.clone());
    pcfg.mask = pcfg.mask.scaled(cfg.strength);
    pcfg.segment =
        leaktrace_core::SegmentDuration::from_millis(cfg.segment_ms).map_err(|source| {
            ForensicError::Core {
                what: "segment duration",
                source,
            }
        })?;
    let pkg_dir = work.join("pkg");
    let summary = leaktrace_embed::embed_file(&mezz, &pkg_dir, &key, &pcfg, &mut |_| {})?;
    let rend = summary
        .renditions
        .first()
        .ok_or_else(|| ForensicError::Invalid("the package has no rendition".into()))?;
    let pkg = Package::open(&pkg_dir.join(&rend.name))?;
    let reference = Reference::load(&pkg_dir.join("reference"))?;
    let fps = f64::from(summary.frame_rate[0]) / f64::from(summary.frame_rate[1]);
    stages.done("embedding");
    progress(Event::Stage("plain encode".into()));
    let plain_dir = work.join("plain");
    std::fs::create_dir_all(&plain_dir).map_err(io(&plain_dir))?;
    let plain = leaktrace_embed::encode_plain(&mezz, &plain_dir, &pcfg)?;
    let plain_file = plain
        .files
        .first()
        .cloned()
        .ok_or_else(|| ForensicError::Invalid("plain encode wrote nothing".into()))?;
    stages.done("plain encode");

    progress(Event::Stage("issuing sessions".into()));
    let sessions = issue(
        &work.join("store.sqlite"),
        &key,
        &title,
        pkg.positions,
        summary.segment_ms as u32,
        cfg.sessions,
    )?;
    let book = key.codebook(&title);
    let nonce: String = random_bytes()?[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // Drawn text (logos, subtitles, tickers) uses the detector's embedded font, written
    // beside the work files so ffmpeg's drawtext can read it.
    let font = work.join("DejaVuSans.ttf");
    std::fs::write(&font, leaktrace_detect::plot::FONT_TTF).map_err(io(&font))?;
    let src = Source {
        height: cfg.height,
        fps,
        // The package's own length: a clip shorter than the mode's duration is used whole.
        duration_s: cfg
            .clip
            .duration_s
            .min(f64::from(pkg.positions) * summary.segment_ms as f64 / 1000.0),
    };
    let mut jobs = build_jobs(
        cfg,
        &pkg,
        &book,
        &sessions,
        (&plain_file, &other),
        src,
        &font,
        &nonce,
    )?;
    keep_only(&mut jobs, &cfg.only)?;
    if cfg.work.is_some() {
        // A kept run can be re-examined offline (decisions.json in each job directory); the
        // key is a throw-away bench key, written so the package can be read again.
        let f = work.join("key.hex");
        std::fs::write(&f, key.to_hex()).map_err(io(&f))?;
    }
    stages.done("issuing sessions");
    let pattern_key = key.pattern_key(&title);
    let uniform = Uniform::new(&pkg, &work);
    let ctx = Context {
        pkg: &pkg,
        work: &work,
        keep: cfg.work.is_some(),
        reference: &reference,
        pattern_key: &pattern_key,
        uniform: &uniform,
    };
    let quality = Quality::default();
    let inputs = QualityInputs {
        cfg,
        uniform: &uniform,
        work: &work,
        mezz: &mezz,
        plain: &plain_file,
        key: &key,
        title: &title,
        pcfg: &pcfg,
    };
    let outcomes: Vec<Mutex<Option<Outcome>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    // The schedule: the leaks that run ffmpeg first (the longest tasks), then the
    // invisibility measurements, then the served-bytes leaks (spliced from two decodes,
    // a few seconds each), so that neither thread idles long at the end.
    let (mut heavy, mut light): (Vec<Task<'_>>, Vec<Task<'_>>) = (Vec::new(), Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let (ctx, slot) = (&ctx, &outcomes[i]);
        let task: Task<'_> = Box::new(move || {
            let out = run_job(job, i, ctx);
            if let Ok(mut s) = slot.lock() {
                *s = Some(out);
            }
            progress(Event::JobDone(job.name.clone()));
        });
        if job.served().is_some() {
            light.push(task);
        } else {
            heavy.push(task);
        }
    }
    let measurements = quality.tasks(&inputs);
    progress(Event::Jobs(jobs.len() + measurements.len()));
    for (name, task) in measurements {
        heavy.push(Box::new(move || {
            task();
            progress(Event::JobDone(name));
        }));
    }
    heavy.extend(light);
    tasks::run(cfg.jobs, heavy);
    stages.done("leak jobs and invisibility");

    let evaluated: Vec<LeakResult> = jobs
        .iter()
        .zip(outcomes)
        .map(|(job, out)| {
            let out = out.into_inner().ok().flatten().unwrap_or(Outcome {
                command: String::new(),
                ffmpeg_s: 0.0,
                decide_s: 0.0,
                decisions: Err("job did not run".into()),
            });
            evaluate(cfg, job, out, &book, &sessions, &nonce)
        })
        .collect();
    let (attacks, collusion, innocent_sources, total) = by_group(evaluated);
    let invisibility = quality.finish(cfg)?;
    stages.done("evaluation");

    let config = cfg.as_recorded();
    let machine = report::machine(config.vmaf_ffmpeg.as_deref());
    let report = Report {
        config,
        package: PackageInfo {
            size: (rend.width, rend.height),
            fps,
            positions: pkg.positions,
            segment_s: summary.segment_ms as f64 / 1000.0,
            embed_s: summary.elapsed_seconds,
            sessions: sessions.len(),
        },
        corpus_sha256,
        machine,
        attacks,
        collusion,
        innocent_sources,
        innocents_total: total,
        invisibility,
        stages: stages.0,
        cpu_s: match (cpu_at_start, process_cpu()) {
            (Some(a), Some(b)) => Some([b[0] - a[0], b[1] - a[1]]),
            _ => None,
        },
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    Ok(report)
}

/// CPU seconds (user + system) used so far by this process (all its threads) and by its
/// children that have ended (every ffmpeg run), from `/proc/self/stat`; `None` where that is
/// not readable.
pub fn process_cpu() -> Option<[f64; 2]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) in parentheses: state is
    // field 3, utime..cstime are fields 14 to 17.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // The kernel reports these in USER_HZ ticks, 100 per second on Linux.
    const TICKS: f64 = 100.0;
    match f.as_slice() {
        [ut, st, cut, cst] => Some([(ut + st) / TICKS, (cut + cst) / TICKS]),
        _ => None,
    }
}

/// Wall time of each stage of a run, in order.
struct Stages(Vec<(String, f64)>, Instant);

impl Default for Stages {
    fn default() -> Self {
        Self(Vec::new(), Instant::now())
    }
}

impl Stages {
    /// The stage `name` ends now (it began where the previous one ended).
    fn done(&mut self, name: &str) {
        self.0
            .push((name.to_owned(), self.1.elapsed().as_secs_f64()));
        self.1 = Instant::now();
    }
}

/// Checks the settings a run cannot start with: the concurrent jobs, the strength, the pirates
/// per attack and the sessions.
fn check(cfg: &Config) -> Result<(), ForensicError> {
    if !(1..=2).contains(&cfg.jobs) {
        return Err(ForensicError::Invalid(format!(
            "{} concurrent jobs requested (expected 1 or 2)",
            cfg.jobs
        )));
    }
    let range = leaktrace_embed::mask::STRENGTH_RANGE;
    if !range.contains(&cfg.strength) {
        return Err(ForensicError::Invalid(format!(
            "strength {} out of range (expected {} to {})",
            cfg.strength,
            range.start(),
            range.end()
        )));
    }
    if cfg.pirates == 0 || cfg.pirates > cfg.sessions {
        return Err(ForensicError::Invalid(format!(
            "{} pirates per attack requested (expected 1 to the {} sessions)",
            cfg.pirates, cfg.sessions
        )));
    }
    if cfg.sessions < 4 {
        return Err(ForensicError::Invalid(format!(
            "{} sessions requested (expected at least 4)",
            cfg.sessions
        )));
    }
    Ok(())
}

/// SHA-256 of each corpus file the run uses, once per file (a missing one is left out: cutting
/// it reports it).
fn hash_corpus(
    cfg: &Config,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Vec<(String, String)>, ForensicError> {
    let mut corpus_sha256 = Vec::new();
    for c in [&cfg.clip, &cfg.other] {
        let p = cfg.corpus.join(&c.file);
        if p.is_file() && !corpus_sha256.iter().any(|(f, _)| f == &c.file) {
            progress(Event::Stage(format!("hashing {}", c.file)));
            corpus_sha256.push((c.file.clone(), sha256(&p)?));
        }
    }
    Ok(corpus_sha256)
}

/// Cuts `clip` to a mezzanine at `height` (`lossless`: x264 QP 0, else CRF 16).
fn cut(
    corpus: &Path,
    clip: &Clip,
    height: u32,
    lossless: bool,
    out: &Path,
) -> Result<(), ForensicError> {
    let src = corpus.join(&clip.file);
    if !src.is_file() {
        return Err(ForensicError::Invalid(format!(
            "corpus file {} missing (run corpus/fetch.sh, or set LEAKTRACE_CORPUS)",
            src.display()
        )));
    }
    let q: &[&str] = if lossless {
        &["-qp", "0"]
    } else {
        &["-crf", "16"]
    };
    let mut a: Vec<String> = vec![
        "-ss".into(),
        format!("{}", clip.start_s),
        "-i".into(),
        src.to_string_lossy().into_owned(),
        "-t".into(),
        format!("{}", clip.duration_s),
        "-an".into(),
        "-vf".into(),
        format!("scale=-2:{height}:flags=area"),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "ultrafast".into(),
    ];
    a.extend(q.iter().map(|s| (*s).to_owned()));
    a.extend([
        "-pix_fmt".into(),
        "yuv420p".into(),
        out.to_string_lossy().into_owned(),
    ]);
    attack::ffmpeg("cutting the mezzanine", &a)
}

/// SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> Result<String, ForensicError> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// 32 bytes from the OS.
fn random_bytes() -> Result<[u8; 32], ForensicError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(ForensicError::Randomness)?;
    Ok(b)
}

/// Issues `n` sessions of `title` into a SQLite store at `db`.
fn issue(
    db: &Path,
    key: &MasterKey,
    title: &TitleId,
    positions: u32,
    segment_ms: u32,
    n: usize,
) -> Result<Vec<SessionId>, ForensicError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ForensicError::Runtime)?;
    rt.block_on(async {
        let url = format!("sqlite://{}", db.display());
        let store = leaktrace_store::Store::open(&url).await?;
        store
            .upsert_title(&leaktrace_store::NewTitle {
                title_id: title.as_str().to_owned(),
                name: "forensic suite".into(),
                segment_duration_ms: segment_ms,
                position_count: positions,
                key_version: key.version().get(),
                reference_path: None,
            })
            .await?;
        let issuer = leaktrace_session::Issuer::new(key.clone());
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let s = leaktrace_session::issue_session(
                &store,
                &issuer,
                title,
                &format!("account-{i}"),
                std::time::Duration::from_secs(6 * 3600),
                leaktrace_core::TokenMode::Indirect,
            )
            .await?;
            let id =
                SessionId::new(s.session.session_id.clone()).map_err(ForensicError::SessionId)?;
            ids.push(id);
        }
        store.close().await;
        Ok(ids)
    })
}
