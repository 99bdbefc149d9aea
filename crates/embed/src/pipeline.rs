//! The file pipeline behind `leaktrace embed`: mezzanine in, TS 104 002 A/B package out.
//!
//! Decode once; for each rendition scale once, mask once, mark A and B, encode both with
//! identical settings and an IDR at every position boundary; then split each encode into
//! CMAF segments, add `styp` + `wmpi`, and write the package:
//!
//! ```text
//! OUT/
//!   master.m3u8, manifest.mpd          neutral manifests (same for every viewer)
//!   title.json                         summary: title, positions, renditions, codec strings
//!   720p/playlist.m3u8                 neutral media playlist
//!   720p/a/init.mp4, 720p/b/init.mp4   init segments (position -1)
//!   720p/a/seg_00000.m4s ...           variant A (wmpi variant 0)
//!   720p/b/seg_00000.m4s ...           variant B, same names and timing (wmpi variant 1)
//!   720p/WMPaceInfo/seg_00000.m4s ...  CBOR sidecars (and WMPaceInfo/init.mp4, position -1)
//!   audio-en/playlist.m3u8, init.mp4,  AAC-LC 48 kHz, one segment per position, the same for
//!     seg_00000.m4s ...                every viewer (one directory per audio track)
//!   text-en/playlist.m3u8,             WebVTT, one segment per position, and the whole track
//!     seg_00000.vtt ..., subtitles.vtt (one directory per subtitle track)
//!   reference/                         reference index for the detector (not for viewers)
//! ```
//!
//! The package is built in a hidden sibling directory and renamed into place only when
//! complete, so a failure never leaves output that looks finished.

use crate::ladder::{Ladder, Rendition};
use crate::manifest::DrmSignal;
use crate::manifest::{self, RenditionManifest};
use crate::{EmbedConfig, EmbedError, Embedder, LumaPlane, MaskParams};
use leaktrace_core::wmpaceinfo::{PaceInfo, SIDECAR_DIR, Sidecar};
use leaktrace_core::{
    GRID_COLS, GRID_ROWS, MasterKey, Position, SegmentDuration, TitleId, Variant,
};
use leaktrace_media::cenc::Protection;
use leaktrace_media::{
    Codec, Decoder, Encoder, EncoderConfig, PixelLayout, Samples, Scaler, VideoFrame, cmaf,
};
use leaktrace_reference::{ReferenceBuilder, ReferenceMeta, cell_centre};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of one embed run.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The title being packaged.
    pub title: TitleId,
    /// Segment duration (positions).
    pub segment: SegmentDuration,
    /// Codec of every rendition.
    pub codec: Codec,
    /// Encoder preset; the codec's default when `None`.
    pub preset: Option<String>,
    /// CRF; 20 (H.264), 22 (HEVC) or 30 (AV1) when `None`.
    pub crf: Option<u8>,
    /// Ladder like `1080p,720p`; a default ladder for the source when `None`.
    pub ladder: Option<String>,
    /// Codec threads per encoder, 0 for automatic.
    pub threads: usize,
    /// Bit depth of the renditions (8 or 10); `None` for [`rendition_layout`]'s choice from
    /// the source and the codec.
    pub bit_depth: Option<u8>,
    /// Mask parameters.
    pub mask: MaskParams,
    /// Stop after this many frames (tests and benches), `None` for the whole input.
    pub max_frames: Option<u64>,
    /// Subtitle files that become WebVTT renditions (the same for every viewer).
    pub subtitles: Vec<SubtitleInput>,
    /// Also package the mezzanine's own text subtitle tracks (mov_text, SubRip, ASS/SSA,
    /// WebVTT); image-based ones are skipped and named in [`EmbedSummary::skipped_subtitles`].
    pub mezzanine_subtitles: bool,
    /// Package the mezzanine's audio tracks (AAC-LC, 48 kHz; the same for every viewer).
    pub audio: bool,
    /// Bitrate of a stereo AAC encode (bit/s); other layouts scale it by channels / 2.
    pub audio_bitrate: u32,
    /// Common Encryption of the video and audio renditions (H.264 and HEVC video; AV1 is
    /// refused), `None` for clear.
    pub encryption: Option<crate::drm::Encryption>,
}

/// Default AAC bitrate of a stereo rendition (bit/s).
pub const DEFAULT_AUDIO_BITRATE: u32 = 128_000;

/// An audio track of the mezzanine, and the rendition it becomes.
struct AudioJob {
    stream: leaktrace_media::audio::AudioStream,
    /// Directory (`audio-<language>`, `-2`, `-3`… for a language already taken).
    name: String,
    language: String,
    label: String,
}

/// Lists and checks the mezzanine's audio tracks before any encoding starts (a track out of
/// range costs nothing), and names their renditions.
fn load_audio(mezzanine: &Path, cfg: &PipelineConfig) -> Result<Vec<AudioJob>, EmbedError> {
    use leaktrace_media::audio;
    if !cfg.audio {
        return Ok(Vec::new());
    }
    audio::check_bitrate(cfg.audio_bitrate)?;
    let streams = audio::audio_streams(mezzanine, &leaktrace_media::Limits::default())?;
    let mut jobs: Vec<AudioJob> = Vec::with_capacity(streams.len());
    for stream in streams {
        let language = stream
            .language
            .clone()
            .map(|l| crate::subtitles::canonical_language(&l))
            .filter(|l| crate::subtitles::valid_language(l))
            .unwrap_or_else(|| "und".to_owned());
        let base = match stream.role {
            audio::AudioRole::Main | audio::AudioRole::Alternate => language.clone(),
            role => format!("{language} ({})", role.dash()),
        };
        let taken = |n: &str| jobs.iter().any(|j| j.name.eq_ignore_ascii_case(n));
        let (mut name, mut label, mut k) = (format!("audio-{language}"), base.clone(), 2);
        while taken(&name) {
            name = format!("audio-{language}-{k}");
            label = format!("{base} {k}");
            k += 1;
        }
        jobs.push(AudioJob {
            stream,
            name,
            language,
            label,
        });
    }
    Ok(jobs)
}

