//! Detection of a capture, behind the [`Analyzer`] trait so the crawler does
//! not depend on how detect orchestrates. [`DetectAnalyzer`] is the library
//! pipeline `leaktrace detect` runs ([`leaktrace_detect::investigate::investigate`]),
//! its [`Report`] mapped onto an [`Analysis`].

use std::path::{Path, PathBuf};

use leaktrace_core::{TitleId, TitleKeySource};
use leaktrace_detect::DecideOptions;
use leaktrace_detect::DetectError;
use leaktrace_detect::follow::{FollowOptions, Source, Update, follow};
use leaktrace_detect::investigate::{Options, investigate};
use leaktrace_detect::report::{Report, Verdict};
use leaktrace_store::{FindingVerdict, Store};
use serde::Serialize;
use std::sync::Arc;

use crate::CrawlError;

/// One accused session.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Accused {
    /// Session id.
    pub session_id: String,
    /// Account behind it.
    pub account: String,
    /// Tardos score.
    pub score: f64,
    /// False-accusation probability over the registry (union bound).
    pub probability: f64,
}

/// The outcome of analysing one capture.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Accused, no accusation, or no match (the capture is not a copy of the title).
    pub verdict: FindingVerdict,
    /// Accused sessions, best first.
    pub accused: Vec<Accused>,
    /// The full report (JSON, schema `leaktrace.detect.v1`; for `no match`, the reason).
    pub report: serde_json::Value,
}

impl Analysis {
    /// The analysis a detect [`Report`] stands for: its verdict, its accused sessions with
    /// their false-accusation probabilities, and the report itself as JSON.
    pub fn from_report(report: &Report) -> Result<Self, CrawlError> {
        let accused = report
            .accused
            .iter()
            .map(|s| Accused {
                session_id: s.session_id.clone(),
                account: s.account.clone(),
                score: s.score,
                probability: s.probability,
            })
            .collect();
        let verdict = match report.verdict {
            Verdict::Accused => FindingVerdict::Accused,
            Verdict::NoAccusation => FindingVerdict::NoAccusation,
            other => {
                return Err(CrawlError::Detect(format!(
                    "detect report with a verdict the crawler does not know: {other:?}"
                )));
            }
        };
        let json = serde_json::to_value(report)
            .map_err(|e| CrawlError::Detect(format!("detect report: {e}")))?;
        Ok(Analysis {
            verdict,
            accused,
            report: json,
        })
    }
}

/// Analyses a captured file against a title. Called on a blocking thread.
pub trait Analyzer: Send + Sync {
    /// Runs detection of `capture` for `title_id`.
    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError>;

    /// What an analysis for `title_id` depends on besides the captured bytes, as text (for
    /// [`DetectAnalyzer`]: the title's key version and reference, and the
    /// detection options). The crawler reuses an earlier analysis only for the same bytes,
    /// the same title and the same inputs, and records them in the finding's report (key
    /// `analysis_inputs`). Called on a blocking thread. The default: nothing besides the bytes
    /// and the title.
    fn inputs(&self, title_id: &str) -> Result<String, CrawlError> {
        let _ = title_id;
        Ok(String::new())
    }

    /// Whether [`Analyzer::analyze_following`] works: the crawler then decides an HLS
    /// capture while it is taken, instead of after it ends.
    fn follows(&self) -> bool {
        false
    }

    /// Decides a capture while it is taken: `segments` yields its segments in order, each a
    /// file decodable alone; the capture has ended when the sender is dropped. Returns at the
    /// first accusation (the crawler then stops the capture) or when the capture ends. Called
    /// on a blocking thread. The default refuses: see [`Analyzer::follows`].
    fn analyze_following(
        &self,
        segments: std::sync::mpsc::Receiver<tempfile::TempPath>,
        title_id: &str,
    ) -> Result<Analysis, CrawlError> {
        drop(segments);
        Err(CrawlError::Detect(format!(
            "{title_id}: this analyzer decides finished captures only"
        )))
    }
}

/// [`Analyzer`] running [`investigate`], the pipeline of `leaktrace detect`:
/// registration and per-position decisions, then every session of the title
/// in the store scored and accused at the configured probability.
pub struct DetectAnalyzer {
    store: Store,
    keys: Arc<dyn TitleKeySource>,
    options: Options,
    /// Title id → reference directory overrides (else the store's `reference_path`).
    references: Vec<(String, PathBuf)>,
    handle: tokio::runtime::Handle,
}

impl DetectAnalyzer {
    /// An analyzer over `store` with the titles' keys from `keys` (a detection key set:
    /// the crawler needs no master key), accusing at false-accusation probability `fp` (1e-12
    /// to 0.1) with registration offsets up to `max_offset_s`; must be created inside a tokio
    /// runtime.
    pub fn new(
        store: Store,
        keys: Arc<dyn TitleKeySource>,
        fp: f64,
        max_offset_s: f64,
        references: Vec<(String, PathBuf)>,
    ) -> Result<Self, CrawlError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| CrawlError::Detect("DetectAnalyzer needs a tokio runtime".into()))?;
        let options = Options {
            fp,
            decide: DecideOptions {
                max_offset_s,
                ..DecideOptions::default()
            },
            ..Options::default()
        };
        Ok(DetectAnalyzer {
            store,
            keys,
            options,
            references,
            handle,
        })
    }
}

