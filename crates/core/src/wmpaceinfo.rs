//! WMPaceInfo codecs: which bit of a session's watermark pattern a segment
//! carries, in every form ETSI TS 104 002 V1.1.1 moves it around.
//!
//! Pure data in, pure data out: no I/O, no allocation driven by untrusted
//! lengths, no panics on input.
//!
//! # What the specification says
//!
//! Source: ETSI TS 104 002 V1.1.1 (2023-08), "DASH-IF Forensic A/B
//! Watermarking", clause 5.5
//! (<https://www.etsi.org/deliver/etsi_ts/104000_104099/104002/01.01.01_60/ts_104002v010101p.pdf>).
//!
//! * **Data (5.5.2, Table 2).** `variant` (0, 1, …: which Variant this is,
//!   for integration and debugging), `position` (zero-based index into the WM
//!   pattern; **-1 means "not watermarked"**), `firstpart` / `lastpart`
//!   (true when this encoder part is the first / last one carrying this
//!   position; the packager aggregates parts into segments with them and never
//!   mixes positions, 5.6.3 and 5.6.5).
//! * **Sidecar file (5.5.3.2).** CDDL (RFC 8610), encoded as
//!   *deterministically encoded CBOR* (RFC 8949 §4.2) with integer keys
//!   `version=1, segments=2, fileSize=3, startRange=4, segmentRegex=5,
//!   position=6, firstpart=7, lastpart=8`:
//!   ```text
//!   discrete-segment  = { ?segmentRegex: text, position: int .size 2 .ge -1,
//!                         ?firstpart: bool, ?lastpart: bool }
//!   byterange-segment = { startRange: uint .size 8, position: int .size 2 .ge -1 }
//!   sidecar-discrete  = { version: uint .size 1, segments: [+ discrete-segment] }
//!   sidecar-byterange = { version: uint .size 1, fileSize: uint .size 8,
//!                         segments: [+ byterange-segment] }
//!   sidecar = (sidecar-byterange // sidecar-discrete)
//!   ```
//!   So `version`, `segments` and (byterange only) `fileSize` are top-level
//!   map entries; `segments` is an array of maps; `startRange`,
//!   `segmentRegex`, `position`, `firstpart`, `lastpart` live in the segment
//!   maps. `version` is 1. `segmentRegex` is a POSIX extended regular
//!   expression matched against segment file names (optional);
//!   `firstpart`/`lastpart` are optional. For byteranges `fileSize` is the
//!   track size in bytes, `startRange` the offset of a segment's first byte,
//!   and the array "shall be ordered in increasing startRange values"; the
//!   first range holds the initialization segment with position -1. The
//!   spec's examples: `{version: 1, segments: [{segmentRegex:
//!   "video_segment_ .*?_123.mp4", position: 21}, {… "_124.mp4", position:
//!   22}]}` and a 262 445 216-byte track `{version: 1, fileSize: 262445216,
//!   segments: [{startRange: 0, position: -1}, {startRange: 1118, position:
//!   0}, {startRange: 1701212, position: 1}, …, {startRange: 262073936,
//!   position: 119}]}`; the HLS playlist example of 5.6.4.3 gives the next
//!   ranges (`1700094@1118`, `1789481@1701212`, `1777588@3490693`,
//!   `1752144@5268281`, `1563219@7020425`). The origin serves a sidecar at
//!   `/pathname/WMPaceInfo/<filename>` as `application/cbor` and answers
//!   devices that ask for it with 403 (5.7.5.2).
//! * **HTTP headers (5.5.3.3).** Push (ingest) request header
//!   `WMPaceInfoIngest: {"version": 1, "variant": 0, "position": 33,
//!   "firstpart": true, "lastpart": true}` (JSON; the spec's example). Pull
//!   (egress) response header `WMPaceInfoEgress: <sidecar-discrete>`, the CBOR
//!   base64url-encoded (RFC 4648 §5), holding exactly one discrete-segment.
//! * **ISOBMFF box (5.5.3.4).** The 40-bit class
//!   `WMPaceInfo { u8 version; u8 variant; u1 emulation_1; u15 position;
//!   u1 emulation_2; u1 firstpart; u1 lastpart; u5 reserved }` with both
//!   emulation bits set to 1, carried in the top-level box
//!   `aligned(8) class WMPaceInfoBox extends Box('wmpi') { WMPaceInfo(); }`
//!   (zero or one, placed after `styp` and before `moof`). The same 40 bits
//!   are the payload of the SEI message (UUID
//!   `bec4f824-170d-47cf-a826-ce008083e355`, 5.5.3.5) and of the MPEG-2 TS
//!   adaptation-field descriptor with tag 0xDF (5.5.3.6); hence
//!   [`PaceInfo::to_wmpi_payload`] exists next to the box codec. The emulation
//!   bits keep the payload free of start-code emulation (`00 00 0x`).
//! * **Re-packaging (5.6.5).** In-band WMPaceInfo (SEI, TS field, box) must be
//!   overwritten on egress, "recommended with 0xFF"; and `firstpart`,
//!   `lastpart`, `segmentRegex` are removed from egress sidecar-discrete
//!   entries.
//! * **Byteranges (5.7.5.4).** The edge must not deliver a byterange that
//!   overlaps segments with different positions
//!   ([`Sidecar::position_for_byte_range`]).
//!
//! Corroborating public sources:
//! * AWS Elemental MediaPackage user guide, "A/B forensic watermarking"
//!   (docs.aws.amazon.com/mediapackage/latest/userguide/ab-watermarking.html):
//!   all five `WMPaceInfoIngest` fields are required, position is "-1 through
//!   32767", the header value is at most 500 characters; example
//!   `{"version":1,"variant":0,"position":1024,"firstpart":true,"lastpart":false}`.
//! * Akamai `edgeworkers-examples`, `delivery/media/watermarking/lib/
//!   media-delivery-watermarking.js` (a production edge reader): top-level keys
//!   2 (segments) and 3 (fileSize), segment keys 4/5/6; no fileSize means
//!   discrete (first segment whose regex matches, or that has none); with
//!   fileSize it binary-searches `startRange`, a segment ending at the next
//!   `startRange - 1` or at `fileSize`; it reads `WMPaceInfoEgress` with a
//!   base64url decoder when the sidecar body is empty.
//! * MP4RA registration of `wmpi` ("Watermark PaceInfo", DASH-IF watermarking),
//!   mp4ra/mp4ra.github.io pull request 162: a plain `Box`, not a `FullBox`,
//!   so the box is 8 + 5 = 13 bytes.
//!
//! # Ambiguities and what this module chose
//!
//! 1. **-1 in the 15-bit box field.** The spec says the box's `position` is
//!    the 5.5.2 position (where -1 = not watermarked) but not how -1 fits in an
//!    unsigned 15-bit field. We encode -1 as `0x7FFF` (all ones: the 15-bit
//!    two's complement of -1, and also what the recommended 0xFF overwrite
//!    leaves). Consequently in-band positions are `0..=32766`:
//!    [`PaceInfo::to_wmpi_box`] refuses `Some(32767)`
//!    ([`WmPaceInfoError::PositionNotInBandEncodable`]); CBOR and JSON carry it.
//! 2. **`int .size 2`.** RFC 8610 defines `.size` for `uint`, `bstr` and
//!    `tstr` only. We read it as "fits a 2-byte signed integer", which with
//!    `.ge -1` gives `-1..=32767`, the range AWS documents and the range of
//!    [`PaceInfo::position`].
//! 3. **Reserved bits.** Their value is not stated: we write 0 and ignore them
//!    on read (the ISOBMFF convention).
//! 4. **All-0xFF payloads** are reported as
//!    [`WmPaceInfoError::Overwritten`], not as a garbled version 255.
//! 5. **Version.** Only 1 is defined; every decoder rejects other values.
//! 6. **base64url padding.** RFC 4648 §5 allows omitting `=` when the length
//!    is known; the spec does not say. We emit no padding and accept both.
//! 7. **Egress form.** [`Sidecar::to_egress_header`] drops `firstpart`,
//!    `lastpart` and `segmentRegex` as 5.6.5 requires for egress data.
//! 8. **Decoding strictness.** [`Sidecar::from_cbor`] accepts any
//!    well-formed definite-length encoding of the schema (any key order,
//!    non-shortest integers) so that an edge interoperates with other
//!    producers; [`Sidecar::from_cbor_strict`] additionally demands the exact
//!    deterministic bytes. Both reject indefinite lengths, tags, floats,
//!    unknown keys (the CDDL maps are closed), duplicate keys, trailing bytes,
//!    and more than [`MAX_SIDECAR_SEGMENTS`] segments (our cap, not the
//!    spec's).
//! 9. **Byterange order.** "Increasing" is taken as strictly increasing, and
//!    every `startRange` must be below `fileSize`.
//! 10. **Ingest JSON.** All five members are required (as AWS requires),
//!     unknown members are rejected, the value is at most
//!     [`MAX_INGEST_JSON_LEN`] bytes.
//! 11. **The spec's regex example** reads `"video_segment_ .*?_123.mp4"` with
//!     a space (in both extracted copies we read) although the file names it
//!     describes have none; probably a typesetting artefact. This crate does
//!     not evaluate regexes (no POSIX ERE engine in a pure core); the edge
//!     matches [`SidecarSegment::segment_regex`] itself.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The only WMPaceInfo version TS 104 002 V1.1.1 defines.
pub const WMPACEINFO_VERSION: u8 = 1;
/// Largest position: `int .size 2 .ge -1` gives `-1..=32767`.
pub const MAX_POSITION: u16 = 32767;
/// Largest position the 15-bit in-band field can carry (`0x7FFF` is -1).
pub const MAX_IN_BAND_POSITION: u16 = 32766;
/// The 15-bit in-band field value that encodes position -1.
pub const IN_BAND_NOT_WATERMARKED: u16 = 0x7FFF;
/// Size of the 40-bit `WMPaceInfo()` class in bytes.
pub const WMPI_PAYLOAD_LEN: usize = 5;
/// Size of a whole `wmpi` box: 8-byte header plus the 5-byte payload.
pub const WMPI_BOX_LEN: usize = 13;
/// Size of a `wmpi` box written with a 64-bit `largesize` (read only).
pub const WMPI_LARGE_BOX_LEN: usize = 21;
/// The ISOBMFF box type.
pub const WMPI_BOX_TYPE: [u8; 4] = *b"wmpi";
/// Most segments a decoded sidecar may list (a guard against hostile input).
pub const MAX_SIDECAR_SEGMENTS: usize = 1_000_000;
/// Longest `WMPaceInfoIngest` value accepted, in bytes.
pub const MAX_INGEST_JSON_LEN: usize = 1024;
/// Longest `WMPaceInfoEgress` value accepted, in bytes.
pub const MAX_EGRESS_HEADER_LEN: usize = 8192;
/// HTTP request header carrying [`PaceInfo`] as JSON on ingest (push).
pub const INGEST_HEADER: &str = "WMPaceInfoIngest";
/// HTTP response header carrying a one-segment sidecar on egress (pull).
pub const EGRESS_HEADER: &str = "WMPaceInfoEgress";
/// Path component under which the origin serves sidecars:
/// `/pathname/WMPaceInfo/<filename>`.
pub const SIDECAR_DIR: &str = "WMPaceInfo";
/// Media type of a sidecar file.
pub const SIDECAR_CONTENT_TYPE: &str = "application/cbor";

