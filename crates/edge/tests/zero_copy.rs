//! Byte identity of cached segments of 64 KiB or more, which the edge sends partly from their
//! open file (`sendfile`) and partly from memory (the response head, the rewritten `wmpi`
//! boxes, short runs), on 127.0.0.1 only.
//!
//! The package is made by hand: A and B files of several hundred KiB to a few MiB, with `wmpi`
//! boxes at the start, in the middle, past 64 KiB, at the very end, in the 64-bit `largesize`
//! form and 8 000 bytes apart (a run shorter than the 16 KiB the edge sends from a file). The
//! expected bytes of a response are computed here from what the test wrote: the A or B file the
//! session's codeword selects, with every `wmpi` box turned into a `free` box of the same size
//! whose payload is all 0xFF (the egress rewrite of TS 104 002 clause 5.6.5, as documented in
//! `leaktrace_edge::egress`), at the offsets the test placed them. The ETag is checked against
//! BLAKE3 of those bytes, and full responses are also compared with a second edge that caches
//! nothing (every file streamed, no `sendfile`).
//!
//! Covered: full GETs for two sessions with different codewords; byte ranges starting and
//! ending before, inside and after each `wmpi` box and across the 16 KiB and 64 KiB thresholds;
//! suffix ranges; HEAD; `If-None-Match` (304); keep-alive and pipelined requests; files
//! replaced on disk after they were cached (by rename and in place, same and other size) and
//! while a response is being sent; a client reading slowly in small pieces.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // tests: a panic is a failure

use crate::server;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use leaktrace_core::wmpaceinfo::{PaceInfo, SIDECAR_DIR, Sidecar};
use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, TokenMode, Variant};
use leaktrace_edge::EdgeConfig;
use leaktrace_session::{Issuer, issue_session};
use leaktrace_store::{NewTitle, Store};
use server::{Server, start_edge};

const TITLE: &str = "zc";
const RENDITION: &str = "360p";
/// Positions (segments) of the package.
const POSITIONS: u32 = 13;
/// The edge's thresholds: a body from this size on may be sent from the file, and runs of
/// unchanged bytes from this size on are.
const SEND_MIN: usize = 64 * 1024;
const RUN_MIN: usize = 16 * 1024;

fn key() -> MasterKey {
    MasterKey::from_bytes([0x6d; 32], KeyVersion::new(1))
}

// ---------------------------------------------------------------------------------------------
// The package
// ---------------------------------------------------------------------------------------------

/// A top-level box of a hand-made segment.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// `styp`, 24 bytes.
    Styp,
    /// A 13-byte `wmpi` box.
    Wmpi,
    /// A 21-byte `wmpi` box (size 1, 64-bit largesize).
    WmpiLarge,
    /// A `moof` of this total size (pseudo-random payload).
    Moof(usize),
    /// An `mdat` of this total size (pseudo-random payload).
    Mdat(usize),
}

/// A segment file as written, and where its `wmpi` boxes are: (offset, size, header length).
#[derive(Debug, Clone)]
struct Built {
    bytes: Vec<u8>,
    wmpi: Vec<(usize, usize, usize)>,
}

impl Built {
    /// The bytes the edge must serve: each `wmpi` box a `free` box of the same size, its
    /// payload all 0xFF.
    fn served(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        for &(offset, size, header) in &self.wmpi {
            out[offset + 4..offset + 8].copy_from_slice(b"free");
            out[offset + header..offset + size].fill(0xFF);
        }
        out
    }
}

