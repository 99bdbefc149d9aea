//! Detection: from a suspect copy to per-position decisions and an accusation.
//!
//! The detector is *informed*: it reads the reference index written at embed time
//! ([`leaktrace_reference::Reference`]: per-position mean unmarked luma at 256×h, per-position mark
//! amplitude on the pattern grid, 16×9 per-frame thumbnails) and the title's pattern key.
//!
//! 1. **One decode pass** ([`frames`]): every suspect frame's luma is area-averaged by swscale
//!    to a 256-wide working grid in the suspect's own geometry; its presentation time (s), its
//!    mean luma and the working image are kept (images in memory up to a budget, then in a
//!    temporary file).
//! 2. **Temporal registration** ([`register::temporal`]): the suspect's mean-luma curve, on
//!    the reference frame clock, is located in the reference's (thumbnail means) window by
//!    window (10 s, half overlapping) by normalised cross-correlation; consistent windows form
//!    pieces, each with a fitted `reference_time = rate × suspect_time + offset` (trimmed or
//!    padded head/tail, a cut-out or inserted stretch, frame-rate conversion by timestamps, a
//!    speed change); the boundary between pieces is placed at the change point of their fit
//!    errors. Each frame maps to a reference time and so to a position (frames within
//!    [`DecideOptions::boundary_frames`] of a position boundary can be skipped; by default
//!    none are); frames mapping to the same position anywhere in the suspect are averaged
//!    together.
//! 3. **Spatial registration** ([`register::spatial`]): black bars are found (letterbox,
//!    pillarbox); an isotropic scale/translation search then Gauss–Newton refinement of a
//!    homography (affine, then perspective, then a camcorder's radial lens distortion and
//!    vignetting) aligns the reference per-position means onto the suspect's per-position
//!    *mean* images, jointly over up to 24 positions (the transform is constant, so only
//!    means are warped, never frames). A picture-in-picture window from 35 % of the width is
//!    found anywhere in the frame by FFT correlation ([`register::window`]), and its time is
//!    then registered again on the window alone; a poor match is tried mirrored and flipped,
//!    and fitted from the whole picture too (on a picture whose reduced means correlate alike
//!    at every scale the coarse search can pick the wrong one). Reference pixels outside the
//!    suspect's picture are masked out.
//! 4. **Photometric registration** ([`register::photometric`]): a monotone cubic from
//!    reference luma to suspect luma (brightness, contrast, gamma), fitted on the registered
//!    means; it maps the reference mean before subtraction and its derivative scales the
//!    expected mark (local gain).
//! 5. **Per-position decisions** ([`decide`], [`correlate`]): the registered suspect mean minus
//!    the mapped reference mean (smooth functions of the picture regressed out, then whitened
//!    by a local-mean high-pass) is correlated with the expected A mark (keyed pattern × embed
//!    amplitude × photometric gain, whitened the same way) over the visible pixels. The null
//!    spread is estimated from the data itself: the same residual is correlated with
//!    [`DECOYS`] keyed decoy patterns that were never embedded (keys derived from the pattern
//!    key with a distinct BLAKE3 context), which gives an empirical H0 sample per position
//!    after all of the registration above. The RMS of those decoy correlations is σ₀(p) and
//!    the decision value is `z = c / σ₀` (an erasure when `|z| < erasure_z`, none by
//!    default). On an unmarked re-encode of the title z stays near N(0, 1) (the measurement
//!    is in `docs/BENCHMARKS.md` §6.1).
//! 6. **Accusation** ([`accuse::Accuser`]): likelihood scores over the positions, each
//!    position weighed by the empirical channel (how strong positions of this copy are), one
//!    score matched to interleaving and one to minority vote, with a calibrated
//!    false-accusation probability over the registry.
//!
//! Not handled: rotation beyond what a homography absorbs from the scale search's start
//! (the coarse search is over scale and translation only), flips, and a suspect whose mean-luma
//! curve is flat for long stretches (no timing information there).
//!
//! Without a reference index, [`blind::decide_blind`] decides from the suspect alone (the whole
//! picture from the title start, no photometric map; weaker per position, same calibration).
//!
//! ```no_run
//! # fn f(key: &leaktrace_core::MasterKey) -> Result<(), Box<dyn std::error::Error>> {
//! use leaktrace_core::TitleId;
//! use leaktrace_detect::{decide, DecideOptions};
//! use leaktrace_reference::Reference;
//! let title = TitleId::new("bbb")?;
//! let reference = Reference::load("pkg/reference".as_ref())?;
//! let d = decide("leak.mp4".as_ref(), &reference, &key.pattern_key(&title), &DecideOptions::default())?;
//! let codebook = key.codebook(&title);
//! let accuser = leaktrace_detect::accuse::Accuser::new(&d.positions, &codebook, 1e-6, 1000);
//! let session = leaktrace_core::SessionId::new("s1")?;
//! let score = accuser.score(&session);
//! println!("offset {} frames, score {score:.2}, p = {:.2e}", d.offset, accuser.probability(score));
//! println!("time pieces {}", d.registration.time.pieces.len());
//! # Ok(()) }
//! ```

