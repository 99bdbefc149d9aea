//! The session XOF computed four output blocks at a time (batch scoring only).
//!
//! A session's codeword stream is `BLAKE3-keyed(K, session id)` read as an extendable output.
//! Output block `i` (64 bytes, 8 positions) is one BLAKE3 compression of the same root chaining
//! value and message block with counter `i`, so four consecutive output blocks are four
//! compressions that differ only in the counter: they are computed side by side in the four
//! 32-bit lanes of SSE2 registers (x86-64 baseline; `safe_arch` gives safe access). The
//! `blake3` crate computes these blocks one at a time on CPUs without AVX-512, which makes it
//! about 1.5× slower for this access pattern.
//!
//! This follows the BLAKE3 specification (compression function, keyed mode, root output) for
//! inputs of at most one chunk (1024 bytes; session ids are at most 128); the tests compare it
//! with the `blake3` crate for every id length. Other targets use the `blake3` crate.

/// BLAKE3 initialisation vector.
const IV: [u32; 8] = [
    0x6A09_E667,
    0xBB67_AE85,
    0x3C6E_F372,
    0xA54F_F53A,
    0x510E_527F,
    0x9B05_688C,
    0x1F83_D9AB,
    0x5BE0_CD19,
];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const KEYED_HASH: u32 = 16;
const BLOCK_LEN: usize = 64;
/// Largest input handled here: one chunk.
pub(crate) const MAX_INPUT: usize = 1024;

/// Message word order of each of the 7 rounds.
const SCHEDULE: [[usize; 16]; 7] = {
    const PERM: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
    let mut s = [[0usize; 16]; 7];
    let mut i = 0;
    while i < 16 {
        s[0][i] = i;
        i += 1;
    }
    let mut r = 1;
    while r < 7 {
        let mut i = 0;
        while i < 16 {
            s[r][i] = s[r - 1][PERM[i]];
            i += 1;
        }
        r += 1;
    }
    s
};

fn le_words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (word, b) in w.iter_mut().zip(bytes.chunks(4)) {
        let mut four = [0u8; 4];
        four[..b.len()].copy_from_slice(b);
        *word = u32::from_le_bytes(four);
    }
    w
}

/// The root output node of a keyed hash: everything the XOF blocks depend on but the counter.
#[derive(Clone, Debug)]
pub(crate) struct RootNode {
    cv: [u32; 8],
    block: [u32; 16],
    block_len: u32,
    flags: u32,
}

impl RootNode {
    /// The root node of `BLAKE3-keyed(key, input)`; `input.len() ≤ MAX_INPUT`.
    pub(crate) fn keyed(key: &[u8; 32], input: &[u8]) -> Self {
        debug_assert!(input.len() <= MAX_INPUT);
        let mut cv: [u32; 8] = le_words(key);
        let blocks = input.len().div_ceil(BLOCK_LEN).max(1);
        for b in 0..blocks - 1 {
            let flags = KEYED_HASH | if b == 0 { CHUNK_START } else { 0 };
            let block: [u32; 16] = le_words(&input[b * BLOCK_LEN..(b + 1) * BLOCK_LEN]);
            let out = compress4(&cv, &block, BLOCK_LEN as u32, flags, 0);
            cv.copy_from_slice(&out[0][..8]);
        }
        let last = &input[(blocks - 1) * BLOCK_LEN..];
        Self {
            cv,
            block: le_words(last),
            block_len: last.len() as u32,
            flags: KEYED_HASH | CHUNK_END | ROOT | if blocks == 1 { CHUNK_START } else { 0 },
        }
    }

    /// The XOF as little-endian 64-bit words, from word `start` (byte `8·start`).
    pub(crate) fn words(&self, start: u64, out: &mut [u64]) {
        let mut block = start / 8;
        let mut skip = (start % 8) as usize;
        let mut filled = 0usize;
        while filled < out.len() {
            let lanes = compress4(&self.cv, &self.block, self.block_len, self.flags, block);
            for lane in &lanes {
                for pair in lane.chunks_exact(2).skip(skip) {
                    if filled == out.len() {
                        return;
                    }
                    out[filled] = u64::from(pair[0]) | (u64::from(pair[1]) << 32);
                    filled += 1;
                }
                skip = 0;
            }
            block += 4;
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod simd {
    use safe_arch::{
        add_i32_m128i, bitor_m128i, bitxor_m128i, m128i, set_splat_i32_m128i, shl_imm_u32_m128i,
        shr_imm_u32_m128i, shuffle_ai_i16_h64all_m128i, shuffle_ai_i16_l64all_m128i,
    };

    #[derive(Clone, Copy)]
    pub(super) struct V(m128i);

    impl V {
        #[inline(always)]
        pub(super) fn splat(x: u32) -> Self {
            Self(set_splat_i32_m128i(x as i32))
        }
        #[inline(always)]
        pub(super) fn new(a: [u32; 4]) -> Self {
            Self(m128i::from(a.map(|x| x as i32)))
        }
        #[inline(always)]
        pub(super) fn to_array(self) -> [u32; 4] {
            <[i32; 4]>::from(self.0).map(|x| x as u32)
        }
        #[inline(always)]
        pub(super) fn add(self, o: Self) -> Self {
            Self(add_i32_m128i(self.0, o.0))
        }
        #[inline(always)]
        pub(super) fn xor(self, o: Self) -> Self {
            Self(bitxor_m128i(self.0, o.0))
        }
        #[inline(always)]
        pub(super) fn rot16(self) -> Self {
            Self(shuffle_ai_i16_h64all_m128i::<0b10_11_00_01>(
                shuffle_ai_i16_l64all_m128i::<0b10_11_00_01>(self.0),
            ))
        }
        #[inline(always)]
        pub(super) fn rot12(self) -> Self {
            Self(bitor_m128i(
                shr_imm_u32_m128i::<12>(self.0),
                shl_imm_u32_m128i::<20>(self.0),
            ))
        }
        #[inline(always)]
        pub(super) fn rot8(self) -> Self {
            Self(bitor_m128i(
                shr_imm_u32_m128i::<8>(self.0),
                shl_imm_u32_m128i::<24>(self.0),
            ))
        }
        #[inline(always)]
        pub(super) fn rot7(self) -> Self {
            Self(bitor_m128i(
                shr_imm_u32_m128i::<7>(self.0),
                shl_imm_u32_m128i::<25>(self.0),
            ))
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod simd {
    /// Portable four-lane vector (the compiler may vectorise it).
    #[derive(Clone, Copy)]
    pub(super) struct V([u32; 4]);

    impl V {
        pub(super) fn splat(x: u32) -> Self {
            Self([x; 4])
        }
        pub(super) fn new(a: [u32; 4]) -> Self {
            Self(a)
        }
        pub(super) fn to_array(self) -> [u32; 4] {
            self.0
        }
        pub(super) fn add(self, o: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i].wrapping_add(o.0[i])))
        }
        pub(super) fn xor(self, o: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i] ^ o.0[i]))
        }
        pub(super) fn rot16(self) -> Self {
            Self(self.0.map(|x| x.rotate_right(16)))
        }
        pub(super) fn rot12(self) -> Self {
            Self(self.0.map(|x| x.rotate_right(12)))
        }
        pub(super) fn rot8(self) -> Self {
            Self(self.0.map(|x| x.rotate_right(8)))
        }
        pub(super) fn rot7(self) -> Self {
            Self(self.0.map(|x| x.rotate_right(7)))
        }
    }
}

