//! Exit codes. Stable: scripts rely on them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for `detect`, also "no accusation", which is a verdict, not a failure) |
//! | 1 | unexpected internal failure |
//! | 2 | usage: bad arguments or options (clap uses 2 too) |
//! | 3 | bad input: missing, empty, truncated or unreadable media, unsupported format |
//! | 4 | output: the output location cannot be written or is not empty |
//! | 5 | configuration or key problem |
//! | 6 | not found: an unknown title (e.g. `session new --title` of a title never embedded) |
//! | 7 | no match: `detect`'s suspect decodes but does not match the title's reference (another title, or no overlap in time) |
//! | 8 | refused state change: e.g. `takedown mark` of a move its current state does not allow (a closed notice reopened) |
//! | 9 | nothing to score: `detect` on a title with no registered session (the report is printed; its verdict is "no accusation") |

use leaktrace_embed::EmbedError;
use leaktrace_media::MediaError;

/// A process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    Internal = 1,
    Usage = 2,
    Input = 3,
    Output = 4,
    Config = 5,
    NotFound = 6,
    NoMatch = 7,
    Conflict = 8,
    NoSessions = 9,
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// A usage error raised by our own validation (one line, exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Something named does not exist, e.g. an unknown title (exit 6).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFoundError(pub String);

/// A state change the current state does not allow (exit 8).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConflictError(pub String);

/// A configuration error (exit 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn media(e: &MediaError) -> Code {
    match e {
        MediaError::UnknownCodec(_) | MediaError::InvalidSetting(_) => Code::Usage,
        MediaError::EncoderMissing(_) | MediaError::Ffmpeg { .. } | MediaError::BadMp4(_) => {
            Code::Internal
        }
        _ => Code::Input,
    }
}

/// Maps an error chain to its exit code.
pub fn classify(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return Code::Usage;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return Code::Config;
        }
        if cause.downcast_ref::<NotFoundError>().is_some() {
            return Code::NotFound;
        }
        if cause.downcast_ref::<ConflictError>().is_some() {
            return Code::Conflict;
        }
        if let Some(e) = cause.downcast_ref::<leaktrace_detect::DetectError>() {
            return match e {
                leaktrace_detect::DetectError::Invalid(_) => Code::Usage,
                _ => Code::Input,
            };
        }
        if let Some(e) = cause.downcast_ref::<EmbedError>() {
            return match e {
                EmbedError::Media(m) => media(m),
                EmbedError::Ladder(_) => Code::Usage,
                EmbedError::OutputNotEmpty(_) | EmbedError::Io { .. } => Code::Output,
                EmbedError::FrameSize { .. }
                | EmbedError::UnsupportedBitDepth(_)
                | EmbedError::TooManyPositions(_)
                | EmbedError::Subtitles { .. }
                | EmbedError::Keys { .. } => Code::Input,
                _ => Code::Internal,
            };
        }
        if let Some(m) = cause.downcast_ref::<MediaError>() {
            return media(m);
        }
        if let Some(e) = cause.downcast_ref::<leaktrace_session::SessionError>() {
            return match e {
                leaktrace_session::SessionError::UnknownTitle(_) => Code::NotFound,
                leaktrace_session::SessionError::InvalidTtl { .. }
                | leaktrace_session::SessionError::InvalidAccount(_)
                | leaktrace_session::SessionError::DirectModeForChannel(_) => Code::Usage,
                _ => Code::Internal,
            };
        }
        if let Some(leaktrace_edge::EdgeError::Root(_)) =
            cause.downcast_ref::<leaktrace_edge::EdgeError>()
        {
            return Code::Input;
        }
    }
    Code::Internal
}
