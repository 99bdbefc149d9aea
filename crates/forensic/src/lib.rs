//! # leaktrace-forensic
//!
//! The forensic evaluation suite behind `leaktrace bench forensic`: it measures how strong the
//! mark is, the same way every time, on the real corpus.
//!
//! One [`run`]:
//! 1. cuts an excerpt of a corpus clip to a lossless mezzanine at the package height, embeds it
//!    ([`leaktrace_embed::embed_file`]) and encodes the plain (unmarked) baseline with the same
//!    settings;
//! 2. issues sessions into a real SQLite store ([`leaktrace_session::issue_session`]) and
//!    renders each pirate's stream from its codeword, byte for byte what the edge serves
//!    ([`stream::Package::render`]);
//! 3. runs every attack of [`attack::table`] (or of [`attack::wild_table`], the copies pirate
//!    sites publish, in [`Mode::Wild`]) through the ffmpeg CLI (at most two at a time), plus
//!    collusion (segment interleaving, per-position majority and minority vote, a random pick
//!    per position, frame averaging then a re-encode, for c = 2, 3, 4) and innocent sources
//!    (unmarked copies, another title, a random codeword; in the wild mode also copies that
//!    carry the pirates' overlays);
//! 4. decodes each leak once with [`leaktrace_detect::decide`] and then, without re-running
//!    ffmpeg, sweeps the capture length to find the segments needed for an accusation at the
//!    requested probability over the registry ([`stats::sweep`]), and scores many sessions
//!    that did not make the leak ([`stats::innocents`]);
//! 5. measures invisibility ([`quality`]) and writes a Markdown report with PNG plots
//!    ([`report`]).
//!
//! ```no_run
//! use leaktrace_forensic::{Config, Mode, run};
//! let cfg = Config::for_mode(Mode::Quick, "corpus/cache".into(), "docs/bench".into());
//! let report = run(&cfg, &|e| eprintln!("{e:?}"))?;
//! let md = leaktrace_forensic::report::markdown(&report);
//! assert!(md.contains("Targets"));
//! # Ok::<(), leaktrace_forensic::ForensicError>(())
//! ```

pub mod attack;
mod plot;
pub mod quality;
pub mod report;
pub mod stats;
pub mod stream;

use attack::{Attack, Source, Target};
use leaktrace_core::{Codebook, KeyVersion, MasterKey, SessionId, TitleId, Variant};
use leaktrace_detect::{DecideOptions, Decisions, decide};
use leaktrace_embed::{PipelineConfig, Reference};
use serde::Serialize;
use stats::{Accuracy, Innocents, Operating, Sweep};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use stream::Package;

/// Errors of the suite.
#[derive(Debug, thiserror::Error)]
pub enum ForensicError {
    /// A setting or an input is unusable.
    #[error("{0}")]
    Config(String),
    /// An ffmpeg run failed.
    #[error("ffmpeg ({what}) failed: {stderr}")]
    Ffmpeg {
        /// What was being run.
        what: String,
        /// Its error output.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] leaktrace_embed::EmbedError),
    /// Decoding a clip failed.
    #[error(transparent)]
    Media(leaktrace_media::MediaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] leaktrace_store::StoreError),
    /// Issuing a session failed.
    #[error(transparent)]
    Session(#[from] leaktrace_session::SessionError),
    /// Drawing a plot failed.
    #[error("plot {file}: {message}")]
    Plot {
        /// The PNG being drawn.
        file: String,
        /// What went wrong.
        message: String,
    },
}

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// CI-sized: a short 360p excerpt, two attacks, one collusion, few innocents, no VMAF.
    Smoke,
    /// A few minutes on 2 cores: a 192 s 360p excerpt, every attack.
    Quick,
    /// Up to an hour: the whole film at 720p, every attack.
    Full,
    /// Collusion on real video: the whole film at 360p with 1-s positions (596 of them, the
    /// most the corpus gives), the served stream, collusion of 2, 3 and 4, the innocent
    /// sources; no single-pirate attack, no VMAF.
    Collusion,
    /// Copies the way pirates publish them ([`attack::wild_table`]): logos, subtitles, a
    /// ticker, a player's chrome, mirror, picture-in-picture, a speed change, alone and with a
    /// 720p re-encode or a camcorder; innocent copies carry the same overlays.
    Wild,
}

impl Mode {
    /// Lower-case name (file suffix).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
            Mode::Collusion => "collusion",
            Mode::Wild => "wild",
        }
    }
}

