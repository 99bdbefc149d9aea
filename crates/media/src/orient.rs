//! How a stream's pictures are turned for display: its display matrix, as players apply it.
//!
//! A phone records a portrait video as landscape pictures and a display matrix that says
//! "turn a quarter to the right"; every player, and FFmpeg's own command-line tools, turn
//! the pictures before showing them. [`crate::Decoder`] does the same, so a package made
//! from such a source plays upright and a copy recorded that way is read the way it is
//! seen. Right angles and mirrors are applied as FFmpeg 6.1's `ffmpeg` applies them
//! (`transpose`, `hflip`, `vflip`); any other angle is left as stored.

/// A turn by a multiple of 90° and a mirror, as one pixel mapping: output pixel `(x, y)`
/// of the displayed picture is the stored picture's pixel found by first mirroring the
/// output coordinates (`flip_x`: `x → width − 1 − x`, `flip_y`: `y → height − 1 − y`)
/// and then, with `transpose`, swapping them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Orientation {
    transpose: bool,
    flip_x: bool,
    flip_y: bool,
}

impl Orientation {
    /// Shown as stored.
    pub const UPRIGHT: Self = Self::new(false, false, false);
    /// A quarter turn clockwise (FFmpeg's `transpose=clock`).
    pub const CLOCKWISE: Self = Self::new(true, true, false);
    /// A quarter turn counter-clockwise (`transpose=cclock`).
    pub const COUNTER_CLOCKWISE: Self = Self::new(true, false, true);
    /// A half turn (`hflip,vflip`).
    pub const HALF_TURN: Self = Self::new(false, true, true);

    const fn new(transpose: bool, flip_x: bool, flip_y: bool) -> Self {
        Self {
            transpose,
            flip_x,
            flip_y,
        }
    }

    /// The orientation a display matrix asks for (`AV_PKT_DATA_DISPLAYMATRIX`: nine 32-bit
    /// integers in native byte order, 16.16 fixed point but for the last column), read as
    /// FFmpeg 6.1's `ffmpeg` reads it. `None` when the bytes are not a display matrix, when
    /// it degenerates, or when its angle is not within a degree of a right angle.
    pub fn from_display_matrix(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 36 {
            return None;
        }
        let m = |i: usize| -> Option<i32> {
            let word = bytes.get(4 * i..4 * i + 4)?;
            Some(i32::from_ne_bytes(word.try_into().ok()?))
        };
        let (m0, m1, m3, m4) = (m(0)?, m(1)?, m(3)?, m(4)?);
        let fixed = |v: i32| f64::from(v) / 65536.0;
        let (a, b, c, d) = (fixed(m0), fixed(m1), fixed(m3), fixed(m4));
        let (s0, s1) = (a.hypot(c), b.hypot(d));
        if s0 == 0.0 || s1 == 0.0 || !s0.is_finite() || !s1.is_finite() {
            return None;
        }
        // The angle `ffmpeg` turns the picture by, in whole degrees in [0, 360).
        let mut theta = (b / s1).atan2(a / s0).to_degrees().round();
        theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
        let near = |angle: f64| (theta - angle).abs() < 1.0;
        if near(90.0) {
            Some(if m3 > 0 {
                Self::new(true, false, false)
            } else {
                Self::CLOCKWISE
            })
        } else if near(180.0) {
            Some(Self::new(false, m0 < 0, m4 < 0))
        } else if near(270.0) {
            Some(if m3 < 0 {
                Self::new(true, true, true)
            } else {
                Self::COUNTER_CLOCKWISE
            })
        } else if near(0.0) || near(360.0) {
            Some(Self::new(false, false, m4 < 0))
        } else {
            None
        }
    }

    /// True when pictures are shown as stored.
    pub fn is_upright(self) -> bool {
        self == Self::UPRIGHT
    }

    /// True when the turn swaps width and height.
    pub fn swaps_axes(self) -> bool {
        self.transpose
    }

