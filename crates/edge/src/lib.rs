//! # leaktrace-edge
//!
//! The TS 104 002 edge sequencer: an HTTP/1.1 server (tokio + hyper) that serves each viewing
//! session its own A/B sequence from `leaktrace embed` packages, with neutral manifests and no
//! way for a viewer to reach the other variant.
//!
//! ## URL scheme
//!
//! ```text
//! /wmt/<token>/<title>/master.m3u8            HLS multivariant playlist (neutral, as on disk)
//! /wmt/<token>/<title>/manifest.mpd           DASH MPD (neutral, as on disk)
//! /wmt/<token>/<title>/<rendition>/playlist.m3u8
//! /wmt/<token>/<title>/<rendition>/init.mp4   init segment: always variant A
//! /wmt/<token>/<title>/<rendition>/seg_00007.m4s   a/ or b/ for this session
//! ```
//!
//! The token in the virtual path (TS 104 002's recommendation) is the default: manifests use
//! relative URLs, so a player given `http://host/wmt/<token>/<title>/master.m3u8` fetches every
//! playlist and segment under the same prefix without knowing about tokens. The same paths
//! without the `/wmt/<token>` prefix are accepted with the token in a `wmt` query parameter
//! (`/<title>/master.m3u8?wmt=<token>`) or in an `Authorization: Bearer <token>` header; then the
//! player must add it to every request itself (relative URLs drop the query). Precedence: path,
//! then query, then header.
//!
//! ## Per request
//!
//! 1. Method: GET or HEAD (OPTIONS answers CORS preflights; others 405). A request body: 413.
//! 2. Path ([`path::parse`]): only `[A-Za-z0-9._~-]` segments, no `.`/`..`/empty segments, no
//!    `%` at all (so no percent-encoded tricks), at most [`path::MAX_PATH_LEN`] bytes: else 400.
//!    Shapes other than the ones above, and anything under `a/`, `b/`, `WMPaceInfo/`,
//!    `reference/` or `title.json`: 404.
//! 3. Token: verified (HMAC-256/256 with `master.derive(TokenMac)` of each key version held,
//!    and any configured ES256 public keys), `exp`/`iat` checked with 60 s leeway, `wmopid` must
//!    be this edge's, `wmkeyver` a version held (and, for an HMAC token, the version whose key
//!    verified it); the session (`wmid`, or `cti` in direct mode) must be in the store for the
//!    requested title, recorded with that key version, and the title's own key version (the
//!    codebook's) must be held too, and the session must not be revoked ([`revocation`]: the
//!    edge follows the store's revoked sessions every
//!    [`EdgeConfig::revocation_poll`], 1 s by default, with no store read per request). Any
//!    failure: 403 (the reason is logged at info level, never the token: logs show its first 6
//!    characters). Back-ends revoke and restore sessions through the [`admin`] API or
//!    `leaktrace session revoke`.
//! 4. File: manifests and playlists as they are. A rendition file with a WMPaceInfo sidecar at
//!    `<rendition>/WMPaceInfo/<file>` is watermarked: position -1 → `a/<file>`, else the session's
//!    bit ([`leaktrace_core::session::select_variant`]) picks `a/<file>` or `b/<file>`. A live
//!    channel outgrows the sidecar's 15-bit position after 32 767 segments; its segment names
//!    carry the whole position (`seg_163847.m4s`), which is taken when it agrees with the
//!    sidecar's modulo 32 767 ([`leaktrace_core::Position::from_wire_and_name`]). A file
//!    only in `a/` is served to all; an A/B pair without a sidecar is a packaging error (500,
//!    logged). The resolved file is canonicalized and must lie under the root (symbolic links
//!    cannot escape).
//! 5. Egress rewrite ([`egress`]): every top-level `wmpi` box of an ISOBMFF file becomes a
//!    `free` box of the same size filled with 0xFF (TS 104 002 clause 5.6.5: in-band WMPaceInfo
//!    is overwritten on egress). It carries the variant id, so serving it as is would tell the
//!    viewer which variant it got; and Chromium's MSE rejects unknown top-level boxes. So a
//!    served segment is byte-identical to the egress form of the `a/` or `b/` file, same
//!    length.
//! 6. Blocking playlist reloads ([`blocking`]): a live media playlist asked for with
//!    `_HLS_msn` (and `_HLS_part`), as LL-HLS players do when the playlist says
//!    `CAN-BLOCK-RELOAD=YES`, is held until the playlist on disk holds that segment or part
//!    (checked every 20 ms), then served; a request more than two segments ahead gets 400, one
//!    still waiting after three target durations 503. Low-latency parts
//!    (`seg_00042.p3.m4s`) have sidecars of their own and are served like segments.
//!
//! ## Response headers
//!
//! `Content-Type` (m3u8 `application/vnd.apple.mpegurl`, mpd `application/dash+xml`, m4s
//! `video/iso.segment`, mp4 `video/mp4`), `Content-Length`, `Accept-Ranges: bytes`, `ETag` =
//! quoted hex of the first 128 bits of BLAKE3 of the bytes served (A and B differ, but nothing
//! says which is which), `Cache-Control: private, max-age=86400` for media (`max-age=300` for
//! manifests, `max-age=1` for a live channel's media playlists and dynamic MPD, which change
//! every segment and which the edge re-reads after 200 ms; the body depends on the token, so
//! shared caches must not store it), `Vary: Authorization`, `X-Content-Type-Options: nosniff`, and CORS
//! (`Access-Control-Allow-Origin`, default `*`). Never `Last-Modified` (the mtimes of `a/` and
//! `b/` files differ), never a redirect, never a header naming the variant or the origin path.
//! `If-None-Match` → 304; one `Range` → 206 (`If-Range` honoured); an unsatisfiable one → 416;
//! several ranges → the whole file (200). Refusals (400/403/404/405/413/416/500) carry a fixed
//! text body, `Cache-Control: no-store`, no `ETag`.
//!
//! ## Key derivation (the detector and CDN functions must match it)
//!
//! - Token MAC key: `BLAKE3-derive_key("leaktrace 2026-11-21 token mac v1", master ‖ version_le32)`.
//! - Bias key of a title: `BLAKE3-keyed(derive_key("leaktrace 2026-11-21 tardos bias v1",
//!   master ‖ version_le32), "title\0" ‖ title)`.
//! - Codeword key of a title: the same with `"leaktrace 2026-11-21 session codeword v1"`.
//! - Codebook: [`leaktrace_core::Codebook`] with those keys and the default Tardos cutoff 0.1
//!   ([`leaktrace_core::MasterKey::codebook`]); bit at position p = `B` iff `u_p(session) < q_p`.
//!
//! [`vectors`] generates `tests/vectors/selector-v2.json` (`leaktrace session vectors`), the
//! reference a CDN reimplementation is checked against.
//!
//! ## Caches
//!
//! Every cache is bounded by bytes: each entry is charged its key, what its value owns and a
//! fixed bookkeeping cost, and an insert that would pass the bound first evicts entries with a
//! CLOCK (second-chance) sweep. New entries start unmarked, so a flood of keys nobody asks for
//! again (random missing names, one-off tokens) evicts its own entries first, while entries in
//! use survive; no client can make a cache hold more than its bound.
//!
//! - Files up to 32 MiB (and at most half the file cache) are kept in memory with their ETag,
//!   [`EdgeConfig::file_cache_bytes`] in all (512 MiB by default), and re-checked against the
//!   disk (size, mtime) every 30 s; larger files are streamed. A cached file of 64 KiB or more
//!   also keeps its file open (up to an eighth of the process's file-descriptor limit, at most
//!   4096 files): a response sends the bytes the edge does not rewrite from it with `sendfile`
//!   and writes the rewritten `wmpi` boxes, short runs and the head from memory (with
//!   `MSG_MORE` where file bytes follow, so the head leaves with them). It does so only while the open file still has the
//!   size and mtime the cached bytes were read with (checked before each send from the file:
//!   otherwise the rest is written from memory; and after it: a file changed during a send
//!   closes the connection, the body short of its length); otherwise, and for HEAD, 304 and
//!   small files, the cached bytes are written as they are. The bytes on the wire are the same
//!   either way.
//! - [`EdgeConfig::lookup_cache_bytes`] (128 MiB by default) is shared out: verified tokens 3/8,
//!   sessions 1/4 (kept 5 minutes, absent ones 5 s), resolutions of paths to files 1/4 (absent
//!   ones kept 5 s), title directories 1/16, codebooks 1/16.
//!
//! A token verifies only in the issuer's encoding ([`leaktrace_core::token`]), so one token is
//! one cache key. [`Edge::cache_usage`] reports the bytes held. Each connection also remembers
//! the last token it checked: the next request with that token skips the shared token and
//! session caches, and is still refused once the token expires or its session is revoked.
//!
//! ## Limits
//!
//! Each connection runs under deadlines and caps, all in [`EdgeConfig`]:
//!
//! | setting | default | effect |
//! |---|---|---|
//! | `max_connections` | 16 384 | more connections are answered 503 and closed at once |
//! | `max_connections_per_ip` | 256 | the same per client address (IPv6: per /64) |
//! | `header_timeout` | 10 s | from the accept, or a request's first byte, to the end of its headers |
//! | `idle_timeout` | 20 s | from the end of a response to the next request's first byte |
//! | `write_timeout` | 20 s | once the client stops taking bytes, it must take all that is queued (a whole cached file, or a chunk of a streamed one), or at least 1 MiB of it, within this time |
//! | `max_requests_per_connection` | 1 000 | the last response says `Connection: close`; requests pipelined beyond it are dropped |
//!
//! A missed deadline closes the connection. Request heads are bounded too: the path at
//! [`path::MAX_PATH_LEN`] bytes, at most 100 headers, and at most about 33 KiB buffered per
//! connection (pipelined requests included). With the defaults, slow or idle clients from one
//! address hold at most 256 connections, each for at most 20 s without progress.
//!
//! ## Example
//!
//! ```no_run
//! use leaktrace_core::{KeyVersion, MasterKey};
//! use leaktrace_edge::{Edge, EdgeConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = MasterKey::from_hex(&std::fs::read_to_string("master.key")?, KeyVersion::new(1))?;
//! let store = leaktrace_store::Store::open("sqlite:///var/lib/leaktrace/store.sqlite").await?;
//! let edge = Edge::new(EdgeConfig::new("/srv/packages".into(), key), store)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! edge.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod admin;
mod auth;
pub mod blocking;
mod cache;
mod conn;
pub mod egress;
mod package;
pub mod path;
pub mod range;
pub mod revocation;
mod server;
pub mod vectors;

