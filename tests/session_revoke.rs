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
