//! Borrowed views of luma planes, 8-bit (`u8`) or high bit depth (`u16`, 9 to 10 bits).

use crate::EmbedError;

/// A luma sample type: `u8` for 8-bit video, `u16` for 9- and 10-bit video.
pub trait Sample: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The sample as a `u32`.
    fn to_u32(self) -> u32;
    /// Bit depths this sample type may carry.
    const BIT_DEPTHS: std::ops::RangeInclusive<u8>;
}

impl Sample for u8 {
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    const BIT_DEPTHS: std::ops::RangeInclusive<u8> = 8..=8;
}

impl Sample for u16 {
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    const BIT_DEPTHS: std::ops::RangeInclusive<u8> = 9..=10;
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
        Ok(Self { data, width, height, stride, bit_depth })
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
