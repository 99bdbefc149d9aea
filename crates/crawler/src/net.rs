//! The SSRF guard: which addresses the crawler may connect to, and a
//! [`reqwest::dns::Resolve`] that enforces it at resolution time.
//!
//! Every connection the crawler opens goes through [`GuardedResolver`] (host
//! names) or [`check_literal`] (IP literals in URLs, checked before each
//! request and on every redirect hop, since redirects are followed one hop at a
//! time by the fetcher). The address checked is the address connected to, so a
//! DNS answer that changes between checks (rebinding) cannot slip through.

use std::net::IpAddr;

pub use leaktrace_core::net::refusal;

/// Checks a URL host that is an IP literal; host names pass (the resolver checks them).
pub fn check_literal(url: &url::Url, allow_loopback: bool) -> Result<(), String> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return if allow_loopback {
                    Ok(())
                } else {
                    Err(format!("{d}: loopback name refused"))
                };
            }
            return Ok(());
        }
        None => return Err("URL has no host".into()),
    };
    match refusal(ip, allow_loopback) {
        Some(why) => Err(format!("{ip}: {why} address refused")),
        None => Ok(()),
    }
}

/// The guarded resolver and its look-up table are the takedown crate's: the re-checks, RDAP
/// look-ups and the crawler share one address policy and one resolver.
pub use leaktrace_takedown::net::{GuardedResolver, Lookup};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_urls() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_literal(&u("http://169.254.169.254/latest/meta-data"), true).is_err());
        assert!(check_literal(&u("http://[::ffff:a00:1]/"), true).is_err());
        assert!(check_literal(&u("http://127.0.0.1:8080/"), false).is_err());
        assert!(check_literal(&u("http://localhost/"), false).is_err());
        assert!(check_literal(&u("http://127.0.0.1:8080/"), true).is_ok());
        assert!(check_literal(&u("http://example.com/"), false).is_ok());
        // Decimal and hex IPv4 forms are normalised by the URL parser, then checked.
        assert!(check_literal(&u("http://2130706433/"), false).is_err());
        assert!(check_literal(&u("http://0x7f.1/"), false).is_err());
    }
}
