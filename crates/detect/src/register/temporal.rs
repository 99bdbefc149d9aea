//! Temporal registration: which reference time each suspect frame shows.
//!
//! The signature is the global mean luma of each frame (robust to scaling, cropping,
//! letterboxing and, after normalisation, to brightness/contrast/gamma changes). The suspect's
//! curve is resampled on the reference frame clock, cut into overlapping windows, and each
//! window is located in the reference by normalised cross-correlation (sub-frame peak by
//! parabolic interpolation). Consistent windows are chained into *pieces* (a cut, an inserted
//! or removed stretch starts a new piece; an isolated inconsistent window is dropped as an
//! outlier); within a piece the map `reference_time = rate × suspect_time + offset` is fitted by
//! least squares (so a speed change, e.g. 24 → 25 fps "PAL speed-up", is a rate ≠ 1). The
//! boundary between two consecutive pieces is placed where the per-frame fit error of the two
//! maps changes over (a change-point search), so frames around a cut go to the right piece.
//!
//! Speed changes up to ±[`MAX_RATE_CHANGE`] (a copy played 0.9× to 1.1×) keep one piece: each
//! 10-s window is located at rates from 0.88 to 1.12 in steps of 0.025 (the window resampled
//! about its centre) and the best is kept; a piece's second window may drift from its first by
//! the most such a rate gives over their distance, and every later window must follow the rate
//! the piece has so far (within 0.3 s and 2 % of their distance), so a cut still starts a new
//! piece. The fitted rate is clamped to the same range.

use serde::Serialize;

/// One piece of the time map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimePiece {
    /// First suspect time covered (s).
    pub suspect_start: f64,
    /// Last suspect time covered (s).
    pub suspect_end: f64,
    /// `reference_time = rate × suspect_time + offset`.
    pub rate: f64,
    /// Offset (s).
    pub offset: f64,
    /// Windows supporting the piece.
    pub windows: usize,
    /// Mean normalised correlation of those windows.
    pub score: f64,
}

/// A piecewise-linear, monotone map from suspect time to reference time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimeMap {
    /// The pieces, in suspect time order.
    pub pieces: Vec<TimePiece>,
}

impl TimeMap {
    /// Reference time of suspect time `t`, `None` outside every piece.
    pub fn map(&self, t: f64) -> Option<f64> {
        self.pieces
            .iter()
            .find(|p| t >= p.suspect_start && t <= p.suspect_end)
            .map(|p| p.rate * t + p.offset)
    }
}

/// Window length (s).
const WINDOW_S: f64 = 10.0;
/// Accepted windows correlate at least this well.
const MIN_NCC: f64 = 0.6;
/// Consecutive windows of one piece agree on the offset within this (s), plus the drift the
/// piece's rate gives over their distance.
const AGREE_S: f64 = 0.3;
/// The largest speed change registered as one piece: a copy played 0.9× to 1.1× (with a
/// little room for the rate's estimate).
pub const MAX_RATE_CHANGE: f64 = 0.12;
/// How far (share of their distance) a window may drift from the rate its piece has so far.
const RATE_SLACK: f64 = 0.02;
/// Step of the rates each window is located at: a window of [`WINDOW_S`] then slips at most
/// an eighth of this times its half length (about 1.5 frames at 24 fps) at its ends.
const RATE_STEP: f64 = 0.025;

#[derive(Clone, Copy, Debug)]
struct Window {
    t: f64,
    r: f64,
    ncc: f64,
    start: f64,
    end: f64,
}

fn resample(times: &[f64], values: &[f32], dt: f64) -> Vec<f64> {
    let Some(&last) = times.last() else {
        return Vec::new();
    };
    let n = (last / dt).floor() as usize + 1;
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    for j in 0..n {
        let t = j as f64 * dt;
        while i + 1 < times.len() && times[i + 1] <= t {
            i += 1;
        }
        let v = if i + 1 < times.len() && times[i + 1] > times[i] {
            let f = ((t - times[i]) / (times[i + 1] - times[i])).clamp(0.0, 1.0);
            f64::from(values[i]) * (1.0 - f) + f64::from(values[i + 1]) * f
        } else {
            f64::from(values[i])
        };
        out.push(v);
    }
    out
}

