//! The fetcher: one guarded HTTP client, robots.txt, per-host pacing,
//! redirects followed hop by hop, bodies read under byte and time caps.
//!
//! - **SSRF**: the client resolves names only through [`GuardedResolver`];
//!   every hop's URL is checked with [`check_literal`] (IP literals never reach
//!   the resolver) before it is requested. reqwest's own redirect following is
//!   off (`Policy::none`): the fetcher follows `Location` itself so that each hop
//!   gets the SSRF check, the robots.txt check, pacing, the hop limit and loop
//!   detection, and the whole chain is recorded for the finding.
//! - **robots.txt** (RFC 9309, parsed by `texting_robots`, groups matched on the
//!   User-Agent's product token): fetched once per origin and kept
//!   `robots_cache_secs` (at most 5 min when unreachable); redirects followed (up
//!   to `max_redirects`); 2xx → rules (first 500 KiB), 4xx except 429 →
//!   everything allowed, 429, 5xx, too many redirects or unreachable →
//!   everything disallowed. `Crawl-delay` raises the host's pacing (up to
//!   `max_crawl_delay_ms`).
//! - **Pacing**: one request per host per `min_delay_ms` (or the Crawl-delay);
//!   429 and 503 hold the host for `Retry-After` (seconds or an HTTP date, at
//!   most [`MAX_RETRY_AFTER`]), other failures double the host's delay (never
//!   faster on errors) until a success resets it. A request waits in-process for
//!   its host's slot only briefly: at most [`MAX_HOLD_WAIT`] of a `Retry-After`
//!   hold, and at most `max_crawl_delay_ms` (or [`MAX_HOLD_WAIT`] if larger) in
//!   all; a longer wait fails with [`FetchError::HostBusy`] without reserving a
//!   slot, and the worker gives the job back to the frontier, due when the host is.
//! - **Caps**: bodies are read as a stream of decompressed bytes (reqwest
//!   decodes gzip), so `max_page_bytes` bounds what a gzip bomb expands to; a
//!   deadline bounds endless responses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::Config;
use crate::net::{GuardedResolver, Lookup, check_literal};

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The SSRF guard refused the address.
    #[error("refused by the SSRF guard: {0}")]
    Refused(String),
    /// robots.txt forbids the URL.
    #[error("disallowed by robots.txt: {0}")]
    Robots(String),
    /// More hops than `limits.max_redirects`.
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    /// A hop points back to an earlier one.
    #[error("redirect loop at {0}")]
    RedirectLoop(String),
    /// A redirect without a usable `Location`, or to a non-HTTP URL.
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    /// The server asked to slow down (429/503); retry after the delay.
    #[error("HTTP {status}, retry after {retry_after:?}")]
    Throttled {
        /// The status.
        status: u16,
        /// The server's Retry-After, if any.
        retry_after: Option<Duration>,
    },
    /// The host's next request slot (a `Retry-After` hold or its pacing) is further
    /// away than a request waits in-process; nothing was sent. Try again after the delay.
    #[error("host busy for {0:?} (Retry-After or pacing): not waited for in-process")]
    HostBusy(Duration),
    /// Another error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// Request or body deadline passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connection, TLS or protocol error.
    #[error("transport error: {0}")]
    Transport(String),
}

impl FetchError {
    /// Whether retrying later may help (network trouble, 5xx, throttling).
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Throttled { .. }
            | FetchError::HostBusy(_)
            | FetchError::Timeout(_)
            | FetchError::Transport(_) => true,
            FetchError::Status(s) => *s >= 500,
            _ => false,
        }
    }
}

fn transport(e: &reqwest::Error) -> FetchError {
    // The guarded resolver's refusal surfaces as a connect error; keep its text.
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if msg.contains("address policy refused") {
        FetchError::Refused(msg)
    } else {
        FetchError::Transport(msg)
    }
}

/// What is known about a response once its headers arrived.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The URL first requested.
    pub url: Url,
    /// The final URL (after redirects).
    pub final_url: Url,
    /// Every URL requested, first to last.
    pub chain: Vec<String>,
    /// The HTTP status of each request in `chain` (redirects, then the final 2xx).
    pub statuses: Vec<u16>,
    /// The server address of the last hop.
    pub remote_ip: Option<IpAddr>,
    /// Content-Type, if any.
    pub content_type: Option<String>,
}

/// A 2xx response whose headers arrived (body not read yet).
pub struct Opened {
    /// About the response.
    pub meta: Meta,
    /// The response.
    pub response: reqwest::Response,
}

/// A body read under caps.
#[derive(Debug)]
pub struct Body {
    /// The bytes (at most the cap).
    pub bytes: Vec<u8>,
    /// Whether the cap cut it short.
    pub truncated: bool,
}

