//! Live channels: A/B marking of a live feed in real time, behind `leaktrace live`.
//!
//! A live source (UDP/RTP MPEG-TS, SRT, RTMP, or a file read at its own rate) is decoded,
//! converted to the channel's constant frame rate, scaled to each rendition of the ladder,
//! masked once and marked twice, and the A and B encoders stream their fragments through pipes
//! ([`leaktrace_media::Encoder::create_streaming`]). As soon as every rendition has both
//! variants of a position, the position is published, in this order:
//!
//! 1. the `a/` and `b/` segments (`styp`, `wmpi` with the wire position, the fragment moved to
//!    the position's media time), each written beside its name and renamed;
//! 2. the position's record in the reference index ([`leaktrace_reference::ReferenceAppender`]),
//!    so `leaktrace detect` works on a capture of the channel while it is on air;
//! 3. the WMPaceInfo sidecars: from here on the edge serves the position;
//! 4. the playlists, the MPD and `live.json`.
//!
//! ```text
//! OUT/
//!   title.json, live.json            the channel (title id, ladder, clock, listed segments)
//!   master.m3u8, manifest.mpd        multivariant playlist; dynamic MPD (one period per run)
//!   720p/playlist.m3u8               sliding window, EXT-X-PROGRAM-DATE-TIME per segment
//!   720p/a/init.mp4, 720p/b/init.mp4
//!   720p/a/seg_00000.m4s ...         variant A; 720p/b/... variant B; 720p/WMPaceInfo/...
//!   audio-eng/playlist.m3u8, init.mp4, seg_00000.m4s ...   the feed's audio (no mark)
//!   reference/                       the reference index, appended position by position
//! ```
//!
//! **Audio.** The feed's first (best) audio stream is decoded as the video's packets are read,
//! resampled to 48 kHz (mono stays mono, everything else becomes stereo), encoded to AAC-LC
//! ([`LiveConfig::audio_bitrate`]) and cut into one segment per position on the channel's
//! timeline: segment *p* holds the AAC frames that start in position *p*, as in a VOD package,
//! so its `tfdt` is within one AAC frame after the position's start. It is written with the
//! position's video segments (before the playlists), listed in a media playlist with the
//! video's window, sequence, date-times and discontinuities, in the multivariant playlist
//! (`EXT-X-MEDIA:TYPE=AUDIO`, `AUDIO=` and `mp4a.40.2` on every variant) and as an audio
//! adaptation set in each period of the MPD. It is the same for every viewer: the edge serves
//! `audio-*/` as plain files. Audio follows the video's frame clock, so each source open is
//! anchored where the channel resumes; audio that is missing or late (a feed without audio
//! after a reopen, a stall) is replaced by silence and logged ([`LiveEvent::Audio`]). The
//! rendition is decided when the channel first goes on air (a feed without audio makes a
//! channel without it) and kept across restarts. With low-latency parts the audio has parts
//! too, cut on the video's part boundaries (see below).
//!
//! **Low latency** ([`LiveConfig::part`], `leaktrace live --part 500ms`). The encoders also cut
//! a fragment every part duration (a CMAF chunk, [`leaktrace_media::EncoderConfig::part_frames`];
//! x264/x265 without B-frames or look-ahead), and each part is published as soon as every
//! rendition has both variants of it: `a/seg_00042.p3.m4s`, `b/…`, its sidecar, then the
//! LL-HLS media playlist (`EXT-X-PART`, `EXT-X-PART-INF`, `EXT-X-SERVER-CONTROL` with blocking
//! reloads, `EXT-X-PRELOAD-HINT`; the edge holds requests for what is not yet published). The
//! parts of a segment, in order, are its bytes, and the whole segment follows once it is
//! complete. The audio rendition's parts (`audio-eng/seg_00042.p3.m4s`) hold the AAC frames
//! that start in the span of the video part of the same number; each is written as soon as
//! its audio is encoded and its video part is out, and never lags the picture by more than a
//! part (what is still missing then is completed with silence). The audio playlist is an
//! LL-HLS playlist like the video's, written before it. The DASH MPD stays at whole segments. Parts are served before their position's
//! reference record exists, so before the first part of a position leaves, the reference index
//! records that the position is open ([`ReferenceAppender::open_position`], written to the
//! disk); a packager that dies with parts of a position out abandons that position on restart
//! ([`LiveEvent::Abandoned`]): it is recorded without a mark, its files are removed, and the
//! channel goes on after it.
//!
//! **Positions.** A channel counts positions from 0 when it first goes on air and never
//! reuses one: the index is a `u32` (272 years of 2-s segments). TS 104 002's in-band and
//! sidecar position is 15 bits, so on the wire it wraps modulo 32 767
//! ([`leaktrace_core::Position::to_wire_wrapping`]); the segment's file name carries the whole
//! index, and the edge takes the name's position when it agrees with the sidecar's
//! ([`leaktrace_core::Position::from_wire_and_name`]). The session's codeword is read at the
//! whole index, so nothing repeats. Indirect-mode tokens (the default) cover every position;
//! a direct-mode token carries at most 65 535 bits and is not for a channel.
//!
//! **Restarts.** A whole segment is served only once its sidecars exist, and its sidecars are
//! written after its reference record. After a crash the channel resumes at the position after
//! the last one in the reference index (after an abandoned one, with low-latency parts), and
//! deletes every file of a later position first (none of them was ever served): no position is
//! ever served with two different pictures. The
//! restart starts a new period (DASH) and a discontinuity (HLS); media time goes on from the
//! position's place on the channel's timeline.
//!
//! **Storage.** The reference index grows by one record per position (78 KB: the mean luma at
//! 256 × 144 and the mark amplitude per pattern cell) and 144 bytes per frame: about 160 MB per
//! hour of a 30-fps channel in 2-s positions. It is never pruned, so a capture from any time of
//! the channel can be examined; segments older than the window and `keep` are deleted.
//!
//! **A source that misbehaves.** A source that stalls (nothing for [`LiveConfig::stall`]),
//! ends, or sends what cannot be decoded is closed, logged and reopened every
//! [`LiveConfig::reconnect`]; the channel pauses meanwhile and a stall longer than a segment
//! starts a new period. Frames are mapped onto the channel's frame clock by their timestamps
//! (dropped or repeated as a frame-rate converter does; a jump of more than two seconds
//! re-anchors the clock), and a change of picture size mid-stream rebuilds the scalers. The
//! segments come from leaktrace's own encoders, so whatever the source sends, a published
//! segment is whole and every playlist entry names files that exist.

mod audio;
pub mod manifest;
pub mod state;

