//! Encoding to a fragmented MP4 with one fragment per segment.

use crate::{MediaError, PixelLayout, Rational, VideoFrame, ff};
use ffmpeg_next as ffm;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A codec leaktrace encodes variants with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC with libx264.
    H264,
    /// H.265 / HEVC with libx265.
    Hevc,
    /// AV1 with SVT-AV1.
    Av1,
}

impl Codec {
    /// The FFmpeg encoder used.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
            Codec::Av1 => "libsvtav1",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
        }
    }

    /// The CRF range of the encoder.
    pub fn crf_range(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Codec::H264 | Codec::Hevc => 0..=51,
            Codec::Av1 => 0..=63,
        }
    }

    /// A sensible default preset.
    pub fn default_preset(self) -> &'static str {
        match self {
            Codec::H264 | Codec::Hevc => "medium",
            Codec::Av1 => "8",
        }
    }
}

impl FromStr for Codec {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, MediaError> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "avc" | "x264" => Ok(Codec::H264),
            "hevc" | "h265" | "x265" => Ok(Codec::Hevc),
            "av1" | "svtav1" => Ok(Codec::Av1),
            _ => Err(MediaError::UnknownCodec(s.to_string())),
        }
    }
}

/// Encoder settings. A and B of a rendition must use identical settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Codec.
    pub codec: Codec,
    /// Output width.
    pub width: usize,
    /// Output height.
    pub height: usize,
    /// Input layout (8- or 10-bit 4:2:0).
    pub layout: PixelLayout,
    /// Frame rate; frames are timed by index at this rate.
    pub frame_rate: Rational,
    /// Constant rate factor.
    pub crf: u8,
    /// Encoder preset (x264/x265 names; SVT-AV1 numbers 0–13).
    pub preset: String,
    /// Longest segment in frames; the encoder never inserts a keyframe on its own before it.
    pub max_segment_frames: u32,
    /// Codec threads, 0 for automatic.
    pub threads: usize,
    /// Optional VBV cap (peak bitrate) in kbit/s.
    pub max_kbps: Option<u32>,
    /// Also cut a fragment every this many frames after each keyframe: CMAF chunks, the parts
    /// of a low-latency live segment. `None`: one fragment per keyframe.
    pub part_frames: Option<u32>,
    /// The colour description written into the stream (the source's, so that an HDR master
    /// stays HDR); [`crate::Colour::UNSPECIFIED`] writes none.
    pub colour: crate::Colour,
    /// The HDR static metadata written into the stream (the source's); empty writes none.
    pub hdr: crate::HdrStatic,
}

/// What an encoder wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Frames sent.
    pub frames: u64,
    /// Packets written.
    pub packets: u64,
    /// Keyframe packets written.
    pub keyframes: u64,
}

/// An encoder writing one fragmented MP4 (`frag_keyframe`, `empty_moov`, `default_base_moof`):
/// one fragment per keyframe, and keyframes only where [`Encoder::encode`] asks for them.
pub struct Encoder {
    path: PathBuf,
    octx: ffm::format::context::Output,
    enc: ffm::encoder::Video,
    enc_tb: ffm::Rational,
    ost_tb: ffm::Rational,
    stats: EncodeStats,
    layout: PixelLayout,
    size: (usize, usize),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Track timescale of the written MP4: 90 kHz divides the common frame rates exactly.
pub const TRACK_TIMESCALE: u32 = 90_000;

/// The encoder's `key=value:…` parameter string `params` with the options that write `hdr`
/// into the stream appended.
fn with_hdr(mut params: String, hdr: &crate::HdrStatic, codec: Codec) -> String {
    for p in hdr.encoder_params(codec) {
        params.push(':');
        params.push_str(&p);
    }
    params
}

impl Encoder {
    /// Creates the encoder and the output file.
    pub fn create(path: &Path, cfg: &EncoderConfig) -> Result<Self, MediaError> {
        Self::create_inner(path, cfg, false)
    }

