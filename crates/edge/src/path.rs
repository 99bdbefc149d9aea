//! Request-target parsing: where the token is, which title, which resource.
//!
//! Every character the edge serves is from the RFC 3986 unreserved set (`[A-Za-z0-9._~-]`): title
//! ids, rendition directories, file names and base64url tokens. So the parser never decodes
//! anything: a `%` anywhere in the path (`%2e%2e`, `%2f`, `%00`), a backslash, an empty segment
//! (`//`), a `.` or `..` segment or a name starting with `.` is rejected outright, before any file
//! system access.

use leaktrace_core::TitleId;
use leaktrace_core::token::MAX_TOKEN_LEN;

/// Longest request path accepted (a maximal token plus room for the rest).
pub const MAX_PATH_LEN: usize = MAX_TOKEN_LEN + 1024;

/// The path prefix that carries the token: `/wmt/<token>/<title>/...`.
pub const TOKEN_PREFIX: &str = "wmt";

/// Directory names a viewer may never address (origin-only data).
pub const RESERVED_DIRS: [&str; 4] = ["a", "b", "WMPaceInfo", "reference"];

/// A resource of a title package, as addressed by a viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resource {
    /// A manifest at the package root: `master.m3u8`, `manifest.mpd`.
    Root(String),
    /// A file of a rendition: `<rendition>/<file>` (playlist, init or media segment).
    Rendition(String, String),
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The token from the virtual path, if the path had the `/wmt/<token>/` prefix.
    pub path_token: Option<&'a str>,
    /// The title.
    pub title: TitleId,
    /// The resource inside the title's package.
    pub resource: Resource,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Not a well-formed edge path (bad characters, dot segments, empty segments, too long):
    /// 400.
    Malformed,
    /// Well formed but names nothing a viewer may fetch: 404.
    NotFound,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    if seg.is_empty() || seg.starts_with('.') || !seg.bytes().all(unreserved) {
        return Err(PathError::Malformed);
    }
    Ok(())
}

/// File extensions the edge serves, with their media types.
pub fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "m4s" => "video/iso.segment",
        "mp4" | "m4v" | "cmfv" => "video/mp4",
        "m4a" | "cmfa" => "audio/mp4",
        "vtt" => "text/vtt",
        "ts" => "video/mp2t",
        "aac" => "audio/aac",
        _ => return None,
    })
}

/// True for manifests (served as they are, never a variant).
pub fn is_manifest(file: &str) -> bool {
    file.ends_with(".m3u8") || file.ends_with(".mpd")
}

/// Parses a request path (without the query).
///
/// Accepted shapes, with or without the `/wmt/<token>` prefix:
/// `/<title>/<manifest>` and `/<title>/<rendition>/<file>`, where `<manifest>` ends in `.m3u8`
/// or `.mpd`, `<file>` has a served extension ([`content_type`]), and `<rendition>` is not one of
/// [`RESERVED_DIRS`] (compared case-insensitively).
///
/// # Errors
/// [`PathError::Malformed`] for syntax, [`PathError::NotFound`] for other shapes.
pub fn parse(path: &str) -> Result<Target<'_>, PathError> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::Malformed);
    }
    let rest = path.strip_prefix('/').ok_or(PathError::Malformed)?;
    let segs: Vec<&str> = rest.split('/').collect();
    for seg in &segs {
        check_segment(seg)?;
    }
    let (path_token, segs) = match segs.as_slice() {
        [prefix, token, rest @ ..] if *prefix == TOKEN_PREFIX => (Some(*token), rest),
        [prefix] if *prefix == TOKEN_PREFIX => return Err(PathError::NotFound),
        other => (None, other),
    };
    let (title, resource) = match segs {
        [title, file] if is_manifest(file) => (title, Resource::Root((*file).to_owned())),
        [title, rendition, file] => {
            if RESERVED_DIRS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(rendition))
                || content_type(file).is_none()
            {
                return Err(PathError::NotFound);
            }
            (
                title,
                Resource::Rendition((*rendition).to_owned(), (*file).to_owned()),
            )
        }
        _ => return Err(PathError::NotFound),
    };
    let title = TitleId::new(*title).map_err(|_| PathError::Malformed)?;
    Ok(Target {
        path_token,
        title,
        resource,
    })
}

