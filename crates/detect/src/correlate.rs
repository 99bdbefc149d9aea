//! The correlation detector on the registered residual.
//!
//! The residual of a position (registered suspect mean minus the photometrically mapped
//! reference mean) is mostly content that registration, the photometric fit and the codec left
//! behind, and that residue is strongest at low spatial frequencies. A whitening step brings
//! the correlation closer to a matched filter for it: a local mean (box of radius
//! [`HIGHPASS_RADIUS`] over the visible pixels) is subtracted, which removes the low-frequency
//! residue while keeping most of the mark's energy (its cells are 4 statistics pixels wide).
//! It is applied identically to the residual and to every expected mark (the keyed one and
//! the decoys), so σ₀ stays calibrated.
//!
//! What whitening gains, and what was tried instead, is measured in `docs/BENCHMARKS.md` §6.1.

use crate::{DECOYS, PositionDecision, decoy_key};
use leaktrace_core::{DerivedKey, Pattern, Position};
use leaktrace_reference::normalised_correlation;

/// Radius of the whitening box (statistics pixels).
pub const HIGHPASS_RADIUS: usize = 8;

/// The visible pixels of the reference statistics grid.
#[derive(Clone, Debug)]
pub struct Grid {
    w: usize,
    h: usize,
    points: Vec<usize>,
    /// Radius of the whitening box whose visible-pixel counts are cached.
    radius: usize,
    /// Visible pixels in the whitening box of each pixel.
    counts: Vec<f64>,
}

impl Grid {
    /// The grid of `w × h` whose visible pixels are `points` (indices `y × w + x`, in order).
    pub fn new(w: usize, h: usize, points: Vec<usize>) -> Self {
        Self::with_radius(w, h, points, HIGHPASS_RADIUS)
    }

    /// Like [`Grid::new`], prepared for whitening boxes of radius `radius`.
    pub fn with_radius(w: usize, h: usize, points: Vec<usize>, radius: usize) -> Self {
        let mut m = vec![0.0f64; w * h];
        for &i in &points {
            m[i] = 1.0;
        }
        let counts = box_sum(&m, w, h, radius);
        Self {
            w,
            h,
            points,
            radius,
            counts,
        }
    }

    /// The visible pixels.
    pub fn points(&self) -> &[usize] {
        &self.points
    }

    /// Subtracts from `values` (one per visible pixel) their local mean over the visible
    /// pixels within a box of radius `r`.
    pub fn highpass(&self, values: &[f64], r: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(values.len());
        self.highpass_into(values, r, &mut Scratch::default(), &mut out);
        out
    }

    /// [`Grid::highpass`] into `out`, with the working buffers of `scratch` (reused from one
    /// call to the next: no allocation once they have grown).
    fn highpass_into(&self, values: &[f64], r: usize, scratch: &mut Scratch, out: &mut Vec<f64>) {
        out.clear();
        if r == 0 {
            out.extend_from_slice(values);
            return;
        }
        let (w, h) = (self.w, self.h);
        let v = &mut scratch.grid;
        v.clear();
        v.resize(w * h, 0.0);
        for (&i, &x) in self.points.iter().zip(values) {
            v[i] = x;
        }
        box_sum_into(v, w, h, r, &mut scratch.sums);
        let bv = &scratch.sums.out;
        let counted;
        let bm = if r == self.radius {
            &self.counts
        } else {
            let mut m = vec![0.0f64; w * h];
            for &i in &self.points {
                m[i] = 1.0;
            }
            counted = box_sum(&m, w, h, r);
            &counted
        };
        out.extend(
            self.points
                .iter()
                .zip(values)
                .map(|(&i, &x)| if bm[i] > 0.0 { x - bv[i] / bm[i] } else { x }),
        );
    }
}

/// Working buffers of [`Grid::highpass_into`], kept between calls.
#[derive(Debug, Default)]
struct Scratch {
    /// The values spread on the whole grid.
    grid: Vec<f64>,
    sums: BoxSums,
}

/// Working buffers and result of [`box_sum_into`].
#[derive(Debug, Default)]
struct BoxSums {
    tmp: Vec<f64>,
    prefix: Vec<[f64; BOX_ROWS]>,
    acc: Vec<f64>,
    /// The box sums.
    out: Vec<f64>,
}

