//! Link extraction from feeds and sitemaps (`leaktrace_crawler::extract::extract_feed`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/crawler.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::feed_extract(data));
