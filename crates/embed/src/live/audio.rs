//! The audio rendition of a live channel: the feed's audio, encoded to AAC-LC at 48 kHz and cut
//! into one segment per position on the channel's timeline (the same for every viewer).
//!
//! The channel's audio timeline is its media time at 48 kHz: position *p* starts at its first
//! frame's media time, rescaled. Audio is placed on it through the video's frame clock: a
//! sample at source time *t* goes where a frame at *t* would, so each source open (a restart,
//! a reopen after a stall, a new sender) anchors its audio to the position where the channel
//! resumes. The encoder runs on across reopens: a gap is filled with silence, audio that
//! overlaps what was already encoded is dropped, and jitter under 10 ms is absorbed. Segment
//! *p* holds the AAC frames that start in position *p* (as in a VOD package), so its `tfdt` is
//! within one AAC frame after the position's start and the segments are contiguous.
//!
//! A position is published once its audio is encoded; when the feed's audio is missing or
//! late (the video is more than [`AUDIO_WAIT_S`] ahead, the source is lost, or the run ends),
//! the position's audio is completed with silence and the channel logs it once.

use super::state::{AudioState, write_atomic};
use super::{LiveEvent, first_slot, slot_ticks};
use crate::EmbedError;
use crate::manifest::{AudioManifest, INIT_NAME, segment_name};
use leaktrace_core::SegmentDuration;
use leaktrace_media::audio::{AAC_FRAME, SAMPLE_RATE};
use leaktrace_media::live_audio::{AacFrame, LiveAacEncoder, PcmChunk, aac_segment};
use leaktrace_media::{Rational, TRACK_TIMESCALE};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// How far (seconds of channel time) the video may run ahead of a position's end before the
/// position's missing audio is filled with silence.
pub const AUDIO_WAIT_S: f64 = 2.0;

/// Source timestamps that land this close (samples) to where the audio already is are taken as
/// contiguous: 10 ms.
const JITTER: i64 = SAMPLE_RATE as i64 / 100;

/// Audio further ahead of the picture than this (samples) is dropped: 2 s.
const MAX_LEAD: i64 = 2 * SAMPLE_RATE as i64;

/// The directory name of a channel's audio rendition for a feed whose language tag is
/// `language`: `audio-<language>`, `audio-und` when it has none (or one that is not a tag).
pub fn rendition_name(language: Option<&str>) -> (String, String) {
    let lang = language
        .map(str::to_ascii_lowercase)
        .filter(|l| {
            (2..=35).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        })
        .unwrap_or_else(|| "und".to_owned());
    (format!("audio-{lang}"), lang)
}

/// Media time in the track timescale rescaled to 48 kHz samples.
fn to_audio(ticks: u64) -> u64 {
    let ts = u128::from(TRACK_TIMESCALE);
    ((u128::from(ticks) * u128::from(SAMPLE_RATE) + ts / 2) / ts) as u64
}

/// The live audio rendition of one run of a channel.
pub(super) struct LiveAudio {
    pub(super) state: AudioState,
    dir: PathBuf,
    enc: LiveAacEncoder,
    frames: VecDeque<AacFrame>,
    /// Where the last frame out ends.
    next_out: u64,
    fr: Rational,
    segment: SegmentDuration,
    /// Silence is standing in for the feed's audio (logged once until it comes back).
    silent: bool,
}

impl LiveAudio {
    /// The rendition `state` under `out`, encoding from `first_position` on: its directory
    /// and init segment are written.
    pub(super) fn start(
        out: &Path,
        state: AudioState,
        fr: Rational,
        segment: SegmentDuration,
        first_position: u32,
    ) -> Result<Self, EmbedError> {
        let dir = out.join(&state.name);
        std::fs::create_dir_all(&dir).map_err(|source| EmbedError::Io {
            path: dir.clone(),
            source,
        })?;
        let start = to_audio(slot_ticks(fr, first_slot(segment, fr, first_position)));
        let language = (state.language != "und").then_some(state.language.as_str());
        let enc = LiveAacEncoder::new(state.channels, state.bitrate, start, &dir, language)?;
        write_atomic(&dir.join(INIT_NAME), &enc.init().bytes)?;
        let mut state = state;
        state.codec = enc.init().codec.clone();
        Ok(Self {
            state,
            dir,
            enc,
            frames: VecDeque::new(),
            next_out: start,
            fr,
            segment,
            silent: false,
        })
    }

