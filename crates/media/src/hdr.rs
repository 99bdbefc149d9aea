//! HDR static metadata: the mastering display's colour volume (SMPTE ST 2086) and the content
//! light levels (CTA-861.3 MaxCLL and MaxFALL), carried from the mezzanine into every encode.
//!
//! An HDR10 display tone-maps with them: without them it assumes a 1000 or 4000 cd/m²
//! mastering display and guesses the content's peak. [`crate::Decoder::hdr_static`] reads what
//! the source carries (the container's boxes or elements, else the first picture's SEI or OBU
//! metadata) and [`crate::EncoderConfig`]'s `hdr` writes it into the encoded stream (SEI
//! messages for H.264 and HEVC, metadata OBUs for AV1).

/// The mastering display, in the units of the HEVC and H.264 SEI messages: chromaticity
/// coordinates in steps of 0.00002, luminance in steps of 0.0001 cd/m².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MasteringDisplay {
    /// The red, green and blue primaries, (x, y) each.
    pub primaries: [[u16; 2]; 3],
    /// The white point (x, y).
    pub white_point: [u16; 2],
    /// Largest luminance.
    pub max_luminance: u32,
    /// Smallest luminance.
    pub min_luminance: u32,
}

/// The content light levels, cd/m².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentLight {
    /// The brightest pixel of the content (MaxCLL).
    pub max_cll: u16,
    /// The brightest frame's average (MaxFALL).
    pub max_fall: u16,
}

/// A stream's HDR static metadata; both parts are optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HdrStatic {
    /// The mastering display.
    pub mastering: Option<MasteringDisplay>,
    /// The content light levels.
    pub light: Option<ContentLight>,
}

/// Chromaticity steps per unit (0.00002).
const CHROMA: f64 = 50_000.0;
/// Luminance steps per cd/m² (0.0001).
const LUMA: f64 = 10_000.0;

impl HdrStatic {
    /// True when neither part is known.
    pub fn is_empty(&self) -> bool {
        self.mastering.is_none() && self.light.is_none()
    }

    /// Fills what `self` lacks from `other`.
    pub(crate) fn or(self, other: HdrStatic) -> HdrStatic {
        HdrStatic {
            mastering: self.mastering.or(other.mastering),
            light: self.light.or(other.light),
        }
    }

    /// The metadata in FFmpeg's side-data structures (`AVMasteringDisplayMetadata`,
    /// `AVContentLightMetadata`, as a container or a decoded picture carries them); a part
    /// that is absent, flagged as unset, or out of the SEI's ranges is left out.
    pub(crate) fn from_side_data(mastering: Option<&[u8]>, light: Option<&[u8]>) -> Self {
        HdrStatic {
            mastering: mastering.and_then(MasteringDisplay::from_av),
            light: light.and_then(ContentLight::from_av),
        }
    }

    /// The encoder options that write this metadata, as `key=value` pairs of the codec's
    /// own parameter string (`x264-params`, `x265-params`, `svtav1-params`).
    pub(crate) fn encoder_params(&self, codec: crate::Codec) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.mastering {
            let [r, g, b] = m.primaries;
            let w = m.white_point;
            out.push(match codec {
                // SVT-AV1 takes the values themselves.
                crate::Codec::Av1 => {
                    let c = |v: u16| f64::from(v) / CHROMA;
                    format!(
                        "mastering-display=G({:.5},{:.5})B({:.5},{:.5})R({:.5},{:.5})WP({:.5},{:.5})L({:.4},{:.4})",
                        c(g[0]),
                        c(g[1]),
                        c(b[0]),
                        c(b[1]),
                        c(r[0]),
                        c(r[1]),
                        c(w[0]),
                        c(w[1]),
                        f64::from(m.max_luminance) / LUMA,
                        f64::from(m.min_luminance) / LUMA
                    )
                }
                // x264 and x265 take the SEI's integers, in the SEI's order (G, B, R).
                crate::Codec::H264 | crate::Codec::Hevc => {
                    let key = if codec == crate::Codec::H264 {
                        "mastering-display"
                    } else {
                        "master-display"
                    };
                    format!(
                        "{key}=G({},{})B({},{})R({},{})WP({},{})L({},{})",
                        g[0],
                        g[1],
                        b[0],
                        b[1],
                        r[0],
                        r[1],
                        w[0],
                        w[1],
                        m.max_luminance,
                        m.min_luminance
                    )
                }
            });
        }
        if let Some(l) = &self.light {
            let key = match codec {
                crate::Codec::H264 => "cll",
                crate::Codec::Hevc => "max-cll",
                crate::Codec::Av1 => "content-light",
            };
            out.push(format!("{key}={},{}", l.max_cll, l.max_fall));
        }
        out
    }
}

/// Reads the `i`-th native-endian `int` of `b`.
fn int_at(b: &[u8], i: usize) -> Option<i32> {
    let s = b.get(4 * i..4 * i + 4)?;
    Some(i32::from_ne_bytes(s.try_into().ok()?))
}

/// The `i`-th `AVRational` of `b` (two ints), as a value; `None` for a zero or negative
/// denominator.
fn rational_at(b: &[u8], i: usize) -> Option<f64> {
    let (num, den) = (int_at(b, 2 * i)?, int_at(b, 2 * i + 1)?);
    (den > 0).then(|| f64::from(num) / f64::from(den))
}

/// `v × scale`, rounded, when it lies in `0..=max`.
fn steps(v: f64, scale: f64, max: u32) -> Option<u32> {
    let s = (v * scale).round();
    (s.is_finite() && (0.0..=f64::from(max)).contains(&s)).then_some(s as u32)
}

