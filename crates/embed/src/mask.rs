//! The perceptual mask: how strong the mark may be in each 8×8 block of a frame.
//!
//! The mask follows the classic pixel-domain JND recipe (Chou & Li; the same ingredients as
//! Video Seal's `jnd.py`), computed per 8×8 block so it costs about one pass over the luma:
//!
//! - **luminance adaptation**: the eye tolerates larger changes in dark and very bright areas
//!   than at mid-grey; the Chou–Li threshold curve, normalised to 1 at its mid-grey minimum
//!   and clamped to [0.8, 1.6] so that near-black and near-white stay safe;
//! - **contrast (texture) masking**: busy texture hides a change; the block's mean absolute
//!   gradient raises the amplitude, saturating at three times the base texture gain;
//! - **edge guard**: each block takes at most the mean of its 3×3 neighbourhood, so a textured
//!   block next to a flat sky does not push a strong mark into the sky.
//!
//! Amplitudes are in 1/16 of an 8-bit grey level (10-bit frames scale by 4 in the kernel).

use crate::LumaPlane;

/// Side of a mask block for a frame `width` pixels wide: 8 up to 1280 (720p), 16 above, so a
/// block covers about the same angle of view in every rendition and the per-block work stays
/// a small share of the per-pixel work at 1080p and beyond.
pub const fn block_size(width: usize) -> usize {
    if width > 1280 { 16 } else { 8 }
}

/// Gain of the mask for a rendition `height` pixels tall: 1 from 720 lines up, 0.75 at 480
/// lines and below, linear in between.
///
/// The same grey-level change costs more quality on a small rendition: at the default mask,
/// the VMAF drop against the plain encode was 0.632 on a 360p package (192 s of Big Buck
/// Bunny; 0.367 at 0.75×), 0.447 on a 720p one (the trailer) and 0.000 at 1080p (the flower
/// pan); the target is ≤ 0.5. Detection keeps its targets at 0.75× on the 360p package
/// (docs/BENCHMARKS.md section 3), and a copy made from a larger rendition carries the full
/// mark.
pub fn resolution_gain(height: usize) -> f32 {
    let t = (height.saturating_sub(480) as f32 / 240.0).min(1.0);
    0.75 + 0.25 * t
}

/// Largest amplitude the mask ever asks for, in 1/16 grey levels (4 levels).
pub const MAX_AMPLITUDE_Q4: u8 = 64;

/// Tunable mask parameters. One set for all content: never tuned per clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskParams {
    /// Global strength: the amplitude, in 8-bit grey levels, of a flat mid-grey block.
    pub strength: f32,
    /// Extra amplitude per unit of normalised texture (mean |gradient| / 8 levels).
    pub texture_gain: f32,
}

impl Default for MaskParams {
    /// The measured default: the strongest mark whose VMAF drop against the plain encode stays
    /// under 0.5 on the Big Buck Bunny trailer at x264 CRF 20 (docs/BENCHMARKS.md has the
    /// sweep: 0.45/0.55 gave a drop of 1.20, 0.27/0.33 a drop of 0.50).
    fn default() -> Self {
        Self {
            strength: 0.25,
            texture_gain: 0.30,
        }
    }
}

/// The strengths an operator may ask for, relative to the default mask
/// (`leaktrace embed --strength`, [`MaskParams::scaled`]).
pub const STRENGTH_RANGE: std::ops::RangeInclusive<f32> = 0.1..=4.0;

impl MaskParams {
    /// The same mask with every amplitude multiplied by `factor`.
    pub fn scaled(self, factor: f32) -> Self {
        Self {
            strength: self.strength * factor,
            texture_gain: self.texture_gain * factor,
        }
    }
}

/// Per-block mark amplitudes of one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    block: usize,
    blocks_x: usize,
    blocks_y: usize,
    amplitude_q4: Vec<u8>,
}