/// splitmix64: pseudo-random payloads, so that a byte sent from the wrong offset or the wrong
/// file never matches by chance.
fn fill(out: &mut Vec<u8>, n: usize, seed: &mut u64) {
    let end = out.len() + n;
    while out.len() < end {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let take = (end - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
    }
}

fn build(parts: &[Part], seed: u64, variant: Variant, position: u16) -> Built {
    let mut bytes = Vec::new();
    let mut wmpi = Vec::new();
    let mut rng = seed ^ (u64::from(variant == Variant::B) << 63);
    let payload = PaceInfo::new(u8::from(variant == Variant::B), Some(position), true, true)
        .to_wmpi_payload()
        .unwrap();
    for part in parts {
        let at = bytes.len();
        match *part {
            Part::Styp => {
                bytes.extend_from_slice(&24u32.to_be_bytes());
                bytes.extend_from_slice(b"stypcmfs\0\0\0\0cmfsiso6");
            }
            Part::Wmpi => {
                bytes.extend_from_slice(&13u32.to_be_bytes());
                bytes.extend_from_slice(b"wmpi");
                bytes.extend_from_slice(&payload);
                wmpi.push((at, 13, 8));
            }
            Part::WmpiLarge => {
                bytes.extend_from_slice(&1u32.to_be_bytes());
                bytes.extend_from_slice(b"wmpi");
                bytes.extend_from_slice(&21u64.to_be_bytes());
                bytes.extend_from_slice(&payload);
                wmpi.push((at, 21, 16));
            }
            Part::Moof(n) | Part::Mdat(n) => {
                bytes.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
                bytes.extend_from_slice(if matches!(part, Part::Moof(_)) {
                    b"moof"
                } else {
                    b"mdat"
                });
                fill(&mut bytes, n - 8, &mut rng);
            }
        }
    }
    Built { bytes, wmpi }
}

/// The layout of the segment at `p`.
fn layout(p: u32) -> Vec<Part> {
    use Part::{Mdat, Moof, Styp, Wmpi, WmpiLarge};
    match p {
        // At the head, after a `moof`.
        0 => vec![Styp, Wmpi, Moof(600), Mdat(300_000)],
        // At the head, in the middle, and the file's last 13 bytes.
        1 => vec![Styp, Wmpi, Mdat(100_000), Wmpi, Mdat(200_000), Wmpi],
        // Past 64 KiB only.
        2 => vec![Styp, Moof(600), Mdat(70_000), Wmpi, Mdat(150_000)],
        // A largesize box, then another 8 000 bytes later (a run too short for the file).
        3 => vec![
            Styp,
            Mdat(10_000),
            WmpiLarge,
            Mdat(8_000),
            Wmpi,
            Mdat(400_000),
        ],
        // Under 64 KiB: always written from memory.
        4 => vec![Styp, Wmpi, Mdat(40_000)],
        // Large: more than the socket buffers of a slow client hold.
        5 | 10 | 11 => vec![Styp, Wmpi, Mdat(3 << 20), Wmpi, Mdat(100_000)],
        // Replaced on disk after caching.
        _ => vec![Styp, Wmpi, Mdat(300_000), Wmpi, Mdat(100_000)],
    }
}

fn seg_name(p: u32) -> String {
    format!("seg_{p:05}.m4s")
}

fn seed(p: u32) -> u64 {
    0x5EED_0000 + u64::from(p)
}

fn variant_dir(v: Variant) -> &'static str {
    match v {
        Variant::A => "a",
        Variant::B => "b",
    }
}

/// Both variants of segment `p` as written at setup.
fn original(p: u32, v: Variant) -> Built {
    build(&layout(p), seed(p), v, u16::try_from(p).unwrap())
}

struct Fixture {
    dir: tempfile::TempDir,
    pkg: PathBuf,
    /// Two sessions (id, token) whose codewords differ over the large segments.
    sessions: [(SessionId, String); 2],
}

fn variant_of(sid: &SessionId, p: u32) -> Variant {
    key().codebook(&TitleId::new(TITLE).unwrap()).bit(sid, p)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkg = leaktrace_testkit::hand_made_package(&dir.path().join("pkg"), TITLE);
    let rdir = pkg.join(RENDITION);
    for d in ["a", "b", SIDECAR_DIR] {
        std::fs::create_dir_all(rdir.join(d)).unwrap();
    }
    for p in 0..POSITIONS {
        for v in [Variant::A, Variant::B] {
            let path = rdir.join(variant_dir(v)).join(seg_name(p));
            std::fs::write(path, original(p, v).bytes).unwrap();
        }
        let sidecar = Sidecar::for_discrete_segment(Some(u16::try_from(p).unwrap()));
        std::fs::write(
            rdir.join(SIDECAR_DIR).join(seg_name(p)),
            sidecar.to_cbor().unwrap(),
        )
        .unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sessions = rt.block_on(async {
        let store = Store::open(&store_url(dir.path())).await.unwrap();
        store
            .upsert_title(&NewTitle {
                title_id: TITLE.into(),
                name: TITLE.into(),
                segment_duration_ms: 1000,
                position_count: POSITIONS,
                key_version: 1,
                reference_path: None,
            })
            .await
            .unwrap();
        let issuer = Issuer::new(key());
        let tid = TitleId::new(TITLE).unwrap();
        let mut issued: Vec<(SessionId, String)> = Vec::new();
        // The second session is one whose codeword differs from the first's over positions 0-5
        // (at least one segment is A for one and B for the other).
        for _ in 0..64 {
            let s = issue_session(
                &store,
                &issuer,
                &tid,
                "acct",
                Duration::from_secs(3600),
                TokenMode::Indirect,
            )
            .await
            .unwrap();
            let sid = SessionId::new(s.session.session_id).unwrap();
            let differs = issued.first().is_none_or(|(first, _)| {
                (0..6).any(|p| variant_of(first, p) != variant_of(&sid, p))
            });
            if differs {
                issued.push((sid, s.token));
            }
            if issued.len() == 2 {
                break;
            }
        }
        store.close().await;
        issued
    });
    let [s1, s2]: [(SessionId, String); 2] = sessions.try_into().unwrap();
    Fixture {
        dir,
        pkg,
        sessions: [s1, s2],
    }
}

fn store_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("store.sqlite").display())
}

