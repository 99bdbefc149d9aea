//! The detection report: what [`crate::investigate::investigate`] returns, serialised as JSON
//! schema [`SCHEMA`] and rendered as a human summary ([`Report::summary`]).
//!
//! The JSON form is documented in `docs/detect-report.md` and as a JSON Schema (draft 2020-12)
//! in `docs/schemas/leaktrace.detect.v1.json`. Changes within `v1` are additive only: new
//! fields may appear (readers must ignore unknown fields); an existing field never changes
//! meaning or type without a new schema name.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The schema name written in [`Report::schema`].
pub const SCHEMA: &str = "leaktrace.detect.v1";

/// The outcome of a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// At least one session clears the requested false-accusation probability.
    #[serde(rename = "accused")]
    Accused,
    /// No session clears it (a verdict, not a failure).
    #[serde(rename = "no accusation")]
    NoAccusation,
}

impl Verdict {
    /// `"accused"` or `"no accusation"`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accused => "accused",
            Verdict::NoAccusation => "no accusation",
        }
    }
}

/// One scored session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The session id (the token's `wmid`).
    pub session_id: String,
    /// The account behind the session, as recorded in the store.
    pub account: String,
    /// Symmetric Tardos score over the used positions.
    pub score: f64,
    /// `P(one innocent session scores ≥ score)`.
    pub p_single: f64,
    /// False-accusation probability over the registry: `min(1, sessions · p_single)`.
    pub probability: f64,
}

/// Temporal registration of the suspect against the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrationReport {
    /// `"informed"` (registered against the reference index) or `"blind"` (no reference: the
    /// suspect is taken as the whole picture from the title start, see [`crate::blind`]).
    #[serde(default = "informed")]
    pub mode: String,
    /// Suspect frame `i` is reference frame `i + offset_frames` (at the start of the suspect).
    pub offset_frames: i64,
    /// `offset_frames` in seconds of the reference.
    pub offset_s: f64,
    /// Mean absolute difference at the registration found (grey levels); `null` if undefined.
    pub mad: Option<f64>,
    /// Frames decoded from the suspect.
    pub suspect_frames: u64,
    /// Everything else the detector reports about registration (all fields of its
    /// `Decisions` except the per-position list), as it serialises them. Its content grows
    /// with the detector; it is informative, not part of the stable contract.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

fn informed() -> String {
    "informed".to_owned()
}

/// How the probabilities were computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// One sentence naming the method.
    pub method: String,
    /// `true`: the innocent score distribution was enumerated exactly; `false`: Chernoff bound.
    pub exact: bool,
    /// Positions with a decision (erased or not).
    pub positions_observed: usize,
    /// Positions used by the score (not erased).
    pub positions_used: usize,
    /// Positions erased (`|z| < erasure_z`).
    pub positions_erased: usize,
    /// Erasure threshold on `|z|`.
    pub erasure_z: f64,
    /// Standard deviation of an innocent score.
    pub innocent_sigma: f64,
    /// Score needed to be accused; `null` when no score can reach the requested probability.
    pub threshold: Option<f64>,
    /// Smallest false-accusation probability these positions allow.
    pub best_possible: f64,
    /// The channel strengths that weighed the positions (the default likelihood score);
    /// absent for the other scores and in reports written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelSummary>,
}

/// Percentiles of the per-position mark strength `m` (a marked position's `z` is `N(±m, 1)`)
/// estimated from the copy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelSummary {
    /// 10th percentile: the weak positions.
    pub strength_p10: f64,
    /// Median.
    pub strength_median: f64,
    /// 90th percentile: the strong positions.
    pub strength_p90: f64,
}

/// The decision at one position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionReport {
    /// Position (segment index of the reference).
    pub position: u32,
    /// Start of the position in reference time (seconds).
    pub start_s: f64,
    /// Suspect frames averaged.
    pub frames: u32,
    /// Normalised correlation with the A mark.
    pub correlation: f64,
    /// Null spread estimated from decoy patterns.
    pub sigma0: f64,
    /// Decision margin `correlation / sigma0`: positive means A, negative B.
    pub z: f64,
    /// `|z|` below the erasure threshold.
    pub erased: bool,
    /// The variant (`"A"` or `"B"`) the best-scoring session was served here; `null` when no
    /// session is registered.
    pub top_variant: Option<String>,
}

