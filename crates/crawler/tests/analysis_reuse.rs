//! When an earlier analysis is reused: only for the same bytes analysed for the same title
//! with the same inputs (reference, key version), and never when it failed. A recording
//! analyzer stands in for detection. Every connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Analysis, Analyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::{Crawler, RunStats};
use leaktrace_store::{FindingVerdict, JobState, Store};

/// Records what it was asked to analyse; the first `fail_first` calls fail; `inputs` stands
/// for the reference and key version in use.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<(PathBuf, String)>>,
    fail_first: AtomicU32,
    inputs: Mutex<String>,
    /// Answer "not a copy of the title" (detection's no match) instead of no accusation.
    no_match: bool,
}

impl Analyzer for Recording {
    fn inputs(&self, _title_id: &str) -> Result<String, CrawlError> {
        Ok(self.inputs.lock().unwrap().clone())
    }

    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError> {
        self.calls
            .lock()
            .unwrap()
            .push((capture.to_path_buf(), title_id.to_owned()));
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(CrawlError::Detect("reference index not readable".into()));
        }
        Ok(Analysis {
            verdict: if self.no_match {
                FindingVerdict::NoMatch
            } else {
                FindingVerdict::NoAccusation
            },
            accused: Vec::new(),
            report: serde_json::json!({ "title": title_id }),
        })
    }
}

fn mp4() -> Bytes {
    let mut c = b"\0\0\0\x18ftypisom\0\0\x02\0isomavc1".to_vec();
    c.resize(8192, 0xAB);
    Bytes::from(c)
}

/// Two links to the same bytes, one named for each of two titles.
fn site() -> Arc<Handler> {
    Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/robots.txt" => status(404),
            "/movies" => html(
                r#"<html><head><title>Movies</title></head><body>
                <a href="/v/one.mp4">Big Buck Bunny</a>
                <a href="/v/two.mp4">Sintel</a></body></html>"#,
            ),
            "/watch" => html(
                r#"<html><head><title>Movies</title></head><body>
                <a href="/v/one.mp4">Big Buck Bunny</a></body></html>"#,
            ),
            "/mirror" => html(
                r#"<html><head><title>Movies</title></head><body>
                <a href="/v/mirror.mp4">Big Buck Bunny</a></body></html>"#,
            ),
            "/rekeyed" => html(
                r#"<html><head><title>Movies</title></head><body>
                <a href="/v/rekeyed.mp4">Big Buck Bunny</a></body></html>"#,
            ),
            "/v/one.mp4" | "/v/two.mp4" | "/v/mirror.mp4" | "/v/rekeyed.mp4" => Response::builder()
                .header("content-type", "video/mp4")
                .body(full(mp4()))
                .unwrap(),
            _ => status(404),
        }
    })
}

