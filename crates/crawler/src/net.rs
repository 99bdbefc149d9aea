//! The SSRF guard: which addresses the crawler may connect to, and a
//! [`reqwest::dns::Resolve`] that enforces it at resolution time.
//!
//! Every connection the crawler opens goes through [`GuardedResolver`] (host
//! names) or [`check_literal`] (IP literals in URLs, checked before each
//! request and on every redirect hop, since redirects are followed one hop at a
//! time by the fetcher). The address checked is the address connected to, so a
//! DNS answer that changes between checks (rebinding) cannot slip through.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is refused, or `None` if it is a public unicast address.
///
/// Refused: unspecified, loopback (unless `allow_loopback`), private
/// (RFC 1918, IPv6 ULA `fc00::/7`), link-local (`169.254/16`, `fe80::/10`,
/// which covers the cloud metadata address `169.254.169.254`), CGNAT
/// (`100.64/10`), multicast, broadcast, documentation and benchmarking ranges,
/// `0/8`, `240/4`, the IPv6 site-local `fec0::/10`, NAT64/6to4/Teredo forms are
/// judged by the IPv4 address they embed, and IPv4-mapped IPv6 addresses as their IPv4.
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_loopback),
        IpAddr::V6(v6) => refusal_v6(v6, allow_loopback),
    }
}

fn refusal_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() || o[0] == 0 {
        return Some("unspecified / this-network");
    }
    if ip.is_private() {
        return Some("private (RFC 1918)");
    }
    if ip.is_link_local() {
        return Some("link-local / cloud metadata");
    }
    if o[0] == 100 && (o[1] & 0xC0) == 64 {
        return Some("carrier-grade NAT (100.64.0.0/10)");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if ip.is_broadcast() || o[0] >= 240 {
        return Some("reserved / broadcast");
    }
    if ip.is_documentation() || (o[0] == 198 && (o[1] & 0xFE) == 18) {
        return Some("documentation / benchmarking");
    }
    if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        return Some("IETF protocol assignments (192.0.0.0/24)");
    }
    None
}

fn refusal_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4, allow_loopback);
    }
    if ip.is_loopback() {
        return (!allow_loopback).then_some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    let s = ip.segments();
    if ip.is_multicast() {
        return Some("multicast");
    }
    if (s[0] & 0xFE00) == 0xFC00 {
        return Some("unique local (fc00::/7)");
    }
    if (s[0] & 0xFFC0) == 0xFE80 {
        return Some("link-local (fe80::/10)");
    }
    if (s[0] & 0xFFC0) == 0xFEC0 {
        return Some("site-local (fec0::/10)");
    }
    if s[0] == 0x2001 && s[1] == 0x0DB8 {
        return Some("documentation (2001:db8::/32)");
    }
    // NAT64 (64:ff9b::/96), 6to4 (2002::/16), Teredo (2001::/32): embedded IPv4.
    if s[0] == 0x0064 && s[1] == 0xFF9B && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return refusal_v4(v4, allow_loopback).map(|_| "NAT64 of a refused IPv4");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return refusal_v4(v4, allow_loopback).map(|_| "6to4 of a refused IPv4");
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("Teredo (2001::/32)");
    }
    // IPv4-compatible (deprecated ::a.b.c.d).
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return Some("IPv4-compatible IPv6 (deprecated)");
    }
    None
}

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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_non_public() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "fd00:ec2::254",
        ] {
            assert!(refusal(ip(a), true).is_some(), "{a} must be refused");
        }
        assert!(refusal(ip("127.0.0.1"), false).is_some());
        assert!(refusal(ip("::1"), false).is_some());
        assert!(refusal(ip("::ffff:127.0.0.1"), false).is_some());
    }

    #[test]
    fn allows_public_and_switched_loopback() {
        for a in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(refusal(ip(a), false).is_none(), "{a} must be allowed");
        }
        assert!(refusal(ip("127.0.0.1"), true).is_none());
        assert!(refusal(ip("::1"), true).is_none());
    }

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