use crate::ladder::{Ladder, Rendition};
use crate::manifest::{INIT_NAME, MASTER_PLAYLIST, MEDIA_PLAYLIST, MPD_NAME, RenditionManifest};
use crate::pipeline::cell_amplitudes;
use crate::{EmbedConfig, EmbedError, Embedder, LumaPlane, MaskParams};
use leaktrace_core::wmpaceinfo::{PaceInfo, SIDECAR_DIR, Sidecar};
use leaktrace_core::{
    MasterKey, Position, SegmentDuration, TitleId, Variant, part_file_name, segment_file_position,
};
use leaktrace_media::cmaf::{Fragment, FragmentReader, Piece};
use leaktrace_media::{
    Codec, Decoder, Encoder, EncoderConfig, Limits, PixelLayout, Rational, Samples, Scaler,
    TRACK_TIMESCALE, VideoFrame,
};
use leaktrace_reference::{CompletedPosition, ReferenceAppender, ReferenceBuilder};
use state::{ChannelState, Period, Segment, write_atomic};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Settings of a live channel.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LiveConfig {
    /// The channel's title id (sessions, tokens and the reference index name it).
    pub channel: TitleId,
    /// Segment duration (positions).
    pub segment: SegmentDuration,
    /// Codec of every rendition.
    pub codec: Codec,
    /// Encoder preset; `veryfast` for H.264 when `None`.
    pub preset: Option<String>,
    /// CRF; the codec's file default when `None`.
    pub crf: Option<u8>,
    /// Ladder like `720p,360p`; the default ladder for the first source's size when `None`.
    pub ladder: Option<String>,
    /// Codec threads per encoder, 0 for automatic.
    pub threads: usize,
    /// Bit depth of the renditions (8 or 10); `None` for
    /// [`rendition_layout`](crate::rendition_layout)'s choice from the feed and the codec.
    pub bit_depth: Option<u8>,
    /// Mask parameters.
    pub mask: MaskParams,
    /// Segments listed in the playlists and the MPD (1 to 1000).
    pub window: u32,
    /// Segments kept on disk behind the window, for viewers a little late (0 to 100 000).
    pub keep: u32,
    /// Read a file source at its own frame rate, as a live encoder would receive it.
    pub realtime: bool,
    /// Start a file source again at its end (a looped test channel).
    pub loop_input: bool,
    /// A source silent for this long is closed and reopened.
    pub stall: Duration,
    /// Wait between attempts to reopen a lost source.
    pub reconnect: Duration,
    /// Stop after this many positions of this run (tests and benches); `None`: run until
    /// stopped or until a file source ends.
    pub max_positions: Option<u32>,
    /// Low-latency parts of about this duration (LL-HLS `EXT-X-PART`, CMAF chunks), each
    /// published as soon as it is encoded; `None`: whole segments only.
    pub part: Option<Duration>,
    /// Package the feed's audio (its first audio stream, AAC-LC at 48 kHz; with
    /// [`LiveConfig::part`], in parts on the video's part boundaries).
    pub audio: bool,
    /// Bitrate of the AAC encode for a stereo pair (bit/s, in
    /// [`leaktrace_media::audio::BITRATES`]); a mono rendition gets half.
    pub audio_bitrate: u32,
}

impl LiveConfig {
    /// Defaults for a channel: 2-s segments, H.264 `veryfast`, a window of 10 segments and 30
    /// more kept, a 5-s stall limit.
    pub fn new(channel: TitleId) -> Self {
        Self {
            channel,
            segment: SegmentDuration::DEFAULT,
            codec: Codec::H264,
            preset: None,
            crf: None,
            ladder: None,
            threads: 0,
            bit_depth: None,
            mask: MaskParams::default(),
            window: 10,
            keep: 30,
            realtime: false,
            loop_input: false,
            stall: Duration::from_secs(5),
            reconnect: Duration::from_secs(1),
            max_positions: None,
            part: None,
            audio: true,
            audio_bitrate: crate::pipeline::DEFAULT_AUDIO_BITRATE,
        }
    }

    fn check(&self) -> Result<(), EmbedError> {
        if self.audio {
            leaktrace_media::audio::check_bitrate(self.audio_bitrate)?;
        }
        if !(1..=1000).contains(&self.window) {
            return Err(EmbedError::Ladder(format!(
                "window of {} segments out of range (expected 1 to 1000)",
                self.window
            )));
        }
        if self.keep > 100_000 {
            return Err(EmbedError::Ladder(format!(
                "{} segments kept out of range (expected 0 to 100000)",
                self.keep
            )));
        }
        if let Some(part) = self.part {
            let max = self.segment.as_secs_f64() / 2.0;
            if part.as_secs_f64() < 0.1 || part.as_secs_f64() > max {
                return Err(EmbedError::Ladder(format!(
                    "part duration of {:.3} s out of range (expected 0.1 s to half the segment, \
                     {max:.3} s)",
                    part.as_secs_f64()
                )));
            }
        }
        if self.stall < Duration::from_millis(100) || self.stall > Duration::from_secs(3600) {
            return Err(EmbedError::Ladder(
                "stall limit out of range (expected 0.1 to 3600 s)".into(),
            ));
        }
        Ok(())
    }

    fn crf(&self) -> u8 {
        self.crf.unwrap_or(match self.codec {
            Codec::Hevc => 22,
            Codec::Av1 => 30,
            _ => 20,
        })
    }

    fn preset(&self) -> String {
        self.preset.clone().unwrap_or_else(|| match self.codec {
            Codec::H264 | Codec::Hevc => "veryfast".to_owned(),
            other => other.default_preset().to_owned(),
        })
    }
}

/// What happens on a channel, for its log.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// The source was opened.
    SourceOpened {
        /// Picture size.
        width: usize,
        /// Picture size.
        height: usize,
        /// Its frame rate.
        frame_rate: f64,
    },
    /// The source was lost (stall, end, undecodable data); it is reopened.
    SourceLost {
        /// Why.
        reason: String,
    },
    /// The source changed its picture size mid-stream; the scalers were rebuilt.
    SourceResized {
        /// New size.
        width: usize,
        /// New size.
        height: usize,
    },
    /// The source's timestamps jumped; the channel's frame clock was re-anchored.
    Reanchored {
        /// Size of the jump, seconds.
        jump_s: f64,
    },
    /// Parts of this position were served before the packager stopped, and its pictures are
    /// lost: it is recorded as abandoned and never used again.
    Abandoned {
        /// The position.
        position: u32,
    },
    /// Something about the channel's audio rendition: the feed has none (or it went missing
    /// and silence stands in), it came back, or it is left out.
    Audio {
        /// What happened.
        message: String,
    },
    /// The channel resumed after a restart at this position.
    Resumed {
        /// The first position of this run.
        position: u32,
    },
    /// A position was published.
    Published {
        /// The position.
        position: u32,
        /// Seconds from the position's first frame reaching the packager to its publication.
        latency_s: f64,
        /// Frames dropped and repeated by the frame-rate conversion so far.
        dropped: u64,
        /// See `dropped`.
        repeated: u64,
    },
}

/// What a run of a channel did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LiveSummary {
    /// The channel.
    pub channel: String,
    /// First position of this run.
    pub first_position: u32,
    /// Positions published by this run.
    pub positions: u32,
    /// Frames encoded (per rendition and variant).
    pub frames: u64,
    /// Source frames dropped by the frame-rate conversion.
    pub dropped: u64,
    /// Frames repeated by the frame-rate conversion.
    pub repeated: u64,
    /// Times the source was lost and reopened.
    pub reconnects: u32,
    /// Wall-clock seconds of the run.
    pub elapsed_seconds: f64,
    /// Seconds of channel time published.
    pub published_seconds: f64,
    /// Median and worst publication latency (first frame in → position published), seconds.
    pub latency_median_s: f64,
    /// See `latency_median_s`.
    pub latency_max_s: f64,
    /// With low-latency parts: median and worst latency of a part (its first frame in → the
    /// part published), seconds; 0 without parts.
    pub part_latency_median_s: f64,
    /// See `part_latency_median_s`.
    pub part_latency_max_s: f64,
    /// Parts published by this run (0 without parts).
    pub parts: u64,
    /// How far the packager fell behind the source's own clock at worst, seconds: how much
    /// later than its timestamp says a frame was taken in, less the least that was ever so
    /// (0 when it kept up; it grows without bound when it cannot).
    pub max_lag_s: f64,
}

/// Messages from the fragment readers.
enum Msg {
    Piece(usize, usize, Piece),
    Failed(usize, usize, String),
}

