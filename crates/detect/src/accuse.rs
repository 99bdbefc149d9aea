//! Accusation: soft-decision scores (likelihood or weighted symmetric Tardos) and their
//! false-accusation probability.
//!
//! # Score
//!
//! Each used position contributes one of two values, depending on the candidate session's bit
//! `x` there, chosen by [`Weighting`]:
//!
//! - [`Weighting::Likelihood`] (default, `mix = 0.5`): `ln P(z | x) − ln P(z | innocent)` under
//!   the Gaussian channel `z ~ N(±μ, 1)` and a coalition model (the copy's symbol is the
//!   session's own with probability `1 − mix`, else distributed like any session's). A
//!   mismatch costs at most `ln mix`, a confident match of a rare variant earns `≈ ln(1/q)`.
//! - [`Weighting::Soft`]: the symmetric Tardos term ([`leaktrace_core::codeword::score_contribution`])
//!   for the decided variant `ŷ_p = sign(z_p)`, weighted by `w_p = tanh(μ·|z|)`. Under
//!   `z ~ N(±μ, 1)` the log-likelihood ratio of A against B is `Λ = 2μz` and
//!   `w·g(q, ŷ, x) = E[g(q, y, x) | z]` is the posterior expectation of the symmetric term over
//!   the unknown true symbol `y` (uniform prior).
//! - [`Weighting::Hard`]: the classical symmetric score on hard decisions (`w = 1`).
//!
//! - [`Weighting::Blend`]: the same likelihood ratio against a blend of collusion
//!   [`Strategy`] laws (interleaving, majority or minority vote by `c` members).
//!
//! `μ` is given or estimated from the decisions (`μ̂² = mean(z²) − 1`).
//!
//! By default ([`AccuseOptions::default`]) two scores are kept: the likelihood score with
//! `mix = 0.5`, and a [`Weighting::Blend`] of minority vote by three and by four
//! ([`MINORITY_VOTE`]). Minority vote is the strategy that spreads a coalition's evidence
//! thinnest under the first: where members differ the copy carries the variant fewer of them
//! hold, so a member's bit is outvoted wherever it is the common one, and what is left is the
//! rare variant, which the second score weighs. Each score has its own threshold at its share
//! of the false-accusation budget (90 % and 10 %, [`SECOND_SHARE`]); the second is mapped linearly onto the first's scale so that the
//! two thresholds coincide, and a session's score is the larger of the two. Its innocent tail
//! is bounded by the sum of the two tails, so the calibration below holds for the pair.
//!
//! How many positions each score needs on synthetic decisions (`examples/accuse_sim.rs`) is
//! measured in `docs/BENCHMARKS.md` §6.3.
//!
//! # Calibration
//!
//! The weights depend only on the suspect, never on a candidate session, so for an innocent
//! session (bits drawn independently with `P(B) = q_p`) the score is still a sum of independent
//! two-valued terms: `w·g(q, ŷ, A)` with probability `1 − q_p`, `w·g(q, ŷ, B)` with probability
//! `q_p`, mean 0 and variance `w²`. With at most [`EXACT_LIMIT`] used positions the innocent
//! distribution is enumerated exactly (`2^L` outcomes) and `P(innocent score ≥ s)` is read
//! from it. Beyond, a refined Chernoff bound is used ([`log_tilted_bound`]):
//! `min_λ E[e^{λS}] e^{−λs} · min(1, 1/(λσ_λ√(2π)) + 2C₀ψ_λ)`, the Chernoff bound times a
//! factor from the Berry–Esseen theorem applied to the exponentially tilted law (`σ_λ`, `ψ_λ`:
//! its standard deviation and Lyapunov ratio; `C₀ = 0.56`). It is a rigorous upper bound for
//! every `λ`, so the reported probability is conservative whatever the numerical minimisation
//! does; the factor removes most of the plain Chernoff bound's overestimate (about `λσ√(2π)`;
//! the calibration is measured in `docs/BENCHMARKS.md` §6.3). A Gaussian `Q(s/√L)` would not
//! be an upper bound in the tail.
//! The threshold is `min_λ (ln(E[e^{λS}]·r(λ)) + ln(n/fp)) / λ`: at the minimising `λ` the bound
//! at the threshold is exactly `fp/n`.
//!
//! The false-accusation probability over a registry of `n` sessions is the union bound
//! `min(1, n · P(innocent ≥ s))`; a session is accused only when that is at most the requested
//! probability. With few positions the smallest achievable probability is `n · Π max(P)`, so a
//! short clip may be unable to accuse at `10⁻⁶` at all; [`Accuser::best_possible`] states that
//! floor.
//!
//! # Collusion
//!
//! Every session is thresholded on its own, so each colluder whose score clears the threshold
//! is accused: [`Accuser::accuse_all`] scans a slice of sessions on all cores
//! ([`crate::score::ScoreTable`]) and returns all of them, by descending score, with the best
//! few for the report. The union bound covers every innocent in the registry at once, whatever
//! the number of colluders.

use crate::score::{Hit, PositionScore, ScoreTable};
use leaktrace_core::{Codebook, SessionId, Variant};

/// Largest number of used positions for exact enumeration.
pub const EXACT_LIMIT: usize = 20;

/// How decisions are weighted in the score.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Weighting {
    /// Every used position counts fully (`w = 1`), only the sign of `z` is used.
    Hard,
    /// `w = tanh(μ·|z|)`, the posterior confidence of the decided variant under `z ~ N(±μ, 1)`.
    Soft {
        /// Mean `|z|` of a marked position (signal-to-noise); `None` estimates it from the
        /// decisions as `√max(mean(z²) − 1, ·)`.
        snr: Option<f64>,
    },
    /// Log-likelihood ratio of "the copy's symbol came from this session" against "from an
    /// innocent one", with the channel `z ~ N(±μ, 1)` and a coalition model: the symbol is the
    /// session's own with probability `1 − mix`, else drawn like any session's (`P(B) = q`).
    /// `mix → 0` is the lone-pirate Neyman–Pearson score; `mix > 0` bounds the penalty of a
    /// mismatch by `ln mix` (a colluder's positions taken from others), see Furon, Guyader,
    /// Cérou, "On the design and optimization of Tardos probabilistic fingerprinting codes",
    /// Information Hiding 2008, and Meerwald, Furon, "Toward practical joint decoding of binary
    /// Tardos fingerprinting codes", IEEE TIFS 7(4), 2012. Terms are still two-valued per
    /// position, so the calibration is the same.
    Likelihood {
        /// A fixed `μ` for every position; `None` (the default) estimates the channel from the
        /// decisions, with a strength per position ([`EmpiricalChannel`]).
        snr: Option<f64>,
        /// Probability that a position's symbol is not the accused session's own (clamped to
        /// [`MIX_RANGE`]).
        mix: f64,
    },
    /// The same log-likelihood ratio against a blend of collusion strategies: the copy's
    /// symbol follows each [`Strategy`] of the set with equal probability (the blend's symbol
    /// law is the mean of theirs). Matched to a set, not to one guessed strategy.
    Blend {
        /// As for [`Weighting::Likelihood`].
        snr: Option<f64>,
        /// The strategies blended (an empty set falls back to interleaving with `mix = 0.5`).
        strategies: &'static [Strategy],
    },
}

