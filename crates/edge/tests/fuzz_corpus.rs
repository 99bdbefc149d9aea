//! Replays the fuzz corpora of leaktrace-edge on stable (fuzz/README.md): every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` goes through the same body as the fuzz
//! target (fuzz/bodies/edge.rs, included here). A panic names the file.

#[allow(dead_code)]
mod body {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/bodies/edge.rs"
    ));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/bodies/replay.rs"
));

#[test]
fn edge_path() {
    assert!(replay("edge_path", body::edge_path) > 0);
}

#[test]
fn edge_range() {
    assert!(replay("edge_range", body::edge_range) > 0);
}

#[test]
fn edge_egress() {
    assert!(replay("edge_egress", body::edge_egress) > 0);
}
