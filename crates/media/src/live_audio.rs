//! Audio of a live source, for a live channel's audio rendition: the source's best audio
//! stream decoded as the live [`crate::Decoder`] reads it ([`crate::Decoder::enable_audio`],
//! [`crate::Decoder::take_audio`]), and a streaming AAC-LC encoder ([`LiveAacEncoder`]):
//! samples in, AAC frames out as they come.
//!
//! The pieces are those of the VOD audio renditions ([`crate::audio`]): the same resampler
//! (48 kHz planar float), the same AAC-LC encoder settings and init segment, the same CMAF
//! fragments (one sync sample per AAC frame). A live rendition is mono for a mono source and
//! stereo for everything else (more channels are downmixed).
//!
//! **Timing.** The caller places samples on its own timeline (48 kHz samples, e.g. the
//! channel's media time). The encoder starts at `start`: its first frame (the encoder's
//! priming, 1024 samples) sits at `start`, and the first sample pushed is sample
//! `start + 1024`, so the frame that holds pushed sample *t* is at *t* on the caller's timeline,
//! with no edit list (as the VOD encode does by starting its input one frame into the source).

use crate::audio::{AAC_FRAME, Fifo, PLANAR, Resampler, aac_sample, mux_init, open_aac_encoder};
use crate::cmaf::{self, Init};
use crate::{MediaError, ff};
use ffmpeg_next as ffm;
use std::path::Path;

/// The audio stream a live decoder follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// FFmpeg's codec name of the source stream (`aac`, `mp2`, `ac3`, …).
    pub codec: String,
    /// The source stream's sample rate (Hz).
    pub sample_rate: u32,
    /// The source stream's channels.
    pub source_channels: u16,
    /// Channels of what [`crate::Decoder::take_audio`] gives (1 or 2).
    pub channels: u16,
    /// The stream's `language` tag, if it has one.
    pub language: Option<String>,
}

/// Decoded audio at [`crate::audio::SAMPLE_RATE`], planar float, one vector per channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PcmChunk {
    /// Presentation time of its first sample on the source's clock (seconds; the same clock
    /// as [`crate::Decoder::last_time`]), `None` when the stream gave none.
    pub time: Option<f64>,
    /// The samples, one vector per channel, all the same length.
    pub planes: Vec<Vec<f32>>,
}