/// An excerpt of a corpus clip.
#[derive(Clone, Debug, Serialize)]
pub struct Clip {
    /// File name in the corpus directory.
    pub file: String,
    /// Start (s).
    pub start_s: f64,
    /// Duration (s).
    pub duration_s: f64,
}

/// Settings of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The mode.
    pub mode: Mode,
    /// Corpus directory (`$LEAKTRACE_CORPUS`).
    pub corpus: PathBuf,
    /// Output directory for the report and plots.
    pub out: PathBuf,
    /// Keep the work files here instead of a temporary directory.
    pub work: Option<PathBuf>,
    /// The marked title.
    pub clip: Clip,
    /// Another title (innocent source).
    pub other: Clip,
    /// Package height (one rendition).
    pub height: u32,
    /// x264 preset of the package.
    pub preset: String,
    /// Sessions issued into the store (pirates and colluders are drawn from them).
    pub sessions: usize,
    /// Requested probability and registry size of the accusation.
    pub op: Operating,
    /// Unregistered sessions scored against every leak.
    pub innocents_per_leak: usize,
    /// Sessions scored against each innocent source.
    pub innocents_per_source: usize,
    /// Collusion sizes.
    pub colluders: Vec<usize>,
    /// Which single-pirate attacks to run.
    pub attacks: AttackSet,
    /// Pirates per single-pirate attack (1 to `sessions`): each attack is run on this many
    /// sessions' streams and its row pools them (decision accuracy over all their positions,
    /// innocents over all their leaks, segments to accuse as the median and range over pirates).
    pub pirates: usize,
    /// Position (segment) duration of the package, milliseconds.
    pub segment_ms: u64,
    /// ffmpeg with `libvmaf` (`None`: VMAF not measured).
    pub vmaf_ffmpeg: Option<PathBuf>,
    /// Concurrent ffmpeg attack jobs (1 or 2).
    pub jobs: usize,
    /// Every how many frames the mark-only PSNR is measured.
    pub mark_step: usize,
    /// Mark strength relative to the default mask (0.1 to 4.0), as `leaktrace embed --strength`.
    pub strength: f32,
    /// Run only the leaks with these names (empty: all). For investigating one attack; the
    /// report then holds only those rows.
    pub only: Vec<String>,
    /// The command line, for the report.
    pub command: String,
    /// The git commit, for the report.
    pub commit: String,
}

impl Config {
    /// The settings of a mode.
    pub fn for_mode(mode: Mode, corpus: PathBuf, out: PathBuf) -> Self {
        let op = Operating {
            fp: 1e-6,
            registry: 1_000_000,
        };
        let base = Config {
            mode,
            corpus,
            out,
            work: None,
            clip: Clip {
                file: "bbb.mp4".into(),
                start_s: 60.0,
                duration_s: 192.0,
            },
            other: Clip {
                file: "trailer_bbb.mp4".into(),
                start_s: 0.0,
                duration_s: 55.0,
            },
            height: 360,
            preset: "veryfast".into(),
            sessions: 40,
            op,
            innocents_per_leak: 1000,
            innocents_per_source: 10_000,
            colluders: vec![2, 3, 4],
            attacks: AttackSet::Standard,
            pirates: 1,
            segment_ms: 2000,
            vmaf_ffmpeg: None,
            jobs: 2,
            mark_step: 4,
            only: Vec::new(),
            strength: 1.0,
            command: String::new(),
            commit: String::new(),
        };
        match mode {
            Mode::Quick => base,
            // A smaller operating point, stated in the report: 40 positions cannot reach
            // 10⁻⁶ among 10⁶ (about 0.4-0.7 bit per position with Tardos-biased bits).
            Mode::Smoke => Config {
                clip: Clip {
                    file: "bbb.mp4".into(),
                    start_s: 60.0,
                    duration_s: 80.0,
                },
                op: Operating {
                    fp: 1e-2,
                    registry: 100,
                },
                other: Clip {
                    file: "trailer_bbb.mp4".into(),
                    start_s: 0.0,
                    duration_s: 30.0,
                },
                sessions: 8,
                innocents_per_leak: 500,
                innocents_per_source: 2000,
                colluders: vec![2],
                attacks: AttackSet::Smoke,
                mark_step: 24,
                ..base
            },
            Mode::Collusion => Config {
                clip: Clip {
                    file: "bbb.mp4".into(),
                    start_s: 0.0,
                    duration_s: 596.0,
                },
                segment_ms: 1000,
                attacks: AttackSet::None,
                mark_step: 48,
                ..base
            },
            Mode::Full => Config {
                clip: Clip {
                    file: "bbb.mp4".into(),
                    start_s: 0.0,
                    duration_s: 596.0,
                },
                height: 720,
                sessions: 100,
                innocents_per_leak: 2000,
                innocents_per_source: 20_000,
                mark_step: 2,
                ..base
            },
            // The quick excerpt (96 positions of 2 s: a capture of exactly the 96-segment
            // budget); collusion has its own mode.
            Mode::Wild => Config {
                colluders: Vec::new(),
                attacks: AttackSet::Wild,
                mark_step: 24,
                ..base
            },
        }
    }

