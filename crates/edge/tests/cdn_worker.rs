//! The Cloudflare Worker (`cdn/cloudflare/worker.mjs`) in Cloudflare's own runtime, workerd,
//! against the Rust edge: the Worker fetches the package of the edge's fixture from a static
//! origin on 127.0.0.1, and for the same token every file it serves (manifests, playlists, init
//! and media segments of every rendition, subtitles, the encrypted titles) must be byte-identical
//! to what the edge serves, with the same ETag, Content-Type and Cache-Control; forged, expired,
//! wrong-key, other-title, unrecorded and revoked tokens are refused with 403, and origin-only
//! paths with the edge's status. The selector vectors (`tests/vectors/selector-v2.json`) are run
//! inside workerd too.
//!
//! hls.js in headless Chromium (`tests/player/worker-hls.html`) plays two sessions at once
//! through the Worker: every response it received is the edge's for the same token, each video
//! segment the variant the session's codeword names, with no error and no stall, and the two
//! sessions' variant sequences differ.
//!
//! Cloudflare's `wrangler` checks the deployment configuration offline (`deploy --dry-run`, in
//! a network namespace of its own where that is allowed).
//!
//! Needs `npm ci --prefix cdn` (workerd and @noble/hashes); skipped with a notice when
//! `cdn/node_modules/workerd` is missing, unless `LEAKTRACE_REQUIRE_CDN=1`. The playback test
//! also needs Debian's `chromium` and hls.js (`npm ci --prefix crates/edge/tests/player`);
//! skipped with a notice without them, unless `LEAKTRACE_REQUIRE_PLAYER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Resp, codeword, fixture, get, key, request, which_variant};
use leaktrace_core::session::session_of;
use leaktrace_core::token::{Verifier, WmToken, decode_and_verify};
use leaktrace_core::{SessionId, Variant};
use leaktrace_testkit::{browser, free_port, repo};
use sha2::{Digest, Sha256};

/// The `cdn/` folder of the repository.
fn cdn() -> PathBuf {
    repo().join("cdn")
}

/// Whether workerd is installed; when it is not, the test is skipped with a notice, unless
/// `LEAKTRACE_REQUIRE_CDN=1` makes that a failure.
fn workerd_available() -> bool {
    let required = std::env::var("LEAKTRACE_REQUIRE_CDN").as_deref() == Ok("1");
    let installed = cdn().join("node_modules/workerd").is_dir()
        && cdn().join("node_modules/@noble/hashes/blake3.js").is_file();
    if !installed {
        assert!(
            !required,
            "LEAKTRACE_REQUIRE_CDN=1 but cdn/node_modules/workerd is missing (npm ci --prefix cdn)"
        );
        eprintln!("SKIPPED: needs cdn/node_modules/workerd (npm ci --prefix cdn)");
    }
    installed
}

