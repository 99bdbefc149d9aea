//! # leaktrace-forensic
//!
//! The forensic evaluation suite behind `leaktrace bench forensic`: it measures how strong the
//! mark is, the same way every time, on the real corpus.
//!
//! One [`run`]:
//! 1. cuts an excerpt of a corpus clip to a lossless mezzanine at the package height, embeds it
//!    ([`leaktrace_embed::embed_file`]) and encodes the plain (unmarked) baseline with the same
//!    settings;
//! 2. issues sessions into a real SQLite store ([`leaktrace_session::issue_session`]) and
//!    renders each pirate's stream from its codeword, byte for byte what the edge serves
//!    ([`stream::Package::render`]);
//! 3. runs every attack of [`attack::table`] (or of [`attack::wild_table`], the copies pirate
//!    sites publish, in [`Mode::Wild`]) through the ffmpeg CLI (at most two at a time), plus
//!    collusion (segment interleaving, per-position majority and minority vote, a random pick
//!    per position, frame averaging then a re-encode, for c = 2, 3, 4) and innocent sources
//!    (unmarked copies, another title, a random codeword; in the wild mode also copies that
//!    carry the pirates' overlays);
//! 4. decodes each leak once with [`leaktrace_detect::decide`] and then, without re-running
//!    ffmpeg, sweeps the capture length to find the segments needed for an accusation at the
//!    requested probability over the registry ([`stats::sweep`]), and scores many sessions
//!    that did not make the leak ([`stats::innocents`]). A leak of served bytes unchanged
//!    (no attack, collusion by whole segments, the random codeword) is not decoded on its
//!    own: its frames are spliced from one decode of the all-A and one of the all-B stream
//!    ([`leaktrace_detect::frames::SuspectFrames::splice`]), which gives the same pictures
//!    because every segment starts with an IDR picture;
//! 5. measures invisibility ([`quality`]) beside the leak jobs, on the same threads (the
//!    ffmpeg leaks first, then the measurements, then the spliced leaks), and writes a
//!    Markdown report with PNG plots and the wall time of each stage ([`report`]).
//!
//! ```no_run
//! use leaktrace_forensic::{Config, Mode, run};
//! let cfg = Config::for_mode(Mode::Quick, "corpus/cache".into(), "docs/bench".into());
//! let report = run(&cfg, &|e| eprintln!("{e:?}"))?;
//! let md = leaktrace_forensic::report::markdown(&report);
//! assert!(md.contains("Targets"));
//! # Ok::<(), leaktrace_forensic::ForensicError>(())
//! ```

pub mod attack;
mod config;
mod error;
mod evaluation;
mod jobs;
mod plot;
pub mod quality;
pub mod report;
pub mod stats;
pub mod stream;
mod suite;
mod tasks;

pub use config::{AttackSet, Clip, Config, Mode};
pub use error::ForensicError;
pub use evaluation::{Group, Invisibility, LeakResult, PackageInfo, Report};
pub use suite::{Event, process_cpu, run, sha256};
