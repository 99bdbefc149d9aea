//! The blind fallback's crop and scale search: where the marked picture sits in a copy that
//! was cropped and scaled back, without a reference.
//!
//! Without the unmarked picture the only thing to register on is the mark itself. For each
//! position the keyed pattern is rendered over the whole marked picture (at half the working
//! resolution) and whitened like the blind residual; the copy's per-position mean (the picture
//! inside its bars) is whitened the same way and resampled to what it would cover of the
//! marked picture at each scale `s` from 1 to [`MAX_SCALE`] (a crop to `1/s` of the width,
//! scaled back). At each scale the pattern is cross-correlated with the resampled mean at every
//! offset where the crop fits in the picture, through the FFT (`rustfft`), and normalised by the
//! pattern's energy under each placement (summed-area table). Scale 1 at offset 0 is the
//! uncropped copy, so the search includes what the fallback assumed before.
//!
//! **Evidence.** Each correlation is standardised by the RMS of the decoy patterns'
//! correlations at that position and scale (over all their placements), `z = c / σ`, and a
//! placement's evidence is `T = Σ_p z_p²` over the `N` positions: sign-free, since a position's
//! variant is unknown. With nothing to find `T ≈ χ²_N` at every placement, and its maximum over
//! the `M` placements grows like `N + √(2N)·√(2 ln M)`; at the true placement each position adds
//! `1 + z²` on average, so `T − N` grows like `N·z²`: with enough positions the true placement
//! stands out whatever `M` is. The figure compared is `ζ = (max T − N) / √(2N)`.
//!
//! **Acceptance, calibrated.** The identical search is run with [`SEARCH_DECOYS`] decoy keys
//! (keyed patterns never embedded, [`crate::decoy_key`]), each giving its own maximum `ζ`; with
//! nothing to find the key's maximum is exchangeable with theirs. A placement is accepted only
//! when the key's `ζ` beats every decoy's (a false acceptance at most `1/(K+1)` by rank alone)
//! **and** a Gumbel law fitted to the decoys' maxima (moments) puts it beyond
//! [`ACCEPT_TAIL`]. When not accepted the fallback keeps the uncropped assumption, as before.
//!
//! **Why the accuser stays calibrated.** The placement is chosen from the suspect and the title's
//! pattern key alone, never from a session's codeword, and from squared correlations only: under
//! the null the sign of each position's correlation at the chosen placement is as likely + as −
//! whatever the selection did, and an innocent session's bits are independent of the copy in
//! any case. The accuser's bound ([`crate::accuse`]) only needs the latter: the weights may
//! depend on the suspect. A wrong placement (a false acceptance) costs evidence, never a false
//! accusation.

use crate::register::fft::{Fft2, block, integral};
use crate::register::spatial::{Geometry, Image};
use crate::{DECOYS, decoy_key};
use leaktrace_core::{DerivedKey, Pattern, Position};
use rustfft::num_complex::Complex;
use serde::Serialize;

/// Largest magnification searched: a crop to two thirds of the width, scaled back.
pub const MAX_SCALE: f64 = 1.5;
/// Decoy keys the search is repeated with (the same keys as the σ₀ calibration's).
pub const SEARCH_DECOYS: usize = DECOYS;
/// Tail probability (under the Gumbel law fitted to the decoys' maxima) a placement's evidence
/// must reach to be accepted.
pub const ACCEPT_TAIL: f64 = 1e-3;
/// Positions the search uses at most, spread over the copy: about 7 s of two cores (the
/// search costs 2 to 4 s per 90 positions; on the copies of `docs/BENCHMARKS.md` §6.2b the
/// evidence at the true placement had stopped growing by then).
pub const SEARCH_POSITIONS: usize = 300;
/// Analysis grid width (half the working grid: a pattern cell is 2 pixels).
const AW: usize = crate::frames::WORK_WIDTH / 2;
/// Whitening box radius on the analysis grid (the blind radius 2 at the working resolution).
const RADIUS: usize = 1;
/// Analysis widths are searched in steps of this many pixels (scale steps of 1.6 % to 2.3 %).
const WIDTH_STEP: usize = 2;

