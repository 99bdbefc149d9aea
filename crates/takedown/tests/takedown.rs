//! The takedown crate's integration tests, one test binary: each module is one area (notices
//! and their validators, evidence bundles, delivery over SMTP and HTTP, the delivery guard,
//! re-checks of a URL, the status ladder). One binary compiles and links the shared code once;
//! `cargo test -p leaktrace-takedown --test takedown notice::` runs one module. Every
//! connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;

mod deliver_guard;
mod delivery;
mod evidence;
mod guard;
mod notice;
mod status;
