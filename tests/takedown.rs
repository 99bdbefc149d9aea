//! Takedown end to end on loopback, through the `leaktrace` binary:
//!
//! - a loopback "pirate site" (Python's http.server) serves a copy of a catalogue asset;
//!   the test fetches it over HTTP (status, resolved IP, UTC time, BLAKE3 + SHA-256 of the
//!   bytes) and builds the finding from that capture plus a real `leaktrace detect --json`
//!   report (crates/takedown/tests/data);
//! - `takedown file` (gate: the report alone accuses no one, the exact catalogue hash
//!   matches), `review`, `approve`, `send` over SMTP to an aiosmtpd sink;
//! - the received message, decoded by Python's email package, carries the DMCA text and an
//!   ACNS attachment that xmllint validates against the ACNS 1.2 XSD;
//! - a second `send` sends nothing; the site removes the file; `recheck` closes the notice
//!   with the measured time to removal; `list`/`show` print it; `evidence verify` says intact;
//! - kill -9 of `takedown send` after the sink received the message and before it was
//!   recorded: the next run sends nothing again (one Message-ID in the sink);
//! - dry-run mode: `send` prints the message it would send (DMCA text, schema-valid ACNS),
//!   the sink receives nothing, nothing is recorded as sent;
//! - `takedown mark`: allowed moves, refused ones with the reason and exit 8.
//!
//! Runtime (debug profile, shared 2-core machine, one at a time): end to end 6 s, kill -9 3 s,
//! dry-run 5 s, mark 3 s; about 10 s for the four run in parallel.
//!
//! Needs python3 (venv + PyPI `aiosmtpd`, installed once under the target dir) and xmllint.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::loopback::{Decoded, decode, received, site, smtp_sink, takedown_toml};
use common::*;

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn takedown_crate() -> PathBuf {
    repo().join("crates/takedown")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Workdir with leaktrace.toml + takedown.toml; the site's file captured into a finding.
struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    site_root: PathBuf,
    finding: PathBuf,
    url: String,
}

fn setup(site_port: u16, site_root: &Path, smtp_port: u16, mode: &str) -> Setup {
    let d = init_workdir();
    let dir = d.path().to_path_buf();
    // The catalogue asset and its leaked copy on the site (byte-identical).
    let asset = std::fs::read(corpus("trailer_bbb_20s.mp4")).unwrap();
    std::fs::create_dir_all(site_root.join("files")).unwrap();
    std::fs::write(site_root.join("files/bbb.2026.360p.mp4"), &asset).unwrap();
    let url = format!("http://127.0.0.1:{site_port}/files/bbb.2026.360p.mp4");
    let found_at = now();
    let (status, body) = http_get(site_port, "/files/bbb.2026.360p.mp4");
    assert_eq!(status, 200);
    let captured_at = now();
    let sha = sha256_hex(&body);
    let catalogue_sha = sha256_hex(&asset);
    let finding = json!({
        "finding_id": format!("F-e2e-{mode}"),
        "url": url,
        "page_url": format!("http://127.0.0.1:{site_port}/"),
        "chain": [{ "url": url, "status": status, "ip": "127.0.0.1", "at": captured_at, "headers": [] }],
        "resolved_ip": "127.0.0.1",
        "found_at": found_at,
        "captured_at": captured_at,
        "byte_len": body.len(),
        "blake3": blake3::hash(&body).to_hex().to_string(),
        "sha256": sha,
        "title_id": "bbb",
        "catalogue_names": ["Big Buck Bunny"],
        // The crawler's exact-hash check against the catalogue.
        "catalogue_hash_match": (sha == catalogue_sha).then_some("bbb/trailer_bbb_20s.mp4"),
        "verdict": null, "detect_fp": null, "detect_report": null, "plot_path": null
    });
    let fpath = dir.join("finding.json");
    std::fs::write(&fpath, serde_json::to_vec_pretty(&finding).unwrap()).unwrap();
    let cfg = takedown_toml(mode, smtp_port);
    std::fs::write(dir.join("takedown.toml"), cfg).unwrap();
    Setup {
        _dir: d,
        dir,
        site_root: site_root.to_path_buf(),
        finding: fpath,
        url,
    }
}

/// The SMTP sink and the pirate site running, the work dir set up in `mode`.
struct Rig {
    tmp: tempfile::TempDir,
    sink_dir: PathBuf,
    s: Setup,
    _servers: (Proc, Proc),
}

