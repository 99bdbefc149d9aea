//! Spatial registration: where each reference statistics pixel lies in the suspect picture.
//!
//! The transform is constant over the suspect, so it is estimated once, jointly over many
//! positions, from the suspect's per-position *mean* images (working grid) against the
//! reference's per-position means:
//!
//! 1. **Content rectangle.** Rows and columns whose luma never varies (across the picture and
//!    across positions) at the borders are black bars (letterbox, pillarbox, padding); the rest
//!    is the picture. The first guess maps the whole reference onto that rectangle (any
//!    downscale and aspect change).
//! 2. **Coarse search.** Isotropic scale (0.6 to 1.5 × the first guess, 3 % steps: a
//!    picture-in-picture window down to 60 % of the picture, crops rescaled back up) and
//!    translation, on 4×-reduced images, maximising the mean normalised correlation over the
//!    positions (each over its best-fitting 80 % of points). Smaller windows, from 35 % of
//!    the width, anywhere in the frame, are proposed by an FFT correlation search
//!    ([`super::window`]) and scored the same way.
//! 3. **Refinement.** Gauss–Newton on a homography (affine first, then the two perspective
//!    terms, then two radial lens-distortion terms with the two terms of a vignetting field),
//!    minimising `Σ (S_p(W(x)) − g_p·V(x)·f(R_p(x)) − o_p)²` with a gain and offset per
//!    position, the photometric map `f` and the vignetting `V` ([`super::photometric`]), on
//!    smoothed then raw images. A camcorder copy needs the last stage: on the forensic
//!    suite's camcord chain (keystone, barrel k1 = −0.05, vignette π/5, …) the homography
//!    alone left |z| at noise level (RMS 1.1 over 96 positions); with it, 3.6.
//!
//! A copy that no fit registers well is also refined from the first guess (the whole picture)
//! by the caller, and the better fit kept: on a mostly smooth picture the coarse search's
//! scores barely depend on the scale, and a fit started at the wrong one stays there.
//!
//! Reference pixels that land outside the suspect's picture are masked out of the decision.

use super::linsolve;
use super::photometric::Photometric;
use super::window;
use serde::Serialize;

/// A homography from normalised reference coordinates `(X, Y) ∈ [0, 1]²` (pixel centres at
/// `(x + 0.5) / w`) to suspect working-grid edge coordinates, followed by a radial (lens)
/// distortion about the centre of the suspect's picture.
///
/// The homography gives `(u', v')`: `u' = (h0 X + h1 Y + h2) / D`, `v' = (h3 X + h4 Y + h5) / D`,
/// `D = h6 X + h7 Y + 1`. The radial term then moves it along the ray from the picture centre
/// `c`: `(u, v) = c + ((u', v') − c)·(1 + k1 r² + k2 r⁴)`, with `r` the distance from `c` in
/// units of the picture's half-diagonal (so `r = 1` at its corners). A camcorder's lens (barrel
/// or pincushion) is such a distortion; a screen or a transcode has `k1 = k2 = 0`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Geometry {
    /// The eight homography parameters.
    pub h: [f64; 8],
    /// The radial distortion `[k1, k2]`.
    pub radial: [f64; 2],
    /// The suspect's picture (without bars) on the working grid: `[x0, y0, x1, y1]` edges.
    pub content: [f64; 4],
    /// Working grid size of the suspect.
    pub working_size: [usize; 2],
    /// Mean normalised correlation of the registered position means with the reference.
    pub score: f64,
    /// Fraction of the reference picture visible in the suspect.
    pub visible: f64,
}

impl Geometry {
    /// Maps normalised reference coordinates to suspect edge coordinates.
    pub fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let (u, v) = self.homography(x, y);
        let (f, ..) = self.radial_factor(u, v);
        let (cx, cy) = self.centre();
        (cx + (u - cx) * f, cy + (v - cy) * f)
    }

    /// The homography alone (before the radial distortion).
    pub fn homography(&self, x: f64, y: f64) -> (f64, f64) {
        let h = &self.h;
        let d = h[6] * x + h[7] * y + 1.0;
        (
            (h[0] * x + h[1] * y + h[2]) / d,
            (h[3] * x + h[4] * y + h[5]) / d,
        )
    }

    /// The centre of the suspect's picture.
    fn centre(&self) -> (f64, f64) {
        let c = &self.content;
        ((c[0] + c[2]) / 2.0, (c[1] + c[3]) / 2.0)
    }

    /// The squared distance of suspect point `(u, v)` from the picture centre, in
    /// half-diagonals² (the radius of the vignetting field, [`Photometric::field`]).
    pub fn radius2(&self, u: f64, v: f64) -> f64 {
        self.radial_factor(u, v).1
    }

    /// `(1 + k1 r² + k2 r⁴, r², r⁴)` at the undistorted point `(u', v')`.
    fn radial_factor(&self, u: f64, v: f64) -> (f64, f64, f64) {
        let c = &self.content;
        let (cx, cy) = self.centre();
        let half_diag2 = ((c[2] - c[0]).powi(2) + (c[3] - c[1]).powi(2)) / 4.0;
        let r2 = ((u - cx).powi(2) + (v - cy).powi(2)) / half_diag2.max(1.0);
        let r4 = r2 * r2;
        (1.0 + self.radial[0] * r2 + self.radial[1] * r4, r2, r4)
    }

    /// The identity placement of a reference onto the whole content rectangle.
    pub fn fill(content: [f64; 4], working: (usize, usize)) -> Self {
        Self {
            h: [
                content[2] - content[0],
                0.0,
                content[0],
                0.0,
                content[3] - content[1],
                content[1],
                0.0,
                0.0,
            ],
            radial: [0.0, 0.0],
            content,
            working_size: [working.0, working.1],
            score: f64::NAN,
            visible: 1.0,
        }
    }

    /// True when suspect edge point `(u, v)` lies in the picture with a `margin`.
    pub fn inside(&self, u: f64, v: f64, margin: f64) -> bool {
        u >= self.content[0] + margin
            && u <= self.content[2] - margin
            && v >= self.content[1] + margin
            && v <= self.content[3] - margin
    }
}

/// A grey image.
#[derive(Clone, Debug)]
pub struct Image<'a> {
    /// Samples, row-major.
    pub data: &'a [f32],
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
}

impl Image<'_> {
    /// Bilinear sample at edge coordinates (clamped to the image).
    pub fn sample(&self, u: f64, v: f64) -> f32 {
        self.sample_taps(Tap::at(u, self.w), Tap::at(v, self.h))
    }

    /// The bilinear sample between the columns of `x` and the rows of `y`.
    fn sample_taps(&self, x: Tap, y: Tap) -> f32 {
        let d = self.data;
        let top = d[y.i0 * self.w + x.i0] * (1.0 - x.f) + d[y.i0 * self.w + x.i1] * x.f;
        let bot = d[y.i1 * self.w + x.i0] * (1.0 - x.f) + d[y.i1 * self.w + x.i1] * x.f;
        top * (1.0 - y.f) + bot * y.f
    }
}

