//! RDAP recipients (loopback RDAP server, injected bootstrap, cache) and HTTP delivery to a
//! loopback API: retry after 503, idempotency key, Cloudflare-format body, sent once; 429 and
//! 5xx retried with growing backoff (and again in the next run); 400/403/404 refused for good
//! (one request, `failed` with the status, not retried until approved again); dry-run mode
//! contacts nothing and records nothing. Runtime: under 1 s in all.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_store::{NoticeDelivery, Store};
use leaktrace_takedown::config::RecipientOverride;
use leaktrace_takedown::deliver::{Deliverer, SendOutcome, backoff};
use leaktrace_takedown::net::NetPolicy;
use leaktrace_takedown::pipeline::Filed;
use leaktrace_takedown::rdap::{Bootstrap, Resolver, registered_domain};
use leaktrace_takedown::{Level, Mode, TakedownConfig, pipeline};
use std::sync::Arc;

fn rdap_entity(
    roles: &[&str],
    name: &str,
    email: Option<&str>,
    nested: serde_json::Value,
) -> serde_json::Value {
    let mut vcard = vec![
        serde_json::json!(["version", {}, "text", "4.0"]),
        serde_json::json!(["fn", {}, "text", name]),
    ];
    if let Some(e) = email {
        vcard.push(serde_json::json!(["email", {}, "text", e]));
    }
    serde_json::json!({ "objectClassName": "entity", "roles": roles, "vcardArray": ["vcard", vcard], "entities": nested })
}

