//! The edge under hostile clients, on 127.0.0.1 (and 127.0.0.2, also loopback, as a second
//! client address): tokens in another encoding, floods of mutated tokens and missing names, slow
//! headers, undrained responses, idle and pipelining connections, per-address and global
//! connection caps.
//!
//! The package here is made by hand (no media tools needed): `title.json`, manifests, and one
//! large A-only file under `big/a/` that every session is served.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use crate::server;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use leaktrace_core::TokenMode;
use leaktrace_core::{KeyVersion, MasterKey, TitleId};
use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_session::{Issuer, issue_session};
use leaktrace_store::{NewTitle, Store};
use server::{Server, start_edge};

const TITLE: &str = "bbb";
/// Size of `big/a/seg_00000.m4s`: far more than loopback socket buffers hold.
const BIG: usize = 16 << 20;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Fixture {
    dir: tempfile::TempDir,
    token: String,
}

fn key() -> MasterKey {
    MasterKey::from_bytes([0x5e; 32], KeyVersion::new(1))
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pkg = leaktrace_testkit::hand_made_package(&dir.path().join("pkg"), TITLE);
        std::fs::create_dir_all(pkg.join("big").join("a")).unwrap();
        // A `free` box header, then zeros: an ISOBMFF file the egress rewrite leaves alone.
        let mut big = vec![0u8; BIG];
        big[..4].copy_from_slice(&(BIG as u32).to_be_bytes());
        big[4..8].copy_from_slice(b"free");
        std::fs::write(pkg.join("big").join("a").join("seg_00000.m4s"), big).unwrap();

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let token = rt.block_on(async {
            let store = Store::open(&store_url(dir.path())).await.unwrap();
            store
                .upsert_title(&NewTitle {
                    title_id: TITLE.into(),
                    name: TITLE.into(),
                    segment_duration_ms: 1000,
                    position_count: 1,
                    key_version: 1,
                    reference_path: None,
                })
                .await
                .unwrap();
            let issued = issue_session(
                &store,
                &Issuer::new(key()),
                &TitleId::new(TITLE).unwrap(),
                "acct",
                Duration::from_secs(3600),
                TokenMode::Indirect,
            )
            .await
            .unwrap();
            store.close().await;
            issued.token
        });
        Fixture { dir, token }
    })
}

fn store_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("store.sqlite").display())
}

fn config(f: &Fixture) -> EdgeConfig {
    EdgeConfig::new(f.dir.path().join("pkg"), key())
}

fn start(adjust: impl FnOnce(&mut EdgeConfig)) -> Server {
    let f = fixture();
    let mut cfg = config(f);
    adjust(&mut cfg);
    start_edge(cfg, store_url(f.dir.path()))
}

/// A blocking client socket from `from` (a loopback address) to the edge.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    assert!(from.is_loopback() && to.ip().is_loopback());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

fn get_request(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\n\r\n")
}

/// Reads one response (status and body, by `Content-Length`) from a keep-alive connection.
fn read_response(s: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, body))
}

/// One request on a fresh connection from `from`; `None` if the connection was refused or
/// closed without an answer within 5 s.
fn fetch_from(from: Ipv4Addr, to: SocketAddr, target: &str) -> Option<u16> {
    let mut s = connect_from(from, to);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(get_request(target).as_bytes()).ok()?;
    read_response(&mut s).map(|(status, _)| status)
}

/// Whether the peer has closed `s` (EOF or reset) within `wait`, reading and discarding
/// whatever arrives meanwhile.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
}

// --- tokens in another encoding --------------------------------------------------------------

