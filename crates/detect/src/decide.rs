//! [`decide`]: from a suspect file and the reference index to a calibrated decision per observed
//! position, in named steps: time, space, what the pirate added, and the decisions.

use crate::correlate::{self, Correlator};
use crate::frames::{self, SuspectFrames};
use crate::register;
use crate::register::photometric::Photometric;
use crate::register::spatial::{self, Geometry, Image, Pair};
use crate::register::temporal::{self, TimeMap};
use crate::{DecideOptions, Decisions, DetectError, PositionDecision, Registration, overlay};
use leaktrace_core::{DerivedKey, GRID_COLS, GRID_ROWS, Position, SegmentDuration};
use leaktrace_reference::{Reference, ReferenceError, THUMB, normalised_correlation};
use std::path::Path;

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

/// Decodes the suspect once, registers it in time, space and luma against the reference, and
/// returns a calibrated decision per observed position.
pub fn decide(
    suspect: &Path,
    reference: &Reference,
    pattern_key: &DerivedKey,
    opts: &DecideOptions,
) -> Result<Decisions, DetectError> {
    check_options(opts)?;
    // One decode pass.
    let mut frames = SuspectFrames::read(suspect)?;
    decide_frames(&mut frames, reference, pattern_key, opts)
}

/// [`decide`] on frames already decoded: what a detection that follows a growing capture
/// runs again each time more of it has arrived ([`crate::follow`]).
pub fn decide_frames(
    frames: &mut SuspectFrames,
    reference: &Reference,
    pattern_key: &DerivedKey,
    opts: &DecideOptions,
) -> Result<Decisions, DetectError> {
    check_options(opts)?;
    if frames.is_empty() {
        return Err(DetectError::Empty);
    }
    let timing = Timing::of(reference, opts)?;
    let min_frames = opts.min_frames.max(1);
    let n = frames.len() as u64;

    // Time, then space on the positions time gives.
    let ref_means = thumbnail_means(reference);
    let span = frames.times.last().copied().unwrap_or(0.0) + 1.0 / timing.fps;
    let mut time = register_time(frames, reference, &ref_means, timing.fps, opts.max_offset_s);
    let mut mapped = timing.accumulate(frames, &time)?;
    let mut observed = observe(reference, std::mem::take(&mut mapped.sums), min_frames);
    if observed.is_empty() {
        return Err(DetectError::NoOverlap {
            offset: timing.offset_of(&time),
            min_frames,
        });
    }
    let mut pick = spread(observed.len());
    let (geometry, photometric, flip) =
        register_space(&observed, &pick, reference.stats_size(), frames.size);

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
            timing.fps,
            opts.max_offset_s,
        );
        if temporal_quality(&windowed, span) > temporal_quality(&time, span) + WINDOW_TIME_MARGIN {
            let again = timing.accumulate(frames, &windowed)?;
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
    let offset = timing.offset_of(&time);
    if flip != overlay::Flip::None {
        let (ww, wh) = frames.size;
        for o in &mut observed {
            o.2 = flip.apply(&o.2, ww, wh);
        }
    }

    // What the pirate added, then the decisions on what is left.
    let scene = Scene {
        geometry: &geometry,
        photometric: &photometric,
        size: frames.size,
        stats: reference.stats_size(),
    };
    let visible = visible_points(&geometry, scene.stats.0, scene.stats.1);
    if visible.len() < 64 {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    let vfield = scene.field(&visible);
    let grid_mask = scene.overlay_mask(&visible, &vfield, &observed, &pick);
    let kept: Vec<bool> = visible.iter().map(|&(i, ..)| !grid_mask[i]).collect();
    let kept_count = kept.iter().filter(|&&k| k).count();
    if kept_count < 64 {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    let mut excluded = overlay::Excluded {
        persistent_fraction: 1.0 - kept_count as f64 / visible.len() as f64,
        regions: scene.excluded_regions(&visible, &grid_mask),
        ..overlay::Excluded::default()
    };
    let decided = scene.decide_positions(
        reference,
        pattern_key,
        &observed,
        &visible,
        &vfield,
        &kept,
        opts.erasure_z,
    );
    if decided.positions.is_empty() {
        return Err(DetectError::NoOverlap { offset, min_frames });
    }
    let count = decided.positions.len() as f64;
    excluded.transient_fraction = decided.transient / count;
    excluded.kept_score = decided.kept_score_sum / count;
    Ok(Decisions {
        offset,
        registration_mad: decided.mad_sum / decided.mad_n.max(1) as f64,
        suspect_frames: n,
        positions: decided.positions,
        registration: Registration {
            time,
            geometry,
            photometric,
            suspect_size: [frames.source_size.0, frames.source_size.1],
            suspect_turned: crate::turned(frames.turned),
            suspect_fps: frames.fps,
            frames_used: mapped.used,
            frames_at_boundaries: mapped.boundary,
            frames_unmapped: mapped.unmapped,
            flip,
            excluded,
        },
    })
}

/// The mean of each reference frame's thumbnail: the signature temporal registration matches.
fn thumbnail_means(reference: &Reference) -> Vec<f32> {
    let tl = THUMB.0 * THUMB.1;
    reference
        .thumbnails()
        .chunks_exact(tl)
        .map(|t| t.iter().map(|&v| f32::from(v)).sum::<f32>() / tl as f32)
        .collect()
}

/// Temporal registration on the mean-luma signature, of the whole picture and of its centre,
/// which edge overlays do not reach: a ticker scrolling over a static scene moves the
/// whole-picture mean more than the title does. The map that explains more of the suspect,
/// better, in fewer pieces, is kept.
fn register_time(
    frames: &SuspectFrames,
    reference: &Reference,
    ref_means: &[f32],
    fps: f64,
    max_offset_s: f64,
) -> TimeMap {
    let (tw, th) = THUMB;
    let tl = tw * th;
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
    let full = || temporal::register(&frames.times, &frames.means, ref_means, fps, max_offset_s);
    let centre = || {
        temporal::register(
            &frames.times,
            &frames.central,
            &ref_central,
            fps,
            max_offset_s,
        )
    };
    // The two registrations are independent: on two cores when there are.
    let (full, centre) = if crate::score::threads() > 1 {
        std::thread::scope(|scope| {
            let centre = scope.spawn(centre);
            let full = full();
            match centre.join() {
                Ok(centre) => (full, centre),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    } else {
        (full(), centre())
    };
    let span = frames.times.last().copied().unwrap_or(0.0) + 1.0 / fps;
    if temporal_quality(&centre, span) > temporal_quality(&full, span) {
        centre
    } else {
        full
    }
}

/// The registered geometry and photometry of a copy, with the sizes of both grids: what maps a
/// reference statistics pixel to the suspect's working picture and its grey level.
struct Scene<'a> {
    geometry: &'a Geometry,
    photometric: &'a Photometric,
    /// The suspect's working picture.
    size: (usize, usize),
    /// The reference statistics grid.
    stats: (usize, usize),
}

/// What [`Scene::decide_positions`] found.
struct Decided {
    positions: Vec<PositionDecision>,
    /// Sum and count of absolute registration residuals over every visible pixel.
    mad_sum: f64,
    mad_n: usize,
    /// Sum over positions of the registration's correlation on the kept pixels.
    kept_score_sum: f64,
    /// Sum over positions of the share of kept pixels left out as transient overlays.
    transient: f64,
}

impl Scene<'_> {
    /// The vignetting gain at each visible point.
    fn field(&self, pts: &[(usize, f64, f64)]) -> Vec<f64> {
        pts.iter()
            .map(|&(_, u, v)| self.photometric.field(self.geometry.radius2(u, v)))
            .collect()
    }

    /// The registration residual of one observed position at `pts`: suspect minus the mapped
    /// reference, smooth leftovers not yet regressed out; with the mapped reference (the model).
    fn residual(
        &self,
        pts: &[(usize, f64, f64)],
        field: &[f64],
        mean: &[f32],
        ref_mean: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let img = Image {
            data: mean,
            w: self.size.0,
            h: self.size.1,
        };
        let model: Vec<f64> = pts
            .iter()
            .zip(field)
            .map(|(&(i, ..), v)| v * self.photometric.apply(f64::from(ref_mean[i])))
            .collect();
        let d: Vec<f64> = pts
            .iter()
            .zip(&model)
            .map(|(&(_, u, v), m)| f64::from(img.sample(u, v)) - m)
            .collect();
        (d, model)
    }

    /// Overlays: the statistics pixels whose residual stands out at most registration
    /// positions (`pick`), dilated; `true` = left out of every decision.
    fn overlay_mask(
        &self,
        visible: &[(usize, f64, f64)],
        vfield: &[f64],
        observed: &[Observed],
        pick: &[usize],
    ) -> Vec<bool> {
        let (rw, rh) = self.stats;
        let sampled: Vec<Vec<f64>> = pick
            .iter()
            .map(|&i| {
                let (mut d, model) = self.residual(visible, vfield, &observed[i].2, &observed[i].3);
                regress_out(&mut d, &model);
                d
            })
            .collect();
        let mut grid_mask = vec![false; rw * rh];
        for (&(i, ..), &m) in visible.iter().zip(&overlay::persistent_mask(&sampled)) {
            grid_mask[i] = m;
        }
        overlay::dilate(&grid_mask, rw, rh)
    }

    /// The largest regions the mask leaves out, as boxes in the suspect picture (0 to 1).
    fn excluded_regions(&self, visible: &[(usize, f64, f64)], grid_mask: &[bool]) -> Vec<[f64; 4]> {
        let (rw, rh) = self.stats;
        let (ww, wh) = self.size;
        let mut visible_mask = vec![false; rw * rh];
        for &(i, ..) in visible {
            visible_mask[i] = grid_mask[i];
        }
        overlay::regions(&visible_mask, rw, rh, 4)
            .into_iter()
            .map(|[x0, y0, x1, y1]| {
                let corner = |x: usize, y: usize| {
                    self.geometry
                        .map(x as f64 / rw as f64, y as f64 / rh as f64)
                };
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
            .collect()
    }

    /// One decision per observed position on the kept pixels, with what the report says about
    /// the registration (residual, correlation on the kept pixels, transient overlays).
    #[allow(clippy::too_many_arguments)]
    fn decide_positions(
        &self,
        reference: &Reference,
        pattern_key: &DerivedKey,
        observed: &[Observed],
        visible: &[(usize, f64, f64)],
        vfield: &[f64],
        kept: &[bool],
        erasure_z: f64,
    ) -> Decided {
        let (rw, rh) = self.stats;
        let points: Vec<(usize, f64, f64)> = visible
            .iter()
            .zip(kept)
            .filter_map(|(p, &k)| k.then_some(*p))
            .collect();
        // The kept values of `v`, in a vector of their final size (no regrowing).
        let keep = |v: &[f64]| -> Vec<f64> {
            let mut out = Vec::with_capacity(points.len());
            out.extend(v.iter().zip(kept).filter_map(|(x, &k)| k.then_some(*x)));
            out
        };
        let correlator = Correlator::new(pattern_key, rw, rh, &points, correlate::HIGHPASS_RADIUS);
        let field = keep(vfield);
        // Positions are decided independently, on every core; their sums are added in
        // position order, as a sequential loop would.
        let per_position = crate::par::map(observed, |(p, count, mean, ref_mean)| {
            let pos = Position::new(*p as u32);
            let stats = reference.position(pos)?;
            // The match measure is over every visible pixel, overlays included: leaving out
            // what the reference does not explain would make any footage look like the title.
            let (all, all_model) = self.residual(visible, vfield, mean, ref_mean);
            let mad_sum = all.iter().map(|v| v.abs()).sum::<f64>();
            let (mut kept_model, mut kept_suspect) = (
                Vec::with_capacity(points.len()),
                Vec::with_capacity(points.len()),
            );
            for ((m, d), _) in all_model.iter().zip(&all).zip(kept).filter(|(_, k)| **k) {
                kept_model.push(*m);
                kept_suspect.push(m + d);
            }
            let kept_score = normalised_correlation(&kept_model, &kept_suspect);
            let (mut d, model) = (keep(&all), keep(&all_model));
            regress_out(&mut d, &model);
            // What stands out at this position only (subtitles) is left out of its decision.
            let cut = overlay::TRANSIENT_K * overlay::robust_sigma(&d).max(1e-3);
            let skip: Vec<bool> = d.iter().map(|v| v.abs() > cut).collect();
            let transient = skip.iter().filter(|&&b| b).count() as f64 / skip.len().max(1) as f64;
            // The expected mark's amplitude per visible pixel: the embed-time mask amplitude of
            // the pixel's pattern cell times the photometric gain.
            let amp: Vec<f64> = points
                .iter()
                .zip(&field)
                .map(|(&(i, ..), v)| {
                    let (x, y) = (i % rw, i / rw);
                    let cell = (y * GRID_ROWS / rh) * GRID_COLS + x * GRID_COLS / rw;
                    f64::from(stats.amplitude[cell])
                        * v
                        * self.photometric.gain(f64::from(ref_mean[i]))
                })
                .collect();
            let decision = correlator.decide(pos, *count, &d, &amp, &skip, erasure_z);
            Some((decision, mad_sum, all.len(), kept_score, transient))
        });
        let mut out = Decided {
            positions: Vec::new(),
            mad_sum: 0.0,
            mad_n: 0,
            kept_score_sum: 0.0,
            transient: 0.0,
        };
        for (decision, mad_sum, mad_n, kept_score, transient) in per_position.into_iter().flatten()
        {
            out.mad_sum += mad_sum;
            out.mad_n += mad_n;
            out.kept_score_sum += kept_score;
            out.transient += transient;
            out.positions.push(decision);
        }
        out
    }
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
    /// The reference's timing, with the options' boundary margin.
    fn of(reference: &Reference, opts: &DecideOptions) -> Result<Self, DetectError> {
        let meta = &reference.meta;
        let seg = SegmentDuration::from_millis(meta.segment_ms)
            .map_err(|_| ReferenceError::Format("segment duration out of range"))?;
        let [num, den] = meta.frame_rate;
        if num <= 0 || den <= 0 {
            return Err(ReferenceError::Format("frame rate is not positive").into());
        }
        Ok(Self {
            fps: f64::from(num) / f64::from(den),
            den: i64::from(den),
            num: i64::from(num),
            seg,
            ref_frames: meta.frames as i64,
            npos: meta.positions as usize,
            margin: opts.boundary_frames,
        })
    }

    /// The time map's first offset, in reference frames.
    fn offset_of(&self, time: &TimeMap) -> i64 {
        time.pieces
            .first()
            .map_or(0, |p| (p.offset * self.fps).round() as i64)
    }

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
    let (g, ph) = fitted.unwrap_or_else(|| spatial::refine(&own, start.clone()));
    // Nothing registered well: the coarse grid may have chosen the wrong scale. The 4×-reduced
    // means of a picture that is mostly smooth (a fixed camera on grass and a road) correlate
    // almost as well at any scale, and a fit started at the wrong one stays there. The whole
    // picture, where a copy most often puts the title, is fitted too, and the better fit kept.
    let full = Geometry::fill(start.content, (ww, wh));
    if full.h != start.h {
        let (fg, fph) = spatial::refine(&own, full);
        if fg.score > g.score {
            return (fg, fph, overlay::Flip::None);
        }
    }
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
pub(crate) fn accumulate(slot: &mut (u32, Vec<f64>), img: &[f32]) {
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
pub(crate) fn visible_points(geometry: &Geometry, w: usize, h: usize) -> Vec<(usize, f64, f64)> {
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
pub(crate) fn check_options(opts: &DecideOptions) -> Result<(), DetectError> {
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
    fn regress_out_removes_smooth_content() {
        let m: Vec<f64> = (0..100).map(f64::from).collect();
        let mut d: Vec<f64> = m.iter().map(|v| 3.0 + 0.5 * v + 0.01 * v * v).collect();
        regress_out(&mut d, &m);
        assert!(d.iter().all(|v| v.abs() < 1e-6), "{d:?}");
    }
}
