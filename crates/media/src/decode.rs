//! Decoding to 4:2:0 planes.

use crate::probe::{bit_depth, check_file, frame_rate, open_input};
use crate::{MediaError, PixelLayout, Rational, VideoFrame, ff};
use ffmpeg_next as ffm;
use std::path::{Path, PathBuf};

/// Decodes the best video stream of a file, frame by frame, in 8-bit or 10-bit 4:2:0.
pub struct Decoder {
    path: PathBuf,
    input: ffm::format::context::Input,
    stream_index: usize,
    decoder: ffm::decoder::Video,
    layout: PixelLayout,
    converter: Option<ffm::software::scaling::Context>,
    shrinker: Option<ffm::software::scaling::Context>,
    frame_rate: Rational,
    declared_frames: u64,
    next_index: u64,
    eof_sent: bool,
    corrupt_packets: u32,
    time_base: Option<(i32, i32)>,
    last_time: Option<f64>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens `path` and prepares its decoder (codec threads on, automatic count).
    ///
    /// `path` may be a captured HLS stream: a local `.m3u8` playlist (media or multivariant)
    /// with its segments (fMP4/CMAF or MPEG-TS), read with FFmpeg restricted to local files; a
    /// multivariant playlist is decoded at its highest-bandwidth video rendition.
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        let input = if is_hls(path) {
            open_hls(path)?
        } else {
            open_input(path)?
        };
        let stream = input
            .streams()
            .best(ffm::media::Type::Video)
            .ok_or_else(|| MediaError::NoVideo(path.into()))?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = (tb.numerator() > 0 && tb.denominator() > 0)
            .then(|| (tb.numerator(), tb.denominator()));
        let fr = frame_rate(&stream).ok_or_else(|| MediaError::FrameRate(path.into()))?;
        let declared_frames = u64::try_from(stream.frames()).unwrap_or(0);
        let mut ctx = ffm::codec::context::Context::from_parameters(stream.parameters())
            .map_err(ff("reading codec parameters"))?;
        crate::probe::check_is_video(path, input.format().name(), ctx.id())?;
        ctx.set_threading(ffm::codec::threading::Config {
            kind: ffm::codec::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let decoder = ctx.decoder().video().map_err(|e| MediaError::NotMedia {
            path: path.into(),
            reason: format!("no decoder for its video ({e})"),
        })?;
        let pix = decoder.format();
        let depth =
            bit_depth(pix).ok_or_else(|| MediaError::UnsupportedPixelFormat(format!("{pix:?}")))?;
        let name = pix.descriptor().map(|d| d.name()).unwrap_or("none");
        let layout = match depth {
            1..=8 => PixelLayout::Yuv420p8,
            9..=10 => PixelLayout::Yuv420p10,
            _ => {
                return Err(MediaError::UnsupportedPixelFormat(format!(
                    "{name} ({depth}-bit)"
                )));
            }
        };
        if decoder.width() < 2 || decoder.height() < 2 {
            return Err(MediaError::NotMedia {
                path: path.into(),
                reason: "video has no picture size".into(),
            });
        }
        Ok(Self {
            path: path.into(),
            input,
            stream_index,
            decoder,
            layout,
            converter: None,
            shrinker: None,
            frame_rate: fr,
            declared_frames,
            next_index: 0,
            eof_sent: false,
            corrupt_packets: 0,
            time_base,
            last_time: None,
        })
    }

    /// The layout frames come out in.
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// The stream's frame rate.
    pub fn frame_rate(&self) -> Rational {
        self.frame_rate
    }

    /// Luma width and height.
    pub fn size(&self) -> (usize, usize) {
        (
            self.decoder.width() as usize,
            self.decoder.height() as usize,
        )
    }

    /// Frame count declared by the container (0 when unknown).
    pub fn declared_frames(&self) -> u64 {
        self.declared_frames
    }

    /// Presentation time in seconds of the frame last returned by [`Decoder::next_frame`]
    /// (the decoder's best-effort timestamp × the stream time base), `None` when the stream
    /// gives no timestamp for it.
    pub fn last_time(&self) -> Option<f64> {
        self.last_time
    }

    /// The input file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame in presentation order, `None` at the end.
    ///
    /// A file that ends well before the frame count its container declares is reported as
    /// [`MediaError::Truncated`], not as a short success.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        match self.next_decoded()? {
            Some(decoded) => self.convert(&decoded).map(Some),
            None => Ok(None),
        }
    }

    /// The luma of the next frame in presentation order, area-averaged (swscale) to
    /// `width × height` on the 16-bit scale (an 8-bit code value `v` is `v × 256`, a 10-bit one
    /// `v × 64`; no range conversion), `None` at the end. Much cheaper than [`Decoder::next_frame`] followed by a downscale: no
    /// chroma is copied and the averaging runs in swscale's SIMD code.
    pub fn next_luma(
        &mut self,
        width: usize,
        height: usize,
    ) -> Result<Option<Vec<u16>>, MediaError> {
        let Some(decoded) = self.next_decoded()? else {
            return Ok(None);
        };
        self.next_index += 1;
        self.last_time = self.time_of(&decoded);
        let dims = |v: usize| {
            u32::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                MediaError::InvalidSetting(format!("luma size {v} out of range (1 to 2^32)"))
            })
        };
        let (w, h) = (dims(width)?, dims(height)?);
        let needs_new = match &self.shrinker {
            Some(c) => {
                c.input().format != decoded.format()
                    || c.input().width != decoded.width()
                    || c.input().height != decoded.height()
                    || c.output().width != w
                    || c.output().height != h
            }
            None => true,
        };
        if needs_new {
            self.shrinker = Some(
                ffm::software::scaling::Context::get(
                    decoded.format(),
                    decoded.width(),
                    decoded.height(),
                    ffm::format::Pixel::YUV420P16LE,
                    w,
                    h,
                    ffm::software::scaling::Flags::AREA
                        | ffm::software::scaling::Flags::ACCURATE_RND,
                )
                .map_err(|_| {
                    MediaError::UnsupportedPixelFormat(format!("{:?}", decoded.format()))
                })?,
            );
        }
        let mut out = ffm::frame::Video::empty();
        if let Some(c) = self.shrinker.as_mut() {
            c.run(&decoded, &mut out)
                .map_err(ff("shrinking the luma"))?;
        }
        let stride = out.stride(0);
        let data = out.data(0);
        let mut luma = Vec::with_capacity(width * height);
        for r in 0..height {
            let row = &data[r * stride..r * stride + 2 * width];
            luma.extend(
                row.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]])),
            );
        }
        Ok(Some(luma))
    }

    fn time_of(&self, f: &ffm::frame::Video) -> Option<f64> {
        match (f.timestamp(), self.time_base) {
            (Some(ts), Some((n, d))) => Some(ts as f64 * f64::from(n) / f64::from(d)),
            _ => None,
        }
    }

    fn next_decoded(&mut self) -> Result<Option<ffm::frame::Video>, MediaError> {
        let mut decoded = ffm::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => return Ok(Some(decoded)),
                Err(ffm::Error::Eof) => {
                    self.check_complete()?;
                    return Ok(None);
                }
                Err(ffm::Error::Other { errno }) if errno == ffm::util::error::EAGAIN => {}
                Err(e) => return Err(self.corrupt(format!("decoder error: {e}"))),
            }
            if self.eof_sent {
                self.check_complete()?;
                return Ok(None);
            }
            let mut packet = ffm::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(ffm::Error::InvalidData) => {
                            self.corrupt_packets += 1;
                            if self.corrupt_packets > 8 {
                                return Err(self.corrupt("more than 8 undecodable packets".into()));
                            }
                        }
                        Err(e) => {
                            return Err(self.corrupt(format!("decoder rejected a packet: {e}")));
                        }
                    }
                }
                Err(ffm::Error::Eof) => {
                    self.decoder
                        .send_eof()
                        .map_err(ff("flushing the decoder"))?;
                    self.eof_sent = true;
                }
                Err(ffm::Error::InvalidData) => {
                    self.corrupt_packets += 1;
                    if self.corrupt_packets > 8 {
                        return Err(self.corrupt("more than 8 unreadable packets".into()));
                    }
                }
                Err(e) => return Err(self.corrupt(format!("read error: {e}"))),
            }
        }
    }

    fn corrupt(&self, detail: String) -> MediaError {
        MediaError::Truncated {
            path: self.path.clone(),
            detail: format!("{detail} after {} frames", self.next_index),
        }
    }

    fn check_complete(&self) -> Result<(), MediaError> {
        let got = self.next_index;
        let want = self.declared_frames;
        if got == 0 {
            return Err(self.corrupt("no decodable frame".into()));
        }
        // Containers may declare a frame or two more than decode (edit lists); a real
        // truncation loses many.
        if want > 0 && got + 2 < want && (got as f64) < 0.98 * want as f64 {
            return Err(MediaError::Truncated {
                path: self.path.clone(),
                detail: format!("decoded {got} frames but the container declares {want}"),
            });
        }
        Ok(())
    }

    fn convert(&mut self, f: &ffm::frame::Video) -> Result<VideoFrame, MediaError> {
        let index = self.next_index;
        self.next_index += 1;
        self.last_time = self.time_of(f);
        let target = self.layout.ff();
        if f.format() == target {
            return Ok(VideoFrame::from_ff(f, self.layout, index));
        }
        let needs_new = match &self.converter {
            Some(c) => {
                c.input().format != f.format()
                    || c.input().width != f.width()
                    || c.input().height != f.height()
            }
            None => true,
        };
        if needs_new {
            self.converter = Some(
                ffm::software::scaling::Context::get(
                    f.format(),
                    f.width(),
                    f.height(),
                    target,
                    f.width(),
                    f.height(),
                    ffm::software::scaling::Flags::BICUBIC
                        | ffm::software::scaling::Flags::ACCURATE_RND,
                )
                .map_err(|_| MediaError::UnsupportedPixelFormat(format!("{:?}", f.format())))?,
            );
        }
        let mut out = ffm::frame::Video::empty();
        if let Some(c) = self.converter.as_mut() {
            c.run(f, &mut out)
                .map_err(ff("converting the pixel format"))?;
        }
        Ok(VideoFrame::from_ff(&out, self.layout, index))
    }
}

