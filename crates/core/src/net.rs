//! Address policy shared by every part of leaktrace that opens connections to addresses it
//! did not choose (the crawler, takedown re-checks and RDAP look-ups): [`refusal`] says
//! whether an [`IpAddr`] is a public unicast address or why it is refused. Pure
//! classification, no network code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
}
