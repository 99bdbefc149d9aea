//! Loopback networking: a free port and a plain HTTP GET.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// A free port on 127.0.0.1 (free when asked: bind it soon).
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
        .port()
}

/// A plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the status and the body.
///
/// # Panics
/// If the connection fails or the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let fail = |what: &dyn std::fmt::Display| -> ! { panic!("GET {path} on port {port}: {what}") };
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| fail(&e));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap_or_else(|e| fail(&e));
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap_or_else(|e| fail(&e));
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| fail(&"no end of the header"));
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(&format!("no status in {head:?}")));
    (status, all[head_end + 4..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_get_reads_status_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut req = [0u8; 256];
            let n = s.read(&mut req).unwrap_or_default();
            let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nX: y\r\n\r\nnothing here");
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        assert_eq!(http_get(port, "/a?b"), (404, b"nothing here".to_vec()));
        let req = server.join().unwrap_or_default();
        assert!(req.starts_with("GET /a?b HTTP/1.0\r\n"), "{req:?}");
        assert_ne!(free_port(), 0);
    }
}