/// The rates each window is located at: 1, then outwards in steps of [`RATE_STEP`] to
/// ±[`MAX_RATE_CHANGE`] (rate 1 first, so it wins a tie).
fn window_rates() -> Vec<f64> {
    let steps = (MAX_RATE_CHANGE / RATE_STEP).floor() as i32;
    let mut rates = vec![1.0];
    for k in 1..=steps {
        let d = f64::from(k) * RATE_STEP;
        rates.push(1.0 - d);
        rates.push(1.0 + d);
    }
    rates
}

/// The suspect curve `s` around sample `centre` as `l` samples on the reference clock at
/// `rate` (sample `i` is suspect sample `centre + (i − l/2) / rate`, linearly interpolated),
/// zero mean and unit norm; `None` when flat (under 0.3 grey
/// levels RMS: no timing information).
fn normalised_window(s: &[f64], centre: f64, l: usize, rate: f64) -> Option<Vec<f64>> {
    let last = s.len().checked_sub(1)? as f64;
    let w: Vec<f64> = (0..l)
        .map(|i| {
            let u = (centre + (i as f64 + 0.5 - l as f64 / 2.0) / rate - 0.5).clamp(0.0, last);
            interp(s, u).unwrap_or(0.0)
        })
        .collect();
    let m = w.iter().sum::<f64>() / l as f64;
    let var: f64 = w.iter().map(|v| (v - m) * (v - m)).sum();
    if var / (l as f64) < 0.09 {
        return None;
    }
    Some(w.iter().map(|v| (v - m) / var.sqrt()).collect())
}

/// Locates `x` (zero mean, unit norm) in `r` at window starts `lo..=hi`; returns the best
/// sub-sample start and its correlation.
fn locate(
    x: &[f64],
    r: &[f64],
    prefix: &[f64],
    prefix2: &[f64],
    lo: usize,
    hi: usize,
) -> (f64, f64) {
    let l = x.len();
    let ncc_at = |k: usize| -> f64 {
        let s = prefix[k + l] - prefix[k];
        let s2 = prefix2[k + l] - prefix2[k];
        let var = s2 - s * s / l as f64;
        if var <= 1e-9 {
            return 0.0;
        }
        let dot: f64 = x.iter().zip(&r[k..k + l]).map(|(a, b)| a * b).sum();
        dot / var.sqrt()
    };
    let vals: Vec<f64> = (lo..=hi).map(ncc_at).collect();
    let (bi, &bv) = vals
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap_or((0, &0.0));
    let mut k = (lo + bi) as f64;
    if bi > 0 && bi + 1 < vals.len() {
        let (a, b, c) = (vals[bi - 1], bv, vals[bi + 1]);
        let den = a - 2.0 * b + c;
        if den < 0.0 {
            k += (0.5 * (a - c) / den).clamp(-0.5, 0.5);
        }
    }
    (k, bv)
}