/// Re-encodings of an issued token (`d83d d1 84 43a10105 a0 58LL <claims> 5820 <mac>`): the same
/// protected header, claims and MAC, framed differently.
fn re_encodings(token: &str) -> Vec<(&'static str, String)> {
    let raw = B64.decode(token).unwrap();
    assert_eq!(
        raw[..9],
        [0xd8, 0x3d, 0xd1, 0x84, 0x43, 0xa1, 0x01, 0x05, 0xa0]
    );
    assert_eq!(raw[9], 0x58, "claims of 24..=255 bytes");
    let claims_end = 11 + usize::from(raw[10]);
    assert_eq!(raw[claims_end..claims_end + 2], [0x58, 0x20]);
    assert_eq!(raw.len(), claims_end + 34);
    let splice = |at: std::ops::Range<usize>, with: &[u8]| {
        let mut v = raw[..at.start].to_vec();
        v.extend_from_slice(with);
        v.extend_from_slice(&raw[at.end..]);
        v
    };
    let mut indefinite = splice(3..4, &[0x9f]);
    indefinite.push(0xff);
    let variants: Vec<(&'static str, Vec<u8>)> = vec![
        ("without the CWT tag", raw[2..].to_vec()),
        ("without any tag", raw[3..].to_vec()),
        ("CWT tag in 2 bytes", splice(0..2, &[0xd9, 0x00, 0x3d])),
        ("COSE tag in 1 byte", splice(2..3, &[0xd8, 0x11])),
        ("array length in 1 byte", splice(3..4, &[0x98, 0x04])),
        ("indefinite-length array", indefinite),
        ("protected length in 1 byte", splice(4..5, &[0x58, 0x03])),
        (
            "kid in the unprotected header",
            splice(8..9, &[0xa1, 0x04, 0x42, 0x6b, 0x31]),
        ),
        (
            "unprotected map length in 1 byte",
            splice(8..9, &[0xb8, 0x00]),
        ),
        (
            "indefinite empty unprotected map",
            splice(8..9, &[0xbf, 0xff]),
        ),
        ("claims length in 2 bytes", splice(9..10, &[0x59, 0x00])),
        ("MAC length in 8 bytes", {
            splice(
                claims_end..claims_end + 2,
                &[0x5b, 0, 0, 0, 0, 0, 0, 0, 0x20],
            )
        }),
        (
            "self-describe tag in front",
            [&[0xd9, 0xd9, 0xf7][..], &raw].concat(),
        ),
    ];
    variants
        .into_iter()
        .map(|(what, bytes)| (what, B64.encode(bytes)))
        .collect()
}

/// Status and headers (without `date`) of one request on a fresh connection.
fn status_and_headers(addr: SocketAddr, target: &str) -> (u16, Vec<String>) {
    let mut s = connect_from(Ipv4Addr::LOCALHOST, addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers: Vec<String> = lines
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .map(str::to_owned)
        .collect();
    headers.sort();
    (status, headers)
}

#[test]
fn re_encoded_tokens_are_refused_like_any_bad_token() {
    let f = fixture();
    let server = start(|_| {});
    let target = |t: &str| format!("/wmt/{t}/{TITLE}/master.m3u8");
    let (ok, _) = status_and_headers(server.addr, &target(&f.token));
    assert_eq!(ok, 200, "the issued token is served");
    let mut forged = B64.decode(&f.token).unwrap();
    *forged.last_mut().unwrap() ^= 1;
    let (status, refusal) = status_and_headers(server.addr, &target(&B64.encode(forged)));
    assert_eq!(status, 403);
    let variants = re_encodings(&f.token);
    let mut wrong = Vec::new();
    for (what, token) in &variants {
        assert_ne!(*token, f.token);
        let (status, headers) = status_and_headers(server.addr, &target(token));
        if status != 403 {
            wrong.push(format!("{what}: {status}"));
        } else if headers != refusal {
            wrong.push(format!("{what}: 403 with other headers {headers:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} re-encodings not refused like a forged token:\n{}",
        wrong.len(),
        variants.len(),
        wrong.join("\n")
    );
    let (ok, _) = status_and_headers(server.addr, &target(&f.token));
    assert_eq!(ok, 200, "the issued token is still served");
}

// --- caches under a flood --------------------------------------------------------------------

/// SplitMix64: a small deterministic generator for the flood.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn name(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..len)
            .map(|_| char::from(ALPHABET[(self.next() % ALPHABET.len() as u64) as usize]))
            .collect()
    }
}

/// 200 000 requests through the edge's request handling: tokens re-encoded with a random `kid`
/// in the unprotected header (each a new cache key if accepted), tokens with a random bit
/// flipped, and the issued token asking for random missing renditions and files with long
/// names. Every cache must stay within its byte bound, and still work afterwards.
#[test]
fn flood_stays_within_the_cache_bounds() {
    const REQUESTS: usize = 200_000;
    const LOOKUP_LIMIT: u64 = 4 << 20;
    let f = fixture();
    let mut cfg = config(f);
    cfg.lookup_cache_bytes = LOOKUP_LIMIT;
    cfg.file_cache_bytes = 1 << 20;
    let url = store_url(f.dir.path());
    let raw = B64.decode(&f.token).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&url).await.unwrap();
        let edge = Edge::new(cfg, store).unwrap();
        let mut rng = Rng(42);
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        let mut peak = 0u64;
        for i in 0..REQUESTS {
            let req = match i % 4 {
                0 => {
                    // kid = 8 random bytes in the unprotected header.
                    let mut t = raw[..8].to_vec();
                    t.extend_from_slice(&[0xa1, 0x04, 0x48]);
                    t.extend_from_slice(&rng.next().to_be_bytes());
                    t.extend_from_slice(&raw[9..]);
                    let target = format!("/wmt/{}/{TITLE}/master.m3u8", B64.encode(t));
                    http::Request::get(target).body(()).unwrap()
                }
                1 => {
                    let mut t = raw.clone();
                    let bit = (rng.next() % (t.len() as u64 * 8)) as usize;
                    t[bit / 8] ^= 1 << (bit % 8);
                    let target = format!("/wmt/{}/{TITLE}/master.m3u8", B64.encode(t));
                    http::Request::get(target).body(()).unwrap()
                }
                _ => {
                    let len = 1 + (rng.next() % 4000) as usize;
                    let rendition_len = 1 + (rng.next() % 64) as usize;
                    let rendition = rng.name(rendition_len);
                    let file = format!("{}.m4s", rng.name(len));
                    http::Request::get(format!("/{TITLE}/{rendition}/{file}"))
                        .header("Authorization", format!("Bearer {}", f.token))
                        .body(())
                        .unwrap()
                }
            };
            let status = edge.handle(&req).await.status().as_u16();
            *statuses.entry(status).or_default() += 1;
            if i % 1000 == 999 {
                let u = edge.cache_usage();
                peak = peak.max(u.lookup_total());
            }
        }
        let u = edge.cache_usage();
        peak = peak.max(u.lookup_total());
        eprintln!("statuses {statuses:?}; caches {u:?}; lookup peak {peak} bytes");
        assert_eq!(u.lookup_limit, LOOKUP_LIMIT);
        assert!(
            peak <= LOOKUP_LIMIT,
            "lookup caches reached {peak} bytes, bound {LOOKUP_LIMIT}"
        );
        assert!(u.files <= u.file_limit, "{u:?}");
        assert!(
            u.resolutions > LOOKUP_LIMIT / 16,
            "the flood did fill the resolution cache: {u:?}"
        );
        assert_eq!(
            statuses.get(&404).copied().unwrap_or(0),
            REQUESTS / 2,
            "missing names: 404"
        );
        // The issued token and the package still work, from the caches.
        let ok = http::Request::get(format!("/wmt/{}/{TITLE}/master.m3u8", f.token))
            .body(())
            .unwrap();
        assert_eq!(edge.handle(&ok).await.status().as_u16(), 200);
        assert!(
            u.tokens < 64 * 1024,
            "re-encoded tokens were cached: {} bytes of tokens",
            u.tokens
        );
    });
}