/// A complete detection report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The title the suspect was checked against.
    pub title: String,
    /// The suspect as given.
    pub suspect: String,
    /// The reference index used.
    pub reference: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is what it is, in one sentence.
    pub reason: String,
    /// Requested false-accusation probability over the registry.
    pub fp: f64,
    /// Sessions of the title scored.
    pub sessions: u64,
    /// Segment (position) duration in seconds.
    pub segment_s: f64,
    /// Registration found.
    pub registration: RegistrationReport,
    /// Calibration of the probabilities.
    pub calibration: Calibration,
    /// Accused sessions, best first.
    pub accused: Vec<Scored>,
    /// The best-scoring sessions, accused or not, best first.
    pub top: Vec<Scored>,
    /// Per-position decisions, in position order.
    pub positions: Vec<PositionReport>,
}

impl Report {
    /// The human summary (several lines, each `label  value`).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(s, "{label:<13}{value}");
        };
        line("title", self.title.clone());
        line("suspect", self.suspect.clone());
        line(
            "verdict",
            format!("{} ({})", self.verdict.as_str(), self.reason),
        );
        for a in &self.accused {
            line(
                "accused",
                format!(
                    "session {} account {}: probability {} of being wrong (score {:.2})",
                    a.session_id,
                    a.account,
                    format_probability(a.probability),
                    a.score
                ),
            );
        }
        let c = &self.calibration;
        line(
            "positions",
            format!(
                "{} observed, {} used, {} erased (|z| < {})",
                c.positions_observed, c.positions_used, c.positions_erased, c.erasure_z
            ),
        );
        line(
            "calibration",
            format!(
                "{} sessions, fp {:e}; threshold {}; best possible {} ({})",
                self.sessions,
                self.fp,
                c.threshold
                    .map_or_else(|| "unreachable".to_owned(), |t| format!("{t:.2}")),
                format_probability(c.best_possible),
                if c.exact { "exact" } else { "Chernoff bound" }
            ),
        );
        if let Some(ch) = &c.channel {
            line(
                "channel",
                format!(
                    "mark strength per position (z ~ N(+-m, 1)): m {:.2} / {:.2} / {:.2} at the 10th / 50th / 90th percentile",
                    ch.strength_p10, ch.strength_median, ch.strength_p90
                ),
            );
        }
        let r = &self.registration;
        line(
            "registration",
            format!(
                "{}: offset {} frames ({:+.2} s), MAD {}, {} suspect frames",
                r.mode,
                r.offset_frames,
                r.offset_s,
                r.mad
                    .map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
                r.suspect_frames
            ),
        );
        for (k, v) in &r.details {
            if matches!(
                k.as_str(),
                "offset" | "registration_mad" | "suspect_frames" | "positions"
            ) {
                continue;
            }
            line("", format!("{k}: {}", compact(v)));
        }
        for t in &self.top {
            line(
                "top",
                format!(
                    "session {} account {} score {:.2} probability {}",
                    t.session_id,
                    t.account,
                    t.score,
                    format_probability(t.probability)
                ),
            );
        }
        s
    }
}

/// A probability for people: two decimals down to 0.01 (`0.25`), scientific below (`3.1e-7`).
pub fn format_probability(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

/// One-line JSON with floats shortened to 4 significant digits.
fn compact(v: &serde_json::Value) -> String {
    fn round(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(0.0);
                let r: f64 = format!("{f:.3e}").parse().unwrap_or(f);
                serde_json::json!(r)
            }
            serde_json::Value::Array(a) => a.iter().map(round).collect(),
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), round(v))).collect(),
            other => other.clone(),
        }
    }
    round(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_serialises_as_documented() {
        assert_eq!(
            serde_json::to_string(&Verdict::NoAccusation).unwrap_or_default(),
            "\"no accusation\""
        );
        assert_eq!(Verdict::Accused.as_str(), "accused");
    }

    #[test]
    fn compact_rounds_floats() {
        let v = serde_json::json!({"a": 1.23456789, "b": [2, 0.000123456]});
        assert_eq!(compact(&v), r#"{"a":1.235,"b":[2,0.0001235]}"#);
    }
}