/// Builds the time map of a suspect (`times` in s, `means` its per-frame mean luma) against the
/// reference per-frame means `reference` at `fps`, searching offsets within `±max_offset` s
/// (0: assume aligned, rate 1).
pub fn register(
    times: &[f64],
    means: &[f32],
    reference: &[f32],
    fps: f64,
    max_offset: f64,
) -> TimeMap {
    let dt = 1.0 / fps;
    let s = resample(times, means, dt);
    let r: Vec<f64> = reference.iter().map(|&v| f64::from(v)).collect();
    let duration = times.last().copied().unwrap_or(0.0) + dt;
    if max_offset <= 0.0 || s.is_empty() || r.is_empty() {
        return TimeMap {
            pieces: vec![TimePiece {
                suspect_start: 0.0,
                suspect_end: duration,
                rate: 1.0,
                offset: 0.0,
                windows: 0,
                score: f64::NAN,
            }],
        };
    }
    let l = ((WINDOW_S * fps).round() as usize)
        .min(s.len())
        .min(r.len())
        .max(2);
    let hop = (l / 2).max(1);
    let mut prefix = vec![0.0; r.len() + 1];
    let mut prefix2 = vec![0.0; r.len() + 1];
    for (i, &v) in r.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
        prefix2[i + 1] = prefix2[i] + v * v;
    }
    let max_lag = (max_offset * fps).round() as i64;
    let mut starts: Vec<usize> = (0..=s.len() - l).step_by(hop).collect();
    if starts.last().is_some_and(|&j| j + l < s.len()) {
        starts.push(s.len() - l);
    }
    let mut windows = Vec::new();
    let rates = window_rates();
    for &j in &starts {
        let centre = j as f64 + l as f64 / 2.0;
        let lo = (j as i64 - max_lag).max(0);
        let hi = (j as i64 + max_lag).min(r.len() as i64 - l as i64);
        if hi < lo {
            continue;
        }
        // The window at each candidate rate: `l` reference frames show `l / rate` suspect
        // frames around the window's centre, moved inwards as far as the curve's ends need.
        let mut best: Option<(f64, f64, f64)> = None;
        for &rate in &rates {
            let half = l as f64 / rate / 2.0;
            if 2.0 * half > s.len() as f64 {
                continue;
            }
            let c = centre.clamp(half, s.len() as f64 - half);
            let Some(x) = normalised_window(&s, c, l, rate) else {
                continue;
            };
            let (k, ncc) = locate(&x, &r, &prefix, &prefix2, lo as usize, hi as usize);
            if best.is_none_or(|(.., b)| ncc > b) {
                best = Some((c, k, ncc));
            }
        }
        if let Some((c, k, ncc)) = best
            && ncc >= MIN_NCC
        {
            windows.push(Window {
                t: c * dt,
                r: (k + l as f64 / 2.0) * dt,
                ncc,
                start: j as f64 * dt,
                end: (j + l) as f64 * dt,
            });
        }
    }
    let pieces = chain(&windows);
    let mut map = TimeMap {
        pieces: pieces.iter().map(|p| fit(p, dt)).collect(),
    };
    split_boundaries(&mut map, &s, &r, dt, &windows);
    map
}

/// Whether window `b` continues `piece` (non-empty, in time order): its offset drifts from
/// the piece's last window by what the piece's rate so far gives over their distance (any rate
/// within [`MAX_RATE_CHANGE`] of 1 while the piece has one window), within [`AGREE_S`] and
/// [`RATE_SLACK`] of the distance.
fn agrees(piece: &[Window], b: &Window) -> bool {
    let (Some(first), Some(a)) = (piece.first(), piece.last()) else {
        return false;
    };
    let dt = (b.t - a.t).abs();
    let d = (b.r - b.t) - (a.r - a.t);
    if b.r <= a.r {
        return false;
    }
    let span = a.t - first.t;
    if piece.len() < 2 || span <= 0.0 {
        return d.abs() <= AGREE_S + MAX_RATE_CHANGE * dt;
    }
    // The piece's rate so far, from its end windows (each placed to about a frame).
    let drift = ((a.r - a.t) - (first.r - first.t)) / span;
    (d - drift * (b.t - a.t)).abs() <= AGREE_S + RATE_SLACK * dt
}

/// Chains windows into pieces of consistent offset and rate.
fn chain(windows: &[Window]) -> Vec<Vec<Window>> {
    let mut pieces: Vec<Vec<Window>> = Vec::new();
    let mut i = 0;
    while i < windows.len() {
        let w = windows[i];
        match pieces.last_mut() {
            Some(p) if agrees(p, &w) => p.push(w),
            Some(p) if p.len() >= 2 && windows.get(i + 1).is_some_and(|n| agrees(p, n)) => {
                // An isolated outlier inside a consistent run.
            }
            _ => pieces.push(vec![w]),
        }
        i += 1;
    }
    // A lone window is kept only when it is the whole evidence or correlates strongly.
    let total = pieces.len();
    pieces.retain(|p| p.len() >= 2 || total == 1 || p[0].ncc >= 0.9);
    pieces
}

