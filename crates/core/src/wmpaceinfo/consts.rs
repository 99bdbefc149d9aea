//! The numbers and names TS 104 002 V1.1.1 fixes for WMPaceInfo, and this module's input limits.

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
/// HTTP request header carrying [`PaceInfo`](super::PaceInfo) as JSON on ingest (push).
pub const INGEST_HEADER: &str = "WMPaceInfoIngest";
/// HTTP response header carrying a one-segment sidecar on egress (pull).
pub const EGRESS_HEADER: &str = "WMPaceInfoEgress";
/// Path component under which the origin serves sidecars:
/// `/pathname/WMPaceInfo/<filename>`.
pub const SIDECAR_DIR: &str = "WMPaceInfo";
/// Media type of a sidecar file.
pub const SIDECAR_CONTENT_TYPE: &str = "application/cbor";
