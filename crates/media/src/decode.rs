//! Decoding to 4:2:0 planes.

use crate::probe::{bit_depth, check_file, declared_duration, frame_rate, open_input_with};
use crate::{
    LimitKind, Limits, MediaError, Orientation, Overrun, PixelLayout, Rational, VideoFrame, ff,
};
use ffmpeg_next as ffm;
use std::path::{Path, PathBuf};

/// Decodes the best video stream of a file, frame by frame, in 8-bit or 10-bit 4:2:0.
///
/// Every decoder works under [`Limits`]: [`Decoder::open`] under the defaults,
/// [`Decoder::open_with_limits`] under the caller's. A file that goes over them is refused on
/// open (declared size, frame count, duration) or stopped at the first frame that does
/// (real size, frames and duration decoded), with [`MediaError::TooLarge`].
pub struct Decoder {
    path: PathBuf,
    input: ffm::format::context::Input,
    stream_index: usize,
    decoder: ffm::decoder::Video,
    layout: PixelLayout,
    converter: Option<ffm::software::scaling::Context>,
    shrinker: Option<ffm::software::scaling::Context>,
    /// The column and row weights of the last luma area average ([`Decoder::next_luma`]).
    area: AreaShrinker,
    frame_rate: Rational,
    declared_frames: u64,
    /// Duration the container declares, seconds (0: unknown).
    declared_duration: f64,
    next_index: u64,
    eof_sent: bool,
    corrupt_packets: u32,
    time_base: Option<(i32, i32)>,
    last_time: Option<f64>,
    first_time: Option<f64>,
    limits: Limits,
    /// The limit error that stopped the decoder; every later call returns it again.
    stopped: Option<MediaError>,
    /// Opened with [`Decoder::open_growing`]: the read that times out waiting for more bytes
    /// is the end of the stream.
    growing: bool,
    /// The audio stream decoded beside the video ([`Decoder::enable_audio`]).
    audio: Option<crate::live_audio::AudioTap>,
    /// How the stream's display matrix turns its pictures; frames and luma come out turned.
    orientation: Orientation,
    /// The shape of a pixel as shown, after the turn ([`Decoder::pixel_aspect`]).
    pixel_aspect: Rational,
    /// The colour description the stream declares ([`Decoder::colour`]).
    colour: crate::Colour,
    /// The HDR static metadata known so far ([`Decoder::hdr_static`]).
    hdr: crate::HdrStatic,
    /// A picture decoded ahead by [`Decoder::hdr_static`], returned next.
    ahead: Option<ffm::frame::Video>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens `path` and prepares its decoder (frame threads on: twice the cores, plus one).
    ///
    /// `path` may be a captured HLS stream: a local `.m3u8` playlist (media or multivariant)
    /// with its segments (fMP4/CMAF or MPEG-TS), read with FFmpeg restricted to local files; a
    /// multivariant playlist is decoded at its highest-bandwidth video rendition.
    ///
    /// Works under the default [`Limits`]; see [`Decoder::open_with_limits`].
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        Self::open_with_limits(path, Limits::default())
    }

    /// [`Decoder::open`] under `limits`: a stream whose declared picture size, frame count or
    /// duration goes over them is refused here with [`MediaError::TooLarge`], before any frame
    /// is decoded; frames decoded later are checked one by one (see [`Decoder::next_frame`]).
    /// Invalid `limits` are refused with [`MediaError::InvalidLimits`].
    pub fn open_with_limits(path: &Path, limits: Limits) -> Result<Self, MediaError> {
        Self::open_inner(path, limits, None)
    }

    /// Opens a file that is still being written (an MPEG-TS or Matroska recording, a capture
    /// in progress): at the end of what is there, reading waits for more, and the stream
    /// ends once `idle` passes without a new byte. The container must be one that is read
    /// front to back (MPEG-TS, Matroska): an MP4 names its frames in an index the writer
    /// completes at the end, and is refused here while it has none.
    pub fn open_growing(
        path: &Path,
        limits: Limits,
        idle: std::time::Duration,
    ) -> Result<Self, MediaError> {
        if is_hls(path) {
            return Err(MediaError::InvalidSetting(format!(
                "{}: a playlist is followed segment by segment, not as a growing file",
                path.display()
            )));
        }
        Self::open_inner(path, limits, Some(idle))
    }

    /// Opens a live source: a local file, or a stream on one of [`LIVE_PROTOCOLS`] (`udp://`,
    /// `rtp://`, `srt://`, `rtmp://`, `tcp://`) in one of the self-contained containers a file
    /// may have (MPEG-TS, FLV, Matroska…). A source that sends nothing for `stall` ends the
    /// stream (`next_frame` gives `None`), so the caller can pause and reopen it.
    pub fn open_live(
        url: &str,
        limits: Limits,
        stall: std::time::Duration,
    ) -> Result<Self, MediaError> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            None | Some("file") => {
                let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
                if is_hls(path) {
                    return Err(MediaError::InvalidSetting(format!(
                        "{url}: a playlist is not a live source (send the stream itself over \
                         UDP, SRT or RTMP, or give a media file)"
                    )));
                }
                Self::open_inner(path, limits, None)
            }
            Some(s) if LIVE_PROTOCOLS.split(',').any(|p| p == s) => {
                limits.validate()?;
                let input = open_live_input(url, stall)?;
                Self::from_input(Path::new(url), input, limits, true)
            }
            Some(other) => Err(MediaError::InvalidSetting(format!(
                "{url}: protocol {other} is not a live source (expected udp, rtp, srt, rtmp, \
                 tcp or a file)"
            ))),
        }
    }

    fn open_inner(
        path: &Path,
        limits: Limits,
        follow: Option<std::time::Duration>,
    ) -> Result<Self, MediaError> {
        limits.validate()?;
        let input = if is_hls(path) {
            open_hls(path)?
        } else {
            open_input_with(path, follow)?
        };
        Self::from_input(path, input, limits, follow.is_some())
    }

    fn from_input(
        path: &Path,
        input: ffm::format::context::Input,
        limits: Limits,
        growing: bool,
    ) -> Result<Self, MediaError> {
        let stream = input
            .streams()
            .best(ffm::media::Type::Video)
            .ok_or_else(|| MediaError::NoVideo(path.into()))?;
        let stream_index = stream.index();
        let orientation = crate::orient::of_stream(&stream);
        let hdr = hdr_of_stream(&stream);
        let tb = stream.time_base();
        let time_base = (tb.numerator() > 0 && tb.denominator() > 0)
            .then(|| (tb.numerator(), tb.denominator()));
        let fr = frame_rate(&stream).ok_or_else(|| MediaError::FrameRate(path.into()))?;
        let declared_frames = u64::try_from(stream.frames()).unwrap_or(0);
        let no_decoder = |e: ffm::Error| MediaError::NotMedia {
            path: path.into(),
            reason: format!("no decoder for its video ({e})"),
        };
        let ctx = ffm::codec::context::Context::from_parameters(stream.parameters())
            .map_err(ff("reading codec parameters"))?;
        crate::probe::check_is_video(path, input.format().name(), ctx.id())?;
        // The declared size, read from a plain single-threaded decoder that decodes nothing:
        // the real one below is opened with FFmpeg's `max_pixels`, which would silently zero a
        // declared size over it instead of letting us name it.
        let declared = ctx.decoder().video().map_err(no_decoder)?;
        let duration = declared_duration(&input, &stream);
        limits.check_declared(
            path,
            declared.width(),
            declared.height(),
            declared_frames,
            duration,
        )?;
        drop(declared);
        let mut ctx = ffm::codec::context::Context::from_parameters(stream.parameters())
            .map_err(ff("reading codec parameters"))?;
        ctx.set_threading(ffm::codec::threading::Config {
            kind: ffm::codec::threading::Type::Frame,
            count: if growing { 0 } else { frame_threads() },
            ..Default::default()
        });
        let codec = ffm::codec::decoder::find(ctx.id())
            .ok_or_else(|| no_decoder(ffm::Error::DecoderNotFound))?;
        let mut options = ffm::Dictionary::new();
        // FFmpeg refuses to allocate a picture over this (mid-stream size changes included).
        options.set("max_pixels", &limits.ffmpeg_max_pixels().to_string());
        let decoder = ctx
            .decoder()
            .open_as_with(codec, options)
            .and_then(|o| o.video())
            .map_err(no_decoder)?;
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
        let pixel_aspect = shown_pixel_aspect(decoder.aspect_ratio(), orientation);
        let colour = crate::Colour::of_decoder(&decoder);
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
            area: AreaShrinker::default(),
            frame_rate: fr,
            declared_frames,
            declared_duration: duration,
            next_index: 0,
            eof_sent: false,
            corrupt_packets: 0,
            time_base,
            last_time: None,
            first_time: None,
            limits,
            stopped: None,
            growing,
            audio: None,
            orientation,
            pixel_aspect,
            colour,
            hdr,
            ahead: None,
        })
    }

    /// The limits this decoder works under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The layout frames come out in.
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// The stream's frame rate.
    pub fn frame_rate(&self) -> Rational {
        self.frame_rate
    }

    /// Luma width and height as displayed: turned by the stream's display matrix (a phone's
    /// portrait recording stored as landscape pictures is as tall as it is shown).
    pub fn size(&self) -> (usize, usize) {
        self.orientation.display_size(
            self.decoder.width() as usize,
            self.decoder.height() as usize,
        )
    }

    /// The shape of a pixel as shown: the stream's sample aspect ratio (a pixel's width over
    /// its height; 64:45 for a 16:9 picture stored in 720x576), turned with the pictures.
    /// 1:1 when the stream declares none, or one outside 1:4 to 4:1 (no real format has one;
    /// a hostile file must not make a ladder four times wider than its pictures).
    pub fn pixel_aspect(&self) -> Rational {
        self.pixel_aspect
    }

    /// The width the pictures are shown at for their height: [`Decoder::size`]'s width times
    /// [`Decoder::pixel_aspect`], rounded (an anamorphic 720x576 16:9 picture is shown 1024
    /// wide). Equal to the width for square pixels.
    pub fn display_width(&self) -> usize {
        let (w, _) = self.size();
        let Rational { num, den } = self.pixel_aspect;
        if num == den {
            return w;
        }
        ((w as f64 * f64::from(num) / f64::from(den)).round() as usize).max(1)
    }

    /// The HDR static metadata of the stream: what its container declares (MP4 `mdcv` and
    /// `clli`, Matroska's colour elements), completed from the first picture's own (HEVC and
    /// H.264 SEI, AV1 metadata OBUs). Called before the first frame is read, it decodes that
    /// picture ahead (the next read returns it); later, it gives what was found by then.
    ///
    /// # Errors
    /// What decoding the first picture fails with ([`Decoder::next_frame`]).
    pub fn hdr_static(&mut self) -> Result<crate::HdrStatic, MediaError> {
        let complete = self.hdr.mastering.is_some() && self.hdr.light.is_some();
        if !complete && self.next_index == 0 && self.ahead.is_none() && self.stopped.is_none() {
            let next = self.next_decoded();
            if let Some(frame) = self.stop_on_limit(next)? {
                self.hdr = self.hdr.or(hdr_of_frame(&frame));
                self.ahead = Some(frame);
            }
        }
        Ok(self.hdr)
    }

    /// The colour description the stream declares (primaries, transfer, matrix, range):
    /// [`crate::Colour::UNSPECIFIED`] when it declares none.
    pub fn colour(&self) -> crate::Colour {
        self.colour
    }

    /// How the stream's display matrix turns its pictures. Every frame and luma this decoder
    /// gives is already turned: [`Orientation::UPRIGHT`] unless the stream asks for a right
    /// angle or a mirror.
    pub fn orientation(&self) -> Orientation {
        self.orientation
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

    /// Also decodes the source's best audio stream while it reads the video: its samples, at
    /// 48 kHz in `channels` (1 or 2; mono for a mono stream and stereo otherwise when `None`),
    /// are taken with [`Decoder::take_audio`]. Returns what the stream is, `None` when the
    /// source has no audio stream. Audio packets that do not decode are skipped; they never
    /// stop the video.
    ///
    /// # Errors
    /// There is no decoder for the stream's codec ([`MediaError::InvalidSetting`]).
    pub fn enable_audio(
        &mut self,
        channels: Option<u16>,
    ) -> Result<Option<crate::live_audio::AudioInfo>, MediaError> {
        self.audio = crate::live_audio::AudioTap::open(&self.input, channels)?;
        Ok(self.audio.as_ref().map(|a| a.info.clone()))
    }

    /// The audio decoded since the last call (see [`Decoder::enable_audio`]); the packets are
    /// read as the video's are, so after each [`Decoder::next_frame`] this holds the audio
    /// the source interleaved up to that frame.
    pub fn take_audio(&mut self) -> Vec<crate::live_audio::PcmChunk> {
        self.audio
            .as_mut()
            .map(crate::live_audio::AudioTap::take)
            .unwrap_or_default()
    }

    /// The input file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame in presentation order, `None` at the end.
    ///
    /// A file that ends well before the frame count its container declares is reported as
    /// [`MediaError::Truncated`], not as a short success.
    ///
    /// A frame larger than the decoder's [`Limits`] (size or pixels), or one that would take
    /// the frames or the duration decoded over them, is not returned: the call fails with
    /// [`MediaError::TooLarge`], and so does every later call: the decoder has stopped.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        self.still_running()?;
        let next = match self.next_decoded() {
            Ok(Some(decoded)) => self.convert(&decoded).map(Some),
            other => other.map(|_| None),
        };
        self.stop_on_limit(next)
    }

    /// The luma of the next frame in presentation order, area-averaged to `width × height` on
    /// the 16-bit scale (an 8-bit code value `v` is `v × 256`, a 10-bit one `v × 64`; no range
    /// conversion), `None` at the end. Much cheaper than [`Decoder::next_frame`] followed by a
    /// downscale: no chroma is touched and nothing is copied before averaging.
    ///
    /// Each output pixel is the mean of the source pixels under it, each weighted by the area
    /// it shares with the output pixel, rounded to the nearest 16-bit unit: the decoder's luma
    /// plane is read in place for planar limited-range YUV at 8 or 10 bits (what video codecs
    /// give), and other layouts go through swscale's area filter first.
    ///
    /// The decoded frame is held to the decoder's [`Limits`] as in [`Decoder::next_frame`], and
    /// so is the size asked for (the caller usually derives it from the input's aspect ratio).
    pub fn next_luma(
        &mut self,
        width: usize,
        height: usize,
    ) -> Result<Option<Vec<u16>>, MediaError> {
        self.still_running()?;
        let next = self.luma(width, height);
        self.stop_on_limit(next)
    }

    fn luma(&mut self, width: usize, height: usize) -> Result<Option<Vec<u16>>, MediaError> {
        let orientation = self.orientation;
        let (sw, sh) = orientation.display_size(width, height);
        match self.pending_luma(width, height)? {
            None => Ok(None),
            Some(Pending::Luma(luma, _)) => Ok(Some(luma)),
            Some(Pending::Plane(decoded, depth, _)) => {
                let stored = match self.area.shrink(&LumaPlane::of(&decoded, depth), sw, sh) {
                    Some(luma) => luma,
                    None => {
                        let (w, h) = (luma_dim(sw)?, luma_dim(sh)?);
                        self.swscale_luma(&decoded, w, h)?
                    }
                };
                Ok(Some(orientation.turn(stored, sw, sh)))
            }
        }
    }

    /// The next frame, admitted under the limits, with the luma size asked of it (as
    /// displayed) checked: its decoded picture when its luma plane can be area-averaged as it
    /// is ([`AreaShrinker`]: plain planar limited-range YUV; the average is then made at the
    /// stored size and turned), otherwise its luma through swscale, already turned.
    fn pending_luma(&mut self, width: usize, height: usize) -> Result<Option<Pending>, MediaError> {
        let Some(decoded) = self.next_decoded()? else {
            return Ok(None);
        };
        let index = self.admit(&decoded)?;
        let (sw, sh) = self.orientation.display_size(width, height);
        let (w, h) = (luma_dim(sw)?, luma_dim(sh)?);
        self.limits.check_picture(
            &self.path,
            || format!("the luma asked of frame {index}"),
            w,
            h,
        )?;
        let time = self.last_time;
        if let Some(depth) = plain_luma_depth(decoded.format())
            && AreaShrinker::accepts(&LumaPlane::of(&decoded, depth), sw, sh)
        {
            return Ok(Some(Pending::Plane(decoded, depth, time)));
        }
        let luma = self.swscale_luma(&decoded, w, h)?;
        let luma = self.orientation.turn(luma, sw, sh);
        Ok(Some(Pending::Luma(luma, time)))
    }

    /// Calls `f` with the luma of each next frame, in presentation order, up to `max` frames
    /// or the end; returns how many frames `f` was given. The luma is the one
    /// [`Decoder::next_luma`] gives, with the frame's presentation time.
    ///
    /// The calling thread only decodes: the area average and `f` run on a worker thread,
    /// which takes the decoded pictures (not copies) through a queue of a few frames, so
    /// decoding goes on while a frame is averaged and memory stays bounded.
    ///
    /// The first error stops both sides: an error of `f` ([`LumaError::Consumer`]) ends the
    /// decoding; a decoding error ([`LumaError::Decoder`], which stops the decoder as in
    /// [`Decoder::next_luma`]) is returned after `f` has had every frame decoded before it.
    pub fn for_each_luma<E, F>(
        &mut self,
        width: usize,
        height: usize,
        max: usize,
        f: F,
    ) -> Result<usize, LumaError<E>>
    where
        E: Send,
        F: FnMut(Luma) -> Result<(), E> + Send,
    {
        self.still_running().map_err(LumaError::Decoder)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Pending>(LUMA_QUEUE);
        let orientation = self.orientation;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || average_each(rx, (width, height), orientation, f));
            let mut sent = 0;
            let mut decoded = Ok(());
            while sent < max {
                let next = self.pending_luma(width, height);
                match self.stop_on_limit(next) {
                    Ok(Some(pending)) => {
                        if tx.send(pending).is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        decoded = Err(e);
                        break;
                    }
                }
            }
            drop(tx);
            match worker.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => decoded.map(|()| sent).map_err(LumaError::Decoder),
            }
        })
    }

    /// The luma of `decoded` area-averaged by swscale (any layout), on the 16-bit scale.
    fn swscale_luma(
        &mut self,
        decoded: &ffm::frame::Video,
        w: u32,
        h: u32,
    ) -> Result<Vec<u16>, MediaError> {
        let (width, height) = (w as usize, h as usize);
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
            c.run(decoded, &mut out).map_err(ff("shrinking the luma"))?;
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
        Ok(luma)
    }

    /// The limit error that stopped the decoder, again.
    fn still_running(&self) -> Result<(), MediaError> {
        match self.stopped.as_ref().and_then(copy_limit_error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Remembers a limit error, so that the decoder stays stopped.
    fn stop_on_limit<T>(&mut self, next: Result<T, MediaError>) -> Result<T, MediaError> {
        if let Err(e) = &next {
            self.stopped = copy_limit_error(e);
        }
        next
    }

    /// Holds a decoded frame to the limits; when it passes, counts it and records its time.
    /// Returns its index.
    fn admit(&mut self, f: &ffm::frame::Video) -> Result<u64, MediaError> {
        let index = self.next_index;
        self.limits.check_picture(
            &self.path,
            || format!("frame {index}"),
            f.width(),
            f.height(),
        )?;
        if index >= self.limits.max_frames {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: self.path.clone(),
                limit: LimitKind::Frames,
                what: "the decoded frame count".into(),
                value: format!("at least {}", index.saturating_add(1)),
                max: self.limits.max_frames.to_string(),
            })));
        }
        let time = self.time_of(f);
        if let Some(t) = time {
            self.first_time.get_or_insert(t);
        }
        let frame = 1.0 / self.frame_rate.as_f64();
        let elapsed = match (time, self.first_time) {
            (Some(t), Some(first)) => t - first,
            _ => index as f64 * frame,
        };
        let decoded = elapsed + frame;
        // A microsecond of slack: 10 frames at 10 fps fit in 1 s despite rounding.
        if decoded > self.limits.max_duration_s + 1e-6 {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: self.path.clone(),
                limit: LimitKind::Duration,
                what: "the decoded duration".into(),
                value: format!("{decoded:.3} s at frame {index}"),
                max: format!("{:.3} s", self.limits.max_duration_s),
            })));
        }
        self.next_index += 1;
        self.last_time = time;
        Ok(index)
    }

    fn time_of(&self, f: &ffm::frame::Video) -> Option<f64> {
        match (f.timestamp(), self.time_base) {
            (Some(ts), Some((n, d))) => Some(ts as f64 * f64::from(n) / f64::from(d)),
            _ => None,
        }
    }

    fn next_decoded(&mut self) -> Result<Option<ffm::frame::Video>, MediaError> {
        if let Some(frame) = self.ahead.take() {
            return Ok(Some(frame));
        }
        let mut decoded = ffm::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => return Ok(Some(decoded)),
                Err(ffm::Error::Eof) => {
                    self.check_complete()?;
                    return Ok(None);
                }
                Err(ffm::Error::Other { errno }) if errno == ffm::util::error::EAGAIN => {}
                Err(e) => {
                    self.picture_within_limits()?;
                    return Err(self.corrupt(format!("decoder error: {e}")));
                }
            }
            if self.eof_sent {
                self.check_complete()?;
                return Ok(None);
            }
            let mut packet = ffm::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        if let Some(tap) = self.audio.as_mut()
                            && tap.index() == packet.stream()
                        {
                            tap.packet(&packet);
                        }
                        continue;
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(ffm::Error::InvalidData) => {
                            self.picture_within_limits()?;
                            self.corrupt_packets += 1;
                            if self.corrupt_packets > 8 {
                                return Err(self.corrupt("more than 8 undecodable packets".into()));
                            }
                        }
                        Err(e) => {
                            self.picture_within_limits()?;
                            return Err(self.corrupt(format!("decoder rejected a packet: {e}")));
                        }
                    }
                }
                Err(e) if e == ffm::Error::Eof || (self.growing && is_idle_end(e)) => {
                    if let Err(e) = self.decoder.send_eof() {
                        self.picture_within_limits()?;
                        return Err(ff("flushing the decoder")(e));
                    }
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

    /// After a decoder failure: when the picture size the decoder last set up is over the
    /// limits, that is the reason to report (FFmpeg refuses to allocate a picture over
    /// [`Limits::max_pixels`] plus margin, the pictures before it are lost with it).
    fn picture_within_limits(&self) -> Result<(), MediaError> {
        let decoded = self.next_index;
        self.limits.check_picture(
            &self.path,
            || format!("the picture the stream switches to after {decoded} frames"),
            self.decoder.width(),
            self.decoder.height(),
        )
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
        // truncation loses many. A sparse stream (AVI "drop" chunks: a picture that repeats is
        // not coded again) declares one frame per interval and decodes fewer: it is whole when
        // its frames reach the declared duration.
        let span = match (self.first_time, self.last_time) {
            (Some(first), Some(last)) => last - first + 1.0 / self.frame_rate.as_f64(),
            _ => 0.0,
        };
        let reaches_the_end = self.declared_duration > 0.0 && span >= 0.95 * self.declared_duration;
        if want > 0 && got + 2 < want && (got as f64) < 0.98 * want as f64 && !reaches_the_end {
            return Err(MediaError::Truncated {
                path: self.path.clone(),
                detail: format!("decoded {got} frames but the container declares {want}"),
            });
        }
        Ok(())
    }

    fn convert(&mut self, f: &ffm::frame::Video) -> Result<VideoFrame, MediaError> {
        let index = self.admit(f)?;
        let target = self.layout.ff();
        if f.format() == target {
            return Ok(VideoFrame::from_ff(f, self.layout, index).turned(self.orientation));
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
        Ok(VideoFrame::from_ff(&out, self.layout, index).turned(self.orientation))
    }
}

/// The pixel aspect a stream declares (`sar`, FFmpeg's sample aspect ratio), as shown after
/// `orientation`: 1:1 when it declares none or one outside 1:4 to 4:1.
fn shown_pixel_aspect(sar: ffm::Rational, orientation: Orientation) -> Rational {
    let (num, den) = (sar.numerator(), sar.denominator());
    let plausible = num > 0 && den > 0 && {
        let r = f64::from(num) / f64::from(den);
        (0.25..=4.0).contains(&r)
    };
    match (plausible, orientation.swaps_axes()) {
        (false, _) => Rational::new(1, 1),
        (true, false) => Rational::new(num, den),
        (true, true) => Rational::new(den, num),
    }
}

/// Frames queued between the thread that decodes and the one that averages
/// ([`Decoder::for_each_luma`]).
const LUMA_QUEUE: usize = 4;

/// The luma of one frame, as [`Decoder::for_each_luma`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Luma {
    /// The samples, row by row, on the 16-bit scale (as [`Decoder::next_luma`]).
    pub samples: Vec<u16>,
    /// Presentation time in seconds, from the container's timestamps (as
    /// [`Decoder::last_time`]); `None` when the frame has none.
    pub time: Option<f64>,
}

