//! Synthetic detector output, for calibrating the accusation: a Gaussian channel
//! `z = ±μ + N(0, 1)` on the symbol a pirate (or a coalition) put in the copy.
//!
//! A tool for the accusation's calibration tests (`tests/accuse_sim.rs`) and the `accuse_sim`
//! example (`cargo run --release -p leaktrace-detect --example accuse_sim`), which measure how
//! many positions an accusation needs and whether the stated false-accusation probability
//! holds over many innocent sessions. Nothing in detection uses it. Everything is
//! deterministic: the randomness comes from the seeded [`Rng`].
//!
//! ```
//! use leaktrace_detect::accuse::AccuseOptions;
//! use leaktrace_detect::simulate::{self as sim, Rng};
//!
//! let book = sim::book(1);
//! let pirate = sim::sessions("pirate", 1);
//! let copy = book.bits(&pirate[0], 0..400);
//! // Strong positions (μ = 3): about one decision in 740 is wrong.
//! let decisions = sim::channel(&copy, 3.0, 0.0, &mut Rng(7));
//! let opts = AccuseOptions::default();
//! let needed = sim::positions_needed(&book, &decisions, &pirate, 1e-6, 1_000_000, &opts, 20);
//! assert!(needed.is_some_and(|n| n <= 400));
//! ```

use crate::PositionDecision;
use crate::accuse::{AccuseOptions, Accuser};
use leaktrace_core::{Codebook, SessionId, TardosParams, Variant};

/// SplitMix64: a small deterministic generator for simulations.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A codebook with the default Tardos parameters, keyed by `seed`.
pub fn book(seed: u8) -> Codebook {
    book_with(seed, TardosParams::default())
}

/// A codebook with `params`, keyed by `seed`.
pub fn book_with(seed: u8, params: TardosParams) -> Codebook {
    Codebook::new(&[seed; 32], &[seed ^ 0x5a; 32], params)
}

/// `n` session ids `{prefix}-0`, `{prefix}-1`, ….
///
/// # Panics
/// If `prefix` makes an invalid session id (see [`SessionId::new`]).
pub fn sessions(prefix: &str, n: usize) -> Vec<SessionId> {
    (0..n)
        .map(|i| {
            SessionId::new(format!("{prefix}-{i}"))
                .unwrap_or_else(|e| panic!("session id {prefix}-{i}: {e}"))
        })
        .collect()
}

/// How a coalition builds its copy from its members' variants.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Attack {
    /// Each position from a random member (segment interleaving).
    Interleave,
    /// The variant most members have (ties at random).
    Majority,
    /// Where members differ, the variant fewer of them have (ties at random).
    Minority,
}

/// The variants in the copy `members` forge by `attack`, at positions `0..len`.
///
/// # Panics
/// If `members` is empty.
pub fn forge(
    book: &Codebook,
    members: &[SessionId],
    len: u32,
    attack: Attack,
    rng: &mut Rng,
) -> Vec<Variant> {
    let bits: Vec<Vec<Variant>> = members.iter().map(|m| book.bits(m, 0..len)).collect();
    (0..len as usize)
        .map(|p| match attack {
            Attack::Interleave => bits[rng.below(bits.len())][p],
            Attack::Majority | Attack::Minority => {
                let b = bits.iter().filter(|v| v[p] == Variant::B).count();
                let a = bits.len() - b;
                let (more, fewer) = if b > a {
                    (Variant::B, Variant::A)
                } else {
                    (Variant::A, Variant::B)
                };
                if a == 0 || b == 0 {
                    bits[0][p]
                } else if a == b {
                    if rng.next_u64() & 1 == 1 {
                        Variant::B
                    } else {
                        Variant::A
                    }
                } else if matches!(attack, Attack::Majority) {
                    more
                } else {
                    fewer
                }
            }
        })
        .collect()
}

/// Decisions on `copy` through the Gaussian channel: `z = +μ + N(0,1)` for A, `−μ + N(0,1)`
/// for B; `|z| < erase` is flagged as an erasure.
pub fn channel(copy: &[Variant], mu: f64, erase: f64, rng: &mut Rng) -> Vec<PositionDecision> {
    copy.iter()
        .enumerate()
        .map(|(p, &v)| {
            let s = if v == Variant::A { 1.0 } else { -1.0 };
            let z = s * mu + rng.gauss();
            PositionDecision {
                position: p as u32,
                frames: 48,
                correlation: z,
                sigma0: 1.0,
                z,
                erased: z.abs() < erase,
            }
        })
        .collect()
}

/// Whether one of `suspects` is accused from the first `len` decisions, at false-accusation
/// probability `fp` among `registry` sessions.
pub fn accused_at(
    book: &Codebook,
    decisions: &[PositionDecision],
    len: usize,
    suspects: &[SessionId],
    fp: f64,
    registry: u64,
    opts: &AccuseOptions,
) -> bool {
    let acc = Accuser::with_options(
        &decisions[..len.min(decisions.len())],
        book,
        fp,
        registry,
        opts,
    );
    acc.threshold().is_some() && suspects.iter().any(|s| acc.accuses(acc.score(s)))
}

/// Smallest prefix length (on a 5 % geometric grid from `from`) at which one of `suspects` is
/// accused ([`accused_at`]), `None` if not within the decisions.
pub fn positions_needed(
    book: &Codebook,
    decisions: &[PositionDecision],
    suspects: &[SessionId],
    fp: f64,
    registry: u64,
    opts: &AccuseOptions,
    from: usize,
) -> Option<usize> {
    // Bisection on the (nearly monotone) success over the grid.
    let grid: Vec<usize> =
        std::iter::successors(Some(from.max(1)), |&l| Some((l * 21 / 20).max(l + 1)))
            .take_while(|&l| l <= decisions.len())
            .collect();
    let ok = |l: usize| accused_at(book, decisions, l, suspects, fp, registry, opts);
    if grid.is_empty() || !ok(*grid.last()?) {
        return None;
    }
    let (mut lo, mut hi) = (0usize, grid.len() - 1);
    if ok(grid[0]) {
        return Some(grid[0]);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(grid[mid]) { hi = mid } else { lo = mid }
    }
    Some(grid[hi])
}

/// The median (the upper one for an even count).
///
/// # Panics
/// If `v` is empty.
pub fn median(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}
