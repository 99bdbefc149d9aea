//! A loopback HTTP site for the crawler tests (the test kit's, hyper on 127.0.0.1), and the
//! injected resolver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use leaktrace_crawler::net::Lookup;
pub use leaktrace_testkit::site::*;

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

/// A SQLite store in `dir` (file `s.sqlite`).
pub async fn sqlite_store(dir: &std::path::Path) -> leaktrace_store::Store {
    leaktrace_store::Store::open(&format!("sqlite://{}", dir.join("s.sqlite").display()))
        .await
        .unwrap()
}
