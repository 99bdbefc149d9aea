//! Common Encryption of HEVC tracks (`leaktrace_media::cenc`): the `hvcC` record, parameter
//! sets and slice segment headers, and the protector of whole fragmented MP4 tracks.
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/media.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::cenc_hevc(data));
