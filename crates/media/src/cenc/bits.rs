//! What the H.264 and HEVC readers share: the bits of an escaped NAL unit (Exp-Golomb codes,
//! emulation prevention) and the length-prefixed NAL units of a sample.

use crate::MediaError;

/// Reads the bits of a NAL unit, skipping emulation-prevention bytes (`00 00 03`), and counts
/// how many bytes of the escaped NAL it has consumed. Errors name `codec`.
pub(super) struct Bits<'a> {
    data: &'a [u8],
    codec: &'static str,
    /// Next byte to load.
    at: usize,
    /// Zero bytes just before `at` (for emulation prevention).
    zeros: u8,
    cur: u8,
    /// Bits left in `cur`.
    left: u8,
    /// Payload bits read (emulation-prevention bytes not counted).
    read: usize,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8], codec: &'static str) -> Self {
        Self {
            data,
            codec,
            at: 0,
            zeros: 0,
            cur: 0,
            left: 0,
            read: 0,
        }
    }

    pub(super) fn err(&self, msg: impl std::fmt::Display) -> MediaError {
        MediaError::BadMp4(format!("{}: {msg}", self.codec))
    }

    pub(super) fn bit(&mut self) -> Result<u32, MediaError> {
        if self.left == 0 {
            let mut b = *self
                .data
                .get(self.at)
                .ok_or_else(|| self.err("header past the end of its NAL unit"))?;
            self.at += 1;
            if self.zeros >= 2 && b == 3 {
                self.zeros = 0;
                b = *self
                    .data
                    .get(self.at)
                    .ok_or_else(|| self.err("header past the end of its NAL unit"))?;
                self.at += 1;
            }
            self.zeros = if b == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
            self.cur = b;
            self.left = 8;
        }
        self.left -= 1;
        self.read += 1;
        Ok(u32::from((self.cur >> self.left) & 1))
    }

    /// `n` bits (at most 32) as an unsigned number, most significant first.
    pub(super) fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        if n > 32 {
            return Err(self.err(format!("a {n}-bit field")));
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    /// Skips `n` bits.
    pub(super) fn skip(&mut self, n: u32) -> Result<(), MediaError> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    pub(super) fn flag(&mut self) -> Result<bool, MediaError> {
        Ok(self.bit()? == 1)
    }

    /// `ue(v)`: an unsigned Exp-Golomb code (at most 32 bits of prefix, so below 2^32 − 1).
    pub(super) fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(self.err("Exp-Golomb code longer than 32 bits"));
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    /// `ue(v)` that must be at most `max`; the error names the syntax element.
    pub(super) fn ue_max(&mut self, name: &str, max: u32) -> Result<u32, MediaError> {
        let v = self.ue()?;
        if v > max {
            return Err(self.err(format!("{name} {v} (at most {max})")));
        }
        Ok(v)
    }

    /// `se(v)`: a signed Exp-Golomb code.
    pub(super) fn se(&mut self) -> Result<i32, MediaError> {
        let k = self.ue()?;
        Ok(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }

    /// Whether the next bit starts a byte of the payload.
    pub(super) fn byte_aligned(&self) -> bool {
        self.left == 0
    }

    /// Bytes of the escaped NAL touched so far (a partly read byte counts).
    pub(super) fn bytes_used(&self) -> usize {
        self.at
    }

    /// Payload bits read so far (emulation-prevention bytes not counted).
    pub(super) fn bits_read(&self) -> usize {
        self.read
    }
}

/// `Ceil(Log2(n))`, 0 for `n` ≤ 1: the width of a `u(v)` index into `n` entries.
pub(super) fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// The NAL units of a sample whose units carry a `length_size`-byte big-endian length prefix:
/// (offset of the length prefix, total bytes with the prefix). Errors name `codec`.
pub(super) fn nal_units(
    sample: &[u8],
    length_size: usize,
    codec: &str,
) -> Result<Vec<(usize, usize)>, MediaError> {
    let bad = |msg: &str| MediaError::BadMp4(format!("{codec}: {msg}"));
    let mut out = Vec::new();
    let mut at = 0;
    while at < sample.len() {
        let prefix = sample
            .get(at..at + length_size)
            .ok_or_else(|| bad("NAL length prefix past the end of the sample"))?;
        let len = prefix
            .iter()
            .fold(0usize, |v, &b| (v << 8) | usize::from(b));
        let total = length_size + len;
        if len == 0 || total > sample.len() - at {
            return Err(bad("NAL unit longer than its sample"));
        }
        out.push((at, total));
        at += total;
    }
    Ok(out)
}

/// The NAL units of an Annex B stream (start codes removed), for the tests that compare the
/// readers with FFmpeg's.
#[cfg(test)]
pub(super) fn annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
            while end > s && stream[end - 1] == 0 {
                end -= 1; // the leading zero of a four-byte start code
            }
            &stream[s..end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_and_emulation_prevention() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3, 4; then an escaped 00 00 03 01.
        let mut b = Bits::new(&[0b1010_0110, 0b0100_0010, 0b1000_0000], "test");
        assert_eq!(
            (0..5).map(|_| b.ue().unwrap()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let mut b = Bits::new(&[0, 0, 3, 1], "test");
        assert_eq!(b.bits(24).unwrap(), 1);
        assert_eq!(b.bytes_used(), 4);
        assert_eq!(b.bits_read(), 24);
        assert!(b.byte_aligned());
        let mut b = Bits::new(&[0b0110_1000], "test");
        assert_eq!((b.se().unwrap(), b.se().unwrap()), (-1, 1));
        assert!(Bits::new(&[0, 0], "test").ue().is_err());
        let mut b = Bits::new(&[0xff; 8], "test");
        assert_eq!(b.bits(32).unwrap(), u32::MAX);
        assert!(b.bits(33).is_err());
        let e = Bits::new(&[], "HEVC").flag().unwrap_err();
        assert!(e.to_string().contains("HEVC: header past the end"), "{e}");
    }

    #[test]
    fn index_widths_and_length_prefixes() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 64, 65].map(ceil_log2),
            [0, 0, 1, 2, 2, 3, 6, 7]
        );
        assert_eq!(
            nal_units(&[0, 2, 9, 9, 0, 1, 7], 2, "t").unwrap(),
            [(0, 4), (4, 3)]
        );
        assert!(nal_units(&[0, 3, 9, 9], 2, "t").is_err());
        assert!(nal_units(&[0, 0, 9], 2, "t").is_err());
        assert!(nal_units(&[0], 2, "t").is_err());
        assert!(nal_units(&[0xff; 9], 4, "t").is_err());
    }
}
