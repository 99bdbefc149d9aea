//! Audio tracks of a mezzanine as CMAF audio renditions: AAC-LC at 48 kHz, cut into segments
//! at the video's position boundaries.
//!
//! Audio is the same for every viewer (it carries no mark). Each track is either **copied**,
//! when it already is AAC-LC at 48 kHz, or **encoded** with FFmpeg's AAC encoder: decoded,
//! resampled to 48 kHz (stereo; the channel layout is kept when the source has more channels
//! and the encoder has that layout), and encoded at the rate asked for.
//!
//! Timing follows the video: time 0 is the first video frame. Audio that starts later is led
//! by silence, audio that starts earlier is trimmed, and the track is made exactly as long as
//! the video (padded with silence, or cut). The encoder's priming (one frame of 1024 samples)
//! is absorbed by starting its input 1024 samples into the source, so sample *t* of the output
//! is sample *t* of the source, with no edit list. A copied track's priming packets (those
//! before time 0) are dropped.
//!
//! Segment *p* holds the AAC frames that start in the video's position *p* (a frame belongs
//! to the segment its first sample falls in); every segment holds at least one frame.

use crate::cmaf::{self, SYNC_SAMPLE, SampleInfo};
use crate::{Limits, MediaError, ff};
use ffmpeg_next as ffm;
use std::collections::VecDeque;
use std::path::Path;

/// Sample rate of every audio rendition.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per AAC-LC frame.
pub const AAC_FRAME: u32 = 1024;
/// Input sample rates accepted (Hz).
pub const INPUT_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// Most channels of an input track (7.1).
pub const MAX_CHANNELS: u16 = 8;
/// Most audio tracks of one mezzanine.
pub const MAX_TRACKS: usize = 16;
/// Bitrates accepted for a stereo pair (bit/s); other layouts scale it by channels / 2.
pub const BITRATES: std::ops::RangeInclusive<u32> = 32_000..=512_000;

/// What a track is for (from the container's disposition flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioRole {
    /// The main programme audio.
    Main,
    /// Another mix or language of the programme.
    Alternate,
    /// Commentary.
    Commentary,
    /// Audio description for viewers who cannot see the picture.
    Description,
    /// A dubbed language.
    Dub,
}

impl AudioRole {
    /// The DASH role value (`urn:mpeg:dash:role:2011`).
    pub fn dash(self) -> &'static str {
        match self {
            AudioRole::Main => "main",
            AudioRole::Alternate => "alternate",
            AudioRole::Commentary => "commentary",
            AudioRole::Description => "description",
            AudioRole::Dub => "dub",
        }
    }
}

/// An audio track of a media file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioStream {
    /// Stream index in the file.
    pub index: usize,
    /// FFmpeg's codec name (`aac`, `mp3`, `ac3`, …).
    pub codec: String,
    /// The stream's `language` tag, if it has one.
    pub language: Option<String>,
    /// The stream's `title` tag, if it has one.
    pub title: Option<String>,
    /// What the track is for.
    pub role: AudioRole,
    /// Whether the container marks it as the default track.
    pub default: bool,
    /// Sample rate (Hz).
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Whether it is AAC-LC at [`SAMPLE_RATE`], packaged without re-encoding.
    pub copyable: bool,
}

fn bad_audio(path: &Path, index: usize, reason: String) -> MediaError {
    MediaError::BadAudio {
        path: path.into(),
        stream: index,
        reason,
    }
}

