//! HTTP notice delivery under the outbound address policy: an endpoint on loopback is refused
//! unless `allow_loopback` is set, an endpoint whose name resolves to a private address is
//! refused before any connection (injected resolver), both as permanent failures; and an
//! endpoint's answer is read only up to `HTTP_MAX_BODY`, however much the server sends.
//! Every server here listens on 127.0.0.1; nothing else is ever connected to.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_store::Store;
use leaktrace_takedown::config::RecipientOverride;
use leaktrace_takedown::deliver::{Deliverer, SendOutcome};
use leaktrace_takedown::net::{Lookup, NetPolicy};
use leaktrace_takedown::{Level, Mode, TakedownConfig, pipeline};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A store in a tempdir with one notice for an HTTP recipient at `endpoint` (CDN level, every
/// host), filed at t=1000 in auto mode; `edit` adjusts the configuration first.
async fn filed(
    endpoint: &str,
    edit: impl FnOnce(&mut TakedownConfig),
) -> (tempfile::TempDir, TakedownConfig, Store) {
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let mut cfg = toml_cfg();
    cfg.mode = Mode::Auto;
    cfg.evidence_dir = d.path().join("evidence");
    cfg.retry.attempts = 3;
    cfg.retry.base_ms = 40;
    cfg.recipients = vec![RecipientOverride {
        host: "*".into(),
        level: Level::Cdn,
        name: "Example CDN".into(),
        email: "abuse@cdn.example".into(),
        endpoint: Some(endpoint.to_owned()),
        token_env: None,
    }];
    edit(&mut cfg);
    let r = offline_resolver(&cfg, &st);
    pipeline::file_finding(&cfg, &st, &r, &finding(), Level::Cdn, 1000, &signer())
        .await
        .unwrap()
        .unwrap();
    (d, cfg, st)
}

/// One send run at t=1001 with `dl`: the outcome of the one notice, and how long it took.
async fn send_one(cfg: &TakedownConfig, st: &Store, dl: &Deliverer) -> (SendOutcome, Duration) {
    let t = Instant::now();
    let mut out = pipeline::send_approved(cfg, st, dl, 1001, &signer())
        .await
        .unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    (out.remove(0).1, t.elapsed())
}

/// The error of a permanent failure (panics on anything else).
fn permanent(out: &SendOutcome) -> String {
    match out {
        SendOutcome::Failed {
            error,
            retryable: false,
        } => error.clone(),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn loopback_endpoint_needs_allow_loopback() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, r#"{"success":true}"#.into()))).await;
    for host in ["127.0.0.1", "localhost"] {
        let endpoint = format!("http://{host}:{port}/abuse");
        let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = false).await;
        let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
        let (out, _) = send_one(&cfg, &st, &dl).await;
        let error = permanent(&out);
        assert!(
            error.contains("address policy") && error.contains("loopback"),
            "{host}: {error}"
        );
        assert!(
            seen.lock().unwrap().is_empty(),
            "{host}: endpoint contacted"
        );
        let rec = st
            .get_notice(&finding_notice(&st).await)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rec.delivery.as_str(), rec.sent_at), ("failed", None));
        assert_eq!(rec.last_error.as_deref(), Some(error.as_str()));
        // A later run does not try again: the refusal is permanent.
        assert!(
            pipeline::send_approved(&cfg, &st, &dl, 90_000, &signer())
                .await
                .unwrap()
                .is_empty()
        );
        st.close().await;
    }
    assert!(seen.lock().unwrap().is_empty());

    // With the opt-in the same endpoint gets the notice.
    let endpoint = format!("http://127.0.0.1:{port}/abuse");
    let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = true).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let (out, _) = send_one(&cfg, &st, &dl).await;
    assert!(
        matches!(&out, SendOutcome::Sent { response, attempts: 1, .. } if response.starts_with("200 ")),
        "{out:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    st.close().await;
}

