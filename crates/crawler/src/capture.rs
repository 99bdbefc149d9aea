//! Capture of direct files and HLS streams into `capture_dir`, bounded by
//! bytes, segments and time, hashed (BLAKE3 and SHA-256) while written.
//!
//! An HLS capture is the concatenation of the init segment (`EXT-X-MAP`, if
//! any) and the media segments in playlist order, a playable fragmented MP4
//! (or MPEG-TS) file. A multivariant playlist is resolved to its
//! highest-bandwidth variant. A playlist without `EXT-X-ENDLIST` (live, or one
//! that never ends) is polled for new segments until a bound is hit.
//! Captures are stored as `<sha256>.<ext>`: the same bytes are kept once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a live capture waiting for its playlist looks at its [`SegmentTap`]'s stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

use futures_util::StreamExt;
use leaktrace_store::FindingKind;
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::CrawlError;
use crate::fetch::{FetchError, Fetcher, Meta, Opened};

/// A finished capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The media (or playlist) response, with its redirect chain and server address.
    pub meta: Meta,
    /// One file or an HLS stream.
    pub kind: FindingKind,
    /// The stored file.
    pub path: PathBuf,
    /// Bytes stored.
    pub byte_len: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// HLS segments captured (0 for a direct file).
    pub segments: u32,
    /// Whether a bound stopped the capture early.
    pub truncated: bool,
    /// Start, UTC unix seconds.
    pub started_at: i64,
    /// End, UTC unix seconds.
    pub finished_at: i64,
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct Sink {
    file: tokio::fs::File,
    tmp: PathBuf,
    b3: blake3::Hasher,
    sha: sha2::Sha256,
    len: u64,
    cap: u64,
    deadline: Instant,
    /// A copy of what is written, kept while a [`SegmentTap`] wants the segment.
    copy: Option<Vec<u8>>,
}