impl PcmChunk {
    /// Samples per channel.
    pub fn len(&self) -> usize {
        self.planes.first().map_or(0, Vec::len)
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Channels of a live audio rendition for a source with `source_channels`: mono stays mono,
/// everything else is stereo.
pub fn live_channels(source_channels: u16) -> u16 {
    if source_channels == 1 { 1 } else { 2 }
}

fn layout_of(channels: u16) -> ffm::ChannelLayout {
    if channels == 1 {
        ffm::ChannelLayout::MONO
    } else {
        ffm::ChannelLayout::STEREO
    }
}

/// Most undecodable audio packets in a row before the tap gives up on the stream.
const MAX_FAILURES: u32 = 64;

/// Decodes one audio stream of a live input packet by packet (see
/// [`crate::Decoder::enable_audio`]).
pub(crate) struct AudioTap {
    index: usize,
    decoder: ffm::decoder::Audio,
    /// Seconds per time-base unit.
    tb: f64,
    resampler: Resampler,
    fifo: Fifo,
    chunks: Vec<PcmChunk>,
    failures: u32,
    pub(crate) info: AudioInfo,
}

impl AudioTap {
    /// The tap of `input`'s best audio stream, converted to `channels` (1 or 2; from the stream
    /// when `None`); `None` when the input has no audio stream.
    pub(crate) fn open(
        input: &ffm::format::context::Input,
        channels: Option<u16>,
    ) -> Result<Option<Self>, MediaError> {
        let Some(stream) = input.streams().best(ffm::media::Type::Audio) else {
            return Ok(None);
        };
        let tb = stream.time_base();
        let params = stream.parameters();
        let codec = format!("{:?}", params.id()).to_ascii_lowercase();
        let decoder = ffm::codec::context::Context::from_parameters(params)
            .and_then(|c| {
                let mut d = c.decoder();
                d.set_packet_time_base(tb);
                d.audio()
            })
            .map_err(|e| {
                MediaError::InvalidSetting(format!("no decoder for the {codec} audio ({e})"))
            })?;
        let source_channels = decoder.channels();
        let channels = channels.unwrap_or_else(|| live_channels(source_channels));
        let info = AudioInfo {
            codec,
            sample_rate: decoder.rate(),
            source_channels,
            channels,
            language: stream.metadata().get("language").map(str::to_owned),
        };
        Ok(Some(Self {
            index: stream.index(),
            decoder,
            tb: f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)),
            resampler: Resampler::new(layout_of(channels)),
            fifo: Fifo::new(usize::from(channels)),
            chunks: Vec::new(),
            failures: 0,
            info,
        }))
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Decodes one packet of the stream. A packet that does not decode is skipped (the
    /// decoder resynchronises on the next one); after [`MAX_FAILURES`] in a row the stream
    /// gives nothing more.
    pub(crate) fn packet(&mut self, packet: &ffm::Packet) {
        if self.failures >= MAX_FAILURES {
            return;
        }
        if self.decoder.send_packet(packet).is_err() {
            self.failures += 1;
            return;
        }
        let mut decoded = ffm::frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            let time = decoded
                .timestamp()
                .or(decoded.pts())
                .map(|t| t as f64 * self.tb);
            if self.resampler.run(&mut decoded, &mut self.fifo).is_err() {
                self.failures += 1;
                continue;
            }
            self.failures = 0;
            let planes: Vec<Vec<f32>> = self
                .fifo
                .channels
                .iter_mut()
                .map(|q| q.drain(..).collect())
                .collect();
            if planes.first().is_some_and(|p| !p.is_empty()) {
                self.chunks.push(PcmChunk { time, planes });
            }
        }
    }

    /// The audio decoded since the last call.
    pub(crate) fn take(&mut self) -> Vec<PcmChunk> {
        std::mem::take(&mut self.chunks)
    }
}

/// One encoded AAC frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacFrame {
    /// Its place on the caller's timeline (48 kHz samples).
    pub time: u64,
    /// Its duration (samples).
    pub duration: u32,
    /// The raw AAC frame.
    pub bytes: Vec<u8>,
}

/// A streaming AAC-LC encoder at [`crate::audio::SAMPLE_RATE`] (see the module docs for its timing).
pub struct LiveAacEncoder {
    encoder: ffm::encoder::Audio,
    layout: ffm::ChannelLayout,
    frame_size: usize,
    fifo: Fifo,
    /// Samples sent to the encoder.
    fed: u64,
    start: u64,
    init: Init,
    channels: u16,
}

