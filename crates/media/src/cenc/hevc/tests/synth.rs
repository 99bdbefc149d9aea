//! A generator of random but valid HEVC parameter sets and slice segment headers, for the
//! syntax that x265 never writes (reference picture sets in the SPS and predicted from one
//! another, long-term pictures, list modification, tiles, dependent slice segments, extra
//! header bits, output flags, chroma QP offset lists, deblocking overrides, header
//! extensions, separate colour planes, …). Slice data is random bytes. The streams are read
//! by FFmpeg's syntax reader and by ours, and each generated header knows where it ends.

/// xorshift64*.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Writes RBSP bits; [`W::nal`] escapes them into a NAL unit.
#[derive(Default)]
pub(super) struct W {
    buf: Vec<u8>,
    /// Bits written.
    pub(super) n: usize,
}

impl W {
    /// A NAL unit of `kind` (layer `layer`, temporal id 0), header written.
    pub(super) fn new(kind: u8, layer: u8) -> Self {
        let mut w = W::default();
        w.u(1, 0);
        w.u(6, u64::from(kind));
        w.u(6, u64::from(layer));
        w.u(3, 1);
        w
    }

    pub(super) fn bit(&mut self, b: bool) {
        if self.n.is_multiple_of(8) {
            self.buf.push(0);
        }
        if b {
            let last = self.buf.len() - 1;
            self.buf[last] |= 0x80 >> (self.n % 8);
        }
        self.n += 1;
    }

    pub(super) fn u(&mut self, bits: u32, v: u64) {
        for i in (0..bits).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    pub(super) fn flag(&mut self, b: bool) -> bool {
        self.bit(b);
        b
    }

    pub(super) fn ue(&mut self, v: u64) {
        let x = v + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }

    pub(super) fn se(&mut self, v: i64) {
        self.ue(if v > 0 {
            2 * v as u64 - 1
        } else {
            2 * v.unsigned_abs()
        });
    }

    /// `rbsp_trailing_bits()` or `byte_alignment()`: a one, then zeros to the byte.
    pub(super) fn align(&mut self) {
        self.bit(true);
        while !self.n.is_multiple_of(8) {
            self.bit(false);
        }
    }

    /// The escaped NAL unit (emulation-prevention bytes inserted).
    pub(super) fn nal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 8);
        let mut zeros = 0;
        for &b in &self.buf {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }
}

/// A reference picture set: (POC delta, used by the current picture) of its negative and of
/// its positive pictures.
type Set = (Vec<(i64, bool)>, Vec<(i64, bool)>);

/// The generated SPS: what the generator needs to write valid PPSs and slices for it.
#[derive(Clone)]
pub(super) struct GSps {
    pub(super) id: u64,
    chroma_array_type: u64,
    separate: bool,
    w_ctbs: u64,
    h_ctbs: u64,
    log2_ctb: u64,
    log2_diff_cb: u64,
    log2_poc: u32,
    /// The reference picture sets: (POC delta, used) of the negative and positive pictures.
    sets: Vec<Set>,
    lt: Option<Vec<bool>>,
    tmvp: bool,
    sao: bool,
}

/// The generated PPS.
#[derive(Clone)]
pub(super) struct GPps {
    pub(super) id: u64,
    /// Index of its SPS in the generator's list.
    pub(super) sps: usize,
    dependent: bool,
    output_flag: bool,
    extra_bits: u32,
    cabac_init: bool,
    l0: u64,
    l1: u64,
    chroma_qp_offsets: bool,
    wp: bool,
    wbp: bool,
    tiles: Option<(u64, u64)>,
    wpp: bool,
    lf_across_slices: bool,
    dbk_override: bool,
    dbk_disabled: bool,
    lists_mod: bool,
    ext: bool,
    cqp_list: bool,
}

/// The 88 bits of a profile (Main, progressive, frame only) and its level.
fn profile(w: &mut W, level: bool) {
    w.u(2, 0); // profile_space
    w.u(1, 0); // tier
    w.u(5, 1); // profile_idc
    w.u(32, 1 << 30); // compatibility flag 1
    w.u(4, 0b1001); // progressive, interlaced, non_packed, frame_only
    w.u(43, 0);
    w.u(1, 0); // inbld
    if level {
        w.u(8, 93);
    }
}