fn rig(mode: &str) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let sink_dir = tmp.path().join("sink");
    let (sink, smtp_port) = smtp_sink(&sink_dir);
    let site_root = tmp.path().join("site");
    std::fs::create_dir_all(&site_root).unwrap();
    let (site, site_port) = site(&site_root);
    let s = setup(site_port, &site_root, smtp_port, mode);
    Rig {
        tmp,
        sink_dir,
        s,
        _servers: (sink, site),
    }
}

fn lt(s: &Setup, args: &[&str]) -> String {
    ok(bin().current_dir(&s.dir).args(args))
}

fn lt_json(s: &Setup, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&lt(s, &a)).unwrap()
}

#[test]
fn takedown_end_to_end_smtp_recheck() {
    let r = rig("approval");
    let (s, sink_dir) = (&r.s, &r.sink_dir);
    let report = takedown_crate().join("tests/data/detect-unmarked-20s.json");
    let report = report.to_str().unwrap();

    // Gate: the real detect report accuses no one; without the catalogue hash, no notice.
    let mut f: Value = serde_json::from_slice(&std::fs::read(&s.finding).unwrap()).unwrap();
    f["catalogue_hash_match"] = Value::Null;
    f["finding_id"] = json!("F-e2e-nohash");
    let nohash = s.dir.join("nohash.json");
    std::fs::write(&nohash, f.to_string()).unwrap();
    let v = lt_json(
        s,
        &[
            "takedown",
            "file",
            nohash.to_str().unwrap(),
            "--detect-report",
            report,
        ],
    );
    assert!(v["notice_id"].is_null(), "{v}");
    assert!(
        v["refused"].as_str().unwrap().contains("no positive match"),
        "{v}"
    );

    // With the exact catalogue hash: a notice, waiting for approval.
    let v = lt_json(
        s,
        &[
            "takedown",
            "file",
            s.finding.to_str().unwrap(),
            "--detect-report",
            report,
        ],
    );
    let id = v["notice_id"].as_str().unwrap().to_owned();
    assert_eq!(v["delivery"], "pending_approval", "{v}");
    // Filing again changes nothing.
    let again = lt_json(
        s,
        &[
            "takedown",
            "file",
            s.finding.to_str().unwrap(),
            "--detect-report",
            report,
        ],
    );
    assert_eq!(again["notice_id"], id.as_str());
    assert_eq!(again["inserted"], false);

    // Approval mode: nothing leaves before approval.
    assert_eq!(lt_json(s, &["takedown", "send"]), json!([]));
    assert!(received(sink_dir).is_empty());
    let review = lt(s, &["takedown", "review"]);
    assert!(
        review.contains(&id) && review.contains("under penalty of perjury"),
        "{review}"
    );
    lt(s, &["takedown", "approve", &id, "--by", "test"]);

    let t_send = Instant::now();
    let sent = lt_json(s, &["takedown", "send"]);
    assert_eq!(sent[0]["outcome"], "sent", "{sent}");
    let msgid = format!("<{id}@takedown.leaktrace>");
    assert_eq!(received(sink_dir), vec![msgid.clone()]);

    // The message as received, decoded by Python's email package.
    let Decoded { headers, body, dir } =
        decode(&sink_dir.join("0001.eml"), &r.tmp.path().join("parts"));
    assert!(headers.contains("To: abuse@hosting.test"), "{headers}");
    assert!(
        headers.contains(&format!("Message-ID: {msgid}")),
        "{headers}"
    );
    for needle in [
        "17 U.S.C. 512(c)(3)",
        "Big Buck Bunny",
        s.url.as_str(),
        "good faith belief",
        "under penalty of perjury",
        "Signature: /Jane Roe/",
        "byte-identical to catalogue asset",
    ] {
        assert!(body.contains(needle), "body lacks {needle:?}");
    }
    let xml = dir.join(format!("attach-{id}.acns.xml"));
    assert_acns_valid(&xml);
    let xml_text = std::fs::read_to_string(&xml).unwrap();
    assert!(xml_text.contains("<HashMatched>true</HashMatched>"));
    assert!(xml_text.contains("<IP_Address>127.0.0.1</IP_Address>"));

    // A second run sends nothing.
    assert_eq!(lt_json(s, &["takedown", "send"]), json!([]));
    assert_eq!(received(sink_dir).len(), 1);

    // Re-check while the file is up: still open.
    std::thread::sleep(Duration::from_millis(1100));
    let r = lt_json(s, &["takedown", "recheck"]);
    assert_eq!(r["checks"][0]["status"], 200, "{r}");
    assert_eq!(r["checks"][0]["removed"], false);

    // The site removes the file; the next re-check closes the notice.
    std::fs::remove_file(s.site_root.join("files/bbb.2026.360p.mp4")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r = lt_json(s, &["takedown", "recheck"]);
    let measured = t_send.elapsed().as_secs_f64();
    assert_eq!(r["checks"][0]["status"], 404, "{r}");
    assert_eq!(r["checks"][0]["removed"], true);
    let to_removal = r["checks"][0]["notice_to_removal_s"].as_i64().unwrap();
    assert!(
        to_removal >= 1 && (to_removal as f64) <= measured + 1.0,
        "{to_removal} vs {measured}"
    );

    let list = lt_json(s, &["takedown", "list"]);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["notice_id"] == id.as_str())
        .unwrap();
    assert_eq!(row["delivery"], "sent");
    assert_eq!(row["disposition"], "closed");
    assert_eq!(row["notice_to_removal_s"].as_i64().unwrap(), to_removal);
    assert!(row["finding_to_notice_s"].as_i64().unwrap() >= 0);
    let show = lt(s, &["takedown", "show", &id]);
    assert!(
        show.contains("notice -> removal") && show.contains("closed"),
        "{show}"
    );
    let table = lt(s, &["takedown", "list"]);
    assert!(table.contains(&id), "{table}");
    eprintln!(
        "finding -> notice {}s, notice -> removal {to_removal}s",
        row["finding_to_notice_s"]
    );

    // The evidence bundle holds the notice as sent and is intact; one flipped byte is caught.
    let bundle = s.dir.join("evidence/F-e2e-approval");
    assert!(bundle.join(format!("notices/{id}.acns.xml")).is_file());
    let v = lt(s, &["evidence", "verify", bundle.to_str().unwrap()]);
    assert!(v.starts_with("intact"), "{v}");
    // The same bundle as one tar archive beside it, notice included.
    let archive = s.dir.join("evidence/F-e2e-approval.tar");
    let va = lt_json(s, &["evidence", "verify", archive.to_str().unwrap()]);
    assert_eq!(va["intact_bundle"], true, "{va}");
    assert!(
        va["intact"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == &json!(format!("notices/{id}.acns.xml"))),
        "{va}"
    );
    let p = bundle.join("chain.json");
    let mut b = std::fs::read(&p).unwrap();
    b[3] ^= 0x20;
    std::fs::write(&p, b).unwrap();
    let out = bin()
        .current_dir(&s.dir)
        .args(["evidence", "verify", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("modified chain.json"));
    // The archive is a copy of its own: still intact.
    let v = lt(s, &["evidence", "verify", archive.to_str().unwrap()]);
    assert!(v.starts_with("intact"), "{v}");
}

#[test]
fn kill_between_sent_and_recorded_sends_no_duplicate() {
    let r = rig("auto");
    let (s, sink_dir) = (&r.s, &r.sink_dir);
    let v = lt_json(s, &["takedown", "file", s.finding.to_str().unwrap()]);
    let id = v["notice_id"].as_str().unwrap().to_owned();
    assert_eq!(v["delivery"], "approved");

    // The sink holds its 250 answer while "hold" exists: the message is handed over, the
    // sender has not recorded it. Kill -9 the sender in that window.
    std::fs::write(sink_dir.join("hold"), b"").unwrap();
    let mut child = bin()
        .current_dir(&s.dir)
        .args(["takedown", "send"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !sink_dir.join("0001.eml").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the sink never received the message"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::remove_file(sink_dir.join("hold")).unwrap();
    // The sink writes the message, then its line in received.log: wait for the line.
    let t = Instant::now();
    while received(sink_dir).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(received(sink_dir).len(), 1);

    // Restart: nothing is sent again; the notice is in doubt, for a human.
    for _ in 0..2 {
        let out = lt_json(s, &["takedown", "send"]);
        assert_eq!(out, json!([]), "{out}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received(sink_dir),
        vec![format!("<{id}@takedown.leaktrace>")]
    );
    let list = lt_json(s, &["takedown", "list"]);
    assert_eq!(list[0]["delivery"], "in_doubt", "{list}");
}

/// `leaktrace ARGS` in the work dir, expected to fail: (exit code, stderr).
fn lt_fails(s: &Setup, args: &[&str]) -> (Option<i32>, String) {
    let out = bin().current_dir(&s.dir).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dry_run_renders_and_sends_nothing() {
    let r = rig("dry-run");
    let (s, sink_dir) = (&r.s, &r.sink_dir);
    let v = lt_json(s, &["takedown", "file", s.finding.to_str().unwrap()]);
    let id = v["notice_id"].as_str().unwrap().to_owned();
    assert_eq!(v["delivery"], "dry_run", "{v}");

    for _ in 0..2 {
        let out = lt_json(s, &["takedown", "send"]);
        assert_eq!(out.as_array().unwrap().len(), 1, "{out}");
        assert_eq!(out[0]["notice_id"], id.as_str());
        assert_eq!(out[0]["outcome"], "dry_run");
        assert_eq!(out[0]["to"], "abuse@hosting.test");
        let text = out[0]["rendered"].as_str().unwrap();
        for needle in [
            s.url.as_str(),
            "under penalty of perjury",
            "Signature: /Jane Roe/",
        ] {
            assert!(text.contains(needle), "rendered lacks {needle:?}");
        }
        let (_, xml) = text.split_once("----- ACNS 1.2 -----\n").unwrap();
        let xml_path = r.tmp.path().join("dry.acns.xml");
        std::fs::write(&xml_path, xml).unwrap();
        assert_acns_valid(&xml_path);
    }
    let text = lt(s, &["takedown", "send"]);
    assert!(
        text.contains("dry run: not sent to abuse@hosting.test") && text.contains(&s.url),
        "{text}"
    );
    // The sink answers only after logging a message: `send` has returned, so nothing came.
    assert!(received(sink_dir).is_empty());
    assert!(!sink_dir.join("0001.eml").exists());
    let list = lt_json(s, &["takedown", "list"]);
    assert_eq!(list[0]["delivery"], "dry_run", "{list}");
    assert!(list[0]["sent_at"].is_null() && list[0]["message_id"].is_null());
    assert!(!s.dir.join("evidence/F-e2e-dry-run/notices").exists());
    let v = lt(s, &["evidence", "verify", "evidence/F-e2e-dry-run"]);
    assert!(v.starts_with("intact"), "{v}");
}

#[test]
fn mark_moves_and_refusals() {
    let r = rig("auto");
    let (s, sink_dir) = (&r.s, &r.sink_dir);
    let v = lt_json(s, &["takedown", "file", s.finding.to_str().unwrap()]);
    let id = v["notice_id"].as_str().unwrap().to_owned();
    fn mark<'a>(id: &'a str, state: &'a str) -> [&'a str; 5] {
        ["takedown", "mark", id, "--state", state]
    }

    // Not sent yet: nobody can have rejected it.
    let (code, err) = lt_fails(s, &mark(&id, "rejected"));
    assert_eq!(code, Some(8), "{err}");
    assert!(err.contains("has not received it"), "{err}");
    let (code, err) = lt_fails(s, &mark(&id, "gone"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("expected open, closed, rejected or counter_notice"),
        "{err}"
    );
    let (code, err) = lt_fails(s, &["takedown", "mark", "N-unknown", "--state", "closed"]);
    assert_eq!(code, Some(6), "{err}");

    assert_eq!(lt_json(s, &["takedown", "send"])[0]["outcome"], "sent");
    let out = lt(s, &mark(&id, "counter_notice"));
    assert_eq!(out.trim(), format!("{id} counter_notice"));
    let (code, err) = lt_fails(s, &mark(&id, "rejected"));
    assert_eq!(code, Some(8), "{err}");
    assert!(err.contains("back to open or be closed"), "{err}");
    lt(s, &mark(&id, "open"));
    let v = lt_json(s, &mark(&id, "closed"));
    assert_eq!(v["disposition"], "closed", "{v}");
    assert!(
        v["closed_at"].is_i64() && v["next_check_at"].is_null(),
        "{v}"
    );
    for state in ["open", "closed"] {
        let (code, err) = lt_fails(s, &mark(&id, state));
        assert_eq!(code, Some(8), "{err}");
    }
    let (_, err) = lt_fails(s, &mark(&id, "open"));
    assert!(err.contains("closed is final"), "{err}");
    let show = lt_json(s, &["takedown", "show", &id]);
    assert_eq!(show["disposition"], "closed");
    assert_eq!(received(sink_dir).len(), 1);
}
