//! # leaktrace-media
//!
//! The only crate that touches FFmpeg (through `ffmpeg-next`, built with just the codec,
//! format and software-scaling parts). Everything above it works on plain planes. Media is read
//! as hostile input: whitelisted demuxers, the local file protocol only, and [`Limits`] on
//! what is decoded.
//!
//! - [`probe`]: what a file is (codec, size, frame rate, duration, pixel format).
//! - [`Decoder`]: decode the best video stream into [`VideoFrame`]s in 8-bit or 10-bit 4:2:0,
//!   turned as the stream's display matrix asks ([`Orientation`]: a phone's portrait
//!   recording comes out portrait, as players show it), with the stream's pixel aspect
//!   ([`Decoder::display_width`]: how wide an anamorphic picture is shown) and its colour
//!   description ([`Colour`]: an HDR master's BT.2020 and PQ, written into every encode)
//!   and HDR static metadata ([`HdrStatic`]: the mastering display and the content light
//!   levels, carried into every encode as well).
//! - [`Limits`]: what a hostile input may make the decoder do (picture width, height and
//!   pixel count, frame count, duration), checked against what the file declares on open and
//!   against every decoded frame; going over one is [`MediaError::TooLarge`], naming the limit.
//!   [`probe`] and [`Decoder::open`] work under [`Limits::default`] (8192x8192, 36 MP, six
//!   hours, 1 296 000 frames); [`probe_with_limits`] and [`Decoder::open_with_limits`] take
//!   others.
//! - [`Scaler`]: resize a frame (Lanczos) for a rendition of a ladder, converting its bit depth
//!   where asked (a 10-bit source's 8-bit H.264 renditions).
//! - [`Encoder`]: encode H.264 (libx264), HEVC (libx265) or AV1 (SVT-AV1) with codec threads,
//!   an IDR where the caller asks for one and no other, packet durations set, into a fragmented
//!   MP4 with one fragment per segment.
//! - [`audio`]: the audio tracks of a file as CMAF AAC-LC renditions at 48 kHz, copied or
//!   encoded, cut at the video's position boundaries.
//! - [`live_audio`]: a live source's audio decoded beside its video, and a streaming AAC-LC
//!   encoder, for a live channel's audio rendition.
//! - [`cmaf`]: split that fragmented MP4 into an init segment and CMAF media segments, add
//!   `styp` and arbitrary boxes (e.g. `wmpi`) before each `moof`, and read the codec string.
//!
//! ```no_run
//! use leaktrace_media::{Decoder, Limits, probe};
//! let info = probe("movie.mp4".as_ref())?;
//! println!("{}x{} at {} fps", info.width, info.height, info.frame_rate.as_f64());
//! let mut decoder = Decoder::open("movie.mp4".as_ref())?;
//! while let Some(frame) = decoder.next_frame()? {
//!     let _luma = frame.y.as_u8();
//! }
//! // A suspect copy expected to be at most 1080p and three hours long.
//! let limits = Limits {
//!     max_width: 1920,
//!     max_height: 1080,
//!     max_duration_s: 3.0 * 3600.0,
//!     ..Limits::default()
//! };
//! let mut suspect = Decoder::open_with_limits("leak.mp4".as_ref(), limits)?;
//! while let Some(_luma) = suspect.next_luma(256, 144)? {}
//! # Ok::<(), leaktrace_media::MediaError>(())
//! ```

pub mod audio;
pub mod cenc;
pub mod cmaf;
mod colour;
mod decode;
mod encode;
mod frame;
mod hdr;
mod limits;
pub mod live_audio;
mod orient;
mod probe;
mod scale;
pub mod text;

pub use colour::Colour;
pub use decode::{Decoder, LIVE_PROTOCOLS, Luma, LumaError};
pub use encode::{Codec, EncodeStats, Encoder, EncoderConfig, TRACK_TIMESCALE};
pub use frame::{PixelLayout, Samples, VideoFrame};
pub use hdr::{ContentLight, HdrStatic, MasteringDisplay};
pub use limits::{LimitKind, Limits};
pub use orient::Orientation;
pub use probe::{MediaInfo, Rational, probe, probe_with_limits};
pub use scale::Scaler;

use std::path::PathBuf;

/// What went over a [`Limits`] field ([`MediaError::TooLarge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrun {
    /// The file.
    pub path: PathBuf,
    /// The limit gone over.
    pub limit: LimitKind,
    /// What went over it, e.g. `the declared picture`, `frame 12`, `the decoded frame count`.
    pub what: String,
    /// Its value, e.g. `9000x9000`, `1296001`, `21600.040 s`.
    pub value: String,
    /// The limit's value, e.g. `8192x8192`, `1296000`, `21600.000 s`.
    pub max: String,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({}) is larger than the limit {} ({})",
            self.path.display(),
            self.what,
            self.value,
            self.max,
            self.limit
        )
    }
}

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
    /// An audio track cannot be packaged (rate or channels out of range, no decoder).
    #[error("{}: audio stream {stream}: {reason}", path.display())]
    BadAudio {
        /// The file.
        path: PathBuf,
        /// Stream index in the file.
        stream: usize,
        /// What is wrong, with the valid range.
        reason: String,
    },
    /// A fragmented MP4 did not have the expected structure.
    #[error("bad fragmented MP4: {0}")]
    BadMp4(String),
    /// The input goes over one of the decoding [`Limits`]: a declared or decoded picture too
    /// large, too many frames, too long. Raise the limit named (with
    /// [`Decoder::open_with_limits`] or [`probe_with_limits`]) to accept it.
    #[error("{0}")]
    TooLarge(Box<Overrun>),
    /// A field of [`Limits`] is outside its valid range.
    #[error("invalid decoding limits: {0}")]
    InvalidLimits(String),
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
