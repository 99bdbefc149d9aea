//! TS 104 002 token decoding and verification (`leaktrace_core::token::decode_and_verify`).
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/core.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::token_decode(data));
