//! Takedown: from a confirmed finding to a notice a host acts on, sent once, backed by
//! evidence, and followed until the content is down.
//!
//! - [`FindingEvidence`]: the facts about one finding (URL, redirect chain, resolved IP, UTC
//!   times, BLAKE3 + SHA-256 of the captured bytes, the detector's report).
//!   [`FindingEvidence::from_finding`] maps a crawler finding from the store onto it; this
//!   crate does not depend on the crawler.
//! - [`Notice`]: built by [`Notice::build`], which applies the positive-match [`gate`]
//!   (an accusation at or below the configured false-accusation probability, or an exact
//!   catalogue hash) and validates every element of 17 U.S.C. § 512(c)(3)(A) and of
//!   DSA Art. 16(2), naming the missing one.
//! - [`render`]: DMCA letter, ACNS 1.2 XML, Cloudflare abuse JSON, Lumen JSON.
//! - [`evidence`]: evidence bundle per finding with a BLAKE3 + SHA-256 manifest, and its
//!   verification.
//! - [`deliver`]: SMTP (lettre) and HTTP delivery with retries, backoff, per-recipient rate
//!   limits and an outbox claim so a notice goes out at most once, even across a crash.
//! - [`rdap`]: abuse contacts from RDAP via IANA bootstrap data, cached; per-host overrides.
//! - [`net`]: the outbound address policy re-checks, RDAP look-ups and HTTP delivery obey (the crawler's:
//!   no loopback unless `allow_loopback`, no private, link-local, CGNAT, multicast or
//!   reserved address), checked before connecting and on every redirect hop.
//! - [`pipeline`]: file a finding, send approved notices, re-check URLs (404/410 closes),
//!   escalate after grace periods; [`config`]: `takedown.toml`.
//!
//! # Example
//!
//! ```
//! use leaktrace_takedown::{gate, AccusedSession, FindingEvidence, TakedownError};
//! # fn finding() -> FindingEvidence {
//! #     serde_json::from_value(serde_json::json!({
//! #         "finding_id": "F-1", "url": "https://files.example.net/bbb.mp4", "page_url": null,
//! #         "chain": [], "resolved_ip": "192.0.2.10", "found_at": 1, "captured_at": 2,
//! #         "byte_len": 3, "blake3": "00", "sha256": "00", "title_id": "bbb",
//! #         "catalogue_names": ["Big Buck Bunny"], "verdict": null, "detect_fp": null,
//! #         "detect_report": null, "plot_path": null })).unwrap()
//! # }
//! let mut f: FindingEvidence = finding();
//! // No detector result and no catalogue hash: the gate refuses.
//! assert!(matches!(gate(&f, 1e-6), Err(TakedownError::NoPositiveMatch { .. })));
//! f.verdict = Some("accused".into());
//! f.accused = vec![AccusedSession { session_id: "s-1".into(), probability: 3e-9 }];
//! assert!(gate(&f, 1e-6).is_ok());
//! ```

pub mod config;
pub mod deliver;
mod error;
pub mod evidence;
mod finding;
pub mod net;
pub mod notice;
pub mod pipeline;
pub mod rdap;
pub mod render;

pub use config::{Mode, TakedownConfig};
pub use error::TakedownError;
pub use finding::{AccusedSession, FindingEvidence, Hop};
pub use notice::{
    Channel, Complainant, Element, Level, Notice, PositiveMatch, Recipient, Work, gate,
};
pub use pipeline::Disposition;
