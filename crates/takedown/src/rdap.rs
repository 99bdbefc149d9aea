//! Recipients: RDAP abuse-contact lookup (RFC 9082/9083) for IP addresses and domains, found
//! through IANA bootstrap files (RFC 9224), cached in the store; per-host overrides first.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use leaktrace_store::Store;
use serde_json::Value;

use crate::TakedownError;
use crate::config::{RdapConfig, RecipientOverride};
use crate::net::{self, NetPolicy};
use crate::notice::{Channel, Level, Recipient};

/// Largest RDAP answer read (1 MiB); a larger one is refused, not cached.
pub const RDAP_MAX_BODY: usize = 1 << 20;

/// Redirect hops an RDAP look-up follows (each one checked against the address policy).
const RDAP_MAX_REDIRECTS: usize = 5;

/// The RDAP client: guarded resolver, and every redirect hop checked before it is followed.
fn rdap_client(policy: &NetPolicy) -> Result<reqwest::Client, TakedownError> {
    let allow_loopback = policy.allow_loopback;
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= RDAP_MAX_REDIRECTS {
            let msg = format!("more than {RDAP_MAX_REDIRECTS} redirects");
            return attempt.error(msg);
        }
        match net::check_url(attempt.url(), allow_loopback) {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let msg = format!("redirect to {}: {why}", attempt.url());
                attempt.error(msg)
            }
        }
    });
    policy.client(Duration::from_secs(20), redirect)
}

/// Bootstrap snapshot compiled in (see `rdap/README.md` in the crate).
const IPV4_SNAPSHOT: &str = include_str!("../rdap/ipv4.json");
const DNS_SNAPSHOT: &str = include_str!("../rdap/dns.json");

/// IANA bootstrap data: which RDAP server serves which address block or TLD.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    v4: Vec<(u32, u8, String)>,
    v6: Vec<(u128, u8, String)>,
    dns: Vec<(String, String)>,
}

