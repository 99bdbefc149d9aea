//! Limits on what a hostile input can make the decoder allocate or do.

use crate::{MediaError, Overrun};
use std::path::Path;

/// Bounds on the video [`crate::Decoder`] and [`crate::probe`] accept, in the manner of the
/// `image` crate's `Limits`: a suspect copy found by the crawler is hostile input, and its
/// container may declare a 65535x65535 picture or billions of frames to make the detector
/// allocate gigabytes or decode forever.
///
/// The limits are checked three times:
///
/// - **on open** ([`crate::Decoder::open_with_limits`], [`crate::probe_with_limits`]), against
///   what the container and codec parameters declare (picture size, frame count, duration),
///   before any frame is decoded by leaktrace;
/// - **on every decoded frame**, against its real size (a stream can change size mid-way) and
///   against the number of frames and the duration decoded so far; the frame that crosses a
///   limit is not returned, the decoder stops with [`MediaError::TooLarge`];
/// - **inside FFmpeg**: the decoder is opened with FFmpeg's own `max_pixels` set to
///   [`Limits::max_pixels`] plus the codec alignment margin, so FFmpeg refuses to allocate a
///   picture much larger than the limit (a mid-stream switch to 16000x16000 fails before
///   400 MB frames are allocated, not after).
///
/// Not covered: the few frames FFmpeg itself may decode while it opens the file to find the
/// stream parameters (`avformat_find_stream_info`, inside `ffmpeg-next`'s open call, whose
/// options cannot be set). Those are bounded only by FFmpeg's built-in ceiling of about
/// 2^28 pixels per picture (a declared 65535x65535 is refused there already).
///
/// The defaults ([`Limits::default`]) accept every real video leaktrace is meant for:
///
/// | field | default | why |
/// |---|---|---|
/// | [`max_width`](Limits::max_width) | 8192 | DCI 8K is 8192x4320 |
/// | [`max_height`](Limits::max_height) | 8192 | portrait (vertical) 8K video |
/// | [`max_pixels`](Limits::max_pixels) | 36 000 000 | DCI 8K is 35.4 MP, 8K UHD 33.2 MP; a 10-bit 4:2:0 frame is then at most 108 MB |
/// | [`max_frames`](Limits::max_frames) | 1 296 000 | six hours at 60 fps |
/// | [`max_duration_s`](Limits::max_duration_s) | 21 600 (6 h) | longer than any feature release (the longest mainstream cuts run a little over 4 h) or broadcast event capture; 12x the crawler's default capture length (1800 s) |
///
/// At 24 or 25 fps the duration limit is reached first (about 520 000 frames); the frame limit
/// binds only above 60 fps. Use struct update syntax to change one field:
///
/// ```
/// use leaktrace_media::Limits;
/// let small = Limits { max_width: 1920, max_height: 1080, ..Limits::default() };
/// assert_eq!(small.max_frames, Limits::default().max_frames);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Widest picture accepted, luma samples (at least 2; default 8192).
    pub max_width: u32,
    /// Tallest picture accepted, luma samples (at least 2; default 8192).
    pub max_height: u32,
    /// Most luma samples per picture, `width × height` (at least 4; default 36 000 000).
    pub max_pixels: u64,
    /// Most frames decoded (at least 1; default 1 296 000). A container that declares more is
    /// refused on open.
    pub max_frames: u64,
    /// Longest stream decoded, seconds (greater than 0, not NaN, may be infinite; default
    /// 21 600). The decoded duration is the presentation time of a frame past the first
    /// frame's, plus one frame at the nominal frame rate; without timestamps, the frame count
    /// over the nominal frame rate. A container that declares a longer duration is refused on
    /// open.
    pub max_duration_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which limit of [`Limits`] an input went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::max_width`] or [`Limits::max_height`].
    Size,
    /// [`Limits::max_pixels`].
    Pixels,
    /// [`Limits::max_frames`].
    Frames,
    /// [`Limits::max_duration_s`].
    Duration,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Size => "Limits::max_width/max_height",
            LimitKind::Pixels => "Limits::max_pixels",
            LimitKind::Frames => "Limits::max_frames",
            LimitKind::Duration => "Limits::max_duration_s",
        })
    }
}

/// Codec alignment FFmpeg applies to a picture before it allocates it (coded sizes rounded up
/// to 16 or 64, buffer strides to 64).
const ALIGN: u64 = 64;

impl Limits {
    /// The defaults (see the table on [`Limits`]).
    pub const DEFAULT: Limits = Limits {
        max_width: 8192,
        max_height: 8192,
        max_pixels: 36_000_000,
        max_frames: 1_296_000,
        max_duration_s: 21_600.0,
    };

    /// No limit at all (every field at its largest value), for trusted input only, e.g. the
    /// operator's own mezzanine. FFmpeg's built-in ceilings still apply.
    pub const fn no_limits() -> Self {
        Limits {
            max_width: u32::MAX,
            max_height: u32::MAX,
            max_pixels: u64::MAX,
            max_frames: u64::MAX,
            max_duration_s: f64::INFINITY,
        }
    }

    /// Checks that every field is in its valid range (see the field docs).
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |what: &str, got: String, range: &str| {
            Err(MediaError::InvalidLimits(format!(
                "Limits::{what} is {got}; it must be {range}"
            )))
        };
        if self.max_width < 2 {
            return bad("max_width", self.max_width.to_string(), "at least 2");
        }
        if self.max_height < 2 {
            return bad("max_height", self.max_height.to_string(), "at least 2");
        }
        if self.max_pixels < 4 {
            return bad("max_pixels", self.max_pixels.to_string(), "at least 4");
        }
        if self.max_frames < 1 {
            return bad("max_frames", self.max_frames.to_string(), "at least 1");
        }
        // NaN is refused too (it would compare false with everything: no limit).
        if self.max_duration_s.is_nan() || self.max_duration_s <= 0.0 {
            return bad(
                "max_duration_s",
                self.max_duration_s.to_string(),
                "greater than 0 seconds (f64::INFINITY for no limit)",
            );
        }
        Ok(())
    }

    /// FFmpeg's `max_pixels` decoder option: [`Limits::max_pixels`] plus the alignment margin
    /// a picture within the size limits can need, capped to FFmpeg's range (`0..=i32::MAX`).
    pub(crate) fn ffmpeg_max_pixels(&self) -> i64 {
        let margin = ALIGN
            .saturating_mul(u64::from(self.max_width).saturating_add(u64::from(self.max_height)))
            .saturating_add(ALIGN * ALIGN);
        let cap = self.max_pixels.saturating_add(margin);
        i64::try_from(cap).map_or(i64::from(i32::MAX), |c| c.min(i64::from(i32::MAX)))
    }

    /// Checks a picture size; `what` names it in the error ("the declared picture", "frame 12").
    pub(crate) fn check_picture(
        &self,
        path: &Path,
        what: impl Fn() -> String,
        width: u32,
        height: u32,
    ) -> Result<(), MediaError> {
        if width > self.max_width || height > self.max_height {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: path.into(),
                limit: LimitKind::Size,
                what: what(),
                value: format!("{width}x{height}"),
                max: format!("{}x{}", self.max_width, self.max_height),
            })));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: path.into(),
                limit: LimitKind::Pixels,
                what: what(),
                value: format!("{width}x{height} = {pixels} pixels"),
                max: format!("{} pixels", self.max_pixels),
            })));
        }
        Ok(())
    }

    /// Checks what a container declares: picture size, frame count (0: unknown) and duration
    /// in seconds (0 or not finite: unknown).
    pub(crate) fn check_declared(
        &self,
        path: &Path,
        width: u32,
        height: u32,
        frames: u64,
        duration_s: f64,
    ) -> Result<(), MediaError> {
        self.check_picture(path, || "the declared picture".into(), width, height)?;
        if frames > self.max_frames {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: path.into(),
                limit: LimitKind::Frames,
                what: "the declared frame count".into(),
                value: frames.to_string(),
                max: self.max_frames.to_string(),
            })));
        }
        if duration_s.is_finite() && duration_s > self.max_duration_s {
            return Err(MediaError::TooLarge(Box::new(Overrun {
                path: path.into(),
                limit: LimitKind::Duration,
                what: "the declared duration".into(),
                value: format!("{duration_s:.3} s"),
                max: format!("{:.3} s", self.max_duration_s),
            })));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_take_8k() {
        let l = Limits::default();
        assert!(l.validate().is_ok());
        assert!(Limits::no_limits().validate().is_ok());
        let p = Path::new("x");
        assert!(l.check_declared(p, 8192, 4320, 0, 0.0).is_ok());
        assert!(l.check_declared(p, 7680, 4320, 518_400, 21_600.0).is_ok());
        assert!(l.check_declared(p, 4320, 7680, 0, 0.0).is_ok());
        assert!(l.check_declared(p, 8192, 8192, 0, 0.0).is_err());
    }

    #[test]
    fn invalid_limits_say_the_range() {
        let e = Limits {
            max_duration_s: f64::NAN,
            ..Limits::default()
        }
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("Limits::max_duration_s is NaN"), "{e}");
        assert!(e.contains("greater than 0"), "{e}");
        let e = Limits {
            max_width: 0,
            ..Limits::default()
        }
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("Limits::max_width is 0; it must be at least 2"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_value_and_the_limit() {
        let l = Limits::default();
        let p = Path::new("leak.mp4");
        let msg = |r: Result<(), MediaError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(l.check_declared(p, 9000, 9000, 0, 0.0)),
            "leak.mp4: the declared picture (9000x9000) is larger than the limit 8192x8192 \
             (Limits::max_width/max_height)"
        );
        assert_eq!(
            msg(l.check_declared(p, 8000, 8000, 0, 0.0)),
            "leak.mp4: the declared picture (8000x8000 = 64000000 pixels) is larger than the \
             limit 36000000 pixels (Limits::max_pixels)"
        );
        assert_eq!(
            msg(l.check_declared(p, 64, 64, 4_000_000_000, 0.0)),
            "leak.mp4: the declared frame count (4000000000) is larger than the limit 1296000 \
             (Limits::max_frames)"
        );
        assert_eq!(
            msg(l.check_declared(p, 64, 64, 0, 1e9)),
            "leak.mp4: the declared duration (1000000000.000 s) is larger than the limit \
             21600.000 s (Limits::max_duration_s)"
        );
        // Unknown frame count and duration are not refused on open.
        assert!(l.check_declared(p, 64, 64, 0, f64::NAN).is_ok());
    }

    #[test]
    fn ffmpeg_cap_leaves_room_for_alignment_and_fits_ffmpeg() {
        let l = Limits::default();
        let cap = l.ffmpeg_max_pixels();
        // 8190x4320 is allocated 8192 wide (or more) by FFmpeg; within the cap.
        assert!(cap >= (8192 + 64) * (4320 + 64));
        assert!(cap < 38_000_000);
        assert_eq!(Limits::no_limits().ffmpeg_max_pixels(), i64::from(i32::MAX));
    }
}
