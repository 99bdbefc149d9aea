//! RDAP recipients (loopback RDAP server, injected bootstrap, cache) and HTTP delivery
//! (loopback API: retry after 503, idempotency key, Cloudflare-format body, sent once).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use leaktrace_store::Store;
use leaktrace_takedown::config::RecipientOverride;
use leaktrace_takedown::deliver::{Deliverer, SendOutcome};
use leaktrace_takedown::rdap::{Bootstrap, Resolver, registered_domain};
use leaktrace_takedown::{Level, Mode, TakedownConfig, pipeline};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the loopback server saw it: request line, headers (lower-case), body.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

type Responder = Arc<dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync>;

/// A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection).
async fn serve(respond: Responder) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break (buf.len(), 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0usize);
                    break (p, len);
                }
            };
            while buf.len() < head_end + 4 + len {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.lines();
            let line = lines.next().unwrap_or_default().to_owned();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            let body =
                String::from_utf8_lossy(buf.get(head_end + 4..).unwrap_or_default()).into_owned();
            let req = Seen {
                line,
                headers,
                body,
            };
            let n = {
                let mut g = log.lock().unwrap();
                g.push(req.clone());
                g.len()
            };
            let (status, text) = respond(&req, n);
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
            let _ = s.shutdown().await;
        }
    });
    (port, seen)
}

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

async fn store(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display()))
        .await
        .unwrap()
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
    }];
    let r = Resolver::new(overrides, &Default::default(), Some(boot), st.clone()).unwrap();
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
    let d = tempfile::tempdir().unwrap();
    let st = store(d.path()).await;
    let endpoint =
        format!("http://127.0.0.1:{port}/client/v4/accounts/acct/abuse-reports/abuse_dmca");
    let mut cfg: TakedownConfig = toml_cfg();
    cfg.mode = Mode::Auto;
    cfg.evidence_dir = d.path().join("evidence");
    cfg.retry.base_ms = 10;
    cfg.recipients = vec![RecipientOverride {
        host: "*".into(),
        level: Level::Cdn,
        name: "Example CDN".into(),
        email: "abuse@cdn.example".into(),
        endpoint: Some(endpoint),
    }];
    let r = Resolver::new(
        cfg.recipients.clone(),
        &cfg.rdap,
        Some(Bootstrap::default()),
        st.clone(),
    )
    .unwrap();
    let filed = pipeline::file_finding(&cfg, &st, &r, &finding(), Level::Cdn, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(filed.delivery, "approved");
    let dl = Deliverer::new(cfg.clone(), st.clone(), "t").unwrap();
    let out = pipeline::send_approved(&cfg, &st, &dl, 1001).await.unwrap();
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
        pipeline::send_approved(&cfg, &st, &dl, 1002)
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

fn toml_cfg() -> TakedownConfig {
    let c = complainant();
    let text = format!(
        "[complainant]\nname = {:?}\norganization = {:?}\nemail = {:?}\naddress = {:?}\n[works.bbb]\ntitle = \"Big Buck Bunny\"\n",
        c.name, c.organization, c.email, c.address
    );
    let cfg: TakedownConfig = toml::from_str(&text).unwrap();
    cfg.validate().unwrap();
    cfg
}