/// Where a bilinear sample falls along one axis: the two samples it lies between and the
/// weight of the second.
#[derive(Clone, Copy, Debug)]
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

impl Tap {
    /// At edge coordinate `c` along an axis of `n` samples (clamped to it).
    fn at(c: f64, n: usize) -> Self {
        let x = (c - 0.5).clamp(0.0, (n - 1) as f64);
        // Clamped to 0 or more, where truncation is the floor.
        let i0 = x as usize;
        Self {
            i0,
            i1: (i0 + 1).min(n - 1),
            f: (x - i0 as f64) as f32,
        }
    }
}

/// Box-blurs (radius `r`) an image.
pub fn blur(data: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (x.saturating_sub(r), (x + r + 1).min(w));
            tmp[y * w + x] = data[y * w + a..y * w + b].iter().sum::<f32>() / (b - a) as f32;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let (a, b) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            out[y * w + x] = (a..b).map(|yy| tmp[yy * w + x]).sum::<f32>() / (b - a) as f32;
        }
    }
    out
}

/// Finds the picture inside black (or any flat) bars of the suspect: `[x0, y0, x1, y1]` edges.
pub fn content_rect(means: &[&[f32]], w: usize, h: usize) -> [f64; 4] {
    if means.is_empty() {
        return [0.0, 0.0, w as f64, h as f64];
    }
    // Activity of a line: its variance across positions and along the line.
    let line_activity = |n: usize, get: &dyn Fn(&[f32], usize) -> Vec<f32>| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let mut all = Vec::new();
                for m in means {
                    all.extend(get(m, i));
                }
                let k = all.len() as f64;
                let mu = all.iter().map(|&v| f64::from(v)).sum::<f64>() / k;
                all.iter()
                    .map(|&v| (f64::from(v) - mu).powi(2))
                    .sum::<f64>()
                    / k
            })
            .collect()
    };
    let rows = line_activity(h, &|m, y| m[y * w..(y + 1) * w].to_vec());
    let cols = line_activity(w, &|m, x| (0..h).map(|y| m[y * w + x]).collect());
    let span = |act: &[f64]| -> (usize, usize) {
        let mut s = act.to_vec();
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        let thr = (0.02 * median).max(0.5);
        let lo = act.iter().position(|&a| a > thr).unwrap_or(0);
        let hi = act
            .iter()
            .rposition(|&a| a > thr)
            .map_or(act.len(), |i| i + 1);
        // Bars are at most 40 % of the side each; otherwise keep the whole side.
        if hi <= lo || lo * 10 > act.len() * 4 || (act.len() - hi) * 10 > act.len() * 4 {
            (0, act.len())
        } else {
            (lo, hi)
        }
    };
    let (y0, y1) = span(&rows);
    let (x0, x1) = span(&cols);
    [x0 as f64, y0 as f64, x1 as f64, y1 as f64]
}

/// Inputs of [`register`]: per position, the reference mean and the suspect mean.
#[derive(Debug)]
pub struct Pair<'a> {
    /// Reference mean (reference statistics size).
    pub reference: Image<'a>,
    /// Suspect mean (working grid).
    pub suspect: Image<'a>,
}

fn ncc(a: &[f64], b: &[f64]) -> f64 {
    leaktrace_reference::normalised_correlation(a, b)
}

/// Share of the sampled points the coarse search keeps for its score: the ones whose residual
/// after a straight-line grey-level fit is smallest. What a pirate drew over the picture (a
/// ticker band, subtitles, a logo: up to a fifth of it) is then left out of the comparison
/// between candidates, where it would otherwise favour a geometry that smears it over
/// self-similar content (foliage, a backlit sky) rather than the one that aligns the rest.
const COARSE_KEEP: f64 = 0.8;

/// NCC of `a` and `b` over the `keep` share of points with the smallest residual of the
/// least-squares line `b ≈ α·a + β` (all of them when `keep` ≥ 1).
fn trimmed_ncc(a: &[f64], b: &[f64], keep: f64) -> f64 {
    let n = a.len();
    let k = ((n as f64 * keep).ceil() as usize).min(n);
    if k >= n || k < 8 {
        return ncc(a, b);
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / n as f64,
        b.iter().sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
    }
    let alpha = if saa > 0.0 { sab / saa } else { 0.0 };
    // Working buffers of this thread, kept between calls (the coarse search makes thousands).
    thread_local! {
        static KEPT: std::cell::RefCell<TrimScratch> = std::cell::RefCell::default();
    }
    KEPT.with_borrow_mut(|t| {
        t.residuals.clear();
        t.residuals.extend(
            a.iter()
                .zip(b)
                .enumerate()
                .map(|(i, (x, y))| ((y - mb - alpha * (x - ma)).abs(), i)),
        );
        t.residuals
            .select_nth_unstable_by(k - 1, |p, q| p.0.total_cmp(&q.0));
        t.a.clear();
        t.b.clear();
        for &(_, i) in &t.residuals[..k] {
            t.a.push(a[i]);
            t.b.push(b[i]);
        }
        ncc(&t.a, &t.b)
    })
}

/// Working buffers of [`trimmed_ncc`].
#[derive(Default)]
struct TrimScratch {
    residuals: Vec<(f64, usize)>,
    a: Vec<f64>,
    b: Vec<f64>,
}

/// Mean NCC over pairs of the reference sampled on a `step` grid against the suspect under
/// `g`, the suspect divided by the vignetting field of `photo`, each pair over the `keep`
/// share of best-fitting points ([`trimmed_ncc`]); `None` when under 40 % of the points fall
/// in the picture.
fn score(
    pairs: &[(Image<'_>, Image<'_>)],
    g: &Geometry,
    photo: &Photometric,
    step: usize,
    keep: f64,
) -> Option<f64> {
    if is_separable(g, photo) {
        score_separable(pairs, g, step, keep)
    } else {
        score_general(pairs, g, photo, step, keep)
    }
}

/// Whether `g` maps columns and rows independently, with no vignetting: a scale and a shift
/// per axis (no shear, perspective or radial distortion; every coarse candidate). Then the
/// suspect coordinate of a point depends on its column or its row alone, bit for bit: the
/// homography's denominator is exactly 1, its cross terms exactly 0, the radial factor and the
/// vignetting field exactly 1.
fn is_separable(g: &Geometry, photo: &Photometric) -> bool {
    g.h[1] == 0.0
        && g.h[3] == 0.0
        && g.h[6] == 0.0
        && g.h[7] == 0.0
        && g.radial == [0.0, 0.0]
        && photo.vignette == [0.0, 0.0]
        // Coordinates far from overflowing when squared (the radial factor's radius).
        && g.h.iter().chain(&g.content).all(|v| v.abs() < 1e100)
}

