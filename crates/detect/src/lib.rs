//! Detection: from a suspect copy to per-position decisions and an accusation.
//!
//! The detector is *informed*: it reads the reference index written at embed time
//! ([`leaktrace_embed::Reference`]: per-position mean unmarked luma at 256×h, per-position mark
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
//!    then registered again on the window alone; a poor match is tried mirrored and flipped.
//!    Reference pixels outside the suspect's picture are masked out.
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
//!    default). On an unmarked
//!    re-encode of the title z stays near N(0, 1) (measured on 100 s of Big Buck Bunny at
//!    360p, 8 pattern keys × 50 positions: mean 0.02, sd 1.04, max |z| 2.8, none ≥ 3).
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
//! use leaktrace_embed::Reference;
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
pub mod correlate;
pub mod frames;
pub mod investigate;
pub mod overlay;
pub mod plot;
pub mod register;
pub mod report;
pub mod score;

use frames::SuspectFrames;
use leaktrace_core::{DerivedKey, GRID_COLS, GRID_ROWS, Pattern, Position, SegmentDuration};
use leaktrace_embed::reference::{Reference, THUMB, normalised_correlation};
use register::photometric::Photometric;
use register::spatial::{self, Geometry, Image, Pair};
use register::temporal::{self, TimeMap};
use serde::Serialize;
use std::path::Path;

/// Number of decoy patterns per position used to estimate the null spread.
pub const DECOYS: usize = 24;

/// Positions used (at most) to estimate the geometry.
const REGISTRATION_POSITIONS: usize = 24;
/// A copy whose coarse placement, or whose fitted geometry, matches below this (NCC of the
/// registered means) may be flipped: the flips are placed too. A flip's fit must reach it.
const MIRROR_TRY_BELOW: f64 = 0.8;
/// A flip is fitted only when its coarse placement beats the copy's own by this much.
const MIRROR_MARGIN: f64 = 0.1;
/// A geometry that fills at most this share of the suspect's picture is a window
/// (picture-in-picture), whose time is registered again on the window alone.
const WINDOW_AT_MOST: f64 = 0.5;
/// The window's time map replaces the whole picture's when its quality
/// ([`temporal_quality`]) is higher by this much.
const WINDOW_TIME_MARGIN: f64 = 0.02;

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
    /// The temporary frame store failed.
    #[error("temporary frame store: {0}")]
    Io(String),
}

