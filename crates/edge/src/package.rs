//! Title packages on disk: finding a title's directory, resolving a viewer's resource to the
//! origin files (A, B or plain), and the in-memory file cache.

use std::cell::RefCell;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use leaktrace_core::wmpaceinfo::{SIDECAR_DIR, Sidecar};
use leaktrace_core::{TitleId, Variant};

use crate::cache::ByteCache;
use crate::path::Resource;
use crate::{EdgeError, egress};
use std::io::{Read, Seek};

/// The package summary file `leaktrace embed` writes at the root of a package.
pub const TITLE_JSON: &str = "title.json";
/// Largest sidecar read (discrete sidecars are a few bytes).
const MAX_SIDECAR_BYTES: u64 = 1 << 20;
/// How long "this does not exist" is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// The same for a segment or part name (`seg_00042.m4s`, `seg_00042.p3.m4s`): a live channel
/// publishes them while players already ask for them (LL-HLS preload hints).
const NEGATIVE_TTL_SEGMENT: Duration = Duration::from_millis(20);
/// How often a cached file is checked against the disk (size and mtime).
const REVALIDATE: Duration = Duration::from_secs(30);
/// How often a cached manifest is: a live channel replaces its playlists every segment.
const REVALIDATE_MANIFEST: Duration = Duration::from_millis(200);
/// Cached files from this size on keep their file open, so that the bytes the edge does not
/// rewrite are sent from it (`sendfile`) rather than copied from memory into the socket.
pub(crate) const SEND_FROM_FILE_MIN: u64 = 64 * 1024;
/// Shortest run of unchanged bytes sent from the file; shorter runs are written from memory.
const SEND_RUN_MIN: u64 = 16 * 1024;

/// Where a viewer's resource comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A watermarked file: its position (`None` = -1) and the two variant files. The position
    /// is the one its WMPaceInfo sidecar gives, or, for a live channel past the 15-bit wire
    /// range, the one its file name gives when the two agree
    /// ([`leaktrace_core::Position::from_wire_and_name`]).
    Watermarked {
        /// Position (`None`: not watermarked, serve A).
        position: Option<u32>,
        /// `<rendition>/a/<file>`.
        a: PathBuf,
        /// `<rendition>/b/<file>`.
        b: PathBuf,
    },
    /// A file served to everyone alike (manifests, unwatermarked tracks, A-only files).
    Plain(PathBuf),
    /// Nothing there: 404.
    Missing,
    /// The package is inconsistent (e.g. an A/B pair without a sidecar): 500, logged.
    Broken(String),
}

/// The outcome of [`Packages::locate`].
#[derive(Debug)]
pub enum Located {
    /// Serve this file.
    File {
        /// The file.
        entry: Arc<FileEntry>,
        /// Whether it is one variant of a watermarked pair (chosen per session).
        watermarked: bool,
    },
    /// 404.
    Missing,
    /// 500: the package is inconsistent.
    Broken(String),
}

/// A file loaded for serving.
#[derive(Debug)]
pub struct FileEntry {
    /// The whole file as served (in-band WMPaceInfo neutralised, see [`crate::egress`]), if
    /// it is small enough to cache; `None`: stream it from `path`.
    pub bytes: Option<Bytes>,
    /// Its length.
    pub len: u64,
    /// Strong ETag: the first 128 bits of BLAKE3 of the bytes served, quoted hex.
    pub etag: String,
    /// The same, as a header value (built once, cloned per response).
    pub etag_value: HeaderValue,
    /// `len` as a `Content-Length` value.
    pub len_value: HeaderValue,
    /// Canonical path.
    pub path: PathBuf,
    /// `wmpi` boxes to neutralise while streaming (cached bytes are already rewritten).
    pub patches: Vec<egress::Patch>,
    /// A manifest of a live channel (a media playlist without `#EXT-X-ENDLIST`, a dynamic
    /// MPD): it changes every segment, so caches may keep it only briefly.
    pub live: bool,
    mtime: Option<SystemTime>,
    checked: RwLock<Instant>,
    /// The file the cached bytes were read from, held open (see [`Origin`]).
    origin: Option<Origin>,
}

