//! The blind fallback: decisions without a reference index.
//!
//! When neither the reference index nor the mezzanine is at hand, the suspect cannot be
//! registered against the unmarked picture, so the detector assumes what a straight re-encode
//! of a session's stream keeps:
//!
//! - **time**: the suspect starts at the title's start, or `start_s` seconds into it
//!   (`reference_time = suspect_time + start_s`, one piece, rate 1); each frame belongs to the
//!   position its time falls in, and frames within [`DecideOptions::boundary_frames`] frame
//!   intervals of a position boundary are skipped;
//! - **geometry**: the whole picture inside the black bars (found as in informed registration)
//!   is the whole marked picture (any downscale or aspect change is absorbed), unless the
//!   crop and scale search on the keyed pattern ([`crate::blind_crop`]) finds, with calibrated
//!   confidence, that the copy shows a part of it scaled back;
//! - **luma**: no photometric map; the expected mark has a uniform amplitude.
//!
//! The residual is the suspect's per-position mean image itself, whitened by a local-mean
//! high-pass ([`BLIND_HIGHPASS_RADIUS`], smaller than the informed one because the unmarked
//! picture is not subtracted and its low frequencies dominate). The host picture is the noise
//! here, so each position carries far less evidence than with a reference and more of the copy
//! is needed. The calibration is the same as in [`crate::decide`]: σ₀ per position comes from
//! the keyed decoy patterns correlated with the same residual, so an unmarked or unrelated copy
//! still gives z ≈ N(0, 1) and the accuser's false-accusation bound still holds.

use crate::blind_crop::{self, CropSearch};
use crate::correlate::Correlator;
use crate::decide::{accumulate, visible_points};
use crate::frames::{SuspectFrames, WORK_WIDTH};
use crate::register::photometric::Photometric;
use crate::register::spatial::{self, Geometry, Image};
use crate::register::temporal::{TimeMap, TimePiece};
use crate::{DecideOptions, Decisions, DetectError, Registration};
use leaktrace_core::{DerivedKey, Position, SegmentDuration};

/// Radius of the whitening box in blind mode (working-grid pixels; a pattern cell is 4).
///
/// Chosen on 180 s of Big Buck Bunny at 360p, one session's stream re-encoded at 720p
/// 1.5 Mbit/s (mean |z| over 90 positions, signs right): radius 1: 2.21, 87; 2: 2.23, 87;
/// 3: 2.15, 87; 5: 1.91, 81; 8 (the informed radius): 1.58, 79.
pub const BLIND_HIGHPASS_RADIUS: usize = 2;

/// Default erasure threshold in blind mode: none. Blind positions are weak (|z| ≈ 2) but
/// mostly right, and the accuser weighs each by its likelihood, so erasing them only throws
/// evidence away (same copy: fp 1.9e-18 with every position, 5.7e-11 erasing |z| < 2, not
/// accused at 1e-6 erasing |z| < 3). The false-accusation bound does not depend on it.
pub const BLIND_ERASURE_Z: f64 = 0.0;

/// Highest position the blind fallback will consider (about 100 hours at 1-s segments).
const MAX_POSITIONS: u64 = 360_000;

/// The boundary margin (frames) the blind fallback is run with by `investigate`: without a
/// reference the positions' timing is only the given start, so the frames nearest a boundary
/// are the likeliest to belong to the neighbour ([`DecideOptions::boundary_frames`]).
pub const BOUNDARY_FRAMES: f64 = 1.0;

/// What the blind fallback needs to know about the title.
#[derive(Clone, Copy, Debug)]
pub struct BlindOptions {
    /// The title's segment (position) duration.
    pub segment: SegmentDuration,
    /// Title time at the suspect's first frame, in seconds (0 to 360 000).
    pub start_s: f64,
}

/// A suspect read for the blind fallback: per-position means on the working grid.
struct BlindRead {
    observed: Vec<(usize, u32, Vec<f32>)>,
    size: (usize, usize),
    content: [f64; 4],
    frames: u64,
    fps: f64,
    source_size: (usize, usize),
    turned: leaktrace_media::Orientation,
    last: f64,
    used: u64,
    boundary: u64,
    unmapped: u64,
}

/// The crop and scale search of [`crate::blind_crop`] on `suspect`, as [`decide_blind`] runs
/// it (for diagnostics and measurement).
pub fn crop_search(
    suspect: &std::path::Path,
    pattern_key: &DerivedKey,
    blind: &BlindOptions,
    opts: &DecideOptions,
) -> Result<CropSearch, DetectError> {
    let read = read_blind(suspect, blind, opts)?;
    Ok(search_of(&read, pattern_key))
}

/// The crop search on at most [`blind_crop::SEARCH_POSITIONS`] positions spread over the copy.
fn search_of(read: &BlindRead, pattern_key: &DerivedKey) -> CropSearch {
    let step = read
        .observed
        .len()
        .div_ceil(blind_crop::SEARCH_POSITIONS)
        .max(1);
    let means: Vec<(usize, &[f32])> = read
        .observed
        .iter()
        .step_by(step)
        .map(|(p, _, m)| (*p, m.as_slice()))
        .collect();
    blind_crop::search(&means, read.size, read.content, pattern_key)
}

