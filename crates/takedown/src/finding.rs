//! [`FindingEvidence`]: what this crate needs to know about a finding.
//!
//! The crawler stores its findings in the store; the takedown side only reads this projection
//! of one, so the two crates do not depend on each other. [`FindingEvidence::from_finding`]
//! maps a finding from the store onto it; a caller may also build one from a
//! `leaktrace detect --json` report plus capture facts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use leaktrace_store::Finding;
use serde::{Deserialize, Serialize};

use crate::{TakedownError, Work};

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
    /// The takedown projection of a crawler finding from the store: the capture facts as the
    /// crawler recorded them, the work's names from `works` (by the finding's title), an exact
    /// catalogue hash match if the captured bytes are one of the work's assets, and, when
    /// detect ran, its `leaktrace.detect.v1` report (verdict, accused sessions and their
    /// false-accusation probabilities) for the positive-match [`gate`](crate::gate); without
    /// such a report, the stored verdict alone.
    ///
    /// Each hop of the request chain carries the HTTP status the crawler recorded for it.
    /// Findings stored before schema v4 have no statuses: their hops before the last get 0
    /// ("redirect, code not recorded"; no code is claimed) and the last 200 (the capture
    /// succeeded).
    ///
    /// Fails with [`TakedownError::UnusableFinding`] for a finding without a catalogue title
    /// or a resolved address (a notice needs both), or whose detect report is not about it.
    pub fn from_finding(
        f: &Finding,
        works: &BTreeMap<String, Work>,
    ) -> Result<FindingEvidence, TakedownError> {
        let r = &f.record;
        let unusable = |message: String| TakedownError::UnusableFinding {
            finding_id: r.finding_id.clone(),
            message,
        };
        let title_id = r.title_id.clone().ok_or_else(|| {
            unusable(format!(
                "finding {} has no catalogue title; a notice needs the work",
                r.finding_id
            ))
        })?;
        let resolved_ip: IpAddr = r
            .resolved_ip
            .as_deref()
            .ok_or_else(|| {
                unusable(format!(
                    "finding {} has no resolved address; a notice needs it",
                    r.finding_id
                ))
            })?
            .parse()
            .map_err(|e| unusable(format!("finding {}: resolved address: {e}", r.finding_id)))?;
        let chain_urls: Vec<String> = if r.redirect_chain.is_empty() {
            vec![r.media_url.clone()]
        } else {
            r.redirect_chain.clone()
        };
        let last = chain_urls.len().saturating_sub(1);
        let chain = chain_urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| Hop {
                url,
                status: r.redirect_statuses.get(i).copied().unwrap_or(if i == last {
                    200
                } else {
                    0
                }),
                ip: (i == last).then_some(resolved_ip),
                at: r.capture_started_at,
                headers: r
                    .content_type
                    .iter()
                    .filter(|_| i == last)
                    .map(|ct| ("content-type".to_owned(), ct.clone()))
                    .collect(),
            })
            .collect();
        let work = works.get(&title_id);
        let mut names = Vec::new();
        if let Some(w) = work {
            names.push(w.title.clone());
        }
        names.push(title_id.clone());
        let catalogue_hash_match = work.and_then(|w| w.catalogue_match(&r.sha256));
        let ev = FindingEvidence {
            finding_id: r.finding_id.clone(),
            url: r.media_url.clone(),
            page_url: r.page_url.clone(),
            chain,
            resolved_ip,
            found_at: f.created_at.min(r.capture_started_at),
            captured_at: r.capture_finished_at,
            byte_len: r.byte_len,
            blake3: r.blake3.clone(),
            sha256: r.sha256.clone(),
            title_id,
            catalogue_names: names,
            catalogue_hash_match,
            verdict: None,
            detect_fp: None,
            accused: Vec::new(),
            positions_used: None,
            detect_report: None,
            plot_path: None,
        };
        let report: serde_json::Value = serde_json::from_str(&r.report).unwrap_or_default();
        if report.get("schema").and_then(|s| s.as_str()) == Some("leaktrace.detect.v1") {
            ev.with_detect_report(report)
                .map_err(|e| unusable(format!("finding {}: {e}", r.finding_id)))
        } else {
            Ok(FindingEvidence {
                verdict: Some(r.verdict.as_str().to_owned()),
                ..ev
            })
        }
    }

    /// Fills the detector fields from a `leaktrace.detect.v1` report.
    ///
    /// The report must be about this finding: its `title` must be the finding's
    /// [`FindingEvidence::title_id`], and when it names the SHA-256 of the file it examined
    /// (`suspect_sha256`), that must be the finding's [`FindingEvidence::sha256`]. Fails if
    /// either differs, if the report is not that schema, or if it lacks `title`, `verdict`
    /// or `accused`.
    pub fn with_detect_report(mut self, report: serde_json::Value) -> Result<Self, TakedownError> {
        let bad = |what: &str| TakedownError::InvalidDetectReport(what.to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;
    use leaktrace_store::{FindingKind, FindingVerdict, NewFinding};

    fn finding() -> Finding {
        Finding {
            record: NewFinding {
                finding_id: "F-1".into(),
                media_url: "http://x.test/a".into(),
                page_url: Some("http://x.test/watch".into()),
                redirect_chain: vec!["http://x.test/a".into(), "http://cdn.x.test/a.mp4".into()],
                redirect_statuses: vec![],
                resolved_ip: Some("192.0.2.7".into()),
                kind: FindingKind::Direct,
                file_name: "a.mp4".into(),
                content_type: Some("video/mp4".into()),
                byte_len: 3,
                blake3: "a".repeat(64),
                sha256: "b".repeat(64),
                capture_path: "/c/b.mp4".into(),
                title_id: Some("bbb".into()),
                title_score: 100,
                verdict: FindingVerdict::NoAccusation,
                accused: "[]".into(),
                report: "{}".into(),
                capture_started_at: 10,
                capture_finished_at: 12,
            },
            created_at: 11,
        }
    }

    #[test]
    fn a_stored_finding_maps_onto_its_evidence() {
        let works = BTreeMap::from([(
            "bbb".to_owned(),
            Work {
                title: "Big Buck Bunny".into(),
                asset_sha256: vec!["B".repeat(64)],
                ..Work::default()
            },
        )]);
        let ev = FindingEvidence::from_finding(&finding(), &works).unwrap();
        // Before schema v4: no statuses, so the redirect gets 0 and the capture 200.
        let hops: Vec<_> = ev
            .chain
            .iter()
            .map(|h| (h.status, h.ip.is_some()))
            .collect();
        assert_eq!(hops, [(0, false), (200, true)]);
        assert_eq!(
            ev.chain[1].headers,
            [("content-type".into(), "video/mp4".into())]
        );
        assert_eq!(ev.catalogue_names, ["Big Buck Bunny", "bbb"]);
        assert_eq!(
            ev.catalogue_hash_match,
            Some(format!("sha256:{}", "b".repeat(64)))
        );
        assert_eq!((ev.found_at, ev.captured_at), (10, 12));
        // No detect report: the stored verdict, as stored.
        assert_eq!(ev.verdict.as_deref(), Some("no accusation"));
    }

    #[test]
    fn a_finding_without_title_or_address_is_unusable() {
        let mut f = finding();
        f.record.title_id = None;
        let e = FindingEvidence::from_finding(&f, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "finding F-1 has no catalogue title; a notice needs the work"
        );
        let mut f = finding();
        f.record.resolved_ip = Some("nowhere".into());
        let e = FindingEvidence::from_finding(&f, &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&e, TakedownError::UnusableFinding { finding_id, .. } if finding_id == "F-1"),
            "{e}"
        );
    }
}