impl MasteringDisplay {
    /// From `AVMasteringDisplayMetadata`: `display_primaries[3][2]` (R, G, B), `white_point[2]`,
    /// `min_luminance`, `max_luminance` (ten `AVRational`s), then `has_primaries` and
    /// `has_luminance`. Both parts must be set: the SEI carries them together.
    fn from_av(b: &[u8]) -> Option<Self> {
        let (has_primaries, has_luminance) = (int_at(b, 20)?, int_at(b, 21)?);
        if has_primaries == 0 || has_luminance == 0 {
            return None;
        }
        // The SEI's ranges: chromaticity 0 to 50 000 (0 to 1), luminance 32 bits.
        let chroma = |i: usize| -> Option<u16> {
            let v = steps(rational_at(b, i)?, CHROMA, 50_000)?;
            u16::try_from(v).ok()
        };
        let primaries = [
            [chroma(0)?, chroma(1)?],
            [chroma(2)?, chroma(3)?],
            [chroma(4)?, chroma(5)?],
        ];
        let white_point = [chroma(6)?, chroma(7)?];
        let min_luminance = steps(rational_at(b, 8)?, LUMA, u32::MAX)?;
        let max_luminance = steps(rational_at(b, 9)?, LUMA, u32::MAX)?;
        (max_luminance > min_luminance).then_some(Self {
            primaries,
            white_point,
            max_luminance,
            min_luminance,
        })
    }
}

impl ContentLight {
    /// From `AVContentLightMetadata`: `MaxCLL` and `MaxFALL`, two unsigned ints; the SEI holds
    /// 16 bits each.
    fn from_av(b: &[u8]) -> Option<Self> {
        let cll = u16::try_from(int_at(b, 0)?).ok()?;
        let fall = u16::try_from(int_at(b, 1)?).ok()?;
        (cll > 0 || fall > 0).then_some(Self {
            max_cll: cll,
            max_fall: fall,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AVMasteringDisplayMetadata` bytes for BT.2020 primaries, D65, 1000 and 0.005 cd/m².
    fn av_mastering(has: [i32; 2]) -> Vec<u8> {
        let rationals: [(i32, i32); 10] = [
            (34_000, 50_000),
            (16_000, 50_000),
            (13_250, 50_000),
            (34_500, 50_000),
            (7_500, 50_000),
            (3_000, 50_000),
            (15_635, 50_000),
            (16_450, 50_000),
            (50, 10_000),
            (10_000_000, 10_000),
        ];
        let mut b = Vec::new();
        for (n, d) in rationals {
            b.extend(n.to_ne_bytes());
            b.extend(d.to_ne_bytes());
        }
        b.extend(has[0].to_ne_bytes());
        b.extend(has[1].to_ne_bytes());
        b
    }

    fn av_light(cll: i32, fall: i32) -> Vec<u8> {
        let mut b = cll.to_ne_bytes().to_vec();
        b.extend(fall.to_ne_bytes());
        b
    }

    #[test]
    fn side_data_becomes_sei_units_and_encoder_options() {
        let m = av_mastering([1, 1]);
        let l = av_light(1000, 400);
        let hdr = HdrStatic::from_side_data(Some(&m), Some(&l));
        assert_eq!(
            hdr.mastering,
            Some(MasteringDisplay {
                primaries: [[34_000, 16_000], [13_250, 34_500], [7_500, 3_000]],
                white_point: [15_635, 16_450],
                max_luminance: 10_000_000,
                min_luminance: 50,
            })
        );
        assert_eq!(
            hdr.light,
            Some(ContentLight {
                max_cll: 1000,
                max_fall: 400
            })
        );
        assert_eq!(
            hdr.encoder_params(crate::Codec::Hevc),
            [
                "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)",
                "max-cll=1000,400"
            ]
        );
        assert_eq!(
            hdr.encoder_params(crate::Codec::H264),
            [
                "mastering-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)",
                "cll=1000,400"
            ]
        );
        assert_eq!(
            hdr.encoder_params(crate::Codec::Av1),
            [
                "mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)WP(0.31270,0.32900)L(1000.0000,0.0050)",
                "content-light=1000,400"
            ]
        );
    }

    #[test]
    fn unset_short_or_out_of_range_side_data_is_left_out() {
        let none = HdrStatic::from_side_data(None, None);
        assert!(none.is_empty());
        assert!(none.encoder_params(crate::Codec::Hevc).is_empty());
        for has in [[0, 1], [1, 0], [0, 0]] {
            assert_eq!(MasteringDisplay::from_av(&av_mastering(has)), None);
        }
        let m = av_mastering([1, 1]);
        assert_eq!(MasteringDisplay::from_av(&m[..40]), None, "short");
        let mut zero_den = m.clone();
        zero_den[4..8].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(MasteringDisplay::from_av(&zero_den), None);
        let mut beyond = m.clone();
        beyond[0..4].copy_from_slice(&60_000i32.to_ne_bytes());
        assert_eq!(MasteringDisplay::from_av(&beyond), None, "x above 1");
        assert_eq!(ContentLight::from_av(&av_light(0, 0)), None);
        assert_eq!(ContentLight::from_av(&av_light(70_000, 10)), None);
        assert_eq!(ContentLight::from_av(&av_light(-1, 10)), None);
        assert_eq!(ContentLight::from_av(&[1, 2, 3]), None);
        // What one part lacks, the other source gives.
        let light = HdrStatic::from_side_data(None, Some(&av_light(500, 200)));
        let both = light.or(HdrStatic::from_side_data(Some(&m), None));
        assert!(both.mastering.is_some() && both.light == light.light);
    }
}