enum RobotsRule {
    /// The host itself is refused by the SSRF guard.
    Refused(String),
    AllowAll,
    DisallowAll,
    Rules(Box<texting_robots::Robot>),
}

/// A host's robots.txt, loaded once by the first request that needs it, with when.
type RobotsCell = Arc<OnceCell<(Instant, Arc<RobotsRule>)>>;

/// The longest `Retry-After` honoured: a server asking for more is asked again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The longest a request waits in-process for a `Retry-After` hold of its host to end; a
/// longer hold fails the request with [`FetchError::HostBusy`] (the job is rescheduled).
pub const MAX_HOLD_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct HostPace {
    next_at: Option<Instant>,
    /// Until when the host asked not to be contacted (`Retry-After` of a 429/503).
    hold_until: Option<Instant>,
    /// Extra delay after failures (doubles, reset on success).
    penalty: Duration,
}

/// The crawler's HTTP side. Cheap to share (`Arc`).
pub struct Fetcher {
    client: reqwest::Client,
    cfg: Arc<Config>,
    robots: Mutex<HashMap<String, RobotsCell>>,
    pace: Mutex<HashMap<String, HostPace>>,
}

fn host_key(u: &Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

/// The robots.txt product token of a User-Agent (RFC 9309 2.2.1: the leading run of
/// `a-zA-Z_-`): `leaktrace-crawler` for `leaktrace-crawler/0.1 (+https://…)`. Groups are
/// matched against it case-insensitively; the full header would never match a group.
pub fn product_token(user_agent: &str) -> &str {
    user_agent
        .split(|c: char| !(c.is_ascii_alphabetic() || c == '_' || c == '-'))
        .next()
        .unwrap_or("")
}

/// Parses `Retry-After` (delta seconds, at most [`MAX_RETRY_AFTER`]; an HTTP date is
/// treated as 60 s).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    match v.parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s).min(MAX_RETRY_AFTER)),
        Err(_) => Some(Duration::from_secs(60)),
    }
}

