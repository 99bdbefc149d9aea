//! The reference index: what the detector needs to know about the unmarked title.
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

use crate::{EmbedError, Mask};
use leaktrace_core::{DerivedKey, GRID_COLS, GRID_ROWS, Pattern, Position};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

/// Area-downsamples a plane of `w × h` samples (on the 8-bit scale after `>> shift`) to
/// `ow × oh` means.
pub fn downsample<S: crate::Sample>(
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
                *a += v.to_u32();
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
}

impl ReferenceBuilder {
    /// A builder for a source of `w × h`.
    pub fn new(w: usize, h: usize) -> Self {
        let stats = (STATS_WIDTH, stats_height(w, h));
        let record_len = 4 + 2 * stats.0 * stats.1 + 2 * GRID_COLS * GRID_ROWS;
        Self {
            stats,
            source: (w, h),
            record_len,
            positions: Vec::new(),
            frames: Vec::new(),
            current: None,
        }
    }

    /// Adds one unmarked frame with the mask used to mark it (mask and frame of one size).
    pub fn add_frame<S: crate::Sample>(
        &mut self,
        position: Position,
        luma: &crate::LumaPlane<'_, S>,
        mask: &Mask,
    ) -> Result<(), EmbedError> {
        let (w, h) = (luma.width(), luma.height());
        let packed: Vec<S>;
        let samples: &[S] = if luma.stride() == w {
            luma.rows_packed()
        } else {
            packed = (0..h).flat_map(|y| luma.row(y).iter().copied()).collect();
            &packed
        };
        let shift = luma.bit_depth().saturating_sub(8);
        let stats = downsample(samples, w, h, shift, self.stats.0, self.stats.1);
        // The thumbnail is the statistics image averaged down again (cheap, and the same area
        // average up to rounding).
        let thumb = downsample_f32(&stats, self.stats.0, self.stats.1, THUMB.0, THUMB.1);
        self.frames
            .extend(thumb.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        let mut amp = vec![0f64; GRID_COLS * GRID_ROWS];
        for (r, row) in amp.chunks_mut(GRID_COLS).enumerate() {
            let y = ((r as f64 + 0.5) * h as f64 / GRID_ROWS as f64) as usize;
            for (c, a) in row.iter_mut().enumerate() {
                let x = ((c as f64 + 0.5) * w as f64 / GRID_COLS as f64) as usize;
                *a = f64::from(mask.amplitude_at(x.min(w - 1), y.min(h - 1)));
            }
        }
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

    fn flush(&mut self, next: Position) -> Result<(), EmbedError> {
        if let Some((p, n, s, a)) = self.current.take() {
            let expected = self.positions.len() / self.record_len;
            if p.get() as usize != expected || next.get() <= p.get() && next != p {
                return Err(EmbedError::Mismatch(
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
    ) -> Result<ReferenceMeta, EmbedError> {
        let last = self
            .current
            .as_ref()
            .map(|c| Position::new(c.0.get() + 1))
            .unwrap_or(Position::new(0));
        self.flush(last)?;
        std::fs::create_dir_all(dir).map_err(|source| EmbedError::Io {
            path: dir.into(),
            source,
        })?;
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
        };
        write_file(&dir.join("positions.bin"), &self.positions)?;
        write_file(&dir.join("frames.bin"), &self.frames)?;
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| EmbedError::Serialize(e.to_string()))?;
        write_file(&dir.join("index.json"), &json)?;
        Ok(meta)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EmbedError> {
    std::fs::write(path, bytes).map_err(|source| EmbedError::Io {
        path: path.into(),
        source,
    })
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
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|source| EmbedError::Io {
                path: dir.join(name),
                source,
            })
        };
        let meta: ReferenceMeta = serde_json::from_slice(&read("index.json")?)
            .map_err(|_| EmbedError::BadReference("index.json is not a reference index"))?;
        if meta.format != "leaktrace-reference" || meta.version != FORMAT_VERSION {
            return Err(EmbedError::BadReference(
                "unknown reference format or version (expected leaktrace-reference v1)",
            ));
        }
        let positions = read("positions.bin")?;
        let frames = read("frames.bin")?;
        if blake3::hash(&positions).to_hex().as_str() != meta.positions_blake3
            || blake3::hash(&frames).to_hex().as_str() != meta.frames_blake3
        {
            return Err(EmbedError::BadReference(
                "reference files do not match their recorded BLAKE3",
            ));
        }
        let want =
            4 + 2 * meta.stats_size[0] * meta.stats_size[1] + 2 * meta.grid[0] * meta.grid[1];
        if meta.record_len != want
            || positions.len() != meta.record_len * meta.positions as usize
            || meta.grid != [GRID_COLS, GRID_ROWS]
        {
            return Err(EmbedError::BadReference(
                "reference record sizes are inconsistent",
            ));
        }
        Ok(Self {
            meta,
            positions,
            frames,
        })
    }

    /// The statistics of `position`, `None` past the end.
    pub fn position(&self, position: Position) -> Option<PositionStats> {
        let i = position.get() as usize;
        let rec = self
            .positions
            .get(i * self.meta.record_len..(i + 1) * self.meta.record_len)?;
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
pub fn position_means(file: &Path, meta: &ReferenceMeta) -> Result<Vec<Vec<f32>>, EmbedError> {
    let (sw, sh) = (meta.stats_size[0], meta.stats_size[1]);
    let seg = leaktrace_core::SegmentDuration::from_millis(meta.segment_ms)
        .map_err(|_| EmbedError::BadReference("segment duration out of range"))?;
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

    #[test]
    fn correlation_is_signed_and_bounded() {
        let a = [1.0, -1.0, 2.0, 0.5];
        let neg: Vec<f64> = a.iter().map(|v| -v).collect();
        assert!((normalised_correlation(&a, &a) - 1.0).abs() < 1e-12);
        assert!((normalised_correlation(&a, &neg) + 1.0).abs() < 1e-12);
        assert_eq!(normalised_correlation(&a, &[3.0; 4]), 0.0);
    }
}