/// The open file a cached entry was read from. Its bytes equal the cached ones except in the
/// rewritten ranges (the `wmpi` boxes), so a response may send the rest from the file with
/// `sendfile` while it is unchanged on disk (same size and mtime, checked on the open file).
#[derive(Debug)]
pub(crate) struct Origin {
    file: std::fs::File,
    /// Byte ranges (start, end) that are served rewritten, in order: written from memory.
    rewritten: Vec<(u64, u64)>,
    /// Files held open by the cache, given back when this is dropped.
    held: Arc<AtomicUsize>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Origin {
    /// The open file.
    pub(crate) fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// Of the `len` bytes from `offset`, how many come before the first run that is sent from
    /// the file (all of them if there is none): rewritten bytes and short runs.
    pub(crate) fn memory_len(&self, offset: u64, len: usize) -> usize {
        let end = offset.saturating_add(len as u64);
        let mut pos = offset;
        while pos < end {
            match self.rewritten.iter().find(|&&(_, e)| e > pos) {
                Some(&(s, e)) if s <= pos => pos = e,
                next => {
                    let stop = next.map_or(end, |&(s, _)| s.min(end));
                    if stop - pos >= SEND_RUN_MIN {
                        break;
                    }
                    pos = stop;
                }
            }
        }
        usize::try_from(pos.min(end) - offset).unwrap_or(len)
    }

    /// How many of the `len` bytes from `offset` (not rewritten) the file may send before the
    /// next rewritten range.
    pub(crate) fn run_len(&self, offset: u64, len: usize) -> usize {
        let end = offset.saturating_add(len as u64);
        let stop = self
            .rewritten
            .iter()
            .find(|&&(_, e)| e > offset)
            .map_or(end, |&(s, _)| s.clamp(offset, end));
        usize::try_from(stop - offset).unwrap_or(len)
    }
}

impl FileEntry {
    /// Bytes this entry owns (the struct in its `Arc`, the content, path, ETag and patches).
    fn owned_bytes(&self) -> usize {
        2 * size_of::<usize>()
            + size_of::<Self>()
            + self.bytes.as_ref().map_or(0, Bytes::len)
            + self.path.as_os_str().len()
            + 2 * self.etag.len()
            + 20
            + self.patches.len() * size_of::<egress::Patch>()
            + self
                .origin
                .as_ref()
                .map_or(0, |o| o.rewritten.len() * size_of::<(u64, u64)>())
    }

    /// The open file the cached bytes were read from, if the entry holds one (not checked
    /// against the disk: see [`Self::unchanged_origin`]).
    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The open file to send unchanged bytes from, if the entry holds one and the file still
    /// has the size and mtime its cached bytes were read with (one `fstat`).
    pub(crate) fn unchanged_origin(&self) -> Option<&Origin> {
        let origin = self.origin.as_ref()?;
        let meta = origin.file.metadata().ok()?;
        let mtime = meta.modified().ok()?;
        (meta.len() == self.len && Some(mtime) == self.mtime).then_some(origin)
    }
}

impl Resolved {
    /// Bytes the paths or message of a resolution own.
    fn owned_bytes(&self) -> usize {
        match self {
            Self::Watermarked { a, b, .. } => a.as_os_str().len() + b.as_os_str().len(),
            Self::Plain(p) => p.as_os_str().len(),
            Self::Missing => 0,
            Self::Broken(why) => why.len(),
        }
    }
}

/// A cached title directory (`None`: absent) and when it was looked up.
type TitleDirEntry = (Option<Arc<PathBuf>>, Instant);

/// How much the caches of [`Packages`] may hold, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct CacheBounds {
    /// File contents and metadata.
    pub files: u64,
    /// Title directories.
    pub titles: u64,
    /// Resolutions (present and absent).
    pub resolutions: u64,
}

