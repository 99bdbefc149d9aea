//! Crawl budgets: a run ends by itself on any site. An endless "next" chain (each page links
//! `?page=N+1` with a fresh session id, so no two URLs are alike) stops at `max_pagination`;
//! a host with more pages than `max_pages_per_host` stops there while other hosts go on; a
//! run stops queueing at `max_pages_per_run`. What a budget leaves out is recorded as skipped
//! with the budget as the reason, and a later run with a larger budget reaches it. Every
//! connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::Response;
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::{Crawler, RunStats};
use leaktrace_store::{Job, JobState, Store};

async fn store(dir: &Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("s.sqlite").display()))
        .await
        .unwrap()
}

fn config(seeds: &[String], limits: &str) -> Arc<Config> {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    Arc::new(
        Config::from_toml(&format!(
            "[sources]\nseeds = [{}]\n[politeness]\nmin_delay_ms = 0\n[limits]\n{limits}\n\
             [fetch]\nallow_loopback = true\nconcurrency = 4\n",
            seeds.join(", ")
        ))
        .unwrap(),
    )
}

/// Seeds run `generation` and crawls until idle; fails if that takes longer than `within`.
async fn crawl(store: &Store, cfg: Arc<Config>, generation: i64, within: Duration) -> RunStats {
    let c = Crawler::new(store.clone(), cfg, lookup(&[]), None, "w1".into()).unwrap();
    c.seed(generation).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(within, c.run(rx, true))
        .await
        .unwrap_or_else(|_| panic!("the crawl run did not end by itself within {within:?}"))
        .unwrap()
}

async fn skipped(store: &Store) -> Vec<Job> {
    store
        .jobs_in_state(JobState::Skipped, 10_000)
        .await
        .unwrap()
}

/// Skipped rows whose reason is a crawl budget (other rows are skipped for depth).
async fn over_budget(store: &Store) -> Vec<Job> {
    let mut s = skipped(store).await;
    s.retain(|j| {
        j.last_error
            .as_deref()
            .is_some_and(|e| e.contains("crawl budget"))
    });
    s
}

