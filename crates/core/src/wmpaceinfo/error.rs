//! [`WmPaceInfoError`], everything that can go wrong reading or writing WMPaceInfo, and the
//! module's `Result` alias.

use super::{MAX_IN_BAND_POSITION, MAX_POSITION, MAX_SIDECAR_SEGMENTS};

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

pub(super) type Result<T> = std::result::Result<T, WmPaceInfoError>;
