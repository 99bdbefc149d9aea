//! leaktrace-core: the pure forensic core (no I/O).
#![forbid(unsafe_code)]

pub mod codeword;
pub mod token;