/// Options of [`decide`].
#[derive(Clone, Debug)]
pub struct DecideOptions {
    /// Search the time offsets within ± this many seconds (0 disables temporal registration:
    /// suspect time = reference time).
    pub max_offset_s: f64,
    /// `|z|` below this is an erasure (0 to 10). Default 0: every position is used, weighed by
    /// the empirical channel of the accuser ([`accuse::EmpiricalChannel`]); erasing weak
    /// positions throws away what heavy attacks leave (measured: a camcord copy went from not
    /// accused within 96 positions to accused at 58).
    pub erasure_z: f64,
    /// Positions with fewer suspect frames than this are skipped (at least 1).
    pub min_frames: u32,
    /// Suspect frames whose registered time lies within this many reference frame intervals
    /// of a position boundary are not used (0 to 5). The default, 0, uses every frame: the
    /// reference mean a position's suspect mean is compared with covers all of the position's
    /// frames, and leaving the first and last out makes the two means differ by the content's
    /// motion. Measured on 16 leaks of 192 one-second positions at 1080p, x264 CRF 40: median
    /// signed z 7.1 with a 1-frame margin, 10.0 without (docs/BENCHMARKS.md section 7).
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
    /// Decoded picture size of the suspect.
    pub suspect_size: [usize; 2],
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

/// The `i`-th decoy key: a pattern key that was never used for embedding.
pub fn decoy_key(pattern_key: &DerivedKey, i: usize) -> DerivedKey {
    let mut material = pattern_key.as_bytes().to_vec();
    material.extend_from_slice(&(i as u64).to_le_bytes());
    DerivedKey::from_bytes(blake3::derive_key(
        "leaktrace detect decoy pattern v1",
        &material,
    ))
}

/// Decodes the suspect once, registers it in time, space and luma against the reference, and
/// returns a calibrated decision per observed position.
pub fn decide(
    suspect: &Path,
    reference: &Reference,
    pattern_key: &DerivedKey,
    opts: &DecideOptions,
) -> Result<Decisions, DetectError> {
    check_options(opts)?;
    let meta = &reference.meta;
    let (rw, rh) = (meta.stats_size[0], meta.stats_size[1]);
    let seg = SegmentDuration::from_millis(meta.segment_ms)
        .map_err(|e| DetectError::Reference(e.to_string()))?;
    let [num, den] = meta.frame_rate;
    if num <= 0 || den <= 0 {
        return Err(DetectError::Reference(format!(
            "frame rate {num}/{den} is not positive"
        )));
    }
    let fps = f64::from(num) / f64::from(den);
    let min_frames = opts.min_frames.max(1);

    // One decode pass.
    let mut frames = SuspectFrames::read(suspect)?;
    let n = frames.len() as u64;

    // Temporal registration on the mean-luma signature.
    let tl = THUMB.0 * THUMB.1;
    let ref_means: Vec<f32> = reference
        .thumbnails()
        .chunks_exact(tl)
        .map(|t| t.iter().map(|&v| f32::from(v)).sum::<f32>() / tl as f32)
        .collect();
    let full = temporal::register(
        &frames.times,
        &frames.means,
        &ref_means,
        fps,
        opts.max_offset_s,
    );
    // The same on the picture's centre, which edge overlays do not reach: a ticker scrolling
    // over a static scene moves the whole-picture mean more than the title does. The map that
    // explains more of the suspect, better, in fewer pieces, is kept.
    let (tw, th) = THUMB;
    let (c0, r0) = (
        (frames::CENTRE[0] * tw as f64).round() as usize,
        (frames::CENTRE[1] * th as f64).round() as usize,
    );
    let (c1, r1) = (
        (frames::CENTRE[2] * tw as f64).round() as usize,
        (frames::CENTRE[3] * th as f64).round() as usize,
    );
    let ref_central: Vec<f32> = reference
        .thumbnails()
        .chunks_exact(tl)
        .map(|t| {
            let (mut sum, mut n) = (0.0f32, 0.0f32);
            for r in r0..r1 {
                for c in c0..c1 {
                    sum += f32::from(t[r * tw + c]);
                    n += 1.0;
                }
            }
            sum / n.max(1.0)
        })
        .collect();
    let centre = temporal::register(
        &frames.times,
        &frames.central,
        &ref_central,
        fps,
        opts.max_offset_s,
    );
    let span = frames.times.last().copied().unwrap_or(0.0) + 1.0 / fps;
    let mut time = if temporal_quality(&centre, span) > temporal_quality(&full, span) {
        centre
    } else {
        full
    };
    let npos = meta.positions as usize;
    let ref_frames = meta.frames as i64;
    let timing = Timing {
        fps,
        den: i64::from(den),
        num: i64::from(num),
        seg,
        ref_frames,
        npos,
        margin: opts.boundary_frames,
    };
    let mut mapped = timing.accumulate(&mut frames, &time)?;
    let mut observed = observe(reference, mapped.sums, min_frames);
    let offset_of = |time: &TimeMap| {
        time.pieces
            .first()
            .map_or(0, |p| (p.offset * fps).round() as i64)
    };
    if observed.is_empty() {
        return Err(DetectError::NoOverlap {
            offset: offset_of(&time),
            min_frames,
        });
    }
    let mut pick = spread(observed.len());
    let (geometry, photometric, flip) = register_space(&observed, &pick, (rw, rh), frames.size);

    // A picture-in-picture window: the whole picture's signature mixes the film with what
    // surrounds it, so time is registered again on the window alone, and kept (with the
    // positions it gives) when it explains the copy better.
    if let Some(window) = window_of(&geometry, flip, frames.size)
        && let Some(signature) = frames.window_means(window)?
    {
        let windowed = temporal::register(
            &frames.times,
            &signature,
            &ref_means,
            fps,
            opts.max_offset_s,
        );
        if temporal_quality(&windowed, span) > temporal_quality(&time, span) + WINDOW_TIME_MARGIN {
            let again = timing.accumulate(&mut frames, &windowed)?;
            let seen = observe(reference, again.sums, min_frames);
            if !seen.is_empty() {
                // The window (and flip) found on the first means stand: a second fit from
                // there on the better-timed means moved the 40 % window of section 6.7 of
                // docs/BENCHMARKS.md by one working pixel for 0.7× more detect time.
                (time, mapped.used, mapped.boundary, mapped.unmapped) =
                    (windowed, again.used, again.boundary, again.unmapped);
                pick = spread(seen.len());
                observed = seen;
            }
        }
    }
    let offset = offset_of(&time);
    let (ww, wh) = frames.size;
    let (used, boundary, unmapped) = (mapped.used, mapped.boundary, mapped.unmapped);
    if flip != overlay::Flip::None {
        for o in &mut observed {
            o.2 = flip.apply(&o.2, ww, wh);
        }
    }

    // Which reference pixels are visible, and where they land.
    let visible = visible_points(&geometry, rw, rh);
    if visible.len() < 64 {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    // The vignetting gain at each visible point.
    let field_of = |pts: &[(usize, f64, f64)]| -> Vec<f64> {
        pts.iter()
            .map(|&(_, u, v)| photometric.field(geometry.radius2(u, v)))
            .collect()
    };
    // The registration residual of one observed position at `pts`: suspect minus the mapped
    // reference, smooth leftovers regressed out; with the mapped reference (the model).
    let residual = |pts: &[(usize, f64, f64)],
                    field: &[f64],
                    mean: &[f32],
                    ref_mean: &[f32]|
     -> (Vec<f64>, Vec<f64>) {
        let img = Image {
            data: mean,
            w: ww,
            h: wh,
        };
        let model: Vec<f64> = pts
            .iter()
            .zip(field)
            .map(|(&(i, ..), v)| v * photometric.apply(f64::from(ref_mean[i])))
            .collect();
        let d: Vec<f64> = pts
            .iter()
            .zip(&model)
            .map(|(&(_, u, v), m)| f64::from(img.sample(u, v)) - m)
            .collect();
        (d, model)
    };
    // Overlays: pixels whose residual stands out at most registration positions.
    let vfield = field_of(&visible);
    let sampled: Vec<Vec<f64>> = pick
        .iter()
        .map(|&i| {
            let (mut d, model) = residual(&visible, &vfield, &observed[i].2, &observed[i].3);
            regress_out(&mut d, &model);
            d
        })
        .collect();
    let mut grid_mask = vec![false; rw * rh];
    for (&(i, ..), &m) in visible.iter().zip(&overlay::persistent_mask(&sampled)) {
        grid_mask[i] = m;
    }
    let grid_mask = overlay::dilate(&grid_mask, rw, rh);
    let points: Vec<(usize, f64, f64)> = visible
        .iter()
        .copied()
        .filter(|&(i, ..)| !grid_mask[i])
        .collect();
    if points.len() < 64 {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    let mut excluded = overlay::Excluded {
        persistent_fraction: 1.0 - points.len() as f64 / visible.len() as f64,
        ..overlay::Excluded::default()
    };
    let visible_mask: Vec<bool> = {
        let mut m = vec![false; rw * rh];
        for &(i, ..) in &visible {
            m[i] = grid_mask[i];
        }
        m
    };
    excluded.regions = overlay::regions(&visible_mask, rw, rh, 4)
        .into_iter()
        .map(|[x0, y0, x1, y1]| {
            let corner =
                |x: usize, y: usize| geometry.map(x as f64 / rw as f64, y as f64 / rh as f64);
            let (a, b) = (corner(x0, y0), corner(x1, y1));
            let (c, d) = (corner(x1, y0), corner(x0, y1));
            let xs = [a.0, b.0, c.0, d.0];
            let ys = [a.1, b.1, c.1, d.1];
            let lo = |v: [f64; 4]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = |v: [f64; 4]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            [
                (lo(xs) / ww as f64).clamp(0.0, 1.0),
                (lo(ys) / wh as f64).clamp(0.0, 1.0),
                (hi(xs) / ww as f64).clamp(0.0, 1.0),
                (hi(ys) / wh as f64).clamp(0.0, 1.0),
            ]
        })
        .collect();

    let correlator = Correlator::new(pattern_key, rw, rh, &points, correlate::HIGHPASS_RADIUS);
    // Which visible points the decisions keep (`points` is `visible` with these only).
    let kept: Vec<bool> = visible.iter().map(|&(i, ..)| !grid_mask[i]).collect();
    let keep = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .zip(&kept)
            .filter_map(|(x, &k)| k.then_some(*x))
            .collect()
    };
    let field = keep(&vfield);
    // Residual per observed position.
    let (mut mad_sum, mut mad_n) = (0.0f64, 0usize);
    let mut kept_score_sum = 0.0f64;
    let mut transient = 0.0f64;
    let mut positions = Vec::new();
    for (p, count, mean, ref_mean) in &observed {
        let pos = Position::new(*p as u32);
        let Some(stats) = reference.position(pos) else {
            continue;
        };
        // The match measure is over every visible pixel, overlays included: leaving out what
        // the reference does not explain would make any footage look like the title.
        let (all, all_model) = residual(&visible, &vfield, mean, ref_mean);
        mad_sum += all.iter().map(|v| v.abs()).sum::<f64>();
        mad_n += all.len();
        let (kept_model, kept_suspect): (Vec<f64>, Vec<f64>) = all_model
            .iter()
            .zip(&all)
            .zip(&kept)
            .filter_map(|((m, d), &k)| k.then_some((*m, m + d)))
            .unzip();
        kept_score_sum += normalised_correlation(&kept_model, &kept_suspect);
        let (mut d, model) = (keep(&all), keep(&all_model));
        regress_out(&mut d, &model);
        // What stands out at this position only (subtitles) is left out of its decision.
        let cut = overlay::TRANSIENT_K * overlay::robust_sigma(&d).max(1e-3);
        let skip: Vec<bool> = d.iter().map(|v| v.abs() > cut).collect();
        transient += skip.iter().filter(|&&b| b).count() as f64 / skip.len().max(1) as f64;
        // The expected mark's amplitude per visible pixel: the embed-time mask amplitude of the
        // pixel's pattern cell times the photometric gain.
        let amp: Vec<f64> = points
            .iter()
            .zip(&field)
            .map(|(&(i, ..), v)| {
                let (x, y) = (i % rw, i / rw);
                let cell = (y * GRID_ROWS / rh) * GRID_COLS + x * GRID_COLS / rw;
                f64::from(stats.amplitude[cell]) * v * photometric.gain(f64::from(ref_mean[i]))
            })
            .collect();
        positions.push(correlator.decide(pos, *count, &d, &amp, &skip, opts.erasure_z));
    }
    if positions.is_empty() {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    excluded.transient_fraction = transient / positions.len() as f64;
    excluded.kept_score = kept_score_sum / positions.len() as f64;
    Ok(Decisions {
        offset,
        registration_mad: mad_sum / mad_n.max(1) as f64,
        suspect_frames: n,
        positions,
        registration: Registration {
            time,
            geometry,
            photometric,
            suspect_size: [frames.source_size.0, frames.source_size.1],
            suspect_fps: frames.fps,
            frames_used: used,
            frames_at_boundaries: boundary,
            frames_unmapped: unmapped,
            flip,
            excluded,
        },
    })
}

/// One observed position: (position, frames, suspect mean image, reference mean luma).
type Observed = (usize, u32, Vec<f32>, Vec<f32>);

/// What places a suspect frame at a reference position.
struct Timing {
    fps: f64,
    num: i64,
    den: i64,
    seg: SegmentDuration,
    ref_frames: i64,
    npos: usize,
    margin: f64,
}

/// Per-position sums of the working images under one time map, with the frame counts.
struct Mapped {
    sums: Vec<(u32, Vec<f64>)>,
    used: u64,
    boundary: u64,
    unmapped: u64,
}

impl Timing {
    /// Adds every suspect frame that `time` places inside a reference position (farther than
    /// the boundary margin from its edges) to that position's sum.
    fn accumulate(
        &self,
        frames: &mut SuspectFrames,
        time: &TimeMap,
    ) -> Result<Mapped, DetectError> {
        let position_of = |k: i64| self.seg.position_at(k * self.den, self.num).get() as usize;
        let last = self.ref_frames - 1;
        let mut out = Mapped {
            sums: vec![(0, Vec::new()); self.npos],
            used: 0,
            boundary: 0,
            unmapped: 0,
        };
        let times = frames.times.clone();
        frames.for_each(|i, img| {
            let Some(rt) = time.map(times[i]) else {
                out.unmapped += 1;
                return;
            };
            let u = rt * self.fps;
            let k = u.round() as i64;
            if k < 0 || k > last {
                out.unmapped += 1;
                return;
            }
            let p = position_of(k);
            let lo = position_of(((u - self.margin).round() as i64).clamp(0, last));
            let hi = position_of(((u + self.margin).round() as i64).clamp(0, last));
            if lo != p || hi != p {
                out.boundary += 1;
                return;
            }
            if let Some(slot) = out.sums.get_mut(p) {
                accumulate(slot, img);
                out.used += 1;
            }
        })?;
        Ok(out)
    }
}

/// Mean images of the positions seen in at least `min_frames` frames, with the reference
/// statistics.
fn observe(reference: &Reference, sums: Vec<(u32, Vec<f64>)>, min_frames: u32) -> Vec<Observed> {
    let mut observed = Vec::new();
    for (p, (count, acc)) in sums.into_iter().enumerate() {
        if count < min_frames {
            continue;
        }
        let Some(stats) = reference.position(Position::new(p as u32)) else {
            continue;
        };
        let mean: Vec<f32> = acc.iter().map(|&v| (v / f64::from(count)) as f32).collect();
        observed.push((p, count, mean, stats.mean_luma));
    }
    observed
}

/// Indices of (up to) [`REGISTRATION_POSITIONS`] positions spread over `n` observed ones.
fn spread(n: usize) -> Vec<usize> {
    if n <= REGISTRATION_POSITIONS {
        (0..n).collect()
    } else {
        (0..REGISTRATION_POSITIONS)
            .map(|i| i * n / REGISTRATION_POSITIONS)
            .collect()
    }
}

/// The (reference, suspect) mean pairs of the `pick`ed observed positions, the suspect means
/// taken from `suspects` (one per pick).
fn pairs<'b>(
    observed: &'b [Observed],
    pick: &[usize],
    suspects: &[&'b [f32]],
    (rw, rh): (usize, usize),
    (ww, wh): (usize, usize),
) -> Vec<Pair<'b>> {
    pick.iter()
        .zip(suspects)
        .map(|(&i, &s)| Pair {
            reference: Image {
                data: &observed[i].3,
                w: rw,
                h: rh,
            },
            suspect: Image {
                data: s,
                w: ww,
                h: wh,
            },
        })
        .collect()
}

/// Spatial and photometric registration, jointly over the `pick`ed observed positions; a
/// poor match is tried flipped too (a mirrored copy), and the best kept.
fn register_space(
    observed: &[Observed],
    pick: &[usize],
    (rw, rh): (usize, usize),
    (ww, wh): (usize, usize),
) -> (Geometry, Photometric, overlay::Flip) {
    let views: Vec<&[f32]> = pick.iter().map(|&i| observed[i].2.as_slice()).collect();
    let own = pairs(observed, pick, &views, (rw, rh), (ww, wh));
    let (start, coarse_score) = spatial::coarse(&own, (ww, wh));
    // The copy's own fit, made at most once.
    let mut fitted = None;
    if coarse_score >= MIRROR_TRY_BELOW {
        let (g, ph) = spatial::refine(&own, start.clone());
        if g.score >= MIRROR_TRY_BELOW {
            return (g, ph, overlay::Flip::None);
        }
        fitted = Some((g, ph));
    }
    // A poor match: the flips are compared on their coarse placements first (cheap), and the
    // one that beats the copy's own by the margin is fitted before anything else. A mirrored
    // copy then costs one fit more than a plain one, not four.
    let mut flips: Vec<(f64, overlay::Flip, Geometry, Vec<Vec<f32>>)> = overlay::Flip::FLIPS
        .into_iter()
        .map(|f| {
            let means: Vec<Vec<f32>> = pick
                .iter()
                .map(|&i| f.apply(&observed[i].2, ww, wh))
                .collect();
            let views: Vec<&[f32]> = means.iter().map(Vec::as_slice).collect();
            let (g, score) =
                spatial::coarse(&pairs(observed, pick, &views, (rw, rh), (ww, wh)), (ww, wh));
            (score, f, g, means)
        })
        .filter(|(score, ..)| *score > coarse_score + MIRROR_MARGIN)
        .collect();
    flips.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, f, fstart, means) in flips {
        let views: Vec<&[f32]> = means.iter().map(Vec::as_slice).collect();
        let (g, ph) = spatial::refine(&pairs(observed, pick, &views, (rw, rh), (ww, wh)), fstart);
        // Only a flip that registers well is one: on footage that is not the title, some flip
        // places a little better by chance.
        if g.score >= MIRROR_TRY_BELOW {
            return (g, ph, f);
        }
    }
    let (g, ph) = fitted.unwrap_or_else(|| spatial::refine(&own, start));
    (g, ph, overlay::Flip::None)
}

/// The working-grid rectangle `[x0, y0, x1, y1]` (of the decoded, unflipped frames) that
/// `geometry` fills with the reference, slightly inset, when it is a window: under
/// [`WINDOW_AT_MOST`] of the suspect's picture.
fn window_of(
    geometry: &Geometry,
    flip: overlay::Flip,
    (ww, wh): (usize, usize),
) -> Option<[usize; 4]> {
    let corners = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)].map(|(x, y)| geometry.map(x, y));
    let lo = |f: fn(&(f64, f64)) -> f64| corners.iter().map(f).fold(f64::INFINITY, f64::min);
    let hi = |f: fn(&(f64, f64)) -> f64| corners.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = (lo(|c| c.0).max(0.0), hi(|c| c.0).min(ww as f64));
    let (y0, y1) = (lo(|c| c.1).max(0.0), hi(|c| c.1).min(wh as f64));
    let c = &geometry.content;
    let picture = ((c[2] - c[0]) * (c[3] - c[1])).max(1.0);
    if x1 <= x0 || y1 <= y0 || (x1 - x0) * (y1 - y0) > WINDOW_AT_MOST * picture {
        return None;
    }
    // Inset by 5 % of the window: its edge may be a border or blend into what surrounds it.
    let (ix, iy) = ((x1 - x0) * 0.05, (y1 - y0) * 0.05);
    let (mut a, b) = (
        [(x0 + ix).ceil() as usize, (y0 + iy).ceil() as usize],
        [(x1 - ix).floor() as usize, (y1 - iy).floor() as usize],
    );
    let mut z = b;
    if matches!(flip, overlay::Flip::Horizontal | overlay::Flip::Both) {
        (a[0], z[0]) = (ww.saturating_sub(b[0]), ww.saturating_sub(a[0]));
    }
    if matches!(flip, overlay::Flip::Vertical | overlay::Flip::Both) {
        (a[1], z[1]) = (wh.saturating_sub(b[1]), wh.saturating_sub(a[1]));
    }
    (z[0] > a[0] + 1 && z[1] > a[1] + 1).then_some([a[0], a[1], z[0], z[1]])
}

