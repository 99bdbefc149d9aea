//! Tardos anti-collusion codewords: which variant (A or B) a session gets at each position.
//!
//! Every watermarked position `p` of a title has a keyed **bias** `q_p ∈ [t, 1 − t]`, and every
//! session draws its bit at `p` independently as `B` with probability `q_p` (Tardos 2003/2008).
//! Both draws are keyed BLAKE3 outputs, so the edge computes one session's bit at one position in
//! O(1) from the keys and the session id alone: no stored codeword, no `pattern[p mod L]`
//! periodicity, and any `u32` position works.
//!
//! # The bias (per title and position)
//!
//! The bias follows the arcsine density `f(q) = 1 / (π √(q(1 − q)))` restricted to `[t, 1 − t]`
//! (Tardos' distribution with cutoff `t`). It is sampled through the substitution `q = sin²(r)`,
//! which makes `r` uniform: with `t' = asin(√t)`, draw `r` uniformly in `[t', π/2 − t']` and set
//! `q = sin²(r)`. Hence the CDF is
//!
//! ```text
//! F(q) = (asin(√q) − t') / (π/2 − 2t'),   t ≤ q ≤ 1 − t.
//! ```
//!
//! The uniform draw is `u = (H >> 11) / 2^53` where `H` is the first 8 bytes (little-endian) of
//! `BLAKE3-keyed_hash(title_bias_key, position as u64 little-endian)`. The bias is then
//! **quantised to 16 bits**: `T_p = round(sin²(r) · 2^16)` clamped to `[1, 2^16 − 1]`, and
//! `q_p = T_p / 2^16` exactly. Every consumer (edge, detector, calibration) uses this one
//! quantised value, so the probability the detector assumes is exactly the one the edge draws
//! with.
//!
//! # The session bit (codeword format 2)
//!
//! With the codeword key `K` and the session id bytes `s`, the BLAKE3 XOF stream
//! `X = BLAKE3-keyed(K, s)` is read at byte offset `2·p`; its 2 bytes (little-endian) give the
//! word `X_p`, and the bit is `B` if `X_p < T_p`, else `A` (so `P(B) = T_p / 2^16 = q_p`
//! exactly). The XOF is seekable, so this is O(1) in `p`; [`Codebook::bits`] reads a contiguous
//! range in one pass and [`Codebook::session_words`] hands the raw words to batch scoring.
//!
//! Two bytes per position (format 1 read eight) is what makes scoring 10⁶ sessions × 3600
//! positions a matter of seconds: the cost is the XOF output, 7.2 kB per session.
//!
//! # Scoring (detector side)
//!
//! [`score_contribution`] is the symmetric Tardos score of Škorić, Katzenbeisser and Celik,
//! "Symmetric Tardos fingerprinting codes for arbitrary alphabet sizes", Designs, Codes and
//! Cryptography 46(2), 2008 (binary case). With `q` the bias, `y` the observed symbol and `x` the
//! session's bit:
//!
//! ```text
//! y = B, x = B:  +√((1 − q)/q)        y = A, x = A:  +√(q/(1 − q))
//! y = B, x = A:  −√(q/(1 − q))        y = A, x = B:  −√((1 − q)/q)
//! ```
//!
//! For an innocent session (x independent of y given q) each term has mean 0 and variance 1, so the
//! sum over `m` positions has mean 0 and variance `m`. A lone pirate (y = x) scores
//! `2√(q(1 − q))` per position on average, i.e. `2/π ≈ 0.64` under the uncut arcsine law.
//!
//! References: G. Tardos, "Optimal probabilistic fingerprint codes", J. ACM 55(2), 2008;
//! B. Škorić, T. U. Vladimirova, M. Celik, J. C. Talstra, "Tardos fingerprinting is better than we
//! thought", IEEE Trans. Inf. Theory 54(8), 2008; T. Laarhoven, B. de Weger, "Optimal symmetric
//! Tardos traitor tracing schemes", Designs, Codes and Cryptography 71(1), 2014.

use std::f64::consts::FRAC_PI_2;
use std::fmt;
use std::ops::Range;

pub use crate::session::SessionId;
pub use crate::variant::Variant;

/// Errors from building codeword parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodewordError {
    /// The Tardos cutoff is outside the open interval (0, 0.5).
    #[error("Tardos cutoff must satisfy 0 < t < 0.5, got {0}")]
    InvalidCutoff(f64),
}