/// One variant's streaming encoder and the thread reading its pipe.
struct Stream {
    enc: Option<Encoder>,
    writer: Option<std::io::PipeWriter>,
    reader: Option<std::thread::JoinHandle<()>>,
    fragments: VecDeque<Fragment>,
    init: Option<leaktrace_media::cmaf::Init>,
}

struct RenditionRun {
    r: Rendition,
    /// The colour description its encoders write (the source's).
    colour: leaktrace_media::Colour,
    /// The layout (bit depth) its encoders take ([`crate::rendition_layout`]).
    layout: PixelLayout,
    scaler: Option<((usize, usize), Scaler)>,
    streams: [Stream; 2],
    buf_a: Samples,
    buf_b: Samples,
    /// `(new − muxer's)` decode time of this run's fragments.
    shift: Option<i128>,
    codec: String,
}

/// Unix time in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The first frame (of the channel's frame clock) of `position`.
fn first_slot(segment: SegmentDuration, fr: Rational, position: u32) -> u64 {
    // Smallest n with floor(n·den·1000 / (num·ms)) ≥ p: n = ceil(p·ms·num / (1000·den)).
    let num = u128::from(position) * u128::from(segment.as_millis()) * fr.num.max(1) as u128;
    let den = 1000 * fr.den.max(1) as u128;
    num.div_ceil(den) as u64
}

/// Media time (track timescale) of frame `slot` of the channel's clock.
fn slot_ticks(fr: Rational, slot: u64) -> u64 {
    (u128::from(slot) * u128::from(TRACK_TIMESCALE) * fr.den.max(1) as u128 / fr.num.max(1) as u128)
        as u64
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmbedError + '_ {
    move |source| EmbedError::Io {
        path: path.into(),
        source,
    }
}

/// A source whose failure is final: the address cannot be a live source, or a file source
/// cannot be opened at all.
fn fatal(e: &leaktrace_media::MediaError, url: &str) -> bool {
    matches!(e, leaktrace_media::MediaError::InvalidSetting(_))
        || (!url.contains("://") && matches!(e, leaktrace_media::MediaError::Io { .. }))
}