    /// The file stem of the report: `forensic-<mode>`, and `-<clip>` (the clip's file stem)
    /// when the clip is not the mode's own.
    pub fn report_stem(&self) -> String {
        let own = Config::for_mode(self.mode, PathBuf::new(), PathBuf::new()).clip;
        if own.file == self.clip.file {
            format!("forensic-{}", self.mode.name())
        } else {
            let clip = Path::new(&self.clip.file)
                .file_stem()
                .map_or_else(|| "clip".into(), |s| s.to_string_lossy().into_owned());
            format!("forensic-{}-{clip}", self.mode.name())
        }
    }

    /// The settings as the report records them: the corpus, output, work and VMAF ffmpeg paths
    /// and the command line as given, except that an absolute path under the current directory
    /// is written relative to it. Nothing is canonicalised, so a report names no machine's
    /// directory layout that the command line did not.
    pub fn as_recorded(&self) -> Config {
        let cwd = std::env::current_dir().ok();
        let rel = |p: &Path| relative_to(p, cwd.as_deref());
        Config {
            corpus: rel(&self.corpus),
            out: rel(&self.out),
            work: self.work.as_deref().map(rel),
            vmaf_ffmpeg: self.vmaf_ffmpeg.as_deref().map(rel),
            command: self
                .command
                .split(' ')
                .map(|arg| match arg.split_once('=') {
                    Some((opt, v)) if opt.starts_with("--") => {
                        format!("{opt}={}", rel(Path::new(v)).display())
                    }
                    _ => rel(Path::new(arg)).display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
            ..self.clone()
        }
    }
}

/// `p` relative to `cwd` when `p` is absolute and lies under it (`.` for `cwd` itself), else
/// `p` as given.
fn relative_to(p: &Path, cwd: Option<&Path>) -> PathBuf {
    match cwd
        .filter(|_| p.is_absolute())
        .and_then(|c| p.strip_prefix(c).ok())
    {
        Some(r) if r.as_os_str().is_empty() => PathBuf::from("."),
        Some(r) => r.to_path_buf(),
        None => p.to_path_buf(),
    }
}

/// Which single-pirate attacks a run makes (the served stream is always run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AttackSet {
    /// None: collusion and innocents only.
    None,
    /// The CI-sized subset of [`attack::table`].
    Smoke,
    /// [`attack::table`].
    Standard,
    /// [`attack::wild_table`], and innocent copies that carry its overlays.
    Wild,
}

/// Progress events.
#[derive(Clone, Debug)]
pub enum Event {
    /// A preparation stage started.
    Stage(String),
    /// The leak jobs start; this many in all.
    Jobs(usize),
    /// One leak job finished.
    JobDone(String),
}

/// Which leak a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    /// Total wall time (s).
    pub elapsed_s: f64,
}

enum Input {
    /// Render this variant sequence and use it as is (or attack it).
    Stream(Vec<Variant>),
    /// An existing file.
    File(PathBuf),
    /// Render each sequence and blend the decoded streams.
    Average(Vec<Vec<Variant>>),
}

struct Job {
    /// Unique job name (its work directory).
    name: String,
    /// The report row it belongs to (several pirates of one attack share a row).
    row: String,
    group: Group,
    description: String,
    input: Input,
    attack: Option<Attack>,
    target: Target,
    guilty: Vec<SessionId>,
    /// Variant in the leak per position, where it is a single one.
    truth: Vec<Option<Variant>>,
}

