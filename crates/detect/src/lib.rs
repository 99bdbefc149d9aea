//! Detection: from a suspect copy to per-position decisions and an accusation.
//!
//! The detector is *informed*: it reads the reference index written at embed time
//! ([`leaktrace_embed::Reference`]) and the title's pattern key.
//!
//! 1. **Temporal registration** ([`register`]): the suspect's 16×9 per-frame thumbnails are
//!    matched against the reference thumbnails; the frame offset minimising the mean absolute
//!    difference over a search window is kept (handles a trimmed or padded head). Frame-rate
//!    changes, cuts and spatial/photometric registration are not handled yet: the suspect is
//!    assumed to be at the reference frame rate and geometry (any scale: it is area-averaged to
//!    the statistics size).
//! 2. **Per-position decisions** ([`decide`]): the mean frame of each position (after the
//!    offset) minus the reference mean is correlated with the expected A mark. The null spread
//!    is estimated from the data itself: the same residual is correlated with
//!    [`DECOYS`] keyed decoy patterns that were never embedded (keys derived from the pattern
//!    key with a distinct BLAKE3 context), which gives an empirical H0 sample per position. The
//!    RMS of those decoy correlations is σ₀(p) and the decision value is `z = c / σ₀`;
//!    `|z| < erasure_z` is an erasure.
//! 3. **Accusation** ([`accuse::Accuser`]): symmetric Tardos score over the non-erased
//!    positions; the false-accusation probability of a score is computed *exactly* from the
//!    innocent distribution (enumeration over the used positions, up to
//!    [`accuse::EXACT_LIMIT`] of them; a rigorous Chernoff bound beyond) and multiplied by the
//!    number of registered sessions (union bound).
//!
//! ```no_run
//! # fn f(key: &leaktrace_core::MasterKey) -> Result<(), Box<dyn std::error::Error>> {
//! use leaktrace_core::TitleId;
//! use leaktrace_detect::{decide, DecideOptions};
//! use leaktrace_embed::Reference;
//! let title = TitleId::new("bbb")?;
//! let reference = Reference::load("pkg/reference".as_ref())?;
//! let d = decide("leak.mp4".as_ref(), &reference, &key.pattern_key(&title), &DecideOptions::default())?;
//! let codebook = key.codebook(&title);
//! let accuser = leaktrace_detect::accuse::Accuser::new(&d.positions, &codebook, 1e-6, 1000);
//! let session = leaktrace_core::SessionId::new("s1")?;
//! let score = accuser.score(&session);
//! println!("offset {} frames, score {score:.2}, p = {:.2e}", d.offset, accuser.probability(score));
//! # Ok(()) }
//! ```

pub mod accuse;
pub mod investigate;
pub mod plot;
pub mod report;

use leaktrace_core::{DerivedKey, Position, SegmentDuration};
use leaktrace_embed::reference::{Reference, THUMB, downsample};
use leaktrace_media::{Decoder, Samples};
use serde::Serialize;
use std::path::Path;

/// Number of decoy patterns per position used to estimate the null spread.
pub const DECOYS: usize = 24;

/// Errors of detection.
#[derive(Debug, thiserror::Error)]
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
    #[error("reference: {0}")]
    Reference(String),
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
}

/// Options of [`decide`].
#[derive(Clone, Debug)]
pub struct DecideOptions {
    /// Search the start offset within ± this many seconds (0 disables registration).
    pub max_offset_s: f64,
    /// `|z|` below this is an erasure (0 to 10).
    pub erasure_z: f64,
    /// Positions with fewer suspect frames than this are skipped (at least 1).
    pub min_frames: u32,
}

