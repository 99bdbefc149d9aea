//! The crawler's integration tests, one test binary: each module is one area (budgets, the
//! frontier, robots.txt, Retry-After, leases, live taps, media answers, panics, the revocation
//! policy, site profiles, the reuse of analyses, the fuzz corpora). One binary compiles and
//! links the shared code once; `cargo test -p leaktrace-crawler --test crawler budgets::` runs
//! one module. Every connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;

mod analysis_reuse;
mod budgets;
mod frontier;
mod fuzz_corpus;
mod lease_renewal;
mod live_tap;
mod media_answers;
mod panics;
mod retry_after;
mod revocation_policy;
mod robots;
mod site;
