//! Common Encryption (ISO/IEC 23001-7) of CMAF tracks: the `cenc` scheme (AES-128 CTR) and
//! the `cbcs` scheme (AES-128 CBC, 1:9 pattern for video, constant IV).
//!
//! - [`protect_init`] turns an init segment into its protected form: the sample entry becomes
//!   `encv`/`enca` with a `sinf` (`frma`, `schm`, `schi`/`tenc` naming the key ID), and `pssh`
//!   boxes (the W3C common one listing the key IDs, and any passed in) close the `moov`.
//! - [`Protector::protect`] encrypts a fragment in place (same sample sizes) and adds `senc`,
//!   `saiz` and `saio` to its `traf`, moving the `trun` data offset past them.
//!
//! H.264 and HEVC video is encrypted by subsample: each NAL unit's length prefix, NAL header
//! and, in a coded slice (segment), the slice (segment) header stay clear (parameter sets, SEI
//! and every other non-VCL unit stay clear entirely); the protected part is a whole number of
//! 16-byte blocks under `cenc`, and starts at the slice data under `cbcs`. The headers are
//! parsed exactly, with the parameter sets of the `avcC` or `hvcC` record (and, for HEVC, those
//! the samples carry in-band): see [`AvcConfig`] and [`HevcConfig`]. Audio is encrypted as
//! whole samples (under `cbcs`, every complete block; a trailing partial block stays clear).
//! AV1 tracks are refused ([`MediaError::InvalidSetting`]).
//!
//! ```
//! use leaktrace_media::cenc::{ContentKey, Scheme};
//! let key = ContentKey::parse_hex("00112233445566778899aabbccddeeff", "0123456789abcdef0123456789abcdef")?;
//! assert_eq!(key.kid_uuid(), "00112233-4455-6677-8899-aabbccddeeff");
//! assert_eq!("cbcs".parse::<Scheme>()?, Scheme::Cbcs);
//! # Ok::<(), leaktrace_media::MediaError>(())
//! ```

mod avc;
mod bits;
mod hevc;

use crate::MediaError;
use crate::cmaf::{BoxRef, Fragment, boxes};
use aes::Aes128;
use aes::cipher::{BlockModeEncrypt, KeyIvInit, StreamCipher};
use std::str::FromStr;

pub use avc::AvcConfig;
pub use hevc::HevcConfig;

fn bad(msg: impl Into<String>) -> MediaError {
    MediaError::BadMp4(msg.into())
}

/// The protection scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// AES-128 CTR with 8-byte per-sample IVs, subsamples for video (DASH, Widevine,
    /// PlayReady, ClearKey).
    Cenc,
    /// AES-128 CBC with a constant IV and a 1:9 pattern for video (HLS and DASH; FairPlay,
    /// Widevine, PlayReady, ClearKey).
    Cbcs,
}

impl Scheme {
    /// The four-character scheme type.
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            Scheme::Cenc => b"cenc",
            Scheme::Cbcs => b"cbcs",
        }
    }

    /// The name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Cenc => "cenc",
            Scheme::Cbcs => "cbcs",
        }
    }
}

impl FromStr for Scheme {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, MediaError> {
        match s {
            "cenc" => Ok(Scheme::Cenc),
            "cbcs" => Ok(Scheme::Cbcs),
            other => Err(MediaError::InvalidSetting(format!(
                "encryption scheme {other:?} (expected cenc or cbcs)"
            ))),
        }
    }
}

/// A content key and its key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey {
    /// Key ID (`default_KID`).
    pub kid: [u8; 16],
    /// AES-128 key.
    pub key: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("kid", &self.kid_uuid())
            .finish_non_exhaustive()
    }
}

/// 16 bytes from 32 hexadecimal digits (dashes allowed, as in a UUID); the error names
/// `what` and the valid length.
pub fn hex16(what: &str, s: &str) -> Result<[u8; 16], String> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return Err(format!(
            "{what} has {} hex digits (expected 32, i.e. 16 bytes)",
            digits.len()
        ));
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok();
        out[i] = hex
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("{what} is not hexadecimal ({s:?})"))?;
    }
    Ok(out)
}

impl ContentKey {
    /// A key from hexadecimal key ID and key (32 digits each).
    pub fn parse_hex(kid: &str, key: &str) -> Result<Self, MediaError> {
        Ok(Self {
            kid: hex16("key ID", kid).map_err(MediaError::InvalidSetting)?,
            key: hex16("key", key).map_err(MediaError::InvalidSetting)?,
        })
    }

