//! Registration of a suspect against the reference index: time ([`temporal`]), geometry
//! ([`spatial`], with the picture-in-picture search of [`window`]) and luma ([`photometric`]).

pub(crate) mod fft;
pub mod photometric;
pub mod spatial;
pub mod temporal;
pub mod window;

/// Solves the augmented system `m = [A | b]` (n rows of n + 1) by Gaussian elimination with
/// partial pivoting; `None` when singular.
pub(crate) fn linsolve(m: &mut [Vec<f64>]) -> Option<Vec<f64>> {
    let n = m.len();
    for c in 0..n {
        let p = (c..n).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))?;
        if m[p][c].abs() < 1e-12 {
            return None;
        }
        m.swap(c, p);
        for r in 0..n {
            if r != c {
                let f = m[r][c] / m[c][c];
                if f != 0.0 {
                    let pivot = m[c].clone();
                    for (x, v) in m[r].iter_mut().zip(&pivot).skip(c) {
                        *x -= f * v;
                    }
                }
            }
        }
    }
    Some((0..n).map(|i| m[i][n] / m[i][i]).collect())
}
