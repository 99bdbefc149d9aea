//! Replays the fuzz corpora of leaktrace-media on stable (fuzz/README.md): every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` goes through the same body as the fuzz
//! target (fuzz/bodies/media.rs, included here; targets `cmaf_split` and `cenc_hevc`). A panic
//! names the file.

#[allow(dead_code)]
mod body {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/bodies/media.rs"
    ));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/bodies/replay.rs"
));

#[test]
fn cmaf_split() {
    assert!(replay("cmaf_split", body::cmaf_split) > 0);
}

#[test]
fn cenc_hevc() {
    assert!(replay("cenc_hevc", body::cenc_hevc) > 0);
}
