//! The settings of a run: the [`Mode`], the clips it cuts, the [`Config`] each mode starts
//! from and the set of single-pirate attacks it makes.

use crate::stats::Operating;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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
    /// Copies the way pirates publish them
    /// ([`attack::wild_table`](crate::attack::wild_table)): logos, subtitles, a ticker, a
    /// player's chrome, mirror, picture-in-picture, a speed change, alone and with a 720p
    /// re-encode or a camcorder; innocent copies carry the same overlays.
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
#[non_exhaustive]
pub enum AttackSet {
    /// None: collusion and innocents only.
    None,
    /// The CI-sized subset of [`attack::table`](crate::attack::table).
    Smoke,
    /// [`attack::table`](crate::attack::table).
    Standard,
    /// [`attack::wild_table`](crate::attack::wild_table), and innocent copies that carry its
    /// overlays.
    Wild,
}

#[cfg(test)]
mod tests {
    use super::*;

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
