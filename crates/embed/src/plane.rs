//! Borrowed views of luma planes, 8-bit (`u8`) or high bit depth (`u16`, 9 to 10 bits).

use crate::EmbedError;

/// A luma sample type: `u8` for 8-bit video, `u16` for 9- and 10-bit video.
pub trait Sample: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The sample as a `u32`.
    fn to_u32(self) -> u32;
    /// The sample as a `u16`.
    fn to_u16(self) -> u16;
    /// Bit depths this sample type may carry.
    const BIT_DEPTHS: std::ops::RangeInclusive<u8>;
    /// Adds one row's samples and absolute gradients (to the right and down neighbours) to
    /// per-column `u16` accumulators (enough for a few rows of 10-bit samples).
    fn accumulate_columns(row: &[Self], below: &[Self], col_sum: &mut [u16], col_grad: &mut [u16]);
    /// Adds the sample sums and absolute gradients (to the right and down neighbours; the
    /// last column has no right neighbour) of `rows` (each a row and the row below it, all of
    /// one width) to per-block totals, one entry per `block` columns, and returns true;
    /// returns false without adding anything where this sample type and block size have no
    /// per-block path (the caller then uses [`Sample::accumulate_columns`], whose per-column
    /// totals give the same sums).
    fn add_block_stats(
        rows: &[(&[Self], &[Self])],
        block: usize,
        sums: &mut [u32],
        grads: &mut [u32],
    ) -> bool;
}

/// Block width of the per-block statistics path of 8-bit samples (the 1080p-and-up block).
const STATS_BLOCK: usize = 16;

/// Sum of `|a[i] - b[i]|`, written as the widening reduction that compiles to one `psadbw`
/// (sum of absolute byte differences) per 16 pixels with baseline SSE2.
#[inline(always)]
fn abs_diff_sum(a: &[u8; STATS_BLOCK], b: &[u8; STATS_BLOCK]) -> u32 {
    let mut acc = 0u32;
    for (&x, &y) in a.iter().zip(b) {
        acc += (i32::from(x) - i32::from(y)).unsigned_abs();
    }
    acc
}

/// Sum of 16 bytes (one `psadbw` against zero).
#[inline(always)]
fn byte_sum(a: &[u8; STATS_BLOCK]) -> u32 {
    a.iter().map(|&v| u32::from(v)).sum()
}

// The per-block reductions below are kept out of line on purpose: each loop then holds one
// simple reduction per step over slices the compiler cannot relate to each other (a row and
// the same row one pixel on), the shape it turns into `psadbw`; inlined next to each other they
// can be fused into shuffle-heavy code several times slower.

/// `out[k] += Σ_r byte_sum(rows[r][16k..16k + 16])` over the whole 16-pixel blocks of 4 rows.
#[inline(never)]
fn sums_of_4_rows(rows: [&[u8]; 4], out: &mut [u32]) {
    let [c0, c1, c2, c3] = rows.map(|r| r.as_chunks::<STATS_BLOCK>().0);
    for ((((a, b), c), d), o) in c0.iter().zip(c1).zip(c2).zip(c3).zip(out) {
        *o += byte_sum(a);
        *o += byte_sum(b);
        *o += byte_sum(c);
        *o += byte_sum(d);
    }
}

/// `out[k] += byte_sum(row[16k..16k + 16])` over the whole 16-pixel blocks of a row.
#[inline(never)]
fn sums_of_row(row: &[u8], out: &mut [u32]) {
    for (a, o) in row.as_chunks::<STATS_BLOCK>().0.iter().zip(out) {
        *o += byte_sum(a);
    }
}

/// `out[k] += Σ_r abs_diff_sum` of the `k`-th 16-pixel blocks of `a[r]` and `b[r]` (up to the
/// shortest slice's whole blocks).
#[inline(never)]
fn abs_diffs_of_4_rows(a: [&[u8]; 4], b: [&[u8]; 4], out: &mut [u32]) {
    let [a0, a1, a2, a3] = a.map(|r| r.as_chunks::<STATS_BLOCK>().0);
    let [b0, b1, b2, b3] = b.map(|r| r.as_chunks::<STATS_BLOCK>().0);
    let steps = a0.iter().zip(a1).zip(a2).zip(a3);
    let steps = steps.zip(b0).zip(b1).zip(b2).zip(b3).zip(out);
    for ((((((((x0, x1), x2), x3), y0), y1), y2), y3), o) in steps {
        *o += abs_diff_sum(x0, y0);
        *o += abs_diff_sum(x1, y1);
        *o += abs_diff_sum(x2, y2);
        *o += abs_diff_sum(x3, y3);
    }
}

/// `out[k] += abs_diff_sum` of the `k`-th 16-pixel blocks of `a` and `b` (up to the shorter
/// slice's whole blocks).
#[inline(never)]
fn abs_diffs_of_row(a: &[u8], b: &[u8], out: &mut [u32]) {
    let (a, b) = (
        a.as_chunks::<STATS_BLOCK>().0,
        b.as_chunks::<STATS_BLOCK>().0,
    );
    for ((x, y), o) in a.iter().zip(b).zip(out) {
        *o += abs_diff_sum(x, y);
    }
}

