//! Decoded frames as plain planes.

/// Samples of one plane: 8-bit or high bit depth.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Samples {
    /// 8-bit samples.
    U8(Vec<u8>),
    /// 9- to 16-bit samples (leaktrace uses 10).
    U16(Vec<u16>),
}

impl Samples {
    /// The 8-bit samples, if 8-bit.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match self {
            Samples::U8(v) => Some(v),
            Samples::U16(_) => None,
        }
    }

    /// The high-bit-depth samples, if so.
    pub fn as_u16(&self) -> Option<&[u16]> {
        match self {
            Samples::U16(v) => Some(v),
            Samples::U8(_) => None,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::U16(v) => v.len(),
        }
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sample layout of a [`VideoFrame`]: always 4:2:0 planar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelLayout {
    /// 8-bit 4:2:0 (`yuv420p`).
    Yuv420p8,
    /// 10-bit 4:2:0 (`yuv420p10le`).
    Yuv420p10,
}

impl PixelLayout {
    /// Bits per sample.
    pub fn bit_depth(self) -> u8 {
        match self {
            PixelLayout::Yuv420p8 => 8,
            PixelLayout::Yuv420p10 => 10,
        }
    }

    pub(crate) fn ff(self) -> ffmpeg_next::format::Pixel {
        match self {
            PixelLayout::Yuv420p8 => ffmpeg_next::format::Pixel::YUV420P,
            PixelLayout::Yuv420p10 => ffmpeg_next::format::Pixel::YUV420P10LE,
        }
    }
}

/// A decoded picture: packed planes (stride = plane width), 4:2:0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// Index of the frame in decode output order, from 0.
    pub index: u64,
    /// Width of the luma plane.
    pub width: usize,
    /// Height of the luma plane.
    pub height: usize,
    /// Sample layout.
    pub layout: PixelLayout,
    /// Luma, `width × height`.
    pub y: Samples,
    /// Cb, `ceil(width/2) × ceil(height/2)`.
    pub u: Samples,
    /// Cr, same size as Cb.
    pub v: Samples,
}

impl VideoFrame {
    /// Chroma plane width.
    pub fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    /// Chroma plane height.
    pub fn chroma_height(&self) -> usize {
        self.height.div_ceil(2)
    }

    /// Copies an FFmpeg frame (already in `layout`) into packed planes.
    pub(crate) fn from_ff(f: &ffmpeg_next::frame::Video, layout: PixelLayout, index: u64) -> Self {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |i: usize, pw: usize, ph: usize| -> Samples {
            let stride = f.stride(i);
            let data = f.data(i);
            match layout {
                PixelLayout::Yuv420p8 => {
                    let mut out = Vec::with_capacity(pw * ph);
                    for r in 0..ph {
                        out.extend_from_slice(&data[r * stride..r * stride + pw]);
                    }
                    Samples::U8(out)
                }
                PixelLayout::Yuv420p10 => {
                    let mut out = Vec::with_capacity(pw * ph);
                    for r in 0..ph {
                        let row = &data[r * stride..r * stride + 2 * pw];
                        out.extend(
                            row.chunks_exact(2)
                                .map(|b| u16::from_le_bytes([b[0], b[1]])),
                        );
                    }
                    Samples::U16(out)
                }
            }
        };
        VideoFrame {
            index,
            width: w,
            height: h,
            layout,
            y: plane(0, w, h),
            u: plane(1, cw, ch),
            v: plane(2, cw, ch),
        }
    }

    /// The frame as `orientation` shows it: each plane turned (a quarter turn swaps width and
    /// height, and the chroma planes' with them).
    pub(crate) fn turned(self, orientation: crate::Orientation) -> Self {
        if orientation.is_upright() {
            return self;
        }
        let (cw, ch) = (self.chroma_width(), self.chroma_height());
        let turn = |samples: &Samples, w: usize, h: usize| match samples {
            Samples::U8(v) => Samples::U8(orientation.apply(v, w, h)),
            Samples::U16(v) => Samples::U16(orientation.apply(v, w, h)),
        };
        let (width, height) = orientation.display_size(self.width, self.height);
        VideoFrame {
            index: self.index,
            width,
            height,
            layout: self.layout,
            y: turn(&self.y, self.width, self.height),
            u: turn(&self.u, cw, ch),
            v: turn(&self.v, cw, ch),
        }
    }

    /// Copies the planes into an FFmpeg frame of the same layout and size.
    pub(crate) fn to_ff(&self) -> ffmpeg_next::frame::Video {
        let mut f =
            ffmpeg_next::frame::Video::new(self.layout.ff(), self.width as u32, self.height as u32);
        let dims = [
            (self.width, self.height, &self.y),
            (self.chroma_width(), self.chroma_height(), &self.u),
            (self.chroma_width(), self.chroma_height(), &self.v),
        ];
        for (i, (pw, ph, samples)) in dims.into_iter().enumerate() {
            let stride = f.stride(i);
            let data = f.data_mut(i);
            match samples {
                Samples::U8(s) => {
                    for r in 0..ph {
                        data[r * stride..r * stride + pw].copy_from_slice(&s[r * pw..(r + 1) * pw]);
                    }
                }
                Samples::U16(s) => {
                    for r in 0..ph {
                        let dst = &mut data[r * stride..r * stride + 2 * pw];
                        for (d, v) in dst.chunks_exact_mut(2).zip(&s[r * pw..(r + 1) * pw]) {
                            d.copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
        f
    }
}
