//! # leaktrace-reference
//!
//! The reference index: what the detector needs to know about the unmarked title. It is the
//! contract between the packager (`leaktrace-embed` writes it while it marks) and the detector
//! (`leaktrace-detect` reads it), so it sits below both.
//!
//! Written at embed time into `reference/` beside the packaged output (never served to
//! viewers). Format version 1:
//!
//! - `reference/index.json` ([`ReferenceMeta`]): title, key version, segment duration, frame
//!   rate, frame and position counts, the statistics geometry, and the BLAKE3 of each binary
//!   file.
//! - `reference/positions.bin`: one fixed-size record per position, little-endian:
//!   `u32 frames`, then `stats_w × stats_h` `u16` mean luma of the **unmarked** frames of the
//!   position (8-bit scale × 64, area-downsampled), then `GRID_COLS × GRID_ROWS` `u16` mean
//!   mark amplitude (8-bit grey levels × 256) per pattern cell. Record `p` starts at byte
//!   `p × record_len`.
//! - `reference/frames.bin`: one 16×9 `u8` mean-luma thumbnail per frame, in order, for
//!   temporal registration (offsets, cuts, frame-rate changes).
//!
//! With the key, the detector rebuilds the expected mark of position `p` at the statistics
//! resolution as `pattern(p) × amplitude`, and compares a suspect's mean frame of that
//! position, minus the reference mean, against it ([`Reference::correlate`]).
//!
//! ```
//! use leaktrace_core::{GRID_COLS, GRID_ROWS, Position};
//! use leaktrace_reference::{Reference, ReferenceBuilder};
//!
//! let dir = tempfile::tempdir()?;
//! let (w, h) = (64, 36);
//! let mut builder = ReferenceBuilder::new(w, h);
//! let luma = vec![100u8; w * h];
//! let amplitude = vec![1.5f32; GRID_COLS * GRID_ROWS];
//! for frame in 0..4 {
//!     let position = Position::new(frame / 2);
//!     builder.add_frame(position, &luma, w, h, 0, &amplitude)?;
//! }
//! let meta = builder.write(dir.path(), "film", 1, 2000, [24, 1])?;
//! assert_eq!((meta.frames, meta.positions), (4, 2));
//!
//! let reference = Reference::load(dir.path())?;
//! let stats = reference.position(Position::new(1)).expect("two positions");
//! assert_eq!(stats.frames, 2);
//! assert!(stats.mean_luma.iter().all(|&v| v == 100.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use leaktrace_core::{DerivedKey, GRID_COLS, GRID_ROWS, Pattern, Position};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors of reading or writing a reference index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The path given for the index is not a directory.
    #[error("{} is not a directory (expected the PKG/reference directory written by embed)", .0.display())]
    NotADirectory(PathBuf),
    /// The index on disk is not a reference index of this format, or is inconsistent.
    #[error("bad reference index: {0}")]
    Format(&'static str),
    /// Frames were given out of order or with the wrong size.
    #[error("reference index input: {0}")]
    Input(&'static str),
    /// The index metadata could not be serialised.
    #[error("could not serialise the reference index: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A copy of the title could not be decoded ([`position_means`]).
    #[error(transparent)]
    Media(#[from] leaktrace_media::MediaError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReferenceError + '_ {
    move |source| ReferenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Width of the per-position luma statistics.
pub const STATS_WIDTH: usize = 256;
/// Side of the per-frame thumbnails (16×9).
pub const THUMB: (usize, usize) = (16, 9);
/// Format version written.
pub const FORMAT_VERSION: u32 = 1;

/// `reference/index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMeta {
    /// Always `leaktrace-reference`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Title id.
    pub title: String,
    /// Master key version the title was marked with.
    pub key_version: u32,
    /// Segment duration in milliseconds.
    pub segment_ms: u64,
    /// Frame rate `[num, den]`.
    pub frame_rate: [i32; 2],
    /// Frames in the title.
    pub frames: u64,
    /// Positions in the title.
    pub positions: u32,
    /// Source picture size `[w, h]`.
    pub source_size: [usize; 2],
    /// Statistics size `[w, h]`.
    pub stats_size: [usize; 2],
    /// Pattern grid `[cols, rows]`.
    pub grid: [usize; 2],
    /// Bytes per record of `positions.bin`.
    pub record_len: usize,
    /// BLAKE3 (hex) of `positions.bin`.
    pub positions_blake3: String,
    /// BLAKE3 (hex) of `frames.bin`.
    pub frames_blake3: String,
    /// A live channel's position whose first parts may have been served before it was
    /// complete (low-latency delivery): written before the first part leaves, cleared when
    /// the position is appended. An index reopened with it set records that position as
    /// abandoned ([`ReferenceAppender::abandoned`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened: Option<u32>,
}

/// Area-downsamples a plane of `w × h` samples (on the 8-bit scale after `>> shift`) to
/// `ow × oh` means.
pub fn downsample<S: Copy + Into<u32>>(
    src: &[S],
    w: usize,
    h: usize,
    shift: u8,
    ow: usize,
    oh: usize,
) -> Vec<f32> {
    let xs: Vec<(usize, usize)> = (0..ow)
        .map(|o| (o * w / ow, ((o + 1) * w / ow).max(o * w / ow + 1).min(w)))
        .collect();
    let mut out = vec![0f32; ow * oh];
    let scale = f32::from(1u16 << shift);
    // Rows are first summed column by column (a vectorisable pass over the frame), then each
    // output pixel sums its few columns.
    let mut acc = vec![0u32; w];
    for oy in 0..oh {
        let (y0, y1) = (oy * h / oh, ((oy + 1) * h / oh).max(oy * h / oh + 1).min(h));
        acc.fill(0);
        for y in y0..y1 {
            for (a, v) in acc.iter_mut().zip(&src[y * w..(y + 1) * w]) {
                *a += (*v).into();
            }
        }
        for (o, &(x0, x1)) in out[oy * ow..(oy + 1) * ow].iter_mut().zip(&xs) {
            let sum: u32 = acc[x0..x1].iter().sum();
            *o = sum as f32 / ((x1 - x0) * (y1 - y0)) as f32 / scale;
        }
    }
    out
}

/// Area-downsamples an `f32` image of `w × h` to `ow × oh` means.
pub fn downsample_f32(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let mut out = vec![0f32; ow * oh];
    for (oy, row) in out.chunks_mut(ow).enumerate() {
        let (y0, y1) = (oy * h / oh, ((oy + 1) * h / oh).max(oy * h / oh + 1).min(h));
        for (ox, o) in row.iter_mut().enumerate() {
            let (x0, x1) = (ox * w / ow, ((ox + 1) * w / ow).max(ox * w / ow + 1).min(w));
            let mut sum = 0f32;
            for y in y0..y1 {
                sum += src[y * w + x0..y * w + x1].iter().sum::<f32>();
            }
            *o = sum / ((x1 - x0) * (y1 - y0)) as f32;
        }
    }
    out
}

/// Statistics height for a source aspect ratio (even, at least 2).
pub fn stats_height(src_w: usize, src_h: usize) -> usize {
    (((STATS_WIDTH * src_h) as f64 / src_w as f64 / 2.0).round() as usize * 2).max(2)
}

/// Accumulates the reference index while frames are marked.
#[derive(Debug)]
pub struct ReferenceBuilder {
    stats: (usize, usize),
    source: (usize, usize),
    record_len: usize,
    positions: Vec<u8>,
    frames: Vec<u8>,
    current: Option<(Position, u32, Vec<f64>, Vec<f64>)>,
    /// Positions already handed out by [`ReferenceBuilder::take_completed`] (or written before
    /// a live channel resumed): the first record held is this position.
    base: u32,
}

/// One finished position of a live index ([`ReferenceBuilder::take_completed`]), ready for
/// [`ReferenceAppender::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPosition {
    /// The position.
    pub position: Position,
    /// Frames in it.
    pub frames: u32,
    record: Vec<u8>,
    thumbnails: Vec<u8>,
}

impl ReferenceBuilder {
    /// A builder for a source of `w × h`.
    pub fn new(w: usize, h: usize) -> Self {
        Self::resume(w, h, Position::new(0))
    }

    /// A builder whose first position is `next` (a live channel resuming after the positions
    /// its index already holds).
    pub fn resume(w: usize, h: usize, next: Position) -> Self {
        let stats = (STATS_WIDTH, stats_height(w, h));
        let record_len = 4 + 2 * stats.0 * stats.1 + 2 * GRID_COLS * GRID_ROWS;
        Self {
            stats,
            source: (w, h),
            record_len,
            positions: Vec::new(),
            frames: Vec::new(),
            current: None,
            base: next.get(),
        }
    }

    /// Ends the position being filled (a live channel that stops), so that
    /// [`ReferenceBuilder::take_completed`] hands it out too.
    pub fn complete_current(&mut self) -> Result<(), ReferenceError> {
        let next = self
            .current
            .as_ref()
            .map(|c| Position::new(c.0.get() + 1))
            .unwrap_or(Position::new(self.base));
        self.flush(next)
    }

    /// Hands out the positions finished so far (every one before the position of the last
    /// frame added), in order, with their frames' thumbnails; the position still being filled
    /// stays.
    pub fn take_completed(&mut self) -> Vec<CompletedPosition> {
        let thumb = THUMB.0 * THUMB.1;
        let mut out = Vec::new();
        let mut frames_at = 0;
        for (k, rec) in self.positions.chunks_exact(self.record_len).enumerate() {
            let frames = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let end = frames_at + frames as usize * thumb;
            out.push(CompletedPosition {
                position: Position::new(self.base + k as u32),
                frames,
                record: rec.to_vec(),
                thumbnails: self.frames.get(frames_at..end).unwrap_or_default().to_vec(),
            });
            frames_at = end;
        }
        self.base += out.len() as u32;
        self.positions.clear();
        self.frames.drain(..frames_at.min(self.frames.len()));
        out
    }

    /// Adds one unmarked frame: its luma samples (`w × h`, packed rows, on the 8-bit scale
    /// after `>> shift`) and the mean mark amplitude of each pattern cell in grey levels
    /// (`GRID_COLS × GRID_ROWS`, row by row; [`cell_centre`] says where to sample it).
    pub fn add_frame<S: Copy + Into<u32>>(
        &mut self,
        position: Position,
        luma: &[S],
        w: usize,
        h: usize,
        shift: u8,
        amplitude: &[f32],
    ) -> Result<(), ReferenceError> {
        if (w, h) != self.source || luma.len() < w * h {
            return Err(ReferenceError::Input(
                "the frame's size differs from the builder's source size",
            ));
        }
        if amplitude.len() != GRID_COLS * GRID_ROWS {
            return Err(ReferenceError::Input(
                "one amplitude per pattern cell (GRID_COLS × GRID_ROWS) is needed",
            ));
        }
        let stats = downsample(&luma[..w * h], w, h, shift, self.stats.0, self.stats.1);
        // The thumbnail is the statistics image averaged down again (cheap, and the same area
        // average up to rounding).
        let thumb = downsample_f32(&stats, self.stats.0, self.stats.1, THUMB.0, THUMB.1);
        self.frames
            .extend(thumb.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        let amp: Vec<f64> = amplitude.iter().map(|&a| f64::from(a)).collect();
        match &mut self.current {
            Some((p, n, s, a)) if *p == position => {
                *n += 1;
                s.iter_mut()
                    .zip(&stats)
                    .for_each(|(x, &v)| *x += f64::from(v));
                a.iter_mut().zip(&amp).for_each(|(x, &v)| *x += v);
            }
            _ => {
                self.flush(position)?;
                self.current = Some((
                    position,
                    1,
                    stats.iter().map(|&v| f64::from(v)).collect(),
                    amp,
                ));
            }
        }
        Ok(())
    }

    fn flush(&mut self, next: Position) -> Result<(), ReferenceError> {
        if let Some((p, n, s, a)) = self.current.take() {
            let expected = self.base as usize + self.positions.len() / self.record_len;
            if p.get() as usize != expected || next.get() <= p.get() && next != p {
                return Err(ReferenceError::Input(
                    "positions must be added in order without gaps",
                ));
            }
            self.positions.extend_from_slice(&n.to_le_bytes());
            for v in s {
                self.positions.extend_from_slice(
                    &((v / f64::from(n) * 64.0).round().clamp(0.0, 65535.0) as u16).to_le_bytes(),
                );
            }
            for v in a {
                self.positions.extend_from_slice(
                    &((v / f64::from(n) * 256.0).round().clamp(0.0, 65535.0) as u16).to_le_bytes(),
                );
            }
        }
        Ok(())
    }

    /// Writes `index.json`, `positions.bin` and `frames.bin` into `dir`.
    pub fn write(
        mut self,
        dir: &Path,
        title: &str,
        key_version: u32,
        segment_ms: u64,
        frame_rate: [i32; 2],
    ) -> Result<ReferenceMeta, ReferenceError> {
        let last = self
            .current
            .as_ref()
            .map(|c| Position::new(c.0.get() + 1))
            .unwrap_or(Position::new(0));
        self.flush(last)?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let meta = ReferenceMeta {
            format: "leaktrace-reference".into(),
            version: FORMAT_VERSION,
            title: title.into(),
            key_version,
            segment_ms,
            frame_rate,
            frames: (self.frames.len() / (THUMB.0 * THUMB.1)) as u64,
            positions: (self.positions.len() / self.record_len) as u32,
            source_size: [self.source.0, self.source.1],
            stats_size: [self.stats.0, self.stats.1],
            grid: [GRID_COLS, GRID_ROWS],
            record_len: self.record_len,
            positions_blake3: blake3::hash(&self.positions).to_hex().to_string(),
            frames_blake3: blake3::hash(&self.frames).to_hex().to_string(),
            opened: None,
        };
        write_file(&dir.join("positions.bin"), &self.positions)?;
        write_file(&dir.join("frames.bin"), &self.frames)?;
        let json = serde_json::to_vec_pretty(&meta)?;
        write_file(&dir.join("index.json"), &json)?;
        Ok(meta)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReferenceError> {
    std::fs::write(path, bytes).map_err(io(path))
}

/// The reference index of a live channel, written while it is on air: every finished position
/// is appended to `positions.bin` and `frames.bin`, and `index.json` is replaced (written
/// beside it and renamed) with the new counts and the BLAKE3 of both files, so a detector can
/// load the index at any moment ([`Reference::load`] reads the prefix `index.json` describes).
/// Reopened after a crash, the files are cut back to what `index.json` last described, and
/// the channel resumes at [`ReferenceAppender::next_position`].
#[derive(Debug)]
pub struct ReferenceAppender {
    dir: PathBuf,
    meta: ReferenceMeta,
    positions_hash: blake3::Hasher,
    frames_hash: blake3::Hasher,
    abandoned: Option<Position>,
}

impl ReferenceAppender {
    /// Opens the index in `dir`, or creates it: `source` is the picture size marked, and the
    /// title, key version, segment duration and frame rate must be those of an index already
    /// there.
    pub fn open(
        dir: &Path,
        title: &str,
        key_version: u32,
        segment_ms: u64,
        frame_rate: [i32; 2],
        source: (usize, usize),
    ) -> Result<Self, ReferenceError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let stats = [STATS_WIDTH, stats_height(source.0, source.1)];
        let record_len = 4 + 2 * stats[0] * stats[1] + 2 * GRID_COLS * GRID_ROWS;
        let json = dir.join("index.json");
        let meta = if json.exists() {
            let bytes = std::fs::read(&json).map_err(io(&json))?;
            let meta: ReferenceMeta = serde_json::from_slice(&bytes)
                .map_err(|_| ReferenceError::Format("index.json is not a reference index"))?;
            if meta.title != title
                || meta.key_version != key_version
                || meta.segment_ms != segment_ms
                || meta.frame_rate != frame_rate
                || meta.source_size != [source.0, source.1]
                || meta.record_len != record_len
            {
                return Err(ReferenceError::Format(
                    "the index there belongs to another title, key, segment duration, frame \
                     rate or picture size",
                ));
            }
            meta
        } else {
            ReferenceMeta {
                format: "leaktrace-reference".into(),
                version: FORMAT_VERSION,
                title: title.into(),
                key_version,
                segment_ms,
                frame_rate,
                frames: 0,
                positions: 0,
                source_size: [source.0, source.1],
                stats_size: stats,
                grid: [GRID_COLS, GRID_ROWS],
                record_len,
                positions_blake3: blake3::hash(&[]).to_hex().to_string(),
                frames_blake3: blake3::hash(&[]).to_hex().to_string(),
                opened: None,
            }
        };
        let mut appender = Self {
            dir: dir.into(),
            meta,
            positions_hash: blake3::Hasher::new(),
            frames_hash: blake3::Hasher::new(),
            abandoned: None,
        };
        let pos_len = appender.meta.positions as u64 * record_len as u64;
        let frames_len = appender.meta.frames * (THUMB.0 * THUMB.1) as u64;
        let p = appender.cut("positions.bin", pos_len)?;
        let f = appender.cut("frames.bin", frames_len)?;
        appender.positions_hash.update(&p);
        appender.frames_hash.update(&f);
        if appender.positions_hash.finalize().to_hex().as_str() != appender.meta.positions_blake3
            || appender.frames_hash.finalize().to_hex().as_str() != appender.meta.frames_blake3
        {
            return Err(ReferenceError::Format(
                "reference files do not match their recorded BLAKE3",
            ));
        }
        match appender.meta.opened.take() {
            // Parts of this position may have been served, and the pictures behind them are
            // gone: the position is never used again.
            Some(p) if p == appender.meta.positions => {
                let position = Position::new(p);
                appender.append(&CompletedPosition::abandoned(
                    position,
                    nominal_frames(segment_ms, frame_rate, p),
                    record_len,
                ))?;
                appender.abandoned = Some(position);
            }
            _ => appender.write_meta()?,
        }
        Ok(appender)
    }

    /// The position this opening recorded as abandoned: it had been opened
    /// ([`ReferenceAppender::open_position`]) and never appended.
    pub fn abandoned(&self) -> Option<Position> {
        self.abandoned
    }

    /// Records, durably, that parts of `position` (it must be
    /// [`ReferenceAppender::next_position`]) are about to be served before the position is
    /// complete. If the channel stops before [`ReferenceAppender::append`] brings the position,
    /// the next [`ReferenceAppender::open`] records it as abandoned and the channel goes on
    /// after it, so no position is ever served with two different pictures.
    pub fn open_position(&mut self, position: Position) -> Result<(), ReferenceError> {
        if position != self.next_position() {
            return Err(ReferenceError::Input(
                "only the next position can be opened",
            ));
        }
        if self.meta.opened != Some(position.get()) {
            self.meta.opened = Some(position.get());
            self.write_meta()?;
        }
        Ok(())
    }

    /// Cuts `name` back to `len` bytes (creating it empty) and returns its content.
    fn cut(&self, name: &str, len: u64) -> Result<Vec<u8>, ReferenceError> {
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let have = file.metadata().map_err(io(&path))?.len();
        if have < len {
            return Err(ReferenceError::Format(
                "a reference file is shorter than index.json says",
            ));
        }
        file.set_len(len).map_err(io(&path))?;
        std::fs::read(&path).map_err(io(&path))
    }

    /// The position the next [`ReferenceAppender::append`] must bring.
    pub fn next_position(&self) -> Position {
        Position::new(self.meta.positions)
    }

    /// What the index on disk describes now.
    pub fn meta(&self) -> &ReferenceMeta {
        &self.meta
    }

    /// Appends one finished position (it must be [`ReferenceAppender::next_position`]) and
    /// publishes the new `index.json`.
    pub fn append(&mut self, done: &CompletedPosition) -> Result<(), ReferenceError> {
        if done.position != self.next_position() {
            return Err(ReferenceError::Input(
                "positions must be appended in order without gaps",
            ));
        }
        if done.record.len() != self.meta.record_len
            || done.thumbnails.len() != done.frames as usize * THUMB.0 * THUMB.1
        {
            return Err(ReferenceError::Input(
                "the position was built for another picture size",
            ));
        }
        use std::io::Write;
        for (name, bytes) in [
            ("positions.bin", &done.record),
            ("frames.bin", &done.thumbnails),
        ] {
            let path = self.dir.join(name);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(bytes))
                .map_err(io(&path))?;
        }
        self.positions_hash.update(&done.record);
        self.frames_hash.update(&done.thumbnails);
        self.meta.positions += 1;
        self.meta.frames += u64::from(done.frames);
        self.meta.opened = None;
        self.meta.positions_blake3 = self.positions_hash.finalize().to_hex().to_string();
        self.meta.frames_blake3 = self.frames_hash.finalize().to_hex().to_string();
        self.write_meta()
    }

    /// Replaces `index.json`: written beside it, flushed to the disk, renamed.
    fn write_meta(&self) -> Result<(), ReferenceError> {
        use std::io::Write;
        let json = serde_json::to_vec_pretty(&self.meta)?;
        let tmp = self.dir.join(".index.json.tmp");
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&json)?;
                f.sync_data()
            })
            .map_err(io(&tmp))?;
        let path = self.dir.join("index.json");
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// Frames of `position` on a timeline of `segment_ms` positions at `frame_rate`: a position
/// starts at the first frame at or after its start time.
pub fn nominal_frames(segment_ms: u64, frame_rate: [i32; 2], position: u32) -> u32 {
    let first = |p: u32| -> u128 {
        let num = u128::from(p) * u128::from(segment_ms) * frame_rate[0].max(1) as u128;
        num.div_ceil(1000 * frame_rate[1].max(1) as u128)
    };
    u32::try_from(first(position.saturating_add(1)) - first(position)).unwrap_or(u32::MAX)
}

impl CompletedPosition {
    /// The record of a position a live channel abandoned: its frames' place on the timeline
    /// is kept (black thumbnails), and it carries no mark ([`Reference::position`] gives
    /// `None`).
    fn abandoned(position: Position, frames: u32, record_len: usize) -> Self {
        let mut record = vec![0u8; record_len];
        record[..4].copy_from_slice(&frames.to_le_bytes());
        Self {
            position,
            frames,
            record,
            thumbnails: vec![0; frames as usize * THUMB.0 * THUMB.1],
        }
    }
}

/// The pixel of a `w × h` frame at which the mark amplitude of pattern cell (`col`, `row`) is
/// sampled for [`ReferenceBuilder::add_frame`]: the cell's centre.
pub fn cell_centre(w: usize, h: usize, col: usize, row: usize) -> (usize, usize) {
    let y = ((row as f64 + 0.5) * h as f64 / GRID_ROWS as f64) as usize;
    let x = ((col as f64 + 0.5) * w as f64 / GRID_COLS as f64) as usize;
    (x.min(w.saturating_sub(1)), y.min(h.saturating_sub(1)))
}

/// A loaded reference index.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The metadata.
    pub meta: ReferenceMeta,
    positions: Vec<u8>,
    frames: Vec<u8>,
}

