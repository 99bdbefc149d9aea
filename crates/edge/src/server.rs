//! The HTTP service: request → checks → variant → response, and the accept loop.

use std::convert::Infallible;
use std::future::Future;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use hyper_util::rt::TokioIo;
use leaktrace_core::session::select_variant;
use leaktrace_core::{Codebook, KeyVersion, Keyring, TitleId};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;

use crate::auth::{Auth, AuthMemo, Deny};
use crate::blocking::{Availability, BlockingRequest, PlaylistState};
use crate::cache::ByteCache;
use crate::conn::{ConnShared, Deadlines, Guarded, SendFrom, Slots, Tracked};
use crate::package::{CacheBounds, FileEntry, Located, Packages, SEND_FROM_FILE_MIN};
use crate::path::{self, PathError, Resource};
use crate::range::{self, RangeRequest};
use crate::{EdgeConfig, EdgeError};

/// The response body type of the edge.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// `Cache-Control` of media and init segments (per session, so private).
pub const CACHE_MEDIA: &str = "private, max-age=86400";
/// `Cache-Control` of manifests.
pub const CACHE_MANIFEST: &str = "private, max-age=300";
/// `Cache-Control` of a live channel's playlists and dynamic MPD: they change every segment.
pub const CACHE_LIVE_MANIFEST: &str = "private, max-age=1";
/// `Cache-Control` of refusals and errors.
pub const CACHE_ERROR: &str = "no-store";
/// Chunk size when streaming files too large for the cache.
const STREAM_CHUNK: usize = 256 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// The connection limits of [`Edge::serve`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    max_connections_per_ip: usize,
    max_requests: usize,
    deadlines: Deadlines,
}

pub(crate) struct State {
    packages: Arc<Packages>,
    auth: Auth,
    keys: Keyring,
    books: ByteCache<str, Codebook>,
    cors: Option<HeaderValue>,
    limits: Limits,
    lookup_limit: u64,
    file_limit: u64,
    revocation_poll: Duration,
}

/// Bytes held by each of the edge's caches (keys, values and bookkeeping), and their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheUsage {
    /// Verified tokens.
    pub tokens: u64,
    /// Sessions looked up in the store (present and absent).
    pub sessions: u64,
    /// Title directories.
    pub titles: u64,
    /// Resolutions of viewer paths to origin files (present and absent).
    pub resolutions: u64,
    /// Codebooks of titles.
    pub codebooks: u64,
    /// File contents and metadata.
    pub files: u64,
    /// Bound of the token, session, title, resolution and codebook caches together.
    pub lookup_limit: u64,
    /// Bound of the file cache.
    pub file_limit: u64,
}

impl CacheUsage {
    /// Bytes of the token, session, title, resolution and codebook caches together.
    #[must_use]
    pub const fn lookup_total(&self) -> u64 {
        self.tokens
            .saturating_add(self.sessions)
            .saturating_add(self.titles)
            .saturating_add(self.resolutions)
            .saturating_add(self.codebooks)
    }
}

/// The edge: a TS 104 002 sequencer over a directory of packages. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    state: Arc<State>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("root", &self.state.packages.root())
            .finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

const VARY: HeaderValue = HeaderValue::from_static("Authorization");
const ACCEPT_BYTES: HeaderValue = HeaderValue::from_static("bytes");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const EXPOSE: HeaderValue =
    HeaderValue::from_static("Content-Length, Content-Range, Accept-Ranges, ETag");

