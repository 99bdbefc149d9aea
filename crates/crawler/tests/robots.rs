//! robots.txt through the crawler's own fetcher (RFC 9309; cases modelled on Google's
//! robotstxt test suite): each case serves a robots.txt on a loopback site and asks the
//! fetcher. Plus the HTTP side (4xx → allow all, 5xx/429/unreachable → disallow all,
//! redirects followed), and pacing on a loopback site: Crawl-delay and 429 + Retry-After,
//! asserted on the times the server saw the requests (lower bounds only); robots.txt cache
//! expiry. ~5 s in all.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use leaktrace_crawler::config::Config;
use leaktrace_crawler::fetch::{Fetcher, product_token};
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{JobState, Store};
use url::Url;

/// The crawler's User-Agent in these tests: product token `FooBot`.
const UA: &str = "FooBot/2.1 (+https://bot.example/about)";

fn cfg(extra: &str) -> Arc<Config> {
    Arc::new(
        Config::from_toml(&format!(
            "[politeness]\nmin_delay_ms = 0\nuser_agent = \"{UA}\"\n[fetch]\nallow_loopback = true\n{extra}"
        ))
        .unwrap(),
    )
}

/// A site answering `/robots.txt` with `robots` (status 200) and every other path with 200.
async fn robots_site(robots: &'static str) -> Site {
    serve(Arc::new(move |pq: &str| {
        if pq == "/robots.txt" {
            Response::new(full(robots))
        } else {
            html("<html></html>")
        }
    }))
    .await
}

/// For each `(path, allowed)`, what the fetcher says about `path` on a site serving `robots`.
async fn check(robots: &'static str, cases: &[(&str, bool)]) {
    let site = robots_site(robots).await;
    let f = Fetcher::new(cfg(""), lookup(&[])).unwrap();
    let base = site.base("127.0.0.1");
    for (path, want) in cases {
        let u = Url::parse(&format!("{base}{path}")).unwrap();
        let (got, _) = f.robots_allows(&u).await.unwrap();
        assert_eq!(got, *want, "{path} with robots.txt:\n{robots}");
    }
    // Fetched once and cached per origin.
    assert_eq!(site.hits("/robots.txt"), 1);
}

#[test]
fn product_token_is_the_leading_name() {
    assert_eq!(product_token(UA), "FooBot");
    assert_eq!(
        product_token("leaktrace-crawler/0.1.0"),
        "leaktrace-crawler"
    );
    assert_eq!(product_token("my_bot"), "my_bot");
    assert_eq!(product_token("/1.0"), "");
}

#[tokio::test]
async fn group_for_our_product_token_applies_case_insensitively() {
    // The group names the product token only; the User-Agent header carries a version.
    check(
        "user-agent: foobot\ndisallow: /\n",
        &[("/", false), ("/x", false)],
    )
    .await;
    // A group for another crawler does not apply.
    check("user-agent: BarBot\ndisallow: /\n", &[("/x", true)]).await;
}

#[tokio::test]
async fn specific_group_wins_over_star_and_star_is_the_fallback() {
    check(
        "user-agent: *\ndisallow: /\n\nuser-agent: FooBot\ndisallow: /private\n",
        &[("/public", true), ("/private/x", false)],
    )
    .await;
    check(
        "user-agent: *\ndisallow: /x\n\nuser-agent: BarBot\ndisallow: /y\n",
        &[("/x/1", false), ("/y/1", true)],
    )
    .await;
}

#[tokio::test]
async fn groups_for_the_same_agent_are_merged_and_agents_can_share_a_group() {
    check(
        "user-agent: FooBot\ndisallow: /a\n\nuser-agent: BarBot\ndisallow: /b\n\n\
         user-agent: FooBot\ndisallow: /c\n",
        &[("/a", false), ("/b", true), ("/c", false)],
    )
    .await;
    check(
        "user-agent: BarBot\nuser-agent: FooBot\nuser-agent: BazBot\ndisallow: /shared\n",
        &[("/shared/1", false), ("/other", true)],
    )
    .await;
}

#[tokio::test]
async fn field_names_case_insensitive_paths_case_sensitive() {
    check(
        "USER-AGENT: FooBot\nDISALLOW: /x/\nAllow: /x/ok\n",
        &[("/x/no", false), ("/x/ok", true)],
    )
    .await;
    check(
        "user-agent: FooBot\ndisallow: /X/\n",
        &[("/X/page", false), ("/x/page", true)],
    )
    .await;
}

#[tokio::test]
async fn longest_match_wins_and_allow_wins_a_tie() {
    check(
        "user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n",
        &[("/x/page.html", true), ("/x/other.html", false)],
    )
    .await;
    check(
        "user-agent: FooBot\nallow: /page\ndisallow: /page\n",
        &[("/page", true)],
    )
    .await;
    // A wildcard pattern longer than the allow rule wins.
    check(
        "user-agent: FooBot\nallow: /page\ndisallow: /*.html\n",
        &[("/page.html", false), ("/page", true)],
    )
    .await;
    check(
        "user-agent: FooBot\nallow: /x/page.\ndisallow: /*.html\n",
        &[("/x/page.html", true), ("/y/page.html", false)],
    )
    .await;
}