/// Why [`Decoder::for_each_luma`] stopped early.
#[derive(Debug)]
pub enum LumaError<E> {
    /// Decoding failed.
    Decoder(MediaError),
    /// The consumer failed.
    Consumer(E),
}

/// A frame on its way to the averaging thread: its decoded picture and luma depth, or a luma
/// already made by swscale; with its presentation time.
enum Pending {
    Plane(ffm::frame::Video, u8, Option<f64>),
    Luma(Vec<u16>, Option<f64>),
}

/// The averaging side of [`Decoder::for_each_luma`]: every pending frame averaged to the
/// displayed `width × height`, turned by `orientation`, and given to `f`, in order, until the
/// queue closes or `f` fails.
fn average_each<E>(
    rx: std::sync::mpsc::Receiver<Pending>,
    (width, height): (usize, usize),
    orientation: Orientation,
    mut f: impl FnMut(Luma) -> Result<(), E>,
) -> Result<(), LumaError<E>> {
    let (width, height) = orientation.display_size(width, height);
    let mut area = AreaShrinker::default();
    for pending in rx {
        let (samples, time) = match pending {
            Pending::Luma(samples, time) => (samples, time),
            Pending::Plane(decoded, depth, time) => {
                let plane = LumaPlane::of(&decoded, depth);
                // `pending_luma` only sends planes the shrinker accepts.
                let samples = area.shrink(&plane, width, height).ok_or_else(|| {
                    LumaError::Decoder(MediaError::InvalidSetting(format!(
                        "luma of {}x{} cannot be averaged to {width}x{height}",
                        plane.width, plane.height
                    )))
                })?;
                (orientation.turn(samples, width, height), time)
            }
        };
        f(Luma { samples, time }).map_err(LumaError::Consumer)?;
    }
    Ok(())
}