impl Default for DecideOptions {
    fn default() -> Self {
        Self {
            max_offset_s: 60.0,
            erasure_z: 3.0,
            min_frames: 4,
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

/// All decisions of a suspect.
#[derive(Clone, Debug, Serialize)]
pub struct Decisions {
    /// Suspect frame `i` is reference frame `i + offset`.
    pub offset: i64,
    /// Mean absolute thumbnail difference at that offset (grey levels).
    pub registration_mad: f64,
    /// Frames decoded from the suspect.
    pub suspect_frames: u64,
    /// One decision per observed position, in order.
    pub positions: Vec<PositionDecision>,
}

fn media(path: &Path) -> impl Fn(leaktrace_media::MediaError) -> DetectError + '_ {
    move |source| DetectError::Media {
        path: path.to_path_buf(),
        source,
    }
}

/// Decodes `file` and calls `f(frame_index, stats_image)` per frame (statistics size).
fn for_each_frame(
    file: &Path,
    stats: (usize, usize),
    mut f: impl FnMut(usize, Vec<f32>),
) -> Result<u64, DetectError> {
    let mut dec = Decoder::open(file).map_err(media(file))?;
    let (w, h) = dec.size();
    let mut i = 0usize;
    while let Some(frame) = dec.next_frame().map_err(media(file))? {
        let ds = match &frame.y {
            Samples::U8(y) => downsample(y, w, h, 0, stats.0, stats.1),
            Samples::U16(y) => downsample(y, w, h, 2, stats.0, stats.1),
        };
        f(i, ds);
        i += 1;
    }
    Ok(i as u64)
}

/// Finds the offset `k` (suspect frame `i` ↔ reference frame `i + k`, `|k| ≤ max`) minimising
/// the mean absolute difference of 16×9 thumbnails; at least a quarter of the shorter sequence
/// must overlap. Returns `(k, mad)`.
pub fn register(suspect: &[Vec<f32>], reference: &[u8], max: i64) -> (i64, f64) {
    let tl = THUMB.0 * THUMB.1;
    let nr = (reference.len() / tl) as i64;
    let ns = suspect.len() as i64;
    let min_overlap = (nr.min(ns) / 4).max(1);
    let mut best = (0i64, f64::INFINITY);
    for k in -max..=max {
        let lo = 0.max(-k);
        let hi = ns.min(nr - k);
        if hi - lo < min_overlap {
            continue;
        }
        let mut sum = 0f64;
        for i in lo..hi {
            let r = &reference[((i + k) * tl as i64) as usize..((i + k + 1) * tl as i64) as usize];
            sum += suspect[i as usize]
                .iter()
                .zip(r)
                .map(|(&s, &r)| f64::from((s - f32::from(r)).abs()))
                .sum::<f64>();
        }
        let mad = sum / ((hi - lo) as f64 * tl as f64);
        if mad < best.1 {
            best = (k, mad);
        }
    }
    if best.1.is_infinite() {
        (0, f64::NAN)
    } else {
        best
    }
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

/// Decodes the suspect (twice: thumbnails for registration, then the per-position means),
/// registers it in time and returns a calibrated decision per observed position.
pub fn decide(
    suspect: &Path,
    reference: &Reference,
    pattern_key: &DerivedKey,
    opts: &DecideOptions,
) -> Result<Decisions, DetectError> {
    if !(0.0..=10.0).contains(&opts.erasure_z) {
        return Err(DetectError::Invalid(format!(
            "erasure threshold {} out of range (expected 0 to 10)",
            opts.erasure_z
        )));
    }
    if !(0.0..=3600.0).contains(&opts.max_offset_s) {
        return Err(DetectError::Invalid(format!(
            "offset search window {} s out of range (expected 0 to 3600)",
            opts.max_offset_s
        )));
    }
    let meta = &reference.meta;
    let stats = (meta.stats_size[0], meta.stats_size[1]);
    let seg = SegmentDuration::from_millis(meta.segment_ms)
        .map_err(|e| DetectError::Reference(e.to_string()))?;
    let [num, den] = meta.frame_rate;
    if num <= 0 || den <= 0 {
        return Err(DetectError::Reference(format!(
            "frame rate {num}/{den} is not positive"
        )));
    }
    let fps = f64::from(num) / f64::from(den);

    // Pass 1: thumbnails and registration.
    let mut thumbs = Vec::new();
    let n = for_each_frame(suspect, stats, |_, s| {
        thumbs.push(leaktrace_embed::reference::downsample_f32(
            &s, stats.0, stats.1, THUMB.0, THUMB.1,
        ));
    })?;
    if n == 0 {
        return Err(DetectError::Empty);
    }
    let max = (opts.max_offset_s * fps).round() as i64;
    let (offset, mad) = register(&thumbs, reference.thumbnails(), max);
    drop(thumbs);

    // Pass 2: per-position sums at that offset.
    let npos = meta.positions as usize;
    let mut sums: Vec<(u32, Vec<f64>)> = vec![(0, Vec::new()); npos];
    for_each_frame(suspect, stats, |i, s| {
        let r = i as i64 + offset;
        if r < 0 {
            return;
        }
        let p = seg.position_at(r * i64::from(den), i64::from(num)).get() as usize;
        if let Some((count, acc)) = sums.get_mut(p) {
            if acc.is_empty() {
                acc.resize(s.len(), 0.0);
            }
            *count += 1;
            acc.iter_mut()
                .zip(&s)
                .for_each(|(a, &v)| *a += f64::from(v));
        }
    })?;

    let decoys: Vec<DerivedKey> = (0..DECOYS).map(|i| decoy_key(pattern_key, i)).collect();
    let min_frames = opts.min_frames.max(1);
    let mut positions = Vec::new();
    for (p, (count, acc)) in sums.into_iter().enumerate() {
        if count < min_frames {
            continue;
        }
        let mean: Vec<f32> = acc.iter().map(|&v| (v / f64::from(count)) as f32).collect();
        let pos = Position::new(p as u32);
        let Some(c) = reference.correlate(pattern_key, pos, &mean) else {
            continue;
        };
        let null: Vec<f64> = decoys
            .iter()
            .filter_map(|k| reference.correlate(k, pos, &mean))
            .collect();
        if null.is_empty() {
            continue;
        }
        let sigma0 = (null.iter().map(|v| v * v).sum::<f64>() / null.len() as f64).sqrt();
        let z = if sigma0 > 0.0 { c / sigma0 } else { 0.0 };
        positions.push(PositionDecision {
            position: p as u32,
            frames: count,
            correlation: c,
            sigma0,
            z,
            erased: z.abs() < opts.erasure_z,
        });
    }
    if positions.is_empty() {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    Ok(Decisions {
        offset,
        registration_mad: mad,
        suspect_frames: n,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_finds_a_trimmed_head() {
        let tl = THUMB.0 * THUMB.1;
        let reference: Vec<u8> = (0..200 * tl)
            .map(|i| ((i / tl * 37 + i * 11) % 251) as u8)
            .collect();
        let suspect: Vec<Vec<f32>> = (30..200)
            .map(|f| {
                reference[f * tl..(f + 1) * tl]
                    .iter()
                    .map(|&v| f32::from(v))
                    .collect()
            })
            .collect();
        let (k, mad) = register(&suspect, &reference, 60);
        assert_eq!(k, 30);
        assert!(mad < 1e-9);
    }

    #[test]
    fn decoy_keys_differ() {
        let k = DerivedKey::from_bytes([7; 32]);
        assert_ne!(decoy_key(&k, 0).as_bytes(), decoy_key(&k, 1).as_bytes());
        assert_ne!(decoy_key(&k, 0).as_bytes(), k.as_bytes());
    }
}
