//! The keyed spatial pattern of a (title, position).
//!
//! The pattern lives on a resolution-independent grid of [`GRID_COLS`] × [`GRID_ROWS`] cells
//! spanning the whole picture, each cell +1 or -1 from a keyed BLAKE3 XOF. It is rendered at
//! any frame size with smooth (smoothstep-weighted bilinear) interpolation between cell
//! centres, so it has no sharp edges, carries its energy at low and mid spatial frequencies
//! (up to 32 cycles per picture width) and looks the same, up to scale, in every rendition.
//! That is what survives low-bitrate re-encoding, downscaling to 360p and cropping with
//! re-registration. Variant A adds the pattern, variant B subtracts it.

use crate::{DerivedKey, Position};

/// Cells across the picture width.
pub const GRID_COLS: usize = 64;
/// Cells down the picture height.
pub const GRID_ROWS: usize = 36;

/// The ±1 cell values of one position's pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    position: Position,
    cells: Vec<i8>,
}

impl Pattern {
    /// Draws the pattern of `position` under a title's pattern key
    /// ([`crate::MasterKey::pattern_key`]).
    pub fn new(title_pattern_key: &DerivedKey, position: Position) -> Self {
        let mut h = blake3::Hasher::new_keyed(title_pattern_key.as_bytes());
        h.update(b"position\0");
        h.update(&u64::from(position.get()).to_le_bytes());
        let mut bits = [0u8; GRID_COLS * GRID_ROWS / 8];
        h.finalize_xof().fill(&mut bits);
        let cells = (0..GRID_COLS * GRID_ROWS)
            .map(|i| {
                if bits[i / 8] >> (i % 8) & 1 == 1 {
                    1
                } else {
                    -1
                }
            })
            .collect();
        Self { position, cells }
    }

    /// The position the pattern belongs to.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The cell values, row-major, [`GRID_ROWS`] rows of [`GRID_COLS`].
    pub fn cells(&self) -> &[i8] {
        &self.cells
    }

    /// Renders the pattern at `width` × `height` as values in [-1, 1], row-major.
    pub fn render(&self, width: usize, height: usize) -> Vec<f32> {
        let (xs, ys) = (
            axis_weights(width, GRID_COLS),
            axis_weights(height, GRID_ROWS),
        );
        let mut out = Vec::with_capacity(width * height);
        let mut row = vec![0f32; GRID_COLS];
        for &(y0, y1, wy) in &ys {
            for (c, r) in row.iter_mut().enumerate() {
                let a = f32::from(self.cells[y0 * GRID_COLS + c]);
                let b = f32::from(self.cells[y1 * GRID_COLS + c]);
                *r = a + (b - a) * wy;
            }
            out.extend(
                xs.iter()
                    .map(|&(x0, x1, wx)| row[x0] + (row[x1] - row[x0]) * wx),
            );
        }
        out
    }
}

/// For each output sample along an axis of `n` samples over `cells` cells: the two cells it
/// lies between and the smoothstep weight of the second.
fn axis_weights(n: usize, cells: usize) -> Vec<(usize, usize, f32)> {
    (0..n)
        .map(|i| {
            let u = (i as f64 + 0.5) / n as f64 * cells as f64 - 0.5;
            if u <= 0.0 {
                return (0, 0, 0.0);
            }
            let i0 = u.floor() as usize;
            if i0 + 1 >= cells {
                return (cells - 1, cells - 1, 0.0);
            }
            let f = u - i0 as f64;
            (i0, i0 + 1, (f * f * (3.0 - 2.0 * f)) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyVersion, MasterKey, TitleId};

    fn key(t: &str) -> DerivedKey {
        MasterKey::from_bytes([9; 32], KeyVersion::new(1)).pattern_key(&TitleId::new(t).unwrap())
    }

    #[test]
    fn deterministic_balanced_and_keyed() {
        let a = Pattern::new(&key("t"), Position::new(5));
        assert_eq!(a, Pattern::new(&key("t"), Position::new(5)));
        let ones = a.cells().iter().filter(|&&c| c == 1).count() as f64;
        let n = (GRID_COLS * GRID_ROWS) as f64;
        // Binomial(n, 1/2): 5 standard deviations.
        assert!((ones - n / 2.0).abs() < 5.0 * (n / 4.0).sqrt(), "{ones}");
        let corr = |x: &Pattern, y: &Pattern| -> f64 {
            x.cells()
                .iter()
                .zip(y.cells())
                .map(|(&p, &q)| f64::from(p * q))
                .sum::<f64>()
                / n
        };
        // Different positions and titles are (nearly) orthogonal: |corr| < 5/sqrt(n).
        let lim = 5.0 / n.sqrt();
        assert!(corr(&a, &Pattern::new(&key("t"), Position::new(6))).abs() < lim);
        assert!(corr(&a, &Pattern::new(&key("u"), Position::new(5))).abs() < lim);
    }

    #[test]
    fn render_is_smooth_bounded_and_scale_consistent() {
        let p = Pattern::new(&key("t"), Position::new(0));
        let big = p.render(1920, 1080);
        let small = p.render(640, 360);
        assert!(big.iter().all(|v| (-1.0..=1.0).contains(v)));
        // Neighbouring pixels differ by at most the steepest smoothstep slope (1.5 / cell).
        let cell = 1920.0 / GRID_COLS as f32;
        for y in 0..1080 {
            for x in 1..1920 {
                let d = (big[y * 1920 + x] - big[y * 1920 + x - 1]).abs();
                assert!(d <= 2.0 * 1.5 / cell + 1e-4, "jump {d} at {x},{y}");
            }
        }
        // The 360p rendering is the 1080p one sampled at the same relative places.
        let mut err = 0f64;
        for y in 0..360 {
            for x in 0..640 {
                err += f64::from((small[y * 640 + x] - big[(3 * y + 1) * 1920 + 3 * x + 1]).abs());
            }
        }
        assert!(
            err / (640.0 * 360.0) < 0.02,
            "mean abs diff {}",
            err / (640.0 * 360.0)
        );
    }
}
