//! The admin API: revoke, restore and list sessions over HTTP, for playback back-ends.
//!
//! A separate listener (loopback by default, `leaktrace edge --admin-listen`), authenticated
//! by a bearer token from the configuration (compared in constant time). JSON in and out:
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/revocations` | 200 `{"revoked": [{"session_id", "seq", "at"}]}` |
//! | `POST /v1/revocations` `{"session_id"}` or `{"account"}`, optional `"reason"`, `"actor"` | 201 `{"events": [...]}` |
//! | `POST /v1/restorations` (same body) | 200 `{"events": [...]}` |
//! | `GET /v1/sessions/{id}/revocations` | 200 `{"events": [...]}` (the audit trail) |
//!
//! Errors are `{"error": "..."}`: 401 without the right token, 400 for a malformed body, 404 for
//! an unknown session, account or path, 405 for another method, 409 when nothing would change
//! (already revoked, not revoked), 413 for a body over [`MAX_BODY`]. The actor recorded is
//! `api`, or `api:<actor>` when the body names one.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use leaktrace_store::{RevocationEvent, RevocationTarget, Store, StoreError};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::EdgeError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// Shortest admin token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 32;

/// The admin API over a store.
#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    /// BLAKE3 of the token (its `==` runs in constant time).
    token: blake3::Hash,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").finish_non_exhaustive()
    }
}

/// The body of a revocation or restoration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    session_id: Option<String>,
    account: Option<String>,
    #[serde(default)]
    reason: String,
    actor: Option<String>,
}

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, v: &serde_json::Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

fn store_error(e: &StoreError) -> Answer {
    match e {
        StoreError::NotFound { .. } => error(StatusCode::NOT_FOUND, e),
        StoreError::Unchanged { .. } => error(StatusCode::CONFLICT, e),
        StoreError::InvalidInput { .. } => error(StatusCode::BAD_REQUEST, e),
        _ => {
            tracing::error!(error = %e, "admin API: store failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store failed; nothing changed",
            )
        }
    }
}

impl AdminApi {
    /// The API over `store`, answering requests that carry `Authorization: Bearer <token>`.
    ///
    /// # Errors
    /// [`EdgeError::Config`] for a token shorter than [`MIN_TOKEN_LEN`] characters or with
    /// whitespace or control characters.
    pub fn new(store: Store, token: &str) -> Result<Self, EdgeError> {
        if token.chars().count() < MIN_TOKEN_LEN
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(EdgeError::Config(format!(
                "admin token must be at least {MIN_TOKEN_LEN} characters without spaces"
            )));
        }
        Ok(Self {
            store,
            token: blake3::hash(token.as_bytes()),
        })
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| blake3::hash(t.as_bytes()) == self.token)
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Answer
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !self.authorized(&req) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (Method::GET, ["v1", "revocations"]) => self.list().await,
            (Method::POST, ["v1", "revocations"]) => self.change(req, false).await,
            (Method::POST, ["v1", "restorations"]) => self.change(req, true).await,
            (Method::GET, ["v1", "sessions", id, "revocations"]) => self.history(id).await,
            (
                _,
                ["v1", "revocations"]
                | ["v1", "restorations"]
                | ["v1", "sessions", _, "revocations"],
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => error(StatusCode::NOT_FOUND, "no such path"),
        }
    }

    async fn list(&self) -> Answer {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            match self.store.revoked_sessions(after.as_deref(), 10_000).await {
                Ok(page) => {
                    let full = page.len() == 10_000;
                    after = page.last().map(|r| r.session_id.clone());
                    all.extend(page.into_iter().map(|r| {
                        serde_json::json!({"session_id": r.session_id, "seq": r.seq, "at": r.at})
                    }));
                    if !full {
                        break;
                    }
                }
                Err(e) => return store_error(&e),
            }
        }
        json(StatusCode::OK, &serde_json::json!({ "revoked": all }))
    }

    async fn history(&self, id: &str) -> Answer {
        match self.store.get_session(id).await {
            Ok(Some(_)) => {}
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("session `{id}` not found")),
            Err(e) => return store_error(&e),
        }
        match self.store.revocation_history(id).await {
            Ok(events) => json(
                StatusCode::OK,
                &serde_json::json!({ "events": events.iter().map(RevocationEvent::to_json).collect::<Vec<_>>() }),
            ),
            Err(e) => store_error(&e),
        }
    }

    async fn change<B>(&self, req: Request<B>, restore: bool) -> Answer
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over {MAX_BODY} bytes"),
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                );
            }
        };
        let change: Change = match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
        };
        let target = match (&change.session_id, &change.account) {
            (Some(s), None) => RevocationTarget::Session(s),
            (None, Some(a)) => RevocationTarget::Account(a),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "name exactly one of session_id and account",
                );
            }
        };
        let actor = match &change.actor {
            Some(a) => format!("api:{a}"),
            None => "api".to_owned(),
        };
        let r = if restore {
            self.store.restore(target, &actor, &change.reason).await
        } else {
            self.store.revoke(target, &actor, &change.reason).await
        };
        match r {
            Ok(events) => json(
                if restore {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                &serde_json::json!({ "events": events.iter().map(RevocationEvent::to_json).collect::<Vec<_>>() }),
            ),
            Err(e) => store_error(&e),
        }
    }

    /// Serves the API on `listener` until `shutdown` completes.
    ///
    /// # Errors
    /// [`EdgeError::Io`] never in practice: accept errors are logged and retried.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EdgeError> {
        let api = Arc::new(self.clone());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin API: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let api = api.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(req).await) }
            });
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "admin API connection");
                }
            });
        }
        Ok(())
    }
}