fn services(text: &str, what: &str) -> Result<Vec<(String, String)>, TakedownError> {
    let v: Value = serde_json::from_str(text).map_err(|source| TakedownError::RdapBootstrap {
        what: what.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    let list = v.get("services").and_then(Value::as_array).ok_or_else(|| {
        TakedownError::InvalidConfig(format!("RDAP bootstrap {what}: no \"services\" array"))
    })?;
    for s in list {
        let entries = s.get(0).and_then(Value::as_array);
        // Prefer an https base URL (RFC 9224 §3: clients SHOULD use https).
        let urls: Vec<&str> = s
            .get(1)
            .and_then(Value::as_array)
            .map(|u| u.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let url = urls
            .iter()
            .find(|u| u.starts_with("https://"))
            .or(urls.first())
            .map(|u| (*u).to_owned());
        if let (Some(entries), Some(url)) = (entries, url) {
            for e in entries.iter().filter_map(Value::as_str) {
                out.push((e.to_ascii_lowercase(), url.clone()));
            }
        }
    }
    Ok(out)
}

fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

impl Bootstrap {
    /// The compiled-in snapshot (`rdap/README.md` in the crate says what it covers): IPv4
    /// from `rdap/ipv4.json`, the `com` and `net` TLDs from `rdap/dns.json`, no IPv6.
    pub fn snapshot() -> Result<Bootstrap, TakedownError> {
        Bootstrap::from_texts(Some(IPV4_SNAPSHOT), None, Some(DNS_SNAPSHOT))
    }

    /// From a directory with IANA's `ipv4.json`, `ipv6.json`, `dns.json` (each optional, at
    /// least one present; a missing one leaves that kind of query without a server).
    pub fn from_dir(dir: &Path) -> Result<Bootstrap, TakedownError> {
        let read = |n: &str| -> Result<Option<String>, TakedownError> {
            let p = dir.join(n);
            if p.exists() {
                std::fs::read_to_string(&p)
                    .map(Some)
                    .map_err(|e| TakedownError::io(p, e))
            } else {
                Ok(None)
            }
        };
        let (v4, v6, dns) = (read("ipv4.json")?, read("ipv6.json")?, read("dns.json")?);
        if v4.is_none() && v6.is_none() && dns.is_none() {
            return Err(TakedownError::InvalidConfig(format!(
                "rdap.bootstrap_dir {}: none of ipv4.json, ipv6.json, dns.json is there (IANA publishes them at https://data.iana.org/rdap/)",
                dir.display()
            )));
        }
        Bootstrap::from_texts(v4.as_deref(), v6.as_deref(), dns.as_deref())
    }

    /// From the texts of the three IANA files.
    pub fn from_texts(
        ipv4: Option<&str>,
        ipv6: Option<&str>,
        dns: Option<&str>,
    ) -> Result<Bootstrap, TakedownError> {
        let mut b = Bootstrap::default();
        for (net, url) in ipv4
            .map(|t| services(t, "ipv4"))
            .transpose()?
            .unwrap_or_default()
        {
            if let Some((IpAddr::V4(a), p)) = cidr(&net).filter(|(_, p)| *p <= 32) {
                b.v4.push((u32::from(a), p, url));
            }
        }
        for (net, url) in ipv6
            .map(|t| services(t, "ipv6"))
            .transpose()?
            .unwrap_or_default()
        {
            if let Some((IpAddr::V6(a), p)) = cidr(&net).filter(|(_, p)| *p <= 128) {
                b.v6.push((u128::from(a), p, url));
            }
        }
        b.dns = dns
            .map(|t| services(t, "dns"))
            .transpose()?
            .unwrap_or_default();
        Ok(b)
    }

    /// Base URL serving `ip` (longest prefix).
    pub fn for_ip(&self, ip: IpAddr) -> Option<&str> {
        match ip {
            IpAddr::V4(a) => {
                let x = u32::from(a);
                self.v4
                    .iter()
                    .filter(|(n, p, _)| {
                        let mask = if *p == 0 {
                            0
                        } else {
                            u32::MAX << (32 - u32::from(*p))
                        };
                        x & mask == n & mask
                    })
                    .max_by_key(|(_, p, _)| *p)
                    .map(|(_, _, u)| u.as_str())
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                self.v6
                    .iter()
                    .filter(|(n, p, _)| {
                        let mask = if *p == 0 {
                            0
                        } else {
                            u128::MAX << (128 - u32::from(*p))
                        };
                        x & mask == n & mask
                    })
                    .max_by_key(|(_, p, _)| *p)
                    .map(|(_, _, u)| u.as_str())
            }
        }
    }

    /// Base URL serving `domain` (longest matching label suffix).
    pub fn for_domain(&self, domain: &str) -> Option<&str> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.dns
            .iter()
            .filter(|(tld, _)| d == *tld || d.ends_with(&format!(".{tld}")))
            .max_by_key(|(tld, _)| tld.len())
            .map(|(_, u)| u.as_str())
    }
}

/// An abuse contact found in RDAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseContact {
    /// Organisation (the entity's `fn`, or the object's name).
    pub name: String,
    /// E-mail.
    pub email: String,
}

/// First entity (depth-first, nested entities included) with role `abuse` and an e-mail
/// in its vCard; also returns the registrant/registrar name when there is one.
pub fn abuse_contact(rdap: &Value) -> Option<AbuseContact> {
    fn vcard(e: &Value, field: &str) -> Option<String> {
        e.pointer("/vcardArray/1")?
            .as_array()?
            .iter()
            .find_map(|prop| {
                let p = prop.as_array()?;
                (p.first()?.as_str()? == field).then(|| p.get(3)?.as_str().map(str::to_owned))?
            })
    }
    fn walk(v: &Value, owner: Option<String>) -> Option<AbuseContact> {
        for e in v
            .get("entities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let roles: Vec<&str> = e
                .get("roles")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let name = vcard(e, "fn");
            if roles.contains(&"abuse")
                && let Some(email) = vcard(e, "email")
            {
                let name = owner.clone().or(name).unwrap_or_else(|| email.clone());
                return Some(AbuseContact { name, email });
            }
            let owner_here = if roles
                .iter()
                .any(|r| ["registrant", "registrar"].contains(r))
            {
                name.or_else(|| owner.clone())
            } else {
                owner.clone()
            };
            if let Some(c) = walk(e, owner_here) {
                return Some(c);
            }
        }
        None
    }
    let top = rdap.get("name").and_then(Value::as_str).map(str::to_owned);
    walk(rdap, top)
}

/// Finds recipients: overrides first, then RDAP (IP → host, domain → registrar).
#[derive(Debug, Clone)]
pub struct Resolver {
    overrides: Vec<RecipientOverride>,
    bootstrap: Bootstrap,
    store: Store,
    client: reqwest::Client,
    allow_loopback: bool,
    ttl: i64,
}

impl Resolver {
    /// From configuration; `bootstrap` `None` loads `[rdap] bootstrap_dir` or the snapshot.
    /// Look-ups obey the default address policy (no loopback); see [`Resolver::with_policy`].
    pub fn new(
        overrides: Vec<RecipientOverride>,
        rdap: &RdapConfig,
        bootstrap: Option<Bootstrap>,
        store: Store,
    ) -> Result<Resolver, TakedownError> {
        let bootstrap = match (bootstrap, &rdap.bootstrap_dir) {
            (Some(b), _) => b,
            (None, Some(dir)) => Bootstrap::from_dir(dir)?,
            (None, None) => Bootstrap::snapshot()?,
        };
        let policy = NetPolicy::default();
        Ok(Resolver {
            overrides,
            bootstrap,
            store,
            client: rdap_client(&policy)?,
            allow_loopback: policy.allow_loopback,
            ttl: i64::try_from(rdap.cache_ttl_s).unwrap_or(i64::MAX),
        })
    }

    /// The same resolver with look-ups under `policy` (e.g. [`NetPolicy::from_config`] to
    /// honour `allow_loopback`).
    pub fn with_policy(mut self, policy: &NetPolicy) -> Result<Resolver, TakedownError> {
        self.client = rdap_client(policy)?;
        self.allow_loopback = policy.allow_loopback;
        Ok(self)
    }

    fn override_for(&self, host: &str, level: Level) -> Option<Recipient> {
        let host = host.to_ascii_lowercase();
        let exact = self
            .overrides
            .iter()
            .find(|o| o.level == level && o.host.eq_ignore_ascii_case(&host));
        let any = || {
            self.overrides
                .iter()
                .find(|o| o.level == level && o.host == "*")
        };
        exact.or_else(any).map(|o| Recipient {
            name: o.name.clone(),
            email: o.email.clone(),
            level,
            channel: match &o.endpoint {
                Some(e) => Channel::Http {
                    endpoint: e.clone(),
                },
                None => Channel::Email {
                    to: o.email.clone(),
                },
            },
        })
    }

    /// An RDAP object, from the cache or the server (then cached for the TTL).
    pub async fn lookup(
        &self,
        base: &str,
        kind: &str,
        query: &str,
        now: i64,
    ) -> Result<Value, TakedownError> {
        let key = format!("{kind}/{query}");
        let err = |m: String| TakedownError::Rdap {
            query: query.to_owned(),
            message: m,
        };
        if let Some(hit) = self.store.rdap_cached(&key, now).await? {
            return serde_json::from_str(&hit).map_err(|e| err(e.to_string()));
        }
        let url = format!("{}/{kind}/{query}", base.trim_end_matches('/'));
        let parsed = url::Url::parse(&url).map_err(|e| err(format!("{url}: {e}")))?;
        net::check_url(&parsed, self.allow_loopback).map_err(|reason| TakedownError::Refused {
            url: url.clone(),
            reason,
        })?;
        let mut resp = self
            .client
            .get(parsed)
            .header("accept", "application/rdap+json")
            .send()
            .await
            .map_err(|e| err(net::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(err(format!("{url}: HTTP {}", resp.status())));
        }
        let too_big = || {
            err(format!(
                "{url}: answer larger than {RDAP_MAX_BODY} bytes refused"
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > RDAP_MAX_BODY as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(net::error_chain(&e)))? {
            if body.len() + chunk.len() > RDAP_MAX_BODY {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|e| err(format!("{url}: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| err(format!("{url}: {e}")))?;
        self.store
            .rdap_store(&key, &text, now, now.saturating_add(self.ttl))
            .await?;
        Ok(v)
    }

    /// The recipient for `host` / `ip` at `level`: an override, else RDAP for `host`
    /// (IP abuse contact) and `registrar` (domain abuse contact). `site` and `cdn` need an
    /// override. `Ok(None)`: nobody known at this level.
    pub async fn resolve(
        &self,
        host: &str,
        ip: IpAddr,
        level: Level,
        now: i64,
    ) -> Result<Option<Recipient>, TakedownError> {
        if let Some(r) = self.override_for(host, level) {
            return Ok(Some(r));
        }
        let (base, kind, query) = match level {
            Level::Host => match self.bootstrap.for_ip(ip) {
                Some(b) => (b.to_owned(), "ip", ip.to_string()),
                None => return Ok(None),
            },
            Level::Registrar => match self.bootstrap.for_domain(host) {
                Some(b) => (b.to_owned(), "domain", registered_domain(host)),
                None => return Ok(None),
            },
            Level::Site | Level::Cdn => return Ok(None),
        };
        let v = self.lookup(&base, kind, &query, now).await?;
        Ok(abuse_contact(&v).map(|c| Recipient {
            name: c.name,
            email: c.email.clone(),
            level,
            channel: Channel::Email { to: c.email },
        }))
    }
}

/// The last two labels of a host name (`a.b.example.com` → `example.com`): the name a
/// registry knows. Approximate (no public-suffix list): `example.co.uk` needs an override.
pub fn registered_domain(host: &str) -> String {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = h.split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIRS: [&str; 5] = [
        "https://rdap.afrinic.net/rdap/",
        "https://rdap.apnic.net/",
        "https://rdap.arin.net/registry/",
        "https://rdap.db.ripe.net/",
        "https://rdap.lacnic.net/rdap/",
    ];

    /// What rdap/README.md says the snapshot covers, checked.
    #[test]
    fn snapshot_covers_what_the_readme_says() {
        let b = Bootstrap::snapshot().unwrap();
        let mut per_rir = [0usize; 5];
        for a in 0u8..=255 {
            for ip in [[a, 0, 0, 1], [a, 255, 255, 254]] {
                let got = b.for_ip(IpAddr::from(ip));
                if matches!(a, 0 | 10 | 127 | 224..=255) {
                    assert_eq!(got, None, "{a}/8");
                } else {
                    let i = RIRS.iter().position(|r| Some(*r) == got);
                    assert!(i.is_some(), "{a}/8: {got:?}");
                    if ip[1] == 0 {
                        per_rir[i.unwrap_or_default()] += 1;
                    }
                }
            }
        }
        assert_eq!(per_rir, [6, 51, 111, 43, 10]);
        assert_eq!(per_rir.iter().sum::<usize>(), 221);
        assert_eq!(b.for_ip("2001:db8::1".parse().unwrap()), None);
        assert_eq!(b.for_ip("2a00:1450::1".parse().unwrap()), None);
        assert_eq!(
            b.for_domain("files.example.com"),
            Some("https://rdap.verisign.com/com/v1/")
        );
        assert_eq!(
            b.for_domain("example.net"),
            Some("https://rdap.verisign.com/net/v1/")
        );
        for other in ["example.org", "example.co.uk", "example.io", "example.de"] {
            assert_eq!(b.for_domain(other), None, "{other}");
        }
    }

    #[test]
    fn bootstrap_dir_without_files_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let e = Bootstrap::from_dir(d).unwrap_err().to_string();
        assert!(e.contains("none of ipv4.json, ipv6.json, dns.json"), "{e}");
        std::fs::write(d.join("dns.json"), DNS_SNAPSHOT).unwrap();
        let b = Bootstrap::from_dir(d).unwrap();
        assert!(b.for_domain("a.com").is_some());
        assert_eq!(b.for_ip("8.8.8.8".parse().unwrap()), None);
    }
}
