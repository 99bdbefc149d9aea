//! The outbound policy of the takedown side: re-checks and RDAP look-ups refuse loopback,
//! private, link-local (cloud metadata), CGNAT, multicast and reserved addresses before
//! connecting (loopback only with `allow_loopback`), RDAP answers are capped, the API token
//! goes only to the endpoint it is configured for and only over https (or loopback when
//! allowed), and plaintext SMTP is refused for anything but a loopback relay. Every server
//! here listens on 127.0.0.1; refused addresses are refused before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_takedown::config::RecipientOverride;
use leaktrace_takedown::deliver::{Deliverer, SendOutcome, token_for};
use leaktrace_takedown::net::{Lookup, NetPolicy};
use leaktrace_takedown::rdap::{Bootstrap, RDAP_MAX_BODY, Resolver};
use leaktrace_takedown::{Level, Mode, TakedownConfig, TakedownError, pipeline};
use std::collections::HashMap;
use std::sync::Arc;

/// A finding at `url`, filed for an HTTP recipient on the loopback `port` and sent, so a
/// re-check of it is due at t=1100.
async fn sent_finding(
    port: u16,
    url: &str,
) -> (tempfile::TempDir, TakedownConfig, leaktrace_store::Store) {
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let mut cfg = toml_cfg();
    cfg.mode = Mode::Auto;
    cfg.allow_loopback = true;
    cfg.evidence_dir = d.path().join("evidence");
    cfg.status.recheck_interval_s = 50;
    cfg.recipients = vec![RecipientOverride {
        host: "*".into(),
        level: Level::Host,
        name: "Loopback host".into(),
        email: "abuse@loopback.test".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}/abuse")),
        token_env: None,
    }];
    let mut f = finding();
    f.url = url.into();
    let r = offline_resolver(&cfg, &st);
    pipeline::file_finding(&cfg, &st, &r, &f, Level::Host, 1000, &signer())
        .await
        .unwrap()
        .unwrap();
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let out = pipeline::send_approved(&cfg, &st, &dl, 1001, &signer())
        .await
        .unwrap();
    assert!(
        matches!(out[..], [(_, SendOutcome::Sent { .. })]),
        "{out:?}"
    );
    (d, cfg, st)
}

#[tokio::test]
async fn recheck_of_loopback_url_is_refused_by_default() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let url = format!("http://127.0.0.1:{port}/files/x.mp4");
    let (_d, mut cfg, st) = sent_finding(port, &url).await;
    cfg.allow_loopback = false;
    let client = pipeline::recheck_client().unwrap();
    let checks = pipeline::recheck_due(&cfg, &st, &client, 1100)
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    let files = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.line.contains("/files/"))
        .count();
    assert_eq!(files, 0, "the re-check connected to a loopback URL");
    assert_eq!(checks[0].status, 0);
    assert!(!checks[0].removed);
    let why = checks[0].error.clone().unwrap_or_default();
    assert!(why.contains("loopback"), "{why}");

    // With the opt-in the same URL is checked (tests, local use).
    cfg.allow_loopback = true;
    let client = pipeline::recheck_client_with(&NetPolicy::from_config(&cfg)).unwrap();
    let checks = pipeline::recheck_due(&cfg, &st, &client, 1200)
        .await
        .unwrap();
    assert_eq!((checks.len(), checks[0].status), (1, 200));
    st.close().await;
}

#[tokio::test]
async fn recheck_of_metadata_address_is_refused_before_connecting() {
    let (port, _seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let (_d, cfg, st) = sent_finding(port, "http://169.254.169.254/latest/meta-data/").await;
    // Even with loopback allowed, link-local is refused: the guard answers, no connection.
    let client = pipeline::recheck_client_with(&NetPolicy::from_config(&cfg)).unwrap();
    let checks = pipeline::recheck_due(&cfg, &st, &client, 1100)
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, 0);
    let why = checks[0].error.clone().unwrap_or_default();
    assert!(
        why.contains("169.254.169.254") && why.contains("link-local"),
        "{why}"
    );
    st.close().await;
}