/// Columns `1..w` of a row: each pixel's right neighbour.
fn right_of(row: &[u8], w: usize) -> &[u8] {
    row.get(1..w).unwrap_or_default()
}

/// [`Sample::add_block_stats`] for 8-bit samples and 16-pixel blocks: whole blocks by byte
/// sums of absolute differences, four rows at a time, the columns after the last whole block
/// one at a time.
fn add_block_stats_u8(rows: &[(&[u8], &[u8])], sums: &mut [u32], grads: &mut [u32]) {
    let Some(w) = rows.iter().map(|(r, b)| r.len().min(b.len())).min() else {
        return;
    };
    let mut groups = rows.chunks_exact(4);
    for group in &mut groups {
        let row = [0, 1, 2, 3].map(|i| &group[i].0[..w]);
        let below = [0, 1, 2, 3].map(|i| &group[i].1[..w]);
        sums_of_4_rows(row, sums);
        abs_diffs_of_4_rows(row, below, grads);
        abs_diffs_of_4_rows(row, row.map(|r| right_of(r, w)), grads);
    }
    for &(row, below) in groups.remainder() {
        sums_of_row(&row[..w], sums);
        abs_diffs_of_row(&row[..w], &below[..w], grads);
        abs_diffs_of_row(&row[..w], right_of(row, w), grads);
    }
    // Columns after the whole blocks: sums and vertical gradients from `w / 16 × 16` on,
    // horizontal gradients from `(w - 1) / 16 × 16` on (a block needs its right neighbour);
    // each range has fewer than 16 columns, so it lies in one block.
    let whole = w / STATS_BLOCK * STATS_BLOCK;
    let whole_right = w.saturating_sub(1) / STATS_BLOCK * STATS_BLOCK;
    for &(row, below) in rows {
        let (row, below) = (&row[..w], &below[..w]);
        let (sum, down) = row[whole..]
            .iter()
            .zip(&below[whole..])
            .fold((0, 0), |(s, g), (&v, &b)| {
                (s + u32::from(v), g + u32::from(v.abs_diff(b)))
            });
        let right: u32 = row[whole_right..]
            .windows(2)
            .map(|p| u32::from(p[0].abs_diff(p[1])))
            .sum();
        if let (Some(s), Some(g)) = (
            sums.get_mut(whole / STATS_BLOCK),
            grads.get_mut(whole / STATS_BLOCK),
        ) {
            *s += sum;
            *g += down;
        }
        if let Some(g) = grads.get_mut(whole_right / STATS_BLOCK) {
            *g += right;
        }
    }
}

/// Per-pixel statistics in signed 16-bit lanes (samples are at most 10-bit), as plain indexed
/// loops over equal-length slices so they vectorise with baseline SSE2.
#[inline]
fn accumulate_columns<S: Sample>(
    row: &[S],
    below: &[S],
    col_sum: &mut [u16],
    col_grad: &mut [u16],
) {
    let w = row
        .len()
        .min(below.len())
        .min(col_sum.len())
        .min(col_grad.len());
    if w == 0 {
        return;
    }
    let (row, below, cs, cg) = (
        &row[..w],
        &below[..w],
        &mut col_sum[..w],
        &mut col_grad[..w],
    );
    for i in 0..w {
        let (a, b) = (row[i].to_u16() as i16, below[i].to_u16() as i16);
        cs[i] = cs[i].wrapping_add(a as u16);
        cg[i] = cg[i].wrapping_add(a.max(b).wrapping_sub(a.min(b)) as u16);
    }
    let (left, right, g) = (&row[..w - 1], &row[1..w], &mut cg[..w - 1]);
    for i in 0..w - 1 {
        let (a, b) = (left[i].to_u16() as i16, right[i].to_u16() as i16);
        g[i] = g[i].wrapping_add(a.max(b).wrapping_sub(a.min(b)) as u16);
    }
}

impl Sample for u8 {
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn to_u16(self) -> u16 {
        u16::from(self)
    }
    const BIT_DEPTHS: std::ops::RangeInclusive<u8> = 8..=8;

    #[inline]
    fn accumulate_columns(row: &[u8], below: &[u8], col_sum: &mut [u16], col_grad: &mut [u16]) {
        accumulate_columns(row, below, col_sum, col_grad);
    }

    fn add_block_stats(
        rows: &[(&[u8], &[u8])],
        block: usize,
        sums: &mut [u32],
        grads: &mut [u32],
    ) -> bool {
        if block != STATS_BLOCK {
            return false;
        }
        add_block_stats_u8(rows, sums, grads);
        true
    }
}

impl Sample for u16 {
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn to_u16(self) -> u16 {
        self
    }
    const BIT_DEPTHS: std::ops::RangeInclusive<u8> = 9..=10;

