//! WMPaceInfo sidecar files (clause 5.5.3.2): [`SidecarSegment`] and [`Sidecar`], their rules,
//! their CBOR and `WMPaceInfoEgress` header forms, and the byte-range lookup of clause 5.7.5.4.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::cbor::{
    CBOR_FALSE, CBOR_TRUE, KEY_FILE_SIZE, KEY_FIRSTPART, KEY_LASTPART, KEY_POSITION,
    KEY_SEGMENT_REGEX, KEY_SEGMENTS, KEY_START_RANGE, KEY_VERSION, MAJOR_ARRAY, MAJOR_MAP,
    MAJOR_NINT, MAJOR_TEXT, MAJOR_UINT, Reader, put_head,
};
use super::error::Result;
use super::pace_info::check_position;
use super::{
    EGRESS_HEADER, MAX_EGRESS_HEADER_LEN, MAX_SIDECAR_SEGMENTS, WMPACEINFO_VERSION, WmPaceInfoError,
};

/// base64url (RFC 4648 §5): no padding written, padding optional on read,
/// non-canonical trailing bits rejected.
pub(super) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One entry of a sidecar's `segments` array: a `discrete-segment` (no
/// `start_range`) or a `byterange-segment` (`start_range` and `position`
/// only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SidecarSegment {
    /// `startRange` (key 4): offset of the segment's first byte in the track;
    /// byterange sidecars only, where it is required.
    pub start_range: Option<u64>,
    /// `segmentRegex` (key 5): POSIX ERE over segment file names; optional,
    /// discrete only.
    pub segment_regex: Option<String>,
    /// `position` (key 6, required): `None` is -1, not watermarked;
    /// `Some(p)` requires `p <= 32767`.
    pub position: Option<u16>,
    /// `firstpart` (key 7): optional, discrete only.
    pub first_part: Option<bool>,
    /// `lastpart` (key 8): optional, discrete only.
    pub last_part: Option<bool>,
}

impl SidecarSegment {
    /// A discrete-segment with only a position.
    pub const fn discrete(position: Option<u16>) -> Self {
        Self {
            start_range: None,
            segment_regex: None,
            position,
            first_part: None,
            last_part: None,
        }
    }

    /// A byterange-segment starting at `start_range`.
    pub const fn byterange(start_range: u64, position: Option<u16>) -> Self {
        Self {
            start_range: Some(start_range),
            segment_regex: None,
            position,
            first_part: None,
            last_part: None,
        }
    }
}

/// A WMPaceInfo sidecar file (clause 5.5.3.2): `sidecar-discrete` when
/// `file_size` is `None`, `sidecar-byterange` when it is `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// `version` (key 1); must be 1.
    pub version: u8,
    /// `fileSize` (key 3): the track size in bytes; byterange sidecars only.
    pub file_size: Option<u64>,
    /// `segments` (key 2): 1..=[`MAX_SIDECAR_SEGMENTS`] entries; for
    /// byteranges in strictly increasing `start_range` order.
    pub segments: Vec<SidecarSegment>,
}

impl Sidecar {
    /// The common case: the sidecar (or egress header) of one discrete
    /// segment file, `{1: 1, 2: [{6: position}]}`.
    pub fn for_discrete_segment(position: Option<u16>) -> Self {
        Self {
            version: WMPACEINFO_VERSION,
            file_size: None,
            segments: vec![SidecarSegment::discrete(position)],
        }
    }

    /// A byterange sidecar for a track of `file_size` bytes from
    /// `(startRange, position)` pairs in increasing `startRange` order
    /// (the first is normally `(0, None)`: the initialization segment).
    pub fn for_byterange_track(
        file_size: u64,
        ranges: impl IntoIterator<Item = (u64, Option<u16>)>,
    ) -> Result<Self> {
        let sidecar = Self {
            version: WMPACEINFO_VERSION,
            file_size: Some(file_size),
            segments: ranges
                .into_iter()
                .map(|(start, position)| SidecarSegment::byterange(start, position))
                .collect(),
        };
        sidecar.validate()?;
        Ok(sidecar)
    }

    /// Whether this is a `sidecar-byterange` (it has `fileSize`).
    pub fn is_byterange(&self) -> bool {
        self.file_size.is_some()
    }

    /// The position a discrete sidecar gives its file (`None`: -1, not watermarked), as the
    /// edge and a CDN export read it: the one segment entry's, or with several the one without
    /// `segmentRegex` (POSIX regular expressions are not evaluated). A byterange sidecar, or
    /// one whose every entry has a `segmentRegex`, is an error.
    pub fn file_position(&self) -> Result<Option<u16>> {
        if self.is_byterange() {
            return Err(WmPaceInfoError::InvalidSidecar {
                reason: "a byterange sidecar gives no single position for its file".into(),
            });
        }
        match self.segments.as_slice() {
            [one] => Ok(one.position),
            many => many
                .iter()
                .find(|s| s.segment_regex.is_none())
                .map(|s| s.position)
                .ok_or_else(|| WmPaceInfoError::InvalidSidecar {
                    reason: "every segment entry has a segmentRegex, which is not evaluated".into(),
                }),
        }
    }