/// Decides every position of `suspect` without a reference (see the module documentation).
pub fn decide_blind(
    suspect: &std::path::Path,
    pattern_key: &DerivedKey,
    blind: &BlindOptions,
    opts: &DecideOptions,
) -> Result<Decisions, DetectError> {
    let read = read_blind(suspect, blind, opts)?;
    let min_frames = opts.min_frames.max(1);
    let (ww, wh) = read.size;
    let content = read.content;
    let found = search_of(&read, pattern_key);
    let geometry = if found.accepted {
        found.geometry(content, (ww, wh))
    } else {
        Geometry::fill(content, (ww, wh))
    };
    let (cw, ch) = (content[2] - content[0], content[3] - content[1]);
    let rw = WORK_WIDTH;
    let rh = ((rw as f64 * ch / cw.max(1.0)).round() as usize).clamp(8, 4 * rw);
    let points = visible_points(&geometry, rw, rh);
    if points.len() < 64 {
        return Err(DetectError::NoOverlap {
            offset: 0,
            min_frames,
        });
    }

    let correlator = Correlator::new(pattern_key, rw, rh, &points, BLIND_HIGHPASS_RADIUS);
    let amp = vec![1.0; points.len()];
    let keep = vec![false; points.len()];
    let positions = read
        .observed
        .iter()
        .map(|(p, count, mean)| {
            let img = Image {
                data: mean,
                w: ww,
                h: wh,
            };
            let d: Vec<f64> = points
                .iter()
                .map(|&(_, u, v)| f64::from(img.sample(u, v)))
                .collect();
            correlator.decide(
                Position::new(*p as u32),
                *count,
                &d,
                &amp,
                &keep,
                opts.erasure_z,
            )
        })
        .collect();
    Ok(Decisions {
        offset: (blind.start_s * read.fps).round() as i64,
        registration_mad: f64::NAN,
        suspect_frames: read.frames,
        positions,
        registration: Registration {
            time: TimeMap {
                pieces: vec![TimePiece {
                    suspect_start: 0.0,
                    suspect_end: read.last,
                    rate: 1.0,
                    offset: blind.start_s,
                    windows: 0,
                    score: f64::NAN,
                }],
            },
            geometry,
            photometric: Photometric::default(),
            suspect_size: [read.source_size.0, read.source_size.1],
            suspect_turned: crate::turned(read.turned),
            suspect_fps: read.fps,
            frames_used: read.used,
            frames_at_boundaries: read.boundary,
            frames_unmapped: read.unmapped,
            flip: crate::overlay::Flip::None,
            excluded: crate::overlay::Excluded::default(),
        },
    })
}

/// Reads `suspect` and sums its frames per position as the blind fallback assigns them.
fn read_blind(
    suspect: &std::path::Path,
    blind: &BlindOptions,
    opts: &DecideOptions,
) -> Result<BlindRead, DetectError> {
    crate::decide::check_options(opts)?;
    if !(0.0..=360_000.0).contains(&blind.start_s) {
        return Err(DetectError::Invalid(format!(
            "blind start {} s out of range (expected 0 to 360000)",
            blind.start_s
        )));
    }
    let seg_s = blind.segment.as_millis() as f64 / 1000.0;
    let min_frames = opts.min_frames.max(1);
    let mut frames = SuspectFrames::read(suspect)?;
    let n = frames.len() as u64;
    let margin_s = opts.boundary_frames / frames.fps.max(1.0);
    let times = frames.times.clone();
    let (ww, wh) = frames.size;

    let mut sums: Vec<(u32, Vec<f64>)> = Vec::new();
    let (mut used, mut boundary, mut unmapped) = (0u64, 0u64, 0u64);
    frames.for_each(|i, img| {
        let t = times[i] + blind.start_s;
        let u = t / seg_s;
        let p = u.floor();
        if !(0.0..MAX_POSITIONS as f64).contains(&p) {
            unmapped += 1;
            return;
        }
        let into = (u - p) * seg_s;
        if into < margin_s || seg_s - into < margin_s {
            boundary += 1;
            return;
        }
        let p = p as usize;
        if sums.len() <= p {
            sums.resize(p + 1, (0, Vec::new()));
        }
        accumulate(&mut sums[p], img);
        used += 1;
    })?;
    let observed: Vec<(usize, u32, Vec<f32>)> = sums
        .into_iter()
        .enumerate()
        .filter(|(_, (count, _))| *count >= min_frames)
        .map(|(p, (count, acc))| {
            let mean = acc.iter().map(|&v| (v / f64::from(count)) as f32).collect();
            (p, count, mean)
        })
        .collect();
    if observed.is_empty() {
        return Err(DetectError::NoOverlap {
            offset: 0,
            min_frames,
        });
    }

    // The picture inside the bars.
    let step = observed.len().div_ceil(24).max(1);
    let means: Vec<&[f32]> = observed
        .iter()
        .step_by(step)
        .map(|o| o.2.as_slice())
        .collect();
    let content = spatial::content_rect(&means, ww, wh);
    Ok(BlindRead {
        observed,
        size: (ww, wh),
        content,
        frames: n,
        fps: frames.fps,
        source_size: frames.source_size,
        turned: frames.turned,
        last: times.last().copied().unwrap_or(0.0),
        used,
        boundary,
        unmapped,
    })
}