/// A luma size as FFmpeg takes it (1 to 2^32 − 1).
fn luma_dim(v: usize) -> Result<u32, MediaError> {
    u32::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
        MediaError::InvalidSetting(format!("luma size {v} out of range (1 to 2^32)"))
    })
}

/// The luma bit depth of a planar limited-range YUV layout whose first plane is the luma,
/// one sample per pixel (8-bit bytes or 10-bit little-endian words); `None` for any other layout
/// (full-range `yuvj`, packed, semi-planar, RGB, big-endian…).
fn plain_luma_depth(format: ffm::format::Pixel) -> Option<u8> {
    use ffm::format::Pixel as P;
    match format {
        P::YUV420P | P::YUV422P | P::YUV444P => Some(8),
        P::YUV420P10LE | P::YUV422P10LE | P::YUV444P10LE => Some(10),
        _ => None,
    }
}

/// A luma plane as the decoder holds it.
struct LumaPlane<'a> {
    data: &'a [u8],
    /// Bytes per row.
    stride: usize,
    width: usize,
    height: usize,
    /// 8 (one byte per sample) or 10 (two bytes, little-endian).
    depth: u8,
}

impl<'a> LumaPlane<'a> {
    /// The luma plane of `decoded`, whose samples have `depth` bits.
    fn of(decoded: &'a ffm::frame::Video, depth: u8) -> Self {
        Self {
            data: decoded.data(0),
            stride: decoded.stride(0),
            width: decoded.width() as usize,
            height: decoded.height() as usize,
            depth,
        }
    }