/// A policy whose look-ups answer from `table` only (no DNS), loopback as `allow_loopback`.
fn static_policy(allow_loopback: bool, table: &[(&str, &str)]) -> NetPolicy {
    let t: HashMap<String, Vec<IpAddr>> = table
        .iter()
        .map(|(n, ip)| ((*n).to_owned(), vec![ip.parse().unwrap()]))
        .collect();
    NetPolicy {
        allow_loopback,
        lookup: Lookup::Static(Arc::new(t)),
    }
}

/// An environment variable cargo sets for every test run: the token's stand-in.
const TOKEN_ENV: &str = "CARGO_PKG_NAME";

#[tokio::test]
async fn endpoint_name_resolving_to_a_private_address_is_refused_without_connecting() {
    // `.invalid` names never resolve in DNS (RFC 6761): only the injected table knows them,
    // and it maps them to refused addresses, so there is nothing to connect to.
    let table = [
        ("notices.cdn.invalid", "10.0.0.1"),
        ("meta.cdn.invalid", "169.254.169.254"),
        ("mapped.cdn.invalid", "::ffff:192.168.1.1"),
    ];
    for (name, ip) in table {
        for allow_loopback in [false, true] {
            // A token bound to the host, over https: the token rule passes, the address
            // policy refuses.
            let endpoint = format!("https://{name}/client/v4/abuse");
            let (_d, cfg, st) = filed(&endpoint, |c| {
                c.allow_loopback = allow_loopback;
                c.http_token_env = Some(TOKEN_ENV.into());
                c.http_token_host = Some(name.into());
            })
            .await;
            let dl = Deliverer::new(cfg.clone(), st.clone(), "t")
                .unwrap()
                .with_policy(&static_policy(allow_loopback, &table))
                .unwrap();
            let (out, took) = send_one(&cfg, &st, &dl).await;
            let error = permanent(&out);
            let ip_text = ip.parse::<IpAddr>().unwrap().to_string();
            assert!(
                error.contains("refused by the address policy")
                    && error.contains(name)
                    && error.contains(&ip_text),
                "{name}: {error}"
            );
            // One attempt (3 allowed, with backoff): no retry of a refusal.
            assert!(took < Duration::from_secs(5), "{name}: took {took:?}");
            let rec = st
                .get_notice(&finding_notice(&st).await)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((rec.delivery.as_str(), rec.attempts), ("failed", 1));
            assert_eq!(rec.last_error.as_deref(), Some(error.as_str()));
            st.close().await;
        }
    }
    // The reason names the range.
    let endpoint = "http://notices.cdn.invalid/abuse";
    let (_d, cfg, st) = filed(endpoint, |_| {}).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t")
        .unwrap()
        .with_policy(&static_policy(false, &table))
        .unwrap();
    let error = permanent(&send_one(&cfg, &st, &dl).await.0);
    assert_eq!(
        error,
        "http://notices.cdn.invalid/abuse: refused by the address policy: notices.cdn.invalid \
         resolves only to refused addresses: 10.0.0.1 (private (RFC 1918))"
    );
    st.close().await;
}

#[tokio::test]
async fn endpoint_name_resolving_to_loopback_follows_allow_loopback() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, r#"{"success":true}"#.into()))).await;
    let table = [("api.loopback.invalid", "127.0.0.1")];
    let endpoint = format!("http://api.loopback.invalid:{port}/abuse");

    // Without the opt-in the guard refuses the resolved address: permanent, nothing sent.
    let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = false).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t")
        .unwrap()
        .with_policy(&static_policy(false, &table))
        .unwrap();
    let error = permanent(&send_one(&cfg, &st, &dl).await.0);
    assert!(
        error.contains("127.0.0.1") && error.contains("loopback"),
        "{error}"
    );
    assert!(seen.lock().unwrap().is_empty(), "endpoint contacted");
    st.close().await;

    // With it, the notice reaches the loopback server through the injected resolver.
    let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = true).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t")
        .unwrap()
        .with_policy(&static_policy(true, &table))
        .unwrap();
    let (out, _) = send_one(&cfg, &st, &dl).await;
    assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    st.close().await;

    // A token still goes over plain http only to a loopback literal: a name that resolves
    // to loopback does not qualify, and nothing is sent.
    let (_d, cfg, st) = filed(&endpoint, |c| {
        c.allow_loopback = true;
        c.recipients[0].token_env = Some(TOKEN_ENV.into());
    })
    .await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t")
        .unwrap()
        .with_policy(&static_policy(true, &table))
        .unwrap();
    let error = permanent(&send_one(&cfg, &st, &dl).await.0);
    assert!(error.contains("https"), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 1, "token-bearing request sent");
    st.close().await;
}

