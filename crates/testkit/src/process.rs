//! Commands that must succeed, and child processes that do not outlive the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Runs `cmd` and returns its stdout.
///
/// # Panics
/// If it cannot be started, fails (with its stderr), or prints anything but UTF-8.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?} printed something other than UTF-8: {e}"))
}

/// A child process, killed (and reaped) when dropped: a failing test leaves nothing running.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` with a piped stdout and returns it with the first line it prints (a server's
/// "listening on PORT" line), newline included.
///
/// # Panics
/// If it cannot be started or its stdout cannot be read.
pub fn spawn_first_line(cmd: &mut Command) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = child.stdout.take();
    // Owned before reading, so that a panic below still kills it.
    let proc = Proc(child);
    let stdout = stdout.unwrap_or_else(|| panic!("{cmd:?}: no stdout pipe"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot read its stdout: {e}"));
    (proc, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_returns_stdout() {
        assert_eq!(ok(Command::new("sh").args(["-c", "echo hi"])), "hi\n");
    }

    #[test]
    #[should_panic(expected = "from stderr")]
    fn ok_reports_a_failure_with_its_stderr() {
        ok(Command::new("sh").args(["-c", "echo from stderr >&2; exit 3"]));
    }

    #[test]
    fn the_first_line_is_read_and_the_process_killed_on_drop() {
        let (proc, line) =
            spawn_first_line(Command::new("sh").args(["-c", "echo PORT 1234; exec sleep 60"]));
        assert_eq!(line, "PORT 1234\n");
        let pid = proc.0.id();
        drop(proc);
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(!alive, "process {pid} still runs after the drop");
    }
}