/// Lists the audio tracks of `path` and checks each can be packaged: at most [`MAX_TRACKS`]
/// tracks, a sample rate in [`INPUT_RATES`], 1 to [`MAX_CHANNELS`] channels, and a decoder
/// in this FFmpeg.
///
/// # Errors
/// The file cannot be opened ([`MediaError::NotMedia`], …), or a track is out of range
/// ([`MediaError::BadAudio`], naming the track and the valid range).
pub fn audio_streams(path: &Path, limits: &Limits) -> Result<Vec<AudioStream>, MediaError> {
    limits.validate()?;
    if crate::decode::is_hls(path) {
        return Ok(Vec::new());
    }
    let input = crate::probe::open_input(path)?;
    // Containers that hold AAC as raw frames with its AudioSpecificConfig out of band (MPEG-TS
    // and ADTS carry framed AAC, which is re-encoded).
    let container = input.format().name().to_owned();
    let raw_aac = container.starts_with("mov") || container.starts_with("matroska");
    // Counted before any decoder is opened: a file may declare thousands of streams.
    let audio: Vec<usize> = input
        .streams()
        .filter(|s| s.parameters().medium() == ffm::media::Type::Audio)
        .map(|s| s.index())
        .collect();
    if let Some(&extra) = audio.get(MAX_TRACKS) {
        return Err(bad_audio(
            path,
            extra,
            format!(
                "{} audio tracks (at most {MAX_TRACKS} are packaged)",
                audio.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for s in input.streams() {
        let params = s.parameters();
        if params.medium() != ffm::media::Type::Audio {
            continue;
        }
        let index = s.index();
        let id = params.id();
        let codec = format!("{id:?}").to_ascii_lowercase();
        let ctx = ffm::codec::context::Context::from_parameters(params)
            .map_err(|e| bad_audio(path, index, format!("unreadable parameters: {e}")))?;
        let decoder = ctx
            .decoder()
            .audio()
            .map_err(|_| bad_audio(path, index, format!("no {codec} decoder in this FFmpeg")))?;
        let sample_rate = decoder.rate();
        let channels = decoder.channels();
        if !INPUT_RATES.contains(&sample_rate) {
            return Err(bad_audio(
                path,
                index,
                format!(
                    "sample rate {sample_rate} Hz (expected {} to {} Hz)",
                    INPUT_RATES.start(),
                    INPUT_RATES.end()
                ),
            ));
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(bad_audio(
                path,
                index,
                format!("{channels} channels (expected 1 to {MAX_CHANNELS})"),
            ));
        }
        let disposition = s.disposition();
        use ffm::format::stream::Disposition as D;
        let role = if disposition.contains(D::COMMENT) {
            AudioRole::Commentary
        } else if disposition.contains(D::VISUAL_IMPAIRED) {
            AudioRole::Description
        } else if disposition.contains(D::DUB) {
            AudioRole::Dub
        } else if out.is_empty() || disposition.contains(D::DEFAULT) {
            AudioRole::Main
        } else {
            AudioRole::Alternate
        };
        let aac_lc = id == ffm::codec::Id::AAC
            && matches!(
                decoder.profile(),
                ffm::codec::Profile::AAC(ffm::codec::profile::AAC::Low)
            );
        let meta = s.metadata();
        out.push(AudioStream {
            index,
            codec,
            language: meta.get("language").map(str::to_owned),
            title: meta.get("title").map(str::to_owned),
            role,
            default: disposition.contains(D::DEFAULT),
            sample_rate,
            channels,
            copyable: aac_lc && raw_aac && sample_rate == SAMPLE_RATE,
        });
    }

    Ok(out)
}

/// Checks a stereo bitrate against [`BITRATES`].
///
/// # Errors
/// [`MediaError::InvalidSetting`], naming the range.
pub fn check_bitrate(bitrate: u32) -> Result<(), MediaError> {
    if BITRATES.contains(&bitrate) {
        return Ok(());
    }
    Err(MediaError::InvalidSetting(format!(
        "audio bitrate {bitrate} bit/s (expected {} to {})",
        BITRATES.start(),
        BITRATES.end()
    )))
}

/// How to package one audio track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioConfig {
    /// Bitrate of a stereo encode (bit/s, in [`BITRATES`]); other layouts get
    /// `bitrate × channels / 2`. Unused when the track is copied.
    pub bitrate: u32,
    /// End of each video position, in `timescale` units from time 0 (ascending).
    pub segment_ends: Vec<u64>,
    /// Timescale of `segment_ends`.
    pub timescale: u32,
    /// Re-encode even a track that could be copied.
    pub force_encode: bool,
    /// Common Encryption of the track (whole samples), `None` for clear audio.
    pub protection: Option<crate::cenc::Protection>,
}

/// What [`package`] wrote for one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack {
    /// RFC 6381 codec string (`mp4a.40.2`).
    pub codec: String,
    /// Channels of the rendition.
    pub channels: u16,
    /// Track timescale ([`SAMPLE_RATE`]).
    pub timescale: u32,
    /// Duration of each segment in `timescale` units, in position order.
    pub durations: Vec<u64>,
    /// Bytes of each media segment file.
    pub sizes: Vec<u64>,
    /// Whether the source's AAC frames were copied (not re-encoded).
    pub copied: bool,
}

/// Writes one audio track of `input` as a CMAF audio rendition into `dir` (which must
/// exist): `init_name`, and one media segment per video position named by `segment_name`.
///
/// A copyable track whose frames do not cover every position (it ends early, or has holes)
/// is encoded instead.
///
/// # Errors
/// A bad track ([`MediaError::BadAudio`]), FFmpeg failures, or a file that cannot be written
/// ([`MediaError::Io`]).
pub fn package(
    input: &Path,
    stream: &AudioStream,
    cfg: &AudioConfig,
    dir: &Path,
    init_name: &str,
    segment_name: fn(u32) -> String,
) -> Result<AudioTrack, MediaError> {
    check_bitrate(cfg.bitrate)?;
    if cfg.segment_ends.is_empty() || cfg.timescale == 0 {
        return Err(MediaError::InvalidSetting(
            "audio needs at least one video position".into(),
        ));
    }
    let ends: Vec<u64> = cfg
        .segment_ends
        .iter()
        .map(|&e| rescale(e, cfg.timescale, SAMPLE_RATE))
        .collect();
    let out = Output {
        dir,
        init_name,
        segment_name,
        protection: cfg.protection.as_ref(),
    };
    if stream.copyable && !cfg.force_encode {
        match copy(input, stream, &ends, &out) {
            Ok(track) => return Ok(track),
            Err(Fallback::Encode) => {}
            Err(Fallback::Fail(e)) => return Err(e),
        }
    }
    encode(input, stream, cfg.bitrate, &ends, &out)
}

/// Where a track's files go.
struct Output<'a> {
    dir: &'a Path,
    init_name: &'a str,
    segment_name: fn(u32) -> String,
    protection: Option<&'a crate::cenc::Protection>,
}

impl Output<'_> {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), MediaError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| MediaError::Io { path, source })
    }
}

