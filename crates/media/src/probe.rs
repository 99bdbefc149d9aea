//! What a media file is.

use crate::{Limits, MediaError, ff};
use ffmpeg_next as ffm;
use std::path::{Path, PathBuf};

/// An exact rational number (frame rates, time bases).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: i32,
    /// Denominator (> 0).
    pub den: i32,
}

impl Rational {
    /// `num/den`.
    pub const fn new(num: i32, den: i32) -> Self {
        Self { num, den }
    }

    /// As a float (0 when the denominator is 0).
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }

    /// `1 / self`.
    pub fn invert(self) -> Self {
        Self {
            num: self.den,
            den: self.num,
        }
    }

    pub(crate) fn ff(self) -> ffm::Rational {
        ffm::Rational::new(self.num, self.den)
    }
}

/// The facts about a file's video that leaktrace needs.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// The file.
    pub path: PathBuf,
    /// Container (demuxer) name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Video codec name, e.g. `h264`.
    pub codec: String,
    /// Luma width as displayed (turned by the stream's display matrix, as [`crate::Decoder`]
    /// turns its frames).
    pub width: usize,
    /// Luma height as displayed.
    pub height: usize,
    /// FFmpeg pixel format name, e.g. `yuv420p`.
    pub pixel_format: String,
    /// Bits per sample of the pixel format.
    pub bit_depth: u8,
    /// Frame rate (average, or the stream's base rate when no average is known).
    pub frame_rate: Rational,
    /// Duration in seconds (0 when unknown).
    pub duration_seconds: f64,
    /// Frame count declared by the container (0 when unknown).
    pub declared_frames: u64,
}