/// Writes the audio renditions (`audio-<language>/`: init, one segment per position, and
/// the playlist) and returns what the manifests and the summary need.
fn write_audio(
    input: &Path,
    staging: &Path,
    jobs: &[AudioJob],
    cfg: &PipelineConfig,
    (durations, timescale): (&[u64], u32),
    constant_iv: [u8; 16],
    drm: Option<&DrmSignal>,
) -> Result<(Vec<manifest::AudioManifest>, Vec<AudioSummary>), EmbedError> {
    let mut ends = Vec::with_capacity(durations.len());
    let mut t = 0u64;
    for &d in durations {
        t += d;
        ends.push(t);
    }
    let acfg = leaktrace_media::audio::AudioConfig {
        bitrate: cfg.audio_bitrate,
        segment_ends: ends,
        timescale,
        force_encode: false,
        protection: cfg.encryption.as_ref().map(|e| Protection {
            scheme: e.scheme,
            key: e.audio_key().clone(),
            pssh: e.pssh.clone(),
            constant_iv,
        }),
    };
    // The default track: the one the container marks, else the first main one, else the first.
    let default = jobs
        .iter()
        .position(|j| j.stream.default)
        .or_else(|| {
            jobs.iter()
                .position(|j| j.stream.role == leaktrace_media::audio::AudioRole::Main)
        })
        .unwrap_or(0);
    let mut manifests = Vec::with_capacity(jobs.len());
    let mut summaries = Vec::with_capacity(jobs.len());
    for (k, job) in jobs.iter().enumerate() {
        let dir = staging.join(&job.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // The rendition's language (checked, `und` when missing) goes into its `mdhd`, which
        // holds ISO 639-2 codes.
        let stream = leaktrace_media::audio::AudioStream {
            language: Some(crate::subtitles::iso639_2(&job.language)),
            ..job.stream.clone()
        };
        let track = leaktrace_media::audio::package(
            input,
            &stream,
            &acfg,
            &dir,
            manifest::INIT_NAME,
            manifest::segment_name,
        )?;
        let rate = f64::from(track.timescale.max(1));
        let peak = track
            .durations
            .iter()
            .zip(&track.sizes)
            .filter(|(d, _)| **d > 0)
            .map(|(&d, &b)| (b as f64 * 8.0 * rate / d as f64) as u64)
            .max()
            .unwrap_or(0);
        let bytes: u64 = track.sizes.iter().sum();
        let secs = track.durations.iter().sum::<u64>() as f64 / rate;
        let average = (bytes as f64 * 8.0 / secs.max(1e-9)) as u64;
        let m = manifest::AudioManifest {
            name: job.name.clone(),
            language: job.language.clone(),
            label: job.label.clone(),
            role: job.stream.role.dash(),
            default: k == default,
            codec: track.codec.clone(),
            channels: track.channels,
            sample_rate: track.timescale,
            peak_bps: peak,
            average_bps: average,
            durations: track.durations.clone(),
        };
        let pl = dir.join(manifest::MEDIA_PLAYLIST);
        std::fs::write(&pl, manifest::hls_audio_media(&m, drm)?).map_err(io(&pl))?;
        summaries.push(AudioSummary {
            name: job.name.clone(),
            language: job.language.clone(),
            role: job.stream.role.dash().to_owned(),
            codec: track.codec,
            channels: track.channels,
            source: format!(
                "stream {} ({}, {} Hz, {} ch)",
                job.stream.index, job.stream.codec, job.stream.sample_rate, job.stream.channels
            ),
            copied: track.copied,
            bytes,
            average_bps: average,
        });
        manifests.push(m);
    }
    Ok((manifests, summaries))
}

/// A subtitle file given to the packager and its language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubtitleInput {
    /// A SubRip (`.srt`) or WebVTT (`.vtt`) file.
    pub path: PathBuf,
    /// BCP 47 language tag (`und` when unknown).
    pub language: String,
}

/// A parsed subtitle track, ready to be written.
struct TextTrack {
    /// Directory (`text-<language>`, `-2`, `-3`… for a language already taken).
    name: String,
    language: String,
    label: String,
    cues: Vec<crate::subtitles::Cue>,
}

/// The subtitle tracks to package and the mezzanine subtitle streams skipped.
struct Texts {
    tracks: Vec<TextTrack>,
    skipped: Vec<String>,
}

impl Texts {
    fn push(&mut self, language: &str, cues: Vec<crate::subtitles::Cue>) {
        let taken = |n: &str| self.tracks.iter().any(|t| t.name.eq_ignore_ascii_case(n));
        let mut name = format!("text-{language}");
        let mut label = language.to_owned();
        let mut k = 2;
        while taken(&name) {
            name = format!("text-{language}-{k}");
            label = format!("{language} ({k})");
            k += 1;
        }
        self.tracks.push(TextTrack {
            name,
            language: language.to_owned(),
            label,
            cues,
        });
    }
}

