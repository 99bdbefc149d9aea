//! Accusation: symmetric Tardos scores and their false-accusation probability.
//!
//! Each non-erased position contributes the symmetric Tardos term
//! ([`leaktrace_core::codeword::score_contribution`]) for the hard decision `sign(z)`. For an
//! innocent session (bits drawn independently of the suspect) each term takes the value
//! `+√((1−q')/q')` with probability `q'` and `−√(q'/(1−q'))` otherwise (`q'` = probability of the
//! observed variant), so the innocent score has mean 0 and variance `L` (positions used).
//!
//! Calibration: with `L ≤ EXACT_LIMIT` the innocent distribution is enumerated exactly
//! (`2^L` outcomes) and `P(innocent score ≥ s)` is read from it; beyond, the Chernoff bound
//! `min_λ Π_p E[e^{λ s_p}] · e^{−λ s}` is used: a rigorous upper bound (so the reported
//! probability is conservative), far tighter than a Gaussian in the tail, and equal to the
//! exact `Π_p P(match)` at the largest achievable score. (A Gaussian `Q(s/√L)` with 60 used
//! positions put a perfectly decoded pirate at only 7e-7 per session.) The false-accusation probability over a registry of `n`
//! sessions is the union bound `min(1, n · P(innocent ≥ s))`; a session is accused only when
//! that is at most the requested probability. With few positions the smallest achievable
//! probability is `n · Π min(q', …)`, so a short clip may be unable to accuse at `10⁻⁶` at all;
//! [`Accuser::best_possible`] states that floor.

use leaktrace_core::{Codebook, SessionId, Variant};

/// Largest number of used positions for exact enumeration.
pub const EXACT_LIMIT: usize = 20;

/// Precomputed per-position tables and the innocent score distribution.
#[derive(Debug)]
pub struct Accuser<'a> {
    codebook: &'a Codebook,
    /// (position, score if the session has A, score if B) of each used position.
    table: Vec<(u32, f64, f64)>,
    /// (score if A, P(innocent has A), score if B, P(innocent has B)) per used position.
    terms: Vec<(f64, f64, f64, f64)>,
    /// Innocent scores sorted descending with cumulative probability (exact mode).
    exact: Option<Vec<(f64, f64)>>,
    fp: f64,
    sessions: u64,
    threshold: Option<f64>,
}