impl Sink {
    async fn new(dir: &Path, cap: u64, deadline: Instant) -> Result<Sink, CrawlError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| CrawlError::Io(dir.to_path_buf(), e))?;
        let mut rnd = [0u8; 8];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        rnd.copy_from_slice(
            &blake3::hash(format!("{nanos}{:?}", std::thread::current().id()).as_bytes())
                .as_bytes()[..8],
        );
        let tmp = dir.join(format!(".partial-{}", hex(&rnd)));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| CrawlError::Io(tmp.clone(), e))?;
        Ok(Sink {
            file,
            tmp,
            b3: blake3::Hasher::new(),
            sha: sha2::Sha256::new(),
            len: 0,
            cap,
            deadline,
            copy: None,
        })
    }

    /// Writes what fits; `Ok(false)` once the byte cap is reached.
    async fn write(&mut self, chunk: &[u8]) -> Result<bool, CrawlError> {
        let room = usize::try_from(self.cap - self.len).unwrap_or(usize::MAX);
        let take = &chunk[..chunk.len().min(room)];
        self.file
            .write_all(take)
            .await
            .map_err(|e| CrawlError::Io(self.tmp.clone(), e))?;
        self.b3.update(take);
        self.sha.update(take);
        if let Some(copy) = self.copy.as_mut() {
            copy.extend_from_slice(take);
        }
        self.len += take.len() as u64;
        Ok(take.len() == chunk.len() && self.len < self.cap)
    }

    /// [`Sink::pour`], returning the bytes poured too.
    async fn pour_copy(&mut self, resp: reqwest::Response) -> Result<(bool, Vec<u8>), CrawlError> {
        self.copy = Some(Vec::new());
        let whole = self.pour(resp).await;
        let bytes = self.copy.take().unwrap_or_default();
        Ok((whole?, bytes))
    }

    /// Streams a response in; `Ok(false)` if a bound (bytes or time) stopped it.
    async fn pour(&mut self, resp: reqwest::Response) -> Result<bool, CrawlError> {
        let mut s = resp.bytes_stream();
        loop {
            let next = tokio::time::timeout_at(self.deadline.into(), s.next()).await;
            match next {
                Err(_) => return Ok(false),
                Ok(None) => return Ok(true),
                Ok(Some(Err(e))) => {
                    return Err(CrawlError::Fetch(FetchError::Transport(e.to_string())));
                }
                Ok(Some(Ok(chunk))) => {
                    if !self.write(&chunk).await? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    async fn finish(
        mut self,
        dir: &Path,
        ext: &str,
    ) -> Result<(PathBuf, u64, String, String), CrawlError> {
        self.file
            .flush()
            .await
            .map_err(|e| CrawlError::Io(self.tmp.clone(), e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| CrawlError::Io(self.tmp.clone(), e))?;
        let b3 = self.b3.finalize().to_hex().to_string();
        let sha = hex(&self.sha.finalize());
        let path = dir.join(format!("{sha}.{ext}"));
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(&self.tmp).await;
        } else {
            tokio::fs::rename(&self.tmp, &path)
                .await
                .map_err(|e| CrawlError::Io(path.clone(), e))?;
        }
        Ok((path, self.len, b3, sha))
    }

    async fn abort(self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

fn ext_of(u: &Url, fallback: &str) -> String {
    u.path()
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| fallback.to_owned())
}

/// What a response holds, by its Content-Type and its first bytes, whatever its URL looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// HTML, a feed, or anything else that is not media: read as a page.
    Page,
    /// A media file (MP4/MOV, Matroska/WebM, MPEG-TS, or a `video/*` Content-Type).
    Direct,
    /// An HLS playlist.
    Hls,
}

/// How much of a body [`sniff`] needs: three MPEG-TS packets' sync bytes (offsets 0, 188, 376).
pub(crate) const SNIFF_BYTES: usize = 377;

/// Tells media from pages: signatures first (`#EXTM3U`; an ISO BMFF `ftyp` box at offset 4;
/// the EBML magic `1A 45 DF A3` of Matroska and WebM; AVI, FLV, ASF/WMV and MPEG program
/// stream headers), then the Content-Type (HLS types,
/// `video/*`), then MPEG-TS sync bytes (`0x47` at 0, 188 and, when that much arrived, 376) unless
/// the Content-Type says HTML or XML.
pub(crate) fn sniff(content_type: Option<&str>, head: &[u8]) -> Answer {
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = text.trim_ascii_start();
    if text.starts_with(b"#EXTM3U") {
        return Answer::Hls;
    }
    let signature = head.get(4..8) == Some(b"ftyp".as_slice())
        || head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || head.starts_with(b"RIFF") && head.get(8..12) == Some(b"AVI ".as_slice())
        || head.starts_with(b"FLV\x01")
        || head.starts_with(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11])
        || head.starts_with(&[0x00, 0x00, 0x01, 0xBA]);
    if signature {
        return Answer::Direct;
    }
    if matches!(
        ct.as_str(),
        "application/vnd.apple.mpegurl"
            | "application/x-mpegurl"
            | "audio/mpegurl"
            | "audio/x-mpegurl"
    ) {
        return Answer::Hls;
    }
    if ct.starts_with("video/") {
        return Answer::Direct;
    }
    let markup = ct.contains("html") || ct.contains("xml");
    let ts = head.first() == Some(&0x47)
        && head.get(188) == Some(&0x47)
        && head.get(376).is_none_or(|b| *b == 0x47);
    if ts && !markup {
        return Answer::Direct;
    }
    Answer::Page
}

/// Captures a direct media file.
pub async fn capture_direct(f: &Fetcher, url: &Url) -> Result<Capture, CrawlError> {
    let started_at = now_unix();
    let deadline = Instant::now() + Duration::from_secs(f.config().limits.max_capture_secs);
    let o = f.open(url).await?;
    direct_from(f, url, o, Vec::new(), false, started_at, deadline).await
}

/// Captures a direct media file from a response already open whose first bytes `head` were
/// read (`ended`: the body ended there), so the file is downloaded once.
pub(crate) async fn capture_opened(
    f: &Fetcher,
    url: &Url,
    o: Opened,
    head: Vec<u8>,
    ended: bool,
) -> Result<Capture, CrawlError> {
    let started_at = now_unix();
    let deadline = Instant::now() + Duration::from_secs(f.config().limits.max_capture_secs);
    direct_from(f, url, o, head, ended, started_at, deadline).await
}

async fn direct_from(
    f: &Fetcher,
    url: &Url,
    o: Opened,
    head: Vec<u8>,
    ended: bool,
    started_at: i64,
    deadline: Instant,
) -> Result<Capture, CrawlError> {
    let lim = &f.config().limits;
    let dir = f.config().fetch.capture_dir.clone();
    let Opened { meta, response } = o;
    let mut sink = Sink::new(&dir, lim.max_media_bytes, deadline).await?;
    let poured: Result<bool, CrawlError> = async {
        if !sink.write(&head).await? {
            return Ok(false);
        }
        if ended {
            return Ok(true);
        }
        sink.pour(response).await
    }
    .await;
    let complete = match poured {
        Ok(c) => c,
        Err(e) => {
            sink.abort().await;
            return Err(e);
        }
    };
    let ext = ext_of(&meta.final_url, "bin");
    let (path, byte_len, blake3, sha256) = sink.finish(&dir, &ext).await?;
    if !complete {
        tracing::warn!(url = %url, bytes = byte_len, "capture cut at a bound");
    }
    Ok(Capture {
        meta,
        kind: FindingKind::Direct,
        path,
        byte_len,
        blake3,
        sha256,
        segments: 0,
        truncated: !complete,
        started_at,
        finished_at: now_unix(),
    })
}

/// Hands each segment of an HLS capture, as it arrives, to a detection that follows the
/// capture (`leaktrace_detect::follow`), and lets that detection end the capture early.
///
/// Each segment goes over `segments` as a temporary file decodable alone (the init segment's
/// bytes, if any, then the segment's); the receiver removes it once read (dropping the
/// [`tempfile::TempPath`]). The capture stops at its next step once `stop` is set, kept as
/// captured so far (not "truncated": the follower had what it needed). The sender is dropped
/// when the capture ends, which tells the follower.
#[derive(Debug)]
pub struct SegmentTap {
    /// Where each captured segment goes.
    pub segments: std::sync::mpsc::Sender<tempfile::TempPath>,
    /// Set by the follower to end the capture.
    pub stop: Arc<AtomicBool>,
}

impl SegmentTap {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Hands one segment over; a follower that has gone away is not an error of the capture.
    fn hand(&self, init: &[u8], segment: &[u8], ext: &str) -> Result<(), CrawlError> {
        let dir = std::env::temp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix("leaktrace-segment-")
            .suffix(&format!(".{ext}"))
            .tempfile_in(&dir)
            .map_err(|e| CrawlError::Io(dir.clone(), e))?;
        {
            use std::io::Write;
            tmp.write_all(init)
                .and_then(|()| tmp.write_all(segment))
                .and_then(|()| tmp.flush())
                .map_err(|e| CrawlError::Io(tmp.path().to_path_buf(), e))?;
        }
        let _ = self.segments.send(tmp.into_temp_path());
        Ok(())
    }
}

/// Captures an HLS stream (multivariant or media playlist).
pub async fn capture_hls(f: &Fetcher, url: &Url) -> Result<Capture, CrawlError> {
    capture_hls_tapped(f, url, None).await
}

/// [`capture_hls`], each segment also handed to `tap` as it arrives.
pub async fn capture_hls_tapped(
    f: &Fetcher,
    url: &Url,
    tap: Option<SegmentTap>,
) -> Result<Capture, CrawlError> {
    let started_at = now_unix();
    let deadline = Instant::now() + Duration::from_secs(f.config().limits.max_capture_secs);
    let (first_meta, body) = f.get_page(url).await?;
    hls_from(f, url, first_meta, body.bytes, started_at, deadline, tap).await
}

/// Captures an HLS stream whose first playlist (`first_meta`, `text`) was already fetched.
pub(crate) async fn capture_hls_fetched(
    f: &Fetcher,
    url: &Url,
    first_meta: Meta,
    text: Vec<u8>,
    tap: Option<SegmentTap>,
) -> Result<Capture, CrawlError> {
    let started_at = now_unix();
    let deadline = Instant::now() + Duration::from_secs(f.config().limits.max_capture_secs);
    hls_from(f, url, first_meta, text, started_at, deadline, tap).await
}

async fn hls_from(
    f: &Fetcher,
    url: &Url,
    first_meta: Meta,
    mut text: Vec<u8>,
    started_at: i64,
    deadline: Instant,
    tap: Option<SegmentTap>,
) -> Result<Capture, CrawlError> {
    let lim = &f.config().limits;
    let dir = f.config().fetch.capture_dir.clone();
    let mut media_url = first_meta.final_url.clone();
    let mut parsed = m3u8_rs::parse_playlist_res(&text)
        .map_err(|_| CrawlError::Playlist(format!("{url}: not an HLS playlist")))?;
    if let m3u8_rs::Playlist::MasterPlaylist(m) = &parsed {
        let best = m
            .variants
            .iter()
            .filter(|v| !v.is_i_frame)
            .max_by_key(|v| v.bandwidth)
            .ok_or_else(|| {
                CrawlError::Playlist(format!("{url}: multivariant playlist without variants"))
            })?;
        media_url = media_url
            .join(&best.uri)
            .map_err(|e| CrawlError::Playlist(format!("{url}: variant URI {e}")))?;
        let (m2, b2) = f.get_page(&media_url).await?;
        media_url = m2.final_url;
        text = b2.bytes;
        parsed = m3u8_rs::parse_playlist_res(&text)
            .map_err(|_| CrawlError::Playlist(format!("{media_url}: not an HLS playlist")))?;
    }
    let m3u8_rs::Playlist::MediaPlaylist(mut pl) = parsed else {
        return Err(CrawlError::Playlist(format!(
            "{url}: nested multivariant playlist"
        )));
    };
    let mut sink = Sink::new(&dir, lim.max_media_bytes, deadline).await?;
    let mut segments = 0u32;
    let mut skipped = 0u32;
    let mut truncated = false;
    let mut next_seq: u64 = pl.media_sequence;
    let mut init_done = false;
    let mut init_bytes: Vec<u8> = Vec::new();
    let mut ext = "mp4".to_owned();
    let stopped = || tap.as_ref().is_some_and(SegmentTap::stopped);
    let result: Result<(), CrawlError> = async {
        loop {
            for (i, seg) in pl.segments.iter().enumerate() {
                if stopped() {
                    return Ok(());
                }
                // A hostile playlist may start near u64::MAX: no sequence number past it.
                let Some(seq) = pl.media_sequence.checked_add(i as u64) else {
                    return Err(CrawlError::Playlist(
                        "EXT-X-MEDIA-SEQUENCE runs past 2^64 - 1".into(),
                    ));
                };
                if seq < next_seq {
                    continue;
                }
                if !init_done {
                    if let Some(map) = &seg.map {
                        let u = media_url
                            .join(&map.uri)
                            .map_err(|e| CrawlError::Playlist(format!("init URI {e}")))?;
                        let o = f.open(&u).await?;
                        let (whole, bytes) = sink.pour_copy(o.response).await?;
                        if !whole {
                            truncated = true;
                            return Ok(());
                        }
                        if tap.is_some() {
                            init_bytes = bytes;
                        }
                    } else {
                        ext = "ts".to_owned();
                    }
                    init_done = true;
                }
                if segments.saturating_add(skipped) >= lim.max_hls_segments
                    || Instant::now() >= deadline
                {
                    truncated = true;
                    return Ok(());
                }
                let u = media_url
                    .join(&seg.uri)
                    .map_err(|e| CrawlError::Playlist(format!("segment URI {e}")))?;
                let o = match f.open(&u).await {
                    Ok(o) => o,
                    // A live window moves on: a segment removed before it was fetched is a
                    // gap in the capture, not its end.
                    Err(FetchError::Status(404 | 410)) if !pl.end_list => {
                        tracing::warn!(url = %u, "live segment gone before it was fetched");
                        skipped += 1;
                        next_seq = seq.saturating_add(1);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let whole = match &tap {
                    Some(tap) => {
                        let (whole, bytes) = sink.pour_copy(o.response).await?;
                        if whole {
                            tap.hand(&init_bytes, &bytes, &ext)?;
                        }
                        whole
                    }
                    None => sink.pour(o.response).await?,
                };
                if !whole {
                    truncated = true;
                    return Ok(());
                }
                segments += 1;
                next_seq = seq.saturating_add(1);
            }
            if pl.end_list {
                return Ok(());
            }
            // Live (or never-ending) playlist: poll for more until a bound.
            let wait = Duration::from_millis(pl.target_duration.clamp(1, 20) * 500);
            if Instant::now() + wait >= deadline {
                truncated = true;
                return Ok(());
            }
            // Slept in short steps, so that a follower's stop is seen soon.
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if stopped() {
                    return Ok(());
                }
                tokio::time::sleep(STOP_CHECK.min(until - Instant::now())).await;
            }
            let (_, b) = f.get_page(&media_url).await?;
            match m3u8_rs::parse_playlist_res(&b.bytes) {
                Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => pl = p,
                _ => {
                    return Err(CrawlError::Playlist(format!(
                        "{media_url}: reload not a media playlist"
                    )));
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        sink.abort().await;
        return Err(e);
    }
    if truncated {
        tracing::warn!(url = %url, segments, "HLS capture cut at a bound");
    }
    if skipped > 0 {
        tracing::warn!(url = %url, segments, skipped, "live segments missed (gone from the window)");
    }
    let (path, byte_len, blake3, sha256) = sink.finish(&dir, &ext).await?;
    Ok(Capture {
        meta: first_meta,
        kind: FindingKind::Hls,
        path,
        byte_len,
        blake3,
        sha256,
        segments,
        truncated,
        started_at,
        finished_at: now_unix(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_is_told_by_signature_and_content_type_not_by_url() {
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isomavc1";
        let mkv = [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81];
        let mut ts = vec![0u8; 188 * 3];
        for p in 0..3 {
            ts[p * 188] = 0x47;
        }
        let html = b"<!DOCTYPE html><html><head><title>x</title></head></html>";
        // Signatures win over a generic or wrong Content-Type.
        assert_eq!(sniff(Some("application/octet-stream"), mp4), Answer::Direct);
        assert_eq!(sniff(Some("text/html"), mp4), Answer::Direct);
        assert_eq!(sniff(None, &mkv), Answer::Direct);
        assert_eq!(sniff(None, b"RIFF\x10\0\0\0AVI LIST"), Answer::Direct);
        assert_eq!(sniff(None, b"FLV\x01\x05\0\0\0\x09"), Answer::Direct);
        assert_eq!(sniff(None, b"RIFF\x10\0\0\0WAVEfmt "), Answer::Page);
        assert_eq!(sniff(None, &ts), Answer::Direct);
        assert_eq!(sniff(Some("application/octet-stream"), &ts), Answer::Direct);
        assert_eq!(
            sniff(Some("text/plain"), b"#EXTM3U\n#EXT-X-VERSION:3\n"),
            Answer::Hls
        );
        assert_eq!(sniff(None, b"\xEF\xBB\xBF\r\n#EXTM3U\n"), Answer::Hls);
        // Content-Type alone.
        assert_eq!(sniff(Some("Video/MP4; codecs=avc1"), b""), Answer::Direct);
        assert_eq!(
            sniff(Some("application/vnd.apple.mpegurl"), b""),
            Answer::Hls
        );
        // Pages stay pages.
        assert_eq!(sniff(Some("text/html; charset=utf-8"), html), Answer::Page);
        assert_eq!(sniff(None, html), Answer::Page);
        assert_eq!(
            sniff(Some("application/xml"), b"<?xml version=\"1.0\"?>"),
            Answer::Page
        );
        assert_eq!(sniff(None, b""), Answer::Page);
        // MPEG-TS sync bytes need the packet spacing, and lose to an HTML Content-Type.
        assert_eq!(sniff(None, b"G not a transport stream"), Answer::Page);
        let mut broken = ts.clone();
        broken[376] = b'x';
        assert_eq!(sniff(None, &broken), Answer::Page);
        assert_eq!(sniff(Some("text/html"), &ts), Answer::Page);
    }
}
