//! HEVC (H.265) just deep enough for subsample encryption: the `hvcC` record (ISO/IEC 14496-15
//! 8.3.3), the fields of the sequence and picture parameter sets that the slice segment header
//! depends on (ITU-T H.265 7.3.2.2, 7.3.2.3), and the exact end of each slice segment header
//! (7.3.6.1, with the short-term reference picture sets of 7.3.7, `pred_weight_table` of
//! 7.3.6.3, `ref_pic_lists_modification` of 7.3.6.2, the entry points, the header extension and
//! `byte_alignment()`), so the NAL header and the slice segment header stay clear as
//! ISO/IEC 23001-7 asks.
//!
//! Parameter sets come from the `hvcC` arrays and from the samples themselves (`hev1`, or
//! parameter sets repeated in-band): an SPS or PPS read in a sample replaces the one of the same
//! id for the slices after it. Parameter sets and every other non-VCL NAL unit (AUD, SEI, end of
//! sequence, filler, …) stay clear.
//!
//! Refused with [`MediaError::InvalidSetting`], naming what (never guessing a header length):
//! slices of a layer other than the base layer (`nuh_layer_id` > 0, multi-layer extensions),
//! reserved VCL NAL unit types, and the screen content coding extensions (an SPS or PPS with
//! `sps_scc_extension_flag` / `pps_scc_extension_flag`, which add slice header fields).
//! A malformed record, parameter set or header is [`MediaError::BadMp4`].
//!
//! Bounds on what the stream declares, so that a hostile sample can neither allocate nor loop
//! without bound (every other loop reads at least one bit per turn and ends with the data):
//!
//! | what | bound | from |
//! |---|---|---|
//! | `sps_seq_parameter_set_id`, `pps_pic_parameter_set_id` | 15, 63 | 7.4.3.2.1, 7.4.3.3.1 |
//! | `num_short_term_ref_pic_sets` | 64 | 7.4.3.2.1 |
//! | pictures in one short-term RPS; plus long-term pictures in a slice | 15 | `sps_max_dec_pic_buffering_minus1` ≤ 15 (A.4.2) |
//! | `num_long_term_ref_pics_sps` | 32 | 7.4.3.2.1 |
//! | `num_ref_idx_l0/l1_active_minus1` | 14 | 7.4.7.1 |
//! | `cpb_cnt_minus1` | 31 | E.3.2 |
//! | tile columns and rows | 4096, and the picture's CTB columns and rows | 7.4.3.3.1 |
//! | `num_entry_point_offsets` | 7.4.7.1's limit from tiles and CTB rows, and fewer than the bytes of the slice | 7.4.7.1 |
//! | `offset_len_minus1` | 31 | 7.4.7.1 |
//! | `slice_segment_header_extension_length` | 256 | 7.4.7.1 |
//! | picture size | at most 2^32 CTBs | `slice_segment_address` is a `u(v)` of at most 32 bits here |

use super::bits::{self, Bits, ceil_log2};
use crate::MediaError;

const CODEC: &str = "HEVC";

fn bad(msg: impl std::fmt::Display) -> MediaError {
    MediaError::BadMp4(format!("{CODEC}: {msg}"))
}

fn unsupported(what: impl std::fmt::Display) -> MediaError {
    MediaError::InvalidSetting(format!(
        "Common Encryption of HEVC {what} is not implemented"
    ))
}

/// Most pictures in a reference picture set (`sps_max_dec_pic_buffering_minus1` ≤ 15).
const MAX_REFS: usize = 15;
/// Most short-term reference picture sets in an SPS.
const MAX_ST_RPS: u32 = 64;
/// Most long-term reference pictures listed in an SPS.
const MAX_LT_SPS: u32 = 32;
/// Most tile columns or rows read from a PPS (a 16888-sample-wide picture of 16x16 CTBs has
/// 1056 CTB columns).
const MAX_TILES: u32 = 4096;

/// NAL unit types (H.265 Table 7-1).
const IDR_W_RADL: u8 = 19;
const IDR_N_LP: u8 = 20;
const VPS: u8 = 32;
const SPS: u8 = 33;
const PPS: u8 = 34;

/// A short-term reference picture set: the POC deltas and `used_by_curr_pic` flags of its
/// negative (S0, nearest first) and positive (S1) pictures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rps {
    neg: Vec<(i32, bool)>,
    pos: Vec<(i32, bool)>,
}

