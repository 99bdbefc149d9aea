//! Where a small copy of the picture sits in the suspect: the picture-in-picture search.
//!
//! A pirate who shows the film as a window over another picture (a "reaction" stream, a
//! picture-in-picture player, a collage) leaves it at some scale anywhere in the frame. For
//! each window width, the reference mean of a position, resampled to that size, is
//! cross-correlated with the suspect mean at every placement where the window fits in the
//! picture, through the FFT (`rustfft`): the correlation of the template with the picture
//! is one product of spectra, and the picture's energy under each placement comes from
//! summed-area tables, which together give the normalised correlation (zero-mean NCC) of
//! every placement in `O(N log N)` instead of `O(N · n)`. The maps of several positions are
//! averaged (a placement must fit all of them), and the best local maxima of each width are
//! returned as candidates for the caller's robust score to choose between.

use super::fft::{Fft2, block, integral, spectrum};
use super::spatial::Image;
use rustfft::num_complex::Complex;

/// A candidate window on the searched grid: the left and top edge and the size, in grid
/// pixels, with the mean normalised correlation over the positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Mean normalised correlation over the positions.
    pub ncc: f64,
}

/// A suspect image ready for correlation: its spectrum and its summed-area tables of values
/// and squares.
type Prepared = (Vec<Complex<f64>>, Vec<f64>, Vec<f64>);

/// The circular cross-correlation `c(ox, oy) = Σ t(x, y) · s(x + ox, y + oy)` of the
/// `tw × th` `template` with the image whose spectrum is `spectrum` (`fft.w × fft.h`),
/// row-major over the image grid; a placement that keeps the template inside the image does
/// not wrap around.
fn correlate(
    fft: &Fft2,
    spectrum: &[Complex<f64>],
    template: &[f64],
    tw: usize,
    th: usize,
) -> Vec<f64> {
    let w = fft.w;
    let mut t = vec![Complex::default(); w * fft.h];
    for y in 0..th.min(fft.h) {
        for x in 0..tw.min(w) {
            t[y * w + x] = Complex::new(template[y * tw + x], 0.0);
        }
    }
    fft.process(&mut t, false);
    // Correlation theorem: corr(s, t) = IFFT(S · conj(T)).
    for (c, s) in t.iter_mut().zip(spectrum) {
        *c = s * c.conj();
    }
    fft.process(&mut t, true);
    let scale = t.len() as f64;
    t.iter().map(|c| c.re / scale).collect()
}

/// The normalised correlation of `template` (`tw × th`, zero mean, energy `energy`) at every
/// placement inside the suspect (`fft.w × fft.h`, whose spectrum is `spectrum` and whose
/// summed-area tables are `sum` and `sum2`), row-major over `(w − tw + 1) × (h − th + 1)`.
#[allow(clippy::too_many_arguments)]
fn ncc_map(
    fft: &Fft2,
    spectrum: &[Complex<f64>],
    sum: &[f64],
    sum2: &[f64],
    template: &[f64],
    tw: usize,
    th: usize,
    energy: f64,
) -> Vec<f64> {
    let (w, h) = (fft.w, fft.h);
    let t = correlate(fft, spectrum, template, tw, th);
    let n = (tw * th) as f64;
    let (nx, ny) = (w - tw + 1, h - th + 1);
    let mut out = vec![0.0; nx * ny];
    for oy in 0..ny {
        for ox in 0..nx {
            let s1 = block(sum, w, ox, oy, tw, th);
            let s2 = block(sum2, w, ox, oy, tw, th);
            let var = (s2 - s1 * s1 / n).max(0.0);
            let den = (var * energy).sqrt();
            // A flat placement (bars, a still background) carries no evidence.
            out[oy * nx + ox] = if den > 1e-6 * n {
                t[oy * w + ox] / den
            } else {
                0.0
            };
        }
    }
    out
}