/// base64url (RFC 4648 §5): no padding written, padding optional on read,
/// non-canonical trailing bits rejected.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Everything that can go wrong reading or writing WMPaceInfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WmPaceInfoError {
    /// A position outside `-1..=32767`.
    #[error(
        "position {position} is out of range: valid positions are -1 (not watermarked) and 0..={max}",
        max = MAX_POSITION
    )]
    PositionOutOfRange {
        /// The offending value (-1 stands for "not watermarked").
        position: i128,
    },
    /// Position 32767 asked of the 15-bit in-band field, where 0x7FFF means -1.
    #[error(
        "position 32767 cannot be carried in the 40-bit WMPaceInfo() (wmpi box, SEI, TS descriptor): \
         its 15-bit value 0x7FFF encodes -1 (not watermarked), so in-band positions are 0..={max}",
        max = MAX_IN_BAND_POSITION
    )]
    PositionNotInBandEncodable,
    /// A version other than 1.
    #[error(
        "unsupported WMPaceInfo version {version}: only version 1 (ETSI TS 104 002 V1.1.1) is defined"
    )]
    UnsupportedVersion {
        /// The version found.
        version: i128,
    },
    /// A `WMPaceInfo()` payload that is not exactly 5 bytes.
    #[error("WMPaceInfo() payload must be exactly 5 bytes (40 bits), got {actual}")]
    PayloadLength {
        /// Bytes given.
        actual: usize,
    },
    /// Input that is not exactly one whole `wmpi` box.
    #[error(
        "wmpi box: expected exactly {expected} bytes (a 13-byte box, or 21 with a 64-bit largesize), got {actual}"
    )]
    BoxLength {
        /// Bytes the header announces (or the minimum, 13).
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A box size field other than 13 (or largesize 21).
    #[error(
        "wmpi box: size {size} is invalid: a wmpi box is 13 bytes (8-byte header + 5-byte payload), or 21 with a 64-bit largesize"
    )]
    BoxSize {
        /// The size (or largesize) field.
        size: u64,
    },
    /// A box whose type is not `wmpi`.
    #[error("box type is \"{found}\", expected \"wmpi\"")]
    BoxType {
        /// The four type bytes, escaped.
        found: String,
    },
    /// An emulation-prevention bit that is 0.
    #[error(
        "WMPaceInfo(): emulation_1 and emulation_2 must both be 1 (got emulation_1={emulation_1}, emulation_2={emulation_2})"
    )]
    EmulationBits {
        /// Whether emulation_1 was set.
        emulation_1: bool,
        /// Whether emulation_2 was set.
        emulation_2: bool,
    },
    /// A payload of five 0xFF bytes: erased by a re-packager.
    #[error(
        "WMPaceInfo() is all 0xFF: it was overwritten by a re-packager (TS 104 002 clause 5.6.5) and carries no pace information"
    )]
    Overwritten,
    /// CBOR input that ends inside an item.
    #[error("CBOR: input ends inside an item (at byte {offset})")]
    CborTruncated {
        /// Where the missing bytes would start.
        offset: usize,
    },
    /// CBOR that is not well-formed, or uses a construct sidecars forbid.
    #[error("CBOR: malformed at byte {offset}: {reason}")]
    CborMalformed {
        /// Offset of the offending item.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A CBOR item of the wrong type.
    #[error("CBOR: {field} at byte {offset} must be {expected}")]
    CborType {
        /// Which field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// Offset of the offending item.
        offset: usize,
    },
    /// Bytes left after the sidecar map.
    #[error("CBOR: {count} trailing byte(s) after the sidecar map")]
    CborTrailing {
        /// How many bytes remain.
        count: usize,
    },
    /// A map key the CDDL does not define.
    #[error("sidecar: unknown key {key} in a {map} map (valid keys: {valid})")]
    UnknownKey {
        /// The key.
        key: u64,
        /// "sidecar" or "segment".
        map: &'static str,
        /// The keys allowed there.
        valid: &'static str,
    },
    /// A map key present twice.
    #[error("sidecar: key {key} appears twice in a {map} map")]
    DuplicateKey {
        /// The key.
        key: u64,
        /// "sidecar" or "segment".
        map: &'static str,
    },
    /// A required map entry that is absent.
    #[error("sidecar: {location} lacks required key {key} ({name})")]
    MissingKey {
        /// "the sidecar map" or "segment N".
        location: String,
        /// The integer key.
        key: u8,
        /// Its CDDL name.
        name: &'static str,
    },
    /// An empty `segments` array.
    #[error("sidecar: segments must list 1..={max} entries, found none", max = MAX_SIDECAR_SEGMENTS)]
    NoSegments,
    /// More segments than [`MAX_SIDECAR_SEGMENTS`].
    #[error("sidecar: {count} segments declared, at most {max} are accepted", max = MAX_SIDECAR_SEGMENTS)]
    TooManySegments {
        /// The declared count.
        count: u64,
    },
    /// A sidecar that breaks the discrete/byterange rules of clause 5.5.3.2.
    #[error("sidecar: {reason}")]
    InvalidSidecar {
        /// What rule is broken, and where.
        reason: String,
    },
    /// Well-formed CBOR that is not the deterministic encoding.
    #[error(
        "sidecar: well-formed but not deterministically encoded CBOR (RFC 8949 §4.2: shortest integers, keys in order 1..8)"
    )]
    NotDeterministic,
    /// An egress header needs a discrete sidecar with exactly one segment.
    #[error("WMPaceInfoEgress carries a sidecar-discrete with exactly one segment; {reason}")]
    NotSingleDiscrete {
        /// What the sidecar has instead.
        reason: String,
    },
    /// A header value longer than this module accepts.
    #[error("{header} value is {len} bytes: at most {max} are accepted")]
    HeaderTooLong {
        /// Header name.
        header: &'static str,
        /// Length given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A `WMPaceInfoIngest` value that is not the expected JSON object.
    #[error("WMPaceInfoIngest: {reason}")]
    IngestJson {
        /// What is wrong.
        reason: String,
    },
    /// A `WMPaceInfoEgress` value that is not base64url.
    #[error("WMPaceInfoEgress is not base64url (RFC 4648 §5): {reason}")]
    Base64 {
        /// What is wrong.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, WmPaceInfoError>;

fn check_position(position: Option<u16>) -> Result<()> {
    match position {
        Some(p) if p > MAX_POSITION => {
            Err(WmPaceInfoError::PositionOutOfRange { position: p.into() })
        }
        _ => Ok(()),
    }
}

fn position_from_int(value: i128) -> Result<Option<u16>> {
    if value == -1 {
        return Ok(None);
    }
    match u16::try_from(value) {
        Ok(p) if p <= MAX_POSITION => Ok(Some(p)),
        _ => Err(WmPaceInfoError::PositionOutOfRange { position: value }),
    }
}

fn position_to_int(position: Option<u16>) -> i32 {
    position.map_or(-1, i32::from)
}

/// The WMPaceInfo data of one segment or encoder part (clause 5.5.2), as
/// carried in-band (`wmpi` box, SEI, TS descriptor) and in the
/// `WMPaceInfoIngest` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaceInfo {
    /// Format version; must be [`WMPACEINFO_VERSION`] (1).
    pub version: u8,
    /// Which Variant this is: 0 = A, 1 = B, and so on.
    pub variant: u8,
    /// Index into the WM pattern; `None` is -1, "not watermarked".
    /// `Some(p)` requires `p <= 32767` ([`MAX_POSITION`]), and
    /// `p <= 32766` in-band ([`MAX_IN_BAND_POSITION`]).
    pub position: Option<u16>,
    /// First encoder part carrying this position.
    pub first_part: bool,
    /// Last encoder part carrying this position.
    pub last_part: bool,
}

impl PaceInfo {
    /// A version-1 `PaceInfo`.
    pub const fn new(
        variant: u8,
        position: Option<u16>,
        first_part: bool,
        last_part: bool,
    ) -> Self {
        Self {
            version: WMPACEINFO_VERSION,
            variant,
            position,
            first_part,
            last_part,
        }
    }

    /// Checks the version (1) and the position range (-1..=32767).
    pub fn validate(&self) -> Result<()> {
        if self.version != WMPACEINFO_VERSION {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: self.version.into(),
            });
        }
        check_position(self.position)
    }

    /// The 40-bit `WMPaceInfo()` class (clause 5.5.3.4), the payload of the
    /// `wmpi` box, of the SEI message and of the TS descriptor 0xDF.
    ///
    /// Bit layout, most significant first: `version` (8), `variant` (8),
    /// `emulation_1` = 1 (1), `position` (15, -1 as `0x7FFF`),
    /// `emulation_2` = 1 (1), `firstpart` (1), `lastpart` (1), `reserved` = 0 (5).
    pub fn to_wmpi_payload(&self) -> Result<[u8; WMPI_PAYLOAD_LEN]> {
        self.validate()?;
        let field = match self.position {
            None => IN_BAND_NOT_WATERMARKED,
            Some(p) if p <= MAX_IN_BAND_POSITION => p,
            Some(_) => return Err(WmPaceInfoError::PositionNotInBandEncodable),
        };
        let [hi, lo] = field.to_be_bytes();
        let flags = 0x80 | (u8::from(self.first_part) << 6) | (u8::from(self.last_part) << 5);
        Ok([self.version, self.variant, 0x80 | hi, lo, flags])
    }

    /// Reads a 40-bit `WMPaceInfo()` payload (exactly 5 bytes).
    ///
    /// Rejects an all-0xFF payload ([`WmPaceInfoError::Overwritten`]), a clear
    /// emulation bit and any version but 1; ignores the reserved bits.
    pub fn from_wmpi_payload(payload: &[u8]) -> Result<Self> {
        let bytes: [u8; WMPI_PAYLOAD_LEN] =
            payload
                .try_into()
                .map_err(|_| WmPaceInfoError::PayloadLength {
                    actual: payload.len(),
                })?;
        if bytes == [0xFF; WMPI_PAYLOAD_LEN] {
            return Err(WmPaceInfoError::Overwritten);
        }
        let [version, variant, b2, b3, b4] = bytes;
        let emulation_1 = b2 & 0x80 != 0;
        let emulation_2 = b4 & 0x80 != 0;
        if !(emulation_1 && emulation_2) {
            return Err(WmPaceInfoError::EmulationBits {
                emulation_1,
                emulation_2,
            });
        }
        if version != WMPACEINFO_VERSION {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: version.into(),
            });
        }
        let field = u16::from_be_bytes([b2 & 0x7F, b3]);
        Ok(Self {
            version,
            variant,
            position: (field != IN_BAND_NOT_WATERMARKED).then_some(field),
            first_part: b4 & 0x40 != 0,
            last_part: b4 & 0x20 != 0,
        })
    }

    /// The whole `wmpi` box: size 13 (big-endian u32), type `wmpi`, payload.
    pub fn to_wmpi_box(&self) -> Result<[u8; WMPI_BOX_LEN]> {
        let payload = self.to_wmpi_payload()?;
        let mut out = [0u8; WMPI_BOX_LEN];
        out[..4].copy_from_slice(&13u32.to_be_bytes());
        out[4..8].copy_from_slice(&WMPI_BOX_TYPE);
        out[8..].copy_from_slice(&payload);
        Ok(out)
    }

    /// Reads exactly one whole `wmpi` box: the 13-byte form, or the 21-byte
    /// form with `size` = 1 and a 64-bit `largesize` of 21. The slice must
    /// hold the box and nothing else.
    pub fn from_wmpi_box(bytes: &[u8]) -> Result<Self> {
        let too_short = WmPaceInfoError::BoxLength {
            expected: WMPI_BOX_LEN,
            actual: bytes.len(),
        };
        let (Some(size), Some(kind)) = (bytes.get(..4), bytes.get(4..8)) else {
            return Err(too_short);
        };
        if kind != WMPI_BOX_TYPE {
            return Err(WmPaceInfoError::BoxType {
                found: kind.escape_ascii().to_string(),
            });
        }
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        let (expected, payload_at) = match size {
            13 => (WMPI_BOX_LEN, 8),
            1 => {
                let Some(large) = bytes.get(8..16) else {
                    return Err(too_short);
                };
                let mut raw = [0u8; 8];
                raw.copy_from_slice(large);
                let large = u64::from_be_bytes(raw);
                if large != WMPI_LARGE_BOX_LEN as u64 {
                    return Err(WmPaceInfoError::BoxSize { size: large });
                }
                (WMPI_LARGE_BOX_LEN, 16)
            }
            other => return Err(WmPaceInfoError::BoxSize { size: other.into() }),
        };
        if bytes.len() != expected {
            return Err(WmPaceInfoError::BoxLength {
                expected,
                actual: bytes.len(),
            });
        }
        Self::from_wmpi_payload(&bytes[payload_at..])
    }

    /// The `WMPaceInfoIngest` header value: compact JSON with the members in
    /// the spec's order, e.g.
    /// `{"version":1,"variant":0,"position":33,"firstpart":true,"lastpart":true}`.
    pub fn to_ingest_json(&self) -> Result<String> {
        self.validate()?;
        serde_json::to_string(&IngestJsonOut {
            version: self.version,
            variant: self.variant,
            position: position_to_int(self.position),
            firstpart: self.first_part,
            lastpart: self.last_part,
        })
        .map_err(|e| WmPaceInfoError::IngestJson {
            reason: e.to_string(),
        })
    }

    /// Parses a `WMPaceInfoIngest` header value: one JSON object with exactly
    /// the members `version` (1), `variant` (0..=255), `position`
    /// (-1..=32767), `firstpart` and `lastpart` (booleans); at most
    /// [`MAX_INGEST_JSON_LEN`] bytes.
    pub fn from_ingest_json(value: &str) -> Result<Self> {
        if value.len() > MAX_INGEST_JSON_LEN {
            return Err(WmPaceInfoError::HeaderTooLong {
                header: INGEST_HEADER,
                len: value.len(),
                max: MAX_INGEST_JSON_LEN,
            });
        }
        // serde would also accept a JSON array for a struct: require an object.
        if !value.trim_ascii_start().starts_with('{') {
            return Err(WmPaceInfoError::IngestJson {
                reason: "the value must be a JSON object".into(),
            });
        }
        let raw: IngestJsonIn =
            serde_json::from_str(value).map_err(|e| WmPaceInfoError::IngestJson {
                reason: e.to_string(),
            })?;
        if raw.version != i64::from(WMPACEINFO_VERSION) {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: raw.version.into(),
            });
        }
        let variant = u8::try_from(raw.variant).map_err(|_| WmPaceInfoError::IngestJson {
            reason: format!(
                "variant {} is out of range: valid variants are 0..=255",
                raw.variant
            ),
        })?;
        Ok(Self {
            version: WMPACEINFO_VERSION,
            variant,
            position: position_from_int(raw.position.into())?,
            first_part: raw.firstpart,
            last_part: raw.lastpart,
        })
    }
}