fn config(seed: &str, dir: &Path) -> Arc<Config> {
    Arc::new(
        Config::from_toml(&format!(
            r#"
[sources]
seeds = ["{seed}"]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
[[catalogue]]
title_id = "sintel"
names = ["Sintel"]
[politeness]
min_delay_ms = 0
[fetch]
allow_loopback = true
concurrency = 1
backoff_secs = 1
capture_dir = "{}"
"#,
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

/// One crawl run from the `/movies` page (two links to the same bytes) with `analyzer`; the
/// store and its folder stay open for the checks.
async fn crawl_movies(analyzer: Arc<Recording>) -> (tempfile::TempDir, Store, RunStats) {
    let site = serve(site()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let c = Crawler::new(
        store.clone(),
        config(&format!("{b}/movies"), dir.path()),
        lookup(&[]),
        Some(analyzer),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats = c.run(rx, true).await.unwrap();
    (dir, store, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_under_two_titles_are_analysed_for_each_title() {
    let analyzer = Arc::new(Recording::default());
    let (_dir, store, stats) = crawl_movies(analyzer.clone()).await;
    assert_eq!(stats.findings, 2, "{stats:?}");
    let mut titles: Vec<String> = analyzer
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    titles.sort();
    assert_eq!(titles, ["bbb", "sintel"], "one analysis per title");
    let findings = store.findings_list(None, 10).await.unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0].record.sha256, findings[1].record.sha256);
    for f in &findings {
        let report: serde_json::Value = serde_json::from_str(&f.record.report).unwrap();
        assert_eq!(
            report["title"].as_str(),
            f.record.title_id.as_deref(),
            "each finding carries the analysis of its own title: {report}"
        );
    }
    store.close().await;
}

/// A capture detection finds is not its title (another film) is a finding with the verdict
/// `no match`: the crawl goes on, every job ends done, and no one is accused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_that_is_not_the_title_is_recorded_as_no_match() {
    let analyzer = Arc::new(Recording {
        no_match: true,
        ..Recording::default()
    });
    let (_dir, store, stats) = crawl_movies(analyzer).await;
    assert_eq!(stats.findings, 2, "{stats:?}");
    let findings = store.findings_list(None, 10).await.unwrap();
    assert_eq!(findings.len(), 2);
    for f in &findings {
        assert_eq!(f.record.verdict, FindingVerdict::NoMatch);
        assert_eq!(f.record.accused, "[]");
    }
    assert_eq!(store.job_counts().await.unwrap().pending(), 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_analysis_is_attempted_again_not_reused() {
    let site = serve(site()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let analyzer = Arc::new(Recording {
        fail_first: AtomicU32::new(1),
        ..Recording::default()
    });
    let c = Crawler::new(
        store.clone(),
        config(&format!("{b}/watch"), dir.path()),
        lookup(&[]),
        Some(analyzer.clone()),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    // The failed job waits for its backoff (1 s); a later run takes it.
    let (_tx, rx) = tokio::sync::watch::channel(false);
    for _ in 0..10 {
        c.run(rx.clone(), true).await.unwrap();
        if store.job_counts().await.unwrap().pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = analyzer.calls.lock().unwrap().len();
    assert_eq!(calls, 2, "the failed analysis was not attempted again");
    let media = store
        .get_job(&format!("{b}/v/one.mp4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (media.state, media.attempts),
        (JobState::Done, 2),
        "{media:?}"
    );
    let findings = store.findings_list(None, 10).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].record.verdict, FindingVerdict::NoAccusation);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_is_reused_only_with_the_same_inputs() {
    let site = serve(site()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let analyzer = Arc::new(Recording::default());
    let crawl = |page: &str, inputs: &str, generation: i64| {
        *analyzer.inputs.lock().unwrap() = inputs.to_owned();
        let c = Crawler::new(
            store.clone(),
            config(&format!("{b}{page}"), dir.path()),
            lookup(&[]),
            Some(analyzer.clone()),
            "w1".into(),
        )
        .unwrap();
        async move {
            c.seed(generation).await.unwrap();
            let (_tx, rx) = tokio::sync::watch::channel(false);
            c.run(rx, true).await.unwrap()
        }
    };
    let calls = || analyzer.calls.lock().unwrap().len();
    crawl("/watch", "key v1, reference r1", 1).await;
    assert_eq!(calls(), 1);
    // The same bytes at another location, same title and inputs: the analysis is reused.
    crawl("/mirror", "key v1, reference r1", 2).await;
    assert_eq!(
        calls(),
        1,
        "the same bytes, title and inputs were analysed again"
    );
    // The same bytes and title under another key version: analysed again.
    crawl("/rekeyed", "key v2, reference r1", 3).await;
    assert_eq!(calls(), 2, "an analysis with other inputs was reused");
    let findings = store.findings_list(None, 10).await.unwrap();
    assert_eq!(findings.len(), 3);
    for f in &findings {
        let report: serde_json::Value = serde_json::from_str(&f.record.report).unwrap();
        let want = if f.record.media_url.ends_with("/v/rekeyed.mp4") {
            "key v2, reference r1"
        } else {
            "key v1, reference r1"
        };
        assert_eq!(report["analysis_inputs"], want, "{report}");
    }
    store.close().await;
}
