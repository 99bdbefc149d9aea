//! HLS playlists as the crawler's capture reads them (m3u8-rs, URL resolution).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/crawler.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::hls_playlist(data));