/// A collusion strategy: how a coalition of `members` sessions chooses the copy's variant at
/// a position from theirs (the marking assumption: where they all agree, that variant).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Strategy {
    /// The copy's symbol is the session's own with probability `1 − mix`, else drawn like any
    /// session's: segment interleaving by `1/(1 − mix)` members.
    Interleave {
        /// Probability that the symbol is not the session's own.
        mix: f64,
    },
    /// Where the members differ, the variant more of them have (ties at random).
    Majority {
        /// Coalition size (2 to 16).
        members: u8,
    },
    /// Where the members differ, the variant fewer of them have (ties at random).
    Minority {
        /// Coalition size (2 to 16).
        members: u8,
    },
}

impl Strategy {
    /// The strategy in a few words, for reports.
    pub fn describe(&self) -> String {
        match *self {
            Self::Interleave { mix } => format!("interleaving (mixture {mix})"),
            Self::Majority { members } => format!("majority vote of {members}"),
            Self::Minority { members } => format!("minority vote of {members}"),
        }
    }

    /// `(P(y = B | x = A), P(y = B | x = B), P(y = B | innocent))` at a position with bias `q`:
    /// the law of the copy's symbol `y` given the candidate session's bit `x` when it is a
    /// member, and when it is not (its bit independent of the copy).
    pub fn symbol_law(&self, q: f64) -> (f64, f64, f64) {
        let q = q.clamp(0.0, 1.0);
        match *self {
            Self::Interleave { mix } => {
                let e = mix.clamp(0.0, 1.0);
                (e * q, 1.0 - e + e * q, q)
            }
            Self::Majority { members } | Self::Minority { members } => {
                let c = usize::from(members.clamp(2, 16));
                let minority = matches!(self, Self::Minority { .. });
                // P(y = B) when k of the c members hold B.
                let vote = |k: usize| -> f64 {
                    if k == 0 {
                        0.0
                    } else if k == c {
                        1.0
                    } else if 2 * k == c {
                        0.5
                    } else if (2 * k < c) == minority {
                        1.0
                    } else {
                        0.0
                    }
                };
                let binom = |n: usize, k: usize| -> f64 {
                    let mut b = 1.0f64;
                    for i in 0..k {
                        b = b * (n - i) as f64 / (i + 1) as f64;
                    }
                    b * q.powi(k as i32) * (1.0 - q).powi((n - k) as i32)
                };
                let (mut if_a, mut if_b, mut innocent) = (0.0, 0.0, 0.0);
                for j in 0..c {
                    let w = binom(c - 1, j);
                    if_a += w * vote(j);
                    if_b += w * vote(j + 1);
                }
                for k in 0..=c {
                    innocent += binom(c, k) * vote(k);
                }
                (if_a, if_b, innocent)
            }
        }
    }
}

/// The strategies of the default second score ([`AccuseOptions::default`]): minority vote by
/// three and by four members, blended. Where members differ the copy carries the variant fewer
/// of them hold, so each member's bit is outvoted wherever it is the common one; what is left
/// is the rare variant, which a member holds far more often than an innocent.
pub const MINORITY_VOTE: &[Strategy] = &[
    Strategy::Minority { members: 3 },
    Strategy::Minority { members: 4 },
];

/// The likelihood-ratio terms `(score if A, score if B)` for a symbol law
/// `(P(y = B | x = A), P(y = B | x = B), P(y = B | innocent))` and half log-likelihood ratio
/// `h = μz` of the observation.
pub fn law_terms(law: (f64, f64, f64), h: f64) -> (f64, f64) {
    let (fa, fb) = if h >= 0.0 {
        (1.0, (-2.0 * h).exp())
    } else {
        ((2.0 * h).exp(), 1.0)
    };
    let mixed = |pb: f64| (1.0 - pb) * fa + pb * fb;
    let innocent = mixed(law.2);
    (
        (mixed(law.0) / innocent).ln(),
        (mixed(law.1) / innocent).ln(),
    )
}

/// The blended symbol law of `strategies` at bias `q` (the mean of their laws).
pub fn blend_law(strategies: &[Strategy], q: f64) -> (f64, f64, f64) {
    if strategies.is_empty() {
        return Strategy::Interleave { mix: 0.5 }.symbol_law(q);
    }
    let n = strategies.len() as f64;
    strategies.iter().fold((0.0, 0.0, 0.0), |acc, s| {
        let l = s.symbol_law(q);
        (acc.0 + l.0 / n, acc.1 + l.1 / n, acc.2 + l.2 / n)
    })
}

/// Range of the coalition mixing probability of [`Weighting::Likelihood`].
pub const MIX_RANGE: (f64, f64) = (1e-3, 0.999);

/// The likelihood-ratio terms `(score if A, score if B)` at a position with bias `q`, half
/// log-likelihood ratio `h = μz` (so `f(z|A)/f(z|B) = e^{2h}`) and mixing probability `ε`:
/// `ln P(z | x) − ln P(z | innocent)` with `P(y | x) = (1 − ε)·1{y = x} + ε·P(y)`.
pub fn likelihood_terms(q: f64, h: f64, eps: f64) -> (f64, f64) {
    law_terms(Strategy::Interleave { mix: eps }.symbol_law(q), h)
}

/// Options of [`Accuser::with_options`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccuseOptions {
    /// Weighting of the decisions.
    pub weighting: Weighting,
    /// Also use positions flagged as erasures (with their small soft weight). Off by default:
    /// the decision step's erasure flag is respected.
    pub include_erased: bool,
    /// A second score over the same positions, with its share of the false-accusation
    /// budget. Each score has its own threshold at its share, and a session is accused when
    /// either clears its threshold: the union bound still holds, at the cost of `ln(1/share)`
    /// in each threshold.
    pub second: Option<SecondScore>,
}

/// The second score of [`AccuseOptions::second`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondScore {
    /// Its weighting.
    pub weighting: Weighting,
    /// Its share of the false-accusation budget, in [`SHARE_RANGE`] (the first score has the
    /// rest).
    pub share: f64,
}

/// Range of [`SecondScore::share`].
pub const SHARE_RANGE: (f64, f64) = (0.01, 0.99);

/// The default [`SecondScore::share`]: the first score keeps 90 % of the budget (a threshold
/// higher by `ln(1/0.9) ≈ 0.1` than alone), the minority-vote score pays `ln 10 ≈ 2.3`, a few
/// dozen positions at the coalition sizes it is for.
pub const SECOND_SHARE: f64 = 0.1;

impl Default for AccuseOptions {
    /// [`Weighting::Likelihood`] with `mix = 0.5` and estimated `μ`, erasures respected, with a
    /// second score [`Weighting::Blend`] matched to minority vote by three and four
    /// ([`MINORITY_VOTE`]) holding [`SECOND_SHARE`] of the budget. In the simulations
    /// (`examples/accuse_sim.rs`) the first needs as few or fewer positions than the symmetric
    /// scores for a lone pirate and for coalitions (interleaving and majority); minority vote,
    /// which spreads a coalition's evidence thinnest against the first, is met by the second.
    /// The figures are in `docs/BENCHMARKS.md` §6.3.
    fn default() -> Self {
        Self {
            weighting: Weighting::Likelihood {
                snr: None,
                mix: 0.5,
            },
            include_erased: false,
            second: Some(SecondScore {
                weighting: Weighting::Blend {
                    snr: None,
                    strategies: MINORITY_VOTE,
                },
                share: SECOND_SHARE,
            }),
        }
    }
}

/// Range of the estimated signal-to-noise `μ`.
const SNR_RANGE: (f64, f64) = (0.05, 50.0);

