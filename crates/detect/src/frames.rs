//! The single decode pass over the suspect.
//!
//! Every frame is area-downsampled once to a *working grid* of [`WORK_WIDTH`] columns (height
//! from the suspect's own aspect ratio: the suspect's geometry is kept, registration maps the
//! reference onto it later). What the later stages need is kept: per frame its presentation
//! time (seconds, from the container timestamps, relative to the first frame), its global mean
//! luma and the mean luma of its centre (temporal registration), and the working image itself, spilled to an anonymous
//! temporary file as 16-bit fixed point (`value × 64`, the reference index's precision) so
//! memory stays bounded whatever the length of the suspect.

use crate::DetectError;
use leaktrace_media::{Decoder, Luma, LumaError, Orientation};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Working images are kept on the 16-bit scale; this many units make one 8-bit grey level.
const SCALE: f64 = 256.0;

/// Width of the working grid (the reference statistics width).
pub const WORK_WIDTH: usize = 256;

/// The decoded suspect, reduced.
#[derive(Debug)]
pub struct SuspectFrames {
    /// Working grid `(w, h)`.
    pub size: (usize, usize),
    /// Decoded picture size, as displayed.
    pub source_size: (usize, usize),
    /// How the stream's display matrix turns its pictures (the decoder turns them).
    pub turned: Orientation,
    /// Presentation time of each frame in seconds, from the first frame.
    pub times: Vec<f64>,
    /// Global mean luma of each frame (8-bit scale).
    pub means: Vec<f32>,
    /// Mean luma of the picture's centre ([`CENTRE`]) of each frame: the temporal signature
    /// that edge overlays (tickers, subtitles, logos) do not reach.
    pub central: Vec<f32>,
    /// Nominal frame rate of the stream.
    pub fps: f64,
    store: Store,
    /// The stream time of the first frame added: time 0 of [`SuspectFrames::times`].
    origin: Option<f64>,
}

/// The central region `[x0, y0, x1, y1]` (fractions of the picture) of the overlay-free
/// temporal signature: on the reference's 16×9 thumbnails, columns 2 to 13 and rows 1 to 6.
pub const CENTRE: [f64; 4] = [2.0 / 16.0, 1.0 / 9.0, 14.0 / 16.0, 7.0 / 9.0];

/// Working images: in memory up to [`MEMORY_BUDGET`] bytes, then spilled to a temporary file.
#[derive(Debug)]
enum Store {
    Memory(Vec<u16>),
    File(std::fs::File),
}

/// Bytes of working images held in memory before spilling to a temporary file.
pub const MEMORY_BUDGET: usize = 384 << 20;

/// A decoding failure of the suspect at `path`.
pub(crate) fn media(path: &Path) -> impl Fn(leaktrace_media::MediaError) -> DetectError + '_ {
    move |source| DetectError::Media {
        path: path.to_path_buf(),
        source,
    }
}

fn io(e: std::io::Error) -> DetectError {
    DetectError::Io(e)
}

impl SuspectFrames {
    /// Decodes `path` once.
    pub fn read(path: &Path) -> Result<Self, DetectError> {
        let mut dec = Decoder::open(path).map_err(media(path))?;
        let mut frames = Self::for_decoder(&dec);
        frames.extend(&mut dec, usize::MAX)?;
        if frames.is_empty() {
            return Err(DetectError::Empty);
        }
        Ok(frames)
    }

    /// No frames yet, on the working grid of `dec`'s pictures: frames are then added with
    /// [`SuspectFrames::extend`], from this decoder and from later ones (the segments of a
    /// stream that is still growing, decoded one by one).
    pub fn for_decoder(dec: &Decoder) -> Self {
        let (w, h) = dec.size();
        let fr = dec.frame_rate();
        let fps = if fr.num > 0 && fr.den > 0 {
            f64::from(fr.num) / f64::from(fr.den)
        } else {
            25.0
        };
        let ww = WORK_WIDTH;
        let wh = (((ww * h) as f64 / w.max(1) as f64 / 2.0).round() as usize * 2).max(2);
        Self {
            size: (ww, wh),
            source_size: (w, h),
            turned: dec.orientation(),
            times: Vec::new(),
            means: Vec::new(),
            central: Vec::new(),
            fps,
            store: Store::Memory(Vec::new()),
            origin: None,
        }
    }

