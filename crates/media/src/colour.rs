//! A stream's colour description, carried from the mezzanine to every rendition.
//!
//! An HDR master (BT.2020 primaries, the PQ or HLG transfer) is only HDR while its streams say
//! so: a rendition encoded without the description is read as BT.709 SDR and shown washed out.
//! [`crate::Decoder::colour`] reads what the source declares and [`crate::EncoderConfig`]'s
//! `colour` writes it into the encoded stream (the codec's VUI or sequence header, and the MP4
//! `colr` box); the manifests signal the transfer ([`Colour::video_range`]).

use ffm::color::{Primaries, Range, Space, TransferCharacteristic};
use ffmpeg_next as ffm;

/// Colour primaries, transfer characteristics and matrix coefficients as ITU-T H.273 (CICP)
/// code points, and the sample range. 2 is "unspecified" for each code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Colour {
    /// Colour primaries (1: BT.709, 9: BT.2020).
    pub primaries: u8,
    /// Transfer characteristics (1: BT.709, 16: PQ, 18: HLG).
    pub transfer: u8,
    /// Matrix coefficients (1: BT.709, 9: BT.2020 non-constant luminance).
    pub matrix: u8,
    /// Full range (0–255 at 8 bits) rather than the video range (16–235).
    pub full_range: bool,
}

impl Default for Colour {
    fn default() -> Self {
        Self::UNSPECIFIED
    }
}

/// H.273's "unspecified".
const UNSPECIFIED: u8 = 2;

impl Colour {
    /// Nothing declared: encoders write no description, players assume their default.
    pub const UNSPECIFIED: Self = Self {
        primaries: UNSPECIFIED,
        transfer: UNSPECIFIED,
        matrix: UNSPECIFIED,
        full_range: false,
    };

    /// True when any of the three codes is declared.
    pub fn is_specified(&self) -> bool {
        [self.primaries, self.transfer, self.matrix]
            .iter()
            .any(|&c| c != UNSPECIFIED)
    }

    /// The HLS `VIDEO-RANGE` of a stream of this transfer: `PQ` (SMPTE ST 2084), `HLG`
    /// (ARIB STD-B67), `None` for SDR.
    pub fn video_range(&self) -> Option<&'static str> {
        match self.transfer {
            16 => Some("PQ"),
            18 => Some("HLG"),
            _ => None,
        }
    }

    /// What a decoder declares; a code FFmpeg does not know is left unspecified.
    pub(crate) fn of_decoder(d: &ffm::decoder::Video) -> Self {
        Self {
            primaries: code(PRIMARIES, d.color_primaries(), primaries_code),
            transfer: code(TRANSFERS, d.color_transfer_characteristic(), transfer_code),
            matrix: code(MATRICES, d.color_space(), matrix_code),
            full_range: d.color_range() == Range::JPEG,
        }
    }

    /// Declares this description on an encoder about to be opened: only the codes that are
    /// specified, and the range when the source declared the full one.
    pub(crate) fn apply(&self, e: &mut ffm::encoder::video::Video) {
        if let Some(&p) = PRIMARIES
            .iter()
            .find(|&&p| primaries_code(p) == self.primaries)
        {
            e.set_color_primaries(p);
        }
        if let Some(&t) = TRANSFERS
            .iter()
            .find(|&&t| transfer_code(t) == self.transfer)
        {
            e.set_color_transfer_characteristic(t);
        }
        if let Some(&m) = MATRICES.iter().find(|&&m| matrix_code(m) == self.matrix) {
            e.set_colorspace(m);
        }
        if self.is_specified() || self.full_range {
            e.set_color_range(if self.full_range {
                Range::JPEG
            } else {
                Range::MPEG
            });
        }
    }
}

/// The code of `value` when it is one of `known` (H.273 defines them all), else unspecified.
fn code<T: Copy + PartialEq>(known: &[T], value: T, to_code: fn(T) -> u8) -> u8 {
    if known.contains(&value) {
        to_code(value)
    } else {
        UNSPECIFIED
    }
}

/// FFmpeg's enums carry H.273's numbers.
fn primaries_code(p: Primaries) -> u8 {
    u8::try_from(ffm::ffi::AVColorPrimaries::from(p) as i32).unwrap_or(UNSPECIFIED)
}

fn transfer_code(t: TransferCharacteristic) -> u8 {
    u8::try_from(ffm::ffi::AVColorTransferCharacteristic::from(t) as i32).unwrap_or(UNSPECIFIED)
}

fn matrix_code(m: Space) -> u8 {
    u8::try_from(ffm::ffi::AVColorSpace::from(m) as i32).unwrap_or(UNSPECIFIED)
}

/// The primaries an encoder is told of (every H.273 set FFmpeg names).
const PRIMARIES: &[Primaries] = &[
    Primaries::BT709,
    Primaries::BT470M,
    Primaries::BT470BG,
    Primaries::SMPTE170M,
    Primaries::SMPTE240M,
    Primaries::Film,
    Primaries::BT2020,
    Primaries::SMPTE428,
    Primaries::SMPTE431,
    Primaries::SMPTE432,
];

/// The transfer characteristics an encoder is told of.
const TRANSFERS: &[TransferCharacteristic] = &[
    TransferCharacteristic::BT709,
    TransferCharacteristic::GAMMA22,
    TransferCharacteristic::GAMMA28,
    TransferCharacteristic::SMPTE170M,
    TransferCharacteristic::SMPTE240M,
    TransferCharacteristic::Linear,
    TransferCharacteristic::IEC61966_2_4,
    TransferCharacteristic::BT1361_ECG,
    TransferCharacteristic::IEC61966_2_1,
    TransferCharacteristic::BT2020_10,
    TransferCharacteristic::BT2020_12,
    TransferCharacteristic::SMPTE2084,
    TransferCharacteristic::SMPTE428,
    TransferCharacteristic::ARIB_STD_B67,
];

/// The matrix coefficients an encoder is told of.
const MATRICES: &[Space] = &[
    Space::BT709,
    Space::FCC,
    Space::BT470BG,
    Space::SMPTE170M,
    Space::SMPTE240M,
    Space::YCGCO,
    Space::BT2020NCL,
    Space::BT2020CL,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_h273s() {
        assert_eq!(primaries_code(Primaries::BT709), 1);
        assert_eq!(primaries_code(Primaries::BT2020), 9);
        assert_eq!(transfer_code(TransferCharacteristic::SMPTE2084), 16);
        assert_eq!(transfer_code(TransferCharacteristic::ARIB_STD_B67), 18);
        assert_eq!(matrix_code(Space::BT2020NCL), 9);
        assert_eq!(matrix_code(Space::SMPTE170M), 6);
        let hdr10 = Colour {
            primaries: 9,
            transfer: 16,
            matrix: 9,
            full_range: false,
        };
        assert_eq!(hdr10.video_range(), Some("PQ"));
        assert!(hdr10.is_specified());
        assert_eq!(Colour::default(), Colour::UNSPECIFIED);
        assert!(!Colour::UNSPECIFIED.is_specified());
        assert_eq!(Colour::UNSPECIFIED.video_range(), None);
    }
}
