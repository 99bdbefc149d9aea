//! Shared fixture of the edge's HTTP tests: a real package made with the embed library from a
//! corpus clip, a SQLite store with sessions issued through `leaktrace-session`, and an edge
//! serving on 127.0.0.1 (never any other address), plus a raw HTTP/1.1 client that sends paths
//! exactly as written (no normalisation of `..` or `%2e`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use leaktrace_core::SessionId;
use leaktrace_core::TokenMode;
use leaktrace_core::token::Signer;
use leaktrace_core::{KeyVersion, MasterKey, SegmentDuration, TitleId, Variant};
use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_embed::{PipelineConfig, embed_file};
use leaktrace_session::{Issuer, issue_session, issue_session_at};
use leaktrace_store::{NewTitle, Store};
use leaktrace_testkit::{corpus, ffmpeg_command, ok};

/// The title of the test package.
pub const TITLE: &str = "bbb";
/// A title that exists in the store but has no package.
pub const OTHER_TITLE: &str = "other";
/// Renditions of the test package.
pub const RENDITIONS: [&str; 2] = ["360p", "240p"];
/// Frames embedded (20 s at 24 fps) and the segment duration: 20 positions of 1 s.
pub const FRAMES: u64 = 480;
/// Number of positions.
pub const POSITIONS: u32 = 20;

/// Titles packaged under Common Encryption (the same mezzanine and settings), `cenc` and
/// `cbcs`, with the keys of [`DRM_KEYS`].
pub const DRM_TITLES: [(&str, leaktrace_media::cenc::Scheme); 2] = [
    ("bbb-cenc", leaktrace_media::cenc::Scheme::Cenc),
    ("bbb-cbcs", leaktrace_media::cenc::Scheme::Cbcs),
];

/// The key file of the encrypted titles: a video key and an audio key.
pub const DRM_KEYS: &str = "video:5a1e0c6b3f4d4e2a9b8c7d6e5f403122:8b0d2a61c4e7f3a95d16b2c8e0f4a713\naudio:6b2f1d7c405e5f3bac9d8e7f60514233:1f3e5d7b9a2c4e6f80a2c4e6f8b0d2e4\n";

/// The audio rendition of the test package (the trailer's track has no language tag).
pub const AUDIO: &str = "audio-und";

/// The corpus clip (`$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache`).
pub fn clip() -> PathBuf {
    corpus("trailer_bbb_20s.mp4")
}

/// The mezzanine of the fixture: the corpus clip's picture with the first 20 s of the full
/// trailer's sound (MP3, 44.1 kHz stereo, re-encoded to AAC by the packager).
fn mezzanine(dir: &Path) -> PathBuf {
    let trailer = clip().with_file_name("trailer_bbb.mp4");
    let out = dir.join("mezzanine.mp4");
    ok(ffmpeg_command()
        .arg("-i")
        .arg(clip())
        .arg("-i")
        .arg(&trailer)
        .args(["-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-t", "20"])
        .arg(&out));
    out
}

/// The test master key.
pub fn key() -> MasterKey {
    MasterKey::from_bytes([0x3c; 32], KeyVersion::new(1))
}

/// Tokens of the fixture's sessions.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Session 1 of `bbb` (indirect, HMAC).
    pub s1: (SessionId, String),
    /// Session 2 of `bbb` (indirect, HMAC).
    pub s2: (SessionId, String),
    /// A direct-mode session of `bbb`.
    pub direct: (SessionId, String),
    /// An ES256-signed session of `bbb`.
    pub es256: (SessionId, String),
    /// A session of `other`.
    pub other_title: String,
    /// A session of each of [`DRM_TITLES`].
    pub drm: [(SessionId, String); 2],
    /// A `bbb` session whose token expired a day ago.
    pub expired: String,
    /// A token for a session that was never recorded (signed with the right key).
    pub unrecorded: String,
    /// The claims of `s1` signed with a wrong HMAC key.
    pub wrong_key: String,
    /// `s1` with one MAC byte flipped.
    pub forged: String,
}

