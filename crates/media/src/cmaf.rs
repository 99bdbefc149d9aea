//! ISO-BMFF box reading for CMAF packaging: split a fragmented MP4 into an init segment and
//! media segments, prefix each with `styp` (and any extra boxes, e.g. TS 104 002 `wmpi`), and
//! read the RFC 6381 codec string from the sample entry.
//!
//! Only the boxes needed are parsed, every length is bounds-checked, and nothing is trusted:
//! a malformed file is a [`MediaError::BadMp4`], never a panic.

use crate::MediaError;

fn bad(msg: impl Into<String>) -> MediaError {
    MediaError::BadMp4(msg.into())
}

/// One box: its four-character type and byte ranges within the buffer it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxRef {
    /// Four-character type.
    pub kind: [u8; 4],
    /// Offset of the box header.
    pub start: usize,
    /// Offset of the payload.
    pub payload: usize,
    /// Offset one past the end.
    pub end: usize,
}

/// Lists the boxes in `buf[from..to]`.
pub fn boxes(buf: &[u8], from: usize, to: usize) -> Result<Vec<BoxRef>, MediaError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        if to - pos < 8 {
            return Err(bad(format!("{} stray bytes at offset {pos}", to - pos)));
        }
        let size32 = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let kind = [buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]];
        let (size, header) = match size32 {
            0 => (to - pos, 8),
            1 => {
                if to - pos < 16 {
                    return Err(bad("truncated 64-bit box size"));
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[pos + 8..pos + 16]);
                (
                    usize::try_from(u64::from_be_bytes(b)).map_err(|_| bad("box too large"))?,
                    16,
                )
            }
            n => (n as usize, 8),
        };
        if size < header || size > to - pos {
            return Err(bad(format!(
                "box {} at {pos} has size {size} beyond its parent",
                fourcc(&kind)
            )));
        }
        out.push(BoxRef {
            kind,
            start: pos,
            payload: pos + header,
            end: pos + size,
        });
        pos += size;
    }
    Ok(out)
}

fn fourcc(k: &[u8; 4]) -> String {
    k.iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

fn child(buf: &[u8], parent: &BoxRef, kind: &[u8; 4]) -> Result<Option<BoxRef>, MediaError> {
    Ok(boxes(buf, parent.payload, parent.end)?
        .into_iter()
        .find(|b| &b.kind == kind))
}

fn path(buf: &[u8], root: &BoxRef, kinds: &[&[u8; 4]]) -> Result<BoxRef, MediaError> {
    let mut cur = *root;
    for k in kinds {
        cur = child(buf, &cur, k)?.ok_or_else(|| bad(format!("missing {} box", fourcc(k))))?;
    }
    Ok(cur)
}

fn be_u32(buf: &[u8], at: usize) -> Result<u32, MediaError> {
    buf.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("field past the end of its box"))
}

fn be_u64(buf: &[u8], at: usize) -> Result<u64, MediaError> {
    let hi = be_u32(buf, at)?;
    let lo = be_u32(buf, at + 4)?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

/// One media fragment (`moof` + `mdat`) of a fragmented MP4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The `moof` and `mdat` bytes.
    pub bytes: Vec<u8>,
    /// `tfdt` base media decode time, in the track timescale.
    pub decode_time: u64,
    /// Samples in the fragment.
    pub samples: u32,
    /// Sum of sample durations, in the track timescale.
    pub duration: u64,
    /// Whether the first sample is a sync sample (an IDR / key frame).
    pub starts_with_sync: bool,
}

/// A fragmented MP4 split into its init segment and fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// `ftyp` + `moov`.
    pub init: Vec<u8>,
    /// The media fragments in order.
    pub fragments: Vec<Fragment>,
    /// Track timescale (`mdhd`).
    pub timescale: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
}

