//! Detection of a capture, behind the [`Analyzer`] trait so the crawler does
//! not depend on how detect orchestrates (a library entry point in the detect
//! crate can replace [`DetectAnalyzer`]'s body without touching the crawler).

use std::path::{Path, PathBuf};

use leaktrace_core::{MasterKey, SessionId, TitleId};
use leaktrace_detect::accuse::Accuser;
use leaktrace_detect::{DecideOptions, decide};
use leaktrace_embed::Reference;
use leaktrace_store::Store;
use serde::Serialize;

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
    /// `accused` or `no accusation`.
    pub verdict: String,
    /// Accused sessions, best first.
    pub accused: Vec<Accused>,
    /// The full report (JSON, schema `leaktrace.detect.v1`).
    pub report: serde_json::Value,
}

/// Analyses a captured file against a title. Called on a blocking thread.
pub trait Analyzer: Send + Sync {
    /// Runs detection of `capture` for `title_id`.
    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError>;
}

/// [`Analyzer`] using the detect library the way `leaktrace detect` does:
/// registration and per-position decisions, then every session of the title
/// in the store scored and accused at the configured probability.
pub struct DetectAnalyzer {
    store: Store,
    key: MasterKey,
    fp: f64,
    max_offset_s: f64,
    /// Title id → reference directory overrides (else the store's `reference_path`).
    references: Vec<(String, PathBuf)>,
    handle: tokio::runtime::Handle,
}

impl DetectAnalyzer {
    /// An analyzer over `store` with the operator `key`; must be created inside a tokio runtime.
    pub fn new(
        store: Store,
        key: MasterKey,
        fp: f64,
        max_offset_s: f64,
        references: Vec<(String, PathBuf)>,
    ) -> Result<Self, CrawlError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| CrawlError::Detect("DetectAnalyzer needs a tokio runtime".into()))?;
        Ok(DetectAnalyzer {
            store,
            key,
            fp,
            max_offset_s,
            references,
            handle,
        })
    }
}

const BATCH: u32 = 10_000;

impl Analyzer for DetectAnalyzer {
    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError> {
        let title = TitleId::new(title_id.to_owned())
            .map_err(|e| CrawlError::Detect(format!("title id {title_id:?}: {e}")))?;
        let stored = self
            .handle
            .block_on(self.store.get_title(title_id))?
            .ok_or_else(|| CrawlError::Detect(format!("title {title_id:?} not in the store")))?;
        let ref_dir = self
            .references
            .iter()
            .find(|(t, _)| t == title_id)
            .map(|(_, p)| p.clone())
            .or_else(|| stored.reference_path.as_ref().map(PathBuf::from))
            .ok_or_else(|| {
                CrawlError::Detect(format!("no reference index known for title {title_id:?}"))
            })?;
        let reference = Reference::load(&ref_dir)
            .map_err(|e| CrawlError::Detect(format!("reference {}: {e}", ref_dir.display())))?;
        let opts = DecideOptions {
            max_offset_s: self.max_offset_s,
            ..DecideOptions::default()
        };
        let decisions = decide(capture, &reference, &self.key.pattern_key(&title), &opts)
            .map_err(|e| CrawlError::Detect(format!("{}: {e}", capture.display())))?;
        let n = self.handle.block_on(self.store.count_sessions(title_id))?;
        let codebook = self.key.codebook(&title);
        let accuser = Accuser::new(&decisions.positions, &codebook, self.fp, n);
        let mut accused = Vec::new();
        let mut top: Vec<Accused> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.handle.block_on(self.store.sessions_page(
                title_id,
                after.as_deref(),
                BATCH,
            ))?;
            for s in &page {
                let Ok(id) = SessionId::new(s.session_id.clone()) else {
                    continue;
                };
                let score = accuser.score(&id);
                let entry = || Accused {
                    session_id: s.session_id.clone(),
                    account: s.account_ref.clone(),
                    score,
                    probability: accuser.probability(score),
                };
                if accuser.accuses(score) {
                    accused.push(entry());
                }
                if top.len() < 5 || top.last().is_some_and(|t| score > t.score) {
                    top.push(entry());
                    top.sort_by(|x, y| y.score.total_cmp(&x.score));
                    top.truncate(5);
                }
            }
            match page.last() {
                Some(last) if page.len() == BATCH as usize => after = Some(last.session_id.clone()),
                _ => break,
            }
        }
        accused.sort_by(|x, y| y.score.total_cmp(&x.score));
        let verdict = if accused.is_empty() {
            "no accusation"
        } else {
            "accused"
        };
        let report = serde_json::json!({
            "schema": "leaktrace.detect.v1",
            "title": title_id,
            "verdict": verdict,
            "fp": self.fp,
            "sessions": n,
            "registration": {
                "offset_frames": decisions.offset,
                "mad": decisions.registration_mad,
                "suspect_frames": decisions.suspect_frames,
            },
            "calibration": {
                "exact": accuser.is_exact(),
                "positions_observed": decisions.positions.len(),
                "positions_used": accuser.used(),
                "threshold": accuser.threshold(),
                "best_possible": accuser.best_possible(),
            },
            "accused": accused,
            "top": top,
            "positions": decisions.positions,
        });
        Ok(Analysis {
            verdict: verdict.to_owned(),
            accused,
            report,
        })
    }
}
