//! kill -9 of a real `leaktrace worker` process on PostgreSQL loses and duplicates nothing:
//! four worker processes share 1000 queued URLs of a loopback site; one is SIGKILLed while it
//! holds leases; the others finish (they wait for its leases to run out, 5 s, and claim those
//! rows again). Every URL ends `done`, and every page was requested exactly once except the
//! ones the killed worker held at its death (requested at most twice: by it, and by the worker
//! that took over). Needs `LEAKTRACE_TEST_PG_URL` (skipped with a notice otherwise;
//! `LEAKTRACE_REQUIRE_PG=1` makes it mandatory). Runs in ~8 s (the survivors wait 5 s for the
//! leases of the killed worker).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leaktrace_store::{JobKind, JobState, NewJob, Store};

const URLS: usize = 1000;

type Hits = Arc<Mutex<HashMap<String, u32>>>;

/// A loopback HTTP/1.1 site (one thread per connection): every `/p/N` is a small HTML page
/// served after 10 ms (so the run lasts long enough to kill a worker in the middle of it);
/// counts requests per path.
fn site() -> (u16, Hits) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits: Hits = Arc::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let hits = h.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" || h == "\n" {
                            break;
                        }
                    }
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let (status, body) = if path.starts_with("/p/") {
                        std::thread::sleep(Duration::from_millis(10));
                        (
                            "200 OK",
                            format!("<html><title>{path}</title><body>leaf</body></html>"),
                        )
                    } else {
                        ("404 Not Found", String::new())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, hits)
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigkill_of_a_worker_process_loses_and_duplicates_nothing_on_postgres() {
    let Some(admin) = std::env::var_os("LEAKTRACE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("LEAKTRACE_REQUIRE_PG").is_none(),
            "LEAKTRACE_REQUIRE_PG is set but LEAKTRACE_TEST_PG_URL is not"
        );
        eprintln!("SKIPPED: LEAKTRACE_TEST_PG_URL not set");
        return;
    };
    let t0 = Instant::now();
    let admin = admin.to_string_lossy().into_owned();
    // A database of its own: the frontier is global to a store, and the shared test database
    // may hold other tests' jobs.
    let db = format!("lt_crawl_kill_{}", std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {db}"));
    psql(&admin, &format!("CREATE DATABASE {db}"));
    let store_url = url_with_db(&admin, &db);

    let (port, hits) = site();
    let d = init_workdir();
    let dir = d.path();
    let cfg = dir.join("leaktrace.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("sqlite://leaktrace.db", &store_url);
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(
        dir.join("crawler.toml"),
        "[politeness]\nmin_delay_ms = 0\n[fetch]\nallow_loopback = true\nconcurrency = 4\n\
         lease_secs = 5\n",
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(Store::open(&store_url)).unwrap();
    let jobs: Vec<NewJob> = (0..URLS)
        .map(|i| NewJob {
            url: format!("http://127.0.0.1:{port}/p/{i}"),
            kind: JobKind::Page,
            depth: 0,
            referrer: None,
            title_hint: None,
        })
        .collect();
    assert_eq!(
        rt.block_on(store.enqueue_jobs(&jobs, 1)).unwrap(),
        URLS as u64
    );

    let spawn = || {
        Proc(
            bin()
                .current_dir(dir)
                .args(["worker", "--until-idle"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut victim = spawn();
    let survivors: Vec<Proc> = (0..3).map(|_| spawn()).collect();
    let tag = format!("-{}-", victim.0.id());
    let held_by_victim = |store: &Store| -> BTreeSet<String> {
        rt.block_on(store.jobs_in_state(JobState::Leased, 10_000))
            .unwrap()
            .into_iter()
            .filter(|j| j.lease_owner.as_deref().unwrap_or("").contains(&tag))
            .map(|j| j.url)
            .collect()
    };
    // Wait until the crawl is under way and the victim holds leases, then SIGKILL it. The
    // victim is frozen (SIGSTOP) while its leases are read, so it cannot finish them between
    // the look and the kill; if it holds none at that moment it is thawed and watched again.
    let signal = |sig: &str, pid: u32| {
        ok(Command::new("kill").args([sig, &pid.to_string()]));
    };
    let orphaned = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the workers made no progress"
        );
        let done = rt.block_on(store.job_counts()).unwrap().done;
        if done >= 100 {
            signal("-STOP", victim.0.id());
            // A completion the victim sent just before it was frozen still runs on the server
            // (a frozen client does not stop its backend) and would end done, by the victim,
            // in one attempt: the leases are read once the server is through with it (a
            // second: a database server on a loaded host takes its time).
            std::thread::sleep(Duration::from_millis(1000));
            let held = held_by_victim(&store);
            if !held.is_empty() {
                break held;
            }
            signal("-CONT", victim.0.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    let at_kill = rt.block_on(store.job_counts()).unwrap();
    eprintln!(
        "killed worker {} holding {} leases; counts then {at_kill:?}",
        victim.0.id(),
        orphaned.len()
    );
    assert!(!orphaned.is_empty());
    assert!(
        at_kill.done < URLS as u64,
        "killed after the end: {at_kill:?}"
    );

    // The survivors finish everything, including the victim's rows once its leases run out.
    let mut survivors_done = 0;
    for mut p in survivors {
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(s) = p.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "a worker did not finish");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(p.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(status.success(), "worker failed: {out}");
        // "done N  retried N  dead N  new findings N  lost leases N"
        let n: Vec<u64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(n.len(), 5, "{out}");
        assert_eq!((n[1], n[2], n[4]), (0, 0, 0), "{out}");
        survivors_done += n[0];
    }
    let counts = rt.block_on(store.job_counts()).unwrap();
    assert_eq!(counts.done, URLS as u64, "{counts:?}");
    assert_eq!(counts.pending() + counts.dead + counts.skipped, 0);
    // The survivors completed at least everything left at the kill, the orphans included.
    assert!(
        survivors_done >= URLS as u64 - at_kill.done,
        "{survivors_done}"
    );
    let hits = hits.lock().unwrap().clone();
    for i in 0..URLS {
        let url = format!("http://127.0.0.1:{port}/p/{i}");
        let n = hits.get(&format!("/p/{i}")).copied().unwrap_or(0);
        let job = rt.block_on(store.get_job(&url)).unwrap().unwrap();
        if orphaned.contains(&url) {
            // Fetched by the victim (perhaps) and again by the worker that took over.
            assert!(job.attempts >= 2, "{job:?}");
        }
        // Every request is one claim's: a row is fetched again only after its lease ran out
        // (the victim's, or on a loaded machine a survivor's claimed batch waiting too long).
        assert!(
            (1..=job.attempts).contains(&n),
            "{url} requested {n} times over {} claims",
            job.attempts
        );
    }
    rt.block_on(store.close());
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    eprintln!("sigkill worker test in {:?}", t0.elapsed());
}

/// `admin` with its database name replaced by `db`.
fn url_with_db(admin: &str, db: &str) -> String {
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}