    /// Checks every rule of clause 5.5.3.2: version 1; 1..=1 000 000
    /// segments; positions -1..=32767; byterange sidecars have `startRange`
    /// (strictly increasing, below `fileSize`) and nothing but `position`
    /// beside it; discrete sidecars have no `startRange`.
    pub fn validate(&self) -> Result<()> {
        if self.version != WMPACEINFO_VERSION {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: self.version.into(),
            });
        }
        if self.segments.is_empty() {
            return Err(WmPaceInfoError::NoSegments);
        }
        if self.segments.len() > MAX_SIDECAR_SEGMENTS {
            return Err(WmPaceInfoError::TooManySegments {
                count: self.segments.len() as u64,
            });
        }
        let mut previous_start: Option<u64> = None;
        for (i, seg) in self.segments.iter().enumerate() {
            check_position(seg.position)?;
            match self.file_size {
                Some(file_size) => {
                    let Some(start) = seg.start_range else {
                        return Err(WmPaceInfoError::MissingKey {
                            location: format!("segment {i} of a byterange sidecar"),
                            key: 4,
                            name: "startRange",
                        });
                    };
                    if seg.segment_regex.is_some()
                        || seg.first_part.is_some()
                        || seg.last_part.is_some()
                    {
                        return Err(WmPaceInfoError::InvalidSidecar {
                            reason: format!(
                                "segment {i}: a byterange-segment holds only startRange and position \
                                 (no segmentRegex, firstpart or lastpart)"
                            ),
                        });
                    }
                    if previous_start.is_some_and(|prev| start <= prev) {
                        return Err(WmPaceInfoError::InvalidSidecar {
                            reason: format!(
                                "segment {i}: startRange {start} is not greater than the previous one; \
                                 startRange values must strictly increase"
                            ),
                        });
                    }
                    if start >= file_size {
                        return Err(WmPaceInfoError::InvalidSidecar {
                            reason: format!(
                                "segment {i}: startRange {start} is not below fileSize {file_size}"
                            ),
                        });
                    }
                    previous_start = Some(start);
                }
                None => {
                    if seg.start_range.is_some() {
                        return Err(WmPaceInfoError::InvalidSidecar {
                            reason: format!(
                                "segment {i} has startRange but the sidecar has no fileSize (key 3); \
                                 byterange sidecars need both, discrete ones neither"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The deterministic CBOR encoding (RFC 8949 §4.2): shortest integer
    /// heads, definite lengths, map keys in ascending order (all keys are the
    /// one-byte integers 1..=8, so bytewise order is numeric order). Fails if
    /// [`Sidecar::validate`] fails.
    pub fn to_cbor(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut out = Vec::with_capacity(8 + 12 * self.segments.len());
        put_head(&mut out, MAJOR_MAP, 2 + u64::from(self.file_size.is_some()));
        put_head(&mut out, MAJOR_UINT, KEY_VERSION);
        put_head(&mut out, MAJOR_UINT, self.version.into());
        put_head(&mut out, MAJOR_UINT, KEY_SEGMENTS);
        put_head(&mut out, MAJOR_ARRAY, self.segments.len() as u64);
        for seg in &self.segments {
            let entries = 1
                + u64::from(seg.start_range.is_some())
                + u64::from(seg.segment_regex.is_some())
                + u64::from(seg.first_part.is_some())
                + u64::from(seg.last_part.is_some());
            put_head(&mut out, MAJOR_MAP, entries);
            if let Some(start) = seg.start_range {
                put_head(&mut out, MAJOR_UINT, KEY_START_RANGE);
                put_head(&mut out, MAJOR_UINT, start);
            }
            if let Some(regex) = &seg.segment_regex {
                put_head(&mut out, MAJOR_UINT, KEY_SEGMENT_REGEX);
                put_head(&mut out, MAJOR_TEXT, regex.len() as u64);
                out.extend_from_slice(regex.as_bytes());
            }
            put_head(&mut out, MAJOR_UINT, KEY_POSITION);
            match seg.position {
                None => put_head(&mut out, MAJOR_NINT, 0),
                Some(p) => put_head(&mut out, MAJOR_UINT, p.into()),
            }
            if let Some(first) = seg.first_part {
                put_head(&mut out, MAJOR_UINT, KEY_FIRSTPART);
                out.push(if first { CBOR_TRUE } else { CBOR_FALSE });
            }
            if let Some(last) = seg.last_part {
                put_head(&mut out, MAJOR_UINT, KEY_LASTPART);
                out.push(if last { CBOR_TRUE } else { CBOR_FALSE });
            }
        }
        if let Some(file_size) = self.file_size {
            put_head(&mut out, MAJOR_UINT, KEY_FILE_SIZE);
            put_head(&mut out, MAJOR_UINT, file_size);
        }
        Ok(out)
    }

    /// Decodes a sidecar and checks it with [`Sidecar::validate`].
    ///
    /// Accepts any well-formed definite-length CBOR encoding of the schema
    /// (keys in any order, integers of any width). Rejects truncation,
    /// trailing bytes, indefinite lengths, tags, floats, wrong types, unknown
    /// or repeated keys, missing required keys, positions outside
    /// -1..=32767, and more than [`MAX_SIDECAR_SEGMENTS`] segments; never
    /// allocates more than the input's size justifies.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader { buf: bytes, pos: 0 };
        let sidecar = reader.sidecar()?;
        let rest = bytes.len() - reader.pos;
        if rest != 0 {
            return Err(WmPaceInfoError::CborTrailing { count: rest });
        }
        sidecar.validate()?;
        Ok(sidecar)
    }

    /// Like [`Sidecar::from_cbor`], and also requires the input to be exactly
    /// the deterministic encoding that [`Sidecar::to_cbor`] writes, as the
    /// spec mandates.
    pub fn from_cbor_strict(bytes: &[u8]) -> Result<Self> {
        let sidecar = Self::from_cbor(bytes)?;
        if sidecar.to_cbor()? != bytes {
            return Err(WmPaceInfoError::NotDeterministic);
        }
        Ok(sidecar)
    }

    /// The `WMPaceInfoEgress` header value: the egress form of this
    /// one-segment discrete sidecar (`firstpart`, `lastpart` and
    /// `segmentRegex` dropped, clause 5.6.5), deterministic CBOR,
    /// base64url without padding.
    pub fn to_egress_header(&self) -> Result<String> {
        let segment = self.single_discrete()?;
        let egress = Self {
            version: self.version,
            file_size: None,
            segments: vec![SidecarSegment::discrete(segment.position)],
        };
        Ok(B64URL.encode(egress.to_cbor()?))
    }

    /// Parses a `WMPaceInfoEgress` header value (base64url, padding
    /// optional, surrounding whitespace ignored, at most
    /// [`MAX_EGRESS_HEADER_LEN`] bytes) into a one-segment discrete sidecar.
    pub fn from_egress_header(value: &str) -> Result<Self> {
        let value = value.trim_ascii();
        if value.len() > MAX_EGRESS_HEADER_LEN {
            return Err(WmPaceInfoError::HeaderTooLong {
                header: EGRESS_HEADER,
                len: value.len(),
                max: MAX_EGRESS_HEADER_LEN,
            });
        }
        let bytes = B64URL.decode(value).map_err(|e| WmPaceInfoError::Base64 {
            reason: e.to_string(),
        })?;
        let sidecar = Self::from_cbor(&bytes)?;
        sidecar.single_discrete()?;
        Ok(sidecar)
    }

    /// For a byterange sidecar: the position covering `byte_offset` of the
    /// track. `Some(None)` is position -1 (e.g. the initialization segment);
    /// `None` means no answer: a discrete sidecar, an offset at or past
    /// `fileSize`, or before the first `startRange`. Assumes a sidecar that
    /// passes [`Sidecar::validate`] (every decoded one does).
    pub fn position_at(&self, byte_offset: u64) -> Option<Option<u16>> {
        let index = self.index_at(byte_offset)?;
        self.segments.get(index).map(|seg| seg.position)
    }

    /// For a byterange sidecar: the position of the inclusive byte range
    /// `first_byte..=last_byte` (as in an HTTP `Range: bytes=first-last`), or
    /// `None` when the range is empty, leaves the track, or overlaps segments
    /// with different positions, which the edge must not deliver (clause
    /// 5.7.5.4). Sub-ranges of one segment (chunks) are fine.
    pub fn position_for_byte_range(&self, first_byte: u64, last_byte: u64) -> Option<Option<u16>> {
        if last_byte < first_byte {
            return None;
        }
        let first = self.index_at(first_byte)?;
        let last = self.index_at(last_byte)?;
        let covered = self.segments.get(first..=last)?;
        let position = covered.first()?.position;
        covered
            .iter()
            .all(|seg| seg.position == position)
            .then_some(position)
    }

    fn index_at(&self, byte_offset: u64) -> Option<usize> {
        let file_size = self.file_size?;
        if byte_offset >= file_size {
            return None;
        }
        self.segments
            .partition_point(|seg| seg.start_range.is_some_and(|start| start <= byte_offset))
            .checked_sub(1)
    }

    fn single_discrete(&self) -> Result<&SidecarSegment> {
        if self.file_size.is_some() {
            return Err(WmPaceInfoError::NotSingleDiscrete {
                reason: "this one is a byterange sidecar (it has fileSize)".into(),
            });
        }
        match self.segments.as_slice() {
            [segment] => Ok(segment),
            other => Err(WmPaceInfoError::NotSingleDiscrete {
                reason: format!("this one has {} segments", other.len()),
            }),
        }
    }
}
