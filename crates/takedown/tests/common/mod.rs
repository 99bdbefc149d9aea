//! Shared fixtures for the takedown tests.
#![allow(dead_code)]

use leaktrace_store::Store;
use leaktrace_takedown::TakedownConfig;
use leaktrace_takedown::rdap::{Bootstrap, Resolver};
use leaktrace_takedown::{
    AccusedSession, Channel, Complainant, FindingEvidence, Hop, Level, Recipient, Work,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Test crate directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[allow(unused_imports)] // not every test binary validates ACNS
pub use leaktrace_testkit::acns_xsd;

/// A finding on a documentation address (192.0.2.0/24) with a redirect and an accusation.
pub fn finding() -> FindingEvidence {
    FindingEvidence {
        finding_id: "F-2026-000123".into(),
        url: "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
        page_url: Some("https://pirate.example.org/watch/bbb".into()),
        chain: vec![
            Hop {
                url: "https://pirate.example.org/dl/bbb".into(),
                status: 302,
                ip: Some("198.51.100.7".parse().unwrap()),
                at: 1_795_273_440,
                headers: vec![(
                    "location".into(),
                    "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
                )],
            },
            Hop {
                url: "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
                status: 200,
                ip: Some("192.0.2.10".parse().unwrap()),
                at: 1_795_273_441,
                headers: vec![("content-type".into(), "video/mp4".into())],
            },
        ],
        resolved_ip: "192.0.2.10".parse().unwrap(),
        found_at: 1_795_273_000,
        captured_at: 1_795_273_441,
        byte_len: 48_213_772,
        blake3: "6f1c2b7e0c3f4d9aa8d5b1f0e3c2d4b5a6978877665544332211009988776655".into(),
        sha256: "9b2f1a7c3e5d4b6a8c0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c".into(),
        title_id: "bbb".into(),
        catalogue_names: vec!["Big Buck Bunny".into()],
        catalogue_hash_match: None,
        verdict: Some("accused".into()),
        detect_fp: Some(1e-6),
        accused: vec![AccusedSession {
            session_id: "s-0017".into(),
            probability: 2.5e-9,
        }],
        positions_used: Some(60),
        detect_report: None,
        plot_path: None,
    }
}

/// The sender.
pub fn complainant() -> Complainant {
    Complainant {
        name: "Jane Roe".into(),
        organization: "Example Studios Anti-Piracy".into(),
        principal: Some("Blender Foundation".into()),
        email: "antipiracy@studio.example".into(),
        address: "1 Example Way, Springfield, 00000, US".into(),
        phone: "+1 555 0100".into(),
    }
}

/// The work.
pub fn work() -> Work {
    Work {
        title: "Big Buck Bunny".into(),
        description: "Animated short film, 2008, 10 min".into(),
        authorized_url: Some("https://studio.example/films/bbb".into()),
        asset_sha256: Vec::new(),
    }
}

/// A hosting provider's abuse desk.
pub fn recipient() -> Recipient {
    Recipient {
        name: "Example Hosting Ltd".into(),
        email: "abuse@hosting.example".into(),
        level: Level::Host,
        channel: Channel::Email {
            to: "abuse@hosting.example".into(),
        },
    }
}

/// Compares `actual` with the golden file `name`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let p = crate_dir().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create)", p.display()));
    assert_eq!(
        actual,
        want,
        "output differs from golden file {}",
        p.display()
    );
}

/// A request as the loopback server saw it: request line, headers (lower-case), body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When the request was complete.
    pub at: Instant,
}

pub type Responder = Arc<dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync>;

/// A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection).
pub async fn serve(respond: Responder) -> (u16, Arc<Mutex<Vec<Seen>>>) {
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
                at: Instant::now(),
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

/// A SQLite store in `dir`.
pub async fn store(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display()))
        .await
        .unwrap()
}

/// The minimal valid configuration (complainant, work `bbb`), parsed from TOML.
pub fn toml_cfg() -> TakedownConfig {
    let c = complainant();
    let text = format!(
        "[complainant]\nname = {:?}\norganization = {:?}\nemail = {:?}\naddress = {:?}\n[works.bbb]\ntitle = \"Big Buck Bunny\"\n",
        c.name, c.organization, c.email, c.address
    );
    let cfg: TakedownConfig = toml::from_str(&text).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// A resolver with `cfg`'s overrides and no RDAP server known (empty bootstrap): it never
/// leaves the machine.
pub fn offline_resolver(cfg: &TakedownConfig, st: &Store) -> Resolver {
    Resolver::new(
        cfg.recipients.clone(),
        &cfg.rdap,
        Some(Bootstrap::default()),
        st.clone(),
    )
    .unwrap()
}

/// The evidence signer of the tests (a fixed master key).
pub fn signer() -> leaktrace_takedown::evidence::EvidenceSigner {
    let key = leaktrace_core::MasterKey::from_bytes([0x42; 32], leaktrace_core::KeyVersion::new(1));
    leaktrace_takedown::evidence::EvidenceSigner::new(key.evidence_key(), [])
}
