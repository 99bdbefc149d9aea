//! H.264 just deep enough for subsample encryption: the length-prefixed NAL units of a sample,
//! and the size of each slice header (ISO/IEC 14496-10 7.3.3), read with the SPS and PPS of the
//! `avcC` record, so the header stays clear as ISO/IEC 23001-7 asks.

use super::bits::{self, Bits};
use crate::MediaError;

fn bad(msg: impl Into<String>) -> MediaError {
    MediaError::BadMp4(format!("H.264: {}", msg.into()))
}

/// What slice headers need from the sequence parameter set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sps {
    id: u32,
    chroma_array_type: u32,
    separate_colour_plane: bool,
    log2_max_frame_num: u32,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
}

/// What slice headers need from the picture parameter set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pps {
    id: u32,
    sps: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_ref_idx_l0_default: u32,
    num_ref_idx_l1_default: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

fn skip_scaling_list(b: &mut Bits<'_>, size: u32) -> Result<(), MediaError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + b.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Ok(())
}

fn parse_sps(nal: &[u8]) -> Result<Sps, MediaError> {
    let mut b = Bits::new(nal.get(1..).ok_or_else(|| bad("empty SPS"))?, "H.264");
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags, level
    let id = b.ue()?;
    let mut s = Sps {
        id,
        chroma_array_type: 1,
        ..Sps::default()
    };
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format = b.ue()?;
        if chroma_format == 3 {
            s.separate_colour_plane = b.flag()?;
        }
        s.chroma_array_type = if s.separate_colour_plane {
            0
        } else {
            chroma_format
        };
        b.ue()?; // bit depth luma
        b.ue()?; // bit depth chroma
        b.flag()?; // qpprime_y_zero_transform_bypass
        if b.flag()? {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.flag()? {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    s.log2_max_frame_num = b.ue()? + 4;
    s.poc_type = b.ue()?;
    match s.poc_type {
        0 => s.log2_max_poc_lsb = b.ue()? + 4,
        1 => {
            s.delta_pic_order_always_zero = b.flag()?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return Err(bad("more than 255 reference frames in a POC cycle"));
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    if s.log2_max_frame_num > 16 || s.log2_max_poc_lsb > 16 {
        return Err(bad("frame number or POC field longer than 16 bits"));
    }
    b.ue()?; // max_num_ref_frames
    b.flag()?; // gaps_in_frame_num_value_allowed
    b.ue()?; // width in MBs
    b.ue()?; // height in map units
    s.frame_mbs_only = b.flag()?;
    Ok(s)
}

fn parse_pps(nal: &[u8]) -> Result<Pps, MediaError> {
    let mut b = Bits::new(nal.get(1..).ok_or_else(|| bad("empty PPS"))?, "H.264");
    let id = b.ue()?;
    let sps = b.ue()?;
    let entropy_coding_mode = b.flag()?;
    let bottom = b.flag()?;
    if b.ue()? != 0 {
        return Err(bad(
            "slice groups (FMO) are not supported for subsample encryption",
        ));
    }
    Ok(Pps {
        id,
        sps,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present: bottom,
        num_ref_idx_l0_default: b.ue()? + 1,
        num_ref_idx_l1_default: b.ue()? + 1,
        weighted_pred: b.flag()?,
        weighted_bipred_idc: b.bits(2)?,
        deblocking_filter_control_present: {
            b.se()?; // pic_init_qp
            b.se()?; // pic_init_qs
            b.se()?; // chroma_qp_index_offset
            b.flag()?
        },
        redundant_pic_cnt_present: {
            b.flag()?; // constrained_intra_pred
            b.flag()?
        },
    })
}

/// The end of a slice header: the bytes of the NAL unit it touches (the NAL header included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderEnd {
    bytes: usize,
    /// Bits of the NAL unit's payload up to the end of the header (the NAL header's 8 bits
    /// included, emulation-prevention bytes not counted).
    bits: usize,
}

/// The parameter sets of a track, and the NAL length size, from its `avcC` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    sps: Vec<Sps>,
    pps: Vec<Pps>,
}

impl AvcConfig {
    /// Reads an `AVCDecoderConfigurationRecord` (the `avcC` payload).
    pub fn parse(avcc: &[u8]) -> Result<Self, MediaError> {
        let length_size = usize::from(avcc.get(4).ok_or_else(|| bad("short avcC"))? & 3) + 1;
        if length_size == 3 {
            return Err(bad("avcC NAL length size of 3 bytes"));
        }
        let mut at = 5;
        let sets = |count: usize, at: &mut usize| -> Result<Vec<&[u8]>, MediaError> {
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                let len = avcc
                    .get(*at..*at + 2)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                    .ok_or_else(|| bad("short avcC"))?;
                v.push(
                    avcc.get(*at + 2..*at + 2 + len)
                        .ok_or_else(|| bad("short avcC"))?,
                );
                *at += 2 + len;
            }
            Ok(v)
        };
        let n_sps = usize::from(avcc.get(at).ok_or_else(|| bad("short avcC"))? & 0x1f);
        at += 1;
        let sps = sets(n_sps, &mut at)?
            .into_iter()
            .map(parse_sps)
            .collect::<Result<Vec<_>, _>>()?;
        let n_pps = usize::from(*avcc.get(at).ok_or_else(|| bad("short avcC"))?);
        at += 1;
        let pps = sets(n_pps, &mut at)?
            .into_iter()
            .map(parse_pps)
            .collect::<Result<Vec<_>, _>>()?;
        if sps.is_empty() || pps.is_empty() {
            return Err(bad(
                "avcC without SPS or PPS (in-band parameter sets are not supported)",
            ));
        }
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }

    /// The NAL units of a sample: (offset of the length prefix, total bytes with the prefix).
    pub fn nal_units(&self, sample: &[u8]) -> Result<Vec<(usize, usize)>, MediaError> {
        bits::nal_units(sample, self.length_size, "H.264")
    }

    /// Bytes of `nal` (without its length prefix) that must stay clear: the NAL header and
    /// the slice header for a coded slice, the whole unit for anything else.
    pub fn clear_bytes(&self, nal: &[u8]) -> Result<usize, MediaError> {
        Ok(match self.slice_header_end(nal)? {
            Some(header) => header.bytes.min(nal.len()),
            None => nal.len(),
        })
    }

    /// Where the slice header of a coded slice NAL unit ends, `None` for other units.
    fn slice_header_end(&self, nal: &[u8]) -> Result<Option<HeaderEnd>, MediaError> {
        let header = *nal.first().ok_or_else(|| bad("empty NAL unit"))?;
        let kind = header & 0x1f;
        if !(1..=5).contains(&kind) {
            return Ok(None);
        }
        let nal_ref_idc = (header >> 5) & 3;
        let mut b = Bits::new(&nal[1..], "H.264");
        b.ue()?; // first_mb_in_slice
        let slice_type = b.ue()? % 5;
        let pps_id = b.ue()?;
        let pps = *self
            .pps
            .iter()
            .find(|p| p.id == pps_id)
            .ok_or_else(|| bad(format!("slice names PPS {pps_id}, not in avcC")))?;
        let sps = *self
            .sps
            .iter()
            .find(|s| s.id == pps.sps)
            .ok_or_else(|| bad(format!("PPS names SPS {}, not in avcC", pps.sps)))?;
        let (p, b_slice, i_like) = (
            slice_type == 0 || slice_type == 3,
            slice_type == 1,
            slice_type == 2 || slice_type == 4,
        );
        if sps.separate_colour_plane {
            b.bits(2)?;
        }
        b.bits(sps.log2_max_frame_num)?;
        let mut field = false;
        if !sps.frame_mbs_only {
            field = b.flag()?;
            if field {
                b.flag()?;
            }
        }
        if kind == 5 {
            b.ue()?; // idr_pic_id
        }
        if sps.poc_type == 0 {
            b.bits(sps.log2_max_poc_lsb)?;
            if pps.bottom_field_pic_order_in_frame_present && !field {
                b.se()?;
            }
        }
        if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
            b.se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field {
                b.se()?;
            }
        }
        if pps.redundant_pic_cnt_present {
            b.ue()?;
        }
        if b_slice {
            b.flag()?; // direct_spatial_mv_pred
        }
        let (mut l0, mut l1) = (pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default);
        if p || b_slice {
            if b.flag()? {
                l0 = b.ue()? + 1;
                if b_slice {
                    l1 = b.ue()? + 1;
                }
            }
            if l0 > 32 || l1 > 32 {
                return Err(bad("more than 32 active reference pictures"));
            }
        }
        // ref_pic_list_modification
        let lists = if b_slice {
            2
        } else if p {
            1
        } else {
            0
        };
        for _ in 0..lists {
            if b.flag()? {
                let mut n = 0;
                loop {
                    let idc = b.ue()?;
                    if idc == 3 {
                        break;
                    }
                    if idc > 5 {
                        return Err(bad("bad modification_of_pic_nums_idc"));
                    }
                    b.ue()?;
                    n += 1;
                    if n > 66 {
                        return Err(bad("reference list modification too long"));
                    }
                }
            }
        }
        if (pps.weighted_pred && p) || (pps.weighted_bipred_idc == 1 && b_slice) {
            b.ue()?; // luma_log2_weight_denom
            if sps.chroma_array_type != 0 {
                b.ue()?;
            }
            for refs in [l0, if b_slice { l1 } else { 0 }] {
                for _ in 0..refs {
                    if b.flag()? {
                        b.se()?;
                        b.se()?;
                    }
                    if sps.chroma_array_type != 0 && b.flag()? {
                        for _ in 0..4 {
                            b.se()?;
                        }
                    }
                }
            }
        }
        if nal_ref_idc != 0 {
            if kind == 5 {
                b.flag()?;
                b.flag()?;
            } else if b.flag()? {
                let mut n = 0;
                loop {
                    let op = b.ue()?;
                    match op {
                        0 => break,
                        1 | 2 | 4 => {
                            b.ue()?;
                        }
                        3 => {
                            b.ue()?;
                            b.ue()?;
                        }
                        5 => {}
                        6 => {
                            b.ue()?;
                        }
                        _ => return Err(bad("bad memory_management_control_operation")),
                    }
                    n += 1;
                    if n > 66 {
                        return Err(bad("reference picture marking too long"));
                    }
                }
            }
        }
        if pps.entropy_coding_mode && !i_like {
            b.ue()?; // cabac_init_idc
        }
        b.se()?; // slice_qp_delta
        if slice_type == 3 || slice_type == 4 {
            if slice_type == 3 {
                b.flag()?;
            }
            b.se()?;
        }
        if pps.deblocking_filter_control_present && b.ue()? != 1 {
            b.se()?;
            b.se()?;
        }
        Ok(Some(HeaderEnd {
            bytes: 1 + b.bytes_used(),
            bits: 8 + b.bits_read(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where FFmpeg's own H.264 syntax reader (`-bsf:v trace_headers`) ends each slice header,
    /// in bits: at the first `cabac_alignment_one_bit`, or after the last header element.
    fn ffmpeg_header_ends(stream: &std::path::Path) -> Vec<usize> {
        let o = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-i"])
            .arg(stream)
            .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        let mut ends = Vec::new();
        let mut current: Option<usize> = None;
        let mut in_slice = false;
        for line in log.lines() {
            let Some((_, rest)) = line.split_once("] ") else {
                continue;
            };
            if rest.starts_with("Slice Header") {
                ends.extend(current.take());
                in_slice = true;
                continue;
            }
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let [pos, name, bits, "=", _] = fields.as_slice() else {
                if !rest.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    ends.extend(current.take());
                    in_slice = false;
                }
                continue;
            };
            let (Ok(pos), true) = (pos.parse::<usize>(), in_slice) else {
                continue;
            };
            if *name == "cabac_alignment_one_bit" {
                current = None;
                in_slice = false;
                ends.push(pos);
                continue;
            }
            current = Some(pos + bits.len());
        }
        ends.extend(current.take());
        ends
    }

    /// On real x264 streams (CABAC with B-frames, weighted prediction and several reference
    /// frames; CAVLC baseline; several slices per picture with weighted B prediction), every
    /// slice header ends exactly where FFmpeg's syntax reader ends it.
    #[test]
    fn slice_headers_end_where_ffmpeg_ends_them() {
        let dir = std::env::temp_dir().join(format!("lt-avc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (
                "high",
                "-preset medium -x264-params bframes=3:weightp=2:ref=4:b-pyramid=normal",
            ),
            ("baseline", "-preset fast -profile:v baseline"),
            (
                "slices",
                "-preset veryfast -x264-params slices=4:weightb=1:bframes=2",
            ),
        ];
        for (name, opts) in cases {
            let out = dir.join(format!("{name}.h264"));
            let mut args = vec![
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25:duration=2",
                "-c:v",
                "libx264",
            ];
            args.extend(opts.split(' '));
            args.push(out.to_str().unwrap());
            let st = std::process::Command::new("ffmpeg")
                .args(&args)
                .status()
                .unwrap();
            assert!(st.success(), "{name}");
            let stream = std::fs::read(&out).unwrap();
            let nals = bits::annex_b(&stream);
            let sps = nals.iter().find(|n| n[0] & 0x1f == 7).unwrap();
            let pps = nals.iter().find(|n| n[0] & 0x1f == 8).unwrap();
            let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
            avcc.extend((sps.len() as u16).to_be_bytes());
            avcc.extend_from_slice(sps);
            avcc.push(1);
            avcc.extend((pps.len() as u16).to_be_bytes());
            avcc.extend_from_slice(pps);
            let cfg = AvcConfig::parse(&avcc).unwrap();
            let ours: Vec<usize> = nals
                .iter()
                .filter(|n| (1..=5).contains(&(n[0] & 0x1f)))
                .map(|nal| {
                    let end = cfg.slice_header_end(nal).unwrap().unwrap();
                    assert!(end.bytes <= nal.len(), "{name}: header past the unit");
                    end.bits
                })
                .collect();
            let theirs = ffmpeg_header_ends(&out);
            assert!(ours.len() >= 50, "{name}: {} slices", ours.len());
            assert_eq!(ours, theirs, "{name}: slice header ends (bits)");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
