//! The marking kernel's output is fixed: the mask amplitudes and the marked A and B planes of a
//! set of frames (sizes from 64×36 to 1920×1080 including odd ones, 8-, 9- and 10-bit samples,
//! packed and strided planes, several positions and strengths) hash to recorded values. The
//! forensic figures (detection rates, VMAF drops) were measured on exactly these bytes, so any
//! change to them — even an off-by-one in rounding — is a failure, not a tolerance question.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report

use leaktrace_core::{DerivedKey, KeyVersion, MasterKey, Position, TitleId};
use leaktrace_embed::mark::mark_pair;
use leaktrace_embed::{KernelSample, LumaPlane, Mask, MaskParams, RenderedPattern, Scratch};

/// 64-bit FNV-1a over a byte stream.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: impl IntoIterator<Item = u8>) {
        for b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn key() -> DerivedKey {
    MasterKey::from_bytes([0x5a; 32], KeyVersion::new(1))
        .pattern_key(&TitleId::new("golden").unwrap())
}

/// A frame with flat areas (black, white, mid-grey), smooth gradients and hashed texture of
/// several amplitudes, so the mask takes many values and the kernel saturates at both ends.
/// `max` is the largest sample value (255, 511 or 1023); `stride` ≥ `w`, padding filled with
/// a value the kernel must not read into its output.
fn frame(w: usize, h: usize, stride: usize, max: u32) -> Vec<u32> {
    let mut out = vec![max / 2 + 7; stride * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let hash = (i.wrapping_mul(2_654_435_761) >> 11) as u32;
            let region = (x * 5 / w.max(1)) + 5 * (y * 3 / h.max(1));
            let v = match region % 6 {
                0 => 0,
                1 => max,
                2 => max / 2,
                3 => (x as u32 * 3 + y as u32 * 2) % (max + 1),
                4 => (max / 4) + hash % (max / 2),
                _ => hash % (max + 1),
            };
            out[y * stride + x] = v.min(max);
        }
    }
    out
}

fn params() -> [MaskParams; 3] {
    [
        MaskParams::default(),
        MaskParams::default().scaled(0.1),
        MaskParams::default().scaled(4.0),
    ]
}

/// One case: width, height, stride, bit depth, position, index into [`params`].
type Case = (usize, usize, usize, u8, u32, usize);

/// Hash of the mask amplitudes and the A and B planes of one case.
fn case<S: KernelSample + Default>(data: &[S], case: Case, to_bytes: fn(S) -> [u8; 2]) -> u64 {
    let (w, h, stride, depth, position, p) = case;
    let luma = LumaPlane::new(data, w, h, stride, depth).unwrap();
    let mask = Mask::compute(&luma, &params()[p]);
    let pattern = RenderedPattern::new(&key(), Position::new(position), w, h);
    let (mut a, mut b) = (vec![S::default(); w * h], vec![S::default(); w * h]);
    mark_pair(
        &luma,
        &mask,
        &pattern,
        &mut Scratch::default(),
        &mut a,
        &mut b,
    )
    .unwrap();
    let mut hash = Fnv::new();
    hash.bytes(mask.amplitudes_q4().iter().copied());
    hash.bytes(a.iter().flat_map(|&v| to_bytes(v)));
    hash.bytes(b.iter().flat_map(|&v| to_bytes(v)));
    hash.0
}

/// The cases: (width, height, stride, bit depth, position, index into `params`).
const CASES: &[Case] = &[
    (1920, 1080, 1920, 8, 3, 0),
    (1920, 1080, 1920, 8, 0, 2),
    (1920, 1080, 1920, 10, 5, 0),
    (1280, 720, 1280, 8, 1, 0),
    (1280, 720, 1344, 8, 9, 1),
    (1280, 720, 1280, 10, 2, 2),
    (640, 360, 640, 8, 7, 0),
    (640, 360, 640, 9, 7, 0),
    (854, 480, 854, 8, 4, 2),
    (854, 480, 864, 10, 4, 1),
    (1281, 721, 1281, 8, 6, 0),
    (1921, 1079, 1937, 8, 2, 2),
    (1283, 37, 1283, 10, 1, 2),
    (65, 37, 65, 8, 11, 2),
    (64, 36, 70, 8, 0, 0),
    (99, 41, 99, 10, 13, 2),
    (77, 53, 80, 9, 8, 1),
];

fn hashes() -> Vec<u64> {
    CASES
        .iter()
        .map(|&c| {
            let (w, h, stride, depth, ..) = c;
            let max = (1u32 << depth) - 1;
            let data = frame(w, h, stride, max);
            if depth == 8 {
                let data: Vec<u8> = data.iter().map(|&v| v as u8).collect();
                case(&data, c, |v| [v, 0])
            } else {
                let data: Vec<u16> = data.iter().map(|&v| v as u16).collect();
                case(&data, c, u16::to_le_bytes)
            }
        })
        .collect()
}

/// Recorded from the kernel whose output the forensic figures were measured on.
const GOLDEN: &[u64] = &[
    0x3585_ca93_5028_c53b,
    0x21bb_5514_2f4f_9a96,
    0x8d40_37b3_35ca_dd9c,
    0x6e4c_31f5_f5e7_5080,
    0x3717_8fde_67fe_c187,
    0x368a_41c2_e592_1287,
    0x1a3f_79d4_d913_09c1,
    0x93ba_5e5b_cf9f_375e,
    0x8bf9_a182_81ea_5a90,
    0x403a_e39d_18de_9e74,
    0x05c3_730d_9ae1_96d0,
    0xb321_e154_ce78_fa5e,
    0x62f0_598b_07ba_1659,
    0x2098_2a5a_1297_0296,
    0x39dc_47e5_636f_8b42,
    0xa08c_2310_6518_3c4d,
    0xccb4_a760_cfe5_74c3,
];

#[test]
fn kernel_output_is_bit_identical_to_the_recorded_one() {
    let got = hashes();
    for (i, (&(w, h, stride, depth, position, p), hash)) in CASES.iter().zip(&got).enumerate() {
        eprintln!(
            "case {i}: {w}x{h} stride {stride} {depth}-bit position {position} params {p}: {hash:#018x}"
        );
    }
    assert_eq!(got.len(), GOLDEN.len(), "one recorded hash per case");
    for (i, (g, want)) in got.iter().zip(GOLDEN).enumerate() {
        assert_eq!(g, want, "case {i} {:?} changed", CASES[i]);
    }
}

#[test]
fn frames_below_the_minimum_size_are_refused() {
    // The kernel is defined from 64×36 up; smaller planes never reach it.
    let data = vec![128u8; 33 * 17];
    assert!(LumaPlane::new(&data, 33, 17, 33, 8).is_err());
}