    /// The key ID as a UUID string (`cenc:default_KID`).
    pub fn kid_uuid(&self) -> String {
        uuid(&self.kid)
    }
}

/// `8-4-4-4-12` lowercase UUID form of 16 bytes.
pub fn uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The W3C "common" system ID (ClearKey and any CDM that reads key IDs from `pssh` v1).
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];

/// A `pssh` box to write into the init segment and the manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pssh {
    /// DRM system ID.
    pub system_id: [u8; 16],
    /// Key IDs (a version 1 box when not empty).
    pub kids: Vec<[u8; 16]>,
    /// The system's own data, as its license service issued it.
    pub data: Vec<u8>,
}

impl Pssh {
    /// The W3C common `pssh` (version 1) listing `kids`.
    pub fn common(kids: Vec<[u8; 16]>) -> Self {
        Self {
            system_id: COMMON_SYSTEM_ID,
            kids,
            data: Vec::new(),
        }
    }

    /// The whole box.
    pub fn to_box(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(if self.kids.is_empty() {
            &[0, 0, 0, 0]
        } else {
            &[1, 0, 0, 0]
        });
        p.extend_from_slice(&self.system_id);
        if !self.kids.is_empty() {
            p.extend_from_slice(&(self.kids.len() as u32).to_be_bytes());
            for k in &self.kids {
                p.extend_from_slice(k);
            }
        }
        p.extend_from_slice(&(self.data.len() as u32).to_be_bytes());
        p.extend_from_slice(&self.data);
        make_box(b"pssh", &p)
    }
}

fn make_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 8);
    b.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// Replaces the last box of `chain` (a path of nested boxes of `buf`, outermost first) by
/// `replacement`, fixing the sizes of the boxes above it (32-bit sizes only).
fn splice(buf: &[u8], chain: &[BoxRef], replacement: &[u8]) -> Result<Vec<u8>, MediaError> {
    let target = chain.last().ok_or_else(|| bad("empty box chain"))?;
    let delta = replacement.len() as i64 - (target.end - target.start) as i64;
    let mut out = Vec::with_capacity((buf.len() as i64 + delta).max(0) as usize);
    out.extend_from_slice(&buf[..target.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&buf[target.end..]);
    for b in &chain[..chain.len() - 1] {
        if b.payload - b.start != 8 {
            return Err(bad("64-bit box sizes are not supported here"));
        }
        let size = ((b.end - b.start) as i64 + delta) as u32;
        out[b.start..b.start + 4].copy_from_slice(&size.to_be_bytes());
    }
    Ok(out)
}

/// The NAL structure of a video track, for subsample encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Video {
    Avc(AvcConfig),
    Hevc(HevcConfig),
}

impl Video {
    fn length_size(&self) -> usize {
        match self {
            Video::Avc(c) => c.length_size,
            Video::Hevc(c) => c.length_size,
        }
    }

    fn nal_units(&self, sample: &[u8]) -> Result<Vec<(usize, usize)>, MediaError> {
        match self {
            Video::Avc(c) => c.nal_units(sample),
            Video::Hevc(c) => c.nal_units(sample),
        }
    }

    /// Clear bytes of `nal`; HEVC parameter sets met in the samples are read on the way.
    fn clear_bytes(&mut self, nal: &[u8]) -> Result<usize, MediaError> {
        match self {
            Video::Avc(c) => c.clear_bytes(nal),
            Video::Hevc(c) => c.clear_bytes(nal),
        }
    }
}

/// What [`protect_init`] learned from the track, needed to encrypt its fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackCrypto {
    scheme: Scheme,
    key: ContentKey,
    /// `Some` for video (subsample encryption), `None` for audio (whole samples).
    video: Option<Video>,
    /// The `cbcs` constant IV.
    constant_iv: [u8; 16],
}