/// One session that cleared the threshold (or one of the best scores).
#[derive(Clone, Debug, PartialEq)]
pub struct Accusation {
    /// Index of the session in the slice given to [`Accuser::accuse_all`].
    pub index: usize,
    /// Its score.
    pub score: f64,
    /// `P(an innocent session scores at least this)` (one session).
    pub p_single: f64,
    /// False-accusation probability over the registry (union bound).
    pub probability: f64,
}

/// Result of [`Accuser::accuse_all`].
#[derive(Clone, Debug, Default)]
pub struct AccuseScan {
    /// Every session that clears the threshold, by descending score.
    pub accused: Vec<Accusation>,
    /// The best scores (accused or not), by descending score.
    pub top: Vec<Accusation>,
    /// Sessions scored.
    pub scored: usize,
}

/// One score over the used positions: its terms, the innocent distribution and its threshold.
#[derive(Debug)]
struct Lane {
    weighting: Weighting,
    /// (position, score if the session has A, score if B, bias threshold) of each used position.
    entries: Vec<(u32, f64, f64, u16)>,
    /// (score if A, P(innocent has A), score if B, P(innocent has B)) per used position.
    terms: Vec<(f64, f64, f64, f64)>,
    /// The same with log-probabilities, for the bound.
    log_terms: Vec<(f64, f64, f64, f64)>,
    /// Innocent scores sorted descending with cumulative probability (exact mode).
    exact: Option<Vec<(f64, f64)>>,
    snr: Option<f64>,
    /// The estimated channel, when the likelihood uses one.
    channel: Option<EmpiricalChannel>,
    /// The collusion strategies the likelihood score is matched to (clamped).
    coalition: Option<Vec<Strategy>>,
    /// The lane's share of the false-accusation budget, per session: `fp / (lanes · n)`.
    budget: f64,
    threshold: Option<f64>,
    /// The tilt `ln λ` at which the threshold's bound equals the budget (Chernoff mode).
    tilt: Option<f64>,
    /// Map onto the common scale, `scale·s + offset` (the first lane: identity).
    scale: f64,
    offset: f64,
    /// Whether the lane takes part in the combined score (it has a threshold, or it is the
    /// first lane).
    active: bool,
}

/// Precomputed per-position tables and the innocent score distribution.
///
/// With [`AccuseOptions::second`] a session's score is the larger of the two scores, the
/// second mapped onto the first's scale so that both thresholds coincide; the reported tail
/// probability is the sum of the two scores' tails (union bound).
#[derive(Debug)]
pub struct Accuser<'a> {
    codebook: &'a Codebook,
    lanes: Vec<Lane>,
    /// What each used position adds to the first score.
    entries: Vec<PositionScore>,
    table: ScoreTable,
    fp: f64,
    sessions: u64,
    threshold: Option<f64>,
}

/// Estimated `μ` from the decisions: `√(mean(z²) − 1)`, clamped to `[0.05, 50]` (`SNR_RANGE`).
pub fn estimate_snr(z: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in z.filter(|v| v.is_finite()) {
        n += 1;
        sum += v * v;
    }
    if n == 0 {
        return SNR_RANGE.1;
    }
    (sum / n as f64 - 1.0)
        .max(0.0)
        .sqrt()
        .clamp(SNR_RANGE.0, SNR_RANGE.1)
}

/// The decision channel estimated from the decisions themselves: a marked position's `z` is
/// `N(±μ_p, 1)` with the strength `μ_p` varying from position to position, distributed like
/// the observed strengths `m_k = √max(z_k² − 1, 0)` (a nonparametric empirical-Bayes prior).
/// The half log-likelihood ratio of A against B at `z` is then
/// `h(z) = ½ ln(Σ_k e^{z m_k − m_k²/2} / Σ_k e^{−z m_k − m_k²/2})`: odd and increasing in `z`,
/// equal to `μz` when every position has the same strength `μ`, and moderate for a weak
/// position among strong ones (where a single `μ` would call it certain).
#[derive(Clone, Debug)]
pub struct EmpiricalChannel {
    /// Strengths (at most [`EmpiricalChannel::SUPPORT`] quantiles of the observed ones).
    m: Vec<f64>,
}

impl EmpiricalChannel {
    /// Largest number of support points kept (quantiles of the observed strengths).
    pub const SUPPORT: usize = 256;

    /// Estimates the channel from the decision values.
    pub fn new(z: impl Iterator<Item = f64>) -> Self {
        let mut m: Vec<f64> = z
            .filter(|v| v.is_finite())
            .map(|v| (v * v - 1.0).max(0.0).sqrt().min(SNR_RANGE.1))
            .collect();
        m.sort_by(f64::total_cmp);
        if m.len() > Self::SUPPORT {
            let n = m.len();
            m = (0..Self::SUPPORT)
                .map(|i| m[(2 * i + 1) * n / (2 * Self::SUPPORT)])
                .collect();
        }
        Self { m }
    }

    /// `h(z)`, the half log-likelihood ratio of A against B.
    pub fn half_llr(&self, z: f64) -> f64 {
        if self.m.is_empty() || !z.is_finite() {
            return 0.0;
        }
        let lse = |sign: f64| {
            self.m
                .iter()
                .map(|&m| sign * z * m - m * m / 2.0)
                .fold(f64::NEG_INFINITY, log_add)
        };
        0.5 * (lse(1.0) - lse(-1.0))
    }

    /// The strength at quantile `q` (0 to 1) of the estimated distribution; 0 when empty.
    pub fn strength_quantile(&self, q: f64) -> f64 {
        if self.m.is_empty() {
            return 0.0;
        }
        let i = (q.clamp(0.0, 1.0) * (self.m.len() - 1) as f64).round() as usize;
        self.m[i.min(self.m.len() - 1)]
    }
}

/// `ln(e^x + e^y)` without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    if m == f64::NEG_INFINITY {
        return m;
    }
    // One of the two exponents is 0.
    m + (-(x - y).abs()).exp().ln_1p()
}

/// Minimisation of `f` over `[lo, hi]` when it need not be unimodal: the best of a grid of
/// [`SCAN_POINTS`] points, then golden-section search between its neighbours. The refined
/// bound's factor `min(1, ·)` bends the curve, and a golden search over the whole range can
/// settle on the wrong side of the bend (a threshold higher than the bound allows).
fn minimise(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    let step = (hi - lo) / (SCAN_POINTS - 1) as f64;
    let best = (0..SCAN_POINTS)
        .map(|i| lo + step * i as f64)
        .map(|u| (u, f(u)))
        .fold((lo, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    let u = golden(&f, (best.0 - step).max(lo), (best.0 + step).min(hi), 40);
    if f(u) <= best.1 { u } else { best.0 }
}

/// Grid points of [`minimise`] (over `ln λ` from `ln 10⁻⁶` to `ln 10⁴`: steps of 0.6).
const SCAN_POINTS: usize = 40;

/// Golden-section minimisation of a unimodal `f` over `[lo, hi]`; returns the best point.
fn golden(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64, iters: usize) -> f64 {
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut m1, mut m2) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut f1, mut f2) = (f(m1), f(m2));
    for _ in 0..iters {
        if f1 < f2 {
            hi = m2;
            m2 = m1;
            f2 = f1;
            m1 = hi - g * (hi - lo);
            f1 = f(m1);
        } else {
            lo = m1;
            m1 = m2;
            f1 = f2;
            m2 = lo + g * (hi - lo);
            f2 = f(m2);
        }
    }
    if f1 < f2 { m1 } else { m2 }
}

