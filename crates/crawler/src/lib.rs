//! # leaktrace-crawler
//!
//! Finds leaked copies of protected titles on the web, captures them, hands
//! them to detect in-process and stores a [`leaktrace_store::Finding`] per
//! leak with everything a takedown notice needs.
//!
//! - [`config::Config`]: sources (seeds, search templates, sitemaps, feeds),
//!   the catalogue of protected titles, schedule, politeness and limits (TOML).
//! - The frontier lives in the store (`crawl_jobs`): leases (renewed while a
//!   job runs), retries with backoff ([`retry::RetryPolicy`]), a dead-letter state,
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of [`worker::Crawler`]s share one
//!   crawl and a killed worker loses nothing.
//! - [`fetch::Fetcher`]: reqwest with rustls, an SSRF guard in the resolver
//!   ([`net::GuardedResolver`]) and on every redirect hop, robots.txt (RFC 9309),
//!   Crawl-delay, per-host pacing, 429/Retry-After (a long wait reschedules the
//!   job instead of holding the worker), byte and time caps after decompression.
//! - [`extract`]: links, `<video>`/`<source>`, HLS/DASH manifests, iframes,
//!   magnets (recorded, never fetched), pagination; [`title`]: catalogue matching.
//! - Crawl budgets (`[limits]`): depth, pages along one pagination chain, pages
//!   per host and per run, so a run ends on any site; what a budget leaves out is
//!   recorded as skipped with the budget as the reason.
//! - [`capture`]: direct files and HLS streams, bounded, BLAKE3 + SHA-256,
//!   stored once per hash; [`analyze::Analyzer`]: detection, reused only for the
//!   same bytes, title and inputs (reference, key version), never when it failed. A link is media if
//!   the answer at the end of its redirect chain is (Content-Type, first bytes),
//!   whatever its URL looks like.
//! - A job that panics is recorded as dead with the panic message; the run goes on.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use leaktrace_crawler::{config::Config, net::Lookup, worker::Crawler};
//!
//! # async fn run() -> Result<(), leaktrace_crawler::CrawlError> {
//! let cfg = Arc::new(Config::from_toml(r#"
//!     [sources]
//!     seeds = ["https://pirate.example/movies/"]
//!     [[catalogue]]
//!     title_id = "bbb"
//!     names = ["Big Buck Bunny"]
//!     year = 2008
//! "#)?);
//! let store = leaktrace_store::Store::open("sqlite:crawl.sqlite").await?;
//! let crawler = Crawler::new(store, cfg, Lookup::System, None, "worker-1".into())?;
//! crawler.seed(1).await?;
//! let (_stop_tx, stop) = tokio::sync::watch::channel(false);
//! let stats = crawler.run(stop, true).await?;
//! println!("{stats:?}");
//! # Ok(()) }
//! ```

pub mod analyze;
mod budget;
pub mod canon;
pub mod capture;
pub mod config;
pub mod extract;
pub mod fetch;
pub mod net;
pub mod retry;
pub mod title;
pub mod worker;

use std::path::PathBuf;

/// Errors of the crawler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrawlError {
    /// The configuration is invalid (says which field and its valid range).
    #[error("invalid crawler configuration: {0}")]
    Config(String),
    /// The configuration is not TOML of its shape (an unknown field, a value of the wrong
    /// type, a syntax error). The message is the parser's, with its line and column: callers
    /// show it alone, so it is part of this error's text as well as its source.
    #[error("invalid crawler configuration: {0}")]
    Toml(#[source] toml::de::Error),
    /// The HTTP client could not be built.
    #[error("invalid crawler configuration: HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A fetch failed.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// A playlist could not be used.
    #[error("HLS playlist: {0}")]
    Playlist(String),
    /// Writing a capture failed.
    #[error("capture file {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] leaktrace_store::StoreError),
    /// Detection could not run.
    #[error("detection: {0}")]
    Detect(String),
}