    /// Decodes up to `max` more frames of `dec` onto the working grid and appends them;
    /// returns how many were added (0: `dec` is at its end). Times continue the stream's clock:
    /// a later decoder's timestamps are taken relative to the first frame ever added, so the
    /// segments of one stream line up; a timestamp that does not increase continues the run
    /// at the nominal frame rate.
    ///
    /// The calling thread only decodes; the area average and what is kept of each frame are
    /// done on a worker thread, frames in order, a few at most queued between the two
    /// ([`Decoder::for_each_luma`]).
    pub fn extend(&mut self, dec: &mut Decoder, max: usize) -> Result<usize, DetectError> {
        let (ww, wh) = self.size;
        let (cx0, cy0) = (
            (CENTRE[0] * ww as f64).round() as usize,
            (CENTRE[1] * wh as f64).round() as usize,
        );
        let (cx1, cy1) = (
            ((CENTRE[2] * ww as f64).round() as usize).clamp(cx0 + 1, ww),
            ((CENTRE[3] * wh as f64).round() as usize).clamp(cy0 + 1, wh),
        );
        // The decoder's thread only decodes; this runs on the thread that averages.
        let add = |luma: Luma| -> Result<(), DetectError> {
            let raw = luma.samples;
            let frame = 1.0 / self.fps;
            let t = match (luma.time, self.times.last()) {
                (Some(t), prev) => {
                    let base = *self.origin.get_or_insert(t);
                    let rel = t - base;
                    match prev {
                        Some(&p) if rel <= p => p + frame,
                        _ => rel,
                    }
                }
                (None, Some(&p)) => p + frame,
                (None, None) => 0.0,
            };
            self.times.push(t);
            let sum: u64 = raw.iter().map(|&v| u64::from(v)).sum();
            self.means
                .push((sum as f64 / raw.len() as f64 / SCALE) as f32);
            let csum: u64 = (cy0..cy1)
                .flat_map(|y| raw.get(y * ww + cx0..y * ww + cx1).unwrap_or(&[]))
                .map(|&v| u64::from(v))
                .sum();
            let cn = ((cx1 - cx0) * (cy1 - cy0)).max(1);
            self.central.push((csum as f64 / cn as f64 / SCALE) as f32);
            self.keep(&raw)
        };
        let path = dec.path().to_path_buf();
        dec.for_each_luma(ww, wh, max, add).map_err(|e| match e {
            LumaError::Decoder(source) => media(&path)(source),
            LumaError::Consumer(e) => e,
        })
    }

    /// Keeps one working image: in memory up to [`MEMORY_BUDGET`], then appended to a
    /// temporary file.
    fn keep(&mut self, raw: &[u16]) -> Result<(), DetectError> {
        if let Store::Memory(mem) = &mut self.store
            && (mem.len() + raw.len()) * 2 > MEMORY_BUDGET
        {
            let mut file = tempfile::tempfile().map_err(io)?;
            write_samples(&mut file, mem)?;
            self.store = Store::File(file);
        }
        match &mut self.store {
            Store::Memory(mem) => mem.extend_from_slice(raw),
            Store::File(file) => {
                file.seek(SeekFrom::End(0)).map_err(io)?;
                write_samples(file, raw)?;
            }
        }
        Ok(())
    }