/// The template: the reference resampled to `tw × th` (bilinear, pixel centres), zero mean;
/// with its energy (sum of squares).
fn template(reference: &Image<'_>, tw: usize, th: usize) -> (Vec<f64>, f64) {
    let mut t = Vec::with_capacity(tw * th);
    for y in 0..th {
        for x in 0..tw {
            let u = (x as f64 + 0.5) / tw as f64 * reference.w as f64;
            let v = (y as f64 + 0.5) / th as f64 * reference.h as f64;
            t.push(f64::from(reference.sample(u, v)));
        }
    }
    let mean = t.iter().sum::<f64>() / t.len().max(1) as f64;
    for v in &mut t {
        *v -= mean;
    }
    let energy = t.iter().map(|v| v * v).sum();
    (t, energy)
}

/// The `per_width` best placements (local maxima of the mean NCC, at least `separation` grid
/// pixels apart) of a window of each width in `widths` (grid pixels), its height `aspect ×`
/// its width, over `pairs` of (reference, suspect) images that share one suspect size.
/// Widths whose window does not fit the suspect, or is under 4 × 4 pixels, are skipped.
pub fn search(
    pairs: &[(Image<'_>, Image<'_>)],
    widths: &[f64],
    aspect: f64,
    per_width: usize,
) -> Vec<Window> {
    let Some((_, first)) = pairs.first() else {
        return Vec::new();
    };
    let (w, h) = (first.w, first.h);
    if pairs.iter().any(|(_, s)| s.w != w || s.h != h) || w < 4 || h < 4 {
        return Vec::new();
    }
    let fft = Fft2::new(w, h);
    // Per position: the suspect's spectrum and its summed-area tables, shared by every width.
    let suspects: Vec<Prepared> = pairs
        .iter()
        .map(|(_, s)| {
            let data: Vec<f64> = s.data.iter().map(|&v| f64::from(v)).collect();
            let squares: Vec<f64> = data.iter().map(|v| v * v).collect();
            (
                spectrum(&fft, &data),
                integral(&data, w, h),
                integral(&squares, w, h),
            )
        })
        .collect();
    let mut out = Vec::new();
    for &width in widths {
        let tw = width.round() as usize;
        let th = (width * aspect).round() as usize;
        if tw < 4 || th < 4 || tw > w || th > h {
            continue;
        }
        let (nx, ny) = (w - tw + 1, h - th + 1);
        let mut mean = vec![0.0; nx * ny];
        for ((r, _), (spectrum, sum, sum2)) in pairs.iter().zip(&suspects) {
            let (t, energy) = template(r, tw, th);
            if energy <= 0.0 {
                continue;
            }
            let map = ncc_map(&fft, spectrum, sum, sum2, &t, tw, th, energy);
            for (m, v) in mean.iter_mut().zip(map) {
                *m += v / pairs.len() as f64;
            }
        }
        out.extend(
            peaks(&mean, nx, ny, per_width, (tw.min(th) / 4).max(1))
                .into_iter()
                .map(|(x, y, ncc)| Window {
                    x: x as f64,
                    y: y as f64,
                    w: tw as f64,
                    h: th as f64,
                    ncc,
                }),
        );
    }
    out
}