fn profile_tier_level(w: &mut W, r: &mut Rng, max_sub_layers_minus1: u32) {
    profile(w, true);
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((w.flag(r.chance(50)), w.flag(r.chance(50))));
    }
    if max_sub_layers_minus1 > 0 {
        w.u(2 * (8 - max_sub_layers_minus1), 0);
    }
    for (p, l) in present {
        if p {
            profile(w, false);
        }
        if l {
            w.u(8, 90);
        }
    }
}

pub(super) fn vps(r: &mut Rng, max_sub_layers_minus1: u32) -> Vec<u8> {
    let mut w = W::new(32, 0);
    w.u(4, 0);
    w.u(2, 3); // base layer internal, available
    w.u(6, 0); // vps_max_layers_minus1
    w.u(3, u64::from(max_sub_layers_minus1));
    w.u(1, 1); // temporal id nesting
    w.u(16, 0xffff);
    profile_tier_level(&mut w, r, max_sub_layers_minus1);
    w.flag(true); // sub_layer_ordering_info_present
    for _ in 0..=max_sub_layers_minus1 {
        w.ue(15);
        w.ue(0);
        w.ue(0);
    }
    w.u(6, 0); // vps_max_layer_id
    w.ue(0); // vps_num_layer_sets_minus1
    w.flag(false); // timing
    w.flag(false); // extension
    w.align();
    w.nal()
}

fn scaling_list_data(w: &mut W, r: &mut Rng) {
    for size_id in 0..4u64 {
        let step = if size_id == 3 { 3 } else { 1 };
        for matrix in (0..6u64).step_by(step) {
            if !w.flag(r.chance(50)) {
                let max = if size_id == 3 { matrix / 3 } else { matrix };
                w.ue(r.below(max + 1));
            } else {
                let coefs = 64.min(1u64 << (4 + (size_id << 1)));
                if size_id > 1 {
                    w.se(r.range(-7, 20));
                }
                for _ in 0..coefs {
                    w.se(r.range(-3, 3));
                }
            }
        }
    }
}

fn hrd(w: &mut W, r: &mut Rng, max_sub_layers_minus1: u32) {
    let nal = w.flag(r.chance(60));
    let vcl = w.flag(r.chance(40));
    let mut sub_pic = false;
    if nal || vcl {
        sub_pic = w.flag(r.chance(40));
        if sub_pic {
            w.u(8, r.below(256));
            w.u(5, r.below(32));
            w.flag(r.chance(50));
            w.u(5, r.below(32));
        }
        w.u(4, r.below(16));
        w.u(4, r.below(16));
        if sub_pic {
            w.u(4, r.below(16));
        }
        w.u(15, r.below(1 << 15));
    }
    for _ in 0..=max_sub_layers_minus1 {
        let general = w.flag(r.chance(40));
        let within = general || w.flag(r.chance(50));
        let low_delay = if within {
            w.ue(r.below(2048));
            false
        } else {
            w.flag(r.chance(50))
        };
        let cpb = if low_delay {
            0
        } else {
            let c = r.below(4);
            w.ue(c);
            c
        };
        for _ in 0..u32::from(nal) + u32::from(vcl) {
            for _ in 0..=cpb {
                w.ue(r.below(100_000));
                w.ue(r.below(100_000));
                if sub_pic {
                    w.ue(r.below(1000));
                    w.ue(r.below(1000));
                }
                w.flag(r.chance(50));
            }
        }
    }
}

fn vui(w: &mut W, r: &mut Rng, max_sub_layers_minus1: u32) {
    if w.flag(r.chance(50)) {
        let idc = if r.chance(50) { 255 } else { r.below(17) };
        w.u(8, idc);
        if idc == 255 {
            w.u(16, r.below(1000) + 1);
            w.u(16, r.below(1000) + 1);
        }
    }
    if w.flag(r.chance(30)) {
        w.flag(r.chance(50));
    }
    if w.flag(r.chance(50)) {
        w.u(3, r.below(6));
        w.flag(r.chance(50));
        if w.flag(r.chance(50)) {
            w.u(24, r.below(1 << 24));
        }
    }
    if w.flag(r.chance(40)) {
        w.ue(r.below(6));
        w.ue(r.below(6));
    }
    w.flag(false); // neutral_chroma_indication
    w.flag(false); // field_seq
    w.flag(r.chance(30)); // frame_field_info_present
    if w.flag(r.chance(30)) {
        for _ in 0..4 {
            w.ue(r.below(8));
        }
    }
    if w.flag(r.chance(60)) {
        w.u(32, r.below(1000) + 1);
        w.u(32, r.below(100_000) + 1);
        if w.flag(r.chance(40)) {
            w.ue(r.below(100));
        }
        if w.flag(r.chance(60)) {
            hrd(w, r, max_sub_layers_minus1);
        }
    }
    if w.flag(r.chance(50)) {
        w.u(3, r.below(8));
        w.ue(r.below(100));
        w.ue(r.below(17));
        w.ue(r.below(17));
        w.ue(r.below(17));
        w.ue(r.below(17));
    }
}

