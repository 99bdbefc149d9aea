//! WMPaceInfo CBOR sidecars and the egress header (`leaktrace_core::wmpaceinfo::Sidecar`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/core.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::sidecar(data));
