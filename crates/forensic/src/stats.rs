//! Statistics over one set of decisions: per-position accuracy, the capture-length sweep
//! (segments needed to accuse), and innocent trials (false accusations, calibration).

use leaktrace_core::{Codebook, SessionId, Variant};
use leaktrace_detect::PositionDecision;
use leaktrace_detect::accuse::Accuser;
use serde::Serialize;

/// Per-position decision accuracy against the variants actually in the leak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Accuracy {
    /// Positions the detector returned a decision (or erasure) for.
    pub observed: usize,
    /// Erasures among them.
    pub erased: usize,
    /// Non-erased decisions equal to the variant served.
    pub correct: usize,
    /// Non-erased decisions opposite to it.
    pub wrong: usize,
}

impl Accuracy {
    /// `correct / observed` (an erasure counts as not correct).
    pub fn strict(&self) -> f64 {
        ratio(self.correct, self.observed)
    }
    /// `correct / (correct + wrong)`: accuracy of the decisions that were made.
    pub fn decided(&self) -> f64 {
        ratio(self.correct, self.correct + self.wrong)
    }
    /// Adds another leak's counts (pooling pirates of one attack).
    pub fn add(&mut self, o: &Accuracy) {
        self.observed += o.observed;
        self.erased += o.erased;
        self.correct += o.correct;
        self.wrong += o.wrong;
    }
    /// One-sided upper confidence bound on the rate of wrong decisions (`wrong` among
    /// `observed`, erasures counted as wrong) at `confidence`, by the exact binomial
    /// (Clopper–Pearson) bound: the largest `p` with `P(X ≤ wrong | observed, p) ≥ 1 − confidence`.
    /// With no wrong decision it is `1 − (1 − confidence)^(1/n)`, about `3/n` at 95 %.
    pub fn error_upper_bound(&self, confidence: f64) -> f64 {
        binomial_upper(self.wrong + self.erased, self.observed, confidence)
    }
}

/// `ln P(X = i)` for `X ~ Binomial(n, p)`, `0 < p < 1`, for `i = from, from + 1, …, n`: the
/// first term from `ln C(n, from)`, the rest by the ratio of successive terms.
fn ln_binomial_pmfs(from: u64, n: u64, p: f64) -> impl Iterator<Item = f64> {
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let ln_c: f64 = (0..from)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum();
    let first = ln_c + from as f64 * lp + (n - from) as f64 * lq;
    (from..=n).scan(first, move |ln, i| {
        if i > from {
            *ln += ((n - i + 1) as f64).ln() - (i as f64).ln() + lp - lq;
        }
        Some(*ln)
    })
}

/// `ln Σ exp(t)` over log terms, without overflow.
fn ln_sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// `ln P(X ≤ k)` for `X ~ Binomial(n, p)`, summed in log space.
fn ln_binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return if k >= n { 0.0 } else { f64::NEG_INFINITY };
    }
    let terms: Vec<f64> = (0..=k.min(n))
        .zip(ln_binomial_pmfs(0, n, p))
        .map(|(_, t)| t)
        .collect();
    ln_sum_exp(&terms)
}

