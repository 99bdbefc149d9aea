//! The same test bodies against both backends.
//!
//! Every body in `both_backends!` runs twice: `sqlite::<name>` on a temp file,
//! always, and `postgres::<name>` on a database of its own when
//! `LEAKTRACE_TEST_PG_URL` is set (else it prints a skip notice and passes;
//! `LEAKTRACE_REQUIRE_PG=1` turns the skip into a failure). Start a server with
//! `scripts/pg-test-server.sh start`.
//!
//! `child_writer` is not a test of its own: `sigkill_durability` re-runs this
//! test binary with `--exact backends::child_writer --ignored` to get a process that
//! inserts sessions until it is killed.

// Test bodies are plain async fns called from generated #[test]s, which
// clippy's allow-unwrap-in-tests does not see as tests. A panic is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestDb, session, title};
use futures_util::TryStreamExt;
use leaktrace_store::{Backend, NewSession, SCHEMA_VERSION, Store, StoreError};
use sqlx::Connection;

crate::common::both_backends!(
    migrate_is_idempotent,
    title_round_trip,
    session_round_trip,
    duplicate_session_is_conflict,
    batch_insert_is_atomic,
    title_foreign_key_enforced,
    invalid_input_rejected,
    batched_iteration_25k,
    ordering_is_bytewise,
    sigkill_durability,
    closed_store_errors,
);

async fn migrate_is_idempotent(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    s.migrate().await.unwrap();
    s.upsert_title(&title("t")).await.unwrap();
    // A second opener migrates again (no-op) and sees the data.
    let again = Store::open(&db.url).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    assert!(again.get_title("t").await.unwrap().is_some());
    again.close().await;
}

async fn title_round_trip(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.get_title("bbb").await.unwrap(), None);
    assert!(s.list_titles().await.unwrap().is_empty());

    let mut t = title("bbb");
    t.reference_path = Some("/srv/ref/bbb.refidx".into());
    let stored = s.upsert_title(&t).await.unwrap();
    assert_eq!(stored.title_id, "bbb");
    assert_eq!(stored.name, t.name);
    assert_eq!(stored.segment_duration_ms, 2000);
    assert_eq!(stored.position_count, 298);
    assert_eq!(stored.key_version, 1);
    assert_eq!(
        stored.reference_path.as_deref(),
        Some("/srv/ref/bbb.refidx")
    );
    assert!(
        stored.created_at > 1_700_000_000,
        "created_at is unix seconds"
    );
    assert_eq!(s.get_title("bbb").await.unwrap().as_ref(), Some(&stored));

    // Upsert updates every field but created_at; u32::MAX survives the round trip.
    t.name = "Big Buck Bunny".into();
    t.segment_duration_ms = 6000;
    t.position_count = u32::MAX;
    t.key_version = 7;
    t.reference_path = None;
    let updated = s.upsert_title(&t).await.unwrap();
    assert_eq!(updated.created_at, stored.created_at);
    assert_eq!(updated.name, "Big Buck Bunny");
    assert_eq!(updated.segment_duration_ms, 6000);
    assert_eq!(updated.position_count, u32::MAX);
    assert_eq!(updated.key_version, 7);
    assert_eq!(updated.reference_path, None);
    assert_eq!(s.get_title("bbb").await.unwrap(), Some(updated.clone()));

    s.upsert_title(&title("aaa")).await.unwrap();
    s.upsert_title(&title("ccc")).await.unwrap();
    let ids: Vec<String> = s
        .list_titles()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.title_id)
        .collect();
    assert_eq!(ids, ["aaa", "bbb", "ccc"]);
}

async fn session_round_trip(db: &TestDb) {
    let s = &db.store;
    s.upsert_title(&title("t1")).await.unwrap();
    assert_eq!(s.get_session("s1").await.unwrap(), None);
    assert_eq!(s.count_sessions("t1").await.unwrap(), 0);

    let mut new = session("s1", "t1");
    new.key_version = u32::MAX;
    new.issued_at = -5; // before 1970 is representable
    new.expires_at = i64::MAX;
    let stored = s.insert_session(&new).await.unwrap();
    assert_eq!(stored.session_id, "s1");
    assert_eq!(stored.key_version, u32::MAX);
    assert_eq!(s.get_session("s1").await.unwrap(), Some(stored.clone()));
    assert_eq!(stored.account_ref, "acct-s1");
    assert_eq!(stored.issued_at, -5);
    assert_eq!(stored.expires_at, i64::MAX);

    s.insert_session(&session("s2", "t1")).await.unwrap();
    assert_eq!(s.count_sessions("t1").await.unwrap(), 2);
    assert_eq!(s.count_sessions("unknown").await.unwrap(), 0);
}

