//! Revocation reaches the edge: a revoked session's next request is refused (403) within the
//! edge's poll interval, without a store read per request; a restored one plays again; an
//! account's sessions go together. On SQLite always, and on PostgreSQL when
//! `LEAKTRACE_TEST_PG_URL` is set (`LEAKTRACE_REQUIRE_PG=1` makes its absence a failure).
//! Every connection is to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use leaktrace_core::{KeyVersion, MasterKey, TitleId, TokenMode};
use leaktrace_edge::admin::AdminApi;
use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_session::{Issuer, issue_session};
use leaktrace_store::{NewTitle, RevocationTarget, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a revocation may take to reach the edge's requests.
const BOUND: Duration = Duration::from_secs(5);

fn key() -> MasterKey {
    MasterKey::from_bytes([0x3c; 32], KeyVersion::new(1))
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

/// One keep-alive connection: the edge remembers the last token checked on a connection, and a
/// revocation must reach that connection's next request too.
struct KeepAlive(tokio::io::BufReader<tokio::net::TcpStream>);

impl KeepAlive {
    async fn open(addr: SocketAddr) -> Self {
        assert!(addr.ip().is_loopback());
        Self(tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ))
    }

    /// The status of `GET target` on this connection (the body is read and dropped).
    async fn status(&mut self, target: &str) -> u16 {
        use tokio::io::AsyncBufReadExt;
        self.0
            .get_mut()
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut status = 0;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).await.unwrap() > 0, "closed");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if status == 0 {
                status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            } else if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        self.0.read_exact(&mut body).await.unwrap();
        status
    }
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
    leaktrace_testkit::hand_made_package(dir.path(), &title);
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
    // A shared PostgreSQL database may hold revocations of earlier runs.
    let before = edge.revoked_count();
    let mut kept = KeepAlive::open(addr).await;
    assert_eq!(kept.status(&target(0)).await, 200);
    assert_eq!(kept.status(&target(0)).await, 200, "a second request");

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
    assert_eq!(
        kept.status(&target(0)).await,
        403,
        "refused on a connection that had checked the token before"
    );
    assert_eq!(
        kept.status(&target(1)).await,
        200,
        "another token, same connection"
    );
    assert_eq!(kept.status(&target(0)).await, 403);
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
    eprintln!("restoration reached the edge in {took:?}");

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
    assert_eq!(edge.revoked_count(), before + 2);

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

/// One request to the admin API: its status and JSON body.
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    assert!(addr.ip().is_loopback());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin.test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// The admin API on loopback: revoke, list, history and restore for a back-end holding the
/// bearer token; 401 without it, and the refusals (400, 404, 405, 409, 413) change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_revokes_and_restores_for_a_back_end() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    let store = Store::open(&url).await.unwrap();
    store
        .upsert_title(&NewTitle {
            title_id: "t".into(),
            name: "t".into(),
            segment_duration_ms: 1000,
            position_count: 1,
            key_version: 1,
            reference_path: None,
        })
        .await
        .unwrap();
    let tid = TitleId::new("t").unwrap();
    let issued = issue_session(
        &store,
        &Issuer::new(key()),
        &tid,
        "acct-x",
        Duration::from_secs(3600),
        TokenMode::Indirect,
    )
    .await
    .unwrap();
    let sid = issued.session.session_id.clone();
    assert!(AdminApi::new(store.clone(), "short").is_err());
    let token = "k7Qz3vX9mP2rT8wY5nB1cD4fG6hJ0lLa";
    let api = AdminApi::new(store.clone(), token).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        api.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let t = Some(token);
    let body =
        format!("{{\"session_id\":\"{sid}\",\"reason\":\"restream\",\"actor\":\"billing\"}}");

    // Without the token, or with another: 401, nothing changed.
    assert_eq!(
        admin(addr, "POST", "/v1/revocations", None, &body).await.0,
        401
    );
    let wrong = Some("k7Qz3vX9mP2rT8wY5nB1cD4fG6hJ0lLb");
    assert_eq!(
        admin(addr, "POST", "/v1/revocations", wrong, &body).await.0,
        401
    );
    assert!(!store.is_revoked(&sid).await.unwrap());

    let (st, j) = admin(addr, "POST", "/v1/revocations", t, &body).await;
    assert_eq!(st, 201, "{j}");
    assert_eq!(j["events"][0]["actor"], "api:billing");
    assert!(store.is_revoked(&sid).await.unwrap());
    let (st, j) = admin(addr, "POST", "/v1/revocations", t, &body).await;
    assert_eq!(st, 409, "{j}");
    assert!(j["error"].as_str().unwrap().contains("already revoked"));
    let (st, j) = admin(addr, "GET", "/v1/revocations", t, "").await;
    assert_eq!(st, 200);
    assert_eq!(j["revoked"][0]["session_id"], sid.as_str());

    // Malformed and unknown: 400, 404, 405, 413.
    for bad in [
        "{",
        "{}",
        "{\"session_id\":\"a\",\"account\":\"b\"}",
        "{\"session\":\"a\"}",
    ] {
        assert_eq!(
            admin(addr, "POST", "/v1/restorations", t, bad).await.0,
            400,
            "{bad}"
        );
    }
    let unknown = "{\"session_id\":\"nobody\"}";
    assert_eq!(
        admin(addr, "POST", "/v1/revocations", t, unknown).await.0,
        404
    );
    assert_eq!(admin(addr, "GET", "/v1/nothing", t, "").await.0, 404);
    assert_eq!(admin(addr, "DELETE", "/v1/revocations", t, "").await.0, 405);
    let huge = format!(
        "{{\"session_id\":\"{sid}\",\"reason\":\"{}\"}}",
        "x".repeat(20_000)
    );
    assert_eq!(
        admin(addr, "POST", "/v1/restorations", t, &huge).await.0,
        413
    );
    assert!(
        store.is_revoked(&sid).await.unwrap(),
        "refusals changed nothing"
    );

    let (st, _) = admin(addr, "POST", "/v1/restorations", t, &body).await;
    assert_eq!(st, 200);
    let (st, j) = admin(
        addr,
        "GET",
        &format!("/v1/sessions/{sid}/revocations"),
        t,
        "",
    )
    .await;
    assert_eq!(st, 200);
    let actions: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revoke", "restore"]);
    assert_eq!(
        admin(addr, "GET", "/v1/sessions/nobody/revocations", t, "")
            .await
            .0,
        404
    );

    let _ = stop.send(());
    server.await.unwrap();
    store.close().await;
}
