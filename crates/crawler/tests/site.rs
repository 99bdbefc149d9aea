//! The crawler against a hostile loopback pirate site (no detection: captures are hashed and
//! kept, findings need an analyzer and are covered by the store tests): pagination, robots.txt,
//! a crawl trap, a magnet, an HLS player, a direct MP4, SSRF redirects (refused by the injected
//! resolver before any connection), a redirect loop, a gzip bomb, an endless response, a 50 MB
//! page, malformed HTML and a never-ending live playlist. Every connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::JobState;

fn gzip_bomb() -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        e.write_all(&zeros).unwrap(); // 64 MiB of zeros, ~64 KiB compressed
    }
    Bytes::from(e.finish().unwrap())
}

fn handler(bomb: Bytes) -> Arc<Handler> {
    Arc::new(move |pq: &str| -> Response<Body> {
        let path = pq.split('?').next().unwrap_or("");
        match path {
            "/robots.txt" => Response::new(full("User-agent: *\nDisallow: /private/\n")),
            "/movies/page/1" => html(
                r#"<html><head><title>Movies - page 1</title></head><body>
                <a href="/watch/sintel">Cooking show</a> <a href="/private/vault">VIP</a>
                <a href="/about">About us</a> <a href="/movies/page/2">Next</a>
                <a href="/calendar/2026/1">Calendar</a>
                <a href="/hostile/bomb">x</a> <a href="/hostile/endless">y</a>
                <a href="/hostile/big">z</a> <a href="/hostile/malformed">w</a>
                <a href="/hostile/metadata">m</a> <a href="/hostile/private-literal">p</a>
                <a href="/hostile/loop1">l</a></body></html>"#,
            ),
            "/movies/page/2" => html(
                r#"<html><head><title>Movies - page 2</title><link rel="next" href="/movies/page/3"></head>
                <body><a href="/about?utm_source=x">About</a></body></html>"#,
            ),
            "/movies/page/3" => html(
                r#"<html><head><title>Movies - page 3</title></head>
                <body><a href="/watch/bbb">Big Buck Bunny (2008)</a>
                <a href="/watch/live">Big Buck Bunny 2008 LIVE</a></body></html>"#,
            ),
            "/watch/bbb" => html(
                r#"<html><head><title>Watch Big Buck Bunny (2008) online free 1080p</title></head>
                <body><video controls><source src="/hls/bbb/master.m3u8" type="application/x-mpegURL"></video>
                <a href="/dl/Big.Buck.Bunny.2008.720p.mp4">Download</a>
                <a href="magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=Big.Buck.Bunny.2008">Torrent</a>
                </body></html>"#,
            ),
            "/watch/live" => html(
                r#"<html><head><title>Big Buck Bunny (2008) live</title></head>
                <body><video data-hls="/hls/live.m3u8"></video></body></html>"#,
            ),
            "/watch/sintel" => html(
                "<html><head><title>Cooking with herbs</title></head><body><video src=/v/cooking.mp4></video></body></html>",
            ),
            "/about" => {
                html("<html><head><title>About</title></head><body>We love films.</body></html>")
            }
            "/hls/bbb/master.m3u8" => Response::new(full(
                "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/playlist.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhigh/playlist.m3u8\n",
            )),
            "/hls/bbb/high/playlist.m3u8" => Response::new(full(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg_0.m4s\n#EXTINF:2.0,\nseg_1.m4s\n#EXTINF:2.0,\nseg_2.m4s\n#EXT-X-ENDLIST\n",
            )),
            p if p.starts_with("/hls/bbb/high/") => {
                Response::new(full(format!("bytes of {p};").repeat(100)))
            }
            "/hls/live.m3u8" => {
                // A playlist that never ends: a sliding window that keeps advancing.
                use std::sync::atomic::{AtomicU64, Ordering};
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let s = SEQ.fetch_add(3, Ordering::Relaxed);
                let mut t =
                    format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{s}\n");
                for i in s..s + 3 {
                    t.push_str(&format!("#EXTINF:1.0,\nlive_{i}.ts\n"));
                }
                Response::new(full(t))
            }
            p if p.starts_with("/hls/live_") => Response::new(full(vec![0x47u8; 188 * 20])),
            "/dl/Big.Buck.Bunny.2008.720p.mp4" => Response::builder()
                .header("content-type", "video/mp4")
                .body(full(b"\0\0\0\x18ftypisom direct mp4 bytes".repeat(1000)))
                .unwrap(),
            p if p.starts_with("/calendar/") => {
                // A trap: every page links one level deeper, forever.
                let n = p.len();
                html(&format!(
                    r#"<a href="{p}/next">next month</a><a href="/calendar/{n}/{n}/{n}/{n}">other</a>"#
                ))
            }
            "/private/vault" => html("<title>Big Buck Bunny secret</title>"),
            "/hostile/bomb" => Response::builder()
                .header("content-type", "text/html")
                .header("content-encoding", "gzip")
                .body(full(bomb.clone()))
                .unwrap(),
            "/hostile/endless" => Response::builder()
                .header("content-type", "text/html")
                .body(stream(Bytes::from_static(b"<p>more</p>"), None))
                .unwrap(),
            "/hostile/big" => Response::builder()
                .header("content-type", "text/html")
                .body(stream(Bytes::from(vec![b'a'; 64 * 1024]), Some(800))) // 50 MiB
                .unwrap(),
            "/hostile/malformed" => html(
                "<html><<<>>><a href='/about'>ok<a href=\"\0\"><div><table><td></span>&&&&#xFFFFFFFF;<script>\"unterminated",
            ),
            "/hostile/metadata" => redirect("http://metadata.test/latest/meta-data/"),
            "/hostile/private-literal" => redirect("http://10.1.2.3/admin"),
            "/hostile/loop1" => redirect("/hostile/loop2"),
            "/hostile/loop2" => redirect("/hostile/loop1"),
            _ => status(404),
        }
    })
}

