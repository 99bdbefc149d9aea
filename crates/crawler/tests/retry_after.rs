//! A host answering 429 with a long `Retry-After` does not hold a worker: its jobs are given
//! back to the frontier, due when the host is (at most an hour later), and the worker goes on
//! with other hosts. Every connection goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::JobState;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_retry_after_reschedules_the_host_and_the_run_goes_on() {
    let throttling = serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/robots.txt" => status(404),
            _ => Response::builder()
                .status(429)
                .header("retry-after", "86400")
                .body(full(""))
                .unwrap(),
        }
    }))
    .await;
    let fine = serve(Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/robots.txt" => status(404),
            "/list" => html("<a href=/p/1>1</a><a href=/p/2>2</a>"),
            _ => html("<html>leaf</html>"),
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let (t, f) = (throttling.base("127.0.0.1"), fine.base("127.0.0.1"));
    // One job at a time: the second job on the throttled host meets its Retry-After in the
    // pacer.
    let cfg = Arc::new(
        Config::from_toml(&format!(
            "[sources]\nseeds = [\"{t}/a\", \"{t}/b\", \"{f}/list\"]\n[politeness]\n\
             min_delay_ms = 0\n[fetch]\nallow_loopback = true\nconcurrency = 1\n"
        ))
        .unwrap(),
    );
    let c = Crawler::new(store.clone(), cfg, lookup(&[]), None, "w".into()).unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let before = now();
    let st = tokio::time::timeout(Duration::from_secs(30), c.run(rx, true))
        .await
        .expect("the run did not end within 30 s: a worker is asleep in the pacer")
        .unwrap();
    let after = now();
    // The other host's pages were all processed.
    for p in ["/list", "/p/1", "/p/2"] {
        let j = store.get_job(&format!("{f}{p}")).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Done, "{j:?}");
    }
    assert_eq!(st.done, 3, "{st:?}");
    assert_eq!(st.dead, 0, "{st:?}");
    // Both jobs of the throttled host are queued again, due in at most an hour, not a day.
    for p in ["/a", "/b"] {
        let j = store.get_job(&format!("{t}{p}")).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Queued, "{j:?}");
        assert!(
            j.not_before >= before + 3000 && j.not_before <= after + 3600,
            "{p} due at {} ({} s from now): {j:?}",
            j.not_before,
            j.not_before - after
        );
    }
    // The host was asked once: the second job was rescheduled without a request.
    assert_eq!(throttling.hits("/a") + throttling.hits("/b"), 1);
    store.close().await;
}
