//! Link extraction and title matching of HTML pages (`leaktrace_crawler::extract`, `title`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/crawler.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::html_extract(data));