/// Packages under a root directory, with their caches (each bounded by bytes).
#[derive(Debug)]
pub struct Packages {
    root: PathBuf,
    /// A single-package root: its title and the root, shared with every request.
    single: Option<(String, Arc<PathBuf>)>,
    titles: ByteCache<str, TitleDirEntry>,
    resolved: ByteCache<str, (Arc<Resolved>, Instant)>,
    files: ByteCache<Path, Arc<FileEntry>>,
    cache_bytes: u64,
    max_cached_file: u64,
    /// Files held open by cached entries ([`Origin`]), and how many may be.
    held_files: Arc<AtomicUsize>,
    max_held_files: usize,
}

#[derive(serde::Deserialize)]
struct TitleJson {
    title: String,
}

fn read_title_json(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join(TITLE_JSON)).ok()?;
    serde_json::from_slice::<TitleJson>(&text)
        .ok()
        .map(|t| t.title)
}

impl Packages {
    /// Opens `root`: a package (it has `title.json`) or a directory of packages named by title.
    /// Files up to `max_cached_file` bytes (and at most half the file cache) are kept in memory.
    ///
    /// # Errors
    /// [`EdgeError::Root`] if `root` is not a readable directory.
    pub fn open(root: &Path, bounds: CacheBounds, max_cached_file: u64) -> Result<Self, EdgeError> {
        let root = root
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| EdgeError::Root(root.to_path_buf()))?;
        let single = read_title_json(&root).map(|t| (t, Arc::new(root.clone())));
        Ok(Self {
            root,
            single,
            titles: ByteCache::new(bounds.titles),
            resolved: ByteCache::new(bounds.resolutions),
            files: ByteCache::new(bounds.files),
            cache_bytes: bounds.files,
            max_cached_file,
            held_files: Arc::new(AtomicUsize::new(0)),
            max_held_files: max_held_files(),
        })
    }

    /// Bytes of the title, resolution and file caches.
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        (
            self.titles.bytes(),
            self.resolved.bytes(),
            self.files.bytes(),
        )
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The title of a single-package root, if the root is one package.
    pub fn single_title(&self) -> Option<&str> {
        self.single.as_ref().map(|(t, _)| t.as_str())
    }

    /// The package directory of `title`, if known from the cache (`Some(None)`: known absent).
    fn cached_title_dir(&self, title: &TitleId) -> Option<Option<Arc<PathBuf>>> {
        if let Some((single, dir)) = &self.single {
            return Some((single == title.as_str()).then(|| dir.clone()));
        }
        let (dir, at) = self.titles.get(title.as_str())?;
        (dir.is_some() || at.elapsed() < NEGATIVE_TTL).then_some(dir)
    }

    /// The package directory of `title`, if there is one (blocking I/O on a cache miss): the root
    /// itself for a single-package root, else `<root>/<title>` if its `title.json` names the
    /// title.
    pub fn title_dir(&self, title: &TitleId) -> Option<Arc<PathBuf>> {
        if let Some(known) = self.cached_title_dir(title) {
            return known;
        }
        let candidate = self.root.join(title.as_str());
        let dir = candidate
            .canonicalize()
            .ok()
            .filter(|d| d.starts_with(&self.root) && d.is_dir())
            .filter(|d| read_title_json(d).as_deref() == Some(title.as_str()))
            .map(Arc::new);
        let owned = dir.as_ref().map_or(0, |d| {
            2 * size_of::<usize>() + size_of::<PathBuf>() + d.as_os_str().len()
        });
        self.titles.insert(
            Arc::from(title.as_str()),
            (dir.clone(), Instant::now()),
            owned,
        );
        dir
    }

    /// Finds the file to serve for `resource` of `title`, asking `choose` for the variant of a
    /// watermarked file (given its position, `None` = -1). With `blocking = false` only caches
    /// are consulted and `None` means "go again with blocking I/O" (from a blocking thread).
    pub fn locate(
        &self,
        title: &TitleId,
        resource: &Resource,
        choose: &dyn Fn(Option<u32>) -> Variant,
        blocking: bool,
    ) -> Option<Located> {
        let dir = if blocking {
            self.title_dir(title)
        } else {
            self.cached_title_dir(title)?
        };
        let Some(dir) = dir else {
            return Some(Located::Missing);
        };
        let resolved = if blocking {
            self.resolve(title, &dir, resource)
        } else {
            self.cached_resolution(title, resource)?
        };
        let (path, watermarked) = match &*resolved {
            Resolved::Missing => return Some(Located::Missing),
            Resolved::Broken(why) => return Some(Located::Broken(why.clone())),
            Resolved::Plain(p) => (p, false),
            Resolved::Watermarked { position, a, b } => match choose(*position) {
                Variant::A => (a, true),
                Variant::B => (b, true),
            },
        };
        let entry = if blocking {
            self.file(path)
        } else {
            Some(self.cached_file(path)?)
        };
        Some(match entry {
            Some(entry) => Located::File { entry, watermarked },
            None if watermarked => Located::Broken(format!("{} is missing", path.display())),
            None => Located::Missing,
        })
    }

    /// Resolves a resource of the package in `dir` (blocking I/O; cached).
    pub fn resolve(&self, title: &TitleId, dir: &Path, resource: &Resource) -> Arc<Resolved> {
        if let Some(r) = self.cached_resolution(title, resource) {
            return r;
        }
        let resolved = Arc::new(resolve_uncached(dir, resource));
        let key = with_resolution_key(title, resource, |k| Arc::<str>::from(k));
        let owned = 2 * size_of::<usize>() + size_of::<Resolved>() + resolved.owned_bytes();
        self.resolved
            .insert(key, (resolved.clone(), Instant::now()), owned);
        resolved
    }

    /// A cached resolution, if one is fresh (no I/O).
    pub fn cached_resolution(&self, title: &TitleId, resource: &Resource) -> Option<Arc<Resolved>> {
        let (r, at) = with_resolution_key(title, resource, |key| self.resolved.get(key))?;
        if *r != Resolved::Missing {
            return Some(r);
        }
        let ttl = match resource {
            Resource::Rendition(_, f) if leaktrace_core::segment_file_position(f).is_some() => {
                NEGATIVE_TTL_SEGMENT
            }
            _ => NEGATIVE_TTL,
        };
        (at.elapsed() < ttl).then_some(r)
    }

    /// A cached file, if it was checked against the disk recently (no I/O).
    pub fn cached_file(&self, path: &Path) -> Option<Arc<FileEntry>> {
        let entry = self.files.get(path)?;
        let every = if crate::path::is_manifest(&path.to_string_lossy()) {
            REVALIDATE_MANIFEST
        } else {
            REVALIDATE
        };
        let fresh = entry
            .checked
            .read()
            .map(|t| t.elapsed() < every)
            .unwrap_or(false);
        fresh.then_some(entry)
    }

    /// Loads a file for serving (blocking I/O; cached), or `None` if it does not exist, is not a
    /// regular file, or lies outside the root once symbolic links are resolved. A cached entry
    /// older than 30 s is checked against the file's size and mtime first.
    pub fn file(&self, path: &Path) -> Option<Arc<FileEntry>> {
        if let Some(entry) = self.files.get(path) {
            let meta = std::fs::metadata(&entry.path).ok();
            if meta.is_some_and(|m| m.len() == entry.len && m.modified().ok() == entry.mtime) {
                if let Ok(mut t) = entry.checked.write() {
                    *t = Instant::now();
                }
                return Some(entry);
            }
        }
        let entry = Arc::new(self.load(path)?);
        self.files
            .insert(Arc::from(path), entry.clone(), entry.owned_bytes());
        Some(entry)
    }

    fn load(&self, path: &Path) -> Option<FileEntry> {
        let canonical = path.canonicalize().ok()?;
        if !canonical.starts_with(&self.root) {
            tracing::warn!(path = %path.display(), "refused a file outside the root");
            return None;
        }
        let meta = std::fs::metadata(&canonical).ok()?;
        if !meta.is_file() {
            return None;
        }
        let len = meta.len();
        let rewrite = canonical
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(egress::is_isobmff);
        let mut origin = None;
        let (bytes, hash, patches) = if len <= self.max_cached_file && len <= self.cache_bytes / 2 {
            let mut file = std::fs::File::open(&canonical).ok()?;
            let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut data).ok()?;
            let data_len = data.len() as u64;
            let patches = if rewrite {
                egress::find_wmpi(&mut std::io::Cursor::new(&data), data_len).unwrap_or_default()
            } else {
                Vec::new()
            };
            egress::apply(&mut data, 0, &patches);
            // Held open only if what was read is the whole file as stat'ed, and within the cap.
            if data_len >= SEND_FROM_FILE_MIN && data_len == len && self.hold_file() {
                origin = Some(Origin {
                    file,
                    rewritten: patches
                        .iter()
                        .map(|p| (p.offset, p.offset.saturating_add(p.size)))
                        .collect(),
                    held: self.held_files.clone(),
                });
            }
            let hash = blake3::hash(&data);
            (Some(Bytes::from(data)), hash, Vec::new())
        } else {
            let mut file = std::fs::File::open(&canonical).ok()?;
            let patches = if rewrite {
                egress::find_wmpi(&mut file, len).ok()?
            } else {
                Vec::new()
            };
            file.seek(std::io::SeekFrom::Start(0)).ok()?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                let chunk = buf.get_mut(..n)?;
                egress::apply(chunk, pos, &patches);
                hasher.update(chunk);
                pos += n as u64;
            }
            (None, hasher.finalize(), patches)
        };
        let live = bytes.as_deref().is_some_and(is_live_manifest);
        let hex: String = hash.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let etag = format!("\"{hex}\"");
        let len = bytes.as_ref().map_or(len, |b| b.len() as u64);
        Some(FileEntry {
            len,
            len_value: HeaderValue::from(len),
            bytes,
            etag_value: HeaderValue::from_str(&etag).ok()?,
            etag,
            path: canonical,
            patches,
            live,
            mtime: meta.modified().ok(),
            checked: RwLock::new(Instant::now()),
            origin,
        })
    }

    /// Takes one of the open-file places of the cache, if one is left.
    fn hold_file(&self) -> bool {
        self.held_files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_held_files).then_some(n + 1)
            })
            .is_ok()
    }
}

