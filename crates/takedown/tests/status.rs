//! Status over time, with the clock driven through the pipeline's `now` (no sleeps): the
//! escalation ladder (a notice still up after its level's grace period goes to the next rung
//! with a recipient, site → host → (no CDN) → registrar, once each; removal closes them all;
//! closed notices never escalate) and manual dispositions (`mark`: allowed moves, refused ones
//! with the reason, unsent notices withdrawn). Loopback HTTP only. Runtime: under 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_store::Store;
use leaktrace_takedown::config::RecipientOverride;
use leaktrace_takedown::deliver::{Deliverer, SendOutcome};
use leaktrace_takedown::net::NetPolicy;
use leaktrace_takedown::pipeline::{self, Disposition};
use leaktrace_takedown::rdap::Resolver;
use leaktrace_takedown::{FindingEvidence, Level, Mode, TakedownConfig, TakedownError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn over(level: Level, port: u16) -> RecipientOverride {
    RecipientOverride {
        host: "127.0.0.1".into(),
        level,
        name: format!("Loopback {}", level.as_str()),
        email: format!("abuse-{}@loopback.test", level.as_str()),
        endpoint: Some(format!("http://127.0.0.1:{port}/{}", level.as_str())),
        token_env: None,
    }
}

/// The finding, its file on the loopback server.
fn loopback_finding(port: u16, id: &str) -> FindingEvidence {
    let mut f = finding();
    f.finding_id = id.into();
    f.url = format!("http://127.0.0.1:{port}/files/{id}.mp4");
    f.resolved_ip = "127.0.0.1".parse().unwrap();
    f
}

struct Env {
    cfg: TakedownConfig,
    st: Store,
    res: Resolver,
    dl: Deliverer,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn env(port: u16, mode: Mode) -> Env {
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let mut cfg = toml_cfg();
    cfg.mode = mode;
    cfg.evidence_dir = d.path().join("evidence");
    cfg.status.recheck_interval_s = 50;
    // The files and endpoints are on loopback.
    cfg.allow_loopback = true;
    cfg.status.grace_s = [(Level::Site, 100), (Level::Host, 200), (Level::Cdn, 300)].into();
    // Site, host and registrar known; no CDN.
    cfg.recipients = vec![
        over(Level::Site, port),
        over(Level::Host, port),
        over(Level::Registrar, port),
    ];
    let res = offline_resolver(&cfg, &st);
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let client = pipeline::recheck_client_with(&NetPolicy::from_config(&cfg)).unwrap();
    Env {
        cfg,
        st,
        res,
        dl,
        client,
        _dir: d,
    }
}

impl Env {
    async fn send(&self, now: i64) -> Vec<String> {
        pipeline::send_approved(&self.cfg, &self.st, &self.dl, now, &signer())
            .await
            .unwrap()
            .into_iter()
            .map(|(id, o)| {
                assert!(matches!(o, SendOutcome::Sent { .. }), "{id}: {o:?}");
                id
            })
            .collect()
    }
    async fn escalate(&self, now: i64) -> Vec<(String, String)> {
        pipeline::escalate_due(&self.cfg, &self.st, &self.res, now)
            .await
            .unwrap()
            .into_iter()
            .map(|(old, f)| (old, f.notice_id))
            .collect()
    }
    /// Escalation at `now` must move exactly `from` up, to `level`: the new notice's id.
    async fn escalate_one(&self, now: i64, from: &str, level: &str) -> String {
        let esc = self.escalate(now).await;
        assert_eq!(esc.len(), 1, "{esc:?}");
        assert_eq!(esc[0].0, from);
        let rec = self.st.get_notice(&esc[0].1).await.unwrap().unwrap();
        assert_eq!(rec.level.as_str(), level);
        rec.notice_id
    }
}

#[tokio::test]
async fn escalation_ladder_until_removal() {
    let removed = Arc::new(AtomicBool::new(false));
    let gone = removed.clone();
    let (port, seen) = serve(Arc::new(move |req: &Seen, _| {
        if req.line.starts_with("GET /files/") && gone.load(Ordering::SeqCst) {
            (404, "{}".into())
        } else {
            (200, "{}".into())
        }
    }))
    .await;
    let e = env(port, Mode::Auto).await;
    let f = loopback_finding(port, "F-ladder");
    let site = pipeline::file_finding(&e.cfg, &e.st, &e.res, &f, Level::Site, 1000, &signer())
        .await
        .unwrap()
        .unwrap()
        .notice_id;
    assert_eq!(e.send(1000).await, [site.as_str()]);

    // Still up at the re-check; the site's grace (100 s) has not passed at 1099.
    let checks = pipeline::recheck_due(&e.cfg, &e.st, &e.client, 1050)
        .await
        .unwrap();
    assert_eq!(
        (checks.len(), checks[0].status, checks[0].removed),
        (1, 200, false)
    );
    assert!(e.escalate(1099).await.is_empty());

    // At 1100: to the host, once.
    let host = e.escalate_one(1100, &site, "host").await;
    assert!(e.escalate(1100).await.is_empty());
    let rec = e.st.get_notice(&site).await.unwrap().unwrap();
    assert_eq!(rec.escalated_at, Some(1100));
    assert_eq!(e.send(1100).await, [host.as_str()]);

    // The host's grace (200 s) runs from its own sending; then past the CDN (no recipient) to
    // the registrar.
    assert!(e.escalate(1299).await.is_empty());
    let registrar = e.escalate_one(1300, &host, "registrar").await;
    assert_eq!(e.send(1300).await, [registrar.as_str()]);
    // The top rung has no grace period: nothing further, ever.
    assert!(e.escalate(1_000_000).await.is_empty());

    // Each rung got the same content at its own endpoint.
    let posts: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.line.starts_with("POST "))
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            (
                r.line.split(' ').nth(1).unwrap().to_owned(),
                body["urls"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        posts,
        ["/site", "/host", "/registrar"].map(|p| (p.to_owned(), f.url.clone()))
    );

    // The file goes: the next re-check closes every notice about it.
    removed.store(true, Ordering::SeqCst);
    let checks = pipeline::recheck_due(&e.cfg, &e.st, &e.client, 1400)
        .await
        .unwrap();
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks.iter().all(|c| c.removed && c.status == 404));
    let by_id = |id: &str| {
        checks
            .iter()
            .find(|c| c.notice_id == id)
            .unwrap()
            .notice_to_removal_s
    };
    assert_eq!(by_id(&site), Some(400));
    assert_eq!(by_id(&registrar), Some(100));
    for id in [&site, &host, &registrar] {
        let r = e.st.get_notice(id).await.unwrap().unwrap();
        assert_eq!(
            (r.disposition.as_str(), r.closed_at),
            ("closed", Some(1400))
        );
    }
    e.st.close().await;
}

#[tokio::test]
async fn closed_or_answered_notices_do_not_escalate_and_approval_mode_waits() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let e = env(port, Mode::Auto).await;
    let mut ids = Vec::new();
    for fid in ["F-closed", "F-counter", "F-open"] {
        let f = loopback_finding(port, fid);
        ids.push(
            pipeline::file_finding(&e.cfg, &e.st, &e.res, &f, Level::Site, 1000, &signer())
                .await
                .unwrap()
                .unwrap()
                .notice_id,
        );
    }
    assert_eq!(e.send(1000).await.len(), 3);
    pipeline::mark(&e.st, &ids[0], Disposition::Closed, 1010)
        .await
        .unwrap();
    pipeline::mark(&e.st, &ids[1], Disposition::CounterNotice, 1010)
        .await
        .unwrap();
    e.escalate_one(2000, &ids[2], "host").await;
    // In approval mode the escalated notice waits for a human.
    let mut approval = e.cfg.clone();
    approval.mode = Mode::Approval;
    pipeline::mark(&e.st, &ids[1], Disposition::Open, 2001)
        .await
        .unwrap();
    let esc = pipeline::escalate_due(&approval, &e.st, &e.res, 2002)
        .await
        .unwrap();
    assert_eq!(esc.len(), 1, "{esc:?}");
    assert_eq!(esc[0].0, ids[1]);
    assert_eq!(esc[0].1.delivery.as_str(), "pending_approval");
    assert_eq!(seen.lock().unwrap().len(), 3);
    e.st.close().await;
}

