//! The frontier in the store: several workers share 1000 URLs on PostgreSQL (skipped with a
//! notice when `LEAKTRACE_TEST_PG_URL` is unset), each processed exactly once, including the
//! jobs a crashed worker held; plus retries, dead-letter (after failures, and after a crash loop
//! of expiring leases) and findings idempotency, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::sync::Arc;

use leaktrace_crawler::config::Config;
use leaktrace_crawler::retry::RetryPolicy;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{
    FindingKind, FindingVerdict, JobDone, JobKind, JobState, NewFinding, NewJob, Store,
};
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
    let crashed = store.claim_jobs("crashed-worker", 40, 2, 5).await.unwrap();
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
    let j = store.claim_jobs("w", 10, 60, 2).await.unwrap().remove(0);
    assert!(
        store
            .claim_jobs("other", 10, 60, 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .fail_job(
                &j.url,
                "w",
                "boom",
                policy.retry_at(j.attempts, now_secs(), None)
            )
            .await
            .unwrap(),
        Some(JobState::Queued)
    );
    let j = store.claim_jobs("w", 10, 60, 2).await.unwrap().remove(0);
    assert_eq!(j.attempts, 2);
    assert_eq!(
        store
            .fail_job(
                &j.url,
                "w",
                "boom again",
                policy.retry_at(j.attempts, now_secs(), None)
            )
            .await
            .unwrap(),
        Some(JobState::Dead)
    );
    assert!(store.claim_jobs("w", 10, 60, 2).await.unwrap().is_empty());
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
        redirect_statuses: vec![302, 200],
        resolved_ip: Some("192.0.2.7".into()),
        kind: FindingKind::Direct,
        file_name: "v.mp4".into(),
        content_type: Some("video/mp4".into()),
        byte_len: 123,
        blake3: "a".repeat(64),
        sha256: "b".repeat(64),
        capture_path: "/c/bbbb.mp4".into(),
        title_id: Some("bbb".into()),
        title_score: 100,
        verdict: FindingVerdict::Accused,
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

/// Waits until the wall clock (whole unix seconds, the store's resolution) moves past `t`.
async fn after_second(t: i64) {
    while now_secs() <= t {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A URL whose worker dies every time (crash loop: claimed, lease runs out, never completed
/// nor failed) is dead-lettered after `max_attempts` claims instead of being claimed forever;
/// other rows are unaffected. Leases of 0 s run out at the next second (~2 s in all).
async fn crash_loop_dead_letters(store: &Store) {
    let mk = |u: &str| NewJob {
        url: u.into(),
        kind: JobKind::Page,
        depth: 0,
        referrer: None,
        title_hint: None,
    };
    store
        .enqueue_jobs(&[mk("http://x.test/crash")], 1)
        .await
        .unwrap();
    for attempt in 1..=2 {
        let got = store.claim_jobs("crasher", 10, 0, 2).await.unwrap();
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].attempts, attempt);
        // The worker "dies": no complete_job, no fail_job. The lease runs out.
        after_second(got[0].lease_until.unwrap()).await;
    }
    // A job queued meanwhile is still claimed; the crash-looping one is not.
    store
        .enqueue_jobs(&[mk("http://x.test/fine")], 1)
        .await
        .unwrap();
    let got = store.claim_jobs("healthy", 10, 60, 2).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.url.as_str()).collect::<Vec<_>>(),
        ["http://x.test/fine"]
    );
    let dead = store.get_job("http://x.test/crash").await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead, "{dead:?}");
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.lease_owner, None);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("lease expired"),
        "{dead:?}"
    );
    // The dead worker cannot complete it afterwards, and a later claim does not revive it.
    assert!(
        !store
            .complete_job("http://x.test/crash", "crasher", None)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_jobs("healthy", 10, 60, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.job_counts().await.unwrap().dead, 1);
    // The limit is validated.
    assert!(store.claim_jobs("w", 1, 60, 0).await.is_err());
    assert!(store.claim_jobs("w", 1, 60, 101).await.is_err());
}