/// Rows of the horizontal pass of [`box_sum_into`] summed together.
const BOX_ROWS: usize = 4;

/// Separable box sums of radius `r` (running sums, clipped at the borders).
fn box_sum(src: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    let mut sums = BoxSums::default();
    box_sum_into(src, w, h, r, &mut sums);
    sums.out
}

/// [`box_sum`] into `sums.out`, with the working buffers of `sums`.
fn box_sum_into(src: &[f64], w: usize, h: usize, r: usize, sums: &mut BoxSums) {
    sums.out.clear();
    if w == 0 || h == 0 {
        return;
    }
    let tmp = &mut sums.tmp;
    tmp.clear();
    tmp.resize(w * h, 0.0);
    // Horizontal pass by running sums, four rows at a time: four independent chains of
    // additions (the same additions, in the same order, as one row at a time).
    const ROWS: usize = BOX_ROWS;
    let prefix = &mut sums.prefix;
    prefix.clear();
    prefix.resize(w + 1, [0.0f64; ROWS]);
    for (src_rows, tmp_rows) in src.chunks(ROWS * w).zip(tmp.chunks_mut(ROWS * w)) {
        let rows = src_rows.len() / w.max(1);
        for x in 0..w {
            let mut next = prefix[x];
            for (k, p) in next.iter_mut().enumerate().take(rows) {
                *p += src_rows[k * w + x];
            }
            prefix[x + 1] = next;
        }
        for (k, out) in tmp_rows.chunks_mut(w).enumerate() {
            for (x, o) in out.iter_mut().enumerate() {
                let (a, b) = (x.saturating_sub(r), (x + r + 1).min(w));
                *o = prefix[b][k] - prefix[a][k];
            }
        }
    }
    // Vertical pass row by row (cache friendly): a running window of rows.
    let out = &mut sums.out;
    out.resize(w * h, 0.0);
    let acc = &mut sums.acc;
    acc.clear();
    acc.resize(w, 0.0);
    for y in 0..r.min(h) {
        acc.iter_mut()
            .zip(&tmp[y * w..(y + 1) * w])
            .for_each(|(a, v)| *a += v);
    }
    for y in 0..h {
        if y + r < h {
            acc.iter_mut()
                .zip(&tmp[(y + r) * w..(y + r + 1) * w])
                .for_each(|(a, v)| *a += v);
        }
        if y > r {
            let o = y - r - 1;
            acc.iter_mut()
                .zip(&tmp[o * w..(o + 1) * w])
                .for_each(|(a, v)| *a -= v);
        }
        out[y * w..(y + 1) * w].copy_from_slice(acc);
    }
}

