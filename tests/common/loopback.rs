//! Loopback servers and checks shared by the takedown and crawl end-to-end tests: the
//! aiosmtpd SMTP sink (PyPI `aiosmtpd` in a venv created once under the target dir), the
//! pirate site (Python's http.server), the received message decoded by Python's email package,
//! and a `takedown.toml` that sends to the sink. Everything listens on 127.0.0.1. The generic
//! pieces (child processes, free ports, a plain HTTP GET, the ACNS check) are the test kit's.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Proc, free_port, ok, repo, spawn_first_line};

/// The cargo target profile dir of the binary under test (`target/debug`).
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leaktrace"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The takedown crate's test support script (the SMTP sink and message decoder).
pub fn smtp_sink_script() -> PathBuf {
    repo().join("crates/takedown/tests/support/smtp_sink.py")
}

/// A venv with aiosmtpd under the target dir (created once; pip from PyPI).
pub fn venv_python() -> PathBuf {
    let venv = target_dir().join("aiosmtpd-venv");
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

/// Starts the SMTP sink writing into `dir`; returns it and its port.
pub fn smtp_sink(dir: &Path) -> (Proc, u16) {
    let (proc, line) = spawn_first_line(
        Command::new(venv_python())
            .arg(smtp_sink_script())
            .arg(dir)
            .stdin(Stdio::piped()),
    );
    let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    (proc, port)
}

/// The Message-IDs the sink received, in order (one line each in `received.log`).
pub fn received(sink: &Path) -> Vec<String> {
    std::fs::read_to_string(sink.join("received.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A received message decoded by Python's email package.
pub struct Decoded {
    /// The header block as text.
    pub headers: String,
    /// The plain-text body.
    pub body: String,
    /// Directory holding the attachments as `attach-<filename>`.
    pub dir: PathBuf,
}

/// Decodes the sink's message `eml` into `out`.
pub fn decode(eml: &Path, out: &Path) -> Decoded {
    ok(Command::new(venv_python())
        .arg(smtp_sink_script())
        .arg("--extract")
        .arg(eml)
        .arg(out));
    Decoded {
        headers: std::fs::read_to_string(out.join("headers.txt")).unwrap(),
        body: std::fs::read_to_string(out.join("body.txt")).unwrap(),
        dir: out.to_path_buf(),
    }
}

/// The loopback pirate site: Python's http.server over `root`.
///
/// Its access log (one line per request, Python's format: `... "GET /path HTTP/1.1" 200 -`)
/// goes to `site-access.log` beside `root`; [`requested`] reads it.
pub fn site(root: &Path) -> (Proc, u16) {
    let port = free_port();
    let log = std::fs::File::create(access_log(root)).unwrap();
    let child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(root)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "site did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port)
}

fn access_log(root: &Path) -> PathBuf {
    root.parent().unwrap().join("site-access.log")
}

/// The paths the [`site`] over `root` has been asked for so far, in order.
pub fn requested(root: &Path) -> Vec<String> {
    std::fs::read_to_string(access_log(root))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let req = l.split('"').nth(1)?;
            let mut it = req.split_whitespace();
            (it.next()? == "GET").then(|| it.next().map(str::to_owned))?
        })
        .collect()
}

/// A `takedown.toml` in `mode` (approval, auto, dry-run) sending over plain SMTP to the sink
/// on `smtp_port`, with fast retries, re-checks every second, and the loopback host's abuse
/// desk as the `host` recipient.
pub fn takedown_toml(mode: &str, smtp_port: u16) -> String {
    format!(
        r#"mode = "{mode}"
fp_max = 1e-6
evidence_dir = "evidence"
claim_lease_s = 0
# The pirate site, the SMTP sink and the abuse desks of these tests are all on 127.0.0.1.
allow_loopback = true

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
    )
}