/// Runs a live channel from `source` into `out` until `stop` is set, `max_positions` are
/// published, or a file source (without `loop_input`) ends. `out` may hold the channel
/// already (a restart): it resumes after the last position it published.
pub fn run_live(
    source: &str,
    out: &Path,
    key: &MasterKey,
    cfg: &LiveConfig,
    stop: &AtomicBool,
    events: &mut dyn FnMut(LiveEvent),
) -> Result<LiveSummary, EmbedError> {
    cfg.check()?;
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut decoder = loop {
        match Decoder::open_live(source, Limits::default(), cfg.stall) {
            Ok(d) => break Some(d),
            Err(e) if fatal(&e, source) => return Err(e.into()),
            Err(e) => {
                events(LiveEvent::SourceLost {
                    reason: leaktrace_core::error_chain(&e),
                });
                if stop.load(Ordering::Relaxed) {
                    return Err(e.into());
                }
                std::thread::sleep(cfg.reconnect);
            }
        }
    };
    // The feed's HDR static metadata, from its container or first picture (decoded ahead,
    // not lost); a picture that does not decode is the frame loop's to report.
    let hdr = decoder
        .as_mut()
        .and_then(|d| d.hdr_static().ok())
        .unwrap_or_default();
    let Some(first_decoder) = decoder.as_ref() else {
        return Err(EmbedError::Mismatch("no source"));
    };
    let (sw, sh) = first_decoder.size();
    crate::plane::check_geometry(sw, sh)?;
    let layout = first_decoder.layout();
    let colour = first_decoder.colour();
    let source_rate = first_decoder.frame_rate();
    events(LiveEvent::SourceOpened {
        width: sw,
        height: sh,
        frame_rate: source_rate.as_f64(),
    });
    let mut source_size = (sw, sh);
    let previous = ChannelState::load(out)?;
    let ladder = match (&cfg.ladder, &previous) {
        (Some(spec), _) => Ladder::parse(spec, sw, sh)?,
        (None, Some(p)) => ladder_of(&p.ladder)?,
        (None, None) => Ladder::default_for(sw, sh),
    };
    let fr = match &previous {
        Some(p) => Rational {
            num: p.frame_rate[0],
            den: p.frame_rate[1],
        },
        None => source_rate,
    };
    let ladder_names: Vec<String> = ladder
        .renditions()
        .iter()
        .map(|r| format!("{}:{}x{}", r.name, r.width, r.height))
        .collect();
    if let Some(p) = &previous
        && (p.channel != cfg.channel.as_str()
            || p.segment_ms != cfg.segment.as_millis()
            || p.ladder != ladder_names)
    {
        return Err(EmbedError::LiveState {
            path: out.join(state::STATE_FILE),
            reason: format!(
                "the channel there is {} with {} ms segments and ladder {}; a restart must keep \
                 all three",
                p.channel,
                p.segment_ms,
                p.ladder.join(",")
            ),
        });
    }
    let top = &ladder.renditions()[0];
    let appender = ReferenceAppender::open(
        &out.join("reference"),
        cfg.channel.as_str(),
        key.version().get(),
        cfg.segment.as_millis(),
        [fr.num, fr.den],
        (top.width, top.height),
    )?;
    let first_position = appender.next_position().get();
    let abandoned = appender.abandoned().map(Position::get);
    // Frames per part: the part duration on the channel's clock, at least two parts a segment.
    let part_frames = cfg
        .part
        .map(|d| (d.as_secs_f64() * fr.as_f64()).round().max(1.0) as u32);
    // The audio rendition: the one a resumed channel has, else the feed's (a channel that went
    // on air without audio stays without).
    let audio_state = if !cfg.audio {
        None
    } else {
        let kept = previous.as_ref().map(|p| p.audio.clone());
        let channels = kept.clone().flatten().map(|a| a.channels);
        let info = decoder
            .as_mut()
            .and_then(|d| open_audio(d, channels, events));
        match (kept, info) {
            (Some(Some(a)), _) => Some(state::AudioState {
                bitrate: cfg.audio_bitrate,
                ..a
            }),
            (Some(None), Some(_)) => {
                events(LiveEvent::Audio {
                    message: "the channel went on air without audio and stays without; the \
                              feed's audio is left out"
                        .into(),
                });
                None
            }
            (None, Some(info)) => {
                let (name, language) = audio::rendition_name(info.language.as_deref());
                Some(state::AudioState {
                    name,
                    language,
                    channels: info.channels,
                    codec: String::new(),
                    bitrate: cfg.audio_bitrate,
                })
            }
            (_, None) => None,
        }
    };
    let mut state = previous.unwrap_or_else(|| ChannelState {
        format: "leaktrace-live".into(),
        channel: cfg.channel.to_string(),
        segment_ms: cfg.segment.as_millis(),
        frame_rate: [fr.num, fr.den],
        timescale: TRACK_TIMESCALE,
        ladder: ladder_names.clone(),
        available_ms: now_ms(),
        periods: Vec::new(),
        segments: Vec::new(),
        discontinuities_before: 0,
        ended: false,
        part_frames,
        open: None,
        audio: None,
    });
    state.ended = false;
    state.part_frames = part_frames;
    state.open = None;
    state.segments.retain(|s| s.position < first_position);
    let resumed = first_position > 0;
    if let Some(position) = abandoned {
        events(LiveEvent::Abandoned { position });
    }
    if resumed {
        events(LiveEvent::Resumed {
            position: first_position,
        });
    }
    remove_unpublished(out, &ladder, abandoned.unwrap_or(first_position))?;
    write_title_json(out, cfg, key, &ladder, fr)?;
    let live_audio = audio_state
        .map(|a| audio::LiveAudio::start(out, a, fr, cfg.segment, first_position))
        .transpose()?;
    state.audio = live_audio.as_ref().map(|a| a.state.clone());

    let mut channel = Channel {
        out: out.to_path_buf(),
        cfg,
        fr,
        ladder: ladder.clone(),
        state,
        appender,
        pending_reference: VecDeque::new(),
        run_positions: VecDeque::new(),
        wall_of: VecDeque::new(),
        part_frames,
        part_arrivals: VecDeque::new(),
        open: None,
        flushing: false,
        published: 0,
        first_of_run: true,
        period_anchor: None,
        latencies: Vec::new(),
        part_latencies: Vec::new(),
        dropped: 0,
        repeated: 0,
        master_written: false,
        audio: live_audio,
        video_slot: 0,
        source_down: false,
    };
    let (tx, rx) = mpsc::channel();
    let mut runs = open_runs(&ladder, cfg, (layout, colour, hdr), fr, part_frames, &tx)?;
    drop(tx);
    let mut embedder = Embedder::new(
        key,
        &cfg.channel,
        EmbedConfig {
            segment: cfg.segment,
            mask: cfg.mask,
        },
    );
    let mut reference =
        ReferenceBuilder::resume(top.width, top.height, Position::new(first_position));
    let mut slot = first_slot(cfg.segment, fr, first_position);
    let stop_position = cfg.max_positions.map(|m| first_position.saturating_add(m));
    let mut clock = FrameClock::default();
    let mut last: Option<VideoFrame> = None;
    let mut frames = 0u64;
    let mut reconnects = 0u32;
    let mut current: Option<u32> = None;
    let mut pace_anchor: Option<(Instant, u64)> = None;
    let mut file_ended = false;
    let mut lag_anchor: Option<(Instant, f64, f64)> = None;
    let mut max_lag = 0f64;
    'channel: loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let next = match decoder.as_mut() {
            Some(d) => d.next_frame(),
            None => Ok(None),
        };
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => {
                let reason = match &next {
                    Err(e) => leaktrace_core::error_chain(e),
                    _ if source.contains("://") => format!(
                        "no data for {:.1} s, or the stream ended",
                        cfg.stall.as_secs_f64()
                    ),
                    _ => "end of the file".to_owned(),
                };
                let file_end = !source.contains("://") && matches!(next, Ok(None));
                if file_end && !cfg.loop_input {
                    file_ended = true;
                    break;
                }
                if !file_end {
                    events(LiveEvent::SourceLost { reason });
                    reconnects += 1;
                }
                // Close it (a UDP source holds its port), then reopen it until it comes back or
                // the channel is stopped.
                drop(decoder.take());
                channel.source_down = true;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break 'channel;
                    }
                    if !file_end {
                        std::thread::sleep(cfg.reconnect);
                    }
                    match Decoder::open_live(source, Limits::default(), cfg.stall) {
                        Ok(mut d) => {
                            let (w, h) = d.size();
                            events(LiveEvent::SourceOpened {
                                width: w,
                                height: h,
                                frame_rate: d.frame_rate().as_f64(),
                            });
                            source_size = (w, h);
                            if let Some(a) = &channel.audio {
                                open_audio(&mut d, Some(a.state.channels), events);
                            }
                            channel.source_down = false;
                            decoder = Some(d);
                            clock.reanchor();
                            pace_anchor = None;
                            lag_anchor = None;
                            continue 'channel;
                        }
                        Err(e) => events(LiveEvent::SourceLost {
                            reason: leaktrace_core::error_chain(&e),
                        }),
                    }
                    channel.drain(&rx, &mut runs, events)?;
                }
            }
        };
        if frame.layout != layout {
            events(LiveEvent::SourceLost {
                reason: format!(
                    "the source switched to {:?} samples; the channel is {:?} (frames skipped)",
                    frame.layout, layout
                ),
            });
            continue;
        }
        if (frame.width, frame.height) != source_size {
            source_size = (frame.width, frame.height);
            events(LiveEvent::SourceResized {
                width: frame.width,
                height: frame.height,
            });
        }
        let t = decoder
            .as_ref()
            .and_then(Decoder::last_time)
            .unwrap_or_else(|| clock.last_t.map_or(0.0, |l| l + 1.0 / fr.as_f64()));
        let (copies, jump) = clock.place(t, fr.as_f64());
        // The audio read up to this frame, placed by the frame clock just anchored.
        if let Some(d) = decoder.as_mut() {
            let chunks = d.take_audio();
            if let Some(a) = channel.audio.as_mut()
                && !chunks.is_empty()
            {
                let fps = fr.as_f64();
                let base = first_slot(cfg.segment, fr, first_position) as f64;
                let clock = &clock;
                a.feed(
                    chunks,
                    |ts| clock.channel_frames(ts, fps).map(|f| (base + f) / fps),
                    slot as f64 / fps,
                    events,
                )?;
            }
        }
        if jump.is_some() {
            lag_anchor = None;
        }
        if !cfg.realtime {
            // A source that brings its own clock (a network stream): how late is this frame
            // against the first one?
            let (at, t0, least) = lag_anchor.get_or_insert((Instant::now(), t, f64::INFINITY));
            let lag = at.elapsed().as_secs_f64() - (t - *t0);
            *least = least.min(lag);
            max_lag = max_lag.max(lag - *least);
        }
        if let Some(jump_s) = jump {
            events(LiveEvent::Reanchored { jump_s });
        }
        if copies == 0 {
            channel.dropped += 1;
            continue;
        }
        // Repeats of the previous frame fill a gap; then this frame.
        let repeats = copies - 1;
        channel.repeated += repeats;
        let mut emit: Vec<VideoFrame> = Vec::new();
        if let Some(prev) = &last {
            for _ in 0..repeats {
                emit.push(prev.clone());
            }
        }
        emit.push(frame);
        for f in emit {
            let position = cfg
                .segment
                .position_at(slot as i64 * i64::from(fr.den), i64::from(fr.num));
            if stop_position.is_some_and(|s| position.get() >= s) {
                break 'channel;
            }
            if cfg.realtime {
                let (at, first) = *pace_anchor.get_or_insert((Instant::now(), slot));
                let due = at + Duration::from_secs_f64((slot - first) as f64 / fr.as_f64());
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                } else {
                    max_lag = max_lag.max((now - due).as_secs_f64());
                }
            }
            let boundary = current != Some(position.get());
            if boundary {
                current = Some(position.get());
                channel.run_positions.push_back(position.get());
                channel
                    .wall_of
                    .push_back((position.get(), now_ms(), Instant::now()));
            }
            if let Some(k) = part_frames {
                let into = slot - first_slot(cfg.segment, fr, position.get());
                if into.is_multiple_of(u64::from(k)) {
                    channel.part_arrivals.push_back(Instant::now());
                }
            }
            mark_and_encode(
                &f,
                &mut runs,
                &mut embedder,
                &mut reference,
                position,
                slot,
                boundary,
            )?;
            for done in reference.take_completed() {
                channel.pending_reference.push_back(done);
            }
            slot += 1;
            channel.video_slot = slot;
            frames += 1;
            last = Some(f);
        }
        channel.drain(&rx, &mut runs, events)?;
    }
    // Flush: the last position completes when its encoders finish.
    for run in &mut runs {
        for s in &mut run.streams {
            if let Some(e) = s.enc.take() {
                e.finish()?;
            }
            s.writer = None;
        }
    }
    let readers: Vec<_> = runs
        .iter_mut()
        .flat_map(|r| r.streams.iter_mut().filter_map(|s| s.reader.take()))
        .collect();
    for h in readers {
        let _ = h.join();
    }
    // The position still being filled ends here: its record, then its last fragments.
    reference.complete_current()?;
    for done in reference.take_completed() {
        channel.pending_reference.push_back(done);
    }
    channel.flushing = true;
    channel.drain(&rx, &mut runs, events)?;
    channel.state.ended = file_ended;
    channel.write_manifests(&runs, true)?;
    let (latency_median_s, latency_max_s) = median_and_max(&channel.latencies);
    let (part_latency_median_s, part_latency_max_s) = median_and_max(&channel.part_latencies);
    Ok(LiveSummary {
        channel: cfg.channel.to_string(),
        first_position,
        positions: channel.published,
        frames,
        dropped: channel.dropped,
        repeated: channel.repeated,
        reconnects,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        published_seconds: f64::from(channel.published) * cfg.segment.as_secs_f64(),
        latency_median_s,
        latency_max_s,
        part_latency_median_s,
        part_latency_max_s,
        parts: channel.part_latencies.len() as u64,
        max_lag_s: max_lag,
    })
}

