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

/// Pixels per step of the kernel: one 128-bit register of 8-bit samples, and a multiple of
/// the dither period, so every step of a row sees the same dither offsets.
const LANES: usize = 16;

/// Reusable per-row scratch of the kernel: per-pixel amplitudes and the dither offsets.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The amplitude of each pixel of the current block row, `× 256` (see [`product`]).
    amp: Vec<i16>,
    /// The dither offsets of each of the 8 rows of the Bayer period, for one step of pixels.
    dither: [[i16; LANES]; 8],
    /// The bit depth the dither offsets are scaled for (0 before the first use).
    dither_depth: u8,
}

impl Scratch {
    fn prepare(&mut self, width: usize, bit_depth: u8) {
        if self.amp.len() != width {
            self.amp = vec![0; width];
        }
        if self.dither_depth != bit_depth {
            let extra = u32::from(bit_depth - 8);
            for (row, bayer) in self.dither.iter_mut().zip(&BAYER) {
                for (x, d) in row.iter_mut().enumerate() {
                    *d = (i16::from(bayer[x % 8]) * 32 + 16) >> extra;
                }
            }
            self.dither_depth = bit_depth;
        }
    }
}

/// `pattern × amplitude` from the pattern value and the amplitude `× 256`: the high half of
/// `(pattern × 256) × (amplitude × 256)`, which is exact (|pattern| ≤ 127, amplitude ≤ 64)
/// and maps onto one 16-bit multiply-high per lane.
#[inline(always)]
fn product(pattern: i8, amp_x256: i16) -> i16 {
    ((i32::from(i16::from(pattern) << 8) * i32::from(amp_x256)) >> 16) as i16
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
    scratch.prepare(w, luma.bit_depth());
    let shift = 11 - u32::from(luma.bit_depth() - 8);
    let max = (1i16 << luma.bit_depth()) - 1;
    let amps = mask.amplitudes_q4();
    let rows = out_a
        .chunks_exact_mut(w)
        .zip(out_b.chunks_exact_mut(w))
        .zip(pattern.q.chunks_exact(w))
        .take(h)
        .enumerate();
    for (y, ((a, b), pat)) in rows {
        if y % block == 0 {
            let by = y / block;
            let row = &amps[by * mask.blocks_x()..(by + 1) * mask.blocks_x()];
            for (chunk, &amp) in scratch.amp.chunks_mut(block).zip(row) {
                chunk.fill(i16::from(amp) << 8);
            }
        }
        S::mark_row(
            luma.row(y),
            pat,
            &scratch.amp,
            &scratch.dither[y % 8],
            shift,
            max,
            a,
            b,
        );
    }
    Ok(())
}

/// Samples the kernel can mark (implemented for `u8` and `u16`).
pub trait KernelSample: Sample {
    /// Marks one row: `amp` holds each pixel's amplitude `× 256`, `dither` the offsets of
    /// the row for pixels `16k .. 16k + 16`, `shift` and `max` follow from the bit depth.
    /// Every slice is used up to the shortest one's length.
    #[allow(clippy::too_many_arguments)]
    fn mark_row(
        src: &[Self],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16; LANES],
        shift: u32,
        max: i16,
        a: &mut [Self],
        b: &mut [Self],
    );
}

/// Marks the pixels `n - n % LANES ..` of a row one at a time, where `n` is the row's length;
/// `one` maps a sample, its product and dither offset to the A and B samples.
#[inline(always)]
fn mark_tail<S: Copy>(
    src: &[S],
    pat: &[i8],
    amp: &[i16],
    dither: &[i16; LANES],
    a: &mut [S],
    b: &mut [S],
    one: impl Fn(S, i16, i16) -> (S, S),
) {
    let tail = src
        .iter()
        .zip(pat)
        .zip(amp)
        .zip(a.iter_mut().zip(b.iter_mut()))
        .zip(dither);
    for ((((&s, &p), &m), (a, b)), &d) in tail {
        (*a, *b) = one(s, product(p, m), d);
    }
}

