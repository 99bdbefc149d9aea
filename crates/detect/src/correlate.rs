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
        if r == 0 {
            return values.to_vec();
        }
        let (w, h) = (self.w, self.h);
        let mut v = vec![0.0f64; w * h];
        for (&i, &x) in self.points.iter().zip(values) {
            v[i] = x;
        }
        let bv = box_sum(&v, w, h, r);
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
        self.points
            .iter()
            .zip(values)
            .map(|(&i, &x)| if bm[i] > 0.0 { x - bv[i] / bm[i] } else { x })
            .collect()
    }
}

/// Separable box sums of radius `r` (running sums, clipped at the borders).
fn box_sum(src: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let mut tmp = vec![0.0; w * h];
    // Horizontal pass by running sums, four rows at a time: four independent chains of
    // additions (the same additions, in the same order, as one row at a time).
    const ROWS: usize = 4;
    let mut prefix = vec![[0.0f64; ROWS]; w + 1];
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
    let mut out = vec![0.0; w * h];
    let mut acc = vec![0.0; w];
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
        out[y * w..(y + 1) * w].copy_from_slice(&acc);
    }
    out
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