async fn duplicate_session_is_conflict(db: &TestDb) {
    let s = &db.store;
    s.upsert_title(&title("t1")).await.unwrap();
    s.upsert_title(&title("t2")).await.unwrap();
    let first = s.insert_session(&session("dup", "t1")).await.unwrap();

    // Same id, even for another title and account: refused, original kept.
    let mut other = session("dup", "t2");
    other.account_ref = "someone-else".into();
    let err = s.insert_session(&other).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what: "session", id } if id == "dup"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "session `dup` already exists");
    assert_eq!(s.get_session("dup").await.unwrap(), Some(first));
    assert_eq!(s.count_sessions("t2").await.unwrap(), 0);
}

async fn batch_insert_is_atomic(db: &TestDb) {
    let s = &db.store;
    s.upsert_title(&title("t1")).await.unwrap();
    s.insert_session(&session("b-05", "t1")).await.unwrap();

    // The 6th of 10 collides: nothing of the batch is stored.
    let batch: Vec<NewSession> = (0..10)
        .map(|i| session(&format!("b-{i:02}"), "t1"))
        .collect();
    let err = s.insert_sessions(&batch).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { id, .. } if id == "b-05"),
        "{err:?}"
    );
    assert_eq!(s.count_sessions("t1").await.unwrap(), 1);

    // A batch naming an unknown title: NotFound, nothing stored.
    let mut batch2: Vec<NewSession> = (10..20)
        .map(|i| session(&format!("b-{i:02}"), "t1"))
        .collect();
    batch2[3].title_id = "nope".into();
    let err = s.insert_sessions(&batch2).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "title", id } if id == "nope"),
        "{err:?}"
    );
    assert_eq!(s.count_sessions("t1").await.unwrap(), 1);

    let good: Vec<NewSession> = (20..30)
        .map(|i| session(&format!("b-{i:02}"), "t1"))
        .collect();
    s.insert_sessions(&good).await.unwrap();
    s.insert_sessions(&[]).await.unwrap();
    assert_eq!(s.count_sessions("t1").await.unwrap(), 11);
}

