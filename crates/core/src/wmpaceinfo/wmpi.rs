//! The 40-bit `WMPaceInfo()` payload and the ISO-BMFF `wmpi` box that carries it
//! (clause 5.5.3.4), read and written for [`PaceInfo`].

use super::error::Result;
use super::{
    IN_BAND_NOT_WATERMARKED, MAX_IN_BAND_POSITION, PaceInfo, WMPACEINFO_VERSION, WMPI_BOX_LEN,
    WMPI_BOX_TYPE, WMPI_LARGE_BOX_LEN, WMPI_PAYLOAD_LEN, WmPaceInfoError,
};

impl PaceInfo {
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
}
