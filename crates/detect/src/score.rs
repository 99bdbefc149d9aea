//! Batch scoring: one suspect's per-position score table against many sessions.
//!
//! The score of a session is a sum over the used positions of one of two precomputed values:
//! `score_A(p)` if the session was served `A` at `p`, `score_B(p)` if `B`. A [`ScoreTable`]
//! stores it as `base + Σ_{p: bit B} δ_p` with `base = Σ score_A(p)` and
//! `δ_p = score_B(p) − score_A(p)`, together with the integer bias thresholds `T_p`
//! ([`Codebook::bias_threshold`]), so scoring a session is one pass over its XOF stream
//! ([`Codebook::session_words`]): an integer comparison and a masked add per position, no float
//! bias evaluation and no allocation per session.
//!
//! Used positions are grouped into runs of nearby positions (a gap of more than [`RUN_GAP`]
//! unused positions starts a new run, with a seek in the stream), so sparse observations do not
//! pay for the positions in between.
//!
//! [`ScoreTable::scan`] scores a slice of sessions on all cores (`std::thread::scope`, work
//! handed out in blocks through an atomic counter) and keeps only the sessions at or above a
//! bar plus the top `k`, so scanning 10⁶ sessions allocates nothing per session.

use leaktrace_core::{Codebook, SessionId};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Gap (unused positions) above which a new run starts with a seek in the XOF stream.
pub const RUN_GAP: u32 = 64;

/// Sessions handed to a worker at a time by [`ScoreTable::scan`].
const BLOCK: usize = 256;

/// A contiguous range of positions read in one pass.
#[derive(Clone, Debug)]
struct Run {
    start: u32,
    /// Offset of the run's first position in `thresholds` / `delta`.
    offset: usize,
    len: usize,
}

/// Per-position score table of one suspect, ready to score any number of sessions.
///
/// A table may hold several scores ("lanes") over the same positions, each mapped onto a
/// common scale by `scale·s + offset`; a session's score is then the largest mapped lane score
/// ([`ScoreTable::with_lanes`]). The codeword stream is read once for all lanes.
#[derive(Clone, Debug)]
pub struct ScoreTable {
    runs: Vec<Run>,
    thresholds: Vec<u16>,
    /// `δ` of every lane, lane after lane: `delta[l·span + i]`.
    delta: Vec<f64>,
    /// `(base, scale, offset)` of every lane.
    lanes: Vec<(f64, f64, f64)>,
    longest: usize,
}

/// One lane of a [`ScoreTable`]: `(score if A, score if B)` per position of the table and the
/// map `scale·s + offset` onto the common scale.
#[derive(Clone, Debug)]
pub struct Lane {
    /// `(score if A, score if B)`, aligned with the table's positions.
    pub terms: Vec<(f64, f64)>,
    /// Factor of the map onto the common scale (positive).
    pub scale: f64,
    /// Offset of the map onto the common scale.
    pub offset: f64,
}

/// A session index (into the scanned slice) with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Index of the session in the slice given to [`ScoreTable::scan`].
    pub index: usize,
    /// Its score.
    pub score: f64,
}

/// What [`ScoreTable::scan`] keeps.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// Every session whose score is at or above the bar, by descending score.
    pub above: Vec<Hit>,
    /// The `k` best sessions, by descending score (ties by index).
    pub top: Vec<Hit>,
    /// Sessions scored.
    pub scored: usize,
}

fn by_score(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.index.cmp(&b.index))
}

/// What one used position adds to a session's score, by the variant its codeword has there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionScore {
    /// The position.
    pub position: u32,
    /// Added when the session's codeword has A at the position.
    pub if_a: f64,
    /// Added when it has B.
    pub if_b: f64,
}

impl ScoreTable {
    /// Builds the table from one entry per used position (any order; a position given twice
    /// has its entries added).
    pub fn new(codebook: &Codebook, entries: &[PositionScore]) -> Self {
        let positions: Vec<(u32, u16)> = entries
            .iter()
            .map(|e| (e.position, codebook.bias_threshold(e.position)))
            .collect();
        let lane = Lane {
            terms: entries.iter().map(|e| (e.if_a, e.if_b)).collect(),
            scale: 1.0,
            offset: 0.0,
        };
        Self::with_lanes(&positions, &[lane])
    }