/// A reference picture set (7.3.7) at `idx` of `num_sets` (`idx == num_sets` in a slice
/// header), predicted from `sets` or not; returns its pictures, derived independently of the
/// reader (as the sorted pictures, which 7.4.8's order is for sorted reference sets).
fn rps(w: &mut W, r: &mut Rng, idx: usize, num_sets: usize, sets: &[Set]) -> Set {
    if idx != 0 && w.flag(r.chance(50)) {
        let delta_idx = if idx == num_sets {
            let d = r.below(idx as u64);
            w.ue(d);
            d as usize + 1
        } else {
            1
        };
        let (neg, pos) = &sets[idx - delta_idx];
        let sign = w.flag(r.chance(50));
        let abs = r.range(1, 6);
        w.ue(abs as u64 - 1);
        let delta = if sign { -abs } else { abs };
        let mut picks = Vec::new();
        let mut count = 0;
        for poc in neg.iter().chain(pos).map(|p| p.0).chain([0]) {
            // At most 15 pictures: FFmpeg refuses more, and so does the reader.
            let room = count < 15;
            let used = w.flag(room && r.chance(50));
            let use_delta = used || w.flag(room && r.chance(50));
            if use_delta {
                count += 1;
                if poc + delta != 0 {
                    picks.push((poc + delta, used));
                }
            }
        }
        let mut n: Vec<_> = picks.iter().copied().filter(|p| p.0 < 0).collect();
        let mut p: Vec<_> = picks.iter().copied().filter(|p| p.0 > 0).collect();
        n.sort_by_key(|x| -x.0);
        p.sort_by_key(|x| x.0);
        return (n, p);
    }
    let big = r.chance(10);
    let n_neg = if big { r.below(16) } else { r.below(5) };
    let n_pos = if big { r.below(16 - n_neg) } else { r.below(4) };
    w.ue(n_neg);
    w.ue(n_pos);
    let (mut neg, mut pos) = (Vec::new(), Vec::new());
    let mut poc = 0;
    for _ in 0..n_neg {
        let d = r.range(1, 4);
        w.ue(d as u64 - 1);
        poc -= d;
        neg.push((poc, w.flag(r.chance(60))));
    }
    poc = 0;
    for _ in 0..n_pos {
        let d = r.range(1, 4);
        w.ue(d as u64 - 1);
        poc += d;
        pos.push((poc, w.flag(r.chance(60))));
    }
    (neg, pos)
}