/// Median and largest of `values` (0 for none).
fn median_and_max(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (
        v.get(v.len() / 2).copied().unwrap_or(0.0),
        v.last().copied().unwrap_or(0.0),
    )
}

/// The ladder `live.json` recorded (`name:WxH`).
fn ladder_of(names: &[String]) -> Result<Ladder, EmbedError> {
    let spec: Vec<&str> = names.iter().filter_map(|n| n.split(':').next()).collect();
    let (w, h) = names
        .first()
        .and_then(|n| n.split(':').nth(1))
        .and_then(|s| s.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| EmbedError::Ladder(format!("bad ladder in the channel state: {names:?}")))?;
    Ladder::parse(&spec.join(","), w, h)
}

/// Maps source frames onto the channel's constant frame clock by their timestamps.
#[derive(Debug, Default)]
struct FrameClock {
    /// (source time, clock position in frames) of the anchor.
    anchor: Option<(f64, f64)>,
    /// Frames placed since the anchor.
    placed: f64,
    last_t: Option<f64>,
}

impl FrameClock {
    fn reanchor(&mut self) {
        self.anchor = None;
    }

    /// Where source time `t` falls on the clock (frames since the run's first), `None`
    /// before the clock is anchored.
    fn channel_frames(&self, t: f64, fps: f64) -> Option<f64> {
        self.anchor.map(|(t0, n0)| n0 + (t - t0) * fps)
    }

    /// How many clock frames this source frame fills (0: drop it; 2+: repeat the previous
    /// frame first), and the jump when the clock was re-anchored.
    fn place(&mut self, t: f64, fps: f64) -> (u64, Option<f64>) {
        let mut jump = None;
        if let (Some((t0, _)), Some(last)) = (self.anchor, self.last_t)
            && ((t - last).abs() > 2.0 || t < t0)
        {
            jump = Some(t - last);
            self.anchor = None;
        }
        self.last_t = Some(t);
        let Some((t0, n0)) = self.anchor else {
            self.anchor = Some((t, self.placed));
            self.placed += 1.0;
            return (1, jump);
        };
        let due = n0 + ((t - t0) * fps).round();
        if due < self.placed {
            return (0, jump);
        }
        let copies = (due - self.placed + 1.0) as u64;
        self.placed = due + 1.0;
        (copies, jump)
    }
}

/// Opens the A and B streaming encoders of every rendition, with their pipe readers.
fn open_runs(
    ladder: &Ladder,
    cfg: &LiveConfig,
    (layout, colour, hdr): (
        PixelLayout,
        leaktrace_media::Colour,
        leaktrace_media::HdrStatic,
    ),
    fr: Rational,
    part_frames: Option<u32>,
    tx: &mpsc::Sender<Msg>,
) -> Result<Vec<RenditionRun>, EmbedError> {
    let layout = crate::rendition_layout(cfg.codec, layout, &colour, cfg.bit_depth)?;
    let mut runs = Vec::new();
    for (ri, r) in ladder.renditions().iter().enumerate() {
        let ecfg = EncoderConfig {
            codec: cfg.codec,
            width: r.width,
            height: r.height,
            layout,
            frame_rate: fr,
            crf: cfg.crf(),
            preset: cfg.preset(),
            max_segment_frames: (cfg.segment.as_secs_f64() * fr.as_f64()).ceil() as u32,
            threads: cfg.threads,
            max_kbps: r.max_kbps,
            part_frames,
            colour,
            hdr,
        };
        let open = |vi: usize| -> Result<Stream, EmbedError> {
            let (reader, writer) = std::io::pipe().map_err(io(Path::new("pipe")))?;
            let enc = Encoder::create_streaming(&writer, &ecfg)?;
            let tx = tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!(
                    "live-{}-{}",
                    r.name,
                    if vi == 0 { 'a' } else { 'b' }
                ))
                .spawn(move || {
                    let mut fr = FragmentReader::new(reader);
                    loop {
                        match fr.next_piece() {
                            Ok(Some(p)) => {
                                if tx.send(Msg::Piece(ri, vi, p)).is_err() {
                                    return;
                                }
                            }
                            Ok(None) => return,
                            Err(e) => {
                                let _ = tx.send(Msg::Failed(ri, vi, e.to_string()));
                                return;
                            }
                        }
                    }
                })
                .map_err(io(Path::new("thread")))?;
            Ok(Stream {
                enc: Some(enc),
                writer: Some(writer),
                reader: Some(handle),
                fragments: VecDeque::new(),
                init: None,
            })
        };
        let streams = [open(0)?, open(1)?];
        let n = r.width * r.height;
        let (buf_a, buf_b) = match layout {
            PixelLayout::Yuv420p8 => (Samples::U8(vec![0; n]), Samples::U8(vec![0; n])),
            _ => (Samples::U16(vec![0; n]), Samples::U16(vec![0; n])),
        };
        runs.push(RenditionRun {
            r: r.clone(),
            colour,
            layout,
            scaler: None,
            streams,
            buf_a,
            buf_b,
            shift: None,
            codec: String::new(),
        });
    }
    Ok(runs)
}

/// Scales, masks and marks one frame for every rendition and feeds the encoders.
#[allow(clippy::too_many_arguments)]
fn mark_and_encode(
    frame: &VideoFrame,
    runs: &mut [RenditionRun],
    embedder: &mut Embedder,
    reference: &mut ReferenceBuilder,
    position: Position,
    slot: u64,
    boundary: bool,
) -> Result<(), EmbedError> {
    for (ji, run) in runs.iter_mut().enumerate() {
        let (w, h) = (run.r.width, run.r.height);
        let src = (frame.width, frame.height);
        let out = run.layout;
        let scaled = if src == (w, h) && frame.layout == out {
            frame.clone()
        } else {
            let rebuild = run.scaler.as_ref().is_none_or(|(s, _)| *s != src);
            if rebuild {
                run.scaler = Some((src, Scaler::converting(src, frame.layout, (w, h), out)?));
            }
            match run.scaler.as_mut() {
                Some((_, s)) => s.scale(frame)?,
                None => return Err(EmbedError::Mismatch("no scaler for the rendition")),
            }
        };
        let bit_depth = out.bit_depth();
        match (&scaled.y, &mut run.buf_a, &mut run.buf_b) {
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
                    reference.add_frame(position, y, w, h, shift, &cell_amplitudes(&mask, w, h))?;
                }
            }
            _ => {
                return Err(EmbedError::Mismatch(
                    "decoded sample type differs from the layout",
                ));
            }
        }
        let frame_a = VideoFrame {
            y: run.buf_a.clone(),
            ..scaled.clone()
        };
        let frame_b = VideoFrame {
            y: run.buf_b.clone(),
            ..scaled
        };
        for (s, f) in run.streams.iter_mut().zip([&frame_a, &frame_b]) {
            if let Some(e) = s.enc.as_mut() {
                e.encode(f, slot as i64, boundary)?;
            }
        }
    }
    Ok(())
}

