//! The marking kernel: `A = Y + d`, `B = Y - d` with `d = pattern × mask`, dithered.
//!
//! The pattern of a position is rendered once per frame size into signed 8-bit fixed point
//! (`round(128 × value)`), the mask once per frame into per-block amplitudes; the per-pixel
//! work is then one multiply, one add of an ordered-dither offset, a shift and two saturating
//! adds, written so that the compiler vectorises it. The ordered (8×8 Bayer) dither makes the
//! rounded change unbiased, so a sub-level amplitude still carries its full mean value at low
//! spatial frequency, which is where the detector looks.

use crate::mask::{Mask, block_size};
use crate::{EmbedError, LumaPlane, Sample};
use leaktrace_core::{DerivedKey, Pattern, Position};

/// A pattern rendered at one frame size in fixed point.
#[derive(Clone, Debug)]
pub struct RenderedPattern {
    position: Position,
    width: usize,
    height: usize,
    q: Vec<i8>,
}

impl RenderedPattern {
    /// Renders `position`'s pattern under a title's pattern key at `width` × `height`.
    pub fn new(pattern_key: &DerivedKey, position: Position, width: usize, height: usize) -> Self {
        let field = Pattern::new(pattern_key, position).render(width, height);
        let q = field
            .iter()
            .map(|v| (v * 128.0).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Self {
            position,
            width,
            height,
            q,
        }
    }

    /// The position rendered.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The fixed-point values (`value × 128`), row-major.
    pub fn values(&self) -> &[i8] {
        &self.q
    }
}

/// The 8×8 Bayer matrix (values 0..64).
const BAYER: [[u8; 8]; 8] = [
    [0, 32, 8, 40, 2, 34, 10, 42],
    [48, 16, 56, 24, 50, 18, 58, 26],
    [12, 44, 4, 36, 14, 46, 6, 38],
    [60, 28, 52, 20, 62, 30, 54, 22],
    [3, 35, 11, 43, 1, 33, 9, 41],
    [51, 19, 59, 27, 49, 17, 57, 25],
    [15, 47, 7, 39, 13, 45, 5, 37],
    [63, 31, 55, 23, 61, 29, 53, 21],
];

/// Reusable per-row scratch of the kernel (per-pixel amplitudes and dither offsets).
#[derive(Debug, Default)]
pub struct Scratch {
    amp: Vec<i16>,
    dither_rows: Vec<Vec<i16>>,
}

impl Scratch {
    fn prepare(&mut self, width: usize, shift: u32) {
        if self.amp.len() != width || self.dither_rows.len() != 8 {
            self.amp = vec![0; width];
            self.dither_rows = (0..8)
                .map(|r| {
                    (0..width)
                        .map(|x| (i16::from(BAYER[r][x % 8]) * 32 + 16) >> shift)
                        .collect()
                })
                .collect();
        }
    }
}

/// Marks one luma plane into both variants.
///
/// `out_a` and `out_b` receive `width × height` samples packed row after row (stride =
/// width). Only luma is marked; the caller copies chroma unchanged.
pub fn mark_pair<S: KernelSample>(
    luma: &LumaPlane<'_, S>,
    mask: &Mask,
    pattern: &RenderedPattern,
    scratch: &mut Scratch,
    out_a: &mut [S],
    out_b: &mut [S],
) -> Result<(), EmbedError> {
    let (w, h) = (luma.width(), luma.height());
    if pattern.width != w || pattern.height != h {
        return Err(EmbedError::Mismatch(
            "pattern size differs from the frame size",
        ));
    }
    let block = block_size(w);
    if mask.block() != block
        || mask.blocks_x() != w.div_ceil(block)
        || mask.blocks_y() != h.div_ceil(block)
    {
        return Err(EmbedError::Mismatch(
            "mask size differs from the frame size",
        ));
    }
    if out_a.len() < w * h || out_b.len() < w * h {
        return Err(EmbedError::PlaneTooShort {
            len: out_a.len().min(out_b.len()),
            needed: w * h,
        });
    }
    let extra = u32::from(luma.bit_depth() - 8);
    scratch.prepare(w, extra);
    let shift = 11 - extra;
    let max = (1i32 << luma.bit_depth()) - 1;
    let amps = mask.amplitudes_q4();
    for y in 0..h {
        if y % block == 0 {
            let by = y / block;
            let row = &amps[by * mask.blocks_x()..(by + 1) * mask.blocks_x()];
            for (chunk, &a) in scratch.amp.chunks_mut(block).zip(row) {
                chunk.fill(i16::from(a));
            }
        }
        let range = y * w..(y + 1) * w;
        S::mark_row(
            luma.row(y),
            &pattern.q[range.clone()],
            &scratch.amp,
            &scratch.dither_rows[y % 8],
            shift,
            max,
            &mut out_a[range.clone()],
            &mut out_b[range],
        );
    }
    Ok(())
}

/// Samples the kernel can mark (implemented for `u8` and `u16`).
pub trait KernelSample: Sample {
    /// Marks one row.
    #[allow(clippy::too_many_arguments)]
    fn mark_row(
        src: &[Self],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16],
        shift: u32,
        max: i32,
        a: &mut [Self],
        b: &mut [Self],
    );
}

