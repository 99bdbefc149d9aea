//! URL canonicalisation, trap limits and the SSRF literal check (`leaktrace_crawler::canon`, `net`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/crawler.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::url_canon(data));