    /// A table of several lanes over `positions` (`(position, bias threshold)`, any order; a
    /// position given twice has its terms added in every lane). Each lane's terms are aligned
    /// with `positions`; a session's score is `max_l (scale_l·s_l + offset_l)`. No lane gives
    /// an empty table (score 0).
    pub fn with_lanes(positions: &[(u32, u16)], lanes: &[Lane]) -> Self {
        let n = lanes.len().max(1);
        let mut order: Vec<usize> = (0..positions.len()).collect();
        order.sort_by_key(|&i| positions[i].0);
        // (position, threshold, terms of every lane) merged by position.
        type Merged = (u32, u16, Vec<(f64, f64)>);
        let mut merged: Vec<Merged> = Vec::with_capacity(order.len());
        for i in order {
            let (p, threshold) = positions[i];
            let terms = lanes
                .iter()
                .map(|l| l.terms.get(i).copied().unwrap_or((0.0, 0.0)));
            match merged.last_mut() {
                Some(last) if last.0 == p => {
                    for (t, (a, b)) in last.2.iter_mut().zip(terms) {
                        t.0 += a;
                        t.1 += b;
                    }
                }
                _ => merged.push((p, threshold, terms.collect())),
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut thresholds = Vec::new();
        let mut deltas: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut bases = vec![0.0f64; lanes.len()];
        for (p, threshold, terms) in &merged {
            let p = *p;
            for (b, t) in bases.iter_mut().zip(terms) {
                *b += t.0;
            }
            let extend = runs.last().is_some_and(|r| {
                let end = u64::from(r.start) + r.len as u64;
                u64::from(p) <= end + u64::from(RUN_GAP)
            });
            if extend {
                if let Some(r) = runs.last_mut() {
                    // Fill the gap with neutral positions (threshold 0: never counted).
                    let end = r.start as usize + r.len;
                    let gap = p as usize - end;
                    thresholds.extend(std::iter::repeat_n(0u16, gap));
                    for d in &mut deltas {
                        d.extend(std::iter::repeat_n(0.0f64, gap));
                    }
                    r.len += gap + 1;
                }
            } else {
                runs.push(Run {
                    start: p,
                    offset: thresholds.len(),
                    len: 1,
                });
            }
            thresholds.push(*threshold);
            for (l, d) in deltas.iter_mut().enumerate() {
                d.push(terms.get(l).map_or(0.0, |t| t.1 - t.0));
            }
        }
        let delta: Vec<f64> = deltas.concat();
        let longest = runs.iter().map(|r| r.len).max().unwrap_or(0);
        let lanes = if lanes.is_empty() {
            vec![(0.0, 1.0, 0.0)]
        } else {
            lanes
                .iter()
                .zip(bases)
                .map(|(l, b)| (b, l.scale, l.offset))
                .collect()
        };
        Self {
            runs,
            thresholds,
            delta,
            lanes,
            longest,
        }
    }

    /// Positions covered by the runs (used positions plus short gaps).
    pub fn span(&self) -> usize {
        self.thresholds.len()
    }

    /// A scratch buffer large enough for [`ScoreTable::score_with`].
    pub fn scratch(&self) -> Vec<u16> {
        vec![0u16; self.longest]
    }

    /// The score of one session.
    pub fn score(&self, codebook: &Codebook, session: &SessionId) -> f64 {
        self.score_with(codebook, session, &mut self.scratch())
    }

    /// The score of one session, reusing `scratch` (from [`ScoreTable::scratch`]; resized if
    /// too short).
    pub fn score_with(
        &self,
        codebook: &Codebook,
        session: &SessionId,
        scratch: &mut Vec<u16>,
    ) -> f64 {
        if scratch.len() < self.longest {
            scratch.resize(self.longest, 0);
        }
        let span = self.thresholds.len();
        let mut sums: [f64; 4] = [0.0; 4];
        let lanes = self.lanes.len();
        if lanes <= sums.len() {
            // The codeword stream is read once per run; each lane then sums its own δ.
            for r in &self.runs {
                let words = &mut scratch[..r.len];
                codebook.session_words(session, r.start, words);
                let th = &self.thresholds[r.offset..r.offset + r.len];
                for (l, sum) in sums.iter_mut().enumerate().take(lanes) {
                    let from = l * span + r.offset;
                    *sum += masked_sum(words, th, &self.delta[from..from + r.len]);
                }
            }
            self.lanes
                .iter()
                .zip(sums)
                .map(|(&(base, scale, offset), sum)| scale * (base + sum) + offset)
                .fold(f64::NEG_INFINITY, f64::max)
        } else {
            let mut best = f64::NEG_INFINITY;
            for (l, &(base, scale, offset)) in self.lanes.iter().enumerate() {
                let mut sum = base;
                for r in &self.runs {
                    let words = &mut scratch[..r.len];
                    codebook.session_words(session, r.start, words);
                    let th = &self.thresholds[r.offset..r.offset + r.len];
                    let from = l * span + r.offset;
                    sum += masked_sum(words, th, &self.delta[from..from + r.len]);
                }
                best = best.max(scale * sum + offset);
            }
            best
        }
    }

    /// Scores of all `sessions`, in order, on all cores.
    pub fn score_batch(&self, codebook: &Codebook, sessions: &[SessionId]) -> Vec<f64> {
        let mut out = vec![0.0f64; sessions.len()];
        let threads = threads().min(sessions.len().div_ceil(BLOCK)).max(1);
        let chunk = sessions.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (ids, scores) in sessions.chunks(chunk).zip(out.chunks_mut(chunk)) {
                s.spawn(move || {
                    let mut scratch = self.scratch();
                    for (id, sc) in ids.iter().zip(scores) {
                        *sc = self.score_with(codebook, id, &mut scratch);
                    }
                });
            }
        });
        out
    }