pub mod accuse;
pub mod blind;
pub mod blind_crop;
pub mod correlate;
mod decide;
pub mod follow;
pub mod frames;
pub mod investigate;
pub mod overlay;
mod par;
pub mod plot;
pub mod register;
pub mod report;
pub mod score;
pub mod simulate;

pub use decide::{decide, decide_frames};

use leaktrace_core::DerivedKey;
use leaktrace_reference::ReferenceError;
use register::photometric::Photometric;
use register::spatial::Geometry;
use register::temporal::TimeMap;
use serde::Serialize;

/// Number of decoy patterns per position used to estimate the null spread.
pub const DECOYS: usize = 24;

/// Errors of detection: decoding and registering a suspect, investigating it against the
/// store's sessions, and drawing the report. Each variant is a distinct class for callers (the
/// CLI maps them to exit codes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The suspect could not be opened or decoded.
    #[error("cannot decode the suspect {}", path.display())]
    Media {
        /// The suspect file.
        path: std::path::PathBuf,
        /// The cause.
        source: leaktrace_media::MediaError,
    },
    /// The suspect has no decodable video frame.
    #[error("suspect has no video frames")]
    Empty,
    /// The reference index is unusable.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// No position of the suspect overlaps the reference.
    #[error(
        "suspect does not overlap the reference (best offset {offset} frames leaves no position with at least {min_frames} frames)"
    )]
    NoOverlap {
        /// Offset found.
        offset: i64,
        /// Frames needed per position.
        min_frames: u32,
    },
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The temporary frame store failed.
    #[error("temporary frame store: {0}")]
    Io(#[from] std::io::Error),
    /// The title is not in the store.
    #[error("unknown title {0:?} (no such title in the store; embed it first)")]
    UnknownTitle(String),
    /// The keys of the title's key version are not available.
    #[error("title {title:?} was marked with key version {version}: {source}")]
    Keys {
        /// The title.
        title: String,
        /// Its key version (`titles.key_version`).
        version: u32,
        /// Why the keys are missing.
        source: leaktrace_core::CoreError,
    },
    /// The suspect could not be read: hashed, followed while it grows, or a segment of it.
    #[error("cannot read the suspect {path}: {source}")]
    Suspect {
        /// The suspect.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No reference was given and the title recorded none.
    #[error(
        "title {0:?} has no recorded reference index; give one (the PKG/reference directory written by embed)"
    )]
    NoReference(String),
    /// The reference index cannot be read or is corrupt.
    #[error("cannot read the reference index {}: {source}", path.display())]
    LoadReference {
        /// The reference location.
        path: std::path::PathBuf,
        /// What went wrong.
        source: ReferenceError,
    },
    /// The reference index belongs to another title.
    #[error("reference {} is for title {found:?}, not {expected:?}", path.display())]
    ReferenceMismatch {
        /// The reference location.
        path: std::path::PathBuf,
        /// Title it was made for.
        found: String,
        /// Title asked for.
        expected: String,
    },
    /// The suspect does not match the reference: after registration it differs from the
    /// reference as much as unrelated frames of the title differ from each other (another
    /// clip, or no overlap in time).
    #[error(
        "suspect does not match the reference of title {title:?} (registered means correlate {fit:.2} with the reference, a copy of this title at least 0.5 and from 0.8 on whatever its difference; registration leaves a mean difference of {mad:.1} grey levels; unrelated frames of the title differ by {unrelated:.1}; a copy of this title stays below half of that)"
    )]
    NoMatch {
        /// The title.
        title: String,
        /// Correlation of the registered means with the reference's.
        fit: f64,
        /// Mean absolute difference after registration.
        mad: f64,
        /// Mean absolute difference between unrelated frames of the reference.
        unrelated: f64,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] leaktrace_store::StoreError),
    /// The embedded plot font could not be registered.
    #[error("the embedded font could not be loaded")]
    PlotFont,
    /// The plot's file name does not end in `.png`.
    #[error("plot file {0} must end in .png")]
    PlotExtension(String),
    /// The plot's picture size is out of range.
    #[error("plot size {0}x{1} out of range (expected 200x200 to 8000x8000)")]
    PlotSize(u32, u32),
    /// Drawing or writing the plot failed.
    #[error("cannot draw the plot {path}: {reason}")]
    PlotDraw {
        /// Output file (empty for in-memory drawing).
        path: String,
        /// The cause.
        reason: String,
    },
}