async fn title_foreign_key_enforced(db: &TestDb) {
    let s = &db.store;
    let err = s
        .insert_session(&session("s1", "missing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "title", id } if id == "missing"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "title `missing` not found");
    assert_eq!(s.get_session("s1").await.unwrap(), None);
    // Once the title exists the same session goes in.
    s.upsert_title(&title("missing")).await.unwrap();
    s.insert_session(&session("s1", "missing")).await.unwrap();
}

async fn invalid_input_rejected(db: &TestDb) {
    let s = &db.store;
    let mut t = title("");
    assert!(matches!(
        s.upsert_title(&t).await,
        Err(StoreError::InvalidInput {
            field: "title_id",
            ..
        })
    ));
    t.title_id = "t".into();
    t.segment_duration_ms = 0;
    assert!(matches!(
        s.upsert_title(&t).await,
        Err(StoreError::InvalidInput {
            field: "segment_duration_ms",
            ..
        })
    ));
    s.upsert_title(&title("t")).await.unwrap();

    let mut bad = session("", "t");
    assert!(matches!(
        s.insert_session(&bad).await,
        Err(StoreError::InvalidInput {
            field: "session_id",
            ..
        })
    ));
    bad.session_id = "x".into();
    bad.expires_at = bad.issued_at - 1;
    assert!(matches!(
        s.insert_session(&bad).await,
        Err(StoreError::InvalidInput {
            field: "expires_at",
            ..
        })
    ));
    // A bad member spoils the whole batch before anything is written.
    let batch = vec![session("ok", "t"), bad];
    assert!(matches!(
        s.insert_sessions(&batch).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(s.count_sessions("t").await.unwrap(), 0);
}

/// A bijection on u32 (odd multiplier), so ids are unique and inserted out of order.
fn scrambled_id(i: u32) -> String {
    format!("{:08x}", i.wrapping_mul(2_654_435_761))
}

async fn batched_iteration_25k(db: &TestDb) {
    const N: u32 = 25_000;
    let s = &db.store;
    s.upsert_title(&title("big")).await.unwrap();
    s.upsert_title(&title("other")).await.unwrap();
    let started = Instant::now();
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<NewSession> = chunk
            .iter()
            .map(|&i| session(&scrambled_id(i), "big"))
            .collect();
        s.insert_sessions(&batch).await.unwrap();
    }
    // Sessions of another title interleave in id order and must not show up.
    let others: Vec<NewSession> = (0..500)
        .map(|i| session(&format!("{}x", scrambled_id(i)), "other"))
        .collect();
    s.insert_sessions(&others).await.unwrap();
    let inserted = started.elapsed();
    assert_eq!(s.count_sessions("big").await.unwrap(), u64::from(N));

    let mut expected: Vec<String> = (0..N).map(scrambled_id).collect();
    expected.sort();

    for batch_size in [1_000u32, 997, 25_000, 30_000] {
        let started = Instant::now();
        let mut got = Vec::with_capacity(N as usize);
        let mut batches = 0;
        let mut stream = std::pin::pin!(s.sessions_for_title("big", batch_size));
        while let Some(batch) = stream.try_next().await.unwrap() {
            assert!(!batch.is_empty());
            assert!(batch.len() <= batch_size as usize);
            batches += 1;
            for sess in batch {
                assert_eq!(sess.title_id, "big");
                got.push(sess.session_id);
            }
        }
        assert_eq!(got.len(), N as usize, "batch {batch_size}");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "strictly ascending, batch {batch_size}"
        );
        assert_eq!(got, expected, "batch {batch_size}");
        assert_eq!(batches, N.div_ceil(batch_size).max(1) as usize);
        eprintln!(
            "{:?}: inserted 25.5k in {inserted:?}; streamed {N} in {batches} batches of {batch_size} in {:?}",
            db.store.backend(),
            started.elapsed()
        );
    }

    // Manual paging gives the same pages.
    let p1 = s.sessions_page("big", None, 3).await.unwrap();
    let p2 = s
        .sessions_page("big", Some(&p1[2].session_id), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = p1
        .iter()
        .chain(&p2)
        .map(|x| x.session_id.as_str())
        .collect();
    assert_eq!(
        ids,
        expected[..6].iter().map(String::as_str).collect::<Vec<_>>()
    );

    // A title with no sessions yields no batch at all.
    let empty: Vec<_> = s
        .sessions_for_title("nothing", 100)
        .try_collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

async fn ordering_is_bytewise(db: &TestDb) {
    // Ids whose order differs between bytewise and linguistic collations.
    let ids = [
        "a", "B", "b", "_x", "Z", "z-1", "z1", "éclair", "eclair", "Ω", "0", "~", "a b", "ab",
    ];
    let s = &db.store;
    s.upsert_title(&title("t")).await.unwrap();
    for id in ids {
        s.insert_session(&session(id, "t")).await.unwrap();
    }
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort(); // Rust's str order is bytewise (UTF-8), like SQLite BINARY and PG "C".
    let got: Vec<String> = s
        .sessions_for_title("t", 4)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .map(|x| x.session_id)
        .collect();
    assert_eq!(got, expected);
}

async fn closed_store_errors(db: &TestDb) {
    let other = Store::open(&db.url).await.unwrap();
    other.upsert_title(&title("t")).await.unwrap();
    let clone = other.clone();
    other.close().await;
    let err = clone.get_title("t").await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    // The other handle (its own pool) is unaffected.
    assert!(db.store.get_title("t").await.unwrap().is_some());
}

// ---- durability: a child process inserting sessions, killed with SIGKILL ----

const CHILD_URL_VAR: &str = "LEAKTRACE_STORE_CHILD_URL";
const CHILD_BATCH: usize = 20;

/// The child side of `sigkill_durability`: inserts sessions from two tasks,
/// one at a time (`s…`) and in batches (`b…-NN`), printing `COMMITTED <id>`
/// only after the insert returned. Does nothing unless the parent set the URL.
#[test]
#[ignore = "helper process for sigkill_durability, not a test"]
fn child_writer() {
    let Ok(url) = std::env::var(CHILD_URL_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60); // never outlive a lost parent
        let print = |ids: &[String]| {
            let mut out = std::io::stdout().lock();
            for id in ids {
                writeln!(out, "COMMITTED {id}").unwrap();
            }
            out.flush().unwrap();
        };
        let singles = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let id = format!("s{i:08}");
                    store.insert_session(&session(&id, "dur")).await.unwrap();
                    print(&[id]);
                    i += 1;
                }
            })
        };
        let batches = tokio::spawn(async move {
            let mut b = 0u64;
            while Instant::now() < deadline {
                let ids: Vec<String> = (0..CHILD_BATCH)
                    .map(|j| format!("b{b:08}-{j:02}"))
                    .collect();
                let batch: Vec<NewSession> = ids.iter().map(|id| session(id, "dur")).collect();
                store.insert_sessions(&batch).await.unwrap();
                print(&ids);
                b += 1;
            }
        });
        singles.await.unwrap();
        batches.await.unwrap();
    });
}

