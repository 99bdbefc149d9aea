//! The CloudFront Function's inputs as an operator makes them: `leaktrace cdn export` (a
//! package for an object-store origin), `leaktrace cdn keys` (the function's
//! `leaktrace:config`), `session export --kv cloudfront` and `session revoked --kv cloudfront`.
//! The export must hold, for every viewer file, the bytes the edge serves (in-band WMPaceInfo
//! neutralised, each variant where the function looks for it, nothing origin-only); the keys
//! must be the ones the master key derives. When `node` is installed, the function itself
//! (`cdn/cloudfront/function.js` in the runtime stand-in `cdn/cloudfront/test/runtime.mjs`)
//! reads exactly those files: every viewer file of every session becomes an object of the
//! export, the segments of a session the variant its codeword gives, and a revoked session is
//! refused. Without node that part is skipped with a notice, unless `LEAKTRACE_REQUIRE_CDN=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, embed_bbb, init_workdir, new_sessions, ok, repo};
use leaktrace_core::{KeyVersion, MasterKey, Purpose, SessionId, TitleId, Variant};
use leaktrace_edge::egress::neutralize_wmpi;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

fn run(dir: &Path, args: &[&str]) -> String {
    ok(bin().current_dir(dir).args(args))
}

/// A package file as the edge serves it.
fn served(path: &Path) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    neutralize_wmpi(&mut b);
    b
}

/// The top-level box types of an ISOBMFF file.
fn boxes(bytes: &[u8]) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
        out.push(bytes[o + 4..o + 8].try_into().unwrap());
        if size < 8 {
            break;
        }
        o += size;
    }
    out
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn node_available() -> bool {
    let required = std::env::var("LEAKTRACE_REQUIRE_CDN").as_deref() == Ok("1");
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !required,
            "LEAKTRACE_REQUIRE_CDN=1 but node is not installed"
        );
        eprintln!("SKIPPED (the function part): needs node");
    }
    found
}