struct Outcome {
    command: String,
    ffmpeg_s: f64,
    decide_s: f64,
    decisions: Result<Decisions, String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ForensicError + '_ {
    move |source| ForensicError::Io {
        path: path.to_path_buf(),
        source,
    }
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
        return Err(ForensicError::Config(format!(
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

fn random_bytes() -> Result<[u8; 32], ForensicError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ForensicError::Config(format!("no OS randomness: {e}")))?;
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
        .map_err(|e| ForensicError::Config(format!("async runtime: {e}")))?;
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
                leaktrace_core::session::TokenMode::Indirect,
            )
            .await?;
            let id = SessionId::new(s.session.session_id.clone())
                .map_err(|e| ForensicError::Config(format!("stored session id: {e}")))?;
            ids.push(id);
        }
        store.close().await;
        Ok(ids)
    })
}

/// Runs the suite.
pub fn run(cfg: &Config, progress: &(dyn Fn(Event) + Sync)) -> Result<Report, ForensicError> {
    let started = Instant::now();
    if !(1..=2).contains(&cfg.jobs) {
        return Err(ForensicError::Config(format!(
            "{} concurrent jobs requested (expected 1 or 2)",
            cfg.jobs
        )));
    }
    let range = leaktrace_embed::mask::STRENGTH_RANGE;
    if !range.contains(&cfg.strength) {
        return Err(ForensicError::Config(format!(
            "strength {} out of range (expected {} to {})",
            cfg.strength,
            range.start(),
            range.end()
        )));
    }
    if cfg.pirates == 0 || cfg.pirates > cfg.sessions {
        return Err(ForensicError::Config(format!(
            "{} pirates per attack requested (expected 1 to the {} sessions)",
            cfg.pirates, cfg.sessions
        )));
    }
    if cfg.sessions < 4 {
        return Err(ForensicError::Config(format!(
            "{} sessions requested (expected at least 4)",
            cfg.sessions
        )));
    }
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
    let mut corpus_sha256 = Vec::new();
    for c in [&cfg.clip, &cfg.other] {
        let p = cfg.corpus.join(&c.file);
        if p.is_file() && !corpus_sha256.iter().any(|(f, _)| f == &c.file) {
            progress(Event::Stage(format!("hashing {}", c.file)));
            corpus_sha256.push((c.file.clone(), sha256(&p)?));
        }
    }

    progress(Event::Stage("cutting the mezzanine".into()));
    let mezz = work.join("mezzanine.mp4");
    cut(&cfg.corpus, &cfg.clip, cfg.height, true, &mezz)?;
    let other = work.join("other-title.mp4");
    cut(&cfg.corpus, &cfg.other, cfg.height, false, &other)?;

    progress(Event::Stage("embedding".into()));
    let key = MasterKey::from_bytes(random_bytes()?, KeyVersion::new(1));
    let title = TitleId::new("forensic").map_err(|e| ForensicError::Config(e.to_string()))?;
    let mut pcfg = PipelineConfig::new(title.clone());
    pcfg.ladder = Some(format!("{}p", cfg.height));
    pcfg.preset = Some(cfg.preset.clone());
    pcfg.mask = pcfg.mask.scaled(cfg.strength);
    pcfg.segment = leaktrace_core::SegmentDuration::from_millis(cfg.segment_ms)
        .map_err(|e| ForensicError::Config(e.to_string()))?;
    let pkg_dir = work.join("pkg");
    let summary = leaktrace_embed::embed_file(&mezz, &pkg_dir, &key, &pcfg, &mut |_| {})?;
    let rend = summary
        .renditions
        .first()
        .ok_or_else(|| ForensicError::Config("the package has no rendition".into()))?;
    let pkg = Package::open(&pkg_dir.join(&rend.name))?;
    let reference = Reference::load(&pkg_dir.join("reference"))?;
    let fps = f64::from(summary.frame_rate[0]) / f64::from(summary.frame_rate[1]);
    progress(Event::Stage("plain encode".into()));
    let plain_dir = work.join("plain");
    std::fs::create_dir_all(&plain_dir).map_err(io(&plain_dir))?;
    let plain = leaktrace_embed::encode_plain(&mezz, &plain_dir, &pcfg)?;
    let plain_file = plain
        .files
        .first()
        .cloned()
        .ok_or_else(|| ForensicError::Config("plain encode wrote nothing".into()))?;

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
    if !cfg.only.is_empty() {
        let mut names: Vec<String> = jobs.iter().map(|j| j.row.clone()).collect();
        names.dedup();
        if let Some(unknown) = cfg.only.iter().find(|n| !names.contains(n)) {
            return Err(ForensicError::Config(format!(
                "no leak named {unknown:?} in this mode (expected one of: {})",
                names.join(", ")
            )));
        }
        jobs.retain(|j| cfg.only.contains(&j.row));
    }
    if cfg.work.is_some() {
        // A kept run can be re-examined offline (decisions.json in each job directory); the
        // key is a throw-away bench key, written so the package can be read again.
        let f = work.join("key.hex");
        std::fs::write(&f, key.to_hex()).map_err(io(&f))?;
    }
    progress(Event::Jobs(jobs.len()));
    let pattern_key = key.pattern_key(&title);
    let outcomes = run_jobs(cfg, &jobs, &pkg, &work, &reference, &pattern_key, progress);

    let mut report_rows: (Vec<LeakResult>, Vec<LeakResult>, Vec<LeakResult>) = Default::default();
    let mut total = Innocents::default();
    let evaluated: Vec<LeakResult> = jobs
        .iter()
        .zip(outcomes)
        .map(|(job, out)| evaluate(cfg, job, out, &book, &sessions, &nonce))
        .collect();
    for row in pool(evaluated) {
        total.merge(&row.innocents);
        match row.group {
            Group::Attack => report_rows.0.push(row),
            Group::Collusion => report_rows.1.push(row),
            Group::Innocent => report_rows.2.push(row),
        }
    }
    total.threshold_normalised = None;

    progress(Event::Stage("invisibility".into()));
    let invisibility = measure_quality(cfg, &pkg, &work, &mezz, &plain_file, &key, &title, &pcfg)?;

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
        attacks: report_rows.0,
        collusion: report_rows.1,
        innocent_sources: report_rows.2,
        innocents_total: total,
        invisibility,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn build_jobs(
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
    let some = |w: &[Variant]| w.iter().copied().map(Some).collect::<Vec<_>>();
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
        let words: Vec<Vec<Variant>> = group.iter().map(&word).collect();
        let single = |p: usize| {
            let v = words[0][p];
            words.iter().all(|w| w[p] == v).then_some(v)
        };
        let mixed: Vec<Option<Variant>> = (0..pkg.positions as usize).map(single).collect();
        let coin = |p: usize| fair_coin("leaktrace forensic majority tie v1", nonce, p as u64);
        let pick = |p: usize| {
            (draw("leaktrace forensic random pick v1", nonce, p as u64) % c as u64) as usize
        };
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
        if cfg.attacks == AttackSet::Smoke {
            let (n, d, i, t) = strategies
                .into_iter()
                .next()
                .ok_or_else(|| ForensicError::Config("no collusion strategy".into()))?;
            jobs.push(collusion_job(c, n, d, i, t, &group));
        } else {
            for (n, d, i, t) in strategies {
                jobs.push(collusion_job(c, n, d, i, t, &group));
            }
        }
    }
    // Innocent sources.
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
    Ok(jobs)
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

fn run_jobs(
    cfg: &Config,
    jobs: &[Job],
    pkg: &Package,
    work: &Path,
    reference: &Reference,
    pattern_key: &leaktrace_core::DerivedKey,
    progress: &(dyn Fn(Event) + Sync),
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let out = run_job(
                        job,
                        i,
                        pkg,
                        work,
                        cfg.work.is_some(),
                        reference,
                        pattern_key,
                    );
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(out);
                    }
                    progress(Event::JobDone(job.name.clone()));
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                command: String::new(),
                ffmpeg_s: 0.0,
                decide_s: 0.0,
                decisions: Err("job did not run".into()),
            })
        })
        .collect()
}