#[tokio::test]
async fn wildcards_and_end_anchor() {
    check(
        "user-agent: FooBot\nallow: /$\ndisallow: /\n",
        &[("/", true), ("/page.html", false)],
    )
    .await;
    check(
        "user-agent: FooBot\ndisallow: /foo/bar$\n",
        &[
            ("/foo/bar", false),
            ("/foo/bar/qux", true),
            ("/foo/barx", true),
        ],
    )
    .await;
    check(
        "user-agent: FooBot\ndisallow: /*.php$\ndisallow: /foo/*/qux\n",
        &[
            ("/index.php", false),
            ("/a/b.php", false),
            ("/index.php?x=1", true),
            ("/foo/bar/qux", false),
            ("/foo/a/b/qux/z", false),
            ("/foo/qux", true),
        ],
    )
    .await;
}

#[tokio::test]
async fn percent_encoding_of_paths() {
    // A non-ASCII rule matches the percent-encoded URL path, and so does the encoded rule.
    check(
        "user-agent: FooBot\ndisallow: /foo/bar/ツ\n",
        &[("/foo/bar/%E3%83%84", false), ("/foo/bar/baz", true)],
    )
    .await;
    check(
        "user-agent: FooBot\ndisallow: /foo/bar/%E3%83%84\n",
        &[("/foo/bar/%E3%83%84", false), ("/foo/bar/ツ", false)],
    )
    .await;
}

#[tokio::test]
async fn empty_disallow_comments_other_lines_bom_and_crlf() {
    check("user-agent: *\ndisallow:\n", &[("/anything", true)]).await;
    // Comments, sitemap and unknown lines do not end a group.
    check(
        "# hello\nuser-agent: FooBot # us\ndisallow: /a # no\nsitemap: http://x.example/s.xml\n\
         foo: bar\ndisallow: /b\n",
        &[("/a", false), ("/b", false), ("/c", true)],
    )
    .await;
    check(
        "\u{feff}user-agent: FooBot\r\ndisallow: /a\r\nallow: /a/b\r\n",
        &[("/a/x", false), ("/a/b", true)],
    )
    .await;
}

#[tokio::test]
async fn crawl_delay_of_our_group() {
    let site =
        robots_site("user-agent: *\ncrawl-delay: 9\n\nuser-agent: FooBot\ncrawl-delay: 2.5\n")
            .await;
    let f = Fetcher::new(cfg(""), lookup(&[])).unwrap();
    let u = Url::parse(&format!("{}/x", site.base("127.0.0.1"))).unwrap();
    assert_eq!(
        f.robots_allows(&u).await.unwrap(),
        (true, Some(Duration::from_millis(2500)))
    );
}

/// What the fetcher concludes about `/x` when `/robots.txt` is answered by `robots`.
async fn http_case(robots: Arc<Handler>) -> (bool, Site) {
    let site = serve(robots).await;
    let f = Fetcher::new(cfg(""), lookup(&[])).unwrap();
    let u = Url::parse(&format!("{}/x", site.base("127.0.0.1"))).unwrap();
    (f.robots_allows(&u).await.unwrap().0, site)
}

#[tokio::test]
async fn robots_http_status_and_redirects() {
    // 4xx: no robots.txt, everything allowed (403 too, as RFC 9309 says "unavailable").
    for code in [404, 403, 410] {
        let (ok, _) = http_case(Arc::new(move |_: &str| status(code))).await;
        assert!(ok, "{code}");
    }
    // 5xx and 429: unreachable, everything disallowed.
    for code in [500, 503, 429] {
        let (ok, _) = http_case(Arc::new(move |_: &str| status(code))).await;
        assert!(!ok, "{code}");
    }
    // Redirects are followed and the target's rules apply.
    let (ok, site) = http_case(Arc::new(|pq: &str| match pq {
        "/robots.txt" => redirect("/r1"),
        "/r1" => redirect("/real-robots.txt"),
        "/real-robots.txt" => Response::new(full("user-agent: *\ndisallow: /x\n")),
        _ => status(404),
    }))
    .await;
    assert!(!ok);
    assert_eq!(site.hits("/real-robots.txt"), 1);
    // A redirect loop or too many hops: unreachable, disallowed (conservative).
    let (ok, _) = http_case(Arc::new(|pq: &str| match pq {
        "/robots.txt" => redirect("/loop"),
        _ => redirect("/robots.txt"),
    }))
    .await;
    assert!(!ok);
    // Nothing listening: disallowed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = Fetcher::new(cfg(""), lookup(&[])).unwrap();
    let u = Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
    assert!(!f.robots_allows(&u).await.unwrap().0);
}

async fn sqlite(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("s.sqlite").display()))
        .await
        .unwrap()
}

