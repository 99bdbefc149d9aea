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
//!   recorded: the next run sends nothing again (one Message-ID in the sink).
//!
//! Needs python3 (venv + PyPI `aiosmtpd`, installed once under the target dir) and xmllint.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn takedown_crate() -> PathBuf {
    repo().join("crates/takedown")
}

fn acns_xsd() -> PathBuf {
    let p = repo().join("../shared/schemas/acns/acns-1.2.xsd");
    if p.is_file() {
        p
    } else {
        PathBuf::from("/work/shared/schemas/acns/acns-1.2.xsd")
    }
}

/// A venv with aiosmtpd under the target dir (created once; pip from PyPI).
fn venv_python() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_BIN_EXE_leaktrace"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let venv = target.join("aiosmtpd-venv");
    let py = venv.join("bin/python");
    let ready = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "aiosmtpd==1.4.6"]));
    }
    py
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the SMTP sink writing into `dir`; returns it and its port.
fn smtp_sink(dir: &Path) -> (Proc, u16) {
    let mut child = Command::new(venv_python())
        .arg(takedown_crate().join("tests/support/smtp_sink.py"))
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    (Proc(child), port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The loopback pirate site: Python's http.server over `root`.
fn site(root: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(root)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "site did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A plain HTTP/1.0 GET (the crawler's capture, in miniature): status and body.
fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, all[head_end + 4..].to_vec())
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
    let cfg = format!(
        r#"mode = "{mode}"
fp_max = 1e-6
evidence_dir = "evidence"
claim_lease_s = 0

[complainant]
name = "Jane Roe"
organization = "Example Studios Anti-Piracy"
principal = "Blender Foundation"
email = "antipiracy@studio.test"
address = "1 Example Way, Springfield, US"

[works.bbb]
title = "Big Buck Bunny"
description = "Animated short film (2008)"
authorized_url = "https://studio.test/films/bbb"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Example Studios Anti-Piracy <antipiracy@studio.test>"
timeout_s = 10

[retry]
attempts = 2
base_ms = 50
max_ms = 200

[status]
recheck_interval_s = 1
grace_s = {{ host = 3600 }}

[[recipient]]
host = "127.0.0.1"
level = "host"
name = "Loopback Hosting"
email = "abuse@hosting.test"
"#
    );
    std::fs::write(dir.join("takedown.toml"), cfg).unwrap();
    Setup {
        _dir: d,
        dir,
        site_root: site_root.to_path_buf(),
        finding: fpath,
        url,
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

fn received(sink: &Path) -> Vec<String> {
    std::fs::read_to_string(sink.join("received.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn takedown_end_to_end_smtp_recheck() {
    let tmp = tempfile::tempdir().unwrap();
    let sink_dir = tmp.path().join("sink");
    let (_sink, smtp_port) = smtp_sink(&sink_dir);
    let site_root = tmp.path().join("site");
    std::fs::create_dir_all(&site_root).unwrap();
    let (_site, site_port) = site(&site_root);
    let s = setup(site_port, &site_root, smtp_port, "approval");
    let report = takedown_crate().join("tests/data/detect-unmarked-20s.json");
    let report = report.to_str().unwrap();

    // Gate: the real detect report accuses no one; without the catalogue hash, no notice.
    let mut f: Value = serde_json::from_slice(&std::fs::read(&s.finding).unwrap()).unwrap();
    f["catalogue_hash_match"] = Value::Null;
    f["finding_id"] = json!("F-e2e-nohash");
    let nohash = s.dir.join("nohash.json");
    std::fs::write(&nohash, f.to_string()).unwrap();
    let v = lt_json(
        &s,
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
        &s,
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
        &s,
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
    assert_eq!(lt_json(&s, &["takedown", "send"]), json!([]));
    assert!(received(&sink_dir).is_empty());
    let review = lt(&s, &["takedown", "review"]);
    assert!(
        review.contains(&id) && review.contains("under penalty of perjury"),
        "{review}"
    );
    lt(&s, &["takedown", "approve", &id, "--by", "test"]);

    let t_send = Instant::now();
    let sent = lt_json(&s, &["takedown", "send"]);
    assert_eq!(sent[0]["outcome"], "sent", "{sent}");
    let msgid = format!("<{id}@takedown.leaktrace>");
    assert_eq!(received(&sink_dir), vec![msgid.clone()]);

    // The message as received, decoded by Python's email package.
    let eml = sink_dir.join("0001.eml");
    let parts = tmp.path().join("parts");
    ok(Command::new(venv_python())
        .arg(takedown_crate().join("tests/support/smtp_sink.py"))
        .arg("--extract")
        .arg(&eml)
        .arg(&parts));
    let headers = std::fs::read_to_string(parts.join("headers.txt")).unwrap();
    assert!(headers.contains("To: abuse@hosting.test"), "{headers}");
    assert!(
        headers.contains(&format!("Message-ID: {msgid}")),
        "{headers}"
    );
    let body = std::fs::read_to_string(parts.join("body.txt")).unwrap();
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
    let xml = parts.join(format!("attach-{id}.acns.xml"));
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(acns_xsd())
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ACNS attachment invalid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml_text = std::fs::read_to_string(&xml).unwrap();
    assert!(xml_text.contains("<HashMatched>true</HashMatched>"));
    assert!(xml_text.contains("<IP_Address>127.0.0.1</IP_Address>"));

    // A second run sends nothing.
    assert_eq!(lt_json(&s, &["takedown", "send"]), json!([]));
    assert_eq!(received(&sink_dir).len(), 1);

    // Re-check while the file is up: still open.
    std::thread::sleep(Duration::from_millis(1100));
    let r = lt_json(&s, &["takedown", "recheck"]);
    assert_eq!(r["checks"][0]["status"], 200, "{r}");
    assert_eq!(r["checks"][0]["removed"], false);

    // The site removes the file; the next re-check closes the notice.
    std::fs::remove_file(s.site_root.join("files/bbb.2026.360p.mp4")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let r = lt_json(&s, &["takedown", "recheck"]);
    let measured = t_send.elapsed().as_secs_f64();
    assert_eq!(r["checks"][0]["status"], 404, "{r}");
    assert_eq!(r["checks"][0]["removed"], true);
    let to_removal = r["checks"][0]["notice_to_removal_s"].as_i64().unwrap();
    assert!(
        to_removal >= 1 && (to_removal as f64) <= measured + 1.0,
        "{to_removal} vs {measured}"
    );

    let list = lt_json(&s, &["takedown", "list"]);
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
    let show = lt(&s, &["takedown", "show", &id]);
    assert!(
        show.contains("notice -> removal") && show.contains("closed"),
        "{show}"
    );
    let table = lt(&s, &["takedown", "list"]);
    assert!(table.contains(&id), "{table}");
    eprintln!(
        "finding -> notice {}s, notice -> removal {to_removal}s",
        row["finding_to_notice_s"]
    );

    // The evidence bundle holds the notice as sent and is intact; one flipped byte is caught.
    let bundle = s.dir.join("evidence/F-e2e-approval");
    assert!(bundle.join(format!("notices/{id}.acns.xml")).is_file());
    let v = lt(&s, &["evidence", "verify", bundle.to_str().unwrap()]);
    assert!(v.starts_with("intact"), "{v}");
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
}

#[test]
fn kill_between_sent_and_recorded_sends_no_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let sink_dir = tmp.path().join("sink");
    let (_sink, smtp_port) = smtp_sink(&sink_dir);
    let site_root = tmp.path().join("site");
    std::fs::create_dir_all(&site_root).unwrap();
    let (_site, site_port) = site(&site_root);
    let s = setup(site_port, &site_root, smtp_port, "auto");
    let v = lt_json(&s, &["takedown", "file", s.finding.to_str().unwrap()]);
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
    assert_eq!(received(&sink_dir).len(), 1);

    // Restart: nothing is sent again; the notice is in doubt, for a human.
    for _ in 0..2 {
        let out = lt_json(&s, &["takedown", "send"]);
        assert_eq!(out, json!([]), "{out}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received(&sink_dir),
        vec![format!("<{id}@takedown.leaktrace>")]
    );
    let list = lt_json(&s, &["takedown", "list"]);
    assert_eq!(list[0]["delivery"], "in_doubt", "{list}");
}
