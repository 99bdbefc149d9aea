//! `leaktrace live --json` under test: its event lines, waited for one by one.

use super::{Proc, bin, ok, spawn_first_line};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `leaktrace live` with `--json`, its event lines on a channel.
pub struct Live {
    pub proc: Proc,
    events: mpsc::Receiver<Value>,
}

impl Live {
    /// Starts `leaktrace live SOURCE --out ch --title news --ladder 360p --threads 1 --json`
    /// in `dir` with `extra` flags.
    pub fn start(dir: &Path, source: &str, extra: &[&str]) -> Self {
        let mut child = bin()
            .current_dir(dir)
            .args(["live", source, "--out", "ch", "--title", "news"])
            .args(["--ladder", "360p", "--threads", "1", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Self {
            proc: Proc(child),
            events: rx,
        }
    }

    /// Waits for an event `is` accepts (all are kept in `seen`), at most `within`.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        seen: &mut Vec<Value>,
        is: impl Fn(&Value) -> bool,
    ) -> Value {
        let t = Instant::now();
        loop {
            let left = within.saturating_sub(t.elapsed());
            let e = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within {within:?}; seen {seen:#?}"));
            seen.push(e.clone());
            if is(&e) {
                return e;
            }
        }
    }

    /// Waits for an event of `kind`.
    pub fn wait(&self, kind: &str, within: Duration, seen: &mut Vec<Value>) -> Value {
        self.wait_for(kind, within, seen, |e| e["event"] == kind)
    }

    /// Waits for an `audio` event whose message contains `text`.
    pub fn wait_audio(&self, text: &str, within: Duration, seen: &mut Vec<Value>) -> Value {
        self.wait_for(&format!("audio event {text:?}"), within, seen, |e| {
            e["event"] == "audio" && e["message"].as_str().is_some_and(|m| m.contains(text))
        })
    }

    /// SIGTERM (unless it stops by itself), then the summary line and a clean exit.
    pub fn finish(mut self, terminate: bool, seen: &mut Vec<Value>) -> Value {
        if terminate {
            ok(Command::new("kill")
                .arg("-TERM")
                .arg(self.proc.0.id().to_string()));
        }
        let summary = self.wait("summary", Duration::from_secs(60), seen);
        let status = self.proc.0.wait().unwrap();
        assert!(status.success(), "live exited with {status}");
        summary
    }

    /// SIGTERM, then the summary line and a clean exit.
    pub fn stop(self, seen: &mut Vec<Value>) -> Value {
        self.finish(true, seen)
    }
}

/// Starts `leaktrace edge` over `dir/ch`; returns it and its port.
pub fn edge(dir: &Path) -> (Proc, u16) {
    let (proc, line) = spawn_first_line(
        bin()
            .current_dir(dir)
            .args([
                "edge",
                "--root",
                "ch",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "1",
            ])
            .stderr(Stdio::null()),
    );
    let addr = line.split_whitespace().nth(1).unwrap();
    (proc, addr.rsplit(':').next().unwrap().parse().unwrap())
}

/// A GET that also returns the response head (lower-cased).
pub fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, all[end + 4..].to_vec())
}

/// A request that returns how long the edge took to answer.
pub fn timed_get(port: u16, path: &str) -> (u16, Vec<u8>, Duration) {
    let t = Instant::now();
    let (status, _, body) = get(port, path);
    (status, body, t.elapsed())
}

/// A preload hint's part through the edge, `path` on `port`: the body and how long the
/// answer took. The edge holds such a request for at most 3 s and then answers 404; a
/// packager that a loaded host holds back longer than that gets the request repeated, as a
/// player would (three times at most). Anything else fails.
pub fn get_hinted_part(port: u16, path: &str) -> (Vec<u8>, Duration) {
    for attempt in 1..=3 {
        let (status, body, took) = timed_get(port, path);
        if status == 200 {
            return (body, took);
        }
        assert!(
            status == 404 && took >= Duration::from_millis(2900),
            "{path}: {status} after {took:?} (attempt {attempt}): not held"
        );
    }
    panic!("{path}: not published within three holds");
}

/// A new session of the channel `news` for `account`: its id and its path prefix
/// (`/s/<token>/news`).
pub fn session(dir: &Path, account: &str) -> (String, String) {
    let (id, path) = session_path(dir, account);
    let prefix = path.rsplit_once('/').unwrap().0.to_owned();
    (id, prefix)
}

/// A new session of the channel `news` for `account`: its id and the path of its multivariant
/// playlist.
pub fn session_path(dir: &Path, account: &str) -> (String, String) {
    let out = ok(bin().current_dir(dir).args([
        "session",
        "new",
        "--title",
        "news",
        "--account",
        account,
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["session_id"].as_str().unwrap().to_owned(),
        v["path"].as_str().unwrap().to_owned(),
    )
}

/// The part files (`EXT-X-PART` URIs) a low-latency playlist lists.
pub fn listed_parts(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}
