//! The suite's error type.

use std::path::{Path, PathBuf};

/// Errors of the suite.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForensicError {
    /// A setting or an input is unusable (the message says which, and what is expected).
    #[error("{0}")]
    Invalid(String),
    /// A value the core refuses (the suite's title id, the segment duration).
    #[error("{what}")]
    Core {
        /// The value.
        what: &'static str,
        /// Why it was refused.
        #[source]
        source: leaktrace_core::CoreError,
    },
    /// A session id read back from the store is not one.
    #[error("stored session id")]
    SessionId(#[source] leaktrace_core::session::SessionIdError),
    /// The OS has no randomness for the suite's key.
    #[error("no OS randomness")]
    Randomness(#[source] getrandom::Error),
    /// The async runtime for the store could not be started.
    #[error("async runtime")]
    Runtime(#[source] std::io::Error),
    /// JSON could not be read or written.
    #[error("{what}")]
    Json {
        /// What: `vmaf log`, `decisions as JSON`, `json` (the report).
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Detection of a leak failed.
    #[error("{0}")]
    Detect(#[source] leaktrace_detect::DetectError),
    /// An ffmpeg run failed.
    #[error("ffmpeg ({what}) failed: {stderr}")]
    Ffmpeg {
        /// What was being run.
        what: String,
        /// Its error output.
        stderr: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] leaktrace_embed::EmbedError),
    /// The reference index of the package could not be read.
    #[error(transparent)]
    Reference(#[from] leaktrace_reference::ReferenceError),
    /// Decoding a clip failed.
    #[error(transparent)]
    Media(leaktrace_media::MediaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] leaktrace_store::StoreError),
    /// Issuing a session failed.
    #[error(transparent)]
    Session(#[from] leaktrace_session::SessionError),
    /// Drawing a plot failed.
    #[error("plot {file}: {message}")]
    Plot {
        /// The PNG being drawn.
        file: String,
        /// What went wrong.
        message: String,
    },
}

/// `e` and its causes on one line, a cause already in the text not repeated (for the report,
/// which records a failed leak's or VMAF's error as text).
pub(crate) use leaktrace_core::error_chain as chain;

/// Maps `source`, JSON read or written as `what`, to [`ForensicError::Json`].
pub(crate) fn json(what: &'static str) -> impl Fn(serde_json::Error) -> ForensicError {
    move |source| ForensicError::Json { what, source }
}

/// Maps an I/O error on `path` to [`ForensicError::Io`].
pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> ForensicError + '_ {
    move |source| ForensicError::Io {
        path: path.to_path_buf(),
        source,
    }
}
