//! Token claims behind a valid MAC, and the token encoder (`leaktrace_core::token`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/core.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::token_claims(data));