/// Parameters of the Tardos bias distribution.
///
/// The only parameter is the cutoff `t`: biases are drawn from the arcsine law restricted to
/// `[t, 1 − t]`. A small `t` gives more strongly biased positions: better against coalitions, but
/// a lone pirate's expected symmetric score per position, `E[2√(q(1 − q))]`, drops towards
/// `2/π ≈ 0.64`. As `t → 0.5` the bits approach fair coins: expected score 1 per position for a
/// lone pirate, weak against collusion. Innocent scores have variance 1 per position either way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TardosParams {
    cutoff: f64,
}

impl TardosParams {
    /// Default cutoff `t = 0.1`: biases in `[0.1, 0.9]`.
    ///
    /// Tardos' textbook `t = 1/(300·c₀)` (1/1200 for `c₀ = 4`) serves a worst-case proof for any
    /// coalition size; for the small coalitions this project targets (c ≤ 4) the optimal bias
    /// laws are discrete and central (Nuida et al., "An improvement of discrete Tardos
    /// fingerprinting codes", Designs, Codes and Cryptography 52, 2009: `{0.5}` for c = 2,
    /// `{0.211, 0.789}` for c = 3–4, `{0.113, 0.5, 0.887}` for c = 5–6), all inside `[0.1, 0.9]`.
    /// A larger cutoff shortens the accusation of lone pirates and of small coalitions alike
    /// (perfect decisions, symmetric score, fp 10⁻⁶ among 10⁶ sessions: the figures per cutoff
    /// are in `docs/BENCHMARKS.md` §6.3); what it gives up is the worst-case guarantee for
    /// coalitions larger than about 6.
    pub const DEFAULT_CUTOFF: f64 = 0.1;

    /// Builds parameters with cutoff `t`.
    ///
    /// # Errors
    /// [`CodewordError::InvalidCutoff`] unless `0 < t < 0.5` (NaN is rejected).
    pub fn new(cutoff: f64) -> Result<Self, CodewordError> {
        if cutoff > 0.0 && cutoff < 0.5 {
            Ok(Self { cutoff })
        } else {
            Err(CodewordError::InvalidCutoff(cutoff))
        }
    }

    /// The cutoff `t`.
    #[must_use]
    pub const fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// `t' = asin(√t)`: the lower end of the uniform angle range.
    #[must_use]
    pub fn angle_cutoff(&self) -> f64 {
        self.cutoff.sqrt().asin()
    }

    /// CDF of the bias distribution, `F(q) = (asin(√q) − t') / (π/2 − 2t')`, clamped to [0, 1].
    #[must_use]
    pub fn bias_cdf(&self, q: f64) -> f64 {
        let tp = self.angle_cutoff();
        let span = FRAC_PI_2 - 2.0 * tp;
        if q.is_nan() {
            return f64::NAN;
        }
        ((q.clamp(0.0, 1.0).sqrt().asin() - tp) / span).clamp(0.0, 1.0)
    }
}

impl Default for TardosParams {
    fn default() -> Self {
        Self {
            cutoff: Self::DEFAULT_CUTOFF,
        }
    }
}

/// 53 uniform bits from 8 little-endian bytes, as a float in `[0, 1)`.
fn unit_from_le_bytes(bytes: [u8; 8]) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (u64::from_le_bytes(bytes) >> 11) as f64 * SCALE
}

/// A title's codebook: the keys and parameters that define every session's codeword.
///
/// Cheap to clone; holds two 32-byte keys (never printed by `Debug`).
#[derive(Clone)]
pub struct Codebook {
    bias_key: [u8; 32],
    codeword_key: [u8; 32],
    params: TardosParams,
    angle_lo: f64,
    angle_span: f64,
}

impl fmt::Debug for Codebook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codebook")
            .field("bias_key", &"<redacted>")
            .field("codeword_key", &"<redacted>")
            .field("params", &self.params)
            .finish()
    }
}

impl Codebook {
    /// Builds a codebook from already-derived keys.
    ///
    /// `title_bias_key` fixes the per-position biases of one title; `codeword_key` keys the
    /// per-session draws. Both should come from distinct BLAKE3 `derive_key` contexts.
    #[must_use]
    pub fn new(title_bias_key: &[u8; 32], codeword_key: &[u8; 32], params: TardosParams) -> Self {
        let angle_lo = params.angle_cutoff();
        Self {
            bias_key: *title_bias_key,
            codeword_key: *codeword_key,
            params,
            angle_lo,
            angle_span: FRAC_PI_2 - 2.0 * angle_lo,
        }
    }

