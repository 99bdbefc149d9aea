//! Accusation figures from synthetic decisions (Gaussian channel `z = ±μ + N(0,1)`):
//! positions needed for a lone pirate (soft against hard), for coalitions of 2, 3 and 4
//! (interleaving, majority and minority vote; each score alone and detect's default of two
//! scores), and the empirical false-accusation rate against the stated one.
//!
//! ```sh
//! cargo run --release -p leaktrace-detect --example accuse_sim -- [trials] [innocents] [cutoff]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_core::TardosParams;
use leaktrace_detect::accuse::{AccuseOptions, Accuser, Weighting};
use leaktrace_detect::simulate::{self as sim, Attack, Rng};

const FP: f64 = 1e-6;
const REGISTRY: u64 = 1_000_000;

fn main() {
    let trials: usize = std::env::args().nth(1).map_or(9, |a| a.parse().unwrap());
    let cutoff: f64 = std::env::args()
        .nth(3)
        .map_or(TardosParams::DEFAULT_CUTOFF, |a| a.parse().unwrap());
    let book = sim::book_with(7, TardosParams::new(cutoff).unwrap());
    println!("Tardos cutoff t = {cutoff}\n");
    let soft = AccuseOptions {
        weighting: Weighting::Soft { snr: None },
        include_erased: true,
        second: None,
    };
    let hard = |_e: f64| AccuseOptions {
        weighting: Weighting::Hard,
        include_erased: false,
        second: None,
    };
    let lik = |mix: f64| AccuseOptions {
        weighting: Weighting::Likelihood { snr: None, mix },
        include_erased: true,
        second: None,
    };
    // detect's default: the likelihood score (90 % of the budget) and the minority-vote score (10 %).
    let both = AccuseOptions {
        include_erased: true,
        ..AccuseOptions::default()
    };
    let mut rng = Rng(1);

    println!(
        "## Lone pirate: positions needed at fp {FP} among {REGISTRY} sessions (median of {trials})"
    );
    println!(
        "| μ | wrong decisions | soft (all positions) | hard, no erasure | hard, erase |z|<1 | hard, erase |z|<2 | likelihood mix 0.1 | likelihood mix 0.5 | detect's default (two scores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for mu in [0.75, 1.0, 1.5, 2.0, 3.0, 4.0] {
        let mut cols: Vec<Vec<usize>> = vec![Vec::new(); 7];
        for t in 0..trials {
            let pirate = sim::sessions(&format!("pirate{t}"), 1);
            let copy = book.bits(&pirate[0], 0..6000);
            for (k, erase) in [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0].into_iter().enumerate() {
                let mut r = Rng(1000 + t as u64);
                let d = sim::channel(&copy, mu, erase, &mut r);
                let opts = match k {
                    0 => soft,
                    4 => lik(0.1),
                    5 => lik(0.5),
                    6 => both,
                    _ => hard(erase),
                };
                cols[k].push(
                    sim::positions_needed(&book, &d, &pirate, FP, REGISTRY, &opts, 20)
                        .unwrap_or(usize::MAX),
                );
            }
        }
        let wrong = 1.0 - 0.5 * (1.0 + libm_erf(mu / std::f64::consts::SQRT_2));
        println!(
            "| {mu} | {:.1} % | {} | {} | {} | {} | {} | {} | {} |",
            100.0 * wrong,
            fmt(sim::median(cols[0].clone())),
            fmt(sim::median(cols[1].clone())),
            fmt(sim::median(cols[2].clone())),
            fmt(sim::median(cols[3].clone())),
            fmt(sim::median(cols[4].clone())),
            fmt(sim::median(cols[5].clone())),
            fmt(sim::median(cols[6].clone()))
        );
    }

    println!(
        "\n## Lone pirate, positions of unequal strength: one μ̂ against the empirical channel (median of {trials})"
    );
    println!(
        "Strong positions μ = 20 (an untouched stretch), weak ones at the given μ (a heavily \
         attacked stretch), interleaved in blocks of 8."
    );
    println!(
        "| weak μ | weak share | likelihood, one μ̂ | likelihood, one μ̂, erase |z| < 3 | likelihood, empirical channel |"
    );
    println!("|---|---|---|---|---|");
    for (weak, share) in [(0.5, 0.5), (1.0, 0.5), (1.0, 0.8), (2.0, 0.8)] {
        let mut cols: Vec<Vec<usize>> = vec![Vec::new(); 3];
        for t in 0..trials {
            let pirate = sim::sessions(&format!("mixed{t}"), 1);
            let copy = book.bits(&pirate[0], 0..3000);
            let mut r = Rng(5000 + t as u64);
            let strong = sim::channel(&copy, 20.0, 0.0, &mut r);
            let faint = sim::channel(&copy, weak, 0.0, &mut r);
            let d: Vec<_> = strong
                .into_iter()
                .zip(faint)
                .enumerate()
                .map(|(i, (s, f))| {
                    if (i / 8) % 10 < (share * 10.0) as usize {
                        f
                    } else {
                        s
                    }
                })
                .collect();
            let one = leaktrace_detect::accuse::estimate_snr(d.iter().map(|p| p.z));
            let fixed = AccuseOptions {
                weighting: Weighting::Likelihood {
                    snr: Some(one),
                    mix: 0.5,
                },
                include_erased: true,
                second: None,
            };
            let erased: Vec<_> = d
                .iter()
                .map(|p| leaktrace_detect::PositionDecision {
                    erased: p.z.abs() < 3.0,
                    ..p.clone()
                })
                .collect();
            let fixed_erase = AccuseOptions {
                include_erased: false,
                ..fixed
            };
            for (k, (dd, opts)) in [(&d, fixed), (&erased, fixed_erase), (&d, lik(0.5))]
                .into_iter()
                .enumerate()
            {
                cols[k].push(
                    sim::positions_needed(&book, dd, &pirate, FP, REGISTRY, &opts, 20)
                        .unwrap_or(usize::MAX),
                );
            }
        }
        println!(
            "| {weak} | {share} | {} | {} | {} |",
            fmt(sim::median(cols[0].clone())),
            fmt(sim::median(cols[1].clone())),
            fmt(sim::median(cols[2].clone()))
        );
    }

    println!(
        "\n## Coalitions: positions needed to accuse at least one member (median of {trials}), fp {FP} among {REGISTRY}"
    );
    println!(
        "| c | attack | μ = ∞ (perfect decisions), hard | μ = 3, soft | μ = 2, soft | μ = 3, likelihood mix 0.5 | μ = 3, likelihood mix 1 − 1/c | μ = 3, detect's default (likelihood mix 0.5 and minority vote) | μ = 2, detect's default |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in [2usize, 3, 4] {
        for attack in [Attack::Interleave, Attack::Majority, Attack::Minority] {
            let mut cols: Vec<Vec<usize>> = vec![Vec::new(); 7];
            for t in 0..trials {
                let members = sim::sessions(&format!("c{c}-{t}"), c);
                let copy = sim::forge(&book, &members, 12_000, attack, &mut rng);
                let cases = [
                    (40.0, hard(0.0)),
                    (3.0, soft),
                    (2.0, soft),
                    (3.0, lik(0.5)),
                    (3.0, lik(1.0 - 1.0 / c as f64)),
                    (3.0, both),
                    (2.0, both),
                ];
                for (k, (mu, opts)) in cases.into_iter().enumerate() {
                    let d = sim::channel(&copy, mu, 0.0, &mut rng);
                    cols[k].push(
                        sim::positions_needed(&book, &d, &members, FP, REGISTRY, &opts, 100)
                            .unwrap_or(usize::MAX),
                    );
                }
            }
            println!(
                "| {c} | {attack:?} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(sim::median(cols[0].clone())),
                fmt(sim::median(cols[1].clone())),
                fmt(sim::median(cols[2].clone())),
                fmt(sim::median(cols[3].clone())),
                fmt(sim::median(cols[4].clone())),
                fmt(sim::median(cols[5].clone())),
                fmt(sim::median(cols[6].clone()))
            );
        }
    }

    println!(
        "\n## Calibration: innocent sessions accused (empirical) against the stated probability"
    );
    let count: usize = std::env::args()
        .nth(2)
        .map_or(100_000, |a| a.parse().unwrap());
    let innocents = sim::sessions("innocent", count);
    println!(
        "| positions | mode | stated per session | accused / {} | ratio |",
        innocents.len()
    );
    println!("|---|---|---|---|---|");
    for (len, opts, name) in [
        (16usize, soft, "soft, exact"),
        (200, soft, "soft, Chernoff"),
        (200, hard(0.0), "hard, Chernoff"),
        (200, lik(0.5), "likelihood mix 0.5, Chernoff"),
        (16, both, "detect's default (two scores), exact"),
        (200, both, "detect's default (two scores), Chernoff"),
        (3000, soft, "soft, Chernoff"),
    ] {
        let pirate = sim::sessions("calib-pirate", 1);
        let copy = book.bits(&pirate[0], 0..len as u32);
        let d = sim::channel(&copy, 1.5, 0.0, &mut rng);
        for alpha in [1e-1, 1e-2, 1e-3, 1e-4] {
            let acc = Accuser::with_options(&d, &book, alpha, 1, &opts);
            let scan = acc.accuse_all(&innocents, 0);
            let k = scan.accused.len();
            println!(
                "| {len} | {name} | {alpha:e} | {k} | {:.2} |",
                k as f64 / innocents.len() as f64 / alpha
            );
        }
    }
}

fn fmt(v: usize) -> String {
    if v == usize::MAX {
        "> max".into()
    } else {
        v.to_string()
    }
}

/// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), for the table only.
fn libm_erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}