impl Mask {
    /// Computes the mask of a luma plane (any bit depth; measured on the 8-bit scale).
    pub fn compute<S: crate::Sample>(luma: &LumaPlane<'_, S>, params: &MaskParams) -> Mask {
        let (w, h) = (luma.width(), luma.height());
        let block = block_size(w);
        let blocks_x = w.div_ceil(block);
        let blocks_y = h.div_ceil(block);
        let shift = luma.bit_depth() - 8;
        let mut raw = vec![0f32; blocks_x * blocks_y];
        // Per-block totals of one block row, from the sampled rows directly where the sample
        // type has a per-block path, else through per-column accumulators.
        let mut sums = vec![0u32; blocks_x];
        let mut grads = vec![0u32; blocks_x];
        let mut col_sum = Vec::new();
        let mut col_grad = Vec::new();
        // Texture is the mean absolute gradient over 8 levels (see the module docs).
        let inv_grad_norm = 1.0 / (2.0 * 8.0 * (1u32 << shift) as f32);
        let inv_scale = 1.0 / (1u32 << shift) as f32;
        let lum = &*LUMINANCE;
        let gain = resolution_gain(h);
        let mut sampled = Vec::with_capacity(block.div_ceil(4));
        for by in 0..blocks_y {
            sums.fill(0);
            grads.fill(0);
            let y_end = ((by + 1) * block).min(h);
            sampled.clear();
            sampled.extend(
                sampled_rows(by * block, y_end, block)
                    .map(|y| (luma.row(y), luma.row((y + 1).min(h - 1)))),
            );
            let rows = sampled.len() as u32;
            let columns = !S::add_block_stats(&sampled, block, &mut sums, &mut grads);
            if columns {
                col_sum.clear();
                col_sum.resize(w, 0u16);
                col_grad.clear();
                col_grad.resize(w, 0u16);
                for &(row, below) in &sampled {
                    S::accumulate_columns(row, below, &mut col_sum, &mut col_grad);
                }
            }
            if columns {
                let per_block = col_sum.chunks(block).zip(col_grad.chunks(block));
                for ((s, g), (cs, cg)) in sums.iter_mut().zip(grads.iter_mut()).zip(per_block) {
                    *s += cs.iter().map(|&v| u32::from(v)).sum::<u32>();
                    *g += cg.iter().map(|&v| u32::from(v)).sum::<u32>();
                }
            }
            // Only the last block of a row can be narrower than `block`.
            let inv_full = 1.0 / (rows * block as u32) as f32;
            let last_width = (w - (blocks_x - 1) * block) as u32;
            let inv_last = if last_width == block as u32 {
                inv_full
            } else {
                1.0 / (rows * last_width) as f32
            };
            let row_raw = &mut raw[by * blocks_x..(by + 1) * blocks_x];
            for (bx, (r, (&sum, &grad))) in
                row_raw.iter_mut().zip(sums.iter().zip(&grads)).enumerate()
            {
                let inv_n = if bx + 1 == blocks_x {
                    inv_last
                } else {
                    inv_full
                };
                // Mean on the 8-bit scale, as an index into the luminance table (truncated;
                // never negative, and at most 255.75 for in-range samples).
                let mean = ((sum as f32 * inv_n * inv_scale) as i32).clamp(0, 255) as usize;
                let activity = grad as f32 * inv_n * inv_grad_norm;
                *r = lum[mean] * gain * (params.strength + params.texture_gain * activity.min(3.0));
            }
        }
        // Edge guard: each block takes at most the mean of its 3x3 neighbourhood (separable
        // box sums; the neighbourhood is clipped at the frame border).
        let mut hsum = vec![0f32; raw.len()];
        let last = blocks_x - 1;
        for (src, dst) in raw.chunks(blocks_x).zip(hsum.chunks_mut(blocks_x)) {
            // At a border the clipped neighbourhood is the block and its one neighbour.
            for bx in [0, last] {
                let other = if bx == 0 {
                    src[1.min(last)]
                } else {
                    src[bx - 1]
                };
                dst[bx] = (src[bx] + other) * 0.5;
            }
            if blocks_x > 2 {
                let inner = dst[1..last]
                    .iter_mut()
                    .zip(src[..last - 1].iter().zip(&src[1..last]).zip(&src[2..]));
                for (d, ((&left, &mid), &right)) in inner {
                    *d = (left + mid + right) * (1.0 / 3.0);
                }
            }
        }
        let mut amplitude_q4 = vec![0u8; raw.len()];
        let mut acc = vec![0f32; blocks_x];
        for by in 0..blocks_y {
            let lo = by.saturating_sub(1);
            let hi = (by + 2).min(blocks_y);
            let inv = 1.0 / (hi - lo) as f32;
            let out = &mut amplitude_q4[by * blocks_x..(by + 1) * blocks_x];
            let own = &raw[by * blocks_x..(by + 1) * blocks_x];
            // The column sums of the neighbourhood's rows, top to bottom (the same additions,
            // in the same order, as summing each column on its own).
            acc.copy_from_slice(&hsum[lo * blocks_x..(lo + 1) * blocks_x]);
            for ny in lo + 1..hi {
                for (a, &v) in acc
                    .iter_mut()
                    .zip(&hsum[ny * blocks_x..(ny + 1) * blocks_x])
                {
                    *a += v;
                }
            }
            for ((o, &own), &acc) in out.iter_mut().zip(own).zip(&acc) {
                let a = own.min(acc * inv);
                *o = (a * 16.0 + 0.5).clamp(0.0, f32::from(MAX_AMPLITUDE_Q4)) as u8;
            }
        }
        Mask {
            block,
            blocks_x,
            blocks_y,
            amplitude_q4,
        }
    }