impl<'a> Accuser<'a> {
    /// Builds the tables from the decisions (erasures skipped) for a registry of `sessions`
    /// sessions and a requested false-accusation probability `fp` (clamped to `(0, 1]`).
    pub fn new(
        decisions: &[crate::PositionDecision],
        codebook: &'a Codebook,
        fp: f64,
        sessions: u64,
    ) -> Self {
        let table: Vec<(u32, f64, f64)> = decisions
            .iter()
            .filter(|d| !d.erased)
            .map(|d| {
                let observed = if d.z > 0.0 { Variant::A } else { Variant::B };
                let q = codebook.bias(d.position);
                (
                    d.position,
                    leaktrace_core::codeword::score_contribution(q, observed, Variant::A),
                    leaktrace_core::codeword::score_contribution(q, observed, Variant::B),
                )
            })
            .collect();
        let terms: Vec<(f64, f64, f64, f64)> = table
            .iter()
            .map(|&(p, sa, sb)| {
                let pb = codebook.bias(p);
                (sa, 1.0 - pb, sb, pb)
            })
            .collect();
        let exact = (table.len() <= EXACT_LIMIT).then(|| {
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
        let mut acc = Self {
            codebook,
            table,
            terms,
            exact,
            fp: if fp > 0.0 && fp <= 1.0 { fp } else { 1e-6 },
            sessions: sessions.max(1),
            threshold: None,
        };
        acc.threshold = acc.compute_threshold();
        acc
    }

    /// Positions used (not erased).
    pub fn used(&self) -> usize {
        self.table.len()
    }

    /// Standard deviation of an innocent score (`√L`).
    pub fn innocent_sigma(&self) -> f64 {
        (self.table.len() as f64).sqrt()
    }

    /// Chernoff bound `min_λ≥0 E[e^{λS}] e^{−λs}` on `P(innocent score ≥ s)` (rigorous; tends
    /// to the exact `Π P(match)` at the largest achievable score).
    fn chernoff(&self, score: f64) -> f64 {
        let max: f64 = self.terms.iter().map(|t| t.0.max(t.2)).sum();
        if score > max + 1e-9 {
            return 0.0;
        }
        if score <= 0.0 {
            return 1.0;
        }
        // f(λ) = log E[e^{λS}] − λ s is convex: golden-section search on [0, 200].
        let f = |l: f64| -> f64 {
            self.terms
                .iter()
                .map(|&(a, pa, b, pb)| {
                    let (x, y) = (l * a + pa.ln(), l * b + pb.ln());
                    let m = x.max(y);
                    m + ((x - m).exp() + (y - m).exp()).ln()
                })
                .sum::<f64>()
                - l * score
        };
        let (mut lo, mut hi) = (0.0f64, 200.0f64);
        let g = 0.5 * (5f64.sqrt() - 1.0);
        for _ in 0..100 {
            let (m1, m2) = (hi - g * (hi - lo), lo + g * (hi - lo));
            if f(m1) < f(m2) { hi = m2 } else { lo = m1 }
        }
        f(0.5 * (lo + hi)).min(0.0).exp()
    }

    /// True when the tail probability is exact (enumerated), false for the Chernoff bound.
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    /// The score of one session.
    pub fn score(&self, session: &SessionId) -> f64 {
        let (Some(lo), Some(hi)) = (
            self.table.iter().map(|t| t.0).min(),
            self.table.iter().map(|t| t.0).max(),
        ) else {
            return 0.0;
        };
        let bits = self.codebook.bits(session, lo..hi + 1);
        self.table
            .iter()
            .map(|&(p, sa, sb)| match bits[(p - lo) as usize] {
                Variant::A => sa,
                Variant::B => sb,
            })
            .sum()
    }

    /// `P(an innocent session scores ≥ score)`.
    pub fn innocent_tail(&self, score: f64) -> f64 {
        match &self.exact {
            Some(dist) => {
                // dist is sorted by descending score with cumulative probabilities.
                let k = dist.partition_point(|d| d.0 >= score - 1e-9);
                if k == 0 { 0.0 } else { dist[k - 1].1.min(1.0) }
            }
            None => self.chernoff(score),
        }
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

    fn clears(&self, score: f64) -> bool {
        !self.table.is_empty() && self.probability(score) <= self.fp
    }

    /// The smallest probability any session could reach with these positions (the floor set by
    /// the number of positions), `n · P(innocent matches every used position)` in exact mode.
    pub fn best_possible(&self) -> f64 {
        let max: f64 = self.table.iter().map(|t| t.1.max(t.2)).sum();
        self.probability(max)
    }

    /// The score threshold (smallest score that is accused), `None` when unreachable.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    fn compute_threshold(&self) -> Option<f64> {
        match &self.exact {
            Some(dist) => dist.iter().rev().map(|d| d.0).find(|&s| self.clears(s)),
            None => {
                // Bisection on the monotone tail bound.
                let (mut lo, mut hi) =
                    (0.0f64, self.terms.iter().map(|t| t.0.max(t.2)).sum::<f64>());
                if !self.clears(hi) {
                    return None;
                }
                for _ in 0..60 {
                    let mid = 0.5 * (lo + hi);
                    if self.clears(mid) { hi = mid } else { lo = mid }
                }
                Some(hi)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PositionDecision;
    use leaktrace_core::TardosParams;

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
    fn the_pirate_is_accused_and_innocents_are_not() {
        let book = Codebook::new(&[1; 32], &[2; 32], TardosParams::default());
        let pirate = SessionId::new("pirate").unwrap();
        let d: Vec<PositionDecision> = (0..200)
            .map(|p| PositionDecision {
                position: p,
                frames: 48,
                correlation: 0.1,
                sigma0: 0.01,
                z: if book.bit(&pirate, p) == Variant::A {
                    8.0
                } else {
                    -8.0
                },
                erased: p % 7 == 3,
            })
            .collect();
        let acc = Accuser::new(&d, &book, 1e-6, 1000);
        assert!(!acc.is_exact());
        assert!(acc.accuses(acc.score(&pirate)));
        for i in 0..1000 {
            let s = SessionId::new(format!("innocent-{i}")).unwrap();
            assert!(!acc.accuses(acc.score(&s)), "{i}");
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