/// [`score`] of a separable geometry ([`is_separable`]): each sampled column and row mapped
/// once, the bilinear taps of each worked out once per axis. The same value as
/// [`score_general`], bit for bit.
fn score_separable(
    pairs: &[(Image<'_>, Image<'_>)],
    g: &Geometry,
    step: usize,
    keep: f64,
) -> Option<f64> {
    let (rw, rh) = (pairs[0].0.w, pairs[0].0.h);
    let yn0 = (step / 2) as f64 + 0.5;
    let xn0 = yn0 / rw as f64;
    let yn0 = yn0 / rh as f64;
    let cols: Vec<(usize, f64)> = (step / 2..rw)
        .step_by(step)
        .map(|x| (x, g.map((x as f64 + 0.5) / rw as f64, yn0).0))
        .collect();
    let rows: Vec<(usize, f64)> = (step / 2..rh)
        .step_by(step)
        .map(|y| (y, g.map(xn0, (y as f64 + 0.5) / rh as f64).1))
        .collect();
    let margin = 0.5;
    let (c, total) = (&g.content, cols.len() * rows.len());
    let cols: Vec<(usize, f64)> = cols
        .into_iter()
        .filter(|&(_, u)| u >= c[0] + margin && u <= c[2] - margin)
        .collect();
    let rows: Vec<(usize, f64)> = rows
        .into_iter()
        .filter(|&(_, v)| v >= c[1] + margin && v <= c[3] - margin)
        .collect();
    if cols.len() * rows.len() * 10 < total * 4 {
        return None;
    }
    let n = cols.len() * rows.len();
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut sum = 0.0;
    // The taps of each column and row, worked out again only when a suspect's size differs
    // from the last one's (the positions of one copy share a working grid).
    let (mut xt, mut yt): (Vec<Tap>, Vec<Tap>) = (Vec::new(), Vec::new());
    let mut size = None;
    for (r, s) in pairs {
        if size != Some((s.w, s.h)) {
            xt = cols.iter().map(|&(_, u)| Tap::at(u, s.w)).collect();
            yt = rows.iter().map(|&(_, v)| Tap::at(v, s.h)).collect();
            size = Some((s.w, s.h));
        }
        a.clear();
        b.clear();
        for (&(y, _), &yt) in rows.iter().zip(&yt) {
            let row = &r.data[y * rw..];
            for (&(x, _), &t) in cols.iter().zip(&xt) {
                a.push(f64::from(row[x]));
                b.push(f64::from(s.sample_taps(t, yt)));
            }
        }
        sum += trimmed_ncc(&a, &b, keep);
    }
    Some(sum / pairs.len() as f64)
}

/// [`score`] of any geometry.
fn score_general(
    pairs: &[(Image<'_>, Image<'_>)],
    g: &Geometry,
    photo: &Photometric,
    step: usize,
    keep: f64,
) -> Option<f64> {
    let (rw, rh) = (pairs[0].0.w, pairs[0].0.h);
    let mut pts = Vec::new();
    let mut total = 0usize;
    for y in (step / 2..rh).step_by(step) {
        for x in (step / 2..rw).step_by(step) {
            total += 1;
            let (u, v) = g.map((x as f64 + 0.5) / rw as f64, (y as f64 + 0.5) / rh as f64);
            if g.inside(u, v, 0.5) {
                pts.push((x, y, u, v));
            }
        }
    }
    if pts.len() * 10 < total * 4 {
        return None;
    }
    let mut sum = 0.0;
    for (r, s) in pairs {
        let a: Vec<f64> = pts
            .iter()
            .map(|&(x, y, _, _)| f64::from(r.data[y * rw + x]))
            .collect();
        let b: Vec<f64> = pts
            .iter()
            .map(|&(_, _, u, v)| f64::from(s.sample(u, v)) / photo.field(g.radius2(u, v)))
            .collect();
        sum += trimmed_ncc(&a, &b, keep);
    }
    Some(sum / pairs.len() as f64)
}

/// The `top` best-scoring of the candidates `i` in `which`, best first (of equal scores, the
/// lower index first; candidates without a score, or scoring −∞, left out), scored by `eval` on
/// all cores.
fn best_of(
    which: &[usize],
    top: usize,
    eval: impl Fn(usize) -> Option<f64> + Sync,
) -> Vec<(usize, f64)> {
    const BLOCK: usize = 16;
    let threads = crate::score::threads()
        .min(which.len().div_ceil(BLOCK))
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let keep = |found: &mut Vec<(usize, f64)>| {
        found.sort_by(best_first);
        found.truncate(top);
    };
    let work = || {
        let mut found: Vec<(usize, f64)> = Vec::new();
        loop {
            let from = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            if from >= which.len() {
                keep(&mut found);
                return found;
            }
            let to = (from + BLOCK).min(which.len());
            for &i in &which[from..to] {
                if let Some(s) = eval(i).filter(|s| *s > f64::NEG_INFINITY) {
                    found.push((i, s));
                }
            }
            if found.len() > 4 * top.max(BLOCK) {
                keep(&mut found);
            }
        }
    };
    let mut found = if threads == 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    keep(&mut found);
    found
}

/// The best candidate of a grid whose candidate `i` sits at `cell[i]` = (scale, column, row),
/// scored by `eval` (the first of equal scores scored; `None` when none has a score), coarse to fine:
/// every scale at every other column and row first (a quarter of the grid), then the cells
/// between around the [`GRID_SEEDS`] best of those. A correlation peak of the coarse search's
/// reduced images is wider than one reduced pixel, so the whole grid's best candidate
/// neighbours one of the best of the first pass.
fn coarse_to_fine(
    cell: &[(usize, i64, i64)],
    eval: impl Fn(usize) -> Option<f64> + Sync,
) -> Option<(usize, f64)> {
    let on_first = |&(_, ix, iy): &(usize, i64, i64)| ix % 2 == 0 && iy % 2 == 0;
    let first: Vec<usize> = (0..cell.len()).filter(|&i| on_first(&cell[i])).collect();
    let seeds = best_of(&first, GRID_SEEDS, &eval);
    let index: std::collections::HashMap<(usize, i64, i64), usize> =
        cell.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut between: Vec<usize> = seeds
        .iter()
        .flat_map(|&(i, _)| {
            let (sc, ix, iy) = cell[i];
            (-1..=1).flat_map(move |dy| (-1..=1).map(move |dx| (sc, ix + dx, iy + dy)))
        })
        .filter_map(|c| index.get(&c).copied())
        .filter(|&i| !on_first(&cell[i]))
        .collect();
    between.sort_unstable();
    between.dedup();
    let second = best_of(&between, 1, &eval);
    seeds
        .first()
        .into_iter()
        .chain(second.first())
        .copied()
        .min_by(best_first)
}

