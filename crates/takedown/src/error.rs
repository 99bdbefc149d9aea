//! [`TakedownError`].

use crate::notice::Element;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakedownError {
    /// The finding has no positive match: no accusation at or below the configured
    /// probability and no exact catalogue hash. No notice may be made.
    #[error(
        "finding {finding_id}: no positive match (needs an accusation with probability <= {fp_max:e} or an exact catalogue hash match); no notice made"
    )]
    NoPositiveMatch {
        /// The finding.
        finding_id: String,
        /// Configured maximum false-accusation probability.
        fp_max: f64,
    },
    /// A statutory element of the notice is missing or empty.
    #[error("notice refused: missing {element}")]
    Incomplete {
        /// The missing element.
        element: Element,
    },
    /// The detect report is not a usable `leaktrace.detect.v1` document (the message says
    /// which field is missing or what it contradicts).
    #[error("detect report: {0}")]
    InvalidDetectReport(String),
    /// A finding from the store cannot back a notice: it has no catalogue title or no usable
    /// resolved address, or its stored detect report is not about it. The message says which.
    #[error("{message}")]
    UnusableFinding {
        /// The finding.
        finding_id: String,
        /// What is wrong, naming the finding.
        message: String,
    },
    /// Invalid configuration (the message says the valid range).
    #[error("takedown configuration: {0}")]
    InvalidConfig(String),
    /// `smtp.host` is not a relay the SMTP transport accepts.
    #[error("takedown configuration: smtp.host")]
    SmtpHost {
        /// The cause.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `smtp.from` is not a mailbox.
    #[error("takedown configuration: smtp.from {from:?}")]
    SmtpFrom {
        /// The configured value.
        from: String,
        /// The cause.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The HTTP client could not be built.
    #[error("takedown configuration: http client")]
    HttpClient(#[source] reqwest::Error),
    /// An RDAP bootstrap file is not JSON.
    #[error("takedown configuration: RDAP bootstrap {what}")]
    RdapBootstrap {
        /// The file: `ipv4`, `ipv6` or `dns`.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Filesystem error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An evidence bundle is malformed (not merely tampered: that is a verification result);
    /// the message says how.
    #[error("evidence bundle: {0}")]
    InvalidBundle(String),
    /// An evidence bundle's manifest is not JSON of its shape.
    #[error("evidence bundle: {} is not a manifest", crate::evidence::MANIFEST)]
    BundleManifest(#[source] serde_json::Error),
    /// An evidence bundle archive could not be read as a tar archive.
    #[error("evidence bundle: {}: {what}", path.display())]
    BundleArchive {
        /// The archive.
        path: std::path::PathBuf,
        /// What could not be read.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialisation.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] leaktrace_store::StoreError),
    /// A delivery attempt failed (after retries).
    #[error("delivery to {recipient}: {message}")]
    Delivery {
        /// Recipient address or endpoint.
        recipient: String,
        /// What went wrong.
        message: String,
    },
    /// No notice with this id in the store.
    #[error("notice `{0}` not found")]
    UnknownNotice(String),
    /// A disposition change that is not allowed from the notice's current state.
    #[error("notice {notice_id}: cannot mark it {to} while it is {from}: {why}")]
    Transition {
        /// The notice.
        notice_id: String,
        /// Its disposition.
        from: String,
        /// The one asked for.
        to: String,
        /// Why not, and what is allowed instead.
        why: String,
    },
    /// The outbound address policy refused a URL (see [`crate::net`]); nothing was sent.
    #[error("{url}: refused by the address policy: {reason}")]
    Refused {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// RDAP lookup failed.
    #[error("rdap {query}: {message}")]
    Rdap {
        /// IP or domain.
        query: String,
        /// What went wrong.
        message: String,
    },
}

impl TakedownError {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        TakedownError::Io {
            path: path.into(),
            source,
        }
    }
}
