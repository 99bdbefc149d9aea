//! The private strict CBOR codec of sidecars: integer keys and major types, a shortest-form
//! head writer, and a definite-length reader for exactly the sidecar schema.

use super::error::Result;
use super::pace_info::position_from_int;
use super::{MAX_SIDECAR_SEGMENTS, Sidecar, SidecarSegment, WMPACEINFO_VERSION, WmPaceInfoError};

pub(super) const KEY_VERSION: u64 = 1;
pub(super) const KEY_SEGMENTS: u64 = 2;
pub(super) const KEY_FILE_SIZE: u64 = 3;
pub(super) const KEY_START_RANGE: u64 = 4;
pub(super) const KEY_SEGMENT_REGEX: u64 = 5;
pub(super) const KEY_POSITION: u64 = 6;
pub(super) const KEY_FIRSTPART: u64 = 7;
pub(super) const KEY_LASTPART: u64 = 8;

pub(super) const MAJOR_UINT: u8 = 0;
pub(super) const MAJOR_NINT: u8 = 1;
pub(super) const MAJOR_TEXT: u8 = 3;
pub(super) const MAJOR_ARRAY: u8 = 4;
pub(super) const MAJOR_MAP: u8 = 5;
const MAJOR_SIMPLE: u8 = 7;
pub(super) const CBOR_FALSE: u8 = 0xF4;
pub(super) const CBOR_TRUE: u8 = 0xF5;

/// The smallest encoded segment map: a map head, key 6, a one-byte position.
const MIN_SEGMENT_BYTES: usize = 3;