fn listing(n: usize) -> String {
    let mut s = String::from("<html><body>");
    for i in 0..n {
        s.push_str(&format!("<a href=\"/p/{i}\">{i}</a>"));
    }
    s + "</body></html>"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_delay_spaces_requests_to_a_host() {
    // Crawl-delay 0.4 s, 4 workers in parallel: the 5 page requests (list + 4 pages) are
    // still spaced. The first page slot is taken after robots.txt arrived, so request k
    // (sorted by arrival) reaches the server at least (k-1) * 0.4 s after robots.txt did.
    let site = serve(Arc::new(|pq: &str| match pq {
        "/robots.txt" => Response::new(full("User-agent: FooBot\nCrawl-delay: 0.4\n")),
        "/list" => html(&listing(4)),
        _ => html("<html>leaf</html>"),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let base = site.base("127.0.0.1");
    let c = Crawler::new(
        store.clone(),
        cfg(&format!(
            "concurrency = 4\n[sources]\nseeds = [\"{base}/list\"]\n"
        )),
        lookup(&[]),
        None,
        "w".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let st = c.run(rx, true).await.unwrap();
    assert_eq!(st.done, 5, "{st:?}");
    let robots = site.times(|p| p == "/robots.txt");
    assert_eq!(robots.len(), 1);
    let mut pages = site.times(|p| p != "/robots.txt");
    pages.sort();
    assert_eq!(pages.len(), 5);
    for (k, t) in pages.iter().enumerate() {
        let since = t.duration_since(robots[0]);
        assert!(
            since >= Duration::from_millis(400) * k as u32,
            "request {k} came {since:?} after robots.txt"
        );
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_the_whole_host_and_the_job_is_retried() {
    // /slow answers 429 with Retry-After: 1 once, then 200. After the 429 no request reaches
    // the host for at least 1 s (neither the retry nor the other pages: never faster on
    // errors); the job is re-queued (not dead) and done once due.
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let site = serve(Arc::new(move |pq: &str| match pq {
        "/robots.txt" => status(404),
        "/list" => html("<a href=/p/1>1</a><a href=/p/2>2</a><a href=/p/3>3</a>"),
        "/slow" if first.swap(false, std::sync::atomic::Ordering::SeqCst) => Response::builder()
            .status(429)
            .header("retry-after", "1")
            .body(full(""))
            .unwrap(),
        _ => html("<html>leaf</html>"),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let base = site.base("127.0.0.1");
    // One job at a time; both seeds are at depth 0, the pages at depth 1, so whichever seed
    // goes first, other requests to the host are due after the 429.
    let c = Crawler::new(
        store.clone(),
        cfg(&format!(
            "concurrency = 1\nbackoff_secs = 1\n[sources]\nseeds = [\"{base}/list\", \"{base}/slow\"]\n"
        )),
        lookup(&[]),
        None,
        "w".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    // A run ends when nothing is due: the throttled row may still be waiting for its
    // not_before then; the next run takes it.
    let (mut done, mut retried, mut dead) = (0, 0, 0);
    for _ in 0..5 {
        let st = c.run(rx.clone(), true).await.unwrap();
        (done, retried, dead) = (done + st.done, retried + st.retried, dead + st.dead);
        if store.job_counts().await.unwrap().pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!((done, retried, dead), (5, 1, 0));
    let job = store
        .get_job(&format!("{base}/slow"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Done, 2), "{job:?}");

    let log = site.log.lock().unwrap().clone();
    let throttled_at = log.iter().find(|(p, _)| p == "/slow").unwrap().1;
    let after: Vec<_> = log.iter().filter(|(_, t)| *t > throttled_at).collect();
    assert!(after.iter().any(|(p, _)| p == "/slow"), "{log:?}");
    assert!(after.iter().any(|(p, _)| p != "/slow"), "{log:?}");
    for (p, t) in after {
        let gap = t.duration_since(throttled_at);
        assert!(
            gap >= Duration::from_secs(1),
            "{p} requested {gap:?} after the 429"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn robots_txt_is_read_again_after_robots_cache_secs() {
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let site = serve(Arc::new(move |pq: &str| {
        if pq != "/robots.txt" {
            return html("");
        }
        match n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Response::new(full("user-agent: *\ndisallow: /x\n")),
            _ => status(404),
        }
    }))
    .await;
    let cfg = Arc::new(
        Config::from_toml(&format!(
            "[politeness]\nmin_delay_ms = 0\nuser_agent = \"{UA}\"\nrobots_cache_secs = 1\n\
             [fetch]\nallow_loopback = true\n"
        ))
        .unwrap(),
    );
    let f = Fetcher::new(cfg, lookup(&[])).unwrap();
    let u = Url::parse(&format!("{}/x", site.base("127.0.0.1"))).unwrap();
    assert!(!f.robots_allows(&u).await.unwrap().0);
    assert!(!f.robots_allows(&u).await.unwrap().0);
    assert_eq!(site.hits("/robots.txt"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(f.robots_allows(&u).await.unwrap().0);
    assert_eq!(site.hits("/robots.txt"), 2);
    assert!(Config::from_toml("[politeness]\nrobots_cache_secs = 0\n").is_err());
    assert!(Config::from_toml("[politeness]\nrobots_cache_secs = 86401\n").is_err());
}