impl Fetcher {
    /// A fetcher using `lookup` for names (the system resolver in production;
    /// a static table in tests).
    pub fn new(cfg: Arc<Config>, lookup: Lookup) -> Result<Fetcher, crate::CrawlError> {
        let resolver = GuardedResolver::new(lookup, cfg.fetch.allow_loopback);
        let client = reqwest::Client::builder()
            .user_agent(cfg.politeness.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(16)
            .no_proxy()
            .build()
            .map_err(crate::CrawlError::HttpClient)?;
        Ok(Fetcher {
            client,
            cfg,
            robots: Mutex::new(HashMap::new()),
            pace: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Waits for this host's next slot and reserves the one after. Fails with
    /// [`FetchError::HostBusy`], reserving nothing, if that slot is further away than a
    /// request waits in-process (see the module documentation).
    async fn pace(&self, u: &Url, crawl_delay: Option<Duration>) -> Result<(), FetchError> {
        let base = Duration::from_millis(self.cfg.politeness.min_delay_ms);
        let cap = Duration::from_millis(self.cfg.politeness.max_crawl_delay_ms);
        let delay = crawl_delay.map_or(base, |d| d.min(cap).max(base));
        let max_wait = cap.max(MAX_HOLD_WAIT);
        let wait = {
            let mut map = self.pace.lock().unwrap_or_else(|e| e.into_inner());
            let p = map.entry(host_key(u)).or_default();
            let now = Instant::now();
            let held = p.hold_until.filter(|t| *t > now);
            if let Some(t) = held.filter(|t| *t - now > MAX_HOLD_WAIT) {
                return Err(FetchError::HostBusy(t - now));
            }
            let at = p.next_at.into_iter().chain(held).fold(now, Instant::max);
            if at - now > max_wait {
                return Err(FetchError::HostBusy(at - now));
            }
            let step = delay + p.penalty;
            if step.is_zero() && p.next_at.is_none() && held.is_none() {
                return Ok(());
            }
            p.next_at = Some(at + step);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    fn penalize(&self, u: &Url, retry_after: Option<Duration>) {
        let mut map = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.entry(host_key(u)).or_default();
        let base = Duration::from_millis(self.cfg.politeness.min_delay_ms.max(250));
        p.penalty = (p.penalty * 2).max(base).min(Duration::from_secs(300));
        if let Some(ra) = retry_after {
            let at = Instant::now() + ra.min(MAX_RETRY_AFTER);
            p.hold_until = Some(p.hold_until.map_or(at, |t| t.max(at)));
        }
    }

    fn relax(&self, u: &Url) {
        let mut map = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get_mut(&host_key(u)) {
            p.penalty = Duration::ZERO;
        }
    }

    async fn robots_for(&self, u: &Url) -> Result<Arc<RobotsRule>, FetchError> {
        let keep = Duration::from_secs(self.cfg.politeness.robots_cache_secs);
        let cell = {
            let mut map = self.robots.lock().unwrap_or_else(|e| e.into_inner());
            let cell = map.entry(host_key(u)).or_default();
            if let Some((at, rule)) = cell.get() {
                let ttl = match **rule {
                    RobotsRule::AllowAll | RobotsRule::Rules(_) => keep,
                    // Unreachable: retried sooner, the host may be back.
                    RobotsRule::DisallowAll | RobotsRule::Refused(_) => {
                        keep.min(Duration::from_secs(300))
                    }
                };
                if at.elapsed() >= ttl {
                    *cell = RobotsCell::default();
                }
            }
            cell.clone()
        };
        let loaded = cell
            .get_or_try_init(|| async { Ok((Instant::now(), self.load_robots(u).await?)) })
            .await?;
        Ok(loaded.1.clone())
    }

    /// Fetches and parses a host's robots.txt. Fails only with [`FetchError::HostBusy`]
    /// (nothing was asked, so nothing is known or kept).
    async fn load_robots(&self, u: &Url) -> Result<Arc<RobotsRule>, FetchError> {
        let Ok(robots_url) = u.join("/robots.txt") else {
            return Ok(Arc::new(RobotsRule::AllowAll));
        };
        let rule = match Box::pin(self.open_hops(&robots_url, false)).await {
            Ok(o) => match self.read_capped(o.response, 500 * 1024).await {
                Ok(b) => {
                    let token = product_token(&self.cfg.politeness.user_agent);
                    match texting_robots::Robot::new(token, &b.bytes) {
                        Ok(r) => RobotsRule::Rules(Box::new(r)),
                        Err(_) => RobotsRule::AllowAll,
                    }
                }
                Err(_) => RobotsRule::DisallowAll,
            },
            Err(FetchError::Status(s)) if (400..500).contains(&s) && s != 429 => {
                RobotsRule::AllowAll
            }
            Err(FetchError::Refused(m)) => RobotsRule::Refused(m),
            Err(e @ FetchError::HostBusy(_)) => return Err(e),
            Err(e) => {
                tracing::info!(url = %robots_url, error = %e, "robots.txt unreachable: host disallowed");
                RobotsRule::DisallowAll
            }
        };
        Ok(Arc::new(rule))
    }

    /// Whether robots.txt allows `u` (always true when `respect_robots` is off),
    /// and the host's Crawl-delay.
    /// Fails if the host is refused by the SSRF guard, or with [`FetchError::HostBusy`] if
    /// robots.txt is still to be fetched and the host asked to wait.
    pub async fn robots_allows(&self, u: &Url) -> Result<(bool, Option<Duration>), FetchError> {
        if !self.cfg.politeness.respect_robots {
            return Ok((true, None));
        }
        Ok(match &*self.robots_for(u).await? {
            RobotsRule::Refused(m) => return Err(FetchError::Refused(m.clone())),
            RobotsRule::AllowAll => (true, None),
            RobotsRule::DisallowAll => (false, None),
            RobotsRule::Rules(r) => (
                r.allowed(u.as_str()),
                r.delay
                    .filter(|d| d.is_finite() && *d > 0.0)
                    .map(|d| Duration::from_secs_f32(d.min(86_400.0))),
            ),
        })
    }

    /// GET `url`, following redirects hop by hop; returns once 2xx headers arrived.
    pub async fn open(&self, url: &Url) -> Result<Opened, FetchError> {
        self.open_hops(url, self.cfg.politeness.respect_robots)
            .await
    }

    async fn open_hops(&self, url: &Url, check_robots: bool) -> Result<Opened, FetchError> {
        let max = self.cfg.limits.max_redirects;
        let timeout = Duration::from_secs(self.cfg.limits.request_timeout_secs);
        let mut chain: Vec<String> = Vec::new();
        let mut statuses: Vec<u16> = Vec::new();
        let mut cur = url.clone();
        loop {
            if !matches!(cur.scheme(), "http" | "https") {
                return Err(FetchError::BadRedirect(format!("{cur}: not http(s)")));
            }
            check_literal(&cur, self.cfg.fetch.allow_loopback).map_err(FetchError::Refused)?;
            if chain.iter().any(|c| c == cur.as_str()) {
                return Err(FetchError::RedirectLoop(cur.to_string()));
            }
            chain.push(cur.to_string());
            let crawl_delay = if check_robots {
                let (ok, delay) = self.robots_allows(&cur).await?;
                if !ok {
                    return Err(FetchError::Robots(cur.to_string()));
                }
                delay
            } else {
                None
            };
            self.pace(&cur, crawl_delay).await?;
            let resp = tokio::time::timeout(timeout, self.client.get(cur.clone()).send())
                .await
                .map_err(|_| FetchError::Timeout(timeout))?
                .map_err(|e| {
                    let err = transport(&e);
                    if !matches!(err, FetchError::Refused(_)) {
                        self.penalize(&cur, None);
                    }
                    err
                })?;
            let status = resp.status();
            statuses.push(status.as_u16());
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::BadRedirect(format!("{cur}: no Location")))?;
                let next = cur
                    .join(loc)
                    .map_err(|e| FetchError::BadRedirect(format!("{cur}: Location {e}")))?;
                if chain.len() > max as usize {
                    return Err(FetchError::TooManyRedirects(max));
                }
                tracing::debug!(from = %cur, to = %next, "redirect");
                cur = next;
                continue;
            }
            if status.as_u16() == 429 || status.as_u16() == 503 {
                let ra = retry_after(resp.headers());
                self.penalize(&cur, ra.or(Some(Duration::from_secs(30))));
                return Err(FetchError::Throttled {
                    status: status.as_u16(),
                    retry_after: ra,
                });
            }
            if !status.is_success() {
                if status.is_server_error() {
                    self.penalize(&cur, None);
                }
                return Err(FetchError::Status(status.as_u16()));
            }
            self.relax(&cur);
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok(Opened {
                meta: Meta {
                    url: url.clone(),
                    final_url: resp.url().clone(),
                    chain,
                    statuses,
                    remote_ip: resp.remote_addr().map(|a| a.ip()),
                    content_type,
                },
                response: resp,
            });
        }
    }

    /// Reads a body, keeping at most `cap` bytes (after decompression) within
    /// the request timeout. A body over the cap is cut (`truncated`), not an error;
    /// a body still arriving at the deadline is an error.
    pub async fn read_capped(&self, resp: reqwest::Response, cap: u64) -> Result<Body, FetchError> {
        let mut resp = resp;
        let deadline = self.body_deadline();
        self.read_rest(&mut resp, Vec::new(), false, cap, deadline)
            .await
    }

    /// When a body whose reading starts now must have arrived: `request_timeout_secs` from now.
    pub(crate) fn body_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(self.cfg.limits.request_timeout_secs)
    }

    async fn next_chunk(
        &self,
        resp: &mut reqwest::Response,
        deadline: tokio::time::Instant,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        let timeout = Duration::from_secs(self.cfg.limits.request_timeout_secs);
        tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
            .map_err(|e| transport(&e))
    }

    /// Reads the start of a body (to tell what it is): whole chunks until `head` holds at
    /// least `want` bytes or the body ended; returns whether it ended. Nothing read is
    /// dropped, so the response can be read on (or captured) from where this stopped.
    pub(crate) async fn read_head(
        &self,
        resp: &mut reqwest::Response,
        head: &mut Vec<u8>,
        want: usize,
        deadline: tokio::time::Instant,
    ) -> Result<bool, FetchError> {
        while head.len() < want {
            match self.next_chunk(resp, deadline).await? {
                None => return Ok(true),
                Some(chunk) => head.extend_from_slice(&chunk),
            }
        }
        Ok(false)
    }

    /// Reads the rest of a body whose first bytes are `head` (`ended`: nothing more comes),
    /// keeping at most `cap` bytes in all, by `deadline`.
    pub(crate) async fn read_rest(
        &self,
        resp: &mut reqwest::Response,
        head: Vec<u8>,
        ended: bool,
        cap: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Body, FetchError> {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let mut out = head;
        if out.len() > cap {
            out.truncate(cap);
            return Ok(Body {
                bytes: out,
                truncated: true,
            });
        }
        if ended {
            return Ok(Body {
                bytes: out,
                truncated: false,
            });
        }
        loop {
            match self.next_chunk(resp, deadline).await? {
                None => {
                    return Ok(Body {
                        bytes: out,
                        truncated: false,
                    });
                }
                Some(chunk) => {
                    let room = cap - out.len();
                    if chunk.len() > room {
                        out.extend_from_slice(&chunk[..room]);
                        return Ok(Body {
                            bytes: out,
                            truncated: true,
                        });
                    }
                    out.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// GET and read a page under `max_page_bytes`.
    pub async fn get_page(&self, url: &Url) -> Result<(Meta, Body), FetchError> {
        let o = self.open(url).await?;
        let body = self
            .read_capped(o.response, self.cfg.limits.max_page_bytes)
            .await?;
        Ok((o.meta, body))
    }
}