/// The protected form of init segment `init` (`ftyp` + `moov` with one track, as written by
/// FFmpeg): sample entry `encv`/`enca` with `sinf`, then `pssh` boxes at the end of `moov`.
/// Returns it and what [`Protector`] needs to encrypt the track's fragments.
///
/// # Errors
/// A codec other than H.264, HEVC or AAC ([`MediaError::InvalidSetting`]), or an init segment
/// without the expected boxes or with a malformed `avcC`/`hvcC` ([`MediaError::BadMp4`]).
pub fn protect_init(
    init: &[u8],
    scheme: Scheme,
    key: &ContentKey,
    pssh: &[Pssh],
    constant_iv: [u8; 16],
) -> Result<(Vec<u8>, TrackCrypto), MediaError> {
    let top = boxes(init, 0, init.len())?;
    let moov = *top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| bad("no moov"))?;
    let mut chain = vec![moov];
    for kind in [b"trak", b"mdia", b"minf", b"stbl", b"stsd"] {
        let parent = chain[chain.len() - 1];
        let next = boxes(init, parent.payload, parent.end)?
            .into_iter()
            .find(|b| &b.kind == kind)
            .ok_or_else(|| bad(format!("no {} box", String::from_utf8_lossy(kind))))?;
        chain.push(next);
    }
    let stsd = chain[chain.len() - 1];
    let entry = *boxes(init, stsd.payload + 8, stsd.end)?
        .first()
        .ok_or_else(|| bad("empty stsd"))?;
    // VisualSampleEntry fields before the child boxes: 78 bytes.
    let config = |kind: &[u8; 4]| -> Result<&[u8], MediaError> {
        let b = boxes(init, entry.payload + 78, entry.end)?
            .into_iter()
            .find(|b| &b.kind == kind)
            .ok_or_else(|| {
                bad(format!(
                    "{} sample entry without {}",
                    String::from_utf8_lossy(&entry.kind),
                    String::from_utf8_lossy(kind)
                ))
            })?;
        Ok(&init[b.payload..b.end])
    };
    let (new_kind, fields, video) = match &entry.kind {
        b"avc1" | b"avc3" => (
            *b"encv",
            78,
            Some(Video::Avc(AvcConfig::parse(config(b"avcC")?)?)),
        ),
        b"hvc1" | b"hev1" => (
            *b"encv",
            78,
            Some(Video::Hevc(HevcConfig::parse(config(b"hvcC")?)?)),
        ),
        b"mp4a" => (*b"enca", 28, None),
        other => {
            return Err(MediaError::InvalidSetting(format!(
                "Common Encryption of {} tracks is not implemented (H.264 and HEVC video and AAC audio are)",
                String::from_utf8_lossy(other)
            )));
        }
    };
    // The sample entry: same fields and children, renamed, with `sinf` appended.
    let mut tenc = Vec::new();
    match scheme {
        Scheme::Cenc => {
            tenc.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 8]);
            tenc.extend_from_slice(&key.kid);
        }
        Scheme::Cbcs => {
            let pattern = if video.is_some() { 0x19 } else { 0x00 };
            tenc.extend_from_slice(&[1, 0, 0, 0, 0, pattern, 1, 0]);
            tenc.extend_from_slice(&key.kid);
            tenc.push(16);
            tenc.extend_from_slice(&constant_iv);
        }
    }
    let mut schm = vec![0, 0, 0, 0];
    schm.extend_from_slice(scheme.fourcc());
    schm.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    let mut sinf = make_box(b"frma", &entry.kind);
    sinf.extend(make_box(b"schm", &schm));
    sinf.extend(make_box(b"schi", &make_box(b"tenc", &tenc)));
    let mut payload = init[entry.payload..entry.end].to_vec();
    if payload.len() < fields {
        return Err(bad("sample entry shorter than its fields"));
    }
    payload.extend(make_box(b"sinf", &sinf));
    let new_entry = make_box(&new_kind, &payload);
    chain.push(entry);
    let mut out = splice(init, &chain, &new_entry)?;
    // `pssh` boxes at the end of `moov`.
    let moov_end = moov.end + new_entry.len() - (entry.end - entry.start);
    let extra: Vec<u8> = pssh.iter().flat_map(Pssh::to_box).collect();
    out.splice(moov_end..moov_end, extra.iter().copied());
    let size = (moov_end - moov.start + extra.len()) as u32;
    out[moov.start..moov.start + 4].copy_from_slice(&size.to_be_bytes());
    Ok((
        out,
        TrackCrypto {
            scheme,
            key: key.clone(),
            video,
            constant_iv,
        },
    ))
}

/// How one track is protected: scheme, key, `pssh` boxes and, for `cbcs`, the constant IV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// `cenc` or `cbcs`.
    pub scheme: Scheme,
    /// The track's key.
    pub key: ContentKey,
    /// `pssh` boxes for the init segment.
    pub pssh: Vec<Pssh>,
    /// The `cbcs` constant IV (unused by `cenc`, whose IVs are random per sample).
    pub constant_iv: [u8; 16],
}

