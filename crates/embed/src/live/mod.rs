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
//!   reference/                       the reference index, appended position by position
//! ```
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
//! **Restarts.** A position is served only once its sidecars exist, and its sidecars are
//! written after its reference record. After a crash the channel resumes at the position after
//! the last one in the reference index, and deletes every file of a later position first (none
//! of them was ever served): no position is ever served with two different pictures. The
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

pub mod manifest;
pub mod state;

use crate::ladder::{Ladder, Rendition};
use crate::manifest::{INIT_NAME, MASTER_PLAYLIST, MEDIA_PLAYLIST, MPD_NAME, RenditionManifest};
use crate::pipeline::cell_amplitudes;
use crate::{EmbedConfig, EmbedError, Embedder, LumaPlane, MaskParams};
use leaktrace_core::wmpaceinfo::{PaceInfo, SIDECAR_DIR, Sidecar};
use leaktrace_core::{
    MasterKey, Position, SegmentDuration, TitleId, Variant, segment_file_position,
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
            mask: MaskParams::default(),
            window: 10,
            keep: 30,
            realtime: false,
            loop_input: false,
            stall: Duration::from_secs(5),
            reconnect: Duration::from_secs(1),
            max_positions: None,
        }
    }

    fn check(&self) -> Result<(), EmbedError> {
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
    let Some(first_decoder) = decoder.as_ref() else {
        return Err(EmbedError::Mismatch("no source"));
    };
    let (sw, sh) = first_decoder.size();
    crate::plane::check_geometry(sw, sh)?;
    let layout = first_decoder.layout();
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
    });
    state.ended = false;
    state.segments.retain(|s| s.position < first_position);
    let resumed = first_position > 0;
    if resumed {
        events(LiveEvent::Resumed {
            position: first_position,
        });
    }
    remove_unpublished(out, &ladder, first_position)?;
    write_title_json(out, cfg, key, &ladder, fr)?;

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
        published: 0,
        first_of_run: true,
        period_anchor: None,
        latencies: Vec::new(),
        dropped: 0,
        repeated: 0,
        master_written: false,
    };
    let (tx, rx) = mpsc::channel();
    let mut runs = open_runs(&ladder, cfg, layout, fr, &tx)?;
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
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break 'channel;
                    }
                    if !file_end {
                        std::thread::sleep(cfg.reconnect);
                    }
                    match Decoder::open_live(source, Limits::default(), cfg.stall) {
                        Ok(d) => {
                            let (w, h) = d.size();
                            events(LiveEvent::SourceOpened {
                                width: w,
                                height: h,
                                frame_rate: d.frame_rate().as_f64(),
                            });
                            source_size = (w, h);
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
    channel.drain(&rx, &mut runs, events)?;
    channel.state.ended = file_ended;
    channel.write_manifests(&runs)?;
    let mut lat = channel.latencies.clone();
    lat.sort_by(f64::total_cmp);
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
        latency_median_s: lat.get(lat.len() / 2).copied().unwrap_or(0.0),
        latency_max_s: lat.last().copied().unwrap_or(0.0),
        max_lag_s: max_lag,
    })
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
    layout: PixelLayout,
    fr: Rational,
    tx: &mpsc::Sender<Msg>,
) -> Result<Vec<RenditionRun>, EmbedError> {
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
    let bit_depth = frame.layout.bit_depth();
    for (ji, run) in runs.iter_mut().enumerate() {
        let (w, h) = (run.r.width, run.r.height);
        let src = (frame.width, frame.height);
        let scaled = if src == (w, h) {
            frame.clone()
        } else {
            let rebuild = run.scaler.as_ref().is_none_or(|(s, _)| *s != src);
            if rebuild {
                run.scaler = Some((src, Scaler::new(src, (w, h), frame.layout)?));
            }
            match run.scaler.as_mut() {
                Some((_, s)) => s.scale(frame)?,
                None => return Err(EmbedError::Mismatch("no scaler for the rendition")),
            }
        };
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

/// Remove every file of a position at or after `from` (never served: its sidecars come last).
fn remove_unpublished(out: &Path, ladder: &Ladder, from: u32) -> Result<(), EmbedError> {
    for r in ladder.renditions() {
        for sub in ["a", "b", SIDECAR_DIR] {
            let dir = out.join(&r.name).join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let stale = segment_file_position(&name).is_some_and(|p| p >= from)
                    || name.starts_with('.');
                if stale {
                    std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
                }
            }
        }
    }
    Ok(())
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
    /// Positions started by this run, not yet published (the k-th fragment of each encoder).
    run_positions: VecDeque<u32>,
    /// When each of them started: wall clock and monotonic.
    wall_of: VecDeque<(u32, i64, Instant)>,
    published: u32,
    first_of_run: bool,
    /// (wall ms − media ms) of the current period.
    period_anchor: Option<i64>,
    latencies: Vec<f64>,
    dropped: u64,
    repeated: u64,
    master_written: bool,
}

impl Channel<'_> {
    /// Takes what the readers sent and publishes every position that is complete.
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
        loop {
            let ready = runs
                .iter()
                .all(|r| r.streams.iter().all(|s| !s.fragments.is_empty()));
            let Some(&position) = self.run_positions.front() else {
                return Ok(());
            };
            let record_ready = self
                .pending_reference
                .front()
                .is_some_and(|c| c.position.get() == position);
            if !ready || !record_ready {
                return Ok(());
            }
            self.publish(runs, position, events)?;
        }
    }

    fn publish(
        &mut self,
        runs: &mut [RenditionRun],
        position: u32,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        let p = Position::new(position);
        let wire = p.to_wire_wrapping();
        let media_start = slot_ticks(self.fr, first_slot(self.cfg.segment, self.fr, position));
        let mut duration = 0;
        for run in runs.iter_mut() {
            let rdir = self.out.join(&run.r.name);
            let mut frags: Vec<Fragment> = Vec::with_capacity(2);
            for s in &mut run.streams {
                frags.push(
                    s.fragments
                        .pop_front()
                        .ok_or(EmbedError::Mismatch("a fragment went missing"))?,
                );
            }
            if frags[0].duration != frags[1].duration || !frags.iter().all(|f| f.starts_with_sync) {
                return Err(EmbedError::Encoder(format!(
                    "{} position {position}: A and B fragments differ in timing or do not start \
                     with a keyframe",
                    run.r.name
                )));
            }
            let shift = *run
                .shift
                .get_or_insert(i128::from(media_start) - i128::from(frags[0].decode_time));
            duration = frags[0].duration;
            for (vi, mut f) in frags.into_iter().enumerate() {
                let t = u64::try_from(i128::from(f.decode_time) + shift)
                    .map_err(|_| EmbedError::Mismatch("negative media time"))?;
                f.set_decode_time(t)?;
                let variant = Variant::BOTH[vi];
                let wmpi = PaceInfo::new(variant.id(), Some(wire), true, true).to_wmpi_box()?;
                let seg = leaktrace_media::cmaf::media_segment(&f, &[&wmpi]);
                let dir = rdir.join(variant.dir());
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                write_atomic(&dir.join(crate::manifest::segment_name(position)), &seg)?;
            }
        }
        // The reference record, then the sidecars (from here on the edge serves it).
        let record = self
            .pending_reference
            .pop_front()
            .ok_or(EmbedError::Mismatch("a reference record went missing"))?;
        self.appender.append(&record)?;
        for run in runs.iter() {
            let sdir = self.out.join(&run.r.name).join(SIDECAR_DIR);
            std::fs::create_dir_all(&sdir).map_err(io(&sdir))?;
            if !sdir.join(INIT_NAME).exists() {
                write_atomic(
                    &sdir.join(INIT_NAME),
                    &Sidecar::for_discrete_segment(None).to_cbor()?,
                )?;
            }
            write_atomic(
                &sdir.join(crate::manifest::segment_name(position)),
                &Sidecar::for_discrete_segment(Some(wire)).to_cbor()?,
            )?;
        }
        self.run_positions.pop_front();
        let (wall_ms, arrived) = match self.wall_of.front() {
            Some(&(q, w, i)) if q == position => {
                self.wall_of.pop_front();
                (w, Some(i))
            }
            _ => (now_ms(), None),
        };
        // A new period when the packager restarted or the wall clock left the media clock by
        // more than a segment (a stall).
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
        let period = self.state.periods.last().map_or(0, |p| p.id);
        self.state.segments.push(Segment {
            position,
            media_start,
            duration,
            wall_ms: wall,
            period,
            discontinuity: self.first_of_run && !self.state.segments.is_empty(),
        });
        self.first_of_run = false;
        self.published += 1;
        let keep_from = position
            .saturating_add(1)
            .saturating_sub(self.cfg.window + self.cfg.keep);
        self.forget(keep_from)?;
        self.write_manifests(runs)?;
        let latency = arrived.map_or(0.0, |i| i.elapsed().as_secs_f64());
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
        let gone: Vec<u32> = self
            .state
            .segments
            .iter()
            .take_while(|s| s.position < first_kept)
            .map(|s| s.position)
            .collect();
        for p in gone {
            for r in self.ladder.renditions() {
                // The sidecar first: the edge stops serving the position before its files go.
                for sub in [SIDECAR_DIR, "a", "b"] {
                    let f = self
                        .out
                        .join(&r.name)
                        .join(sub)
                        .join(crate::manifest::segment_name(p));
                    match std::fs::remove_file(&f) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&f)(e)),
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
                    peak_bps: cap,
                    average_bps: cap / 2,
                    durations: Vec::new(),
                }
            })
            .collect()
    }

    /// Playlists, MPD and `live.json` for the segments held now.
    fn write_manifests(&mut self, runs: &[RenditionRun]) -> Result<(), EmbedError> {
        let listed_from = self
            .state
            .segments
            .len()
            .saturating_sub(self.cfg.window as usize);
        let listed: Vec<Segment> = self.state.segments[listed_from..].to_vec();
        let renditions = self.renditions(runs);
        if !listed.is_empty() {
            let media = manifest::hls_live_media(&self.state, &listed)?;
            for r in &renditions {
                write_atomic(
                    &self.out.join(&r.name).join(MEDIA_PLAYLIST),
                    media.as_bytes(),
                )?;
            }
            if !self.master_written && renditions.iter().all(|r| !r.codec.is_empty()) {
                let master =
                    crate::manifest::hls_master(&renditions, &[], &[], self.fr.as_f64(), None)?;
                write_atomic(&self.out.join(MASTER_PLAYLIST), master.as_bytes())?;
                self.master_written = true;
            }
            let mpd = manifest::dash_live_mpd(&self.state, &listed, &renditions, now_ms())?;
            write_atomic(&self.out.join(MPD_NAME), mpd.as_bytes())?;
        }
        self.state.save(&self.out)
    }
}