// ---------------------------------------------------------------------------------------------
// The edge
// ---------------------------------------------------------------------------------------------

fn start(f: &Fixture, adjust: impl FnOnce(&mut EdgeConfig)) -> Server {
    let mut cfg = EdgeConfig::new(f.dir.path().join("pkg"), key());
    adjust(&mut cfg);
    start_edge(cfg, store_url(f.dir.path()))
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("content-length").unwrap().parse().unwrap()
    }

    /// The headers but `Date` (which may tick between two responses).
    fn stable_headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n != "date")
            .cloned()
            .collect()
    }
}

/// One keep-alive connection to the edge.
struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        assert!(addr.ip().is_loopback());
        Self::over(TcpStream::connect(addr).unwrap())
    }

    fn over(s: TcpStream) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Self {
            r: BufReader::with_capacity(64 * 1024, s),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.r.get_mut().write_all(raw).unwrap();
    }

    /// Reads the head of a response.
    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = Vec::new();
        let mut status = None;
        let mut headers = Vec::new();
        loop {
            line.clear();
            let n = self.r.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "connection closed before a response head");
            let text = String::from_utf8(line.clone()).unwrap();
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            match status {
                None => status = Some(text.split(' ').nth(1).unwrap().parse().unwrap()),
                Some(_) => {
                    let (n, v) = text.split_once(':').unwrap();
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
        }
        (status.unwrap(), headers)
    }

    /// Reads one response; a body unless it answers a HEAD or is a 304.
    fn response(&mut self, head_request: bool) -> Resp {
        let (status, headers) = self.head();
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if !head_request && status != 304 {
            r.body = vec![0; r.content_length()];
            self.r.read_exact(&mut r.body).unwrap();
        }
        r
    }

    fn exchange(&mut self, req: &Req) -> Resp {
        self.send(req.raw().as_bytes());
        self.response(req.method == "HEAD")
    }
}

/// A request to the edge.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
}