/// The id of the one notice in `st`.
async fn finding_notice(st: &Store) -> String {
    let all = st.list_notices(None).await.unwrap();
    assert_eq!(all.len(), 1);
    all[0].notice_id.clone()
}

/// A loopback endpoint that reads one request and answers 200 with a `total`-byte body,
/// written in 64 KiB blocks until the client hangs up. The handle yields the body bytes
/// written (whole blocks the kernel accepted).
async fn flood_server(total: usize) -> (u16, tokio::task::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        // The request: head, then content-length bytes of body.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let need = loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed before the request was complete");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                break p + 4 + len;
            }
        };
        while buf.len() < need {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed before the request body was complete");
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\nconnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b'x'; 64 * 1024];
        let mut written = 0usize;
        while written < total {
            if s.write_all(&block).await.is_err() {
                break;
            }
            written += block.len();
        }
        written
    });
    (port, h)
}

#[tokio::test]
async fn endpoint_answer_is_read_only_up_to_the_cap() {
    const TOTAL: usize = 64 << 20;
    let (port, server) = flood_server(TOTAL).await;
    let endpoint = format!("http://127.0.0.1:{port}/abuse");
    let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = true).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let (out, took) = send_one(&cfg, &st, &dl).await;
    let SendOutcome::Sent { response, .. } = &out else {
        panic!("{out:?}")
    };
    // The summary: the status and the first 500 characters of the answer.
    assert_eq!(response, &format!("200 {}", "x".repeat(500)));
    let written = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server still writing 30 s after the send returned: the client kept reading")
        .unwrap();
    // The client hung up after the cap: what the server got into the socket before the
    // reset is the cap plus kernel and client buffers, far from the whole answer.
    assert!(
        written < 16 << 20,
        "{written} of {TOTAL} bytes written before the client closed"
    );
    assert!(took < Duration::from_secs(10), "send took {took:?}");
    st.close().await;
}

/// A notice whose evidence bundle no longer verifies is not sent (nothing contacted, nothing
/// recorded), and goes out once the bundle is restored.
#[tokio::test]
async fn a_notice_is_sent_only_while_its_evidence_verifies() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, r#"{"success":true}"#.into()))).await;
    let endpoint = format!("http://127.0.0.1:{port}/abuse");
    let (_d, cfg, st) = filed(&endpoint, |c| c.allow_loopback = true).await;
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let chain = pipeline::bundle_dir(&cfg, &finding().finding_id).join("chain.json");
    let good = std::fs::read(&chain).unwrap();
    std::fs::write(&chain, b"[]").unwrap();
    let (out, _) = send_one(&cfg, &st, &dl).await;
    match &out {
        SendOutcome::EvidenceRefused { reason } => {
            assert!(reason.contains("modified: chain.json"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty(), "endpoint contacted");
    let id = finding_notice(&st).await;
    let rec = st.get_notice(&id).await.unwrap().unwrap();
    assert_eq!((rec.delivery.as_str(), rec.sent_at), ("approved", None));

    std::fs::write(&chain, good).unwrap();
    let (out, _) = send_one(&cfg, &st, &dl).await;
    assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    st.close().await;
}