impl Protection {
    /// The protected init segment and the protector of the track's fragments.
    pub fn init(&self, init: &[u8]) -> Result<(Vec<u8>, Protector), MediaError> {
        let (bytes, track) =
            protect_init(init, self.scheme, &self.key, &self.pssh, self.constant_iv)?;
        Ok((bytes, Protector::new(track)))
    }
}

/// Encrypts the fragments of one track (one variant of one rendition, or one audio track).
#[derive(Debug)]
pub struct Protector {
    track: TrackCrypto,
}

/// Where things are in a fragment: its `moof`, `traf` and `trun`, and each sample's
/// (offset, size) in the fragment's bytes.
struct Layout {
    moof: BoxRef,
    traf: BoxRef,
    trun: BoxRef,
    samples: Vec<(usize, usize)>,
}

/// One sample's encryption: its IV (`cenc`) and subsamples (clear, protected).
struct SampleCrypto {
    iv: Option<[u8; 8]>,
    subsamples: Vec<(u16, u32)>,
}

impl Protector {
    /// A protector for the track `protect_init` described.
    pub fn new(track: TrackCrypto) -> Self {
        Self { track }
    }

    /// The boxes of a `moof` + `mdat` fragment and its samples' byte ranges.
    fn layout(buf: &[u8]) -> Result<Layout, MediaError> {
        let top = boxes(buf, 0, buf.len())?;
        let moof = *top
            .iter()
            .find(|b| &b.kind == b"moof")
            .ok_or_else(|| bad("fragment without moof"))?;
        let traf = boxes(buf, moof.payload, moof.end)?
            .into_iter()
            .find(|b| &b.kind == b"traf")
            .ok_or_else(|| bad("moof without traf"))?;
        let kids = boxes(buf, traf.payload, traf.end)?;
        let tfhd = kids
            .iter()
            .find(|b| &b.kind == b"tfhd")
            .ok_or_else(|| bad("traf without tfhd"))?;
        let tf_flags = be32(buf, tfhd.payload)? & 0x00FF_FFFF;
        if tf_flags & 0x01 != 0 || tf_flags & 0x0002_0000 == 0 {
            return Err(bad("fragment is not default-base-is-moof"));
        }
        let default_size = {
            let mut at = tfhd.payload + 8;
            if tf_flags & 0x02 != 0 {
                at += 4;
            }
            if tf_flags & 0x08 != 0 {
                at += 4;
            }
            if tf_flags & 0x10 != 0 {
                Some(be32(buf, at)?)
            } else {
                None
            }
        };
        let truns: Vec<BoxRef> = kids
            .iter()
            .filter(|b| &b.kind == b"trun")
            .copied()
            .collect();
        let [trun] = truns.as_slice() else {
            return Err(bad("encryption needs exactly one trun per fragment"));
        };
        let crate::cmaf::TrunTable {
            flags,
            count,
            data_offset,
            at,
            per,
            ..
        } = crate::cmaf::trun_table(buf, trun)?;
        let offset = data_offset.ok_or_else(|| bad("trun without data offset"))?;
        let mut pos = usize::try_from(i64::from(offset) + moof.start as i64)
            .map_err(|_| bad("negative data offset"))?;
        let mut out = Vec::with_capacity(count);
        for s in 0..count {
            let mut p = at + s * per;
            if flags & 0x100 != 0 {
                p += 4;
            }
            let size = if flags & 0x200 != 0 {
                be32(buf, p)?
            } else {
                default_size.ok_or_else(|| bad("no sample size"))?
            } as usize;
            if pos + size > buf.len() {
                return Err(bad("sample data past the end of the fragment"));
            }
            out.push((pos, size));
            pos += size;
        }
        Ok(Layout {
            moof,
            traf,
            trun: *trun,
            samples: out,
        })
    }