/// How many files cached entries may hold open: an eighth of the process's file-descriptor
/// limit, at most 4096, so that connections keep the rest.
fn max_held_files() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    soft.map_or(4096, |n| usize::try_from(n / 8).unwrap_or(4096))
        .min(4096)
}

/// Whether `bytes` are a live manifest: an HLS media playlist without `#EXT-X-ENDLIST`, or an
/// MPD of `type="dynamic"`.
fn is_live_manifest(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    if bytes.starts_with(b"#EXTM3U") {
        // A low-latency playlist lists parts before its first whole segment.
        (has(b"#EXTINF") || has(b"#EXT-X-PART:")) && !has(b"#EXT-X-ENDLIST")
    } else {
        has(b"<MPD") && has(b"type=\"dynamic\"")
    }
}

/// Calls `f` with the resolution cache key of `resource` (`<title>/<file>`,
/// `<title>/<rendition>/<file>`), built in a per-thread buffer: a cache hit allocates nothing.
fn with_resolution_key<T>(title: &TitleId, resource: &Resource, f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let build = |key: &mut String| {
        key.clear();
        key.push_str(title.as_str());
        if let Resource::Rendition(rendition, _) = resource {
            key.push('/');
            key.push_str(rendition);
        }
        key.push('/');
        key.push_str(match resource {
            Resource::Root(file) | Resource::Rendition(_, file) => file,
        });
    };
    KEY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut key) => {
            build(&mut key);
            f(&key)
        }
        // Re-entered from `f` (never, in practice): a buffer of its own.
        Err(_) => {
            let mut key = String::new();
            build(&mut key);
            f(&key)
        }
    })
}

