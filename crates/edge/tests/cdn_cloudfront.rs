//! The CloudFront Function (`cdn/cloudfront/function.js`) against the Rust edge. The function
//! runs under node in `cdn/cloudfront/test/runtime.mjs`, a stand-in of CloudFront's
//! cloudfront-js-2.0 runtime (only its globals and modules, its size limit, a KeyValueStore
//! filled from import files):
//!
//! - its own suite (`cdn/cloudfront/test/test.mjs`): every selector vector, refusals, the
//!   generated file up to date and within 10 KB, and the same requests in njs when installed;
//! - for the edge's fixture (two video renditions and audio, HLS and DASH, two encrypted
//!   titles), with its KeyValueStore as the CLI writes it, the origin path the function gives
//!   each segment names the variant file whose bytes the edge serves for the same token (HMAC
//!   in indirect and direct mode), and every other file the one the edge serves alike; the
//!   tokens the edge refuses (forged, expired, other key, other title, unrecorded) are refused,
//!   a revoked session too; ES256 tokens, which the edge serves, are refused by design (the
//!   runtime has no ECDSA).
//!
//! Needs `node` and `npm ci --prefix cdn` (@noble/hashes, for the suite's cross-checks); skipped
//! with a notice when either is missing, unless `LEAKTRACE_REQUIRE_CDN=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{Resp, fixture, get, key, which_variant};
use leaktrace_core::Purpose;
use leaktrace_core::session::session_of;
use leaktrace_core::token::{Verifier, WmToken, decode_and_verify};
use leaktrace_core::{SessionId, Variant};
use leaktrace_testkit::repo;

fn cdn() -> PathBuf {
    repo().join("cdn")
}

/// Whether node and the cdn packages are there; when not, the test is skipped with a notice,
/// unless `LEAKTRACE_REQUIRE_CDN=1` makes that a failure.
fn node_available() -> bool {
    let required = std::env::var("LEAKTRACE_REQUIRE_CDN").as_deref() == Ok("1");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let deps = cdn().join("node_modules/@noble/hashes/blake3.js").is_file();
    if !(node && deps) {
        assert!(
            !required,
            "LEAKTRACE_REQUIRE_CDN=1 but node or cdn/node_modules is missing (npm ci --prefix cdn)"
        );
        eprintln!("SKIPPED: needs node and cdn/node_modules (npm ci --prefix cdn)");
    }
    node && deps
}