enum Fallback {
    Encode,
    Fail(MediaError),
}

impl From<MediaError> for Fallback {
    fn from(e: MediaError) -> Self {
        Fallback::Fail(e)
    }
}

fn rescale(v: u64, from: u32, to: u32) -> u64 {
    let from = u128::from(from.max(1));
    ((u128::from(v) * u128::from(to) + from / 2) / from) as u64
}

/// The mezzanine opened for one of its audio tracks.
struct Source {
    ictx: ffm::format::context::Input,
    /// Time 0 of the package on the file's clock (s).
    origin: f64,
    params: ffm::codec::Parameters,
    tb: ffm::Rational,
}

impl Source {
    fn open(input: &Path, stream: &AudioStream) -> Result<Self, MediaError> {
        let ictx = crate::probe::open_input(input)?;
        let origin = crate::probe::origin_seconds(&ictx);
        let s = ictx
            .stream(stream.index)
            .ok_or_else(|| bad_audio(input, stream.index, "no such stream".into()))?;
        let (params, tb) = (s.parameters(), s.time_base());
        Ok(Self {
            ictx,
            origin,
            params,
            tb,
        })
    }
}

/// Cuts a stream of AAC frames into segments at `ends` and writes each as it completes.
struct Segmenter<'a> {
    out: &'a Output<'a>,
    ends: &'a [u64],
    track_id: u32,
    /// The segment being filled.
    position: usize,
    start: Option<u64>,
    samples: Vec<SampleInfo>,
    data: Vec<u8>,
    durations: Vec<u64>,
    sizes: Vec<u64>,
    protector: Option<crate::cenc::Protector>,
}