/// What the search found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CropSearch {
    /// Magnification of the best placement (1: uncropped).
    pub scale: f64,
    /// Left and top of the marked picture's part the copy shows, as fractions of its width
    /// and height.
    pub at: [f64; 2],
    /// The key's `ζ` at the best placement.
    pub evidence: f64,
    /// The decoys' maximum `ζ`, each over the same search.
    pub decoy_max: Vec<f64>,
    /// Tail probability of `evidence` under the Gumbel law fitted to `decoy_max`.
    pub tail: f64,
    /// Positions searched.
    pub positions: usize,
    /// Placements searched.
    pub placements: usize,
    /// Whether the placement is taken.
    pub accepted: bool,
}

impl CropSearch {
    /// The geometry of the placement on a suspect whose picture (inside the bars) is
    /// `content` on a working grid of `working`.
    pub fn geometry(&self, content: [f64; 4], working: (usize, usize)) -> Geometry {
        let (cw, ch) = (content[2] - content[0], content[3] - content[1]);
        let mut g = Geometry::fill(content, working);
        g.h[0] = self.scale * cw;
        g.h[2] = content[0] - self.at[0] * self.scale * cw;
        g.h[4] = self.scale * ch;
        g.h[5] = content[1] - self.at[1] * self.scale * ch;
        g.visible = 1.0 / (self.scale * self.scale);
        g
    }
}

/// Subtracts from `img` (`w × h`) its local mean over a box of radius `r` (clipped).
fn highpass(img: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    let sat = integral(img, w, h);
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            img[y * w + x] - box_of(&sat, w, x0, y0, x1, y1) / n
        })
        .collect()
}

/// Sum over `[x0, x1) × [y0, y1)` from a summed-area table of width `w`.
fn box_of(sat: &[f64], w: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    block(sat, w, x0, y0, x1 - x0, y1 - y0)
}