impl Edge {
    /// Builds the edge from its configuration and the store holding the sessions.
    ///
    /// # Errors
    /// [`EdgeError::Root`] if the root is not a directory, [`EdgeError::Config`] for an invalid
    /// CORS origin or a zero timeout.
    pub fn new(config: EdgeConfig, store: leaktrace_store::Store) -> Result<Self, EdgeError> {
        for (name, t) in [
            ("header_timeout", config.header_timeout),
            ("idle_timeout", config.idle_timeout),
            ("write_timeout", config.write_timeout),
        ] {
            if t.is_zero() {
                return Err(EdgeError::Config(format!("{name} must be positive")));
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&config.revocation_poll)
        {
            return Err(EdgeError::Config(format!(
                "revocation_poll {:?} out of range (expected 100 ms to 60 s)",
                config.revocation_poll
            )));
        }
        // The lookup budget, shared out: tokens 3/8, sessions 1/4, resolutions 1/4, titles and
        // codebooks 1/16 each.
        let lookup = config.lookup_cache_bytes;
        let packages = Packages::open(
            &config.root,
            CacheBounds {
                files: config.file_cache_bytes,
                titles: lookup / 16,
                resolutions: lookup / 4,
            },
            config.max_cached_file,
        )?;
        let cors = match &config.cors_origin {
            None => None,
            Some(o) => Some(
                HeaderValue::from_str(o)
                    .map_err(|_| EdgeError::Config(format!("invalid CORS origin {o:?}")))?,
            ),
        };
        // One HMAC verifier per key version held (tokens issued before a rotation stay valid
        // until they expire), newest first; then the configured ES256 keys.
        let mut verifiers: Vec<(Option<u32>, leaktrace_core::token::Verifier)> = config
            .keys
            .keys()
            .rev()
            .map(|k| {
                (
                    Some(k.version().get()),
                    leaktrace_core::token::Verifier::hmac_sha256(k.token_mac_key().as_bytes()),
                )
            })
            .collect();
        verifiers.extend(config.extra_verifiers.iter().cloned().map(|v| (None, v)));
        let auth = Auth::new(
            verifiers,
            config.wmopid,
            config.keys.versions().map(KeyVersion::get).collect(),
            store,
            lookup / 8 * 3,
            lookup / 4,
        );
        Ok(Self {
            state: Arc::new(State {
                packages: Arc::new(packages),
                auth,
                keys: config.keys,
                books: ByteCache::new(lookup / 16),
                cors,
                limits: Limits {
                    max_connections: config.max_connections.max(1),
                    max_connections_per_ip: config.max_connections_per_ip.max(1),
                    max_requests: config.max_requests_per_connection.max(1),
                    deadlines: Deadlines {
                        header: config.header_timeout,
                        idle: config.idle_timeout,
                        write: config.write_timeout,
                    },
                },
                lookup_limit: lookup,
                file_limit: config.file_cache_bytes,
                revocation_poll: config.revocation_poll,
            }),
        })
    }

    /// The canonical root directory served.
    #[must_use]
    pub fn root(&self) -> PathBuf {
        self.state.packages.root().to_path_buf()
    }

    /// The title of a single-package root (`None` for a directory of packages).
    #[must_use]
    pub fn single_title(&self) -> Option<String> {
        self.state.packages.single_title().map(str::to_owned)
    }

    /// Bytes held by the edge's caches now.
    #[must_use]
    pub fn cache_usage(&self) -> CacheUsage {
        let (tokens, sessions) = self.state.auth.usage();
        let (titles, resolutions, files) = self.state.packages.usage();
        let codebooks = self.state.books.bytes();
        CacheUsage {
            tokens,
            sessions,
            titles,
            resolutions,
            codebooks,
            files,
            lookup_limit: self.state.lookup_limit,
            file_limit: self.state.file_limit,
        }
    }

    /// Reads the revoked sessions from the store now (the server does it every
    /// [`EdgeConfig::revocation_poll`](crate::EdgeConfig::revocation_poll)); returns how many
    /// sessions changed state.
    ///
    /// # Errors
    /// The store's; the edge keeps the list it had.
    pub async fn sync_revocations(&self) -> Result<usize, leaktrace_store::StoreError> {
        let auth = &self.state.auth;
        auth.revocations().sync(auth.store()).await
    }

    /// Sessions revoked, as of the last read.
    #[must_use]
    pub fn revoked_count(&self) -> usize {
        self.state.auth.revocations().revoked_count()
    }

    /// Answers one request (what the server does for each; usable without a socket).
    pub async fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        self.answer(req, None).await
    }