    /// Encrypts `fragment` and adds its `senc`, `saiz` and `saio`.
    pub fn protect(&mut self, fragment: &Fragment) -> Result<Fragment, MediaError> {
        let mut buf = fragment.bytes.clone();
        let Layout {
            moof,
            traf,
            trun,
            samples,
        } = Self::layout(&buf)?;
        let mut infos = Vec::with_capacity(samples.len());
        for &(at, size) in &samples {
            let data = &mut buf[at..at + size];
            infos.push(self.encrypt_sample(data)?);
        }
        // senc: version 0, flags 0x2 when subsamples are listed.
        let with_subsamples = self.track.video.is_some();
        let mut senc = vec![0, 0, 0, if with_subsamples { 2 } else { 0 }];
        senc.extend_from_slice(&(infos.len() as u32).to_be_bytes());
        let mut sizes = Vec::with_capacity(infos.len());
        for info in &infos {
            let start = senc.len();
            if let Some(iv) = info.iv {
                senc.extend_from_slice(&iv);
            }
            if with_subsamples {
                senc.extend_from_slice(&(info.subsamples.len() as u16).to_be_bytes());
                for &(clear, protected) in &info.subsamples {
                    senc.extend_from_slice(&clear.to_be_bytes());
                    senc.extend_from_slice(&protected.to_be_bytes());
                }
            }
            sizes.push(u8::try_from(senc.len() - start).map_err(|_| {
                bad("a sample has too many subsamples for its auxiliary information")
            })?);
        }
        // No per-sample information at all (`cbcs` audio: constant IV, whole samples): the
        // track's `tenc` says everything, and no `senc`/`saiz`/`saio` is written.
        if sizes.iter().all(|&s| s == 0) {
            return Ok(Fragment {
                bytes: buf,
                ..fragment.clone()
            });
        }
        let senc = make_box(b"senc", &senc);
        let mut saiz = vec![0, 0, 0, 0];
        let uniform = sizes.windows(2).all(|w| w[0] == w[1]);
        saiz.push(if uniform {
            sizes.first().copied().unwrap_or(0)
        } else {
            0
        });
        saiz.extend_from_slice(&(sizes.len() as u32).to_be_bytes());
        if !uniform {
            saiz.extend_from_slice(&sizes);
        }
        let saiz = make_box(b"saiz", &saiz);
        // saio: one offset, from the moof to the first sample's data in senc (its payload
        // starts 8 bytes after the box header: version/flags and sample_count).
        let added = saiz.len() + 20 + senc.len();
        let senc_at = traf.end + saiz.len() + 20 - moof.start;
        let mut saio = vec![0, 0, 0, 0];
        saio.extend_from_slice(&1u32.to_be_bytes());
        saio.extend_from_slice(&((senc_at + 16) as u32).to_be_bytes());
        let saio = make_box(b"saio", &saio);
        let mut extra = saiz;
        extra.extend(saio);
        extra.extend(senc);
        debug_assert_eq!(extra.len(), added);
        // Insert at the end of the traf; grow traf and moof; move the data offset.
        let mut out = Vec::with_capacity(buf.len() + added);
        out.extend_from_slice(&buf[..traf.end]);
        out.extend_from_slice(&extra);
        out.extend_from_slice(&buf[traf.end..]);
        for b in [moof, traf] {
            let size = (b.end - b.start + added) as u32;
            out[b.start..b.start + 4].copy_from_slice(&size.to_be_bytes());
        }
        let off_at = trun.payload + 8;
        let offset = be32(&out, off_at)? as i32;
        let moved = offset
            .checked_add(added as i32)
            .ok_or_else(|| bad("data offset overflow"))?;
        out[off_at..off_at + 4].copy_from_slice(&moved.to_be_bytes());
        Ok(Fragment {
            bytes: out,
            ..fragment.clone()
        })
    }