    /// Sample `x` of row `y`, when the plane holds it.
    fn row(&self, y: usize) -> Option<&[u8]> {
        let bytes = if self.depth > 8 { 2 } else { 1 };
        let start = y.checked_mul(self.stride)?;
        self.data
            .get(start..start.checked_add(self.width.checked_mul(bytes)?)?)
    }
}

/// The overlap of each output pixel with the source pixels along one axis, in units of
/// `1 / out` source pixel: output pixel `o` spans `[o × src, (o + 1) × src)` and source pixel
/// `s` spans `[s × out, (s + 1) × out)`, so the weights of one output pixel sum to `src`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct AxisWeights {
    src: usize,
    out: usize,
    /// Per output pixel: its first source pixel and the weights from there on.
    taps: Vec<(usize, Vec<u32>)>,
}

impl AxisWeights {
    fn new(src: usize, out: usize) -> Option<Self> {
        let taps = (0..out)
            .map(|o| {
                let (lo, hi) = (o.checked_mul(src)?, (o + 1).checked_mul(src)?);
                let (first, last) = (lo / out, (hi - 1) / out);
                let weights = (first..=last)
                    .map(|s| {
                        let (a, b) = (s * out, (s + 1) * out);
                        u32::try_from(b.min(hi) - a.max(lo)).ok()
                    })
                    .collect::<Option<Vec<u32>>>()?;
                Some((first, weights))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { src, out, taps })
    }
}

/// Frame threads of a decoder that reads a whole file: twice the cores, plus one (FFmpeg's own
/// count is the cores plus one; 0 leaves it to FFmpeg). A frame thread that waits for rows of
/// its reference pictures leaves its core idle, and more frames in flight fill it: on 2 cores,
/// 5 threads decode a 720p H.264 file about 3 % faster than 3 (`docs/BENCHMARKS.md` §6.2). The
/// decoded pictures are the same whatever the count. A live or growing source keeps FFmpeg's
/// count: each frame thread delays the pictures by one frame.
fn frame_threads() -> usize {
    match std::thread::available_parallelism().map_or(1, std::num::NonZero::get) {
        0 | 1 => 0,
        n => n.saturating_mul(2).saturating_add(1).min(16),
    }
}

/// Area averaging of a luma plane, with the weights of the last size kept.
#[derive(Debug, Default)]
struct AreaShrinker {
    columns: AxisWeights,
    rows: AxisWeights,
    /// Column sums of the source rows an output row covers whole.
    whole: Vec<u32>,
    /// Weighted column sums of the source rows it covers in part.
    part: Vec<u32>,
    /// Column sums of up to [`NARROW_ROWS`] whole 8-bit rows, before they join `whole`.
    narrow: Vec<u16>,
}

/// Whole 8-bit rows summed in 16 bits before they are added to the 32-bit sums (257 × 255 ≤
/// 65 535): twice the samples per vector instruction.
const NARROW_ROWS: usize = 257;

/// `n / d` rounded down, exactly, by a floating-point estimate corrected once each way (no
/// 64-bit division: a few times cheaper per output pixel); `n < 2^53`, `d > 0`.
fn div_exact(n: u64, d: u64, inv: f64) -> u64 {
    // Through `i64`, which converts to and from `f64` in one instruction (`n < 2^53`).
    let q = ((n as i64) as f64 * inv) as i64 as u64;
    let p = q.saturating_mul(d);
    if p > n {
        q - 1
    } else if n - p >= d {
        q + 1
    } else {
        q
    }
}

impl AreaShrinker {
    /// Whether [`AreaShrinker::shrink`] averages `plane` to `width × height`: the sizes are in
    /// its range and the plane holds every row.
    fn accepts(plane: &LumaPlane<'_>, width: usize, height: usize) -> bool {
        let (sw, sh) = (plane.width, plane.height);
        // Weighted sums stay exact in 64 bits far beyond these sizes.
        let sizes = sw > 0
            && sh > 0
            && sw <= 1 << 16
            && sh <= 1 << 16
            && width > 0
            && height > 0
            && width <= 1 << 16
            && height <= 1 << 16;
        sizes && plane.row(sh - 1).is_some()
    }

