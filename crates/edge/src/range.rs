//! HTTP `Range` requests (RFC 9110 §14): one byte range per request.

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeRequest {
    /// No usable range (absent, another unit, several ranges, malformed): send everything, 200.
    Full,
    /// One satisfiable range, inclusive bounds: 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A single range that selects no byte of the representation: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a representation of `len` bytes.
///
/// `bytes=a-b`, `bytes=a-` and `bytes=-n` are honoured; several ranges are answered with the
/// whole representation (RFC 9110 lets a server ignore `Range`), as are malformed values.
pub fn parse(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            // Suffix range: the last n bytes.
            let Some(n) = digits(last).then(|| last.parse::<u64>().ok()).flatten() else {
                return RangeRequest::Full;
            };
            if n == 0 || len == 0 {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        (false, _) => {
            let Some(start) = digits(first).then(|| first.parse::<u64>().ok()).flatten() else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                None
            } else {
                match digits(last).then(|| last.parse::<u64>().ok()).flatten() {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial {
                start,
                end: end.map_or(len - 1, |e| e.min(len - 1)),
            }
        }
        (true, true) => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::{Full, Partial, Unsatisfiable};

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-3"), 10), Partial { start: 0, end: 3 });
        assert_eq!(parse(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=8-100"), 10), Partial { start: 8, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn ignored_ranges() {
        for h in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=99999999999999999999-",
            "bytes=+1-2",
        ] {
            assert_eq!(parse(Some(h), 10), Full, "{h}");
        }
    }
}
