//! Edge `Range` headers (`leaktrace_edge::range`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/edge.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::edge_range(data));
