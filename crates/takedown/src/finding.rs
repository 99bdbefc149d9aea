//! [`FindingEvidence`]: what this crate needs to know about a finding.
//!
//! The crawler owns findings; the takedown side only reads this projection of one, so the
//! two crates do not depend on each other. The coordinator (or a test) maps a crawler
//! finding, or a `leaktrace detect --json` report plus capture facts, onto it.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::TakedownError;

/// One HTTP exchange of the capture: a request and the status it got (redirect hops first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// Requested URL.
    pub url: String,
    /// HTTP status of the response.
    pub status: u16,
    /// Server address the connection went to.
    pub ip: Option<IpAddr>,
    /// UTC unix seconds of the response.
    pub at: i64,
    /// Selected response headers (name, value), e.g. `location`, `content-type`, `server`.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// A session the detector accused, with its false-accusation probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccusedSession {
    /// Session id (internal; never printed in a notice).
    pub session_id: String,
    /// Probability that an innocent session scores at least this high (union-bounded).
    pub probability: f64,
}

/// The facts about one finding that a notice and its evidence bundle need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingEvidence {
    /// The finding's id in the store (`findings` table of the crawler).
    pub finding_id: String,
    /// Exact URL of the infringing file or playlist.
    pub url: String,
    /// Page on which the link was found, if any.
    pub page_url: Option<String>,
    /// Request/response chain ending at `url` (redirects first).
    pub chain: Vec<Hop>,
    /// Resolved server address of the final hop.
    pub resolved_ip: IpAddr,
    /// When the crawler first saw the URL (UTC unix seconds).
    pub found_at: i64,
    /// When the bytes were captured (UTC unix seconds).
    pub captured_at: i64,
    /// Number of captured bytes.
    pub byte_len: u64,
    /// BLAKE3 of the captured bytes (hex).
    pub blake3: String,
    /// SHA-256 of the captured bytes (hex).
    pub sha256: String,
    /// Catalogue title id (e.g. `bbb`).
    pub title_id: String,
    /// Catalogue names of the work (first is the main title).
    pub catalogue_names: Vec<String>,
    /// Set when the captured bytes are byte-identical to a catalogue asset: its id.
    #[serde(default)]
    pub catalogue_hash_match: Option<String>,
    /// Detector verdict (`accused`, `no accusation`), if the detector ran.
    pub verdict: Option<String>,
    /// Detector false-accusation target the report was made with.
    pub detect_fp: Option<f64>,
    /// Sessions the detector accused.
    #[serde(default)]
    pub accused: Vec<AccusedSession>,
    /// Positions the detector used / observed.
    #[serde(default)]
    pub positions_used: Option<u64>,
    /// The detect report as printed by `leaktrace detect --json`.
    pub detect_report: Option<serde_json::Value>,
    /// Plot written next to the report, if any.
    pub plot_path: Option<PathBuf>,
}

impl FindingEvidence {
    /// Fills the detector fields from a `leaktrace.detect.v1` report.
    ///
    /// The report must be about this finding: its `title` must be the finding's
    /// [`FindingEvidence::title_id`], and when it names the SHA-256 of the file it examined
    /// (`suspect_sha256`), that must be the finding's [`FindingEvidence::sha256`]. Fails if
    /// either differs, if the report is not that schema, or if it lacks `title`, `verdict`
    /// or `accused`.
    pub fn with_detect_report(mut self, report: serde_json::Value) -> Result<Self, TakedownError> {
        let bad = |what: &str| TakedownError::DetectReport(what.to_owned());
        if report.get("schema").and_then(|s| s.as_str()) != Some("leaktrace.detect.v1") {
            return Err(bad("schema is not \"leaktrace.detect.v1\""));
        }
        let title = report
            .get("title")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing \"title\": cannot tell which work it is about"))?;
        if title != self.title_id {
            return Err(bad(&format!(
                "the report is about title {title:?}, finding {} is title {:?}; not attached",
                self.finding_id, self.title_id
            )));
        }
        if let Some(digest) = report.get("suspect_sha256") {
            let digest = digest
                .as_str()
                .ok_or_else(|| bad("\"suspect_sha256\" is not a string"))?;
            if !digest.eq_ignore_ascii_case(&self.sha256) {
                return Err(bad(&format!(
                    "the report examined a file with SHA-256 {digest}, finding {} captured {}; not attached",
                    self.finding_id, self.sha256
                )));
            }
        }
        let verdict = report
            .get("verdict")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("missing \"verdict\""))?;
        let accused = report
            .get("accused")
            .and_then(|a| a.as_array())
            .ok_or_else(|| bad("missing \"accused\" array"))?;
        let mut list = Vec::with_capacity(accused.len());
        for a in accused {
            let session_id = a
                .get("session_id")
                .and_then(|s| s.as_str())
                .ok_or_else(|| bad("an accused entry lacks \"session_id\""))?;
            let probability = a
                .get("probability")
                .and_then(serde_json::Value::as_f64)
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| bad("an accused entry lacks a \"probability\" in [0, 1]"))?;
            list.push(AccusedSession {
                session_id: session_id.to_owned(),
                probability,
            });
        }
        self.verdict = Some(verdict.to_owned());
        self.detect_fp = report.get("fp").and_then(serde_json::Value::as_f64);
        self.positions_used = report
            .pointer("/calibration/positions_used")
            .and_then(serde_json::Value::as_u64);
        self.accused = list;
        self.detect_report = Some(report);
        Ok(self)
    }

    /// Host name of [`FindingEvidence::url`] (lower case), if it has one.
    pub fn host(&self) -> Option<String> {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    }

    /// A file name for the infringing item: the last non-empty path segment, else the host.
    pub fn file_name(&self) -> String {
        let parsed = url::Url::parse(&self.url).ok();
        parsed
            .as_ref()
            .and_then(|u| u.path_segments())
            .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_owned))
            .or_else(|| {
                parsed
                    .as_ref()
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }
}