fn run_job(
    job: &Job,
    i: usize,
    pkg: &Package,
    work: &Path,
    keep: bool,
    reference: &Reference,
    pattern_key: &leaktrace_core::DerivedKey,
) -> Outcome {
    let dir = work.join(format!("job{i:02}-{}", job.name));
    let mut command = String::new();
    let mut ffmpeg_s = 0.0;
    let mut decide_s = 0.0;
    let result = (|| -> Result<Decisions, ForensicError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let input = match &job.input {
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
                ffmpeg_s += attack::average(&refs, &out)?;
                command = format!(
                    "-filter_complex {}mix=inputs={} {}",
                    (0..files.len())
                        .map(|k| format!("[{k}:v]"))
                        .collect::<String>(),
                    files.len(),
                    attack::default_encoder().join(" ")
                );
                out
            }
        };
        let suspect = match &job.attack {
            Some(a) => {
                let out = dir.join("attacked.mp4");
                ffmpeg_s += a.run(&input, &out)?;
                command = a.command(Path::new("IN"), Path::new("OUT.mp4")).join(" ");
                out
            }
            None => input,
        };
        let opts = DecideOptions::default();
        let t = Instant::now();
        let d = decide(&suspect, reference, pattern_key, &opts)
            .map_err(|e| ForensicError::Config(e.to_string()));
        decide_s = t.elapsed().as_secs_f64();
        if let (true, Ok(d)) = (keep, &d) {
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
            let json = serde_json::to_vec_pretty(d)
                .map_err(|e| ForensicError::Config(format!("decisions as JSON: {e}")))?;
            std::fs::write(&f, json).map_err(io(&f))?;
        }
        d
    })();
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Outcome {
        command,
        ffmpeg_s,
        decide_s,
        decisions: result.map_err(|e| e.to_string()),
    }
}

