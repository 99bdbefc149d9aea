//! The store's integration tests, one test binary: each module is one area (both backends
//! through the same calls, revocations, the takedown tables, file permissions, PostgreSQL over
//! TLS). Each test gets a store of its own: a temporary SQLite file, or a database of its own
//! on the server `LEAKTRACE_TEST_PG_URL` names. One binary compiles and links the shared code
//! once; `cargo test -p leaktrace-store --test store backends::` runs one module.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;

mod backends;
mod permissions;
mod revocations;
mod takedown;
mod tls;
