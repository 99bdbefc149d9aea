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

mod cbor;
mod consts;
mod error;
mod pace_info;
mod sidecar;
mod wmpi;

pub use consts::{
    EGRESS_HEADER, IN_BAND_NOT_WATERMARKED, INGEST_HEADER, MAX_EGRESS_HEADER_LEN,
    MAX_IN_BAND_POSITION, MAX_INGEST_JSON_LEN, MAX_POSITION, MAX_SIDECAR_SEGMENTS,
    SIDECAR_CONTENT_TYPE, SIDECAR_DIR, WMPACEINFO_VERSION, WMPI_BOX_LEN, WMPI_BOX_TYPE,
    WMPI_LARGE_BOX_LEN, WMPI_PAYLOAD_LEN,
};
pub use error::WmPaceInfoError;
pub use pace_info::PaceInfo;
pub use sidecar::{Sidecar, SidecarSegment};

#[cfg(test)]
mod tests;