impl<'a> Segmenter<'a> {
    fn new(
        out: &'a Output<'a>,
        ends: &'a [u64],
        track_id: u32,
        protector: Option<crate::cenc::Protector>,
    ) -> Self {
        Self {
            protector,
            out,
            ends,
            track_id,
            position: 0,
            start: None,
            samples: Vec::new(),
            data: Vec::new(),
            durations: Vec::with_capacity(ends.len()),
            sizes: Vec::with_capacity(ends.len()),
        }
    }

    fn done(&self) -> bool {
        self.position >= self.ends.len()
    }

    /// Adds the frame that starts at `time` (samples from time 0).
    fn push(&mut self, time: u64, duration: u32, bytes: &[u8]) -> Result<(), MediaError> {
        if self.done() {
            return Ok(());
        }
        if !self.samples.is_empty() && time >= self.ends[self.position] {
            self.flush()?;
            if self.done() {
                return Ok(());
            }
        }
        if self.start.is_none() {
            self.start = Some(time);
        }
        self.samples.push(aac_sample(duration, bytes)?);
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), MediaError> {
        let p = self.position as u32;
        let frag = cmaf::fragment(
            p + 1,
            self.track_id,
            self.start.unwrap_or(0),
            &self.samples,
            &self.data,
        )?;
        let frag = match self.protector.as_mut() {
            Some(p) => p.protect(&frag)?,
            None => frag,
        };
        let seg = cmaf::media_segment(&frag, &[]);
        self.out.write(&(self.out.segment_name)(p), &seg)?;
        self.durations.push(frag.duration);
        self.sizes.push(seg.len() as u64);
        self.samples.clear();
        self.data.clear();
        self.start = None;
        self.position += 1;
        Ok(())
    }

    /// Writes the last segment; false when frames ran out before the last position.
    fn finish(&mut self) -> Result<bool, MediaError> {
        if !self.done() && !self.samples.is_empty() {
            self.flush()?;
        }
        Ok(self.done())
    }
}

