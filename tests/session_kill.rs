//! A session recorded is never lost: `leaktrace session new` processes are killed with SIGKILL
//! at arbitrary moments, in a loop; afterwards the database is consistent, every token that
//! reached stdout belongs to a recorded session, and the store still works. Runs on SQLite, and
//! on PostgreSQL when `LEAKTRACE_TEST_PG_URL` is set (`LEAKTRACE_REQUIRE_PG=1` makes that
//! mandatory, as `scripts/test.sh` does).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A working directory whose store is `store_url` (None: the SQLite default), with `title`
/// embedded (a tiny package) so sessions can be issued for it.
fn workdir(store_url: Option<&str>, title: &str) -> tempfile::TempDir {
    let d = init_workdir();
    if let Some(url) = store_url {
        let cfg = d.path().join("leaktrace.toml");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("sqlite://leaktrace.db", url);
        std::fs::write(&cfg, text).unwrap();
    }
    let out = bin()
        .current_dir(d.path())
        .arg("embed")
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args([
            "--out",
            "pkg",
            "--title",
            title,
            "--ladder",
            "240p",
            "--preset",
            "ultrafast",
            "--max-frames",
            "24",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// Starts `session new` processes and SIGKILLs each after a pseudo-random delay (some finish
/// first). Returns the session ids printed by the processes that completed.
fn kill_loop(dir: &Path, title: &str, rounds: u32) -> BTreeSet<String> {
    let mut printed = BTreeSet::new();
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..rounds {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let delay = Duration::from_millis(u64::from(x >> 20) % 400);
        let mut child = bin()
            .current_dir(dir)
            .args([
                "session",
                "new",
                "--title",
                title,
                "--account",
                &format!("acct-{i}"),
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; harmless if it already exited
        let _ = child.wait();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(out.trim()) {
            printed.insert(v["session_id"].as_str().unwrap().to_string());
        }
    }
    printed
}

fn assert_store_still_works(dir: &Path, title: &str) {
    let out = bin()
        .current_dir(dir)
        .args([
            "session",
            "new",
            "--title",
            title,
            "--account",
            "after",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_during_session_new_loses_nothing_on_sqlite() {
    let title = "kill-test";
    let d = workdir(None, title);
    let printed = kill_loop(d.path(), title, 40);
    let db = d.path().join("leaktrace.db");
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("pragma integrity_check; pragma foreign_key_check;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    let rows = Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "select session_id from sessions where title_id = '{title}'"
        ))
        .output()
        .unwrap();
    let stored: BTreeSet<String> = String::from_utf8_lossy(&rows.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        printed.is_subset(&stored),
        "printed but not stored: {:?}",
        printed.difference(&stored).collect::<Vec<_>>()
    );
    assert!(stored.len() <= 40);
    eprintln!(
        "sqlite: {} of 40 runs completed before the kill, {} sessions stored",
        printed.len(),
        stored.len()
    );
    assert_store_still_works(d.path(), title);
}

#[test]
fn sigkill_during_session_new_loses_nothing_on_postgres() {
    let Some(url) = std::env::var_os("LEAKTRACE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("LEAKTRACE_REQUIRE_PG").is_none(),
            "LEAKTRACE_REQUIRE_PG is set but LEAKTRACE_TEST_PG_URL is not"
        );
        eprintln!("SKIPPED: LEAKTRACE_TEST_PG_URL not set");
        return;
    };
    let url = url.to_string_lossy().into_owned();
    // A title unique to this run: the PostgreSQL database is shared by the test suite.
    let title = format!("kill-test-{}", std::process::id());
    let d = workdir(Some(&url), &title);
    let printed = kill_loop(d.path(), &title, 40);
    let rows = Command::new("psql")
        .arg(&url)
        .args([
            "-tAc",
            &format!("select session_id from sessions where title_id = '{title}'"),
        ])
        .output()
        .unwrap();
    assert!(
        rows.status.success(),
        "{}",
        String::from_utf8_lossy(&rows.stderr)
    );
    let stored: BTreeSet<String> = String::from_utf8_lossy(&rows.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        printed.is_subset(&stored),
        "printed but not stored: {:?}",
        printed.difference(&stored).collect::<Vec<_>>()
    );
    eprintln!(
        "postgres: {} of 40 runs completed before the kill, {} sessions stored",
        printed.len(),
        stored.len()
    );
    assert_store_still_works(d.path(), &title);
}
