//! A site on loopback (hyper, HTTP/1.1 on 127.0.0.1) answering from a handler, for the
//! crawler's tests and bench: it counts requests per path and logs when each arrived.
//!
//! Needs a tokio runtime (it spawns its accept loop). Feature `site`.
//!
//! ```
//! use std::sync::Arc;
//! use leaktrace_testkit::site::{Body, html, serve, status};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let site = serve(Arc::new(|pq: &str| -> hyper::Response<Body> {
//!     if pq == "/" { html("<a href=/a>a</a>") } else { status(404) }
//! }))
//! .await;
//! let port = site.addr.port();
//! let (code, _) = tokio::task::spawn_blocking(move || leaktrace_testkit::http_get(port, "/a"))
//!     .await
//!     .unwrap();
//! assert_eq!((code, site.hits("/a"), site.hits("/")), (404, 1, 0));
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// The whole body `b`.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A body of `chunks` copies of `chunk` (None: endless), produced lazily.
pub fn stream(chunk: Bytes, chunks: Option<u64>) -> Body {
    let s = futures_util::stream::unfold(0u64, move |i| {
        let chunk = chunk.clone();
        async move {
            if chunks.is_some_and(|n| i >= n) {
                return None;
            }
            Some((Ok::<_, Infallible>(Frame::data(chunk)), i + 1))
        }
    });
    BodyExt::boxed(StreamBody::new(s))
}

/// What the site answers for a path (with its query).
pub type Handler = dyn Fn(&str) -> Response<Body> + Send + Sync;

/// A running site; counts requests per path (with query) and logs when each arrived.
pub struct Site {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Requests per path (with query).
    pub hits: Arc<Mutex<HashMap<String, u32>>>,
    /// Every request's path (with query) and arrival time, in order.
    pub log: Arc<Mutex<Vec<(String, Instant)>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Site {
    /// Requests for `path` (with query) so far.
    pub fn hits(&self, path: &str) -> u32 {
        lock(&self.hits).get(path).copied().unwrap_or(0)
    }

    /// Requests for paths starting with `prefix` so far.
    pub fn hits_prefix(&self, prefix: &str) -> u32 {
        lock(&self.hits)
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Arrival times of the requests whose path (with query) satisfies `f`, in order.
    pub fn times(&self, f: impl Fn(&str) -> bool) -> Vec<Instant> {
        lock(&self.log)
            .iter()
            .filter(|(p, _)| f(p))
            .map(|(_, t)| *t)
            .collect()
    }

    /// `http://{host}:{port}`: the site under any name (an injected resolver maps it here).
    pub fn base(&self, host: &str) -> String {
        format!("http://{host}:{}", self.addr.port())
    }
}

/// Starts a site on 127.0.0.1 (a free port) answering with `handler`; it runs until the
/// runtime stops.
///
/// # Panics
/// If it cannot listen.
pub async fn serve(handler: Arc<Handler>) -> Site {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let log: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let h2 = hits.clone();
    let l2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let hits = h2.clone();
            let log = l2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    lock(&log).push((pq.clone(), Instant::now()));
                    *lock(&hits).entry(pq.clone()).or_default() += 1;
                    let r = handler(&pq);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Site { addr, hits, log }
}

/// A 200 answer with `body` as UTF-8 HTML.
pub fn html(body: &str) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(full(body.to_owned()))
        .unwrap_or_else(|e| panic!("HTML answer: {e}"))
}

/// An empty answer with status `code`.
///
/// # Panics
/// If `code` is not a valid status (100–999).
pub fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(full(""))
        .unwrap_or_else(|e| panic!("status {code}: {e}"))
}

/// A 302 answer to `to`.
///
/// # Panics
/// If `to` is not a valid header value.
pub fn redirect(to: &str) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", to)
        .body(full(""))
        .unwrap_or_else(|e| panic!("redirect to {to:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_counts_and_logs() {
        let site = serve(Arc::new(|pq: &str| -> Response<Body> {
            match pq {
                "/" => html("<a href=/a>a</a>"),
                "/r" => redirect("/"),
                "/s" => Response::new(stream(Bytes::from_static(b"ab"), Some(3))),
                _ => status(404),
            }
        }))
        .await;
        let port = site.addr.port();
        let got = tokio::task::spawn_blocking(move || {
            ["/", "/r", "/s", "/x?y=1", "/x?y=1"].map(|p| crate::http_get(port, p))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let codes: Vec<u16> = got.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [200, 302, 200, 404, 404]);
        assert_eq!(got[0].1, b"<a href=/a>a</a>");
        assert_eq!(got[2].1, b"ababab");
        assert_eq!(site.hits("/x?y=1"), 2);
        assert_eq!(site.hits_prefix("/"), 5);
        assert_eq!(site.times(|p| p.starts_with("/x")).len(), 2);
        assert_eq!(
            site.base("pirate.test"),
            format!("http://pirate.test:{port}")
        );
    }
}