/// One term of an innocent score: `a` with probability `p_a`, else `b` with `p_b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TwoValued {
    /// One value.
    pub a: f64,
    /// Its probability.
    pub p_a: f64,
    /// The other value.
    pub b: f64,
    /// Its probability (`1 − p_a`).
    pub p_b: f64,
}

/// Berry–Esseen constant for sums of independent, non-identically distributed variables
/// (I. G. Shevtsova, "An improvement of convergence rate estimates in the Lyapunov theorem",
/// Doklady Mathematics 82(3), 2010: `C₀ ≤ 0.5600`).
pub const BERRY_ESSEEN: f64 = 0.5600;

/// `ln` of the refined Chernoff bound at tilt `λ`, without the `−λs` part:
/// `K(λ) + ln min(1, 1/(λ σ_λ √(2π)) + 2 C₀ ψ_λ)`.
///
/// `K(λ) = ln E[e^{λS}]` for the innocent score `S` (a sum of independent [`TwoValued`] terms
/// `(a, P(a), b, P(b))`). Under the tilted law (`dP_λ = e^{λS − K(λ)} dP`),
/// `P(S ≥ s) = e^{K(λ) − λs} · E_λ[e^{−λ(S − s)} 1{S ≥ s}]`, and with `Y = S − s`,
/// `E_λ[e^{−λY} 1{Y ≥ 0}] = ∫₀^∞ λ e^{−λy} P_λ(0 ≤ Y ≤ y) dy`. The Berry–Esseen theorem bounds
/// `P_λ(0 ≤ Y ≤ y) ≤ G(y) − G(0) + 2 C₀ ψ_λ` (`G` the normal law of the same mean and variance
/// `σ_λ²`, `ψ_λ = Σ E_λ|X − E_λX|³ / σ_λ³`), and `∫₀^∞ λ e^{−λy} (G(y) − G(0)) dy =
/// ∫₀^∞ e^{−λy} G'(y) dy ≤ 1/(λ σ_λ √(2π))` since the normal density is at most
/// `1/(σ_λ √(2π))`. Hence the factor, valid for every `λ > 0` and every `s` (it does not depend
/// on `s`); `min(1, ·)` keeps the plain Chernoff bound when the refinement does not help.
pub fn log_tilted_bound(terms: &[TwoValued], l: f64) -> f64 {
    let ln: Vec<(f64, f64, f64, f64)> = terms
        .iter()
        .map(|t| (t.a, t.p_a.ln(), t.b, t.p_b.ln()))
        .collect();
    log_tilted_bound_ln(&ln, l)
}

/// [`log_tilted_bound`] with the probabilities given as logarithms: `(a, ln P(a), b, ln P(b))`.
fn log_tilted_bound_ln(terms: &[(f64, f64, f64, f64)], l: f64) -> f64 {
    let (mut k, mut var, mut rho) = (0.0f64, 0.0f64, 0.0f64);
    for &(a, lpa, b, lpb) in terms {
        let (x, y) = (l * a + lpa, l * b + lpb);
        let lse = log_add(x, y);
        k += lse;
        let ta = (x - lse).exp().clamp(0.0, 1.0);
        let tb = 1.0 - ta;
        let d = (a - b).abs();
        let tab = ta * tb;
        var += tab * d * d;
        rho += tab * (ta * ta + tb * tb) * d * d * d;
    }
    let factor = if var > 0.0 && l > 0.0 {
        let sigma = var.sqrt();
        1.0 / (l * sigma * (std::f64::consts::TAU).sqrt())
            + 2.0 * BERRY_ESSEEN * rho / (var * sigma)
    } else {
        1.0
    };
    k + factor.min(1.0).ln()
}

impl Lane {
    /// Builds the lane's terms from the usable decisions.
    fn build(
        usable: &[&crate::PositionDecision],
        codebook: &Codebook,
        weighting: Weighting,
        budget: f64,
    ) -> Self {
        let snr = match weighting {
            Weighting::Hard => None,
            Weighting::Soft { snr: Some(m) }
            | Weighting::Likelihood { snr: Some(m), .. }
            | Weighting::Blend { snr: Some(m), .. }
                if m.is_finite() && m > 0.0 =>
            {
                Some(m)
            }
            Weighting::Soft { .. } | Weighting::Likelihood { .. } | Weighting::Blend { .. } => {
                Some(estimate_snr(usable.iter().map(|d| d.z)))
            }
        };
        let coalition: Option<Vec<Strategy>> = match weighting {
            Weighting::Likelihood { mix, .. } => Some(vec![Strategy::Interleave {
                mix: if mix.is_finite() {
                    mix.clamp(MIX_RANGE.0, MIX_RANGE.1)
                } else {
                    0.5
                },
            }]),
            Weighting::Blend { strategies, .. } => Some(if strategies.is_empty() {
                vec![Strategy::Interleave { mix: 0.5 }]
            } else {
                strategies.to_vec()
            }),
            _ => None,
        };
        // With an estimated μ the likelihood uses the empirical channel: positions differ in
        // strength (a cut, a dark scene, a heavy re-encode of part of the copy), and one μ
        // would make weak positions look as reliable as strong ones.
        let channel = match weighting {
            Weighting::Likelihood { snr, .. } | Weighting::Blend { snr, .. }
                if !snr.is_some_and(|m| m.is_finite() && m > 0.0) =>
            {
                Some(EmpiricalChannel::new(usable.iter().map(|d| d.z)))
            }
            _ => None,
        };
        // Merge repeated positions (their terms share one bit, so they are one term).
        let mut weighted: Vec<(u32, f64, f64)> = Vec::with_capacity(usable.len());
        for d in usable {
            let w = snr.map_or(1.0, |m| (m * d.z.abs()).tanh());
            if w.is_nan() || w <= 0.0 {
                continue;
            }
            weighted.push((d.position, w, d.z));
        }
        weighted.sort_by_key(|e| e.0);
        let mut entries: Vec<(u32, f64, f64, u16)> = Vec::with_capacity(weighted.len());
        let mut terms: Vec<(f64, f64, f64, f64)> = Vec::with_capacity(weighted.len());
        for (p, w, z) in weighted {
            let observed = if z > 0.0 { Variant::A } else { Variant::B };
            let same = entries.last().is_some_and(|m| m.0 == p);
            let q = if same {
                terms.last().map_or(0.5, |t| t.3)
            } else {
                codebook.bias(p)
            };
            let (sa, sb) = match &coalition {
                Some(set) => {
                    let h = channel
                        .as_ref()
                        .map_or_else(|| snr.unwrap_or(0.0) * z, |c| c.half_llr(z));
                    law_terms(blend_law(set, q), h)
                }
                None => (
                    w * leaktrace_core::codeword::score_contribution(q, observed, Variant::A),
                    w * leaktrace_core::codeword::score_contribution(q, observed, Variant::B),
                ),
            };
            match (entries.last_mut(), terms.last_mut()) {
                (Some(m), Some(t)) if same => {
                    m.1 += sa;
                    m.2 += sb;
                    t.0 += sa;
                    t.2 += sb;
                }
                _ => {
                    entries.push((p, sa, sb, leaktrace_core::codeword::threshold_of_bias(q)));
                    terms.push((sa, 1.0 - q, sb, q));
                }
            }
        }
        let exact = (terms.len() <= EXACT_LIMIT).then(|| {
            let mut dist = vec![(0.0f64, 1.0f64)];
            for &(sa, pa, sb, pb) in &terms {
                dist = dist
                    .iter()
                    .flat_map(|&(s, pr)| [(s + sa, pr * pa), (s + sb, pr * pb)])
                    .collect();
            }
            dist.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut cum = 0.0;
            for d in &mut dist {
                cum += d.1;
                d.1 = cum;
            }
            dist
        });
        let mut lane = Self {
            weighting,
            entries,
            log_terms: terms
                .iter()
                .map(|&(a, pa, b, pb)| (a, pa.ln(), b, pb.ln()))
                .collect(),
            terms,
            exact,
            snr,
            channel,
            coalition,
            budget,
            threshold: None,
            tilt: None,
            scale: 1.0,
            offset: 0.0,
            active: true,
        };
        (lane.threshold, lane.tilt) = lane.compute_threshold();
        lane
    }

