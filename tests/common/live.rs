//! `leaktrace live --json` under test: its event lines, waited for one by one.

use super::{Proc, bin, ok};
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