/// The frontier's side of the crawl budgets: how far along a pagination chain a row is (from
/// referrers and depths), and rows deferred by a budget, which a later run queues again while
/// other skipped rows stay skipped.
async fn pagination_and_deferred_rows(store: &Store) {
    let nj = |u: &str, depth: u32, referrer: Option<&str>| NewJob {
        url: u.into(),
        kind: JobKind::Page,
        depth,
        referrer: referrer.map(str::to_owned),
        title_hint: None,
    };
    store
        .enqueue_jobs(&[nj("http://x.test/list", 0, None)], 1)
        .await
        .unwrap();
    // Each page of the listing finds the next one (same depth) and an article (depth + 1).
    let mut prev = "http://x.test/list".to_owned();
    for i in 1..=4 {
        let job = store.claim_jobs("w", 1, 60, 5).await.unwrap().remove(0);
        assert_eq!(job.url, prev);
        let next = format!("http://x.test/list?page={i}");
        let done = JobDone {
            url: job.url.clone(),
            note: None,
            found: vec![
                nj(&next, 0, Some(&job.url)),
                nj(&format!("http://x.test/article/{i}"), 1, Some(&job.url)),
            ],
            skipped: vec![],
            deferred: vec![],
            generation: 1,
        };
        assert_eq!(store.finish_jobs("w", &[done]).await.unwrap(), [true]);
        prev = next;
    }
    assert_eq!(
        store
            .pagination_run("http://x.test/list", 50)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .pagination_run("http://x.test/list?page=1", 50)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .pagination_run("http://x.test/list?page=4", 50)
            .await
            .unwrap(),
        4
    );
    // At most `limit` hops are walked.
    assert_eq!(
        store
            .pagination_run("http://x.test/list?page=4", 2)
            .await
            .unwrap(),
        2
    );
    // A link that adds depth starts no chain; an unknown URL is at 0.
    assert_eq!(
        store
            .pagination_run("http://x.test/article/3", 50)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .pagination_run("http://x.test/nope", 50)
            .await
            .unwrap(),
        0
    );

    // One page deferred by a budget in run 1, one skipped for good.
    let job = store.claim_jobs("w", 1, 60, 5).await.unwrap().remove(0);
    let done = JobDone {
        url: job.url.clone(),
        note: None,
        found: vec![],
        skipped: vec![(nj("http://x.test/trap", 9, Some(&job.url)), "depth".into())],
        deferred: vec![(
            nj("http://x.test/later", 1, Some(&job.url)),
            "crawl budget max_pages_per_host (1) reached".into(),
        )],
        generation: 1,
    };
    assert_eq!(store.finish_jobs("w", &[done]).await.unwrap(), [true]);
    let later = store.get_job("http://x.test/later").await.unwrap().unwrap();
    assert_eq!((later.state, later.generation), (JobState::Skipped, 1));
    let trap = store.get_job("http://x.test/trap").await.unwrap().unwrap();
    assert_eq!((trap.state, trap.generation), (JobState::Skipped, 0));
    // The same run does not queue the deferred row again; a later run does; the other
    // skipped row stays skipped.
    let again = [
        nj("http://x.test/later", 1, None),
        nj("http://x.test/trap", 1, None),
    ];
    assert_eq!(store.enqueue_jobs(&again, 1).await.unwrap(), 0);
    assert_eq!(store.enqueue_jobs(&again, 2).await.unwrap(), 1);
    let later = store.get_job("http://x.test/later").await.unwrap().unwrap();
    assert_eq!(
        (later.state, later.generation, later.last_error),
        (JobState::Queued, 2, None)
    );
    assert_eq!(
        store
            .get_job("http://x.test/trap")
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Skipped
    );
}

#[tokio::test]
async fn pagination_and_deferred_rows_sqlite() {
    let (_dir, store) = sqlite_store().await;
    pagination_and_deferred_rows(&store).await;
    store.close().await;
}

#[tokio::test]
async fn pagination_and_deferred_rows_postgres() {
    let Some((store, admin, name)) = pg_store("pagination").await else {
        return;
    };
    pagination_and_deferred_rows(&store).await;
    store.close().await;
    drop_pg(&admin, &name).await;
}

/// A store on a new SQLite file; keep the directory alive as long as the store.
async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.sqlite").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn crash_loop_dead_letters_sqlite() {
    let (_dir, store) = sqlite_store().await;
    crash_loop_dead_letters(&store).await;
    store.close().await;
}

#[tokio::test]
async fn crash_loop_dead_letters_postgres() {
    let Some((store, admin, name)) = pg_store("crash_loop").await else {
        return;
    };
    crash_loop_dead_letters(&store).await;
    store.close().await;
    drop_pg(&admin, &name).await;
}

#[tokio::test]
async fn retries_dead_letter_and_findings_sqlite() {
    let (_dir, store) = sqlite_store().await;
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
