//! The edge over real HTTP on 127.0.0.1, on a package made by the embed library from a corpus
//! clip (20 positions of 1 s, renditions 360p and 240p).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use crate::common::*;
use leaktrace_core::SessionId;
use leaktrace_core::Variant;
use std::process::Command;

fn seg(token: &str, rendition: &str, p: u32) -> String {
    format!("/wmt/{token}/{TITLE}/{rendition}/seg_{p:05}.m4s")
}

/// The A/B sequence served to a token on one rendition, checked byte for byte against the files.
fn served_sequence(token: &str, rendition: &str) -> Vec<Variant> {
    let f = fixture();
    (0..POSITIONS)
        .map(|p| {
            let r = get(f.addr, &seg(token, rendition, p));
            assert_eq!(r.status, 200, "{rendition} {p}");
            assert_eq!(r.header("content-type"), Some("video/iso.segment"));
            which_variant(&f.pkg, rendition, p, &r.body)
        })
        .collect()
}

fn bits(v: &[Variant]) -> String {
    v.iter().map(|x| char::from(b'0' + x.bit())).collect()
}

#[test]
fn sessions_get_their_codeword_on_every_rendition() {
    let f = fixture();
    let t = &f.tokens;
    let mut sequences = Vec::new();
    for (sid, token) in [&t.s1, &t.s2, &t.direct, &t.es256] {
        let expected: Vec<Variant> = (0..POSITIONS).map(|p| codeword(sid, p)).collect();
        for rendition in RENDITIONS {
            let got = served_sequence(token, rendition);
            assert_eq!(
                bits(&got),
                bits(&expected),
                "session {sid} on {rendition} is not its codeword"
            );
        }
        sequences.push(bits(&expected));
    }
    assert_ne!(
        sequences[0], sequences[1],
        "two sessions got the same 20-position sequence"
    );
    // Every session has both variants somewhere, so switches really happen.
    for s in &sequences {
        eprintln!("sequence {s}");
    }
    assert!(sequences.iter().any(|s| s.contains('0') && s.contains('1')));
}

#[test]
fn init_segments_and_manifests_are_the_same_for_everyone() {
    let f = fixture();
    let t = &f.tokens;
    for rendition in RENDITIONS {
        let a_init = std::fs::read(f.pkg.join(rendition).join("a/init.mp4")).unwrap();
        for token in [&t.s1.1, &t.s2.1] {
            let r = get(
                f.addr,
                &format!("/wmt/{token}/{TITLE}/{rendition}/init.mp4"),
            );
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some("video/mp4"));
            assert_eq!(r.body, a_init);
            let pl = get(
                f.addr,
                &format!("/wmt/{token}/{TITLE}/{rendition}/playlist.m3u8"),
            );
            assert_eq!(pl.status, 200);
            assert_eq!(
                pl.body,
                std::fs::read(f.pkg.join(rendition).join("playlist.m3u8")).unwrap()
            );
        }
    }
    for (file, ctype) in [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "application/dash+xml"),
    ] {
        let one = get(f.addr, &format!("/wmt/{}/{TITLE}/{file}", t.s1.1));
        let two = get(f.addr, &format!("/wmt/{}/{TITLE}/{file}", t.s2.1));
        assert_eq!(one.status, 200);
        assert_eq!(one.header("content-type"), Some(ctype));
        assert_eq!(
            one.header("cache-control"),
            Some(leaktrace_edge::CACHE_MANIFEST)
        );
        assert_eq!(one.body, two.body);
        assert_eq!(one.body, std::fs::read(f.pkg.join(file)).unwrap());
        let text = String::from_utf8(one.body).unwrap();
        for leak in ["/a/", "/b/", "WMPaceInfo", "WATERMARKING", "reference"] {
            assert!(!text.contains(leak), "{file} mentions {leak}");
        }
    }
}

#[test]
fn query_and_bearer_tokens_work_too() {
    let f = fixture();
    let (sid, token) = &f.tokens.s2;
    let p = 7;
    let q = get(
        f.addr,
        &format!("/{TITLE}/360p/seg_{p:05}.m4s?x=1&wmt={token}"),
    );
    assert_eq!(q.status, 200);
    assert_eq!(which_variant(&f.pkg, "360p", p, &q.body), codeword(sid, p));
    let auth = format!("Bearer {token}");
    let h = request(
        f.addr,
        "GET",
        &format!("/{TITLE}/360p/seg_{p:05}.m4s"),
        &[("Authorization", &auth)],
    );
    assert_eq!(h.status, 200);
    assert_eq!(h.body, q.body);
    assert_eq!(h.header("vary"), Some("Authorization"));
}