/// The header of a fragmented MP4: `ftyp` + `moov`, and what is read from its one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    /// `ftyp` + `moov` (an `hev1` sample entry renamed `hvc1`).
    pub bytes: Vec<u8>,
    /// Track timescale (`mdhd`).
    pub timescale: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`.
    pub codec: String,
    /// `track_ID` of the track (`tkhd`).
    pub track_id: u32,
    /// `trex` default sample duration and flags (0 when absent).
    trex: (u32, u32),
}

/// Reads the header (`ftyp` + `moov`) of a fragmented MP4 with one track; the fragments after
/// it, if any, are not read.
pub fn init(buf: &[u8]) -> Result<Init, MediaError> {
    read_init(buf, &boxes(buf, 0, buf.len())?)
}

fn read_init(buf: &[u8], top: &[BoxRef]) -> Result<Init, MediaError> {
    let ftyp = top
        .iter()
        .find(|b| &b.kind == b"ftyp")
        .ok_or_else(|| bad("no ftyp"))?;
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| bad("no moov"))?;
    let mut init = Vec::with_capacity(ftyp.end - ftyp.start + moov.end - moov.start);
    init.extend_from_slice(&buf[ftyp.start..ftyp.end]);
    init.extend_from_slice(&buf[moov.start..moov.end]);
    let moov_in_init = boxes(&init, ftyp.end - ftyp.start, init.len())?[0];
    let trak = path(&init, &moov_in_init, &[b"trak"])?;
    let tkhd = path(&init, &trak, &[b"tkhd"])?;
    let track_id = match init.get(tkhd.payload) {
        Some(1) => be_u32(&init, tkhd.payload + 4 + 16)?,
        Some(_) => be_u32(&init, tkhd.payload + 4 + 8)?,
        None => return Err(bad("empty tkhd")),
    };
    let mdhd = path(&init, &trak, &[b"mdia", b"mdhd"])?;
    let timescale = match init.get(mdhd.payload) {
        Some(1) => be_u32(&init, mdhd.payload + 4 + 16)?,
        Some(_) => be_u32(&init, mdhd.payload + 4 + 8)?,
        None => return Err(bad("empty mdhd")),
    };
    if timescale == 0 {
        return Err(bad("track timescale is 0"));
    }
    let trex = match child(&init, &moov_in_init, b"mvex")? {
        Some(mvex) => match child(&init, &mvex, b"trex")? {
            Some(t) => (
                be_u32(&init, t.payload + 12)?,
                be_u32(&init, t.payload + 16)?,
            ),
            None => (0, 0),
        },
        None => (0, 0),
    };
    let stsd = path(&init, &trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
    let entry = boxes(&init, stsd.payload + 8, stsd.end)?
        .into_iter()
        .next()
        .ok_or_else(|| bad("empty stsd"))?;
    if &entry.kind == b"hev1" {
        init[entry.start + 4..entry.start + 8].copy_from_slice(b"hvc1");
    }
    let entry = BoxRef {
        kind: if &entry.kind == b"hev1" {
            *b"hvc1"
        } else {
            entry.kind
        },
        ..entry
    };
    let codec = codec_string(&init, &entry)?;
    Ok(Init {
        bytes: init,
        timescale,
        codec,
        track_id,
        trex,
    })
}

/// Splits a fragmented MP4 (as written by [`crate::Encoder`]) into init and fragments.
/// An `hev1` sample entry is renamed `hvc1` (parameter sets are out of band), so the result
/// plays on every HLS client.
pub fn split(buf: &[u8]) -> Result<Track, MediaError> {
    let top = boxes(buf, 0, buf.len())?;
    let Init {
        bytes: init,
        timescale,
        codec,
        trex: (trex_duration, trex_flags),
        ..
    } = read_init(buf, &top)?;

    let mut fragments = Vec::new();
    let mut i = 0;
    while i < top.len() {
        let b = top[i];
        if &b.kind == b"moof" {
            let mdat = top
                .get(i + 1)
                .filter(|m| &m.kind == b"mdat")
                .ok_or_else(|| bad("moof without mdat"))?;
            let (decode_time, samples, duration, sync) =
                read_moof(buf, &b, trex_duration, trex_flags)?;
            fragments.push(Fragment {
                bytes: buf[b.start..mdat.end].to_vec(),
                decode_time,
                samples,
                duration,
                starts_with_sync: sync,
            });
            i += 2;
        } else {
            i += 1;
        }
    }
    if fragments.is_empty() {
        return Err(bad(
            "no fragments (was the file written with frag_keyframe?)",
        ));
    }
    Ok(Track {
        init,
        fragments,
        timescale,
        codec,
    })
}

/// The sample table of a `trun`: its flags, its sample count, its data offset and first
/// sample flags when present, where the first sample's fields start and how many bytes each
/// sample's fields take (duration, size, flags, composition offset, as the flags say),
/// checked to lie within the box.
pub(crate) struct TrunTable {
    pub(crate) flags: u32,
    pub(crate) count: usize,
    pub(crate) data_offset: Option<i32>,
    pub(crate) first_flags: Option<u32>,
    pub(crate) at: usize,
    pub(crate) per: usize,
}

/// Reads the header of `trun` in `buf` ([`TrunTable`]).
pub(crate) fn trun_table(buf: &[u8], trun: &BoxRef) -> Result<TrunTable, MediaError> {
    let flags = be_u32(buf, trun.payload)? & 0x00FF_FFFF;
    let count = be_u32(buf, trun.payload + 4)? as usize;
    let mut at = trun.payload + 8;
    let mut data_offset = None;
    if flags & 0x001 != 0 {
        data_offset = Some(be_u32(buf, at)? as i32);
        at += 4;
    }
    let mut first_flags = None;
    if flags & 0x004 != 0 {
        first_flags = Some(be_u32(buf, at)?);
        at += 4;
    }
    let per = [0x100u32, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
        * 4;
    if count.saturating_mul(per) > trun.end.saturating_sub(at) {
        return Err(bad("trun sample table past the end of its box"));
    }
    Ok(TrunTable {
        flags,
        count,
        data_offset,
        first_flags,
        at,
        per,
    })
}

fn read_moof(
    buf: &[u8],
    moof: &BoxRef,
    trex_dur: u32,
    trex_flags: u32,
) -> Result<(u64, u32, u64, bool), MediaError> {
    let traf = path(buf, moof, &[b"traf"])?;
    let tfhd = child(buf, &traf, b"tfhd")?.ok_or_else(|| bad("traf without tfhd"))?;
    let tf_flags = be_u32(buf, tfhd.payload)? & 0x00FF_FFFF;
    let mut at = tfhd.payload + 8; // version/flags + track_ID
    if tf_flags & 0x01 != 0 {
        at += 8; // base-data-offset
    }
    if tf_flags & 0x02 != 0 {
        at += 4; // sample-description-index
    }
    let mut default_dur = trex_dur;
    if tf_flags & 0x08 != 0 {
        default_dur = be_u32(buf, at)?;
        at += 4;
    }
    if tf_flags & 0x10 != 0 {
        at += 4;
    }
    let mut default_flags = trex_flags;
    if tf_flags & 0x20 != 0 {
        default_flags = be_u32(buf, at)?;
    }
    let tfdt = child(buf, &traf, b"tfdt")?.ok_or_else(|| bad("traf without tfdt"))?;
    let decode_time = if buf.get(tfdt.payload) == Some(&1) {
        be_u64(buf, tfdt.payload + 4)?
    } else {
        u64::from(be_u32(buf, tfdt.payload + 4)?)
    };
    let (mut samples, mut duration, mut first_flags) = (0u32, 0u64, None);
    for trun in boxes(buf, traf.payload, traf.end)?
        .into_iter()
        .filter(|b| &b.kind == b"trun")
    {
        let TrunTable {
            flags,
            count,
            first_flags: first,
            at,
            per,
            ..
        } = trun_table(buf, &trun)?;
        let count = u32::try_from(count).map_err(|_| bad("trun sample count over 32 bits"))?;
        if per == 0 {
            // No per-sample fields: every sample has the defaults, no loop over a count the
            // box does not pay for with bytes.
            if samples == 0 && count > 0 {
                first_flags = Some(first.unwrap_or(default_flags));
            }
            duration =
                duration.saturating_add(u64::from(count).saturating_mul(u64::from(default_dur)));
            samples = samples
                .checked_add(count)
                .ok_or_else(|| bad("more samples in one fragment than a u32 counts"))?;
            continue;
        }
        for s in 0..count as usize {
            let mut p = at + s * per;
            let d = if flags & 0x100 != 0 {
                let d = be_u32(buf, p)?;
                p += 4;
                d
            } else {
                default_dur
            };
            if flags & 0x200 != 0 {
                p += 4;
            }
            let sf = if flags & 0x400 != 0 {
                Some(be_u32(buf, p)?)
            } else {
                None
            };
            if samples == 0 && s == 0 {
                first_flags = Some(first.or(sf).unwrap_or(default_flags));
            }
            duration = duration.saturating_add(u64::from(d));
        }
        samples = samples
            .checked_add(count)
            .ok_or_else(|| bad("more samples in one fragment than a u32 counts"))?;
    }
    let sync = first_flags.is_some_and(|f| f & 0x0001_0000 == 0);
    Ok((decode_time, samples, duration, sync))
}

/// RFC 6381 codec string of a visual sample entry (`avc1`/`avc3`, `hvc1`/`hev1`, `av01`) or
/// of an MPEG-4 audio one (`mp4a`).
fn codec_string(buf: &[u8], entry: &BoxRef) -> Result<String, MediaError> {
    if &entry.kind == b"mp4a" {
        return mp4a_codec(buf, entry);
    }
    // VisualSampleEntry fields before the child boxes: 78 bytes.
    let children = boxes(buf, entry.payload + 78, entry.end)?;
    let find = |k: &[u8; 4]| children.iter().find(|b| &b.kind == k).copied();
    let kind = fourcc(&entry.kind);
    if let Some(c) = find(b"avcC") {
        let p = buf
            .get(c.payload..c.payload + 4)
            .ok_or_else(|| bad("short avcC"))?;
        return Ok(format!("{kind}.{:02x}{:02x}{:02x}", p[1], p[2], p[3]));
    }
    if let Some(c) = find(b"hvcC") {
        let p = buf
            .get(c.payload..c.payload + 13)
            .ok_or_else(|| bad("short hvcC"))?;
        let space = ["", "A", "B", "C"][usize::from(p[1] >> 6)];
        let tier = if p[1] & 0x20 != 0 { 'H' } else { 'L' };
        let profile = p[1] & 0x1f;
        let compat = u32::from_be_bytes([p[2], p[3], p[4], p[5]]).reverse_bits();
        let mut constraints: Vec<u8> = p[6..12].to_vec();
        while constraints.last() == Some(&0) {
            constraints.pop();
        }
        let mut s = format!("{kind}.{space}{profile}.{compat:X}.{tier}{}", p[12]);
        for c in constraints {
            s.push_str(&format!(".{c:X}"));
        }
        return Ok(s);
    }
    if let Some(c) = find(b"av1C") {
        let p = buf
            .get(c.payload..c.payload + 3)
            .ok_or_else(|| bad("short av1C"))?;
        let profile = p[1] >> 5;
        let level = p[1] & 0x1f;
        let tier = if p[2] & 0x80 != 0 { 'H' } else { 'M' };
        let depth = if p[2] & 0x40 != 0 {
            if profile == 2 && p[2] & 0x20 != 0 {
                12
            } else {
                10
            }
        } else {
            8
        };
        return Ok(format!("av01.{profile}.{level:02}{tier}.{depth:02}"));
    }
    Err(bad(format!(
        "sample entry {kind} has no avcC, hvcC or av1C"
    )))
}

/// `mp4a.<objectTypeIndication>.<audioObjectType>` from the `esds` of an `mp4a` entry
/// (ISO/IEC 14496-1 descriptors, ISO/IEC 14496-3 AudioSpecificConfig).
fn mp4a_codec(buf: &[u8], entry: &BoxRef) -> Result<String, MediaError> {
    // AudioSampleEntry fields before the child boxes: 28 bytes.
    let esds = boxes(buf, entry.payload + 28, entry.end)?
        .into_iter()
        .find(|b| &b.kind == b"esds")
        .ok_or_else(|| bad("mp4a sample entry without esds"))?;
    let body = buf
        .get(esds.payload + 4..esds.end)
        .ok_or_else(|| bad("short esds"))?;
    let es = descriptor(body, 0x03)?;
    let flags = *es.get(2).ok_or_else(|| bad("short ES_Descriptor"))?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at).ok_or_else(|| bad("short ES_Descriptor"))?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let config = descriptor(
        es.get(at..).ok_or_else(|| bad("short ES_Descriptor"))?,
        0x04,
    )?;
    let oti = *config
        .first()
        .ok_or_else(|| bad("empty DecoderConfigDescriptor"))?;
    let specific = config.get(13..).map(|d| descriptor(d, 0x05)).transpose()?;
    let aot = match specific {
        Some(asc) if !asc.is_empty() => {
            let five = asc[0] >> 3;
            if five == 31 {
                // Escape: six more bits, plus 32.
                let next = *asc.get(1).ok_or_else(|| bad("short AudioSpecificConfig"))?;
                32 + (((asc[0] & 0x07) << 3) | (next >> 5))
            } else {
                five
            }
        }
        _ => return Ok(format!("mp4a.{oti:02x}")),
    };
    Ok(format!("mp4a.{oti:02x}.{aot}"))
}

/// The payload of the descriptor with `tag` at the start of `buf` (ISO/IEC 14496-1 8.3.3:
/// a tag byte, then a size in up to four 7-bit groups).
fn descriptor(buf: &[u8], tag: u8) -> Result<&[u8], MediaError> {
    if buf.first() != Some(&tag) {
        return Err(bad(format!("expected descriptor tag {tag:#04x}")));
    }
    let mut size = 0usize;
    let mut at = 1;
    loop {
        let b = *buf
            .get(at)
            .ok_or_else(|| bad("descriptor size past the end"))?;
        size = (size << 7) | usize::from(b & 0x7f);
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Err(bad("descriptor size longer than four bytes"));
        }
    }
    buf.get(at..at + size)
        .ok_or_else(|| bad("descriptor longer than its box"))
}

/// What a [`FragmentReader`] reads next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Piece {
    /// The header (`ftyp` + `moov`), first.
    Init(Init),
    /// A complete fragment (`moof` + `mdat`).
    Fragment(Fragment),
}

/// Largest top-level box a [`FragmentReader`] accepts (a fragment of a few seconds of video is
/// a few MiB; the bound keeps a broken stream from asking for the whole memory).
pub const MAX_STREAM_BOX: u64 = 256 << 20;

/// A whole top-level box: its type and its bytes, header included.
type TopBox = ([u8; 4], Vec<u8>);

/// Reads a fragmented MP4 with one track from a stream while it is written (a pipe from
/// [`crate::Encoder::create_streaming`]): the init segment, then every fragment as soon as its
/// `mdat` is complete. Other top-level boxes (`styp`, `sidx`, `mfra`, `free`) are skipped.
#[derive(Debug)]
pub struct FragmentReader<R> {
    src: R,
    header: Vec<u8>,
    init: Option<(u32, u32)>,
}

impl<R: std::io::Read> FragmentReader<R> {
    /// A reader of `src`.
    pub fn new(src: R) -> Self {
        Self {
            src,
            header: Vec::new(),
            init: None,
        }
    }

    /// The next piece, `None` when the stream ends at a box boundary. A stream that ends
    /// inside a box, a fragment before the header, or a `moof` without its `mdat` is an error.
    pub fn next_piece(&mut self) -> Result<Option<Piece>, MediaError> {
        loop {
            let Some((kind, bytes)) = self.next_box()? else {
                if self.init.is_none() && !self.header.is_empty() {
                    return Err(bad("the stream ended inside its header"));
                }
                return Ok(None);
            };
            match &kind {
                b"ftyp" if self.init.is_none() => self.header = bytes,
                b"moov" if self.init.is_none() => {
                    if self.header.is_empty() {
                        return Err(bad("moov before ftyp"));
                    }
                    self.header.extend_from_slice(&bytes);
                    let init = init(&self.header)?;
                    self.init = Some(init.trex);
                    self.header.clear();
                    return Ok(Some(Piece::Init(init)));
                }
                b"moof" => {
                    let (dur, flags) = self.init.ok_or_else(|| bad("a fragment before moov"))?;
                    let (mkind, mdat) = self
                        .next_box()?
                        .ok_or_else(|| bad("the stream ended after a moof"))?;
                    if &mkind != b"mdat" {
                        return Err(bad("moof without mdat"));
                    }
                    let mut buf = bytes;
                    buf.extend_from_slice(&mdat);
                    let moof = boxes(&buf, 0, buf.len())?
                        .into_iter()
                        .next()
                        .ok_or_else(|| bad("empty moof"))?;
                    let (decode_time, samples, duration, sync) =
                        read_moof(&buf, &moof, dur, flags)?;
                    return Ok(Some(Piece::Fragment(Fragment {
                        bytes: buf,
                        decode_time,
                        samples,
                        duration,
                        starts_with_sync: sync,
                    })));
                }
                _ => {}
            }
        }
    }

    /// One whole top-level box (header included), `None` at a clean end.
    fn next_box(&mut self) -> Result<Option<TopBox>, MediaError> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.src.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(bad("the stream ended inside a box header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(format!("reading the stream: {e}"))),
            }
        }
        let kind = [head[4], head[5], head[6], head[7]];
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let mut out = head.to_vec();
        if size == 1 {
            let mut large = [0u8; 8];
            self.src
                .read_exact(&mut large)
                .map_err(|_| bad("the stream ended inside a box header"))?;
            size = u64::from_be_bytes(large);
            out.extend_from_slice(&large);
        }
        if size < out.len() as u64 || size > MAX_STREAM_BOX {
            return Err(bad(format!(
                "top-level box of {size} bytes (expected {} to {MAX_STREAM_BOX})",
                out.len()
            )));
        }
        let body = size as usize - out.len();
        let start = out.len();
        out.resize(start + body, 0);
        self.src
            .read_exact(&mut out[start..])
            .map_err(|_| bad("the stream ended inside a box"))?;
        Ok(Some((kind, out)))
    }
}

impl Fragment {
    /// The `traf` of the fragment's `moof`.
    fn traf(&self) -> Result<BoxRef, MediaError> {
        let buf = &self.bytes;
        let moof = boxes(buf, 0, buf.len())?
            .into_iter()
            .find(|b| &b.kind == b"moof")
            .ok_or_else(|| bad("fragment without moof"))?;
        path(buf, &moof, &[b"traf"])
    }

    /// Moves the fragment to `decode_time` on its track's timeline (the `tfdt` of its `moof`
    /// rewritten in place; a version-0 `tfdt` must still fit 32 bits). A live packager puts
    /// every fragment at its position's time, whatever the muxer started counting from.
    pub fn set_decode_time(&mut self, decode_time: u64) -> Result<(), MediaError> {
        let buf = &self.bytes;
        let traf = self.traf()?;
        let tfdt = child(buf, &traf, b"tfdt")?.ok_or_else(|| bad("traf without tfdt"))?;
        let at = tfdt.payload + 4;
        if buf.get(tfdt.payload) == Some(&1) {
            self.bytes
                .get_mut(at..at + 8)
                .ok_or_else(|| bad("tfdt shorter than its version"))?
                .copy_from_slice(&decode_time.to_be_bytes());
        } else {
            let t = u32::try_from(decode_time)
                .map_err(|_| bad("decode time over 32 bits in a version-0 tfdt"))?;
            self.bytes
                .get_mut(at..at + 4)
                .ok_or_else(|| bad("tfdt shorter than its version"))?
                .copy_from_slice(&t.to_be_bytes());
        }
        self.decode_time = decode_time;
        Ok(())
    }

    /// Where the composition offsets of the fragment's `trun` boxes are: for each `trun`
    /// with per-sample offsets, the position of its version byte, and of each sample's
    /// offset.
    fn composition_offsets(&self) -> Result<Vec<(usize, Vec<usize>)>, MediaError> {
        let buf = &self.bytes;
        let traf = self.traf()?;
        let mut out = Vec::new();
        for trun in boxes(buf, traf.payload, traf.end)?
            .into_iter()
            .filter(|b| &b.kind == b"trun")
        {
            let TrunTable {
                flags,
                count,
                at,
                per,
                ..
            } = trun_table(buf, &trun)?;
            if flags & 0x800 == 0 {
                continue;
            }
            // The offset is the last of the per-sample fields.
            let sample_offsets = (0..count).map(|s| at + s * per + per - 4).collect();
            out.push((trun.payload, sample_offsets));
        }
        Ok(out)
    }

    /// The composition offset of the fragment's first sample (its presentation time less its
    /// decode time), in the track timescale; 0 when the fragment gives none.
    pub fn first_composition_offset(&self) -> Result<i64, MediaError> {
        let truns = self.composition_offsets()?;
        let Some((version_at, offsets)) = truns.first() else {
            return Ok(0);
        };
        let Some(&at) = offsets.first() else {
            return Ok(0);
        };
        let raw = be_u32(&self.bytes, at)?;
        Ok(if self.bytes.get(*version_at) == Some(&0) {
            i64::from(raw)
        } else {
            i64::from(raw as i32)
        })
    }
}

/// One sample of a fragment to be written by [`fragment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleInfo {
    /// Duration in the track timescale.
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
    /// ISO/IEC 14496-12 sample flags (`SYNC_SAMPLE` for a sync sample).
    pub flags: u32,
    /// Composition time offset (0 for audio).
    pub composition_offset: i32,
}