impl std::fmt::Debug for LiveAacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveAacEncoder")
            .field("channels", &self.channels)
            .field("start", &self.start)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl LiveAacEncoder {
    /// An encoder of `channels` (1 or 2) at `bitrate` per stereo pair (in
    /// [`crate::audio::BITRATES`]) whose first frame sits at `start`; its init segment is
    /// muxed through a scratch file in `scratch` (an existing directory), tagged `language`.
    ///
    /// # Errors
    /// A bitrate or channel count out of range ([`MediaError::InvalidSetting`]), FFmpeg
    /// failures.
    pub fn new(
        channels: u16,
        bitrate: u32,
        start: u64,
        scratch: &Path,
        language: Option<&str>,
    ) -> Result<Self, MediaError> {
        crate::audio::check_bitrate(bitrate)?;
        if !(1..=2).contains(&channels) {
            return Err(MediaError::InvalidSetting(format!(
                "{channels} channels for a live audio rendition (expected 1 or 2)"
            )));
        }
        crate::init();
        let layout = layout_of(channels);
        let (encoder, frame_size) = open_aac_encoder(layout, bitrate)?;
        let init = mux_init(
            &scratch.join(".init.partial.mp4"),
            ffm::codec::Id::AAC,
            language,
            |ost| {
                ost.set_parameters(&encoder);
                Ok(())
            },
        )?;
        Ok(Self {
            encoder,
            layout,
            frame_size,
            fifo: Fifo::new(usize::from(channels)),
            fed: 0,
            start,
            init,
            channels,
        })
    }

    /// The init segment (`ftyp` + `moov`), its codec string and track id.
    pub fn init(&self) -> &Init {
        &self.init
    }

    /// Channels of the rendition.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Where on the caller's timeline the next sample pushed goes.
    pub fn next_input(&self) -> u64 {
        self.start + u64::from(AAC_FRAME) + self.fed + self.fifo.len() as u64
    }

    /// Pushes samples (one slice per channel; a missing channel repeats the first, extra ones
    /// are dropped); returns the frames the encoder gave.
    ///
    /// # Errors
    /// FFmpeg failures.
    pub fn push(&mut self, planes: &[&[f32]]) -> Result<Vec<AacFrame>, MediaError> {
        let Some(first) = planes.first() else {
            return Ok(Vec::new());
        };
        for (c, q) in self.fifo.channels.iter_mut().enumerate() {
            q.extend(planes.get(c).unwrap_or(first).iter().take(first.len()));
        }
        self.send()
    }

    /// Pushes `n` samples of silence.
    ///
    /// # Errors
    /// FFmpeg failures.
    pub fn push_silence(&mut self, n: usize) -> Result<Vec<AacFrame>, MediaError> {
        self.fifo.push_silence(n);
        self.send()
    }

    fn send(&mut self) -> Result<Vec<AacFrame>, MediaError> {
        let mut out = Vec::new();
        while self.fifo.len() >= self.frame_size {
            let mut f = self.fifo.pop_frame(self.frame_size, self.layout);
            debug_assert_eq!(f.format(), PLANAR);
            f.set_pts(Some(self.fed as i64));
            self.fed += f.samples() as u64;
            self.encoder
                .send_frame(&f)
                .map_err(ff("sending audio to the AAC encoder"))?;
            let mut packet = ffm::Packet::empty();
            loop {
                match self.encoder.receive_packet(&mut packet) {
                    Ok(()) => {
                        let t =
                            self.start as i64 + i64::from(AAC_FRAME) + packet.pts().unwrap_or(0);
                        if let (Ok(time), Some(bytes)) = (u64::try_from(t), packet.data()) {
                            let duration = match packet.duration() {
                                d if d > 0 => d as u32,
                                _ => AAC_FRAME,
                            };
                            out.push(AacFrame {
                                time,
                                duration,
                                bytes: bytes.to_vec(),
                            });
                        }
                    }
                    Err(ffm::Error::Other { errno }) if errno == ffm::util::error::EAGAIN => break,
                    Err(ffm::Error::Eof) => break,
                    Err(e) => {
                        return Err(MediaError::Ffmpeg {
                            doing: "receiving an AAC frame",
                            source: e,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A CMAF media segment (`styp`, `moof`, `mdat`) of consecutive AAC `frames` of track
/// `track_id`, its `tfdt` at the first frame's time; fragment sequence number `sequence`.
///
/// # Errors
/// No frame, or frames that are not consecutive ([`MediaError::InvalidSetting`]).
pub fn aac_segment(
    sequence: u32,
    track_id: u32,
    frames: &[AacFrame],
) -> Result<Vec<u8>, MediaError> {
    aac_chunk(sequence, track_id, frames, true)
}

/// A CMAF chunk (`moof`, `mdat`) of consecutive AAC `frames` of track `track_id`, its `tfdt` at
/// the first frame's time, after a `styp` when `first` (the first chunk of a segment): the
/// chunks of a segment, in order, are the segment's bytes. [`aac_segment`] is the one chunk of
/// a whole segment.
///
/// # Errors
/// No frame, or frames that are not consecutive ([`MediaError::InvalidSetting`]).
pub fn aac_chunk(
    sequence: u32,
    track_id: u32,
    frames: &[AacFrame],
    first: bool,
) -> Result<Vec<u8>, MediaError> {
    let Some(head) = frames.first() else {
        return Err(MediaError::InvalidSetting(
            "an audio segment needs at least one AAC frame".into(),
        ));
    };
    let mut samples = Vec::with_capacity(frames.len());
    let mut data = Vec::new();
    let mut next = head.time;
    for f in frames {
        if f.time != next {
            return Err(MediaError::InvalidSetting(format!(
                "AAC frame at {} follows one that ends at {next} (expected consecutive frames)",
                f.time
            )));
        }
        next = f.time + u64::from(f.duration);
        samples.push(aac_sample(f.duration, &f.bytes)?);
        data.extend_from_slice(&f.bytes);
    }
    let frag = cmaf::fragment(sequence, track_id, head.time, &samples, &data)?;
    Ok(if first {
        cmaf::media_segment(&frag, &[])
    } else {
        frag.bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::SAMPLE_RATE;

    #[test]
    fn frames_come_out_consecutive_from_start_and_hold_pushed_audio() {
        let dir = tempfile::tempdir().unwrap();
        let start = 96_000;
        let mut enc = LiveAacEncoder::new(2, 128_000, start, dir.path(), Some("en")).unwrap();
        assert_eq!(enc.init().codec, "mp4a.40.2");
        assert_eq!(enc.init().timescale, SAMPLE_RATE);
        assert_eq!(enc.next_input(), start + u64::from(AAC_FRAME));
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect();
        let mut frames = enc.push(&[&tone, &tone]).unwrap();
        frames.extend(enc.push_silence(4096).unwrap());
        assert!(frames.len() >= 45, "{} frames", frames.len());
        assert_eq!(frames[0].time, start);
        for w in frames.windows(2) {
            assert_eq!(w[1].time, w[0].time + u64::from(w[0].duration));
        }
        // The tone is loud: its frames are much larger than the silence's.
        let loud = frames[5].bytes.len();
        let quiet = frames.last().unwrap().bytes.len();
        assert!(
            loud > 4 * quiet,
            "tone frame {loud} B, silence frame {quiet} B"
        );
        let seg = aac_segment(1, enc.init().track_id, &frames[..10]).unwrap();
        // Decodes with FFmpeg's demuxer: init + segment is a fragmented MP4.
        let mut file = enc.init().bytes.clone();
        file.extend(&seg);
        let split = cmaf::split(&file).unwrap();
        assert_eq!(split.fragments.len(), 1);
        assert_eq!(split.fragments[0].decode_time, start);
        assert_eq!(split.fragments[0].samples, 10);
        assert!(aac_segment(1, 1, &[frames[0].clone(), frames[2].clone()]).is_err());
        // Chunks: the first after a styp, the rest moof + mdat; together one segment of two
        // fragments whose decode times follow the frames.
        let mut chunked = aac_chunk(1, enc.init().track_id, &frames[..4], true).unwrap();
        let rest = aac_chunk(2, enc.init().track_id, &frames[4..10], false).unwrap();
        assert_eq!(&rest[4..8], b"moof");
        chunked.extend(&rest);
        assert_eq!(chunked[..24], seg[..24], "the same styp");
        let mut file = enc.init().bytes.clone();
        file.extend(&chunked);
        let split = cmaf::split(&file).unwrap();
        assert_eq!(split.fragments.len(), 2);
        assert_eq!(split.fragments[1].decode_time, frames[4].time);
        assert_eq!(split.fragments[0].samples + split.fragments[1].samples, 10);
        assert!(aac_chunk(1, 1, &[], false).is_err());
        assert!(aac_segment(1, 1, &[]).is_err());
    }

    #[test]
    fn live_renditions_are_mono_or_stereo() {
        assert_eq!(live_channels(1), 1);
        assert_eq!(live_channels(2), 2);
        assert_eq!(live_channels(6), 2);
        let dir = tempfile::tempdir().unwrap();
        assert!(LiveAacEncoder::new(3, 128_000, 0, dir.path(), None).is_err());
        assert!(LiveAacEncoder::new(2, 1_000, 0, dir.path(), None).is_err());
        let mono = LiveAacEncoder::new(1, 128_000, 0, dir.path(), None).unwrap();
        assert_eq!(mono.channels(), 1);
    }
}
