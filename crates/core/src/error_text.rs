//! An error as one line of text, for logs, reports and the command line.

/// `e` and its causes joined by ": ", a cause left out when the text so far already holds it
/// (an error whose message quotes its cause would otherwise print it twice).
///
/// ```
/// let io = std::io::Error::other("disk full");
/// assert_eq!(leaktrace_core::error_chain(&io), "disk full");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error, &'static str);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.1)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_are_joined_once() {
        let e = Outer(std::io::Error::other("disk full"), "writing the report");
        assert_eq!(error_chain(&e), "writing the report: disk full");
        let quoted = Outer(
            std::io::Error::other("disk full"),
            "writing the report: disk full",
        );
        assert_eq!(error_chain(&quoted), "writing the report: disk full");
    }
}