/// How well a time map explains a suspect of `span` seconds: the mean of its pieces' scores
/// weighted by the time they cover (uncovered time counts 0), less 0.01 per extra piece.
fn temporal_quality(map: &TimeMap, span: f64) -> f64 {
    if span <= 0.0 || map.pieces.is_empty() {
        return f64::NEG_INFINITY;
    }
    let covered: f64 = map
        .pieces
        .iter()
        .map(|p| (p.suspect_end - p.suspect_start).max(0.0) * p.score)
        .filter(|v| v.is_finite())
        .sum();
    covered / span - 0.01 * (map.pieces.len() - 1) as f64
}

/// Adds a working image into a position's running (frame count, per-pixel sum).
fn accumulate(slot: &mut (u32, Vec<f64>), img: &[f32]) {
    let (count, acc) = slot;
    if acc.is_empty() {
        acc.resize(img.len(), 0.0);
    }
    *count += 1;
    acc.iter_mut()
        .zip(img)
        .for_each(|(a, &v)| *a += f64::from(v));
}

/// The pixels of a `w × h` pattern grid that `geometry` places inside the suspect picture:
/// (index `y × w + x`, suspect working-grid coordinates).
fn visible_points(geometry: &Geometry, w: usize, h: usize) -> Vec<(usize, f64, f64)> {
    let mut points = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let (u, v) = geometry.map((x as f64 + 0.5) / w as f64, (y as f64 + 0.5) / h as f64);
            if geometry.inside(u, v, 1.0) {
                points.push((y * w + x, u, v));
            }
        }
    }
    points
}