/// The shared fixture.
pub struct Fixture {
    /// Temporary directory (package under `pkg/bbb`, store `store.sqlite`).
    pub dir: tempfile::TempDir,
    /// The package directory.
    pub pkg: PathBuf,
    /// Where the edge listens.
    pub addr: SocketAddr,
    /// Tokens.
    pub tokens: Tokens,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// ES256 test key of the fixture.
pub fn es256_signer() -> Signer {
    Signer::es256_from_bytes(blake3::hash(b"edge test es256").as_bytes()).unwrap()
}

fn flip_mac(token: &str) -> String {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = e.decode(token).unwrap();
    *raw.last_mut().unwrap() ^= 0x01;
    e.encode(raw)
}

/// The fixture's subtitle track: one cue per second of the clip, the second one across a
/// position boundary.
pub const SUBTITLES_SRT: &str = "1\n00:00:00,200 --> 00:00:00,900\nFirst <i>line</i>\n\n2\n00:00:01,500 --> 00:00:02,500\nAcross a boundary\n\n3\n00:00:03,000 --> 00:00:03,800\nThird\n";

/// Builds (once) and returns the fixture: package, store, sessions and a running edge.
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg").join(TITLE);
    let key = key();
    let mut cfg = PipelineConfig::new(TitleId::new(TITLE).unwrap());
    cfg.ladder = Some(RENDITIONS.join(","));
    cfg.preset = Some("ultrafast".into());
    cfg.max_frames = Some(FRAMES);
    cfg.segment = SegmentDuration::from_millis(1000).unwrap();
    // An English subtitle track (SubRip), served like any plain file.
    let srt = dir.path().join("en.srt");
    std::fs::write(&srt, SUBTITLES_SRT).unwrap();
    cfg.subtitles = vec![leaktrace_embed::SubtitleInput {
        path: srt,
        language: "en".into(),
    }];
    let mezzanine = mezzanine(dir.path());
    let summary = embed_file(&mezzanine, &pkg, &key, &cfg, &mut |_| {}).unwrap();
    let keys = leaktrace_embed::drm::KeyFile::parse(DRM_KEYS).unwrap();
    for (title, scheme) in DRM_TITLES {
        let mut cfg = cfg.clone();
        cfg.title = TitleId::new(title).unwrap();
        cfg.encryption = Some(leaktrace_embed::drm::Encryption::new(
            scheme,
            keys.clone(),
            Vec::new(),
        ));
        let out = dir.path().join("pkg").join(title);
        let s = embed_file(&mezzanine, &out, &key, &cfg, &mut |_| {}).unwrap();
        assert_eq!(s.encryption.as_deref(), Some(scheme.name()));
    }
    assert_eq!(summary.text_renditions, vec!["text-en".to_string()]);
    assert_eq!(summary.audio_renditions.len(), 1);
    assert_eq!(summary.audio_renditions[0].name, AUDIO);
    assert_eq!(summary.positions, POSITIONS);