/// Options of [`decide`].
#[derive(Clone, Debug)]
pub struct DecideOptions {
    /// Search the time offsets within ± this many seconds (0 disables temporal registration:
    /// suspect time = reference time).
    pub max_offset_s: f64,
    /// `|z|` below this is an erasure (0 to 10). Default 0: every position is used, weighed by
    /// the empirical channel of the accuser ([`accuse::EmpiricalChannel`]); erasing weak
    /// positions throws away what heavy attacks leave (a camcord copy needs fewer positions
    /// without erasures: `docs/BENCHMARKS.md` §6.4).
    pub erasure_z: f64,
    /// Positions with fewer suspect frames than this are skipped (at least 1).
    pub min_frames: u32,
    /// Suspect frames whose registered time lies within this many reference frame intervals
    /// of a position boundary are not used (0 to 5). The default, 0, uses every frame: the
    /// reference mean a position's suspect mean is compared with covers all of the position's
    /// frames, and leaving the first and last out makes the two means differ by the content's
    /// motion (measured in `docs/BENCHMARKS.md` §6.5).
    pub boundary_frames: f64,
}

impl Default for DecideOptions {
    fn default() -> Self {
        Self {
            max_offset_s: 60.0,
            erasure_z: 0.0,
            min_frames: 4,
            boundary_frames: 0.0,
        }
    }
}

/// The decision at one position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositionDecision {
    /// The position (segment index of the reference).
    pub position: u32,
    /// Suspect frames averaged.
    pub frames: u32,
    /// Normalised correlation with the expected A mark (positive: A).
    pub correlation: f64,
    /// Null spread σ₀ estimated from the decoys.
    pub sigma0: f64,
    /// `correlation / sigma0`: positive means A, negative B.
    pub z: f64,
    /// True when `|z|` is below the erasure threshold.
    pub erased: bool,
}

/// What registration found.
#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    /// Suspect time → reference time, piecewise.
    pub time: TimeMap,
    /// Reference picture → suspect picture.
    pub geometry: Geometry,
    /// Reference luma → suspect luma.
    pub photometric: Photometric,
    /// Decoded picture size of the suspect, as displayed.
    pub suspect_size: [usize; 2],
    /// How the suspect's display matrix turns its pictures (a phone's recording stored
    /// sideways), when it does: the pictures are registered as displayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect_turned: Option<&'static str>,
    /// Nominal frame rate of the suspect.
    pub suspect_fps: f64,
    /// Suspect frames averaged into positions.
    pub frames_used: u64,
    /// Frames left out for lying within `boundary_frames` of a position boundary.
    pub frames_at_boundaries: u64,
    /// Frames that map to no reference time (outside every piece or past the reference).
    pub frames_unmapped: u64,
    /// The flip undone before the decisions (a mirrored copy).
    pub flip: overlay::Flip,
    /// What the decisions left out: overlays the copy added.
    pub excluded: overlay::Excluded,
}

/// All decisions of a suspect.
#[derive(Clone, Debug, Serialize)]
pub struct Decisions {
    /// Suspect frame `i` is reference frame `i + offset` at the start of the suspect (first
    /// piece of the time map, at the reference frame rate).
    pub offset: i64,
    /// Mean absolute difference between the registered suspect position means and the
    /// photometrically mapped reference means (grey levels).
    pub registration_mad: f64,
    /// Frames decoded from the suspect.
    pub suspect_frames: u64,
    /// One decision per observed position, in order.
    pub positions: Vec<PositionDecision>,
    /// Registration details.
    pub registration: Registration,
}

/// [`Registration::suspect_turned`] of a suspect whose pictures `orientation` turns.
pub(crate) fn turned(orientation: leaktrace_media::Orientation) -> Option<&'static str> {
    (!orientation.is_upright()).then(|| orientation.describe())
}

/// The `i`-th decoy key: a pattern key that was never used for embedding.
pub fn decoy_key(pattern_key: &DerivedKey, i: usize) -> DerivedKey {
    let mut material = pattern_key.as_bytes().to_vec();
    material.extend_from_slice(&(i as u64).to_le_bytes());
    DerivedKey::from_bytes(blake3::derive_key(
        "leaktrace detect decoy pattern v1",
        &material,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoy_keys_differ() {
        let k = DerivedKey::from_bytes([7; 32]);
        assert_ne!(decoy_key(&k, 0).as_bytes(), decoy_key(&k, 1).as_bytes());
        assert_ne!(decoy_key(&k, 0).as_bytes(), k.as_bytes());
    }
}