/// Checks that `path` is a non-empty readable file, with a clear error otherwise.
pub(crate) fn check_file(path: &Path) -> Result<(), MediaError> {
    let meta = std::fs::metadata(path).map_err(|source| MediaError::Io {
        path: path.into(),
        source,
    })?;
    if !meta.is_file() {
        return Err(MediaError::Io {
            path: path.into(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    if meta.len() == 0 {
        return Err(MediaError::Empty(path.into()));
    }
    Ok(())
}

/// The FFmpeg demuxers a media file may be opened with: self-contained containers and
/// elementary streams. Left out on purpose are the demuxers that read other files or URLs named
/// inside the input (DASH, HLS — captured HLS goes through [`crate::decode`]'s own local-only
/// path —, concat, image sequences, SDP/RTSP, tee), so a hostile file cannot make the detector
/// or the packager read the operator's own files or reach the network.
pub(crate) const FILE_DEMUXERS: &str = "mov,matroska,webm,mpegts,mpeg,avi,flv,asf,mxf,ivf,ogg,\
    nut,yuv4mpegpipe,h264,hevc,m4v,mpegvideo,obu,av1";

/// Only the local file itself: no network protocol, no nested protocol.
pub(crate) const FILE_PROTOCOLS: &str = "file";

/// Opens `path` with FFmpeg, restricted to [`FILE_DEMUXERS`] and [`FILE_PROTOCOLS`], mapping
/// failures to [`MediaError`].
pub(crate) fn open_input(path: &Path) -> Result<ffm::format::context::Input, MediaError> {
    open_input_with(path, None)
}

/// [`open_input`]; with `follow`, a file that is still being written: at its end FFmpeg's
/// file protocol waits for more bytes, and gives up after `follow` without any.
pub(crate) fn open_input_with(
    path: &Path,
    follow: Option<std::time::Duration>,
) -> Result<ffm::format::context::Input, MediaError> {
    crate::init();
    check_file(path)?;
    let mut opts = ffm::Dictionary::new();
    opts.set("protocol_whitelist", FILE_PROTOCOLS);
    opts.set("format_whitelist", FILE_DEMUXERS);
    if let Some(idle) = follow {
        opts.set("follow", "1");
        opts.set("rw_timeout", &idle.as_micros().max(1).to_string());
    }
    ffm::format::input_with_dictionary(&path, opts).map_err(|e| match e {
        ffm::Error::Eof => MediaError::Truncated {
            path: path.into(),
            detail: "ends inside its headers".into(),
        },
        other => MediaError::NotMedia {
            path: path.into(),
            reason: other.to_string(),
        },
    })
}

/// Time 0 of a package made from `input`, in seconds of the file's clock: the first video
/// frame's time (0 when the file does not say). Audio and subtitle times are taken from it.
pub(crate) fn origin_seconds(input: &ffm::format::context::Input) -> f64 {
    input
        .streams()
        .best(ffm::media::Type::Video)
        .map_or(0.0, |v| {
            let tb = v.time_base();
            match v.start_time() {
                t if t > 0 && t != i64::MIN => {
                    t as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1))
                }
                _ => 0.0,
            }
        })
}

/// Refuses inputs FFmpeg can "decode" that are not video files: text rendered by the `tty`
/// demuxer (ANSI art) and still images.
pub(crate) fn check_is_video(
    path: &Path,
    container: &str,
    codec: ffm::codec::Id,
) -> Result<(), MediaError> {
    let still = container == "tty" || container == "image2" || container.ends_with("_pipe");
    if still || matches!(codec, ffm::codec::Id::ANSI | ffm::codec::Id::TEXT) {
        return Err(MediaError::NotMedia {
            path: path.into(),
            reason: format!(
                "FFmpeg reads it as {container}/{}, not as a video stream",
                codec.name()
            ),
        });
    }
    Ok(())
}

/// Bits per sample of an FFmpeg pixel format (from its packed size and components).
pub(crate) fn bit_depth(pix: ffm::format::Pixel) -> Option<u8> {
    let d = pix.descriptor()?;
    let name = d.name();
    let alpha = ["yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya"]
        .iter()
        .any(|p| name.starts_with(p));
    let colour = d.nb_components().saturating_sub(u8::from(alpha)).max(1);
    let sub = f64::from(1u32 << (d.log2_chroma_w() + d.log2_chroma_h()));
    let samples = 1.0 + f64::from(colour - 1) / sub + f64::from(u8::from(alpha));
    let bits = (f64::from(d.bits_per_pixel()) / samples).round();
    (bits >= 1.0).then_some(bits.clamp(1.0, 32.0) as u8)
}

pub(crate) fn frame_rate(stream: &ffm::format::stream::Stream<'_>) -> Option<Rational> {
    [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .map(|r| Rational::new(r.numerator(), r.denominator()))
        .find(|r| r.den > 0 && (1.0..=240.0).contains(&r.as_f64()))
}

/// Duration in seconds the container declares for `stream` (its own duration, else the
/// file's), 0 when unknown or absurd (negative, not finite, or a time base that is not positive).
pub(crate) fn declared_duration(
    input: &ffm::format::context::Input,
    stream: &ffm::format::stream::Stream<'_>,
) -> f64 {
    let tb = stream.time_base();
    let seconds = if stream.duration() > 0 && tb.numerator() > 0 && tb.denominator() > 0 {
        stream.duration() as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
    } else if input.duration() > 0 {
        input.duration() as f64 / f64::from(ffm::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    if seconds.is_finite() && seconds > 0.0 {
        seconds
    } else {
        0.0
    }
}

/// Probes a file's best video stream, under the default [`Limits`] (see
/// [`probe_with_limits`]).
pub fn probe(path: &Path) -> Result<MediaInfo, MediaError> {
    probe_with_limits(path, Limits::default())
}

/// Probes a file's best video stream, refusing with [`MediaError::TooLarge`] a file whose
/// declared picture size, frame count or duration goes over `limits` (nothing is decoded).
pub fn probe_with_limits(path: &Path, limits: Limits) -> Result<MediaInfo, MediaError> {
    limits.validate()?;
    let input = open_input(path)?;
    let stream = input
        .streams()
        .best(ffm::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideo(path.into()))?;
    let ctx = ffm::codec::context::Context::from_parameters(stream.parameters())
        .map_err(ff("reading codec parameters"))?;
    let codec = ctx.id().name().to_string();
    check_is_video(path, input.format().name(), ctx.id())?;
    let video = ctx.decoder().video().map_err(|e| MediaError::NotMedia {
        path: path.into(),
        reason: format!("no decoder for its video ({e})"),
    })?;
    let duration_seconds = declared_duration(&input, &stream);
    let declared_frames = u64::try_from(stream.frames()).unwrap_or(0);
    limits.check_declared(
        path,
        video.width(),
        video.height(),
        declared_frames,
        duration_seconds,
    )?;
    let pix = video.format();
    let fr = frame_rate(&stream).ok_or_else(|| MediaError::FrameRate(path.into()))?;
    let (width, height) = crate::orient::of_stream(&stream)
        .display_size(video.width() as usize, video.height() as usize);
    Ok(MediaInfo {
        path: path.into(),
        container: input.format().name().to_string(),
        codec,
        width,
        height,
        pixel_format: pix
            .descriptor()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|| "none".into()),
        bit_depth: bit_depth(pix).unwrap_or(0),
        frame_rate: fr,
        duration_seconds,
        declared_frames,
    })
}
