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
#[non_exhaustive]
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
    /// SHA-256 (lower-case hex) of the suspect's bytes: binds the report to one capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect_sha256: Option<String>,
    /// The key version the title was marked with, whose keys were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
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
        if let Some(h) = &self.suspect_sha256 {
            line("sha-256", h.clone());
        }
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
                "{} observed, {} used, {} erased {}",
                c.positions_observed,
                c.positions_used,
                c.positions_erased,
                erasure_rule(c.erasure_z)
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
            match (k.as_str(), registration_lines(v)) {
                ("registration", Some(lines)) => {
                    for (label, text) in lines {
                        line(label, text);
                    }
                }
                _ => line("", format!("{k}: {}", compact(v))),
            }
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

/// How positions are erased, for people: `(|z| < 3)`, or that none is when the threshold is 0
/// (every position is then weighed by its margin).
pub fn erasure_rule(erasure_z: f64) -> String {
    if erasure_z > 0.0 {
        format!("(|z| < {erasure_z})")
    } else {
        "(no erasure threshold: every position weighs by its margin)".to_owned()
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

/// The detector's registration record (`details.registration`: time map, geometry,
/// photometry, frame counts) as labelled lines for people; `None` when it does not have that
/// shape (the JSON is then printed as it is).
fn registration_lines(v: &serde_json::Value) -> Option<Vec<(&'static str, String)>> {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let pair = |v: &serde_json::Value, k: &str| -> Option<(f64, f64)> {
        let a = v.get(k)?.as_array()?;
        Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?))
    };
    let mut out = Vec::new();
    let pieces = v.get("time")?.get("pieces")?.as_array()?;
    for (i, p) in pieces.iter().enumerate() {
        out.push((
            if i == 0 { "time" } else { "" },
            format!(
                "suspect {:.1}-{:.1} s = reference x {:.4} {:+.2} s ({} windows, correlation {:.3})",
                num(p, "suspect_start")?,
                num(p, "suspect_end")?,
                num(p, "rate")?,
                num(p, "offset")?,
                p.get("windows")?.as_u64()?,
                num(p, "score")?,
            ),
        ));
    }
    if pieces.is_empty() {
        out.push((
            "time",
            "no piece of the suspect maps to the reference".to_owned(),
        ));
    }
    let (w, h) = pair(v, "suspect_size")?;
    let g = v.get("geometry")?;
    let (k1, k2) = pair(g, "radial")?;
    let turned = v
        .get("suspect_turned")
        .and_then(serde_json::Value::as_str)
        .map(|t| format!(" as shown (display matrix: {t})"))
        .unwrap_or_default();
    out.push((
        "geometry",
        format!(
            "suspect {w}x{h}{turned} at {:.3} fps; {:.1} % of the reference picture visible; \
             fit correlation {:.3}{}",
            num(v, "suspect_fps")?,
            100.0 * num(g, "visible")?,
            num(g, "score")?,
            if k1 == 0.0 && k2 == 0.0 {
                String::new()
            } else {
                format!("; lens k1 {k1:+.2e} k2 {k2:+.2e}")
            }
        ),
    ));
    if let Some(flip) = v.get("flip").and_then(serde_json::Value::as_str)
        && flip != "none"
    {
        out.push((
            "mirror",
            format!("the copy is flipped ({flip}); undone before the decisions"),
        ));
    }
    if let Some(x) = v.get("excluded") {
        let boxes: Vec<String> = excluded_regions(v)
            .iter()
            .map(|b| {
                format!(
                    "x {:.0}-{:.0} % y {:.0}-{:.0} %",
                    100.0 * b[0],
                    100.0 * b[2],
                    100.0 * b[1],
                    100.0 * b[3]
                )
            })
            .collect();
        out.push((
            "overlays",
            format!(
                "{:.1} % of the visible picture left out of every decision (not explained by \
                 the reference: an overlay, or detail the copy lost){}; {:.1} % more per \
                 position on average",
                100.0 * num(x, "persistent_fraction")?,
                if boxes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", boxes.join("; "))
                },
                100.0 * num(x, "transient_fraction")?,
            ),
        ));
    }
    let ph = v.get("photometric")?;
    let c = ph.get("coeffs")?.as_array()?;
    let coeff = |i: usize| c.get(i).and_then(serde_json::Value::as_f64);
    out.push((
        "photometric",
        format!(
            "luma = {:+.3} {:+.3} y {:+.3} y^2 {:+.3} y^3 (y = reference / 255); residual {} \
             grey levels",
            coeff(0)?,
            coeff(1)?,
            coeff(2)?,
            coeff(3)?,
            num(ph, "rms").map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}")),
        ),
    ));
    let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    out.push((
        "frames",
        format!(
            "{} used, {} at position boundaries, {} outside the reference",
            count("frames_used")?,
            count("frames_at_boundaries")?,
            count("frames_unmapped")?,
        ),
    ));
    Some(out)
}

/// The boxes `[x0, y0, x1, y1]` (fractions of the suspect picture) the decisions left out,
/// from the detector's registration record (`details.registration`).
pub(crate) fn excluded_regions(registration: &serde_json::Value) -> Vec<[f64; 4]> {
    registration
        .pointer("/excluded/regions")
        .and_then(serde_json::Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|b| {
                    let b = b.as_array()?;
                    let f = |i: usize| b.get(i).and_then(serde_json::Value::as_f64);
                    Some([f(0)?, f(1)?, f(2)?, f(3)?])
                })
                .collect()
        })
        .unwrap_or_default()
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
    fn registration_reads_as_labelled_lines() {
        let v = serde_json::json!({
            "frames_at_boundaries": 0, "frames_unmapped": 12, "frames_used": 3600,
            "geometry": {"content": [0.0, 0.0, 256.0, 144.0], "h": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                         "radial": [0.0, 0.0], "score": 0.998, "visible": 0.8252,
                         "working_size": [256, 144]},
            "photometric": {"coeffs": [-0.0003, 1.037, -0.092, 0.056], "rms": 1.613,
                            "vignette": [0.0, 0.0]},
            "suspect_fps": 24.0, "suspect_size": [640, 360],
            "time": {"pieces": [{"offset": 0.5, "rate": 1.0, "score": 0.9953,
                                 "suspect_end": 150.0, "suspect_start": 0.0, "windows": 28}]}
        });
        let lines = registration_lines(&v).unwrap_or_default();
        let text: Vec<String> = lines.iter().map(|(l, t)| format!("{l}: {t}")).collect();
        assert_eq!(
            text,
            [
                "time: suspect 0.0-150.0 s = reference x 1.0000 +0.50 s (28 windows, correlation 0.995)",
                "geometry: suspect 640x360 at 24.000 fps; 82.5 % of the reference picture visible; fit correlation 0.998",
                "photometric: luma = -0.000 +1.037 y -0.092 y^2 +0.056 y^3 (y = reference / 255); residual 1.61 grey levels",
                "frames: 3600 used, 0 at position boundaries, 12 outside the reference",
            ]
        );
        // Another shape falls back to the JSON.
        assert!(registration_lines(&serde_json::json!({"time": 3})).is_none());
    }

    #[test]
    fn compact_rounds_floats() {
        let v = serde_json::json!({"a": 1.23456789, "b": [2, 0.000123456]});
        assert_eq!(compact(&v), r#"{"a":1.235,"b":[2,0.0001235]}"#);
    }
}