fn resolve_uncached(dir: &Path, resource: &Resource) -> Resolved {
    match resource {
        Resource::Root(file) => {
            let p = dir.join(file);
            if p.is_file() {
                Resolved::Plain(p)
            } else {
                Resolved::Missing
            }
        }
        Resource::Rendition(rendition, file) => {
            let rdir = dir.join(rendition);
            let a = rdir.join("a").join(file);
            let b = rdir.join("b").join(file);
            let sidecar = rdir.join(SIDECAR_DIR).join(file);
            if sidecar.is_file() {
                return match read_position(&sidecar) {
                    Ok(position) => Resolved::Watermarked {
                        position: position
                            .map(|w| leaktrace_core::Position::from_wire_and_name(w, file).get()),
                        a,
                        b,
                    },
                    Err(e) => Resolved::Broken(format!("{}: {e}", sidecar.display())),
                };
            }
            if a.is_file() {
                if b.is_file() {
                    return Resolved::Broken(format!(
                        "{} has variants A and B but no WMPaceInfo sidecar",
                        rdir.join(file).display()
                    ));
                }
                return Resolved::Plain(a);
            }
            let plain = rdir.join(file);
            if plain.is_file() {
                Resolved::Plain(plain)
            } else {
                Resolved::Missing
            }
        }
    }
}

