//! Link extraction from HTML (scraper / html5ever, which parses any tag soup
//! the way browsers do) and from sitemaps and feeds.

use scraper::{Html, Selector};
use url::Url;

/// What a link points at, by its element and file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// An HTML page to crawl.
    Page,
    /// The next page of a listing (followed without adding depth).
    NextPage,
    /// An embedded player (`<iframe>`), crawled even on another host.
    Embed,
    /// A direct media file.
    Media,
    /// An HLS playlist.
    Hls,
    /// A DASH manifest (recorded; capture of DASH is not implemented).
    Dash,
    /// A magnet link (recorded, never fetched).
    Magnet,
}

/// One extracted link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Absolute URL (magnets: the magnet URI).
    pub url: String,
    /// What it points at.
    pub kind: LinkKind,
    /// The anchor text, `title`/`alt`, or empty.
    pub text: String,
}

/// What a page says about itself and links to.
#[derive(Debug, Clone, Default)]
pub struct PageInfo {
    /// `<title>`, `<h1>` and `og:title` text, joined.
    pub heading: String,
    /// Extracted links, in document order, without duplicates.
    pub links: Vec<Link>,
}

const MEDIA_EXT: &[&str] = &[
    "mp4", "m4v", "mkv", "webm", "mov", "avi", "wmv", "flv", "ts", "mpg", "mpeg",
];

fn kind_by_path(u: &Url) -> Option<LinkKind> {
    let path = u.path().to_ascii_lowercase();
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    if ext == "m3u8" {
        Some(LinkKind::Hls)
    } else if ext == "mpd" {
        Some(LinkKind::Dash)
    } else if MEDIA_EXT.contains(&ext) {
        Some(LinkKind::Media)
    } else {
        None
    }
}

fn sel(s: &str) -> Option<Selector> {
    Selector::parse(s).ok()
}

fn text_of(el: &scraper::ElementRef<'_>) -> String {
    let t: String = el.text().collect::<Vec<_>>().join(" ");
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if !t.is_empty() {
        return t;
    }
    el.value()
        .attr("title")
        .or_else(|| el.value().attr("alt"))
        .unwrap_or("")
        .to_owned()
}

/// Extracts headings and links from an HTML document at `base`, at most `max_links`.
pub fn extract_html(html: &str, base: &Url, max_links: usize) -> PageInfo {
    let doc = Html::parse_document(html);
    let mut info = PageInfo::default();
    let mut heading = Vec::new();
    for q in ["title", "h1", "h2"] {
        if let Some(s) = sel(q) {
            for el in doc.select(&s).take(3) {
                let t = text_of(&el);
                if !t.is_empty() {
                    heading.push(t);
                }
            }
        }
    }
    if let Some(s) = sel(r#"meta[property="og:title"]"#) {
        for el in doc.select(&s) {
            if let Some(c) = el.value().attr("content") {
                heading.push(c.to_owned());
            }
        }
    }
    info.heading = heading.join(" | ");
    let base = doc
        .select(&match sel("base[href]") {
            Some(s) => s,
            None => return info,
        })
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| base.join(h).ok())
        .unwrap_or_else(|| base.clone());
    let mut seen = std::collections::HashSet::new();
    let mut push = |info: &mut PageInfo, raw: &str, default: LinkKind, text: String| {
        if info.links.len() >= max_links {
            return;
        }
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        // `get`, not `[..7]`: byte 7 may fall inside a multi-byte character.
        if raw.len() > 7
            && raw
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        {
            if seen.insert(raw.to_owned()) {
                info.links.push(Link {
                    url: raw.to_owned(),
                    kind: LinkKind::Magnet,
                    text,
                });
            }
            return;
        }
        let Ok(u) = base.join(raw) else { return };
        if !matches!(u.scheme(), "http" | "https") {
            return;
        }
        let kind = match (kind_by_path(&u), default) {
            (Some(k), _) => k,
            (None, d) => d,
        };
        let key = u.to_string();
        if seen.insert(key.clone()) {
            info.links.push(Link {
                url: key,
                kind,
                text,
            });
        }
    };
    // Media elements first: they matter most.
    for (q, attr, kind) in [
        ("video[src]", "src", LinkKind::Media),
        ("video source[src]", "src", LinkKind::Media),
        ("audio source[src]", "src", LinkKind::Media),
        ("source[src]", "src", LinkKind::Media),
        ("[data-src]", "data-src", LinkKind::Media),
        ("[data-hls]", "data-hls", LinkKind::Hls),
        ("iframe[src]", "src", LinkKind::Embed),
        ("link[rel=next][href]", "href", LinkKind::NextPage),
        ("a[rel=next][href]", "href", LinkKind::NextPage),
        ("a[href]", "href", LinkKind::Page),
    ] {
        let Some(s) = sel(q) else { continue };
        for el in doc.select(&s) {
            let Some(v) = el.value().attr(attr) else {
                continue;
            };
            let mut k = kind;
            // Pagination links by their text ("Next", "»", "2", ...).
            if k == LinkKind::Page {
                let t = text_of(&el).to_ascii_lowercase();
                if t == "next" || t == "next page" || t == "»" || t == "›" || t.starts_with("next ")
                {
                    k = LinkKind::NextPage;
                }
            }
            // A `source` inside `video` of an HLS stream.
            if k == LinkKind::Media
                && el.value().attr("type").is_some_and(|t| {
                    t.eq_ignore_ascii_case("application/x-mpegurl")
                        || t.eq_ignore_ascii_case("application/vnd.apple.mpegurl")
                })
            {
                k = LinkKind::Hls;
            }
            push(&mut info, v, k, text_of(&el));
        }
    }
    // Player set-ups in scripts: quoted strings that look like media URLs.
    if let Some(s) = sel("script") {
        for el in doc.select(&s) {
            let code: String = el.text().collect();
            for token in code.split(['"', '\'', '`']) {
                if token.len() > 2048 || token.contains(char::is_whitespace) {
                    continue;
                }
                if let Ok(u) = base.join(token)
                    && let Some(k) = kind_by_path(&u)
                    && (token.contains('/') || token.contains('.'))
                {
                    push(&mut info, token, k, String::new());
                }
            }
        }
    }
    info
}