/// An SPS with id `id`; `scc` sets `sps_scc_extension_flag` (and writes no extension after).
pub(super) fn sps(r: &mut Rng, id: u64, max_sub_layers_minus1: u32, scc: bool) -> (Vec<u8>, GSps) {
    let mut w = W::new(33, 0);
    w.u(4, 0);
    w.u(3, u64::from(max_sub_layers_minus1));
    w.u(1, 1);
    profile_tier_level(&mut w, r, max_sub_layers_minus1);
    w.ue(id);
    let chroma_format = r.below(4);
    w.ue(chroma_format);
    let separate = chroma_format == 3 && w.flag(r.chance(40));
    let log2_min_cb = r.range(3, 5) as u64;
    let log2_ctb = (log2_min_cb.max(4) + r.below(3)).min(6);
    let min_cb = 1u64 << log2_min_cb;
    let width = min_cb * (r.below(120) + 2);
    let height = min_cb * (r.below(160) + 2);
    w.ue(width);
    w.ue(height);
    w.flag(false); // conformance window
    let bit_depth = r.below(3) * 2 + 8;
    w.ue(bit_depth - 8);
    w.ue(bit_depth - 8);
    let log2_poc = r.range(4, 16) as u32;
    w.ue(u64::from(log2_poc) - 4);
    let all = w.flag(r.chance(50));
    for _ in if all { 0 } else { max_sub_layers_minus1 }..=max_sub_layers_minus1 {
        w.ue(15);
        w.ue(r.below(4));
        w.ue(r.below(4));
    }
    w.ue(log2_min_cb - 3);
    w.ue(log2_ctb - log2_min_cb);
    w.ue(0); // log2_min_luma_transform_block_size_minus2
    w.ue(r.below(log2_ctb.min(5) - 1)); // log2_diff_max_min_luma_transform_block_size
    w.ue(r.below(log2_ctb - 1)); // max_transform_hierarchy_depth_inter
    w.ue(r.below(log2_ctb - 1)); // max_transform_hierarchy_depth_intra
    if w.flag(r.chance(30)) && w.flag(r.chance(60)) {
        scaling_list_data(&mut w, r);
    }
    w.flag(r.chance(50)); // amp
    let sao = w.flag(r.chance(60));
    if w.flag(r.chance(20)) {
        w.u(4, r.below(bit_depth));
        w.u(4, r.below(bit_depth));
        w.ue(log2_min_cb.min(5) - 3);
        w.ue(0);
        w.flag(r.chance(50));
    }
    let num_sets = if r.chance(20) {
        0
    } else {
        r.below(12) as usize
    };
    let num_sets = if r.chance(5) { 64 } else { num_sets };
    w.ue(num_sets as u64);
    let mut sets = Vec::new();
    for i in 0..num_sets {
        let s = rps(&mut w, r, i, num_sets, &sets);
        sets.push(s);
    }
    let lt = if w.flag(r.chance(40)) {
        let n = if r.chance(10) { 32 } else { r.below(5) };
        w.ue(n);
        let mut v = Vec::new();
        for _ in 0..n {
            w.u(log2_poc, r.below(1 << log2_poc));
            v.push(w.flag(r.chance(50)));
        }
        Some(v)
    } else {
        None
    };
    let tmvp = w.flag(r.chance(70));
    w.flag(r.chance(50)); // strong intra smoothing
    if w.flag(r.chance(60)) {
        vui(&mut w, r, max_sub_layers_minus1);
    }
    if w.flag(scc || r.chance(30)) {
        let range = w.flag(r.chance(50));
        w.u(2, 0); // multilayer, 3d
        w.flag(scc);
        w.u(4, 0);
        if range && !scc {
            for _ in 0..9 {
                w.flag(r.chance(30));
            }
        }
    }
    w.align();
    let s = GSps {
        id,
        chroma_array_type: if separate { 0 } else { chroma_format },
        separate,
        w_ctbs: width.div_ceil(1 << log2_ctb),
        h_ctbs: height.div_ceil(1 << log2_ctb),
        log2_ctb,
        log2_diff_cb: log2_ctb - log2_min_cb,
        log2_poc,
        sets,
        lt,
        tmvp,
        sao,
    };
    (w.nal(), s)
}

/// A PPS with id `id` for the SPS `s` (`sps_index` in the generator's list); `scc` sets
/// `pps_scc_extension_flag`.
pub(super) fn pps(r: &mut Rng, id: u64, s: &GSps, sps_index: usize, scc: bool) -> (Vec<u8>, GPps) {
    let mut w = W::new(34, 0);
    w.ue(id);
    w.ue(s.id);
    let mut p = GPps {
        id,
        sps: sps_index,
        dependent: w.flag(r.chance(40)),
        output_flag: w.flag(r.chance(30)),
        extra_bits: {
            let e = if r.chance(30) { r.below(8) } else { 0 };
            w.u(3, e);
            e as u32
        },
        cabac_init: {
            w.flag(r.chance(50)); // sign data hiding
            w.flag(r.chance(50))
        },
        l0: {
            let l = r.below(15);
            w.ue(l);
            l
        },
        l1: {
            let l = r.below(15);
            w.ue(l);
            l
        },
        chroma_qp_offsets: false,
        wp: false,
        wbp: false,
        tiles: None,
        wpp: false,
        lf_across_slices: false,
        dbk_override: false,
        dbk_disabled: false,
        lists_mod: false,
        ext: false,
        cqp_list: false,
    };
    w.se(r.range(-3, 3)); // init_qp_minus26
    w.flag(r.chance(30)); // constrained intra
    let tskip = w.flag(r.chance(40));
    if w.flag(r.chance(50)) {
        w.ue(r.below(s.log2_diff_cb + 1));
    }
    w.se(r.range(-12, 12));
    w.se(r.range(-12, 12));
    p.chroma_qp_offsets = w.flag(r.chance(40));
    p.wp = w.flag(r.chance(60));
    p.wbp = w.flag(r.chance(60));
    w.flag(r.chance(20)); // transquant bypass
    let tiles = w.flag(r.chance(40));
    p.wpp = w.flag(r.chance(50));
    if tiles {
        let cols = r.below(s.w_ctbs.min(6)) + 1;
        let rows = r.below(s.h_ctbs.min(6)) + 1;
        w.ue(cols - 1);
        w.ue(rows - 1);
        if !w.flag(r.chance(50)) {
            for _ in 0..cols - 1 + rows - 1 {
                w.ue(0);
            }
        }
        w.flag(r.chance(50));
        p.tiles = Some((cols, rows));
    }
    p.lf_across_slices = w.flag(r.chance(60));
    if w.flag(r.chance(60)) {
        p.dbk_override = w.flag(r.chance(60));
        p.dbk_disabled = w.flag(r.chance(40));
        if !p.dbk_disabled {
            w.se(r.range(-6, 6));
            w.se(r.range(-6, 6));
        }
    }
    if w.flag(r.chance(20)) {
        scaling_list_data(&mut w, r);
    }
    p.lists_mod = w.flag(r.chance(60));
    w.ue(r.below(s.log2_ctb - 1)); // log2_parallel_merge_level_minus2
    p.ext = w.flag(r.chance(40));
    if w.flag(scc || r.chance(40)) {
        let range = w.flag(r.chance(60));
        w.u(2, 0);
        w.flag(scc);
        w.u(4, 0);
        if range && !scc {
            if tskip {
                w.ue(r.below(4));
            }
            w.flag(r.chance(50));
            p.cqp_list = w.flag(r.chance(60));
            if p.cqp_list {
                w.ue(r.below(s.log2_diff_cb + 1));
                let len = r.below(6);
                w.ue(len);
                for _ in 0..=len {
                    w.se(r.range(-12, 12));
                    w.se(r.range(-12, 12));
                }
            }
            w.ue(0); // log2_sao_offset_scale_luma
            w.ue(0);
        }
    }
    w.align();
    (w.nal(), p)
}