/// The position a discrete sidecar gives its file.
///
/// One segment entry: its position. Several: the one without `segmentRegex` (this edge does not
/// evaluate POSIX regular expressions). Byterange sidecars are not supported (leaktrace packages
/// use discrete segment files).
fn read_position(sidecar: &Path) -> Result<Option<u16>, String> {
    let meta = std::fs::metadata(sidecar).map_err(|e| e.to_string())?;
    if meta.len() > MAX_SIDECAR_BYTES {
        return Err(format!(
            "sidecar is {} bytes (at most {MAX_SIDECAR_BYTES} accepted)",
            meta.len()
        ));
    }
    let bytes = std::fs::read(sidecar).map_err(|e| e.to_string())?;
    Sidecar::from_cbor(&bytes)
        .and_then(|parsed| parsed.file_position())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Arc, AtomicUsize, Ordering, Origin, is_live_manifest};

    #[test]
    fn rewritten_ranges_and_short_runs_come_from_memory() {
        let Ok(file) = std::fs::File::open("Cargo.toml") else {
            return;
        };
        let held = Arc::new(AtomicUsize::new(1));
        // A `wmpi` box at 24..37, another at 100 000..100 013, in a 200 000-byte file.
        let origin = Origin {
            file,
            rewritten: vec![(24, 37), (100_000, 100_013)],
            held: held.clone(),
        };
        // From the start: the head boxes from memory, then the file up to the next box.
        assert_eq!(origin.memory_len(0, 200_000), 37);
        assert_eq!(origin.run_len(37, 199_963), 100_000 - 37);
        // At the second box: the box from memory, then the file to the end.
        assert_eq!(origin.memory_len(100_000, 100_000), 13);
        assert_eq!(origin.run_len(100_013, 99_987), 99_987);
        // A run shorter than the minimum is written from memory with what precedes it.
        assert_eq!(origin.memory_len(90_000, 10_013), 10_013);
        assert_eq!(origin.memory_len(0, 1000), 1000);
        // A short range between the boxes, from the file only if long enough.
        assert_eq!(origin.memory_len(50_000, 100), 100);
        assert_eq!(origin.memory_len(50_000, 20_000), 0);
        assert_eq!(origin.run_len(50_000, 20_000), 20_000);
        drop(origin);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn live_playlists_are_told_from_finished_ones_and_masters() {
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n";
        assert!(is_live_manifest(media.as_bytes()));
        assert!(!is_live_manifest(
            format!("{media}#EXT-X-ENDLIST\n").as_bytes()
        ));
        // A low-latency channel before its first whole segment: parts only.
        let parts = "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.5\n\
                     #EXT-X-PART:DURATION=0.5,URI=\"seg_00000.p0.m4s\",INDEPENDENT=YES\n";
        assert!(is_live_manifest(parts.as_bytes()));
        let master =
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001f\"\n360p/playlist.m3u8\n";
        assert!(!is_live_manifest(master.as_bytes()));
        assert!(is_live_manifest(b"<MPD type=\"dynamic\">"));
        assert!(!is_live_manifest(b"<MPD type=\"static\">"));
    }
}