/// Has `d` decode its audio as well (in `channels`, from the stream when `None`), and logs
/// what the source's audio is; `None` when it has none the channel can use.
fn open_audio(
    d: &mut Decoder,
    channels: Option<u16>,
    events: &mut dyn FnMut(LiveEvent),
) -> Option<leaktrace_media::live_audio::AudioInfo> {
    let message = match d.enable_audio(channels) {
        Ok(Some(info)) => {
            let message = format!(
                "audio: {} at {} Hz, {} channel(s), encoded to AAC-LC at 48 kHz, {} channel(s)",
                info.codec, info.sample_rate, info.source_channels, info.channels
            );
            events(LiveEvent::Audio { message });
            return Some(info);
        }
        Ok(None) => "the source has no audio stream".to_owned(),
        Err(e) => format!(
            "the source's audio cannot be decoded ({})",
            leaktrace_core::error_chain(&e)
        ),
    };
    events(LiveEvent::Audio { message });
    None
}

/// Remove every file of a position at or after `from` (never served: its sidecars come last),
/// in the renditions and the audio renditions (`audio-*`).
fn remove_unpublished(out: &Path, ladder: &Ladder, from: u32) -> Result<(), EmbedError> {
    let audio_dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("audio-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    let video_dirs = ladder.renditions().iter().flat_map(|r| {
        ["a", "b", SIDECAR_DIR]
            .into_iter()
            .map(move |sub| out.join(&r.name).join(sub))
    });
    for dir in video_dirs.chain(audio_dirs) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let stale =
                segment_file_position(&name).is_some_and(|p| p >= from) || name.starts_with('.');
            if stale {
                std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
            }
        }
    }
    Ok(())
}

/// Removes the file `f` if it is there.
fn remove_if_there(f: &Path) -> Result<(), EmbedError> {
    match std::fs::remove_file(f) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(f)(e)),
    }
}

/// The WMPaceInfo sidecar of the file `name` (and the init segment's, once) in `sdir`.
fn write_sidecars(sdir: &Path, name: &str, wire: u16) -> Result<(), EmbedError> {
    std::fs::create_dir_all(sdir).map_err(io(sdir))?;
    if !sdir.join(INIT_NAME).exists() {
        write_atomic(
            &sdir.join(INIT_NAME),
            &Sidecar::for_discrete_segment(None).to_cbor()?,
        )?;
    }
    write_atomic(
        &sdir.join(name),
        &Sidecar::for_discrete_segment(Some(wire)).to_cbor()?,
    )
}

fn write_title_json(
    out: &Path,
    cfg: &LiveConfig,
    key: &MasterKey,
    ladder: &Ladder,
    fr: Rational,
) -> Result<(), EmbedError> {
    let json = serde_json::json!({
        "title": cfg.channel.as_str(),
        "live": true,
        "key_version": key.version().get(),
        "codec": cfg.codec.name(),
        "segment_ms": cfg.segment.as_millis(),
        "frame_rate": [fr.num, fr.den],
        "timescale": TRACK_TIMESCALE,
        "renditions": ladder.renditions().iter().map(|r| serde_json::json!({
            "name": r.name, "width": r.width, "height": r.height,
        })).collect::<Vec<_>>(),
    });
    write_atomic(&out.join("title.json"), &serde_json::to_vec_pretty(&json)?)
}

/// The publishing side of a channel.
struct Channel<'a> {
    out: PathBuf,
    cfg: &'a LiveConfig,
    fr: Rational,
    ladder: Ladder,
    state: ChannelState,
    appender: ReferenceAppender,
    pending_reference: VecDeque<CompletedPosition>,
    /// Positions started by this run, not yet published.
    run_positions: VecDeque<u32>,
    /// When each of them started: wall clock and monotonic.
    wall_of: VecDeque<(u32, i64, Instant)>,
    /// Frames per low-latency part, `None` without parts.
    part_frames: Option<u32>,
    /// When the first frame of each part not yet published reached the packager.
    part_arrivals: VecDeque<Instant>,
    /// The position whose fragments are being taken.
    open: Option<OpenPosition>,
    /// The encoders were flushed: whatever is left of the open position is all of it.
    flushing: bool,
    published: u32,
    first_of_run: bool,
    /// (wall ms − media ms) of the current period.
    period_anchor: Option<i64>,
    latencies: Vec<f64>,
    part_latencies: Vec<f64>,
    dropped: u64,
    repeated: u64,
    master_written: bool,
    /// The audio rendition, `None` on a channel without audio.
    audio: Option<audio::LiveAudio>,
    /// The next frame of the channel's clock (where the video is).
    video_slot: u64,
    /// The source is lost and being reopened.
    source_down: bool,
}

/// A position whose parts are being published.
struct OpenPosition {
    /// What the playlists will list (its `parts` and `duration` grow part by part).
    seg: Segment,
    /// Frames taken so far, and the frames the position has on the channel's clock.
    frames: u64,
    expected: u64,
    /// Where each of its parts taken so far ends (a frame of the channel's clock).
    part_ends: Vec<u64>,
    /// The segment's bytes so far, per rendition, for A and B.
    bytes: Vec<[Vec<u8>; 2]>,
    /// When its first frame reached the packager.
    arrived: Option<Instant>,
}

