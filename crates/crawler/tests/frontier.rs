//! The frontier in the store: several workers share 1000 URLs on PostgreSQL (skipped with a
//! notice when `LEAKTRACE_TEST_PG_URL` is unset), each processed exactly once, including the
//! jobs a crashed worker held; plus retries, dead-letter and findings idempotency on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use std::sync::Arc;

use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{JobKind, JobState, NewFinding, NewJob, RetryPolicy, Store};
use sqlx::{AssertSqlSafe, Connection};

async fn pg_store(test: &str) -> Option<(Store, String, String)> {
    let Ok(admin) = std::env::var("LEAKTRACE_TEST_PG_URL") else {
        eprintln!(
            "SKIPPED {test}: LEAKTRACE_TEST_PG_URL not set (scripts/pg-test-server.sh start)"
        );
        return None;
    };
    let name = format!("lt_crawler_{test}_{}", std::process::id());
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let mut u = url::Url::parse(&admin).unwrap();
    u.set_path(&name);
    let store = Store::open(u.as_str()).await.unwrap();
    Some((store, admin, name))
}

async fn drop_pg(admin: &str, name: &str) {
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut c)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_thousand_urls_exactly_once_despite_a_crash() {
    let Some((store, admin, name)) = pg_store("four_workers").await else {
        return;
    };
    let site = serve(Arc::new(|_pq: &str| {
        html("<html><title>leaf</title></html>")
    }))
    .await;
    let base = site.base("127.0.0.1");
    let jobs: Vec<NewJob> = (0..1000)
        .map(|i| NewJob {
            url: format!("{base}/p/{i}"),
            kind: JobKind::Page,
            depth: 0,
            referrer: None,
            title_hint: None,
        })
        .collect();
    assert_eq!(store.enqueue_jobs(&jobs, 1).await.unwrap(), 1000);
    // A worker that claims 40 jobs and dies (kill -9 from the store's point of view: leases
    // held, nothing completed). Its leases run out after 2 s.
    let crashed = store.claim_jobs("crashed-worker", 40, 2).await.unwrap();
    assert_eq!(crashed.len(), 40);

    let cfg = Arc::new(
        Config::from_toml(
            r#"
[politeness]
min_delay_ms = 0
respect_robots = false
[fetch]
allow_loopback = true
concurrency = 8
"#,
        )
        .unwrap(),
    );
    let mut handles = Vec::new();
    for w in 0..4 {
        let s = Store::open(&store_url(&admin, &name)).await.unwrap();
        let c = Crawler::new(s, cfg.clone(), lookup(&[]), None, format!("w{w}")).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        handles.push(tokio::spawn(async move {
            let _tx = _tx;
            c.run(rx, true).await.unwrap()
        }));
    }
    let mut done = 0;
    for h in handles {
        let st = h.await.unwrap();
        eprintln!("{st:?}");
        assert_eq!(st.lost_leases, 0);
        assert_eq!(st.dead + st.retried, 0);
        done += st.done;
    }
    // Every URL completed exactly once (a completion needs the live lease).
    assert_eq!(done, 1000);
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts.done, 1000);
    assert_eq!(counts.pending(), 0);
    // Each page fetched exactly once: the crashed worker never fetched, its jobs were redone.
    for i in 0..1000 {
        assert_eq!(site.hits(&format!("/p/{i}")), 1, "/p/{i}");
    }
    // The crashed worker cannot complete a job it lost.
    assert!(
        !store
            .complete_job(&crashed[0].url, "crashed-worker", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_job(&crashed[0].url)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );
    store.close().await;
    drop_pg(&admin, &name).await;
}

fn store_url(admin: &str, name: &str) -> String {
    let mut u = url::Url::parse(admin).unwrap();
    u.set_path(name);
    u.to_string()
}

async fn retries_and_findings(store: &Store) {
    let job = NewJob {
        url: "http://x.test/a".into(),
        kind: JobKind::Page,
        depth: 0,
        referrer: None,
        title_hint: None,
    };
    assert_eq!(
        store
            .enqueue_jobs(&[job.clone(), job.clone()], 1)
            .await
            .unwrap(),
        1
    );
    let policy = RetryPolicy {
        max_attempts: 2,
        base_secs: 0,
        max_secs: 0,
    };
    let j = store.claim_jobs("w", 10, 60).await.unwrap().remove(0);
    assert!(store.claim_jobs("other", 10, 60).await.unwrap().is_empty());
    assert_eq!(
        store
            .fail_job(&j, "w", "boom", &policy, None)
            .await
            .unwrap(),
        Some(JobState::Queued)
    );
    let j = store.claim_jobs("w", 10, 60).await.unwrap().remove(0);
    assert_eq!(j.attempts, 2);
    assert_eq!(
        store
            .fail_job(&j, "w", "boom again", &policy, None)
            .await
            .unwrap(),
        Some(JobState::Dead)
    );
    assert!(store.claim_jobs("w", 10, 60).await.unwrap().is_empty());
    assert_eq!(
        store.jobs_in_state(JobState::Dead, 10).await.unwrap()[0]
            .last_error
            .as_deref(),
        Some("boom again")
    );
    // Re-queue by a later generation applies to done pages only, not dead ones.
    assert_eq!(store.enqueue_jobs(&[job], 2).await.unwrap(), 0);

    let f = NewFinding {
        finding_id: "F-1".into(),
        media_url: "http://x.test/v.mp4".into(),
        page_url: Some("http://x.test/watch".into()),
        redirect_chain: vec![
            "http://x.test/v.mp4".into(),
            "http://cdn.x.test/\"v\".mp4".into(),
        ],
        resolved_ip: Some("192.0.2.7".into()),
        kind: "direct".into(),
        file_name: "v.mp4".into(),
        content_type: Some("video/mp4".into()),
        byte_len: 123,
        blake3: "a".repeat(64),
        sha256: "b".repeat(64),
        capture_path: "/c/bbbb.mp4".into(),
        title_id: Some("bbb".into()),
        title_score: 100,
        verdict: "accused".into(),
        accused: r#"[{"session_id":"s1","account":"a","score":9.0,"probability":1e-9}]"#.into(),
        report: "{}".into(),
        capture_started_at: 1,
        capture_finished_at: 2,
    };
    assert!(store.insert_finding(&f).await.unwrap());
    let dup = NewFinding {
        finding_id: "F-2".into(),
        ..f.clone()
    };
    assert!(!store.insert_finding(&dup).await.unwrap());
    assert_eq!(store.count_findings().await.unwrap(), 1);
    let got = store.finding_get("F-1").await.unwrap().unwrap();
    assert_eq!(got.record, f);
    assert_eq!(store.findings_list(None, 10).await.unwrap().len(), 1);
    assert!(
        store
            .findings_list(Some("F-1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .finding_by_sha256(&"b".repeat(64))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn retries_dead_letter_and_findings_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    ))
    .await
    .unwrap();
    retries_and_findings(&store).await;
    store.close().await;
}

#[tokio::test]
async fn retries_dead_letter_and_findings_postgres() {
    let Some((store, admin, name)) = pg_store("retries").await else {
        return;
    };
    retries_and_findings(&store).await;
    store.close().await;
    drop_pg(&admin, &name).await;
}
