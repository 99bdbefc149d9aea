//! An edge on 127.0.0.1 on a runtime of its own, for tests that talk to it over raw TCP.
//! Included with `#[path = "common/server.rs"] mod server;` by the `edge` test binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use leaktrace_edge::{Edge, EdgeConfig};
use leaktrace_store::Store;

/// An edge on 127.0.0.1 with its own runtime; dropping it shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts an edge with `cfg` over the store at `url` on a two-thread runtime, listening on a
/// free loopback port.
pub fn start_edge(cfg: EdgeConfig, url: String) -> Server {
    let (tx_addr, rx_addr) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = Store::open(&url).await.unwrap();
            let edge = Edge::new(cfg, store).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx_addr.send(listener.local_addr().unwrap()).unwrap();
            edge.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = rx_addr.recv().unwrap();
    assert!(addr.ip().is_loopback());
    Server {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}
