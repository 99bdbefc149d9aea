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
//!
//! **Low-latency parts.** On a channel with parts the audio is cut on the video's part
//! boundaries: audio part *j* of position *p* (`seg_00042.p3.m4s`, the number of the video
//! part) holds the AAC frames that start in the time span of video part *j*, as a CMAF chunk
//! (`moof` + `mdat`, its `tfdt` at its first frame; the position's first part after a
//! `styp`), so the parts of a position, in order, are its whole audio segment. A part is
//! written as soon as its audio is encoded and its video part is out. Audio never lags the
//! picture by more than a part: when video part *j* is published, the audio parts before it
//! are completed with silence if their audio is still missing, and a position's last part when
//! the next position's video is ready. A span in which no AAC frame starts (a last video part
//! shorter than an AAC frame) has no audio part; its frames go to the next one.

use super::state::{AudioPart, AudioState, write_atomic};
use super::{LiveEvent, first_slot, slot_ticks};
use crate::EmbedError;
use crate::manifest::{AudioManifest, INIT_NAME, segment_name};
use leaktrace_core::{SegmentDuration, part_file_name};
use leaktrace_media::audio::{AAC_FRAME, SAMPLE_RATE};
use leaktrace_media::live_audio::{AacFrame, LiveAacEncoder, PcmChunk, aac_chunk, aac_segment};
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
/// `language`, and the language: `audio-<language>` with the tag made canonical as in a file
/// package (`eng` → `en`), `audio-und` when it has none (or one that is not a tag).
pub fn rendition_name(language: Option<&str>) -> (String, String) {
    let lang = language
        .map(crate::subtitles::canonical_language)
        .filter(|l| crate::subtitles::valid_language(l))
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
    /// Fragment sequence number of the last audio part.
    sequence: u32,
    /// With low-latency parts: the parts of the position being published.
    open: Option<OpenAudio>,
}