/// A workerd process serving `cdn/cloudflare/test/config.capnp`; killed on drop, then its KV
/// directories removed.
struct Workerd {
    child: Child,
    /// The Worker (position from the sidecar).
    http: SocketAddr,
    /// The Worker with `LEAKTRACE_POSITION_FROM_NAME=1`.
    names: SocketAddr,
    /// The test-only Worker (vectors).
    selftest: SocketAddr,
    log: PathBuf,
    /// The KV namespaces (`sessions/`, `revoked/`: one file per session id) and the logs.
    kv: tempfile::TempDir,
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for log in [self.log.clone(), self.log.with_extension("err")] {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} (last lines) ---", log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// The SEC1 uncompressed public key of the fixture's ES256 issuer, in hex.
fn es256_public_hex() -> String {
    let secret = blake3::hash(b"edge test es256");
    let signing = p256::ecdsa::SigningKey::from_slice(secret.as_bytes()).unwrap();
    let point = signing.verifying_key().to_sec1_point(false);
    let point = point.as_bytes();
    assert_eq!(point.len(), 65, "expected an uncompressed SEC1 point");
    point.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts workerd with the Worker pointed at a static origin on 127.0.0.1 serving `root`, the
/// `(token, title)` sessions recorded in its SESSIONS namespace and none revoked.
fn start_workerd(root: PathBuf, sessions: &[(&str, &str)]) -> Workerd {
    let dir = tempfile::tempdir().unwrap();
    let kv = dir.path();
    std::fs::create_dir_all(kv.join("sessions")).unwrap();
    std::fs::create_dir_all(kv.join("revoked")).unwrap();
    for (token, title) in sessions {
        let sid = session_of(&claims_of(token)).unwrap();
        record_session(kv, sid.as_str(), title);
    }
    let origin = serve_origin(root);
    let ports = [free_port(), free_port(), free_port()];
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let log = kv.join("workerd.log");
    let master = format!("1:{}", key().to_hex());
    let child = Command::new(cdn().join("node_modules/.bin/workerd"))
        .current_dir(cdn())
        .arg("serve")
        .arg("cloudflare/test/config.capnp")
        .arg("--import-path")
        .arg(cdn().join(".."))
        .arg("-s")
        .arg(format!("http={}", addr(ports[0])))
        .arg("-s")
        .arg(format!("names={}", addr(ports[1])))
        .arg("-s")
        .arg(format!("selftest={}", addr(ports[2])))
        .arg("-d")
        .arg(format!("sessions={}", kv.join("sessions").display()))
        .arg("-d")
        .arg(format!("revoked={}", kv.join("revoked").display()))
        .env("LEAKTRACE_ORIGIN", format!("http://{origin}"))
        .env("LEAKTRACE_MASTER_KEYS", master)
        .env("LEAKTRACE_ES256_KEYS", es256_public_hex())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(kv.join("workerd.err")).unwrap())
        .spawn()
        .expect("starting workerd");
    let w = Workerd {
        child,
        http: addr(ports[0]),
        names: addr(ports[1]),
        selftest: addr(ports[2]),
        log,
        kv: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for a in [w.http, w.names, w.selftest] {
        while TcpStream::connect(a).is_err() {
            assert!(
                Instant::now() < deadline,
                "workerd did not listen on {a}: {}",
                std::fs::read_to_string(w.log.with_extension("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    w
}

/// A static HTTP/1.1 origin on 127.0.0.1 serving `root` (GET and HEAD, one request per
/// connection): 200 with the file, or 404.
fn serve_origin(root: PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    addr
}

fn answer(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let safe = path.starts_with('/')
        && !path.contains("..")
        && !path.contains('%')
        && !path.contains('\\');
    let file = root.join(path.trim_start_matches('/'));
    let head = method == "HEAD";
    let (status, body) = match (safe && file.is_file(), std::fs::read(&file)) {
        (true, Ok(b)) => ("200 OK", b),
        _ => ("404 Not Found", b"not found\n".to_vec()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        let _ = stream.write_all(&body);
    }
}

/// The claims of a fixture token (HMAC or ES256), whatever its times (verified at its own
/// issue time).
fn claims_of(token: &str) -> WmToken {
    let verifiers = [
        Verifier::hmac_sha256(key().token_mac_key().as_bytes()),
        common::es256_signer().verifier(),
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Fixture tokens were issued now or a day ago, for an hour.
    [now, now - 86_400 + 1_800]
        .into_iter()
        .find_map(|t| {
            verifiers
                .iter()
                .find_map(|v| decode_and_verify(token, v, t).ok())
        })
        .expect("a fixture token")
}

/// Records `session` of `title` in the Worker's SESSIONS namespace (its directory).
fn record_session(kv: &Path, session: &str, title: &str) {
    std::fs::write(
        kv.join("sessions").join(session),
        format!("{{\"title\":\"{title}\",\"key_version\":1,\"title_key_version\":1}}"),
    )
    .unwrap();
}

/// Every file a viewer can ask for under `pkg` (relative paths): root manifests, and per
/// rendition its plain files and the names of its variant files.
fn viewer_files(pkg: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for f in names(pkg) {
        if f.ends_with(".m3u8") || f.ends_with(".mpd") {
            out.push(f);
        }
    }
    let mut renditions: Vec<PathBuf> = std::fs::read_dir(pkg)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "reference"))
        .collect();
    renditions.sort();
    for r in renditions {
        let name = r.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = names(&r);
        files.extend(names(&r.join("a")));
        files.sort();
        files.dedup();
        for f in files {
            out.push(format!("{name}/{f}"));
        }
    }
    out
}

fn same_response(what: &str, edge: &Resp, worker: &Resp) {
    assert_eq!(edge.status, worker.status, "{what}: status");
    assert!(edge.body == worker.body, "{what}: bodies differ");
    for h in [
        "etag",
        "content-type",
        "cache-control",
        "content-range",
        "vary",
        "accept-ranges",
        "x-content-type-options",
        "access-control-allow-origin",
        "access-control-expose-headers",
    ] {
        assert_eq!(edge.header(h), worker.header(h), "{what}: {h}");
    }
    assert_eq!(
        worker.header("last-modified"),
        None,
        "{what}: Last-Modified"
    );
}

/// Runs Cloudflare's `wrangler` (pinned in `cdn/package.json`) with `args`, from a scratch
/// directory, with no network: inside a network namespace of its own when `unshare -n` is
/// allowed, and in any case with its metrics and update check off (`CI`), which open no
/// connection. Returns whether it succeeded and what it printed.
fn wrangler(args: &[&str], scratch: &Path) -> (bool, String) {
    let js = cdn().join("node_modules/wrangler/bin/wrangler.js");
    let isolated = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if isolated {
        let mut c = Command::new("unshare");
        c.args(["-n", "node"]);
        c
    } else {
        Command::new("node")
    };
    let out = cmd
        .arg(js)
        .args(args)
        .current_dir(scratch)
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_LOG_PATH", scratch.join("logs"))
        .env("HOME", scratch)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The deployment configuration (`cdn/cloudflare/wrangler.toml`) is checked by Cloudflare's own
/// tool without an account: `wrangler deploy --dry-run` bundles the Worker with its dependency
/// and reads every binding; the bundle is a module whose default export has `fetch`. A
/// configuration whose entry point is missing is refused.
#[test]
fn wrangler_accepts_the_deployment_configuration_offline() {
    let required = std::env::var("LEAKTRACE_REQUIRE_CDN").as_deref() == Ok("1");
    if !cdn()
        .join("node_modules/wrangler/bin/wrangler.js")
        .is_file()
    {
        assert!(
            !required,
            "LEAKTRACE_REQUIRE_CDN=1 but cdn/node_modules/wrangler is missing (npm ci --prefix cdn)"
        );
        eprintln!("SKIPPED: needs cdn/node_modules/wrangler (npm ci --prefix cdn)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let bundle = scratch.path().join("bundle");
    let config = cdn().join("cloudflare/wrangler.toml");
    let (ok, text) = wrangler(
        &[
            "deploy",
            "--dry-run",
            "--outdir",
            bundle.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        scratch.path(),
    );
    // wrangler keeps a cache beside the configuration; it is not part of the repository.
    let _ = std::fs::remove_dir_all(cdn().join("cloudflare/.wrangler"));
    assert!(ok, "wrangler deploy --dry-run failed:\n{text}");
    for binding in [
        "SESSIONS",
        "REVOKED",
        "LEAKTRACE_ORIGIN",
        "--dry-run: exiting now",
    ] {
        assert!(
            text.contains(binding),
            "{binding} not in wrangler's output:\n{text}"
        );
    }
    let js = std::fs::read_to_string(bundle.join("worker.js")).unwrap();
    assert!(
        js.contains("export {") && js.contains("default"),
        "the bundle exports no default"
    );
    // The bundled BLAKE3 comes from cdn/node_modules.
    assert!(
        js.contains("blake3"),
        "the bundle lacks @noble/hashes' blake3"
    );

    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"leaktrace-edge\"\nmain = \"missing.mjs\"\ncompatibility_date = \"2026-11-01\"\n",
    )
    .unwrap();
    let (ok, text) = wrangler(
        &[
            "deploy",
            "--dry-run",
            "--outdir",
            scratch.path().join("bad-bundle").to_str().unwrap(),
            "--config",
            bad.to_str().unwrap(),
        ],
        scratch.path(),
    );
    assert!(
        !ok,
        "wrangler accepted a configuration without its entry point:\n{text}"
    );
    eprintln!("wrangler deploy --dry-run: the deployment configuration bundles and checks offline");
}

#[test]
fn selector_vectors_pass_inside_workerd() {
    if !workerd_available() {
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let w = start_workerd(empty.path().to_path_buf(), &[]);
    let r = get(w.selftest, "/vectors");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(report["ok"], true, "selector vectors in workerd: {report}");
    assert!(report["checked"].as_u64().unwrap() > 2000, "{report}");
    eprintln!(
        "selector vectors in workerd: {} checks passed",
        report["checked"]
    );
}

#[test]
fn worker_in_workerd_serves_the_edges_bytes_and_refuses_bad_tokens() {
    if !workerd_available() {
        return;
    }
    let f = fixture();
    let root = f.pkg.parent().unwrap().to_path_buf();
    let t = &f.tokens;
    let titled: Vec<(&str, &str)> = vec![
        (t.s1.1.as_str(), common::TITLE),
        (t.s2.1.as_str(), common::TITLE),
        (t.direct.1.as_str(), common::TITLE),
        (t.es256.1.as_str(), common::TITLE),
        (t.expired.as_str(), common::TITLE),
        (t.other_title.as_str(), common::OTHER_TITLE),
        (t.drm[0].1.as_str(), common::DRM_TITLES[0].0),
        (t.drm[1].1.as_str(), common::DRM_TITLES[1].0),
    ];
    let w = start_workerd(root.clone(), &titled);

    // Every file of every title, for every kind of token: the Worker serves the edge's bytes.
    let mut compared = 0usize;
    let mut by_name = 0usize;
    let sessions: Vec<(&str, &str)> = vec![
        ("s1", t.s1.1.as_str()),
        ("s2", t.s2.1.as_str()),
        ("direct", t.direct.1.as_str()),
        ("es256", t.es256.1.as_str()),
    ];
    let files = viewer_files(&f.pkg);
    assert!(
        files.iter().filter(|p| p.ends_with(".m4s")).count() >= 40,
        "{files:?}"
    );
    for (name, token) in &sessions {
        for file in &files {
            let path = format!("/wmt/{token}/{}/{file}", common::TITLE);
            let edge = get(f.addr, &path);
            assert_eq!(edge.status, 200, "edge: {file}");
            let worker = get(w.http, &path);
            same_response(&format!("{name} {file}"), &edge, &worker);
            compared += 1;
            if *name == "s1" || *name == "direct" {
                let named = get(w.names, &path);
                same_response(
                    &format!("{name} {file} (position from name)"),
                    &edge,
                    &named,
                );
                by_name += 1;
            }
        }
    }
    for (i, (title, _)) in common::DRM_TITLES.iter().enumerate() {
        let token = &t.drm[i].1;
        for file in viewer_files(&root.join(title)) {
            let path = format!("/wmt/{token}/{title}/{file}");
            let edge = get(f.addr, &path);
            assert_eq!(edge.status, 200, "edge: {title}/{file}");
            same_response(&format!("{title} {file}"), &edge, &get(w.http, &path));
            compared += 1;
        }
    }

    // The token from the query and from the header; HEAD, ranges and validators as the edge.
    let seg = format!("{}/360p/seg_00003.m4s", common::TITLE);
    let s1 = &t.s1.1;
    let auth = format!("Bearer {s1}");
    for (target, headers) in [
        (format!("/{seg}?wmt={s1}"), vec![]),
        (format!("/{seg}"), vec![("Authorization", auth.as_str())]),
        (format!("/wmt/{s1}/{seg}"), vec![("Range", "bytes=100-199")]),
        (format!("/wmt/{s1}/{seg}"), vec![("Range", "bytes=-50")]),
        (
            format!("/wmt/{s1}/{seg}"),
            vec![("Range", "bytes=99999999-")],
        ),
    ] {
        let edge = request(f.addr, "GET", &target, &headers);
        let worker = request(w.http, "GET", &target, &headers);
        same_response(&format!("{target} {headers:?}"), &edge, &worker);
    }
    let edge = request(f.addr, "HEAD", &format!("/wmt/{s1}/{seg}"), &[]);
    let worker = request(w.http, "HEAD", &format!("/wmt/{s1}/{seg}"), &[]);
    same_response("HEAD", &edge, &worker);
    assert_eq!(
        edge.header("content-length"),
        worker.header("content-length")
    );
    let etag = edge.header("etag").unwrap().to_owned();
    let worker = request(
        w.http,
        "GET",
        &format!("/wmt/{s1}/{seg}"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(worker.status, 304);

    // Refusals: bad tokens 403, origin-only and malformed paths as the edge.
    for (what, token) in [
        ("forged", t.forged.as_str()),
        ("expired", t.expired.as_str()),
        ("wrong key", t.wrong_key.as_str()),
        ("other title", t.other_title.as_str()),
        ("unrecorded", t.unrecorded.as_str()),
        ("not a token", "abc"),
    ] {
        let path = format!("/wmt/{token}/{seg}");
        let r = get(w.http, &path);
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.header("etag"), None, "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(get(f.addr, &path).status, 403, "{what} (edge)");
    }
    assert_eq!(get(w.http, &format!("/{seg}")).status, 403, "no token");
    for p in [
        format!("/wmt/{s1}/bbb/360p/a/seg_00000.m4s"),
        format!("/wmt/{s1}/bbb/360p/b/seg_00000.m4s"),
        format!("/wmt/{s1}/bbb/360p/WMPaceInfo/seg_00000.m4s"),
        format!("/wmt/{s1}/bbb/reference/meta.json"),
        format!("/wmt/{s1}/bbb/title.json"),
        format!("/wmt/{s1}/bbb/360p/seg_99999.m4s"),
        format!("/wmt/{s1}/bbb/nothing.m3u8"),
        format!("/wmt/{s1}/bbb/../title.json"),
        format!("/wmt/{s1}/bbb/%2e%2e/360p/seg_00000.m4s"),
        format!("/wmt/{s1}/bbb//360p/seg_00000.m4s"),
        format!("/wmt/{s1}"),
    ] {
        let edge = get(f.addr, &p);
        let worker = get(w.http, &p);
        assert_eq!(edge.status, worker.status, "{p}");
        assert!(matches!(worker.status, 400 | 404), "{p}: {}", worker.status);
    }
    let post = request(w.http, "POST", &format!("/wmt/{s1}/{seg}"), &[]);
    assert_eq!(post.status, 405);
    // A browser's CORS preflight: answered as the edge answers it.
    let preflight = [
        ("Origin", "null"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "range"),
    ];
    let edge = request(f.addr, "OPTIONS", &format!("/wmt/{s1}/{seg}"), &preflight);
    let worker = request(w.http, "OPTIONS", &format!("/wmt/{s1}/{seg}"), &preflight);
    assert_eq!((edge.status, worker.status), (204, 204));
    for h in [
        "allow",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ] {
        assert!(edge.header(h).is_some(), "preflight: {h}");
        assert_eq!(edge.header(h), worker.header(h), "preflight: {h}");
    }

    // Revocation: a session put in the REVOKED namespace is refused at once.
    let s2 = t.s2.0.as_str();
    assert_eq!(get(w.http, &format!("/wmt/{}/{seg}", t.s2.1)).status, 200);
    let revoked = w.kv.path().join("revoked").join(s2);
    std::fs::write(&revoked, "2026-12-01T00:00:00Z").unwrap();
    assert_eq!(get(w.http, &format!("/wmt/{}/{seg}", t.s2.1)).status, 403);
    assert_eq!(get(w.names, &format!("/wmt/{}/{seg}", t.s2.1)).status, 403);
    std::fs::remove_file(&revoked).unwrap();
    assert_eq!(get(w.http, &format!("/wmt/{}/{seg}", t.s2.1)).status, 200);

    eprintln!(
        "workerd: {compared} files identical to the edge's ({by_name} more with positions from file names); log {}",
        w.log.display()
    );
}

/// hls.js (`crates/edge/tests/player`).
fn hls_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player/node_modules/hls.js/dist/hls.min.js")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// What one player of `player/worker-hls.html` received through the Worker at `worker`:
/// every response compared with the edge's answer for the same path (so for the same token),
/// and the variant of each video segment checked against the session's codeword; no error, no
/// stall, every segment in time.
fn check_player(
    f: &common::Fixture,
    player: &serde_json::Value,
    worker: SocketAddr,
    sid: &SessionId,
) -> Played {
    // The report without its list of responses (checked one by one below).
    let mut summary = player.clone();
    summary["responses"] = serde_json::json!(player["responses"].as_array().map_or(0, Vec::len));
    let report = summary.to_string();
    assert_eq!(
        player["errors"],
        serde_json::json!([]),
        "player errors: {report}"
    );
    assert_eq!(player["ended"], true, "did not play to the end: {report}");
    assert!(player["mediaError"].is_null(), "{report}");
    assert_eq!(player["stalls"], 0, "buffer stalls: {report}");
    assert_eq!(
        player["waiting"], 0,
        "waited for data while playing: {report}"
    );
    assert!(
        player["audioDecodedBytes"].as_u64().unwrap_or(0) > 0,
        "no sound decoded: {report}"
    );
    let prefix = format!("http://{worker}");
    let mut variants = std::collections::BTreeMap::new();
    let (mut playlists, mut inits, mut audio, mut texts) = (0, 0, 0, 0);
    let (mut renditions, mut load_ms) = (std::collections::BTreeSet::new(), Vec::new());
    for r in player["responses"].as_array().unwrap() {
        let url = r["url"].as_str().unwrap();
        let path = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url}: not from the Worker at {worker}"));
        let edge = get(f.addr, path);
        assert_eq!(edge.status, 200, "edge: {path}");
        assert_eq!(
            r["sha256"].as_str().unwrap(),
            sha256_hex(&edge.body),
            "{path}: the player's bytes are not the edge's ({} received, {} from the edge)",
            r["len"],
            edge.body.len()
        );
        let rest = path
            .split_once(&format!("/{}/", common::TITLE))
            .unwrap_or_else(|| panic!("{path}: not the title's"))
            .1;
        let Some((rendition, file)) = rest.split_once('/') else {
            playlists += 1;
            continue;
        };
        let position = file
            .strip_prefix("seg_")
            .and_then(|s| s.strip_suffix(".m4s"))
            .and_then(|s| s.parse::<u32>().ok());
        match position {
            _ if file.ends_with(".m3u8") => playlists += 1,
            _ if rendition == common::AUDIO => audio += 1,
            _ if rendition.starts_with("text-") => texts += 1,
            None => inits += 1,
            Some(p) => {
                // Positions are 1 s long: the segment was there before the playhead reached it.
                let at = r["at"].as_f64().unwrap();
                assert!(at <= f64::from(p), "{path} arrived late, at {at} s");
                renditions.insert(rendition.to_owned());
                load_ms.push(r["ms"].as_u64().unwrap());
                let got = which_variant(&f.pkg, rendition, p, &edge.body);
                assert_eq!(got, codeword(sid, p), "{path}: not the session's variant");
                variants.insert(p, got);
            }
        }
    }
    assert!(playlists >= 3 && inits >= 1 && texts >= 1, "{report}");
    assert_eq!(
        audio,
        common::POSITIONS + 1,
        "audio init + segments: {report}"
    );
    assert_eq!(
        variants.keys().copied().collect::<Vec<_>>(),
        (0..common::POSITIONS).collect::<Vec<_>>(),
        "positions received: {report}"
    );
    load_ms.sort_unstable();
    let seq = variants
        .values()
        .map(|v| if *v == Variant::A { 'A' } else { 'B' })
        .collect();
    Played {
        seq,
        renditions: renditions.into_iter().collect(),
        median_ms: load_ms[load_ms.len() / 2],
        max_ms: load_ms[load_ms.len() - 1],
    }
}

/// What [`check_player`] found.
struct Played {
    /// The variant at each position, e.g. `ABBA…`.
    seq: String,
    /// The video renditions played.
    renditions: Vec<String>,
    /// Median and longest load time of a video segment (ms, as hls.js measured it).
    median_ms: u64,
    max_ms: u64,
}

#[test]
fn hls_js_plays_sessions_through_the_worker_in_workerd() {
    if !workerd_available() {
        return;
    }
    let Some(chromium) =
        browser::player_available(&hls_js(), "npm ci --prefix crates/edge/tests/player")
    else {
        return;
    };
    let started = Instant::now();
    let f = fixture();
    let (s1, s2) = (&f.tokens.s1, &f.tokens.s2);
    let w = start_workerd(
        f.pkg.parent().unwrap().to_path_buf(),
        &[(&s1.1, common::TITLE), (&s2.1, common::TITLE)],
    );
    // Two viewers at once: the first through the Worker reading positions from the sidecars,
    // the second through the one reading them from file names.
    let viewers = [(w.http, s1), (w.names, s2)];
    let sources: Vec<String> = viewers
        .iter()
        .map(|(addr, (_, token))| {
            format!("http://{addr}/wmt/{token}/{}/master.m3u8", common::TITLE)
        })
        .collect();
    let page = include_str!("player/worker-hls.html")
        .replace("HLS_JS_URL", &format!("file://{}", hls_js().display()))
        .replace("SOURCES_JSON", &serde_json::to_string(&sources).unwrap())
        .replace("PLAYBACK_RATE", "2");
    let played = Instant::now();
    let report: serde_json::Value =
        serde_json::from_str(&browser::run_page(chromium, &page, Duration::from_secs(90))).unwrap();
    let played = played.elapsed();
    assert_eq!(report["mse"], true, "no Media Source Extensions: {report}");
    assert_eq!(report["reason"], "ended", "{report}");
    let players = report["players"].as_array().unwrap();
    assert_eq!(players.len(), viewers.len(), "{report}");
    let mut sequences = Vec::new();
    let mut renditions = std::collections::BTreeSet::new();
    for (player, (addr, (sid, _))) in players.iter().zip(&viewers) {
        let p = check_player(f, player, *addr, sid);
        let seq = &p.seq;
        let switches = seq.as_bytes().windows(2).filter(|w| w[0] != w[1]).count();
        eprintln!(
            "hls.js via workerd: session {sid}, {:?} played to {:.1} s: {} responses identical to the edge's, segments loaded in {} ms (median, {} ms at most), {} frames ({} dropped), no stall; variants {seq} (A {}, B {}, {switches} switches)",
            p.renditions,
            player["currentTime"].as_f64().unwrap_or(0.0),
            player["responses"].as_array().map_or(0, Vec::len),
            p.median_ms,
            p.max_ms,
            player["frames"],
            player["droppedFrames"],
            seq.matches('A').count(),
            seq.matches('B').count(),
        );
        assert!(switches >= 1, "no A/B switch in {seq}");
        renditions.extend(p.renditions);
        sequences.push(p.seq);
    }
    assert_ne!(
        sequences[0], sequences[1],
        "two sessions got the same variant sequence"
    );
    assert_eq!(
        renditions.into_iter().collect::<Vec<_>>(),
        {
            let mut all = common::RENDITIONS.map(str::to_owned).to_vec();
            all.sort();
            all
        },
        "every video rendition played"
    );
    eprintln!(
        "hls.js via workerd: {:.1} s in Chromium, {:.1} s in all",
        played.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
