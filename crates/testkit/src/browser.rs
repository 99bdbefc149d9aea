//! Headless Chromium for player tests: find the browser, open a page, collect the report the
//! page posts to a one-shot collector on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Chromium on this machine (`chromium` or `chromium-browser`), if any.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Whether the browser and `script` (a player library in `node_modules`) are there; when they
/// are not, the test is skipped with a notice naming `install`, unless
/// `LEAKTRACE_REQUIRE_PLAYER=1` makes that a failure.
///
/// # Panics
/// When something is missing and `LEAKTRACE_REQUIRE_PLAYER=1`.
pub fn player_available(script: &Path, install: &str) -> Option<&'static str> {
    let required = std::env::var("LEAKTRACE_REQUIRE_PLAYER").as_deref() == Ok("1");
    match (chromium(), script.is_file()) {
        (Some(browser), true) => Some(browser),
        _ => {
            assert!(
                !required,
                "LEAKTRACE_REQUIRE_PLAYER=1 but chromium or {} is missing",
                script.display()
            );
            eprintln!(
                "SKIPPED: needs chromium and {} ({install})",
                script.display()
            );
            None
        }
    }
}

/// Reads one HTTP/1.1 request: its head (lower-cased) and its body (by `Content-Length`), or
/// `None` when the client goes away first.
pub fn read_request(s: &mut std::net::TcpStream) -> Option<(String, String)> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            return Some((head, body));
        }
    }
}

/// A collector on 127.0.0.1: its URL, and the non-empty bodies POSTed to it.
///
/// # Panics
/// If no port can be bound.
pub fn collector() -> (String, mpsc::Receiver<String>) {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a collector: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("collector address: {e}"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let body = read_request(&mut s).map(|(_, body)| body);
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            );
            if let Some(b) = body.filter(|b| !b.is_empty()) {
                let _ = tx.send(b);
            }
        }
    });
    (format!("http://{addr}/report"), rx)
}

/// Opens `html` (written to a file in a fresh directory; `REPORT_URL` in it is replaced by a
/// collector's URL) in headless `browser`, and returns the first report the page posts within
/// `wait`.
///
/// # Panics
/// If the page cannot be written, the browser cannot start, or no report comes in time.
pub fn run_page(browser: &str, html: &str, wait: Duration) -> String {
    let (report_url, reports) = collector();
    let tmp = std::env::temp_dir().join(format!(
        "leaktrace-page-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    let file = tmp.join("player.html");
    std::fs::write(&file, html.replace("REPORT_URL", &report_url))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let profile = tmp.join("profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--no-default-browser-check",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {browser}: {e}"));
    let report = reports.recv_timeout(wait);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    report.unwrap_or_else(|_| panic!("the page sent no report within {wait:?}"))
}
