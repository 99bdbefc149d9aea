//! Replays the fuzz corpora of leaktrace-crawler on stable (fuzz/README.md): every file of
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` goes through the same body as the fuzz
//! target (fuzz/bodies/crawler.rs, included here). A panic names the file.

#[allow(dead_code)]
mod body {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/bodies/crawler.rs"
    ));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/bodies/replay.rs"
));

#[test]
fn hls_playlist() {
    assert!(replay("hls_playlist", body::hls_playlist) > 0);
}

#[test]
fn html_extract() {
    assert!(replay("html_extract", body::html_extract) > 0);
}

#[test]
fn feed_extract() {
    assert!(replay("feed_extract", body::feed_extract) > 0);
}

#[test]
fn url_canon() {
    assert!(replay("url_canon", body::url_canon) > 0);
}