/// Checks the ranges of `opts`.
fn check_options(opts: &DecideOptions) -> Result<(), DetectError> {
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
    if !(0.0..=5.0).contains(&opts.boundary_frames) {
        return Err(DetectError::Invalid(format!(
            "boundary margin {} frames out of range (expected 0 to 5)",
            opts.boundary_frames
        )));
    }
    Ok(())
}

/// The correlation detector of one title on one visible grid: the keyed pattern and the
/// [`DECOYS`] decoys, whitened the same way as the residual.
struct Correlator<'a> {
    pattern_key: &'a DerivedKey,
    decoys: Vec<DerivedKey>,
    grid: correlate::Grid,
    /// Visible pattern-grid pixels: index `y × w + x`, and where they land in the suspect.
    points: &'a [(usize, f64, f64)],
    size: (usize, usize),
    radius: usize,
}

impl<'a> Correlator<'a> {
    fn new(
        pattern_key: &'a DerivedKey,
        w: usize,
        h: usize,
        points: &'a [(usize, f64, f64)],
        radius: usize,
    ) -> Self {
        Self {
            pattern_key,
            decoys: (0..DECOYS).map(|i| decoy_key(pattern_key, i)).collect(),
            grid: correlate::Grid::with_radius(w, h, points.iter().map(|p| p.0).collect(), radius),
            points,
            size: (w, h),
            radius,
        }
    }

