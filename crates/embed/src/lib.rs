//! # leaktrace-embed
//!
//! Puts leaktrace's invisible, keyed A/B mark into video at encode time.
//!
//! Two levels of API:
//!
//! - **Frame level**, for a packager that owns its decode/encode loop: an [`Embedder`] takes a
//!   decoded luma plane and its presentation time and gives back the two marked variants, A and
//!   B. The mask ([`Mask`]) is computed once per frame and shared by both; the position's
//!   pattern is rendered once per frame size and cached, so each frame only pays mask + add.
//! - **File level** ([`pipeline`]), behind `leaktrace embed`: decode a mezzanine once, scale to
//!   each rendition of a ladder, mask once, mark and encode twice, and write TS 104 002 output:
//!   `a/` and `b/` CMAF segments with identical names and timing, WMPaceInfo sidecars and `wmpi`
//!   boxes, neutral HLS and DASH manifests, and the reference index the detector uses. The
//!   mezzanine's audio tracks become AAC-LC renditions and its text subtitles (and subtitle
//!   files) WebVTT renditions, cut at the same positions and the same for every viewer.
//!
//! ```
//! use leaktrace_core::{KeyVersion, MasterKey, SegmentDuration, TitleId};
//! use leaktrace_embed::{EmbedConfig, Embedder, FrameTime, LumaPlane};
//!
//! let key = MasterKey::from_bytes([42; 32], KeyVersion::new(1));
//! let title = TitleId::new("my-title")?;
//! let mut embedder = Embedder::new(&key, &title, EmbedConfig::default());
//!
//! // A decoded 640x360 8-bit luma plane and its time: frame 75 at 25 fps = 3 s.
//! let (w, h) = (640, 360);
//! let luma: Vec<u8> = (0..w * h).map(|i| (40 + (i % w / 3 + i / w / 2) % 160) as u8).collect();
//! let plane = LumaPlane::new(&luma, w, h, w, 8)?;
//! let marked = embedder.mark_frame(&plane, FrameTime::new(75, 1, 25))?;
//!
//! assert_eq!(marked.position.get(), 1); // 3 s / 2 s segments
//! assert_ne!(marked.a, marked.b);       // A and B differ...
//! let change: f64 = marked.a.iter().zip(&luma)
//!     .map(|(&a, &y)| (f64::from(a) - f64::from(y)).powi(2)).sum::<f64>() / (w * h) as f64;
//! assert!(change.sqrt() < 2.0);         // ...by less than two grey levels RMS.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod drm;
pub mod ladder;
pub mod live;
pub mod manifest;
pub mod mark;
pub mod mask;
pub mod pipeline;
pub mod plane;
pub mod subtitles;

pub use mark::{KernelSample, RenderedPattern, Scratch};
pub use mask::{Mask, MaskParams};
pub use pipeline::{
    AudioSummary, DEFAULT_AUDIO_BITRATE, EmbedSummary, PipelineConfig, PlainSummary, ProgressEvent,
    SubtitleInput, embed_file, encode_plain, rendition_layout,
};
pub use plane::{LumaPlane, Sample};

use leaktrace_core::{DerivedKey, MasterKey, Position, SegmentDuration, TitleId};
use std::sync::Arc;

/// Errors of the embed crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The frame is smaller or larger than the mark is defined for.
    #[error("frame size {width}x{height} out of range (expected 64x36 to 8192x8192)")]
    FrameSize {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
    },
    /// The bit depth is not one the marker handles.
    #[error("unsupported bit depth {0} (expected 8 for u8 samples, 9 or 10 for u16 samples)")]
    UnsupportedBitDepth(u8),
    /// The bit depth asked of the renditions is not one the encoders are given.
    #[error("rendition bit depth {0} out of range (expected 8 or 10)")]
    RenditionBitDepth(u8),
    /// A plane buffer is shorter than its geometry says.
    #[error("plane buffer has {len} samples, needs at least {needed}")]
    PlaneTooShort {
        /// Samples given.
        len: usize,
        /// Samples needed.
        needed: usize,
    },
    /// Inputs of one call disagree (frame, mask and pattern sizes).
    #[error("inconsistent inputs: {0}")]
    Mismatch(&'static str),
    /// The mezzanine's frames do not come at its declared constant rate.
    #[error(
        "{path}: variable frame rate: frame {frame} is at {at:.3} s, expected {expected:.3} s at the declared {fps:.3} fps; leaktrace marks constant-frame-rate mezzanines (convert it first, e.g. ffmpeg -i IN -vf fps={fps:.3} OUT)"
    )]
    VariableFrameRate {
        /// The mezzanine.
        path: String,
        /// Index of the frame out of step.
        frame: u64,
        /// Its presentation time from the first frame, seconds.
        at: f64,
        /// Where the declared rate puts it.
        expected: f64,
        /// The declared rate.
        fps: f64,
    },
    /// Reading or decoding the input, or encoding, failed.
    #[error(transparent)]
    Media(#[from] leaktrace_media::MediaError),
    /// A file could not be written or read.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output directory exists and holds files.
    #[error("output directory {0} exists and is not empty (choose a new or empty directory)")]
    OutputNotEmpty(std::path::PathBuf),
    /// The ladder specification is invalid.
    #[error("invalid ladder: {0}")]
    Ladder(String),
    /// The title is longer than WMPaceInfo can number.
    #[error(
        "position {0} exceeds the in-band WMPaceInfo limit (expected at most 32766 positions; use longer segments)"
    )]
    TooManyPositions(u32),
    /// The encoder did not produce the segment structure asked for.
    #[error("encoder output is not segmented as required: {0}")]
    Encoder(String),
    /// A WMPaceInfo value could not be encoded.
    #[error(transparent)]
    WmPaceInfo(#[from] leaktrace_core::wmpaceinfo::WmPaceInfoError),
    /// The reference index could not be written.
    #[error(transparent)]
    Reference(#[from] leaktrace_reference::ReferenceError),
    /// Serialising JSON (`title.json`) failed.
    #[error("could not serialise output: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A live channel's state file cannot be used for this run.
    #[error("{}: {reason}", path.display())]
    LiveState {
        /// `live.json`.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing a manifest (HLS playlist or DASH MPD) failed.
    #[error("could not serialise output: {what}: {source}")]
    Manifest {
        /// The manifest: `HLS playlist` or `DASH MPD`.
        what: &'static str,
        /// The cause (a writer error, or output that is not UTF-8).
        #[source]
        source: std::io::Error,
    },
    /// A key file is malformed (a field of the wrong length, a key ID given twice, …).
    #[error("key file {}: {reason}", path.display())]
    Keys {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, with its line.
        reason: String,
    },
    /// A subtitle file is malformed, too large, or its language tag invalid.
    #[error("subtitles {}: {reason}", path.display())]
    Subtitles {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (with its line where there is one).
        reason: String,
    },
}

/// A presentation time as an exact rational: `pts × num / den` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTime {
    pts: i64,
    num: i64,
    den: i64,
}

impl FrameTime {
    /// `pts` in a time base of `num/den` seconds (e.g. frame index, 1, 25 for 25 fps).
    pub fn new(pts: i64, num: i64, den: i64) -> Self {
        Self { pts, num, den }
    }

    /// The time in seconds.
    pub fn seconds(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            self.pts as f64 * self.num as f64 / self.den as f64
        }
    }
}