impl KernelSample for u8 {
    #[inline]
    fn mark_row(
        src: &[u8],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16],
        _shift: u32,
        _max: i32,
        a: &mut [u8],
        b: &mut [u8],
    ) {
        // 8-bit: |pat × amp| ≤ 127 × 64 and the dither < 2048, so i16 never overflows.
        let n = src.len();
        let (pat, amp, dither) = (&pat[..n], &amp[..n], &dither[..n]);
        let (a, b) = (&mut a[..n], &mut b[..n]);
        for i in 0..n {
            let p = i16::from(pat[i]) * amp[i];
            let s = i16::from(src[i]);
            let da = (p + dither[i]) >> 11;
            let db = (dither[i] - p) >> 11;
            a[i] = (s + da).clamp(0, 255) as u8;
            b[i] = (s + db).clamp(0, 255) as u8;
        }
    }
}

impl KernelSample for u16 {
    #[inline]
    fn mark_row(
        src: &[u16],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16],
        shift: u32,
        max: i32,
        a: &mut [u16],
        b: &mut [u16],
    ) {
        let n = src.len();
        let (pat, amp, dither) = (&pat[..n], &amp[..n], &dither[..n]);
        let (a, b) = (&mut a[..n], &mut b[..n]);
        for i in 0..n {
            let p = i32::from(pat[i]) * i32::from(amp[i]);
            let s = i32::from(src[i]);
            let d = i32::from(dither[i]);
            a[i] = (s + ((p + d) >> shift)).clamp(0, max) as u16;
            b[i] = (s + ((d - p) >> shift)).clamp(0, max) as u16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskParams;
    use leaktrace_core::{KeyVersion, MasterKey, TitleId};

    fn key() -> DerivedKey {
        MasterKey::from_bytes([3; 32], KeyVersion::new(1)).pattern_key(&TitleId::new("t").unwrap())
    }

    fn textured(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .map(|i| (60 + ((i * 2654435761usize) >> 7) % 120) as u8)
            .collect()
    }

    #[test]
    fn a_and_b_are_opposite_and_unbiased() {
        let (w, h) = (256, 144);
        let src = textured(w, h);
        let luma = LumaPlane::new(&src, w, h, w, 8).unwrap();
        let mask = Mask::compute(&luma, &MaskParams::default());
        let pat = RenderedPattern::new(&key(), Position::new(1), w, h);
        let (mut a, mut b) = (vec![0u8; w * h], vec![0u8; w * h]);
        mark_pair(&luma, &mask, &pat, &mut Scratch::default(), &mut a, &mut b).unwrap();
        // Correlation of (A - Y) with the ideal field is close to the ideal field's energy.
        let (mut num, mut den, mut sym) = (0f64, 0f64, 0f64);
        for i in 0..w * h {
            let ideal =
                f64::from(pat.values()[i]) / 128.0 * f64::from(mask.amplitude_at(i % w, i / w));
            let da = f64::from(a[i]) - f64::from(src[i]);
            let db = f64::from(b[i]) - f64::from(src[i]);
            num += da * ideal;
            den += ideal * ideal;
            sym += (da + db).abs();
        }
        let gain = num / den;
        assert!((0.9..1.1).contains(&gain), "gain {gain}");
        assert!(sym / ((w * h) as f64) < 0.6, "A and B not opposite: {sym}");
    }

    #[test]
    fn ten_bit_kernel_tracks_eight_bit() {
        let (w, h) = (128, 72);
        let src8 = textured(w, h);
        let src10: Vec<u16> = src8.iter().map(|&v| u16::from(v) << 2).collect();
        let l8 = LumaPlane::new(&src8, w, h, w, 8).unwrap();
        let l10 = LumaPlane::new(&src10, w, h, w, 10).unwrap();
        let mask = Mask::compute(&l8, &MaskParams::default());
        let pat = RenderedPattern::new(&key(), Position::new(4), w, h);
        let (mut a8, mut b8) = (vec![0u8; w * h], vec![0u8; w * h]);
        let (mut a10, mut b10) = (vec![0u16; w * h], vec![0u16; w * h]);
        mark_pair(&l8, &mask, &pat, &mut Scratch::default(), &mut a8, &mut b8).unwrap();
        mark_pair(
            &l10,
            &mask,
            &pat,
            &mut Scratch::default(),
            &mut a10,
            &mut b10,
        )
        .unwrap();
        let mean_diff: f64 = (0..w * h)
            .map(|i| (f64::from(a10[i]) / 4.0 - f64::from(a8[i])).abs())
            .sum::<f64>()
            / (w * h) as f64;
        assert!(mean_diff < 0.5, "{mean_diff}");
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let (w, h) = (64, 36);
        for v in [0u8, 255] {
            let src = vec![v; w * h];
            let luma = LumaPlane::new(&src, w, h, w, 8).unwrap();
            let mask = Mask::compute(
                &luma,
                &MaskParams {
                    strength: 4.0,
                    texture_gain: 0.0,
                },
            );
            let pat = RenderedPattern::new(&key(), Position::new(0), w, h);
            let (mut a, mut b) = (vec![0u8; w * h], vec![0u8; w * h]);
            mark_pair(&luma, &mask, &pat, &mut Scratch::default(), &mut a, &mut b).unwrap();
            assert!(a.iter().chain(&b).all(|&x| x.abs_diff(v) <= 8));
        }
    }

    #[test]
    fn size_mismatches_are_errors() {
        let src = vec![128u8; 64 * 36];
        let luma = LumaPlane::new(&src, 64, 36, 64, 8).unwrap();
        let mask = Mask::compute(&luma, &MaskParams::default());
        let pat = RenderedPattern::new(&key(), Position::new(0), 128, 72);
        let (mut a, mut b) = (vec![0u8; 64 * 36], vec![0u8; 64 * 36]);
        assert!(mark_pair(&luma, &mask, &pat, &mut Scratch::default(), &mut a, &mut b).is_err());
    }
}
