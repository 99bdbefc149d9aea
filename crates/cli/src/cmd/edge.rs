//! `leaktrace edge`: serve packages with per-session A/B sequencing (see the leaktrace-edge
//! crate for the URL scheme and headers).

use crate::config::Loaded;
use crate::exit::{Code, ConfigError, UsageError};
use anyhow::{Context, Result};
use clap::Args;
use leaktrace_edge::admin::AdminApi;
use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_store::Store;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `leaktrace edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// A package written by `leaktrace embed`, or a directory of packages named by title id.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Access-Control-Allow-Origin value, or `none` for no CORS headers.
    #[arg(long, default_value = "*")]
    pub cors_origin: String,
    /// Memory for cached file contents, in MiB.
    #[arg(long, default_value_t = 512)]
    pub cache_mb: u64,
    /// Most simultaneous connections; more are answered 503 and closed.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Most simultaneous connections from one client address (IPv6: per /64); more are
    /// answered 503 and closed. Behind a reverse proxy, raise it to --max-connections.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_ip: u64,
    /// Seconds for a request's line and headers to arrive (1-300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request (1-3600).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Seconds a response may wait for a client that stops reading before the connection is
    /// closed (1-3600).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout: u64,
    /// Most requests answered on one connection, pipelined or not (1-1000000).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_requests_per_connection: u64,
    /// Memory for the token, session, title and resolution caches together, in MiB (1-65536).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub lookup_cache_mb: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also serve the admin API (revoke, restore, list sessions) on this address, with the
    /// bearer token of `[admin] token_file`; keep it on loopback or a private network.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Seconds between reads of the revoked sessions (0.1-60): a revocation is refused within
    /// this time plus one read.
    #[arg(long, default_value_t = 1.0)]
    pub revocation_poll: f64,
}

/// Runs the edge until SIGTERM or ctrl-c.
pub fn run(config: Option<&Path>, a: &EdgeArgs) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    let keys = loaded.keyring()?;
    let mut cfg = EdgeConfig::new(a.root.clone(), keys.current().clone());
    cfg.keys = keys;
    cfg.extra_verifiers = super::session::es256_verifiers(&loaded)?;
    cfg.wmopid = super::session::policy(&loaded).wmopid;
    cfg.cors_origin = (a.cors_origin != "none").then(|| a.cors_origin.clone());
    cfg.file_cache_bytes = a.cache_mb.saturating_mul(1 << 20);
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    cfg.max_connections = count(a.max_connections);
    cfg.max_connections_per_ip = count(a.max_connections_per_ip);
    cfg.header_timeout = std::time::Duration::from_secs(a.header_timeout);
    cfg.idle_timeout = std::time::Duration::from_secs(a.idle_timeout);
    cfg.write_timeout = std::time::Duration::from_secs(a.write_timeout);
    cfg.max_requests_per_connection = count(a.max_requests_per_connection);
    cfg.lookup_cache_bytes = a.lookup_cache_mb.saturating_mul(1 << 20);
    if !(0.1..=60.0).contains(&a.revocation_poll) {
        return Err(UsageError(format!(
            "--revocation-poll {} out of range (expected 0.1 to 60 seconds)",
            a.revocation_poll
        ))
        .into());
    }
    cfg.revocation_poll = std::time::Duration::from_secs_f64(a.revocation_poll);
    let admin_token = match (&a.admin_listen, &loaded.config.admin) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ConfigError(
                "--admin-listen needs an [admin] section with token_file in leaktrace.toml".into(),
            )
            .into());
        }
        (Some(_), Some(admin)) => Some(loaded.secret_file(&admin.token_file)?.trim().to_owned()),
    };
    if a.threads == Some(0) {
        return Err(UsageError("--threads must be at least 1".into()).into());
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let url = super::store::resolved_url(&loaded)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let edge = Edge::new(cfg, store.clone())?;
        let admin = match (a.admin_listen, admin_token) {
            (Some(addr), Some(token)) => {
                let api = AdminApi::new(store.clone(), &token)
                    .map_err(|e| ConfigError(format!("[admin] token_file: {e}")))?;
                let listener =
                    listen(addr).with_context(|| format!("listening on {addr} (admin API)"))?;
                let bound = listener.local_addr().context("reading the admin address")?;
                println!("admin API http://{bound}");
                Some(tokio::spawn(async move {
                    api.serve(listener, std::future::pending()).await
                }))
            }
            _ => None,
        };
        let listener = listen(a.listen).with_context(|| format!("listening on {}", a.listen))?;
        let addr = listener
            .local_addr()
            .context("reading the listening address")?;
        match edge.single_title() {
            Some(t) => println!(
                "listening http://{addr} (root {}, title {t})",
                edge.root().display()
            ),
            None => println!(
                "listening http://{addr} (root {}, packages by title)",
                edge.root().display()
            ),
        }
        std::io::stdout().flush().ok();
        edge.serve(listener, shutdown_signal()).await?;
        if let Some(admin) = admin {
            admin.abort();
        }
        store.close().await;
        anyhow::Ok(())
    })?;
    Ok(Code::Success)
}

/// A listening socket with a deep accept queue (bursts of thousands of connections).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