    /// The decision at `pos` from the (unwhitened) residual `d` and the expected mark
    /// amplitude `amp`, both one value per visible point, leaving out the points `skip` marks
    /// (their residual is taken as 0 before whitening, and they count for nothing after).
    fn decide(
        &self,
        pos: Position,
        frames: u32,
        d: &[f64],
        amp: &[f64],
        skip: &[bool],
        erasure_z: f64,
    ) -> PositionDecision {
        let cleaned: Vec<f64> = d
            .iter()
            .zip(skip)
            .map(|(&v, &s)| if s { 0.0 } else { v })
            .collect();
        let mut d = self.grid.highpass(&cleaned, self.radius);
        let any_skip = skip.iter().any(|&s| s);
        if any_skip {
            d.iter_mut()
                .zip(skip)
                .filter(|(_, s)| **s)
                .for_each(|(v, _)| *v = 0.0);
        }
        let (w, h) = self.size;
        let corr = |key: &DerivedKey| -> f64 {
            let field = Pattern::new(key, pos).render(w, h);
            let e: Vec<f64> = self
                .points
                .iter()
                .zip(amp)
                .map(|(&(i, ..), a)| f64::from(field[i]) * a)
                .collect();
            let mut e = self.grid.highpass(&e, self.radius);
            if any_skip {
                e.iter_mut()
                    .zip(skip)
                    .filter(|(_, s)| **s)
                    .for_each(|(v, _)| *v = 0.0);
            }
            normalised_correlation(&d, &e)
        };
        let c = corr(self.pattern_key);
        let null: Vec<f64> = self.decoys.iter().map(&corr).collect();
        let sigma0 = (null.iter().map(|v| v * v).sum::<f64>() / null.len().max(1) as f64).sqrt();
        let z = if sigma0 > 0.0 { c / sigma0 } else { 0.0 };
        PositionDecision {
            position: pos.get(),
            frames,
            correlation: c,
            sigma0,
            z,
            erased: z.abs() < erasure_z,
        }
    }
}