/// Reads and checks every subtitle file, and the mezzanine's own text tracks, before any
/// encoding starts (a bad file costs nothing).
fn load_subtitles(mezzanine: &Path, cfg: &PipelineConfig) -> Result<Texts, EmbedError> {
    let limits = crate::subtitles::SubtitleLimits::default();
    let mut texts = Texts {
        tracks: Vec::new(),
        skipped: Vec::new(),
    };
    if cfg.mezzanine_subtitles {
        let (streams, skipped) = leaktrace_media::text::read_text_tracks(
            mezzanine,
            &leaktrace_media::Limits::default(),
        )?;
        for s in streams {
            let language = s
                .language
                .map(|l| crate::subtitles::canonical_language(&l))
                .filter(|l| crate::subtitles::valid_language(l))
                .unwrap_or_else(|| "und".to_owned());
            let cues = s
                .cues
                .into_iter()
                .map(|c| crate::subtitles::Cue {
                    start_ms: c.start_ms,
                    end_ms: c.end_ms,
                    settings: String::new(),
                    text: crate::subtitles::plain_payload(&c.text),
                })
                .collect();
            texts.push(&language, cues);
        }
        texts.skipped = skipped
            .into_iter()
            .map(|s| format!("stream {} ({}): {}", s.index, s.codec, s.reason))
            .collect();
    }
    for s in &cfg.subtitles {
        let fail = |reason: String| EmbedError::Subtitles {
            path: s.path.clone(),
            reason,
        };
        if !crate::subtitles::valid_language(&s.language) {
            return Err(fail(format!(
                "language tag {:?} is not a BCP 47 tag (2 to 35 letters, digits and '-', e.g. en, pt-BR)",
                s.language
            )));
        }
        let name = s.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let format = crate::subtitles::SubtitleFormat::of_name(name)
            .ok_or_else(|| fail("expected a .srt or .vtt file".into()))?;
        let len = std::fs::metadata(&s.path)
            .map_err(|e| fail(format!("cannot read: {e}")))?
            .len();
        if len > limits.max_bytes {
            return Err(fail(format!(
                "{len} bytes (at most {} bytes)",
                limits.max_bytes
            )));
        }
        let bytes = std::fs::read(&s.path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let cues =
            crate::subtitles::parse(&text, format, &limits).map_err(|e| fail(e.to_string()))?;
        texts.push(&crate::subtitles::canonical_language(&s.language), cues);
    }
    Ok(texts)
}

/// Writes the text renditions (`text-<language>/`: per-position segments, their playlist and
/// the whole track) and returns what the manifests need.
fn write_texts(
    staging: &Path,
    texts: &[TextTrack],
    durations: &[u64],
    timescale: u32,
) -> Result<Vec<manifest::TextManifest>, EmbedError> {
    let mut bounds = Vec::with_capacity(durations.len());
    let mut t = 0u64;
    for &d in durations {
        let ms = |v: u64| v.saturating_mul(1000) / u64::from(timescale.max(1));
        bounds.push((ms(t), ms(t + d)));
        t += d;
    }
    let mut out = Vec::with_capacity(texts.len());
    for track in texts {
        let m = manifest::TextManifest {
            name: track.name.clone(),
            language: track.language.clone(),
            label: track.label.clone(),
            durations: durations.to_vec(),
        };
        let dir = staging.join(&m.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for (p, seg) in crate::subtitles::segments(&track.cues, &bounds)
            .iter()
            .enumerate()
        {
            let path = dir.join(manifest::text_segment_name(p as u32));
            std::fs::write(&path, seg).map_err(io(&path))?;
        }
        let whole = dir.join(manifest::TEXT_WHOLE);
        std::fs::write(&whole, crate::subtitles::webvtt(&track.cues)).map_err(io(&whole))?;
        let pl = dir.join(manifest::MEDIA_PLAYLIST);
        std::fs::write(&pl, manifest::hls_text_media(&m, timescale)?).map_err(io(&pl))?;
        out.push(m);
    }
    Ok(out)
}

impl PipelineConfig {
    /// Defaults for a title: 2 s segments, H.264, default ladder.
    pub fn new(title: TitleId) -> Self {
        Self {
            title,
            segment: SegmentDuration::DEFAULT,
            codec: Codec::H264,
            preset: None,
            crf: None,
            ladder: None,
            threads: 0,
            bit_depth: None,
            mask: MaskParams::default(),
            max_frames: None,
            subtitles: Vec::new(),
            mezzanine_subtitles: true,
            audio: true,
            audio_bitrate: DEFAULT_AUDIO_BITRATE,
            encryption: None,
        }
    }

    /// The encoder settings of one rendition (identical for A, B and the plain baseline), with
    /// the source's colour description and HDR static metadata.
    fn encoder_config(
        &self,
        r: &Rendition,
        (layout, colour, hdr): (
            PixelLayout,
            leaktrace_media::Colour,
            leaktrace_media::HdrStatic,
        ),
        fr: leaktrace_media::Rational,
    ) -> EncoderConfig {
        EncoderConfig {
            codec: self.codec,
            width: r.width,
            height: r.height,
            layout,
            frame_rate: fr,
            crf: self.crf(),
            preset: self
                .preset
                .clone()
                .unwrap_or_else(|| self.codec.default_preset().to_string()),
            max_segment_frames: (self.segment.as_secs_f64() * fr.as_f64()).ceil() as u32,
            threads: self.threads,
            max_kbps: r.max_kbps,
            part_frames: None,
            colour,
            hdr,
        }
    }

    /// Opens the input and resolves the ladder against its size.
    fn open_source(&self, input: &Path) -> Result<(Decoder, Ladder), EmbedError> {
        let decoder = Decoder::open(input)?;
        let (sw, sh) = decoder.size();
        crate::plane::check_geometry(sw, sh)?;
        // Renditions have square pixels: their widths follow the picture as shown (an
        // anamorphic source's pixel aspect applied).
        let dw = decoder.display_width();
        crate::plane::check_geometry(dw, sh)?;
        let ladder = match &self.ladder {
            Some(spec) => Ladder::parse(spec, dw, sh)?,
            None => Ladder::default_for(dw, sh),
        };
        Ok((decoder, ladder))
    }

    fn crf(&self) -> u8 {
        self.crf.unwrap_or(match self.codec {
            Codec::H264 => 20,
            Codec::Hevc => 22,
            Codec::Av1 => 30,
            // A codec without a tuned default: libx264's visually lossless level.
            _ => 20,
        })
    }
}

/// Progress of a run, for progress bars.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// Marking and encoding started; `total_frames` is an estimate (0 when unknown).
    Started {
        /// Expected frames.
        total_frames: u64,
    },
    /// Frames done so far.
    Frames(u64),
    /// A later stage started (packaging, manifests, reference).
    Stage(&'static str),
}

/// One rendition in the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RenditionSummary {
    /// Name and directory.
    pub name: String,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Bits per sample of the encoded pictures (8 or 10).
    pub bit_depth: u8,
    /// Segments (positions).
    pub segments: usize,
    /// Bytes of variant A media segments.
    pub bytes_a: u64,
    /// Bytes of variant B media segments.
    pub bytes_b: u64,
    /// Peak segment bitrate over both variants (bit/s).
    pub peak_bps: u64,
    /// Average bitrate of the larger variant (bit/s).
    pub average_bps: u64,
}

/// One audio rendition in the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AudioSummary {
    /// Name and directory (`audio-<language>`).
    pub name: String,
    /// BCP 47 language tag (`und` when the track has none).
    pub language: String,
    /// DASH role (`main`, `alternate`, `commentary`, `description`, `dub`).
    pub role: String,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Channels.
    pub channels: u16,
    /// The mezzanine track it comes from.
    pub source: String,
    /// Whether the source's AAC frames were copied rather than re-encoded.
    pub copied: bool,
    /// Bytes of its media segments.
    pub bytes: u64,
    /// Average bitrate (bit/s).
    pub average_bps: u64,
}

