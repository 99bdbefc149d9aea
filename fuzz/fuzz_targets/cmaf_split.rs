//! CMAF splitting of a fragmented MP4 (`leaktrace_media::cmaf`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/media.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::cmaf_split(data));