/// The statistics of one position.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionStats {
    /// Frames in the position.
    pub frames: u32,
    /// Mean unmarked luma at the statistics size (8-bit scale).
    pub mean_luma: Vec<f32>,
    /// Mean mark amplitude per pattern cell (grey levels).
    pub amplitude: Vec<f32>,
}

impl Reference {
    /// Loads and verifies (BLAKE3) a reference index directory.
    pub fn load(dir: &Path) -> Result<Self, ReferenceError> {
        if !std::fs::metadata(dir).map_err(io(dir))?.is_dir() {
            return Err(ReferenceError::NotADirectory(dir.to_path_buf()));
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(io(&path))
        };
        let meta: ReferenceMeta = serde_json::from_slice(&read("index.json")?)
            .map_err(|_| ReferenceError::Format("index.json is not a reference index"))?;
        if meta.format != "leaktrace-reference" || meta.version != FORMAT_VERSION {
            return Err(ReferenceError::Format(
                "unknown reference format or version (expected leaktrace-reference v1)",
            ));
        }
        // A live channel's index grows while it is read: `index.json` is replaced after the
        // files it describes were appended to, so the prefix it names is complete.
        let mut positions = read("positions.bin")?;
        let mut frames = read("frames.bin")?;
        let described = |n: u64, each: usize| usize::try_from(n).ok()?.checked_mul(each);
        if let Some(len) = described(u64::from(meta.positions), meta.record_len) {
            positions.truncate(len);
        }
        if let Some(len) = described(meta.frames, THUMB.0 * THUMB.1) {
            frames.truncate(len);
        }
        if blake3::hash(&positions).to_hex().as_str() != meta.positions_blake3
            || blake3::hash(&frames).to_hex().as_str() != meta.frames_blake3
        {
            return Err(ReferenceError::Format(
                "reference files do not match their recorded BLAKE3",
            ));
        }
        let want =
            4 + 2 * meta.stats_size[0] * meta.stats_size[1] + 2 * meta.grid[0] * meta.grid[1];
        if meta.record_len != want
            || positions.len() != meta.record_len * meta.positions as usize
            || meta.grid != [GRID_COLS, GRID_ROWS]
        {
            return Err(ReferenceError::Format(
                "reference record sizes are inconsistent",
            ));
        }
        if leaktrace_core::SegmentDuration::from_millis(meta.segment_ms).is_err() {
            return Err(ReferenceError::Format(
                "segment duration out of range (expected 1000 to 6000 ms)",
            ));
        }
        if meta.frame_rate.iter().any(|&v| v <= 0) {
            return Err(ReferenceError::Format("frame rate is not positive"));
        }
        Ok(Self {
            meta,
            positions,
            frames,
        })
    }