/// Orders scored candidates best first: the higher score, then the lower index (the one a
/// sequential scan keeps of equal scores).
fn best_first(a: &(usize, f64), b: &(usize, f64)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The smallest isotropic scale of the coarse grid search (its translations reach every
/// placement of a window this size or larger).
const GRID_MIN_SCALE: f64 = 0.6;
/// The smallest picture-in-picture window searched, as a share of the picture's width.
const PIP_MIN_WIDTH: f64 = 0.35;
/// The best candidates of the coarse grid's first pass whose neighbours the second pass scores.
const GRID_SEEDS: usize = 64;
/// Placements the FFT search proposes per window width.
const PIP_CANDIDATES: usize = 3;

/// A reduced image: samples, width, height.
type Reduced = (Vec<f32>, usize, usize);

fn reduce(img: &Image<'_>, f: usize) -> Reduced {
    let (w, h) = ((img.w / f).max(1), (img.h / f).max(1));
    (
        leaktrace_reference::downsample_f32(img.data, img.w, img.h, w, h),
        w,
        h,
    )
}

/// Estimates the geometry (and refines the photometric map) from per-position mean pairs.
pub fn register(pairs: &[Pair<'_>], working: (usize, usize)) -> (Geometry, Photometric) {
    let (g, _) = coarse(pairs, working);
    refine(pairs, g)
}

/// The coarse search alone (steps 1 and 2): the best isotropic placement and its score (the
/// mean over positions of the trimmed normalised correlation on 4×-reduced images; −∞ when
/// nothing could be scored). Cheap next to [`refine`], so candidates such as the flips of a
/// copy can be compared on it before one is fitted.
pub fn coarse(pairs: &[Pair<'_>], working: (usize, usize)) -> (Geometry, f64) {
    let (sw, sh) = working;
    let suspects: Vec<&[f32]> = pairs.iter().map(|p| p.suspect.data).collect();
    let content = content_rect(&suspects, sw, sh);
    let first = Geometry::fill(content, working);
    if pairs.is_empty() {
        return (first, f64::NEG_INFINITY);
    }

    // Coarse search on 4×-reduced images of (at most) 8 spread positions.
    const F: usize = 4;
    let coarse: Vec<&Pair<'_>> = (0..pairs.len().min(8))
        .map(|i| &pairs[i * pairs.len() / pairs.len().min(8)])
        .collect();
    let reduced: Vec<(Reduced, Reduced)> = coarse
        .iter()
        .map(|p| (reduce(&p.reference, F), reduce(&p.suspect, F)))
        .collect();
    // The coarse search knows no vignetting yet.
    let flat = Photometric::default();
    let small: Vec<(Image<'_>, Image<'_>)> = reduced
        .iter()
        .map(|(r, s)| {
            (
                Image {
                    data: &r.0,
                    w: r.1,
                    h: r.2,
                },
                Image {
                    data: &s.0,
                    w: s.1,
                    h: s.2,
                },
            )
        })
        .collect();
    let scaled = |g: &Geometry, f: f64| -> Geometry {
        let mut s = g.clone();
        for i in [0, 1, 2, 3, 4, 5] {
            s.h[i] /= f;
        }
        for c in &mut s.content {
            *c /= f;
        }
        s
    };
    let (cw, ch) = (content[2] - content[0], content[3] - content[1]);
    let (cx, cy) = (
        (content[0] + content[2]) / 2.0,
        (content[1] + content[3]) / 2.0,
    );
    let candidate = |m: f64, dx: f64, dy: f64| -> Geometry {
        let mut g = first.clone();
        g.h = [
            m * cw,
            0.0,
            cx - m * cw / 2.0 + dx,
            0.0,
            m * ch,
            cy - m * ch / 2.0 + dy,
            0.0,
            0.0,
        ];
        g
    };
    // The grid: isotropic scales 0.6-1.5 in 3 % steps, translations in steps of one reduced
    // pixel. `cell[i]` is candidate i's (scale, column, row) on it.
    let mut grid = Vec::new();
    let mut cell: Vec<(usize, i64, i64)> = Vec::new();
    let mut m = GRID_MIN_SCALE;
    let mut scale = 0;
    while m <= 1.5 {
        let rx = ((m - 1.0).abs() / 2.0 + 0.04) * cw;
        let ry = ((m - 1.0).abs() / 2.0 + 0.04) * ch;
        let step = F as f64;
        let (nx, ny) = ((rx / step).ceil() as i64, (ry / step).ceil() as i64);
        for iy in -ny..=ny {
            for ix in -nx..=nx {
                grid.push(candidate(m, ix as f64 * step, iy as f64 * step));
                cell.push((scale, ix, iy));
            }
        }
        m *= 1.03;
        scale += 1;
    }
    let top = coarse_to_fine(&cell, |i| {
        score(&small, &scaled(&grid[i], F as f64), &flat, 2, COARSE_KEEP)
    });
    let mut best = match top {
        Some((i, s)) => (s, grid[i].clone()),
        None => (f64::NEG_INFINITY, first.clone()),
    };
    // A picture-in-picture window smaller than the grid's smallest scale, anywhere in the
    // frame: FFT correlation proposes placements per width ([`super::window`]), scored like
    // the grid's candidates. The window keeps the title's aspect.
    let (rw, rh) = (pairs[0].reference.w as f64, pairs[0].reference.h as f64);
    let mut widths = Vec::new();
    let mut m = PIP_MIN_WIDTH;
    while m < GRID_MIN_SCALE {
        widths.push(m * cw / F as f64);
        m *= 1.03;
    }
    for w in window::search(&small, &widths, rh / rw, PIP_CANDIDATES) {
        let f = F as f64;
        let mut g = first.clone();
        g.h = [w.w * f, 0.0, w.x * f, 0.0, w.h * f, w.y * f, 0.0, 0.0];
        if let Some(s) = score(&small, &scaled(&g, f), &flat, 2, COARSE_KEEP)
            && s > best.0
        {
            best = (s, g);
        }
    }
    let mut g = best.1;
    // Local refinement of the coarse optimum in working pixels.
    for step in [2.0, 1.0] {
        let mut improved = true;
        while improved {
            improved = false;
            let base = g.clone();
            for (dm, dx, dy) in [
                (1.0, step, 0.0),
                (1.0, -step, 0.0),
                (1.0, 0.0, step),
                (1.0, 0.0, -step),
                (1.0 + step / 200.0, 0.0, 0.0),
                (1.0 - step / 200.0, 0.0, 0.0),
            ] {
                let mut c = base.clone();
                let (ox, oy) = (c.h[2] + c.h[0] / 2.0, c.h[5] + c.h[4] / 2.0);
                c.h[0] *= dm;
                c.h[4] *= dm;
                c.h[2] = ox - c.h[0] / 2.0 + dx;
                c.h[5] = oy - c.h[4] / 2.0 + dy;
                if let Some(s) = score(&small, &scaled(&c, F as f64), &flat, 2, COARSE_KEEP)
                    && s > best.0 + 1e-6
                {
                    best = (s, c.clone());
                    g = c;
                    improved = true;
                }
            }
        }
    }

    (g, best.0)
}

/// Step 3: the Gauss–Newton refinement of a coarse placement `g` (see [`coarse`]) with the
/// photometric map, and the final score and visible share.
pub fn refine(pairs: &[Pair<'_>], mut g: Geometry) -> (Geometry, Photometric) {
    if pairs.is_empty() {
        return (g, Photometric::default());
    }
    // Gauss–Newton refinement with the photometric map.
    let blurred: Vec<(Vec<f32>, Vec<f32>)> = pairs
        .iter()
        .map(|p| {
            (
                blur(p.reference.data, p.reference.w, p.reference.h, 1),
                blur(p.suspect.data, p.suspect.w, p.suspect.h, 1),
            )
        })
        .collect();
    let mut photo = Photometric::default();
    for (stage, params) in [(0, 6usize), (1, 6), (1, 8), (0, 12), (1, 12)] {
        let views: Vec<(Image<'_>, Image<'_>)> = pairs
            .iter()
            .zip(&blurred)
            .map(|(p, b)| {
                if stage == 0 {
                    (
                        Image {
                            data: &b.0,
                            ..p.reference.clone()
                        },
                        Image {
                            data: &b.1,
                            ..p.suspect.clone()
                        },
                    )
                } else {
                    (p.reference.clone(), p.suspect.clone())
                }
            })
            .collect();
        let mut damping = GN_DAMPING_MIN;
        for _ in 0..8 {
            if !gauss_newton(&views, &mut g, &mut photo, params, &mut damping) {
                break;
            }
        }
        photo = fit_photometric(&views, &g, &photo);
    }
    let full: Vec<(Image<'_>, Image<'_>)> = pairs
        .iter()
        .map(|p| (p.reference.clone(), p.suspect.clone()))
        .collect();
    g.score = score(&full, &g, &photo, 2, 1.0).unwrap_or(f64::NAN);
    g.visible = visible_fraction(&g, pairs[0].reference.w, pairs[0].reference.h);
    (g, photo)
}

/// Fraction of reference pixels inside the suspect picture.
pub fn visible_fraction(g: &Geometry, rw: usize, rh: usize) -> f64 {
    let mut n = 0usize;
    for y in 0..rh {
        for x in 0..rw {
            let (u, v) = g.map((x as f64 + 0.5) / rw as f64, (y as f64 + 0.5) / rh as f64);
            n += usize::from(g.inside(u, v, 1.0));
        }
    }
    n as f64 / (rw * rh) as f64
}

fn fit_photometric(
    views: &[(Image<'_>, Image<'_>)],
    g: &Geometry,
    current: &Photometric,
) -> Photometric {
    let (rw, rh) = (views[0].0.w, views[0].0.h);
    let mut pairs = Vec::new();
    for (r, s) in views {
        for y in (1..rh).step_by(3) {
            for x in (1..rw).step_by(3) {
                let (u, v) = g.map((x as f64 + 0.5) / rw as f64, (y as f64 + 0.5) / rh as f64);
                if g.inside(u, v, 1.0) {
                    let field = current.field(g.radius2(u, v)) as f32;
                    pairs.push((r.data[y * rw + x], s.sample(u, v) / field));
                }
            }
        }
    }
    Photometric {
        vignette: current.vignette,
        ..Photometric::fit(&pairs)
    }
}

/// Tukey's biweight tuning constant, in robust standard deviations (95 % efficiency on
/// Gaussian residuals).
const TUKEY_C: f64 = 4.685;

/// Parameters [`gauss_newton`] fits at most: the eight of the homography, the two of the
/// radial distortion and the two of the vignetting.
const GN_PARAMS: usize = 12;

/// Tukey's biweight: (IRLS weight, loss) of residual `r` at cut-off `c`. Residuals beyond `c`
/// get weight 0 and a constant loss, so pixels the copy did not take from the title (a logo,
/// burned-in subtitles, a ticker) stop pulling the fit once they stand out.
fn tukey(r: f64, c: f64) -> (f64, f64) {
    let u = r / c;
    if u.abs() >= 1.0 {
        (0.0, c * c / 6.0)
    } else {
        let t = 1.0 - u * u;
        (t * t, c * c / 6.0 * (1.0 - t * t * t))
    }
}

/// Adds one point's share, `w·jᵀj` (upper triangle) and `w·j·r`, to the normal equations of
/// the first `params` parameters. Inlined, so that a constant `params` unrolls the loops (each
/// entry still sums the points in the same order, so the sums do not change).
#[inline(always)]
fn add_normal(
    jtj: &mut [[f64; GN_PARAMS]; GN_PARAMS],
    jtr: &mut [f64; GN_PARAMS],
    j: &[f64; GN_PARAMS],
    weight: f64,
    res: f64,
    params: usize,
) {
    for a in 0..params.min(GN_PARAMS) {
        let wa = weight * j[a];
        for b in a..params.min(GN_PARAMS) {
            jtj[a][b] += wa * j[b];
        }
        jtr[a] += wa * res;
    }
}

/// The Levenberg–Marquardt damping a stage starts from, and the largest a step tries (each
/// trial that does not lower the loss tries again at ten times the damping; none lowering it
/// up to the largest ends the stage).
const GN_DAMPING_MIN: f64 = 1e-3;
const GN_DAMPING_MAX: f64 = 1e2;

/// A step that moves every corner and the centre of the reference by less than this (working
/// pixels of the suspect), and each vignetting term by less than [`GN_VIGNETTE_SETTLED`], ends
/// its stage: the fit has settled far below what the decisions can tell apart (they average
/// the mark over blocks of several pixels).
const GN_SETTLED_PX: f64 = 0.01;
const GN_VIGNETTE_SETTLED: f64 = 1e-3;

/// How far a change of placement from `a` to `b` moves the reference's corners and centre on
/// the suspect's working grid, at most.
fn displacement(a: &Geometry, b: &Geometry) -> f64 {
    [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5)]
        .into_iter()
        .map(|(x, y)| {
            let ((au, av), (bu, bv)) = (a.map(x, y), b.map(x, y));
            (au - bu).hypot(av - bv)
        })
        .fold(0.0, f64::max)
}

/// One damped Gauss–Newton (Levenberg–Marquardt) step on the first `params` parameters (the
/// eight of the homography, then the two radial distortion terms, then the two vignetting
/// terms of `photo`); false when it did not improve the residual, or improved it so little
/// (a relative gain under 10⁻⁶, or a step under [`GN_SETTLED_PX`]) that the stage is done.
///
/// `damping` carries from one step of a stage to the next: a step accepted at a damping
/// starts the next a tenth of it (never below [`GN_DAMPING_MIN`]), so a stage whose full
/// Gauss–Newton steps overshoot does not try them again on every step.
///
/// The step is iteratively reweighted (Tukey's biweight on the residual, scale from the
/// residuals' median absolute deviation at the start of the step and held for its trials): a
/// robust M-estimate, so a region the pirate added cannot bend the geometry to explain it.
fn gauss_newton(
    views: &[(Image<'_>, Image<'_>)],
    g: &mut Geometry,
    photo: &mut Photometric,
    params: usize,
    damping: &mut f64,
) -> bool {
    let (rw, rh) = (views[0].0.w, views[0].0.h);
    let residual = |g: &Geometry,
                    photo: &Photometric,
                    scale: Option<f64>,
                    acc: Option<(&mut Vec<Vec<f64>>, &mut Vec<f64>)>|
     -> (f64, f64) {
        let mut pts = Vec::new();
        for y in (0..rh).step_by(2) {
            for x in (0..rw).step_by(2) {
                let (xn, yn) = ((x as f64 + 0.5) / rw as f64, (y as f64 + 0.5) / rh as f64);
                let (u, v) = g.map(xn, yn);
                if g.inside(u, v, 2.0) {
                    pts.push((x, y, xn, yn, u, v, g.radius2(u, v)));
                }
            }
        }
        if pts.len() < 64 {
            return (f64::INFINITY, 0.0);
        }
        let n = pts.len() as f64;
        let pts = pts.as_slice();
        // Where each point samples the suspect is the same in every view (one working grid):
        // its bilinear taps are worked out once, not once per view. With the gradient's four
        // neighbours when the Jacobian is wanted: u ± ½ along the row, v ± ½ along the column.
        let (sw, sh) = (views[0].1.w, views[0].1.h);
        let want_jacobian = acc.is_some();
        let taps: Vec<[Tap; 6]> = if views.iter().all(|(_, s)| s.w == sw && s.h == sh) {
            pts.iter()
                .map(|&(.., u, v, _)| {
                    let (x, y) = (Tap::at(u, sw), Tap::at(v, sh));
                    if want_jacobian {
                        [
                            x,
                            y,
                            Tap::at(u + 0.5, sw),
                            Tap::at(u - 0.5, sw),
                            Tap::at(v + 0.5, sh),
                            Tap::at(v - 0.5, sh),
                        ]
                    } else {
                        [x, y, x, x, y, y]
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        // Per view, on every core: the mapped reference, the residuals and the view's gain.
        let fitted = crate::par::map(views, |(r, s)| {
            // Per-position gain and offset against V·f(R).
            let base: Vec<f64> = pts
                .iter()
                .map(|&(x, y, ..)| photo.apply(f64::from(r.data[y * rw + x])))
                .collect();
            let model: Vec<f64> = pts
                .iter()
                .zip(&base)
                .map(|(p, b)| b * photo.field(p.6))
                .collect();
            let obs: Vec<f64> = pts
                .iter()
                .enumerate()
                .map(|(k, &(.., u, v, _))| {
                    f64::from(match taps.get(k) {
                        Some(t) => s.sample_taps(t[0], t[1]),
                        None => s.sample(u, v),
                    })
                })
                .collect();
            let (mm, mo) = (model.iter().sum::<f64>() / n, obs.iter().sum::<f64>() / n);
            let smm: f64 = model.iter().map(|m| (m - mm).powi(2)).sum();
            let smo: f64 = model
                .iter()
                .zip(&obs)
                .map(|(m, o)| (m - mm) * (o - mo))
                .sum();
            let gain = if smm > 0.0 { smo / smm } else { 1.0 };
            let res: Vec<f64> = obs
                .iter()
                .zip(&model)
                .map(|(o, m)| o - (mo + gain * (m - mm)))
                .collect();
            (base, res, gain)
        });
        // The robust scale: 1.4826 × the median absolute residual (floored so a perfect fit
        // does not divide by zero).
        let scale = scale.unwrap_or_else(|| {
            let mut a: Vec<f64> = fitted
                .iter()
                .flat_map(|f| f.1.iter().map(|r| r.abs()))
                .collect();
            let mid = a.len() / 2;
            let med = if a.is_empty() {
                0.0
            } else {
                *a.select_nth_unstable_by(mid, f64::total_cmp).1
            };
            (1.4826 * med).max(0.05)
        });
        let cut = TUKEY_C * scale;
        // What the Jacobian needs of each point's mapping, the same in every view: worked out
        // once per point. Each entry: the homography's denominator, the homography (u', v')
        // and the radial factor with r² and r⁴ at (u', v').
        let mapping: Vec<[f64; 6]> = if want_jacobian {
            pts.iter()
                .map(|&(_, _, xn, yn, ..)| {
                    let d = g.h[6] * xn + g.h[7] * yn + 1.0;
                    let (hu, hv) = g.homography(xn, yn);
                    let (f, r2, r4) = g.radial_factor(hu, hv);
                    [d, hu, hv, f, r2, r4]
                })
                .collect()
        } else {
            Vec::new()
        };
        let (cx, cy) = g.centre();
        let params = params.min(GN_PARAMS);
        // Per view, on every core: its loss and (when asked) its share of JᵀWJ (upper
        // triangle) and JᵀWr; the views' shares are added in view order.
        let indices: Vec<usize> = (0..views.len()).collect();
        let shares = crate::par::map(&indices, |&i| {
            let s = &views[i].1;
            let (base, res, gain) = (&fitted[i].0, &fitted[i].1, fitted[i].2);
            let mut sse = 0.0;
            let mut jtj = [[0.0f64; GN_PARAMS]; GN_PARAMS];
            let mut jtr = [0.0f64; GN_PARAMS];
            // Means of the vignetting derivatives (the per-position offset absorbs them).
            let (m2, m4) = pts.iter().zip(base).fold((0.0, 0.0), |(a, b), (p, f)| {
                (a + f * p.6 / n, b + f * p.6 * p.6 / n)
            });
            for (k, &(_, _, xn, yn, u, v, rv2)) in pts.iter().enumerate() {
                let res = res[k];
                let (weight, loss) = tukey(res, cut);
                sse += loss;
                if weight > 0.0
                    && let Some(&[d, hu, hv, f, r2, r4]) = mapping.get(k)
                {
                    let (gu, gv) = match taps.get(k) {
                        Some(&[x, y, right, left, below, above]) => (
                            s.sample_taps(right, y) - s.sample_taps(left, y),
                            s.sample_taps(x, below) - s.sample_taps(x, above),
                        ),
                        None => (
                            s.sample(u + 0.5, v) - s.sample(u - 0.5, v),
                            s.sample(u, v + 0.5) - s.sample(u, v - 0.5),
                        ),
                    };
                    let (gu, gv) = (f64::from(gu), f64::from(gv));
                    // Through the homography (u', v'), then the radial factor f (its own
                    // dependence on (u', v') is left out: a small term for small k).
                    let (fu, fv) = (gu * f, gv * f);
                    let radial = gu * (hu - cx) + gv * (hv - cy);
                    let j = [
                        fu * xn / d,
                        fu * yn / d,
                        fu / d,
                        fv * xn / d,
                        fv * yn / d,
                        fv / d,
                        -(fu * hu + fv * hv) * xn / d,
                        -(fu * hu + fv * hv) * yn / d,
                        radial * r2,
                        radial * r4,
                        -gain * (base[k] * rv2 - m2),
                        -gain * (base[k] * rv2 * rv2 - m4),
                    ];
                    // Constant bounds for the usual counts, so that the loops are unrolled.
                    match params {
                        6 => add_normal(&mut jtj, &mut jtr, &j, weight, res, 6),
                        8 => add_normal(&mut jtj, &mut jtr, &j, weight, res, 8),
                        GN_PARAMS => add_normal(&mut jtj, &mut jtr, &j, weight, res, GN_PARAMS),
                        _ => add_normal(&mut jtj, &mut jtr, &j, weight, res, params),
                    }
                }
            }
            (sse, jtj, jtr)
        });
        let mut sse = 0.0;
        let mut acc = acc;
        for (part, jtj_v, jtr_v) in shares {
            sse += part;
            if let Some((jtj, jtr)) = acc.as_mut() {
                for a in 0..params {
                    for b in a..params {
                        jtj[a][b] += jtj_v[a][b];
                    }
                    jtr[a] += jtr_v[a];
                }
            }
        }
        if let Some((jtj, _)) = acc.as_mut() {
            for a in 0..params {
                for b in 0..a {
                    jtj[a][b] = jtj[b][a];
                }
            }
        }
        (sse, scale)
    };
    let mut jtj = vec![vec![0.0; params]; params];
    let mut jtr = vec![0.0; params];
    let (before, scale) = residual(g, photo, None, Some((&mut jtj, &mut jtr)));
    if !before.is_finite() {
        return false;
    }
    let mut lambda = damping.clamp(GN_DAMPING_MIN, GN_DAMPING_MAX);
    while lambda <= GN_DAMPING_MAX * 1.000_001 {
        let mut m: Vec<Vec<f64>> = (0..params)
            .map(|a| {
                let mut row: Vec<f64> = (0..params)
                    .map(|b| {
                        jtj[a][b]
                            + if a == b {
                                lambda * jtj[a][a] + 1e-9
                            } else {
                                0.0
                            }
                    })
                    .collect();
                row.push(-jtr[a]);
                row
            })
            .collect();
        let Some(delta) = linsolve(&mut m) else {
            return false;
        };
        let (mut c, mut q) = (g.clone(), photo.clone());
        for (p, d) in
            c.h.iter_mut()
                .chain(c.radial.iter_mut())
                .chain(q.vignette.iter_mut())
                .zip(&delta)
        {
            *p += d;
        }
        let (after, _) = residual(&c, &q, Some(scale), None);
        if after < before {
            let gain = (before - after) / before;
            let settled = displacement(g, &c) < GN_SETTLED_PX
                && photo
                    .vignette
                    .iter()
                    .zip(&q.vignette)
                    .all(|(a, b)| (a - b).abs() < GN_VIGNETTE_SETTLED);
            *g = c;
            *photo = q;
            *damping = lambda / 10.0;
            return gain > 1e-6 && !settled;
        }
        lambda *= 10.0;
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A textured test picture: waves of several frequencies and directions, shifted by `seed`.
    pub(crate) fn texture(w: usize, h: usize, seed: u32) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let s = seed as f32;
                100.0
                    + 40.0 * (x * 0.11 + s).sin() * (y * 0.07 - s).cos()
                    + 30.0 * ((x + y) * 0.05 + s * 2.0).sin()
                    + 20.0 * ((x * 0.31 - y * 0.17) + s).sin()
            })
            .collect()
    }

    /// One suspect image per reference: pixel `(x, y)` of the `sw × sh` suspect is
    /// `pixel(reference, x, y)`.
    fn suspects(
        refs: &[Vec<f32>],
        (rw, rh): (usize, usize),
        (sw, sh): (usize, usize),
        pixel: impl Fn(&Image<'_>, usize, usize) -> f32,
    ) -> Vec<Vec<f32>> {
        refs.iter()
            .map(|r| {
                let img = Image {
                    data: r,
                    w: rw,
                    h: rh,
                };
                (0..sw * sh).map(|i| pixel(&img, i % sw, i / sw)).collect()
            })
            .collect()
    }

    #[test]
    fn best_of_keeps_the_best_scores_and_the_first_of_equal_ones() {
        // Eleven score levels, so many ties; some candidates without a score or at −∞.
        let eval = |i: usize| match i % 7 {
            0 => None,
            1 => Some(f64::NEG_INFINITY),
            _ => Some(((i * 37) % 11) as f64),
        };
        let all: Vec<usize> = (0..700).collect();
        let odd: Vec<usize> = (0..700).filter(|i| i % 2 == 1).collect();
        for which in [&all, &odd] {
            let mut want: Vec<(usize, f64)> = which
                .iter()
                .filter_map(|&i| eval(i).filter(|s| *s > f64::NEG_INFINITY).map(|s| (i, s)))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for top in [1, 5, 64, 1000] {
                let got = best_of(which, top, eval);
                assert_eq!(got, want[..top.min(want.len())].to_vec(), "top {top}");
            }
        }
        assert!(best_of(&[], 3, eval).is_empty());
    }

    #[test]
    fn coarse_to_fine_finds_the_whole_grids_best() {
        // A grid shaped like the coarse search's (21 scales, a translation range growing with
        // the scale) and landscapes of a few smooth peaks, each about one cell wide, at
        // random cells: the two passes find the candidate a scan of the whole grid finds.
        let mut cell = Vec::new();
        for sc in 0..21usize {
            let n = 6 + (sc as i64 - 10).abs();
            for iy in -n..=n {
                for ix in -n - 3..=n + 3 {
                    cell.push((sc, ix, iy));
                }
            }
        }
        let all: Vec<usize> = (0..cell.len()).collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for _ in 0..200 {
            let peaks: Vec<(f64, f64, f64, f64)> = (0..1 + next(8))
                .map(|_| {
                    let (sc, ix, iy) = cell[next(cell.len() as u64) as usize];
                    let height = 0.3 + next(1000) as f64 / 1500.0;
                    (sc as f64, ix as f64, iy as f64, height)
                })
                .collect();
            let eval = |i: usize| {
                let (sc, ix, iy) = cell[i];
                let v = peaks
                    .iter()
                    .map(|&(ps, px, py, h)| {
                        let d2 = (sc as f64 - ps).powi(2)
                            + (ix as f64 - px).powi(2)
                            + (iy as f64 - py).powi(2);
                        h * (-d2 / 1.5).exp()
                    })
                    .fold(0.0, f64::max);
                Some(v)
            };
            let full = best_of(&all, 1, eval);
            assert_eq!(
                coarse_to_fine(&cell, eval),
                full.first().copied(),
                "{peaks:?}"
            );
        }
        assert_eq!(coarse_to_fine(&cell, |_| None), None);
    }

    #[test]
    fn separable_scores_equal_the_general_ones_bit_for_bit() {
        let (rw, rh, sw, sh) = (64, 36, 83, 47);
        let refs: Vec<Vec<f32>> = (0..3).map(|k| texture(rw, rh, k)).collect();
        let sus: Vec<Vec<f32>> = (0..3).map(|k| texture(sw, sh, k + 7)).collect();
        let views: Vec<(Image<'_>, Image<'_>)> = pairs_of(&refs, (rw, rh), &sus, (sw, sh))
            .into_iter()
            .map(|p| (p.reference, p.suspect))
            .collect();
        let flat = Photometric::default();
        let base = Geometry::fill([1.5, 0.0, 81.0, 46.25], (sw, sh));
        let mut compared = 0;
        let mut refused = 0;
        for (i, (m, dx, dy)) in [
            (1.0, 0.0, 0.0),
            (0.9, 3.7, -2.2),
            (1.13, -5.0, 4.0),
            (0.37, 20.5, 11.0),
            (1.5, -30.0, 0.0),
            (0.97, 0.25, 0.75),
            (1.0, 70.0, 0.0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut g = base.clone();
            g.h[0] *= m;
            g.h[4] *= m;
            g.h[2] += dx;
            g.h[5] += dy;
            assert!(is_separable(&g, &flat));
            for (step, keep) in [(2, 0.8), (1, 1.0), (3, 0.5)] {
                let general = score_general(&views, &g, &flat, step, keep);
                let separable = score_separable(&views, &g, step, keep);
                assert_eq!(
                    general.map(f64::to_bits),
                    separable.map(f64::to_bits),
                    "candidate {i}, step {step}"
                );
                compared += usize::from(general.is_some());
                refused += usize::from(general.is_none());
            }
        }
        assert!(
            compared >= 12 && refused >= 1,
            "{compared} scored, {refused} refused"
        );
        // What is not separable takes the general path.
        let mut sheared = base.clone();
        sheared.h[1] = 0.01;
        assert!(!is_separable(&sheared, &flat));
        let vignetted = Photometric {
            vignette: [0.1, 0.0],
            ..Photometric::default()
        };
        assert!(!is_separable(&base, &vignetted));
    }

    /// Reference and suspect images paired by position.
    fn pairs_of<'a>(
        refs: &'a [Vec<f32>],
        (rw, rh): (usize, usize),
        sus: &'a [Vec<f32>],
        (sw, sh): (usize, usize),
    ) -> Vec<Pair<'a>> {
        refs.iter()
            .zip(sus)
            .map(|(r, s)| Pair {
                reference: Image {
                    data: r,
                    w: rw,
                    h: rh,
                },
                suspect: Image {
                    data: s,
                    w: sw,
                    h: sh,
                },
            })
            .collect()
    }

    #[test]
    fn recovers_a_crop_and_rescale_with_letterbox() {
        let (rw, rh) = (256usize, 144usize);
        // Suspect: the central 80 % of the reference scaled back to 256 wide, inside a frame
        // with 20-pixel bars top and bottom (working grid 256 × 184).
        let (sw, sh) = (256usize, 184usize);
        let refs: Vec<Vec<f32>> = (0..6).map(|s| texture(rw, rh, s)).collect();
        let sus = suspects(&refs, (rw, rh), (sw, sh), |img, x, y| {
            if !(20..164).contains(&y) {
                return 16.0;
            }
            let u = 0.1 * rw as f64 + (x as f64 + 0.5) * 0.8;
            let v = 0.1 * rh as f64 + ((y - 20) as f64 + 0.5) * 0.8;
            img.sample(u, v) * 0.9 + 20.0
        });
        let pairs = pairs_of(&refs, (rw, rh), &sus, (sw, sh));
        let (g, photo) = register(&pairs, (sw, sh));
        assert_eq!(g.content, [0.0, 20.0, 256.0, 164.0]);
        // Reference centre → suspect centre; reference (0.1, 0.1) → picture corner.
        for (x, y, u, v) in [
            (0.5, 0.5, 128.0, 92.0),
            (0.1, 0.1, 0.0, 20.0),
            (0.9, 0.9, 256.0, 164.0),
        ] {
            let (mu, mv) = g.map(x, y);
            assert!(
                (mu - u).abs() < 0.3 && (mv - v).abs() < 0.3,
                "({x},{y}) -> ({mu},{mv}) want ({u},{v}); {g:?}"
            );
        }
        assert!((photo.gain(100.0) - 0.9).abs() < 0.05, "{photo:?}");
    }

    #[test]
    fn recovers_lens_distortion_and_vignetting() {
        // A camcorder-like suspect: the reference seen through a barrel lens (suspect point
        // (u, v) shows reference point c + ((u, v) − c)(1 − 0.06 r²)), darkened towards the
        // corners by 1 − 0.35 r², with a contrast change.
        let (rw, rh) = (256usize, 144usize);
        let (sw, sh) = (256usize, 144usize);
        let (cx, cy) = (sw as f64 / 2.0, sh as f64 / 2.0);
        let half_diag2 = (sw * sw + sh * sh) as f64 / 4.0;
        let source = |u: f64, v: f64| -> (f64, f64) {
            let r2 = ((u - cx).powi(2) + (v - cy).powi(2)) / half_diag2;
            let f = 1.0 - 0.06 * r2;
            (cx + (u - cx) * f, cy + (v - cy) * f)
        };
        let refs: Vec<Vec<f32>> = (0..8).map(|s| texture(rw, rh, s)).collect();
        let sus = suspects(&refs, (rw, rh), (sw, sh), |img, x, y| {
            let (u, v) = (x as f64 + 0.5, y as f64 + 0.5);
            let (sx, sy) = source(u, v);
            let r2 = ((u - cx).powi(2) + (v - cy).powi(2)) / half_diag2;
            img.sample(sx, sy) * 0.9 * (1.0 - 0.35 * r2) as f32 + 10.0
        });
        let pairs = pairs_of(&refs, (rw, rh), &sus, (sw, sh));
        let (g, photo) = register(&pairs, (sw, sh));
        // Every mapped reference point must show that reference point, corners included.
        let mut worst = 0f64;
        for (x, y) in [
            (0.5, 0.5),
            (0.08, 0.1),
            (0.92, 0.1),
            (0.08, 0.9),
            (0.92, 0.9),
            (0.3, 0.7),
        ] {
            let (u, v) = g.map(x, y);
            let (bx, by) = source(u, v);
            worst = worst.max((bx - x * rw as f64).hypot(by - y * rh as f64));
        }
        assert!(worst < 0.4, "worst error {worst} px; {g:?}");
        assert!(
            g.radial[0] > 0.03 && (photo.vignette[0] + 0.35).abs() < 0.1,
            "{g:?} {photo:?}"
        );
        // The registration score reads the copy through the fitted vignetting.
        let views: Vec<_> = pairs
            .iter()
            .map(|p| (p.reference.clone(), p.suspect.clone()))
            .collect();
        let unlit = score(&views, &g, &Photometric::default(), 2, 1.0).unwrap();
        assert!(g.score > 0.99 && g.score > unlit, "{} vs {unlit}", g.score);
        // Without the radial term, the corners are off by more than a pattern cell's half.
        let flat = Geometry {
            radial: [0.0, 0.0],
            ..g.clone()
        };
        let (u, v) = flat.map(0.08, 0.1);
        let (bx, by) = source(u, v);
        assert!((bx - 0.08 * rw as f64).hypot(by - 0.1 * rh as f64) > 1.0);
    }
}
