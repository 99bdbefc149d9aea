//! WMPaceInfo `wmpi` box, 40-bit payload and ingest JSON (`leaktrace_core::wmpaceinfo::PaceInfo`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/core.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::wmpi_box(data));