    /// The statistics of `position`, `None` past the end and for a position that carries no
    /// mark (one a live channel abandoned).
    pub fn position(&self, position: Position) -> Option<PositionStats> {
        let i = position.get() as usize;
        let rec = self
            .positions
            .get(i * self.meta.record_len..(i + 1) * self.meta.record_len)?;
        if rec[4..].iter().all(|&b| b == 0) {
            return None;
        }
        let frames = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let n_stats = self.meta.stats_size[0] * self.meta.stats_size[1];
        let vals = |from: usize, n: usize, div: f32| -> Vec<f32> {
            rec[from..from + 2 * n]
                .chunks_exact(2)
                .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / div)
                .collect()
        };
        Some(PositionStats {
            frames,
            mean_luma: vals(4, n_stats, 64.0),
            amplitude: vals(4 + 2 * n_stats, GRID_COLS * GRID_ROWS, 256.0),
        })
    }

    /// The statistics grid `(w, h)` of every position's mean luma.
    pub fn stats_size(&self) -> (usize, usize) {
        (self.meta.stats_size[0], self.meta.stats_size[1])
    }

    /// The 16×9 thumbnails of all frames, concatenated.
    pub fn thumbnails(&self) -> &[u8] {
        &self.frames
    }

    /// The expected mark of `position` (variant A; B is its negation) at the statistics size.
    pub fn expected_mark(&self, pattern_key: &DerivedKey, position: Position) -> Option<Vec<f32>> {
        let stats = self.position(position)?;
        let (w, h) = (self.meta.stats_size[0], self.meta.stats_size[1]);
        let field = Pattern::new(pattern_key, position).render(w, h);
        Some(
            field
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (x, y) = (i % w, i / w);
                    let cell = (y * GRID_ROWS / h) * GRID_COLS + x * GRID_COLS / w;
                    v * stats.amplitude[cell]
                })
                .collect(),
        )
    }

    /// Normalised correlation of a suspect's mean frame of `position` (at the statistics size,
    /// 8-bit scale) minus the reference mean, with the expected A mark: positive means A,
    /// negative means B. Both signals have their mean removed first.
    pub fn correlate(
        &self,
        pattern_key: &DerivedKey,
        position: Position,
        suspect_mean: &[f32],
    ) -> Option<f64> {
        let stats = self.position(position)?;
        let expected = self.expected_mark(pattern_key, position)?;
        if suspect_mean.len() != expected.len() {
            return None;
        }
        let d: Vec<f64> = suspect_mean
            .iter()
            .zip(&stats.mean_luma)
            .map(|(&s, &r)| f64::from(s - r))
            .collect();
        Some(normalised_correlation(
            &d,
            &expected.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        ))
    }
}