/// Removes from `d` its least-squares fit on `1, m, m²` (content that the photometric map
/// left behind; the keyed mark is orthogonal to smooth functions of the picture).
fn regress_out(d: &mut [f64], m: &[f64]) {
    let n = d.len() as f64;
    if n < 4.0 {
        return;
    }
    let mm = m.iter().sum::<f64>() / n;
    let sd = m.iter().map(|v| (v - mm).powi(2)).sum::<f64>() / n;
    let sd = sd.sqrt().max(1e-6);
    let basis = |v: f64| {
        let x = (v - mm) / sd;
        [1.0, x, x * x]
    };
    let mut a = vec![vec![0.0; 4]; 3];
    for (&dv, &mv) in d.iter().zip(m) {
        let b = basis(mv);
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] += b[i] * b[j];
            }
            a[i][3] += b[i] * dv;
        }
    }
    if let Some(c) = register::linsolve(&mut a) {
        for (dv, &mv) in d.iter_mut().zip(m) {
            let b = basis(mv);
            *dv -= c[0] * b[0] + c[1] * b[1] + c[2] * b[2];
        }
    }
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

    #[test]
    fn regress_out_removes_smooth_content() {
        let m: Vec<f64> = (0..100).map(f64::from).collect();
        let mut d: Vec<f64> = m.iter().map(|v| 3.0 + 0.5 * v + 0.01 * v * v).collect();
        regress_out(&mut d, &m);
        assert!(d.iter().all(|v| v.abs() < 1e-6), "{d:?}");
    }
}
