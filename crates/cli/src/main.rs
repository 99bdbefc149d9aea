//! `leaktrace`: forensic A/B watermarking, detection and takedown, from the command line.
//!
//! A thin layer over the library crates: argument parsing, configuration, progress bars,
//! output formatting and exit codes. See `leaktrace --help`.

mod cli;
mod cmd;
mod config;
mod exit;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(code) => code.into(),
        Err(err) => {
            // BrokenPipe (e.g. `| head`) is not a failure.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let code = exit::classify(&err);
            eprintln!(
                "error: {}",
                one_line(&leaktrace_core::error_chain(err.as_ref()))
            );
            code.into()
        }
    }
}

/// Errors are printed on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
