//! `leaktrace session revoke|restore|revoked|history` as an operator runs them: by session and
//! by account, the audit trail, JSON output, and the refusals that change nothing, each with its
//! exit code (6 unknown, 8 no change, 2 usage).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use leaktrace_store::{NewTitle, Store};

fn leaktrace(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leaktrace"))
        .current_dir(dir)
        .env("USER", "operator-1")
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = leaktrace(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The exit code and the one-line error of a command that must fail.
fn fails(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = leaktrace(dir, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

/// A working directory with title `film` in its store and three sessions (two of account
/// `acct-a`); returns the session ids.
fn workdir(dir: &Path) -> Vec<String> {
    ok(dir, &["init", "."]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.join("leaktrace.db").display()))
            .await
            .unwrap();
        store
            .upsert_title(&NewTitle {
                title_id: "film".into(),
                name: "film".into(),
                segment_duration_ms: 2000,
                position_count: 60,
                key_version: 1,
                reference_path: None,
            })
            .await
            .unwrap();
        store.close().await;
    });
    ["acct-a", "acct-a", "acct-b"]
        .iter()
        .map(|account| {
            let out = ok(
                dir,
                &[
                    "session",
                    "new",
                    "--title",
                    "film",
                    "--account",
                    account,
                    "--json",
                ],
            );
            json(&out)["session_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn revoke_restore_and_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = workdir(d);

    let out = ok(
        d,
        &[
            "session",
            "revoke",
            &s[0],
            "--reason",
            "restream on pirate.example",
            "--json",
        ],
    );
    let ev = json(&out);
    assert_eq!(ev[0]["session_id"], s[0].as_str());
    assert_eq!(ev[0]["action"], "revoke");
    assert_eq!(ev[0]["actor"], "operator-1");
    assert_eq!(ev[0]["reason"], "restream on pirate.example");

    // A second revocation changes nothing: exit 8, one clear line.
    let (code, err) = fails(d, &["session", "revoke", &s[0]]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("already revoked"), "{err}");
    // Unknown session or account: exit 6.
    let (code, err) = fails(d, &["session", "revoke", "no-such-session"]);
    assert_eq!(code, 6, "{err}");
    let (code, _) = fails(d, &["session", "revoke", "--account", "nobody"]);
    assert_eq!(code, 6);
    // Both or neither target: usage.
    assert_eq!(fails(d, &["session", "revoke"]).0, 2);
    assert_eq!(
        fails(d, &["session", "revoke", &s[1], "--account", "acct-a"]).0,
        2
    );
    // A reason that is too long: usage, nothing recorded.
    let long = "x".repeat(2000);
    assert_eq!(
        fails(d, &["session", "revoke", &s[1], "--reason", &long]).0,
        2
    );

    let listed = json(&ok(d, &["session", "revoked", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["session_id"], s[0].as_str());
    // The same list for the CDN functions' key-value stores.
    let cf = json(&ok(d, &["session", "revoked", "--kv", "cloudflare"]));
    assert_eq!(cf[0]["key"], s[0].as_str());
    assert_eq!(cf[0]["value"], listed[0]["time"]);
    let aws = json(&ok(d, &["session", "revoked", "--kv", "cloudfront"]));
    assert_eq!(
        aws["data"],
        serde_json::json!([{"key": s[0], "value": "1"}])
    );
    assert_eq!(fails(d, &["session", "revoked", "--kv", "akamai"]).0, 2);
    // The title's sessions for the Worker's SESSIONS namespace, expiring with their tokens.
    let sessions = json(&ok(
        d,
        &["session", "export", "--title", "film", "--kv", "cloudflare"],
    ));
    let mut keys: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = s.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(keys, want);
    let value = json(sessions[0]["value"].as_str().unwrap());
    assert_eq!(value["title"], "film");
    assert_eq!(value["title_key_version"], 1);
    assert!(sessions[0]["expiration"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        fails(
            d,
            &["session", "export", "--title", "nope", "--kv", "cloudflare"]
        )
        .0,
        6
    );

    // The account: only its session not yet revoked is recorded.
    let ev = json(&ok(
        d,
        &[
            "session",
            "revoke",
            "--account",
            "acct-a",
            "--actor",
            "policy:auto",
            "--json",
        ],
    ));
    assert_eq!(ev.as_array().unwrap().len(), 1);
    assert_eq!(ev[0]["session_id"], s[1].as_str());
    assert_eq!(ev[0]["actor"], "policy:auto");

    ok(d, &["session", "restore", &s[0], "--reason", "false alarm"]);
    let (code, err) = fails(d, &["session", "restore", &s[2]]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("not revoked"), "{err}");

    let listed = json(&ok(d, &["session", "revoked", "--json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [s[1].as_str()]);

    let h = json(&ok(d, &["session", "history", &s[0], "--json"]));
    let trail: Vec<(&str, &str)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [
            ("revoke", "restream on pirate.example"),
            ("restore", "false alarm")
        ]
    );
    let text = ok(d, &["session", "history", &s[0]]);
    assert!(text.contains("by operator-1: false alarm"), "{text}");
    assert_eq!(fails(d, &["session", "history", "no-such-session"]).0, 6);
}

/// One HTTP/1.1 request on a fresh loopback connection: the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    assert!(s.peer_addr().unwrap().ip().is_loopback());
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Polls `path` until it answers `want`; the seconds it took (at most 10).
fn until(addr: &str, path: &str, want: u16) -> f64 {
    let t0 = std::time::Instant::now();
    while t0.elapsed().as_secs() < 10 {
        if http(addr, "GET", path, "", "").0 == want {
            return t0.elapsed().as_secs_f64();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{path} never answered {want}");
}

/// The running edge: revoked from the command line, it refuses the session within 5 s; the
/// admin API (bearer token from `[admin] token_file`) restores it, and refuses a wrong token.
#[test]
fn the_edge_refuses_a_revoked_session_and_the_admin_api_restores_it() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = workdir(d);
    leaktrace_testkit::hand_made_package(&d.join("packages"), "film");
    let token = ok(
        d,
        &[
            "session",
            "new",
            "--title",
            "film",
            "--account",
            "acct-c",
            "--json",
        ],
    );
    let token = json(&token);
    let (sid, wmt) = (
        token["session_id"].as_str().unwrap().to_owned(),
        token["token"].as_str().unwrap().to_owned(),
    );
    // Without the [admin] section, --admin-listen is a configuration error.
    let (code, err) = fails(
        d,
        &[
            "edge",
            "--root",
            "packages",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(code, 5, "{err}");
    let admin_token = "Zp4r7Tq2Wn9Ly3Ks8Hd1Fg6Jb5Mc0Vx2";
    std::fs::write(d.join("admin.token"), format!("{admin_token}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("admin.token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let mut toml = std::fs::read_to_string(d.join("leaktrace.toml")).unwrap();
    toml.push_str("\n[admin]\ntoken_file = \"admin.token\"\n");
    std::fs::write(d.join("leaktrace.toml"), toml).unwrap();

    let mut edge = Command::new(env!("CARGO_BIN_EXE_leaktrace"))
        .current_dir(d)
        .args([
            "edge",
            "--root",
            "packages",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(edge.stdout.take().unwrap()).lines();
    let (mut viewer, mut admin) = (String::new(), String::new());
    while viewer.is_empty() || admin.is_empty() {
        let line = lines.next().unwrap().unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        if line.starts_with("admin API") {
            admin = addr;
        } else if line.starts_with("listening") {
            viewer = addr;
        }
    }
    let path = format!("/wmt/{wmt}/film/master.m3u8");
    assert_eq!(http(&viewer, "GET", &path, "", "").0, 200);

    ok(d, &["session", "revoke", &sid, "--reason", "restream"]);
    let took = until(&viewer, &path, 403);
    assert!(took <= 5.0, "refused after {took} s");
    eprintln!("the running edge refused the revoked session after {took:.2} s");

    let body = format!("{{\"session_id\":\"{sid}\",\"reason\":\"cleared\"}}");
    let wrong = "Authorization: Bearer Zp4r7Tq2Wn9Ly3Ks8Hd1Fg6Jb5Mc0Vx3\r\n";
    assert_eq!(
        http(&admin, "POST", "/v1/restorations", wrong, &body).0,
        401
    );
    let auth = format!("Authorization: Bearer {admin_token}\r\n");
    let (st, answer) = http(&admin, "POST", "/v1/restorations", &auth, &body);
    assert_eq!(st, 200, "{answer}");
    assert!(until(&viewer, &path, 200) <= 5.0);
    let (st, answer) = http(&admin, "GET", "/v1/revocations", &auth, "");
    assert_eq!(st, 200);
    assert_eq!(json(&answer)["revoked"], serde_json::json!([]));
    assert!(!s.is_empty());

    let _ = edge.kill();
    let _ = edge.wait();
}
