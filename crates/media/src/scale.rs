//! Resizing frames for the renditions of a ladder.

use crate::{MediaError, PixelLayout, VideoFrame, ff};
use ffmpeg_next as ffm;

/// Resizes frames of one size and layout to another size (Lanczos, accurate rounding).
pub struct Scaler {
    ctx: ffm::software::scaling::Context,
    layout: PixelLayout,
    dst: (usize, usize),
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("layout", &self.layout)
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
        let dims = |v: usize| {
            u32::try_from(v).map_err(|_| MediaError::InvalidSetting(format!("size {v} too large")))
        };
        let ctx = ffm::software::scaling::Context::get(
            layout.ff(),
            dims(src.0)?,
            dims(src.1)?,
            layout.ff(),
            dims(dst.0)?,
            dims(dst.1)?,
            ffm::software::scaling::Flags::LANCZOS | ffm::software::scaling::Flags::ACCURATE_RND,
        )
        .map_err(ff("creating a scaler"))?;
        Ok(Self { ctx, layout, dst })
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
        Ok(VideoFrame::from_ff(&out, self.layout, frame.index))
    }
}