/// Runs a script of `cdn/cloudfront/test/` with `input` on its standard input; its stdout.
fn node(script: &str, input: &str) -> String {
    let mut child = Command::new("node")
        .arg(cdn().join("cloudfront/test").join(script))
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &stdout[..stdout.len().min(4000)]
    );
    stdout
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a fixture token (HMAC or ES256), whatever its times.
fn claims_of(token: &str) -> WmToken {
    let verifiers = [
        Verifier::hmac_sha256(key().token_mac_key().as_bytes()),
        crate::common::es256_signer().verifier(),
    ];
    let now = now();
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

fn sid_of(token: &str) -> SessionId {
    session_of(&claims_of(token)).unwrap()
}

/// The function's `leaktrace:config` for the fixture's key, as `leaktrace cdn keys` writes it.
fn config_file() -> serde_json::Value {
    let k = key();
    let hex = format!(
        "{}{}{}",
        k.derive(Purpose::TokenMac).to_hex(),
        k.derive(Purpose::TardosBias).to_hex(),
        k.derive(Purpose::Codeword).to_hex()
    );
    let value = serde_json::json!({"wmopid": 1, "keys": {"1": hex}}).to_string();
    serde_json::json!({"data": [{"key": "leaktrace:config", "value": value}]})
}

/// One request's outcome in the function: `(status, origin path)`.
fn rewrite(kvs: &[serde_json::Value], targets: &[String]) -> Vec<(u16, Option<String>)> {
    let requests: Vec<serde_json::Value> = targets
        .iter()
        .map(|t| serde_json::json!({ "target": t }))
        .collect();
    let input = serde_json::json!({ "now": now(), "kvs": kvs, "requests": requests });
    let out: serde_json::Value =
        serde_json::from_str(&node("rewrite.mjs", &input.to_string())).expect("rewrite.mjs output");
    out.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                u16::try_from(r["status"].as_u64().unwrap()).unwrap(),
                r["uri"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn function_suite_passes_in_the_runtime_stand_in() {
    if !node_available() {
        return;
    }
    let report: serde_json::Value =
        serde_json::from_str(node("test.mjs", "").trim()).expect("test.mjs report");
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["checked"].as_u64().unwrap() > 2000, "{report}");
    assert!(report["bytes"].as_u64().unwrap() <= 10_240, "{report}");
    match report["njs"].as_object() {
        Some(n) => eprintln!(
            "CloudFront Function: {} checks, {} bytes; njs {}: {} requests answered alike",
            report["checked"], report["bytes"], n["version"], n["replayed"]
        ),
        None => eprintln!(
            "CloudFront Function: {} checks, {} bytes (njs not installed: not replayed there)",
            report["checked"], report["bytes"]
        ),
    }
}

/// A package file as the edge serves it (in-band WMPaceInfo neutralised, if it has any).
fn served(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    leaktrace_edge::egress::neutralize_wmpi(&mut bytes);
    bytes
}

/// A fixture title's package directory.
fn package(title: &str) -> PathBuf {
    fixture().pkg.parent().unwrap().join(title)
}

/// Checks the function's origin path for `file` of `rendition` against the edge's response:
/// a segment named by position must name the variant file whose bytes the edge served; another
/// file, the plain path, the edge serving what the export writes there.
fn same_choice(
    what: &str,
    pkg: &Path,
    rendition: &str,
    file: &str,
    uri: &str,
    edge: &Resp,
) -> Variant {
    assert_eq!(edge.status, 200, "edge: {what}");
    let title = pkg.file_name().unwrap().to_string_lossy();
    let rdir = pkg.join(rendition);
    if let Some(p) = file
        .strip_prefix("seg_")
        .and_then(|s| s.strip_suffix(".m4s"))
        .and_then(|s| s.parse::<u32>().ok())
    {
        let chosen = if uri == format!("/{title}/{rendition}/a/{file}") {
            Variant::A
        } else {
            assert_eq!(
                uri,
                format!("/{title}/{rendition}/b/{file}"),
                "function: {what}"
            );
            Variant::B
        };
        if rdir.join("a").join(file).is_file() {
            assert_eq!(
                which_variant(pkg, rendition, p, &edge.body),
                chosen,
                "{what}: the edge served the other variant"
            );
        } else {
            // A track every viewer gets alike: the export puts it under a/ and b/.
            assert!(
                edge.body == served(&rdir.join(file)),
                "{what}: plain segment"
            );
        }
        chosen
    } else {
        assert_eq!(
            uri,
            format!("/{title}/{rendition}/{file}"),
            "function: {what}"
        );
        let origin = if rdir.join("a").join(file).is_file() {
            rdir.join("a").join(file)
        } else {
            rdir.join(file)
        };
        assert!(
            edge.body == served(&origin),
            "{what}: the edge served other bytes"
        );
        Variant::A
    }
}

#[test]
fn function_names_the_variant_file_the_edge_serves() {
    if !node_available() {
        return;
    }
    let f = fixture();
    let t = &f.tokens;
    let record = |token: &str, title: &str| serde_json::json!({"key": format!("s:{}", sid_of(token).as_str()), "value": format!("1 1 {title}")});
    let sessions = serde_json::json!({"data": [
        record(&t.s1.1, crate::common::TITLE),
        record(&t.s2.1, crate::common::TITLE),
        record(&t.direct.1, crate::common::TITLE),
        record(&t.es256.1, crate::common::TITLE),
        record(&t.expired, crate::common::TITLE),
        record(&t.other_title, crate::common::OTHER_TITLE),
        record(&t.drm[0].1, crate::common::DRM_TITLES[0].0),
        record(&t.drm[1].1, crate::common::DRM_TITLES[1].0),
    ]});
    let kvs = vec![config_file(), sessions.clone()];

    let mut cases: Vec<(String, String, String, String)> = Vec::new();
    let mut renditions: Vec<&str> = crate::common::RENDITIONS.to_vec();
    renditions.push(crate::common::AUDIO);
    let mut files: Vec<String> = (0..crate::common::POSITIONS)
        .map(|p| format!("seg_{p:05}.m4s"))
        .collect();
    files.push("init.mp4".into());
    let titled: Vec<(&str, &str, &str)> = vec![
        ("s1", t.s1.1.as_str(), crate::common::TITLE),
        ("s2", t.s2.1.as_str(), crate::common::TITLE),
        ("direct", t.direct.1.as_str(), crate::common::TITLE),
        ("cenc", t.drm[0].1.as_str(), crate::common::DRM_TITLES[0].0),
        ("cbcs", t.drm[1].1.as_str(), crate::common::DRM_TITLES[1].0),
    ];
    for (name, token, title) in &titled {
        for r in &renditions {
            for file in &files {
                cases.push((
                    (*name).to_owned(),
                    (*title).to_owned(),
                    (*r).to_owned(),
                    format!("/wmt/{token}/{title}/{r}/{file}"),
                ));
            }
        }
    }
    let targets: Vec<String> = cases.iter().map(|c| c.3.clone()).collect();
    let results = rewrite(&kvs, &targets);
    let mut bs = 0;
    let mut compared = 0;
    for ((name, title, rendition, target), (status, uri)) in cases.iter().zip(&results) {
        let file = target.rsplit('/').next().unwrap();
        let what = format!("{name} {title}/{rendition}/{file}");
        assert_eq!(*status, 200, "function: {what}");
        let edge = get(f.addr, target);
        let v = same_choice(
            &what,
            &package(title),
            rendition,
            file,
            uri.as_deref().unwrap(),
            &edge,
        );
        bs += usize::from(v == Variant::B);
        compared += 1;
    }
    assert!(bs > 40, "both variants chosen ({bs} B of {compared})");

    // Manifests: the plain paths of the origin.
    let s1 = &t.s1.1;
    let manifests: Vec<String> = [
        "master.m3u8",
        "manifest.mpd",
        "360p/playlist.m3u8",
        "audio-und/playlist.m3u8",
    ]
    .iter()
    .map(|m| format!("/wmt/{s1}/{}/{m}", crate::common::TITLE))
    .collect();
    for (target, (status, uri)) in manifests.iter().zip(rewrite(&kvs, &manifests)) {
        assert_eq!(status, 200, "{target}");
        let path = uri.unwrap();
        assert_eq!(get(f.addr, target).status, 200, "edge: {target}");
        assert!(
            package(crate::common::TITLE)
                .join(path.trim_start_matches(&format!("/{}/", crate::common::TITLE)))
                .is_file(),
            "{path}"
        );
    }

    // Refusals: what the edge refuses, the function refuses; ES256 by design; a revoked session.
    let seg = format!("{}/360p/seg_00003.m4s", crate::common::TITLE);
    let refused = [
        ("forged", t.forged.as_str(), true),
        ("expired", t.expired.as_str(), true),
        ("wrong key", t.wrong_key.as_str(), true),
        ("other title", t.other_title.as_str(), true),
        ("unrecorded", t.unrecorded.as_str(), true),
        ("es256", t.es256.1.as_str(), false),
    ];
    let targets: Vec<String> = refused
        .iter()
        .map(|(_, token, _)| format!("/wmt/{token}/{seg}"))
        .collect();
    for ((what, _, edge_refuses), ((status, _), target)) in refused
        .iter()
        .zip(rewrite(&kvs, &targets).into_iter().zip(&targets))
    {
        assert_eq!(status, 403, "function: {what}");
        let edge = get(f.addr, target).status;
        assert_eq!(edge == 403, *edge_refuses, "edge: {what}: {edge}");
    }
    let revoked = serde_json::json!({"data": [{"key": t.s2.0.as_str(), "value": "1"}]});
    let s2 = vec![format!("/wmt/{}/{seg}", t.s2.1)];
    assert_eq!(rewrite(&kvs, &s2)[0].0, 200);
    assert_eq!(
        rewrite(&[config_file(), sessions, revoked], &s2)[0].0,
        403,
        "revoked"
    );
    eprintln!(
        "CloudFront Function: {compared} segment and init files name what the edge serves ({bs} B)"
    );
}