    /// Where `position` starts on the audio timeline.
    fn position_start(&self, position: u32) -> u64 {
        to_audio(slot_ticks(
            self.fr,
            first_slot(self.segment, self.fr, position),
        ))
    }

    fn take(&mut self, frames: Vec<AacFrame>) {
        if let Some(last) = frames.last() {
            self.next_out = last.time + u64::from(last.duration);
        }
        self.frames.extend(frames);
    }

    /// Encodes decoded audio: `place` maps a source time to channel seconds (`None` before the
    /// video's clock is anchored); `video_s` is where the video is, channel seconds.
    pub(super) fn feed(
        &mut self,
        chunks: Vec<PcmChunk>,
        place: impl Fn(f64) -> Option<f64>,
        video_s: f64,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        let rate = f64::from(SAMPLE_RATE);
        let video = (video_s * rate).round() as i64;
        for chunk in chunks {
            let n = chunk.len();
            let next = self.enc.next_input() as i64;
            let at = chunk
                .time
                .and_then(&place)
                .map_or(next, |s| (s * rate).round() as i64);
            if n == 0 || at > video + MAX_LEAD {
                continue;
            }
            let at = if at.abs_diff(next) <= JITTER as u64 {
                next
            } else {
                at
            };
            let skip = (next - at).max(0) as usize;
            if skip >= n {
                continue;
            }
            if at > next {
                let frames = self.enc.push_silence((at - next) as usize)?;
                self.take(frames);
            }
            let planes: Vec<&[f32]> = chunk.planes.iter().map(|p| &p[skip..]).collect();
            let frames = self.enc.push(&planes)?;
            self.take(frames);
            if self.silent {
                self.silent = false;
                events(LiveEvent::Audio {
                    message: format!(
                        "the feed's audio is back at {:.3} s of channel time",
                        at as f64 / rate
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether every frame that starts in `position` is encoded.
    pub(super) fn ready(&self, position: u32) -> bool {
        self.next_out >= self.position_start(position.saturating_add(1))
    }

    /// Completes `position`'s audio with silence (the feed's audio is missing or late).
    pub(super) fn fill(
        &mut self,
        position: u32,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
        let end = self.position_start(position.saturating_add(1));
        // The encoder gives a frame about two frames after its samples went in.
        for _ in 0..64 {
            if self.next_out >= end {
                break;
            }
            let want = (end + 2 * u64::from(AAC_FRAME)).saturating_sub(self.enc.next_input());
            let frames = self
                .enc
                .push_silence(want.max(u64::from(AAC_FRAME)) as usize)?;
            self.take(frames);
        }
        if self.next_out < end {
            return Err(EmbedError::Encoder(format!(
                "the AAC encoder gave no audio for position {position}"
            )));
        }
        if !self.silent {
            self.silent = true;
            events(LiveEvent::Audio {
                message: format!(
                    "no audio from the feed for position {position}: silence until it comes back"
                ),
            });
        }
        Ok(())
    }

    /// Writes `position`'s audio segment (beside its name, then renamed); returns its
    /// `[start, duration]` in 48 kHz samples.
    pub(super) fn publish(&mut self, position: u32) -> Result<[u64; 2], EmbedError> {
        let end = self.position_start(position.saturating_add(1));
        let n = self.frames.iter().take_while(|f| f.time < end).count();
        let frames: Vec<AacFrame> = self.frames.drain(..n).collect();
        let Some(first) = frames.first() else {
            return Err(EmbedError::Mismatch(
                "no audio for a position being published",
            ));
        };
        let start = first.time;
        let duration = frames.iter().map(|f| u64::from(f.duration)).sum();
        let bytes = aac_segment(
            position.saturating_add(1),
            self.enc.init().track_id,
            &frames,
        )?;
        write_atomic(&self.dir.join(segment_name(position)), &bytes)?;
        Ok([start, duration])
    }

    /// What the multivariant playlist and the MPD say of it.
    pub(super) fn manifest(&self) -> AudioManifest {
        manifest_of(&self.state)
    }
}

/// What the manifests say of the audio rendition `a`.
pub(super) fn manifest_of(a: &AudioState) -> AudioManifest {
    let bps = u64::from(a.bitrate) * u64::from(a.channels.max(1)) / 2;
    AudioManifest {
        name: a.name.clone(),
        language: a.language.clone(),
        label: if a.language == "und" {
            "Audio".to_owned()
        } else {
            a.language.clone()
        },
        role: "main",
        default: true,
        codec: a.codec.clone(),
        channels: a.channels,
        sample_rate: SAMPLE_RATE,
        // AAC's frames vary around the target: the peak a little above it.
        peak_bps: bps + bps / 10,
        average_bps: bps,
        durations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_names_follow_the_language_tag() {
        assert_eq!(rendition_name(Some("eng")).0, "audio-eng");
        assert_eq!(rendition_name(Some("pt-BR")).0, "audio-pt-br");
        assert_eq!(rendition_name(None), ("audio-und".into(), "und".into()));
        assert_eq!(rendition_name(Some("../x")).0, "audio-und");
        assert_eq!(rendition_name(Some("")).0, "audio-und");
    }

    #[test]
    fn the_audio_timeline_is_the_media_time_at_48_khz() {
        assert_eq!(to_audio(90_000), 48_000);
        assert_eq!(to_audio(3_003), 1_602); // one 29.97-fps frame, rounded
    }

    #[test]
    fn positions_fill_contiguously_and_late_audio_is_replaced_by_silence() {
        let dir = tempfile::tempdir().unwrap();
        let fr = Rational { num: 25, den: 1 };
        let seg = SegmentDuration::DEFAULT;
        let state = AudioState {
            name: "audio-und".into(),
            language: "und".into(),
            channels: 2,
            codec: String::new(),
            bitrate: 128_000,
        };
        let mut a = LiveAudio::start(dir.path(), state, fr, seg, 3).unwrap();
        assert_eq!(a.state.codec, "mp4a.40.2");
        assert!(dir.path().join("audio-und/init.mp4").is_file());
        let p3 = a.position_start(3);
        let p4 = a.position_start(4);
        assert_eq!(p3, 3 * 2 * 48_000);
        let mut log = Vec::new();
        // 2.5 s of tone, its source clock 100 s ahead of the channel's.
        let tone: Vec<f32> = (0..120_000)
            .map(|i| ((i % 100) as f32 / 100.0) - 0.5)
            .collect();
        let chunk = PcmChunk {
            time: Some(106.0),
            planes: vec![tone.clone(), tone],
        };
        a.feed(vec![chunk], |t| Some(t - 100.0), 8.0, &mut |e| log.push(e))
            .unwrap();
        assert!(a.ready(3));
        let [start, duration] = a.publish(3).unwrap();
        assert_eq!(start, p3);
        assert!(
            duration.abs_diff(p4 - p3) < u64::from(AAC_FRAME),
            "{duration}"
        );
        assert!(dir.path().join("audio-und/seg_00003.m4s").is_file());
        // No more audio: position 4 is completed with silence, logged once.
        assert!(!a.ready(4));
        a.fill(4, &mut |e| log.push(e)).unwrap();
        a.fill(5, &mut |e| log.push(e)).unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        let [s4, d4] = a.publish(4).unwrap();
        assert_eq!(s4, start + duration);
        let [s5, _] = a.publish(5).unwrap();
        assert_eq!(s5, s4 + d4);
        assert!(s4 >= p4 && s4 < p4 + u64::from(AAC_FRAME));
    }
}
