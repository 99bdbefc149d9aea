//! Photometric registration: a monotone map from reference luma to suspect luma.
//!
//! Brightness, contrast and gamma changes (and a codec's or player's range conversions) are a
//! monotone, smooth function of luma. It is fitted as a cubic polynomial on 8-bit luma scaled to
//! [0, 1], by least squares over (reference mean, registered suspect mean) pairs of many
//! positions, with one round of outlier rejection (3σ: pixels whose content differs, e.g. a
//! mis-timed position); if the cubic is not increasing over the observed range, the affine fit
//! is used instead. Its derivative is the local gain the mark went through.
//!
//! A camera adds a spatial gain on top: vignetting, darker towards the corners. It is modelled
//! as a radial field `V(r) = 1 + v1 r² + v2 r⁴` about the centre of the suspect's picture
//! (`r` in half-diagonals, as the lens distortion in [`super::spatial::Geometry`]), so the
//! suspect luma expected at a pixel is `V(r) · f(reference)`. The field's two coefficients
//! are estimated with the geometry ([`super::spatial`]); a screen capture or a transcode has
//! `v1 = v2 = 0`.

use serde::Serialize;

/// `suspect = V(r) · 255 · Σ c_k (reference / 255)^k`, k = 0..3, `V(r) = 1 + v1 r² + v2 r⁴`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Photometric {
    /// Polynomial coefficients, constant first.
    pub coeffs: [f64; 4],
    /// The spatial gain (vignetting) `[v1, v2]`.
    pub vignette: [f64; 2],
    /// RMS residual of the fit (grey levels).
    pub rms: f64,
}

impl Default for Photometric {
    fn default() -> Self {
        Self {
            coeffs: [0.0, 1.0, 0.0, 0.0],
            vignette: [0.0, 0.0],
            rms: f64::NAN,
        }
    }
}

impl Photometric {
    /// The spatial gain `V` at squared radius `r2` (half-diagonals²), clamped to at least 0.05.
    pub fn field(&self, r2: f64) -> f64 {
        (1.0 + self.vignette[0] * r2 + self.vignette[1] * r2 * r2).max(0.05)
    }

    /// The suspect luma expected for reference luma `r` (8-bit scale).
    pub fn apply(&self, r: f64) -> f64 {
        let x = r / 255.0;
        let c = &self.coeffs;
        255.0 * (c[0] + x * (c[1] + x * (c[2] + x * c[3])))
    }

    /// The local gain `d suspect / d reference` at `r`.
    pub fn gain(&self, r: f64) -> f64 {
        let x = r / 255.0;
        let c = &self.coeffs;
        c[1] + x * (2.0 * c[2] + x * 3.0 * c[3])
    }

    /// Fits the map to `(reference, suspect)` pairs.
    pub fn fit(pairs: &[(f32, f32)]) -> Self {
        if pairs.len() < 16 {
            return Self::default();
        }
        let mut keep: Vec<bool> = vec![true; pairs.len()];
        let mut best = Self::default();
        for _round in 0..2 {
            let Some(cubic) = solve(pairs, &keep, 4) else {
                return best;
            };
            let mut f = Self {
                coeffs: cubic,
                rms: 0.0,
                ..Self::default()
            };
            if !f.monotone(pairs, &keep) {
                let Some(lin) = solve(pairs, &keep, 2) else {
                    return best;
                };
                f.coeffs = [lin[0], lin[1], 0.0, 0.0];
            }
            let res: Vec<f64> = pairs
                .iter()
                .map(|&(r, s)| f64::from(s) - f.apply(f64::from(r)))
                .collect();
            let used: Vec<f64> = res
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(v, _)| v * v)
                .collect();
            f.rms = (used.iter().sum::<f64>() / used.len().max(1) as f64).sqrt();
            for (k, r) in keep.iter_mut().zip(&res) {
                *k = r.abs() <= 3.0 * f.rms;
            }
            best = f;
        }
        best
    }

    fn monotone(&self, pairs: &[(f32, f32)], keep: &[bool]) -> bool {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (&(r, _), _) in pairs.iter().zip(keep).filter(|(_, k)| **k) {
            lo = lo.min(f64::from(r));
            hi = hi.max(f64::from(r));
        }
        if lo >= hi {
            return false;
        }
        let slope = (self.apply(hi) - self.apply(lo)) / (hi - lo);
        slope > 0.0
            && (0..=32).all(|i| self.gain(lo + (hi - lo) * f64::from(i) / 32.0) > 0.1 * slope)
    }
}

/// Least squares polynomial of `n` coefficients on x = r/255, y = s/255.
fn solve(pairs: &[(f32, f32)], keep: &[bool], n: usize) -> Option<[f64; 4]> {
    let mut a = [[0.0f64; 5]; 4];
    for (&(r, s), _) in pairs.iter().zip(keep).filter(|(_, k)| **k) {
        let x = f64::from(r) / 255.0;
        let y = f64::from(s) / 255.0;
        let mut p = [1.0; 4];
        for k in 1..n {
            p[k] = p[k - 1] * x;
        }
        for i in 0..n {
            for j in 0..n {
                a[i][j] += p[i] * p[j];
            }
            a[i][4] += p[i] * y;
        }
    }
    let mut m: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = a[i][..n].to_vec();
            row.push(a[i][4]);
            row
        })
        .collect();
    let x = crate::register::linsolve(&mut m)?;
    let mut out = [0.0; 4];
    out[..n].copy_from_slice(&x);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_brightness_and_gamma() {
        let pairs: Vec<(f32, f32)> = (0..2000)
            .map(|i| {
                let r = 16.0 + (i % 220) as f32;
                let s = 255.0 * (r / 255.0).powf(1.0 / 1.2) * 0.95 + 20.0;
                (r, s.min(255.0))
            })
            .collect();
        let f = Photometric::fit(&pairs);
        for r in [30.0, 100.0, 200.0] {
            let want = 255.0 * (r / 255.0f64).powf(1.0 / 1.2) * 0.95 + 20.0;
            assert!(
                (f.apply(r) - want).abs() < 1.0,
                "{r}: {} vs {want}",
                f.apply(r)
            );
            assert!(f.gain(r) > 0.0);
        }
    }
}