use simd::V;

#[inline(always)]
fn g(s: &mut [V; 16], [a, b, c, d]: [usize; 4], x: V, y: V) {
    s[a] = s[a].add(s[b]).add(x);
    s[d] = s[d].xor(s[a]).rot16();
    s[c] = s[c].add(s[d]);
    s[b] = s[b].xor(s[c]).rot12();
    s[a] = s[a].add(s[b]).add(y);
    s[d] = s[d].xor(s[a]).rot8();
    s[c] = s[c].add(s[d]);
    s[b] = s[b].xor(s[c]).rot7();
}

#[inline(always)]
fn round(s: &mut [V; 16], m: &[V; 16], k: &[usize; 16]) {
    g(s, [0, 4, 8, 12], m[k[0]], m[k[1]]);
    g(s, [1, 5, 9, 13], m[k[2]], m[k[3]]);
    g(s, [2, 6, 10, 14], m[k[4]], m[k[5]]);
    g(s, [3, 7, 11, 15], m[k[6]], m[k[7]]);
    g(s, [0, 5, 10, 15], m[k[8]], m[k[9]]);
    g(s, [1, 6, 11, 12], m[k[10]], m[k[11]]);
    g(s, [2, 7, 8, 13], m[k[12]], m[k[13]]);
    g(s, [3, 4, 9, 14], m[k[14]], m[k[15]]);
}

/// The 16-word outputs of the compressions with counters `counter .. counter + 4`.
#[inline(never)]
fn compress4(
    cv: &[u32; 8],
    block: &[u32; 16],
    block_len: u32,
    flags: u32,
    counter: u64,
) -> [[u32; 16]; 4] {
    let m: [V; 16] = std::array::from_fn(|i| V::splat(block[i]));
    let c: [u64; 4] = std::array::from_fn(|l| counter.wrapping_add(l as u64));
    let mut s: [V; 16] = std::array::from_fn(|i| match i {
        0..8 => V::splat(cv[i]),
        8..12 => V::splat(IV[i - 8]),
        12 => V::new(c.map(|x| x as u32)),
        13 => V::new(c.map(|x| (x >> 32) as u32)),
        14 => V::splat(block_len),
        _ => V::splat(flags),
    });
    for k in &SCHEDULE {
        round(&mut s, &m, k);
    }
    let mut out = [[0u32; 16]; 4];
    for i in 0..8 {
        let lo = s[i].xor(s[i + 8]).to_array();
        let hi = s[i + 8].xor(V::splat(cv[i])).to_array();
        for l in 0..4 {
            out[l][i] = lo[l];
            out[l][i + 8] = hi[l];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &[u8; 32], input: &[u8], start: u64, n: usize) -> Vec<u64> {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(input);
        let mut r = h.finalize_xof();
        r.set_position(start * 8);
        let mut buf = vec![0u8; n * 8];
        r.fill(&mut buf);
        buf.chunks_exact(8)
            .map(|b| {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_le_bytes(w)
            })
            .collect()
    }

    #[test]
    fn matches_blake3_for_every_id_length_and_offset() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in (1..=130).chain([200, 511, 512, 513, 1023, 1024]) {
            let input: Vec<u8> = (0..len)
                .map(|i| b'a' + ((i * 13 + len) % 26) as u8)
                .collect();
            let root = RootNode::keyed(&key, &input);
            for (start, n) in [(0u64, 40usize), (3, 29), (31, 1), ((1 << 29) - 5, 70)] {
                let mut out = vec![0u64; n];
                root.words(start, &mut out);
                assert_eq!(
                    out,
                    reference(&key, &input, start, n),
                    "len {len} start {start}"
                );
            }
        }
    }
}