    /// [`Self::handle`] for a request of a connection, whose last token check is `memo`.
    async fn answer<B>(&self, req: &Request<B>, memo: Option<&AuthMemo>) -> Response<Body> {
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        let resp = respond(&self.state, req.method(), req.uri(), req.headers(), memo).await;
        if let Some(started) = started {
            tracing::debug!(
                method = %req.method(),
                path = %path::redact(req.uri().path()),
                status = resp.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                "request"
            );
        }
        resp
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish (up to 10 s) and returns.
    ///
    /// Connections beyond the global or per-address cap are answered 503 and closed at once;
    /// each connection has header, idle and write deadlines and a request budget (see the
    /// crate documentation, "Limits").
    ///
    /// # Errors
    /// [`EdgeError::Io`] if the listener fails persistently.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EdgeError> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let limits = self.state.limits;
        let slots = Slots::new(limits.max_connections, limits.max_connections_per_ip);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            // The connection's own deadlines (`Guarded`) bound the head, idle and write times;
            // hyper's header timer would add a timer allocation, insertion and removal to every
            // request.
            .header_read_timeout(None)
            // hyper's default bound on headers (100) is kept: a configured one costs two array
            // fills per request.
            .max_buf_size(path::MAX_PATH_LEN + 16 * 1024)
            .keep_alive(true);
        let mut shutdown = std::pin::pin!(shutdown);
        // The revoked sessions: read once before the first request, then followed.
        if let Err(e) = self.sync_revocations().await {
            tracing::error!(error = %e, "cannot read the revoked sessions; retrying");
        }
        let follower = {
            let edge = self.clone();
            let every = self.state.revocation_poll;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match edge.sync_revocations().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(changed = n, "revocations applied"),
                        Err(e) => tracing::warn!(error = %e, "cannot read the revoked sessions"),
                    }
                }
            })
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning or exiting.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let slot = match slots.take(peer.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    tracing::debug!(cap = ?full, "connection refused");
                    crate::conn::refuse(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = ConnShared::new();
            let io = Guarded::new(stream, shared.clone(), limits.deadlines);
            let edge = self.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let edge = edge.clone();
                let shared = shared.clone();
                async move {
                    let n = shared.begin_request();
                    let mut resp = if req.body().size_hint().lower() > 0 {
                        plain_error(StatusCode::PAYLOAD_TOO_LARGE, edge.state.cors.as_ref())
                    } else {
                        edge.answer(&req, Some(&shared.auth)).await
                    };
                    if let Some(SendFrom(entry)) = resp.extensions_mut().remove::<SendFrom>() {
                        shared.send_from(entry);
                    }
                    if n >= limits.max_requests {
                        // The request budget is spent: hyper closes after this response, and
                        // drops whatever else was pipelined.
                        resp.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, shared)))
                }
            });
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = watched.await;
                drop(slot);
            });
        }
        drop(listener);
        follower.abort();
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(DRAIN) => tracing::warn!("shutdown: gave up waiting for connections"),
        }
        Ok(())
    }

    /// The variant file this edge serves `session` at `position` of `title`, marked with key
    /// version `version` (for tests and tools); `None` = -1. `None` when the edge does not hold
    /// that key version.
    #[must_use]
    pub fn variant_for(
        &self,
        title: &TitleId,
        version: KeyVersion,
        claims: &leaktrace_core::token::WmToken,
        position: Option<u32>,
    ) -> Option<leaktrace_core::Variant> {
        let book = codebook(&self.state, title, version)?;
        Some(select_variant(&book, claims, position))
    }
}

