//! Segment durations and positions.
//!
//! A position is `floor(presentation time / segment duration)`, counted from the start of the
//! title, so every rendition of a ladder (1080p, 720p, ...) and every packaging (HLS, DASH)
//! shares the same positions. TS 104 002 uses -1 for "not watermarked"; here that is
//! `Option<Position>::None`.

use crate::CoreError;
use std::fmt;

/// The duration of one watermark position (one segment), 1 to 6 s, default 2 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentDuration {
    millis: u64,
}

impl SegmentDuration {
    /// The default, 2 s.
    pub const DEFAULT: SegmentDuration = SegmentDuration { millis: 2000 };

    /// A duration in milliseconds, 1000 to 6000.
    pub fn from_millis(millis: u64) -> Result<Self, CoreError> {
        if (1000..=6000).contains(&millis) {
            Ok(Self { millis })
        } else {
            Err(CoreError::InvalidSegmentDuration(millis))
        }
    }

    /// The duration in milliseconds.
    pub fn as_millis(self) -> u64 {
        self.millis
    }

    /// The duration in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }

    /// The position of a presentation time given as an exact rational `num / den` seconds
    /// (e.g. a frame index over a frame rate). Negative times are clamped to position 0.
    pub fn position_at(self, num: i64, den: i64) -> Position {
        if den <= 0 || num <= 0 {
            return Position(0);
        }
        // floor(num/den / (millis/1000)) = floor(num * 1000 / (den * millis)), in i128.
        let p = (num as i128 * 1000) / (den as i128 * self.millis as i128);
        Position(u32::try_from(p).unwrap_or(u32::MAX))
    }

    /// The position of a presentation time in seconds (floating point; prefer
    /// [`SegmentDuration::position_at`] where the time is a rational).
    pub fn position_at_seconds(self, t: f64) -> Position {
        if t.is_nan() || t <= 0.0 {
            return Position(0);
        }
        let p = (t * 1000.0 / self.millis as f64).floor();
        Position(if p >= u32::MAX as f64 {
            u32::MAX
        } else {
            p as u32
        })
    }
}

impl Default for SegmentDuration {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The index of a segment in the title's watermark sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(u32);

impl Position {
    /// Wraps a position index.
    pub const fn new(p: u32) -> Self {
        Self(p)
    }

    /// The index.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The 15-bit form carried in the `wmpi` box, `None` when the index does not fit.
    pub fn to_wire(self) -> Option<u16> {
        u16::try_from(self.0).ok().filter(|&p| p <= 0x7FFE)
    }

    /// The wire form of a live channel's position, which outgrows the 15-bit field after
    /// [`WIRE_POSITIONS`] positions (18 h at 2-s segments): the index modulo
    /// [`WIRE_POSITIONS`]. The whole index travels in the segment's file name
    /// ([`segment_file_name`]), which the edge reads back ([`Position::from_wire_and_name`]).
    pub fn to_wire_wrapping(self) -> u16 {
        (self.0 % WIRE_POSITIONS) as u16
    }

    /// The position of a watermarked file: the one its file name gives
    /// ([`segment_file_position`]) when that agrees with the wire position of its WMPaceInfo
    /// (equal modulo [`WIRE_POSITIONS`]), else the wire position itself.
    pub fn from_wire_and_name(wire: u16, file_name: &str) -> Self {
        match segment_file_position(file_name) {
            Some(p) if p % WIRE_POSITIONS == u32::from(wire) => Self(p),
            _ => Self(u32::from(wire)),
        }
    }
}

/// Positions the in-band and sidecar WMPaceInfo can tell apart: 0 to 32 766 (the 15-bit
/// value 0x7FFF means -1).
pub const WIRE_POSITIONS: u32 = 0x7FFF;

/// The file name of a video segment at `position`: `seg_00042.m4s` (five digits at least;
/// more once the position needs them). The packager and the edge both read it.
pub fn segment_file_name(position: u32) -> String {
    format!("seg_{position:05}.m4s")
}

/// The file name of part `part` of the segment at `position`, for low-latency delivery
/// (LL-HLS partial segments, CMAF chunks): `seg_00042.p3.m4s`. The parts of a segment, in
/// order, are its bytes.
pub fn part_file_name(position: u32, part: u32) -> String {
    format!("seg_{position:05}.p{part}.m4s")
}

/// The position a [`segment_file_name`] or a [`part_file_name`] names, `None` for any other
/// name.
pub fn segment_file_position(name: &str) -> Option<u32> {
    let stem = name.strip_prefix("seg_")?.strip_suffix(".m4s")?;
    let digits = match stem.split_once(".p") {
        Some((digits, part))
            if !part.is_empty()
                && part.len() <= 5
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0')) =>
        {
            digits
        }
        Some(_) => return None,
        None => stem,
    };
    if digits.len() < 5 || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_positions_wrap_on_the_wire_and_come_back_from_the_name() {
        let p = Position::new(5 * WIRE_POSITIONS + 12);
        assert_eq!(p.to_wire(), None);
        assert_eq!(p.to_wire_wrapping(), 12);
        let name = segment_file_name(p.get());
        assert_eq!(name, "seg_163847.m4s");
        assert_eq!(Position::from_wire_and_name(12, &name), p);
        let part = part_file_name(p.get(), 3);
        assert_eq!(part, "seg_163847.p3.m4s");
        assert_eq!(Position::from_wire_and_name(12, &part), p);
        for bad in [
            "seg_00012.p.m4s",
            "seg_00012.p03.m4s",
            "seg_00012.px.m4s",
            "seg_0012.p1.m4s",
        ] {
            assert_eq!(segment_file_position(bad), None, "{bad}");
        }
        assert_eq!(segment_file_position("seg_00012.p0.m4s"), Some(12));
        // A name that disagrees with the wire position is not believed.
        assert_eq!(Position::from_wire_and_name(13, &name), Position::new(13));
        assert_eq!(
            Position::from_wire_and_name(7, "seg_00007.m4s"),
            Position::new(7)
        );
        for bad in [
            "seg_7.m4s",
            "seg_0000x.m4s",
            "seg_00007.mp4",
            "a/seg_00007.m4s",
            "seg_99999999999.m4s",
        ] {
            assert_eq!(segment_file_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn range_is_enforced_with_a_clear_message() {
        assert!(SegmentDuration::from_millis(999).is_err());
        assert!(SegmentDuration::from_millis(6001).is_err());
        let e = SegmentDuration::from_millis(0).unwrap_err().to_string();
        assert!(e.contains("1000 to 6000"), "{e}");
    }

    #[test]
    fn positions_by_rational_time() {
        let d = SegmentDuration::DEFAULT;
        // 24 fps: frames 0..47 are position 0, frame 48 is position 1.
        assert_eq!(d.position_at(47, 24), Position::new(0));
        assert_eq!(d.position_at(48, 24), Position::new(1));
        // 29.97 fps: frame 60 is at 2.002 s -> position 1, frame 59 at 1.968 s -> 0.
        assert_eq!(d.position_at(59 * 1001, 30000), Position::new(0));
        assert_eq!(d.position_at(60 * 1001, 30000), Position::new(1));
        assert_eq!(d.position_at(-5, 1), Position::new(0));
        assert_eq!(d.position_at_seconds(5.99), Position::new(2));
    }

    #[test]
    fn renditions_share_positions() {
        // The same instant in two time bases gives the same position.
        let d = SegmentDuration::from_millis(4000).unwrap();
        assert_eq!(d.position_at(90000 * 9, 90000), d.position_at(9 * 25, 25));
    }
}
