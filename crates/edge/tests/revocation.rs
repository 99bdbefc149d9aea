//! Revocation reaches the edge: a revoked session's next request is refused (403) within the
//! edge's poll interval, without a store read per request; a restored one plays again; an
//! account's sessions go together. On SQLite always, and on PostgreSQL when
//! `LEAKTRACE_TEST_PG_URL` is set (`LEAKTRACE_REQUIRE_PG=1` makes its absence a failure).
//! Every connection is to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use leaktrace_core::{KeyVersion, MasterKey, TitleId, TokenMode};
use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_session::{Issuer, issue_session};
use leaktrace_store::{NewTitle, RevocationTarget, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a revocation may take to reach the edge's requests.
const BOUND: Duration = Duration::from_secs(5);

fn key() -> MasterKey {
    MasterKey::from_bytes([0x3c; 32], KeyVersion::new(1))
}

/// A hand-made package of title `title` under `root` (no media tools needed).
fn package(root: &std::path::Path, title: &str) {
    let pkg = root.join(title);
    std::fs::create_dir_all(pkg.join("360p")).unwrap();
    std::fs::write(pkg.join("title.json"), format!("{{\"title\":\"{title}\"}}")).unwrap();
    std::fs::write(
        pkg.join("master.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n360p/playlist.m3u8\n",
    )
    .unwrap();
    std::fs::write(
        pkg.join("360p").join("playlist.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
}

/// The status of `GET target` on a fresh connection.
async fn status(addr: SocketAddr, target: &str) -> u16 {
    assert!(addr.ip().is_loopback());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let head = String::from_utf8_lossy(&out);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Polls until `target` answers `want`; the time it took, or `None` past [`BOUND`] and a
/// margin.
async fn until(addr: SocketAddr, target: &str, want: u16) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < BOUND * 2 {
        if status(addr, target).await == want {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn revocation_reaches_the_edge(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    // A title of its own, so a shared PostgreSQL database holds nothing it could confuse.
    let title = format!("rv-{}", std::process::id());
    package(dir.path(), &title);
    let store = Store::open(url).await.unwrap();
    store
        .upsert_title(&NewTitle {
            title_id: title.clone(),
            name: title.clone(),
            segment_duration_ms: 1000,
            position_count: 1,
            key_version: 1,
            reference_path: None,
        })
        .await
        .unwrap();
    let issuer = Issuer::new(key());
    let tid = TitleId::new(title.clone()).unwrap();
    let mut issued = Vec::new();
    for account in ["acct-a", "acct-a", "acct-b"] {
        let account = format!("{account}-{title}");
        issued.push(
            issue_session(
                &store,
                &issuer,
                &tid,
                &account,
                Duration::from_secs(3600),
                TokenMode::Indirect,
            )
            .await
            .unwrap(),
        );
    }
    let target = |i: usize| format!("/wmt/{}/{title}/master.m3u8", issued[i].token);

    let edge = Edge::new(
        EdgeConfig::new(dir.path().to_path_buf(), key()),
        store.clone(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let edge = edge.clone();
        tokio::spawn(async move {
            edge.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        })
    };
    for i in 0..3 {
        assert_eq!(status(addr, &target(i)).await, 200, "session {i} plays");
    }

    // One session: refused within the bound, the others still play.
    let s0 = issued[0].session.session_id.clone();
    store
        .revoke(RevocationTarget::Session(&s0), "ops", "restream found")
        .await
        .unwrap();
    let took = until(addr, &target(0), 403)
        .await
        .expect("revoked session refused");
    assert!(took <= BOUND, "refused after {took:?}");
    eprintln!("revocation reached the edge in {took:?}");
    assert_eq!(status(addr, &target(1)).await, 200);
    assert_eq!(status(addr, &target(2)).await, 200);

    // Restored: plays again.
    store
        .restore(RevocationTarget::Session(&s0), "ops", "false alarm")
        .await
        .unwrap();
    let took = until(addr, &target(0), 200)
        .await
        .expect("restored session plays");
    assert!(took <= BOUND, "restored after {took:?}");

    // An account: both its sessions go, the other account's stays.
    let account = issued[1].session.account_ref.clone();
    let events = store
        .revoke(RevocationTarget::Account(&account), "ops", "account shared")
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(until(addr, &target(0), 403).await.is_some());
    assert!(until(addr, &target(1), 403).await.is_some());
    assert_eq!(status(addr, &target(2)).await, 200);
    assert_eq!(edge.revoked_count(), 2);

    let _ = stop.send(());
    server.await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_edge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    revocation_reaches_the_edge(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_edge_on_postgres() {
    let Ok(url) = std::env::var("LEAKTRACE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("LEAKTRACE_REQUIRE_PG").is_none(),
            "LEAKTRACE_REQUIRE_PG is set but LEAKTRACE_TEST_PG_URL is not"
        );
        eprintln!("skipped: LEAKTRACE_TEST_PG_URL is not set");
        return;
    };
    revocation_reaches_the_edge(&url).await;
}