/// The codebook of `title` marked with key `version` (cached); `None` when the edge does not
/// hold that version.
fn codebook(state: &State, title: &TitleId, version: KeyVersion) -> Option<Codebook> {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let key = |id: &mut String| {
        use std::fmt::Write as _;
        id.clear();
        id.push_str(title.as_str());
        id.push('\0');
        let _ = write!(id, "{}", version.get());
    };
    // The key is built in a per-thread buffer: a hit allocates nothing.
    let hit = KEY.with(|cell| {
        let mut id = cell.try_borrow_mut().ok()?;
        key(&mut id);
        state.books.get(id.as_str())
    });
    if let Some(b) = hit {
        return Some(b);
    }
    let book = state.keys.get(version).ok()?.codebook(title);
    let mut id = String::new();
    key(&mut id);
    state.books.insert(Arc::from(id.as_str()), book.clone(), 0);
    Some(book)
}

fn base_headers(h: &mut HeaderMap, cors: Option<&HeaderValue>) {
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    if let Some(origin) = cors {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
    }
}

/// A refusal or error: fixed body per status, no validators, nothing about the file.
fn plain_error(status: StatusCode, cors: Option<&HeaderValue>) -> Response<Body> {
    let text = match status {
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        StatusCode::PAYLOAD_TOO_LARGE => "request body not accepted\n",
        StatusCode::RANGE_NOT_SATISFIABLE => "range not satisfiable\n",
        _ => "internal error\n",
    };
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_ERROR));
    h.insert(header::VARY, VARY);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
    }
    base_headers(h, cors);
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

async fn respond(
    state: &Arc<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    memo: Option<&AuthMemo>,
) -> Response<Body> {
    let cors = state.cors.as_ref();
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS => return preflight(cors),
        _ => return plain_error(StatusCode::METHOD_NOT_ALLOWED, cors),
    };
    let target = match path::parse(uri.path()) {
        Ok(t) => t,
        Err(PathError::Malformed) => return plain_error(StatusCode::BAD_REQUEST, cors),
        Err(PathError::NotFound) => return plain_error(StatusCode::NOT_FOUND, cors),
    };
    let token = target
        .path_token
        .or_else(|| uri.query().and_then(path::query_token))
        .or_else(|| bearer(headers));
    let authorized = match state
        .auth
        .authorize(token, &target.title, now_unix(), memo)
        .await
    {
        Ok(a) => a,
        Err(deny) => {
            log_deny(&deny, uri);
            return plain_error(StatusCode::FORBIDDEN, cors);
        }
    };
    tracing::trace!(session = %authorized.session, path = %path::redact(uri.path()), "authorized");
    let Some(book) = codebook(state, &target.title, authorized.title_key_version) else {
        // `authorize` only passes sessions of titles whose key version is held.
        return plain_error(StatusCode::FORBIDDEN, cors);
    };
    let claims = authorized.claims.clone();
    let choose = move |p: Option<u32>| select_variant(&book, &claims, p);
    let located = match state
        .packages
        .locate(&target.title, &target.resource, &choose, false)
    {
        Some(l) => l,
        None => {
            let packages = state.packages.clone();
            let title = target.title.clone();
            let resource = target.resource.clone();
            match tokio::task::spawn_blocking(move || {
                packages.locate(&title, &resource, &choose, true)
            })
            .await
            {
                Ok(Some(l)) => l,
                _ => Located::Broken("file lookup task failed".into()),
            }
        }
    };
    let located = match (&located, &target.resource) {
        // An LL-HLS preload hint names the next part before it exists: hold the request.
        (Located::Missing, Resource::Rendition(_, f)) if is_part_name(f) => {
            let packages = state.packages.clone();
            let title = target.title.clone();
            let resource = target.resource.clone();
            let started = Instant::now();
            loop {
                tokio::time::sleep(BLOCKING_POLL).await;
                let (packages, title, resource) =
                    (packages.clone(), title.clone(), resource.clone());
                let book = codebook(state, &target.title, authorized.title_key_version);
                let claims = authorized.claims.clone();
                let found = tokio::task::spawn_blocking(move || {
                    let book = book?;
                    let choose = move |p: Option<u32>| select_variant(&book, &claims, p);
                    packages.locate(&title, &resource, &choose, true)
                })
                .await;
                match found {
                    Ok(Some(Located::Missing)) if started.elapsed() < PART_HOLD => {}
                    Ok(Some(l)) => break l,
                    _ => break Located::Missing,
                }
            }
        }
        _ => located,
    };
    let (entry, _watermarked) = match located {
        Located::File { entry, watermarked } => (entry, watermarked),
        Located::Missing => return plain_error(StatusCode::NOT_FOUND, cors),
        Located::Broken(why) => {
            tracing::error!(problem = %why, path = %path::redact(uri.path()), "package problem");
            return plain_error(StatusCode::INTERNAL_SERVER_ERROR, cors);
        }
    };
    let file = match &target.resource {
        Resource::Root(f) | Resource::Rendition(_, f) => f.as_str(),
    };
    let blocking = match uri.query().map(BlockingRequest::parse) {
        Some(Err(_)) => return plain_error(StatusCode::BAD_REQUEST, cors),
        Some(Ok(b)) => b,
        None => None,
    };
    let entry = match blocking {
        Some(request) if entry.live && file.ends_with(".m3u8") => {
            match hold(state, entry, request).await {
                Ok(e) => e,
                Err(status) => return plain_error(status, cors),
            }
        }
        _ => entry,
    };
    serve_file(&entry, file, head, headers, cors).await
}