impl KernelSample for u8 {
    #[inline]
    fn mark_row(
        src: &[u8],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16; LANES],
        _shift: u32,
        _max: i16,
        a: &mut [u8],
        b: &mut [u8],
    ) {
        // 8-bit: |pat × amp| ≤ 127 × 64 and the dither < 2048, so i16 never overflows, and
        // each change is within ±4 levels, so it fits a signed byte and the sums saturate in
        // 8-bit lanes (a sample biased by -128 is signed; the saturating signed add then
        // clamps to 0..=255 once the bias is undone).
        let n = src
            .len()
            .min(pat.len())
            .min(amp.len())
            .min(a.len())
            .min(b.len());
        let (src, pat, amp) = (&src[..n], &pat[..n], &amp[..n]);
        let (a, b) = (&mut a[..n], &mut b[..n]);
        let (src_c, src_t) = src.as_chunks::<LANES>();
        let (pat_c, pat_t) = pat.as_chunks::<LANES>();
        let (amp_c, amp_t) = amp.as_chunks::<LANES>();
        let (a_c, a_t) = a.as_chunks_mut::<LANES>();
        let (b_c, b_t) = b.as_chunks_mut::<LANES>();
        let steps = src_c
            .iter()
            .zip(pat_c)
            .zip(amp_c)
            .zip(a_c.iter_mut().zip(b_c.iter_mut()));
        for (((s, p), m), (oa, ob)) in steps {
            let (mut da, mut db) = ([0i8; LANES], [0i8; LANES]);
            for i in 0..LANES {
                let pm = product(p[i], m[i]);
                da[i] = ((dither[i] + pm) >> 11) as i8;
                db[i] = ((dither[i] - pm) >> 11) as i8;
            }
            for i in 0..LANES {
                let biased = (s[i] ^ 0x80) as i8;
                oa[i] = biased.saturating_add(da[i]) as u8 ^ 0x80;
                ob[i] = biased.saturating_add(db[i]) as u8 ^ 0x80;
            }
        }
        mark_tail(src_t, pat_t, amp_t, dither, a_t, b_t, |s, pm, d| {
            let s = i16::from(s);
            (
                (s + ((d + pm) >> 11)).clamp(0, 255) as u8,
                (s + ((d - pm) >> 11)).clamp(0, 255) as u8,
            )
        });
    }
}