/// A listing whose "Next" link never ends: page N links page N+1 with a new session id each
/// time it is served.
async fn endless_listing() -> Site {
    static SESSION: AtomicU64 = AtomicU64::new(0);
    serve(Arc::new(|pq: &str| -> Response<Body> {
        if !pq.starts_with("/list") {
            return status(404);
        }
        let page: u64 = pq
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let session = SESSION
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        html(&format!(
            r#"<html><head><title>Archive page {page}</title></head><body>
            <p>Entries of page {page}</p>
            <a href="/list?page={}&amp;session={session:x}">Next</a></body></html>"#,
            page + 1
        ))
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_next_chain_ends_at_the_default_max_pagination() {
    let site = endless_listing().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    // Default limits: max_pagination = 50.
    let stats = crawl(
        &store,
        config(&[format!("{b}/list")], ""),
        1,
        Duration::from_secs(30),
    )
    .await;
    eprintln!("{stats:?}");
    // The seed and 50 pages along the chain, then nothing more.
    assert_eq!(site.hits_prefix("/list"), 51);
    assert_eq!(stats.done, 51);
    let s = skipped(&store).await;
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].url.contains("page=51&"), "{:?}", s[0]);
    let why = s[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("max_pagination (50)") && why.contains("page 51"),
        "{why}"
    );
    assert_eq!(store.job_counts().await.unwrap().pending(), 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_max_pagination_stops_the_chain_sooner() {
    let site = endless_listing().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    crawl(
        &store,
        config(&[format!("{b}/list")], "max_pagination = 3"),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(site.hits_prefix("/list"), 4);
    let s = skipped(&store).await;
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(
        s[0].last_error
            .as_deref()
            .unwrap()
            .contains("max_pagination (3)")
    );
    store.close().await;
}

/// Every page `/n/K` links eight pages `/n/8K+1` … `/n/8K+8` (the root links `/n/1` … `/n/8`).
async fn big_site() -> Site {
    serve(Arc::new(|pq: &str| -> Response<Body> {
        let k: Option<u64> = if pq == "/" {
            Some(0)
        } else {
            pq.strip_prefix("/n/").and_then(|n| n.parse().ok())
        };
        let Some(k) = k else { return status(404) };
        let links: String = (1..=8)
            .map(|j| format!(r#"<a href="/n/{}">page</a> "#, 8 * k + j))
            .collect();
        html(&format!(
            "<html><head><title>Page {k}</title></head><body>{links}</body></html>"
        ))
    }))
    .await
}

/// Three pages linked from the root.
async fn small_site() -> Site {
    serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/" => html(r#"<a href="/s/1">1</a> <a href="/s/2">2</a> <a href="/s/3">3</a>"#),
            "/s/1" | "/s/2" | "/s/3" => html("<title>leaf</title>"),
            _ => status(404),
        }
    }))
    .await
}

fn page_hits(site: &Site) -> u32 {
    site.hits_prefix("/") - site.hits("/robots.txt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_host_budget_stops_a_big_host_and_a_later_run_with_more_reaches_the_rest() {
    let big = big_site().await;
    let small = small_site().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let (bb, sb) = (big.base("127.0.0.1"), small.base("127.0.0.1"));
    let seeds = [format!("{bb}/"), format!("{sb}/")];
    // The big site has 8 + 64 pages within depth 2; 10 may be queued per host.
    let stats = crawl(
        &store,
        config(&seeds, "max_depth = 2\nmax_pages_per_host = 10"),
        1,
        Duration::from_secs(60),
    )
    .await;
    eprintln!("run 1: {stats:?}");
    assert_eq!(page_hits(&big), 1 + 10);
    // The other host is not held back by the big one.
    assert_eq!(page_hits(&small), 1 + 3);
    let over = over_budget(&store).await;
    let host = bb.trim_start_matches("http://");
    assert!(!over.is_empty());
    for j in &over {
        assert!(j.url.starts_with(&bb), "{j:?}");
        let why = j.last_error.as_deref().unwrap();
        assert!(
            why.contains("max_pages_per_host (10)") && why.contains(host),
            "{why}"
        );
    }
    assert!(!skipped(&store).await.iter().any(|j| j.url.starts_with(&sb)));
    assert_eq!(stats.done, 1 + 10 + 1 + 3);

    // A later run with a larger budget queues what the first one left out.
    let left_out = over[0].url.clone();
    let stats = crawl(
        &store,
        config(&seeds, "max_depth = 2\nmax_pages_per_host = 100"),
        2,
        Duration::from_secs(60),
    )
    .await;
    eprintln!("run 2: {stats:?}");
    let j = store.get_job(&left_out).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Done, "{j:?}");
    assert!(over_budget(&store).await.is_empty());
    assert_eq!(store.job_counts().await.unwrap().done, 1 + 72 + 1 + 3);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_run_budget_stops_queueing_across_hosts() {
    let big = big_site().await;
    let small = small_site().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let seeds = [
        format!("{}/", big.base("127.0.0.1")),
        format!("{}/", small.base("127.0.0.1")),
    ];
    let stats = crawl(
        &store,
        config(&seeds, "max_depth = 2\nmax_pages_per_run = 5"),
        1,
        Duration::from_secs(60),
    )
    .await;
    eprintln!("{stats:?}");
    // Two seeds, then five pages queued in all.
    assert_eq!(page_hits(&big) + page_hits(&small), 2 + 5);
    assert_eq!(stats.done, 2 + 5);
    let s = skipped(&store).await;
    assert!(!s.is_empty());
    assert_eq!(over_budget(&store).await.len(), s.len());
    assert!(s.iter().all(|j| {
        j.last_error
            .as_deref()
            .unwrap()
            .contains("max_pages_per_run (5)")
    }));
    store.close().await;
}