async fn sigkill_durability(db: &TestDb) {
    db.store.upsert_title(&title("dur")).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    // The helper test's name as libtest lists it: its module path within the test binary.
    let helper = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::child_writer"),
        None => "child_writer".to_owned(),
    };
    let mut child = Command::new(exe)
        .args([
            helper.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_URL_VAR, &db.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();

    // Read until both writers have made progress, kill mid-stream, drain the pipe.
    let (committed, killed_after) = tokio::task::spawn_blocking(move || {
        let mut committed = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let mut killed_after = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("COMMITTED ") {
                committed.push(id.to_owned());
            }
            let singles = committed.iter().filter(|id| id.starts_with('s')).count();
            let batched = committed.len() - singles;
            if killed_after.is_none() && singles >= 150 && batched >= 3 * CHILD_BATCH {
                child.kill().unwrap(); // SIGKILL
                killed_after = Some(committed.len());
            }
            assert!(
                started.elapsed() < Duration::from_secs(50),
                "child too slow"
            );
        }
        let status = child.wait().unwrap();
        assert!(killed_after.is_some(), "child exited on its own: {status}");
        (committed, killed_after)
    })
    .await
    .unwrap();
    assert!(!committed.is_empty());

    if let Some(path) = db.sqlite_path() {
        // Open the raw file first: recovery from the hot WAL, then a full check.
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(check, ["ok"]);
        let fk_violations: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert!(fk_violations.is_empty());
        conn.close().await.unwrap();
    }

    // A fresh open works and every reported session is there.
    let store = Store::open(&db.url).await.unwrap();
    let mut present = BTreeSet::new();
    let mut stream = std::pin::pin!(store.sessions_for_title("dur", 1_000));
    while let Some(batch) = stream.try_next().await.unwrap() {
        present.extend(batch.into_iter().map(|s| s.session_id));
    }
    let missing: Vec<&String> = committed
        .iter()
        .filter(|id| !present.contains(*id))
        .collect();
    assert!(missing.is_empty(), "committed but lost: {missing:?}");

    // Batches are all or nothing; at most one single and one batch were in
    // flight (committed or not) when the kill landed.
    let mut per_batch: BTreeMap<&str, usize> = BTreeMap::new();
    for id in present.iter().filter(|id| id.starts_with('b')) {
        *per_batch.entry(&id[..9]).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|&n| n == CHILD_BATCH),
        "{per_batch:?}"
    );
    let unreported = present.len() - committed.len();
    assert!(
        unreported <= 1 + CHILD_BATCH,
        "{unreported} unreported rows"
    );
    eprintln!(
        "{:?}: killed after {} reported commits; {} reported in all, {} rows present",
        store.backend(),
        killed_after.unwrap_or(0),
        committed.len(),
        present.len()
    );
    store.close().await;
}

// ---- tests that are not per-backend ----

/// Both migration folders define the same tables, columns, types, nullability,
/// keys, checks and indexes (needs PostgreSQL).
#[tokio::test]
async fn schema_parity() {
    let Some(pg) = TestDb::postgres("schema_parity").await else {
        return;
    };
    let lite = TestDb::sqlite().await;
    let lite_schema = sqlite_schema(&lite).await;
    let pg_schema = pg_schema(&pg).await;
    assert_eq!(lite_schema, pg_schema);
    assert!(
        lite_schema
            .iter()
            .any(|l| l.starts_with("column sessions.title_id "))
    );
    eprintln!("{}", lite_schema.join("\n"));
    lite.finish().await;
    pg.finish().await;
}

async fn sqlite_schema(db: &TestDb) -> Vec<String> {
    let path = db.sqlite_path().unwrap();
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (table, sql) in &tables {
        let cols: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(table)
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (name, ty, notnull, pk) in cols {
            let ty = match ty.as_str() {
                "INTEGER" => "int64",
                "TEXT" => "text",
                other => panic!("unexpected SQLite type {other}"),
            };
            out.push(format!(
                "column {table}.{name} {ty} notnull={}",
                notnull || pk > 0
            ));
            if pk > 0 {
                out.push(format!("pk {table}.{name}"));
            }
        }
        let fks: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
        )
        .bind(table)
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (from, to_table, to, on_delete) in fks {
            out.push(format!(
                "fk {table}.{from} -> {to_table}.{to} on delete {on_delete}"
            ));
        }
        out.push(format!("checks {table} {}", sql.matches("CHECK (").count()));
        let idx: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM pragma_index_list(?1) WHERE origin = 'c' ORDER BY name",
        )
        .bind(table)
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (name,) in idx {
            let cols: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            let cols: Vec<String> = cols.into_iter().map(|(n,)| n).collect();
            out.push(format!("index {table}.{name} ({})", cols.join(", ")));
        }
    }
    c.close().await.unwrap();
    out.sort();
    out
}