    /// [`AreaShrinker::shrink`] of a plane whose sizes are whole multiples of the output's:
    /// `kx × ky` source pixels under each output pixel (for 8 bits, `ky` ≤ [`NARROW_ROWS`]),
    /// summed as they are, then scaled and rounded as the general path does, from the same
    /// integers (there a source pixel under an output pixel weighs `width × height`).
    fn shrink_whole(
        &mut self,
        plane: &LumaPlane<'_>,
        (width, height): (usize, usize),
        (kx, ky): (usize, usize),
        unit: u64,
        total: u64,
    ) -> Option<Vec<u16>> {
        let weight = (width as u64) * (height as u64);
        let inv_total = 1.0 / total as f64;
        let scaled = |sum: u64| {
            let v = div_exact(sum * weight * unit + total / 2, total, inv_total);
            u16::try_from(v).unwrap_or(u16::MAX)
        };
        let mut out = Vec::with_capacity(width * height);
        if plane.depth <= 8 {
            sum_whole(&mut self.narrow, plane, height, (kx, ky), add_row, |sum| {
                out.push(scaled(sum));
            })?;
        } else {
            // Column sums of at most 2^16 rows of 16-bit samples: 32 bits.
            sum_whole(
                &mut self.whole,
                plane,
                height,
                (kx, ky),
                add_row_wide,
                |sum| {
                    out.push(scaled(sum));
                },
            )?;
        }
        Some(out)
    }