impl KernelSample for u16 {
    #[inline]
    fn mark_row(
        src: &[u16],
        pat: &[i8],
        amp: &[i16],
        dither: &[i16; LANES],
        shift: u32,
        max: i16,
        a: &mut [u16],
        b: &mut [u16],
    ) {
        // 9- and 10-bit: the change is within ±20 levels, so a sample above 2047 (out of
        // range for the bit depth) ends at `max` whatever its value; clamping it there first
        // keeps every sum in i16.
        let one = |s: u16, pm: i16, d: i16| {
            let s = s.min(2047) as i16;
            (
                (s + ((d + pm) >> shift)).clamp(0, max) as u16,
                (s + ((d - pm) >> shift)).clamp(0, max) as u16,
            )
        };
        let n = src
            .len()
            .min(pat.len())
            .min(amp.len())
            .min(a.len())
            .min(b.len());
        let (src, pat, amp) = (&src[..n], &pat[..n], &amp[..n]);
        let (a, b) = (&mut a[..n], &mut b[..n]);
        let (src_c, src_t) = src.as_chunks::<LANES>();
        let (pat_c, pat_t) = pat.as_chunks::<LANES>();
        let (amp_c, amp_t) = amp.as_chunks::<LANES>();
        let (a_c, a_t) = a.as_chunks_mut::<LANES>();
        let (b_c, b_t) = b.as_chunks_mut::<LANES>();
        let steps = src_c
            .iter()
            .zip(pat_c)
            .zip(amp_c)
            .zip(a_c.iter_mut().zip(b_c.iter_mut()));
        for (((s, p), m), (oa, ob)) in steps {
            for i in 0..LANES {
                (oa[i], ob[i]) = one(s[i], product(p[i], m[i]), dither[i]);
            }
        }
        mark_tail(src_t, pat_t, amp_t, dither, a_t, b_t, one);
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

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            (self.next() >> 32) % n
        }
    }

    /// The kernel's definition, one pixel at a time in 32-bit arithmetic: `d = pattern ×
    /// amplitude` plus the Bayer offset, shifted down to the sample's scale, added to (A) or
    /// subtracted from (B) the sample and clamped to its range.
    fn reference<S: KernelSample>(
        luma: &LumaPlane<'_, S>,
        mask: &Mask,
        pattern: &RenderedPattern,
    ) -> (Vec<i32>, Vec<i32>) {
        let (w, h) = (luma.width(), luma.height());
        let extra = u32::from(luma.bit_depth() - 8);
        let max = (1i32 << luma.bit_depth()) - 1;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for y in 0..h {
            for (x, &s) in luma.row(y).iter().enumerate() {
                let amp =
                    mask.amplitudes_q4()[(y / mask.block()) * mask.blocks_x() + x / mask.block()];
                let p = i32::from(pattern.q[y * w + x]) * i32::from(amp);
                let d = (i32::from(BAYER[y % 8][x % 8]) * 32 + 16) >> extra;
                let s = s.to_u32() as i32;
                a.push((s + ((p + d) >> (11 - extra))).clamp(0, max));
                b.push((s + ((d - p) >> (11 - extra))).clamp(0, max));
            }
        }
        (a, b)
    }

    /// Random planes (any sample value the type holds, so out-of-range high-bit-depth samples
    /// too), patterns over the full fixed-point range and amplitudes over the full mask range,
    /// at widths around the kernel's step and block sizes and strides wider than the frame.
    fn matches_reference<S: KernelSample + Default>(depth: u8, sample: fn(&mut Rng) -> S) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(depth));
        let widths = (64..=100).chain([127, 128, 129, 1279, 1280, 1281, 1295, 1296, 1297]);
        for (i, w) in widths.enumerate() {
            let h = 36 + i % 5;
            let stride = w + i % 3 * 7;
            let data: Vec<S> = (0..stride * h).map(|_| sample(&mut rng)).collect();
            let luma = LumaPlane::new(&data, w, h, stride, depth).unwrap();
            let block = block_size(w);
            let (bx, by) = (w.div_ceil(block), h.div_ceil(block));
            let amps = (0..bx * by)
                .map(|_| rng.below(u64::from(crate::mask::MAX_AMPLITUDE_Q4) + 1) as u8)
                .collect();
            let mask = Mask::from_amplitudes(block, bx, by, amps);
            let pattern = RenderedPattern {
                position: Position::new(0),
                width: w,
                height: h,
                q: (0..w * h)
                    .map(|_| (rng.below(255) as i32 - 127) as i8)
                    .collect(),
            };
            let (mut a, mut b) = (vec![S::default(); w * h], vec![S::default(); w * h]);
            mark_pair(
                &luma,
                &mask,
                &pattern,
                &mut Scratch::default(),
                &mut a,
                &mut b,
            )
            .unwrap();
            let (ra, rb) = reference(&luma, &mask, &pattern);
            let got = |v: &[S]| v.iter().map(|s| s.to_u32() as i32).collect::<Vec<_>>();
            assert_eq!(got(&a), ra, "A differs at width {w}");
            assert_eq!(got(&b), rb, "B differs at width {w}");
        }
    }

    #[test]
    fn eight_bit_kernel_matches_its_definition() {
        matches_reference::<u8>(8, |r| r.next() as u8);
    }

    #[test]
    fn high_bit_depth_kernel_matches_its_definition() {
        matches_reference::<u16>(10, |r| r.next() as u16);
        matches_reference::<u16>(9, |r| (r.next() % 600) as u16);
        matches_reference::<u16>(10, |r| (r.next() % 1024) as u16);
    }

    #[test]
    fn scratch_follows_the_bit_depth_between_calls() {
        // One scratch for 8- and then 10-bit frames of the same width, as an embedder reused
        // across renditions sees them: the dither offsets must follow the bit depth.
        let (w, h) = (96, 40);
        let src8 = textured(w, h);
        let src10: Vec<u16> = src8.iter().map(|&v| u16::from(v) << 2).collect();
        let l8 = LumaPlane::new(&src8, w, h, w, 8).unwrap();
        let l10 = LumaPlane::new(&src10, w, h, w, 10).unwrap();
        let mask = Mask::compute(&l8, &MaskParams::default().scaled(4.0));
        let pat = RenderedPattern::new(&key(), Position::new(2), w, h);
        let mut scratch = Scratch::default();
        let (mut a8, mut b8) = (vec![0u8; w * h], vec![0u8; w * h]);
        let (mut a10, mut b10) = (vec![0u16; w * h], vec![0u16; w * h]);
        mark_pair(&l8, &mask, &pat, &mut scratch, &mut a8, &mut b8).unwrap();
        mark_pair(&l10, &mask, &pat, &mut scratch, &mut a10, &mut b10).unwrap();
        let (ra, rb) = reference(&l10, &mask, &pat);
        let got = |v: &[u16]| v.iter().map(|&s| i32::from(s)).collect::<Vec<_>>();
        assert_eq!((got(&a10), got(&b10)), (ra, rb));
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
