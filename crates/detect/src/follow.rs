//! Detection that follows a capture while it grows: a restream recorded as it plays.
//!
//! [`follow`] reads a [`Source`] as it arrives (a file still being written, a local HLS
//! playlist that is still being updated, or the segments a capturing crawler hands over),
//! decodes each frame once onto the working grid ([`SuspectFrames`]), and every
//! [`FollowOptions::every_s`] seconds of new capture (or a tenth of what was captured so far,
//! whichever is more) decides every position seen so far again and scores every registered
//! session ([`crate::decide_frames`], the same registration, decisions and calibrated
//! accusation as [`investigate`](crate::investigate::investigate)). Each round is handed to a
//! callback as an [`Update`]. Following stops at the first accusation (unless
//! [`FollowOptions::until_end`]) or when the capture ends, and returns the last report.
//!
//! Looking again and again at a growing copy gives an innocent session more chances to clear
//! a threshold by luck. The `k`-th round that could accuse anyone therefore accuses only within
//! its share [`spend`]`(k)` of the requested false-accusation probability (the shares sum to
//! 1), and reports each session's probability against the whole of it: the probability that
//! any round ever accuses an innocent stays within the one requested. A round with too few
//! positions to reach its threshold at all (the early rounds) takes no share: whether a round
//! can accuse depends on the copy's decisions only, never on a session's score, and an
//! innocent's codeword is independent of the copy, so the union bound over the counted rounds
//! holds given the copy.
//!
//! Registration is redone from the start each round, on every frame so far: a time map or a
//! geometry fitted on the first seconds of a copy is not trusted over later ones, and the
//! decode, which is most of the cost, is never repeated.
//!
//! ```no_run
//! # async fn f(store: &leaktrace_store::Store, keys: &leaktrace_core::Keyring)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use leaktrace_core::TitleId;
//! use leaktrace_detect::follow::{FollowOptions, Source, follow};
//! use leaktrace_detect::investigate::Options;
//! let title = TitleId::new("bbb")?;
//! let source = Source::Growing {
//!     path: "restream.ts".into(),
//!     idle: std::time::Duration::from_secs(10),
//! };
//! let mut print = |u: &leaktrace_detect::follow::Update| {
//!     println!("{:.0} s captured: {}", u.captured_s, u.report.reason);
//! };
//! let opts = FollowOptions { investigate: Options { fp: 1e-6, ..Options::default() },
//!     ..FollowOptions::default() };
//! let report = follow(store, keys, source, &title, None, &opts, &mut print).await?;
//! println!("{:?}", report.verdict);
//! # Ok(()) }
//! ```

use crate::frames::{SuspectFrames, media};
use crate::investigate::{Case, Progress, blocking};
use crate::report::{Report, Verdict};
use crate::{DetectError, decide_frames};
use leaktrace_core::{TitleId, TitleKeySource};
use leaktrace_media::{Decoder, Limits};
use leaktrace_store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seconds of capture before the first decision: temporal registration matches windows of
/// 10 s of the mean-luma curve.
pub const FIRST_DECISION_S: f64 = 10.0;

/// What [`follow`] reads.
#[derive(Debug)]
#[non_exhaustive]
pub enum Source {
    /// A file still being written, read front to back as it grows (MPEG-TS or Matroska: an
    /// MP4 cannot be read before its writer finishes it). The capture ends once `idle` passes
    /// without a new byte.
    Growing {
        /// The file.
        path: PathBuf,
        /// How long to wait for more bytes (and for the file to appear) before the end.
        idle: Duration,
    },
    /// A local HLS media playlist that is still being updated (a live stream recorded by
    /// FFmpeg's HLS muxer, say): its segments are read as they are listed. Segment URIs must
    /// be relative paths under the playlist's folder. The capture ends at `EXT-X-ENDLIST`, or
    /// once `idle` passes without a new segment.
    Playlist {
        /// The playlist.
        path: PathBuf,
        /// How long to wait for a new segment before the end.
        idle: Duration,
    },
    /// Complete media files in stream order, each decodable alone (an HLS media segment
    /// after its init segment): what a capturing crawler hands over. Each file is removed
    /// once decoded (the [`tempfile::TempPath`] is dropped); the capture ends when the sender
    /// is dropped.
    Segments(std::sync::mpsc::Receiver<tempfile::TempPath>),
}