    /// The Tardos parameters.
    #[must_use]
    pub const fn params(&self) -> TardosParams {
        self.params
    }

    /// The bias `q_p ≈ [t, 1 − t]` (a multiple of 2⁻¹⁶; see the module docs): the exact
    /// probability that a session gets `B` at `position`.
    #[must_use]
    pub fn bias(&self, position: u32) -> f64 {
        let hash = blake3::keyed_hash(&self.bias_key, &u64::from(position).to_le_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        let r = self.angle_lo + unit_from_le_bytes(first) * self.angle_span;
        let s = r.sin();
        f64::from(threshold_of_bias(s * s)) / WORD_SCALE
    }

    fn session_stream(&self, session: &SessionId) -> blake3::OutputReader {
        let mut hasher = blake3::Hasher::new_keyed(&self.codeword_key);
        hasher.update(session.as_bytes());
        hasher.finalize_xof()
    }

    /// The session's uniform draw `u_p = X_p / 2^16 ∈ [0, 1)` at `position` (exposed for test
    /// vectors): the bit is `B` iff `u_p < q_p`.
    #[must_use]
    pub fn session_uniform(&self, session: &SessionId, position: u32) -> f64 {
        let mut reader = self.session_stream(session);
        reader.set_position(u64::from(position) * WORD_BYTES);
        let mut buf = [0u8; 2];
        reader.fill(&mut buf);
        f64::from(u16::from_le_bytes(buf)) / WORD_SCALE
    }

    /// The variant `session` receives at `position`: `B` iff `u_p < q_p`. O(1).
    #[must_use]
    pub fn bit(&self, session: &SessionId, position: u32) -> Variant {
        let mut word = [0u16; 1];
        self.session_words(session, position, &mut word);
        Variant::from_bit(word[0] < self.bias_threshold(position))
    }

    /// The variants for a contiguous range of positions (one XOF pass).
    #[must_use]
    pub fn bits(&self, session: &SessionId, positions: Range<u32>) -> Vec<Variant> {
        let mut words = vec![0u16; positions.len()];
        self.session_words(session, positions.start, &mut words);
        words
            .iter()
            .zip(positions)
            .map(|(&w, p)| Variant::from_bit(w < self.bias_threshold(p)))
            .collect()
    }

    /// The integer form of the bias: `T_p = q_p · 2^16 ∈ [1, 2^16 − 1]`. The session bit at `p`
    /// is `B` iff the XOF word `X_p < T_p` (see [`Codebook::session_words`]).
    #[must_use]
    pub fn bias_threshold(&self, position: u32) -> u16 {
        // bias() is an exact multiple of 2^-16 in (0, 1), so this round trip is exact.
        threshold_of_bias(self.bias(position))
    }

    /// The raw XOF words `X_p` (2 little-endian bytes each) of `session` for positions
    /// `start .. start + out.len()`, in one pass over the stream. The bit at `p` is `B` iff
    /// `X_p < bias_threshold(p)`; this is what [`Codebook::bits`] computes, without the
    /// per-position bias evaluation, for scoring many sessions against precomputed thresholds.
    ///
    /// Positions past `u32::MAX` are not meaningful; `out.len()` should not exceed
    /// `u32::MAX - start + 1`.
    pub fn session_words(&self, session: &SessionId, start: u32, out: &mut [u16]) {
        let mut reader = self.session_stream(session);
        reader.set_position(u64::from(start) * WORD_BYTES);
        // Large fills let the blake3 crate produce several output blocks per call.
        let mut chunk = [0u8; 2 * 1024];
        for words in out.chunks_mut(1024) {
            let buf = &mut chunk[..words.len() * 2];
            reader.fill(buf);
            for (w, b) in words.iter_mut().zip(buf.chunks_exact(2)) {
                *w = u16::from_le_bytes([b[0], b[1]]);
            }
        }
    }
}

/// Bytes of XOF output per position.
const WORD_BYTES: u64 = 2;
/// `2^16`: the resolution of biases and session draws.
const WORD_SCALE: f64 = 65_536.0;

/// `round(q · 2^16)` clamped to `[1, 2^16 − 1]`: the integer bias threshold of a probability
/// `q` (see [`Codebook::bias_threshold`]); NaN gives 1.
#[must_use]
pub fn threshold_of_bias(q: f64) -> u16 {
    let t = (q * WORD_SCALE).round();
    if t.is_nan() {
        return 1;
    }
    // Clamped to the u16 range first, so the conversion is exact.
    t.clamp(1.0, WORD_SCALE - 1.0) as u16
}

/// One position's term of the symmetric Tardos score (Škorić–Katzenbeisser–Celik 2008).
///
/// `bias` is `q_p`, `observed` the variant seen in the suspect copy, `session_bit` the variant the
/// candidate session was served:
///
/// ```text
/// observed = B:  +√((1 − q)/q) if session_bit = B,  −√(q/(1 − q)) if session_bit = A
/// observed = A:  +√(q/(1 − q)) if session_bit = A,  −√((1 − q)/q) if session_bit = B
/// ```
///
/// For an innocent session the term has mean 0 and variance 1. Returns 0.0 (no evidence) if
/// `bias` is not strictly inside (0, 1).
#[must_use]
pub fn score_contribution(bias: f64, observed: Variant, session_bit: Variant) -> f64 {
    if !(bias > 0.0 && bias < 1.0) {
        return 0.0;
    }
    // Flip the roles of q and 1 − q when A was observed, so one formula serves both cases.
    let q = match observed {
        Variant::B => bias,
        Variant::A => 1.0 - bias,
    };
    if session_bit == observed {
        ((1.0 - q) / q).sqrt()
    } else {
        -(q / (1.0 - q)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIAS_KEY: [u8; 32] = [0x11; 32];
    const CW_KEY: [u8; 32] = [0x22; 32];

    fn book() -> Codebook {
        Codebook::new(&BIAS_KEY, &CW_KEY, TardosParams::default())
    }

    fn sid(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    fn bits_string(v: &[Variant]) -> String {
        v.iter().map(|b| char::from(b'0' + b.bit())).collect()
    }

    #[test]
    fn params_validation_states_range() {
        assert!(TardosParams::new(0.0).is_err());
        assert!(TardosParams::new(0.5).is_err());
        assert!(TardosParams::new(-0.1).is_err());
        assert!(TardosParams::new(f64::NAN).is_err());
        assert!(TardosParams::new(f64::INFINITY).is_err());
        let err = TardosParams::new(0.7).unwrap_err().to_string();
        assert!(err.contains("0 < t < 0.5"), "{err}");
        assert!(err.contains("0.7"), "{err}");
        assert_eq!(TardosParams::new(0.01).unwrap().cutoff(), 0.01);
        assert_eq!(TardosParams::default().cutoff(), 0.1);
    }

    #[test]
    fn variant_bits() {
        assert_eq!(Variant::A.bit(), 0);
        assert_eq!(Variant::B.bit(), 1);
        assert_eq!(Variant::from_bit(true), Variant::B);
        assert_eq!(Variant::A.other(), Variant::B);
        assert_eq!(Variant::B.to_string(), "B");
    }

    #[test]
    fn deterministic() {
        let a = book();
        let b = Codebook::new(&BIAS_KEY, &CW_KEY, TardosParams::default());
        let s = sid("session-1");
        for p in [0u32, 1, 2, 1000, 65_535, 65_536, u32::MAX] {
            assert_eq!(a.bias(p).to_bits(), b.bias(p).to_bits());
            assert_eq!(a.bit(&s, p), b.bit(&s, p));
        }
        assert_eq!(a.bits(&s, 0..500), b.bits(&s, 0..500));
    }

    /// Pins the algorithm: a CDN reimplementation must reproduce these values.
    #[test]
    fn golden_vector() {
        let b = book();
        let s = sid("golden-session");
        let bias0 = b.bias(0);
        let bits = bits_string(&b.bits(&s, 0..64));
        assert_eq!(format!("{bias0:.15}"), GOLDEN_BIAS0, "bias(0)");
        assert_eq!(bits, GOLDEN_BITS, "bits 0..64");
        assert_eq!(
            format!("{:.15}", b.session_uniform(&s, 0)),
            GOLDEN_U0,
            "u_0"
        );
        assert_eq!(format!("{:.15}", b.bias(70_000)), "0.496200561523438");
        assert_eq!(
            format!("{:.15}", b.session_uniform(&s, 70_000)),
            "0.006774902343750"
        );
        assert_eq!(b.bit(&s, 70_000), Variant::B);
    }
    // Cross-checked with an independent Python implementation (the `blake3` package from PyPI,
    // codeword format 2, cutoff 0.1).
    const GOLDEN_BIAS0: &str = "0.408126831054688";
    const GOLDEN_BITS: &str = "0110011000000001011011001111101001001110010001011001110110110000";
    const GOLDEN_U0: &str = "0.750854492187500";

    #[test]
    fn bits_range_matches_single_bit() {
        let b = book();
        let s = sid("range-check");
        let start = 65_500u32;
        let v = b.bits(&s, start..start + 200);
        assert_eq!(v.len(), 200);
        for (i, bit) in v.iter().enumerate() {
            assert_eq!(
                *bit,
                b.bit(&s, start + i as u32),
                "position {}",
                start + i as u32
            );
        }
        assert!(b.bits(&s, 10..10).is_empty());
        let top = b.bits(&s, u32::MAX - 3..u32::MAX);
        assert_eq!(top.len(), 3);
        assert_eq!(top[2], b.bit(&s, u32::MAX - 1));
    }

    #[test]
    fn batch_words_and_thresholds_reproduce_bits() {
        let b = book();
        for (i, start) in [0u32, 7, 65_530, 1 << 20].into_iter().enumerate() {
            let s = sid(&format!("batch-{i}"));
            let mut words = vec![0u16; 2777];
            b.session_words(&s, start, &mut words);
            let bits = b.bits(&s, start..start + 2777);
            for (k, (&w, &bit)) in words.iter().zip(&bits).enumerate() {
                let p = start + k as u32;
                assert_eq!(
                    Variant::from_bit(w < b.bias_threshold(p)),
                    bit,
                    "position {p}"
                );
                assert_eq!(b.bit(&s, p), bit, "position {p}");
            }
        }
        // The bias is exactly its threshold over 2^16, inside the cutoff up to quantisation.
        for p in 0..2000 {
            let t = b.bias_threshold(p);
            let q = b.bias(p);
            assert_eq!(f64::from(t) / 65_536.0, q, "position {p}");
            assert!((0.1 - 1e-4..=0.9 + 1e-4).contains(&q), "position {p}: {q}");
        }
        assert_eq!(threshold_of_bias(f64::NAN), 1);
        assert_eq!(threshold_of_bias(0.0), 1);
        assert_eq!(threshold_of_bias(1.0), 65_535);
    }

    #[test]
    fn positions_beyond_u16_work_and_do_not_repeat() {
        let b = book();
        let s = sid("wide");
        let low = b.bits(&s, 0..512);
        let high = b.bits(&s, 65_536..65_536 + 512);
        let higher = b.bits(&s, 1 << 20..(1 << 20) + 512);
        assert_ne!(low, high, "position p and p + 65536 must not coincide");
        assert_ne!(low, higher);
        let bias_low: Vec<u64> = (0..64).map(|p| b.bias(p).to_bits()).collect();
        let bias_high: Vec<u64> = (65_536..65_600).map(|p| b.bias(p).to_bits()).collect();
        assert_ne!(bias_low, bias_high);
        let q = b.bias(u32::MAX);
        assert!(q >= b.params().cutoff() && q <= 1.0 - b.params().cutoff());
    }

    #[test]
    fn different_sessions_differ() {
        let b = book();
        let n = 4096u32;
        let x = b.bits(&sid("alice"), 0..n);
        let y = b.bits(&sid("bob"), 0..n);
        let z = b.bits(&sid("alicf"), 0..n);
        assert_ne!(x, y);
        assert_ne!(x, z);
        // Independent draws with the same biases: agreement rate is Σ q² + (1 − q)², not 1.
        let expected: f64 = (0..n)
            .map(|p| {
                let q = b.bias(p);
                q * q + (1.0 - q) * (1.0 - q)
            })
            .sum::<f64>();
        let agree = x.iter().zip(&y).filter(|(a, b)| a == b).count() as f64;
        // Each agreement indicator has variance ≤ 1/4.
        let tol = 6.0 * (f64::from(n) / 4.0).sqrt();
        assert!(
            (agree - expected).abs() < tol,
            "agree {agree} expected {expected} tol {tol}"
        );
    }

    #[test]
    fn keys_separate() {
        let s = sid("same-session");
        let base = book();
        let other_cw = Codebook::new(&BIAS_KEY, &[0x23; 32], TardosParams::default());
        let other_bias = Codebook::new(&[0x12; 32], &CW_KEY, TardosParams::default());
        assert_ne!(base.bits(&s, 0..1024), other_cw.bits(&s, 0..1024));
        let biases = |c: &Codebook| (0..64).map(|p| c.bias(p).to_bits()).collect::<Vec<_>>();
        assert_eq!(
            biases(&base),
            biases(&other_cw),
            "bias depends only on the bias key"
        );
        assert_ne!(biases(&base), biases(&other_bias));
        assert_ne!(base.bits(&s, 0..1024), other_bias.bits(&s, 0..1024));
    }

    #[test]
    fn bias_range_respects_cutoff() {
        for t in [1e-6, 1.0 / 1200.0, 0.05, 0.3, 0.499] {
            let b = Codebook::new(&BIAS_KEY, &CW_KEY, TardosParams::new(t).unwrap());
            for p in 0..2000 {
                let q = b.bias(p);
                // Quantised to 2^-16 (round to nearest): within half a step of the range, and
                // never 0 or 1.
                let half = 0.5 / 65_536.0;
                assert!(q >= t - half && q <= 1.0 - t + half, "t={t} q={q}");
                assert!(q > 0.0 && q < 1.0, "t={t} q={q}");
            }
        }
    }

    /// Kolmogorov–Smirnov test of the biases against the arcsine-with-cutoff CDF.
    ///
    /// Critical value at significance α: `D_n > c(α)/√n` with `c(α) = √(−ln(α/2)/2)`; α = 10⁻⁶.
    #[test]
    fn bias_distribution_matches_arcsine_cdf() {
        for t in [1.0 / 1200.0, 0.05] {
            let params = TardosParams::new(t).unwrap();
            let b = Codebook::new(&BIAS_KEY, &CW_KEY, params);
            let n = 20_000usize;
            let mut qs: Vec<f64> = (0..n as u32).map(|p| b.bias(p)).collect();
            qs.sort_by(f64::total_cmp);
            let mut d: f64 = 0.0;
            for (i, &q) in qs.iter().enumerate() {
                let f = params.bias_cdf(q);
                let lo = i as f64 / n as f64;
                let hi = (i + 1) as f64 / n as f64;
                d = d.max((f - lo).abs()).max((hi - f).abs());
            }
            let alpha: f64 = 1e-6;
            let crit = (-(alpha / 2.0).ln() / 2.0).sqrt() / (n as f64).sqrt();
            assert!(d < crit, "t={t}: KS D={d} >= {crit}");
        }
    }

    /// At a fixed position, the fraction of sessions served B estimates the bias.
    #[test]
    fn bit_frequency_matches_bias() {
        let b = book();
        let n = 20_000usize;
        let sessions: Vec<SessionId> = (0..n).map(|i| sid(&format!("s{i}"))).collect();
        // Pick positions with small, medium and large biases.
        let mut positions: Vec<(u32, f64)> = (0..5000u32).map(|p| (p, b.bias(p))).collect();
        positions.sort_by(|a, b| a.1.total_cmp(&b.1));
        let picks = [
            positions[10],
            positions[2500],
            positions[4990],
            (70_000, b.bias(70_000)),
        ];
        for (p, q) in picks {
            let ones = sessions
                .iter()
                .filter(|s| b.bit(s, p) == Variant::B)
                .count() as f64;
            let freq = ones / n as f64;
            let sd = (q * (1.0 - q) / n as f64).sqrt();
            // 6 standard deviations, plus one count of slack for q near the cutoff.
            let tol = 6.0 * sd + 1.0 / n as f64;
            assert!((freq - q).abs() < tol, "p={p} q={q} freq={freq} tol={tol}");
        }
    }

    /// Autocorrelation of one session's standardized bits: no lag, including 65 536, stands out.
    #[test]
    fn no_periodicity() {
        let b = book();
        let s = sid("periodic-check");
        let n = 200_000u32;
        let bits = b.bits(&s, 0..n);
        let z: Vec<f64> = bits
            .iter()
            .enumerate()
            .map(|(p, v)| {
                let q = b.bias(p as u32);
                (f64::from(v.bit()) - q) / (q * (1.0 - q)).sqrt()
            })
            .collect();
        let lags: Vec<usize> = (1..=64)
            .chain([
                100, 127, 128, 255, 256, 1000, 1024, 4096, 32_768, 65_535, 65_536, 100_000,
            ])
            .collect();
        for lag in lags {
            let m = z.len() - lag;
            let r = z[..m]
                .iter()
                .zip(&z[lag..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / m as f64;
            // Under independence each product has mean 0 and variance 1: sd(r) = 1/√m.
            let tol = 6.0 / (m as f64).sqrt();
            assert!(r.abs() < tol, "lag {lag}: r={r} tol={tol}");
        }
    }

    /// Innocent sessions: score terms have mean 0 and variance 1, with tolerances computed from
    /// the exact conditional moments (the terms are heavy-tailed near the cutoff).
    #[test]
    fn innocent_score_mean_zero_variance_one() {
        let b = book();
        let positions = 0..2000u32;
        let biases: Vec<f64> = positions.clone().map(|p| b.bias(p)).collect();
        let pirate = b.bits(&sid("the-pirate"), positions.clone());
        let mut sum = 0.0;
        let mut sum_sq = 0.0;
        let mut var_of_sq = 0.0; // Σ Var(g²) = Σ (E[g⁴] − 1)
        let mut count = 0usize;
        for i in 0..100 {
            let innocent = b.bits(&sid(&format!("innocent-{i}")), positions.clone());
            for ((&q, &y), &x) in biases.iter().zip(&pirate).zip(&innocent) {
                let g = score_contribution(q, y, x);
                sum += g;
                sum_sq += g * g;
                let e4 = (1.0 - q).powi(2) / q + q * q / (1.0 - q);
                var_of_sq += e4 - 1.0;
                count += 1;
            }
        }
        let n = count as f64;
        let mean = sum / n;
        assert!(mean.abs() < 6.0 / n.sqrt(), "mean {mean} over {n}");
        let second = sum_sq / n;
        let tol = 6.0 * var_of_sq.sqrt() / n;
        assert!((second - 1.0).abs() < tol, "E[g²] {second}, tol {tol}");
    }

    #[test]
    fn pirate_scores_positive() {
        let b = book();
        let m = 2000u32;
        let s = sid("leaker");
        let bits = b.bits(&s, 0..m);
        let score: f64 = (0..m)
            .zip(&bits)
            .map(|(p, &x)| score_contribution(b.bias(p), x, x))
            .sum();
        let expected: f64 = (0..m)
            .map(|p| {
                let q = b.bias(p);
                2.0 * (q * (1.0 - q)).sqrt()
            })
            .sum();
        // Innocent sd over m positions is √m ≈ 45; the pirate's mean is ≈ 0.64·m ≈ 1270.
        assert!(
            score > expected - 6.0 * f64::from(m).sqrt(),
            "{score} vs {expected}"
        );
        assert!(score > 10.0 * f64::from(m).sqrt());
    }

    #[test]
    fn score_formula_cases() {
        let q: f64 = 0.2;
        let a = ((1.0 - q) / q).sqrt();
        let c = (q / (1.0 - q)).sqrt();
        assert_eq!(score_contribution(q, Variant::B, Variant::B), a);
        assert_eq!(score_contribution(q, Variant::B, Variant::A), -c);
        assert!((score_contribution(q, Variant::A, Variant::A) - c).abs() < 1e-15);
        assert!((score_contribution(q, Variant::A, Variant::B) + a).abs() < 1e-15);
        // Exact innocent moments for y = B: mean q·a − (1 − q)·c = 0, E[g²] = 1.
        let mean = q * a - (1.0 - q) * c;
        assert!(mean.abs() < 1e-15);
        assert!((q * a * a + (1.0 - q) * c * c - 1.0).abs() < 1e-15);
        for bad in [0.0, 1.0, -0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(score_contribution(bad, Variant::B, Variant::B), 0.0);
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let s = format!("{:?}", book());
        assert!(s.contains("redacted"));
        assert!(!s.contains("17")); // 0x11 = 17 would appear in a byte dump
    }
}