#[tokio::test]
async fn rdap_ip_and_domain_abuse_contacts_with_cache() {
    let ip_answer = serde_json::json!({
        "objectClassName": "ip network", "name": "EXAMPLE-HOSTING-NET",
        "entities": [
            rdap_entity(&["registrant"], "Example Hosting Ltd", None, serde_json::json!([
                rdap_entity(&["abuse"], "Abuse Desk", Some("abuse@hosting.example"), serde_json::json!([]))
            ]))
        ]
    });
    let domain_answer = serde_json::json!({
        "objectClassName": "domain", "ldhName": "EXAMPLE.NET",
        "entities": [
            rdap_entity(&["registrar"], "Example Registrar Inc.", None, serde_json::json!([
                rdap_entity(&["abuse"], "", Some("abuse@registrar.example"), serde_json::json!([]))
            ]))
        ]
    });
    let (port, seen) = serve(Arc::new(move |req: &Seen, _| {
        if req.line.starts_with("GET /rdap/ip/192.0.2.10 ") {
            (200, ip_answer.to_string())
        } else if req.line.starts_with("GET /rdap/domain/example.net ") {
            (200, domain_answer.to_string())
        } else {
            (404, "{}".into())
        }
    }))
    .await;
    let base = format!("http://127.0.0.1:{port}/rdap/");
    let v4 = format!(
        r#"{{"services": [[["192.0.2.0/24"], ["{base}"]], [["8.0.0.0/8"], ["https://elsewhere.invalid/"]]]}}"#
    );
    let dns = format!(r#"{{"services": [[["net", "org"], ["{base}"]]]}}"#);
    let boot = Bootstrap::from_texts(Some(&v4), None, Some(&dns)).unwrap();
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let overrides = vec![RecipientOverride {
        host: "files.example.net".into(),
        level: Level::Site,
        name: "Site operator".into(),
        email: "dmca@files.example.net".into(),
        endpoint: None,
        token_env: None,
    }];
    // The RDAP server is on loopback: allowed explicitly.
    let r = Resolver::new(overrides, &Default::default(), Some(boot), st.clone())
        .unwrap()
        .with_policy(&NetPolicy::new(true))
        .unwrap();
    let ip = "192.0.2.10".parse().unwrap();

    let host = r
        .resolve("files.example.net", ip, Level::Host, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(host.email, "abuse@hosting.example");
    assert_eq!(host.name, "Example Hosting Ltd");
    let reg = r
        .resolve("files.example.net", ip, Level::Registrar, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reg.email, "abuse@registrar.example");
    assert_eq!(reg.name, "Example Registrar Inc.");
    let site = r
        .resolve("files.example.net", ip, Level::Site, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(site.email, "dmca@files.example.net");
    assert!(
        r.resolve("files.example.net", ip, Level::Cdn, 1000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    // Cached: no new request within the TTL; a new one after it.
    r.resolve("files.example.net", ip, Level::Host, 2000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    r.resolve("files.example.net", ip, Level::Host, 1000 + 86_400)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(
        seen.lock().unwrap()[0]
            .headers
            .iter()
            .find(|(k, _)| k == "accept")
            .unwrap()
            .1,
        "application/rdap+json"
    );
    // An address outside the bootstrap: nobody known.
    let other = "203.0.113.9".parse().unwrap();
    assert!(
        r.resolve("x.example.net", other, Level::Host, 1000)
            .await
            .unwrap()
            .is_none()
    );

    // The compiled-in snapshot.
    let snap = Bootstrap::snapshot().unwrap();
    assert_eq!(
        snap.for_ip("8.8.8.8".parse().unwrap()),
        Some("https://rdap.arin.net/registry/")
    );
    assert_eq!(
        snap.for_ip("193.0.6.139".parse().unwrap()),
        Some("https://rdap.db.ripe.net/")
    );
    assert!(snap.for_domain("www.example.com").is_some());
    assert_eq!(registered_domain("a.b.Example.NET."), "example.net");
}

#[tokio::test]
async fn http_delivery_retries_then_sends_once() {
    let (port, seen) = serve(Arc::new(|_: &Seen, n| {
        if n == 1 {
            (503, r#"{"success":false}"#.into())
        } else {
            (200, r#"{"success":true,"result":"success"}"#.into())
        }
    }))
    .await;
    let path = "/client/v4/accounts/acct/abuse-reports/abuse_dmca";
    let (_d, cfg, st, dl, filed) = http_setup(port, path, Mode::Auto).await;
    assert_eq!(filed.delivery, NoticeDelivery::Approved);
    let out = pipeline::send_approved(&cfg, &st, &dl, 1001, &signer())
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    match &out[0].1 {
        SendOutcome::Sent {
            attempts, response, ..
        } => {
            assert_eq!(*attempts, 2);
            assert!(response.starts_with("200"));
        }
        other => panic!("{other:?}"),
    }
    {
        let g = seen.lock().unwrap();
        assert_eq!(g.len(), 2);
        for req in g.iter() {
            assert!(
                req.line
                    .starts_with("POST /client/v4/accounts/acct/abuse-reports/abuse_dmca ")
            );
            let key = g[0]
                .headers
                .iter()
                .find(|(k, _)| k == "idempotency-key")
                .unwrap();
            assert_eq!(key.1, filed.notice_id);
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            assert_eq!(body["act"], "abuse_dmca");
            assert_eq!(body["urls"], finding().url);
        }
    }
    // Second run: nothing; the evidence bundle holds the notice as sent.
    assert!(
        pipeline::send_approved(&cfg, &st, &dl, 1002, &signer())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    let v =
        leaktrace_takedown::evidence::verify(&pipeline::bundle_dir(&cfg, &finding().finding_id))
            .unwrap();
    assert!(
        v.is_intact() && v.intact.iter().any(|p| p.ends_with(".acns.xml")),
        "{v:?}"
    );
    let rec = st.get_notice(&filed.notice_id).await.unwrap().unwrap();
    assert_eq!((rec.delivery.as_str(), rec.sent_at), ("sent", Some(1001)));

    st.close().await;
}

/// An HTTP recipient (CDN level, every host) at `path` on the loopback `port`, in `mode`,
/// with fast backoff; the finding filed for it at t=1000.
async fn http_setup(
    port: u16,
    path: &str,
    mode: Mode,
) -> (tempfile::TempDir, TakedownConfig, Store, Deliverer, Filed) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let endpoint = format!("http://127.0.0.1:{port}{path}");
    let st = store(dir).await;
    let mut cfg = toml_cfg();
    cfg.mode = mode;
    cfg.evidence_dir = dir.join("evidence");
    cfg.retry.attempts = 3;
    cfg.retry.base_ms = 40;
    cfg.allow_loopback = true; // the endpoint is a loopback server
    cfg.recipients = vec![RecipientOverride {
        host: "*".into(),
        level: Level::Cdn,
        name: "Example CDN".into(),
        email: "abuse@cdn.example".into(),
        endpoint: Some(endpoint),
        token_env: None,
    }];
    let r = offline_resolver(&cfg, &st);
    let filed = pipeline::file_finding(&cfg, &st, &r, &finding(), Level::Cdn, 1000, &signer())
        .await
        .unwrap()
        .unwrap();
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    (d, cfg, st, dl, filed)
}

/// The failure (error, retryable) of the one notice a send run at `now` handles.
async fn failure(cfg: &TakedownConfig, st: &Store, dl: &Deliverer, now: i64) -> (String, bool) {
    let out = pipeline::send_approved(cfg, st, dl, now, &signer())
        .await
        .unwrap();
    match &out[..] {
        [(_, SendOutcome::Failed { error, retryable })] => (error.clone(), *retryable),
        other => panic!("expected one failure, got {other:?}"),
    }
}

#[tokio::test]
async fn http_permanent_4xx_is_not_retried() {
    for status in [400u16, 403, 404] {
        let (port, seen) = serve(Arc::new(move |_: &Seen, _| {
            (
                status,
                r#"{"success":false,"errors":[{"code":10000}]}"#.into(),
            )
        }))
        .await;
        let (_d, cfg, st, dl, filed) = http_setup(port, "/abuse", Mode::Auto).await;
        let (error, retryable) = failure(&cfg, &st, &dl, 1001).await;
        assert!(error.starts_with(&format!("{status} ")), "{error}");
        assert!(!retryable, "{status} must not be retryable");
        assert_eq!(seen.lock().unwrap().len(), 1, "{status}: retried");
        let rec = st.get_notice(&filed.notice_id).await.unwrap().unwrap();
        assert_eq!(rec.delivery, NoticeDelivery::Failed);
        assert_eq!(rec.sent_at, None);
        assert_eq!(rec.attempts, 1);
        assert!(
            rec.last_error
                .as_deref()
                .unwrap()
                .starts_with(&status.to_string()),
            "{rec:?}"
        );
        // Later runs leave it alone: nothing sent, nothing asked.
        for t in [1002, 90_000] {
            assert!(
                pipeline::send_approved(&cfg, &st, &dl, t, &signer())
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
        // A human approves it again: one more request.
        assert!(
            st.approve_notice(&filed.notice_id, "op", 90_001)
                .await
                .unwrap()
        );
        assert!(!failure(&cfg, &st, &dl, 90_002).await.1);
        assert_eq!(seen.lock().unwrap().len(), 2);
        st.close().await;
    }
}

#[tokio::test]
async fn http_429_and_5xx_are_retried_with_backoff() {
    // 429, 500, then 200: three attempts in one run, each wait at least the backoff.
    let (port, seen) = serve(Arc::new(|_: &Seen, n| match n {
        1 => (429, r#"{"success":false}"#.into()),
        2 => (500, r#"{"success":false}"#.into()),
        _ => (200, r#"{"success":true}"#.into()),
    }))
    .await;
    let (_d, cfg, st, dl, filed) = http_setup(port, "/abuse", Mode::Auto).await;
    let out = pipeline::send_approved(&cfg, &st, &dl, 1001, &signer())
        .await
        .unwrap();
    assert!(
        matches!(out[0].1, SendOutcome::Sent { attempts: 3, .. }),
        "{out:?}"
    );
    {
        let g = seen.lock().unwrap();
        assert_eq!(g.len(), 3);
        for (i, attempt) in [(1, 2), (2, 3)] {
            let gap = g[i].at - g[i - 1].at;
            assert!(
                gap >= backoff(&cfg.retry, attempt),
                "attempt {attempt} after {gap:?}"
            );
        }
        assert!(backoff(&cfg.retry, 3) > backoff(&cfg.retry, 2));
    }
    let rec = st.get_notice(&filed.notice_id).await.unwrap().unwrap();
    assert_eq!((rec.delivery.as_str(), rec.sent_at), ("sent", Some(1001)));
    st.close().await;

    // Always 503: every attempt of the run, failed but retryable; the next run tries again.
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (503, "{}".into()))).await;
    let (_d, cfg, st, dl, filed) = http_setup(port, "/abuse", Mode::Auto).await;
    let (error, retryable) = failure(&cfg, &st, &dl, 1001).await;
    assert!(retryable && error.starts_with("503"), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 3);
    let rec = st.get_notice(&filed.notice_id).await.unwrap().unwrap();
    assert_eq!((rec.delivery.as_str(), rec.attempts), ("failed", 1));
    assert!(failure(&cfg, &st, &dl, 1002).await.1);
    assert_eq!(seen.lock().unwrap().len(), 6);
    st.close().await;
}

#[tokio::test]
async fn dry_run_renders_and_contacts_nobody() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let endpoint = format!("http://127.0.0.1:{port}/abuse");
    let (_d, cfg, st, dl, filed) = http_setup(port, "/abuse", Mode::DryRun).await;
    assert_eq!(filed.delivery, NoticeDelivery::DryRun);
    for t in [1001, 1002] {
        let out = pipeline::send_approved(&cfg, &st, &dl, t, &signer())
            .await
            .unwrap();
        match &out[..] {
            [(id, SendOutcome::DryRun { to, rendered })] => {
                assert_eq!(id, &filed.notice_id);
                assert_eq!(to, &endpoint);
                let body: serde_json::Value = serde_json::from_str(rendered).unwrap();
                assert_eq!(body["act"], "abuse_dmca");
                assert_eq!(body["urls"], finding().url);
            }
            other => panic!("{other:?}"),
        }
    }
    // A notice approved for sending is not sent either while the mode is dry-run.
    assert!(
        st.approve_notice(&filed.notice_id, "op", 1003)
            .await
            .unwrap()
    );
    let out = pipeline::send_approved(&cfg, &st, &dl, 1004, &signer())
        .await
        .unwrap();
    assert!(matches!(out[0].1, SendOutcome::DryRun { .. }), "{out:?}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "dry run contacted the endpoint"
    );
    let rec = st.get_notice(&filed.notice_id).await.unwrap().unwrap();
    assert_eq!((rec.delivery.as_str(), rec.sent_at), ("approved", None));
    assert_eq!(rec.message_id, None);
    // Nothing recorded as sent in the bundle either.
    let v =
        leaktrace_takedown::evidence::verify(&pipeline::bundle_dir(&cfg, &finding().finding_id))
            .unwrap();
    assert!(v.intact.iter().all(|p| !p.starts_with("notices/")), "{v:?}");
    // Out of dry-run, the approved notice goes, once.
    let mut live = cfg.clone();
    live.mode = Mode::Auto;
    let dl = Deliverer::new(live.clone(), st.clone(), "t").unwrap();
    let out = pipeline::send_approved(&live, &st, &dl, 1005, &signer())
        .await
        .unwrap();
    assert!(matches!(out[0].1, SendOutcome::Sent { .. }), "{out:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    st.close().await;
}