#[tokio::test]
async fn recheck_of_a_name_resolving_to_a_private_address_is_refused() {
    let (port, _seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let (_d, cfg, st) = sent_finding(port, "http://internal.example.net/x").await;
    let table = HashMap::from([(
        "internal.example.net".to_owned(),
        vec!["10.0.0.5".parse().unwrap()],
    )]);
    let policy = NetPolicy {
        allow_loopback: false,
        lookup: Lookup::Static(Arc::new(table)),
    };
    let client = pipeline::recheck_client_with(&policy).unwrap();
    let checks = pipeline::recheck_due(&cfg, &st, &client, 1100)
        .await
        .unwrap();
    assert_eq!(checks[0].status, 0);
    let why = checks[0].error.clone().unwrap_or_default();
    assert!(why.contains("10.0.0.5") && why.contains("private"), "{why}");
    st.close().await;
}

#[tokio::test]
async fn rdap_base_on_a_private_address_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let r = Resolver::new(
        vec![],
        &Default::default(),
        Some(Bootstrap::default()),
        st.clone(),
    )
    .unwrap();
    for base in [
        "http://10.1.2.3/rdap/",
        "https://[::ffff:192.168.0.1]/",
        "http://169.254.169.254/",
    ] {
        let e = r.lookup(base, "ip", "192.0.2.10", 1000).await.unwrap_err();
        assert!(matches!(e, TakedownError::Refused { .. }), "{base}: {e}");
    }
    let e = r
        .lookup("http://10.1.2.3/rdap/", "ip", "192.0.2.10", 1000)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("private"), "{e}");
    st.close().await;
}

/// An RDAP look-up of 192.0.2.10 at the loopback server on `port` (loopback allowed), with a
/// store in `dir`, which must fail; the store and the error.
async fn failed_rdap_lookup(dir: &std::path::Path, port: u16) -> (leaktrace_store::Store, String) {
    let st = store(dir).await;
    let r = Resolver::new(
        vec![],
        &Default::default(),
        Some(Bootstrap::default()),
        st.clone(),
    )
    .unwrap()
    .with_policy(&NetPolicy::new(true))
    .unwrap();
    let e = r
        .lookup(
            &format!("http://127.0.0.1:{port}/rdap/"),
            "ip",
            "192.0.2.10",
            1000,
        )
        .await
        .unwrap_err()
        .to_string();
    (st, e)
}

#[tokio::test]
async fn rdap_answer_over_the_cap_is_refused() {
    let big = format!(
        "{{\"objectClassName\": \"ip network\", \"name\": \"{}\"}}",
        "x".repeat(RDAP_MAX_BODY)
    );
    let (port, _seen) = serve(Arc::new(move |_: &Seen, _| (200, big.clone()))).await;
    let d = tempfile::tempdir().unwrap();
    let (st, e) = failed_rdap_lookup(d.path(), port).await;
    assert!(e.contains("larger than"), "{e}");
    // Nothing was cached.
    assert!(
        st.rdap_cached("ip/192.0.2.10", 1000)
            .await
            .unwrap()
            .is_none()
    );
    st.close().await;
}

/// One HTTP notice to the loopback endpoint `endpoint`, with `cfg_edit` applied; returns the
/// outcome and the requests the server saw.
async fn send_one(
    endpoint_host: &str,
    cfg_edit: impl FnOnce(&mut TakedownConfig, &str),
) -> (SendOutcome, Vec<Seen>) {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let endpoint = format!("http://{endpoint_host}:{port}/abuse");
    let mut cfg = toml_cfg();
    cfg.mode = Mode::Auto;
    cfg.allow_loopback = true;
    cfg.evidence_dir = d.path().join("evidence");
    cfg.retry.attempts = 1;
    cfg.recipients = vec![RecipientOverride {
        host: "*".into(),
        level: Level::Cdn,
        name: "Example CDN".into(),
        email: "abuse@cdn.example".into(),
        endpoint: Some(endpoint.clone()),
        token_env: None,
    }];
    cfg_edit(&mut cfg, &endpoint);
    let r = offline_resolver(&cfg, &st);
    pipeline::file_finding(&cfg, &st, &r, &finding(), Level::Cdn, 1000, &signer())
        .await
        .unwrap()
        .unwrap();
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let mut out = pipeline::send_approved(&cfg, &st, &dl, 1001, &signer())
        .await
        .unwrap();
    st.close().await;
    let seen = seen.lock().unwrap().clone();
    (out.remove(0).1, seen)
}