    /// The score in one phrase.
    fn describe(&self) -> String {
        match self.weighting {
            Weighting::Hard => "symmetric Tardos score of the hard decisions".to_owned(),
            Weighting::Soft { .. } => format!(
                "symmetric Tardos score weighted by tanh(mu |z|), mu = {:.2}",
                self.snr.unwrap_or(0.0)
            ),
            Weighting::Likelihood { .. } | Weighting::Blend { .. } => {
                let set = self
                    .coalition
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(Strategy::describe)
                    .collect::<Vec<_>>()
                    .join(" and ");
                match &self.channel {
                    Some(_) => format!(
                        "log-likelihood score, each position weighed by the copy's empirical \
                         channel (z ~ N(+-m, 1), m distributed as the observed strengths), \
                         collusion model: {set}"
                    ),
                    None => format!(
                        "log-likelihood score with one channel strength mu = {:.2}, collusion \
                         model: {set}",
                        self.snr.unwrap_or(0.0)
                    ),
                }
            }
        }
    }

    fn sigma(&self) -> f64 {
        self.terms
            .iter()
            .map(|&(a, pa, b, pb)| pa * a * a + pb * b * b)
            .sum::<f64>()
            .sqrt()
    }

    /// `ln E[e^{λS}]` of the innocent score (with the refinement factor).
    fn cumulant(&self, l: f64) -> f64 {
        log_tilted_bound_ln(&self.log_terms, l)
    }

    fn max_score(&self) -> f64 {
        self.terms.iter().map(|t| t.0.max(t.2)).sum()
    }

    /// Chernoff bound `min_λ≥0 E[e^{λS}] e^{−λs}` on `P(innocent score ≥ s)` (rigorous; tends
    /// to the exact `Π P(match)` at the largest achievable score).
    fn chernoff(&self, score: f64) -> f64 {
        if score > self.max_score() + 1e-9 {
            return 0.0;
        }
        // No shortcut for scores at or below zero: a likelihood score's innocent mean is
        // negative (minus a divergence), so its threshold can be too; the bound is valid for
        // every s and tends to 1 as λ → 0.
        // f(λ) = log E[e^{λS}] − λ s (+ the refinement) is minimised over ln λ; any λ is valid.
        let f = |u: f64| {
            let l = u.exp();
            self.cumulant(l) - l * score
        };
        let u = minimise(f, (1e-6f64).ln(), (1e4f64).ln());
        // Any λ gives a valid bound: also try the threshold's, so a score at the threshold is
        // reported at most at the requested probability.
        let best = self.tilt.map_or(f(u), |t| f(u).min(f(t)));
        best.min(0.0).exp()
    }

    /// `P(an innocent session's lane score ≥ score)`.
    fn tail(&self, score: f64) -> f64 {
        if self.terms.is_empty() {
            return if score <= 0.0 { 1.0 } else { 0.0 };
        }
        match &self.exact {
            Some(dist) => {
                // dist is sorted by descending score with cumulative probabilities.
                let k = dist.partition_point(|d| d.0 >= score - 1e-9);
                if k == 0 { 0.0 } else { dist[k - 1].1.min(1.0) }
            }
            None => self.chernoff(score),
        }
    }

    /// The lane score behind a combined score `s` (the inverse of the map).
    fn unmap(&self, s: f64) -> f64 {
        (s - self.offset) / self.scale
    }

    fn compute_threshold(&self) -> (Option<f64>, Option<f64>) {
        if self.terms.is_empty() {
            return (None, None);
        }
        match &self.exact {
            Some(dist) => (
                dist.iter()
                    .rev()
                    .map(|d| d.0)
                    .find(|&s| self.tail(s) <= self.budget),
                None,
            ),
            None => {
                // Bound at s with tilt λ: exp(K(λ) + ln r(λ) − λs) ≤ budget
                //   ⇔  s ≥ (K(λ) + ln r(λ) + ln(1/budget))/λ.
                let c = (1.0 / self.budget).ln().max(0.0);
                let h = |u: f64| {
                    let l = u.exp();
                    (self.cumulant(l) + c) / l
                };
                let u = minimise(h, (1e-6f64).ln(), (1e4f64).ln());
                let t = h(u);
                // Above the largest achievable score nobody can be accused.
                let ok = t.is_finite() && t <= self.max_score() + 1e-9;
                (ok.then_some(t), ok.then_some(u))
            }
        }
    }
}

impl<'a> Accuser<'a> {
    /// Builds the tables from the decisions with the default options (likelihood score and
    /// the minority-vote score, erasures skipped) for a registry of `sessions` sessions and a
    /// requested false-accusation probability `fp` (clamped to `(0, 1]`).
    pub fn new(
        decisions: &[crate::PositionDecision],
        codebook: &'a Codebook,
        fp: f64,
        sessions: u64,
    ) -> Self {
        Self::with_options(decisions, codebook, fp, sessions, &AccuseOptions::default())
    }