/// Decodes `file` (a copy of the title: a variant, a session's stream, a re-encode) and returns,
/// per position, the mean frame at the statistics size, frames being timed by index at the
/// reference frame rate. This is the naive, unregistered view used by tests and tuning; the
/// detector adds temporal and spatial registration on top.
pub fn position_means(file: &Path, meta: &ReferenceMeta) -> Result<Vec<Vec<f32>>, ReferenceError> {
    let (sw, sh) = (meta.stats_size[0], meta.stats_size[1]);
    let seg = leaktrace_core::SegmentDuration::from_millis(meta.segment_ms)
        .map_err(|_| ReferenceError::Format("segment duration out of range"))?;
    let [num, den] = meta.frame_rate;
    let mut dec = leaktrace_media::Decoder::open(file)?;
    let (w, h) = dec.size();
    let mut sums: Vec<(u32, Vec<f64>)> = Vec::new();
    let mut i = 0i64;
    while let Some(f) = dec.next_frame()? {
        let p = seg.position_at(i * i64::from(den), i64::from(num)).get() as usize;
        let ds = match &f.y {
            leaktrace_media::Samples::U8(y) => downsample(y, w, h, 0, sw, sh),
            leaktrace_media::Samples::U16(y) => downsample(y, w, h, 2, sw, sh),
            _ => return Err(ReferenceError::Input("unsupported sample type")),
        };
        if sums.len() <= p {
            sums.resize(p + 1, (0, vec![0.0; sw * sh]));
        }
        sums[p].0 += 1;
        sums[p]
            .1
            .iter_mut()
            .zip(&ds)
            .for_each(|(a, &v)| *a += f64::from(v));
        i += 1;
    }
    Ok(sums
        .into_iter()
        .map(|(n, s)| {
            s.into_iter()
                .map(|v| (v / f64::from(n.max(1))) as f32)
                .collect()
        })
        .collect())
}

