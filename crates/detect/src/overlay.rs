//! What a pirate adds to or does with the picture: flips (mirror left–right or up–down) and
//! overlays (a site's logo, burned-in subtitles, a ticker band, a player's UI).
//!
//! - [`Flip`]: when the registered geometry matches poorly, the detector registers the flipped
//!   position means as well and keeps the flip that matches best.
//! - Overlays are found from the registration residual (suspect minus the photometrically
//!   mapped reference) of the registration positions: a reference pixel whose residual stands
//!   out (beyond [`PERSISTENT_K`] robust standard deviations and [`PERSISTENT_MIN`] grey
//!   levels) in at least
//!   [`PERSISTENT_SHARE`] of them did not come from the title: it is left out of every
//!   decision ([`persistent_mask`], grown by one pixel for the overlay's edge). Within one
//!   position, pixels beyond [`TRANSIENT_K`] are left out of that position's decision only
//!   (subtitles come and go). [`Excluded`] reports what was left out, with the regions' boxes
//!   in the suspect picture.

use serde::Serialize;

/// Residual beyond this many robust standard deviations counts as "stands out".
pub const PERSISTENT_K: f64 = 3.5;
/// ... and beyond this many grey levels: a title's own fine texture that a re-encode loses
/// stands out from the residual of a clean, low-noise scene by a few grey levels only, what a
/// pirate draws over it by tens.
pub const PERSISTENT_MIN: f64 = 8.0;
/// Share of the registration positions in which a pixel must stand out to be excluded.
pub const PERSISTENT_SHARE: f64 = 0.5;
/// Per position: residual beyond this many robust standard deviations is excluded there.
pub const TRANSIENT_K: f64 = 5.0;
/// At most this many excluded regions are reported.
pub const MAX_REGIONS: usize = 8;

/// A flip of the picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Flip {
    /// As it is.
    #[default]
    None,
    /// Mirrored left–right.
    Horizontal,
    /// Mirrored up–down.
    Vertical,
    /// Both (a 180° rotation).
    Both,
}

impl Flip {
    /// The three flips that change the picture.
    pub const FLIPS: [Flip; 3] = [Flip::Horizontal, Flip::Vertical, Flip::Both];

    /// `img` (`w × h`, row-major) flipped.
    pub fn apply(self, img: &[f32], w: usize, h: usize) -> Vec<f32> {
        if self == Flip::None || img.len() != w * h {
            return img.to_vec();
        }
        let (fx, fy) = match self {
            Flip::Horizontal => (true, false),
            Flip::Vertical => (false, true),
            _ => (true, true),
        };
        let mut out = vec![0.0f32; img.len()];
        for y in 0..h {
            let sy = if fy { h - 1 - y } else { y };
            for x in 0..w {
                let sx = if fx { w - 1 - x } else { x };
                out[y * w + x] = img[sy * w + sx];
            }
        }
        out
    }

    /// Lower-case name, as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Flip::None => "none",
            Flip::Horizontal => "horizontal",
            Flip::Vertical => "vertical",
            Flip::Both => "both",
        }
    }
}

/// What the decisions left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Excluded {
    /// Share of the visible reference pixels left out of every decision (an overlay that stays:
    /// a logo, a ticker, letterbox text).
    pub persistent_fraction: f64,
    /// Mean share of the remaining pixels left out per position (overlays that come and go).
    pub transient_fraction: f64,
    /// The largest regions left out of every decision, as boxes `[x0, y0, x1, y1]` in the
    /// suspect picture (0 to 1 of its width and height), largest first.
    pub regions: Vec<[f64; 4]>,
    /// The registration's correlation with the reference over the pixels the decisions keep
    /// (mean over the observed positions); the geometry's own score is over every visible
    /// pixel, what the pirate added included.
    pub kept_score: f64,
}

