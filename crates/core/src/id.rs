//! Validated identifiers.

use crate::CoreError;
use std::fmt;

/// A title (one piece of content, all renditions) as the operator names it.
///
/// 1 to 128 characters from the URL-safe set `[A-Za-z0-9._~-]`, so it can appear in paths,
/// tokens and file names without escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TitleId(String);

impl TitleId {
    /// Validates and wraps a title id.
    pub fn new(id: impl Into<String>) -> Result<Self, CoreError> {
        let id = id.into();
        if is_url_safe_id(&id) {
            Ok(Self(id))
        } else {
            Err(CoreError::InvalidTitleId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TitleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `s` is 1–128 bytes of `[A-Za-z0-9._~-]`.
pub(crate) fn is_url_safe_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
        && s != "."
        && s != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_ids() {
        for ok in ["a", "big-buck-bunny", "T_2026.v1~x", &"x".repeat(128)] {
            assert!(TitleId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "a/b", "..", ".", "a b", "é", &"x".repeat(129), "a\0"] {
            assert!(TitleId::new(bad).is_err(), "{bad:?}");
        }
    }
}
