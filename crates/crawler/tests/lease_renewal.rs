//! A job that runs longer than its lease keeps it: the worker renews the lease while the job
//! runs, so no other worker takes the job and it is processed once. Every connection goes to
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Analysis, Analyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{FindingVerdict, JobState};

/// Takes longer than the lease (the job must outlast it); counts its calls.
#[derive(Default)]
struct Slow {
    calls: AtomicU32,
}

impl Analyzer for Slow {
    fn analyze(&self, _capture: &Path, _title_id: &str) -> Result<Analysis, CrawlError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(10));
        Ok(Analysis {
            verdict: FindingVerdict::NoAccusation,
            accused: Vec::new(),
            report: serde_json::json!({}),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_its_lease_is_renewed_and_processed_once() {
    let site = serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/robots.txt" => status(404),
            "/big-buck-bunny.mp4" => {
                let mut c = b"\0\0\0\x18ftypisom\0\0\x02\0isomavc1".to_vec();
                c.resize(8192, 0xAB);
                Response::builder()
                    .header("content-type", "video/mp4")
                    .body(full(Bytes::from(c)))
                    .unwrap()
            }
            _ => status(404),
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let mut cfg = Config::from_toml(&format!(
        r#"
[sources]
seeds = ["{b}/big-buck-bunny.mp4"]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
[politeness]
min_delay_ms = 0
[fetch]
allow_loopback = true
capture_dir = "{}"
"#,
        dir.path().join("captures").display()
    ))
    .unwrap();
    // A lease much shorter than the job (the analysis alone takes 10 s), renewed every
    // third of it: a renewal may come up to 2.7 s late on a loaded host before the lease
    // lapses (with 2 s, 1.3 s).
    cfg.fetch.lease_secs = 4;
    let cfg = Arc::new(cfg);
    let analyzer = Arc::new(Slow::default());
    let worker = |name: &str| {
        Crawler::new(
            store.clone(),
            cfg.clone(),
            lookup(&[]),
            Some(analyzer.clone()),
            name.into(),
        )
        .unwrap()
    };
    let (w1, w2) = (worker("w1"), worker("w2"));
    w1.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let both = async { tokio::join!(w1.run(rx.clone(), true), w2.run(rx.clone(), true)) };
    let (s1, s2) = tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .expect("the two workers did not finish within 60 s");
    let (s1, s2) = (s1.unwrap(), s2.unwrap());
    assert_eq!(
        analyzer.calls.load(Ordering::SeqCst),
        1,
        "the job was taken by a second worker: {s1:?} {s2:?}"
    );
    assert_eq!(s1.done + s2.done, 1, "{s1:?} {s2:?}");
    assert_eq!(s1.lost_leases + s2.lost_leases, 0, "{s1:?} {s2:?}");
    let job = store
        .get_job(&format!("{b}/big-buck-bunny.mp4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Done, 1), "{job:?}");
    assert_eq!(store.count_findings().await.unwrap(), 1);
    store.close().await;
}
