// Fuzz bodies of leaktrace-crawler: HTML, feed and sitemap link extraction (`extract`), title
// matching of page text (`title`), URL canonicalisation and trap limits (`canon`), the SSRF
// check of IP-literal hosts (`net::check_literal`) and HLS playlists as the capture reads them.
//
// `include!`d by fuzz/fuzz_targets/{html_extract,feed_extract,url_canon,hls_playlist}.rs and by
// crates/crawler/tests/fuzz_corpus.rs (the stable replay of the corpus). Must not panic on any
// input; the assertions are properties of every input.

use std::collections::HashSet;

use leaktrace_crawler::canon::{canonicalize, trap_check};
use leaktrace_crawler::config::{CatalogueTitle, Limits};
use leaktrace_crawler::extract::{LinkKind, extract_feed, extract_html};
use leaktrace_crawler::net::check_literal;
use leaktrace_crawler::title::{best_match, words};
use url::Url;

/// The page every fuzzed document is fetched from.
pub const PAGE: &str = "http://pirate.test/movies/page/1";

fn page() -> Url {
    match Url::parse(PAGE) {
        Ok(u) => u,
        Err(e) => panic!("{PAGE}: {e}"),
    }
}

fn catalogue() -> Vec<CatalogueTitle> {
    vec![CatalogueTitle {
        title_id: "bbb".into(),
        names: vec!["Big Buck Bunny".into()],
        aliases: vec!["BBB".into(), "Großer Hase".into()],
        year: Some(2008),
        reference: None,
    }]
}

/// The kind `extract` gives a link by its path's extension, if the extension decides it.
fn kind_by_extension(u: &Url) -> Option<LinkKind> {
    let path = u.path().to_ascii_lowercase();
    match path.rsplit_once('.')?.1 {
        "m3u8" => Some(LinkKind::Hls),
        "mpd" => Some(LinkKind::Dash),
        "mp4" | "m4v" | "mkv" | "webm" | "mov" | "avi" | "wmv" | "flv" | "ts" | "mpg" | "mpeg" => {
            Some(LinkKind::Media)
        }
        _ => None,
    }
}

/// An extracted (non-magnet) link is an absolute http(s) URL in serialized form.
fn check_link_url(url: &str) -> Url {
    let u = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => panic!("extracted link {url:?} does not parse: {e}"),
    };
    assert!(matches!(u.scheme(), "http" | "https"), "{url:?}");
    assert_eq!(u.as_str(), url);
    u
}

/// `extract_html` on the input (lossy UTF-8; the first byte is the link limit): at most that many
/// links, no duplicates, magnets as given, other links absolute http(s) URLs whose kind agrees
/// with their extension; the heading and link texts then go through title matching.
pub fn html_extract(data: &[u8]) {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    let html = String::from_utf8_lossy(rest);
    let info = extract_html(&html, &page(), max);
    assert!(info.links.len() <= max);
    let mut seen = HashSet::new();
    let cat = catalogue();
    for l in &info.links {
        assert!(seen.insert(l.url.as_str()), "duplicate link {:?}", l.url);
        if l.kind == LinkKind::Magnet {
            assert!(
                l.url
                    .get(..7)
                    .is_some_and(|m| m.eq_ignore_ascii_case("magnet:"))
            );
        } else {
            let u = check_link_url(&l.url);
            if let Some(k) = kind_by_extension(&u) {
                assert_eq!(l.kind, k, "{:?}", l.url);
            }
        }
        if let Some(m) = best_match(&cat, &l.text) {
            assert!(m.score > 0 && m.score <= 100, "{m:?} for {:?}", l.text);
        }
    }
    if let Some(m) = best_match(&cat, &info.heading) {
        assert!(
            m.score > 0 && m.score <= 100,
            "{m:?} for {:?}",
            info.heading
        );
        assert_eq!(m.title_id, "bbb");
    }
    let _ = words(&info.heading);
}

/// `extract_feed` on the input (lossy UTF-8; the first byte is the link limit): at most that many
/// links, each an absolute http(s) URL.
pub fn feed_extract(data: &[u8]) {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    let xml = String::from_utf8_lossy(rest);
    let links = extract_feed(&xml, &page(), max);
    assert!(links.len() <= max);
    for l in &links {
        let u = check_link_url(&l.url);
        if let Some(k) = kind_by_extension(&u) {
            assert_eq!(l.kind, k, "{:?}", l.url);
        }
    }
}

fn check_canonical(u: &Url) {
    let limits = Limits::default();
    let literal = check_literal(u, false);
    match canonicalize(u) {
        Ok(c) => {
            assert!(matches!(c.scheme(), "http" | "https"));
            assert!(c.fragment().is_none());
            assert!(c.username().is_empty() && c.password().is_none());
            assert!(c.query() != Some(""));
            // A canonical URL is its own canonical form, also after a trip through its string
            // (the frontier stores the string).
            assert_eq!(canonicalize(&c).as_ref().map(Url::as_str), Ok(c.as_str()));
            match Url::parse(c.as_str()) {
                Ok(again) => assert_eq!(again.as_str(), c.as_str()),
                Err(e) => panic!("canonical URL {c} does not parse: {e}"),
            }
            // Same host, so the same SSRF verdict.
            assert_eq!(check_literal(&c, false), literal);
            for depth in [0, limits.max_depth + 1] {
                let r = trap_check(&c, depth, &limits);
                if depth > limits.max_depth {
                    assert!(r.is_err());
                }
            }
        }
        Err(_) => {
            let ok_shape = matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none();
            assert!(!ok_shape, "{u} refused");
        }
    }
}

/// The input (lossy UTF-8) as an absolute URL and as a link relative to a page: canonical forms
/// are fixed points (also through their string), keep the host's SSRF verdict, and refusals are
/// for scheme, host or credentials only.
pub fn url_canon(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(u) = Url::parse(&s) {
        check_canonical(&u);
    }
    if let Ok(u) = page().join(&s) {
        check_canonical(&u);
    }
}

/// An HLS playlist as `capture::capture_hls` reads it: parsed with `m3u8_rs::parse_playlist_res`;
/// a multivariant playlist resolves to its highest-bandwidth non-I-frame variant, a media
/// playlist to its init and segment URLs, all joined to the playlist's URL.
///
/// The capture's own playlist step is not public (it fetches as it goes), so this mirrors it on
/// the same parser and the same URL resolution.
pub fn hls_playlist(data: &[u8]) {
    let base = match Url::parse("http://pirate.test/hls/bbb/master.m3u8") {
        Ok(u) => u,
        Err(e) => panic!("{e}"),
    };
    match m3u8_rs::parse_playlist_res(data) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            if let Some(best) = m
                .variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .max_by_key(|v| v.bandwidth)
                && let Ok(u) = base.join(&best.uri)
            {
                let _ = canonicalize(&u);
            }
        }
        Ok(m3u8_rs::Playlist::MediaPlaylist(pl)) => {
            let wait_ms = pl.target_duration.clamp(1, 20) * 500;
            assert!((500..=10_000).contains(&wait_ms));
            let mut joined = 0usize;
            for (i, seg) in pl.segments.iter().enumerate() {
                let _ = pl.media_sequence.checked_add(i as u64);
                if let Some(map) = &seg.map {
                    let _ = base.join(&map.uri);
                }
                if base.join(&seg.uri).is_ok() {
                    joined += 1;
                }
            }
            assert!(joined <= pl.segments.len());
        }
        Err(_) => {}
    }
}
