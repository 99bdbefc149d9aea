//! The SSRF guard: which addresses the crawler may connect to, and a
//! [`reqwest::dns::Resolve`] that enforces it at resolution time.
//!
//! Every connection the crawler opens goes through [`GuardedResolver`] (host
//! names) or [`check_literal`] (IP literals in URLs, checked before each
//! request and on every redirect hop, since redirects are followed one hop at a
//! time by the fetcher). The address checked is the address connected to, so a
//! DNS answer that changes between checks (rebinding) cannot slip through.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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

/// Where names are looked up before the guard filters the answers.
#[derive(Clone)]
pub enum Lookup {
    /// The system resolver (`getaddrinfo` via tokio).
    System,
    /// A fixed table, name → addresses (tests: no real lookups, nothing leaves the host).
    Static(Arc<HashMap<String, Vec<IpAddr>>>),
}

/// A resolver that refuses every non-public address (see [`refusal`]).
/// If all the addresses a name resolves to are refused, resolution fails and
/// reqwest never connects.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Lookup,
    allow_loopback: bool,
}

impl GuardedResolver {
    /// A guard over `lookup`; `allow_loopback` lets 127.0.0.0/8 and ::1 through (tests, local use).
    pub fn new(lookup: Lookup, allow_loopback: bool) -> Self {
        GuardedResolver {
            lookup,
            allow_loopback,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.clone();
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addrs: Vec<IpAddr> = match lookup {
                Lookup::System => tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|sa| sa.ip())
                    .collect(),
                Lookup::Static(table) => table.get(&host).cloned().unwrap_or_default(),
            };
            if addrs.is_empty() {
                return Err(format!("{host}: no address").into());
            }
            let mut refused = Vec::new();
            let ok: Vec<SocketAddr> = addrs
                .iter()
                .filter_map(|ip| match refusal(*ip, allow_loopback) {
                    None => Some(SocketAddr::new(*ip, 0)),
                    Some(why) => {
                        refused.push(format!("{ip} ({why})"));
                        None
                    }
                })
                .collect();
            if ok.is_empty() {
                tracing::warn!(host, refused = ?refused, "SSRF guard refused every address");
                return Err(format!("{host}: SSRF guard refused {}", refused.join(", ")).into());
            }
            let it: Addrs = Box::new(ok.into_iter());
            Ok(it)
        })
    }
}

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