    /// Builds the tables with explicit [`AccuseOptions`].
    pub fn with_options(
        decisions: &[crate::PositionDecision],
        codebook: &'a Codebook,
        fp: f64,
        sessions: u64,
        opts: &AccuseOptions,
    ) -> Self {
        let usable: Vec<&crate::PositionDecision> = decisions
            .iter()
            .filter(|d| (opts.include_erased || !d.erased) && d.z.is_finite() && d.z != 0.0)
            .collect();
        let fp = if fp > 0.0 && fp <= 1.0 { fp } else { 1e-6 };
        let sessions = sessions.max(1);
        // (weighting, share of the budget) of each score.
        let shares: Vec<(Weighting, f64)> = match opts.second {
            None => vec![(opts.weighting, 1.0)],
            Some(second) => {
                let share = if second.share.is_finite() {
                    second.share.clamp(SHARE_RANGE.0, SHARE_RANGE.1)
                } else {
                    SECOND_SHARE
                };
                vec![(opts.weighting, 1.0 - share), (second.weighting, share)]
            }
        };
        let mut lanes: Vec<Lane> = shares
            .into_iter()
            .map(|(w, share)| Lane::build(&usable, codebook, w, fp * share / sessions as f64))
            .collect();
        // Map every further lane onto the first one's scale so that the thresholds coincide
        // and, near them, both tails fall at the same rate (the ratio of the bounds' tilts
        // `λ`; with exact tails, the ratio of the innocent spreads). A lane that cannot reach
        // its threshold takes no part in the combined score: it could never accuse, and on the
        // common scale it would.
        let sigma0 = lanes.first().map_or(1.0, Lane::sigma).max(1e-12);
        let tilt0 = lanes.first().and_then(|l| l.tilt);
        let scale_of = |l: &Lane| match (tilt0, l.tilt) {
            (Some(u0), Some(u)) => (u - u0).exp(),
            _ => sigma0 / l.sigma().max(1e-12),
        };
        let threshold = lanes.first().and_then(|l| l.threshold).or_else(|| {
            lanes
                .iter()
                .skip(1)
                .find_map(|l| l.threshold.map(|t| t * scale_of(l)))
        });
        for (i, l) in lanes.iter_mut().enumerate() {
            if i == 0 {
                l.active = l.threshold.is_some() || threshold.is_none();
                continue;
            }
            l.scale = scale_of(l);
            match (l.threshold, threshold) {
                (Some(t), Some(common)) => l.offset = common - l.scale * t,
                _ => l.active = false,
            }
        }
        // The positions of every lane (the same ones unless a weight vanished).
        let mut union: std::collections::BTreeMap<u32, u16> = std::collections::BTreeMap::new();
        for l in lanes.iter().filter(|l| l.active) {
            union.extend(l.entries.iter().map(|e| (e.0, e.3)));
        }
        let positions: Vec<(u32, u16)> = union.into_iter().collect();
        let table_lanes: Vec<crate::score::Lane> = lanes
            .iter()
            .filter(|l| l.active)
            .map(|l| {
                let mut terms = vec![(0.0, 0.0); positions.len()];
                for e in &l.entries {
                    if let Ok(i) = positions.binary_search_by_key(&e.0, |p| p.0) {
                        terms[i] = (e.1, e.2);
                    }
                }
                crate::score::Lane {
                    terms,
                    scale: l.scale,
                    offset: l.offset,
                }
            })
            .collect();
        let table = ScoreTable::with_lanes(&positions, &table_lanes);
        let entries = lanes
            .first()
            .map(|l| {
                l.entries
                    .iter()
                    .map(|e| PositionScore {
                        position: e.0,
                        if_a: e.1,
                        if_b: e.2,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            codebook,
            lanes,
            entries,
            table,
            fp,
            sessions,
            threshold,
        }
    }

    fn active(&self) -> impl Iterator<Item = &Lane> {
        self.lanes.iter().filter(|l| l.active)
    }

    /// Positions used (non-zero weight).
    pub fn used(&self) -> usize {
        self.entries.len()
    }

    /// The `μ` of the soft weights of the first score (`None` for hard decisions). With the
    /// default likelihood score this single estimate is not what weighs the positions: see
    /// [`Accuser::channel`].
    pub fn snr(&self) -> Option<f64> {
        self.lanes.first().and_then(|l| l.snr)
    }

    /// The empirical channel that weighs the positions (the default likelihood score with an
    /// estimated strength), `None` for the other scores.
    pub fn channel(&self) -> Option<&EmpiricalChannel> {
        self.lanes.first().and_then(|l| l.channel.as_ref())
    }

    /// The score in one phrase, for reports.
    pub fn describe(&self) -> String {
        match self.lanes.as_slice() {
            [one] => one.describe(),
            lanes => {
                let parts: Vec<String> = lanes
                    .iter()
                    .map(|l| {
                        let mut d = l.describe();
                        if !l.active {
                            d.push_str(" (cannot reach its threshold here)");
                        }
                        d
                    })
                    .collect();
                format!(
                    "the larger of {} scores, each with its share of the false-accusation \
                     probability: {}",
                    lanes.len(),
                    parts.join("; ")
                )
            }
        }
    }

    /// `(position, score if A, score if B)` of every used position, for the first score.
    pub fn entries(&self) -> &[PositionScore] {
        &self.entries
    }

    /// Standard deviation of an innocent score (`√Σ w²`; `√L` for hard decisions); the
    /// further scores are mapped onto this spread.
    pub fn innocent_sigma(&self) -> f64 {
        self.lanes.first().map_or(0.0, Lane::sigma)
    }

    /// True when every tail probability is exact (enumerated), false for the Chernoff bound.
    pub fn is_exact(&self) -> bool {
        self.lanes.iter().all(|l| l.exact.is_some())
    }

    /// The score of one session.
    pub fn score(&self, session: &SessionId) -> f64 {
        self.table.score(self.codebook, session)
    }

    /// The scores of many sessions, in order, on all cores.
    pub fn score_batch(&self, sessions: &[SessionId]) -> Vec<f64> {
        self.table.score_batch(self.codebook, sessions)
    }

    fn accusation(&self, h: &Hit) -> Accusation {
        Accusation {
            index: h.index,
            score: h.score,
            p_single: self.innocent_tail(h.score),
            probability: self.probability(h.score),
        }
    }

    /// Scores `sessions` on all cores and returns every session that clears the threshold
    /// (all colluders that do), by descending score, and the `top` best scores.
    pub fn accuse_all(&self, sessions: &[SessionId], top: usize) -> AccuseScan {
        let bar = self.threshold.map_or(f64::INFINITY, |t| t - 1e-9);
        let scan = self.table.scan(self.codebook, sessions, bar, top);
        AccuseScan {
            accused: scan
                .above
                .iter()
                .filter(|h| self.accuses(h.score))
                .map(|h| self.accusation(h))
                .collect(),
            top: scan.top.iter().map(|h| self.accusation(h)).collect(),
            scored: scan.scored,
        }
    }

    /// `P(an innocent session scores ≥ score)`: with several scores, the sum of their tails at
    /// the scores behind `score` (a union bound).
    pub fn innocent_tail(&self, score: f64) -> f64 {
        self.active()
            .map(|l| l.tail(l.unmap(score)))
            .sum::<f64>()
            .min(1.0)
    }

    /// False-accusation probability over the registry: `min(1, n · P(innocent ≥ score))`.
    pub fn probability(&self, score: f64) -> f64 {
        (self.sessions as f64 * self.innocent_tail(score)).min(1.0)
    }

    /// True when `score` clears the threshold for the requested probability (a comparison with
    /// the precomputed threshold: O(1) per session).
    pub fn accuses(&self, score: f64) -> bool {
        self.threshold.is_some_and(|t| score >= t - 1e-9)
    }

    /// The smallest probability any session could reach with these positions (the floor set by
    /// the number of positions), `n · P(innocent matches every used position)` in exact mode,
    /// with each score's share of the budget counted.
    pub fn best_possible(&self) -> f64 {
        // A score at its own maximum, reported against the whole budget: its tail scaled by
        // the budget over its share (`budget` is its share of fp/n).
        let whole = self.fp / self.sessions as f64;
        self.lanes
            .iter()
            .filter(|l| !l.terms.is_empty() && l.budget > 0.0)
            .map(|l| self.sessions as f64 * l.tail(l.max_score()) * whole / l.budget)
            .fold(1.0f64, f64::min)
    }

    /// The score threshold (smallest score that is accused), `None` when unreachable.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    /// The requested false-accusation probability.
    pub fn fp(&self) -> f64 {
        self.fp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PositionDecision;
    use leaktrace_core::TardosParams;

    #[test]
    fn empirical_channel_matches_one_strength_and_tempers_weak_positions() {
        // Every position of strength 2 (z = ±√5 keeps √(z² − 1) = 2): h(z) = 2z.
        let one = EmpiricalChannel::new([5f64.sqrt(), -(5f64.sqrt())].into_iter().cycle().take(50));
        for z in [-3.0, -0.5, 0.2, 1.0, 4.0] {
            assert!((one.half_llr(z) - 2.0 * z).abs() < 1e-9, "{z}");
        }
        // Mostly strong positions (|z| ≈ 20) and a few weak ones: a weak z = 1 is not
        // called certain (a single μ̂ ≈ 18 would give h = 18).
        let zs: Vec<f64> = (0..90)
            .map(|i| if i % 2 == 0 { 20.0 } else { -20.0 })
            .chain([1.2, -0.8, 1.5, 0.9, -1.1, 1.4, 0.7, -1.3, 1.0, 1.6])
            .collect();
        let mixed = EmpiricalChannel::new(zs.iter().copied());
        let h = mixed.half_llr(1.0);
        assert!(h > 0.0 && h < 2.0, "h(1) = {h}");
        assert!(mixed.half_llr(20.0) > 100.0);
        // Odd and increasing.
        let mut last = f64::NEG_INFINITY;
        for i in -40..=40 {
            let z = f64::from(i) * 0.5;
            let h = mixed.half_llr(z);
            assert!((h + mixed.half_llr(-z)).abs() < 1e-9 && h > last, "{z}");
            last = h;
        }
        // Its percentiles: the weak tenth (m = 0 for |z| ≤ 1, small otherwise) and the strong.
        assert!(
            mixed.strength_quantile(0.05) < 1.5,
            "{}",
            mixed.strength_quantile(0.05)
        );
        let median = mixed.strength_quantile(0.5);
        assert!((median - 399f64.sqrt()).abs() < 1e-9, "{median}");
        assert_eq!(
            EmpiricalChannel::new(std::iter::empty()).strength_quantile(0.5),
            0.0
        );
        // Pure noise: weak everywhere.
        assert_eq!(EmpiricalChannel::new(std::iter::empty()).half_llr(3.0), 0.0);
    }

    fn decisions(n: u32, z: f64) -> Vec<PositionDecision> {
        (0..n)
            .map(|p| PositionDecision {
                position: p,
                frames: 48,
                correlation: z * 0.01,
                sigma0: 0.01,
                z: if p % 2 == 0 { z } else { -z },
                erased: false,
            })
            .collect()
    }

    #[test]
    fn the_report_names_the_score_that_weighed_the_positions() {
        let book = Codebook::new(&[1; 32], &[2; 32], TardosParams::default());
        let ds = decisions(40, 3.0);
        let acc = Accuser::new(&ds, &book, 1e-6, 1000);
        let ch = acc.channel().map(|c| c.strength_quantile(0.5));
        assert!(ch.is_some_and(|m| (m - 8f64.sqrt()).abs() < 1e-9), "{ch:?}");
        assert!(
            acc.describe().contains("empirical channel"),
            "{}",
            acc.describe()
        );
        let hard = Accuser::with_options(
            &ds,
            &book,
            1e-6,
            1000,
            &AccuseOptions {
                weighting: Weighting::Hard,
                include_erased: false,
                second: None,
            },
        );
        assert!(hard.channel().is_none());
        assert!(
            hard.describe().starts_with("symmetric"),
            "{}",
            hard.describe()
        );
    }

    /// Decisions `±z` on the pirate's bits at positions `0..n`.
    fn pirate_decisions(
        book: &Codebook,
        pirate: &SessionId,
        n: u32,
        z: f64,
        erased: impl Fn(u32) -> bool,
    ) -> Vec<PositionDecision> {
        (0..n)
            .map(|p| PositionDecision {
                position: p,
                frames: 48,
                correlation: 0.1,
                sigma0: 0.01,
                z: if book.bit(pirate, p) == Variant::A {
                    z
                } else {
                    -z
                },
                erased: erased(p),
            })
            .collect()
    }

    #[test]
    fn the_pirate_is_accused_and_innocents_are_not() {
        let book = Codebook::new(&[1; 32], &[2; 32], TardosParams::default());
        let pirate = SessionId::new("pirate").unwrap();
        let d = pirate_decisions(&book, &pirate, 200, 8.0, |p| p % 7 == 3);
        let acc = Accuser::new(&d, &book, 1e-6, 1000);
        assert!(!acc.is_exact());
        assert!(acc.accuses(acc.score(&pirate)));
        for i in 0..1000 {
            let s = SessionId::new(format!("innocent-{i}")).unwrap();
            assert!(!acc.accuses(acc.score(&s)), "{i}");
        }
    }

    /// The refined bound is an upper bound on exact binomial tails (all terms alike:
    /// `S = α·K − β·(L − K)`, `K ~ Binomial(L, q)`), and much closer than plain Chernoff.
    #[test]
    fn refined_bound_holds_against_exact_binomial_tails() {
        for (l, q) in [(60usize, 0.3f64), (400, 0.05), (1500, 0.5), (3000, 0.01)] {
            let (alpha, beta) = (((1.0 - q) / q).sqrt(), (q / (1.0 - q)).sqrt());
            let terms = vec![
                TwoValued {
                    a: -beta,
                    p_a: 1.0 - q,
                    b: alpha,
                    p_b: q,
                };
                l
            ];
            // ln of the binomial pmf by the log-gamma recurrence.
            let mut ln_pmf = vec![0.0f64; l + 1];
            ln_pmf[0] = l as f64 * (1.0 - q).ln();
            for k in 1..=l {
                ln_pmf[k] =
                    ln_pmf[k - 1] + ((l - k + 1) as f64 / k as f64).ln() + (q / (1.0 - q)).ln();
            }
            let mut tail = vec![0.0f64; l + 2];
            for k in (0..=l).rev() {
                tail[k] = tail[k + 1] + ln_pmf[k].exp();
            }
            let sigma = (l as f64).sqrt();
            let mut gain = 0.0f64;
            for z in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] {
                let s = z * sigma;
                // Smallest k with score ≥ s.
                let k = ((s + beta * l as f64) / (alpha + beta)).ceil() as usize;
                if k > l {
                    continue;
                }
                let exact = tail[k];
                let refined = golden(
                    |u| log_tilted_bound(&terms, u.exp()) - u.exp() * s,
                    -14.0,
                    9.0,
                    80,
                );
                let refined = (log_tilted_bound(&terms, refined.exp()) - refined.exp() * s).exp();
                let plain = golden(
                    |u| {
                        terms.len() as f64
                            * log_add(u.exp() * alpha + q.ln(), -u.exp() * beta + (1.0 - q).ln())
                            - u.exp() * s
                    },
                    -14.0,
                    9.0,
                    80,
                );
                let plain = (terms.len() as f64
                    * log_add(
                        plain.exp() * alpha + q.ln(),
                        -plain.exp() * beta + (1.0 - q).ln(),
                    )
                    - plain.exp() * s)
                    .exp();
                assert!(
                    refined >= exact * (1.0 - 1e-9),
                    "L {l} q {q} z {z}: {refined} < exact {exact}"
                );
                assert!(refined <= plain * (1.0 + 1e-9), "L {l} q {q} z {z}");
                gain = gain.max(plain / refined);
            }
            assert!(gain > 3.0, "L {l} q {q}: refinement gains only {gain}");
        }
    }

    #[test]
    fn likelihood_terms_are_likelihood_ratios() {
        for q in [0.001, 0.1, 0.5, 0.9] {
            for h in [-30.0, -2.0, -0.1, 0.0, 0.4, 3.0, 400.0] {
                for eps in [MIX_RANGE.0, 0.3, 0.75] {
                    let (a, b) = likelihood_terms(q, h, eps);
                    // Averaged over an innocent's bit, the likelihood ratio is exactly 1.
                    let mean = (1.0 - q) * a.exp() + q * b.exp();
                    assert!((mean - 1.0).abs() < 1e-9, "q {q} h {h} eps {eps}: {mean}");
                    // A mismatch costs at most ln ε.
                    assert!(a >= eps.ln() - 1e-12 && b >= eps.ln() - 1e-12);
                    assert!(a.is_finite() && b.is_finite());
                    // The variant the decision favours scores higher.
                    if h > 0.0 {
                        assert!(a >= b);
                    }
                }
            }
        }
    }

    #[test]
    fn symbol_laws_are_laws_of_total_probability() {
        // Whatever the strategy, an innocent's view of the copy is the member's averaged over
        // the member's bit: P(y = B) = q·P(B | B) + (1 − q)·P(B | A).
        let strategies = [
            Strategy::Interleave { mix: 0.5 },
            Strategy::Interleave { mix: 0.9 },
            Strategy::Majority { members: 3 },
            Strategy::Majority { members: 4 },
            Strategy::Minority { members: 2 },
            Strategy::Minority { members: 3 },
            Strategy::Minority { members: 4 },
            Strategy::Minority { members: 7 },
        ];
        for s in strategies {
            for q in [0.1, 0.27, 0.5, 0.8, 0.9] {
                let (a, b, i) = s.symbol_law(q);
                assert!(
                    (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b),
                    "{s:?}"
                );
                assert!((q * b + (1.0 - q) * a - i).abs() < 1e-12, "{s:?} q = {q}");
            }
        }
        // Minority vote by three in closed form.
        let q = 0.2;
        let (a, b, i) = Strategy::Minority { members: 3 }.symbol_law(q);
        assert!((a - 2.0 * q * (1.0 - q)).abs() < 1e-12);
        assert!((b - (q * q + (1.0 - q) * (1.0 - q))).abs() < 1e-12);
        assert!((i - (q.powi(3) + 3.0 * q * (1.0 - q) * (1.0 - q))).abs() < 1e-12);
        // Interleaving's law gives the mixture terms in closed form:
        // P(z | x) = (1 − ε) f(z | x) + ε P(z | innocent).
        for (q, h, eps) in [(0.3f64, 1.2f64, 0.5f64), (0.1, -0.4, 0.2), (0.7, 3.0, 0.9)] {
            let (fa, fb) = ((2.0 * h).exp(), 1.0);
            let innocent = (1.0 - q) * fa + q * fb;
            let a = ((1.0 - eps) * fa + eps * innocent) / innocent;
            let b = ((1.0 - eps) * fb + eps * innocent) / innocent;
            let (u, v) = law_terms(Strategy::Interleave { mix: eps }.symbol_law(q), h);
            assert!((a.ln() - u).abs() < 1e-12 && (b.ln() - v).abs() < 1e-12);
        }
    }

    #[test]
    fn two_scores_share_the_budget_and_one_threshold() {
        let book = Codebook::new(&[3; 32], &[4; 32], TardosParams::default());
        let pirate = SessionId::new("p").unwrap();
        let d = pirate_decisions(&book, &pirate, 300, 2.0, |_| false);
        let one = Accuser::with_options(
            &d,
            &book,
            1e-6,
            1000,
            &AccuseOptions {
                second: None,
                ..AccuseOptions::default()
            },
        );
        let two = Accuser::new(&d, &book, 1e-6, 1000);
        assert!(
            two.describe().contains("larger of 2 scores"),
            "{}",
            two.describe()
        );
        let (t1, t2) = (one.threshold().unwrap(), two.threshold().unwrap());
        // Half the budget: a higher bar for the first score.
        assert!(t2 > t1, "{t2} vs {t1}");
        // At the common threshold the union of both tails is within the budget.
        assert!(
            two.probability(t2) <= 1e-6 * (1.0 + 1e-9),
            "{}",
            two.probability(t2)
        );
        // The combined score is at least the first score.
        let s = SessionId::new("someone").unwrap();
        assert!(two.score(&s) >= one.score(&s) - 1e-9);
        assert!(two.accuses(two.score(&pirate)));
        // The table agrees with each lane's own per-bit sum.
        let ids: Vec<SessionId> = (0..40)
            .map(|i| SessionId::new(format!("x{i}")).unwrap())
            .collect();
        for (id, sc) in ids.iter().zip(two.score_batch(&ids)) {
            let lanes: Vec<f64> = two
                .lanes
                .iter()
                .filter(|l| l.active)
                .map(|l| {
                    let raw: f64 = l
                        .entries
                        .iter()
                        .map(|e| match book.bit(id, e.0) {
                            Variant::A => e.1,
                            Variant::B => e.2,
                        })
                        .sum();
                    l.scale * raw + l.offset
                })
                .collect();
            let want = lanes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!((sc - want).abs() < 1e-9, "{sc} vs {want}");
        }
    }

    #[test]
    fn thresholds_are_the_smallest_scores_the_bound_allows() {
        // Weak copies of 40–80 positions with a few strong ones: the refined bound's curve in
        // λ bends, and a threshold found on the wrong side of the bend is needlessly high.
        let book = Codebook::new(&[7; 32], &[8; 32], TardosParams::default());
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut unit = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        // The decision values of a 40 % picture-in-picture copy (80 s of a 360p title).
        #[allow(clippy::approx_constant)] // measured values, not π
        const WINDOW: [f64; 40] = [
            -1.628, 1.823, -1.261, -1.914, -2.180, 3.307, 0.144, -2.075, 1.433, 0.549, -1.089,
            2.977, 1.210, -1.903, 2.679, 2.071, 3.142, -0.183, -2.291, -0.681, 2.896, -0.699,
            1.773, 2.241, 1.677, -1.645, 3.135, 1.319, 0.021, -0.928, 0.413, -1.470, -0.032,
            -0.606, 2.866, 1.171, -1.131, 2.789, -4.048, -2.222,
        ];
        let decision = |p: u32, z: f64| PositionDecision {
            position: p,
            frames: 48,
            correlation: 0.1,
            sigma0: 0.01,
            z,
            erased: false,
        };
        let mut cases: Vec<Vec<PositionDecision>> = vec![
            WINDOW
                .iter()
                .zip(0..)
                .map(|(&z, p)| decision(p, z))
                .collect(),
        ];
        for n in [40u32, 50, 60, 80] {
            cases.push(
                (0..n)
                    .map(|p| {
                        let m = if unit() < 0.1 { 6.0 } else { 1.7 };
                        let sign = if unit() < 0.5 { 1.0 } else { -1.0 };
                        decision(p, sign * m + (unit() - 0.5))
                    })
                    .collect(),
            );
        }
        for d in cases {
            let n = d.len();
            let acc = Accuser::new(&d, &book, 1e-6, 1_000_000);
            let t = acc.threshold().unwrap();
            let sigma = acc.innocent_sigma();
            assert!(acc.probability(t) <= 1e-6 * (1.0 + 1e-6), "{n}");
            assert!(
                acc.probability(t - 0.02 * sigma) > 1e-6,
                "{n} positions: a score 0.02 σ under the threshold {t} is within the budget too \
                 (p = {})",
                acc.probability(t - 0.02 * sigma)
            );
        }
    }

    #[test]
    fn exact_tail_is_a_distribution() {
        let book = Codebook::new(&[3; 32], &[4; 32], TardosParams::default());
        let acc = Accuser::new(&decisions(10, 5.0), &book, 1e-6, 50);
        assert!(acc.is_exact());
        assert!((acc.innocent_tail(-1e9) - 1.0).abs() < 1e-9);
        assert_eq!(acc.innocent_tail(1e9), 0.0);
        // 10 positions and 50 sessions cannot reach 1e-6.
        assert!(acc.best_possible() > 1e-6);
        assert_eq!(acc.threshold(), None);
        let empty = Accuser::new(&[], &book, 1e-6, 50);
        assert!(!empty.accuses(0.0));
    }
}
