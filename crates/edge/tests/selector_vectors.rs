//! The selector test vectors: the committed file is exactly what `generate` produces, and every
//! value in it is recomputed from its inputs with the edge's code.
//!
//! Regenerate after an intended change with
//! `leaktrace session vectors --out crates/edge/tests/vectors/selector-v2.json`
//! (or `LEAKTRACE_REGENERATE_VECTORS=1 cargo test -p leaktrace-edge --test edge selector_vectors::`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use leaktrace_edge::vectors;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/selector-v2.json"
);

#[test]
fn committed_vectors_match_the_generator() {
    let generated = vectors::to_json(&vectors::generate().unwrap()).unwrap();
    if std::env::var("LEAKTRACE_REGENERATE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(FILE, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(FILE).unwrap();
    assert!(
        committed == generated,
        "selector-v2.json differs from the generator: the selector changed (regenerate only if intended)"
    );
}

#[test]
fn every_vector_recomputes() {
    let committed = std::fs::read_to_string(FILE).unwrap();
    let report = vectors::check(&committed).unwrap();
    // 2 titles x 5 sessions x 72 positions.
    assert_eq!(report.bits, 2 * 5 * 72);
    assert_eq!(report.tokens, 8);
    assert_eq!(report.selections, 3 * 27);
}

#[test]
fn a_tampered_file_is_caught() {
    let committed = std::fs::read_to_string(FILE).unwrap();
    let mut v: vectors::Vectors = serde_json::from_str(&committed).unwrap();
    let bits = &mut v.titles[0].sessions[0].bits;
    let flipped = if bits.starts_with('0') { "1" } else { "0" };
    bits.replace_range(0..1, flipped);
    let err = vectors::check(&vectors::to_json(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("bit at 0"), "{err}");

    let mut v: vectors::Vectors = serde_json::from_str(&committed).unwrap();
    v.tokens[0].selections[3].variant = if v.tokens[0].selections[3].variant == "a" {
        "b".into()
    } else {
        "a".into()
    };
    assert!(vectors::check(&vectors::to_json(&v).unwrap()).is_err());
}