fn authorization(s: &Seen) -> Option<String> {
    s.headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone())
}

/// An environment variable cargo sets for every test run: the token's stand-in.
const TOKEN_ENV: &str = "CARGO_PKG_NAME";

#[tokio::test]
async fn token_goes_only_to_the_host_it_is_bound_to() {
    // Bound to another host: the notice goes out without the token.
    let (out, seen) = send_one("127.0.0.1", |cfg, _| {
        cfg.http_token_env = Some(TOKEN_ENV.into());
        cfg.http_token_host = Some("api.cloudflare.com".into());
    })
    .await;
    assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
    assert_eq!(seen.len(), 1);
    assert_eq!(authorization(&seen[0]), None, "token sent to another host");

    // Bound to this host: it carries the token.
    let (out, seen) = send_one("127.0.0.1", |cfg, _| {
        cfg.http_token_env = Some(TOKEN_ENV.into());
        cfg.http_token_host = Some("127.0.0.1".into());
    })
    .await;
    assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
    let want = format!("Bearer {}", std::env::var(TOKEN_ENV).unwrap());
    assert_eq!(authorization(&seen[0]), Some(want.clone()));

    // A per-recipient token goes to that recipient's endpoint.
    let (_, seen) = send_one("127.0.0.1", |cfg, _| {
        cfg.recipients[0].token_env = Some(TOKEN_ENV.into());
    })
    .await;
    assert_eq!(authorization(&seen[0]), Some(want));
}

#[tokio::test]
async fn token_bearing_delivery_over_plain_http_is_refused() {
    // Loopback without the opt-in counts as any other plain-http endpoint.
    let (out, seen) = send_one("127.0.0.1", |cfg, _| {
        cfg.allow_loopback = false;
        cfg.recipients[0].token_env = Some(TOKEN_ENV.into());
    })
    .await;
    match out {
        SendOutcome::Failed { error, retryable } => {
            assert!(error.contains("https"), "{error}");
            assert!(!retryable);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(seen.is_empty(), "the endpoint was contacted");

    // The rule itself, for a remote endpoint (no connection involved).
    let mut cfg = toml_cfg();
    cfg.http_token_env = Some(TOKEN_ENV.into());
    cfg.http_token_host = Some("abuse.example.com".into());
    let e = token_for(&cfg, "http://abuse.example.com/report").unwrap_err();
    assert!(e.contains("https"), "{e}");
    assert!(
        token_for(&cfg, "https://abuse.example.com/report")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        token_for(&cfg, "https://other.example.com/report").unwrap(),
        None
    );
}

#[test]
fn token_env_needs_a_bound_host() {
    let mut cfg = toml_cfg();
    cfg.http_token_env = Some(TOKEN_ENV.into());
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("http_token_host"), "{e}");
}

#[test]
fn plaintext_smtp_only_to_a_loopback_relay() {
    let with = |host: &str| -> TakedownConfig {
        let mut cfg = toml_cfg();
        cfg.smtp = Some(
            toml::from_str(&format!(
                "host = {host:?}\nport = 25\nsecurity = \"none\"\nfrom = \"a@studio.example\"\n"
            ))
            .unwrap(),
        );
        cfg
    };
    let e = with("mail.example.com").validate().unwrap_err().to_string();
    assert!(
        e.contains("mail.example.com") && e.contains("starttls") && e.contains("tls"),
        "{e}"
    );
    for ok in ["127.0.0.1", "localhost", "::1"] {
        with(ok).validate().unwrap();
    }
}

#[tokio::test]
async fn rdap_redirect_to_a_private_address_is_not_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/rdap/ip/192.0.2.10\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            let _ = s.shutdown().await;
        }
    });
    let d = tempfile::tempdir().unwrap();
    let (st, e) = failed_rdap_lookup(d.path(), port).await;
    assert!(e.contains("10.0.0.1") && e.contains("private"), "{e}");
    st.close().await;
}