    /// Side of a block in pixels.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Blocks across.
    pub fn blocks_x(&self) -> usize {
        self.blocks_x
    }

    /// Blocks down.
    pub fn blocks_y(&self) -> usize {
        self.blocks_y
    }

    /// Amplitudes in 1/16 grey levels, row-major by block.
    pub fn amplitudes_q4(&self) -> &[u8] {
        &self.amplitude_q4
    }

    /// A mask with the given amplitudes (`blocks_x × blocks_y` of them, row-major).
    #[cfg(test)]
    pub(crate) fn from_amplitudes(
        block: usize,
        blocks_x: usize,
        blocks_y: usize,
        amplitude_q4: Vec<u8>,
    ) -> Mask {
        assert_eq!(amplitude_q4.len(), blocks_x * blocks_y);
        Mask {
            block,
            blocks_x,
            blocks_y,
            amplitude_q4,
        }
    }

    /// The amplitude (in 8-bit grey levels) at pixel `(x, y)`.
    pub fn amplitude_at(&self, x: usize, y: usize) -> f32 {
        let i = (y / self.block).min(self.blocks_y - 1) * self.blocks_x
            + (x / self.block).min(self.blocks_x - 1);
        f32::from(self.amplitude_q4[i]) / 16.0
    }
}

/// The rows of a block (from `y0` up to `y_end`, `block` rows tall) whose statistics are
/// measured: every fourth row starting at row 2 (a quarter of the rows, each with its vertical
/// neighbour, so half the frame is read), or the first row of a short block at the bottom
/// edge. Texture and mean estimates from a quarter of the pixel pairs are stable enough after
/// the 3x3 edge guard, and this keeps the mask well under a millisecond at 1080p.
fn sampled_rows(y0: usize, y_end: usize, block: usize) -> impl Iterator<Item = usize> {
    let first = (y0 + 2 < y_end).then_some(y0 + 2);
    (y0 + 2..y0 + block)
        .step_by(4)
        .filter(move |&y| y < y_end)
        .chain(first.is_none().then_some(y0))
}

/// [`luminance_table`], computed once.
static LUMINANCE: std::sync::LazyLock<[f32; 256]> = std::sync::LazyLock::new(luminance_table);

