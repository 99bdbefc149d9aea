//! URL canonicalization and crawl-trap limits.
//!
//! Canonical form: http/https only; scheme and host lowercase (the URL parser
//! does that, and IDNA-maps hosts); default ports dropped; fragment dropped;
//! `.`/`..` segments resolved; query parameters that carry session ids or
//! tracking (`sid`, `sessionid`, `phpsessid`, `jsessionid`, `utm_*`, …)
//! removed, remaining parameters sorted; an empty query removed. Two URLs that
//! differ only in those respects are one frontier row.

use url::Url;

use crate::config::Limits;

/// Query parameters that identify a visitor or a campaign, not a resource.
const DROPPED_PARAMS: &[&str] = &[
    "sid",
    "sessionid",
    "session_id",
    "phpsessid",
    "jsessionid",
    "aspsessionid",
    "cfid",
    "cftoken",
    "fbclid",
    "gclid",
    "ref",
];

/// The canonical form of `url`, or why it cannot be crawled.
pub fn canonicalize(url: &Url) -> Result<Url, String> {
    match url.scheme() {
        "http" | "https" => {}
        s => return Err(format!("scheme `{s}` not crawled (http, https only)")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URL carries credentials".into());
    }
    let mut u = url.clone();
    u.set_fragment(None);
    // `;jsessionid=…` path parameters.
    let path = u.path().to_owned();
    if let Some(i) = path.to_ascii_lowercase().find(";jsessionid=")
        && let Some(kept) = path.get(..i)
    {
        u.set_path(kept);
    }
    if u.query().is_some() {
        let mut pairs: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                !(DROPPED_PARAMS.contains(&k.as_str()) || k.starts_with("utm_"))
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        if pairs.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    Ok(u)
}

/// Whether a canonical URL at link depth `depth` is within the trap limits;
/// `Err` says which limit it breaks.
pub fn trap_check(url: &Url, depth: u32, limits: &Limits) -> Result<(), String> {
    if depth > limits.max_depth {
        return Err(format!(
            "depth {depth} above max_depth {}",
            limits.max_depth
        ));
    }
    let len = url.as_str().len();
    if len > limits.max_url_len {
        return Err(format!(
            "URL length {len} above max_url_len {}",
            limits.max_url_len
        ));
    }
    let segs: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    if segs.len() > limits.max_path_segments {
        return Err(format!(
            "{} path segments above max_path_segments {}",
            segs.len(),
            limits.max_path_segments
        ));
    }
    let mut counts = std::collections::HashMap::new();
    for s in &segs {
        let c = counts.entry(*s).or_insert(0usize);
        *c += 1;
        if *c > limits.max_repeated_segment {
            return Err(format!(
                "path segment `{s}` repeated more than max_repeated_segment {}",
                limits.max_repeated_segment
            ));
        }
    }
    let params = url.query_pairs().count();
    if params > limits.max_query_params {
        return Err(format!(
            "{params} query parameters above max_query_params {}",
            limits.max_query_params
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        canonicalize(&Url::parse(s).unwrap()).unwrap().to_string()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            c("HTTP://Example.COM:80/a/./b/../c#frag"),
            "http://example.com/a/c"
        );
        assert_eq!(
            c("https://x.org/p?b=2&utm_source=z&a=1&PHPSESSID=abc"),
            "https://x.org/p?a=1&b=2"
        );
        assert_eq!(c("https://x.org/p?sid=1"), "https://x.org/p");
        assert_eq!(c("https://x.org/p;jsessionid=XYZ"), "https://x.org/p");
        assert!(canonicalize(&Url::parse("ftp://x.org/").unwrap()).is_err());
        assert!(canonicalize(&Url::parse("http://u:p@x.org/").unwrap()).is_err());
    }

    #[test]
    fn traps() {
        let l = Limits::default();
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(trap_check(&u("http://x.org/a/b/c"), 1, &l).is_ok());
        assert!(trap_check(&u("http://x.org/a"), l.max_depth + 1, &l).is_err());
        let deep = format!("http://x.org/{}", "cal/".repeat(l.max_repeated_segment + 1));
        assert!(trap_check(&u(&deep), 1, &l).is_err());
        let long = format!("http://x.org/{}", "a".repeat(l.max_url_len));
        assert!(trap_check(&u(&long), 1, &l).is_err());
    }
}
