// Fuzz bodies of leaktrace-edge: request paths (`path::parse`, `query_token`, `redact`), `Range`
// headers (`range::parse`) and the egress rewrite of in-band WMPaceInfo (`egress`).
//
// `include!`d by fuzz/fuzz_targets/edge_*.rs and by crates/edge/tests/fuzz_corpus.rs (the stable
// replay of the corpus). Must not panic on any input; the assertions are properties of every
// input.

use leaktrace_core::token::MAX_TOKEN_LEN;
use leaktrace_edge::egress::{
    Patch, REPLACEMENT_TYPE, apply, find_wmpi, is_isobmff, neutralize_wmpi,
};
use leaktrace_edge::path::{
    self, MAX_PATH_LEN, RESERVED_DIRS, Resource, TOKEN_PREFIX, content_type, is_manifest,
    query_token, redact,
};
use leaktrace_edge::range::{self, RangeRequest};

fn unreserved(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The input (lossy UTF-8) as a request path and as a query string. An accepted path is made
/// only of unreserved segments, never a dot segment, never a reserved directory, and is
/// rebuilt exactly from its parts.
pub fn edge_path(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    if let Ok(t) = path::parse(s) {
        assert!(s.len() <= MAX_PATH_LEN);
        let mut rebuilt = String::new();
        if let Some(token) = t.path_token {
            assert!(unreserved(token) && !token.starts_with('.'), "{token:?}");
            rebuilt.push_str(&format!("/{TOKEN_PREFIX}/{token}"));
        }
        assert!(unreserved(t.title.as_str()) && !t.title.as_str().starts_with('.'));
        rebuilt.push('/');
        rebuilt.push_str(t.title.as_str());
        match &t.resource {
            Resource::Root(file) => {
                assert!(is_manifest(file), "{file:?}");
                rebuilt.push('/');
                rebuilt.push_str(file);
            }
            Resource::Rendition(dir, file) => {
                assert!(unreserved(dir) && !dir.starts_with('.'));
                assert!(!RESERVED_DIRS.iter().any(|r| r.eq_ignore_ascii_case(dir)));
                assert!(content_type(file).is_some(), "{file:?}");
                rebuilt.push_str(&format!("/{dir}/{file}"));
            }
            other => panic!("a resource this check does not cover: {other:?}"),
        }
        assert_eq!(rebuilt, s);
    }
    if let Some(t) = query_token(s) {
        assert!(unreserved(t) && t.len() <= MAX_TOKEN_LEN);
        assert!(s.split('&').any(|kv| kv.strip_prefix("wmt=") == Some(t)));
    }
    let r = redact(s);
    if s.starts_with("/wmt/") {
        // "/wmt/", 6 characters of the token, "…/", at most 256 characters of the rest.
        assert!(
            r.starts_with("/wmt/") && r.chars().count() <= 5 + 6 + 2 + 256,
            "{r:?}"
        );
    } else {
        assert!(r.chars().count() <= 256);
    }
    if is_manifest(s) {
        assert!(content_type(s).is_some());
    }
    let _ = is_isobmff(s);
}

/// A `Range` header for a representation of `len` bytes: the first byte picks `len` (a small
/// one from the second byte, or a big one from the next 8 bytes), the rest is the header.
pub fn edge_range(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (len, header) = if sel & 1 == 0 {
        let Some((&n, h)) = rest.split_first() else {
            return;
        };
        (u64::from(n), h)
    } else {
        let Some((n, h)) = rest.split_first_chunk::<8>() else {
            return;
        };
        (u64::from_be_bytes(*n), h)
    };
    let header = String::from_utf8_lossy(header);
    assert_eq!(range::parse(None, len), RangeRequest::Full);
    match range::parse(Some(&header), len) {
        RangeRequest::Full => {}
        RangeRequest::Partial { start, end } => {
            assert!(start <= end && end < len, "{start}-{end} of {len}");
            assert!(!header.contains(','));
        }
        RangeRequest::Unsatisfiable => {
            assert!(header.trim().starts_with("bytes="));
            assert!(!header.contains(','));
            // Only a range past the end, or an empty suffix or representation, is unsatisfiable.
            if len > 0 {
                let spec = header.trim().strip_prefix("bytes=").unwrap_or("").trim();
                let (first, last) = spec.split_once('-').unwrap_or((spec, ""));
                match first.trim().parse::<u64>() {
                    Ok(start) => assert!(start >= len, "{header:?} of {len}"),
                    Err(_) => assert_eq!(last.trim().parse::<u64>(), Ok(0), "{header:?}"),
                }
            }
        }
        other => panic!("a range answer this check does not cover: {other:?}"),
    }
}

/// The egress rewrite on the input as a file: every top-level `wmpi` box becomes a `free` box of
/// the same size filled with 0xFF, nothing else changes, no `wmpi` box is left, and patching
/// the file in two chunks (as the edge streams it) gives the same bytes.
pub fn edge_egress(data: &[u8]) {
    let len = data.len() as u64;
    let patches: Vec<Patch> = match find_wmpi(&mut std::io::Cursor::new(data), len) {
        Ok(p) => p,
        Err(e) => panic!("find_wmpi on memory: {e}"),
    };
    let mut whole = data.to_vec();
    assert_eq!(neutralize_wmpi(&mut whole), patches.len());
    assert_eq!(whole.len(), data.len());
    let mut touched = vec![false; data.len()];
    for p in &patches {
        assert!(p.header == 8 || p.header == 16);
        assert!(p.size >= p.header && p.offset + p.size <= len);
        let (o, h, e) = (
            p.offset as usize,
            p.header as usize,
            (p.offset + p.size) as usize,
        );
        assert_eq!(&data[o + 4..o + 8], b"wmpi");
        assert_eq!(&whole[o + 4..o + 8], &REPLACEMENT_TYPE);
        assert!(whole[o + h..e].iter().all(|&b| b == 0xff));
        for t in &mut touched[o + 4..o + 8] {
            *t = true;
        }
        for t in &mut touched[o + h..e] {
            *t = true;
        }
    }
    for (i, &t) in touched.iter().enumerate() {
        if !t {
            assert_eq!(whole[i], data[i], "byte {i} changed");
        }
    }
    match find_wmpi(&mut std::io::Cursor::new(&whole), len) {
        Ok(left) => assert!(left.is_empty(), "wmpi left after egress: {left:?}"),
        Err(e) => panic!("find_wmpi on memory: {e}"),
    }
    if !data.is_empty() {
        let cut = usize::from(data[0]) * data.len() / 256;
        let mut chunked = data.to_vec();
        let (a, b) = chunked.split_at_mut(cut);
        apply(a, 0, &patches);
        apply(b, cut as u64, &patches);
        assert_eq!(chunked, whole);
    }
}
