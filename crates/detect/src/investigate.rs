//! The whole detection as one library call: from a suspect file and a title to a [`Report`].
//!
//! [`investigate`] looks the title up in the [`Store`], loads its reference index (the one
//! given, or the location the title recorded at embed time), decodes and registers the suspect
//! ([`crate::decide`]), then scores every session of the title batch by batch
//! ([`Store::sessions_for_title`]) with [`Accuser`], keeping the accused and the best few.
//! The keys come from a [`TitleKeySource`] at the key version the title was marked with
//! (`titles.key_version`), so titles marked before a key rotation stay detectable, and a
//! machine holding only a detection key set never needs the master key. The report names the
//! SHA-256 of the file examined, which binds it to one capture.
//! It prints nothing; progress goes to an optional callback. The CLI (`leaktrace detect`), the
//! crawler and the forensic suite all call it.
//!
//! Decoding is CPU-bound and blocking. On a multi-threaded Tokio runtime it runs under
//! [`tokio::task::block_in_place`]; on a current-thread runtime (as the CLI uses) it runs
//! inline.
//!
//! ```no_run
//! # async fn f(store: &leaktrace_store::Store, keys: &leaktrace_core::Keyring)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use leaktrace_core::TitleId;
//! use leaktrace_detect::investigate::{Options, investigate};
//! let title = TitleId::new("bbb")?;
//! // `keys`: the keyring, or a detection key set (`leaktrace_core::DetectionKeys`); the
//! // title's keys are taken at the key version it was marked with.
//! let report = investigate(store, keys, "leak.mp4".as_ref(), &title, None, &Options::default(), None).await?;
//! print!("{}", report.summary());
//! # Ok(()) }
//! ```

use crate::accuse::Accuser;
use crate::blind::{BlindOptions, decide_blind};
use crate::report::{
    Calibration, ChannelSummary, PositionReport, RegistrationReport, Report, SCHEMA, Scored,
    Verdict,
};
use crate::{DecideOptions, Decisions, DetectError, decide};
use leaktrace_core::{
    Codebook, KeyVersion, SegmentDuration, SessionId, TitleId, TitleKeySource, Variant,
};
use leaktrace_reference::Reference;
use leaktrace_store::Store;
use std::path::{Path, PathBuf};

/// Options of [`investigate`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Requested false-accusation probability over all registered sessions (1e-12 to 0.1).
    pub fp: f64,
    /// Decoding, registration and decision options.
    pub decide: DecideOptions,
    /// Best-scoring sessions reported besides the accused (0 to 1000).
    pub top: usize,
    /// Sessions fetched from the store per batch (at least 1).
    pub batch: u32,
    /// Refuse a suspect whose registration is no closer to the reference than unrelated
    /// frames of the title are to each other ([`DetectError::NoMatch`]); when false such
    /// a suspect is scored anyway (its positions are then mostly erasures).
    pub require_match: bool,
    /// Decide without the reference index even when one is known ([`crate::blind`]). Without
    /// a reference (none given, none recorded for the title) the blind fallback is used anyway.
    pub blind: bool,
    /// Blind fallback only: title time at the suspect's first frame, in seconds.
    pub blind_start_s: f64,
    /// Blind fallback only: the erasure threshold, replacing `decide.erasure_z` (default
    /// [`crate::blind::BLIND_ERASURE_Z`]).
    pub blind_erasure_z: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fp: 1e-6,
            decide: DecideOptions::default(),
            top: 5,
            batch: 10_000,
            require_match: true,
            blind: false,
            blind_start_s: 0.0,
            blind_erasure_z: crate::blind::BLIND_ERASURE_Z,
        }
    }
}

/// A progress event of [`investigate`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// A new stage begins (`"loading the reference"`, `"decoding the suspect"`,
    /// `"scoring sessions"`).
    Stage(&'static str),
    /// Sessions scored so far out of the registered total.
    Scored {
        /// Sessions scored.
        done: u64,
        /// Sessions registered for the title.
        total: u64,
    },
}

/// SHA-256 (lower-case hex) of a file, read in 1 MiB blocks.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        }))
}