impl Rps {
    fn num_delta_pocs(&self) -> usize {
        self.neg.len() + self.pos.len()
    }

    /// Pictures of the set used by the current picture (its part of `NumPicTotalCurr`).
    fn used(&self) -> u32 {
        self.neg.iter().chain(&self.pos).filter(|p| p.1).count() as u32
    }
}

/// What slice segment headers need from the sequence parameter set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sps {
    id: u32,
    /// 0 for monochrome or separate colour planes.
    chroma_array_type: u32,
    separate_colour_plane: bool,
    pic_width_in_ctbs: u64,
    pic_height_in_ctbs: u64,
    log2_max_poc_lsb: u32,
    st_rps: Vec<Rps>,
    long_term_refs_present: bool,
    /// `used_by_curr_pic_lt_sps_flag` of each long-term picture the SPS lists.
    lt_used: Vec<bool>,
    temporal_mvp: bool,
    sao: bool,
}

impl Sps {
    fn pic_size_in_ctbs(&self) -> u64 {
        self.pic_width_in_ctbs * self.pic_height_in_ctbs
    }
}

/// What slice segment headers need from the picture parameter set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pps {
    id: u32,
    sps: u32,
    dependent_slice_segments: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
    cabac_init_present: bool,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    slice_chroma_qp_offsets_present: bool,
    weighted_pred: bool,
    weighted_bipred: bool,
    tiles: bool,
    entropy_coding_sync: bool,
    tile_columns: u32,
    tile_rows: u32,
    loop_filter_across_slices: bool,
    deblocking_override_enabled: bool,
    deblocking_disabled: bool,
    lists_modification_present: bool,
    slice_header_extension_present: bool,
    chroma_qp_offset_list: bool,
}

/// The two-byte NAL unit header: (type, `nuh_layer_id`).
fn nal_header(nal: &[u8]) -> Result<(u8, u8), MediaError> {
    let [a, b, ..] = *nal else {
        return Err(bad("NAL unit shorter than its two-byte header"));
    };
    if a & 0x80 != 0 {
        return Err(bad("forbidden_zero_bit set in a NAL unit header"));
    }
    if b & 7 == 0 {
        return Err(bad("nuh_temporal_id_plus1 of 0 in a NAL unit header"));
    }
    Ok(((a >> 1) & 0x3f, ((a & 1) << 5) | (b >> 3)))
}

/// `profile_tier_level(1, max_sub_layers_minus1)` (7.3.3): fixed-length fields only.
fn skip_profile_tier_level(b: &mut Bits<'_>, max_sub_layers_minus1: u32) -> Result<(), MediaError> {
    // general_profile_space … general_inbld_flag (88 bits), general_level_idc.
    b.skip(88 + 8)?;
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (b.flag()?, b.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        b.skip(2 * (8 - max_sub_layers_minus1))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    Ok(())
}

/// `scaling_list_data()` (7.3.4).
fn skip_scaling_list_data(b: &mut Bits<'_>) -> Result<(), MediaError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _matrix in (0..6).step_by(step) {
            if !b.flag()? {
                b.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    b.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    b.se()?;
                }
            }
        }
    }
    Ok(())
}

/// `hrd_parameters(1, max_sub_layers_minus1)` (E.2.2, E.2.3).
fn skip_hrd_parameters(b: &mut Bits<'_>, max_sub_layers_minus1: u32) -> Result<(), MediaError> {
    let nal = b.flag()?;
    let vcl = b.flag()?;
    let mut sub_pic = false;
    if nal || vcl {
        sub_pic = b.flag()?;
        if sub_pic {
            b.skip(8 + 5 + 1 + 5)?;
        }
        b.skip(4 + 4)?; // bit_rate_scale, cpb_size_scale
        if sub_pic {
            b.skip(4)?;
        }
        b.skip(5 + 5 + 5)?;
    }
    for _ in 0..=max_sub_layers_minus1 {
        let fixed_general = b.flag()?;
        let fixed_within_cvs = fixed_general || b.flag()?;
        let low_delay = if fixed_within_cvs {
            b.ue()?; // elemental_duration_in_tc_minus1
            false
        } else {
            b.flag()?
        };
        let cpb_cnt_minus1 = if low_delay {
            0
        } else {
            b.ue_max("cpb_cnt_minus1", 31)?
        };
        for _ in 0..u32::from(nal) + u32::from(vcl) {
            for _ in 0..=cpb_cnt_minus1 {
                b.ue()?; // bit_rate_value_minus1
                b.ue()?; // cpb_size_value_minus1
                if sub_pic {
                    b.ue()?;
                    b.ue()?;
                }
                b.flag()?; // cbr_flag
            }
        }
    }
    Ok(())
}