/// Clopper–Pearson one-sided upper bound on a binomial rate (see
/// [`Accuracy::error_upper_bound`]); 1 when `n` is 0.
pub fn binomial_upper(k: usize, n: usize, confidence: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let target = (1.0 - confidence).ln();
    // P(X ≤ k) falls as p rises: bisect for the p where it reaches 1 − confidence.
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ln_binomial_cdf(k as u64, n as u64, mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`: how surprising `k` or more events are when each of `n`
/// independent trials has probability `p` (1 when `k` is 0).
pub fn binomial_at_least(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    if (k as f64) <= n as f64 * p {
        // Below the mean the tail is large: 1 − P(X ≤ k − 1) loses nothing.
        return (-(ln_binomial_cdf(k - 1, n, p).exp_m1())).clamp(0.0, 1.0);
    }
    // Above the mean sum the tail itself (a tiny tail would vanish in 1 − cdf). Its terms fall
    // geometrically; stop once they no longer count.
    let mut terms = Vec::new();
    for t in ln_binomial_pmfs(k, n, p) {
        if terms.first().is_some_and(|&first: &f64| t < first - 40.0) {
            break;
        }
        terms.push(t);
    }
    ln_sum_exp(&terms).exp().clamp(0.0, 1.0)
}

/// Significance below which a count of innocent events is taken as evidence that the stated
/// probability is too small (a one-sided binomial test): a correctly stated bound fails this
/// check at most once in a thousand runs.
pub const CONSISTENCY_LEVEL: f64 = 1e-3;

/// Whether `k` events in `n` trials are consistent with a per-trial probability of at most `p`:
/// `P(X ≥ k | n, p) ≥ level`. Comparing the empirical rate `k / n` with `p` directly would fail
/// half the runs of an exactly calibrated bound, and any run with one event when `n·p` < 1.
pub fn consistent_with_at_most(k: u64, n: u64, p: f64, level: f64) -> bool {
    binomial_at_least(k, n, p) >= level
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Accuracy of `decisions` against `truth[position]` (`None` = no single truth, skipped).
pub fn accuracy(decisions: &[PositionDecision], truth: &[Option<Variant>]) -> Accuracy {
    let mut acc = Accuracy::default();
    for d in decisions {
        let Some(Some(t)) = truth.get(d.position as usize) else {
            continue;
        };
        acc.observed += 1;
        if d.erased {
            acc.erased += 1;
        } else if (d.z > 0.0) == (*t == Variant::A) {
            acc.correct += 1;
        } else {
            acc.wrong += 1;
        }
    }
    acc
}

/// The accusation settings: requested probability and registry size of the union bound.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Operating {
    /// Requested false-accusation probability over the registry.
    pub fp: f64,
    /// Registered sessions the union bound covers.
    pub registry: u64,
}

impl Operating {
    /// The per-session accusation probability the union bound allows (`fp / registry`): every
    /// innocent trial is a test at this level.
    pub fn per_session(&self) -> f64 {
        self.fp / self.registry.max(1) as f64
    }
}

/// Result of sweeping the capture length.
#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    /// Smallest capture (number of observed segments, from the start of the leak) at which a
    /// guilty session is accused, `None` if not within the capture.
    pub needed: Option<usize>,
    /// Smallest capture from which a guilty session stays accused to the end.
    pub needed_stable: Option<usize>,
    /// Observed segments (the longest capture).
    pub capture: usize,
    /// `log10` of the best guilty probability over the registry at the full capture.
    pub log10_probability: f64,
    /// Guilty sessions accused at the full capture.
    pub accused_guilty: usize,
}

/// Sweeps the capture length `k = 1..=decisions.len()` (decisions in position order): at each
/// `k` builds the accuser over the first `k` and checks whether any of `guilty` is accused.
pub fn sweep(
    decisions: &[PositionDecision],
    book: &Codebook,
    op: Operating,
    guilty: &[SessionId],
) -> Sweep {
    let mut hits = Vec::with_capacity(decisions.len());
    for k in 1..=decisions.len() {
        let acc = Accuser::new(&decisions[..k], book, op.fp, op.registry);
        hits.push(guilty.iter().any(|g| acc.accuses(acc.score(g))));
    }
    let needed = hits.iter().position(|&h| h).map(|i| i + 1);
    let needed_stable = match hits.iter().rposition(|&h| !h) {
        None if !hits.is_empty() => Some(1),
        Some(i) if i + 1 < hits.len() => Some(i + 2),
        _ => None,
    };
    let full = Accuser::new(decisions, book, op.fp, op.registry);
    let best = guilty
        .iter()
        .map(|g| full.probability(full.score(g)))
        .fold(1.0f64, f64::min);
    Sweep {
        needed,
        needed_stable,
        capture: decisions.len(),
        log10_probability: best.max(1e-300).log10(),
        accused_guilty: guilty
            .iter()
            .filter(|g| full.accuses(full.score(g)))
            .count(),
    }
}

/// Per-session tail probabilities checked for calibration: the empirical fraction of innocents
/// whose `P(innocent ≥ score)` is at most α must not exceed α.
pub const ALPHAS: [f64; 3] = [1e-1, 1e-2, 1e-3];

/// Innocent trials over one set of decisions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Innocents {
    /// Innocent sessions scored.
    pub trials: u64,
    /// Of those, accused at the operating point.
    pub accused: u64,
    /// Count with per-session tail probability ≤ α, for each α of [`ALPHAS`].
    pub below_alpha: [u64; 3],
    /// Highest innocent score divided by `√L`.
    pub max_normalised: f64,
    /// Threshold divided by `√L` (`None`: no score can be accused with these positions).
    pub threshold_normalised: Option<f64>,
    /// A sample of normalised innocent scores (for the distribution plot).
    #[serde(skip)]
    pub sample: Vec<f64>,
}

impl Innocents {
    /// Adds another set of trials.
    pub fn merge(&mut self, o: &Innocents) {
        self.trials += o.trials;
        self.accused += o.accused;
        for i in 0..ALPHAS.len() {
            self.below_alpha[i] += o.below_alpha[i];
        }
        self.max_normalised = self.max_normalised.max(o.max_normalised);
        self.sample.extend_from_slice(&o.sample);
    }
}

/// Scores `ids` (sessions that did not make the leak) against `decisions`.
pub fn innocents(
    decisions: &[PositionDecision],
    book: &Codebook,
    op: Operating,
    ids: impl Iterator<Item = SessionId>,
    sample: usize,
) -> Innocents {
    let acc = Accuser::new(decisions, book, op.fp, op.registry);
    let norm = acc.innocent_sigma().max(1e-12);
    let mut out = Innocents {
        max_normalised: f64::NEG_INFINITY,
        threshold_normalised: acc.threshold().map(|t| t / norm),
        ..Innocents::default()
    };
    for id in ids {
        let s = acc.score(&id);
        out.trials += 1;
        if acc.accuses(s) {
            out.accused += 1;
        }
        // The tail is only needed when the score is in the upper part (it is ≥ 0.1 otherwise
        // for every α checked; computing it for every session is the slow part).
        if s > 0.0 {
            let tail = acc.innocent_tail(s);
            for (i, a) in ALPHAS.iter().enumerate() {
                if tail <= *a {
                    out.below_alpha[i] += 1;
                }
            }
        }
        out.max_normalised = out.max_normalised.max(s / norm);
        if out.sample.len() < sample {
            out.sample.push(s / norm);
        }
    }
    out
}

/// `n` session ids that were never registered (keyed by `nonce` so runs differ). Characters
/// of `tag` that a session id cannot hold (such as the `+` of a combined attack's name) become
/// `~`, so every id is valid and every trial is made.
pub fn unregistered(nonce: &str, tag: &str, n: usize) -> impl Iterator<Item = SessionId> + use<> {
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '~'
            }
        })
        .collect();
    let nonce = nonce.to_owned();
    (0..n).filter_map(move |i| SessionId::new(format!("u-{nonce}-{tag}-{i}")).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unregistered_ids_exist_for_every_leak_name() {
        for tag in [
            "logo-tl",
            "logo+subtitles+ticker+720p",
            "c2 average",
            "pip/left",
        ] {
            assert_eq!(unregistered("ab12", tag, 25).count(), 25, "{tag}");
        }
    }

    use super::*;
    use leaktrace_core::TardosParams;

    fn d(p: u32, z: f64) -> PositionDecision {
        PositionDecision {
            position: p,
            frames: 48,
            correlation: z,
            sigma0: 1.0,
            z,
            erased: z.abs() < 3.0,
        }
    }

    #[test]
    fn binomial_upper_bound_matches_known_values() {
        // No failures: 1 − 0.05^(1/n), the "rule of three" (≈ 3/n).
        let b = binomial_upper(0, 3000, 0.95);
        assert!((b - (1.0 - 0.05f64.powf(1.0 / 3000.0))).abs() < 1e-9, "{b}");
        assert!((b - 0.000998).abs() < 2e-6, "{b}");
        // One failure in 100: the exact one-sided 95 % bound is 0.04656.
        let b = binomial_upper(1, 100, 0.95);
        assert!((b - 0.04656).abs() < 5e-5, "{b}");
        // Five in 20: 0.4556 (exact, one-sided 95 %).
        let b = binomial_upper(5, 20, 0.95);
        assert!((b - 0.4556).abs() < 5e-4, "{b}");
        assert_eq!(binomial_upper(0, 0, 0.95), 1.0);
        let a = Accuracy {
            observed: 1000,
            erased: 1,
            correct: 998,
            wrong: 1,
        };
        assert!(a.error_upper_bound(0.95) > binomial_upper(1, 1000, 0.95));
    }

    #[test]
    fn binomial_tail_matches_known_values() {
        assert_eq!(binomial_at_least(0, 10, 0.3), 1.0);
        assert_eq!(binomial_at_least(11, 10, 0.3), 0.0);
        // P(X ≥ 1) = 1 − (1 − p)^n.
        let t = binomial_at_least(1, 8024, 1e-4);
        assert!(
            (t - (1.0 - (1.0f64 - 1e-4).powi(8024))).abs() < 1e-12,
            "{t}"
        );
        // P(X ≥ 3 | 10, 0.5) = 1 − (1 + 10 + 45) / 1024.
        let t = binomial_at_least(3, 10, 0.5);
        assert!((t - (1.0 - 56.0 / 1024.0)).abs() < 1e-12, "{t}");
        // Both branches (below and above the mean) against direct summation.
        let (n, p) = (40usize, 0.3f64);
        let pmf = |i: usize| {
            let c: f64 = (0..i).map(|j| (n - j) as f64 / (j + 1) as f64).product();
            c * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32)
        };
        for k in 0..=n {
            let direct: f64 = (k..=n).map(pmf).sum();
            let t = binomial_at_least(k as u64, n as u64, p);
            assert!((t - direct).abs() < 1e-12, "k {k}: {t} vs {direct}");
        }
        // A tiny tail keeps its precision: P(X = 10 | 10, 0.01) = 1e-20.
        let t = binomial_at_least(10, 10, 0.01);
        assert!((t / 1e-20 - 1.0).abs() < 1e-6, "{t}");
    }

    #[test]
    fn consistency_accepts_chance_and_rejects_excess() {
        // One false accusation in 8024 trials at a per-trial bound of 1e-4 (0.8 expected) is
        // chance; the empirical rate 1.2e-4 exceeding 1e-4 is no evidence against the bound.
        assert!(consistent_with_at_most(1, 8024, 1e-4, CONSISTENCY_LEVEL));
        // Twenty would be: the bound is too small.
        assert!(!consistent_with_at_most(20, 8024, 1e-4, CONSISTENCY_LEVEL));
        // At the targets' operating point (1e-12 per session) a single accusation is not chance.
        assert!(!consistent_with_at_most(
            1,
            122_300,
            1e-12,
            CONSISTENCY_LEVEL
        ));
        assert!(consistent_with_at_most(
            0,
            122_300,
            1e-12,
            CONSISTENCY_LEVEL
        ));
        // A calibration count slightly above α·n is consistent, twice α·n is not.
        assert!(consistent_with_at_most(
            110,
            10_000,
            1e-2,
            CONSISTENCY_LEVEL
        ));
        assert!(!consistent_with_at_most(
            200,
            10_000,
            1e-2,
            CONSISTENCY_LEVEL
        ));
    }

    #[test]
    fn a_clean_capture_is_accused_and_innocents_are_not() {
        let book = Codebook::new(&[5; 32], &[6; 32], TardosParams::default());
        let pirate = SessionId::new("pirate").unwrap();
        let truth = book.bits(&pirate, 0..100);
        let ds: Vec<_> = truth
            .iter()
            .enumerate()
            .map(|(p, v)| d(p as u32, if *v == Variant::A { 9.0 } else { -9.0 }))
            .collect();
        let t: Vec<Option<Variant>> = truth.iter().copied().map(Some).collect();
        let a = accuracy(&ds, &t);
        assert_eq!((a.correct, a.wrong, a.erased), (100, 0, 0));
        let op = Operating {
            fp: 1e-6,
            registry: 1_000_000,
        };
        let s = sweep(&ds, &book, op, std::slice::from_ref(&pirate));
        let k = s.needed.unwrap();
        assert!((40..=100).contains(&k), "{k}");
        assert_eq!(s.accused_guilty, 1);
        let inn = innocents(&ds, &book, op, unregistered("t", "x", 1000), 100);
        assert_eq!(inn.trials, 1000);
        assert_eq!(inn.accused, 0);
        assert!(
            inn.below_alpha[0] <= 2000 / 10 + 60,
            "{:?}",
            inn.below_alpha
        );
    }
}
