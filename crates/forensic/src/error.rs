//! The suite's error type.

use std::path::{Path, PathBuf};

/// Errors of the suite.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForensicError {
    /// A setting or an input is unusable.
    #[error("{0}")]
    Config(String),
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

/// Maps an I/O error on `path` to [`ForensicError::Io`].
pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> ForensicError + '_ {
    move |source| ForensicError::Io {
        path: path.to_path_buf(),
        source,
    }
}
