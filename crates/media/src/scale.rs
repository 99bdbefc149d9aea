//! Resizing frames for the renditions of a ladder, and converting their bit depth.

use crate::{MediaError, PixelLayout, VideoFrame, ff};
use ffmpeg_next as ffm;

/// Resizes frames of one size and layout to another size (Lanczos, accurate rounding), and
/// converts them to another bit depth where asked (10 to 8 bits through swscale's ordered
/// dither, so that gradients do not band).
pub struct Scaler {
    ctx: ffm::software::scaling::Context,
    layout: PixelLayout,
    out_layout: PixelLayout,
    dst: (usize, usize),
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("layout", &self.layout)
            .field("out_layout", &self.out_layout)
            .field("dst", &self.dst)
            .finish_non_exhaustive()
    }
}

impl Scaler {
    /// A scaler from `src` to `dst` (width, height), keeping `layout`.
    pub fn new(
        src: (usize, usize),
        dst: (usize, usize),
        layout: PixelLayout,
    ) -> Result<Self, MediaError> {
        Self::converting(src, layout, dst, layout)
    }

    /// A scaler from frames of size `src` in `layout` to size `dst` in `out_layout` (the same
    /// size converts the bit depth only).
    pub fn converting(
        src: (usize, usize),
        layout: PixelLayout,
        dst: (usize, usize),
        out_layout: PixelLayout,
    ) -> Result<Self, MediaError> {
        let dims = |v: usize| {
            u32::try_from(v).map_err(|_| MediaError::InvalidSetting(format!("size {v} too large")))
        };
        let ctx = ffm::software::scaling::Context::get(
            layout.ff(),
            dims(src.0)?,
            dims(src.1)?,
            out_layout.ff(),
            dims(dst.0)?,
            dims(dst.1)?,
            ffm::software::scaling::Flags::LANCZOS | ffm::software::scaling::Flags::ACCURATE_RND,
        )
        .map_err(ff("creating a scaler"))?;
        Ok(Self {
            ctx,
            layout,
            out_layout,
            dst,
        })
    }

    /// The output size.
    pub fn output_size(&self) -> (usize, usize) {
        self.dst
    }

    /// Resizes one frame.
    pub fn scale(&mut self, frame: &VideoFrame) -> Result<VideoFrame, MediaError> {
        if frame.layout != self.layout {
            return Err(MediaError::InvalidSetting(
                "frame layout differs from the scaler's".into(),
            ));
        }
        let src = frame.to_ff();
        let mut out = ffm::frame::Video::empty();
        self.ctx
            .run(&src, &mut out)
            .map_err(ff("scaling a frame"))?;
        Ok(VideoFrame::from_ff(&out, self.out_layout, frame.index))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Samples;

    /// A 10-bit frame whose luma is a horizontal ramp over the video range and whose chroma
    /// is neutral.
    fn ramp10(w: usize, h: usize) -> VideoFrame {
        let y = (0..w * h)
            .map(|i| (64 + (i % w) * (940 - 64) / (w - 1)) as u16)
            .collect();
        let c = vec![512u16; w.div_ceil(2) * h.div_ceil(2)];
        VideoFrame {
            index: 7,
            width: w,
            height: h,
            layout: PixelLayout::Yuv420p10,
            y: Samples::U16(y),
            u: Samples::U16(c.clone()),
            v: Samples::U16(c),
        }
    }

    #[test]
    fn ten_bit_frames_become_eight_bit_at_the_same_levels() {
        crate::init();
        let (w, h) = (256, 64);
        let frame = ramp10(w, h);
        let mut s = Scaler::converting(
            (w, h),
            PixelLayout::Yuv420p10,
            (w, h),
            PixelLayout::Yuv420p8,
        )
        .unwrap();
        let out = s.scale(&frame).unwrap();
        assert_eq!(
            (out.width, out.height, out.layout, out.index),
            (w, h, PixelLayout::Yuv420p8, 7)
        );
        let (Samples::U8(y), Samples::U16(src)) = (&out.y, &frame.y) else {
            panic!("sample types");
        };
        // Each sample within a level of its 10-bit value over 4, and each column's mean
        // within a tenth of a level (the dither spreads the rounding, adds no bias).
        for (o, s) in y.iter().zip(src) {
            assert!(
                (f64::from(*o) - f64::from(*s) / 4.0).abs() <= 1.0,
                "{o} from {s}"
            );
        }
        for x in 0..w {
            let mean = (0..h).map(|r| f64::from(y[r * w + x])).sum::<f64>() / h as f64;
            let want = f64::from(src[x]) / 4.0;
            assert!(
                (mean - want).abs() <= 0.6,
                "column {x}: {mean} against {want}"
            );
        }
        let Samples::U8(u) = &out.u else {
            panic!("chroma sample type");
        };
        assert!(u.iter().all(|&c| c == 128), "neutral chroma stays neutral");
    }

    #[test]
    fn a_frame_of_another_layout_is_refused() {
        crate::init();
        let mut s = Scaler::new((64, 36), (32, 18), PixelLayout::Yuv420p8).unwrap();
        assert!(s.scale(&ramp10(64, 36)).is_err());
    }
}
