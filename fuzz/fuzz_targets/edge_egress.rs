//! Edge egress rewrite of `wmpi` boxes (`leaktrace_edge::egress`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/edge.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::edge_egress(data));