#[test]
fn cdn_export_keys_and_sessions_are_what_the_cloudfront_function_reads() {
    let d = init_workdir();
    let d = d.path();
    std::fs::write(
        d.join("en.srt"),
        "1\n00:00:00,200 --> 00:00:01,500\nHello\n\n",
    )
    .unwrap();
    embed_bbb(d, "72", &["--segment", "1s", "--subtitles", "en.srt:en"]);
    let pkg = d.join("pkg");
    let master = MasterKey::from_hex(
        std::fs::read_to_string(d.join("master.key"))
            .unwrap()
            .trim(),
        KeyVersion::new(1),
    )
    .unwrap();

    // Sessions: two in indirect mode (the second revoked), one in direct mode.
    let mut sessions = new_sessions(d, "bbb", 2);
    sessions.push(json(&run(
        d,
        &[
            "session",
            "new",
            "--title",
            "bbb",
            "--account",
            "direct",
            "--direct",
            "--json",
        ],
    )));
    let sid = |i: usize| sessions[i]["session_id"].as_str().unwrap().to_owned();
    run(d, &["session", "revoke", &sid(1)]);

    // The KeyValueStore import files.
    let sess = json(&run(
        d,
        &["session", "export", "--title", "bbb", "--kv", "cloudfront"],
    ));
    let mut keys: Vec<&str> = sess["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["value"], "1 1 bbb", "{e}");
            e["key"].as_str().unwrap()
        })
        .collect();
    keys.sort_unstable();
    let mut want: Vec<String> = (0..3).map(|i| format!("s:{}", sid(i))).collect();
    want.sort();
    assert_eq!(keys, want);
    let rev = json(&run(d, &["session", "revoked", "--kv", "cloudfront"]));
    assert_eq!(
        rev["data"],
        serde_json::json!([{"key": sid(1), "value": "1"}])
    );
    let cfg = json(&run(d, &["cdn", "keys"]));
    assert_eq!(cfg["data"][0]["key"], "leaktrace:config");
    let value = json(cfg["data"][0]["value"].as_str().unwrap());
    assert_eq!(value["wmopid"], 1);
    let hex = format!(
        "{}{}{}",
        master.derive(Purpose::TokenMac).to_hex(),
        master.derive(Purpose::TardosBias).to_hex(),
        master.derive(Purpose::Codeword).to_hex()
    );
    assert_eq!(value["keys"]["1"], hex.as_str());
    assert!(
        !cfg.to_string().contains(master.to_hex().as_str()),
        "the master key itself stays out of the store"
    );
    let code = bin()
        .current_dir(d)
        .args(["cdn", "keys", "--key-version", "2"])
        .output()
        .unwrap();
    assert_eq!(code.status.code(), Some(2));
    let code = bin()
        .current_dir(d)
        .args(["session", "export", "--title", "nope", "--kv", "cloudfront"])
        .output()
        .unwrap();
    assert_eq!(code.status.code(), Some(6));

    // The export: every object the bytes the edge serves, laid out for the function.
    let out = d.join("cdn");
    let summary = json(&run(
        d,
        &[
            "cdn",
            "export",
            "--package",
            "pkg",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(summary["title"], "bbb");
    let root = out.join("bbb");
    let exported = files_under(&root);
    assert_eq!(
        exported.len(),
        summary["objects"].as_array().unwrap().len(),
        "{exported:?}"
    );
    for o in summary["objects"].as_array().unwrap() {
        let key = o["key"].as_str().unwrap();
        let cc = o["cache_control"].as_str().unwrap();
        if key.ends_with(".m3u8") || key.ends_with(".mpd") {
            assert_eq!(cc, "private, max-age=300", "{key}");
        } else {
            assert_eq!(cc, "private, max-age=86400", "{key}");
        }
        if key.ends_with(".m4s") {
            assert_eq!(o["content_type"], "video/iso.segment", "{key}");
        }
    }
    for f in &exported {
        assert!(
            !f.contains("reference") && !f.contains("WMPaceInfo") && f != "title.json",
            "origin-only file exported: {f}"
        );
        if f.ends_with(".m4s") || f.ends_with(".mp4") {
            let bytes = std::fs::read(root.join(f)).unwrap();
            assert!(!boxes(&bytes).contains(b"wmpi"), "{f} still carries wmpi");
        }
    }
    let audio = exported
        .iter()
        .find(|f| f.starts_with("audio-"))
        .map(|f| f.split('/').next().unwrap().to_owned())
        .expect("an audio rendition");
    let mut pairs_differ = 0;
    for p in 0..3u32 {
        let name = format!("seg_{p:05}.m4s");
        let a = std::fs::read(root.join("360p/a").join(&name)).unwrap();
        let b = std::fs::read(root.join("360p/b").join(&name)).unwrap();
        assert_eq!(a, served(&pkg.join("360p/a").join(&name)), "360p/a/{name}");
        assert_eq!(b, served(&pkg.join("360p/b").join(&name)), "360p/b/{name}");
        pairs_differ += usize::from(a != b);
        let plain = served(&pkg.join(&audio).join(&name));
        assert_eq!(
            std::fs::read(root.join(&audio).join("a").join(&name)).unwrap(),
            plain
        );
        assert_eq!(
            std::fs::read(root.join(&audio).join("b").join(&name)).unwrap(),
            plain
        );
    }
    assert_eq!(pairs_differ, 3, "A and B differ at every position");
    assert_eq!(
        std::fs::read(root.join("360p/init.mp4")).unwrap(),
        served(&pkg.join("360p/a/init.mp4"))
    );
    assert!(root.join("text-en/playlist.m3u8").is_file());
    assert!(root.join("master.m3u8").is_file() && root.join("manifest.mpd").is_file());
    let again = bin()
        .current_dir(d)
        .args(["cdn", "export", "--package", "pkg", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an export over a non-empty directory"
    );

    if !node_available() {
        return;
    }
    // The function, reading the CLI's files: each viewer file of each session.
    let mut viewer: Vec<String> = vec!["master.m3u8".into(), "manifest.mpd".into()];
    for f in &exported {
        let parts: Vec<&str> = f.split('/').collect();
        if parts.len() >= 2 {
            let name = format!("{}/{}", parts[0], parts.last().unwrap());
            if !viewer.contains(&name) {
                viewer.push(name);
            }
        }
    }
    let tokens: Vec<String> = sessions
        .iter()
        .map(|s| {
            let path = s["path"].as_str().unwrap();
            path.split('/').nth(2).unwrap().to_owned()
        })
        .collect();
    let mut requests = Vec::new();
    for t in &tokens {
        for f in &viewer {
            requests.push(serde_json::json!({ "target": format!("/wmt/{t}/bbb/{f}") }));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let input = serde_json::json!({ "now": now, "kvs": [sess, rev, cfg], "requests": requests });
    let mut child = Command::new("node")
        .arg(repo().join("cdn/cloudfront/test/rewrite.mjs"))
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let answer = child.wait_with_output().unwrap();
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    let results = json(&String::from_utf8(answer.stdout).unwrap());
    let book = master.codebook(&TitleId::new("bbb").unwrap());
    let mut checked = 0;
    for (i, _) in tokens.iter().enumerate() {
        for (j, f) in viewer.iter().enumerate() {
            let r = &results[i * viewer.len() + j];
            if i == 1 {
                assert_eq!(r["status"], 403, "revoked session, {f}: {r}");
                continue;
            }
            assert_eq!(r["status"], 200, "session {i}, {f}: {r}");
            let uri = r["uri"].as_str().unwrap();
            let object = out.join(uri.trim_start_matches('/'));
            assert!(
                object.is_file(),
                "session {i}, {f}: {uri} is not in the export"
            );
            if let Some(name) = f.strip_prefix("360p/seg_") {
                let p: u32 = name.trim_end_matches(".m4s").parse().unwrap();
                let v = if uri.contains("/360p/b/") {
                    Variant::B
                } else {
                    Variant::A
                };
                if i == 0 {
                    let s = SessionId::new(sid(0)).unwrap();
                    assert_eq!(v, book.bit(&s, p), "session 0 at {p}");
                }
                assert_eq!(
                    std::fs::read(&object).unwrap(),
                    served(
                        &pkg.join("360p")
                            .join(v.dir())
                            .join(f.trim_start_matches("360p/"))
                    )
                );
            }
            checked += 1;
        }
    }
    eprintln!(
        "the CloudFront Function served {checked} requests from the export ({} objects)",
        exported.len()
    );
}