impl Req {
    fn get(target: String) -> Self {
        Self {
            method: "GET",
            target,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn head(mut self) -> Self {
        self.method = "HEAD";
        self
    }

    fn raw(&self) -> String {
        let mut s = format!(
            "{} {} HTTP/1.1\r\nHost: edge.test\r\n",
            self.method, self.target
        );
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s
    }
}

fn target(token: &str, p: u32) -> String {
    format!("/wmt/{token}/{TITLE}/{RENDITION}/{}", seg_name(p))
}

/// The ETag the edge must give `bytes`: the first 128 bits of BLAKE3, quoted hex.
fn etag(bytes: &[u8]) -> String {
    let hex: String = blake3::hash(bytes).as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// Asserts `resp` is the full file `want`.
fn assert_full(resp: &Resp, want: &[u8], what: &str) {
    assert_eq!(resp.status, 200, "{what}");
    assert_eq!(resp.content_length(), want.len(), "{what}: Content-Length");
    assert_eq!(
        resp.header("etag"),
        Some(etag(want).as_str()),
        "{what}: ETag"
    );
    assert_bytes(&resp.body, want, what);
}

/// Asserts `resp` is bytes `start..=end` of `want`.
fn assert_partial(resp: &Resp, want: &[u8], start: usize, end: usize, what: &str) {
    assert_eq!(resp.status, 206, "{what}");
    assert_eq!(
        resp.header("content-range"),
        Some(format!("bytes {start}-{end}/{}", want.len()).as_str()),
        "{what}"
    );
    assert_eq!(
        resp.content_length(),
        end + 1 - start,
        "{what}: Content-Length"
    );
    assert_bytes(&resp.body, &want[start..=end], what);
}

/// Byte equality, reporting the first difference rather than two dumps.
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes received, {} expected, first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn cached_segments_sent_from_their_files_are_byte_identical() {
    let t0 = Instant::now();
    let f = fixture();
    let edge = start(&f, |_| {});
    // A second edge that caches nothing: every body streamed from the file and rewritten in
    // chunks, without `sendfile`.
    let streaming = start(&f, |c| c.max_cached_file = 0);
    let expected = |sid: &SessionId, p: u32| original(p, variant_of(sid, p)).served();

    full_gets(&f, &edge, &streaming, &expected);
    files_are_held_open(&f);
    ranges(&f, &edge, &expected);
    head_and_conditional(&f, &edge, &expected);
    keep_alive_and_pipelining(&f, &edge, &expected);
    slow_readers(&f, &edge, &expected);
    replaced_after_caching(&f, &edge);
    replaced_while_sending(&f, &edge);
    sent_from_the_file(&f, &edge);
    eprintln!("zero-copy byte identity checked in {:?}", t0.elapsed());
}

type Expected<'a> = &'a dyn Fn(&SessionId, u32) -> Vec<u8>;

/// Every segment, for both sessions, from the caching edge (twice: the first request loads
/// the cache) and the streaming one.
fn full_gets(f: &Fixture, edge: &Server, streaming: &Server, expected: Expected<'_>) {
    let mut served = [0usize; 2];
    for (sid, token) in &f.sessions {
        let mut conn = Conn::open(edge.addr);
        let mut plain = Conn::open(streaming.addr);
        for p in 0..POSITIONS {
            let want = expected(sid, p);
            let req = Req::get(target(token, p));
            for round in 0..2 {
                let what = format!("{sid} {} (round {round})", seg_name(p));
                assert_full(&conn.exchange(&req), &want, &what);
            }
            let what = format!("{sid} {} (streamed)", seg_name(p));
            assert_full(&plain.exchange(&req), &want, &what);
            served[usize::from(variant_of(sid, p) == Variant::B)] += 1;
        }
    }
    // Both variants were served, and the two sessions differ somewhere.
    assert!(served[0] > 0 && served[1] > 0, "served A/B: {served:?}");
    let [(s1, _), (s2, _)] = &f.sessions;
    assert!((0..6).any(|p| expected(s1, p) != expected(s2, p)));
}

/// The cache holds the large files open (what `sendfile` reads), not the small one.
fn files_are_held_open(f: &Fixture) {
    let held: Vec<PathBuf> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    let canonical = f.pkg.canonicalize().unwrap();
    for (sid, _) in &f.sessions {
        for p in [0, 1, 2, 3, 5] {
            let path = canonical
                .join(RENDITION)
                .join(variant_dir(variant_of(sid, p)))
                .join(seg_name(p));
            assert!(held.contains(&path), "{} is not held open", path.display());
        }
        let small = canonical
            .join(RENDITION)
            .join(variant_dir(variant_of(sid, 4)))
            .join(seg_name(4));
        assert!(!held.contains(&small), "{} is held open", small.display());
    }
}

/// Offsets around each `wmpi` box and the thresholds, within `0..len`.
fn points(b: &Built) -> Vec<usize> {
    let len = b.bytes.len();
    let mut pts = vec![
        0,
        1,
        len - 1,
        len.saturating_sub(SEND_MIN),
        len - SEND_MIN - 1,
    ];
    for &(at, size, header) in &b.wmpi {
        let end = at + size;
        for d in [RUN_MIN + 1, RUN_MIN, RUN_MIN - 1, 1] {
            pts.extend(at.checked_sub(d));
        }
        pts.extend([at, at + 1, at + header, at + size - 1, end]);
        for d in [
            1,
            RUN_MIN - 1,
            RUN_MIN,
            RUN_MIN + 1,
            SEND_MIN - 1,
            SEND_MIN,
            SEND_MIN + 1,
        ] {
            pts.push(end + d);
        }
    }
    pts.retain(|&p| p < len);
    pts.sort_unstable();
    pts.dedup();
    pts
}

/// Byte ranges of segments 0-3 for both sessions: every pair of interesting offsets, bodies
/// of lengths around the thresholds from each, and suffix ranges; on keep-alive connections,
/// every other batch pipelined.
fn ranges(f: &Fixture, edge: &Server, expected: Expected<'_>) {
    let mut count = 0;
    for (sid, token) in &f.sessions {
        for p in 0..4 {
            let built = original(p, variant_of(sid, p));
            let want = expected(sid, p);
            let len = want.len();
            let pts = points(&built);
            let mut spans: Vec<(usize, usize)> = Vec::new();
            for (i, &s) in pts.iter().enumerate() {
                for &e in &pts[i..] {
                    spans.push((s, e));
                }
                for n in [
                    RUN_MIN - 1,
                    RUN_MIN,
                    RUN_MIN + 1,
                    SEND_MIN - 1,
                    SEND_MIN,
                    SEND_MIN + 1,
                ] {
                    if s + n <= len {
                        spans.push((s, s + n - 1));
                    }
                }
            }
            let mut reqs: Vec<(Req, usize, usize)> = spans
                .into_iter()
                .map(|(s, e)| {
                    let req = Req::get(target(token, p)).with("Range", format!("bytes={s}-{e}"));
                    (req, s, e)
                })
                .collect();
            // Open-ended and suffix forms.
            for &s in &pts {
                reqs.push((
                    Req::get(target(token, p)).with("Range", format!("bytes={s}-")),
                    s,
                    len - 1,
                ));
            }
            for n in [
                1,
                13,
                RUN_MIN,
                SEND_MIN - 1,
                SEND_MIN,
                SEND_MIN + 1,
                len - 1,
                len,
            ] {
                reqs.push((
                    Req::get(target(token, p)).with("Range", format!("bytes=-{n}")),
                    len - n,
                    len - 1,
                ));
            }
            // Past the end: the whole file.
            reqs.push((
                Req::get(target(token, p)).with("Range", format!("bytes=-{}", len + 100)),
                0,
                len - 1,
            ));
            for (b, batch) in reqs.chunks(16).enumerate() {
                let mut conn = Conn::open(edge.addr);
                if b % 2 == 0 {
                    for (req, s, e) in batch {
                        let what = format!("{sid} {} {req:?}", seg_name(p));
                        assert_partial(&conn.exchange(req), &want, *s, *e, &what);
                    }
                } else {
                    let raw: String = batch.iter().map(|(r, _, _)| r.raw()).collect();
                    conn.send(raw.as_bytes());
                    for (req, s, e) in batch {
                        let what = format!("{sid} {} pipelined {req:?}", seg_name(p));
                        assert_partial(&conn.response(false), &want, *s, *e, &what);
                    }
                }
                count += batch.len();
            }
        }
    }
    eprintln!("{count} ranges checked");
}

/// HEAD answers the GET's headers without a body; `If-None-Match` with the ETag answers 304
/// without one; `If-Range` with another ETag answers the whole file.
fn head_and_conditional(f: &Fixture, edge: &Server, expected: Expected<'_>) {
    for (sid, token) in &f.sessions {
        let mut conn = Conn::open(edge.addr);
        for p in [0, 1, 3, 4, 5] {
            let want = expected(sid, p);
            let get = Req::get(target(token, p));
            let full = conn.exchange(&get);
            assert_full(&full, &want, "GET before HEAD");
            let head = conn.exchange(&get.clone().head());
            assert_eq!(head.status, 200);
            assert_eq!(head.stable_headers(), full.stable_headers(), "HEAD headers");
            let ranged = get.clone().with("Range", "bytes=20-100000");
            let head = conn.exchange(&ranged.clone().head());
            let part = conn.exchange(&ranged);
            assert_eq!(head.stable_headers(), part.stable_headers(), "ranged HEAD");
            assert_partial(&part, &want, 20, 100_000.min(want.len() - 1), "ranged GET");

            let tag = etag(&want);
            let not_modified = conn.exchange(&get.clone().with("If-None-Match", tag.clone()));
            assert_eq!(not_modified.status, 304);
            assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
            assert!(not_modified.header("content-range").is_none());
            let other = conn.exchange(&get.clone().with("If-None-Match", "\"0123\""));
            assert_full(&other, &want, "If-None-Match with another tag");
            let stale = conn.exchange(&ranged.clone().with("If-Range", "\"0123\""));
            assert_full(&stale, &want, "If-Range with another tag");
            let fresh = conn.exchange(&ranged.clone().with("If-Range", tag));
            assert_partial(&fresh, &want, 20, 100_000.min(want.len() - 1), "If-Range");
        }
    }
}

/// Mixed requests one after another on one connection, then the same pipelined in one write
/// (more large responses queued than the connection sends from files at once).
fn keep_alive_and_pipelining(f: &Fixture, edge: &Server, expected: Expected<'_>) {
    for (sid, token) in &f.sessions {
        let want: Vec<Vec<u8>> = (0..6).map(|p| expected(sid, p)).collect();
        let tag2 = etag(&want[2]);
        // (request, position, check)
        type Check = fn(&Resp, &[u8], &str);
        let full: Check = |r, w, what| assert_full(r, w, what);
        let head: Check = |r, w, what| {
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.content_length(), w.len(), "{what}");
            assert!(r.body.is_empty(), "{what}");
        };
        let not_modified: Check = |r, _, what| assert_eq!(r.status, 304, "{what}");
        let range: Check = |r, w, what| assert_partial(r, w, 1000, 150_000, what);
        let suffix: Check = |r, w, what| assert_partial(r, w, w.len() - 70_000, w.len() - 1, what);
        let script: Vec<(Req, u32, Check)> = vec![
            (Req::get(target(token, 0)), 0, full),
            (Req::get(target(token, 1)).head(), 1, head),
            (Req::get(target(token, 1)), 1, full),
            (
                Req::get(target(token, 2)).with("If-None-Match", tag2),
                2,
                not_modified,
            ),
            (
                Req::get(target(token, 3)).with("Range", "bytes=1000-150000"),
                3,
                range,
            ),
            (Req::get(target(token, 4)), 4, full),
            (Req::get(target(token, 2)), 2, full),
            (Req::get(target(token, 5)), 5, full),
            (
                Req::get(target(token, 0)).with("Range", "bytes=-70000"),
                0,
                suffix,
            ),
            (Req::get(target(token, 3)), 3, full),
            (Req::get(target(token, 1)), 1, full),
            (Req::get(target(token, 0)), 0, full),
            (Req::get(target(token, 2)).head(), 2, head),
            (Req::get(target(token, 5)), 5, full),
        ];
        let mut conn = Conn::open(edge.addr);
        for (i, (req, p, check)) in script.iter().enumerate() {
            let r = conn.exchange(req);
            check(&r, &want[*p as usize], &format!("keep-alive #{i} {req:?}"));
        }
        for _ in 0..2 {
            let raw: String = script.iter().map(|(r, _, _)| r.raw()).collect();
            let mut conn = Conn::open(edge.addr);
            conn.send(raw.as_bytes());
            for (i, (req, p, check)) in script.iter().enumerate() {
                let r = conn.response(req.method == "HEAD");
                check(&r, &want[*p as usize], &format!("pipelined #{i} {req:?}"));
            }
        }
    }
}

/// A client socket with a small receive buffer, so that the edge's writes block (EAGAIN) and
/// come back partial.
fn small_window(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .unwrap();
        s.connect(addr).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// Reads a body of `len` bytes in pieces of 1 to 4 099 bytes, pausing every `pause_every`
/// bytes; calls `at` once when `trigger` bytes are in. Returns what arrived before the end or
/// the connection's close.
fn read_slowly(
    r: &mut BufReader<TcpStream>,
    len: usize,
    pause_every: usize,
    trigger: usize,
    mut at: impl FnMut(),
) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    let mut piece = 1;
    let mut next_pause = pause_every;
    let mut fired = false;
    while body.len() < len {
        let want = piece.min(len - body.len());
        let mut buf = vec![0u8; want];
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading a body: {e}"),
        }
        piece = piece * 7 % 4099 + 1;
        if body.len() >= next_pause {
            std::thread::sleep(Duration::from_millis(2));
            next_pause += pause_every;
        }
        if !fired && body.len() >= trigger {
            fired = true;
            at();
        }
    }
    body
}

/// Clients that read the body in small pieces with pauses (after letting the edge fill the
/// socket buffers) get the exact bytes, both sessions at once.
fn slow_readers(f: &Fixture, edge: &Server, expected: Expected<'_>) {
    std::thread::scope(|scope| {
        for (sid, token) in &f.sessions {
            let addr = edge.addr;
            let wants: Vec<(u32, Vec<u8>)> =
                [5, 1, 3].iter().map(|&p| (p, expected(sid, p))).collect();
            scope.spawn(move || {
                let mut conn = Conn::over(small_window(addr));
                for (p, want) in &wants {
                    conn.send(Req::get(target(token, *p)).raw().as_bytes());
                    std::thread::sleep(Duration::from_millis(150));
                    let (status, headers) = conn.head();
                    assert_eq!(status, 200);
                    let resp = Resp {
                        status,
                        headers,
                        body: Vec::new(),
                    };
                    assert_eq!(resp.content_length(), want.len());
                    let body = read_slowly(&mut conn.r, want.len(), 64 * 1024, usize::MAX, || {});
                    assert_bytes(&body, want, &format!("{sid} {} read slowly", seg_name(*p)));
                }
                // The connection still serves a ranged request after them.
                let want = &wants[0].1;
                let r = conn.exchange(&Req::get(target(token, 5)).with("Range", "bytes=5-200000"));
                assert_partial(&r, want, 5, 200_000, "after slow reads");
            });
        }
    });
}

/// The path of the file session 1 is served at `p`, and its variant.
fn served_file(f: &Fixture, p: u32) -> (PathBuf, Variant) {
    let v = variant_of(&f.sessions[0].0, p);
    (
        f.pkg.join(RENDITION).join(variant_dir(v)).join(seg_name(p)),
        v,
    )
}

/// A response to a file replaced on disk is one version or the other, whole: the bytes, the
/// length and the ETag of the old file's rewrite, or of the new one's.
fn one_version(resp: &Resp, old: &[u8], new: &[u8], range: Option<(usize, usize)>, what: &str) {
    let pick = |v: &[u8]| {
        let tag_ok = resp.header("etag") == Some(etag(v).as_str());
        match range {
            None => tag_ok && resp.status == 200 && resp.body == v,
            Some((s, e)) => {
                let e = e.min(v.len() - 1);
                tag_ok
                    && resp.status == 206
                    && resp.header("content-range")
                        == Some(format!("bytes {s}-{e}/{}", v.len()).as_str())
                    && resp.body == v[s..=e]
            }
        }
    };
    let (is_old, is_new) = (pick(old), pick(new));
    assert!(
        is_old || is_new,
        "{what}: status {}, {} bytes, neither the old file nor the new one",
        resp.status,
        resp.body.len()
    );
    assert_eq!(resp.body.len(), resp.content_length(), "{what}");
}

/// Files replaced after they were cached, by rename (the product's way: a new file) and in
/// place (truncated and rewritten), with the same size and another: every response is the old
/// file or the new one, never a mix of the cached bytes and the file's new ones.
fn replaced_after_caching(f: &Fixture, edge: &Server) {
    let token = &f.sessions[0].1;
    // (position, by rename, new layout)
    let cases: [(u32, bool, Vec<Part>); 4] = [
        (6, true, layout(6)),
        (7, true, vec![Part::Styp, Part::Wmpi, Part::Mdat(250_000)]),
        (8, false, layout(8)),
        (
            9,
            false,
            vec![
                Part::Styp,
                Part::Mdat(90_000),
                Part::Wmpi,
                Part::Mdat(500_000),
            ],
        ),
    ];
    let mut conn = Conn::open(edge.addr);
    for (p, by_rename, parts) in cases {
        let (path, v) = served_file(f, p);
        let old = original(p, v).served();
        // Cached (and held open) by a full GET.
        assert_full(&conn.exchange(&Req::get(target(token, p))), &old, "before");
        let built = build(&parts, seed(p) ^ 0xA11CE, v, u16::try_from(p).unwrap());
        let new = built.served();
        assert_ne!(old, new);
        // A clock tick, so that an in-place rewrite has another mtime.
        std::thread::sleep(Duration::from_millis(20));
        if by_rename {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &built.bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        } else {
            std::fs::write(&path, &built.bytes).unwrap();
        }
        let what = |w: &str| {
            format!(
                "{} replaced ({}): {w}",
                seg_name(p),
                if by_rename { "rename" } else { "in place" }
            )
        };
        let req = Req::get(target(token, p));
        // On the connection that cached the file, then on a new one.
        for c in [&mut conn, &mut Conn::open(edge.addr)] {
            one_version(&c.exchange(&req), &old, &new, None, &what("full"));
            let r = c.exchange(&req.clone().with("Range", "bytes=10-150000"));
            one_version(
                &r,
                &old,
                &new,
                Some((10, 150_000)),
                &what("range from the file"),
            );
            let r = c.exchange(&req.clone().with("Range", "bytes=30-2000"));
            one_version(&r, &old, &new, Some((30, 2000)), &what("short range"));
            let h = c.exchange(&req.clone().head());
            let g = c.exchange(&req);
            one_version(&g, &old, &new, None, &what("GET after HEAD"));
            assert_eq!(h.stable_headers(), g.stable_headers(), "{}", what("HEAD"));
        }
        let pipelined = format!("{}{}", req.raw(), req.raw());
        conn.send(pipelined.as_bytes());
        for _ in 0..2 {
            one_version(&conn.response(false), &old, &new, None, &what("pipelined"));
        }
    }
}

/// Files replaced while a slow client is being sent them (after 200 000 bytes of 3 MiB): by
/// rename, the response is the old file whole; rewritten in place, it is the old file whole
/// or cut short (the client sees fewer bytes than `Content-Length`), never a whole body mixing
/// old and new bytes.
fn replaced_while_sending(f: &Fixture, edge: &Server) {
    let token = &f.sessions[0].1;
    for (p, by_rename) in [(10, true), (11, false)] {
        let (path, v) = served_file(f, p);
        let old = original(p, v).served();
        // Cached by a first GET.
        assert_full(
            &Conn::open(edge.addr).exchange(&Req::get(target(token, p))),
            &old,
            "before",
        );
        let built = build(&layout(p), seed(p) ^ 0xB0B, v, u16::try_from(p).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        let mut conn = Conn::over(small_window(edge.addr));
        conn.send(Req::get(target(token, p)).raw().as_bytes());
        let (status, _) = conn.head();
        assert_eq!(status, 200);
        let body = read_slowly(&mut conn.r, old.len(), 256 * 1024, 200_000, || {
            if by_rename {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &built.bytes).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            } else {
                std::fs::write(&path, &built.bytes).unwrap();
            }
        });
        let what = format!(
            "{} replaced while sent ({})",
            seg_name(p),
            if by_rename { "rename" } else { "in place" }
        );
        if by_rename || body.len() == old.len() {
            assert_bytes(&body, &old, &what);
        } else {
            eprintln!("{what}: cut short after {} bytes", body.len());
        }
        // Later requests: one version, whole.
        let new = built.served();
        one_version(
            &Conn::open(edge.addr).exchange(&Req::get(target(token, p))),
            &old,
            &new,
            None,
            &what,
        );
    }
}

/// Which bytes come from the file: a file changed in place behind the cache's back, with its
/// size and mtime kept (the cache's test of a file), shows its new bytes in the runs sent from
/// the file, while the response head, the `wmpi` boxes and bodies under 64 KiB still come
/// from the cached bytes. This is how the test knows the checks above went through `sendfile`.
fn sent_from_the_file(f: &Fixture, edge: &Server) {
    let token = &f.sessions[0].1;
    let p = 12;
    let (path, v) = served_file(f, p);
    let built = original(p, v);
    let old = built.served();
    let mut conn = Conn::open(edge.addr);
    assert_full(&conn.exchange(&Req::get(target(token, p))), &old, "before");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut changed = built.bytes.clone();
    for b in &mut changed[100..] {
        *b = !*b;
    }
    {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(&changed).unwrap();
        file.set_modified(mtime).unwrap();
    }
    let req = Req::get(target(token, p));
    let r = conn.exchange(&req);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some(etag(&old).as_str()));
    // The first box run (styp and wmpi, 37 bytes) and what follows up to 16 KiB come from
    // memory; the rest of the body up to the next wmpi box from the changed file.
    let (second, _, _) = built.wmpi[1];
    assert_bytes(&r.body[..100], &old[..100], "head from memory");
    assert_bytes(
        &r.body[RUN_MIN..second],
        &changed[RUN_MIN..second],
        "run from the file",
    );
    let short = conn.exchange(&req.clone().with("Range", "bytes=200-60000"));
    assert_partial(
        &short,
        &old,
        200,
        60_000,
        "a body under 64 KiB, from memory",
    );
    // Put back, for a consistent package.
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all(&built.bytes).unwrap();
    file.set_modified(mtime).unwrap();
}
