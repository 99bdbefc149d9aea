//! Replays the fuzz corpora of leaktrace-embed on stable (fuzz/README.md): every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (`subtitles`, `key_file`) goes
//! through the same body as the fuzz target (fuzz/bodies/embed.rs, included here). A panic
//! names the file.

#[allow(dead_code)]
mod body {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/bodies/embed.rs"
    ));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/bodies/replay.rs"
));

#[test]
fn subtitles() {
    assert!(replay("subtitles", body::subtitles) > 0);
}

#[test]
fn key_file() {
    assert!(replay("key_file", body::key_file) > 0);
}
