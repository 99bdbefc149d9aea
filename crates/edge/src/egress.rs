//! Egress rewriting of ISOBMFF files: in-band WMPaceInfo is neutralised before a viewer gets it.
//!
//! `leaktrace embed` writes a top-level `wmpi` box (TS 104 002 clause 5.5.3.4) into every
//! variant segment: `version, variant, position, ...`. Clause 5.6.5 requires in-band WMPaceInfo
//! to be overwritten on egress (recommended with 0xFF), and for good reason: the `variant` byte
//! would tell each viewer which variant (A or B) they received at every position. Chromium's MSE
//! also refuses media segments with an unknown top-level box.
//!
//! So every top-level `wmpi` box becomes a `free` box of the same size whose payload is all
//! 0xFF: sizes and offsets are unchanged (Content-Length, byte ranges and byterange sidecars
//! stay valid), any ISOBMFF reader skips it, and nothing of the WMPaceInfo remains.

use std::io::{Read, Seek, SeekFrom};

/// The box type written in place of `wmpi`.
pub const REPLACEMENT_TYPE: [u8; 4] = *b"free";

/// One box to neutralise: its offset, total size and header length (8, or 16 with largesize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// Offset of the box in the file.
    pub offset: u64,
    /// Total size of the box.
    pub size: u64,
    /// Header length (8, or 16 for a 64-bit largesize).
    pub header: u64,
}

/// Most top-level boxes scanned (a guard against pathological files).
const MAX_BOXES: usize = 100_000;

/// Finds the top-level `wmpi` boxes of an ISOBMFF stream. Stops quietly at the first malformed
/// or truncated box header (nothing after it is patched).
///
/// # Errors
/// I/O errors of `r`.
pub fn find_wmpi<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Vec<Patch>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for _ in 0..MAX_BOXES {
        if len.saturating_sub(offset) < 8 {
            break;
        }
        r.seek(SeekFrom::Start(offset))?;
        let mut head = [0u8; 8];
        r.read_exact(&mut head)?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (size, header) = match size32 {
            0 => (len - offset, 8),
            1 => {
                if len - offset < 16 {
                    break;
                }
                let mut large = [0u8; 8];
                r.read_exact(&mut large)?;
                (u64::from_be_bytes(large), 16)
            }
            s => (u64::from(s), 8),
        };
        if size < header || size > len - offset {
            break;
        }
        if head[4..8] == *b"wmpi" {
            out.push(Patch {
                offset,
                size,
                header,
            });
        }
        offset += size;
    }
    Ok(out)
}

/// Applies `patches` to `chunk`, which holds the file's bytes from offset `start`.
pub fn apply(chunk: &mut [u8], start: u64, patches: &[Patch]) {
    let end = start + chunk.len() as u64;
    let mut fill = |from: u64, to: u64, with: &dyn Fn(u64) -> u8| {
        let (lo, hi) = (from.max(start), to.min(end));
        for pos in lo..hi {
            if let Some(b) = usize::try_from(pos - start)
                .ok()
                .and_then(|i| chunk.get_mut(i))
            {
                *b = with(pos);
            }
        }
    };
    for p in patches {
        let type_at = p.offset + 4;
        fill(type_at, type_at + 4, &|pos| {
            REPLACEMENT_TYPE[usize::try_from(pos - type_at).unwrap_or(0).min(3)]
        });
        fill(p.offset + p.header, p.offset + p.size, &|_| 0xFF);
    }
}

/// Neutralises every top-level `wmpi` box of an in-memory ISOBMFF file; returns how many.
pub fn neutralize_wmpi(bytes: &mut [u8]) -> usize {
    let len = bytes.len() as u64;
    let patches = find_wmpi(&mut std::io::Cursor::new(&*bytes), len).unwrap_or_default();
    apply(bytes, 0, &patches);
    patches.len()
}

/// Whether files with this name are ISOBMFF and get the rewrite.
pub fn is_isobmff(file: &str) -> bool {
    matches!(
        file.rsplit_once('.').map(|(_, e)| e),
        Some("m4s" | "mp4" | "m4v" | "m4a" | "cmfv" | "cmfa")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaktrace_core::wmpaceinfo::PaceInfo;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn wmpi_becomes_free_of_the_same_size() {
        let wmpi = PaceInfo::new(1, Some(7), true, true).to_wmpi_box().unwrap();
        let mut file = bx(b"styp", b"cmfs");
        file.extend_from_slice(&wmpi);
        file.extend(bx(b"moof", &[1; 20]));
        file.extend(bx(b"mdat", &[2; 50]));
        let before = file.clone();
        assert_eq!(neutralize_wmpi(&mut file), 1);
        assert_eq!(file.len(), before.len());
        let at = 12;
        assert_eq!(&file[at + 4..at + 8], b"free");
        assert!(file[at + 8..at + 13].iter().all(|&b| b == 0xFF));
        assert_eq!(file[..at], before[..at]);
        assert_eq!(file[at + 13..], before[at + 13..]);
        // A and B differ only in the variant byte of wmpi: after the rewrite they are equal.
        let mut other = before.clone();
        other[at + 9] ^= 1;
        neutralize_wmpi(&mut other);
        assert_eq!(other, file);
    }

    #[test]
    fn chunked_application_matches_whole_file() {
        let mut file = bx(b"styp", b"cmfs");
        file.extend(bx(b"wmpi", &[1, 2, 3, 4, 5]));
        file.extend(bx(b"mdat", &[9; 40]));
        file.extend(bx(b"wmpi", &[6; 5]));
        let mut whole = file.clone();
        assert_eq!(neutralize_wmpi(&mut whole), 2);
        let patches = find_wmpi(&mut std::io::Cursor::new(&file), file.len() as u64).unwrap();
        let mut pieced = Vec::new();
        for (i, c) in file.chunks(3).enumerate() {
            let mut c = c.to_vec();
            apply(&mut c, (i * 3) as u64, &patches);
            pieced.extend(c);
        }
        assert_eq!(pieced, whole);
    }

    #[test]
    fn malformed_input_is_left_alone() {
        for bad in [
            vec![0u8; 3],
            vec![0, 0, 0, 4, b'w', b'm', b'p', b'i'],
            vec![0xFF; 40],
        ] {
            let mut b = bad.clone();
            assert_eq!(neutralize_wmpi(&mut b), 0);
            assert_eq!(b, bad);
        }
    }
}