/// `1.4826 × median |v|`: a robust standard deviation of residuals centred on 0.
pub fn robust_sigma(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    let mid = a.len() / 2;
    1.4826 * *a.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// The pixels (by index into each residual vector) that stand out in at least
/// [`PERSISTENT_SHARE`] of `residuals` (one vector per registration position, all the same
/// length). Fewer than three positions give no mask: too little to tell an overlay from
/// content.
pub fn persistent_mask(residuals: &[Vec<f64>]) -> Vec<bool> {
    let n = residuals.first().map_or(0, Vec::len);
    if residuals.len() < 3 || residuals.iter().any(|r| r.len() != n) {
        return vec![false; n];
    }
    let mut count = vec![0u32; n];
    for r in residuals {
        let cut = (PERSISTENT_K * robust_sigma(r)).max(PERSISTENT_MIN);
        for (c, v) in count.iter_mut().zip(r) {
            if v.abs() > cut {
                *c += 1;
            }
        }
    }
    let need = (PERSISTENT_SHARE * residuals.len() as f64).ceil() as u32;
    count.into_iter().map(|c| c >= need).collect()
}

/// Grows a mask over a `w × h` grid by one pixel (8-neighbourhood).
pub fn dilate(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = mask.to_vec();
    for y in 0..h {
        for x in 0..w {
            if !mask[y * w + x] {
                continue;
            }
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    out[ny * w + nx] = true;
                }
            }
        }
    }
    out
}

/// Bounding boxes `[x0, y0, x1, y1]` (grid pixels, exclusive end) of the 4-connected regions of
/// `mask` over a `w × h` grid with at least `min_pixels` pixels, largest first, at most
/// [`MAX_REGIONS`].
pub fn regions(mask: &[bool], w: usize, h: usize, min_pixels: usize) -> Vec<[usize; 4]> {
    let mut seen = vec![false; mask.len()];
    let mut found: Vec<(usize, [usize; 4])> = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len().min(w * h) {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut n, mut b) = (0usize, [usize::MAX, usize::MAX, 0, 0]);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            n += 1;
            b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
            let mut visit = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if n >= min_pixels {
            found.push((n, b));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
        .into_iter()
        .take(MAX_REGIONS)
        .map(|(_, b)| b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_are_involutions() {
        let img: Vec<f32> = (0..12).map(|v| v as f32).collect();
        for f in Flip::FLIPS {
            let once = f.apply(&img, 4, 3);
            assert_ne!(once, img);
            assert_eq!(f.apply(&once, 4, 3), img);
        }
        assert_eq!(Flip::Horizontal.apply(&img, 4, 3)[0], 3.0);
        assert_eq!(Flip::Vertical.apply(&img, 4, 3)[0], 8.0);
        assert_eq!(Flip::Both.apply(&img, 4, 3)[0], 11.0);
    }

    #[test]
    fn a_pixel_that_stands_out_everywhere_is_masked_content_is_not() {
        // Six positions of Gaussian-like residuals; pixel 7 is off by a lot in five of them,
        // pixel 3 in one only.
        let mut res: Vec<Vec<f64>> = (0..6)
            .map(|p| {
                (0..200)
                    .map(|i| (((i * 37 + p * 11) % 17) as f64 - 8.0) / 4.0)
                    .collect()
            })
            .collect();
        for r in res.iter_mut().take(5) {
            r[7] = 60.0;
        }
        res[2][3] = -60.0;
        let m = persistent_mask(&res);
        assert!(m[7]);
        assert!(!m[3]);
        assert_eq!(m.iter().filter(|&&b| b).count(), 1);
        assert!(persistent_mask(&res[..2]).iter().all(|&b| !b));
    }

    #[test]
    fn regions_are_boxed_largest_first() {
        let (w, h) = (10, 6);
        let mut m = vec![false; w * h];
        for y in 0..2 {
            for x in 7..10 {
                m[y * w + x] = true; // a 3×2 "logo" top right
            }
        }
        m[5 * w] = true; // a lone pixel bottom left
        let r = regions(&m, w, h, 1);
        assert_eq!(r, vec![[7, 0, 10, 2], [0, 5, 1, 6]]);
        assert_eq!(regions(&m, w, h, 2).len(), 1);
        let d = dilate(&m, w, h);
        assert!(d[2 * w + 6] && !d[3 * w + 5]);
    }
}
