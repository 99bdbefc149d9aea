//! What a URL is, is what the server answers at the end of its redirect chain, not how the URL
//! is spelt: page links (`/get/123`) that redirect to a file served as `video/mp4`, to a
//! Matroska file served as `application/octet-stream`, or to an HLS playlist served as
//! `text/plain`, are captured and analysed, each downloaded once, with the redirect chain in
//! the finding. A recording analyzer stands in for detection. Every connection goes to
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Analysis, Analyzer};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::{Finding, FindingKind, FindingVerdict, JobState, Store};

/// Records what it was asked to analyse; never accuses.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<(PathBuf, String)>>,
}

impl Analyzer for Recording {
    fn analyze(&self, capture: &Path, title_id: &str) -> Result<Analysis, CrawlError> {
        self.calls
            .lock()
            .unwrap()
            .push((capture.to_path_buf(), title_id.to_owned()));
        Ok(Analysis {
            verdict: FindingVerdict::NoAccusation,
            accused: Vec::new(),
            report: serde_json::json!({ "recorded": true }),
        })
    }
}

/// 4 KiB chunks: the first starts with an ISO BMFF `ftyp` box.
fn mp4_chunk() -> Bytes {
    let mut c = b"\0\0\0\x18ftypisom\0\0\x02\0isomavc1".to_vec();
    c.resize(4096, 0xAB);
    Bytes::from(c)
}

fn mkv_chunk() -> Bytes {
    let mut c = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81];
    c.resize(4096, 0xCD);
    Bytes::from(c)
}

const CHUNKS: u64 = 64;

fn handler() -> Arc<Handler> {
    Arc::new(|pq: &str| -> Response<Body> {
        match pq {
            "/watch/bbb" => html(
                r#"<html><head><title>Big Buck Bunny (2008) - watch online</title></head><body>
                <a href="/get/123">Download</a> <a href="/get/456">Mirror</a>
                <a href="/get/789">Stream</a></body></html>"#,
            ),
            "/get/123" => redirect("/go?f=abc"),
            "/go?f=abc" => redirect("/cdn/blob/7f3a"),
            "/cdn/blob/7f3a" => Response::builder()
                .header("content-type", "video/mp4")
                .body(stream(mp4_chunk(), Some(CHUNKS)))
                .unwrap(),
            "/get/456" => redirect("/files/x"),
            "/files/x" => Response::builder()
                .header("content-type", "application/octet-stream")
                .body(stream(mkv_chunk(), Some(CHUNKS)))
                .unwrap(),
            "/get/789" => redirect("/p/live"),
            "/p/live" => Response::builder()
                .header("content-type", "text/plain")
                .body(full(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts\n\
                     #EXT-X-ENDLIST\n",
                ))
                .unwrap(),
            "/p/seg0.ts" | "/p/seg1.ts" => Response::new(full(vec![0x47u8; 188 * 10])),
            _ => status(404),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_behind_redirects_from_page_links_is_captured_once_with_its_chain() {
    let site = serve(handler()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let cfg = Arc::new(
        Config::from_toml(&format!(
            r#"
[sources]
seeds = ["{b}/watch/bbb"]
[[catalogue]]
title_id = "bbb"
names = ["Big Buck Bunny"]
year = 2008
[politeness]
min_delay_ms = 0
[fetch]
allow_loopback = true
concurrency = 4
capture_dir = "{}"
"#,
            dir.path().join("captures").display()
        ))
        .unwrap(),
    );
    let analyzer = Arc::new(Recording::default());
    let c = Crawler::new(
        store.clone(),
        cfg,
        lookup(&[]),
        Some(analyzer.clone()),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stats = c.run(rx, true).await.unwrap();
    eprintln!("{stats:?}");
    let findings = store.findings_list(None, 10).await.unwrap();
    // The MP4: the finding names the link as first requested and every hop with its status.
    let mp4 = finding(&store, &findings, &format!("{b}/get/123"))
        .await
        .record;
    assert_eq!(
        mp4.redirect_chain,
        [
            format!("{b}/get/123"),
            format!("{b}/go?f=abc"),
            format!("{b}/cdn/blob/7f3a")
        ]
    );
    assert_eq!(mp4.redirect_statuses, [302, 302, 200]);
    assert_eq!(mp4.kind, FindingKind::Direct);
    assert_eq!(mp4.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(mp4.page_url, Some(format!("{b}/watch/bbb")));
    assert_eq!(mp4.title_id.as_deref(), Some("bbb"));
    assert_eq!(mp4.verdict, FindingVerdict::NoAccusation);
    // Downloaded once, and the capture is the whole file, byte for byte (the bytes read to
    // tell what it is included).
    assert_eq!(site.hits("/cdn/blob/7f3a"), 1);
    let want: Vec<u8> = mp4_chunk().repeat(CHUNKS as usize);
    assert_eq!(mp4.byte_len, want.len() as u64);
    assert!(std::fs::read(&mp4.capture_path).unwrap() == want);

    // Matroska behind an octet-stream Content-Type: told by its first bytes.
    let mkv = finding(&store, &findings, &format!("{b}/get/456"))
        .await
        .record;
    assert_eq!(mkv.kind, FindingKind::Direct);
    assert_eq!(mkv.redirect_statuses, [302, 200]);
    assert_eq!(site.hits("/files/x"), 1);
    assert!(std::fs::read(&mkv.capture_path).unwrap() == mkv_chunk().repeat(CHUNKS as usize));

    // An HLS playlist served as text/plain: captured as a stream, each segment once.
    let hls = finding(&store, &findings, &format!("{b}/get/789"))
        .await
        .record;
    assert_eq!(hls.kind, FindingKind::Hls);
    assert_eq!(hls.byte_len, 2 * 188 * 10);
    assert_eq!(site.hits("/p/live"), 1);
    assert_eq!(site.hits("/p/seg0.ts"), 1);
    assert_eq!(site.hits("/p/seg1.ts"), 1);

    let calls = analyzer.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|(_, t)| t == "bbb"));
    assert_eq!(stats.findings, 3);
    for p in ["/get/123", "/get/456", "/get/789"] {
        let j = store.get_job(&format!("{b}{p}")).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Done, "{j:?}");
        assert!(j.last_error.unwrap().starts_with("finding F-"));
    }

    // A second run finds the links again: nothing is downloaded again.
    c.seed(2).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    c.run(rx, true).await.unwrap();
    assert_eq!(store.count_findings().await.unwrap(), 3);
    assert_eq!(analyzer.calls.lock().unwrap().len(), 3);
    assert_eq!(site.hits("/p/seg0.ts"), 1);
    store.close().await;
}

/// The finding for media URL `u`; fails with its frontier row if there is none.
async fn finding(store: &Store, findings: &[Finding], u: &str) -> Finding {
    match findings.iter().find(|f| f.record.media_url == u) {
        Some(f) => f.clone(),
        None => panic!(
            "no finding for {u}; its frontier row: {:?}",
            store.get_job(u).await.unwrap()
        ),
    }
}
