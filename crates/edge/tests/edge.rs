//! The edge's integration tests, one test binary: each module is one area (HTTP semantics on a
//! real package, hostile clients and deadlines, zero-copy sends, revocation reaching the edge,
//! the CloudFront Function against the edge, the selector's test vectors, the fuzz corpora).
//! One binary compiles and links the shared code once and builds the shared package once;
//! `cargo test -p leaktrace-edge --test edge hardening::` runs one module. The tests that keep
//! pace with a clock, `player` (hls.js and Shaka Player in Chromium) and `cdn_worker`
//! (workerd), are binaries of their own. Every server listens on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
#[path = "common/server.rs"]
mod server;

mod cdn_cloudfront;
mod edge_http;
mod fuzz_corpus;
mod hardening;
mod revocation;
mod selector_vectors;
mod zero_copy;
