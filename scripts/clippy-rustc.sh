#!/bin/sh
# rustc for the workspace's own crates in the test build: clippy-driver is rustc with Clippy's
# lints (rust-clippy README, "Using Clippy as a rustc wrapper"), so one build both lints and
# compiles, instead of `cargo clippy` checking every crate and `cargo test` compiling it again.
# Cargo runs it as `$RUSTC_WORKSPACE_WRAPPER rustc ARGS…` (set by scripts/test.sh); warnings
# are errors, as with `cargo clippy -- -D warnings`.
shift
exec clippy-driver "$@" -D warnings