    #[inline]
    fn accumulate_columns(row: &[u16], below: &[u16], col_sum: &mut [u16], col_grad: &mut [u16]) {
        accumulate_columns(row, below, col_sum, col_grad);
    }

    fn add_block_stats(
        _rows: &[(&[u16], &[u16])],
        _block: usize,
        _sums: &mut [u32],
        _grads: &mut [u32],
    ) -> bool {
        false
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
}

/// A read-only luma plane: `height` rows of `width` samples, rows `stride` samples apart.
#[derive(Clone, Copy, Debug)]
pub struct LumaPlane<'a, S> {
    data: &'a [S],
    width: usize,
    height: usize,
    stride: usize,
    bit_depth: u8,
}

/// Smallest frame the mark is defined for (the pattern grid needs at least one pixel a cell).
pub const MIN_WIDTH: usize = 64;
/// Smallest frame height.
pub const MIN_HEIGHT: usize = 36;
/// Largest frame side accepted (8K plus margin); larger input is treated as hostile.
pub const MAX_SIDE: usize = 8192;

impl<'a, S: Sample> LumaPlane<'a, S> {
    /// Wraps a plane after checking its geometry and bit depth.
    pub fn new(
        data: &'a [S],
        width: usize,
        height: usize,
        stride: usize,
        bit_depth: u8,
    ) -> Result<Self, EmbedError> {
        check_geometry(width, height)?;
        if !S::BIT_DEPTHS.contains(&bit_depth) {
            return Err(EmbedError::UnsupportedBitDepth(bit_depth));
        }
        if stride < width || data.len() < stride * (height - 1) + width {
            return Err(EmbedError::PlaneTooShort {
                len: data.len(),
                needed: stride.max(width) * (height - 1) + width,
            });
        }
        Ok(Self {
            data,
            width,
            height,
            stride,
            bit_depth,
        })
    }

    /// Width in samples.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Distance between rows, in samples.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Bits per sample (8, 9 or 10).
    pub fn bit_depth(&self) -> u8 {
        self.bit_depth
    }

    /// All rows as one slice when the plane is packed (stride = width).
    pub fn rows_packed(&self) -> &'a [S] {
        &self.data[..self.stride * (self.height - 1) + self.width]
    }

    /// Row `y` (`width` samples).
    pub fn row(&self, y: usize) -> &'a [S] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }
}

pub(crate) fn check_geometry(width: usize, height: usize) -> Result<(), EmbedError> {
    if !(MIN_WIDTH..=MAX_SIDE).contains(&width) || !(MIN_HEIGHT..=MAX_SIDE).contains(&height) {
        return Err(EmbedError::FrameSize { width, height });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-block totals through the per-column path (the definition).
    fn by_columns(rows: &[(&[u8], &[u8])], block: usize) -> (Vec<u32>, Vec<u32>) {
        let w = rows[0].0.len();
        let (mut cs, mut cg) = (vec![0u16; w], vec![0u16; w]);
        for &(row, below) in rows {
            u8::accumulate_columns(row, below, &mut cs, &mut cg);
        }
        let total = |c: &[u16]| -> Vec<u32> {
            c.chunks(block)
                .map(|b| b.iter().map(|&v| u32::from(v)).sum())
                .collect()
        };
        (total(&cs), total(&cg))
    }

    #[test]
    fn eight_bit_block_totals_match_the_column_path() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut byte = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        };
        let widths = (1..=80).chain([1279, 1280, 1281, 1294, 1295, 1296, 1297, 1920, 1921]);
        for (w, count) in widths.zip((1..=9).cycle()) {
            // `count` sampled rows: groups of four and the rows left over.
            let plane: Vec<u8> = (0..w * 2 * count).map(|_| byte()).collect();
            let rows: Vec<(&[u8], &[u8])> = (0..count)
                .map(|r| (&plane[2 * r * w..][..w], &plane[(2 * r + 1) * w..][..w]))
                .collect();
            let blocks = w.div_ceil(STATS_BLOCK);
            let (mut sums, mut grads) = (vec![0u32; blocks], vec![0u32; blocks]);
            assert!(u8::add_block_stats(
                &rows,
                STATS_BLOCK,
                &mut sums,
                &mut grads
            ));
            assert_eq!(
                (sums, grads),
                by_columns(&rows, STATS_BLOCK),
                "width {w}, {count} rows"
            );
        }
    }

    #[test]
    fn only_eight_bit_sixteen_pixel_blocks_have_the_block_path() {
        let row = [7u8; 64];
        let (mut s, mut g) = (vec![0u32; 8], vec![0u32; 8]);
        assert!(!u8::add_block_stats(&[(&row, &row)], 8, &mut s, &mut g));
        let row16 = [7u16; 64];
        assert!(!u16::add_block_stats(
            &[(&row16, &row16)],
            16,
            &mut s,
            &mut g
        ));
        assert!(s.iter().chain(&g).all(|&v| v == 0));
    }
}
