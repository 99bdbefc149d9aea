//! # leaktrace-core
//!
//! The pure forensic core of leaktrace: everything that must compute the same answer on the
//! packager, the edge and the detector, with no I/O.
//!
//! - [`key`]: the operator's [`MasterKey`] and per-purpose key derivation (BLAKE3 `derive_key`,
//!   one context string per purpose, so nothing is reused across purposes).
//! - [`keyring`]: every [`MasterKey`] still in use by version ([`Keyring`]), the per-title keys
//!   detection needs without the master key ([`TitleKeys`], [`DetectionKeys`]), and the Ed25519
//!   [`EvidenceKey`] that signs evidence manifests.
//! - [`id`]: validated identifiers ([`TitleId`]).
//! - [`net`]: the address policy for outbound connections ([`net::refusal`]: loopback, private,
//!   link-local, CGNAT, multicast, reserved, and their IPv6-embedded forms are refused).
//! - [`position`]: [`SegmentDuration`] and [`Position`], `p = floor(t / segment duration)`, so
//!   every rendition of a ladder shares positions.
//! - [`variant`]: [`Variant`] A or B.
//! - [`pattern`]: the keyed, resolution-independent mark [`Pattern`] of a (title, position).
//! - [`codeword`]: the Tardos anti-collusion [`Codebook`]: keyed biases per position and each
//!   session's bit, O(1) per (session, position) from a seekable BLAKE3 XOF.
//! - [`token`]: TS 104 002 session tokens (CWT, HMAC-256/256 or ES256).
//! - [`session`]: session ids ([`SessionId`]), the claims of their tokens and the edge's A/B
//!   choice.
//! - [`wmpaceinfo`]: TS 104 002 WMPaceInfo: the `wmpi` box, CBOR sidecars, headers.
//!
//! ```
//! use leaktrace_core::{MasterKey, KeyVersion, TitleId, SegmentDuration, Pattern, Position};
//!
//! let key = MasterKey::from_bytes([7u8; 32], KeyVersion::new(1));
//! let title = TitleId::new("big-buck-bunny")?;
//! let seg = SegmentDuration::from_millis(2000)?;
//! let position = seg.position_at_seconds(5.3);
//! assert_eq!(position, Position::new(2));
//! let pattern = Pattern::new(&key.pattern_key(&title), position);
//! // The grid is the same for every rendition; render it at any size.
//! let field = pattern.render(1280, 720);
//! assert_eq!(field.len(), 1280 * 720);
//! # Ok::<(), leaktrace_core::CoreError>(())
//! ```
#![forbid(unsafe_code)]

pub mod codeword;
mod error_text;
pub mod id;
pub mod key;
pub mod keyring;
pub mod net;
pub mod pattern;
pub mod position;
pub mod session;
pub mod token;
pub mod variant;
pub mod wmpaceinfo;

pub use codeword::{Codebook, TardosParams};
pub use error_text::error_chain;
pub use id::TitleId;
pub use key::{DerivedKey, KeyVersion, MasterKey, Purpose};
pub use keyring::{DetectionKeys, EvidenceKey, Keyring, TitleKeySource, TitleKeys};
pub use pattern::{GRID_COLS, GRID_ROWS, Pattern};
pub use position::{
    Position, SegmentDuration, WIRE_POSITIONS, part_file_name, segment_file_name,
    segment_file_position,
};
pub use session::SessionId;
pub use token::TokenMode;
pub use variant::Variant;

/// Errors from the core's validating constructors and parsers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A title id was empty, too long or had characters outside `[A-Za-z0-9._~-]`.
    #[error("invalid title id {0:?} (expected 1 to 128 characters from A-Z a-z 0-9 . _ ~ -)")]
    InvalidTitleId(String),
    /// A segment duration was outside the range TS 104 002 deployments use here.
    #[error("invalid segment duration {0} ms (expected 1000 to 6000 ms)")]
    InvalidSegmentDuration(u64),
    /// A key was not 64 hexadecimal characters.
    #[error("invalid key: {0} (expected 64 hexadecimal characters, 32 bytes)")]
    InvalidKey(&'static str),
    /// A key version that the keyring does not hold.
    #[error("key version {version} is not in the keyring (it holds {held})")]
    UnknownKeyVersion {
        /// The version asked for.
        version: u32,
        /// The versions held, comma-separated.
        held: String,
    },
    /// Two keys with the same version were given.
    #[error("key version {0} is given twice")]
    DuplicateKeyVersion(u32),
    /// A detection key set without the keys of a title at a version.
    #[error("no keys for title {title:?} at key version {version} in the detection key set")]
    MissingTitleKeys {
        /// The title.
        title: String,
        /// Its key version.
        version: u32,
    },
    /// A detection key file that is not one: not JSON of its shape, another format id, or a
    /// (title, version) given twice (the message says which). `CoreError` is `PartialEq`, so
    /// a JSON syntax error is carried as its message.
    #[error("not a detection key file: {0}")]
    InvalidKeyFile(String),
    /// A detection key file with a field the core refuses (a bad title id or key).
    #[error("not a detection key file: {field}: {source}")]
    KeyFileField {
        /// The field: `title`, `pattern`, `bias` or `codeword`.
        field: &'static str,
        /// Why it was refused.
        #[source]
        source: Box<CoreError>,
    },
}