/// Resamples `img` (`w × h`) to `nw × nh` by box averaging (each output pixel the mean of the
/// input it covers, partial pixels weighted).
fn resample(img: &[f64], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f64> {
    let weights = |n: usize, m: usize| -> Vec<Vec<(usize, f64)>> {
        let f = n as f64 / m as f64;
        (0..m)
            .map(|i| {
                let (a, b) = (i as f64 * f, (i as f64 + 1.0) * f);
                let mut ws = Vec::new();
                let mut k = a.floor() as usize;
                while (k as f64) < b && k < n {
                    let o = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                    if o > 0.0 {
                        ws.push((k, o / f));
                    }
                    k += 1;
                }
                ws
            })
            .collect()
    };
    let (wx, wy) = (weights(w, nw), weights(h, nh));
    let mut tmp = vec![0.0; nw * h];
    for y in 0..h {
        for (x, ws) in wx.iter().enumerate() {
            tmp[y * nw + x] = ws.iter().map(|&(k, a)| img[y * w + k] * a).sum();
        }
    }
    let mut out = vec![0.0; nw * nh];
    for (y, ws) in wy.iter().enumerate() {
        for x in 0..nw {
            out[y * nw + x] = ws.iter().map(|&(k, a)| tmp[k * nw + x] * a).sum();
        }
    }
    out
}

/// One scale of the search: the copy's analysis picture resampled to `dw × dh`.
#[derive(Clone, Copy)]
struct Scale {
    dw: usize,
    dh: usize,
}

impl Scale {
    fn placements(&self, aw: usize, ah: usize) -> (usize, usize) {
        (aw - self.dw + 1, ah - self.dh + 1)
    }
}

/// Searches the placement of the marked picture in the copy whose per-position means (working
/// grid `ww × wh`, picture inside the bars `content`) are `observed` (position, mean).
pub fn search(
    observed: &[(usize, &[f32])],
    (ww, wh): (usize, usize),
    content: [f64; 4],
    pattern_key: &DerivedKey,
) -> CropSearch {
    let (cw, ch) = (content[2] - content[0], content[3] - content[1]);
    let aw = AW;
    let ah = ((aw as f64 * ch / cw.max(1.0)).round() as usize).clamp(8, 4 * aw);
    let keys: Vec<DerivedKey> = std::iter::once(pattern_key.clone())
        .chain((0..SEARCH_DECOYS).map(|i| decoy_key(pattern_key, i)))
        .collect();
    let min_dw = (aw as f64 / MAX_SCALE).ceil() as usize;
    let scales: Vec<Scale> = (min_dw..=aw)
        .rev()
        .step_by(WIDTH_STEP)
        .map(|dw| Scale {
            dw,
            dh: ((dw as f64 * ah as f64 / aw as f64).round() as usize).clamp(2, ah),
        })
        .collect();
    let fft = Fft2::new(aw, ah);
    // Per scale, per key: Σ_p z² at each placement.
    let sizes: Vec<usize> = scales
        .iter()
        .map(|s| {
            let (px, py) = s.placements(aw, ah);
            px * py
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = observed.len().div_ceil(threads).max(1);
    let partial: Vec<Vec<Vec<Vec<f64>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = observed
            .chunks(chunk)
            .map(|part| {
                let (keys, scales, sizes, fft) = (&keys, &scales, &sizes, &fft);
                scope.spawn(move || {
                    let mut acc: Vec<Vec<Vec<f64>>> = sizes
                        .iter()
                        .map(|&n| vec![vec![0.0; n]; keys.len()])
                        .collect();
                    for &(p, mean) in part {
                        add_position(
                            &mut acc,
                            p,
                            mean,
                            (ww, wh),
                            content,
                            (aw, ah),
                            keys,
                            scales,
                            fft,
                        );
                    }
                    acc
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut total: Vec<Vec<Vec<f64>>> = sizes
        .iter()
        .map(|&n| vec![vec![0.0; n]; keys.len()])
        .collect();
    for part in &partial {
        for (t, a) in total.iter_mut().zip(part) {
            for (tk, ak) in t.iter_mut().zip(a) {
                tk.iter_mut().zip(ak).for_each(|(x, y)| *x += y);
            }
        }
    }
    let n = observed.len() as f64;
    let zeta = |t: f64| (t - n) / (2.0 * n).max(1.0).sqrt();
    // Each key's maximum, and where the key's own is.
    let mut maxima = vec![f64::NEG_INFINITY; keys.len()];
    let mut best = (0usize, 0usize);
    for (si, per_key) in total.iter().enumerate() {
        for (k, map) in per_key.iter().enumerate() {
            for (i, &t) in map.iter().enumerate() {
                if t > maxima[k] {
                    maxima[k] = t;
                    if k == 0 {
                        best = (si, i);
                    }
                }
            }
        }
    }
    let evidence = zeta(maxima[0]);
    let decoy_max: Vec<f64> = maxima[1..].iter().map(|&t| zeta(t)).collect();
    let tail = gumbel_tail(&decoy_max, evidence);
    let accepted = decoy_max.iter().all(|&d| evidence > d) && tail <= ACCEPT_TAIL;
    let s = scales[best.0];
    let (px, _) = s.placements(aw, ah);
    let (ox, oy) = (best.1 % px, best.1 / px);
    CropSearch {
        scale: aw as f64 / s.dw as f64,
        at: [ox as f64 / aw as f64, oy as f64 / ah as f64],
        evidence,
        decoy_max,
        tail,
        positions: observed.len(),
        placements: sizes.iter().sum(),
        accepted,
    }
}

/// Adds one position's squared standardised correlations, at every scale and placement and
/// for every key, to `acc`.
#[allow(clippy::too_many_arguments)]
fn add_position(
    acc: &mut [Vec<Vec<f64>>],
    p: usize,
    mean: &[f32],
    (ww, wh): (usize, usize),
    content: [f64; 4],
    (aw, ah): (usize, usize),
    keys: &[DerivedKey],
    scales: &[Scale],
    fft: &Fft2,
) {
    let (cw, ch) = (content[2] - content[0], content[3] - content[1]);
    let img = Image {
        data: mean,
        w: ww,
        h: wh,
    };
    // The copy's picture on the analysis grid (2 × 2 samples per pixel), whitened.
    let mut a = vec![0.0; aw * ah];
    for y in 0..ah {
        for x in 0..aw {
            let mut s = 0.0;
            for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let u = content[0] + (x as f64 + dx) / aw as f64 * cw;
                let v = content[1] + (y as f64 + dy) / ah as f64 * ch;
                s += f64::from(img.sample(u, v));
            }
            a[y * aw + x] = s / 4.0;
        }
    }
    let a = highpass(&a, aw, ah, RADIUS);
    // Each key's pattern over the marked picture: whitened, its spectrum and its energy table.
    let Ok(pos) = u32::try_from(p).map(Position::new) else {
        return;
    };
    let patterns: Vec<(Vec<Complex<f64>>, Vec<f64>)> = keys
        .iter()
        .map(|k| {
            let field: Vec<f64> = Pattern::new(k, pos)
                .render(aw, ah)
                .into_iter()
                .map(f64::from)
                .collect();
            let e = highpass(&field, aw, ah, RADIUS);
            let sq: Vec<f64> = e.iter().map(|v| v * v).collect();
            let mut spec: Vec<Complex<f64>> = e.iter().map(|&v| Complex::new(v, 0.0)).collect();
            fft.process(&mut spec, false);
            (spec, integral(&sq, aw, ah))
        })
        .collect();
    let mut buf = vec![Complex::default(); aw * ah];
    let mut maps: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    for (si, s) in scales.iter().enumerate() {
        let (px, py) = s.placements(aw, ah);
        let d = resample(&a, aw, ah, s.dw, s.dh);
        let m = d.iter().sum::<f64>() / d.len() as f64;
        let norm = d.iter().map(|v| (v - m) * (v - m)).sum::<f64>().sqrt();
        if norm <= 0.0 {
            continue;
        }
        let mut dspec = vec![Complex::default(); aw * ah];
        for y in 0..s.dh {
            for x in 0..s.dw {
                dspec[y * aw + x] = Complex::new((d[y * s.dw + x] - m) / norm, 0.0);
            }
        }
        fft.process(&mut dspec, false);
        let scale = 1.0 / (aw * ah) as f64;
        for (k, (spec, sat)) in patterns.iter().enumerate() {
            for ((b, ps), ds) in buf.iter_mut().zip(spec).zip(&dspec) {
                *b = ps * ds.conj();
            }
            fft.process(&mut buf, true);
            let map = &mut maps[k];
            map.clear();
            for oy in 0..py {
                for ox in 0..px {
                    let energy = box_of(sat, aw, ox, oy, ox + s.dw, oy + s.dh);
                    let c = buf[oy * aw + ox].re * scale;
                    map.push(if energy > 0.0 { c / energy.sqrt() } else { 0.0 });
                }
            }
        }
        // σ from the decoys' correlations at this position and scale, all placements.
        let (sum, count) = maps[1..].iter().fold((0.0, 0usize), |(s, c), m| {
            (s + m.iter().map(|v| v * v).sum::<f64>(), c + m.len())
        });
        if count == 0 || sum <= 0.0 {
            continue;
        }
        let var = sum / count as f64;
        for (k, map) in maps.iter().enumerate() {
            for (t, c) in acc[si][k].iter_mut().zip(map) {
                *t += c * c / var;
            }
        }
    }
}

/// `P(X ≥ x)` under the Gumbel law with the mean and standard deviation of `sample` (1 when
/// the sample cannot define one).
fn gumbel_tail(sample: &[f64], x: f64) -> f64 {
    let n = sample.len() as f64;
    if sample.len() < 2 {
        return 1.0;
    }
    let mean = sample.iter().sum::<f64>() / n;
    let sd = (sample.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    if sd <= 0.0 {
        return if x > mean { 0.0 } else { 1.0 };
    }
    let beta = sd * 6f64.sqrt() / std::f64::consts::PI;
    let mu = mean - 0.577_215_664_901_532_9 * beta;
    1.0 - (-(-(x - mu) / beta).exp()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_a_constant_and_the_mean() {
        let img: Vec<f64> = (0..40).map(|i| f64::from(i % 7)).collect();
        let r = resample(&img, 8, 5, 5, 3);
        let m0 = img.iter().sum::<f64>() / 40.0;
        let m1 = r.iter().sum::<f64>() / 15.0;
        assert!((m0 - m1).abs() < 1e-9);
        assert!(
            resample(&[2.0; 12], 4, 3, 3, 2)
                .iter()
                .all(|v| (v - 2.0).abs() < 1e-12)
        );
    }

    #[test]
    fn gumbel_tail_is_small_far_out_and_large_at_the_mean() {
        let s = [1.0, 2.0, 1.5, 2.5, 1.8, 2.2];
        assert!(gumbel_tail(&s, 1.8) > 0.3);
        assert!(gumbel_tail(&s, 8.0) < 1e-3);
    }
}