/// True when `path` looks like an HLS playlist: a `.m3u8`/`.m3u` name, or a file starting with
/// `#EXTM3U`.
pub(crate) fn is_hls(path: &Path) -> bool {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("m3u8") || e.eq_ignore_ascii_case("m3u"))
    {
        return true;
    }
    let mut head = [0u8; 7];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"#EXTM3U"
}

/// Protocols FFmpeg may use while reading a captured HLS stream: local files only (and
/// `crypto` for AES-128 segments whose keys are local files). Never the network.
pub(crate) const HLS_PROTOCOLS: &str = "file,crypto";

/// Resolves a playlist URI relative to the playlist's directory; refuses anything remote.
fn local_uri(playlist: &Path, uri: &str) -> Result<PathBuf, MediaError> {
    let uri = uri.trim();
    let local = uri.strip_prefix("file://").unwrap_or(uri);
    if local.contains("://") {
        return Err(MediaError::NotMedia {
            path: playlist.into(),
            reason: format!(
                "the playlist refers to a remote rendition {uri}; only a captured local stream is read"
            ),
        });
    }
    let p = Path::new(local);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        playlist.parent().unwrap_or(Path::new(".")).join(p)
    })
}

/// Picks the media playlist to decode: `path` itself for a media playlist; for a multivariant
/// playlist, the video rendition with the highest `BANDWIDTH` (I-frame-only and audio-only
/// renditions skipped), followed one level down.
pub(crate) fn hls_media_playlist(path: &Path) -> Result<PathBuf, MediaError> {
    let mut current = path.to_path_buf();
    for _ in 0..4 {
        check_file(&current)?;
        let bytes = std::fs::read(&current).map_err(|source| MediaError::Io {
            path: current.clone(),
            source,
        })?;
        let playlist = m3u8_rs::parse_playlist_res(&bytes).map_err(|e| MediaError::NotMedia {
            path: current.clone(),
            reason: format!("not a valid HLS playlist ({e})"),
        })?;
        match playlist {
            m3u8_rs::Playlist::MediaPlaylist(_) => return Ok(current),
            m3u8_rs::Playlist::MasterPlaylist(m) => {
                let audio_only = |c: &Option<String>| {
                    c.as_deref().is_some_and(|c| {
                        c.split(',').all(|c| {
                            let c = c.trim();
                            c.starts_with("mp4a")
                                || c.starts_with("ac-3")
                                || c.starts_with("ec-3")
                                || c.starts_with("opus")
                                || c.starts_with("flac")
                        })
                    })
                };
                let best = m
                    .variants
                    .iter()
                    .filter(|v| !v.is_i_frame && !audio_only(&v.codecs))
                    .max_by_key(|v| v.bandwidth)
                    .ok_or_else(|| MediaError::NoVideo(current.clone()))?;
                current = local_uri(&current, &best.uri)?;
            }
        }
    }
    Err(MediaError::NotMedia {
        path: path.into(),
        reason: "multivariant playlists nested more than 4 deep".into(),
    })
}

/// Opens a captured HLS stream with FFmpeg's HLS demuxer, restricted to `HLS_PROTOCOLS` (local files).
pub(crate) fn open_hls(path: &Path) -> Result<ffm::format::context::Input, MediaError> {
    crate::init();
    let media = hls_media_playlist(path)?;
    let mut opts = ffm::Dictionary::new();
    opts.set("protocol_whitelist", HLS_PROTOCOLS);
    ffm::format::input_with_dictionary(&media, opts).map_err(|e| match e {
        ffm::Error::Eof => MediaError::Truncated {
            path: path.into(),
            detail: "the HLS stream ends inside its headers".into(),
        },
        other => MediaError::NotMedia {
            path: path.into(),
            reason: format!("cannot read the HLS stream {} ({other})", media.display()),
        },
    })
}