/// `vui_parameters()` (E.2.1).
fn skip_vui(b: &mut Bits<'_>, max_sub_layers_minus1: u32) -> Result<(), MediaError> {
    if b.flag()? && b.bits(8)? == 255 {
        b.skip(32)?; // sar_width, sar_height
    }
    if b.flag()? {
        b.flag()?; // overscan_appropriate_flag
    }
    if b.flag()? {
        b.skip(3 + 1)?; // video_format, video_full_range_flag
        if b.flag()? {
            b.skip(24)?; // colour primaries, transfer, matrix
        }
    }
    if b.flag()? {
        b.ue()?;
        b.ue()?;
    }
    b.skip(3)?; // neutral_chroma_indication, field_seq, frame_field_info_present
    if b.flag()? {
        for _ in 0..4 {
            b.ue()?; // def_disp_win offsets
        }
    }
    if b.flag()? {
        b.skip(64)?; // vui_num_units_in_tick, vui_time_scale
        if b.flag()? {
            b.ue()?; // vui_num_ticks_poc_diff_one_minus1
        }
        if b.flag()? {
            skip_hrd_parameters(b, max_sub_layers_minus1)?;
        }
    }
    if b.flag()? {
        b.skip(3)?;
        for _ in 0..5 {
            b.ue()?;
        }
    }
    Ok(())
}

/// `st_ref_pic_set(idx)` (7.3.7) with its derivation (7.4.8): `sets` are the SPS's sets before
/// it, `num_sets` is `num_short_term_ref_pic_sets` (`idx == num_sets` in a slice header).
fn st_ref_pic_set(
    b: &mut Bits<'_>,
    idx: usize,
    num_sets: usize,
    sets: &[Rps],
) -> Result<Rps, MediaError> {
    if idx != 0 && b.flag()? {
        // inter_ref_pic_set_prediction_flag: predicted from an earlier set.
        let delta_idx = if idx == num_sets {
            b.ue_max("delta_idx_minus1", idx as u32 - 1)? as usize + 1
        } else {
            1
        };
        let reference = idx
            .checked_sub(delta_idx)
            .and_then(|r| sets.get(r))
            .ok_or_else(|| bad("a reference picture set predicted from one the SPS lacks"))?;
        let sign = b.flag()?;
        let abs = b.ue_max("abs_delta_rps_minus1", (1 << 15) - 1)? as i32 + 1;
        let delta_rps = if sign { -abs } else { abs };
        let n = reference.num_delta_pocs();
        // used_by_curr_pic_flag, use_delta_flag (1 when absent) for each picture of the
        // reference set, then for the reference picture itself (j == n).
        let mut flags = [(false, false); MAX_REFS + 1];
        for f in flags.iter_mut().take(n + 1) {
            let used = b.flag()?;
            *f = (used, used || b.flag()?);
        }
        let (ref_neg, ref_pos) = (reference.neg.len(), reference.pos.len());
        let mut rps = Rps::default();
        // (7-61): negative pictures, nearest first.
        for j in (0..ref_pos).rev() {
            let d = reference.pos[j].0 + delta_rps;
            let (used, use_delta) = flags[ref_neg + j];
            if d < 0 && use_delta {
                rps.neg.push((d, used));
            }
        }
        if delta_rps < 0 && flags[n].1 {
            rps.neg.push((delta_rps, flags[n].0));
        }
        for (j, &(poc, _)) in reference.neg.iter().enumerate() {
            let d = poc + delta_rps;
            if d < 0 && flags[j].1 {
                rps.neg.push((d, flags[j].0));
            }
        }
        // (7-62): positive pictures.
        for j in (0..ref_neg).rev() {
            let d = reference.neg[j].0 + delta_rps;
            if d > 0 && flags[j].1 {
                rps.pos.push((d, flags[j].0));
            }
        }
        if delta_rps > 0 && flags[n].1 {
            rps.pos.push((delta_rps, flags[n].0));
        }
        for (j, &(poc, _)) in reference.pos.iter().enumerate() {
            let d = poc + delta_rps;
            let (used, use_delta) = flags[ref_neg + j];
            if d > 0 && use_delta {
                rps.pos.push((d, used));
            }
        }
        if rps.num_delta_pocs() > MAX_REFS {
            return Err(bad(format!(
                "a reference picture set of {} pictures (at most {MAX_REFS})",
                rps.num_delta_pocs()
            )));
        }
        return Ok(rps);
    }
    let neg = b.ue_max("num_negative_pics", MAX_REFS as u32)?;
    let pos = b.ue_max("num_positive_pics", MAX_REFS as u32 - neg)?;
    let mut rps = Rps::default();
    let mut poc = 0i32;
    for _ in 0..neg {
        poc -= b.ue_max("delta_poc_s0_minus1", (1 << 15) - 1)? as i32 + 1;
        rps.neg.push((poc, b.flag()?));
    }
    poc = 0;
    for _ in 0..pos {
        poc += b.ue_max("delta_poc_s1_minus1", (1 << 15) - 1)? as i32 + 1;
        rps.pos.push((poc, b.flag()?));
    }
    Ok(rps)
}

