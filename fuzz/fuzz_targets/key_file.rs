//! Key files and `--pssh` values given to the packager for Common Encryption.
#![no_main]

#[allow(dead_code)]
mod body {
    include!("../bodies/embed.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::key_file(data));
