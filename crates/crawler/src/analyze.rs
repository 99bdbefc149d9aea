//! Detection of a capture, behind the [`Analyzer`] trait so the crawler does
//! not depend on how detect orchestrates. [`DetectAnalyzer`] is the library
//! pipeline `leaktrace detect` runs ([`leaktrace_detect::investigate::investigate`]),
//! its [`Report`] mapped onto an [`Analysis`].

use std::path::{Path, PathBuf};

use leaktrace_core::{TitleId, TitleKeySource};
use leaktrace_detect::DecideOptions;
use leaktrace_detect::DetectError;
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
        let title = TitleId::new(title_id.to_owned())
            .map_err(|e| CrawlError::Detect(format!("title id {title_id:?}: {e}")))?;
        let reference = self
            .references
            .iter()
            .find(|(t, _)| t == title_id)
            .map(|(_, p)| p.as_path());
        let r = self.handle.block_on(investigate(
            &self.store,
            self.keys.as_ref(),
            capture,
            &title,
            reference,
            &self.options,
            None,
        ));
        match r {
            Ok(report) => Analysis::from_report(&report),
            Err(e @ DetectError::NoMatch { .. }) => Ok(Analysis {
                verdict: FindingVerdict::NoMatch,
                accused: Vec::new(),
                report: serde_json::json!({ "title": title_id, "reason": e.to_string() }),
            }),
            Err(e) => Err(CrawlError::Detect(format!("{}: {e}", capture.display()))),
        }
    }
}