fn config(site: &Site, dir: &std::path::Path) -> Config {
    let base = site.base("pirate.test");
    Config::from_toml(&format!(
        r#"
[sources]
seeds = ["{base}/movies/page/1"]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
aliases = ["BBB"]
year = 2008
[politeness]
min_delay_ms = 0
[limits]
max_depth = 4
max_page_bytes = 1048576
request_timeout_secs = 3
max_capture_secs = 4
max_hls_segments = 12
[fetch]
allow_loopback = true
concurrency = 4
backoff_secs = 1
max_attempts = 2
capture_dir = "{}"
"#,
        dir.join("captures").display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pirate_site() {
    let site = serve(handler(gzip_bomb())).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let cfg = Arc::new(config(&site, dir.path()));
    // metadata.test resolves to the cloud metadata address: the guard must refuse it.
    let lookup = lookup(&[
        ("pirate.test", "127.0.0.1"),
        ("metadata.test", "169.254.169.254"),
    ]);
    let c = Crawler::new(store.clone(), cfg, lookup, None, "w1".into()).unwrap();
    assert_eq!(c.seed(1).await.unwrap(), 1);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let t0 = std::time::Instant::now();
    let stats = c.run(rx, true).await.unwrap();
    eprintln!("run 1: {stats:?} in {:?}", t0.elapsed());

    let job = |u: &str| {
        let store = store.clone();
        let u = u.to_owned();
        async move { store.get_job(&u).await.unwrap() }
    };
    let b = site.base("pirate.test");
    // Pagination followed to page 3 and the watch pages found.
    for p in [
        "/movies/page/2",
        "/movies/page/3",
        "/watch/bbb",
        "/watch/live",
        "/about",
    ] {
        assert_eq!(
            job(&format!("{b}{p}")).await.unwrap().state,
            JobState::Done,
            "{p}"
        );
    }
    // Canonicalization: /about?utm_source=x is the same row as /about, fetched once.
    assert_eq!(site.hits("/about"), 1);
    assert_eq!(site.hits("/about?utm_source=x"), 0);
    // robots.txt: the private section was never requested.
    assert_eq!(site.hits_prefix("/private/"), 0);
    let private = job(&format!("{b}/private/vault")).await.unwrap();
    assert!(private.last_error.unwrap().contains("robots.txt"));
    // The trap: bounded by depth and repeated segments.
    let trap_hits = site.hits_prefix("/calendar/");
    assert!(
        (1..=8).contains(&trap_hits),
        "trap fetched {trap_hits} times"
    );
    let skipped = store.jobs_in_state(JobState::Skipped, 1000).await.unwrap();
    assert!(skipped.iter().any(|j| {
        j.url.contains("/calendar/")
            && j.last_error
                .as_deref()
                .unwrap_or("")
                .contains("above max_depth")
            || j.last_error.as_deref().unwrap_or("").contains("repeated")
    }));
    // The magnet is recorded, never fetched.
    let magnet = skipped
        .iter()
        .find(|j| j.url.starts_with("magnet:"))
        .unwrap();
    assert_eq!(magnet.title_hint.as_deref(), Some("bbb"));
    // Unrelated media (no catalogue title) is recorded as skipped, not captured.
    assert_eq!(site.hits("/v/cooking.mp4"), 0);
    // Both leaks captured: the HLS stream (highest variant, init + 3 segments) and the MP4.
    let hls = job(&format!("{b}/hls/bbb/master.m3u8")).await.unwrap();
    assert_eq!(hls.state, JobState::Done);
    assert!(
        hls.last_error.as_deref().unwrap().contains("captured"),
        "{hls:?}"
    );
    assert_eq!(site.hits("/hls/bbb/high/seg_2.m4s"), 1);
    assert_eq!(site.hits_prefix("/hls/bbb/low/"), 0);
    let mp4 = job(&format!("{b}/dl/Big.Buck.Bunny.2008.720p.mp4"))
        .await
        .unwrap();
    assert_eq!(mp4.state, JobState::Done);
    assert_eq!(mp4.title_hint.as_deref(), Some("bbb"));
    // The never-ending playlist: stopped at 12 segments or 4 s.
    let live = job(&format!("{b}/hls/live.m3u8")).await.unwrap();
    assert_eq!(live.state, JobState::Done, "{live:?}");
    assert!(site.hits_prefix("/hls/live_") <= 12);
    // Hostile pages: bounded, no crash.
    for p in ["/hostile/bomb", "/hostile/big", "/hostile/malformed"] {
        let j = job(&format!("{b}{p}")).await.unwrap();
        assert_eq!(j.state, JobState::Done, "{p}: {j:?}");
    }
    assert!(
        job(&format!("{b}/hostile/bomb"))
            .await
            .unwrap()
            .last_error
            .unwrap()
            .contains("truncated")
    );
    assert!(
        job(&format!("{b}/hostile/big"))
            .await
            .unwrap()
            .last_error
            .unwrap()
            .contains("truncated")
    );
    let endless = job(&format!("{b}/hostile/endless")).await.unwrap();
    assert!(
        matches!(endless.state, JobState::Done | JobState::Dead),
        "{endless:?}"
    );
    // SSRF: a redirect to a name resolving to 169.254.169.254 and one to 10.1.2.3 are refused
    // (dead-lettered at once, never retried).
    for p in ["/hostile/metadata", "/hostile/private-literal"] {
        let j = job(&format!("{b}{p}")).await.unwrap();
        assert_eq!(j.state, JobState::Dead, "{p}: {j:?}");
        assert!(j.last_error.as_deref().unwrap().contains("SSRF"), "{j:?}");
    }
    let lp = job(&format!("{b}/hostile/loop1")).await.unwrap();
    assert_eq!(lp.state, JobState::Dead);
    assert!(lp.last_error.unwrap().contains("redirect loop"));

    // Second run: pages are re-read, nothing new is queued, no media is fetched twice.
    let before = store.job_counts().await.unwrap();
    let rows_before = before.done + before.dead + before.skipped;
    assert_eq!(c.seed(2).await.unwrap(), 1);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats2 = c.run(rx, true).await.unwrap();
    eprintln!("run 2: {stats2:?}");
    let after = store.job_counts().await.unwrap();
    assert_eq!(after.done + after.dead + after.skipped, rows_before);
    assert_eq!(site.hits("/movies/page/1"), 2);
    assert_eq!(site.hits("/dl/Big.Buck.Bunny.2008.720p.mp4"), 1);
    store.close().await;
}

#[tokio::test]
async fn redirect_chain_records_each_hop_and_its_status() {
    let site = serve(Arc::new(|pq: &str| match pq {
        "/robots.txt" => status(404),
        "/v.mp4" => Response::builder()
            .status(301)
            .header("location", "/cdn/v.mp4")
            .body(full(""))
            .unwrap(),
        "/cdn/v.mp4" => Response::builder()
            .status(307)
            .header("location", "/edge/v.mp4?t=1")
            .body(full(""))
            .unwrap(),
        "/edge/v.mp4?t=1" => Response::builder()
            .header("content-type", "video/mp4")
            .body(full("mp4"))
            .unwrap(),
        _ => status(404),
    }))
    .await;
    let cfg = Config::from_toml("[politeness]\nmin_delay_ms = 0\n[fetch]\nallow_loopback = true\n")
        .unwrap();
    let f = leaktrace_crawler::fetch::Fetcher::new(Arc::new(cfg), lookup(&[])).unwrap();
    let b = site.base("127.0.0.1");
    let o = f
        .open(&url::Url::parse(&format!("{b}/v.mp4")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        o.meta.chain,
        [
            format!("{b}/v.mp4"),
            format!("{b}/cdn/v.mp4"),
            format!("{b}/edge/v.mp4?t=1")
        ]
    );
    assert_eq!(o.meta.statuses, [301, 307, 200]);
    assert_eq!(o.meta.final_url.path(), "/edge/v.mp4");
}
