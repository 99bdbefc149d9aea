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

/// Side of a mask block, in pixels.
pub const BLOCK: usize = 8;

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
    fn default() -> Self {
        Self { strength: 0.45, texture_gain: 0.55 }
    }
}

/// Per-block mark amplitudes of one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    blocks_x: usize,
    blocks_y: usize,
    amplitude_q4: Vec<u8>,
}

impl Mask {
    /// Computes the mask of a luma plane (any bit depth; measured on the 8-bit scale).
    pub fn compute<S: crate::Sample>(luma: &LumaPlane<'_, S>, params: &MaskParams) -> Mask {
        let (w, h) = (luma.width(), luma.height());
        let blocks_x = w.div_ceil(BLOCK);
        let blocks_y = h.div_ceil(BLOCK);
        let shift = luma.bit_depth() - 8;
        let mut raw = vec![0f32; blocks_x * blocks_y];
        let mut sum = vec![0u32; blocks_x];
        let mut grad = vec![0u32; blocks_x];
        let mut count = vec![0u32; blocks_x];
        for by in 0..blocks_y {
            sum.iter_mut().for_each(|v| *v = 0);
            grad.iter_mut().for_each(|v| *v = 0);
            count.iter_mut().for_each(|v| *v = 0);
            let y_end = ((by + 1) * BLOCK).min(h);
            for y in by * BLOCK..y_end {
                let row = luma.row(y);
                let below = luma.row((y + 1).min(h - 1));
                for (bx, ((chunk, below), (s, (g, c)))) in row
                    .chunks(BLOCK)
                    .zip(below.chunks(BLOCK))
                    .zip(sum.iter_mut().zip(grad.iter_mut().zip(count.iter_mut())))
                    .enumerate()
                {
                    let x0 = bx * BLOCK;
                    for (i, (&v, &b)) in chunk.iter().zip(below).enumerate() {
                        let v = v.to_u32();
                        *s += v;
                        let right = row[(x0 + i + 1).min(w - 1)].to_u32();
                        *g += v.abs_diff(right) + v.abs_diff(b.to_u32());
                    }
                    *c += chunk.len() as u32;
                }
            }
            for bx in 0..blocks_x {
                let n = count[bx].max(1) as f32;
                let scale = (1u32 << shift) as f32;
                let mean = sum[bx] as f32 / n / scale;
                let activity = grad[bx] as f32 / (2.0 * n) / scale;
                raw[by * blocks_x + bx] = amplitude(mean, activity, params);
            }
        }
        let mut amplitude_q4 = vec![0u8; raw.len()];
        for by in 0..blocks_y {
            for bx in 0..blocks_x {
                let mut acc = 0f32;
                let mut n = 0f32;
                for ny in by.saturating_sub(1)..(by + 2).min(blocks_y) {
                    for nx in bx.saturating_sub(1)..(bx + 2).min(blocks_x) {
                        acc += raw[ny * blocks_x + nx];
                        n += 1.0;
                    }
                }
                let a = raw[by * blocks_x + bx].min(acc / n);
                amplitude_q4[by * blocks_x + bx] =
                    (a * 16.0).round().clamp(0.0, f32::from(MAX_AMPLITUDE_Q4)) as u8;
            }
        }
        Mask { blocks_x, blocks_y, amplitude_q4 }
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

    /// The amplitude (in 8-bit grey levels) at pixel `(x, y)`.
    pub fn amplitude_at(&self, x: usize, y: usize) -> f32 {
        let i = (y / BLOCK).min(self.blocks_y - 1) * self.blocks_x + (x / BLOCK).min(self.blocks_x - 1);
        f32::from(self.amplitude_q4[i]) / 16.0
    }
}

/// The amplitude, in 8-bit grey levels, for a block of mean luma `mean` and mean absolute
/// gradient `activity` (both on the 8-bit scale).
fn amplitude(mean: f32, activity: f32, p: &MaskParams) -> f32 {
    let la = if mean <= 127.0 {
        17.0 * (1.0 - (mean / 127.0).sqrt()) + 3.0
    } else {
        3.0 / 128.0 * (mean - 127.0) + 3.0
    };
    let lum = (la / 3.0).clamp(0.8, 1.6);
    let texture = (activity / 8.0).min(3.0);
    lum * (p.strength + p.texture_gain * texture)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect()
    }

    #[test]
    fn texture_raises_the_amplitude_and_flat_stays_low() {
        let flat = plane(64, 64, |_, _| 128);
        let busy = plane(64, 64, |x, y| if (x / 2 + y / 2) % 2 == 0 { 100 } else { 160 });
        let p = MaskParams::default();
        let mf = Mask::compute(&LumaPlane::new(&flat, 64, 64, 64, 8).unwrap(), &p);
        let mb = Mask::compute(&LumaPlane::new(&busy, 64, 64, 64, 8).unwrap(), &p);
        let (af, ab) = (mf.amplitude_at(30, 30), mb.amplitude_at(30, 30));
        assert!(af > 0.3 && af < 0.7, "flat {af}");
        assert!(ab > 3.0 * af, "busy {ab} vs flat {af}");
        assert!(ab <= f32::from(MAX_AMPLITUDE_Q4) / 16.0);
    }

    #[test]
    fn edge_guard_limits_leakage_into_flat_neighbours() {
        // Left half busy, right half flat: the busy block next to the flat area is held down.
        let img = plane(64, 40, |x, y| if x < 32 && (x + y) % 2 == 0 { 60 } else { 128 });
        let m = Mask::compute(&LumaPlane::new(&img, 64, 40, 64, 8).unwrap(), &MaskParams::default());
        assert!(m.amplitude_at(28, 20) < m.amplitude_at(12, 20));
    }

    #[test]
    fn ten_bit_matches_eight_bit() {
        let img8 = plane(80, 40, |x, y| ((x * 7 + y * 3) % 200 + 20) as u8);
        let img10: Vec<u16> = img8.iter().map(|&v| u16::from(v) << 2).collect();
        let p = MaskParams::default();
        let m8 = Mask::compute(&LumaPlane::new(&img8, 80, 40, 80, 8).unwrap(), &p);
        let m10 = Mask::compute(&LumaPlane::new(&img10, 80, 40, 80, 10).unwrap(), &p);
        assert_eq!(m8, m10);
    }
}