fn evaluate(
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

#[allow(clippy::too_many_arguments)]
fn measure_quality(
    cfg: &Config,
    pkg: &Package,
    work: &Path,
    mezz: &Path,
    plain: &Path,
    key: &MasterKey,
    title: &TitleId,
    pcfg: &PipelineConfig,
) -> Result<Invisibility, ForensicError> {
    let n = pkg.positions as usize;
    let (fa, fb) = (work.join("all-a.mp4"), work.join("all-b.mp4"));
    pkg.render(&vec![Variant::A; n], &fa)?;
    pkg.render(&vec![Variant::B; n], &fb)?;
    let qdir = work.join("quality");
    std::fs::create_dir_all(&qdir).map_err(io(&qdir))?;
    let a_vs_plain = quality::psnr_ssim(&fa, plain, &qdir)?;
    let b_vs_plain = quality::psnr_ssim(&fb, plain, &qdir)?;
    let (vmaf, vmaf_note) = match &cfg.vmaf_ffmpeg {
        Some(ff) => {
            let r = (|| -> Result<[f64; 3], ForensicError> {
                Ok([
                    quality::vmaf(ff, plain, mezz, &qdir)?,
                    quality::vmaf(ff, &fa, mezz, &qdir)?,
                    quality::vmaf(ff, &fb, mezz, &qdir)?,
                ])
            })();
            match r {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            }
        }
        None => (
            None,
            Some("no ffmpeg with libvmaf given (set LEAKTRACE_VMAF_FFMPEG or install tools/.venv: tools/quality.sh does it)".into()),
        ),
    };
    let mark_only = quality::mark_only(mezz, key, title, pcfg.segment, pcfg.mask, cfg.mark_step)?;
    Ok(Invisibility {
        a_vs_plain,
        b_vs_plain,
        vmaf,
        vmaf_note,
        mark_only,
    })
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

    #[test]
    fn recorded_paths_are_relative_under_the_current_directory_and_as_given_elsewhere() {
        let cwd = Some(Path::new("/srv/repo"));
        let rel = |p: &str| relative_to(Path::new(p), cwd);
        assert_eq!(rel("/srv/repo/corpus/cache"), PathBuf::from("corpus/cache"));
        assert_eq!(rel("/srv/repo"), PathBuf::from("."));
        assert_eq!(rel("/srv/repository/x"), PathBuf::from("/srv/repository/x"));
        assert_eq!(rel("/tmp/out"), PathBuf::from("/tmp/out"));
        assert_eq!(rel("docs/bench"), PathBuf::from("docs/bench"));
        assert_eq!(rel("../corpus"), PathBuf::from("../corpus"));
        assert_eq!(relative_to(Path::new("/a/b"), None), PathBuf::from("/a/b"));

        let here = std::env::current_dir().unwrap();
        let mut cfg = Config::for_mode(Mode::Quick, here.join("corpus/cache"), "docs/bench".into());
        cfg.work = Some(PathBuf::from("/nonexistent/work"));
        cfg.command = format!(
            "leaktrace bench forensic --quick --keep=/nonexistent/work --out {}",
            here.join("out").display()
        );
        let r = cfg.as_recorded();
        assert_eq!(r.corpus, PathBuf::from("corpus/cache"));
        assert_eq!(r.out, PathBuf::from("docs/bench"));
        assert_eq!(r.work, Some(PathBuf::from("/nonexistent/work")));
        assert_eq!(
            r.command,
            "leaktrace bench forensic --quick --keep=/nonexistent/work --out out"
        );
    }
}