    let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (store, tokens) = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        for t in [TITLE, OTHER_TITLE, DRM_TITLES[0].0, DRM_TITLES[1].0] {
            store
                .upsert_title(&NewTitle {
                    title_id: t.into(),
                    name: t.into(),
                    segment_duration_ms: 1000,
                    position_count: POSITIONS,
                    key_version: 1,
                    reference_path: None,
                })
                .await
                .unwrap();
        }
        let issuer = Issuer::new(key.clone());
        let es_issuer = Issuer::new(key.clone()).with_signer(es256_signer());
        let bbb = TitleId::new(TITLE).unwrap();
        let other = TitleId::new(OTHER_TITLE).unwrap();
        let hour = Duration::from_secs(3600);
        let cenc = TitleId::new(DRM_TITLES[0].0).unwrap();
        let cbcs = TitleId::new(DRM_TITLES[1].0).unwrap();
        let issue = |iss: &'static str, mode| {
            let (issuer, title) = match iss {
                "es" => (&es_issuer, &bbb),
                "other" => (&issuer, &other),
                "cenc" => (&issuer, &cenc),
                "cbcs" => (&issuer, &cbcs),
                _ => (&issuer, &bbb),
            };
            let store = store.clone();
            async move {
                let s = issue_session(&store, issuer, title, "acct", hour, mode)
                    .await
                    .unwrap();
                (SessionId::new(s.session.session_id).unwrap(), s.token)
            }
        };
        let s1 = issue("bbb", TokenMode::Indirect).await;
        let s2 = issue("bbb", TokenMode::Indirect).await;
        let direct = issue("bbb", TokenMode::Direct).await;
        let es256 = issue("es", TokenMode::Indirect).await;
        let other_title = issue("other", TokenMode::Indirect).await.1;
        let drm = [
            issue("cenc", TokenMode::Indirect).await,
            issue("cbcs", TokenMode::Indirect).await,
        ];
        let day_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 86_400;
        let expired = issue_session_at(
            &store,
            &issuer,
            &bbb,
            "acct",
            hour,
            TokenMode::Indirect,
            day_ago,
        )
        .await
        .unwrap()
        .token;
        // Same claims as s1 but for a session id the store never saw.
        let claims = leaktrace_core::token::decode_and_verify(
            &s1.1,
            &issuer.signer().verifier(),
            day_ago + 86_400,
        )
        .unwrap();
        let mut ghost = claims.clone();
        if let leaktrace_core::token::PatternClaims::Indirect { wmid, .. } = &mut ghost.pattern {
            *wmid = SessionId::new("never-recorded-session").unwrap();
        }
        let unrecorded = leaktrace_core::token::encode(&ghost, issuer.signer()).unwrap();
        let wrong_key =
            leaktrace_core::token::encode(&claims, &Signer::hmac_sha256(&[0x77; 32])).unwrap();
        let forged = flip_mac(&s1.1);
        (
            store,
            Tokens {
                s1,
                s2,
                direct,
                es256,
                other_title,
                drm,
                expired,
                unrecorded,
                wrong_key,
                forged,
            },
        )
    });
    drop(rt);

    let mut config = EdgeConfig::new(dir.path().join("pkg"), key);
    config.extra_verifiers = vec![es256_signer().verifier()];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let edge = Edge::new(config, store).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            edge.serve(listener, std::future::pending()).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    Fixture {
        dir,
        pkg,
        addr,
        tokens,
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close`, exactly as written, and reads the response.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    assert!(addr.ip().is_loopback());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body,
    }
}

/// GET without extra headers.
pub fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[])
}

/// The variant the codeword gives `sid` at `p`.
pub fn codeword(sid: &SessionId, p: u32) -> Variant {
    codeword_of(TITLE, sid, p)
}

/// The variant the edge serves `sid` of `title` at position `p`.
pub fn codeword_of(title: &str, sid: &SessionId, p: u32) -> Variant {
    key().codebook(&TitleId::new(title).unwrap()).bit(sid, p)
}

/// A package file as the edge serves it: in-band WMPaceInfo (`wmpi`) neutralised.
pub fn egress_file(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let n = leaktrace_edge::egress::neutralize_wmpi(&mut bytes);
    if path.extension().is_some_and(|e| e == "m4s") {
        assert_eq!(n, 1, "{} should carry one wmpi box", path.display());
    }
    bytes
}

/// Which variant file `body` is for segment `p` of `rendition` (panics if neither or both).
pub fn which_variant(pkg: &Path, rendition: &str, p: u32, body: &[u8]) -> Variant {
    let name = format!("seg_{p:05}.m4s");
    let a = egress_file(&pkg.join(rendition).join("a").join(&name));
    let b = egress_file(&pkg.join(rendition).join("b").join(&name));
    assert_ne!(a, b, "A and B of {rendition}/{name} are identical");
    match (body == a.as_slice(), body == b.as_slice()) {
        (true, false) => Variant::A,
        (false, true) => Variant::B,
        _ => panic!("{rendition}/{name}: served bytes match neither variant"),
    }
}

/// The top-level box types of an ISOBMFF buffer.
pub fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[o + 4..o + 8]).into_owned());
        if size < 8 {
            break;
        }
        o += size;
    }
    out
}

/// Runs `f` against a second edge (same store and package) built with `config`, on its own
/// runtime, then shuts it down.
pub fn with_edge(
    config: impl FnOnce(&mut EdgeConfig),
    f: impl FnOnce(SocketAddr) + Send + 'static,
) {
    let fx = fixture();
    let url = format!("sqlite://{}", fx.dir.path().join("store.sqlite").display());
    let mut cfg = EdgeConfig::new(fx.dir.path().join("pkg"), key());
    cfg.extra_verifiers = vec![es256_signer().verifier()];
    config(&mut cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&url).await.unwrap();
        let edge = Edge::new(cfg, store).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            edge.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        tokio::task::spawn_blocking(move || f(addr)).await.unwrap();
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    });
}