/// Reads an SPS NAL unit (of the base layer).
fn parse_sps(nal: &[u8]) -> Result<Sps, MediaError> {
    let mut b = Bits::new(nal, CODEC);
    b.skip(16)?; // NAL unit header
    b.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = b.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(bad("sps_max_sub_layers_minus1 of 7"));
    }
    b.flag()?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut b, max_sub_layers_minus1)?;
    let mut s = Sps {
        id: b.ue_max("sps_seq_parameter_set_id", 15)?,
        ..Sps::default()
    };
    let chroma_format_idc = b.ue_max("chroma_format_idc", 3)?;
    if chroma_format_idc == 3 {
        s.separate_colour_plane = b.flag()?;
    }
    s.chroma_array_type = if s.separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let width = u64::from(b.ue()?);
    let height = u64::from(b.ue()?);
    if width == 0 || height == 0 {
        return Err(bad("a picture of size 0"));
    }
    if b.flag()? {
        for _ in 0..4 {
            b.ue()?; // conf_win offsets
        }
    }
    b.ue()?; // bit_depth_luma_minus8
    b.ue()?; // bit_depth_chroma_minus8
    s.log2_max_poc_lsb = b.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    let ordering_info_for_all = b.flag()?;
    let first = if ordering_info_for_all {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        b.ue()?; // sps_max_dec_pic_buffering_minus1
        b.ue()?; // sps_max_num_reorder_pics
        b.ue()?; // sps_max_latency_increase_plus1
    }
    let min_cb_log2 = b.ue_max("log2_min_luma_coding_block_size_minus3", 3)? + 3;
    let ctb_log2 = min_cb_log2 + b.ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    s.pic_width_in_ctbs = width.div_ceil(1 << ctb_log2);
    s.pic_height_in_ctbs = height.div_ceil(1 << ctb_log2);
    if s.pic_size_in_ctbs() > 1 << 32 {
        return Err(bad("a picture of more than 2^32 coding tree blocks"));
    }
    for _ in 0..4 {
        b.ue()?; // transform block sizes, transform hierarchy depths
    }
    if b.flag()? && b.flag()? {
        // scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        skip_scaling_list_data(&mut b)?;
    }
    b.flag()?; // amp_enabled_flag
    s.sao = b.flag()?;
    if b.flag()? {
        // pcm_enabled_flag
        b.skip(4 + 4)?;
        b.ue()?;
        b.ue()?;
        b.flag()?;
    }
    let num_sets = b.ue_max("num_short_term_ref_pic_sets", MAX_ST_RPS)? as usize;
    for i in 0..num_sets {
        let rps = st_ref_pic_set(&mut b, i, num_sets, &s.st_rps)?;
        s.st_rps.push(rps);
    }
    s.long_term_refs_present = b.flag()?;
    if s.long_term_refs_present {
        let n = b.ue_max("num_long_term_ref_pics_sps", MAX_LT_SPS)?;
        for _ in 0..n {
            b.skip(s.log2_max_poc_lsb)?; // lt_ref_pic_poc_lsb_sps
            s.lt_used.push(b.flag()?);
        }
    }
    s.temporal_mvp = b.flag()?;
    b.flag()?; // strong_intra_smoothing_enabled_flag
    if b.flag()? {
        skip_vui(&mut b, max_sub_layers_minus1)?;
    }
    if b.flag()? {
        // sps_range_extension_flag, sps_multilayer_extension_flag, sps_3d_extension_flag:
        // nothing in them changes a base-layer slice segment header.
        b.skip(3)?;
        if b.flag()? {
            return Err(unsupported(
                "with the screen content coding extensions (sps_scc_extension_flag)",
            ));
        }
    }
    Ok(s)
}

