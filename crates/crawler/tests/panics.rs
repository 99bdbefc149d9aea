//! One URL never stops a crawl run: pages whose links are multi-byte or empty (which used to
//! panic in extraction), and a detector that panics, cost at most their own job; the run ends
//! normally and every other page is processed. Every connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::Path;
use std::sync::Arc;

use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Analysis, Analyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{JobState, Store};

fn config(seeds: &[String], dir: &Path) -> Arc<Config> {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    Arc::new(
        Config::from_toml(&format!(
            r#"
[sources]
seeds = [{}]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
year = 2008
[politeness]
min_delay_ms = 0
[limits]
request_timeout_secs = 5
[fetch]
allow_loopback = true
concurrency = 4
max_attempts = 3
backoff_secs = 1
capture_dir = "{}"
"#,
            seeds.join(", "),
            dir.join("captures").display()
        ))
        .unwrap(),
    )
}

async fn store(dir: &Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("s.sqlite").display()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_with_multibyte_and_empty_links_do_not_stop_the_run() {
    let site = serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/" => html(
                r#"<html><head><title>电影 index</title><link rel="next" href=""></head><body>
                <a href="/a电影">film</a> <a href="磁力链接">links</a> <a href="">empty</a>
                <a href="é">accent</a> <video src=""></video>
                <a href="/ok/1">one</a> <a href="/ok/2">two</a></body></html>"#,
            ),
            "/feed.xml" => Response::builder()
                .header("content-type", "application/rss+xml")
                .body(full(
                    "<rss><channel><link href=></link><link href=电影/>\
                     <item><link>/ok/3</link></item></channel></rss>",
                ))
                .unwrap(),
            p if p.starts_with("/ok/") || p.starts_with("/a%") || p.starts_with("/%") => {
                html("<html><head><title>leaf</title></head><body>leaf</body></html>")
            }
            _ => status(404),
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let cfg = config(&[format!("{b}/"), format!("{b}/feed.xml")], dir.path());
    let c = Crawler::new(store.clone(), cfg, lookup(&[]), None, "w1".into()).unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats = c
        .run(rx, true)
        .await
        .expect("the run ends normally whatever one page holds");
    eprintln!("{stats:?}");
    let state = |u: String| {
        let store = store.clone();
        async move {
            store
                .get_job(&u)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{u} not in the frontier"))
                .state
        }
    };
    for p in [
        "/",
        "/feed.xml",
        "/ok/1",
        "/ok/2",
        "/ok/3",
        "/a%E7%94%B5%E5%BD%B1",
        "/%E7%A3%81%E5%8A%9B%E9%93%BE%E6%8E%A5",
        "/%C3%A9",
        "/%E7%94%B5%E5%BD%B1/",
    ] {
        assert_eq!(state(format!("{b}{p}")).await, JobState::Done, "{p}");
    }
    assert_eq!(stats.dead, 0);
    assert_eq!(site.hits("/ok/1"), 1);
    store.close().await;
}

/// A detector that panics on whatever it is given.
struct Exploding;

impl Analyzer for Exploding {
    fn analyze(&self, _capture: &Path, _title_id: &str) -> Result<Analysis, CrawlError> {
        panic!("detector exploded")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_processing_a_job_costs_that_job_not_the_run() {
    let site = serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/watch" => html(
                r#"<html><head><title>Big Buck Bunny (2008)</title></head><body>
                <video src="/v/bbb.mp4"></video> <a href="/about">About</a></body></html>"#,
            ),
            "/about" => html("<html><head><title>About</title></head></html>"),
            "/v/bbb.mp4" => Response::builder()
                .header("content-type", "video/mp4")
                .body(full(b"\0\0\0\x18ftypisom leaked bytes".repeat(100)))
                .unwrap(),
            _ => status(404),
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let cfg = config(&[format!("{b}/watch")], dir.path());
    let c = Crawler::new(
        store.clone(),
        cfg,
        lookup(&[]),
        Some(Arc::new(Exploding)),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats = c
        .run(rx, true)
        .await
        .expect("a panicking job does not fail the run");
    eprintln!("{stats:?}");
    let media = store
        .get_job(&format!("{b}/v/bbb.mp4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(media.state, JobState::Dead, "{media:?}");
    assert_eq!(
        media.last_error.as_deref(),
        Some("panicked while processing: detector exploded")
    );
    // Dead at once: a panic is not retried.
    assert_eq!(site.hits("/v/bbb.mp4"), 1);
    let about = store.get_job(&format!("{b}/about")).await.unwrap().unwrap();
    assert_eq!(about.state, JobState::Done);
    assert_eq!((stats.done, stats.dead, stats.findings), (2, 1, 0));
    store.close().await;
}