/// Runs `f` where blocking is allowed: under `block_in_place` on a multi-threaded runtime,
/// inline otherwise.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Checks `suspect` against every registered session of `title` and returns the report.
///
/// `reference` is the reference index directory; `None` uses the location the title recorded
/// in the store at embed time. A title with no registered session yields a report with the
/// verdict "no accusation" (the suspect is still decoded and registered, so the report shows
/// whether it matches the title).
pub async fn investigate(
    store: &Store,
    keys: &dyn TitleKeySource,
    suspect: &Path,
    title: &TitleId,
    reference: Option<&Path>,
    opts: &Options,
    progress: Option<&(dyn Fn(Progress) + Sync)>,
) -> Result<Report, DetectError> {
    let emit = |p: Progress| {
        if let Some(f) = progress {
            f(p);
        }
    };
    let case = Case::open(store, keys, title, reference, opts, &emit).await?;
    emit(Progress::Stage("hashing the suspect"));
    let suspect_sha256 =
        blocking(|| sha256_file(suspect)).map_err(|source| DetectError::Suspect {
            path: suspect.to_path_buf(),
            source,
        })?;
    emit(Progress::Stage("decoding the suspect"));
    let decisions = match &case.reference {
        Some(reference) => {
            let decisions =
                blocking(|| decide(suspect, reference, case.pattern_key(), &opts.decide))?;
            if opts.require_match {
                case.check_match(&decisions)?;
            }
            decisions
        }
        None => {
            let segment = SegmentDuration::from_millis(u64::from(case.record.segment_duration_ms))
                .map_err(|e| DetectError::Invalid(format!("title {title}: {e}")))?;
            let blind = BlindOptions {
                segment,
                start_s: opts.blind_start_s,
            };
            let decide_opts = DecideOptions {
                erasure_z: opts.blind_erasure_z,
                boundary_frames: crate::blind::BOUNDARY_FRAMES,
                ..opts.decide.clone()
            };
            blocking(|| decide_blind(suspect, case.pattern_key(), &blind, &decide_opts))?
        }
    };
    case.report(&decisions, suspect, Some(suspect_sha256), 1.0, &emit)
        .await
}

/// One title's investigation, before any suspect is read: the title's record, its keys at the
/// version it was marked with, its reference index (unless blind) and how many sessions it
/// has. [`investigate`] decides one file with it; [`crate::follow`] decides a capture again
/// each time more of it has arrived.
pub(crate) struct Case<'a> {
    store: &'a Store,
    title: TitleId,
    record: leaktrace_store::Title,
    title_keys: leaktrace_core::TitleKeys,
    pub(crate) reference: Option<Reference>,
    ref_path: Option<PathBuf>,
    total: u64,
    opts: Options,
}

impl<'a> Case<'a> {
    /// Looks the title up, takes its keys and loads its reference.
    pub(crate) async fn open(
        store: &'a Store,
        keys: &dyn TitleKeySource,
        title: &TitleId,
        reference: Option<&Path>,
        opts: &Options,
        emit: &(dyn Fn(Progress) + Sync),
    ) -> Result<Self, DetectError> {
        check_options(opts)?;
        let record = store
            .get_title(title.as_str())
            .await?
            .ok_or_else(|| DetectError::UnknownTitle(title.as_str().to_owned()))?;
        let title_keys = keys
            .title_keys(title, KeyVersion::new(record.key_version))
            .map_err(|source| DetectError::Keys {
                title: title.as_str().to_owned(),
                version: record.key_version,
                source,
            })?;
        let ref_path: Option<PathBuf> = match (opts.blind, reference) {
            (true, _) => None,
            (false, Some(p)) => Some(p.to_path_buf()),
            (false, None) => record.reference_path.as_deref().map(PathBuf::from),
        };
        let reference = match &ref_path {
            Some(path) => {
                emit(Progress::Stage("loading the reference"));
                Some(blocking(|| load_reference(path, title))?)
            }
            None => None,
        };
        let total = store.count_sessions(title.as_str()).await?;
        Ok(Self {
            store,
            title: title.clone(),
            record,
            title_keys,
            reference,
            ref_path,
            total,
            opts: opts.clone(),
        })
    }

    /// The title's pattern key.
    pub(crate) fn pattern_key(&self) -> &leaktrace_core::DerivedKey {
        self.title_keys.pattern_key()
    }

    /// [`check_match`] against this title's reference (nothing to check when blind).
    pub(crate) fn check_match(&self, decisions: &Decisions) -> Result<(), DetectError> {
        match &self.reference {
            Some(reference) => check_match(decisions, reference, &self.title),
            None => Ok(()),
        }
    }