#[test]
fn headers_name_no_variant_and_etags_hash_the_bytes() {
    let f = fixture();
    let (sid, token) = &f.tokens.s1;
    for p in 0..POSITIONS {
        let r = get(f.addr, &seg(token, "360p", p));
        let v = which_variant(&f.pkg, "360p", p, &r.body);
        assert_eq!(v, codeword(sid, p));
        let h = blake3::hash(&r.body);
        let hex: String = h.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.header("etag"), Some(format!("\"{hex}\"").as_str()));
        assert_eq!(r.header("cache-control"), Some(leaktrace_edge::CACHE_MEDIA));
        assert!(r.header("last-modified").is_none());
        assert!(r.header("location").is_none());
        for (name, value) in &r.headers {
            let lower = value.to_ascii_lowercase();
            assert!(
                !lower.contains("/a/") && !lower.contains("/b/") && !lower.contains("variant"),
                "header {name}: {value}"
            );
            assert!(
                !name.contains("variant") && !name.contains("wmpaceinfo"),
                "{name}"
            );
        }
    }
}

#[test]
fn ranges_conditionals_and_head() {
    let f = fixture();
    let (_, token) = &f.tokens.s1;
    let path = seg(token, "240p", 3);
    let full = get(f.addr, &path);
    let len = full.body.len();
    assert!(len > 1000);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    let r = request(f.addr, "GET", &path, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[100..200]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(r.header("content-length"), Some("100"));

    let r = request(f.addr, "GET", &path, &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[len - 10..]);
    let r = request(
        f.addr,
        "GET",
        &path,
        &[("Range", &format!("bytes={}-", len - 5))],
    );
    assert_eq!(r.body, full.body[len - 5..]);

    let r = request(f.addr, "GET", &path, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );

    let r = request(f.addr, "GET", &path, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);

    let etag = full.header("etag").unwrap().to_owned();
    let r = request(f.addr, "GET", &path, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(
        f.addr,
        "GET",
        &path,
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200, "If-Range with another ETag sends everything");

    let r = request(f.addr, "HEAD", &path, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    let r = request(f.addr, "POST", &path, &[("Content-Length", "0")]);
    assert_eq!(r.status, 405);
    let r = request(f.addr, "OPTIONS", &path, &[]);
    assert_eq!(r.status, 204);
}

/// Every refusal: the right status, a fixed body and the same headers, whatever was asked.
#[test]
fn refusals_are_uniform_and_leak_nothing() {
    let f = fixture();
    let t = &f.tokens;
    let good = &t.s1.1;
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/{TITLE}/360p/seg_00001.m4s"), 403, "missing token"),
        (seg(&t.forged, "360p", 1), 403, "forged signature"),
        (seg(&t.wrong_key, "360p", 1), 403, "signed with another key"),
        (seg(&t.expired, "360p", 1), 403, "expired token"),
        (
            seg(&t.other_title, "360p", 1),
            403,
            "token of another title",
        ),
        (
            seg(&t.unrecorded, "360p", 1),
            403,
            "session not in the store",
        ),
        (seg("not-a-token", "360p", 1), 403, "garbage token"),
        (
            format!("/wmt/{good}/{OTHER_TITLE}/master.m3u8"),
            403,
            "title of no session",
        ),
        (
            format!("/{TITLE}/360p/seg_00001.m4s?wmt=abc"),
            403,
            "bad query token",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/a/seg_00001.m4s"),
            404,
            "a/ directly",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/b/seg_00001.m4s"),
            404,
            "b/ directly",
        ),
        (
            format!("/wmt/{good}/{TITLE}/a/seg_00001.m4s"),
            404,
            "a/ as a rendition",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/WMPaceInfo/seg_00001.m4s"),
            404,
            "sidecar",
        ),
        (
            format!("/wmt/{good}/{TITLE}/WMPaceInfo/seg_00001.m4s"),
            404,
            "sidecar dir",
        ),
        (
            format!("/wmt/{good}/{TITLE}/reference/index.json"),
            404,
            "reference",
        ),
        (format!("/wmt/{good}/{TITLE}/title.json"), 404, "title.json"),
        (
            format!("/{TITLE}/360p/b/seg_00001.m4s"),
            404,
            "b/ without token",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/seg_99999.m4s"),
            404,
            "no such segment",
        ),
        (
            format!("/wmt/{good}/{TITLE}/999p/seg_00001.m4s"),
            404,
            "no such rendition",
        ),
        (
            format!("/wmt/{good}/{TITLE}/../{TITLE}/master.m3u8"),
            400,
            "..",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/../../{TITLE}/title.json"),
            400,
            "../..",
        ),
        (
            format!("/wmt/{good}/{TITLE}/%2e%2e/{TITLE}/master.m3u8"),
            400,
            "%2e%2e",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p%2fa/seg_00001.m4s"),
            400,
            "%2f",
        ),
        (
            format!("/wmt/{good}/{TITLE}/360p/seg_00001.m4s%00"),
            400,
            "%00",
        ),
        (
            format!("/wmt/{good}//{TITLE}/master.m3u8"),
            400,
            "empty segment",
        ),
        (
            format!("/wmt/{good}/{TITLE}/.hidden/seg_00001.m4s"),
            400,
            "dot file",
        ),
        (
            format!("/wmt/{good}/..%2f..%2fetc/passwd"),
            400,
            "encoded traversal",
        ),
        ("/etc/passwd".into(), 404, "absolute path"),
        (
            format!("http://127.0.0.1/wmt/{good}/{TITLE}/../x.m3u8"),
            400,
            "absolute-form",
        ),
    ];
    let files: Vec<Vec<u8>> = RENDITIONS
        .iter()
        .flat_map(|r| {
            ["a", "b"]
                .into_iter()
                .map(move |v| std::fs::read(f.pkg.join(r).join(v).join("seg_00001.m4s")).unwrap())
        })
        .collect();
    let mut header_sets: std::collections::BTreeMap<u16, Vec<(String, String)>> =
        Default::default();
    for (target, status, what) in &cases {
        let r = get(f.addr, target);
        assert_eq!(r.status, *status, "{what}: {target}");
        assert!(r.body.len() < 64, "{what}: long refusal body");
        assert!(!files.contains(&r.body), "{what}: served media");
        for h in [
            "etag",
            "content-range",
            "last-modified",
            "location",
            "accept-ranges",
        ] {
            assert!(r.header(h).is_none(), "{what}: refusal has {h}");
        }
        assert_eq!(
            r.header("cache-control"),
            Some(leaktrace_edge::CACHE_ERROR),
            "{what}"
        );
        let mut headers: Vec<(String, String)> =
            r.headers.into_iter().filter(|(n, _)| n != "date").collect();
        headers.sort();
        let first = header_sets
            .entry(*status)
            .or_insert_with(|| headers.clone());
        assert_eq!(
            *first, headers,
            "{what}: refusal headers differ between cases"
        );
    }
    // Range requests cannot probe the other variant either: a refused token gets 403, not 416.
    let r = request(
        f.addr,
        "GET",
        &seg(&t.forged, "360p", 1),
        &[("Range", "bytes=999999999-")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn oversized_requests_are_refused() {
    let f = fixture();
    let long = "x".repeat(64 * 1024);
    let r = get(f.addr, &format!("/wmt/{long}/{TITLE}/master.m3u8"));
    assert!(
        r.status == 400 || r.status == 431 || r.status == 414,
        "{}",
        r.status
    );
    let r = request(
        f.addr,
        "GET",
        &format!("/{TITLE}/master.m3u8"),
        &[("Content-Length", "5")],
    );
    assert!(r.status == 413 || r.status == 400, "{}", r.status);
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// ffmpeg plays the stream through the edge: every frame decodes, with no error, across the
/// session's A/B switches; HLS and DASH.
#[test]
fn ffmpeg_decodes_the_session_stream() {
    if !ffmpeg_available() {
        eprintln!("SKIPPED: ffmpeg not installed");
        return;
    }
    let f = fixture();
    let (sid, token) = &f.tokens.s1;
    let switches = (1..POSITIONS)
        .filter(|&p| codeword(sid, p) != codeword(sid, p - 1))
        .count();
    eprintln!("session {sid}: {switches} A/B switches over {POSITIONS} positions");
    for (manifest, stream) in [
        ("master.m3u8", "0:v:0"),
        ("master.m3u8", "0:v:1"),
        ("manifest.mpd", "0:v:0"),
    ] {
        let url = format!("http://{}/wmt/{token}/{TITLE}/{manifest}", f.addr);
        let out = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                "-i",
                &url,
                "-map",
                stream,
            ])
            .args(["-f", "framemd5", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{manifest} {stream}: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "{manifest} {stream}: decoder complained: {stderr}"
        );
        let frames = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        assert_eq!(frames as u64, FRAMES, "{manifest} {stream}");
    }
}

#[test]
fn graceful_shutdown_stops_the_server() {
    let f = fixture();
    let store_url = format!("sqlite://{}", f.dir.path().join("store.sqlite").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = leaktrace_store::Store::open(&store_url).await.unwrap();
        let edge =
            leaktrace_edge::Edge::new(leaktrace_edge::EdgeConfig::new(f.pkg.clone(), key()), store)
                .unwrap();
        assert_eq!(edge.single_title().as_deref(), Some(TITLE));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            edge.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        let token = f.tokens.s1.1.clone();
        let r = tokio::task::spawn_blocking(move || {
            get(addr, &format!("/wmt/{token}/{TITLE}/master.m3u8"))
        })
        .await
        .unwrap();
        assert_eq!(r.status, 200, "single-package root serves its title");
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
            .unwrap();
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "still accepting"
        );
    });
}

#[test]
fn sessions_differ_from_each_other_in_the_store_too() {
    let f = fixture();
    let ids: Vec<&SessionId> = [
        &f.tokens.s1,
        &f.tokens.s2,
        &f.tokens.direct,
        &f.tokens.es256,
    ]
    .iter()
    .map(|(s, _)| s)
    .collect();
    for (i, a) in ids.iter().enumerate() {
        assert_eq!(a.as_str().len(), 26);
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

/// The in-band `wmpi` box (which names the variant) never reaches a viewer: it is a `free` box
/// of the same size full of 0xFF, so A and B differ only in their media data.
#[test]
fn in_band_wmpaceinfo_is_neutralised() {
    let f = fixture();
    let (_, token) = &f.tokens.s1;
    for p in [0, 5, 19] {
        let r = get(f.addr, &seg(token, "360p", p));
        let boxes = top_level_boxes(&r.body);
        assert_eq!(boxes, ["styp", "free", "moof", "mdat"], "position {p}");
        let raw_len = std::fs::metadata(f.pkg.join("360p/a").join(format!("seg_{p:05}.m4s")))
            .unwrap()
            .len();
        let v = which_variant(&f.pkg, "360p", p, &r.body);
        let raw = std::fs::read(
            f.pkg
                .join("360p")
                .join(v.dir())
                .join(format!("seg_{p:05}.m4s")),
        )
        .unwrap();
        assert_eq!(r.body.len(), raw.len());
        assert_eq!(top_level_boxes(&raw), ["styp", "wmpi", "moof", "mdat"]);
        let _ = raw_len;
        // The wmpi payload (version, variant, position) is gone: 0xFF where it was.
        let at = 24; // after styp
        assert!(r.body[at + 8..at + 13].iter().all(|&b| b == 0xFF));
    }
}

/// Files above the in-memory limit are streamed from disk, rewritten on the fly, and give the
/// same bytes, ETags and ranges.
#[test]
fn streamed_files_match_cached_ones() {
    let f = fixture();
    let (sid, token) = f.tokens.s1.clone();
    let cached: Vec<Resp> = (0..4)
        .map(|p| get(f.addr, &seg(&token, "240p", p)))
        .collect();
    let pkg = f.pkg.clone();
    with_edge(
        |c| c.max_cached_file = 16,
        move |addr| {
            for (p, want) in cached.iter().enumerate() {
                let p = p as u32;
                let r = get(addr, &seg(&token, "240p", p));
                assert_eq!(r.status, 200);
                assert_eq!(r.body, want.body, "position {p}");
                assert_eq!(r.header("etag"), want.header("etag"));
                assert_eq!(which_variant(&pkg, "240p", p, &r.body), codeword(&sid, p));
                let r = request(
                    addr,
                    "GET",
                    &seg(&token, "240p", p),
                    &[("Range", "bytes=20-40")],
                );
                assert_eq!(r.status, 206);
                assert_eq!(r.body, want.body[20..41]);
            }
        },
    );
}