/// What `embed_file` did (also written as `title.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EmbedSummary {
    /// Title id.
    pub title: String,
    /// Key version used.
    pub key_version: u32,
    /// Output directory.
    pub output: PathBuf,
    /// Codec name.
    pub codec: String,
    /// Segment duration (ms).
    pub segment_ms: u64,
    /// Frame rate `[num, den]`.
    pub frame_rate: [i32; 2],
    /// Frames marked (per rendition and variant).
    pub frames: u64,
    /// Positions (segments).
    pub positions: u32,
    /// Content duration (s).
    pub duration_seconds: f64,
    /// Renditions, largest first.
    pub renditions: Vec<RenditionSummary>,
    /// Wall time of the run (s).
    pub elapsed_seconds: f64,
    /// Time spent in mask + mark, all renditions (s).
    pub mark_seconds: f64,
    /// Track timescale of the segments.
    pub timescale: u32,
    /// Audio renditions written, none for a mezzanine without sound or with `--no-audio`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_renditions: Vec<AudioSummary>,
    /// Common Encryption scheme of the package (`cenc`, `cbcs`), absent when clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Text renditions written (their directories, `text-<language>`), none without subtitles.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub text_renditions: Vec<String>,
    /// Subtitle streams of the mezzanine not packaged (image-based, or no text decoder).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_subtitles: Vec<String>,
}

struct RenditionJob {
    r: Rendition,
    /// The colour description its encoders write (the source's).
    colour: leaktrace_media::Colour,
    /// The layout (bit depth) its encoders take ([`rendition_layout`]).
    layout: PixelLayout,
    scaler: Option<Scaler>,
    enc: [Option<Encoder>; 2],
    frag: [PathBuf; 2],
    buf_a: Samples,
    buf_b: Samples,
}