/// The value of an attribute whose text (after `name=`) starts `h`: quoted with `"` or `'`
/// (up to the closing quote, or the end of the tag), else up to the first whitespace. `None`
/// for an empty value. Works on characters, never on byte offsets (values are arbitrary UTF-8).
fn attr_value(h: &str) -> Option<&str> {
    let v = match h.chars().next()? {
        q @ ('"' | '\'') => {
            let inner = h.strip_prefix(q)?;
            inner.split(q).next().unwrap_or(inner)
        }
        _ => h.split(char::is_whitespace).next().unwrap_or(h),
    };
    let v = v.trim();
    (!v.is_empty()).then_some(v)
}

/// Extracts `<loc>` (sitemaps) and `<link>` (RSS text, Atom `href`) URLs from an XML feed.
pub fn extract_feed(xml: &str, base: &Url, max_links: usize) -> Vec<Link> {
    let mut out = Vec::new();
    let mut rest = xml;
    // Only `split_once` on ASCII delimiters: no byte offset ever lands inside a character.
    while out.len() < max_links {
        let Some((_, after)) = rest.split_once('<') else {
            break;
        };
        rest = after;
        let (tag, body) = rest.split_once('>').unwrap_or((rest, ""));
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let lname = name.rsplit(':').next().unwrap_or(name).to_ascii_lowercase();
        let mut found: Option<String> = None;
        if lname == "loc" || (lname == "link" && !tag.contains("href")) {
            let text = match body.trim_start().strip_prefix("<![CDATA[") {
                Some(cdata) => cdata.split_once("]]>").map(|(t, _)| t),
                None => body.split_once('<').map(|(t, _)| t),
            };
            found = text.map(|t| t.trim().to_owned());
        } else if lname == "link"
            && let Some(h) = tag.split("href=").nth(1)
        {
            found = attr_value(h).map(str::to_owned);
        }
        if let Some(f) = found.filter(|f| !f.is_empty()) {
            let f = f.replace("&amp;", "&");
            if let Ok(u) = base.join(&f)
                && matches!(u.scheme(), "http" | "https")
            {
                let kind = kind_by_path(&u).unwrap_or(LinkKind::Page);
                out.push(Link {
                    url: u.to_string(),
                    kind,
                    text: String::new(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_media_players_magnets_and_pagination() {
        let base = Url::parse("http://pirate.test/movies/page/1").unwrap();
        let html = r#"<html><head><title>Big Buck Bunny (2008) watch</title>
            <link rel="next" href="/movies/page/2"></head><body>
            <h1>Big Buck Bunny</h1>
            <video controls><source src="/s/bbb.m3u8" type="application/x-mpegURL"></video>
            <video src="files/bbb.mp4"></video>
            <iframe src="https://embed.other.test/e/123"></iframe>
            <a href="magnet:?xt=urn:btih:abc&dn=bbb">torrent</a>
            <a href="/about">About</a><a href="/movies/page/2">Next</a>
            <a href="/x.mpd">dash</a>
            <script>var player = {file: "/live/stream.m3u8"};</script>
            <p>unclosed <b>tags <i>everywhere"#;
        let info = extract_html(html, &base, 100);
        assert!(info.heading.contains("Big Buck Bunny (2008)"));
        let has = |u: &str, k: LinkKind| info.links.iter().any(|l| l.url == u && l.kind == k);
        assert!(
            has("http://pirate.test/s/bbb.m3u8", LinkKind::Hls),
            "{:?}",
            info.links
        );
        assert!(has(
            "http://pirate.test/movies/page/files/bbb.mp4",
            LinkKind::Media
        ));
        assert!(has("https://embed.other.test/e/123", LinkKind::Embed));
        assert!(has("magnet:?xt=urn:btih:abc&dn=bbb", LinkKind::Magnet));
        assert!(has("http://pirate.test/movies/page/2", LinkKind::NextPage));
        assert!(has("http://pirate.test/about", LinkKind::Page));
        assert!(has("http://pirate.test/x.mpd", LinkKind::Dash));
        assert!(has("http://pirate.test/live/stream.m3u8", LinkKind::Hls));
        let limited = extract_html(html, &base, 2);
        assert_eq!(limited.links.len(), 2);
    }

    /// Attribute values are arbitrary UTF-8: a value whose 7th byte falls inside a character,
    /// a one-character value, an empty or blank value, none of them may panic.
    #[test]
    fn multibyte_and_empty_attributes() {
        let base = Url::parse("http://pirate.test/movies/").unwrap();
        let html = r#"<html><head><title>电影</title><link rel="next" href=""></head><body>
            <a href="/a电影">film</a> <a href="磁力链接">links</a> <a href="">empty</a>
            <a href="  ">blank</a> <a href="電">one</a> <a href="é">accent</a>
            <video src=""></video> <iframe src="/嵌入/播放器"></iframe>
            <a href="MAGNET:?xt=urn:btih:abc&dn=电影">magnet</a>
            <script>var f = "/视频/电影.mp4"; var g = "é"; var h = "";</script></body></html>"#;
        let info = extract_html(html, &base, 100);
        let abs = |s: &str| Url::parse(s).unwrap().to_string();
        let has = |u: &str, k: LinkKind| info.links.iter().any(|l| l.url == u && l.kind == k);
        assert!(
            has(&abs("http://pirate.test/a电影"), LinkKind::Page),
            "{:?}",
            info.links
        );
        assert!(has(
            &abs("http://pirate.test/movies/磁力链接"),
            LinkKind::Page
        ));
        assert!(has(&abs("http://pirate.test/movies/電"), LinkKind::Page));
        assert!(has(&abs("http://pirate.test/movies/é"), LinkKind::Page));
        assert!(has(&abs("http://pirate.test/嵌入/播放器"), LinkKind::Embed));
        assert!(has("MAGNET:?xt=urn:btih:abc&dn=电影", LinkKind::Magnet));
        assert!(has(
            &abs("http://pirate.test/视频/电影.mp4"),
            LinkKind::Media
        ));
        // Empty and blank values are no links (not the page itself).
        assert!(
            !info.links.iter().any(|l| l.url == base.as_str()),
            "{:?}",
            info.links
        );
        assert_eq!(info.links.len(), 7, "{:?}", info.links);
        assert!(info.heading.contains("电影"));
        // Every prefix of a multi-byte value, cut anywhere: no panic, whatever comes out.
        let value = "/a电影磁力链接é";
        for (i, _) in value.char_indices() {
            let page = format!(
                r#"<a href="{}">x</a><a href="{}">y</a>"#,
                &value[..i],
                &value[i..]
            );
            let _ = extract_html(&page, &base, 10);
        }
    }

    #[test]
    fn feeds_with_multibyte_empty_and_unquoted_values() {
        let base = Url::parse("http://x.test/sitemap.xml").unwrap();
        let xml = r#"<feed><link href=></link><link href=电影/><link href="/b电"/>
            <link href='/c'/><link href=""/><link href="/><loc>/d電影</loc>
            <loc><![CDATA[http://x.test/e?a=1&b=2]]></loc><loc></loc><loc>   </loc>
            <link>é</link><link href=é"#;
        let l = extract_feed(xml, &base, 10);
        let urls: Vec<&str> = l.iter().map(|l| l.url.as_str()).collect();
        let abs = |s: &str| Url::parse(s).unwrap().to_string();
        assert_eq!(
            urls,
            [
                abs("http://x.test/电影/"),
                abs("http://x.test/b电"),
                abs("http://x.test/c"),
                abs("http://x.test/"),
                abs("http://x.test/d電影"),
                abs("http://x.test/e?a=1&b=2"),
                abs("http://x.test/é"),
                abs("http://x.test/é"),
            ]
        );
    }

    #[test]
    fn feeds() {
        let base = Url::parse("http://x.test/sitemap.xml").unwrap();
        let xml = "<urlset><url><loc>http://x.test/a</loc></url><url><loc>/b?x=1&amp;y=2</loc></url></urlset>\
                   <feed><link href=\"http://x.test/c\"/></feed><rss><item><link>http://x.test/d.mp4</link></item></rss>";
        let l = extract_feed(xml, &base, 10);
        let urls: Vec<&str> = l.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://x.test/a",
                "http://x.test/b?x=1&y=2",
                "http://x.test/c",
                "http://x.test/d.mp4"
            ]
        );
        assert_eq!(l[3].kind, LinkKind::Media);
    }
}