impl Source {
    /// What the report names as the suspect.
    fn describe(&self) -> String {
        match self {
            Source::Growing { path, .. } | Source::Playlist { path, .. } => {
                path.display().to_string()
            }
            Source::Segments(_) => "segments of a capture in progress".to_owned(),
        }
    }
}

/// Options of [`follow`]: the investigation's, and how the capture is followed.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// Accusation threshold, decisions and the rest, as for a single look at a copy.
    pub investigate: crate::investigate::Options,
    /// Seconds of new capture between two rounds of decisions (1 to 600).
    pub every_s: f64,
    /// Keep following after an accusation, until the capture ends.
    pub until_end: bool,
    /// Stop once this many seconds of capture have been read (1 to 10⁶).
    pub max_s: f64,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            investigate: crate::investigate::Options::default(),
            every_s: 4.0,
            until_end: false,
            max_s: 4.0 * 3600.0,
        }
    }
}

/// One round of decisions on the capture so far.
#[derive(Debug)]
pub struct Update {
    /// The report on everything captured so far.
    pub report: Report,
    /// Seconds of capture decoded so far.
    pub captured_s: f64,
    /// Wall-clock seconds since following began.
    pub elapsed_s: f64,
    /// The capture has ended: this is the last round.
    pub ended: bool,
}