/// Sample flags of a sync sample that depends on no other (audio frames, IDR pictures).
pub const SYNC_SAMPLE: u32 = 0x0200_0000;

/// Writes one fragment (`moof` + `mdat`): `mfhd` with `sequence`, one `traf` for `track_id`
/// with `tfhd` (default-base-is-moof), `tfdt` at `decode_time`, and one `trun` listing each
/// sample's duration, size, flags and, when any is not 0, composition offset. `data` is the
/// samples' bytes, in order; their sizes must add up to its length.
pub fn fragment(
    sequence: u32,
    track_id: u32,
    decode_time: u64,
    samples: &[SampleInfo],
    data: &[u8],
) -> Result<Fragment, MediaError> {
    let total: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    if total != data.len() as u64 {
        return Err(bad(format!(
            "sample sizes add up to {total} bytes, the data has {}",
            data.len()
        )));
    }
    let count = u32::try_from(samples.len()).map_err(|_| bad("too many samples"))?;
    let with_cto = samples.iter().any(|s| s.composition_offset != 0);
    let per = if with_cto { 16 } else { 12 };
    let trun_len = 8 + 4 + 4 + 4 + per * samples.len();
    let traf_len = 8 + 16 + 20 + trun_len;
    let moof_len = 8 + 16 + traf_len;
    let mdat_len = 8 + data.len();
    let data_offset = i32::try_from(moof_len + 8).map_err(|_| bad("fragment header too large"))?;
    let mdat_size = u32::try_from(mdat_len).map_err(|_| bad("fragment data over 4 GiB"))?;
    let mut b = Vec::with_capacity(moof_len + mdat_len);
    let head = |b: &mut Vec<u8>, len: usize, kind: &[u8; 4]| {
        b.extend_from_slice(&(len as u32).to_be_bytes());
        b.extend_from_slice(kind);
    };
    head(&mut b, moof_len, b"moof");
    head(&mut b, 16, b"mfhd");
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&sequence.to_be_bytes());
    head(&mut b, traf_len, b"traf");
    head(&mut b, 16, b"tfhd");
    b.extend_from_slice(&0x0002_0000u32.to_be_bytes()); // default-base-is-moof
    b.extend_from_slice(&track_id.to_be_bytes());
    head(&mut b, 20, b"tfdt");
    b.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // version 1
    b.extend_from_slice(&decode_time.to_be_bytes());
    head(&mut b, trun_len, b"trun");
    let flags: u32 = 0x001 | 0x100 | 0x200 | 0x400 | if with_cto { 0x800 } else { 0 };
    // Version 1: signed composition offsets.
    b.extend_from_slice(&(0x0100_0000 | flags).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&data_offset.to_be_bytes());
    for s in samples {
        b.extend_from_slice(&s.duration.to_be_bytes());
        b.extend_from_slice(&s.size.to_be_bytes());
        b.extend_from_slice(&s.flags.to_be_bytes());
        if with_cto {
            b.extend_from_slice(&s.composition_offset.to_be_bytes());
        }
    }
    debug_assert_eq!(b.len(), moof_len);
    b.extend_from_slice(&mdat_size.to_be_bytes());
    b.extend_from_slice(b"mdat");
    b.extend_from_slice(data);
    Ok(Fragment {
        bytes: b,
        decode_time,
        samples: count,
        duration: samples.iter().map(|s| u64::from(s.duration)).sum(),
        starts_with_sync: samples.first().is_some_and(|s| s.flags & 0x0001_0000 == 0),
    })
}