    /// Scores every session of the title on `decisions` and writes the report on `suspect`.
    ///
    /// `spend` (0 to 1] is the share of the false-accusation probability this report may use:
    /// 1 for a single look at a copy; a capture decided again as it grows gives each round a
    /// share, the shares summing to at most 1 ([`crate::follow`]), so that the probability of
    /// a false accusation at any round stays within `fp`. The sessions' probabilities are
    /// reported against the whole budget (divided by `spend`).
    pub(crate) async fn report(
        &self,
        decisions: &Decisions,
        suspect: &Path,
        suspect_sha256: Option<String>,
        spend: f64,
        emit: &(dyn Fn(Progress) + Sync),
    ) -> Result<Report, DetectError> {
        let (opts, title, reference) = (&self.opts, &self.title, &self.reference);
        let spend = if spend > 0.0 && spend <= 1.0 {
            spend
        } else {
            1.0
        };
        emit(Progress::Stage("scoring sessions"));
        let codebook = self.title_keys.codebook();
        let accuser = Accuser::new(&decisions.positions, &codebook, opts.fp * spend, self.total);
        let Scoring { accused, top, done } =
            score_sessions(self.store, title, &accuser, opts, self.total, spend, emit).await?;

        let (fps, segment_s) = match reference {
            Some(r) => (
                f64::from(r.meta.frame_rate[0]) / f64::from(r.meta.frame_rate[1].max(1)),
                r.meta.segment_ms as f64 / 1000.0,
            ),
            None => (
                decisions.registration.suspect_fps,
                f64::from(self.record.segment_duration_ms) / 1000.0,
            ),
        };
        let positions = position_reports(decisions, &top, &codebook, segment_s);
        let used = accuser.used();
        let (verdict, mut reason) = verdict(&accuser, &accused, &top, done, opts.fp, spend);
        if spend < 1.0 {
            reason.push_str(&format!(
                "; a capture decided as it grows: this round uses {} of the probability, every \
                 round together at most all of it",
                crate::report::format_probability(spend)
            ));
        }
        let mut details = match serde_json::to_value(decisions) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        for k in ["positions", "offset", "registration_mad", "suspect_frames"] {
            details.remove(k);
        }
        Ok(Report {
            schema: SCHEMA.to_owned(),
            title: title.as_str().to_owned(),
            suspect: suspect.display().to_string(),
            suspect_sha256,
            key_version: Some(self.record.key_version),
            reference: self
                .ref_path
                .as_ref()
                .map_or_else(|| "none (blind)".to_owned(), |p| p.display().to_string()),
            verdict,
            reason,
            fp: opts.fp,
            sessions: done,
            segment_s,
            registration: RegistrationReport {
                mode: if reference.is_some() {
                    "informed"
                } else {
                    "blind"
                }
                .to_owned(),
                offset_frames: decisions.offset,
                offset_s: decisions.offset as f64 / fps,
                mad: decisions
                    .registration_mad
                    .is_finite()
                    .then_some(decisions.registration_mad),
                suspect_frames: decisions.suspect_frames,
                details,
            },
            calibration: Calibration {
                method: format!(
                    "per-position z = correlation / RMS of decoy-pattern correlations; {}; innocent \
                     tail exact (<= {} positions) or Chernoff bound; union bound over the registry",
                    accuser.describe(),
                    crate::accuse::EXACT_LIMIT
                ),
                exact: accuser.is_exact(),
                positions_observed: decisions.positions.len(),
                positions_used: used,
                positions_erased: decisions.positions.len() - used,
                erasure_z: if reference.is_some() {
                    opts.decide.erasure_z
                } else {
                    opts.blind_erasure_z
                },
                innocent_sigma: accuser.innocent_sigma(),
                threshold: accuser.threshold(),
                best_possible: (accuser.best_possible() / spend).min(1.0),
                channel: accuser.channel().map(|c| ChannelSummary {
                    strength_p10: c.strength_quantile(0.1),
                    strength_median: c.strength_quantile(0.5),
                    strength_p90: c.strength_quantile(0.9),
                }),
            },
            accused,
            top,
            positions,
        })
    }
}

/// A registered copy must differ from the reference by less than this fraction of the
/// difference between unrelated frames of the title, unless its registration correlates at
/// least [`MATCH_SCORE`].
pub const MATCH_RATIO: f64 = 0.5;

/// Correlation of the registered position means with the reference's (the geometry fit's
/// score) at or above which a copy matches the title. Copies of a title, overlays and heavy
/// re-encodes included, register at 0.93 to 0.99 on the test footage; other footage registered
/// against a title reaches 0.14 to 0.41.
pub const MATCH_SCORE: f64 = 0.8;

/// The most of the visible picture that may be left out of the decisions for the correlation
/// over the rest to count as [`MATCH_SCORE`]'s: a logo, a ticker and subtitles together leave
/// out 5 to 17 % on the test footage.
pub const MATCH_MAX_EXCLUDED: f64 = 0.25;

