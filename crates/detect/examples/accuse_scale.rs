//! Accusation scaling: scores `SESSIONS` sessions against `POSITIONS` soft decisions once and
//! prints sessions/s and the total time.
//!
//! ```sh
//! cargo run --release -p leaktrace-detect --example accuse_scale -- 1000000 3600
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_core::{Codebook, SessionId, TardosParams, Variant};
use leaktrace_detect::PositionDecision;
use leaktrace_detect::accuse::Accuser;
use std::time::Instant;

/// CPU time (user + system) of this process in seconds, from /proc/self/stat (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("SESSIONS"));
    let positions: u32 = args.next().map_or(3600, |a| a.parse().expect("POSITIONS"));
    let book = Codebook::new(&[0x5a; 32], &[0xa5; 32], TardosParams::default());
    let ids: Vec<SessionId> = (0..sessions)
        .map(|i| SessionId::new(format!("session-{i:08}")).unwrap())
        .collect();
    // The pirate is one of the registered sessions; its decisions go through a noisy channel.
    let pirate = &ids[sessions / 2];
    let bits = book.bits(pirate, 0..positions);
    let decisions: Vec<PositionDecision> = bits
        .iter()
        .enumerate()
        .map(|(p, &b)| {
            // Deterministic pseudo-noise in [-1.5, 1.5] around ±2.
            let noise =
                f64::from((p as u32).wrapping_mul(2_654_435_761) >> 16) / 65536.0 * 3.0 - 1.5;
            let z = if b == Variant::A { 2.0 } else { -2.0 } + noise;
            PositionDecision {
                position: p as u32,
                frames: 48,
                correlation: z,
                sigma0: 1.0,
                z,
                erased: false,
            }
        })
        .collect();
    let t0 = Instant::now();
    let acc = Accuser::new(&decisions, &book, 1e-6, sessions as u64);
    let setup = t0.elapsed().as_secs_f64();
    let c1 = cpu_seconds();
    let t1 = Instant::now();
    let scan = acc.accuse_all(&ids, 5);
    let secs = t1.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(c1).map(|(b, a)| b - a);
    println!(
        "{} sessions x {} positions on {} threads: {:.2} s ({:.0} sessions/s, {:.1} M positions/s); setup {:.3} s",
        scan.scored,
        acc.used(),
        leaktrace_detect::score::threads(),
        secs,
        scan.scored as f64 / secs,
        scan.scored as f64 * f64::from(positions) / secs / 1e6,
        setup
    );
    if let Some(cpu) = cpu {
        // On a shared machine wall time includes waiting for the CPU; CPU time does not.
        println!(
            "CPU time {cpu:.2} s ({:.0} sessions per CPU-second); on 2 dedicated cores: {:.2} s",
            scan.scored as f64 / cpu,
            cpu / 2.0
        );
    }
    println!(
        "threshold {:.1}, innocent sigma {:.1}, accused {:?}",
        acc.threshold().unwrap_or(f64::NAN),
        acc.innocent_sigma(),
        scan.accused
            .iter()
            .map(|a| (ids[a.index].as_str(), a.score.round(), a.probability))
            .collect::<Vec<_>>()
    );
    assert!(scan.accused.iter().any(|a| &ids[a.index] == pirate));

    // Breakdown on one thread over a sample: stream generation alone against full scoring.
    let sample = &ids[..ids.len().min(20_000)];
    let mut words = vec![0u16; positions as usize];
    let c0 = cpu_seconds();
    let mut x = 0u16;
    for id in sample {
        book.session_words(id, 0, &mut words);
        x ^= words[0];
    }
    let c1 = cpu_seconds();
    let table = leaktrace_detect::score::ScoreTable::new(&book, acc.entries());
    let mut scratch = table.scratch();
    let mut y = 0.0;
    for id in sample {
        y += table.score_with(&book, id, &mut scratch);
    }
    let c2 = cpu_seconds();
    if let (Some(c0), Some(c1), Some(c2)) = (c0, c1, c2) {
        println!(
            "one thread, {} sessions: XOF words {:.0} sessions/CPU-s, full score {:.0} sessions/CPU-s ({x:x} {y:.0})",
            sample.len(),
            sample.len() as f64 / (c1 - c0),
            sample.len() as f64 / (c2 - c1)
        );
    }
}