/// Reads a PPS NAL unit (of the base layer).
fn parse_pps(nal: &[u8]) -> Result<Pps, MediaError> {
    let mut b = Bits::new(nal, CODEC);
    b.skip(16)?; // NAL unit header
    let mut p = Pps {
        id: b.ue_max("pps_pic_parameter_set_id", 63)?,
        sps: b.ue_max("pps_seq_parameter_set_id", 15)?,
        dependent_slice_segments: b.flag()?,
        output_flag_present: b.flag()?,
        num_extra_slice_header_bits: b.bits(3)?,
        ..Pps::default()
    };
    b.flag()?; // sign_data_hiding_enabled_flag
    p.cabac_init_present = b.flag()?;
    p.num_ref_idx_l0_default_minus1 = b.ue_max("num_ref_idx_l0_default_active_minus1", 14)?;
    p.num_ref_idx_l1_default_minus1 = b.ue_max("num_ref_idx_l1_default_active_minus1", 14)?;
    b.se()?; // init_qp_minus26
    b.flag()?; // constrained_intra_pred_flag
    let transform_skip = b.flag()?;
    if b.flag()? {
        b.ue()?; // diff_cu_qp_delta_depth
    }
    b.se()?; // pps_cb_qp_offset
    b.se()?; // pps_cr_qp_offset
    p.slice_chroma_qp_offsets_present = b.flag()?;
    p.weighted_pred = b.flag()?;
    p.weighted_bipred = b.flag()?;
    b.flag()?; // transquant_bypass_enabled_flag
    p.tiles = b.flag()?;
    p.entropy_coding_sync = b.flag()?;
    (p.tile_columns, p.tile_rows) = (1, 1);
    if p.tiles {
        p.tile_columns = b.ue_max("num_tile_columns_minus1", MAX_TILES - 1)? + 1;
        p.tile_rows = b.ue_max("num_tile_rows_minus1", MAX_TILES - 1)? + 1;
        if !b.flag()? {
            // Not uniform: column widths and row heights.
            for _ in 1..p.tile_columns + p.tile_rows - 1 {
                b.ue()?;
            }
        }
        b.flag()?; // loop_filter_across_tiles_enabled_flag
    }
    p.loop_filter_across_slices = b.flag()?;
    if b.flag()? {
        // deblocking_filter_control_present_flag
        p.deblocking_override_enabled = b.flag()?;
        p.deblocking_disabled = b.flag()?;
        if !p.deblocking_disabled {
            b.se()?;
            b.se()?;
        }
    }
    if b.flag()? {
        skip_scaling_list_data(&mut b)?;
    }
    p.lists_modification_present = b.flag()?;
    b.ue()?; // log2_parallel_merge_level_minus2
    p.slice_header_extension_present = b.flag()?;
    if b.flag()? {
        let range = b.flag()?;
        b.skip(2)?; // pps_multilayer_extension_flag, pps_3d_extension_flag
        if b.flag()? {
            return Err(unsupported(
                "with the screen content coding extensions (pps_scc_extension_flag)",
            ));
        }
        b.skip(4)?; // pps_extension_4bits
        if range {
            // pps_range_extension() up to chroma_qp_offset_list_enabled_flag.
            if transform_skip {
                b.ue()?; // log2_max_transform_skip_block_size_minus2
            }
            b.flag()?; // cross_component_prediction_enabled_flag
            p.chroma_qp_offset_list = b.flag()?;
        }
    }
    Ok(p)
}

/// `pred_weight_table()` (7.3.6.3) with `l0` (and, in a B slice, `l1`) active references.
fn skip_pred_weight_table(
    b: &mut Bits<'_>,
    chroma: bool,
    l0: u32,
    l1: Option<u32>,
) -> Result<(), MediaError> {
    b.ue_max("luma_log2_weight_denom", 7)?;
    if chroma {
        b.se()?; // delta_chroma_log2_weight_denom
    }
    for refs in std::iter::once(l0).chain(l1) {
        let n = refs as usize;
        // Every reference picture is another picture of the same layer (no current-picture
        // referencing without the SCC extensions), so every flag is present.
        let mut luma = [false; MAX_REFS];
        let mut chroma_flags = [false; MAX_REFS];
        for f in luma.iter_mut().take(n) {
            *f = b.flag()?;
        }
        if chroma {
            for f in chroma_flags.iter_mut().take(n) {
                *f = b.flag()?;
            }
        }
        for i in 0..n {
            if luma[i] {
                b.se()?; // delta_luma_weight
                b.se()?; // luma_offset
            }
            if chroma_flags[i] {
                for _ in 0..4 {
                    b.se()?; // delta_chroma_weight, delta_chroma_offset (Cb, Cr)
                }
            }
        }
    }
    Ok(())
}