/// Writes the init segment FFmpeg's MP4 muxer makes for a stream with these parameters (in
/// its protected form when the track is encrypted); returns it clear, and the protector of
/// the track's fragments.
fn write_init(
    out: &Output<'_>,
    codec: ffm::codec::Id,
    language: Option<&str>,
    configure: impl FnOnce(&mut ffm::format::stream::StreamMut<'_>) -> Result<(), MediaError>,
) -> Result<(cmaf::Init, Option<crate::cenc::Protector>), MediaError> {
    let init = mux_init(
        &out.dir.join(".init.partial.mp4"),
        codec,
        language,
        configure,
    )?;
    let protector = match out.protection {
        Some(p) => {
            let (bytes, protector) = p.init(&init.bytes)?;
            out.write(out.init_name, &bytes)?;
            Some(protector)
        }
        None => {
            out.write(out.init_name, &init.bytes)?;
            None
        }
    };
    Ok((init, protector))
}

/// The CMAF init segment FFmpeg's MP4 muxer makes for one audio stream (`configure` sets its
/// parameters), muxed through the scratch file `tmp` (removed again).
pub(crate) fn mux_init(
    tmp: &Path,
    codec: ffm::codec::Id,
    language: Option<&str>,
    configure: impl FnOnce(&mut ffm::format::stream::StreamMut<'_>) -> Result<(), MediaError>,
) -> Result<cmaf::Init, MediaError> {
    let result = (|| {
        let mut octx = ffm::format::output_as(&tmp, "mp4").map_err(|e| MediaError::Io {
            path: tmp.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        {
            let mut ost = octx
                .add_stream(ffm::encoder::find(codec))
                .map_err(ff("adding the audio output stream"))?;
            configure(&mut ost)?;
            ost.set_time_base(ffm::Rational::new(1, SAMPLE_RATE as i32));
            // The muxer writes it into `mdhd` as ISO 639-2 (two-letter codes converted).
            if let Some(l) = language.and_then(|l| l.split('-').next()) {
                let mut meta = ffm::Dictionary::new();
                meta.set("language", l);
                ost.set_metadata(meta);
            }
        }
        let mut mux = ffm::Dictionary::new();
        mux.set("movflags", "+frag_custom+empty_moov+default_base_moof+cmaf");
        octx.write_header_with(mux)
            .map_err(ff("writing the audio init segment"))?;
        octx.write_trailer()
            .map_err(ff("writing the audio init segment"))?;
        let bytes = std::fs::read(tmp).map_err(|source| MediaError::Io {
            path: tmp.into(),
            source,
        })?;
        cmaf::init(&bytes)
    })();
    let _ = std::fs::remove_file(tmp);
    result
}

fn copy(
    input: &Path,
    stream: &AudioStream,
    ends: &[u64],
    out: &Output<'_>,
) -> Result<AudioTrack, Fallback> {
    let Source {
        mut ictx,
        origin,
        params,
        tb,
    } = Source::open(input, stream)?;
    let (init, protector) = write_init(
        out,
        ffm::codec::Id::AAC,
        stream.language.as_deref(),
        |ost| {
            ost.set_parameters(params.clone());
            Ok(())
        },
    )?;
    let mut seg = Segmenter::new(out, ends, init.track_id, protector);
    let to_samples = |v: i64| {
        v as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1))
            * f64::from(SAMPLE_RATE)
    };
    let origin_samples = origin * f64::from(SAMPLE_RATE);
    let mut expected: Option<u64> = None;
    for (s, packet) in ictx.packets() {
        if s.index() != stream.index {
            continue;
        }
        let (Some(pts), Some(bytes)) = (packet.pts().or(packet.dts()), packet.data()) else {
            continue;
        };
        let t = (to_samples(pts) - origin_samples).round();
        if t < 0.0 {
            continue; // priming, or audio before the first picture
        }
        let t = t as u64;
        // A hole (or overlap) of more than a quarter frame: not a track to copy as is.
        if let Some(e) = expected
            && t.abs_diff(e) > u64::from(AAC_FRAME / 4)
        {
            return Err(Fallback::Encode);
        }
        let duration = match to_samples(packet.duration()).round() as u32 {
            0 => AAC_FRAME,
            d => d,
        };
        expected = Some(t + u64::from(duration));
        seg.push(t, duration, bytes)?;
        if seg.done() {
            break;
        }
    }
    if !seg.finish()? || expected.is_none_or(|e| e + u64::from(AAC_FRAME) < ends[ends.len() - 1]) {
        return Err(Fallback::Encode);
    }
    Ok(AudioTrack {
        codec: init.codec,
        channels: stream.channels,
        timescale: init.timescale,
        durations: seg.durations,
        sizes: seg.sizes,
        copied: true,
    })
}

/// The layout to encode: stereo for mono and stereo, the source's layout when it has more
/// channels and FFmpeg's AAC encoder takes it, else stereo.
fn output_layout(channels: u16) -> ffm::ChannelLayout {
    use ffm::ChannelLayout as L;
    match channels {
        0..=2 => L::STEREO,
        3 => L::SURROUND,
        4 => L::_4POINT0,
        5 => L::_5POINT0_BACK,
        6 => L::_5POINT1_BACK,
        7 => L::_6POINT1_BACK,
        8 => L::_7POINT1,
        _ => L::STEREO,
    }
}

/// Planar float samples waiting to be encoded, one queue per channel.
pub(crate) struct Fifo {
    pub(crate) channels: Vec<VecDeque<f32>>,
}

impl Fifo {
    pub(crate) fn new(channels: usize) -> Self {
        Self {
            channels: vec![VecDeque::new(); channels],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.channels.first().map_or(0, VecDeque::len)
    }

    pub(crate) fn push_frame(&mut self, frame: &ffm::frame::Audio) {
        let n = frame.samples();
        for (c, q) in self.channels.iter_mut().enumerate() {
            q.extend(frame.plane::<f32>(c).iter().take(n));
        }
    }

    pub(crate) fn push_silence(&mut self, n: usize) {
        for q in &mut self.channels {
            q.extend(std::iter::repeat_n(0.0, n));
        }
    }

    pub(crate) fn drop_front(&mut self, n: usize) -> usize {
        let n = n.min(self.len());
        for q in &mut self.channels {
            q.drain(..n);
        }
        n
    }

    pub(crate) fn pop_frame(&mut self, n: usize, layout: ffm::ChannelLayout) -> ffm::frame::Audio {
        let n = n.min(self.len());
        let mut f = ffm::frame::Audio::new(
            ffm::format::Sample::F32(ffm::format::sample::Type::Planar),
            n,
            layout,
        );
        for (c, q) in self.channels.iter_mut().enumerate() {
            for (dst, src) in f.plane_mut::<f32>(c).iter_mut().zip(q.drain(..n)) {
                *dst = src;
            }
        }
        f.set_rate(SAMPLE_RATE);
        f
    }
}

/// Converts decoded audio to [`SAMPLE_RATE`] planar float in one channel layout, whatever
/// the format, rate and layout of each frame (rebuilt when they change).
pub(crate) struct Resampler {
    ctx: Option<(
        ffm::software::resampling::Context,
        ffm::ChannelLayout,
        ffm::format::Sample,
        u32,
    )>,
    layout: ffm::ChannelLayout,
}

impl Resampler {
    pub(crate) fn new(layout: ffm::ChannelLayout) -> Self {
        Self { ctx: None, layout }
    }

    /// Converts `frame`, appending the result to `fifo`; the error says why it cannot.
    pub(crate) fn run(
        &mut self,
        frame: &mut ffm::frame::Audio,
        fifo: &mut Fifo,
    ) -> Result<(), String> {
        if frame.channel_layout().is_empty() {
            frame.set_channel_layout(ffm::ChannelLayout::default(i32::from(frame.channels())));
        }
        let key = (frame.channel_layout(), frame.format(), frame.rate());
        if self
            .ctx
            .as_ref()
            .is_none_or(|(_, l, f, r)| (*l, *f, *r) != key)
        {
            let ctx = ffm::software::resampling::Context::get(
                key.1,
                key.0,
                key.2,
                PLANAR,
                self.layout,
                SAMPLE_RATE,
            )
            .map_err(|e| format!("cannot resample: {e}"))?;
            self.ctx = Some((ctx, key.0, key.1, key.2));
        }
        if let Some((r, ..)) = self.ctx.as_mut() {
            let cap = frame.samples() * SAMPLE_RATE as usize / frame.rate().max(1) as usize + 64;
            let mut converted = ffm::frame::Audio::new(PLANAR, cap, self.layout);
            r.run(frame, &mut converted)
                .map_err(|e| format!("cannot resample: {e}"))?;
            fifo.push_frame(&converted);
        }
        Ok(())
    }

    /// What the resampler still holds, into `fifo`.
    pub(crate) fn flush(&mut self, fifo: &mut Fifo) -> Result<(), String> {
        if let Some((r, ..)) = self.ctx.as_mut() {
            loop {
                let mut rest = ffm::frame::Audio::new(PLANAR, 4096, self.layout);
                r.flush(&mut rest)
                    .map_err(|e| format!("cannot resample: {e}"))?;
                if rest.samples() == 0 {
                    break;
                }
                fifo.push_frame(&rest);
            }
        }
        Ok(())
    }
}

/// The sample format every AAC encode takes.
pub(crate) const PLANAR: ffm::format::Sample =
    ffm::format::Sample::F32(ffm::format::sample::Type::Planar);

/// FFmpeg's AAC-LC encoder at [`SAMPLE_RATE`] for `layout`, at `bitrate` per stereo pair;
/// returns it with its frame size.
pub(crate) fn open_aac_encoder(
    layout: ffm::ChannelLayout,
    bitrate: u32,
) -> Result<(ffm::encoder::Audio, usize), MediaError> {
    let channels = layout.channels().max(1) as usize;
    let aac = ffm::encoder::find(ffm::codec::Id::AAC).ok_or(MediaError::EncoderMissing("aac"))?;
    let mut ctx = ffm::codec::context::Context::new_with_codec(aac)
        .encoder()
        .audio()
        .map_err(ff("creating the AAC encoder"))?;
    ctx.set_rate(SAMPLE_RATE as i32);
    ctx.set_format(PLANAR);
    ctx.set_channel_layout(layout);
    ctx.set_channels(channels as i32);
    ctx.set_bit_rate(bitrate as usize * channels / 2);
    ctx.set_time_base(ffm::Rational::new(1, SAMPLE_RATE as i32));
    ctx.set_flags(ffm::codec::Flags::GLOBAL_HEADER);
    let encoder = ctx
        .open_as(aac)
        .map_err(|e| MediaError::InvalidSetting(format!("the AAC encoder refused: {e}")))?;
    let frame_size = match encoder.frame_size() {
        0 => AAC_FRAME as usize,
        n => n as usize,
    };
    Ok((encoder, frame_size))
}

/// The `trun` entry of one AAC frame (every one a sync sample).
pub(crate) fn aac_sample(duration: u32, bytes: &[u8]) -> Result<SampleInfo, MediaError> {
    Ok(SampleInfo {
        duration,
        size: u32::try_from(bytes.len())
            .map_err(|_| MediaError::BadMp4("an audio frame over 4 GiB".into()))?,
        flags: SYNC_SAMPLE,
        composition_offset: 0,
    })
}

fn encode(
    input: &Path,
    stream: &AudioStream,
    bitrate: u32,
    ends: &[u64],
    out: &Output<'_>,
) -> Result<AudioTrack, MediaError> {
    let Source {
        mut ictx,
        origin,
        params,
        tb,
    } = Source::open(input, stream)?;
    // With the packets' time base the decoder moves a frame's time past the samples it
    // trims (MP3 and AAC encoder delay), so frame times are presentation times.
    let mut decoder = ffm::codec::context::Context::from_parameters(params)
        .and_then(|c| {
            let mut d = c.decoder();
            d.set_packet_time_base(tb);
            d.audio()
        })
        .map_err(|e| bad_audio(input, stream.index, format!("cannot decode: {e}")))?;
    let layout = output_layout(stream.channels);
    let out_channels = layout.channels() as u16;
    let (mut encoder, frame_size) = open_aac_encoder(layout, bitrate)?;
    let (init, protector) = write_init(
        out,
        ffm::codec::Id::AAC,
        stream.language.as_deref(),
        |ost| {
            ost.set_parameters(&encoder);
            Ok(())
        },
    )?;
    let mut seg = Segmenter::new(out, ends, init.track_id, protector);
    let total = ends[ends.len() - 1];
    // The encoder delays its output by its priming; its input starts that far into the
    // source, so output sample t is source sample t.
    let priming = AAC_FRAME as usize;
    let mut fifo = Fifo::new(usize::from(out_channels));
    let mut to_skip = priming as i64;
    let mut fed: u64 = 0;
    let feed_limit = total.saturating_sub(priming as u64);
    let mut resampler = Resampler::new(layout);
    let mut started = false;
    let mut packet_out = ffm::Packet::empty();
    let mut decoded = ffm::frame::Audio::empty();

    let mut drain =
        |encoder: &mut ffm::encoder::Audio, seg: &mut Segmenter<'_>| -> Result<(), MediaError> {
            loop {
                match encoder.receive_packet(&mut packet_out) {
                    Ok(()) => {
                        let pts = packet_out.pts().unwrap_or(0);
                        let t = pts + priming as i64;
                        if t >= 0
                            && let Some(bytes) = packet_out.data()
                        {
                            let d = match packet_out.duration() {
                                d if d > 0 => d as u32,
                                _ => AAC_FRAME,
                            };
                            seg.push(t as u64, d, bytes)?;
                        }
                    }
                    Err(ffm::Error::Other { errno }) if errno == ffm::util::error::EAGAIN => {
                        return Ok(());
                    }
                    Err(ffm::Error::Eof) => return Ok(()),
                    Err(e) => {
                        return Err(MediaError::Ffmpeg {
                            doing: "receiving an AAC frame",
                            source: e,
                        });
                    }
                }
            }
        };
    // Sends whole frames from the FIFO (and the last, short one when `last`).
    let mut send = |fifo: &mut Fifo,
                    encoder: &mut ffm::encoder::Audio,
                    seg: &mut Segmenter<'_>,
                    fed: &mut u64,
                    last: bool|
     -> Result<(), MediaError> {
        while fifo.len() >= frame_size || (last && fifo.len() > 0) {
            let mut f = fifo.pop_frame(frame_size, layout);
            f.set_pts(Some(*fed as i64));
            *fed += f.samples() as u64;
            encoder
                .send_frame(&f)
                .map_err(ff("sending audio to the AAC encoder"))?;
            drain(encoder, seg)?;
        }
        Ok(())
    };

    let to_seconds =
        |v: i64| v as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1));
    let consume = |frame: &mut ffm::frame::Audio,
                   fifo: &mut Fifo,
                   resampler: &mut Resampler|
     -> Result<(), MediaError> {
        resampler
            .run(frame, fifo)
            .map_err(|e| bad_audio(input, stream.index, e))
    };

    let index = stream.index;
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            continue; // a damaged frame: the decoder resynchronises on the next
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            if !started {
                started = true;
                // Lead with silence, or trim, so the track starts at the first picture.
                let at = decoded.pts().map_or(0.0, to_seconds) - origin;
                let shift = (at * f64::from(SAMPLE_RATE)).round() as i64;
                if shift > 0 {
                    fifo.push_silence(shift as usize);
                } else {
                    to_skip -= shift;
                }
            }
            consume(&mut decoded, &mut fifo, &mut resampler)?;
            if to_skip > 0 {
                to_skip -= fifo.drop_front(to_skip as usize) as i64;
            }
            let room = feed_limit.saturating_sub(fed) as usize;
            if fifo.len() > room {
                for q in &mut fifo.channels {
                    q.truncate(room);
                }
            }
            send(&mut fifo, &mut encoder, &mut seg, &mut fed, false)?;
        }
        if fed + fifo.len() as u64 >= feed_limit {
            break;
        }
    }
    // The rest of the decoder and the resampler, then silence up to the video's end.
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut decoded).is_ok() {
        consume(&mut decoded, &mut fifo, &mut resampler)?;
    }
    resampler
        .flush(&mut fifo)
        .map_err(|e| bad_audio(input, stream.index, e))?;
    if to_skip > 0 {
        to_skip -= fifo.drop_front(to_skip as usize) as i64;
    }
    let _ = to_skip;
    let have = fed + fifo.len() as u64;
    if have < feed_limit {
        fifo.push_silence((feed_limit - have) as usize);
    }
    let room = feed_limit.saturating_sub(fed) as usize;
    for q in &mut fifo.channels {
        q.truncate(room);
    }
    send(&mut fifo, &mut encoder, &mut seg, &mut fed, true)?;
    encoder.send_eof().map_err(ff("flushing the AAC encoder"))?;
    drain(&mut encoder, &mut seg)?;
    if !seg.finish()? {
        return Err(bad_audio(
            input,
            stream.index,
            format!(
                "the encoded track fills {} of {} positions",
                seg.durations.len(),
                ends.len()
            ),
        ));
    }
    Ok(AudioTrack {
        codec: init.codec,
        channels: out_channels,
        timescale: init.timescale,
        durations: seg.durations,
        sizes: seg.sizes,
        copied: false,
    })
}