/// Weighted Pearson correlation (all weights 1: Pearson).
pub fn weighted_ncc(a: &[f64], b: &[f64], w: &[f64]) -> f64 {
    let sw: f64 = w.iter().sum();
    if sw <= 0.0 {
        return 0.0;
    }
    let ma = a.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let mb = b.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for ((x, y), w) in a.iter().zip(b).zip(w) {
        let (x, y) = (x - ma, y - mb);
        sab += w * x * y;
        saa += w * x * x;
        sbb += w * y * y;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// The correlation detector of one title on one visible grid: the keyed pattern and the
/// [`DECOYS`] decoys, whitened the same way as the residual.
pub(crate) struct Correlator<'a> {
    pattern_key: &'a DerivedKey,
    decoys: Vec<DerivedKey>,
    grid: Grid,
    /// Visible pattern-grid pixels: index `y × w + x`, and where they land in the suspect.
    points: &'a [(usize, f64, f64)],
    size: (usize, usize),
    radius: usize,
}

impl<'a> Correlator<'a> {
    pub(crate) fn new(
        pattern_key: &'a DerivedKey,
        w: usize,
        h: usize,
        points: &'a [(usize, f64, f64)],
        radius: usize,
    ) -> Self {
        Self {
            pattern_key,
            decoys: (0..DECOYS).map(|i| decoy_key(pattern_key, i)).collect(),
            grid: Grid::with_radius(w, h, points.iter().map(|p| p.0).collect(), radius),
            points,
            size: (w, h),
            radius,
        }
    }

    /// The decision at `pos` from the (unwhitened) residual `d` and the expected mark
    /// amplitude `amp`, both one value per visible point, leaving out the points `skip` marks
    /// (their residual is taken as 0 before whitening, and they count for nothing after).
    pub(crate) fn decide(
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
        let mut scratch = Scratch::default();
        let mut d = Vec::with_capacity(cleaned.len());
        self.grid
            .highpass_into(&cleaned, self.radius, &mut scratch, &mut d);
        let any_skip = skip.iter().any(|&s| s);
        if any_skip {
            d.iter_mut()
                .zip(skip)
                .filter(|(_, s)| **s)
                .for_each(|(v, _)| *v = 0.0);
        }
        let (w, h) = self.size;
        let fixed = Centred::of(&d);
        let (mut expected, mut whitened) = (Vec::new(), Vec::new());
        let mut corr = |key: &DerivedKey| -> f64 {
            let field = Pattern::new(key, pos).render(w, h);
            expected.clear();
            expected.extend(
                self.points
                    .iter()
                    .zip(amp)
                    .map(|(&(i, ..), a)| f64::from(field[i]) * a),
            );
            self.grid
                .highpass_into(&expected, self.radius, &mut scratch, &mut whitened);
            if any_skip {
                whitened
                    .iter_mut()
                    .zip(skip)
                    .filter(|(_, s)| **s)
                    .for_each(|(v, _)| *v = 0.0);
            }
            fixed.correlation(&whitened)
        };
        let c = corr(self.pattern_key);
        let null: Vec<f64> = self.decoys.iter().map(&mut corr).collect();
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

/// A vector correlated with many others: its mean, centred values and sum of squares computed
/// once. [`Centred::correlation`] equals [`normalised_correlation`] bit for bit (every sum is
/// taken in the same order).
struct Centred<'a> {
    values: &'a [f64],
    mean: f64,
    /// Sum of squared deviations from the mean.
    squares: f64,
}

impl<'a> Centred<'a> {
    fn of(values: &'a [f64]) -> Self {
        let n = values.len() as f64;
        let mean = if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / n
        };
        let squares = values
            .iter()
            .map(|x| (x - mean) * (x - mean))
            .fold(0.0, |s, v| s + v);
        Self {
            values,
            mean,
            squares,
        }
    }

    /// `normalised_correlation(values, other)` for `other` as long as `values`.
    fn correlation(&self, other: &[f64]) -> f64 {
        if other.len() != self.values.len() {
            return normalised_correlation(self.values, other);
        }
        let n = self.values.len() as f64;
        if n == 0.0 {
            return 0.0;
        }
        let mb = other.iter().sum::<f64>() / n;
        let (mut sab, mut sbb) = (0.0, 0.0);
        for (x, y) in self.values.iter().zip(other) {
            let (x, y) = (x - self.mean, y - mb);
            sab += x * y;
            sbb += y * y;
        }
        if self.squares == 0.0 || sbb == 0.0 {
            0.0
        } else {
            sab / (self.squares * sbb).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sums_match_direct_sums() {
        // 7 rows: a last group of three rows in the horizontal pass.
        let (w, h, r) = (11, 7, 2);
        let src: Vec<f64> = (0..w * h).map(|i| ((i * 37) % 17) as f64 - 8.0).collect();
        let got = box_sum(&src, w, h, r);
        for y in 0..h {
            for x in 0..w {
                let mut want = 0.0;
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        want += src[yy * w + xx];
                    }
                }
                assert!((got[y * w + x] - want).abs() < 1e-9, "({x}, {y})");
            }
        }
        assert!(box_sum(&[], 0, 5, 2).is_empty());
    }

    #[test]
    fn highpass_removes_a_constant_and_keeps_zero_mean_detail() {
        let grid = Grid::new(8, 4, (0..32).collect());
        let flat = vec![5.0; 32];
        assert!(grid.highpass(&flat, 2).iter().all(|v| v.abs() < 1e-12));
        let w = vec![1.0; 4];
        assert!(
            (weighted_ncc(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0], &w) - 1.0).abs() < 1e-12
        );
    }
}