/// Below this registration correlation a copy never matches, whatever its grey-level
/// difference: the robust fit can make footage that is not the title differ little from it
/// over part of the picture (0.14 to 0.41 measured), not correlate with it.
pub const MATCH_MIN_SCORE: f64 = 0.5;

/// Mean absolute difference (grey levels) between reference thumbnails half the title apart
/// (frame `f` against frame `f + n/2`, cyclically): how much unrelated frames of this title
/// differ. 0 for fewer than 2 frames.
pub fn unrelated_mad(thumbnails: &[u8]) -> f64 {
    let tl = leaktrace_reference::THUMB.0 * leaktrace_reference::THUMB.1;
    let n = thumbnails.len() / tl;
    if n < 2 {
        return 0.0;
    }
    let half = n / 2;
    let step = (n / 2000).max(1);
    let (mut sum, mut count) = (0u64, 0u64);
    for f in (0..n).step_by(step) {
        let g = (f + half) % n;
        let a = &thumbnails[f * tl..(f + 1) * tl];
        let b = &thumbnails[g * tl..(g + 1) * tl];
        sum += a
            .iter()
            .zip(b)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum::<u64>();
        count += tl as u64;
    }
    sum as f64 / count as f64
}

/// Loads a reference index directory, with a one-line reason on failure.
/// Checks the options an investigation takes beyond [`DecideOptions`].
fn check_options(opts: &Options) -> Result<(), DetectError> {
    if !(1e-12..=0.1).contains(&opts.fp) {
        return Err(DetectError::Invalid(format!(
            "false-accusation probability {} out of range (expected 1e-12 to 0.1)",
            opts.fp
        )));
    }
    if opts.top > 1000 {
        return Err(DetectError::Invalid(format!(
            "top {} out of range (expected 0 to 1000)",
            opts.top
        )));
    }
    Ok(())
}

/// Refuses a suspect that, once registered, is not a copy of the title: its registration
/// correlates too little with the reference, or differs from it as much as unrelated frames of
/// the title differ from each other.
fn check_match(
    decisions: &Decisions,
    reference: &Reference,
    title: &TitleId,
) -> Result<(), DetectError> {
    let unrelated = unrelated_mad(reference.thumbnails());
    let mad = decisions.registration_mad;
    let fit = decisions.registration.geometry.score;
    // A registration whose means correlate this well is the title whatever the
    // grey-level difference (an overlay, a static camera whose unrelated frames
    // differ little); otherwise the difference must be small.
    // So is one whose means correlate this well over the pixels the decisions
    // keep, when what was left out is a small part of the picture (stacked
    // overlays on footage whose unrelated frames differ little).
    let excluded = &decisions.registration.excluded;
    let kept_fit = excluded.kept_score;
    let correlated = (fit.is_finite() && fit >= MATCH_SCORE)
        || (kept_fit.is_finite()
            && kept_fit >= MATCH_SCORE
            && excluded.persistent_fraction <= MATCH_MAX_EXCLUDED);
    let uncorrelated = !(fit.is_finite() && fit >= MATCH_MIN_SCORE);
    if uncorrelated
        || (unrelated > 0.0 && !correlated && (!mad.is_finite() || mad > MATCH_RATIO * unrelated))
    {
        return Err(DetectError::NoMatch {
            title: title.as_str().to_owned(),
            fit,
            mad,
            unrelated,
        });
    }
    Ok(())
}

/// The sessions the accuser accuses, and the best `opts.top` of all, by descending score.
struct Scoring {
    accused: Vec<Scored>,
    top: Vec<Scored>,
    /// Sessions scored.
    done: u64,
}

