//! The outbound address policy of the takedown side: URL re-checks and RDAP look-ups go to
//! addresses taken from findings and from RDAP answers, and HTTP notices go to configured
//! endpoints (with a bearer token), so all of them obey the crawler's policy
//! ([`leaktrace_core::net::refusal`]): loopback (unless `allow_loopback`), private,
//! link-local and cloud metadata, CGNAT, multicast, reserved and documentation ranges, and
//! their IPv4-mapped, NAT64 and 6to4 forms are refused.
//!
//! IP literals in URLs are checked by [`check_url`] before each request (and on every
//! redirect hop RDAP follows; re-checks and deliveries follow none); host names are checked
//! by [`GuardedResolver`], which filters the addresses a name resolves to before reqwest
//! connects, so the address checked is the address connected to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use leaktrace_core::net::refusal;

use crate::{TakedownConfig, TakedownError};

/// Where names are looked up before the guard filters the answers.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Lookup {
    /// The system resolver (`getaddrinfo` via tokio).
    #[default]
    System,
    /// A fixed table, name → addresses (tests: no real look-ups).
    Static(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::System => f.write_str("System"),
            Lookup::Static(t) => write!(f, "Static({} names)", t.len()),
        }
    }
}

/// The policy an outbound client is built with.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Lets `127.0.0.0/8`, `::1` and `localhost` through (tests, local use; default false).
    pub allow_loopback: bool,
    /// How host names are resolved.
    pub lookup: Lookup,
}

impl NetPolicy {
    /// The system resolver, loopback allowed or not.
    pub fn new(allow_loopback: bool) -> NetPolicy {
        NetPolicy {
            allow_loopback,
            lookup: Lookup::System,
        }
    }

    /// From `takedown.toml` (`allow_loopback`).
    pub fn from_config(cfg: &TakedownConfig) -> NetPolicy {
        NetPolicy::new(cfg.allow_loopback)
    }

    /// An HTTP client whose every connection goes through [`GuardedResolver`], with
    /// `timeout` and `redirect` policy.
    pub fn client(
        &self,
        timeout: Duration,
        redirect: reqwest::redirect::Policy,
    ) -> Result<reqwest::Client, TakedownError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(redirect)
            .dns_resolver(Arc::new(GuardedResolver {
                lookup: self.lookup.clone(),
                allow_loopback: self.allow_loopback,
            }))
            .build()
            .map_err(TakedownError::HttpClient)
    }
}

/// Checks a URL before a request: scheme `http` or `https`, and an IP-literal host against
/// [`refusal`]; `localhost` names count as loopback. Other host names pass (the resolver
/// checks what they resolve to). The error says why.
pub fn check_url(url: &url::Url, allow_loopback: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} refused (http or https only)",
            url.scheme()
        ));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !allow_loopback && (d == "localhost" || d.ends_with(".localhost")) {
                return Err(format!("{d}: loopback name refused"));
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

/// Whether `url`'s host is a loopback address or a `localhost` name.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(v4)) => v4.is_loopback(),
        Some(url::Host::Ipv6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

/// The error text of `e` with its causes (a guard refusal is a cause of a reqwest error).
pub(crate) use leaktrace_core::error_chain;

/// The guard's answer when every address a host name resolves to is refused: resolution
/// fails with this error (reqwest reports it as a connect error with this as a cause; find it
/// with [`policy_refusal`]), and nothing is connected to. Its text is
/// `HOST: address policy refused ADDR (WHY), ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// The host name looked up.
    pub host: String,
    /// Each address refused, with why (`10.0.0.1 (private (RFC 1918))`).
    pub refused: Vec<String>,
}

impl std::fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: address policy refused {}",
            self.host,
            self.refused.join(", ")
        )
    }
}

impl std::error::Error for PolicyRefusal {}

/// The [`GuardedResolver`]'s refusal among `e` and its causes, if the policy refused the
/// connection (as opposed to a look-up or connection that failed).
pub fn policy_refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a PolicyRefusal> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<PolicyRefusal>() {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

/// A resolver that refuses every address [`refusal`] refuses. If every address a name
/// resolves to is refused, resolution fails with a [`PolicyRefusal`] and reqwest never
/// connects.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    lookup: Lookup,
    allow_loopback: bool,
}

impl GuardedResolver {
    /// A guard over `lookup`.
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
                return Err(PolicyRefusal { host, refused }.into());
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
    fn urls() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let e = check_url(&u("http://169.254.169.254/latest/meta-data"), true).unwrap_err();
        assert!(e.contains("link-local"), "{e}");
        assert!(check_url(&u("http://[::ffff:a9fe:a9fe]/"), true).is_err());
        assert!(check_url(&u("http://[64:ff9b::a00:1]/"), true).is_err());
        assert!(check_url(&u("http://100.64.0.1/"), true).is_err());
        assert!(check_url(&u("http://127.0.0.1:8080/"), false).is_err());
        assert!(check_url(&u("http://localhost/"), false).is_err());
        assert!(check_url(&u("file:///etc/passwd"), true).is_err());
        assert!(check_url(&u("http://127.0.0.1:8080/"), true).is_ok());
        assert!(check_url(&u("https://example.com/"), false).is_ok());
        assert!(check_url(&u("http://2130706433/"), false).is_err());
        assert!(is_loopback_host(&u("http://[::1]:9/")));
        assert!(!is_loopback_host(&u("http://example.com/")));
    }
}