/// Fits `r = rate · t + offset` to a piece's windows: rate 1 when every window agrees with the
/// median offset within 1.5 frames, else least squares with the worst window dropped while it
/// is off by more than 1.5 frames (a window straddling a cut is biased).
fn fit(p: &[Window], dt: f64) -> TimePiece {
    let tol = 1.5 * dt;
    let mut offs: Vec<f64> = p.iter().map(|w| w.r - w.t).collect();
    offs.sort_by(f64::total_cmp);
    let median = offs[offs.len() / 2];
    let (mut rate, mut offset) = (1.0, median);
    let mut kept: Vec<Window> = p.to_vec();
    let spread = p[p.len() - 1].t - p[0].t;
    if p.len() >= 3 && spread >= 20.0 && p.iter().any(|w| (w.r - w.t - median).abs() > tol) {
        loop {
            let n = kept.len() as f64;
            let mt = kept.iter().map(|w| w.t).sum::<f64>() / n;
            let mr = kept.iter().map(|w| w.r).sum::<f64>() / n;
            let stt: f64 = kept.iter().map(|w| (w.t - mt) * (w.t - mt)).sum();
            let str_: f64 = kept.iter().map(|w| (w.t - mt) * (w.r - mr)).sum();
            rate = if stt > 0.0 {
                (str_ / stt).clamp(1.0 - MAX_RATE_CHANGE, 1.0 + MAX_RATE_CHANGE)
            } else {
                1.0
            };
            offset = mr - rate * mt;
            let worst = kept
                .iter()
                .enumerate()
                .map(|(i, w)| (i, (w.r - rate * w.t - offset).abs()))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match worst {
                Some((i, e)) if e > tol && kept.len() > 3 => {
                    kept.remove(i);
                }
                _ => break,
            }
        }
    } else {
        kept.retain(|w| (w.r - w.t - median).abs() <= tol);
    }
    let kept = if kept.is_empty() { p.to_vec() } else { kept };
    TimePiece {
        suspect_start: p[0].start,
        suspect_end: p[p.len() - 1].end,
        rate,
        offset,
        windows: kept.len(),
        score: kept.iter().map(|w| w.ncc).sum::<f64>() / kept.len() as f64,
    }
}