    /// A stream spliced frame by frame from `sources`: frame `i` is frame `i` of
    /// `sources[pick[i]]`. The sources must be decodes of streams with the same frame grid and
    /// the same frame times (the variants of one package), and `pick` must name one of them
    /// for each of their frames; anything else is an error.
    pub fn splice(sources: &[&SuspectFrames], pick: &[usize]) -> Result<Self, DetectError> {
        let first = sources
            .first()
            .ok_or_else(|| DetectError::Invalid("no streams to splice".into()))?;
        for s in sources {
            if s.size != first.size || s.source_size != first.source_size {
                return Err(DetectError::Invalid(format!(
                    "streams to splice differ in picture size ({}x{} and {}x{})",
                    first.source_size.0, first.source_size.1, s.source_size.0, s.source_size.1
                )));
            }
            if s.times != first.times {
                return Err(DetectError::Invalid(format!(
                    "streams to splice differ in their frame times ({} and {} frames)",
                    first.len(),
                    s.len()
                )));
            }
        }
        if pick.len() != first.len() {
            return Err(DetectError::Invalid(format!(
                "{} frames picked from streams of {} frames",
                pick.len(),
                first.len()
            )));
        }
        let mut out = Self {
            size: first.size,
            source_size: first.source_size,
            turned: first.turned,
            times: first.times.clone(),
            means: Vec::with_capacity(pick.len()),
            central: Vec::with_capacity(pick.len()),
            fps: first.fps,
            store: Store::Memory(Vec::new()),
            origin: first.origin,
        };
        let mut raw = vec![0u16; first.size.0 * first.size.1];
        for (i, &k) in pick.iter().enumerate() {
            let s = sources.get(k).ok_or_else(|| {
                DetectError::Invalid(format!(
                    "frame {i} picked from stream {k} of {}",
                    sources.len()
                ))
            })?;
            s.read_raw(i, &mut raw)?;
            out.means.push(s.means[i]);
            out.central.push(s.central[i]);
            out.keep(&raw)?;
        }
        Ok(out)
    }

    /// Copies the working image of frame `i` into `out` (one working grid of samples).
    fn read_raw(&self, i: usize, out: &mut [u16]) -> Result<(), DetectError> {
        let n = out.len();
        match &self.store {
            Store::Memory(mem) => {
                let src = mem.get(i * n..(i + 1) * n).ok_or_else(|| {
                    DetectError::Invalid(format!("frame {i} of {} requested", self.len()))
                })?;
                out.copy_from_slice(src);
            }
            Store::File(file) => {
                use std::os::unix::fs::FileExt;
                let mut bytes = vec![0u8; n * 2];
                file.read_exact_at(&mut bytes, (i * n * 2) as u64)
                    .map_err(io)?;
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]);
                }
            }
        }
        Ok(())
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when there are no frames (never after a successful [`SuspectFrames::read`]).
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Mean luma of each frame over the working-grid rectangle `[x0, y0, x1, y1]` (edges): the
    /// temporal signature of a picture-in-picture window. `None` when the rectangle is empty
    /// or leaves the grid.
    pub fn window_means(&mut self, rect: [usize; 4]) -> Result<Option<Vec<f32>>, DetectError> {
        let [x0, y0, x1, y1] = rect;
        let (ww, wh) = self.size;
        if x1 <= x0 || y1 <= y0 || x1 > ww || y1 > wh {
            return Ok(None);
        }
        let n = ((x1 - x0) * (y1 - y0)) as f64;
        let mut out = Vec::with_capacity(self.times.len());
        self.for_each(|_, img| {
            let sum: f64 = (y0..y1)
                .map(|y| {
                    img[y * ww + x0..y * ww + x1]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>()
                })
                .sum();
            out.push((sum / n) as f32);
        })?;
        Ok(Some(out))
    }

    /// Calls `f(frame_index, working_image)` for every frame, in order.
    pub fn for_each(&mut self, mut f: impl FnMut(usize, &[f32])) -> Result<(), DetectError> {
        let n = self.size.0 * self.size.1;
        let mut img = vec![0f32; n];
        let convert = |img: &mut [f32], raw: &[u16]| {
            for (o, &v) in img.iter_mut().zip(raw) {
                *o = f32::from(v) * (1.0 / SCALE as f32);
            }
        };
        match &mut self.store {
            Store::Memory(mem) => {
                for (i, raw) in mem.chunks_exact(n).enumerate() {
                    convert(&mut img, raw);
                    f(i, &img);
                }
            }
            Store::File(file) => {
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                let mut rd = BufReader::with_capacity(1 << 20, &*file);
                let mut bytes = vec![0u8; n * 2];
                let mut raw = vec![0u16; n];
                for i in 0..self.times.len() {
                    rd.read_exact(&mut bytes).map_err(io)?;
                    for (o, b) in raw.iter_mut().zip(bytes.chunks_exact(2)) {
                        *o = u16::from_le_bytes([b[0], b[1]]);
                    }
                    convert(&mut img, &raw);
                    f(i, &img);
                }
            }
        }
        Ok(())
    }
}

fn write_samples(w: &mut impl Write, samples: &[u16]) -> Result<(), DetectError> {
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes).map_err(io)
}