    /// The displayed size of a stored `width × height` picture (and, since the mapping is
    /// its own kind of inverse for sizes, the stored size of a displayed one).
    pub fn display_size(self, width: usize, height: usize) -> (usize, usize) {
        if self.transpose {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// The displayed picture of a stored plane of `width × height` samples, row by row.
    /// A plane shorter than that reads as zeros where it has no sample.
    pub fn apply<T: Copy + Default>(self, plane: &[T], width: usize, height: usize) -> Vec<T> {
        if self.is_upright() {
            return plane.to_vec();
        }
        let (ow, oh) = self.display_size(width, height);
        let mut out = Vec::with_capacity(ow * oh);
        for y in 0..oh {
            let y1 = if self.flip_y { oh - 1 - y } else { y };
            for x in 0..ow {
                let x1 = if self.flip_x { ow - 1 - x } else { x };
                let (sx, sy) = if self.transpose { (y1, x1) } else { (x1, y1) };
                out.push(plane.get(sy * width + sx).copied().unwrap_or_default());
            }
        }
        out
    }

    /// [`Orientation::apply`] to a plane the caller gives up: returned as it is when upright.
    pub(crate) fn turn<T: Copy + Default>(
        self,
        plane: Vec<T>,
        width: usize,
        height: usize,
    ) -> Vec<T> {
        if self.is_upright() {
            plane
        } else {
            self.apply(&plane, width, height)
        }
    }

    /// What the turn is, in words ("upright", "a quarter turn clockwise", …).
    pub fn describe(self) -> &'static str {
        match (self.transpose, self.flip_x, self.flip_y) {
            (false, false, false) => "upright",
            (true, true, false) => "a quarter turn clockwise",
            (true, false, true) => "a quarter turn counter-clockwise",
            (false, true, true) => "a half turn",
            (false, true, false) => "mirrored left to right",
            (false, false, true) => "mirrored top to bottom",
            (true, false, false) => "transposed",
            (true, true, true) => "transposed the other way",
        }
    }
}

/// The orientation the stream's display matrix asks for, upright when it has none or one
/// that is not a right angle.
pub(crate) fn of_stream(stream: &ffmpeg_next::format::stream::Stream<'_>) -> Orientation {
    stream
        .side_data()
        .find(|s| s.kind() == ffmpeg_next::codec::packet::side_data::Type::DisplayMatrix)
        .and_then(|s| Orientation::from_display_matrix(s.data()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix FFmpeg's `av_display_rotation_set(angle)` writes, then mirrored as
    /// `av_display_matrix_flip(hflip, vflip)` does.
    fn matrix(angle: f64, hflip: bool, vflip: bool) -> Vec<u8> {
        let r = -angle.to_radians();
        let fixed = |v: f64| (v * 65536.0).round() as i32;
        let mut m = [0i32; 9];
        m[0] = fixed(r.cos());
        m[1] = fixed(-r.sin());
        m[3] = fixed(r.sin());
        m[4] = fixed(r.cos());
        m[8] = 1 << 30;
        let (fx, fy) = (if hflip { -1 } else { 1 }, if vflip { -1 } else { 1 });
        for i in 0..3 {
            m[3 * i] *= fx;
            m[3 * i + 1] *= fy;
        }
        m.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn right_angles_turn_as_ffmpeg_turns_them() {
        // `av_display_rotation_set(90)` (`ffprobe` prints its rotation as -90): `ffmpeg`
        // turns the picture clockwise; the integration test `orientation.rs` checks the
        // turns against `ffmpeg` itself.
        assert_eq!(
            Orientation::from_display_matrix(&matrix(90.0, false, false)),
            Some(Orientation::CLOCKWISE)
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(-90.0, false, false)),
            Some(Orientation::COUNTER_CLOCKWISE)
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(180.0, false, false)),
            Some(Orientation::HALF_TURN)
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(0.0, false, false)),
            Some(Orientation::UPRIGHT)
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(0.0, true, false)),
            Some(Orientation::new(false, true, false))
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(0.0, false, true)),
            Some(Orientation::new(false, false, true))
        );
        assert_eq!(
            Orientation::from_display_matrix(&matrix(30.0, false, false)),
            None
        );
        assert_eq!(Orientation::from_display_matrix(&[0u8; 35]), None);
        assert_eq!(Orientation::from_display_matrix(&[0u8; 36]), None);
    }

    #[test]
    fn mirrored_quarter_turns_map_each_corner_once() {
        // Every one of the eight orientations a right-angle matrix can ask for, through the
        // matrix, is a permutation of the pixels.
        let mut seen = std::collections::HashSet::new();
        for angle in [0.0, 90.0, 180.0, 270.0] {
            for (h, v) in [(false, false), (true, false), (false, true)] {
                let o = Orientation::from_display_matrix(&matrix(angle, h, v))
                    .unwrap_or_else(|| panic!("{angle} {h} {v}"));
                seen.insert(o);
                let plane: Vec<u16> = (0..12).collect();
                let mut out = o.apply(&plane, 4, 3);
                assert_eq!(out.len(), 12);
                out.sort_unstable();
                assert_eq!(out, plane, "{o:?}");
            }
        }
        assert_eq!(seen.len(), 8, "{seen:?}");
    }

    #[test]
    fn turns_move_the_corners_where_ffmpeg_moves_them() {
        // A 3 × 2 plane: a b c / d e f.
        let plane = ['a', 'b', 'c', 'd', 'e', 'f'].map(|c| c as u8);
        let shown = |o: Orientation| String::from_utf8(o.apply(&plane, 3, 2)).unwrap_or_default();
        // transpose=clock: d a / e b / f c
        assert_eq!(shown(Orientation::CLOCKWISE), "daebfc");
        // transpose=cclock: c f / b e / a d
        assert_eq!(shown(Orientation::COUNTER_CLOCKWISE), "cfbead");
        assert_eq!(shown(Orientation::HALF_TURN), "fedcba");
        assert_eq!(shown(Orientation::UPRIGHT), "abcdef");
        assert_eq!(Orientation::CLOCKWISE.display_size(3, 2), (2, 3));
        assert_eq!(Orientation::HALF_TURN.display_size(3, 2), (3, 2));
    }
}