/// Scores every registered session of `title`, batch by batch from the store.
async fn score_sessions(
    store: &Store,
    title: &TitleId,
    accuser: &Accuser<'_>,
    opts: &Options,
    total: u64,
    spend: f64,
    emit: &(dyn Fn(Progress) + Sync),
) -> Result<Scoring, DetectError> {
    let mut accused: Vec<Scored> = Vec::new();
    let mut top: Vec<Scored> = Vec::new();
    let mut done = 0u64;
    let mut batches = std::pin::pin!(store.sessions_for_title(title.as_str(), opts.batch));
    while let Some(batch) = futures_util::TryStreamExt::try_next(&mut batches).await? {
        for s in &batch {
            let Ok(id) = SessionId::new(s.session_id.clone()) else {
                continue;
            };
            let score = accuser.score(&id);
            done += 1;
            let entry = || Scored {
                session_id: s.session_id.clone(),
                account: s.account_ref.clone(),
                score,
                p_single: accuser.innocent_tail(score),
                probability: (accuser.probability(score) / spend).min(1.0),
            };
            if accuser.accuses(score) {
                accused.push(entry());
            }
            if opts.top > 0 && (top.len() < opts.top || top.last().is_some_and(|t| score > t.score))
            {
                top.push(entry());
                top.sort_by(|x, y| y.score.total_cmp(&x.score));
                top.truncate(opts.top);
            }
        }
        emit(Progress::Scored {
            done,
            total: total.max(done),
        });
    }
    accused.sort_by(|x, y| y.score.total_cmp(&x.score));
    Ok(Scoring { accused, top, done })
}

/// One line per decided position, with the variant the best-scoring session has there.
fn position_reports(
    decisions: &Decisions,
    top: &[Scored],
    codebook: &Codebook,
    segment_s: f64,
) -> Vec<PositionReport> {
    let best_session = top
        .first()
        .and_then(|t| SessionId::new(t.session_id.clone()).ok());
    decisions
        .positions
        .iter()
        .map(|d| PositionReport {
            position: d.position,
            start_s: f64::from(d.position) * segment_s,
            frames: d.frames,
            correlation: d.correlation,
            sigma0: d.sigma0,
            z: d.z,
            erased: d.erased,
            top_variant: best_session.as_ref().map(|s| {
                match codebook.bit(s, d.position) {
                    Variant::A => "A",
                    Variant::B => "B",
                }
                .to_owned()
            }),
        })
        .collect()
}

/// The verdict and the sentence that explains it.
fn verdict(
    accuser: &Accuser<'_>,
    accused: &[Scored],
    top: &[Scored],
    done: u64,
    fp: f64,
    spend: f64,
) -> (Verdict, String) {
    let used = accuser.used();
    if !accused.is_empty() {
        (
            Verdict::Accused,
            format!(
                "{} session{} clear{} the requested false-accusation probability {:e}",
                accused.len(),
                if accused.len() == 1 { "" } else { "s" },
                if accused.len() == 1 { "s" } else { "" },
                fp
            ),
        )
    } else if done == 0 {
        (
            Verdict::NoAccusation,
            "no session of this title is registered in the store".to_owned(),
        )
    } else if accuser.threshold().is_none() {
        (
            Verdict::NoAccusation,
            format!(
                "{used} usable positions cannot reach {:e} over {done} sessions (best possible {})",
                fp,
                crate::report::format_probability((accuser.best_possible() / spend).min(1.0))
            ),
        )
    } else {
        (
            Verdict::NoAccusation,
            format!(
                "no session clears {:e} (best {})",
                fp,
                crate::report::format_probability(top.first().map_or(1.0, |t| t.probability))
            ),
        )
    }
}

/// Loads the reference index at `path` and checks that it is `title`'s.
fn load_reference(path: &Path, title: &TitleId) -> Result<Reference, DetectError> {
    let reference = Reference::load(path).map_err(|source| DetectError::LoadReference {
        path: path.to_path_buf(),
        source,
    })?;
    if reference.meta.title != title.as_str() {
        return Err(DetectError::ReferenceMismatch {
            path: path.to_path_buf(),
            found: reference.meta.title.clone(),
            expected: title.as_str().to_owned(),
        });
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crawler runs investigations on a multi-threaded runtime: the future must be `Send`.
    #[test]
    fn investigate_future_is_send() {
        fn send<T: Send>(_: T) {}
        let _check = |store: &Store, key: &leaktrace_core::Keyring, title: &TitleId| {
            send(investigate(
                store,
                key,
                Path::new("leak.mp4"),
                title,
                None,
                &Options::default(),
                None,
            ))
        };
    }

    #[test]
    fn unrelated_frames_differ() {
        let tl = leaktrace_reference::THUMB.0 * leaktrace_reference::THUMB.1;
        let flat = vec![100u8; 10 * tl];
        assert_eq!(unrelated_mad(&flat), 0.0);
        let ramp: Vec<u8> = (0..10 * tl).map(|i| (i / tl * 20) as u8).collect();
        // Frame f against frame f + 5 (cyclic): |5 · 20| for half, |−5 · 20| for the rest.
        assert!((unrelated_mad(&ramp) - 100.0).abs() < 1e-9);
        assert_eq!(unrelated_mad(&ramp[..tl]), 0.0);
    }
}