/// The audio parts of the position being published.
#[derive(Debug)]
struct OpenAudio {
    position: u32,
    /// The next video part to cut audio for.
    next: u32,
    parts: Vec<AudioPart>,
    /// The segment's bytes so far: its parts, in order.
    bytes: Vec<u8>,
    /// Where its first part starts (48 kHz samples).
    start: u64,
    /// Samples in its parts.
    duration: u64,
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
            sequence: 0,
            open: None,
        })
    }

    /// Where frame `slot` of the channel's clock starts on the audio timeline.
    pub(super) fn slot_start(&self, slot: u64) -> u64 {
        to_audio(slot_ticks(self.fr, slot))
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
        self.fill_until(
            self.position_start(position.saturating_add(1)),
            position,
            events,
        )
    }

    /// Completes the audio up to `end` (samples) with silence, for `position`.
    fn fill_until(
        &mut self,
        end: u64,
        position: u32,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<(), EmbedError> {
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

    /// Cuts audio parts of `position` for its video parts out so far, whose ends (on the audio
    /// timeline, see [`LiveAudio::slot_start`]) are `ends`: part *j* holds the frames that
    /// start before `ends[j]` and are in no earlier part. Each part is written (beside its
    /// name, then renamed) once its audio is encoded; the parts before `force` are completed
    /// with silence when it is not. Returns whether a part was written.
    pub(super) fn cut_parts(
        &mut self,
        position: u32,
        ends: &[u64],
        force: usize,
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<bool, EmbedError> {
        let mut open = match self.open.take() {
            Some(o) if o.position == position => o,
            _ => OpenAudio {
                position,
                next: 0,
                parts: Vec::new(),
                bytes: Vec::new(),
                start: 0,
                duration: 0,
            },
        };
        let mut written = false;
        while let Some(&end) = ends.get(open.next as usize) {
            let j = open.next;
            if self.next_out < end {
                if (j as usize) >= force {
                    break;
                }
                self.fill_until(end, position, events)?;
            }
            open.next += 1;
            let n = self.frames.iter().take_while(|f| f.time < end).count();
            if n == 0 {
                continue;
            }
            let frames: Vec<AacFrame> = self.frames.drain(..n).collect();
            let first = open.parts.is_empty();
            self.sequence = self.sequence.wrapping_add(1);
            let bytes = aac_chunk(self.sequence, self.enc.init().track_id, &frames, first)?;
            write_atomic(&self.dir.join(part_file_name(position, j)), &bytes)?;
            let duration: u64 = frames.iter().map(|f| u64::from(f.duration)).sum();
            if first {
                open.start = frames[0].time;
            }
            open.duration += duration;
            open.bytes.extend_from_slice(&bytes);
            open.parts.push(AudioPart { index: j, duration });
            written = true;
        }
        self.open = Some(open);
        Ok(written)
    }

    /// The audio parts of `position` out so far: `[start, duration]` (48 kHz samples) and the
    /// parts; `None` before its first.
    pub(super) fn parts_of(&self, position: u32) -> Option<([u64; 2], Vec<AudioPart>)> {
        self.open
            .as_ref()
            .filter(|o| o.position == position && !o.parts.is_empty())
            .map(|o| ([o.start, o.duration], o.parts.clone()))
    }

    /// Whether audio was cut for the first `n` video parts of `position`.
    pub(super) fn parts_done(&self, position: u32, n: usize) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.position == position && o.next as usize >= n)
    }

    /// Completes `position`'s audio parts for its video parts, whose ends are `ends` (the last
    /// is the position's end unless the run ended in it), with silence where the audio is
    /// missing, and writes its whole audio segment: its parts, in order. Returns
    /// `[start, duration]` and the parts.
    pub(super) fn finish_parts(
        &mut self,
        position: u32,
        ends: &[u64],
        events: &mut dyn FnMut(LiveEvent),
    ) -> Result<([u64; 2], Vec<AudioPart>), EmbedError> {
        // A position cut short (the run ends) ends with its video.
        let whole = [self.position_start(position.saturating_add(1))];
        let ends = if ends.is_empty() { &whole[..] } else { ends };
        self.cut_parts(position, ends, ends.len(), events)?;
        let Some(open) = self.open.take().filter(|o| o.position == position) else {
            return Err(EmbedError::Mismatch("no audio parts for a position"));
        };
        if open.parts.is_empty() {
            return Err(EmbedError::Mismatch(
                "no audio for a position being published",
            ));
        }
        write_atomic(&self.dir.join(segment_name(position)), &open.bytes)?;
        Ok(([open.start, open.duration], open.parts))
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
        assert_eq!(rendition_name(Some("eng")).0, "audio-en");
        assert_eq!(rendition_name(Some("pt-BR")).0, "audio-pt-BR");
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

    #[test]
    fn parts_are_cut_on_the_video_parts_and_make_the_whole_segment() {
        let dir = tempfile::tempdir().unwrap();
        let fr = Rational { num: 25, den: 1 };
        let seg = SegmentDuration::DEFAULT;
        let state = AudioState {
            name: "audio-eng".into(),
            language: "eng".into(),
            channels: 2,
            codec: String::new(),
            bitrate: 128_000,
        };
        let mut a = LiveAudio::start(dir.path(), state, fr, seg, 3).unwrap();
        let p3 = a.position_start(3);
        let p4 = a.position_start(4);
        // Video parts of 12 frames (0.48 s): the position's frames 150..200.
        let ends: Vec<u64> = [162, 174, 186, 198, 200]
            .iter()
            .map(|&s| a.slot_start(s))
            .collect();
        assert_eq!(ends[0], p3 + 23_040);
        assert_eq!(ends[4], p4);
        let mut log = Vec::new();
        // 0.8 s of tone from the position's start.
        let tone: Vec<f32> = (0..38_400)
            .map(|i| ((i % 80) as f32 / 80.0) - 0.5)
            .collect();
        let chunk = PcmChunk {
            time: Some(6.0),
            planes: vec![tone.clone(), tone],
        };
        a.feed(vec![chunk], Some, 6.8, &mut |e| log.push(e))
            .unwrap();
        // The first video part is out: its audio is there.
        assert!(a.cut_parts(3, &ends[..1], 0, &mut |e| log.push(e)).unwrap());
        let ([start, d0], parts) = a.parts_of(3).unwrap();
        assert_eq!((start, parts.len()), (p3, 1));
        assert!(d0.abs_diff(ends[0] - p3) < u64::from(AAC_FRAME), "{d0}");
        // Three are out and the audio stops short of the second: it waits, unless forced.
        assert!(!a.cut_parts(3, &ends[..3], 1, &mut |e| log.push(e)).unwrap());
        assert!(a.parts_done(3, 1) && !a.parts_done(3, 2));
        assert!(log.is_empty(), "{log:?}");
        assert!(a.cut_parts(3, &ends[..3], 2, &mut |e| log.push(e)).unwrap());
        assert!(a.parts_done(3, 2) && !a.parts_done(3, 3));
        assert_eq!(log.len(), 1, "silence is logged: {log:?}");
        let (timing, parts) = a.finish_parts(3, &ends, &mut |e| log.push(e)).unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(
            parts.iter().map(|p| p.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(timing[0], p3);
        assert_eq!(timing[1], parts.iter().map(|p| p.duration).sum::<u64>());
        assert!(
            (timing[0] + timing[1]).abs_diff(p4) < u64::from(AAC_FRAME),
            "{timing:?}"
        );
        // The parts, in order, are the whole segment; each starts within a frame of its span.
        let adir = dir.path().join("audio-eng");
        let whole = std::fs::read(adir.join("seg_00003.m4s")).unwrap();
        let mut joined = Vec::new();
        let mut at = p3;
        for (p, span_start) in parts.iter().zip(std::iter::once(p3).chain(ends.clone())) {
            let bytes = std::fs::read(adir.join(part_file_name(3, p.index))).unwrap();
            let mut file = a.enc.init().bytes.clone();
            file.extend(&bytes);
            let split = leaktrace_media::cmaf::split(&file).unwrap();
            let tfdt = split.fragments[0].decode_time;
            assert_eq!(tfdt, at);
            assert!((span_start..span_start + u64::from(AAC_FRAME)).contains(&tfdt));
            at += p.duration;
            joined.extend(bytes);
        }
        assert_eq!(joined, whole);
        assert_eq!(&whole[4..8], b"styp");

        // A span in which no AAC frame starts has no part; its neighbour carries on.
        let frame = |n: u64| timing[0] + timing[1] + n * u64::from(AAC_FRAME);
        let ends = [frame(5) + 1, frame(5) + 2, a.position_start(5)];
        let (_, parts) = a.finish_parts(4, &ends, &mut |e| log.push(e)).unwrap();
        assert_eq!(parts.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 2]);
        assert!(!adir.join(part_file_name(4, 1)).exists());
        assert_eq!(parts[0].duration, 6 * u64::from(AAC_FRAME));
    }
}