impl DetectAnalyzer {
    /// The title to analyse against, and its reference directory when one is configured.
    fn target(&self, title_id: &str) -> Result<(TitleId, Option<&Path>), CrawlError> {
        let title = TitleId::new(title_id.to_owned())
            .map_err(|e| CrawlError::Detect(format!("title id {title_id:?}: {e}")))?;
        let reference = self
            .references
            .iter()
            .find(|(t, _)| t == title_id)
            .map(|(_, p)| p.as_path());
        Ok((title, reference))
    }
}

impl Analyzer for DetectAnalyzer {
    fn inputs(&self, title_id: &str) -> Result<String, CrawlError> {
        let record = self
            .handle
            .block_on(self.store.get_title(title_id))
            .map_err(CrawlError::Store)?;
        let reference = self
            .references
            .iter()
            .find(|(t, _)| t == title_id)
            .map(|(_, p)| p.clone())
            .or_else(|| {
                record
                    .as_ref()
                    .and_then(|r| r.reference_path.as_deref().map(PathBuf::from))
            });
        // The reference as a file: a new index written in place is another input.
        let file = reference.as_deref().and_then(|p| std::fs::metadata(p).ok());
        let modified = file
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos().to_string());
        Ok(serde_json::json!({
            "title_key_version": record.as_ref().map(|r| r.key_version),
            "reference": reference.as_ref().map(|p| p.display().to_string()),
            "reference_len": file.as_ref().map(std::fs::Metadata::len),
            "reference_modified": modified,
            "fp": self.options.fp,
            "max_offset_s": self.options.decide.max_offset_s,
        })
        .to_string())
    }

    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError> {
        let (title, reference) = self.target(title_id)?;
        let r = self.handle.block_on(investigate(
            &self.store,
            self.keys.as_ref(),
            capture,
            &title,
            reference,
            &self.options,
            None,
        ));
        analysis_of(r, title_id, &capture.display().to_string())
    }

    fn follows(&self) -> bool {
        true
    }

    fn analyze_following(
        &self,
        segments: std::sync::mpsc::Receiver<tempfile::TempPath>,
        title_id: &str,
    ) -> Result<Analysis, CrawlError> {
        let (title, reference) = self.target(title_id)?;
        let mut last = (0.0f64, 0.0f64, 0u32);
        let mut log = |u: &Update| {
            last = (u.captured_s, u.elapsed_s, last.2 + 1);
            tracing::info!(
                title = title_id,
                captured_s = u.captured_s,
                positions = u.report.calibration.positions_used,
                verdict = ?u.report.verdict,
                "deciding the capture as it grows"
            );
        };
        let r = self.handle.block_on(follow(
            &self.store,
            self.keys.as_ref(),
            Source::Segments(segments),
            &title,
            reference,
            &FollowOptions {
                investigate: self.options.clone(),
                ..FollowOptions::default()
            },
            &mut log,
        ));
        let (captured_s, elapsed_s, rounds) = last;
        let mut analysis = analysis_of(r, title_id, "the live capture")?;
        if let Some(o) = analysis.report.as_object_mut() {
            // How much of the capture the decisions read, and when, from the first segment
            // the follower was handed.
            o.insert(
                FOLLOW_KEY.to_owned(),
                serde_json::json!({
                    "captured_s": captured_s,
                    "elapsed_s": elapsed_s,
                    "rounds": rounds,
                }),
            );
        }
        Ok(analysis)
    }
}

/// The key under which the report of a capture decided while it was taken
/// ([`Analyzer::analyze_following`]) records the seconds of capture its decisions read
/// (`captured_s`), the seconds from the start of following to its last round (`elapsed_s`)
/// and the rounds of decisions (`rounds`).
pub const FOLLOW_KEY: &str = "follow";

/// The analysis an investigation's outcome stands for: a report, a "no match" finding, or the
/// failure of the analysis (`what`: the capture, for the message).
fn analysis_of(
    r: Result<Report, DetectError>,
    title_id: &str,
    what: &str,
) -> Result<Analysis, CrawlError> {
    match r {
        Ok(report) => Analysis::from_report(&report),
        Err(e @ DetectError::NoMatch { .. }) => Ok(Analysis {
            verdict: FindingVerdict::NoMatch,
            accused: Vec::new(),
            report: serde_json::json!({ "title": title_id, "reason": e.to_string() }),
        }),
        Err(e) => Err(CrawlError::Detect(format!("{what}: {e}"))),
    }
}
