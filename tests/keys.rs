//! The keyring by version, end to end: a title is marked and sessions are issued under key
//! version 1, the master key is rotated (`leaktrace key rotate`), more sessions are issued
//! under version 2. The edge (one process holding both versions) serves both kinds of token,
//! each session the sequence of the title's own (version 1) codebook; a leak of either session,
//! fetched from the edge and re-encoded, is traced back to it by `detect`, with the keyring
//! and with a detection key set (`leaktrace key export`) on a machine whose master key files
//! cannot even be read. Key files and exported sets are mode 0600 and hold no master key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// Starts `leaktrace edge` on 127.0.0.1:0 over `dir/pkg`; returns it and its port.
fn edge(dir: &Path) -> (Proc, u16) {
    let (proc, line) = spawn_first_line(
        bin()
            .current_dir(dir)
            .args(["edge", "--root", "pkg", "--listen", "127.0.0.1:0"])
            .args(["--threads", "1"])
            .stderr(Stdio::null()),
    );
    let addr = line.split_whitespace().nth(1).unwrap();
    (proc, addr.rsplit(':').next().unwrap().parse().unwrap())
}

/// The 360p rendition of the session whose master playlist is `master` (an edge path), as the
/// edge serves it: init segment then every media segment, concatenated.
fn fetch_stream(port: u16, master: &str) -> Result<Vec<u8>, u16> {
    let base = |p: &str| p.rsplit_once('/').unwrap().0.to_owned();
    let (st, body) = http_get(port, master);
    if st != 200 {
        return Err(st);
    }
    let text = String::from_utf8(body).unwrap();
    let media = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("360p") && l.ends_with(".m3u8"))
        .unwrap();
    let media = format!("{}/{media}", base(master));
    let (st, body) = http_get(port, &media);
    assert_eq!(st, 200, "{media}");
    let text = String::from_utf8(body).unwrap();
    let mut stream = Vec::new();
    for line in text.lines() {
        let uri = if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            &rest[..rest.find('"').unwrap()]
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            line.trim()
        } else {
            continue;
        };
        let (st, bytes) = http_get(port, &format!("{}/{uri}", base(&media)));
        assert_eq!(st, 200, "{uri}");
        stream.extend(bytes);
    }
    Ok(stream)
}

fn reencode(input: &Path, output: &Path) {
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-an",
        "-vf",
        "scale=640:360",
        "-c:v",
        "libx264",
        "-crf",
        "26",
        "-preset",
        "veryfast",
        output.to_str().unwrap(),
    ]);
}

/// `detect --json` of `leak` with `extra` options; the report.
fn detect(dir: &Path, leak: &Path, extra: &[&str]) -> Value {
    let out = ok(bin()
        .current_dir(dir)
        .arg("detect")
        .arg(leak)
        .args(["--title", "bbb", "--json", "--top", "40"])
        .args(extra));
    serde_json::from_str(&out).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn rotation_keeps_old_titles_and_tokens_working() {
    let d = init_workdir();
    let dir = d.path();
    embed_clip(dir, &corpus("trailer_bbb_20s.mp4"), "bbb");
    let old = new_sessions(dir, "bbb", 20);

    let rotated: Value = serde_json::from_str(&ok(bin()
        .current_dir(dir)
        .args(["key", "rotate", "--json"])))
    .unwrap();
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["retired"], serde_json::json!([1]));
    assert_eq!(mode(&dir.join("master-v2.key")), 0o600);
    let config = std::fs::read_to_string(dir.join("leaktrace.toml")).unwrap();
    assert!(config.contains("[[keys.retired]]"), "{config}");

    let listed: Value =
        serde_json::from_str(&ok(bin().current_dir(dir).args(["key", "list", "--json"]))).unwrap();
    assert_eq!(listed["keys"][0]["version"], 1);
    assert_eq!(listed["keys"][0]["titles"], serde_json::json!(["bbb"]));
    assert_eq!(listed["keys"][1]["current"], true);
    assert_ne!(
        listed["keys"][0]["evidence_public_key"],
        listed["keys"][1]["evidence_public_key"]
    );

    let new = new_sessions(dir, "bbb", 20);
    // The title keeps its key version; the new sessions are recorded (and MAC'd) under 2.
    let db = dir.join("leaktrace.db");
    let q = |sql: &str| {
        ok(std::process::Command::new("sqlite3").arg(&db).arg(sql))
            .trim()
            .to_owned()
    };
    assert_eq!(
        q("select key_version from titles where title_id = 'bbb'"),
        "1"
    );
    assert_eq!(
        q("select count(*) from sessions where key_version = 2"),
        "20"
    );

    let (_edge, port) = edge(dir);
    let old_pirate = &old[7];
    let new_pirate = &new[11];
    for (who, s) in [("old", old_pirate), ("new", new_pirate)] {
        let stream = fetch_stream(port, s["path"].as_str().unwrap())
            .unwrap_or_else(|st| panic!("{who} session refused by the edge: HTTP {st}"));
        std::fs::write(dir.join(format!("{who}.mp4")), stream).unwrap();
        reencode(
            &dir.join(format!("{who}.mp4")),
            &dir.join(format!("{who}-leak.mp4")),
        );
    }
    // A token MAC'd with a key the edge does not hold is refused: forge one by flipping a
    // character of the old token's MAC.
    let path = old_pirate["path"].as_str().unwrap().to_owned();
    let token = path.split('/').nth(2).unwrap();
    let mut forged: Vec<u8> = token.bytes().collect();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = path.replace(token, std::str::from_utf8(&forged).unwrap());
    assert_eq!(fetch_stream(port, &forged), Err(403));

    // Detection after the rotation, with the keyring: each leak's best score is its session.
    for (who, s) in [("old", old_pirate), ("new", new_pirate)] {
        let r = detect(dir, &dir.join(format!("{who}-leak.mp4")), &[]);
        assert_eq!(r["key_version"], 1, "{who}");
        // Ten positions among 40 sessions: another codeword may agree on all of them.
        assert_best_scored(&r, s["session_id"].as_str().unwrap(), who);
        let sha = r["suspect_sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64);
    }

    // A detection key set: mode 0600, no master key in it, and enough to detect with while
    // the master key files cannot be read at all.
    let exported: Value = serde_json::from_str(&ok(bin().current_dir(dir).args([
        "key",
        "export",
        "--out",
        "detect.keys",
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        exported["titles"],
        serde_json::json!([{"title": "bbb", "key_version": 1}])
    );
    let set = dir.join("detect.keys");
    assert_eq!(mode(&set), 0o600);
    let text = std::fs::read_to_string(&set).unwrap();
    for key in ["master.key", "master-v2.key"] {
        let hex = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(!text.contains(hex.trim()), "{key} leaked into the set");
        // The key loader refuses a key file with group or world bits (mode 000 would not stop
        // root), so this makes every master key unusable.
        std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let refused = bin()
        .current_dir(dir)
        .args(["key", "list"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the master key should not load");
    let r = detect(
        dir,
        &dir.join("old-leak.mp4"),
        &["--keys", set.to_str().unwrap()],
    );
    assert_best_scored(
        &r,
        old_pirate["session_id"].as_str().unwrap(),
        "old, key set",
    );
    // Refusing another export over the existing file.
    std::fs::set_permissions(
        dir.join("master.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("master-v2.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let again = bin()
        .current_dir(dir)
        .args(["key", "export", "--out", "detect.keys"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