/// Chou–Li luminance adaptation per 8-bit mean, normalised to 1 at its mid-grey minimum and
/// clamped to [0.8, 1.6].
fn luminance_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (m, v) in t.iter_mut().enumerate() {
        let mean = m as f32;
        let la = if mean <= 127.0 {
            17.0 * (1.0 - (mean / 127.0).sqrt()) + 3.0
        } else {
            3.0 / 128.0 * (mean - 127.0) + 3.0
        };
        *v = (la / 3.0).clamp(0.8, 1.6);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    #[test]
    fn small_renditions_get_three_quarters_of_the_mark() {
        assert_eq!(resolution_gain(360), 0.75);
        assert_eq!(resolution_gain(480), 0.75);
        assert_eq!(resolution_gain(600), 0.875);
        assert_eq!(resolution_gain(720), 1.0);
        assert_eq!(resolution_gain(2160), 1.0);
        let p = MaskParams::default();
        let amp = |h: usize| {
            let flat = plane(64, h, |_, _| 128);
            Mask::compute(&LumaPlane::new(&flat, 64, h, 64, 8).unwrap(), &p).amplitude_at(30, 30)
        };
        let (small, large) = (amp(360), amp(720));
        assert!((large - p.strength).abs() <= 1.0 / 16.0, "{large}");
        assert!((small - 0.75 * p.strength).abs() <= 1.0 / 16.0, "{small}");
    }

    #[test]
    fn texture_raises_the_amplitude_and_flat_stays_low() {
        let flat = plane(64, 64, |_, _| 128);
        let busy = plane(
            64,
            64,
            |x, y| if (x / 2 + y / 2) % 2 == 0 { 100 } else { 160 },
        );
        let p = MaskParams::default();
        let mf = Mask::compute(&LumaPlane::new(&flat, 64, 64, 64, 8).unwrap(), &p);
        let mb = Mask::compute(&LumaPlane::new(&busy, 64, 64, 64, 8).unwrap(), &p);
        let (af, ab) = (mf.amplitude_at(30, 30), mb.amplitude_at(30, 30));
        assert!(
            (af - p.strength * resolution_gain(64)).abs() <= 1.0 / 16.0,
            "flat mid-grey gets the base strength (times the small-rendition gain): {af}"
        );
        assert!(ab > 3.0 * af, "busy {ab} vs flat {af}");
        assert!(ab <= f32::from(MAX_AMPLITUDE_Q4) / 16.0);
    }

    #[test]
    fn edge_guard_limits_leakage_into_flat_neighbours() {
        // Left half busy, right half flat: the busy block next to the flat area is held down.
        let img = plane(
            64,
            40,
            |x, y| if x < 32 && (x + y) % 2 == 0 { 60 } else { 128 },
        );
        let m = Mask::compute(
            &LumaPlane::new(&img, 64, 40, 64, 8).unwrap(),
            &MaskParams::default(),
        );
        assert!(m.amplitude_at(28, 20) < m.amplitude_at(12, 20));
    }

    #[test]
    fn out_of_range_high_bit_depth_samples_are_not_an_error() {
        // A u16 plane declared 10-bit may hold any value; the statistics wrap instead of
        // overflowing (and panicking where overflow is checked), and give the values in range.
        let (w, h) = (96, 40);
        let img: Vec<u16> = (0..w * h)
            .map(|i| if i % 2 == 0 { 32767 } else { 32768 })
            .collect();
        let m = Mask::compute(
            &LumaPlane::new(&img, w, h, w, 10).unwrap(),
            &MaskParams::default(),
        );
        assert!(m.amplitudes_q4().iter().all(|&a| a <= MAX_AMPLITUDE_Q4));
    }

    #[test]
    fn ten_bit_matches_eight_bit() {
        // 8- and 16-pixel blocks (8-bit samples take a per-block path with 16-pixel blocks).
        for (w, h) in [(80, 40), (1296, 40), (1299, 37)] {
            let img8 = plane(w, h, |x, y| ((x * 7 + y * 3 + x * y % 13) % 200 + 20) as u8);
            let img10: Vec<u16> = img8.iter().map(|&v| u16::from(v) << 2).collect();
            let p = MaskParams::default();
            let m8 = Mask::compute(&LumaPlane::new(&img8, w, h, w, 8).unwrap(), &p);
            let m10 = Mask::compute(&LumaPlane::new(&img10, w, h, w, 10).unwrap(), &p);
            assert_eq!(m8, m10, "{w}x{h}");
            assert!(
                m8.amplitudes_q4()
                    .iter()
                    .any(|&a| a != m8.amplitudes_q4()[0])
            );
        }
    }
}
