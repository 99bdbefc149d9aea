//! Marking kernel throughput at 1080p on one core: mask + A/B mark per frame (the per-frame
//! cost of embedding; the pattern is rendered once per position and cached). Run with
//! `cargo bench -p leaktrace-embed --bench mark`; frames/s = 1 / time per iteration.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leaktrace_core::{KeyVersion, MasterKey, Position, TitleId};
use leaktrace_embed::{EmbedConfig, Embedder, LumaPlane, Mask, MaskParams};
use std::hint::black_box;

/// A textured 1080p luma frame (deterministic, natural-ish statistics: smooth gradients plus
/// hashed texture), so the mask sees both flat and busy blocks.
fn frame(w: usize, h: usize) -> Vec<u8> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let smooth = (x / 8 + y / 6) % 160;
            let tex = if (x / 64 + y / 64) % 3 == 0 {
                (i.wrapping_mul(2654435761) >> 13) % 40
            } else {
                0
            };
            (30 + smooth + tex).min(255) as u8
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (w, h) = (1920, 1080);
    let luma = frame(w, h);
    let plane = LumaPlane::new(&luma, w, h, w, 8).expect("valid plane");
    let key = MasterKey::from_bytes([1; 32], KeyVersion::new(1));
    let title = TitleId::new("bench").expect("valid title");
    let mut embedder = Embedder::new(&key, &title, EmbedConfig::default());
    let (mut a, mut b) = (vec![0u8; w * h], vec![0u8; w * h]);
    let position = Position::new(3);
    let _ = embedder.pattern(position, w, h); // rendered once per position, as in the pipeline
    let mut g = c.benchmark_group("1080p");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mask+mark A/B (one frame)", |bch| {
        bch.iter(|| {
            let mask = embedder.mask(black_box(&plane));
            embedder
                .mark_into(&plane, &mask, position, &mut a, &mut b)
                .expect("marks");
            black_box((&a, &b));
        })
    });
    g.bench_function("mask only", |bch| {
        bch.iter(|| black_box(Mask::compute(black_box(&plane), &MaskParams::default())))
    });
    let mask = embedder.mask(&plane);
    g.bench_function("mark A/B only", |bch| {
        bch.iter(|| {
            embedder
                .mark_into(black_box(&plane), &mask, position, &mut a, &mut b)
                .expect("marks");
            black_box((&a, &b));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