/// The end of a slice segment header: the bytes of the NAL unit it covers (the NAL header and
/// `byte_alignment()` included, emulation-prevention bytes counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeaderEnd {
    pub(super) bytes: usize,
    /// Bits of the NAL unit up to the end of the header (the NAL header's 16 bits included,
    /// emulation-prevention bytes not counted).
    pub(super) bits: usize,
}

/// The parameter sets of an HEVC track, and its NAL length size, from its `hvcC` record and
/// then from the parameter sets its samples carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HevcConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    /// By `sps_seq_parameter_set_id` (16).
    sps: Vec<Option<Sps>>,
    /// By `pps_pic_parameter_set_id` (64).
    pps: Vec<Option<Pps>>,
}

impl HevcConfig {
    /// Reads an `HEVCDecoderConfigurationRecord` (the `hvcC` payload) and the SPS and PPS
    /// NAL units of its arrays. Arrays without parameter sets are accepted (`hev1` tracks may
    /// carry them in-band only).
    pub fn parse(hvcc: &[u8]) -> Result<Self, MediaError> {
        let short = || bad("hvcC shorter than its fields");
        let length_size = usize::from(hvcc.get(21).ok_or_else(short)? & 3) + 1;
        if length_size == 3 {
            return Err(bad("hvcC NAL length size of 3 bytes"));
        }
        let mut cfg = Self {
            length_size,
            sps: vec![None; 16],
            pps: vec![None; 64],
        };
        let arrays = *hvcc.get(22).ok_or_else(short)?;
        let mut at = 23;
        let u16_at = |at: &mut usize| -> Result<usize, MediaError> {
            let v = hvcc
                .get(*at..*at + 2)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                .ok_or_else(short)?;
            *at += 2;
            Ok(v)
        };
        for _ in 0..arrays {
            at += 1; // array_completeness, NAL_unit_type
            let count = u16_at(&mut at)?;
            for _ in 0..count {
                let len = u16_at(&mut at)?;
                let nal = hvcc.get(at..at + len).ok_or_else(short)?;
                at += len;
                cfg.read_parameter_set(nal)?;
            }
        }
        Ok(cfg)
    }

    /// The NAL units of a sample: (offset of the length prefix, total bytes with the prefix).
    pub fn nal_units(&self, sample: &[u8]) -> Result<Vec<(usize, usize)>, MediaError> {
        bits::nal_units(sample, self.length_size, CODEC)
    }

    /// Bytes of `nal` (without its length prefix) that must stay clear: the NAL header and the
    /// slice segment header for a coded slice segment, the whole unit for anything else. An
    /// SPS or PPS is read, and replaces the one of the same id for the units after it.
    pub fn clear_bytes(&mut self, nal: &[u8]) -> Result<usize, MediaError> {
        self.read_parameter_set(nal)?;
        Ok(match self.slice_header_end(nal)? {
            Some(header) => header.bytes.min(nal.len()),
            None => nal.len(),
        })
    }

    /// Stores `nal` if it is an SPS or a PPS of the base layer; ignores anything else.
    fn read_parameter_set(&mut self, nal: &[u8]) -> Result<(), MediaError> {
        let (kind, layer) = nal_header(nal)?;
        if layer != 0 {
            return Ok(());
        }
        match kind {
            SPS => {
                let s = parse_sps(nal)?;
                let slot = s.id as usize;
                self.sps[slot] = Some(s);
            }
            PPS => {
                let p = parse_pps(nal)?;
                let slot = p.id as usize;
                self.pps[slot] = Some(p);
            }
            _ => {}
        }
        Ok(())
    }

