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
        cg[i] = cg[i].wrapping_add((a.max(b) - a.min(b)) as u16);
    }
    let (left, right, g) = (&row[..w - 1], &row[1..w], &mut cg[..w - 1]);
    for i in 0..w - 1 {
        let (a, b) = (left[i].to_u16() as i16, right[i].to_u16() as i16);
        g[i] = g[i].wrapping_add((a.max(b) - a.min(b)) as u16);
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