    /// Creates the encoder writing to `writer`, a pipe whose other end the caller reads: each
    /// fragment reaches the pipe as soon as the muxer completes it (at the next keyframe), so a
    /// live packager can read the stream with [`crate::cmaf::FragmentReader`] while it grows.
    /// The pipe must stay open until [`Encoder::finish`] returns; dropping it then ends the
    /// reader's stream.
    #[cfg(unix)]
    pub fn create_streaming(
        writer: &std::io::PipeWriter,
        cfg: &EncoderConfig,
    ) -> Result<Self, MediaError> {
        use std::os::fd::AsRawFd;
        let url = format!("pipe:{}", writer.as_raw_fd());
        Self::create_inner(Path::new(&url), cfg, true)
    }

    fn create_inner(path: &Path, cfg: &EncoderConfig, streaming: bool) -> Result<Self, MediaError> {
        crate::init();
        if !cfg.codec.crf_range().contains(&cfg.crf) {
            let r = cfg.codec.crf_range();
            return Err(MediaError::InvalidSetting(format!(
                "crf {} out of range for {} (expected {} to {})",
                cfg.crf,
                cfg.codec.name(),
                r.start(),
                r.end()
            )));
        }
        if cfg.width < 16
            || cfg.height < 16
            || !cfg.width.is_multiple_of(2)
            || !cfg.height.is_multiple_of(2)
        {
            return Err(MediaError::InvalidSetting(format!(
                "output size {}x{} (expected even sides of at least 16)",
                cfg.width, cfg.height
            )));
        }
        if cfg.frame_rate.num <= 0 || cfg.frame_rate.den <= 0 {
            return Err(MediaError::InvalidSetting(
                "frame rate must be positive".into(),
            ));
        }
        let codec = ffm::encoder::find_by_name(cfg.codec.encoder_name())
            .ok_or(MediaError::EncoderMissing(cfg.codec.encoder_name()))?;
        let mut octx = ffm::format::output_as(path, "mp4").map_err(|e| MediaError::Io {
            path: path.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let global_header = octx
            .format()
            .flags()
            .contains(ffm::format::Flags::GLOBAL_HEADER);
        let mut ctx = ffm::codec::context::Context::new_with_codec(codec);
        ctx.set_threading(ffm::codec::threading::Config {
            kind: ffm::codec::threading::Type::Frame,
            count: cfg.threads,
            ..Default::default()
        });
        let mut video = ctx.encoder().video().map_err(ff("creating the encoder"))?;
        let enc_tb = cfg.frame_rate.invert().ff();
        video.set_width(cfg.width as u32);
        video.set_height(cfg.height as u32);
        video.set_format(cfg.layout.ff());
        cfg.colour.apply(&mut video);
        video.set_time_base(enc_tb);
        video.set_frame_rate(Some(cfg.frame_rate.ff()));
        let gop = cfg.max_segment_frames.max(1);
        video.set_gop(if cfg.codec == Codec::Av1 {
            gop
        } else {
            gop + 1
        });
        if global_header {
            video.set_flags(ffm::codec::Flags::GLOBAL_HEADER);
        }
        if let Some(k) = cfg.max_kbps {
            video.set_max_bit_rate(k as usize * 1000);
        }
        let mut opts = ffm::Dictionary::new();
        opts.set("preset", &cfg.preset);
        if cfg.part_frames.is_some() && matches!(cfg.codec, Codec::H264 | Codec::Hevc) {
            // Parts go out as soon as they are encoded: no B-frames and no look-ahead, so a
            // frame's packet leaves the encoder with the frame (x264/x265 `zerolatency`).
            opts.set("tune", "zerolatency");
        }
        opts.set("crf", &cfg.crf.to_string());
        match cfg.codec {
            Codec::H264 => {
                opts.set("forced-idr", "1");
                let mut p = format!("keyint={}:min-keyint=1:scenecut=0:open-gop=0", gop + 1);
                if let Some(k) = cfg.max_kbps {
                    p.push_str(&format!(":vbv-maxrate={k}:vbv-bufsize={}", k * 2));
                }
                opts.set("x264-params", &with_hdr(p, &cfg.hdr, cfg.codec));
            }
            Codec::Hevc => {
                opts.set("forced-idr", "1");
                let mut p = format!(
                    "keyint={}:min-keyint=1:scenecut=0:open-gop=0:log-level=error",
                    gop + 1
                );
                if let Some(k) = cfg.max_kbps {
                    p.push_str(&format!(":vbv-maxrate={k}:vbv-bufsize={}", k * 2));
                }
                opts.set("x265-params", &with_hdr(p, &cfg.hdr, cfg.codec));
            }
            Codec::Av1 => {
                let p = with_hdr("scd=0:irefresh-type=2".to_owned(), &cfg.hdr, cfg.codec);
                opts.set("svtav1-params", &p);
            }
        }
        let enc = video.open_with(opts).map_err(|e| {
            MediaError::InvalidSetting(format!(
                "{} refused the settings: {e}",
                cfg.codec.encoder_name()
            ))
        })?;
        {
            let mut ost = octx
                .add_stream(codec)
                .map_err(ff("adding the output stream"))?;
            ost.set_parameters(&enc);
            ost.set_time_base(ffm::Rational::new(1, TRACK_TIMESCALE as i32));
        }
        let mut mux = ffm::Dictionary::new();
        mux.set(
            "movflags",
            "+frag_keyframe+empty_moov+default_base_moof+cmaf",
        );
        mux.set("video_track_timescale", &TRACK_TIMESCALE.to_string());
        if let Some(k) = cfg.part_frames.filter(|&k| k > 0) {
            // The muxer cuts before the first packet whose decode time is this far past the
            // fragment's first: half a frame short of `k` frames, so exactly `k` frames.
            let us = (f64::from(k) - 0.5) * 1e6 / cfg.frame_rate.as_f64();
            mux.set("frag_duration", &(us.round() as i64).max(1).to_string());
        }
        if streaming {
            // Hand every write to the pipe at once instead of holding it in a 32 KiB buffer.
            mux.set("flush_packets", "1");
        }
        octx.write_header_with(mux)
            .map_err(ff("writing the MP4 header"))?;
        let ost_tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(ffm::Rational::new(1, TRACK_TIMESCALE as i32));
        Ok(Self {
            path: path.into(),
            octx,
            enc,
            enc_tb,
            ost_tb,
            stats: EncodeStats::default(),
            layout: cfg.layout,
            size: (cfg.width, cfg.height),
        })
    }

    /// Encodes one frame at `pts` (frame index); `force_idr` starts a new segment.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        pts: i64,
        force_idr: bool,
    ) -> Result<(), MediaError> {
        if frame.layout != self.layout || (frame.width, frame.height) != self.size {
            return Err(MediaError::InvalidSetting(format!(
                "frame {}x{} {:?} does not match the encoder's {}x{} {:?}",
                frame.width, frame.height, frame.layout, self.size.0, self.size.1, self.layout
            )));
        }
        let mut f = frame.to_ff();
        f.set_pts(Some(pts));
        f.set_kind(if force_idr {
            ffm::picture::Type::I
        } else {
            ffm::picture::Type::None
        });
        self.enc
            .send_frame(&f)
            .map_err(ff("sending a frame to the encoder"))?;
        self.stats.frames += 1;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        let mut pkt = ffm::Packet::empty();
        loop {
            match self.enc.receive_packet(&mut pkt) {
                Ok(()) => {
                    pkt.set_stream(0);
                    if pkt.duration() <= 0 {
                        pkt.set_duration(1);
                    }
                    if pkt.is_key() {
                        self.stats.keyframes += 1;
                    }
                    pkt.rescale_ts(self.enc_tb, self.ost_tb);
                    pkt.write_interleaved(&mut self.octx)
                        .map_err(ff("writing a packet"))?;
                    self.stats.packets += 1;
                }
                Err(ffm::Error::Other { errno }) if errno == ffm::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(ffm::Error::Eof) => return Ok(()),
                Err(e) => {
                    return Err(MediaError::Ffmpeg {
                        doing: "receiving a packet",
                        source: e,
                    });
                }
            }
        }
    }

    /// Flushes the encoder and closes the file.
    pub fn finish(mut self) -> Result<EncodeStats, MediaError> {
        self.enc.send_eof().map_err(ff("flushing the encoder"))?;
        self.drain()?;
        self.octx
            .write_trailer()
            .map_err(ff("writing the MP4 trailer"))?;
        Ok(self.stats)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