    /// `plane` averaged to `width × height` on the 16-bit scale; `None` when the sizes are out
    /// of this path's range (the caller then uses swscale).
    fn shrink(&mut self, plane: &LumaPlane<'_>, width: usize, height: usize) -> Option<Vec<u16>> {
        let (sw, sh) = (plane.width, plane.height);
        if !Self::accepts(plane, width, height) {
            return None;
        }
        if self.columns.src != sw || self.columns.out != width {
            self.columns = AxisWeights::new(sw, width)?;
        }
        if self.rows.src != sh || self.rows.out != height {
            self.rows = AxisWeights::new(sh, height)?;
        }
        // Sum of weights of one output pixel: sw × sh (units of 1/(width × height) pixel²);
        // the 16-bit scale multiplies a code value by 2^(16 − depth).
        let unit = 1u64 << (16 - u32::from(plane.depth.min(16)));
        let total = (sw as u64) * (sh as u64);
        let (kx, ky) = (sw / width, sh / height);
        if kx * width == sw && ky * height == sh && (plane.depth > 8 || ky <= NARROW_ROWS) {
            return self.shrink_whole(plane, (width, height), (kx, ky), unit, total);
        }
        // Column sums of the rows under one output row: rows it covers whole (weight
        // `height`) are added as they are, the partly covered ones with their weight; both fit
        // in 32 bits (at most 1023 × 2^16 × 2).
        let full_row = u32::try_from(height).ok()?;
        self.whole.clear();
        self.whole.resize(sw, 0);
        self.part.clear();
        self.part.resize(sw, 0);
        self.narrow.clear();
        self.narrow.resize(sw, 0);
        let inv_total = 1.0 / total as f64;
        let mut out = Vec::with_capacity(width * height);
        for (first_row, row_weights) in &self.rows.taps {
            self.whole.fill(0);
            self.part.fill(0);
            let mut any_part = false;
            // Whole 8-bit rows summed in `narrow` since it was last added to `whole`.
            let mut narrowed = 0;
            for (k, &wy) in row_weights.iter().enumerate() {
                let row = plane.row(first_row + k)?;
                if plane.depth <= 8 && wy == full_row {
                    add_row(&mut self.narrow, row, narrowed == 0);
                    narrowed += 1;
                    if narrowed == NARROW_ROWS {
                        widen_into(&mut self.whole, &self.narrow);
                        narrowed = 0;
                    }
                    continue;
                }
                let sums = if wy == full_row {
                    &mut self.whole
                } else {
                    any_part = true;
                    &mut self.part
                };
                match (plane.depth > 8, wy == full_row) {
                    (false, true) => sums
                        .iter_mut()
                        .zip(row)
                        .for_each(|(s, &v)| *s += u32::from(v)),
                    (false, false) => sums
                        .iter_mut()
                        .zip(row)
                        .for_each(|(s, &v)| *s += u32::from(v) * wy),
                    (true, whole) => {
                        let m = if whole { 1 } else { wy };
                        sums.iter_mut().zip(row.chunks_exact(2)).for_each(|(s, b)| {
                            *s += u32::from(u16::from_le_bytes([b[0], b[1]])) * m
                        });
                    }
                }
            }
            if narrowed > 0 {
                widen_into(&mut self.whole, &self.narrow);
            }
            // One column sum per source column (at most 1023 × the source height: 32 bits).
            if any_part {
                for (w, &p) in self.whole.iter_mut().zip(&self.part) {
                    *w = *w * full_row + p;
                }
            } else {
                self.whole.iter_mut().for_each(|w| *w *= full_row);
            }
            let full_column = u64::from(u32::try_from(width).ok()?);
            for (first, weights) in &self.columns.taps {
                let cols = self.whole.get(*first..first + weights.len())?;
                // Every column between the first and the last is covered whole.
                let sum = match (cols, weights.as_slice()) {
                    ([c], [w]) => u64::from(*c) * u64::from(*w),
                    ([c0, inner @ .., cn], [w0, .., wn]) => {
                        let inner: u64 = inner.iter().map(|&c| u64::from(c)).sum();
                        u64::from(*c0) * u64::from(*w0)
                            + inner * full_column
                            + u64::from(*cn) * u64::from(*wn)
                    }
                    _ => 0,
                };
                // Rounded to the nearest unit of the 16-bit scale.
                let v = div_exact(sum * unit + total / 2, total, inv_total);
                out.push(u16::try_from(v).unwrap_or(u16::MAX));
            }
        }
        Some(out)
    }
}

/// For each of `height` output rows, sums its `ky` source rows of `plane` column by column into
/// `sums` (with `add`), then hands `each` the sum of every `kx` columns, left to right: the
/// source pixels under each output pixel of a whole-multiple size. `None` when the plane lacks
/// a row.
fn sum_whole<S: Copy + Default + Into<u64>>(
    sums: &mut Vec<S>,
    plane: &LumaPlane<'_>,
    height: usize,
    (kx, ky): (usize, usize),
    add: fn(&mut [S], &[u8], bool),
    mut each: impl FnMut(u64),
) -> Option<()> {
    sums.clear();
    sums.resize(plane.width, S::default());
    for oy in 0..height {
        for k in 0..ky {
            add(sums, plane.row(oy * ky + k)?, k == 0);
        }
        for under in sums.chunks_exact(kx) {
            each(under.iter().map(|&v| v.into()).sum());
        }
    }
    Some(())
}

/// Adds an 8-bit row to 16-bit column sums (or starts them with it, when `first`).
fn add_row(sums: &mut [u16], row: &[u8], first: bool) {
    if first {
        sums.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s = u16::from(v));
    } else {
        sums.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s += u16::from(v));
    }
}

