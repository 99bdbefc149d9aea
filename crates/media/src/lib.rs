//! # leaktrace-media
//!
//! The only crate that touches FFmpeg (through `ffmpeg-next`, built with just the codec,
//! format and software-scaling parts). Everything above it works on plain planes.
//!
//! - [`probe`]: what a file is (codec, size, frame rate, duration, pixel format).
//! - [`Decoder`]: decode the best video stream into [`VideoFrame`]s in 8-bit or 10-bit 4:2:0.
//! - [`Scaler`]: resize a frame (Lanczos) for a rendition of a ladder.
//! - [`Encoder`]: encode H.264 (libx264), HEVC (libx265) or AV1 (SVT-AV1) with codec threads,
//!   an IDR where the caller asks for one and no other, packet durations set, into a fragmented
//!   MP4 with one fragment per segment.
//! - [`cmaf`]: split that fragmented MP4 into an init segment and CMAF media segments, add
//!   `styp` and arbitrary boxes (e.g. `wmpi`) before each `moof`, and read the codec string.
//!
//! ```no_run
//! use leaktrace_media::{Decoder, probe};
//! let info = probe("movie.mp4".as_ref())?;
//! println!("{}x{} at {} fps", info.width, info.height, info.frame_rate.as_f64());
//! let mut decoder = Decoder::open("movie.mp4".as_ref())?;
//! while let Some(frame) = decoder.next_frame()? {
//!     let _luma = frame.y.as_u8();
//! }
//! # Ok::<(), leaktrace_media::MediaError>(())
//! ```

pub mod cmaf;
mod decode;
mod encode;
mod frame;
mod probe;
mod scale;

pub use decode::Decoder;
pub use encode::{Codec, EncodeStats, Encoder, EncoderConfig};
pub use frame::{PixelLayout, Samples, VideoFrame};
pub use probe::{MediaInfo, Rational, probe};
pub use scale::Scaler;

use std::path::PathBuf;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The input file does not exist or cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The input is empty.
    #[error("{0} is empty (0 bytes)")]
    Empty(PathBuf),
    /// FFmpeg could not open or parse the input as media.
    #[error("{path} is not a readable media file: {reason}")]
    NotMedia {
        /// The file.
        path: PathBuf,
        /// FFmpeg's reason.
        reason: String,
    },
    /// The input has no video stream.
    #[error("{0} has no video stream")]
    NoVideo(PathBuf),
    /// The input ends before its headers say it should.
    #[error("{path} is truncated or corrupt: {detail}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The pixel format cannot be marked.
    #[error(
        "unsupported pixel format {0} (supported: 8-bit and 10-bit YUV or RGB, which are converted to 4:2:0)"
    )]
    UnsupportedPixelFormat(String),
    /// The frame rate is missing or absurd.
    #[error("cannot determine a frame rate for {0} (expected between 1 and 240 fps)")]
    FrameRate(PathBuf),
    /// The codec name is not one leaktrace encodes.
    #[error("unknown codec {0:?} (expected h264, hevc or av1)")]
    UnknownCodec(String),
    /// The FFmpeg build lacks an encoder.
    #[error("encoder {0} is not available in this FFmpeg build")]
    EncoderMissing(&'static str),
    /// An encoder setting is out of range.
    #[error("invalid encoder setting: {0}")]
    InvalidSetting(String),
    /// A fragmented MP4 did not have the expected structure.
    #[error("bad fragmented MP4: {0}")]
    BadMp4(String),
    /// Any other FFmpeg failure, with what was being done.
    #[error("ffmpeg failed while {doing}")]
    Ffmpeg {
        /// The operation.
        doing: &'static str,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
}

pub(crate) fn ff(doing: &'static str) -> impl FnOnce(ffmpeg_next::Error) -> MediaError {
    move |source| MediaError::Ffmpeg { doing, source }
}

/// Initialises FFmpeg once. FFmpeg's own logging is off (leaktrace reports failures itself,
/// on one line); set `LEAKTRACE_FFMPEG_LOG` to `error`, `warning`, `info` or `debug` to see it.
pub fn init() {
    use ffmpeg_next::util::log::Level;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // init only registers components and cannot fail in FFmpeg >= 4.
        let _ = ffmpeg_next::init();
        let level = match std::env::var("LEAKTRACE_FFMPEG_LOG").as_deref() {
            Ok("error") => Level::Error,
            Ok("warning") => Level::Warning,
            Ok("info") => Level::Info,
            Ok("debug") => Level::Debug,
            _ => Level::Quiet,
        };
        ffmpeg_next::util::log::set_level(level);
    });
}
