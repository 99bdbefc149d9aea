//! What a live channel remembers between segments and across restarts (`live.json`): the
//! channel's clock, its periods and the segments still listed or kept.

use crate::EmbedError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The channel state file, at the root of the channel's output directory.
pub const STATE_FILE: &str = "live.json";

/// One published segment (all renditions, both variants).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Its position.
    pub position: u32,
    /// Media time of its first frame (track timescale).
    pub media_start: u64,
    /// Its duration (track timescale).
    pub duration: u64,
    /// Wall-clock time of its first frame, milliseconds since the Unix epoch.
    pub wall_ms: i64,
    /// The period it belongs to ([`Period::id`]).
    pub period: u32,
    /// The first segment after a restart of the packager: new encoders, a new init segment.
    pub discontinuity: bool,
    /// Durations of its parts (track timescale), each a file of its own
    /// ([`leaktrace_core::part_file_name`]); empty on a channel without low-latency parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
    /// Its audio segment on a channel with audio: `[start, duration]` in 48 kHz samples (of
    /// the parts out so far, for the segment being published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<[u64; 2]>,
    /// Its audio parts on a channel with audio and low-latency parts, each a file of its own
    /// in the audio rendition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio_parts: Vec<AudioPart>,
}

/// One low-latency part of the audio rendition: the AAC frames that start in the time span of
/// the video part of the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioPart {
    /// Its number in the segment ([`leaktrace_core::part_file_name`]); a span without the
    /// start of an AAC frame has no part, so a number may be missing.
    pub index: u32,
    /// Its duration (48 kHz samples).
    pub duration: u64,
}

/// The audio rendition of a channel: the feed's audio, the same for every viewer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioState {
    /// Its directory (`audio-<language>`, `audio-und` without a language tag).
    pub name: String,
    /// BCP 47 language tag (`und` when the feed names none).
    pub language: String,
    /// Channels (1 or 2).
    pub channels: u16,
    /// RFC 6381 codec string (`mp4a.40.2`).
    pub codec: String,
    /// Bitrate of the encode (bit/s, for a stereo pair).
    pub bitrate: u32,
}

/// A stretch of the channel whose media time runs with the wall clock: a new one starts when
/// the packager restarts or the source stalls for longer than a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Increasing id.
    pub id: u32,
    /// Its first position.
    pub first_position: u32,
    /// Media time at its start (track timescale).
    pub media_start: u64,
    /// Wall-clock time at its start, milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

/// `live.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Always `leaktrace-live`.
    pub format: String,
    /// The channel (its title id).
    pub channel: String,
    /// Segment duration in milliseconds.
    pub segment_ms: u64,
    /// Frame rate `[num, den]` of the channel (every source is converted to it).
    pub frame_rate: [i32; 2],
    /// Track timescale of the video segments.
    pub timescale: u32,
    /// The ladder `name:WxH` from largest to smallest.
    pub ladder: Vec<String>,
    /// When the channel first went on air (DASH `availabilityStartTime`), ms since the epoch.
    pub available_ms: i64,
    /// Periods that still hold a listed or kept segment.
    pub periods: Vec<Period>,
    /// Segments listed or kept, in position order.
    pub segments: Vec<Segment>,
    /// Discontinuities before the first segment held (HLS `EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuities_before: u64,
    /// The channel has ended (HLS `EXT-X-ENDLIST`); a restart on air clears it.
    pub ended: bool,
    /// Frames per low-latency part (LL-HLS `EXT-X-PART`), `None` without parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_frames: Option<u32>,
    /// The segment whose parts are being published, not yet complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<Segment>,
    /// The audio rendition, `None` on a channel without audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioState>,
}

impl ChannelState {
    /// Loads `dir/live.json`, `None` when the channel is new.
    pub fn load(dir: &Path) -> Result<Option<Self>, EmbedError> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|source| EmbedError::Io {
            path: path.clone(),
            source,
        })?;
        let state: Self = serde_json::from_slice(&bytes).map_err(|e| EmbedError::LiveState {
            path: path.clone(),
            reason: format!("not a channel state file ({e})"),
        })?;
        if state.format != "leaktrace-live" {
            return Err(EmbedError::LiveState {
                path,
                reason: "not a channel state file (format is not leaktrace-live)".into(),
            });
        }
        Ok(Some(state))
    }

    /// Writes `dir/live.json` (beside it, then renamed).
    pub fn save(&self, dir: &Path) -> Result<(), EmbedError> {
        write_atomic(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(self)?)
    }

    /// Drops segments (and periods) before `first_kept`, counting their discontinuities.
    pub fn forget_before(&mut self, first_kept: u32) {
        let gone = self
            .segments
            .iter()
            .take_while(|s| s.position < first_kept)
            .count();
        self.discontinuities_before += self
            .segments
            .iter()
            .take(gone)
            .filter(|s| s.discontinuity)
            .count() as u64;
        self.segments.drain(..gone);
        let oldest = self.segments.first().map(|s| s.period);
        if let Some(oldest) = oldest {
            self.periods.retain(|p| p.id >= oldest);
        }
    }
}

/// Writes `path` through a temporary file beside it and a rename, so a reader (the edge, a
/// player) sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EmbedError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|source| EmbedError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| EmbedError::Io {
        path: path.into(),
        source,
    })
}