/// The `styp` box of a CMAF media segment (major brand `cmfs`).
pub fn styp() -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&24u32.to_be_bytes());
    b.extend_from_slice(b"styp");
    b.extend_from_slice(b"cmfs");
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(b"cmfs");
    b.extend_from_slice(b"msdh");
    b
}

/// A media segment: `styp`, then `extra` boxes (e.g. `wmpi`), then the fragment.
pub fn media_segment(fragment: &Fragment, extra: &[&[u8]]) -> Vec<u8> {
    let styp = styp();
    let mut out = Vec::with_capacity(
        styp.len() + extra.iter().map(|e| e.len()).sum::<usize>() + fragment.bytes.len(),
    );
    out.extend_from_slice(&styp);
    for e in extra {
        out.extend_from_slice(e);
    }
    out.extend_from_slice(&fragment.bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn lists_boxes_and_rejects_overruns() {
        let mut buf = bx(b"free", &[1, 2, 3]);
        buf.extend(bx(b"skip", &[]));
        let b = boxes(&buf, 0, buf.len()).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(&b[1].kind, b"skip");
        let mut bad = buf.clone();
        bad[3] = 200;
        assert!(boxes(&bad, 0, bad.len()).is_err());
        assert!(boxes(&buf[..5], 0, 5).is_err());
        assert!(split(&buf).is_err());
    }

    #[test]
    fn never_panics_on_truncations_and_garbage() {
        let mut buf = bx(b"ftyp", b"isom\0\0\0\0");
        buf.extend(bx(
            b"moov",
            &bx(b"trak", &bx(b"mdia", &bx(b"mdhd", &[0; 24]))),
        ));
        buf.extend(bx(b"moof", &[0; 16]));
        buf.extend(bx(b"mdat", &[0; 4]));
        for n in 0..buf.len() {
            let _ = split(&buf[..n]);
        }
        let mut x = 12345u32;
        for _ in 0..2000 {
            let mut g = buf.clone();
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let i = (x as usize >> 8) % g.len();
            g[i] ^= (x >> 24) as u8 | 1;
            let _ = split(&g);
        }
    }

    #[test]
    fn a_written_fragment_reads_back() {
        let samples = [
            SampleInfo {
                duration: 1024,
                size: 3,
                flags: SYNC_SAMPLE,
                composition_offset: 0,
            },
            SampleInfo {
                duration: 1000,
                size: 2,
                flags: SYNC_SAMPLE,
                composition_offset: 0,
            },
        ];
        let f = fragment(7, 1, 1 << 33, &samples, &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!((f.samples, f.duration, f.decode_time), (2, 2024, 1 << 33));
        let top = boxes(&f.bytes, 0, f.bytes.len()).unwrap();
        assert_eq!(
            top.iter().map(|b| b.kind).collect::<Vec<_>>(),
            [*b"moof", *b"mdat"]
        );
        assert_eq!(
            read_moof(&f.bytes, &top[0], 0, 0).unwrap(),
            (1 << 33, 2, 2024, true)
        );
        // The trun data offset points at the first sample's byte, counted from the moof.
        let trun = path(&f.bytes, &top[0], &[b"traf", b"trun"]).unwrap();
        let offset = be_u32(&f.bytes, trun.payload + 8).unwrap() as usize;
        assert_eq!(f.bytes[offset], 1);
        assert!(fragment(1, 1, 0, &samples, &[1, 2]).is_err());
    }

    #[test]
    fn the_first_composition_offset_reads_both_trun_versions() {
        // Pictures as x264 orders them with B-frames (I P B B), written the way FFmpeg's CMAF
        // muxer writes them (version 1, the keyframe at offset 0, signed offsets after it)
        // and the way a plain MP4 muxer would (version 0, everything two frames late).
        let sample = |flags, composition_offset| SampleInfo {
            duration: 1000,
            size: 1,
            flags,
            composition_offset,
        };
        let cmaf = [
            sample(SYNC_SAMPLE, 0),
            sample(0x0101_0000, 2000),
            sample(0x0101_0000, -1000),
            sample(0x0101_0000, -1000),
        ];
        let f = fragment(1, 1, 0, &cmaf, &[1, 2, 3, 4]).unwrap();
        assert_eq!(f.first_composition_offset().unwrap(), 0);
        let late = cmaf.map(|s| SampleInfo {
            composition_offset: s.composition_offset + 2000,
            ..s
        });
        let mut f = fragment(1, 1, 0, &late, &[1, 2, 3, 4]).unwrap();
        let (version_at, _) = f.composition_offsets().unwrap().remove(0);
        f.bytes[version_at] = 0;
        assert_eq!(f.first_composition_offset().unwrap(), 2000);
        // Audio: no offsets at all.
        let audio = fragment(1, 1, 0, &[sample(SYNC_SAMPLE, 0)], &[9]).unwrap();
        assert_eq!(audio.first_composition_offset().unwrap(), 0);
        assert!(audio.composition_offsets().unwrap().is_empty());
    }

    #[test]
    fn styp_is_a_valid_box() {
        let s = styp();
        let b = boxes(&s, 0, s.len()).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(&b[0].kind, b"styp");
    }
}
