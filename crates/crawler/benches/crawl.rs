//! Crawler benches, measured in one run each and printed (no criterion: the
//! figures are a rate over thousands of pages and the process's peak RSS, which a
//! fresh process per measurement keeps clean).
//!
//! - `throughput`: a generated site of linked HTML pages served by hyper on 127.0.0.1; the
//!   real crawler (real SQLite store file, robots.txt on, politeness off: `min_delay_ms = 0`)
//!   crawls it from one seed until nothing is left; prints pages/s (target >= 500).
//! - `frontier`: 100 000 URLs queued in the store's frontier, then the crawler processes a
//!   part of them; prints the process's peak RSS (`VmHWM`, target <= 200 MB).
//!
//! ```text
//! cargo bench -p leaktrace-crawler --bench crawl                      # both, one process each
//! cargo bench -p leaktrace-crawler --bench crawl -- throughput [pages] [concurrency]
//! cargo bench -p leaktrace-crawler --bench crawl -- frontier [urls] [crawled] [concurrency]
//! ```
//!
//! The server runs in the same process and on the same 2 tokio worker threads as the
//! crawler, so both figures include the server's share (pessimistic for the crawler).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_testkit::site::*;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaktrace_crawler::config::Config;
use leaktrace_crawler::net::Lookup;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{JobKind, NewJob, Store};

/// Children per page in the generated site (a tree, plus cross-links the frontier dedups).
const FANOUT: usize = 8;

/// Page `i` of an `n`-page site: ~4 KB of HTML with its children, its parent and two
/// cross-links, like a listing page of a real site.
fn page(i: usize, n: usize) -> String {
    let mut s = format!(
        "<!doctype html><html><head><title>Catalogue page {i}</title>\
         <meta charset=utf-8><link rel=stylesheet href=/s.css></head><body>\
         <nav><a href=/p/0>Home</a> <a href=/p/{}>Up</a></nav><h1>Listing {i}</h1><ul>",
        i / FANOUT
    );
    for c in (i * FANOUT + 1..=i * FANOUT + FANOUT).filter(|c| *c < n) {
        let _ = write!(
            s,
            "<li><a href=\"/p/{c}\">Item {c}: a film of the week</a> \
             <span class=meta>added {c} days ago, 1080p, 2 h 11 min</span></li>"
        );
    }
    let _ = write!(
        s,
        "</ul><aside><a href=/p/{}>related</a> <a href=/p/{}?utm_source=x>popular</a></aside>",
        (i * 7919 + 13) % n,
        (i * 104_729 + 7) % n
    );
    for _ in 0..12 {
        s.push_str(
            "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
             tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
             nostrud exercitation ullamco laboris.</p>",
        );
    }
    s.push_str("</body></html>");
    s
}

fn site_handler(n: usize) -> Arc<Handler> {
    Arc::new(move |pq: &str| {
        let path = pq.split('?').next().unwrap_or("");
        if path == "/robots.txt" {
            return hyper::Response::new(full("User-agent: *\nDisallow: /private/\n"));
        }
        match path
            .strip_prefix("/p/")
            .and_then(|x| x.parse::<usize>().ok())
        {
            Some(i) if i < n => html(&page(i, n)),
            _ => status(404),
        }
    })
}

fn config(seed: &str, concurrency: usize) -> Arc<Config> {
    Arc::new(
        Config::from_toml(&format!(
            r#"
[sources]
seeds = ["{seed}"]
[politeness]
min_delay_ms = 0
respect_robots = true
[limits]
max_depth = 30
[fetch]
allow_loopback = true
concurrency = {concurrency}
"#
        ))
        .unwrap(),
    )
}

fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    // The CLI's runtime: 2 worker threads.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open_store(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("bench.sqlite").display()))
        .await
        .unwrap()
}

fn throughput(pages: usize, concurrency: usize) {
    runtime().block_on(async {
        let site = serve(site_handler(pages)).await;
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).await;
        let cfg = config(&format!("{}/p/0", site.base("127.0.0.1")), concurrency);
        let c = Crawler::new(
            store.clone(),
            cfg,
            Lookup::Static(Default::default()),
            None,
            "bench".into(),
        )
        .unwrap();
        c.seed(1).await.unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let load0 = loadavg();
        let t0 = Instant::now();
        let stats = c.run(rx, true).await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts.done, pages as u64, "every page crawled: {counts:?}");
        assert_eq!(stats.dead + stats.retried, 0, "{stats:?}");
        let fetched = site.hits_prefix("/p/");
        println!(
            "crawl throughput: {pages} pages ({fetched} page requests, {} B each on average) \
             in {secs:.2} s with concurrency {concurrency}: {:.0} pages/s (target >= 500); \
             loadavg before {load0}, after {}; VmHWM {}",
            (0..pages.min(1000))
                .map(|i| page(i, pages).len())
                .sum::<usize>()
                / pages.min(1000),
            pages as f64 / secs,
            loadavg(),
            proc_status("VmHWM:")
        );
        store.close().await;
    });
}

fn frontier(urls: usize, crawled: u64, concurrency: usize) {
    runtime().block_on(async {
        let site = serve(site_handler(urls)).await;
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).await;
        let base = site.base("127.0.0.1");
        let t0 = Instant::now();
        for chunk in (0..urls).collect::<Vec<_>>().chunks(5000) {
            let jobs: Vec<NewJob> = chunk
                .iter()
                .map(|i| NewJob {
                    url: format!("{base}/p/{i}"),
                    kind: JobKind::Page,
                    depth: 0,
                    referrer: None,
                    title_hint: None,
                })
                .collect();
            store.enqueue_jobs(&jobs, 1).await.unwrap();
        }
        let enqueue_s = t0.elapsed().as_secs_f64();
        let hwm_after_enqueue = proc_status("VmHWM:");
        let cfg = config(&format!("{base}/p/0"), concurrency);
        let c = Crawler::new(store.clone(), cfg, Lookup::Static(Default::default()), None, "bench".into()).unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let s2 = store.clone();
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if s2.job_counts().await.unwrap().done >= crawled {
                    let _ = tx.send(true);
                    return;
                }
            }
        });
        let t1 = Instant::now();
        let stats = c.run(rx, false).await.unwrap();
        let crawl_s = t1.elapsed().as_secs_f64();
        watcher.await.unwrap();
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts.done + counts.pending(), urls as u64, "{counts:?}");
        println!(
            "crawl frontier: {urls} URLs queued in {enqueue_s:.1} s (VmHWM then {hwm_after_enqueue}); \
             {} pages crawled in {crawl_s:.1} s ({:.0} pages/s, {} still queued), concurrency \
             {concurrency}; peak RSS VmHWM {} (target <= 200 MB), VmRSS now {}; loadavg {}",
            stats.done,
            stats.done as f64 / crawl_s,
            counts.queued,
            proc_status("VmHWM:"),
            proc_status("VmRSS:"),
            loadavg()
        );
        store.close().await;
    });
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; anything starting with `-` is not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(arg(&args, 1, 5000), arg(&args, 2, 32)),
        Some("frontier") => frontier(
            arg(&args, 1, 100_000),
            arg(&args, 2, 10_000),
            arg(&args, 3, 32),
        ),
        Some(other) => {
            eprintln!("unknown bench `{other}` (throughput or frontier)");
            std::process::exit(2);
        }
        None => {
            // Each measurement in a fresh process, so each VmHWM is its own.
            let exe = std::env::current_exe().unwrap();
            for mode in ["throughput", "frontier"] {
                let st = std::process::Command::new(&exe).arg(mode).status().unwrap();
                assert!(st.success(), "{mode} failed");
            }
        }
    }
}
