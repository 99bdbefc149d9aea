//! The revocation policy on findings: `auto` revokes the accused sessions whose probability
//! clears `revocation.fp` as soon as the finding is made, and records it in the finding's
//! report (which the evidence bundle carries); `review` only names them; a session above the
//! threshold is left alone. An analyzer stands in for detection; every connection goes to
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Accused, Analysis, Analyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::{AUTO_ACTOR, Crawler, REVOCATION_KEY};
use leaktrace_store::{FindingVerdict, NewSession, NewTitle, Store};

/// Accuses `pirate` at 1e-12 and `suspect` at 1e-7 of every capture.
struct Accusing;

impl Analyzer for Accusing {
    fn inputs(&self, _title_id: &str) -> Result<String, CrawlError> {
        Ok("test".into())
    }

    fn analyze(&self, _capture: &Path, _title_id: &str) -> Result<Analysis, CrawlError> {
        let accused = |id: &str, p: f64| Accused {
            session_id: id.into(),
            account: format!("acct-{id}"),
            score: 40.0,
            probability: p,
        };
        Ok(Analysis {
            verdict: FindingVerdict::Accused,
            accused: vec![accused("pirate", 1e-12), accused("suspect", 1e-7)],
            report: serde_json::json!({ "verdict": "accused" }),
        })
    }
}

fn site() -> Arc<Handler> {
    Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/robots.txt" => status(404),
            "/watch" => html(
                r#"<html><head><title>Movies</title></head><body>
                <a href="/v/one.mp4">Big Buck Bunny</a></body></html>"#,
            ),
            "/v/one.mp4" => {
                let mut c = b"\0\0\0\x18ftypisom\0\0\x02\0isomavc1".to_vec();
                c.resize(8192, 0xAB);
                Response::builder()
                    .header("content-type", "video/mp4")
                    .body(full(Bytes::from(c)))
                    .unwrap()
            }
            _ => status(404),
        }
    })
}

/// One crawl of the loopback site with `[revocation] policy`; the store, for the checks.
async fn crawl(policy: &str, dir: &Path) -> Store {
    let site = serve(site()).await;
    let store = Store::open(&format!("sqlite://{}", dir.join("s.sqlite").display()))
        .await
        .unwrap();
    store
        .upsert_title(&NewTitle {
            title_id: "bbb".into(),
            name: "Big Buck Bunny".into(),
            segment_duration_ms: 2000,
            position_count: 100,
            key_version: 1,
            reference_path: None,
        })
        .await
        .unwrap();
    for id in ["pirate", "suspect"] {
        store
            .insert_session(&NewSession {
                session_id: id.into(),
                title_id: "bbb".into(),
                account_ref: format!("acct-{id}"),
                issued_at: 1,
                expires_at: 2,
                key_version: 1,
            })
            .await
            .unwrap();
    }
    let cfg = Config::from_toml(&format!(
        r#"
[sources]
seeds = ["{}/watch"]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
[politeness]
min_delay_ms = 0
[fetch]
allow_loopback = true
concurrency = 1
capture_dir = "{}"
[revocation]
policy = "{policy}"
"#,
        site.base("127.0.0.1"),
        dir.join("captures").display()
    ))
    .unwrap();
    let c = Crawler::new(
        store.clone(),
        Arc::new(cfg),
        lookup(&[]),
        Some(Arc::new(Accusing)),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats = c.run(rx, true).await.unwrap();
    assert_eq!(stats.findings, 1, "{stats:?}");
    store
}

async fn revocation_of_the_finding(store: &Store) -> serde_json::Value {
    let f = store.findings_list(None, 10).await.unwrap();
    assert_eq!(f.len(), 1);
    let report: serde_json::Value = serde_json::from_str(&f[0].record.report).unwrap();
    report[REVOCATION_KEY].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_revokes_the_sessions_that_clear_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = crawl("auto", dir.path()).await;
    assert!(store.is_revoked("pirate").await.unwrap());
    assert!(
        !store.is_revoked("suspect").await.unwrap(),
        "1e-7 does not clear the default 1e-9"
    );
    let r = revocation_of_the_finding(&store).await;
    assert_eq!(r["policy"], "auto");
    assert_eq!(r["eligible"], serde_json::json!(["pirate"]));
    assert_eq!(r["revoked"][0]["session_id"], "pirate");
    assert_eq!(r["revoked"][0]["actor"], AUTO_ACTOR);
    let trail = store.revocation_history("pirate").await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].actor, AUTO_ACTOR);
    assert!(trail[0].reason.contains("1.00e-12"), "{}", trail[0].reason);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_names_the_sessions_and_revokes_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = crawl("review", dir.path()).await;
    assert!(!store.is_revoked("pirate").await.unwrap());
    let r = revocation_of_the_finding(&store).await;
    assert_eq!(r["policy"], "review");
    assert_eq!(r["eligible"], serde_json::json!(["pirate"]));
    assert_eq!(r["revoked"], serde_json::json!([]));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_leaves_the_report_as_detection_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = crawl("off", dir.path()).await;
    assert!(!store.is_revoked("pirate").await.unwrap());
    assert!(revocation_of_the_finding(&store).await.is_null());
    store.close().await;
}

#[test]
fn the_threshold_is_checked() {
    for (fp, ok) in [("1e-9", true), ("1e-16", false), ("0.5", false)] {
        let r = Config::from_toml(&format!(
            "[sources]\nseeds = [\"http://127.0.0.1/\"]\n[revocation]\npolicy = \"auto\"\nfp = {fp}\n"
        ));
        assert_eq!(r.is_ok(), ok, "{fp}: {r:?}");
    }
    assert!(Config::from_toml("[revocation]\npolicy = \"sometimes\"\n").is_err());
}

#[test]
fn the_documented_example_configuration_parses() {
    let path = leaktrace_testkit::repo().join("docs/examples/crawler.toml");
    let c = Config::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(c.revocation.fp, 1e-9);
}