    /// Scores all `sessions` on all cores and keeps those scoring at least `bar` plus the
    /// `top` best, both sorted by descending score.
    pub fn scan(&self, codebook: &Codebook, sessions: &[SessionId], bar: f64, top: usize) -> Scan {
        let next = AtomicUsize::new(0);
        let result = Mutex::new(Scan::default());
        let threads = threads().min(sessions.len().div_ceil(BLOCK)).max(1);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut scratch = self.scratch();
                    let mut local = Scan::default();
                    // Score of the k-th best so far (entry bar of the local top-k).
                    let mut floor = f64::NEG_INFINITY;
                    loop {
                        let from = next.fetch_add(BLOCK, Ordering::Relaxed);
                        if from >= sessions.len() {
                            break;
                        }
                        let to = (from + BLOCK).min(sessions.len());
                        for (i, id) in sessions[from..to].iter().enumerate() {
                            let hit = Hit {
                                index: from + i,
                                score: self.score_with(codebook, id, &mut scratch),
                            };
                            local.scored += 1;
                            if hit.score >= bar {
                                local.above.push(hit);
                            }
                            if top > 0 && (local.top.len() < top || hit.score > floor) {
                                local.top.push(hit);
                                if local.top.len() >= 2 * top {
                                    local.top.sort_by(by_score);
                                    local.top.truncate(top);
                                    floor = local.top[top - 1].score;
                                }
                            }
                        }
                    }
                    let mut all = result.lock().unwrap_or_else(|e| e.into_inner());
                    all.scored += local.scored;
                    all.above.append(&mut local.above);
                    all.top.append(&mut local.top);
                });
            }
        });
        let mut all = result.into_inner().unwrap_or_else(|e| e.into_inner());
        all.above.sort_by(by_score);
        all.top.sort_by(by_score);
        all.top.truncate(top);
        all
    }
}