fn pred_weight_table(w: &mut W, r: &mut Rng, chroma: bool, lists: &[u64]) {
    let luma_denom = r.range(0, 7);
    w.ue(luma_denom as u64);
    if chroma {
        w.se(r.range(0, 7) - luma_denom);
    }
    for &refs in lists {
        let luma: Vec<bool> = (0..=refs).map(|_| w.flag(r.chance(50))).collect();
        let chroma_flags: Vec<bool> = if chroma {
            (0..=refs).map(|_| w.flag(r.chance(50))).collect()
        } else {
            vec![false; refs as usize + 1]
        };
        for i in 0..=refs as usize {
            if luma[i] {
                w.se(r.range(-20, 20));
                w.se(r.range(-20, 20));
            }
            if chroma_flags[i] {
                for _ in 0..4 {
                    w.se(r.range(-20, 20));
                }
            }
        }
    }
}

/// A picture's slice segment: NAL type `kind`, first in the picture or not. Returns the NAL
/// unit and where its header ends (bits, NAL header included).
pub(super) fn slice(r: &mut Rng, kind: u8, first: bool, s: &GSps, p: &GPps) -> (Vec<u8>, usize) {
    let mut w = W::new(kind, 0);
    w.flag(first);
    if (16..=23).contains(&kind) {
        w.flag(r.chance(50));
    }
    w.ue(p.id);
    let pic_size = s.w_ctbs * s.h_ctbs;
    let mut dependent = false;
    if !first {
        if p.dependent {
            dependent = w.flag(r.chance(50));
        }
        w.u(super::ceil_log2(pic_size), r.below(pic_size));
    }
    if !dependent {
        for _ in 0..p.extra_bits {
            w.flag(r.chance(50));
        }
        let slice_type = if (16..=23).contains(&kind) {
            2
        } else {
            r.below(3)
        };
        w.ue(slice_type);
        let (is_b, is_p) = (slice_type == 0, slice_type == 1);
        if p.output_flag {
            w.flag(r.chance(50));
        }
        if s.separate {
            w.u(2, r.below(3));
        }
        let mut total = 0;
        let mut tmvp = false;
        if kind != 19 && kind != 20 {
            w.u(s.log2_poc, r.below(1 << s.log2_poc));
            let num_sets = s.sets.len();
            let explicit;
            // short_term_ref_pic_set_sps_flag (0 when the SPS has no sets).
            let set = if !w.flag(num_sets > 0 && r.chance(50)) {
                explicit = rps(&mut w, r, num_sets, num_sets, &s.sets);
                &explicit
            } else {
                let idx = r.below(num_sets as u64);
                w.u(super::ceil_log2(num_sets as u64), idx);
                &s.sets[idx as usize]
            };
            total = set.0.iter().chain(&set.1).filter(|x| x.1).count() as u64;
            if let Some(lt) = &s.lt {
                let room = 15 - (set.0.len() + set.1.len()) as u64;
                let n_sps = if lt.is_empty() {
                    0
                } else {
                    let n = r.below(room.min(lt.len() as u64) + 1);
                    w.ue(n);
                    n
                };
                let n_pics = r.below((room - n_sps).min(4) + 1);
                w.ue(n_pics);
                for i in 0..n_sps + n_pics {
                    if i < n_sps {
                        let idx = r.below(lt.len() as u64);
                        w.u(super::ceil_log2(lt.len() as u64), idx);
                        total += u64::from(lt[idx as usize]);
                    } else {
                        w.u(s.log2_poc, r.below(1 << s.log2_poc));
                        total += u64::from(w.flag(r.chance(50)));
                    }
                    if w.flag(r.chance(30)) {
                        w.ue(r.below(10));
                    }
                }
            }
            if s.tmvp {
                tmvp = w.flag(r.chance(60));
            }
        }
        let (mut sao_l, mut sao_c) = (false, false);
        if s.sao {
            sao_l = w.flag(r.chance(50));
            if s.chroma_array_type != 0 {
                sao_c = w.flag(r.chance(50));
            }
        }
        if is_p || is_b {
            let (mut l0, mut l1) = (p.l0, p.l1);
            if w.flag(r.chance(50)) {
                l0 = r.below(15);
                w.ue(l0);
                if is_b {
                    l1 = r.below(15);
                    w.ue(l1);
                }
            }
            if p.lists_mod && total > 1 {
                let width = super::ceil_log2(total);
                for (list, refs) in [(true, l0), (is_b, l1)] {
                    if list && w.flag(r.chance(60)) {
                        for _ in 0..=refs {
                            w.u(width, r.below(total));
                        }
                    }
                }
            }
            if is_b {
                w.flag(r.chance(50));
            }
            if p.cabac_init {
                w.flag(r.chance(50));
            }
            if tmvp {
                let from_l0 = !is_b || w.flag(r.chance(50));
                let refs = if from_l0 { l0 } else { l1 };
                if refs > 0 {
                    w.ue(r.below(refs + 1));
                }
            }
            if (p.wp && is_p) || (p.wbp && is_b) {
                let lists = if is_b { vec![l0, l1] } else { vec![l0] };
                pred_weight_table(&mut w, r, s.chroma_array_type != 0, &lists);
            }
            w.ue(r.below(5));
        }
        w.se(r.range(-3, 3)); // slice_qp_delta
        if p.chroma_qp_offsets {
            w.se(r.range(-12, 12));
            w.se(r.range(-12, 12));
        }
        if p.cqp_list {
            w.flag(r.chance(50));
        }
        let mut disabled = p.dbk_disabled;
        if p.dbk_override && w.flag(r.chance(50)) {
            disabled = w.flag(r.chance(50));
            if !disabled {
                w.se(r.range(-6, 6));
                w.se(r.range(-6, 6));
            }
        }
        if p.lf_across_slices && (sao_l || sao_c || !disabled) {
            w.flag(r.chance(50));
        }
    }
    let mut min_data = 1;
    if p.tiles.is_some() || p.wpp {
        let (cols, rows) = p.tiles.unwrap_or((1, 1));
        let limit = match (p.tiles.is_some(), p.wpp) {
            (true, false) => cols * rows - 1,
            (false, _) => s.h_ctbs - 1,
            (true, true) => cols * s.h_ctbs - 1,
        };
        let n = r.below(limit.min(12) + 1);
        w.ue(n);
        if n > 0 {
            let len = r.below(32) + 1;
            w.ue(len - 1);
            for _ in 0..n {
                // Small offsets: many zero bytes, hence emulation prevention in the header.
                w.u(len as u32, r.below(4));
            }
        }
        min_data = n as usize + 1;
    }
    if p.ext {
        let len = if r.chance(5) { 256 } else { r.below(12) };
        w.ue(len);
        for _ in 0..len {
            w.u(8, r.below(4));
        }
    }
    w.align();
    let end = w.n;
    for _ in 0..min_data + r.below(40) as usize {
        w.u(8, r.below(256));
    }
    w.u(8, 0x80); // never a trailing zero byte
    (w.nal(), end)
}