/// Embeds `input` into an A/B package at `output` (which must not exist, or be empty).
pub fn embed_file(
    input: &Path,
    output: &Path,
    key: &MasterKey,
    cfg: &PipelineConfig,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<EmbedSummary, EmbedError> {
    let started = Instant::now();
    let texts = load_subtitles(input, cfg)?;
    if cfg.encryption.is_some() && cfg.codec == Codec::Av1 {
        return Err(EmbedError::Media(
            leaktrace_media::MediaError::InvalidSetting(format!(
                "Common Encryption of {} video is not implemented (expected --codec h264 or hevc)",
                cfg.codec.name()
            )),
        ));
    }
    let (mut decoder, ladder) = cfg.open_source(input)?;
    let audio = load_audio(input, cfg)?;
    let staging = prepare_output(output)?;
    let result = run(
        &mut decoder,
        &ladder,
        (&staging, output),
        key,
        cfg,
        (&texts, &audio),
        progress,
        started,
    );
    match result {
        Ok(summary) => {
            if output.exists() {
                std::fs::remove_dir(output).map_err(|source| EmbedError::Io {
                    path: output.into(),
                    source,
                })?;
            }
            std::fs::rename(&staging, output).map_err(|source| EmbedError::Io {
                path: output.into(),
                source,
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// The layout (bit depth) the renditions of a source in `source` layout with the colour
/// description `colour` are encoded in: `bit_depth` when it is given (8 or 10), otherwise the
/// source's own, except that H.264 renditions of a deeper SDR source are 8-bit. An 8-bit
/// H.264 stream is High profile, which every player and hardware decoder takes; High 10 is
/// decoded by few (no Apple device, no hardware decoder in browsers), and studio masters are
/// mostly 10-bit. An HDR source (the PQ or HLG transfer) keeps its depth: its transfer needs
/// the levels.
///
/// # Errors
/// [`EmbedError::RenditionBitDepth`] for a `bit_depth` other than 8 or 10.
pub fn rendition_layout(
    codec: Codec,
    source: PixelLayout,
    colour: &leaktrace_media::Colour,
    bit_depth: Option<u8>,
) -> Result<PixelLayout, EmbedError> {
    match bit_depth {
        Some(8) => Ok(PixelLayout::Yuv420p8),
        Some(10) => Ok(PixelLayout::Yuv420p10),
        Some(other) => Err(EmbedError::RenditionBitDepth(other)),
        None if codec == Codec::H264
            && source.bit_depth() > 8
            && colour.video_range().is_none() =>
        {
            Ok(PixelLayout::Yuv420p8)
        }
        None => Ok(source),
    }
}

/// A scaler to the rendition's size and layout, or `None` when the source already has both.
fn scaler_for(
    r: &Rendition,
    src: (usize, usize),
    layout: PixelLayout,
    out: PixelLayout,
) -> Result<Option<Scaler>, EmbedError> {
    Ok(if (r.width, r.height) == src && layout == out {
        None
    } else {
        Some(Scaler::converting(src, layout, (r.width, r.height), out)?)
    })
}

/// Checks the output path and creates the hidden staging directory beside it.
fn prepare_output(output: &Path) -> Result<PathBuf, EmbedError> {
    if output.exists() {
        let empty = std::fs::read_dir(output)
            .map_err(|source| EmbedError::Io {
                path: output.into(),
                source,
            })?
            .next()
            .is_none();
        if !output.is_dir() || !empty {
            return Err(EmbedError::OutputNotEmpty(output.into()));
        }
    }
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EmbedError::OutputNotEmpty(output.into()))?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| EmbedError::Io {
        path: parent.clone(),
        source,
    })?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    std::fs::create_dir(&staging).map_err(|source| EmbedError::Io {
        path: staging.clone(),
        source,
    })?;
    Ok(staging)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmbedError + '_ {
    move |source| EmbedError::Io {
        path: path.into(),
        source,
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    decoder: &mut Decoder,
    ladder: &Ladder,
    (staging, output): (&Path, &Path),
    key: &MasterKey,
    cfg: &PipelineConfig,
    (texts, audio): (&Texts, &[AudioJob]),
    progress: &mut dyn FnMut(ProgressEvent),
    started: Instant,
) -> Result<EmbedSummary, EmbedError> {
    let fr = decoder.frame_rate();
    let mut embedder = Embedder::new(
        key,
        &cfg.title,
        EmbedConfig {
            segment: cfg.segment,
            mask: cfg.mask,
        },
    );
    let mut jobs = open_renditions(ladder, staging, cfg, decoder)?;
    let mut reference =
        ReferenceBuilder::new(ladder.renditions()[0].width, ladder.renditions()[0].height);
    let Marked {
        frames: index,
        frames_per_position,
        mark_seconds: mark_time,
    } = mark_and_encode(
        decoder,
        &mut jobs,
        &mut embedder,
        &mut reference,
        cfg,
        progress,
    )?;
    progress(ProgressEvent::Stage("packaging segments"));
    let (constant_iv, video_protection) = video_protection(cfg)?;
    let drm = cfg.encryption.as_ref().map(crate::drm::Encryption::signal);
    let mut summaries = Vec::new();
    let mut manifests = Vec::new();
    let mut timescale = 0;
    for job in &mut jobs {
        let (m, summary) = package_rendition(
            job,
            staging,
            &frames_per_position,
            video_protection.as_ref(),
            drm.as_ref(),
        )?;
        timescale = m.timescale;
        summaries.push(summary);
        manifests.push(m.manifest);
    }
    let (audio_manifests, audio_summaries) = match manifests.first() {
        Some(m) if !audio.is_empty() => {
            progress(ProgressEvent::Stage("packaging audio"));
            write_audio(
                decoder.path(),
                staging,
                audio,
                cfg,
                (&m.durations, timescale),
                constant_iv,
                drm.as_ref(),
            )?
        }
        _ => (Vec::new(), Vec::new()),
    };
    progress(ProgressEvent::Stage("writing manifests"));
    let text_manifests = match manifests.first() {
        Some(m) if !texts.tracks.is_empty() => {
            write_texts(staging, &texts.tracks, &m.durations, timescale)?
        }
        _ => Vec::new(),
    };
    let master = staging.join(manifest::MASTER_PLAYLIST);
    std::fs::write(
        &master,
        manifest::hls_master(
            &manifests,
            &audio_manifests,
            &text_manifests,
            fr.as_f64(),
            drm.as_ref(),
        )?,
    )
    .map_err(io(&master))?;
    let mpd = staging.join(manifest::MPD_NAME);
    std::fs::write(
        &mpd,
        manifest::dash_mpd(
            &manifests,
            &audio_manifests,
            &text_manifests,
            timescale,
            (fr.num, fr.den),
            drm.as_ref(),
        )?,
    )
    .map_err(io(&mpd))?;
    progress(ProgressEvent::Stage("writing the reference index"));
    let _meta: ReferenceMeta = reference.write(
        &staging.join("reference"),
        cfg.title.as_str(),
        key.version().get(),
        cfg.segment.as_millis(),
        [fr.num, fr.den],
    )?;
    let summary = EmbedSummary {
        title: cfg.title.to_string(),
        key_version: key.version().get(),
        output: output.into(),
        codec: cfg.codec.name().into(),
        segment_ms: cfg.segment.as_millis(),
        frame_rate: [fr.num, fr.den],
        frames: index,
        positions: frames_per_position.len() as u32,
        duration_seconds: index as f64 / fr.as_f64(),
        renditions: summaries,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        mark_seconds: mark_time,
        timescale,
        audio_renditions: audio_summaries,
        encryption: cfg.encryption.as_ref().map(|e| e.scheme.name().to_owned()),
        text_renditions: text_manifests.iter().map(|t| t.name.clone()).collect(),
        skipped_subtitles: texts.skipped.clone(),
    };
    let title_json = staging.join("title.json");
    let json = serde_json::to_vec_pretty(&summary)?;
    std::fs::write(&title_json, json).map_err(io(&title_json))?;
    Ok(summary)
}

/// Codec threads of each of the package's `encoders` encoders, which run side by side, one
/// thread each ([`mark_and_encode`]). `--threads N` is taken as given. By default (0) they
/// share the machine's cores, and an H.264 encoder with a core or less runs on one thread:
/// x264 then writes the same bytes on every run. With several frame threads, the peak-rate cap
/// (VBV) of the standard rungs plans each frame from the sizes the other threads' frames have
/// reached so far, which depends on their timing, so packages of the same input and key
/// differ from run to run after the first frames the cap constrains. HEVC and AV1 keep their
/// encoders' own automatic setting.
fn encoder_threads(cfg: &PipelineConfig, encoders: usize) -> usize {
    if cfg.threads != 0 || cfg.codec != Codec::H264 {
        return cfg.threads;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / encoders.max(1)).max(1)
}

/// Pictures queued for each encoder's thread: enough to keep it busy while the next frame is
/// decoded and marked, few enough to bound the memory (two pictures per encoder).
const ENCODER_QUEUE: usize = 2;

/// One picture for an encoder's thread: the frame, its index, and whether it starts a
/// position (a forced keyframe).
type Feed = (VideoFrame, i64, bool);

/// Opens the A and B encoders (and the scaler) of every rendition of the ladder.
fn open_renditions(
    ladder: &Ladder,
    staging: &Path,
    cfg: &PipelineConfig,
    decoder: &mut Decoder,
) -> Result<Vec<RenditionJob>, EmbedError> {
    let (sw, sh) = decoder.size();
    let layout = decoder.layout();
    let out = rendition_layout(cfg.codec, layout, &decoder.colour(), cfg.bit_depth)?;
    let hdr = decoder.hdr_static()?;
    let fr = decoder.frame_rate();
    let mut jobs = Vec::new();
    for r in ladder.renditions() {
        let dir = staging.join(&r.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut ecfg = cfg.encoder_config(r, (out, decoder.colour(), hdr), fr);
        ecfg.threads = encoder_threads(cfg, 2 * ladder.renditions().len());
        let frag = [dir.join(".a.frag.mp4"), dir.join(".b.frag.mp4")];
        let enc = [
            Some(Encoder::create(&frag[0], &ecfg)?),
            Some(Encoder::create(&frag[1], &ecfg)?),
        ];
        let scaler = scaler_for(r, (sw, sh), layout, out)?;
        let n = r.width * r.height;
        let (buf_a, buf_b) = match out {
            PixelLayout::Yuv420p8 => (Samples::U8(vec![0; n]), Samples::U8(vec![0; n])),
            PixelLayout::Yuv420p10 => (Samples::U16(vec![0; n]), Samples::U16(vec![0; n])),
            other => {
                return Err(leaktrace_media::MediaError::UnsupportedPixelFormat(format!(
                    "{other:?}"
                ))
                .into());
            }
        };
        jobs.push(RenditionJob {
            r: r.clone(),
            colour: ecfg.colour,
            layout: out,
            scaler,
            enc,
            frag,
            buf_a,
            buf_b,
        });
    }
    Ok(jobs)
}

/// What marking the frames gave.
struct Marked {
    /// Frames read.
    frames: u64,
    /// Frames in each position.
    frames_per_position: Vec<u32>,
    /// Seconds spent in the mask and the marking kernel.
    mark_seconds: f64,
}

/// Reads every frame (up to `--max-frames`), marks it into A and B for every rendition, feeds
/// the encoders, and adds the first rendition's unmarked frame to the reference index.
///
/// Each encoder runs on its own thread, fed in frame order through a short queue, so the
/// variants and renditions encode side by side while the next frame is decoded and marked;
/// the encoders come back into `jobs` when every frame is in.
fn mark_and_encode(
    decoder: &mut Decoder,
    jobs: &mut [RenditionJob],
    embedder: &mut Embedder,
    reference: &mut ReferenceBuilder,
    cfg: &PipelineConfig,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Marked, EmbedError> {
    std::thread::scope(|scope| {
        let mut queues: Vec<[Option<std::sync::mpsc::SyncSender<Feed>>; 2]> = Vec::new();
        let mut workers = Vec::new();
        for (ji, job) in jobs.iter_mut().enumerate() {
            let mut pair = [None, None];
            for (vi, slot) in job.enc.iter_mut().enumerate() {
                if let Some(mut enc) = slot.take() {
                    let (tx, rx) = std::sync::mpsc::sync_channel::<Feed>(ENCODER_QUEUE);
                    let worker = scope.spawn(move || {
                        for (frame, index, key) in rx {
                            enc.encode(&frame, index, key)?;
                        }
                        Ok::<_, leaktrace_media::MediaError>(enc)
                    });
                    pair[vi] = Some(tx);
                    workers.push((ji, vi, worker));
                }
            }
            queues.push(pair);
        }
        let fed = feed_encoders(decoder, jobs, &queues, embedder, reference, cfg, progress);
        drop(queues);
        // An encoder's own error explains a queue it stopped reading: it comes first.
        let mut failed = None;
        for (ji, vi, worker) in workers {
            match worker.join() {
                Ok(Ok(enc)) => jobs[ji].enc[vi] = Some(enc),
                Ok(Err(e)) => {
                    failed.get_or_insert(EmbedError::from(e));
                }
                Err(_) => {
                    failed.get_or_insert(EmbedError::Encoder(format!(
                        "{}: the {} encoder's thread panicked",
                        jobs[ji].r.name,
                        Variant::BOTH[vi].dir()
                    )));
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => fed,
        }
    })
}

/// The frame loop of [`mark_and_encode`]: each marked picture goes to its encoder's queue.
fn feed_encoders(
    decoder: &mut Decoder,
    jobs: &mut [RenditionJob],
    queues: &[[Option<std::sync::mpsc::SyncSender<Feed>>; 2]],
    embedder: &mut Embedder,
    reference: &mut ReferenceBuilder,
    cfg: &PipelineConfig,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Marked, EmbedError> {
    let fr = decoder.frame_rate();
    // Expected frames for the progress bar: the declared count, capped by --max-frames.
    let declared = decoder.declared_frames();
    let total = match cfg.max_frames {
        Some(m) if declared > 0 => m.min(declared),
        Some(m) => m,
        None => declared,
    };
    progress(ProgressEvent::Started {
        total_frames: total,
    });
    let mut frames_per_position: Vec<u32> = Vec::new();
    let mut first_time: Option<f64> = None;
    let mut mark_time = 0f64;
    let mut index: u64 = 0;
    while cfg.max_frames.is_none_or(|m| index < m) {
        let Some(frame) = decoder.next_frame()? else {
            break;
        };
        // Positions are counted in frames of the declared rate: a picture that comes later
        // (a sparse or variable-rate file) would put every frame after it in the wrong one.
        constant_rate(decoder, index, &mut first_time)?;
        let position = cfg
            .segment
            .position_at(index as i64 * i64::from(fr.den), i64::from(fr.num));
        let p = position.get() as usize;
        let boundary = p >= frames_per_position.len();
        if boundary {
            if p != frames_per_position.len() {
                return Err(EmbedError::Mismatch(
                    "frame timing skipped a whole position",
                ));
            }
            if position.to_wire().is_none() {
                return Err(EmbedError::TooManyPositions(position.get()));
            }
            frames_per_position.push(0);
        }
        frames_per_position[p] += 1;
        for (ji, job) in jobs.iter_mut().enumerate() {
            let scaled = match job.scaler.as_mut() {
                Some(s) => s.scale(&frame)?,
                None => frame.clone(),
            };
            let t0 = Instant::now();
            let (w, h) = (job.r.width, job.r.height);
            // The rendition's own depth: an 8-bit H.264 rung of a 10-bit source is marked
            // (and indexed) on its 8-bit picture.
            let bit_depth = job.layout.bit_depth();
            match (&scaled.y, &mut job.buf_a, &mut job.buf_b) {
                (Samples::U8(y), Samples::U8(a), Samples::U8(b)) => {
                    let plane = LumaPlane::new(y, w, h, w, bit_depth)?;
                    let mask = embedder.mask(&plane);
                    embedder.mark_into(&plane, &mask, position, a, b)?;
                    if ji == 0 {
                        reference.add_frame(position, y, w, h, 0, &cell_amplitudes(&mask, w, h))?;
                    }
                }
                (Samples::U16(y), Samples::U16(a), Samples::U16(b)) => {
                    let plane = LumaPlane::new(y, w, h, w, bit_depth)?;
                    let mask = embedder.mask(&plane);
                    embedder.mark_into(&plane, &mask, position, a, b)?;
                    if ji == 0 {
                        let shift = bit_depth.saturating_sub(8);
                        reference.add_frame(
                            position,
                            y,
                            w,
                            h,
                            shift,
                            &cell_amplitudes(&mask, w, h),
                        )?;
                    }
                }
                _ => {
                    return Err(EmbedError::Mismatch(
                        "decoded sample type differs from the layout",
                    ));
                }
            }
            mark_time += t0.elapsed().as_secs_f64();
            let frame_a = VideoFrame {
                y: job.buf_a.clone(),
                ..scaled.clone()
            };
            let frame_b = VideoFrame {
                y: job.buf_b.clone(),
                ..scaled
            };
            for (queue, f) in queues[ji].iter().zip([frame_a, frame_b]) {
                if let Some(q) = queue {
                    q.send((f, index as i64, boundary)).map_err(|_| {
                        EmbedError::Encoder(format!("{}: an encoder stopped", job.r.name))
                    })?;
                }
            }
        }
        index += 1;
        if index.is_multiple_of(8) {
            progress(ProgressEvent::Frames(index));
        }
    }
    progress(ProgressEvent::Frames(index));
    if index == 0 {
        return Err(EmbedError::Mismatch("the input has no frames"));
    }
    Ok(Marked {
        frames: index,
        frames_per_position,
        mark_seconds: mark_time,
    })
}

/// The constant IV and the video protection of the package, when it is encrypted.
fn video_protection(cfg: &PipelineConfig) -> Result<([u8; 16], Option<Protection>), EmbedError> {
    // One constant IV per package for `cbcs` (A and B share their init segment); `cenc` draws
    // a random IV per sample.
    let mut constant_iv = [0u8; 16];
    if cfg.encryption.is_some() {
        getrandom::fill(&mut constant_iv).map_err(|e| {
            EmbedError::Encoder(format!("no randomness for the encryption IV: {e}"))
        })?;
    }
    let video_protection = cfg.encryption.as_ref().map(|e| Protection {
        scheme: e.scheme,
        key: e.keys.video.clone(),
        pssh: e.pssh.clone(),
        constant_iv,
    });
    Ok((constant_iv, video_protection))
}

/// One packaged rendition: its manifest entry, its summary and its timescale.
struct PackagedRendition {
    manifest: RenditionManifest,
    timescale: u32,
}

/// Splits a rendition's A and B encodes into CMAF segments (encrypted when the package is),
/// writes them with their in-band and sidecar WMPaceInfo and the rendition's media playlist.
fn package_rendition(
    job: &mut RenditionJob,
    staging: &Path,
    frames_per_position: &[u32],
    video_protection: Option<&Protection>,
    drm: Option<&DrmSignal>,
) -> Result<(PackagedRendition, RenditionSummary), EmbedError> {
    let dir = staging.join(&job.r.name);
    let mut tracks = Vec::new();
    for (enc, frag) in job.enc.iter_mut().zip(&job.frag) {
        if let Some(e) = enc.take() {
            e.finish()?;
        }
        let bytes = std::fs::read(frag).map_err(io(frag))?;
        tracks.push(cmaf::split(&bytes)?);
        std::fs::remove_file(frag).map_err(io(frag))?;
    }
    let (a, b) = (&tracks[0], &tracks[1]);
    check_track(a, frames_per_position, &job.r.name)?;
    check_track(b, frames_per_position, &job.r.name)?;
    let timescale = a.timescale;
    let durations: Vec<u64> = a.fragments.iter().map(|f| f.duration).collect();
    if durations != b.fragments.iter().map(|f| f.duration).collect::<Vec<_>>()
        || a.timescale != b.timescale
    {
        return Err(EmbedError::Encoder(format!(
            "{}: A and B segment timing differs",
            job.r.name
        )));
    }
    let sidecar_dir = dir.join(SIDECAR_DIR);
    std::fs::create_dir_all(&sidecar_dir).map_err(io(&sidecar_dir))?;
    let mut peak = 0u64;
    let mut bytes = [0u64; 2];
    for (variant, track) in Variant::BOTH.into_iter().zip(&tracks) {
        let vdir = dir.join(variant.dir());
        std::fs::create_dir_all(&vdir).map_err(io(&vdir))?;
        let init = vdir.join(manifest::INIT_NAME);
        let mut protector = match video_protection {
            Some(p) => {
                let (bytes, protector) = p.init(&track.init)?;
                std::fs::write(&init, bytes).map_err(io(&init))?;
                Some(protector)
            }
            None => {
                std::fs::write(&init, &track.init).map_err(io(&init))?;
                None
            }
        };
        for (p, frag) in track.fragments.iter().enumerate() {
            let wire = Position::new(p as u32)
                .to_wire()
                .ok_or(EmbedError::TooManyPositions(p as u32))?;
            let wmpi = PaceInfo::new(variant.id(), Some(wire), true, true).to_wmpi_box()?;
            let protected;
            let frag = match protector.as_mut() {
                Some(pr) => {
                    protected = pr.protect(frag)?;
                    &protected
                }
                None => frag,
            };
            let seg = cmaf::media_segment(frag, &[&wmpi]);
            let path = vdir.join(manifest::segment_name(p as u32));
            std::fs::write(&path, &seg).map_err(io(&path))?;
            bytes[variant.id() as usize] += seg.len() as u64;
            let secs = frag.duration as f64 / f64::from(track.timescale);
            if secs > 0.0 {
                peak = peak.max((seg.len() as f64 * 8.0 / secs) as u64);
            }
        }
    }
    for p in 0..durations.len() {
        let wire = Position::new(p as u32)
            .to_wire()
            .ok_or(EmbedError::TooManyPositions(p as u32))?;
        let path = sidecar_dir.join(manifest::segment_name(p as u32));
        std::fs::write(&path, Sidecar::for_discrete_segment(Some(wire)).to_cbor()?)
            .map_err(io(&path))?;
    }
    let init_sidecar = sidecar_dir.join(manifest::INIT_NAME);
    std::fs::write(
        &init_sidecar,
        Sidecar::for_discrete_segment(None).to_cbor()?,
    )
    .map_err(io(&init_sidecar))?;
    let total_secs = durations.iter().sum::<u64>() as f64 / f64::from(timescale);
    let average = (bytes[0].max(bytes[1]) as f64 * 8.0 / total_secs.max(1e-9)) as u64;
    let m = RenditionManifest {
        name: job.r.name.clone(),
        width: job.r.width,
        height: job.r.height,
        codec: a.codec.clone(),
        colour: job.colour,
        peak_bps: peak,
        average_bps: average,
        durations: durations.clone(),
    };
    let pl = dir.join(manifest::MEDIA_PLAYLIST);
    std::fs::write(&pl, manifest::hls_media(&m, timescale, drm)?).map_err(io(&pl))?;
    let summary = RenditionSummary {
        name: job.r.name.clone(),
        width: job.r.width,
        height: job.r.height,
        codec: a.codec.clone(),
        bit_depth: job.layout.bit_depth(),
        segments: durations.len(),
        bytes_a: bytes[0],
        bytes_b: bytes[1],
        peak_bps: peak,
        average_bps: average,
    };

    Ok((
        PackagedRendition {
            manifest: m,
            timescale,
        },
        summary,
    ))
}

fn check_track(t: &cmaf::Track, frames: &[u32], name: &str) -> Result<(), EmbedError> {
    if t.fragments.len() != frames.len() {
        return Err(EmbedError::Encoder(format!(
            "{name}: the encoder wrote {} segments for {} positions (a keyframe was not where it belongs)",
            t.fragments.len(),
            frames.len()
        )));
    }
    for (p, (f, &n)) in t.fragments.iter().zip(frames).enumerate() {
        if f.samples != n || !f.starts_with_sync {
            return Err(EmbedError::Encoder(format!(
                "{name}: segment {p} has {} frames (expected {n}) and {} with a keyframe",
                f.samples,
                if f.starts_with_sync {
                    "starts"
                } else {
                    "does not start"
                }
            )));
        }
    }
    Ok(())
}

/// What [`encode_plain`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlainSummary {
    /// Frames encoded per rendition.
    pub frames: u64,
    /// One fragmented MP4 per rendition, largest first.
    pub files: Vec<PathBuf>,
    /// Wall time (s).
    pub elapsed_seconds: f64,
}

/// Encodes `input` once per rendition with exactly the settings [`embed_file`] uses for A and
/// B, but unmarked: the baseline for invisibility (A vs plain, B vs plain) and for the cost
/// of the A/B pair. Writes `<rendition>.mp4` (fragmented MP4) into `dir`, which must exist.
pub fn encode_plain(
    input: &Path,
    dir: &Path,
    cfg: &PipelineConfig,
) -> Result<PlainSummary, EmbedError> {
    let started = Instant::now();
    let (mut decoder, ladder) = cfg.open_source(input)?;
    let (sw, sh) = decoder.size();
    let layout = decoder.layout();
    let out = rendition_layout(cfg.codec, layout, &decoder.colour(), cfg.bit_depth)?;
    let hdr = decoder.hdr_static()?;
    let fr = decoder.frame_rate();
    let mut jobs = Vec::new();
    let mut files = Vec::new();
    for r in ladder.renditions() {
        let path = dir.join(format!("{}.mp4", r.name));
        let ecfg = cfg.encoder_config(r, (out, decoder.colour(), hdr), fr);
        let scaler = scaler_for(r, (sw, sh), layout, out)?;
        jobs.push((Encoder::create(&path, &ecfg)?, scaler));
        files.push(path);
    }
    let mut index = 0u64;
    let mut first_time: Option<f64> = None;
    let mut last_position = None;
    while cfg.max_frames.is_none_or(|m| index < m) {
        let Some(frame) = decoder.next_frame()? else {
            break;
        };
        // Positions are counted in frames of the declared rate: a picture that comes later
        // (a sparse or variable-rate file) would put every frame after it in the wrong one.
        constant_rate(&decoder, index, &mut first_time)?;
        let position = cfg
            .segment
            .position_at(index as i64 * i64::from(fr.den), i64::from(fr.num));
        let boundary = last_position != Some(position);
        last_position = Some(position);
        for (enc, scaler) in &mut jobs {
            let f = match scaler.as_mut() {
                Some(s) => s.scale(&frame)?,
                None => frame.clone(),
            };
            enc.encode(&f, index as i64, boundary)?;
        }
        index += 1;
    }
    for (enc, _) in jobs {
        enc.finish()?;
    }
    Ok(PlainSummary {
        frames: index,
        files,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks that the frame `decoder` returned last, the `index`-th, comes at the declared
/// constant rate (within 1.5 frame intervals); `first_time` keeps the first frame's time.
fn constant_rate(
    decoder: &Decoder,
    index: u64,
    first_time: &mut Option<f64>,
) -> Result<(), EmbedError> {
    let fps = decoder.frame_rate().as_f64();
    let now = decoder.last_time();
    if first_time.is_none() {
        *first_time = now;
    }
    if let (Some(t), Some(first)) = (now, *first_time) {
        let (at, expected) = (t - first, index as f64 / fps);
        if (at - expected).abs() > 1.5 / fps {
            return Err(EmbedError::VariableFrameRate {
                path: decoder.path().display().to_string(),
                frame: index,
                at,
                expected,
                fps,
            });
        }
    }
    Ok(())
}

/// The mark amplitude of each pattern cell of a `w × h` frame, sampled at the cell's centre, as
/// the reference index records it.
pub(crate) fn cell_amplitudes(mask: &crate::Mask, w: usize, h: usize) -> Vec<f32> {
    (0..GRID_ROWS)
        .flat_map(|row| (0..GRID_COLS).map(move |col| cell_centre(w, h, col, row)))
        .map(|(x, y)| mask.amplitude_at(x, y))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use leaktrace_media::Colour;

    fn transfer(code: u8) -> Colour {
        Colour {
            primaries: 9,
            transfer: code,
            matrix: 9,
            full_range: false,
        }
    }

    #[test]
    fn h264_renditions_of_a_ten_bit_sdr_source_are_eight_bit() {
        use PixelLayout::{Yuv420p8 as Eight, Yuv420p10 as Ten};
        let sdr = [Colour::UNSPECIFIED, transfer(1), transfer(14)];
        for c in &sdr {
            assert_eq!(rendition_layout(Codec::H264, Ten, c, None).unwrap(), Eight);
            assert_eq!(
                rendition_layout(Codec::H264, Eight, c, None).unwrap(),
                Eight
            );
            // HEVC Main 10 and AV1 10-bit are what their players decode: the source's depth.
            for codec in [Codec::Hevc, Codec::Av1] {
                assert_eq!(rendition_layout(codec, Ten, c, None).unwrap(), Ten);
                assert_eq!(rendition_layout(codec, Eight, c, None).unwrap(), Eight);
            }
        }
        // PQ and HLG need their levels, whatever the codec.
        for hdr in [transfer(16), transfer(18)] {
            for codec in [Codec::H264, Codec::Hevc, Codec::Av1] {
                assert_eq!(rendition_layout(codec, Ten, &hdr, None).unwrap(), Ten);
            }
        }
        // Asked for: given as asked, either way.
        assert_eq!(
            rendition_layout(Codec::H264, Ten, &sdr[0], Some(10)).unwrap(),
            Ten
        );
        assert_eq!(
            rendition_layout(Codec::Hevc, Ten, &transfer(16), Some(8)).unwrap(),
            Eight
        );
        assert_eq!(
            rendition_layout(Codec::Hevc, Eight, &sdr[0], Some(10)).unwrap(),
            Ten
        );
        for bad in [0, 9, 12, 16] {
            let e = rendition_layout(Codec::H264, Ten, &sdr[0], Some(bad)).unwrap_err();
            assert!(e.to_string().contains("expected 8 or 10"), "{e}");
        }
    }
}