#[tokio::test]
async fn mark_allows_and_refuses_moves() {
    let (port, seen) = serve(Arc::new(|_: &Seen, _| (200, "{}".into()))).await;
    let e = env(port, Mode::Approval).await;
    let f = loopback_finding(port, "F-mark");
    let id = pipeline::file_finding(&e.cfg, &e.st, &e.res, &f, Level::Site, 1000, &signer())
        .await
        .unwrap()
        .unwrap()
        .notice_id;
    let refused = |r: Result<_, TakedownError>, needle: &str| match r {
        Err(err @ TakedownError::Transition { .. }) => {
            assert!(err.to_string().contains(needle), "{err}")
        }
        other => panic!("expected a refused move ({needle}), got {other:?}"),
    };
    // Not delivered: the recipient cannot have rejected or countered it.
    for to in [Disposition::Rejected, Disposition::CounterNotice] {
        refused(
            pipeline::mark(&e.st, &id, to, 1001).await,
            "has not received it",
        );
    }
    refused(
        pipeline::mark(&e.st, &id, Disposition::Open, 1001).await,
        "already open",
    );
    assert!(matches!(
        pipeline::mark(&e.st, "N-nope", Disposition::Closed, 1001).await,
        Err(TakedownError::UnknownNotice(_))
    ));
    e.st.approve_notice(&id, "op", 1002).await.unwrap();
    assert_eq!(e.send(1003).await, [id.as_str()]);
    // Delivered: rejected, back to open, counter-notice, closed.
    for (to, want) in [
        (Disposition::Rejected, "rejected"),
        (Disposition::Open, "open"),
        (Disposition::CounterNotice, "counter_notice"),
    ] {
        let r = pipeline::mark(&e.st, &id, to, 1004).await.unwrap();
        assert_eq!(r.disposition.as_str(), want);
    }
    refused(
        pipeline::mark(&e.st, &id, Disposition::Rejected, 1005).await,
        "back to open or be closed",
    );
    let r = pipeline::mark(&e.st, &id, Disposition::Closed, 1006)
        .await
        .unwrap();
    assert_eq!((r.closed_at, r.next_check_at), (Some(1006), None));
    for to in Disposition::ALL {
        refused(pipeline::mark(&e.st, &id, to, 1007).await, "closed");
    }
    assert_eq!(
        e.st.get_notice(&id).await.unwrap().unwrap().closed_at,
        Some(1006)
    );

    // Closing a notice before it is sent withdraws it: approval and sending no longer apply.
    let f = loopback_finding(port, "F-withdrawn");
    let w = pipeline::file_finding(&e.cfg, &e.st, &e.res, &f, Level::Site, 2000, &signer())
        .await
        .unwrap()
        .unwrap()
        .notice_id;
    pipeline::mark(&e.st, &w, Disposition::Closed, 2001)
        .await
        .unwrap();
    assert!(!e.st.approve_notice(&w, "op", 2002).await.unwrap());
    assert!(e.send(2003).await.is_empty());
    assert_eq!(seen.lock().unwrap().len(), 1);
    e.st.close().await;
}