/// Writes a CBOR head with the shortest argument encoding (RFC 8949 §4.2.1).
pub(super) fn put_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let initial = major << 5;
    if argument < 24 {
        out.push(initial | argument.to_be_bytes()[7]);
    } else if let Ok(byte) = u8::try_from(argument) {
        out.extend_from_slice(&[initial | 24, byte]);
    } else if let Ok(half) = u16::try_from(argument) {
        out.push(initial | 25);
        out.extend_from_slice(&half.to_be_bytes());
    } else if let Ok(word) = u32::try_from(argument) {
        out.push(initial | 26);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        out.push(initial | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

/// A minimal CBOR reader for exactly the sidecar schema.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..N))
            .ok_or(WmPaceInfoError::CborTruncated {
                offset: self.buf.len(),
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    /// Reads one head: (major type, argument, offset of the head).
    fn head(&mut self) -> Result<(u8, u64, usize)> {
        let at = self.pos;
        let [initial] = self.take::<1>()?;
        let argument = match initial & 0x1F {
            info @ 0..=23 => u64::from(info),
            24 => u64::from(u8::from_be_bytes(self.take()?)),
            25 => u64::from(u16::from_be_bytes(self.take()?)),
            26 => u64::from(u32::from_be_bytes(self.take()?)),
            27 => u64::from_be_bytes(self.take()?),
            28..=30 => {
                return Err(WmPaceInfoError::CborMalformed {
                    offset: at,
                    reason: "reserved additional information value (28..=30)",
                });
            }
            _ => {
                return Err(WmPaceInfoError::CborMalformed {
                    offset: at,
                    reason: "indefinite length or break: sidecars use definite lengths only (RFC 8949 §4.2.1)",
                });
            }
        };
        Ok((initial >> 5, argument, at))
    }

    fn typed(&mut self, major: u8, field: &'static str, expected: &'static str) -> Result<u64> {
        let (found, argument, offset) = self.head()?;
        if found == major {
            Ok(argument)
        } else {
            Err(WmPaceInfoError::CborType {
                field,
                expected,
                offset,
            })
        }
    }

    fn uint(&mut self, field: &'static str) -> Result<u64> {
        self.typed(MAJOR_UINT, field, "an unsigned integer")
    }

    fn position(&mut self) -> Result<Option<u16>> {
        let (major, argument, offset) = self.head()?;
        let value = match major {
            MAJOR_UINT => i128::from(argument),
            MAJOR_NINT => -1 - i128::from(argument),
            _ => {
                return Err(WmPaceInfoError::CborType {
                    field: "position",
                    expected: "an integer in -1..=32767",
                    offset,
                });
            }
        };
        position_from_int(value)
    }

    fn boolean(&mut self, field: &'static str) -> Result<bool> {
        match self.head()? {
            (MAJOR_SIMPLE, 20, _) => Ok(false),
            (MAJOR_SIMPLE, 21, _) => Ok(true),
            (_, _, offset) => Err(WmPaceInfoError::CborType {
                field,
                expected: "a boolean (true or false)",
                offset,
            }),
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String> {
        let len = self.typed(MAJOR_TEXT, field, "a text string")?;
        let start = self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or(WmPaceInfoError::CborTruncated {
                offset: self.buf.len(),
            })?;
        self.pos += len;
        let bytes = self.buf.get(start..self.pos).unwrap_or_default();
        String::from_utf8(bytes.to_vec()).map_err(|_| WmPaceInfoError::CborMalformed {
            offset: start,
            reason: "text string is not valid UTF-8",
        })
    }

    /// Reads a map head and checks that `entries` could fit in the input.
    fn map(&mut self, field: &'static str) -> Result<u64> {
        let entries = self.typed(MAJOR_MAP, field, "a map")?;
        if entries > (self.remaining() / 2) as u64 {
            return Err(WmPaceInfoError::CborTruncated {
                offset: self.buf.len(),
            });
        }
        Ok(entries)
    }

    fn key(&mut self, map: &'static str, seen: &mut u16) -> Result<u64> {
        let (major, key, offset) = self.head()?;
        if major != MAJOR_UINT {
            return Err(WmPaceInfoError::CborType {
                field: if map == "sidecar" {
                    "a sidecar map key"
                } else {
                    "a segment map key"
                },
                expected: "an unsigned integer key",
                offset,
            });
        }
        let valid = if map == "sidecar" {
            KEY_VERSION..=KEY_FILE_SIZE
        } else {
            KEY_START_RANGE..=KEY_LASTPART
        };
        if !valid.contains(&key) {
            return Err(WmPaceInfoError::UnknownKey {
                key,
                map,
                valid: if map == "sidecar" {
                    "1 version, 2 segments, 3 fileSize"
                } else {
                    "4 startRange, 5 segmentRegex, 6 position, 7 firstpart, 8 lastpart"
                },
            });
        }
        let bit = 1u16 << key;
        if *seen & bit != 0 {
            return Err(WmPaceInfoError::DuplicateKey { key, map });
        }
        *seen |= bit;
        Ok(key)
    }

    pub(super) fn sidecar(&mut self) -> Result<Sidecar> {
        let entries = self.map("the sidecar")?;
        let mut seen = 0u16;
        let (mut version, mut file_size, mut segments) = (None, None, None);
        for _ in 0..entries {
            match self.key("sidecar", &mut seen)? {
                KEY_VERSION => {
                    let v = self.uint("version")?;
                    if v != u64::from(WMPACEINFO_VERSION) {
                        return Err(WmPaceInfoError::UnsupportedVersion { version: v.into() });
                    }
                    version = Some(WMPACEINFO_VERSION);
                }
                KEY_SEGMENTS => segments = Some(self.segments()?),
                _ => file_size = Some(self.uint("fileSize")?),
            }
        }
        let missing = |key, name| WmPaceInfoError::MissingKey {
            location: "the sidecar map".into(),
            key,
            name,
        };
        Ok(Sidecar {
            version: version.ok_or_else(|| missing(1, "version"))?,
            file_size,
            segments: segments.ok_or_else(|| missing(2, "segments"))?,
        })
    }

    fn segments(&mut self) -> Result<Vec<SidecarSegment>> {
        let count = self.typed(MAJOR_ARRAY, "segments", "an array")?;
        if count == 0 {
            return Err(WmPaceInfoError::NoSegments);
        }
        if count > MAX_SIDECAR_SEGMENTS as u64 {
            return Err(WmPaceInfoError::TooManySegments { count });
        }
        // count <= 1 000 000 here, and the input must hold MIN_SEGMENT_BYTES
        // per segment, so the allocation is bounded by the input's size.
        let count =
            usize::try_from(count).map_err(|_| WmPaceInfoError::TooManySegments { count })?;
        if count > self.remaining() / MIN_SEGMENT_BYTES {
            return Err(WmPaceInfoError::CborTruncated {
                offset: self.buf.len(),
            });
        }
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            out.push(self.segment(index)?);
        }
        Ok(out)
    }

    fn segment(&mut self, index: usize) -> Result<SidecarSegment> {
        let entries = self.map("a segment entry")?;
        let mut seen = 0u16;
        let mut seg = SidecarSegment::default();
        for _ in 0..entries {
            match self.key("segment", &mut seen)? {
                KEY_START_RANGE => seg.start_range = Some(self.uint("startRange")?),
                KEY_SEGMENT_REGEX => seg.segment_regex = Some(self.text("segmentRegex")?),
                KEY_POSITION => seg.position = self.position()?,
                KEY_FIRSTPART => seg.first_part = Some(self.boolean("firstpart")?),
                _ => seg.last_part = Some(self.boolean("lastpart")?),
            }
        }
        if seen & (1 << KEY_POSITION) == 0 {
            return Err(WmPaceInfoError::MissingKey {
                location: format!("segment {index}"),
                key: 6,
                name: "position",
            });
        }
        Ok(seg)
    }
}