/// Adds a row of 16-bit little-endian samples to 32-bit column sums (or starts them with it,
/// when `first`).
fn add_row_wide(sums: &mut [u32], row: &[u8], first: bool) {
    let samples = row
        .chunks_exact(2)
        .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])));
    if first {
        sums.iter_mut().zip(samples).for_each(|(s, v)| *s = v);
    } else {
        sums.iter_mut().zip(samples).for_each(|(s, v)| *s += v);
    }
}

/// `sums += narrow`, column by column.
fn widen_into(sums: &mut [u32], narrow: &[u16]) {
    sums.iter_mut()
        .zip(narrow)
        .for_each(|(s, &v)| *s += u32::from(v));
}

/// A copy of a [`MediaError::TooLarge`] (`MediaError` is not `Clone`), `None` for any other error.
fn copy_limit_error(e: &MediaError) -> Option<MediaError> {
    match e {
        MediaError::TooLarge(o) => Some(MediaError::TooLarge(o.clone())),
        _ => None,
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

/// The network protocols a live source may use ([`Decoder::open_live`]); `tls`, `crypto` and
/// `rtmps`-style wrappers are allowed only beneath them.
pub const LIVE_PROTOCOLS: &str = "udp,rtp,srt,rtmp,rtmps,tcp";

/// Opens a live network source with FFmpeg: the live protocols (and what they sit on) only, the
/// self-contained demuxers only, and `stall` as the read timeout.
fn open_live_input(
    url: &str,
    stall: std::time::Duration,
) -> Result<ffm::format::context::Input, MediaError> {
    crate::init();
    let mut opts = ffm::Dictionary::new();
    opts.set(
        "protocol_whitelist",
        &format!("{LIVE_PROTOCOLS},tls,crypto"),
    );
    opts.set("format_whitelist", crate::probe::FILE_DEMUXERS);
    let micros = stall.as_micros().max(1).to_string();
    opts.set("rw_timeout", &micros);
    // UDP: a reader that falls behind drops datagrams instead of failing, and the wait for the
    // first packet is bounded too.
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if scheme.eq_ignore_ascii_case("udp") || scheme.eq_ignore_ascii_case("rtp") {
        opts.set("overrun_nonfatal", "1");
        opts.set("timeout", &micros);
    }
    ffm::format::input_with_dictionary(&url, opts).map_err(|e| MediaError::NotMedia {
        path: url.into(),
        reason: format!("cannot open the live source ({e})"),
    })
}

/// The error FFmpeg's file protocol gives when a followed file stops growing (its
/// `rw_timeout` passed): EIO, or ETIMEDOUT in some versions.
fn is_idle_end(e: ffm::Error) -> bool {
    matches!(e, ffm::Error::Other { errno } if errno == ffm::util::error::EIO || errno == ffm::util::error::ETIMEDOUT)
}

/// The HDR static metadata a stream's container declares.
fn hdr_of_stream(stream: &ffm::format::stream::Stream<'_>) -> crate::HdrStatic {
    use ffm::codec::packet::side_data::Type;
    let find = |kind: Type| {
        stream
            .side_data()
            .find(|s| s.kind() == kind)
            .map(|s| s.data().to_vec())
    };
    let mastering = find(Type::MasteringDisplayMetadata);
    let light = find(Type::ContentLightLevel);
    crate::HdrStatic::from_side_data(mastering.as_deref(), light.as_deref())
}

/// The HDR static metadata a decoded picture carries.
fn hdr_of_frame(frame: &ffm::frame::Video) -> crate::HdrStatic {
    use ffm::frame::side_data::Type;
    let mastering = frame.side_data(Type::MasteringDisplayMetadata);
    let light = frame.side_data(Type::ContentLightLevel);
    crate::HdrStatic::from_side_data(
        mastering.as_ref().map(|s| s.data()),
        light.as_ref().map(|s| s.data()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The in-place area average against swscale's area filter on real frames: the same
    /// picture to within rounding, at an integer and at a fractional ratio.
    #[test]
    fn area_luma_matches_swscale_area_filter() {
        let clip = leaktrace_testkit::corpus("bikes.mp4");
        let mut dec = Decoder::open(&clip).unwrap();
        let (sw, sh) = dec.size();
        let mut checked = 0;
        while let Some(decoded) = dec.next_decoded().unwrap() {
            if checked == 12 {
                break;
            }
            for (w, h) in [(sw / 5, sh / 5), (256, 144), (97, 61)] {
                let depth = plain_luma_depth(decoded.format()).expect("a planar 4:2:0 clip");
                let ours = dec
                    .area
                    .shrink(&LumaPlane::of(&decoded, depth), w, h)
                    .expect("sizes in range");
                let theirs = dec.swscale_luma(&decoded, w as u32, h as u32).unwrap();
                assert_eq!(ours.len(), theirs.len());
                let diff: Vec<i32> = ours
                    .iter()
                    .zip(&theirs)
                    .map(|(&a, &b)| i32::from(a) - i32::from(b))
                    .collect();
                let max = diff.iter().map(|d| d.abs()).max().unwrap();
                let mean = diff.iter().map(|&d| f64::from(d)).sum::<f64>() / diff.len() as f64;
                let mad = diff.iter().map(|&d| f64::from(d.abs())).sum::<f64>() / diff.len() as f64;
                // swscale's 14-bit filter coefficients round differently: a few units of
                // 1/256 grey level at most, and no bias.
                assert!(max <= 8, "{sw}x{sh} -> {w}x{h}: differs by up to {max}");
                assert!(
                    mean.abs() < 0.25 && mad < 0.5,
                    "{sw}x{sh} -> {w}x{h}: mean {mean}, mad {mad}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 12);
    }

    /// The area average against its definition (exact overlap weights, rounded to nearest),
    /// on synthetic 8- and 10-bit planes: integer and fractional ratios, and a plane tall
    /// enough that more than [`NARROW_ROWS`] whole rows meet in one output row.
    #[test]
    fn area_average_matches_its_definition() {
        for (sw, sh, w, h, depth) in [
            (40, 30, 8, 6, 8),
            (37, 29, 7, 5, 8),
            // Whole multiples (one path of their own at 8 bits), one a single column wide.
            (12, 8, 3, 2, 8),
            (35, 14, 7, 7, 8),
            (30, 21, 1, 3, 8),
            (20, 15, 4, 3, 10),
            (6, 700, 3, 2, 10),
            (13, 600, 3, 1, 8),
            (9, 700, 2, 2, 8),
            (21, 17, 5, 4, 10),
            (16, 9, 16, 9, 8),
        ] {
            let bytes = if depth > 8 { 2 } else { 1 };
            let stride = sw * bytes + 5;
            let max = (1u32 << depth) - 1;
            let value = |x: usize, y: usize| ((x * 7919 + y * 104_729 + x * y) as u32) % (max + 1);
            let mut data = vec![0u8; stride * sh];
            for y in 0..sh {
                for x in 0..sw {
                    let v = value(x, y);
                    if bytes == 2 {
                        data[y * stride + 2 * x..y * stride + 2 * x + 2]
                            .copy_from_slice(&(v as u16).to_le_bytes());
                    } else {
                        data[y * stride + x] = v as u8;
                    }
                }
            }
            let plane = LumaPlane {
                data: &data,
                stride,
                width: sw,
                height: sh,
                depth: depth as u8,
            };
            let got = AreaShrinker::default().shrink(&plane, w, h).unwrap();
            let overlap = |o: usize, s: usize, src: usize, out: usize| -> u128 {
                let (lo, hi) = (o * src, (o + 1) * src);
                let (a, b) = (s * out, (s + 1) * out);
                b.min(hi).saturating_sub(a.max(lo)) as u128
            };
            let unit = 1u128 << (16 - depth);
            let total = (sw * sh) as u128;
            for oy in 0..h {
                for ox in 0..w {
                    let mut sum = 0u128;
                    for y in 0..sh {
                        for x in 0..sw {
                            sum += overlap(ox, x, sw, w)
                                * overlap(oy, y, sh, h)
                                * u128::from(value(x, y));
                        }
                    }
                    let want = (sum * unit + total / 2) / total;
                    assert_eq!(
                        u128::from(got[oy * w + ox]),
                        want,
                        "{sw}x{sh} -> {w}x{h} at ({ox}, {oy})"
                    );
                }
            }
        }
    }

    #[test]
    fn div_exact_is_integer_division() {
        let mut n = 1u64;
        for d in [1u64, 2, 3, 7, 921_600, 1 << 32, (1 << 32) - 1, 123_456_789] {
            let inv = 1.0 / d as f64;
            for k in [
                0u64,
                1,
                2,
                d - 1,
                d,
                d + 1,
                5 * d - 1,
                5 * d,
                (1 << 48) / d * d,
            ] {
                assert_eq!(div_exact(k, d, inv), k / d, "{k} / {d}");
            }
            for _ in 0..10_000 {
                n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let k = n >> 15;
                assert_eq!(div_exact(k, d, inv), k / d, "{k} / {d}");
            }
        }
    }

    /// The luma handed to a worker thread is the luma `next_luma` gives, frame for frame, with
    /// the same times; `max` stops it, and the next call goes on where it stopped.
    #[test]
    fn for_each_luma_gives_what_next_luma_gives() {
        let clip = leaktrace_testkit::corpus("trailer_bbb_20s.mp4");
        let (w, h) = (256, 144);
        let mut one = Decoder::open(&clip).unwrap();
        let mut want = Vec::new();
        while let Some(l) = one.next_luma(w, h).unwrap() {
            want.push(Luma {
                samples: l,
                time: one.last_time(),
            });
        }
        let mut dec = Decoder::open(&clip).unwrap();
        let mut got = Vec::new();
        let first = dec
            .for_each_luma(w, h, 100, |l| {
                got.push(l);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(first, 100);
        let rest = dec
            .for_each_luma(w, h, usize::MAX, |l| {
                got.push(l);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(first + rest, want.len());
        assert!(got == want, "the lumas differ");
        assert_eq!(dec.for_each_luma(w, h, 5, |_| Ok::<(), ()>(())).unwrap(), 0);

        // The consumer's error stops the decoding.
        let mut dec = Decoder::open(&clip).unwrap();
        let mut seen = 0;
        let stopped = dec.for_each_luma(w, h, usize::MAX, |_| {
            seen += 1;
            if seen == 3 { Err("full") } else { Ok(()) }
        });
        assert!(matches!(stopped, Err(LumaError::Consumer("full"))));
        assert_eq!(seen, 3);
    }
}