async fn pg_schema(db: &TestDb) -> Vec<String> {
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut out = Vec::new();
    let cols: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, \
         collation_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (table, name, ty, nullable, collation) in cols {
        let ty = match ty.as_str() {
            "bigint" => "int64",
            "text" => "text",
            other => panic!("unexpected PostgreSQL type {other}"),
        };
        out.push(format!(
            "column {table}.{name} {ty} notnull={}",
            nullable == "NO"
        ));
        if name == "title_id" || name == "session_id" {
            assert_eq!(
                collation.as_deref(),
                Some("C"),
                "{table}.{name} must be COLLATE \"C\""
            );
        }
    }
    let cons: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.contype::text, pg_get_constraintdef(c.oid) \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE n.nspname = current_schema() AND c.conrelid::regclass::text <> '_sqlx_migrations'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut checks: BTreeMap<String, usize> = BTreeMap::new();
    for (table, kind, def) in cons {
        match kind.as_str() {
            "p" => {
                let col = def
                    .trim_start_matches("PRIMARY KEY (")
                    .trim_end_matches(')');
                out.push(format!("pk {table}.{col}"));
            }
            "f" => {
                // FOREIGN KEY (title_id) REFERENCES titles(title_id) ON DELETE RESTRICT
                let from = def.split(['(', ')']).nth(1).unwrap();
                let rest = def.split("REFERENCES ").nth(1).unwrap();
                let to_table = rest.split('(').next().unwrap();
                let to = rest.split(['(', ')']).nth(1).unwrap();
                let on_delete = rest.split("ON DELETE ").nth(1).unwrap_or("NO ACTION");
                out.push(format!(
                    "fk {table}.{from} -> {to_table}.{to} on delete {on_delete}"
                ));
            }
            "c" => *checks.entry(table).or_default() += 1,
            other => panic!("unexpected constraint kind {other}: {def}"),
        }
    }
    for (table, n) in checks {
        out.push(format!("checks {table} {n}"));
    }
    let idx: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tablename::text, indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for (table, name, def) in idx {
        let cols = def.rsplit('(').next().unwrap().trim_end_matches(')');
        out.push(format!("index {table}.{name} ({cols})"));
    }
    c.close().await.unwrap();
    out.sort();
    out
}

/// A wrong password gives `Open`, and the password appears nowhere in the error.
#[tokio::test]
async fn postgres_open_error_hides_password() {
    let Some(admin) = crate::common::pg_admin_url("postgres_open_error_hides_password") else {
        return;
    };
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_password(Some("Wr0ng-Secret-42")).unwrap();
    let err = Store::open(url.as_str()).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let mut shown = format!("{err:?} {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        shown.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(!shown.contains("Wr0ng-Secret-42"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}

#[tokio::test]
async fn sqlite_open_error_in_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/no/such/dir/x.sqlite", dir.path().display());
    let err = Store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[tokio::test]
async fn sqlite_relative_and_memory_urls() {
    let mem = Store::open("sqlite::memory:").await.unwrap();
    mem.upsert_title(&title("m")).await.unwrap();
    assert!(mem.get_title("m").await.unwrap().is_some());
    mem.close().await;

    // The `sqlite:<path>` form (no slashes after the colon). A relative path
    // would resolve against the cwd, which tests running in parallel share,
    // so the path here is absolute.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("rel.sqlite").display());
    let s = Store::open(&url).await.unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    s.close().await;
    assert!(dir.path().join("rel.sqlite").exists());
}

/// The file is in WAL mode (persistent in the file header) after open.
#[tokio::test]
async fn sqlite_file_uses_wal() {
    let db = TestDb::sqlite().await;
    db.store.upsert_title(&title("t")).await.unwrap();
    let path = db.sqlite_path().unwrap();
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    c.close().await.unwrap();
    db.finish().await;
}

#[tokio::test]
async fn invalid_url_lists_accepted_schemes() {
    let err = Store::open("mysql://root:pw@localhost/lt")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::InvalidUrl { .. }));
    assert!(
        msg.contains("sqlite:///") && msg.contains("postgres://"),
        "{msg}"
    );
    assert!(!msg.contains(":pw@"), "{msg}");
}