/// Moves the boundary between consecutive pieces to the change point of their fit errors.
fn split_boundaries(map: &mut TimeMap, s: &[f64], r: &[f64], dt: f64, windows: &[Window]) {
    if map.pieces.len() < 2 || windows.is_empty() {
        return;
    }
    // Global affine relation suspect ≈ α·reference + β over the accepted windows.
    let mut pairs = Vec::new();
    for (j, &v) in s.iter().enumerate() {
        let t = j as f64 * dt;
        if let Some(rv) = map.map(t).and_then(|rt| interp(r, rt / dt)) {
            pairs.push((rv, v));
        }
    }
    if pairs.len() < 10 {
        return;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let alpha = if sxx > 0.0 { sxy / sxx } else { 1.0 };
    let beta = my - alpha * mx;
    for i in 0..map.pieces.len() - 1 {
        let (a, b) = (map.pieces[i].clone(), map.pieces[i + 1].clone());
        // Search between the two pieces' supporting window centres.
        let lo = ((a.suspect_end - WINDOW_S / 2.0).max(a.suspect_start) / dt).floor() as usize;
        let hi = ((b.suspect_start + WINDOW_S / 2.0).min(b.suspect_end) / dt).ceil() as usize;
        let hi = hi.min(s.len());
        if hi <= lo + 1 {
            continue;
        }
        let err = |p: &TimePiece, j: usize| -> f64 {
            let t = j as f64 * dt;
            match interp(r, (p.rate * t + p.offset) / dt) {
                Some(rv) => (s[j] - alpha * rv - beta).powi(2),
                None => 1e6,
            }
        };
        // cost(k) = Σ_{j<k} err_a + Σ_{j≥k} err_b.
        let ea: Vec<f64> = (lo..hi).map(|j| err(&a, j)).collect();
        let eb: Vec<f64> = (lo..hi).map(|j| err(&b, j)).collect();
        let mut cost: f64 = eb.iter().sum();
        let (mut best, mut best_k) = (cost, 0usize);
        for k in 0..ea.len() {
            cost += ea[k] - eb[k];
            if cost < best {
                best = cost;
                best_k = k + 1;
            }
        }
        let split = (lo + best_k) as f64 * dt - dt / 2.0;
        map.pieces[i].suspect_end = split;
        map.pieces[i + 1].suspect_start = split;
    }
}

fn interp(r: &[f64], u: f64) -> Option<f64> {
    if u < 0.0 || u > (r.len() - 1) as f64 {
        return None;
    }
    let i = u.floor() as usize;
    let f = u - i as f64;
    Some(if i + 1 < r.len() {
        r[i] * (1.0 - f) + r[i + 1] * f
    } else {
        r[i]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(n: usize) -> Vec<f32> {
        // A film-like mean-luma curve: scenes of varying length and level, with motion.
        let mut v = Vec::with_capacity(n);
        let mut level = 100.0f32;
        let mut seed = 12345u64;
        for i in 0..n {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (seed >> 33).is_multiple_of(60) {
                level = 40.0 + ((seed >> 40) % 160) as f32;
            }
            v.push(level + 8.0 * ((i as f32) * 0.07).sin());
        }
        v
    }

    #[test]
    fn finds_trim_rate_change_and_cut() {
        let fps = 24.0;
        let r = curve(2400);
        // Suspect: starts at reference 30 s, 10 s removed at reference 60 s, sampled at 30 fps.
        let mut times = Vec::new();
        let mut means = Vec::new();
        let mut t = 0.0;
        loop {
            let rt = if t < 30.0 { 30.0 + t } else { 40.0 + t };
            if rt >= 99.0 {
                break;
            }
            times.push(t);
            means.push(
                interp(
                    &r.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                    rt * fps,
                )
                .unwrap_or(0.0) as f32,
            );
            t += 1.0 / 30.0;
        }
        let map = register(&times, &means, &r, fps, 60.0);
        eprintln!("{map:?}");
        assert_eq!(map.pieces.len(), 2, "{map:?}");
        for &(t, want) in &[(1.0, 31.0), (25.0, 55.0), (35.0, 75.0), (55.0, 95.0)] {
            let got = map.map(t).unwrap();
            assert!((got - want).abs() < 0.05, "t {t}: {got} vs {want}");
        }
        assert!((map.pieces[0].suspect_end - 30.0).abs() < 0.2, "{map:?}");
    }

    /// A copy played at `speed` (suspect time = reference time ÷ speed) from reference `start`
    /// s, 25 fps, `len` s long; with a `gap` s stretch removed at suspect time 40 s if any.
    fn played(r: &[f32], speed: f64, start: f64, len: f64, gap: f64) -> (Vec<f64>, Vec<f32>) {
        let rf: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
        let (mut times, mut means) = (Vec::new(), Vec::new());
        let mut t = 0.0;
        while t < len {
            let rt = start + speed * t + if t >= 40.0 { gap } else { 0.0 };
            times.push(t);
            means.push(interp(&rf, rt * 24.0).unwrap_or(0.0) as f32);
            t += 1.0 / 25.0;
        }
        (times, means)
    }

    #[test]
    fn a_copy_played_nine_tenths_to_eleven_tenths_is_one_piece_at_its_rate() {
        let r = curve(2400);
        for speed in [0.9, 0.93, 0.97, 1.0, 1.04, 1.06, 1.08, 1.1] {
            let (times, means) = played(&r, speed, 5.0, 80.0, 0.0);
            let map = register(&times, &means, &r, 24.0, 60.0);
            assert_eq!(map.pieces.len(), 1, "{speed}: {map:?}");
            let p = &map.pieces[0];
            assert!((p.rate - speed).abs() < 0.002, "{speed}: {map:?}");
            for t in [2.0, 40.0, 78.0] {
                let got = map.map(t).unwrap();
                let want = 5.0 + speed * t;
                assert!((got - want).abs() < 0.03, "{speed} t {t}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn a_cut_in_a_faster_copy_still_starts_a_piece() {
        let r = curve(2400);
        let (times, means) = played(&r, 1.08, 5.0, 80.0, 2.0);
        let map = register(&times, &means, &r, 24.0, 60.0);
        // A window straddling the cut may add a sliver between the two (here 0.04 s).
        let long = map
            .pieces
            .iter()
            .filter(|p| p.suspect_end - p.suspect_start > 1.0)
            .count();
        assert_eq!(long, 2, "{map:?}");
        for (t, want) in [
            (10.0, 5.0 + 10.8),
            (39.5, 5.0 + 42.66),
            (60.0, 5.0 + 64.8 + 2.0),
        ] {
            let got = map.map(t).unwrap();
            assert!((got - want).abs() < 0.05, "t {t}: {got} vs {want}");
        }
    }
}
