//! A live HLS capture handed to a follower segment by segment: each segment arrives as a file
//! holding the init segment then the segment, in order, while the playlist is still growing; a
//! segment that left the live window before it was fetched is a gap, not the end; the follower
//! stops the capture, which then ends at once, whole (not "truncated"), with what it had. A
//! crawler whose analyzer follows captures records the follower's analysis. Every connection
//! goes to 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Response;
use leaktrace_crawler::CrawlError;
use leaktrace_crawler::analyze::{Analysis, Analyzer};
use leaktrace_crawler::capture::{SegmentTap, capture_hls_tapped};
use leaktrace_crawler::config::Config;
use leaktrace_crawler::fetch::Fetcher;
use leaktrace_crawler::worker::Crawler;
use leaktrace_store::FindingVerdict;

/// A live playlist whose window holds the last 3 segments and gains one every 200 ms from
/// the moment the site starts; segment 2 is gone (404) whenever it is asked for.
fn live(start: Instant) -> Arc<Handler> {
    Arc::new(move |pq: &str| -> Response<Body> {
        let newest = 3 + start.elapsed().as_millis() as u64 / 200;
        match pq {
            "/live.m3u8" => {
                let first = newest.saturating_sub(3);
                let mut text = format!(
                    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n\
                     #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
                );
                for s in first..newest {
                    text.push_str(&format!("#EXTINF:1.0,\nseg{s}.m4s\n"));
                }
                Response::builder()
                    .header("content-type", "application/vnd.apple.mpegurl")
                    .body(full(text))
                    .unwrap()
            }
            "/init.mp4" => Response::new(full(b"INIT".to_vec())),
            "/watch" => html(
                r#"<html><head><title>Big Buck Bunny (2008) live</title></head><body>
                <video><source src="/live.m3u8" type="application/x-mpegURL"></video></body></html>"#,
            ),
            "/seg2.m4s" => status(404),
            p => match p
                .strip_prefix("/seg")
                .and_then(|r| r.strip_suffix(".m4s"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                Some(n) if n < newest => Response::new(full(format!("SEGMENT-{n}").into_bytes())),
                _ => status(404),
            },
        }
    })
}

fn config(dir: &Path, extra: &str) -> Config {
    Config::from_toml(&format!(
        r#"
[politeness]
min_delay_ms = 0
[fetch]
allow_loopback = true
capture_dir = "{}"
{extra}
"#,
        dir.join("captures").display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_reach_the_follower_in_order_and_its_stop_ends_the_capture() {
    let site = serve(live(Instant::now())).await;
    let dir = tempfile::tempdir().unwrap();
    let f = Fetcher::new(Arc::new(config(dir.path(), "")), lookup(&[])).unwrap();
    let url = url::Url::parse(&format!("{}/live.m3u8", site.base("127.0.0.1"))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let tap = SegmentTap {
        segments: tx,
        stop: stop.clone(),
    };
    // The follower: reads 6 segments, then stops the capture.
    let follower = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(p) = rx.recv() {
                got.push(String::from_utf8(std::fs::read(&p).unwrap()).unwrap());
                if got.len() == 6 {
                    stop.store(true, Ordering::Release);
                }
            }
            got
        })
    };
    let t = Instant::now();
    let cap = capture_hls_tapped(&f, &url, Some(tap)).await.unwrap();
    let took = t.elapsed();
    let got = follower.join().unwrap();
    assert_eq!(got[0], "INITSEGMENT-0");
    assert_eq!(got[1], "INITSEGMENT-1");
    // Segment 2 left the window before it was fetched: skipped, the capture went on.
    assert_eq!(got[2], "INITSEGMENT-3");
    assert!(got.len() >= 6 && got.len() <= 7, "{got:?}");
    for w in got.windows(2) {
        let n = |s: &str| s["INITSEGMENT-".len()..].parse::<u64>().unwrap();
        assert!(n(&w[1]) > n(&w[0]), "{got:?}");
    }
    assert!(!cap.truncated, "a follower's stop is not a bound");
    assert_eq!(cap.segments as usize, got.len());
    let stored = std::fs::read_to_string(&cap.path).unwrap();
    assert!(
        stored.starts_with("INITSEGMENT-0SEGMENT-1SEGMENT-3"),
        "{stored}"
    );
    // Six segments appear in about a second; the capture did not run to its time bound.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// A follower that accuses once it has seen `after` segments.
struct Following {
    after: usize,
    seen: AtomicU64,
    analysed_whole: Mutex<u32>,
}

impl Analyzer for Following {
    fn analyze(&self, _: &Path, _: &str) -> Result<Analysis, CrawlError> {
        *self.analysed_whole.lock().unwrap() += 1;
        Err(CrawlError::Detect(
            "a followed capture is not analysed again".into(),
        ))
    }

    fn follows(&self) -> bool {
        true
    }

    fn analyze_following(
        &self,
        segments: std::sync::mpsc::Receiver<tempfile::TempPath>,
        title_id: &str,
    ) -> Result<Analysis, CrawlError> {
        for _ in segments.iter() {
            if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after as u64 {
                break;
            }
        }
        Ok(Analysis {
            verdict: FindingVerdict::Accused,
            accused: vec![leaktrace_crawler::analyze::Accused {
                session_id: "pirate".into(),
                account: "acct".into(),
                score: 30.0,
                probability: 1e-9,
            }],
            report: serde_json::json!({ "title": title_id, "follow": { "rounds": 1 } }),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawler_records_the_analysis_of_a_followed_live_capture() {
    let site = serve(live(Instant::now())).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let b = site.base("127.0.0.1");
    let cfg = config(
        dir.path(),
        &format!(
            "[sources]\nseeds = [\"{b}/watch\"]\n[[catalogue]]\ntitle_id = \"bbb\"\n\
             names = [\"Big Buck Bunny\"]\nyear = 2008\n"
        ),
    );
    let analyzer = Arc::new(Following {
        after: 4,
        seen: AtomicU64::new(0),
        analysed_whole: Mutex::new(0),
    });
    let c = Crawler::new(
        store.clone(),
        Arc::new(cfg),
        lookup(&[]),
        Some(analyzer.clone()),
        "w1".into(),
    )
    .unwrap();
    c.seed(1).await.unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    c.run(rx, true).await.unwrap();
    let findings = store.findings_list(None, 10).await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0].record;
    assert_eq!(f.verdict, FindingVerdict::Accused);
    assert!(f.accused.contains("pirate"), "{}", f.accused);
    let report: serde_json::Value = serde_json::from_str(&f.report).unwrap();
    // The report names the capture the decisions were read from, by its hash.
    assert_eq!(report["suspect_sha256"].as_str(), Some(f.sha256.as_str()));
    assert!(report["follow"].is_object(), "{report}");
    assert_eq!(*analyzer.analysed_whole.lock().unwrap(), 0);
    assert!(analyzer.seen.load(Ordering::SeqCst) >= 4);
}