    fn encrypt_sample(&mut self, data: &mut [u8]) -> Result<SampleCrypto, MediaError> {
        // Clear and protected ranges of the sample.
        let scheme = self.track.scheme;
        let ranges: Vec<(usize, usize)> = match &mut self.track.video {
            None => vec![(0, data.len())],
            Some(video) => {
                let mut v = Vec::new();
                let length_size = video.length_size();
                for (at, total) in video.nal_units(data)? {
                    let nal = &data[at + length_size..at + total];
                    let mut clear = length_size + video.clear_bytes(nal)?;
                    let mut protected = total - clear;
                    if scheme == Scheme::Cenc {
                        let r = protected % 16;
                        clear += r;
                        protected -= r;
                    }
                    v.push((clear, protected));
                }
                v
            }
        };
        let subsamples = pack_subsamples(&ranges)?;
        let key = (&self.track.key.key).into();
        match self.track.scheme {
            Scheme::Cenc => {
                let mut iv = [0u8; 8];
                getrandom::fill(&mut iv).map_err(|e| {
                    MediaError::InvalidSetting(format!("no randomness for IVs: {e}"))
                })?;
                let mut counter = [0u8; 16];
                counter[..8].copy_from_slice(&iv);
                let mut ctr = ctr::Ctr128BE::<Aes128>::new(key, (&counter).into());
                let mut at = 0;
                for &(clear, protected) in &ranges {
                    at += clear;
                    ctr.apply_keystream(&mut data[at..at + protected]);
                    at += protected;
                }
                Ok(SampleCrypto {
                    iv: Some(iv),
                    subsamples,
                })
            }
            Scheme::Cbcs => {
                let (crypt, skip) = if self.track.video.is_some() {
                    (1, 9)
                } else {
                    (1, 0)
                };
                let mut at = 0;
                for &(clear, protected) in &ranges {
                    at += clear;
                    // The chain restarts from the constant IV in every subsample.
                    let mut cbc =
                        cbc::Encryptor::<Aes128>::new(key, (&self.track.constant_iv).into());
                    let region = &mut data[at..at + protected];
                    let blocks = region.len() / 16;
                    let mut b = 0;
                    while b < blocks {
                        for k in b..(b + crypt).min(blocks) {
                            let mut block = [0u8; 16];
                            block.copy_from_slice(&region[k * 16..k * 16 + 16]);
                            let mut arr = block.into();
                            cbc.encrypt_block(&mut arr);
                            region[k * 16..k * 16 + 16].copy_from_slice(&arr[..]);
                        }
                        b += crypt + skip;
                    }
                    at += protected;
                }
                Ok(SampleCrypto {
                    iv: None,
                    subsamples,
                })
            }
        }
    }
}

/// (clear, protected) byte counts as `senc` subsample entries: runs of clear bytes merged into
/// the next protected range, clear runs over 65535 bytes split.
fn pack_subsamples(ranges: &[(usize, usize)]) -> Result<Vec<(u16, u32)>, MediaError> {
    let mut out = Vec::new();
    let mut pending = 0usize;
    for &(clear, protected) in ranges {
        pending += clear;
        if protected == 0 {
            continue;
        }
        while pending > usize::from(u16::MAX) {
            out.push((u16::MAX, 0));
            pending -= usize::from(u16::MAX);
        }
        out.push((
            pending as u16,
            u32::try_from(protected).map_err(|_| bad("a NAL unit over 4 GiB"))?,
        ));
        pending = 0;
    }
    while pending > 0 {
        let c = pending.min(usize::from(u16::MAX));
        out.push((c as u16, 0));
        pending -= c;
    }
    Ok(out)
}

fn be32(buf: &[u8], at: usize) -> Result<u32, MediaError> {
    buf.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("field past the end of its box"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsamples_merge_clear_runs_and_split_long_ones() {
        assert_eq!(
            pack_subsamples(&[(5, 0), (6, 32), (4, 0)]).unwrap(),
            [(11, 32), (4, 0)]
        );
        assert_eq!(
            pack_subsamples(&[(70_000, 16)]).unwrap(),
            [(65_535, 0), (4_465, 16)]
        );
    }

    #[test]
    fn keys_and_schemes_read_with_their_ranges_named() {
        let e = ContentKey::parse_hex("0011", "00").unwrap_err();
        assert!(e.to_string().contains("4 hex digits (expected 32"), "{e}");
        let e = ContentKey::parse_hex(&"zz".repeat(16), &"00".repeat(16)).unwrap_err();
        assert!(e.to_string().contains("not hexadecimal"), "{e}");
        assert!("aes".parse::<Scheme>().is_err());
        let k = ContentKey::parse_hex("10000000-0000-0000-0000-000000000001", &"ab".repeat(16))
            .unwrap();
        assert_eq!(k.kid[0], 0x10);
        assert!(
            !format!("{k:?}").contains("abab"),
            "the key is never printed"
        );
    }

    #[test]
    fn the_common_pssh_lists_its_key_ids() {
        let b = Pssh::common(vec![[7; 16]]).to_box();
        assert_eq!(&b[4..8], b"pssh");
        assert_eq!(b[8], 1, "version 1");
        assert_eq!(&b[12..28], &COMMON_SYSTEM_ID);
        assert_eq!(u32::from_be_bytes([b[28], b[29], b[30], b[31]]), 1);
        assert_eq!(&b[32..48], &[7; 16]);
        assert_eq!(b.len(), 52);
    }
}