/// `Σ δ_i` over the positions whose codeword word is below the bias threshold (bit B), four
/// independent accumulators so the adds vectorise.
fn masked_sum(words: &[u16], thresholds: &[u16], delta: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut w4 = words.chunks_exact(4);
    let mut t4 = thresholds.chunks_exact(4);
    let mut d4 = delta.chunks_exact(4);
    for ((w, t), d) in (&mut w4).zip(&mut t4).zip(&mut d4) {
        for k in 0..4 {
            let mask = u64::from(w[k] < t[k]).wrapping_neg();
            acc[k] += f64::from_bits(d[k].to_bits() & mask);
        }
    }
    for ((w, t), d) in w4
        .remainder()
        .iter()
        .zip(t4.remainder())
        .zip(d4.remainder())
    {
        let mask = u64::from(w < t).wrapping_neg();
        acc[0] += f64::from_bits(d.to_bits() & mask);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Worker threads: the available parallelism (at least 1).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaktrace_core::{TardosParams, Variant};

    fn book() -> Codebook {
        Codebook::new(&[5; 32], &[6; 32], TardosParams::default())
    }

    fn naive(book: &Codebook, entries: &[PositionScore], s: &SessionId) -> f64 {
        entries
            .iter()
            .map(|e| match book.bit(s, e.position) {
                Variant::A => e.if_a,
                Variant::B => e.if_b,
            })
            .sum()
    }

    #[test]
    fn table_matches_per_bit_scoring_with_gaps_and_runs() {
        let b = book();
        // Dense run, a short gap, a long gap (new run), a duplicate, unsorted.
        let entry = |position, if_a, if_b| PositionScore {
            position,
            if_a,
            if_b,
        };
        let mut entries: Vec<PositionScore> = (0..300u32)
            .filter(|p| p % 5 != 2)
            .map(|p| entry(p, f64::from(p % 7) - 3.0, 0.5 * f64::from(p % 3)))
            .collect();
        entries.push(entry(1000, 2.0, -1.0));
        entries.push(entry(1001, -0.5, 4.0));
        entries.push(entry(10, 1.0, 1.0));
        entries.reverse();
        let t = ScoreTable::new(&b, &entries);
        assert_eq!(t.runs.len(), 2);
        let ids: Vec<SessionId> = (0..50)
            .map(|i| SessionId::new(format!("s{i}")).unwrap())
            .collect();
        let batch = t.score_batch(&b, &ids);
        for (id, &sc) in ids.iter().zip(&batch) {
            let want = naive(&b, &entries, id);
            assert!((sc - want).abs() < 1e-9, "{sc} vs {want}");
            assert_eq!(sc.to_bits(), t.score(&b, id).to_bits());
        }
        let scan = t.scan(&b, &ids, 0.0, 5);
        assert_eq!(scan.scored, 50);
        let mut sorted = batch.clone();
        sorted.sort_by(|x, y| y.total_cmp(x));
        let top: Vec<f64> = scan.top.iter().map(|h| h.score).collect();
        assert_eq!(top, sorted[..5].to_vec());
        let above = batch.iter().filter(|&&s| s >= 0.0).count();
        assert_eq!(scan.above.len(), above);
        assert!(scan.above.windows(2).all(|w| w[0].score >= w[1].score));
        for h in &scan.above {
            assert_eq!(batch[h.index].to_bits(), h.score.to_bits());
        }
    }

    #[test]
    fn lanes_score_the_largest_mapped_sum() {
        let b = book();
        let positions: Vec<(u32, u16)> = (0..400u32)
            .filter(|p| p % 9 != 4)
            .chain([900, 901, 3])
            .map(|p| (p, b.bias_threshold(p)))
            .collect();
        let lane = |k: usize, scale: f64, offset: f64| Lane {
            terms: positions
                .iter()
                .map(|&(p, _)| {
                    let v = ((p as usize * (k + 3)) % 11) as f64 - 5.0;
                    (v * 0.3, -v * 0.2 + k as f64 * 0.1)
                })
                .collect(),
            scale,
            offset,
        };
        let ids: Vec<SessionId> = (0..30)
            .map(|i| SessionId::new(format!("l{i}")).unwrap())
            .collect();
        // One lane, two (the detector's case), and more than the fast path holds.
        for n in [1usize, 2, 5] {
            let lanes: Vec<Lane> = (0..n)
                .map(|k| lane(k, 1.0 + k as f64 * 0.7, k as f64 * 1.5 - 2.0))
                .collect();
            let t = ScoreTable::with_lanes(&positions, &lanes);
            for id in &ids {
                let want = lanes
                    .iter()
                    .map(|l| {
                        let entries: Vec<PositionScore> = positions
                            .iter()
                            .zip(&l.terms)
                            .map(|(&(position, _), &(if_a, if_b))| PositionScore {
                                position,
                                if_a,
                                if_b,
                            })
                            .collect();
                        l.scale * naive(&b, &entries, id) + l.offset
                    })
                    .fold(f64::NEG_INFINITY, f64::max);
                let got = t.score(&b, id);
                assert!((got - want).abs() < 1e-9, "{n} lanes: {got} vs {want}");
            }
        }
    }

    #[test]
    fn empty_table_scores_zero() {
        let b = book();
        let t = ScoreTable::new(&b, &[]);
        let s = SessionId::new("x").unwrap();
        assert_eq!(t.score(&b, &s), 0.0);
        assert!(t.scan(&b, &[], 0.0, 3).top.is_empty());
    }
}