/// Pearson correlation of two equally long signals (0 when either is constant).
pub fn normalised_correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x - ma, y - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_averages_blocks() {
        let src: Vec<u8> = (0..8 * 4)
            .map(|i| if i % 8 < 4 { 10 } else { 30 })
            .collect();
        let d = downsample(&src, 8, 4, 0, 2, 1);
        assert_eq!(d, vec![10.0, 30.0]);
        let src10: Vec<u16> = src.iter().map(|&v| u16::from(v) * 4).collect();
        assert_eq!(downsample(&src10, 8, 4, 2, 2, 1), vec![10.0, 30.0]);
    }

    fn built(dir: &Path) -> ReferenceMeta {
        let (w, h) = (32, 18);
        let mut builder = ReferenceBuilder::new(w, h);
        let amplitude = vec![2.0f32; GRID_COLS * GRID_ROWS];
        for frame in 0..6u32 {
            let luma: Vec<u16> = (0..w * h).map(|i| (i % 256) as u16 * 4).collect();
            builder
                .add_frame(Position::new(frame / 3), &luma, w, h, 2, &amplitude)
                .unwrap();
        }
        builder.write(dir, "t", 3, 2000, [30, 1]).unwrap()
    }

    /// A live index, appended position by position, ends up byte-identical to the index the
    /// file packager writes for the same frames; it loads at every step, and a crash in the
    /// middle of an append is cut back on reopening.
    #[test]
    fn live_index_appends_and_resumes() {
        let (w, h) = (32, 18);
        let amplitude = vec![2.0f32; GRID_COLS * GRID_ROWS];
        let luma =
            |f: u32| -> Vec<u8> { (0..w * h).map(|i| ((i + f as usize) % 256) as u8).collect() };
        let whole = tempfile::tempdir().unwrap();
        let mut builder = ReferenceBuilder::new(w, h);
        for f in 0..12u32 {
            builder
                .add_frame(Position::new(f / 3), &luma(f), w, h, 0, &amplitude)
                .unwrap();
        }
        let want = builder.write(whole.path(), "ch", 1, 2000, [30, 1]).unwrap();

        let live = tempfile::tempdir().unwrap();
        let open = || ReferenceAppender::open(live.path(), "ch", 1, 2000, [30, 1], (w, h));
        let mut app = open().unwrap();
        let mut builder = ReferenceBuilder::resume(w, h, app.next_position());
        for f in 0..7u32 {
            builder
                .add_frame(Position::new(f / 3), &luma(f), w, h, 0, &amplitude)
                .unwrap();
            for done in builder.take_completed() {
                app.append(&done).unwrap();
                assert_eq!(
                    Reference::load(live.path()).unwrap().meta.positions,
                    done.position.get() + 1
                );
            }
        }
        assert_eq!(app.next_position(), Position::new(2));
        // A crash halfway through appending position 2: bytes past what index.json describes.
        drop(app);
        std::fs::OpenOptions::new()
            .append(true)
            .open(live.path().join("positions.bin"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[7; 100]))
            .unwrap();
        assert_eq!(Reference::load(live.path()).unwrap().meta.positions, 2);
        let mut app = open().unwrap();
        assert_eq!(app.next_position(), Position::new(2));
        let mut builder = ReferenceBuilder::resume(w, h, app.next_position());
        for f in 6..13u32 {
            builder
                .add_frame(Position::new(f / 3), &luma(f), w, h, 0, &amplitude)
                .unwrap();
            for done in builder.take_completed() {
                app.append(&done).unwrap();
            }
        }
        assert_eq!(app.meta(), &want);
        for name in ["positions.bin", "frames.bin"] {
            assert_eq!(
                std::fs::read(live.path().join(name)).unwrap(),
                std::fs::read(whole.path().join(name)).unwrap()
            );
        }
        // Another title's index is not resumed.
        assert!(ReferenceAppender::open(live.path(), "other", 1, 2000, [30, 1], (w, h)).is_err());
    }

    /// A position opened for low-latency delivery and never completed is abandoned when the
    /// index is reopened: it keeps its place on the timeline, carries no mark, and the channel
    /// goes on after it.
    #[test]
    fn an_opened_position_left_incomplete_is_abandoned_on_reopening() {
        let (w, h) = (32, 18);
        let amplitude = vec![2.0f32; GRID_COLS * GRID_ROWS];
        let luma = vec![90u8; w * h];
        let live = tempfile::tempdir().unwrap();
        // 2-s positions at 30000/1001 fps: 60 frames, then 60 (59.94 per position).
        let open = || ReferenceAppender::open(live.path(), "ch", 1, 2000, [30000, 1001], (w, h));
        let mut app = open().unwrap();
        assert_eq!(app.abandoned(), None);
        let mut builder = ReferenceBuilder::resume(w, h, app.next_position());
        for f in 0..60u32 {
            builder
                .add_frame(Position::new(0), &luma, w, h, 0, &amplitude)
                .unwrap();
            if f == 0 {
                app.open_position(Position::new(0)).unwrap();
            }
        }
        builder.complete_current().unwrap();
        for done in builder.take_completed() {
            app.append(&done).unwrap();
        }
        assert_eq!(app.meta().opened, None);
        assert!(app.open_position(Position::new(5)).is_err());
        app.open_position(Position::new(1)).unwrap();
        // The packager dies with parts of position 1 served.
        drop(app);
        assert_eq!(Reference::load(live.path()).unwrap().meta.opened, Some(1));
        let app = open().unwrap();
        assert_eq!(app.abandoned(), Some(Position::new(1)));
        assert_eq!(app.next_position(), Position::new(2));
        let reference = Reference::load(live.path()).unwrap();
        assert_eq!(reference.meta.opened, None);
        assert_eq!(
            reference.meta.frames,
            60 + u64::from(nominal_frames(2000, [30000, 1001], 1))
        );
        assert_eq!(reference.position(Position::new(0)).unwrap().frames, 60);
        assert!(reference.position(Position::new(1)).is_none());
        // Reopened again, nothing more is abandoned.
        drop(app);
        let app = open().unwrap();
        assert_eq!(
            (app.abandoned(), app.next_position()),
            (None, Position::new(2))
        );
        // 17 positions of 59.94 frames hold 1019 frames: one of them has 59.
        let counts: Vec<u32> = (0..17)
            .map(|p| nominal_frames(2000, [30000, 1001], p))
            .collect();
        assert_eq!(counts.iter().sum::<u32>(), 1019);
        assert_eq!(counts.iter().filter(|&&n| n == 59).count(), 1);
    }

    #[test]
    fn written_index_loads_with_its_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let meta = built(dir.path());
        assert_eq!((meta.frames, meta.positions, meta.key_version), (6, 2, 3));
        let reference = Reference::load(dir.path()).unwrap();
        assert_eq!(reference.meta, meta);
        assert_eq!(reference.thumbnails().len(), 6 * THUMB.0 * THUMB.1);
        let stats = reference.position(Position::new(1)).unwrap();
        assert_eq!(stats.frames, 3);
        assert!(stats.amplitude.iter().all(|&a| a == 2.0));
        assert!(reference.position(Position::new(2)).is_none());
    }

    #[test]
    fn a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        built(dir.path());
        let path = dir.path().join("positions.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = Reference::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("BLAKE3"), "{err}");
        std::fs::write(dir.path().join("index.json"), b"{}").unwrap();
        assert!(matches!(
            Reference::load(dir.path()),
            Err(ReferenceError::Format(_))
        ));
    }

    #[test]
    fn frames_out_of_order_or_of_another_size_are_refused() {
        let (w, h) = (32, 18);
        let luma = vec![0u8; w * h];
        let amplitude = vec![0f32; GRID_COLS * GRID_ROWS];
        let mut builder = ReferenceBuilder::new(w, h);
        builder
            .add_frame(Position::new(0), &luma, w, h, 0, &amplitude)
            .unwrap();
        assert!(matches!(
            builder.add_frame(Position::new(2), &luma, w, h, 0, &amplitude),
            Ok(())
        ));
        // Position 2 after 0 leaves a gap: refused when position 1's record would be due.
        assert!(matches!(
            builder.add_frame(Position::new(3), &luma, w, h, 0, &amplitude),
            Err(ReferenceError::Input(_))
        ));
        assert!(matches!(
            ReferenceBuilder::new(w, h).add_frame(Position::new(0), &luma, w, h - 2, 0, &amplitude),
            Err(ReferenceError::Input(_))
        ));
        assert!(matches!(
            ReferenceBuilder::new(w, h).add_frame(
                Position::new(0),
                &luma,
                w,
                h,
                0,
                &amplitude[1..]
            ),
            Err(ReferenceError::Input(_))
        ));
    }

    #[test]
    fn correlation_is_signed_and_bounded() {
        let a = [1.0, -1.0, 2.0, 0.5];
        let neg: Vec<f64> = a.iter().map(|v| -v).collect();
        assert!((normalised_correlation(&a, &a) - 1.0).abs() < 1e-12);
        assert!((normalised_correlation(&a, &neg) + 1.0).abs() < 1e-12);
        assert_eq!(normalised_correlation(&a, &[3.0; 4]), 0.0);
    }
}
