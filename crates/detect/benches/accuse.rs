//! Accusation scoring throughput (criterion): 10⁴ sessions × 3600 positions per iteration.
//! The full 10⁶ × 3600 run is `cargo run --release -p leaktrace-detect --example accuse_scale`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leaktrace_core::{Codebook, SessionId, TardosParams};
use leaktrace_detect::PositionDecision;
use leaktrace_detect::accuse::Accuser;

fn bench(c: &mut Criterion) {
    let book = Codebook::new(&[1; 32], &[2; 32], TardosParams::default());
    let decisions: Vec<PositionDecision> = (0..3600u32)
        .map(|p| {
            let z = if p % 3 == 0 {
                -2.5
            } else {
                1.5 + f64::from(p % 5)
            };
            PositionDecision {
                position: p,
                frames: 48,
                correlation: z,
                sigma0: 1.0,
                z,
                erased: false,
            }
        })
        .collect();
    let ids: Vec<SessionId> = (0..10_000)
        .map(|i| SessionId::new(format!("s-{i}")).unwrap())
        .collect();
    let acc = Accuser::new(&decisions, &book, 1e-6, 1_000_000);
    let mut g = c.benchmark_group("accuse");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("scan_10k_sessions_x_3600", |b| {
        b.iter(|| acc.accuse_all(&ids, 5))
    });
    g.bench_function("setup_3600_positions", |b| {
        b.iter(|| Accuser::new(&decisions, &book, 1e-6, 1_000_000).threshold())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