// --- slow and greedy connections ---------------------------------------------------------------

/// A client that sends its request line and headers one byte per second is cut off once the
/// header deadline has passed.
#[test]
fn slow_headers_are_cut_off_at_the_header_deadline() {
    let f = fixture();
    let deadline = Duration::from_secs(2);
    let server = start(|c| {
        c.header_timeout = deadline;
        c.idle_timeout = Duration::from_secs(30);
    });
    let mut s = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    let request = get_request(&format!("/wmt/{}/{TITLE}/master.m3u8", f.token));
    let started = Instant::now();
    let mut sent = 0;
    let mut cut = false;
    for b in request.as_bytes() {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        sent += 1;
        if closed_within(&mut s, Duration::from_secs(1)) {
            cut = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let took = started.elapsed();
    assert!(cut, "still connected after {took:?} and {sent} bytes");
    assert!(sent < request.len(), "the whole request went through");
    assert!(
        took >= deadline - Duration::from_millis(500) && took <= deadline + Duration::from_secs(3),
        "cut after {took:?}, deadline {deadline:?}"
    );
}

/// A client that asks for a large file and never reads is cut off once the response has sat
/// undrained past the write deadline.
#[test]
fn undrained_responses_are_cut_off_at_the_write_deadline() {
    let f = fixture();
    let deadline = Duration::from_secs(2);
    let server = start(|c| c.write_timeout = deadline);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = format!("/wmt/{}/{TITLE}/big/seg_00000.m4s", f.token);
    let (received, closed) = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(server.addr).await.unwrap();
        s.write_all(get_request(&target).as_bytes()).await.unwrap();
        // Never read until well past the deadline.
        tokio::time::sleep(deadline + Duration::from_secs(3)).await;
        let mut received = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => received += n,
                Err(_) => break false,
            }
        };
        (received, closed)
    });
    assert!(closed, "connection still open after {received} bytes");
    assert!(
        received < BIG,
        "the whole {BIG}-byte body arrived ({received} bytes) despite the write deadline"
    );
}