/// How often a held playlist or part request looks at the disk again.
const BLOCKING_POLL: Duration = Duration::from_millis(20);
/// How long a request for a part not yet published is held (a preload hint's part comes
/// within a part duration; parts are at most half a segment, segments at most 6 s).
const PART_HOLD: Duration = Duration::from_secs(3);

/// Whether `file` names a low-latency part (`seg_00042.p3.m4s`).
fn is_part_name(file: &str) -> bool {
    file.contains(".p") && leaktrace_core::segment_file_position(file).is_some()
}

/// Holds a blocking playlist reload ([`crate::blocking`]) until the live playlist holds what it
/// asks for: the entry to serve, 400 for a request too far ahead, 503 after three target
/// durations.
async fn hold(
    state: &Arc<State>,
    mut entry: Arc<FileEntry>,
    request: BlockingRequest,
) -> Result<Arc<FileEntry>, StatusCode> {
    let started = Instant::now();
    loop {
        let Some(held) = entry.bytes.as_deref().and_then(PlaylistState::read) else {
            return Ok(entry);
        };
        match request.check(&held) {
            Availability::Ready => return Ok(entry),
            Availability::TooFar => return Err(StatusCode::BAD_REQUEST),
            Availability::Wait => {}
        }
        if started.elapsed() > Duration::from_secs(3 * held.target_duration.max(1)) {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        tokio::time::sleep(BLOCKING_POLL).await;
        let packages = state.packages.clone();
        let path = entry.path.clone();
        if let Ok(Some(e)) = tokio::task::spawn_blocking(move || packages.file(&path)).await {
            entry = e;
        }
    }
}

fn log_deny(deny: &Deny, uri: &Uri) {
    tracing::info!(reason = ?deny, path = %path::redact(uri.path()), "refused");
}

fn preflight(cors: Option<&HeaderValue>) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    if cors.is_some() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Range, If-None-Match, If-Range"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    base_headers(h, cors);
    r
}