/// The `wmt` parameter of a query string, if present and made of base64url characters.
pub fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("wmt="))
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.bytes().all(unreserved))
}

/// A path fit for logs: the token cut to its first 6 characters, the query dropped.
pub fn redact(path: &str) -> String {
    let Some(rest) = path.strip_prefix("/wmt/") else {
        return path.chars().take(256).collect();
    };
    let (token, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let short: String = token.chars().take(6).collect();
    let tail: String = tail.chars().take(256).collect();
    format!("/wmt/{short}…/{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_served_shapes() {
        let t = parse("/wmt/abc_-9/bbb/master.m3u8").unwrap();
        assert_eq!(t.path_token, Some("abc_-9"));
        assert_eq!(t.title.as_str(), "bbb");
        assert_eq!(t.resource, Resource::Root("master.m3u8".into()));
        let t = parse("/bbb/360p/seg_00001.m4s").unwrap();
        assert_eq!(t.path_token, None);
        assert_eq!(
            t.resource,
            Resource::Rendition("360p".into(), "seg_00001.m4s".into())
        );
        assert!(parse("/wmt/x/bbb/360p/init.mp4").is_ok());
        assert!(parse("/wmt/x/bbb/manifest.mpd").is_ok());
    }

    #[test]
    fn refuses_traversal_and_encodings() {
        for p in [
            "/wmt/x/bbb/../title.json",
            "/wmt/x/bbb/360p/../../x.m4s",
            "/wmt/x/bbb/%2e%2e/360p/seg.m4s",
            "/wmt/x/bbb/360p%2fa/seg.m4s",
            "/wmt/x/bbb/360p/seg.m4s%00",
            "/wmt/x//bbb/master.m3u8",
            "/wmt/x/bbb/./master.m3u8",
            "/wmt/x/bbb/.hidden/seg.m4s",
            "/wmt/x/bbb/360p/",
            "wmt/x/bbb/master.m3u8",
            "/wmt/x/bbb\\..\\master.m3u8",
            "/wmt/x/bbb/360p/seg 1.m4s",
        ] {
            assert_eq!(parse(p), Err(PathError::Malformed), "{p}");
        }
        assert_eq!(
            parse(&format!(
                "/wmt/{}/bbb/master.m3u8",
                "x".repeat(MAX_PATH_LEN)
            )),
            Err(PathError::Malformed)
        );
    }

    #[test]
    fn refuses_origin_only_paths() {
        for p in [
            "/wmt/x/bbb/360p/a/seg_00000.m4s",
            "/wmt/x/bbb/a/seg_00000.m4s",
            "/wmt/x/bbb/b/seg_00000.m4s",
            "/wmt/x/bbb/B/seg_00000.m4s",
            "/wmt/x/bbb/WMPaceInfo/seg_00000.m4s",
            "/wmt/x/bbb/wmpaceinfo/seg_00000.m4s",
            "/wmt/x/bbb/reference/index.bin",
            "/wmt/x/bbb/reference/meta.json",
            "/wmt/x/bbb/title.json",
            "/wmt/x/bbb/360p/playlist.txt",
            "/wmt/x/bbb",
            "/wmt/x",
            "/wmt",
            "/",
        ] {
            assert!(parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn query_and_redaction() {
        assert_eq!(query_token("a=1&wmt=tok_en-&b"), Some("tok_en-"));
        assert_eq!(query_token("wmt="), None);
        assert_eq!(query_token("wmt=a%2Fb"), None);
        assert_eq!(query_token("x=wmt=1"), None);
        assert_eq!(
            redact("/wmt/abcdefghijkl/bbb/master.m3u8"),
            "/wmt/abcdef…/bbb/master.m3u8"
        );
        assert_eq!(redact("/bbb/master.m3u8"), "/bbb/master.m3u8");
    }
}