/// The `k` highest local maxima of `map` (`nx × ny`), at least `separation` apart (Chebyshev).
fn peaks(
    map: &[f64],
    nx: usize,
    ny: usize,
    k: usize,
    separation: usize,
) -> Vec<(usize, usize, f64)> {
    let mut all: Vec<(usize, usize, f64)> = Vec::new();
    for y in 0..ny {
        for x in 0..nx {
            let v = map[y * nx + x];
            let higher_neighbour = (y.saturating_sub(1)..(y + 2).min(ny)).any(|yy| {
                (x.saturating_sub(1)..(x + 2).min(nx))
                    .any(|xx| (xx, yy) != (x, y) && map[yy * nx + xx] > v)
            });
            if !higher_neighbour && v.is_finite() {
                all.push((x, y, v));
            }
        }
    }
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut kept: Vec<(usize, usize, f64)> = Vec::new();
    for p in all {
        if kept.len() >= k {
            break;
        }
        if kept
            .iter()
            .all(|q| p.0.abs_diff(q.0).max(p.1.abs_diff(q.1)) >= separation)
        {
            kept.push(p);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::spatial::tests::texture;

    #[test]
    fn finds_a_small_window_anywhere_and_matches_a_direct_correlation() {
        let (rw, rh) = (32usize, 18usize);
        let (sw, sh) = (64usize, 36usize);
        // The reference at 40 % of the suspect's width (26 × 14 after rounding of 25.6 × 14.4
        // is not exact: resample it to exactly 26 × 15 and place it at (31, 17) over noise).
        let mut pairs_data = Vec::new();
        for seed in [0, 1, 2] {
            let reference = texture(rw, rh, seed);
            let r = Image {
                data: &reference,
                w: rw,
                h: rh,
            };
            let (t, _) = template(&r, 26, 15);
            let mut suspect: Vec<f32> = (0..sw * sh)
                .map(|i| (60.0 + 30.0 * ((i * 7919 % 97) as f64 / 97.0)) as f32)
                .collect();
            let mean = r.data.iter().map(|&v| f64::from(v)).sum::<f64>() / (rw * rh) as f64;
            for y in 0..15 {
                for x in 0..26 {
                    suspect[(17 + y) * sw + 31 + x] = (t[y * 26 + x] + mean) as f32 * 0.8 + 10.0;
                }
            }
            pairs_data.push((reference, suspect));
        }
        let pairs: Vec<(Image<'_>, Image<'_>)> = pairs_data
            .iter()
            .map(|(r, s)| {
                (
                    Image {
                        data: r,
                        w: rw,
                        h: rh,
                    },
                    Image {
                        data: s,
                        w: sw,
                        h: sh,
                    },
                )
            })
            .collect();
        let found = search(&pairs, &[20.0, 23.0, 26.0, 29.0], 15.0 / 26.0, 2);
        let best = found
            .iter()
            .max_by(|a, b| a.ncc.total_cmp(&b.ncc))
            .copied()
            .unwrap_or(Window {
                x: 0.0,
                y: 0.0,
                w: 0.0,
                h: 0.0,
                ncc: 0.0,
            });
        assert_eq!(
            (best.x, best.y, best.w, best.h),
            (31.0, 17.0, 26.0, 15.0),
            "{found:?}"
        );
        assert!(best.ncc > 0.999, "{best:?}");

        // The FFT map equals a direct computation at a few placements.
        let (t, energy) = template(&pairs[0].0, 26, 15);
        let fft = Fft2::new(sw, sh);
        let data: Vec<f64> = pairs[0].1.data.iter().map(|&v| f64::from(v)).collect();
        let squares: Vec<f64> = data.iter().map(|v| v * v).collect();
        let mut spectrum: Vec<Complex<f64>> = data.iter().map(|&v| Complex::new(v, 0.0)).collect();
        fft.process(&mut spectrum, false);
        let map = ncc_map(
            &fft,
            &spectrum,
            &integral(&data, sw, sh),
            &integral(&squares, sw, sh),
            &t,
            26,
            15,
            energy,
        );
        let nx = sw - 26 + 1;
        for (ox, oy) in [(0usize, 0usize), (5, 9), (31, 17), (38, 21)] {
            let win: Vec<f64> = (0..15)
                .flat_map(|y| (0..26).map(move |x| (x, y)))
                .map(|(x, y)| data[(oy + y) * sw + ox + x])
                .collect();
            let direct = leaktrace_reference::normalised_correlation(&t, &win);
            let fast = map[oy * nx + ox];
            assert!(
                (direct - fast).abs() < 1e-9,
                "({ox}, {oy}): {direct} vs {fast}"
            );
        }
    }

    #[test]
    fn windows_that_do_not_fit_and_flat_pictures_give_nothing() {
        let flat = vec![50f32; 16 * 9];
        let pair = (
            Image {
                data: &flat,
                w: 16,
                h: 9,
            },
            Image {
                data: &flat,
                w: 16,
                h: 9,
            },
        );
        assert!(search(std::slice::from_ref(&pair), &[20.0, 3.0], 0.56, 3).is_empty());
        let found = search(&[pair], &[8.0], 0.56, 3);
        assert!(found.iter().all(|w| w.ncc == 0.0), "{found:?}");
        assert!(search(&[], &[8.0], 0.56, 3).is_empty());
    }
}