#[derive(serde::Serialize)]
struct IngestJsonOut {
    version: u8,
    variant: u8,
    position: i32,
    firstpart: bool,
    lastpart: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestJsonIn {
    version: i64,
    variant: i64,
    position: i64,
    firstpart: bool,
    lastpart: bool,
}

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

const KEY_VERSION: u64 = 1;
const KEY_SEGMENTS: u64 = 2;
const KEY_FILE_SIZE: u64 = 3;
const KEY_START_RANGE: u64 = 4;
const KEY_SEGMENT_REGEX: u64 = 5;
const KEY_POSITION: u64 = 6;
const KEY_FIRSTPART: u64 = 7;
const KEY_LASTPART: u64 = 8;

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_SIMPLE: u8 = 7;
const CBOR_FALSE: u8 = 0xF4;
const CBOR_TRUE: u8 = 0xF5;

/// The smallest encoded segment map: a map head, key 6, a one-byte position.
const MIN_SEGMENT_BYTES: usize = 3;

/// Writes a CBOR head with the shortest argument encoding (RFC 8949 §4.2.1).
fn put_head(out: &mut Vec<u8>, major: u8, argument: u64) {
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
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
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

    fn sidecar(&mut self) -> Result<Sidecar> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const POSITIONS: [Option<u16>; 4] = [Some(0), Some(1), Some(MAX_POSITION), None];

    // ---------------------------------------------------------------- wmpi box

    #[test]
    fn wmpi_box_golden_bytes_written_by_hand() {
        // version 1, variant 1 (B), position 33 = 0b000_0000_0010_0001,
        // firstpart 1, lastpart 0, reserved 0.
        let info = PaceInfo::new(1, Some(33), true, false);
        let expected = [
            0x00, 0x00, 0x00, 0x0D, // size 13
            b'w', b'm', b'p', b'i', // type
            0x01, // version
            0x01, // variant
            0x80, // emulation_1 = 1, position bits 14..8 = 0
            0x21, // position bits 7..0 = 33
            0xC0, // emulation_2 = 1, firstpart = 1, lastpart = 0, reserved = 0
        ];
        assert_eq!(info.to_wmpi_box().unwrap(), expected);
        assert_eq!(PaceInfo::from_wmpi_box(&expected).unwrap(), info);
    }

    #[test]
    fn wmpi_box_golden_not_watermarked_and_high_position() {
        // position -1 -> 15-bit 0x7FFF; variant 0; firstpart and lastpart set.
        let none = PaceInfo::new(0, None, true, true);
        assert_eq!(
            none.to_wmpi_payload().unwrap(),
            [0x01, 0x00, 0xFF, 0xFF, 0xE0]
        );
        // position 0x1234: the high 7 bits share a byte with emulation_1.
        let mid = PaceInfo::new(0, Some(0x1234), false, true);
        assert_eq!(
            mid.to_wmpi_payload().unwrap(),
            [0x01, 0x00, 0x92, 0x34, 0xA0]
        );
        let top = PaceInfo::new(255, Some(MAX_IN_BAND_POSITION), false, false);
        assert_eq!(
            top.to_wmpi_payload().unwrap(),
            [0x01, 0xFF, 0xFF, 0xFE, 0x80]
        );
    }

    #[test]
    fn wmpi_box_round_trips_every_in_band_position() {
        let mut positions: Vec<Option<u16>> = (0..=MAX_IN_BAND_POSITION).map(Some).collect();
        positions.push(None);
        for position in positions {
            for (first, last) in [(false, false), (true, false), (false, true), (true, true)] {
                for variant in [0, 1, 255] {
                    let info = PaceInfo::new(variant, position, first, last);
                    let bytes = info.to_wmpi_box().unwrap();
                    assert_eq!(PaceInfo::from_wmpi_box(&bytes).unwrap(), info);
                }
            }
        }
    }

    #[test]
    fn wmpi_box_positions_0_1_none_round_trip_and_32767_is_refused() {
        for position in [Some(0), Some(1), None] {
            let info = PaceInfo::new(0, position, true, true);
            let bytes = info.to_wmpi_box().unwrap();
            assert_eq!(PaceInfo::from_wmpi_box(&bytes).unwrap(), info);
        }
        let err = PaceInfo::new(0, Some(MAX_POSITION), true, true)
            .to_wmpi_box()
            .unwrap_err();
        assert_eq!(err, WmPaceInfoError::PositionNotInBandEncodable);
        assert!(err.to_string().contains("0..=32766"));
        for p in [32768, u16::MAX] {
            let err = PaceInfo::new(0, Some(p), true, true)
                .to_wmpi_box()
                .unwrap_err();
            assert_eq!(
                err,
                WmPaceInfoError::PositionOutOfRange { position: p.into() }
            );
            assert!(
                err.to_string()
                    .contains("-1 (not watermarked) and 0..=32767")
            );
        }
    }

    #[test]
    fn wmpi_box_rejects_bad_type_size_and_length() {
        let good = PaceInfo::new(0, Some(5), true, true).to_wmpi_box().unwrap();

        let mut bad_type = good;
        bad_type[4..8].copy_from_slice(b"free");
        assert_eq!(
            PaceInfo::from_wmpi_box(&bad_type).unwrap_err(),
            WmPaceInfoError::BoxType {
                found: "free".into()
            }
        );

        for size in [0u32, 8, 12, 14, 21, u32::MAX] {
            let mut bad = good;
            bad[..4].copy_from_slice(&size.to_be_bytes());
            assert_eq!(
                PaceInfo::from_wmpi_box(&bad).unwrap_err(),
                WmPaceInfoError::BoxSize { size: size.into() },
                "size {size}"
            );
        }

        for len in 0..WMPI_BOX_LEN {
            assert!(
                matches!(
                    PaceInfo::from_wmpi_box(&good[..len]),
                    Err(WmPaceInfoError::BoxLength { .. })
                ),
                "truncated to {len}"
            );
        }

        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(
            PaceInfo::from_wmpi_box(&long).unwrap_err(),
            WmPaceInfoError::BoxLength {
                expected: 13,
                actual: 14
            }
        );
    }

    #[test]
    fn wmpi_box_accepts_largesize_form() {
        let info = PaceInfo::new(1, Some(700), false, true);
        let payload = info.to_wmpi_payload().unwrap();
        let mut large = Vec::new();
        large.extend_from_slice(&1u32.to_be_bytes());
        large.extend_from_slice(b"wmpi");
        large.extend_from_slice(&21u64.to_be_bytes());
        large.extend_from_slice(&payload);
        assert_eq!(PaceInfo::from_wmpi_box(&large).unwrap(), info);

        large[8..16].copy_from_slice(&22u64.to_be_bytes());
        assert_eq!(
            PaceInfo::from_wmpi_box(&large).unwrap_err(),
            WmPaceInfoError::BoxSize { size: 22 }
        );
        assert!(matches!(
            PaceInfo::from_wmpi_box(&large[..12]),
            Err(WmPaceInfoError::BoxLength { .. })
        ));
    }

    #[test]
    fn wmpi_payload_rejects_emulation_version_overwrite_and_length() {
        let good = PaceInfo::new(0, Some(9), false, false)
            .to_wmpi_payload()
            .unwrap();

        let mut e1 = good;
        e1[2] &= 0x7F;
        assert_eq!(
            PaceInfo::from_wmpi_payload(&e1).unwrap_err(),
            WmPaceInfoError::EmulationBits {
                emulation_1: false,
                emulation_2: true
            }
        );
        let mut e2 = good;
        e2[4] &= 0x7F;
        assert_eq!(
            PaceInfo::from_wmpi_payload(&e2).unwrap_err(),
            WmPaceInfoError::EmulationBits {
                emulation_1: true,
                emulation_2: false
            }
        );

        for version in [0u8, 2, 254] {
            let mut v = good;
            v[0] = version;
            assert_eq!(
                PaceInfo::from_wmpi_payload(&v).unwrap_err(),
                WmPaceInfoError::UnsupportedVersion {
                    version: version.into()
                }
            );
        }

        assert_eq!(
            PaceInfo::from_wmpi_payload(&[0xFF; 5]).unwrap_err(),
            WmPaceInfoError::Overwritten
        );
        let mut overwritten_box = [0xFFu8; WMPI_BOX_LEN];
        overwritten_box[..8].copy_from_slice(&[0, 0, 0, 13, b'w', b'm', b'p', b'i']);
        assert_eq!(
            PaceInfo::from_wmpi_box(&overwritten_box).unwrap_err(),
            WmPaceInfoError::Overwritten
        );

        for len in [0usize, 4, 6] {
            assert_eq!(
                PaceInfo::from_wmpi_payload(&vec![0x80; len]).unwrap_err(),
                WmPaceInfoError::PayloadLength { actual: len }
            );
        }

        let bad_version = PaceInfo {
            version: 2,
            ..PaceInfo::new(0, Some(1), false, false)
        };
        assert!(matches!(
            bad_version.to_wmpi_box(),
            Err(WmPaceInfoError::UnsupportedVersion { version: 2 })
        ));
    }

    #[test]
    fn wmpi_payload_ignores_reserved_bits() {
        let mut bytes = PaceInfo::new(1, Some(42), true, false)
            .to_wmpi_payload()
            .unwrap();
        bytes[4] |= 0x1F;
        assert_eq!(
            PaceInfo::from_wmpi_payload(&bytes).unwrap(),
            PaceInfo::new(1, Some(42), true, false)
        );
    }

    // ------------------------------------------------------------ sidecar CBOR

    #[test]
    fn discrete_one_segment_sidecar_exact_deterministic_bytes() {
        let cases: [(Option<u16>, &[u8]); 5] = [
            // {1: 1, 2: [{6: 33}]}
            (
                Some(33),
                &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x18, 0x21],
            ),
            (Some(0), &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00]),
            (Some(1), &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x01]),
            (
                Some(32767),
                &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0x7F, 0xFF],
            ),
            // -1 is major type 1, argument 0.
            (None, &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x20]),
        ];
        for (position, bytes) in cases {
            let sidecar = Sidecar::for_discrete_segment(position);
            assert_eq!(sidecar.to_cbor().unwrap(), bytes, "{position:?}");
            assert_eq!(Sidecar::from_cbor_strict(bytes).unwrap(), sidecar);
        }
    }

    #[test]
    fn sidecar_round_trips_every_position() {
        let mut positions: Vec<Option<u16>> = (0..=MAX_POSITION).map(Some).collect();
        positions.push(None);
        for position in positions {
            let sidecar = Sidecar::for_discrete_segment(position);
            let bytes = sidecar.to_cbor().unwrap();
            assert_eq!(Sidecar::from_cbor_strict(&bytes).unwrap(), sidecar);
        }
    }

    #[test]
    fn sidecar_spec_discrete_example_golden_bytes() {
        // TS 104 002 clause 5.5.3.2, regexes verbatim as printed.
        let regex_123 = "video_segment_ .*?_123.mp4";
        let regex_124 = "video_segment_ .*?_124.mp4";
        let sidecar = Sidecar {
            version: 1,
            file_size: None,
            segments: vec![
                SidecarSegment {
                    segment_regex: Some(regex_123.into()),
                    ..SidecarSegment::discrete(Some(21))
                },
                SidecarSegment {
                    segment_regex: Some(regex_124.into()),
                    ..SidecarSegment::discrete(Some(22))
                },
            ],
        };
        let mut expected = vec![0xA2, 0x01, 0x01, 0x02, 0x82];
        expected.extend_from_slice(&[0xA2, 0x05, 0x78, 26]);
        expected.extend_from_slice(regex_123.as_bytes());
        expected.extend_from_slice(&[0x06, 0x15]);
        expected.extend_from_slice(&[0xA2, 0x05, 0x78, 26]);
        expected.extend_from_slice(regex_124.as_bytes());
        expected.extend_from_slice(&[0x06, 0x16]);
        assert_eq!(sidecar.to_cbor().unwrap(), expected);
        assert_eq!(Sidecar::from_cbor_strict(&expected).unwrap(), sidecar);
    }

    /// The spec's byterange track: init 0..=1117 (-1) then the ranges of the
    /// HLS example in clause 5.6.4.3 (`1700094@1118`, ... `1563219@7020425`).
    fn hls_example_track() -> (Sidecar, Vec<u8>) {
        let sidecar = Sidecar::for_byterange_track(
            7_020_425 + 1_563_219,
            [
                (0, None),
                (1118, Some(0)),
                (1_701_212, Some(1)),
                (3_490_693, Some(2)),
                (5_268_281, Some(3)),
                (7_020_425, Some(4)),
            ],
        )
        .unwrap();
        let expected = vec![
            0xA3, // map(3)
            0x01, 0x01, // version: 1
            0x02, 0x86, // segments: array(6)
            0xA2, 0x04, 0x00, 0x06, 0x20, // {startRange: 0, position: -1}
            0xA2, 0x04, 0x19, 0x04, 0x5E, 0x06, 0x00, // {1118, 0}
            0xA2, 0x04, 0x1A, 0x00, 0x19, 0xF5, 0x5C, 0x06, 0x01, // {1701212, 1}
            0xA2, 0x04, 0x1A, 0x00, 0x35, 0x43, 0x85, 0x06, 0x02, // {3490693, 2}
            0xA2, 0x04, 0x1A, 0x00, 0x50, 0x63, 0x39, 0x06, 0x03, // {5268281, 3}
            0xA2, 0x04, 0x1A, 0x00, 0x6B, 0x1F, 0x89, 0x06, 0x04, // {7020425, 4}
            0x03, 0x1A, 0x00, 0x82, 0xF9, 0xDC, // fileSize: 8583644
        ];
        (sidecar, expected)
    }

    #[test]
    fn sidecar_byterange_golden_bytes_and_lookup() {
        let (sidecar, expected) = hls_example_track();
        assert!(sidecar.is_byterange());
        assert_eq!(sidecar.to_cbor().unwrap(), expected);
        assert_eq!(Sidecar::from_cbor_strict(&expected).unwrap(), sidecar);

        assert_eq!(sidecar.position_at(0), Some(None));
        assert_eq!(sidecar.position_at(1117), Some(None));
        assert_eq!(sidecar.position_at(1118), Some(Some(0)));
        assert_eq!(sidecar.position_at(1_701_211), Some(Some(0)));
        assert_eq!(sidecar.position_at(1_701_212), Some(Some(1)));
        assert_eq!(sidecar.position_at(8_583_643), Some(Some(4)));
        assert_eq!(sidecar.position_at(8_583_644), None);
        assert_eq!(sidecar.position_at(u64::MAX), None);

        // The playlist's own ranges: 1789481@1701212 is all of position 1.
        assert_eq!(
            sidecar.position_for_byte_range(1_701_212, 1_701_212 + 1_789_481 - 1),
            Some(Some(1))
        );
        assert_eq!(sidecar.position_for_byte_range(0, 1117), Some(None));
        // A chunk inside a segment is fine; a range across two positions is not.
        assert_eq!(
            sidecar.position_for_byte_range(2_000_000, 2_000_999),
            Some(Some(1))
        );
        assert_eq!(sidecar.position_for_byte_range(1000, 2000), None);
        assert_eq!(sidecar.position_for_byte_range(1118, 3_490_693), None);
        assert_eq!(sidecar.position_for_byte_range(20, 10), None);
        assert_eq!(sidecar.position_for_byte_range(8_000_000, 8_583_644), None);

        // Neighbouring segments with the same position may be spanned.
        let same =
            Sidecar::for_byterange_track(300, [(0, Some(7)), (100, Some(7)), (200, Some(8))])
                .unwrap();
        assert_eq!(same.position_for_byte_range(50, 150), Some(Some(7)));
        assert_eq!(same.position_for_byte_range(50, 250), None);

        // A discrete sidecar answers no byte offset.
        let discrete = Sidecar::for_discrete_segment(Some(3));
        assert_eq!(discrete.position_at(0), None);
        assert_eq!(discrete.position_for_byte_range(0, 0), None);
    }

    #[test]
    fn sidecar_spec_byterange_example_boundaries() {
        // TS 104 002 clause 5.5.3.2: the entries the spec prints (it elides
        // positions 2..=117).
        let sidecar = Sidecar::for_byterange_track(
            262_445_216,
            [
                (0, None),
                (1118, Some(0)),
                (1_701_212, Some(1)),
                (261_083_393, Some(118)),
                (262_073_936, Some(119)),
            ],
        )
        .unwrap();
        let bytes = sidecar.to_cbor().unwrap();
        assert_eq!(
            &bytes[bytes.len() - 6..],
            &[0x03, 0x1A, 0x0F, 0xA4, 0x98, 0xA0]
        );
        let back = Sidecar::from_cbor_strict(&bytes).unwrap();
        assert_eq!(back, sidecar);
        assert_eq!(back.position_at(1117), Some(None));
        assert_eq!(back.position_at(262_073_935), Some(Some(118)));
        assert_eq!(back.position_at(262_073_936), Some(Some(119)));
        assert_eq!(back.position_at(262_445_215), Some(Some(119)));
        assert_eq!(back.position_at(262_445_216), None);
    }

    #[test]
    fn sidecar_rejects_every_truncation_and_trailing_bytes() {
        let (_, bytes) = hls_example_track();
        for len in 0..bytes.len() {
            assert!(
                Sidecar::from_cbor(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        let mut long = bytes.clone();
        long.push(0x00);
        assert_eq!(
            Sidecar::from_cbor(&long).unwrap_err(),
            WmPaceInfoError::CborTrailing { count: 1 }
        );
    }

    #[test]
    fn sidecar_rejects_wrong_types() {
        let cases: [&[u8]; 9] = [
            // version as text "1"
            &[0xA2, 0x01, 0x61, b'1', 0x02, 0x81, 0xA1, 0x06, 0x00],
            // top level is an array
            &[0x82, 0x01, 0x01],
            // segments is a map
            &[0xA2, 0x01, 0x01, 0x02, 0xA1, 0x06, 0x00],
            // position as text
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x61, b'3'],
            // position as bool
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xF5],
            // firstpart as integer 1
            &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x07, 0x01],
            // segmentRegex as a byte string
            &[
                0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x41, b'x', 0x06, 0x00,
            ],
            // startRange negative
            &[
                0xA3, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x04, 0x20, 0x06, 0x00, 0x03, 0x0A,
            ],
            // text key
            &[0xA2, 0x61, b'v', 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00],
        ];
        for bytes in cases {
            let err = Sidecar::from_cbor(bytes).unwrap_err();
            assert!(
                matches!(err, WmPaceInfoError::CborType { .. }),
                "{bytes:02X?}: {err}"
            );
        }
    }

    #[test]
    fn sidecar_rejects_out_of_range_positions() {
        let cases: [(&[u8], i128); 4] = [
            (
                &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0x80, 0x00],
                32768,
            ),
            (
                &[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x19, 0xFF, 0xFF],
                65535,
            ),
            (&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x21], -2),
            (
                &[
                    0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x3B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                    0xFF, 0xFF, 0xFF,
                ],
                -18_446_744_073_709_551_616,
            ),
        ];
        for (bytes, position) in cases {
            let err = Sidecar::from_cbor(bytes).unwrap_err();
            assert_eq!(err, WmPaceInfoError::PositionOutOfRange { position });
            assert!(err.to_string().contains("valid positions are -1"));
        }
        let invalid = Sidecar::for_discrete_segment(Some(32768));
        assert!(matches!(
            invalid.to_cbor(),
            Err(WmPaceInfoError::PositionOutOfRange { position: 32768 })
        ));
    }

    #[test]
    fn sidecar_rejects_bad_keys_and_counts() {
        // unknown top-level key 9
        assert!(matches!(
            Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0x09, 0x00]),
            Err(WmPaceInfoError::UnknownKey { key: 9, .. })
        ));
        // unknown segment key 1
        assert!(matches!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x01, 0x00]),
            Err(WmPaceInfoError::UnknownKey { key: 1, .. })
        ));
        // duplicate position
        assert_eq!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x06, 0x00, 0x06, 0x01])
                .unwrap_err(),
            WmPaceInfoError::DuplicateKey {
                key: 6,
                map: "segment"
            }
        );
        // duplicate version
        assert!(matches!(
            Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00]),
            Err(WmPaceInfoError::DuplicateKey { key: 1, .. })
        ));
        // missing position
        assert!(matches!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x07, 0xF5]),
            Err(WmPaceInfoError::MissingKey { key: 6, .. })
        ));
        // missing version, missing segments
        assert!(matches!(
            Sidecar::from_cbor(&[0xA1, 0x02, 0x81, 0xA1, 0x06, 0x00]),
            Err(WmPaceInfoError::MissingKey { key: 1, .. })
        ));
        assert!(matches!(
            Sidecar::from_cbor(&[0xA1, 0x01, 0x01]),
            Err(WmPaceInfoError::MissingKey { key: 2, .. })
        ));
        // empty segments
        assert_eq!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x80]).unwrap_err(),
            WmPaceInfoError::NoSegments
        );
        // version 2
        assert_eq!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x02, 0x02, 0x81, 0xA1, 0x06, 0x00]).unwrap_err(),
            WmPaceInfoError::UnsupportedVersion { version: 2 }
        );
    }

    #[test]
    fn sidecar_segment_count_is_capped_without_allocating() {
        // Declares 1 000 001 segments: refused by count, before reading any.
        let err = Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x9A, 0x00, 0x0F, 0x42, 0x41])
            .unwrap_err();
        assert_eq!(err, WmPaceInfoError::TooManySegments { count: 1_000_001 });
        assert!(err.to_string().contains("at most 1000000"));
        // Declares u64::MAX segments.
        assert!(matches!(
            Sidecar::from_cbor(&[
                0xA2, 0x01, 0x01, 0x02, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]),
            Err(WmPaceInfoError::TooManySegments { .. })
        ));
        // Declares exactly 1 000 000 but carries none: truncated, no big Vec.
        assert!(matches!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x9A, 0x00, 0x0F, 0x42, 0x40]),
            Err(WmPaceInfoError::CborTruncated { .. })
        ));
        // A huge declared map or text length is refused as truncated too.
        assert!(matches!(
            Sidecar::from_cbor(&[0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(WmPaceInfoError::CborTruncated { .. })
        ));
        assert!(matches!(
            Sidecar::from_cbor(&[
                0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF, 0x06, 0x00
            ]),
            Err(WmPaceInfoError::CborTruncated { .. })
        ));
        // validate() applies the same cap to hand-built sidecars.
        let big = Sidecar {
            version: 1,
            file_size: None,
            segments: vec![SidecarSegment::discrete(None); MAX_SIDECAR_SEGMENTS + 1],
        };
        assert!(matches!(
            big.validate(),
            Err(WmPaceInfoError::TooManySegments { .. })
        ));
    }

    #[test]
    fn sidecar_rejects_forbidden_cbor_constructs() {
        let cases: [&[u8]; 5] = [
            // indefinite-length array
            &[0xA2, 0x01, 0x01, 0x02, 0x9F, 0xA1, 0x06, 0x00, 0xFF],
            // indefinite-length map
            &[0xBF, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0xFF],
            // reserved additional information 28
            &[0xA2, 0x01, 0x1C, 0x02, 0x81, 0xA1, 0x06, 0x00],
            // invalid UTF-8 in segmentRegex
            &[
                0xA2, 0x01, 0x01, 0x02, 0x81, 0xA2, 0x05, 0x61, 0xFF, 0x06, 0x00,
            ],
            // lone break
            &[0xFF],
        ];
        for bytes in cases {
            assert!(
                matches!(
                    Sidecar::from_cbor(bytes),
                    Err(WmPaceInfoError::CborMalformed { .. })
                ),
                "{bytes:02X?}"
            );
        }
        // a tag (1: epoch time) around the position, and a float position
        assert!(matches!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xC1, 0x00]),
            Err(WmPaceInfoError::CborType { .. })
        ));
        assert!(matches!(
            Sidecar::from_cbor(&[0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0xF9, 0x3C, 0x00]),
            Err(WmPaceInfoError::CborType { .. })
        ));
    }

    #[test]
    fn sidecar_shape_rules() {
        let invalid = |s: Sidecar| {
            let err = s.validate().unwrap_err();
            assert!(s.to_cbor().is_err());
            err
        };
        // byterange segment without startRange
        let e = invalid(Sidecar {
            version: 1,
            file_size: Some(100),
            segments: vec![SidecarSegment::discrete(None)],
        });
        assert!(matches!(e, WmPaceInfoError::MissingKey { key: 4, .. }));
        // startRange without fileSize
        let e = invalid(Sidecar {
            version: 1,
            file_size: None,
            segments: vec![SidecarSegment::byterange(0, None)],
        });
        assert!(matches!(e, WmPaceInfoError::InvalidSidecar { .. }));
        // not increasing, equal, beyond fileSize
        for ranges in [
            vec![(0, None), (50, Some(1)), (40, Some(2))],
            vec![(0, None), (50, Some(1)), (50, Some(2))],
            vec![(0, None), (100, Some(1))],
        ] {
            assert!(matches!(
                Sidecar::for_byterange_track(100, ranges),
                Err(WmPaceInfoError::InvalidSidecar { .. })
            ));
        }
        // firstpart in a byterange segment
        let e = invalid(Sidecar {
            version: 1,
            file_size: Some(100),
            segments: vec![SidecarSegment {
                first_part: Some(true),
                ..SidecarSegment::byterange(0, Some(1))
            }],
        });
        assert!(matches!(e, WmPaceInfoError::InvalidSidecar { .. }));
        // version 0, no segments
        let e = invalid(Sidecar {
            version: 0,
            ..Sidecar::for_discrete_segment(None)
        });
        assert!(matches!(
            e,
            WmPaceInfoError::UnsupportedVersion { version: 0 }
        ));
        let e = invalid(Sidecar {
            version: 1,
            file_size: None,
            segments: Vec::new(),
        });
        assert_eq!(e, WmPaceInfoError::NoSegments);
        // The same shape errors come out of from_cbor: {1:1, 2:[{6:0}], 3:10}
        assert!(matches!(
            Sidecar::from_cbor(&[0xA3, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x00, 0x03, 0x0A]),
            Err(WmPaceInfoError::MissingKey { key: 4, .. })
        ));
    }

    #[test]
    fn sidecar_lenient_decode_and_strict_decode() {
        let deterministic = Sidecar::for_discrete_segment(Some(5)).to_cbor().unwrap();
        // Keys out of order: {2: [{6: 5}], 1: 1}
        let reordered = [0xA2, 0x02, 0x81, 0xA1, 0x06, 0x05, 0x01, 0x01];
        // Non-shortest integer: position 5 as 0x18 0x05
        let wide = [0xA2, 0x01, 0x01, 0x02, 0x81, 0xA1, 0x06, 0x18, 0x05];
        for bytes in [&reordered[..], &wide[..]] {
            let lenient = Sidecar::from_cbor(bytes).unwrap();
            assert_eq!(lenient.to_cbor().unwrap(), deterministic);
            assert_eq!(
                Sidecar::from_cbor_strict(bytes).unwrap_err(),
                WmPaceInfoError::NotDeterministic
            );
        }
    }

    #[test]
    fn sidecar_discrete_with_all_optional_fields_round_trips() {
        let sidecar = Sidecar {
            version: 1,
            file_size: None,
            segments: vec![
                SidecarSegment {
                    segment_regex: Some("seg_.*_7\\.m4s".into()),
                    first_part: Some(true),
                    last_part: Some(false),
                    ..SidecarSegment::discrete(Some(300))
                },
                SidecarSegment {
                    last_part: Some(true),
                    ..SidecarSegment::discrete(None)
                },
            ],
        };
        let bytes = sidecar.to_cbor().unwrap();
        // Segment 2 is {6: -1, 8: true}: keys in ascending order.
        assert_eq!(&bytes[bytes.len() - 5..], &[0xA2, 0x06, 0x20, 0x08, 0xF5]);
        assert_eq!(Sidecar::from_cbor_strict(&bytes).unwrap(), sidecar);
    }

    // ----------------------------------------------------------- egress header

    #[test]
    fn egress_header_golden_and_round_trip() {
        // base64url of A2 01 01 02 81 A1 06 18 21, computed independently.
        let header = Sidecar::for_discrete_segment(Some(33))
            .to_egress_header()
            .unwrap();
        assert_eq!(header, "ogEBAoGhBhgh");
        assert_eq!(
            Sidecar::for_discrete_segment(None)
                .to_egress_header()
                .unwrap(),
            "ogEBAoGhBiA"
        );
        for position in POSITIONS {
            let sidecar = Sidecar::for_discrete_segment(position);
            let header = sidecar.to_egress_header().unwrap();
            assert!(!header.contains('='));
            assert_eq!(Sidecar::from_egress_header(&header).unwrap(), sidecar);
        }
        // Padding and surrounding whitespace are tolerated on read.
        assert_eq!(
            Sidecar::from_egress_header(" ogEBAoGhBiA= ").unwrap(),
            Sidecar::for_discrete_segment(None)
        );
    }

    #[test]
    fn egress_header_drops_ingest_only_fields() {
        let ingest = Sidecar {
            version: 1,
            file_size: None,
            segments: vec![SidecarSegment {
                segment_regex: Some("x".into()),
                first_part: Some(true),
                last_part: Some(true),
                ..SidecarSegment::discrete(Some(33))
            }],
        };
        assert_eq!(ingest.to_egress_header().unwrap(), "ogEBAoGhBhgh");
    }

    #[test]
    fn egress_header_rejections() {
        let (track, _) = hls_example_track();
        assert!(matches!(
            track.to_egress_header(),
            Err(WmPaceInfoError::NotSingleDiscrete { .. })
        ));
        let two = Sidecar {
            version: 1,
            file_size: None,
            segments: vec![SidecarSegment::discrete(Some(1)); 2],
        };
        assert!(matches!(
            two.to_egress_header(),
            Err(WmPaceInfoError::NotSingleDiscrete { .. })
        ));
        let two_header = B64URL.encode(two.to_cbor().unwrap());
        assert!(matches!(
            Sidecar::from_egress_header(&two_header),
            Err(WmPaceInfoError::NotSingleDiscrete { .. })
        ));
        // standard-alphabet characters, bad length, non-canonical last char
        for bad in ["og+BAoGhBiA", "o", "ogEBAoGhBiB", "ogEB AoGhBiA"] {
            assert!(
                matches!(
                    Sidecar::from_egress_header(bad),
                    Err(WmPaceInfoError::Base64 { .. })
                ),
                "{bad}"
            );
        }
        // valid base64url, truncated CBOR
        assert!(matches!(
            Sidecar::from_egress_header("ogEBAoGhBg"),
            Err(WmPaceInfoError::CborTruncated { .. })
        ));
        let long = "A".repeat(MAX_EGRESS_HEADER_LEN + 1);
        assert!(matches!(
            Sidecar::from_egress_header(&long),
            Err(WmPaceInfoError::HeaderTooLong { .. })
        ));
    }

    // ------------------------------------------------------------ ingest JSON

    #[test]
    fn ingest_json_spec_and_aws_examples() {
        // TS 104 002 clause 5.5.3.3, as printed.
        let spec = "{\n\"version\": 1,\n\"variant\": 0,\n\"position\": 33,\n\"firstpart\": true,\n\"lastpart\": true\n}";
        assert_eq!(
            PaceInfo::from_ingest_json(spec).unwrap(),
            PaceInfo::new(0, Some(33), true, true)
        );
        // AWS Elemental MediaPackage's example, byte for byte.
        let aws = r#"{"version":1,"variant":0,"position":1024,"firstpart":true,"lastpart":false}"#;
        let info = PaceInfo::from_ingest_json(aws).unwrap();
        assert_eq!(info, PaceInfo::new(0, Some(1024), true, false));
        assert_eq!(info.to_ingest_json().unwrap(), aws);
        assert_eq!(
            PaceInfo::new(1, None, false, true)
                .to_ingest_json()
                .unwrap(),
            r#"{"version":1,"variant":1,"position":-1,"firstpart":false,"lastpart":true}"#
        );
    }

    #[test]
    fn ingest_json_round_trips() {
        for position in POSITIONS {
            for variant in [0, 1, 255] {
                for (first, last) in [(false, false), (true, true), (true, false)] {
                    let info = PaceInfo::new(variant, position, first, last);
                    let json = info.to_ingest_json().unwrap();
                    assert_eq!(PaceInfo::from_ingest_json(&json).unwrap(), info);
                }
            }
        }
    }

    #[test]
    fn ingest_json_rejections() {
        let json_error = |s: &str| {
            let err = PaceInfo::from_ingest_json(s).unwrap_err();
            assert!(
                matches!(err, WmPaceInfoError::IngestJson { .. }),
                "{s}: {err}"
            );
        };
        json_error(r#"{"version":1,"variant":0,"position":3,"firstpart":true}"#);
        json_error(
            r#"{"version":1,"variant":0,"position":3,"firstpart":true,"lastpart":true,"x":1}"#,
        );
        json_error(r#"{"version":1,"variant":0,"position":"3","firstpart":true,"lastpart":true}"#);
        json_error(r#"{"version":1,"variant":0,"position":3.0,"firstpart":true,"lastpart":true}"#);
        json_error(r#"{"version":1,"variant":0,"position":3,"firstpart":1,"lastpart":true}"#);
        json_error(
            r#"{"version":1,"variant":0,"position":3,"position":4,"firstpart":true,"lastpart":true}"#,
        );
        json_error("not json");
        json_error(r#"[1,0,3,true,true]"#);
        let variant = PaceInfo::from_ingest_json(
            r#"{"version":1,"variant":256,"position":3,"firstpart":true,"lastpart":true}"#,
        )
        .unwrap_err();
        assert!(variant.to_string().contains("0..=255"));

        for (position, value) in [("32768", 32768), ("-2", -2)] {
            let s = format!(
                r#"{{"version":1,"variant":0,"position":{position},"firstpart":true,"lastpart":true}}"#
            );
            assert_eq!(
                PaceInfo::from_ingest_json(&s).unwrap_err(),
                WmPaceInfoError::PositionOutOfRange { position: value }
            );
        }
        assert_eq!(
            PaceInfo::from_ingest_json(
                r#"{"version":2,"variant":0,"position":3,"firstpart":true,"lastpart":true}"#
            )
            .unwrap_err(),
            WmPaceInfoError::UnsupportedVersion { version: 2 }
        );
        let long = format!("{{{}}}", " ".repeat(MAX_INGEST_JSON_LEN));
        assert!(matches!(
            PaceInfo::from_ingest_json(&long),
            Err(WmPaceInfoError::HeaderTooLong { .. })
        ));
        assert!(matches!(
            PaceInfo::new(0, Some(40_000), false, false).to_ingest_json(),
            Err(WmPaceInfoError::PositionOutOfRange { position: 40_000 })
        ));
    }

    #[test]
    fn forms_agree_with_each_other() {
        // One PaceInfo, carried in-band and in the ingest header, then turned
        // into the egress sidecar by an origin: the position survives.
        for position in [Some(0), Some(1), Some(MAX_IN_BAND_POSITION), None] {
            let info = PaceInfo::new(1, position, true, true);
            let from_box = PaceInfo::from_wmpi_box(&info.to_wmpi_box().unwrap()).unwrap();
            let from_json = PaceInfo::from_ingest_json(&info.to_ingest_json().unwrap()).unwrap();
            assert_eq!(from_box, from_json);
            let header = Sidecar::for_discrete_segment(from_box.position)
                .to_egress_header()
                .unwrap();
            let egress = Sidecar::from_egress_header(&header).unwrap();
            assert_eq!(egress.segments[0].position, position);
        }
    }
}