impl Channel<'_> {
    /// Takes what the readers sent and publishes every part and position that is complete.
    fn drain(
        &mut self,
        rx: &mpsc::Receiver<Msg>,
        runs: &mut [RenditionRun],
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Piece(ri, vi, Piece::Init(init)) => {
                    let run = &mut runs[ri];
                    let dir = self.out.join(&run.r.name).join(Variant::BOTH[vi].dir());
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    write_atomic(&dir.join(INIT_NAME), &init.bytes)?;
                    run.codec = init.codec.clone();
                    run.streams[vi].init = Some(init);
                }
                Msg::Piece(ri, vi, Piece::Fragment(f)) => {
                    runs[ri].streams[vi].fragments.push_back(f)
                }
                Msg::Piece(..) => {}
                Msg::Failed(ri, vi, why) => {
                    return Err(EmbedError::Encoder(format!(
                        "{} variant {}: {why}",
                        runs[ri].r.name,
                        Variant::BOTH[vi].dir()
                    )));
                }
            }
        }
        self.publish_ready(runs, events)
    }

    fn publish_ready(
        &mut self,
        runs: &mut [RenditionRun],
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        self.audio_parts_ready(runs, events)?;
        loop {
            let queued = |rs: &[RenditionRun]| {
                rs.iter()
                    .all(|r| r.streams.iter().all(|s| !s.fragments.is_empty()))
            };
            if let Some(open) = &self.open {
                // All of it is out when its frames are, when the next position's first
                // fragment is there, or when the encoders were flushed and nothing is left.
                let complete = open.frames >= open.expected
                    || runs
                        .first()
                        .and_then(|r| r.streams[0].fragments.front())
                        .is_some_and(|f| f.starts_with_sync)
                    || (self.flushing
                        && runs
                            .iter()
                            .all(|r| r.streams.iter().all(|s| s.fragments.is_empty())));
                if complete {
                    let position = open.seg.position;
                    let record_ready = self
                        .pending_reference
                        .front()
                        .is_some_and(|c| c.position.get() == position);
                    if !record_ready || !self.audio_ready(position, queued(runs), events)? {
                        return Ok(());
                    }
                    self.finish_position(runs, events)?;
                    continue;
                }
            }
            let Some(&position) = self.run_positions.front() else {
                return Ok(());
            };
            if !queued(runs) {
                return Ok(());
            }
            self.take_part(runs, position, events)?;
        }
    }

    /// The ends of the open position's video parts out so far, on the audio timeline.
    fn audio_part_ends(&self) -> Vec<u64> {
        match (&self.audio, &self.open) {
            (Some(a), Some(open)) => open.part_ends.iter().map(|&s| a.slot_start(s)).collect(),
            _ => Vec::new(),
        }
    }

    /// With low-latency parts: writes the audio parts of the open position whose audio came
    /// in since its video parts went out, and the playlists when there are any.
    fn audio_parts_ready(
        &mut self,
        runs: &[RenditionRun],
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        if self.part_frames.is_none() {
            return Ok(());
        }
        let ends = self.audio_part_ends();
        let (Some(a), Some(open)) = (self.audio.as_mut(), self.open.as_mut()) else {
            return Ok(());
        };
        let position = open.seg.position;
        if a.parts_done(position, ends.len()) || !a.cut_parts(position, &ends, 0, events)? {
            return Ok(());
        }
        if let Some((timing, parts)) = a.parts_of(position) {
            open.seg.audio = Some(timing);
            open.seg.audio_parts = parts;
        }
        self.state.open = Some(open.seg.clone());
        self.write_manifests(runs, false)
    }

    /// Whether `position`'s audio is encoded (always, without audio). Audio missing or late
    /// (the video [`audio::AUDIO_WAIT_S`] ahead, the source lost, the run ending; with
    /// low-latency parts, also the next position's video parts ready, `next_ready`) is
    /// completed with silence.
    fn audio_ready(
        &mut self,
        position: u32,
        next_ready: bool,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<bool, EmbedError> {
        let Some(a) = self.audio.as_mut() else {
            return Ok(true);
        };
        let wait = (audio::AUDIO_WAIT_S * self.fr.as_f64()).ceil() as u64;
        let end = first_slot(self.cfg.segment, self.fr, position.saturating_add(1));
        let late = self.flushing || self.source_down || self.video_slot >= end + wait;
        if self.part_frames.is_some() {
            // The audio must not lag the next position's first video part: completed with
            // silence by `finish_parts` then.
            return Ok(late || next_ready || a.ready(position));
        }
        if a.ready(position) {
            return Ok(true);
        }
        if !late {
            return Ok(false);
        }
        a.fill(position, events)?;
        Ok(true)
    }

    /// Opens `position` for its first part: its place on the wall clock (a new period when
    /// the packager restarted or the wall clock left the media clock by more than a segment)
    /// and, with low-latency parts, the durable mark that parts of it may be served.
    fn open_position(&mut self, runs: &[RenditionRun], position: u32) -> Result<(), EmbedError> {
        let media_start = slot_ticks(self.fr, first_slot(self.cfg.segment, self.fr, position));
        let expected = first_slot(self.cfg.segment, self.fr, position.saturating_add(1))
            - first_slot(self.cfg.segment, self.fr, position);
        if self.part_frames.is_some() {
            self.appender.open_position(Position::new(position))?;
        }
        let (wall_ms, arrived) = match self.wall_of.front() {
            Some(&(q, w, i)) if q == position => {
                self.wall_of.pop_front();
                (w, Some(i))
            }
            _ => (now_ms(), None),
        };
        let media_ms = (media_start as f64 * 1000.0 / f64::from(TRACK_TIMESCALE)) as i64;
        let nominal = self.period_anchor.map(|a| a + media_ms);
        let seg_ms = self.cfg.segment.as_millis() as i64;
        // Ahead of the wall clock (a file read faster than real time) is not a drift: the
        // segments keep their nominal times.
        let drifted = nominal.is_none_or(|n| wall_ms - n > seg_ms);
        let wall = if drifted {
            let id = self.state.periods.last().map_or(0, |p| p.id + 1);
            self.state.periods.push(Period {
                id,
                first_position: position,
                media_start,
                wall_ms,
            });
            self.period_anchor = Some(wall_ms - media_ms);
            wall_ms
        } else {
            nominal.unwrap_or(wall_ms)
        };
        let seg = Segment {
            position,
            media_start,
            duration: 0,
            wall_ms: wall,
            period: self.state.periods.last().map_or(0, |p| p.id),
            discontinuity: self.first_of_run && !self.state.segments.is_empty(),
            parts: Vec::new(),
            audio: None,
            audio_parts: Vec::new(),
        };
        self.first_of_run = false;
        self.open = Some(OpenPosition {
            seg,
            frames: 0,
            expected,
            part_ends: Vec::new(),
            bytes: runs.iter().map(|_| [Vec::new(), Vec::new()]).collect(),
            arrived,
        });
        Ok(())
    }

    /// Takes the next fragment of every encoder: the next part of `position`. With
    /// low-latency parts it is published at once: its files, its sidecars, the playlists.
    fn take_part(
        &mut self,
        runs: &mut [RenditionRun],
        position: u32,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        if self.open.is_none() {
            self.open_position(runs, position)?;
        }
        let Some(open) = self.open.as_mut() else {
            return Err(EmbedError::Mismatch("no open position"));
        };
        let j = open.seg.parts.len() as u32;
        let wire = Position::new(position).to_wire_wrapping();
        let mut taken: Option<(u64, u32)> = None;
        for (ri, run) in runs.iter_mut().enumerate() {
            let rdir = self.out.join(&run.r.name);
            let mut frags: Vec<Fragment> = Vec::with_capacity(2);
            for s in &mut run.streams {
                frags.push(
                    s.fragments
                        .pop_front()
                        .ok_or(EmbedError::Mismatch("a fragment went missing"))?,
                );
            }
            let timing = (frags[0].duration, frags[0].samples);
            let first_ok = j > 0 || frags.iter().all(|f| f.starts_with_sync);
            if (frags[1].duration, frags[1].samples) != timing
                || !first_ok
                || taken.is_some_and(|t| t != timing)
            {
                return Err(EmbedError::Encoder(format!(
                    "{} position {position} part {j}: the fragments of A and B and of the \
                     renditions differ in timing, or the position does not start with a \
                     keyframe",
                    run.r.name
                )));
            }
            taken = Some(timing);
            let media_start = open.seg.media_start;
            let shift = *run
                .shift
                .get_or_insert(i128::from(media_start) - i128::from(frags[0].decode_time));
            for (vi, mut f) in frags.into_iter().enumerate() {
                let t = u64::try_from(i128::from(f.decode_time) + shift)
                    .map_err(|_| EmbedError::Mismatch("negative media time"))?;
                f.set_decode_time(t)?;
                let variant = Variant::BOTH[vi];
                let bytes = if j == 0 {
                    let wmpi = PaceInfo::new(variant.id(), Some(wire), true, true).to_wmpi_box()?;
                    leaktrace_media::cmaf::media_segment(&f, &[&wmpi])
                } else {
                    f.bytes
                };
                if self.part_frames.is_some() {
                    let dir = rdir.join(variant.dir());
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    write_atomic(&dir.join(part_file_name(position, j)), &bytes)?;
                }
                open.bytes[ri][vi].extend_from_slice(&bytes);
            }
        }
        let (duration, samples) = taken.ok_or(EmbedError::Mismatch("no rendition"))?;
        open.frames += u64::from(samples);
        open.seg.duration += duration;
        open.seg.parts.push(duration);
        open.part_ends
            .push(first_slot(self.cfg.segment, self.fr, position) + open.frames);
        if self.part_frames.is_none() {
            return Ok(());
        }
        // The sidecars of the part: from here on the edge serves it.
        for run in runs.iter() {
            let sdir = self.out.join(&run.r.name).join(SIDECAR_DIR);
            write_sidecars(&sdir, &part_file_name(position, j), wire)?;
        }
        if let Some(at) = self.part_arrivals.pop_front() {
            self.part_latencies.push(at.elapsed().as_secs_f64());
        }
        // The audio of this part if it is encoded, and of every earlier one (the audio never
        // lags the picture by more than a part).
        if let Some(a) = self.audio.as_mut() {
            let ends: Vec<u64> = open.part_ends.iter().map(|&s| a.slot_start(s)).collect();
            a.cut_parts(position, &ends, ends.len().saturating_sub(1), events)?;
            if let Some((timing, parts)) = a.parts_of(position) {
                open.seg.audio = Some(timing);
                open.seg.audio_parts = parts;
            }
        }
        self.state.open = Some(open.seg.clone());
        self.write_manifests(runs, false)
    }

    /// Publishes the open position, whose parts are all out and whose reference record is
    /// ready: the whole segments, the record, the sidecars, the manifests.
    fn finish_position(
        &mut self,
        runs: &mut [RenditionRun],
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let position = open.seg.position;
        let name = crate::manifest::segment_name(position);
        for (run, bytes) in runs.iter().zip(&open.bytes) {
            for (vi, b) in bytes.iter().enumerate() {
                let dir = self.out.join(&run.r.name).join(Variant::BOTH[vi].dir());
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                write_atomic(&dir.join(&name), b)?;
            }
        }
        // Its audio (the same for every viewer, served as soon as a playlist lists it).
        if let Some(a) = self.audio.as_mut() {
            if self.part_frames.is_some() {
                let ends: Vec<u64> = open.part_ends.iter().map(|&s| a.slot_start(s)).collect();
                let (timing, parts) = a.finish_parts(position, &ends, events)?;
                open.seg.audio = Some(timing);
                open.seg.audio_parts = parts;
            } else {
                open.seg.audio = Some(a.publish(position)?);
            }
        }
        // The reference record, then the sidecars (from here on the edge serves it).
        let record = self
            .pending_reference
            .pop_front()
            .ok_or(EmbedError::Mismatch("a reference record went missing"))?;
        self.appender.append(&record)?;
        let wire = Position::new(position).to_wire_wrapping();
        for run in runs.iter() {
            let sdir = self.out.join(&run.r.name).join(SIDECAR_DIR);
            write_sidecars(&sdir, &name, wire)?;
        }
        self.run_positions.pop_front();
        if self.part_frames.is_none() {
            open.seg.parts.clear();
        }
        self.state.segments.push(open.seg);
        self.state.open = None;
        self.published += 1;
        let keep_from = position
            .saturating_add(1)
            .saturating_sub(self.cfg.window + self.cfg.keep);
        self.forget(keep_from)?;
        self.write_manifests(runs, true)?;
        let latency = open.arrived.map_or(0.0, |i| i.elapsed().as_secs_f64());
        self.latencies.push(latency);
        events(LiveEvent::Published {
            position,
            latency_s: latency,
            dropped: self.dropped,
            repeated: self.repeated,
        });
        Ok(())
    }

    /// Deletes the segments before `first_kept` and forgets them.
    fn forget(&mut self, first_kept: u32) -> Result<(), EmbedError> {
        let gone: Vec<(u32, usize, Vec<u32>)> = self
            .state
            .segments
            .iter()
            .take_while(|s| s.position < first_kept)
            .map(|s| {
                let audio = s.audio_parts.iter().map(|a| a.index).collect();
                (s.position, s.parts.len(), audio)
            })
            .collect();
        let audio_dir = self.state.audio.as_ref().map(|a| self.out.join(&a.name));
        for (p, parts, audio_parts) in gone {
            let names: Vec<String> = std::iter::once(crate::manifest::segment_name(p))
                .chain((0..parts as u32).map(|j| part_file_name(p, j)))
                .collect();
            if let Some(dir) = &audio_dir {
                // The parts first: the playlists stopped listing them with their segment.
                for j in audio_parts {
                    remove_if_there(&dir.join(part_file_name(p, j)))?;
                }
                remove_if_there(&dir.join(crate::manifest::segment_name(p)))?;
            }
            for r in self.ladder.renditions() {
                // The sidecar first: the edge stops serving the position before its files go.
                for sub in [SIDECAR_DIR, "a", "b"] {
                    for name in &names {
                        remove_if_there(&self.out.join(&r.name).join(sub).join(name))?;
                    }
                }
            }
        }
        self.state.forget_before(first_kept);
        Ok(())
    }

    fn renditions(&self, runs: &[RenditionRun]) -> Vec<RenditionManifest> {
        runs.iter()
            .map(|run| {
                let cap = u64::from(run.r.max_kbps.unwrap_or(0)) * 1000;
                RenditionManifest {
                    name: run.r.name.clone(),
                    width: run.r.width,
                    height: run.r.height,
                    codec: run.codec.clone(),
                    colour: run.colour,
                    peak_bps: cap,
                    average_bps: cap / 2,
                    durations: Vec::new(),
                }
            })
            .collect()
    }

    /// Playlists, MPD and `live.json` for the segments held now (after a part: the playlists
    /// and `live.json`; the MPD changes with whole segments only).
    fn write_manifests(
        &mut self,
        runs: &[RenditionRun],
        segment_done: bool,
    ) -> Result<(), EmbedError> {
        let listed_from = self
            .state
            .segments
            .len()
            .saturating_sub(self.cfg.window as usize);
        let listed: Vec<Segment> = self.state.segments[listed_from..].to_vec();
        let renditions = self.renditions(runs);
        let audios: Vec<crate::manifest::AudioManifest> =
            self.audio.iter().map(audio::LiveAudio::manifest).collect();
        if !listed.is_empty() || self.state.open.is_some() {
            // The audio playlist first: it lists what the video's will (with low-latency
            // parts, as soon as the video's is written, which may be before a whole segment).
            if let Some(a) = &self.state.audio
                && (!listed.is_empty() || self.part_frames.is_some())
            {
                let text = manifest::hls_live_audio_media(&self.state, &listed)?;
                write_atomic(
                    &self.out.join(&a.name).join(MEDIA_PLAYLIST),
                    text.as_bytes(),
                )?;
            }
            let media = manifest::hls_live_media(&self.state, &listed)?;
            for r in &renditions {
                write_atomic(
                    &self.out.join(&r.name).join(MEDIA_PLAYLIST),
                    media.as_bytes(),
                )?;
            }
            if !self.master_written && renditions.iter().all(|r| !r.codec.is_empty()) {
                let master =
                    crate::manifest::hls_master(&renditions, &audios, &[], self.fr.as_f64(), None)?;
                write_atomic(&self.out.join(MASTER_PLAYLIST), master.as_bytes())?;
                self.master_written = true;
            }
            if segment_done && !listed.is_empty() {
                let mpd = manifest::dash_live_mpd(
                    &self.state,
                    &listed,
                    &renditions,
                    audios.first(),
                    now_ms(),
                )?;
                write_atomic(&self.out.join(MPD_NAME), mpd.as_bytes())?;
            }
        }
        self.state.save(&self.out)
    }
}
