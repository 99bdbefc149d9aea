//! Subtitle files given to the packager (SubRip and WebVTT).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/embed.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::subtitles(data));
