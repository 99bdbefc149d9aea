//! 2-D FFTs and summed-area tables: the correlation theorem and box sums behind the
//! picture-in-picture window search ([`super::window`]) and the blind crop search
//! ([`crate::blind_crop`]).

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// A 2-D FFT of one size, row-major.
pub(crate) struct Fft2 {
    /// Width.
    pub(crate) w: usize,
    /// Height.
    pub(crate) h: usize,
    rows: Arc<dyn Fft<f64>>,
    cols: Arc<dyn Fft<f64>>,
    rows_inv: Arc<dyn Fft<f64>>,
    cols_inv: Arc<dyn Fft<f64>>,
}

impl Fft2 {
    pub(crate) fn new(w: usize, h: usize) -> Self {
        let mut planner = FftPlanner::new();
        Self {
            w,
            h,
            rows: planner.plan_fft_forward(w),
            cols: planner.plan_fft_forward(h),
            rows_inv: planner.plan_fft_inverse(w),
            cols_inv: planner.plan_fft_inverse(h),
        }
    }

    /// Transforms `data` (`w × h`, row-major) in place; the inverse is not normalised.
    pub(crate) fn process(&self, data: &mut [Complex<f64>], inverse: bool) {
        let (rows, cols) = if inverse {
            (&self.rows_inv, &self.cols_inv)
        } else {
            (&self.rows, &self.cols)
        };
        // Every row is one contiguous transform of length w.
        rows.process(data);
        let mut column = vec![Complex::default(); self.h];
        for x in 0..self.w {
            for (y, c) in column.iter_mut().enumerate() {
                *c = data[y * self.w + x];
            }
            cols.process(&mut column);
            for (y, c) in column.iter().enumerate() {
                data[y * self.w + x] = *c;
            }
        }
    }
}

/// The spectrum of a real `w × h` image.
pub(crate) fn spectrum(fft: &Fft2, data: &[f64]) -> Vec<Complex<f64>> {
    let mut s: Vec<Complex<f64>> = data.iter().map(|&v| Complex::new(v, 0.0)).collect();
    fft.process(&mut s, false);
    s
}

/// Summed-area table with a zero first row and column: `(w + 1) × (h + 1)`.
pub(crate) fn integral(data: &[f64], w: usize, h: usize) -> Vec<f64> {
    let mut t = vec![0.0; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += data[y * w + x];
            t[(y + 1) * (w + 1) + x + 1] = t[y * (w + 1) + x + 1] + row;
        }
    }
    t
}

/// Sum of the `tw × th` block at `(x, y)` from a summed-area table of width `w + 1`.
pub(crate) fn block(t: &[f64], w: usize, x: usize, y: usize, tw: usize, th: usize) -> f64 {
    let s = w + 1;
    t[(y + th) * s + x + tw] - t[y * s + x + tw] - t[(y + th) * s + x] + t[y * s + x]
}