use std::path::PathBuf;
use std::time::Duration;

use leaktrace_core::session::DEFAULT_WMOPID;
use leaktrace_core::token::Verifier;
use leaktrace_core::{Keyring, MasterKey};

pub use auth::Deny;
pub use server::{Body, CACHE_ERROR, CACHE_MANIFEST, CACHE_MEDIA, CacheUsage, Edge};

/// Errors of the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The root is not a readable directory.
    #[error(
        "edge root {0} is not a readable directory (expected a package or a directory of packages)"
    )]
    Root(PathBuf),
    /// A configuration value is invalid.
    #[error("invalid edge configuration: {0}")]
    Config(String),
    /// Binding or accepting failed.
    #[error("edge I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The test vectors could not be built or do not match.
    #[error("selector vectors: {0}")]
    Vectors(#[source] vectors::VectorsError),
}

/// What the edge needs to run. Build with [`EdgeConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EdgeConfig {
    /// A package directory (it has `title.json`) or a directory of packages named by title id.
    pub root: PathBuf,
    /// The operator's master keys by version (token MACs and codebooks; see the crate
    /// documentation): tokens MAC'd under any version held are accepted, and each title's
    /// codebook comes from the version it was marked with.
    pub keys: Keyring,
    /// Further token verifiers, e.g. ES256 public keys ([`Verifier::es256_from_sec1`]); the
    /// HMAC keys derived from `keys` are always accepted.
    pub extra_verifiers: Vec<Verifier>,
    /// The operator id tokens must carry in `wmopid` (default 1).
    pub wmopid: u64,
    /// `Access-Control-Allow-Origin` value (default `*`); `None` sends no CORS headers.
    pub cors_origin: Option<String>,
    /// Bytes of file content kept in memory (default 512 MiB).
    pub file_cache_bytes: u64,
    /// Largest file kept in memory (default 32 MiB); larger ones are streamed.
    pub max_cached_file: u64,
    /// Most simultaneous connections (default 16 384); more are answered 503 and closed.
    pub max_connections: usize,
    /// Most simultaneous connections from one client address, IPv6 addresses counted by their
    /// /64 prefix (default 256); more are answered 503 and closed. Behind a proxy every
    /// connection comes from the proxy: raise it to `max_connections` there.
    pub max_connections_per_ip: usize,
    /// Time for a request's line and headers to arrive, from the accept or from the request's
    /// first byte (default 10 s).
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for the next request (default 20 s).
    pub idle_timeout: Duration,
    /// Time a response may wait for the client: once the socket stops taking bytes, everything
    /// queued (a whole cached file, or one chunk of a streamed one) or at least 1 MiB of it must
    /// be taken within this time, else the connection is closed (default 20 s).
    pub write_timeout: Duration,
    /// Most requests answered on one connection, pipelined or not (default 1 000); the last
    /// response closes the connection.
    pub max_requests_per_connection: usize,
    /// Bytes for the token, session, resolution, title and codebook caches together (default
    /// 128 MiB; see "Caches" in the crate documentation).
    pub lookup_cache_bytes: u64,
    /// How often the revoked sessions are read from the store while serving (default 1 s, 100
    /// ms to 60 s): a revocation is refused within this time plus one read.
    pub revocation_poll: Duration,
}

impl EdgeConfig {
    /// The defaults for `root` and `key` (the only key version held; set
    /// [`EdgeConfig::keys`] to hold more).
    #[must_use]
    pub fn new(root: PathBuf, key: MasterKey) -> Self {
        Self {
            root,
            keys: Keyring::new(key),
            extra_verifiers: Vec::new(),
            wmopid: DEFAULT_WMOPID,
            cors_origin: Some("*".into()),
            file_cache_bytes: 512 << 20,
            max_cached_file: 32 << 20,
            max_connections: 16_384,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(20),
            max_requests_per_connection: 1_000,
            lookup_cache_bytes: 128 << 20,
            revocation_poll: Duration::from_secs(1),
        }
    }
}