async fn serve_file(
    entry: &Arc<FileEntry>,
    file: &str,
    head: bool,
    req: &HeaderMap,
    cors: Option<&HeaderValue>,
) -> Response<Body> {
    let content_type = path::content_type(file).unwrap_or("application/octet-stream");
    let cache = if entry.live {
        CACHE_LIVE_MANIFEST
    } else if path::is_manifest(file) {
        CACHE_MANIFEST
    } else {
        CACHE_MEDIA
    };
    // Room for every header of a response (base and CORS included), so nothing grows.
    let mut h = HeaderMap::with_capacity(16);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, VARY);
    h.insert(header::ACCEPT_RANGES, ACCEPT_BYTES);
    h.insert(header::ETAG, entry.etag_value.clone());
    let if_none_match = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|l| etag_matches(l, &entry.etag)) {
        base_headers(&mut h, cors);
        return with_headers(StatusCode::NOT_MODIFIED, h, empty());
    }
    let range_header = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok = req
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == entry.etag);
    let len = entry.len;
    let request = if if_range_ok {
        range::parse(range_header, len)
    } else {
        RangeRequest::Full
    };
    let (status, start, end) = match request {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        RangeRequest::Unsatisfiable => {
            let mut r = plain_error(StatusCode::RANGE_NOT_SATISFIABLE, cors);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        match HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            Ok(v) => h.insert(header::CONTENT_RANGE, v),
            Err(_) => return plain_error(StatusCode::INTERNAL_SERVER_ERROR, cors),
        };
    } else {
        h.insert(header::CONTENT_LENGTH, entry.len_value.clone());
    }
    // A body of at least this size from a cached file that is held open may be sent from
    // the file by the connection.
    let send_from = !head && entry.origin().is_some() && end - start >= SEND_FROM_FILE_MIN;
    let body = if head {
        empty()
    } else {
        match &entry.bytes {
            Some(b) => {
                let (s, e) = (
                    usize::try_from(start).unwrap_or(usize::MAX),
                    usize::try_from(end).unwrap_or(usize::MAX),
                );
                match b.get(s..e) {
                    Some(_) => full(b.slice(s..e)),
                    None => return plain_error(StatusCode::INTERNAL_SERVER_ERROR, cors),
                }
            }
            None => stream_file(entry.path.clone(), start, end, entry.patches.clone()),
        }
    };
    base_headers(&mut h, cors);
    let mut r = with_headers(status, h, body);
    if send_from {
        r.extensions_mut().insert(SendFrom(entry.clone()));
    }
    r
}

/// A response of `status` with headers `h` and `body`.
fn with_headers(status: StatusCode, h: HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    r
}

/// Streams bytes `start..end` of a file too large for the cache.
fn stream_file(path: PathBuf, start: u64, end: u64, patches: Vec<crate::egress::Patch>) -> Body {
    let state = (None::<tokio::fs::File>, path, start, end);
    let patches: Arc<[crate::egress::Patch]> = patches.into();
    let stream = futures_util::stream::unfold(state, move |(file, path, pos, end)| {
        let patches = patches.clone();
        async move {
            if pos >= end {
                return None;
            }
            let mut file = match file {
                Some(f) => f,
                None => {
                    let opened = async {
                        let mut f = tokio::fs::File::open(&path).await?;
                        f.seek(SeekFrom::Start(pos)).await?;
                        Ok::<_, std::io::Error>(f)
                    }
                    .await;
                    match opened {
                        Ok(f) => f,
                        Err(e) => return Some((Err(e), (None, path, end, end))),
                    }
                }
            };
            let want = usize::try_from(end - pos)
                .unwrap_or(STREAM_CHUNK)
                .min(STREAM_CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            match (&mut file).take(want as u64).read_buf(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while being served",
                    )),
                    (None, path, end, end),
                )),
                Ok(n) => Some((
                    Ok(Frame::data({
                        crate::egress::apply(&mut buf, pos, &patches);
                        buf.freeze()
                    })),
                    (Some(file), path, pos + n as u64, end),
                )),
                Err(e) => Some((Err(e), (None, path, end, end))),
            }
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}