/// A keep-alive connection with no request in progress is closed after the idle timeout.
#[test]
fn idle_connections_are_closed() {
    let f = fixture();
    let server = start(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.header_timeout = Duration::from_secs(10);
    });
    let mut s = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = format!("/wmt/{}/{TITLE}/master.m3u8", f.token);
    s.write_all(get_request(&target).as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).map(|r| r.0), Some(200));
    let started = Instant::now();
    // Closed at all is what is tested; how late is bounded loosely, since a host loaded by
    // other suites delays the server's timer (once past 4 s for a 1 s deadline).
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "idle connection still open after {:?}",
        started.elapsed()
    );
}

/// The idle deadline runs from the last response: a connection whose requests come more often
/// than the idle timeout stays open past it, and is closed one idle timeout after it stops.
#[test]
fn idle_deadline_follows_the_last_response() {
    let f = fixture();
    // Requests every 0.4 idle timeouts: 2 s leaves 1.2 s of slack for a loaded host to
    // schedule the client late without the connection going idle.
    let idle = Duration::from_secs(2);
    let server = start(|c| {
        c.idle_timeout = idle;
        c.header_timeout = Duration::from_secs(10);
    });
    let mut s = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = format!("/wmt/{}/{TITLE}/master.m3u8", f.token);
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < 3 * idle {
        s.write_all(get_request(&target).as_bytes()).unwrap();
        assert_eq!(
            read_response(&mut s).map(|r| r.0),
            Some(200),
            "request {answered} after {:?}",
            started.elapsed()
        );
        answered += 1;
        std::thread::sleep(idle * 2 / 5);
    }
    assert!(answered >= 5, "{answered} requests");
    let last = Instant::now();
    assert!(
        closed_within(&mut s, idle * 4),
        "idle connection still open after {:?}",
        last.elapsed()
    );
    let took = last.elapsed();
    assert!(
        took >= idle / 2 && took <= idle * 3,
        "closed {took:?} after the last response, idle timeout {idle:?}"
    );
}

/// At most `max_requests_per_connection` requests are answered on one connection, however many
/// are pipelined; then the connection is closed.
#[test]
fn pipelined_requests_are_bounded_per_connection() {
    let f = fixture();
    let server = start(|c| c.max_requests_per_connection = 5);
    let mut s = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let one = get_request(&format!("/wmt/{}/{TITLE}/master.m3u8", f.token));
    s.write_all(one.repeat(20).as_bytes()).unwrap();
    let mut answered = 0;
    while let Some((status, _)) = read_response(&mut s) {
        assert_eq!(status, 200);
        answered += 1;
    }
    assert_eq!(answered, 5, "answered {answered} of 20 pipelined requests");
}

/// With the per-address cap taken by slow connections from 127.0.0.1, another connection from
/// 127.0.0.1 is refused at once, while a client at 127.0.0.2 is served.
#[test]
fn per_address_cap_refuses_the_greedy_address_only() {
    let f = fixture();
    let server = start(|c| {
        c.max_connections_per_ip = 4;
        c.header_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(30);
    });
    let target = format!("/wmt/{}/{TITLE}/master.m3u8", f.token);
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| connect_from(Ipv4Addr::LOCALHOST, server.addr))
        .collect();
    for s in &mut slow {
        s.write_all(b"GET /").unwrap();
    }
    let started = Instant::now();
    let refused = fetch_from(Ipv4Addr::LOCALHOST, server.addr, &target);
    let took = started.elapsed();
    assert!(
        refused.is_none_or(|s| s == 503),
        "a fifth connection from 127.0.0.1 got {refused:?}"
    );
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    assert_eq!(
        fetch_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, &target),
        Some(200),
        "another address is served"
    );
    // A slot freed is a slot usable again.
    drop(slow.pop());
    let mut served = None;
    for _ in 0..50 {
        served = fetch_from(Ipv4Addr::LOCALHOST, server.addr, &target);
        if served == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served, Some(200));
    drop(slow);
}

/// With every connection slot taken, a new connection is refused at once (not queued).
#[test]
fn global_cap_refuses_when_full() {
    let f = fixture();
    let server = start(|c| {
        c.max_connections = 3;
        c.header_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(30);
    });
    let target = format!("/wmt/{}/{TITLE}/master.m3u8", f.token);
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 0, 10 + i), server.addr))
        .collect();
    for s in &mut slow {
        s.write_all(b"GET /").unwrap();
    }
    let started = Instant::now();
    let got = fetch_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, &target);
    let took = started.elapsed();
    assert!(got.is_none_or(|s| s == 503), "got {got:?} while full");
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    drop(slow.pop());
    let mut served = None;
    for _ in 0..50 {
        served = fetch_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, &target);
        if served == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served, Some(200), "a freed slot serves again");
    drop(slow);
}