    /// Where the slice segment header of a coded slice segment NAL unit ends, `None` for
    /// non-VCL units.
    pub(super) fn slice_header_end(&self, nal: &[u8]) -> Result<Option<HeaderEnd>, MediaError> {
        let (kind, layer) = nal_header(nal)?;
        if kind >= VPS {
            return Ok(None);
        }
        if matches!(kind, 10..=15 | 22..=31) {
            return Err(unsupported(format!("reserved VCL NAL unit type {kind}")));
        }
        if layer != 0 {
            return Err(unsupported(format!(
                "slices of layer {layer} (multi-layer extensions)"
            )));
        }
        let mut b = Bits::new(nal, CODEC);
        b.skip(16)?; // NAL unit header
        let first_in_pic = b.flag()?;
        if (16..=23).contains(&kind) {
            b.flag()?; // no_output_of_prior_pics_flag
        }
        let pps_id = b.ue_max("slice_pic_parameter_set_id", 63)?;
        let pps = self.pps[pps_id as usize].ok_or_else(|| {
            bad(format!(
                "a slice names PPS {pps_id}, which neither the hvcC nor the samples before it carry"
            ))
        })?;
        let sps = self.sps[pps.sps as usize].as_ref().ok_or_else(|| {
            bad(format!(
                "PPS {pps_id} names SPS {}, which neither the hvcC nor the samples before it carry",
                pps.sps
            ))
        })?;
        if u64::from(pps.tile_columns) > sps.pic_width_in_ctbs
            || u64::from(pps.tile_rows) > sps.pic_height_in_ctbs
        {
            return Err(bad(format!(
                "PPS {pps_id} has more tile columns or rows than the picture has CTBs"
            )));
        }
        let mut dependent = false;
        if !first_in_pic {
            if pps.dependent_slice_segments {
                dependent = b.flag()?;
            }
            let pic_size = sps.pic_size_in_ctbs();
            let address = b.bits(ceil_log2(pic_size))?;
            if u64::from(address) >= pic_size {
                return Err(bad("slice_segment_address past the end of the picture"));
            }
        }
        if !dependent {
            b.skip(pps.num_extra_slice_header_bits)?; // slice_reserved_flag
            let slice_type = b.ue_max("slice_type", 2)?;
            let (is_b, is_p) = (slice_type == 0, slice_type == 1);
            if pps.output_flag_present {
                b.flag()?; // pic_output_flag
            }
            if sps.separate_colour_plane {
                b.skip(2)?; // colour_plane_id
            }
            let mut num_pic_total_curr = 0;
            let mut temporal_mvp = false;
            if kind != IDR_W_RADL && kind != IDR_N_LP {
                b.skip(sps.log2_max_poc_lsb)?; // slice_pic_order_cnt_lsb
                let num_sets = sps.st_rps.len();
                let explicit;
                let rps = if !b.flag()? {
                    // short_term_ref_pic_set_sps_flag = 0: the set is in the header.
                    explicit = st_ref_pic_set(&mut b, num_sets, num_sets, &sps.st_rps)?;
                    &explicit
                } else {
                    let idx = b.bits(ceil_log2(num_sets as u64))? as usize;
                    sps.st_rps.get(idx).ok_or_else(|| {
                        bad(format!(
                            "short_term_ref_pic_set_idx {idx} of an SPS with {num_sets} sets"
                        ))
                    })?
                };
                num_pic_total_curr = rps.used();
                if sps.long_term_refs_present {
                    let listed = sps.lt_used.len();
                    let num_sps = if listed > 0 {
                        b.ue_max("num_long_term_sps", listed as u32)?
                    } else {
                        0
                    };
                    // The DPB holds at most 16 pictures: the current one and 15 references.
                    let room = (MAX_REFS - rps.num_delta_pocs()) as u32;
                    if num_sps > room {
                        return Err(bad(format!(
                            "{num_sps} long-term pictures with a short-term set of {}",
                            rps.num_delta_pocs()
                        )));
                    }
                    let num_pics = b.ue_max("num_long_term_pics", room - num_sps)?;
                    for i in 0..num_sps + num_pics {
                        let used = if i < num_sps {
                            let idx = b.bits(ceil_log2(listed as u64))? as usize;
                            *sps.lt_used.get(idx).ok_or_else(|| {
                                bad(format!("lt_idx_sps {idx} of an SPS listing {listed}"))
                            })?
                        } else {
                            b.skip(sps.log2_max_poc_lsb)?; // poc_lsb_lt
                            b.flag()?
                        };
                        num_pic_total_curr += u32::from(used);
                        if b.flag()? {
                            b.ue()?; // delta_poc_msb_cycle_lt
                        }
                    }
                }
                if sps.temporal_mvp {
                    temporal_mvp = b.flag()?;
                }
            }
            let (mut sao_luma, mut sao_chroma) = (false, false);
            if sps.sao {
                sao_luma = b.flag()?;
                if sps.chroma_array_type != 0 {
                    sao_chroma = b.flag()?;
                }
            }
            if is_p || is_b {
                let (mut l0, mut l1) = (
                    pps.num_ref_idx_l0_default_minus1,
                    pps.num_ref_idx_l1_default_minus1,
                );
                if b.flag()? {
                    // num_ref_idx_active_override_flag
                    l0 = b.ue_max("num_ref_idx_l0_active_minus1", 14)?;
                    if is_b {
                        l1 = b.ue_max("num_ref_idx_l1_active_minus1", 14)?;
                    }
                }
                if pps.lists_modification_present && num_pic_total_curr > 1 {
                    // ref_pic_lists_modification() (7.3.6.2)
                    let width = ceil_log2(u64::from(num_pic_total_curr));
                    for (list, refs) in [(true, l0), (is_b, l1)] {
                        if list && b.flag()? {
                            for _ in 0..=refs {
                                if b.bits(width)? >= num_pic_total_curr {
                                    return Err(bad("list_entry past NumPicTotalCurr"));
                                }
                            }
                        }
                    }
                }
                if is_b {
                    b.flag()?; // mvd_l1_zero_flag
                }
                if pps.cabac_init_present {
                    b.flag()?; // cabac_init_flag
                }
                if temporal_mvp {
                    let from_l0 = !is_b || b.flag()?;
                    if (from_l0 && l0 > 0) || (!from_l0 && l1 > 0) {
                        b.ue()?; // collocated_ref_idx
                    }
                }
                if (pps.weighted_pred && is_p) || (pps.weighted_bipred && is_b) {
                    skip_pred_weight_table(
                        &mut b,
                        sps.chroma_array_type != 0,
                        l0 + 1,
                        is_b.then_some(l1 + 1),
                    )?;
                }
                b.ue()?; // five_minus_max_num_merge_cand
            }
            b.se()?; // slice_qp_delta
            if pps.slice_chroma_qp_offsets_present {
                b.se()?;
                b.se()?;
            }
            if pps.chroma_qp_offset_list {
                b.flag()?; // cu_chroma_qp_offset_enabled_flag
            }
            let mut deblocking_disabled = pps.deblocking_disabled;
            if pps.deblocking_override_enabled && b.flag()? {
                deblocking_disabled = b.flag()?;
                if !deblocking_disabled {
                    b.se()?; // slice_beta_offset_div2
                    b.se()?; // slice_tc_offset_div2
                }
            }
            if pps.loop_filter_across_slices && (sao_luma || sao_chroma || !deblocking_disabled) {
                b.flag()?; // slice_loop_filter_across_slices_enabled_flag
            }
        }
        if pps.tiles || pps.entropy_coding_sync {
            let (columns, rows) = (u64::from(pps.tile_columns), u64::from(pps.tile_rows));
            let limit = match (pps.tiles, pps.entropy_coding_sync) {
                (true, false) => columns * rows - 1,
                (false, _) => sps.pic_height_in_ctbs - 1,
                (true, true) => columns * sps.pic_height_in_ctbs - 1,
            };
            let n = b.ue()?;
            // Each entry point starts a substream of at least one byte.
            if u64::from(n) > limit || n as usize >= nal.len() {
                return Err(bad(format!(
                    "{n} entry points in a slice segment of {} bytes (at most {limit} here)",
                    nal.len()
                )));
            }
            if n > 0 {
                let len = b.ue_max("offset_len_minus1", 31)? + 1;
                for _ in 0..n {
                    b.skip(len)?; // entry_point_offset_minus1
                }
            }
        }
        if pps.slice_header_extension_present {
            let len = b.ue_max("slice_segment_header_extension_length", 256)?;
            b.skip(8 * len)?;
        }
        // byte_alignment()
        if !b.flag()? {
            return Err(bad(
                "slice segment header without its alignment_bit_equal_to_one",
            ));
        }
        while !b.byte_aligned() {
            if b.flag()? {
                return Err(bad(
                    "slice segment header with a nonzero alignment_bit_equal_to_zero",
                ));
            }
        }
        Ok(Some(HeaderEnd {
            bytes: b.bytes_used(),
            bits: b.bits_read(),
        }))
    }
}

#[cfg(test)]
mod tests;