/// Settings of an [`Embedder`].
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EmbedConfig {
    /// Segment duration, which fixes positions.
    pub segment: SegmentDuration,
    /// Perceptual mask parameters.
    pub mask: MaskParams,
}

/// Both marked variants of one frame's luma.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedFrame<S> {
    /// The frame's position.
    pub position: Position,
    /// Variant A luma, packed (stride = width).
    pub a: Vec<S>,
    /// Variant B luma, packed (stride = width).
    pub b: Vec<S>,
}

/// Marks frames of one title. Cheap to create; keeps a small cache of rendered patterns.
#[derive(Debug)]
pub struct Embedder {
    pattern_key: DerivedKey,
    config: EmbedConfig,
    cache: Vec<Arc<RenderedPattern>>,
    scratch: Scratch,
}

/// Rendered patterns kept: a few renditions of the current and the previous position.
const CACHE_ENTRIES: usize = 12;

impl Embedder {
    /// An embedder for `title` under the operator's master key.
    pub fn new(key: &MasterKey, title: &TitleId, config: EmbedConfig) -> Self {
        Self::with_pattern_key(key.pattern_key(title), config)
    }

    /// An embedder from an already derived title pattern key.
    pub fn with_pattern_key(pattern_key: DerivedKey, config: EmbedConfig) -> Self {
        Self {
            pattern_key,
            config,
            cache: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EmbedConfig {
        &self.config
    }

    /// The position of a presentation time.
    pub fn position(&self, time: FrameTime) -> Position {
        self.config
            .segment
            .position_at(time.pts.saturating_mul(time.num), time.den)
    }

    /// Computes a frame's mask (once per frame; shared by A and B).
    pub fn mask<S: Sample>(&self, luma: &LumaPlane<'_, S>) -> Mask {
        Mask::compute(luma, &self.config.mask)
    }

    /// The pattern of `position` rendered at `width` × `height` (cached).
    pub fn pattern(
        &mut self,
        position: Position,
        width: usize,
        height: usize,
    ) -> Arc<RenderedPattern> {
        if let Some(i) = self
            .cache
            .iter()
            .position(|p| p.position() == position && p.width() == width && p.height() == height)
        {
            let hit = self.cache.remove(i);
            self.cache.push(Arc::clone(&hit));
            return hit;
        }
        let fresh = Arc::new(RenderedPattern::new(
            &self.pattern_key,
            position,
            width,
            height,
        ));
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.remove(0);
        }
        self.cache.push(Arc::clone(&fresh));
        fresh
    }

    /// Marks a luma plane into caller-provided A and B buffers (packed, stride = width) with a
    /// precomputed mask.
    pub fn mark_into<S: KernelSample>(
        &mut self,
        luma: &LumaPlane<'_, S>,
        mask: &Mask,
        position: Position,
        out_a: &mut [S],
        out_b: &mut [S],
    ) -> Result<(), EmbedError> {
        let pattern = self.pattern(position, luma.width(), luma.height());
        mark::mark_pair(luma, mask, &pattern, &mut self.scratch, out_a, out_b)
    }

    /// Marks one frame: computes its position and mask and returns both variants.
    pub fn mark_frame<S: KernelSample + Default>(
        &mut self,
        luma: &LumaPlane<'_, S>,
        time: FrameTime,
    ) -> Result<MarkedFrame<S>, EmbedError> {
        let position = self.position(time);
        let mask = self.mask(luma);
        let n = luma.width() * luma.height();
        let (mut a, mut b) = (vec![S::default(); n], vec![S::default(); n]);
        self.mark_into(luma, &mask, position, &mut a, &mut b)?;
        Ok(MarkedFrame { position, a, b })
    }
}
