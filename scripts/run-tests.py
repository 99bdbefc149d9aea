#!/usr/bin/env python3
"""Runs the workspace's built test binaries side by side, then the doc tests.

`cargo test` runs one test binary after the other. Many of leaktrace's end-to-end tests spend
most of their time waiting: a live feed read at its own rate, a player playing for two
minutes, a crawl against a slow site, a copy still being written, an SMTP exchange. Run side by
side (three at a time on two cores by default), they fill each other's idle time; the work done
is the same, the wall time is not.

Reads what `cargo test --no-run --message-format=json…` printed (the build's artifacts) on
standard input, runs every test executable from its package's directory (as `cargo test` does),
the longest first, with its output in `--log-dir/<package>.<target>.log`, prints one line per
binary as it ends (its wall time and its CPU time, with every process it waited for) and every
failing binary's output at the end, and exits non-zero when any failed. The doc tests run as
one more job: `cargo test --workspace -- "(line"`, which runs every test binary filtered down
to nothing (no unit or integration test name holds "(line") and every doc test (their names are
`src/lib.rs - (line N)`). It resolves features exactly as the build did, so nothing is compiled
again (`cargo test --doc` alone resolves them for the libraries only and rebuilds part of the
dependency graph).

Side by side, the binaries share two cores. Most only need their work done; a few keep pace
with a clock (a live feed at its rate, a player that must never stall), and a packager starved
of CPU for a second by a detection beside it makes a low-latency player stall. Those (`PACED`)
run at the normal priority, every other binary and the doc tests at `nice 10`: the paced ones
get the CPU when they need it, the rest get all that is left, and the total work is the same.

Usage:
  cargo test --workspace --locked --no-run --message-format=json-render-diagnostics > build.json
  python3 scripts/run-tests.py [--jobs 3] [--log-dir target/test-logs] < build.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# Test binaries known to take a minute or more, longest first: started first, so that the
# short ones fill the gaps at the end instead of a long one starting last.
LONGEST_FIRST = [
    "live_player",
    "detect_wild",
    "demo",
    "detect_follow",
    "detect_blind_crop",
    "detect_robust",
    "time_to_act",
    "smoke",
    "mark_survives",
    "crawl_e2e",
    "cli",
    "player",
    "live",
    "detect",
    "keys",
]


# Test binaries that keep pace with a clock: a live feed read at its rate, a player whose
# playback must not stall. They run at the normal priority, the others at `nice 10`.
PACED = {"live_player", "live", "live_audio", "player", "cdn_worker"}
NICE = ["nice", "-n", "10"]


def artifacts(lines):
    """The test executables of a cargo JSON message stream: (name, executable, package dir,
    the environment `cargo test` gives it)."""
    found = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        if m.get("reason") != "compiler-artifact" or not m.get("executable"):
            continue
        if not m.get("profile", {}).get("test"):
            continue
        target = m["target"]
        pkg = Path(m["manifest_path"]).parent
        # A package id ends in `#name@version`, or `#version` when the name is the directory's.
        package, version = pkg.name, ""
        pid = m.get("package_id", "")
        if "#" in pid:
            tail = pid.rsplit("#", 1)[1]
            if "@" in tail:
                package, version = tail.split("@", 1)
            else:
                version = tail
        kind = "lib" if "lib" in target["kind"] else target["name"]
        env = {
            "CARGO_MANIFEST_DIR": str(pkg),
            "CARGO_MANIFEST_PATH": m["manifest_path"],
            "CARGO_PKG_NAME": package,
            "CARGO_PKG_VERSION": version,
            "CARGO_CRATE_NAME": target["name"].replace("-", "_"),
        }
        found.append((f"{package}::{kind}", m["executable"], str(pkg), env))
    # One entry per executable (a rebuild can report it twice).
    seen, unique = set(), []
    for a in found:
        if a[1] not in seen:
            seen.add(a[1])
            unique.append(a)
    return unique


def target_of(name):
    """The test target of a job name `<package>::<target>`."""
    return name.split("::", 1)[1]


def rank(name):
    short = target_of(name)
    return LONGEST_FIRST.index(short) if short in LONGEST_FIRST else len(LONGEST_FIRST)


def run(cmd, cwd, env, out):
    """Runs one job to its end; returns its exit code and the CPU time (user + system) it and
    every process it waited for used, which is what a shared two-core machine pays for it."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def summary_of(log):
    passed = failed = 0
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    for line in text.splitlines():
        if line.startswith("test result:"):
            parts = line.replace(";", "").split()
            for i, word in enumerate(parts):
                if word == "passed" and i > 0 and parts[i - 1].isdigit():
                    passed += int(parts[i - 1])
                if word == "failed" and i > 0 and parts[i - 1].isdigit():
                    failed += int(parts[i - 1])
    return f"{passed} passed, {failed} failed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=max(2, (os.cpu_count() or 2) + 1))
    ap.add_argument("--log-dir", default="target/test-logs")
    ap.add_argument("--no-doc", action="store_true", help="leave out the doc tests")
    args = ap.parse_args()
    if args.jobs < 1 or args.jobs > 64:
        sys.exit("--jobs out of range (expected 1 to 64)")
    logs = Path(args.log_dir)
    logs.mkdir(parents=True, exist_ok=True)

    cargo = os.environ.get("CARGO") or shutil.which("cargo") or "cargo"
    nice = NICE if shutil.which("nice") else []
    jobs = [
        (name, ([] if target_of(name) in PACED else nice) + [exe], cwd, dict(env, CARGO=cargo))
        for name, exe, cwd, env in artifacts(sys.stdin)
    ]
    if not jobs:
        sys.exit("no test executables in the input (expected cargo's --message-format=json)")
    jobs.sort(key=lambda j: rank(j[0]))
    if not args.no_doc:
        # The doc tests compile each example: CPU work, started after the longest binaries.
        root = str(Path(__file__).resolve().parent.parent)
        doc = nice + [cargo, "test", "--workspace", "--locked", "--", "(line"]
        # No CARGO_MANIFEST_DIR or other package variables for cargo itself: some build
        # scripts (ring's) would see them as a change and compile again.
        jobs.insert(min(4, len(jobs)), ("doc tests", doc, root, None))

    lock = threading.Lock()
    pending = list(jobs)
    results = []
    started = time.monotonic()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                name, cmd, cwd, extra = pending.pop(0)
            log = logs / (name.replace("::", ".").replace(" ", "_") + ".log")
            if extra is None:
                env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_PKG_")}
                env.pop("CARGO_MANIFEST_DIR", None)
                env.pop("CARGO_MANIFEST_PATH", None)
                env.pop("CARGO_CRATE_NAME", None)
            else:
                env = dict(os.environ, **extra)
            t0 = time.monotonic()
            with open(log, "wb") as out:
                code, cpu = run(cmd, cwd, env, out)
            took = time.monotonic() - t0
            with lock:
                results.append((name, code, took, log, cpu))
                state = "ok  " if code == 0 else "FAIL"
                print(
                    f"[test] {state} {took:7.1f} s  {cpu:7.1f} s CPU  {name} ({summary_of(log)})",
                    flush=True,
                )

    threads = [threading.Thread(target=worker) for _ in range(min(args.jobs, len(jobs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    wall = time.monotonic() - started
    failed = [r for r in results if r[1] != 0]
    for name, code, _, log, _ in failed:
        print(f"\n[test] ===== {name} failed (exit {code}); its output: =====", flush=True)
        sys.stdout.write(log.read_text(errors="replace"))
    busy = sum(r[2] for r in results)
    cpu = sum(r[4] for r in results)
    print(
        f"\n[test] {len(results)} test binaries and doc-test groups in {wall:.0f} s "
        f"({busy:.0f} s of test time, {cpu:.0f} s of CPU, {args.jobs} at a time); "
        f"{len(failed)} failed",
        flush=True,
    )
    times = logs / "times.txt"
    times.write_text(
        "".join(
            f"{took:8.1f} s  {cpu:8.1f} s CPU  {name}\n"
            for name, _, took, _, cpu in sorted(results, key=lambda r: -r[2])
        )
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
