//! A loopback HTTP site for the crawler tests (hyper on 127.0.0.1).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use leaktrace_crawler::net::Lookup;

pub type Body = BoxBody<Bytes, Infallible>;

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

pub type Handler = dyn Fn(&str) -> Response<Body> + Send + Sync;

/// A running site; counts requests per path (with query) and logs when each arrived.
pub struct Site {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<HashMap<String, u32>>>,
    pub log: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Site {
    pub fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
    pub fn hits_prefix(&self, prefix: &str) -> u32 {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum()
    }
    /// Arrival times of the requests whose path (with query) satisfies `f`, in order.
    pub fn times(&self, f: impl Fn(&str) -> bool) -> Vec<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| f(p))
            .map(|(_, t)| *t)
            .collect()
    }
    pub fn base(&self, host: &str) -> String {
        format!("http://{host}:{}", self.addr.port())
    }
}

pub async fn serve(handler: Arc<Handler>) -> Site {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
                    log.lock().unwrap().push((pq.clone(), Instant::now()));
                    *hits.lock().unwrap().entry(pq.clone()).or_default() += 1;
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

pub fn html(body: &str) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(full(body.to_owned()))
        .unwrap()
}

pub fn status(code: u16) -> Response<Body> {
    Response::builder().status(code).body(full("")).unwrap()
}

pub fn redirect(to: &str) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", to)
        .body(full(""))
        .unwrap()
}

/// Names → addresses for the injected resolver.
pub fn lookup(entries: &[(&str, &str)]) -> Lookup {
    let mut m: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (n, ip) in entries {
        m.entry((*n).to_owned())
            .or_default()
            .push(ip.parse().unwrap());
    }
    Lookup::Static(Arc::new(m))
}