/// Follows `source` and decides it round by round; returns the last round's report (the
/// first that accuses, unless [`FollowOptions::until_end`]). `on_update` sees every round.
///
/// A round whose copy does not (yet) register, or does not match the title, is skipped while
/// the capture goes on; if the capture ends without any round, the last such error is
/// returned. The blind fallback is not available here: it needs the reference index.
pub async fn follow(
    store: &Store,
    keys: &dyn TitleKeySource,
    source: Source,
    title: &TitleId,
    reference: Option<&Path>,
    follow: &FollowOptions,
    on_update: &mut (dyn FnMut(&Update) + Send),
) -> Result<Report, DetectError> {
    check(follow)?;
    let opts = &follow.investigate;
    if opts.blind {
        return Err(DetectError::Invalid(
            "following a capture needs the reference index (no blind detection)".into(),
        ));
    }
    let quiet = |_: Progress| {};
    let case = Case::open(store, keys, title, reference, opts, &quiet).await?;
    let Some(reference_index) = case.reference.as_ref() else {
        return Err(DetectError::Invalid(format!(
            "title {title} records no reference index: following a capture needs one \
             (give --reference)"
        )));
    };
    let described = source.describe();
    let started = Instant::now();
    let mut feed = Feed::new(source);
    let mut frames: Option<SuspectFrames> = None;
    let mut next_at = FIRST_DECISION_S.max(follow.every_s);
    let mut last: Option<Report> = None;
    let mut last_err: Option<DetectError> = None;
    let mut rounds = 0u32;
    loop {
        let limit = next_at.min(follow.max_s);
        let mut ended = blocking(|| feed.feed(&mut frames, limit))?;
        let captured = frames.as_ref().map_or(0.0, captured_s);
        if captured >= follow.max_s {
            ended = true;
        }
        if let Some(fr) = frames.as_mut()
            && (captured >= FIRST_DECISION_S || ended)
        {
            let decided =
                blocking(|| decide_frames(fr, reference_index, case.pattern_key(), &opts.decide))
                    .and_then(|d| {
                        if opts.require_match {
                            case.check_match(&d)?;
                        }
                        Ok(d)
                    });
            match decided {
                Ok(decisions) => {
                    let report = case
                        .report(
                            &decisions,
                            Path::new(&described),
                            None,
                            spend(rounds + 1),
                            &quiet,
                        )
                        .await?;
                    // A round whose positions cannot reach the threshold accuses no one
                    // whatever the scores: it takes no share of the probability.
                    if report.calibration.threshold.is_some() {
                        rounds += 1;
                    }
                    let update = Update {
                        report,
                        captured_s: captured,
                        elapsed_s: started.elapsed().as_secs_f64(),
                        ended,
                    };
                    on_update(&update);
                    let accused = update.report.verdict == Verdict::Accused;
                    last = Some(update.report);
                    last_err = None;
                    if accused && !follow.until_end {
                        return last.ok_or(DetectError::Empty);
                    }
                }
                // Too little of the copy yet to register or to match: wait for more.
                Err(e @ (DetectError::NoOverlap { .. } | DetectError::NoMatch { .. })) => {
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if ended {
            return match (last, last_err) {
                (Some(report), _) => Ok(report),
                (None, Some(e)) => Err(e),
                (None, None) => Err(DetectError::Empty),
            };
        }
        // Rounds further apart as the capture grows: each round re-registers every frame so
        // far, and fewer rounds keep more of the probability for each.
        next_at = captured + follow.every_s.max(GROWTH * captured);
    }
}

/// A round comes after at least this share of the capture so far is new.
const GROWTH: f64 = 0.1;

/// The share of the false-accusation probability the `k`-th round that could accuse (from 1)
/// may use: `1 / (k (k + 1))`,
/// which sums to 1 over all rounds, so that deciding a capture again as it grows keeps the
/// probability of a false accusation at any round within the requested one (a union bound over
/// the rounds). Round 10 uses 0.9 % of it, which costs some positions more than one look at
/// the same copy would need (`docs/BENCHMARKS.md` §8.1).
pub fn spend(k: u32) -> f64 {
    let k = f64::from(k.max(1));
    1.0 / (k * (k + 1.0))
}

/// Checks [`FollowOptions`].
fn check(f: &FollowOptions) -> Result<(), DetectError> {
    if !(1.0..=600.0).contains(&f.every_s) {
        return Err(DetectError::Invalid(format!(
            "decision interval {} s out of range (expected 1 to 600 s)",
            f.every_s
        )));
    }
    if !(1.0..=1e6).contains(&f.max_s) {
        return Err(DetectError::Invalid(format!(
            "capture limit {} s out of range (expected 1 to 1000000 s)",
            f.max_s
        )));
    }
    Ok(())
}

/// Seconds of capture in `frames`.
fn captured_s(frames: &SuspectFrames) -> f64 {
    frames
        .times
        .last()
        .map_or(0.0, |t| t + 1.0 / frames.fps.max(1.0))
}

/// Appends the frames of one decodable piece to `frames` (created on the first piece).
fn append(
    frames: &mut Option<SuspectFrames>,
    dec: &mut Decoder,
    max: usize,
) -> Result<usize, DetectError> {
    let fr = frames.get_or_insert_with(|| SuspectFrames::for_decoder(dec));
    fr.extend(dec, max)
}

/// A [`Source`] being read.
enum Feed {
    Growing {
        path: PathBuf,
        idle: Duration,
        decoder: Option<Box<Decoder>>,
    },
    Playlist(LocalPlaylist),
    Segments(std::sync::mpsc::Receiver<tempfile::TempPath>),
}

impl Feed {
    fn new(source: Source) -> Self {
        match source {
            Source::Growing { path, idle } => Feed::Growing {
                path,
                idle,
                decoder: None,
            },
            Source::Playlist { path, idle } => Feed::Playlist(LocalPlaylist::new(path, idle)),
            Source::Segments(rx) => Feed::Segments(rx),
        }
    }

    /// Adds frames until the capture holds `until_s` seconds or ends; true when it has ended.
    fn feed(
        &mut self,
        frames: &mut Option<SuspectFrames>,
        until_s: f64,
    ) -> Result<bool, DetectError> {
        let reached =
            |f: &Option<SuspectFrames>| f.as_ref().is_some_and(|f| captured_s(f) >= until_s);
        match self {
            Feed::Growing {
                path,
                idle,
                decoder,
            } => {
                if decoder.is_none() {
                    wait_for_bytes(path, *idle)?;
                    *decoder = Some(Box::new(
                        Decoder::open_growing(path, Limits::default(), *idle)
                            .map_err(media(path))?,
                    ));
                }
                let Some(dec) = decoder.as_mut() else {
                    return Ok(true);
                };
                while !reached(frames) {
                    if append(frames, dec, 1)? == 0 {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Feed::Playlist(pl) => {
                while !reached(frames) {
                    match pl.next_segment()? {
                        Some(piece) => decode_piece(frames, &piece)?,
                        None => return Ok(true),
                    }
                }
                Ok(false)
            }
            Feed::Segments(rx) => {
                while !reached(frames) {
                    match rx.recv() {
                        Ok(piece) => decode_piece(frames, &piece)?,
                        Err(_) => return Ok(true),
                    }
                }
                Ok(false)
            }
        }
    }
}

/// Decodes every frame of one self-contained piece of the stream onto `frames`.
fn decode_piece(frames: &mut Option<SuspectFrames>, path: &Path) -> Result<(), DetectError> {
    let mut dec = Decoder::open(path).map_err(media(path))?;
    append(frames, &mut dec, usize::MAX)?;
    Ok(())
}

/// Waits until `path` exists and holds a byte, for at most `idle`.
fn wait_for_bytes(path: &Path, idle: Duration) -> Result<(), DetectError> {
    let deadline = Instant::now() + idle;
    loop {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DetectError::Suspect {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "nothing was written to it within {:.0} s",
                        idle.as_secs_f64()
                    ),
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// How often a growing playlist or file is looked at again.
const POLL: Duration = Duration::from_millis(200);

/// A local HLS media playlist read as it is updated.
struct LocalPlaylist {
    path: PathBuf,
    idle: Duration,
    /// Media sequence number of the next segment to read.
    next: Option<u64>,
    /// The init segment's bytes (fMP4), read once.
    init: Option<(String, Vec<u8>)>,
    ended: bool,
    last_new: Instant,
}

impl LocalPlaylist {
    fn new(path: PathBuf, idle: Duration) -> Self {
        Self {
            path,
            idle,
            next: None,
            init: None,
            ended: false,
            last_new: Instant::now(),
        }
    }

    /// The next segment as a file decodable alone (the segment itself, or a temporary copy
    /// after its init segment), waiting for it; `None` at the end of the stream.
    fn next_segment(&mut self) -> Result<Option<Piece>, DetectError> {
        loop {
            if let Some(piece) = self.try_next()? {
                self.last_new = Instant::now();
                return Ok(Some(piece));
            }
            if self.ended || self.last_new.elapsed() >= self.idle {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    fn try_next(&mut self) -> Result<Option<Piece>, DetectError> {
        let bad = |why: String| DetectError::Suspect {
            path: self.path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        };
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            // Not written yet, or being replaced: look again later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DetectError::Suspect {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let playlist = match m3u8_rs::parse_playlist_res(&text) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            Ok(m3u8_rs::Playlist::MasterPlaylist(_)) => {
                return Err(bad(
                    "a multivariant playlist: follow one of its media playlists".into(),
                ));
            }
            // A playlist caught half written: read it again later.
            Err(_) => return Ok(None),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let first = playlist.media_sequence;
        let next = *self.next.get_or_insert(first);
        let mut found = None;
        // EXT-X-MAP applies to every segment after it, up to the next one.
        let mut map = None;
        for (i, seg) in playlist.segments.iter().enumerate() {
            let Some(seq) = first.checked_add(i as u64) else {
                return Err(bad("EXT-X-MEDIA-SEQUENCE runs past 2^64 - 1".into()));
            };
            if seg.map.is_some() {
                map = seg.map.as_ref();
            }
            if seq < next {
                continue;
            }
            if let Some(map) = map
                && self.init.as_ref().is_none_or(|(uri, _)| uri != &map.uri)
            {
                let init_path = local(dir, &map.uri).map_err(&bad)?;
                let bytes = std::fs::read(&init_path).map_err(|source| DetectError::Suspect {
                    path: init_path.clone(),
                    source,
                })?;
                self.init = Some((map.uri.clone(), bytes));
            }
            let fmp4 = map.is_some() || self.init.is_some();
            found = Some((seq, local(dir, &seg.uri).map_err(&bad)?, fmp4));
            break;
        }
        let Some((seq, seg_path, fmp4)) = found else {
            self.ended = playlist.end_list;
            return Ok(None);
        };
        self.next = Some(seq.saturating_add(1));
        if !fmp4 {
            return Ok(Some(Piece::Borrowed(seg_path)));
        }
        let mut bytes = self
            .init
            .as_ref()
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let body = std::fs::read(&seg_path).map_err(|source| DetectError::Suspect {
            path: seg_path.clone(),
            source,
        })?;
        bytes.extend_from_slice(&body);
        let mut tmp = tempfile::Builder::new()
            .suffix(".mp4")
            .tempfile()
            .map_err(DetectError::Io)?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(DetectError::Io)?;
        Ok(Some(Piece::Owned(tmp.into_temp_path())))
    }
}

/// A segment ready to decode.
enum Piece {
    /// The playlist's own file.
    Borrowed(PathBuf),
    /// A temporary file (init + segment), removed when dropped.
    Owned(tempfile::TempPath),
}

impl std::ops::Deref for Piece {
    type Target = Path;
    fn deref(&self) -> &Path {
        match self {
            Piece::Borrowed(p) => p,
            Piece::Owned(p) => p,
        }
    }
}

/// A segment URI of a local playlist as a path under its folder: no scheme, no absolute path,
/// no `..`.
fn local(dir: &Path, uri: &str) -> Result<PathBuf, String> {
    let rel = Path::new(uri);
    let plain = !uri.contains("://")
        && rel.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if !plain {
        return Err(format!(
            "segment URI {uri:?} is not a relative path under the playlist's folder"
        ));
    }
    Ok(dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_uris_stay_under_the_playlist() {
        let dir = Path::new("/cap");
        assert_eq!(
            local(dir, "seg1.ts").ok(),
            Some(PathBuf::from("/cap/seg1.ts"))
        );
        assert_eq!(
            local(dir, "./a/seg.m4s").ok(),
            Some(PathBuf::from("/cap/./a/seg.m4s"))
        );
        for bad in [
            "../x.ts",
            "/etc/passwd",
            "http://h/x.ts",
            "a/../../x.ts",
            "file:///x",
        ] {
            assert!(local(dir, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rounds_never_spend_more_than_the_whole_probability() {
        let total: f64 = (1..=1_000_000).map(spend).sum();
        assert!(total <= 1.0 && total > 0.999_99, "{total}");
        assert_eq!(spend(1), 0.5);
        assert!(spend(1) < 1.0 && spend(2) < spend(1));
        assert_eq!(spend(0), spend(1));
    }

    #[test]
    fn options_out_of_range_are_refused_with_the_range() {
        let mut f = FollowOptions {
            every_s: 0.5,
            ..FollowOptions::default()
        };
        let e = check(&f).unwrap_err().to_string();
        assert!(e.contains("1 to 600"), "{e}");
        f.every_s = 4.0;
        f.max_s = 0.0;
        assert!(check(&f).unwrap_err().to_string().contains("1 to 1000000"));
        f.max_s = 60.0;
        assert!(check(&f).is_ok());
    }
}
