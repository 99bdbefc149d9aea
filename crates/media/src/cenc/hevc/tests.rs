//! Tests of the HEVC reader: against FFmpeg's syntax reader on real x265 streams and on
//! generated ones, and on corrupted input.

use super::*;

/// An `hvcC` record (4-byte NAL lengths) with one array per parameter set given.
pub(crate) fn hvcc(sets: &[&[u8]]) -> Vec<u8> {
    let mut r = vec![1];
    r.extend_from_slice(&[0; 20]);
    r.push(0xfc | 3);
    r.push(sets.len() as u8);
    for set in sets {
        r.push(0x80 | ((set[0] >> 1) & 0x3f));
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&(set.len() as u16).to_be_bytes());
        r.extend_from_slice(set);
    }
    r
}

fn nal_type(nal: &[u8]) -> u8 {
    (nal[0] >> 1) & 0x3f
}

/// Where FFmpeg's own HEVC syntax reader (`-bsf:v trace_headers`) ends each slice segment
/// header, in bits: after the last bit of its `byte_alignment()`. Also returns the whole
/// trace.
fn ffmpeg_header_ends(stream: &std::path::Path) -> (Vec<usize>, String) {
    let log = leaktrace_testkit::trace_headers(&["-f", "hevc"], stream, &["-copyinkf"]);
    let mut ends = Vec::new();
    let mut current: Option<usize> = None;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("] ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let [pos, _name, bits, "=", _] = fields.as_slice()
            && let Ok(pos) = pos.parse::<usize>()
        {
            if let Some(end) = current.as_mut() {
                *end = pos + bits.len();
            }
            continue;
        }
        ends.extend(current.take());
        if rest.starts_with("Slice Segment Header") {
            current = Some(0);
        }
    }
    ends.extend(current.take());
    (ends, log)
}

/// The emulation-prevention bytes among the first `len` bytes of `nal`.
fn escapes(nal: &[u8], len: usize) -> usize {
    let (mut zeros, mut n) = (0, 0);
    for &b in &nal[..len] {
        if zeros >= 2 && b == 3 {
            n += 1;
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    n
}

/// The corpus clip (`$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache`).
fn clip() -> std::path::PathBuf {
    let dir = std::env::var_os("LEAKTRACE_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/cache")
        });
    let p = dir.join("trailer_bbb_20s.mp4");
    assert!(
        p.is_file(),
        "corpus file {} missing: run corpus/fetch.sh first (or set LEAKTRACE_CORPUS)",
        p.display()
    );
    p
}

/// On real x265 streams of the corpus clip (with fades, so that weighted prediction codes
/// luma and chroma weights), every slice segment header ends exactly where FFmpeg's syntax
/// reader ends it, in bits, and the byte count covers the emulation-prevention bytes in
/// it. The cases: 8-bit 4:2:0 with B-pyramid, four references, three slices per picture
/// and wavefronts (entry points), open GOPs (CRA and RASL pictures), two temporal
/// sub-layers (sub-layer profile/level flags, TSA/STSA), HRD parameters in the VUI and
/// parameter sets, SEI and AUDs in-band; 10-bit 4:2:0 without wavefronts or SAO, deblocking
/// offsets, default scaling lists and PPSs that change in-band (`opt-qp-pps`,
/// `opt-ref-list-length-pps`); 8-bit 4:0:0 (no chroma SAO or weights) with 16x16 CTBs and
/// two dozen entry points per slice; 10-bit 4:4:4.
#[test]
fn slice_segment_headers_end_where_ffmpeg_ends_them() {
    let dir = std::env::temp_dir().join(format!("lt-hevc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = clip();
    let cases = [
        (
            "8bit-slices-wpp",
            "yuv420p",
            "medium",
            "bframes=4:b-pyramid=1:weightp=1:weightb=1:ref=4:slices=3:wpp=1:keyint=24:\
             open-gop=1:temporal-layers=1:repeat-headers=1:aud=1:hrd=1:\
             vbv-maxrate=2000:vbv-bufsize=2000",
            &[
                "entry_point_offset_minus1[0]",
                "delta_chroma_weight_l1",
                "sub_layer_level_present_flag",
                "vui_hrd_parameters_present_flag = 1",
                "nal_unit_type = 21",
            ][..],
        ),
        (
            "10bit-pps-in-band",
            "yuv420p10le",
            "fast",
            "bframes=3:weightp=1:weightb=1:wpp=0:deblock=-1,1:no-sao=1:opt-qp-pps=1:\
             opt-ref-list-length-pps=1:scaling-list=default:repeat-headers=1:keyint=30",
            &[
                "bit_depth_luma_minus8 = 2",
                "delta_chroma_weight_l0",
                "scaling_list_enabled_flag = 1",
                "init_qp_minus26 = 0",
                "init_qp_minus26 = 10",
            ][..],
        ),
        (
            "8bit-gray-ctu16",
            "gray",
            "fast",
            "bframes=2:weightp=1:weightb=1:wpp=1:ctu=16:min-cu-size=8",
            &[
                "entry_point_offset_minus1[20]",
                "delta_luma_weight_l0",
                "chroma_format_idc = 0",
            ][..],
        ),
        (
            "10bit-444",
            "yuv444p10le",
            "fast",
            "bframes=3:weightp=1:weightb=1:wpp=1:slices=2",
            &["chroma_format_idc = 3", "delta_chroma_weight_l0"][..],
        ),
    ];
    for (name, pix_fmt, preset, params, features) in cases {
        let out = dir.join(format!("{name}.hevc"));
        let st = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                "3",
                "-t",
                "3",
                "-i",
            ])
            .arg(&clip)
            .args([
                "-an",
                "-vf",
                "scale=640:-2,fade=t=in:st=0:d=1.2,fade=t=out:st=1.8:d=1.2",
                "-pix_fmt",
                pix_fmt,
                "-c:v",
                "libx265",
                "-preset",
                preset,
                "-x265-params",
                &format!("log-level=error:{params}"),
            ])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "{name}");
        let stream = std::fs::read(&out).unwrap();
        let nals = bits::annex_b(&stream);
        let first = |kind: u8| *nals.iter().find(|n| nal_type(n) == kind).unwrap();
        let mut cfg = HevcConfig::parse(&hvcc(&[first(VPS), first(SPS), first(PPS)])).unwrap();
        assert_eq!(cfg.length_size, 4);
        let mut ours = Vec::new();
        for nal in &nals {
            cfg.read_parameter_set(nal).unwrap();
            let Some(end) = cfg.slice_header_end(nal).unwrap() else {
                assert!(nal_type(nal) >= 32, "{name}: a VCL unit without a header");
                assert_eq!(cfg.clear_bytes(nal).unwrap(), nal.len());
                continue;
            };
            assert_eq!(end.bits % 8, 0, "{name}: header not byte-aligned");
            assert!(
                end.bytes < nal.len(),
                "{name}: header to the end of the unit"
            );
            assert_eq!(
                end.bytes,
                end.bits / 8 + escapes(nal, end.bytes),
                "{name}: header bytes and emulation prevention"
            );
            assert_eq!(cfg.clear_bytes(nal).unwrap(), end.bytes);
            ours.push(end.bits);
        }
        let (theirs, trace) = ffmpeg_header_ends(&out);
        // Each feature: a syntax element FFmpeg read (name prefix), with its value if given.
        let elements: Vec<(&str, &str)> = trace
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_once("] ")?.1.split_whitespace().collect();
                match f.as_slice() {
                    [_, name, _, "=", value] => Some((*name, *value)),
                    _ => None,
                }
            })
            .collect();
        for f in features {
            let (element, value) = f
                .split_once(" = ")
                .map_or((*f, None), |(e, v)| (e, Some(v)));
            assert!(
                elements
                    .iter()
                    .any(|&(n, v)| n.starts_with(element) && value.is_none_or(|x| x == v)),
                "{name}: the stream does not exercise {f}"
            );
        }
        assert!(!trace.contains("Failed to read"), "{name}: FFmpeg failed");
        assert!(ours.len() >= 70, "{name}: {} slices", ours.len());
        assert_eq!(ours, theirs, "{name}: slice segment header ends (bits)");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

mod synth;
use synth::{Rng, W};

/// Annex B: each unit after a four-byte start code.
fn annex_b_stream(nals: &[Vec<u8>]) -> Vec<u8> {
    nals.iter()
        .flat_map(|n| [0, 0, 0, 1].iter().chain(n).copied())
        .collect()
}

/// Streams of generated parameter sets and slice segment headers (random but valid syntax,
/// random slice data; see `synth.rs`) that exercise what x265 never writes: reference picture
/// sets in the SPS, predicted from one another and from the slice header, long-term
/// pictures from the SPS and the header, list modification, tiles with and without
/// wavefronts, dependent slice segments, extra header bits, output flags, separate colour
/// planes, monochrome and 4:4:4 weights, chroma QP offset lists, deblocking overrides, header
/// extensions, emulation prevention inside headers, SEI and AUDs, several SPS and PPS ids, and
/// parameter sets replaced in-band with the same ids. FFmpeg's syntax reader, ours and the
/// generator agree on the end of every header, in bits.
#[test]
fn generated_headers_end_where_ffmpeg_ends_them() {
    let dir = std::env::temp_dir().join(format!("lt-hevc-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut escaped = 0;
    let mut all_traces = String::new();
    let mut slices = 0;
    for seed in 1..=16u64 {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut nals: Vec<Vec<u8>> = Vec::new();
        let mut expected = Vec::new();
        let subs = r.below(3) as u32;
        for _epoch in 0..3 {
            nals.push(synth::vps(&mut r, subs));
            // One to three SPSs and one to four PPSs, ids drawn anew (so reused with new
            // content in later epochs).
            let mut spss = Vec::new();
            let first_sps = r.below(14);
            for k in 0..1 + r.below(3) {
                // (FFmpeg 5.1 refuses an SPS with fewer sub-layers than its VPS.)
                let (nal, s) = synth::sps(&mut r, (first_sps + k) % 16, subs, false);
                nals.push(nal);
                spss.push(s);
            }
            let mut ppss = Vec::new();
            let first_pps = r.below(61);
            for k in 0..1 + r.below(4) {
                let si = r.below(spss.len() as u64) as usize;
                let (nal, p) = synth::pps(&mut r, (first_pps + k * 7) % 64, &spss[si], si, false);
                nals.push(nal);
                ppss.push(p);
            }
            for _picture in 0..6 {
                if r.below(4) == 0 {
                    let mut w = W::new(35, 0); // access unit delimiter
                    w.u(3, r.below(3));
                    w.align();
                    nals.push(w.nal());
                }
                if r.below(4) == 0 {
                    let mut w = W::new(39, 0); // user_data_unregistered SEI
                    w.u(8, 5);
                    w.u(8, 20);
                    for _ in 0..20 {
                        w.u(8, r.below(256));
                    }
                    w.align();
                    nals.push(w.nal());
                }
                let p = &ppss[r.below(ppss.len() as u64) as usize];
                let s = &spss[p.sps];
                const KINDS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 21];
                let kind = KINDS[r.below(16) as usize];
                for k in 0..1 + r.below(4) {
                    let (nal, end) = synth::slice(&mut r, kind, k == 0, s, p);
                    nals.push(nal);
                    expected.push(end);
                }
            }
        }
        let path = dir.join(format!("synth-{seed}.hevc"));
        std::fs::write(&path, annex_b_stream(&nals)).unwrap();
        let mut cfg = HevcConfig::parse(&hvcc(&[])).unwrap();
        let mut ours = Vec::new();
        for nal in &nals {
            let clear = cfg.clear_bytes(nal).unwrap();
            if let Some(end) = cfg.slice_header_end(nal).unwrap() {
                assert_eq!(
                    end.bytes,
                    end.bits / 8 + escapes(nal, end.bytes),
                    "seed {seed}"
                );
                escaped += usize::from(end.bytes > end.bits / 8);
                assert_eq!(clear, end.bytes);
                ours.push(end.bits);
            } else {
                assert_eq!(clear, nal.len());
            }
        }
        assert_eq!(ours, expected, "seed {seed}: ours against the generator's");
        let (theirs, trace) = ffmpeg_header_ends(&path);
        assert!(
            !trace.contains("Failed to read"),
            "seed {seed}: FFmpeg failed:\n{trace}"
        );
        assert_eq!(
            theirs, expected,
            "seed {seed}: FFmpeg's against the generator's"
        );
        slices += ours.len();
        all_traces.push_str(&trace);
    }
    for element in [
        "inter_ref_pic_set_prediction_flag                           1",
        "delta_idx_minus1",
        "short_term_ref_pic_set_idx",
        "lt_idx_sps",
        "poc_lsb_lt",
        "delta_poc_msb_cycle_lt",
        "list_entry_l1",
        "dependent_slice_segment_flag                                1",
        "slice_reserved_flag",
        "pic_output_flag",
        "colour_plane_id",
        "collocated_ref_idx",
        "delta_chroma_weight_l1",
        "cu_chroma_qp_offset_enabled_flag",
        "slice_beta_offset_div2",
        "slice_loop_filter_across_slices_enabled_flag",
        "entry_point_offset_minus1[11]",
        "slice_segment_header_extension_data_byte[255]",
        "chroma_qp_offset_list_len_minus1",
        "column_width_minus1",
        "vui_hrd_parameters_present_flag                             1",
        "sub_layer_level_idc",
    ] {
        assert!(
            all_traces.contains(element),
            "no stream exercises {element}"
        );
    }
    assert!(slices > 500, "{slices} slices");
    assert!(escaped > 20, "{escaped} headers with emulation prevention");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn refusal(e: MediaError) -> String {
    match e {
        MediaError::InvalidSetting(m) => m,
        other => panic!("not a refusal: {other}"),
    }
}

/// What is not implemented is refused with an error naming it, and what is missing or out of
/// bounds is an error naming it: never a guessed header length.
#[test]
fn unimplemented_or_missing_syntax_is_refused_by_name() {
    let mut r = Rng(0x5eed);
    let (scc_sps, _) = synth::sps(&mut r, 0, 0, true);
    let e = refusal(HevcConfig::parse(&hvcc(&[&scc_sps])).unwrap_err());
    assert!(
        e.contains("HEVC with the screen content coding extensions (sps_scc"),
        "{e}"
    );
    let (sps_nal, s) = synth::sps(&mut r, 3, 0, false);
    let (scc_pps, _) = synth::pps(&mut r, 9, &s, 0, true);
    let e = refusal(HevcConfig::parse(&hvcc(&[&sps_nal, &scc_pps])).unwrap_err());
    assert!(e.contains("pps_scc_extension_flag"), "{e}");
    let (pps_nal, p) = synth::pps(&mut r, 9, &s, 0, false);
    let mut cfg = HevcConfig::parse(&hvcc(&[&sps_nal, &pps_nal])).unwrap();
    let (slice, end) = synth::slice(&mut r, 1, true, &s, &p);
    assert_eq!(cfg.slice_header_end(&slice).unwrap().unwrap().bits, end);
    let mut layered = slice.clone();
    layered[1] |= 1 << 3;
    let e = refusal(cfg.clear_bytes(&layered).unwrap_err());
    assert!(e.contains("slices of layer 1"), "{e}");
    for kind in [10u8, 15, 22, 23, 24, 31] {
        let mut reserved = slice.clone();
        reserved[0] = (reserved[0] & 0x81) | (kind << 1);
        let e = refusal(cfg.clear_bytes(&reserved).unwrap_err());
        assert!(
            e.contains(&format!("reserved VCL NAL unit type {kind}")),
            "{e}"
        );
    }
    // A layer-1 parameter set is ignored, a reserved non-VCL unit stays clear.
    let mut other = sps_nal.clone();
    other[1] |= 1 << 3;
    assert_eq!(cfg.clear_bytes(&other).unwrap(), other.len());
    assert_eq!(cfg.clear_bytes(&[0x5e, 0x01, 0xaa]).unwrap(), 3);
    // A slice naming a PPS nobody gave, or a PPS naming an absent SPS.
    let e = HevcConfig::parse(&hvcc(&[&sps_nal]))
        .unwrap()
        .clear_bytes(&slice)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a slice names PPS 9, which neither the hvcC nor"),
        "{e}"
    );
    let e = HevcConfig::parse(&hvcc(&[&pps_nal]))
        .unwrap()
        .clear_bytes(&slice)
        .unwrap_err()
        .to_string();
    assert!(e.contains("PPS 9 names SPS 3"), "{e}");
    // The record itself.
    let mut three = hvcc(&[&sps_nal]);
    three[21] = 0xfe;
    assert!(
        HevcConfig::parse(&three)
            .unwrap_err()
            .to_string()
            .contains("3 bytes")
    );
    let two = {
        let mut h = hvcc(&[&sps_nal, &pps_nal]);
        h[21] = 0xfd;
        HevcConfig::parse(&h).unwrap()
    };
    assert_eq!(two.length_size, 2);
    assert!(HevcConfig::parse(&hvcc(&[])[..22]).is_err());
    // An SPS past the bounds: 65 reference picture sets, or 33 long-term pictures.
    for (sets, lt, needle) in [
        (65, 0, "num_short_term_ref_pic_sets 65 (at most 64)"),
        (0, 33, "num_long_term_ref_pics_sps 33 (at most 32)"),
    ] {
        let e = HevcConfig::parse(&hvcc(&[&minimal_sps(64, 64, sets, lt)])).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    // More entry points than the slice has bytes (a 64x4096 picture of 16x16 CTBs has 256
    // rows, so 7.4.7.1's limit allows 255).
    let sps = minimal_sps(64, 4096, 0, 0);
    let mut w = W::new(34, 0);
    w.ue(0);
    w.ue(0);
    w.u(7, 0); // dependent, output flag, extra bits, sign hiding, cabac init
    w.ue(0);
    w.ue(0);
    w.se(0);
    w.u(3, 0); // constrained intra, transform skip, cu qp delta
    w.se(0);
    w.se(0);
    w.u(5, 0); // chroma qp offsets, weighted, bipred, transquant bypass, tiles
    w.flag(true); // entropy_coding_sync_enabled_flag
    w.u(3, 0); // loop filter across slices, deblocking control, scaling list
    w.flag(false); // lists modification
    w.ue(0);
    w.u(2, 0);
    w.align();
    let mut cfg = HevcConfig::parse(&hvcc(&[&sps, &w.nal()])).unwrap();
    for (n, ok) in [(3, true), (200, false), (256, false)] {
        let mut w = W::new(19, 0);
        w.flag(true);
        w.flag(false);
        w.ue(0); // PPS 0
        w.ue(2); // I slice
        w.se(0);
        w.ue(n);
        if n > 0 {
            w.ue(0); // one-bit offsets: the slice is shorter than its entry point count
            for _ in 0..n {
                w.u(1, 1);
            }
        }
        w.align();
        w.u(8, 0x80);
        let nal = w.nal();
        let got = cfg.clear_bytes(&nal);
        assert_eq!(got.is_ok(), ok, "{n} entry points: {got:?}");
        if !ok && n == 256 {
            assert!(got.unwrap_err().to_string().contains("at most 255"));
        }
    }
}

/// An SPS (4:2:0, 8-bit, 16x16 CTBs, no VUI) of `width` x `height` with `sets` empty
/// short-term reference picture sets and `lt` long-term pictures.
fn minimal_sps(width: u64, height: u64, sets: u64, lt: u64) -> Vec<u8> {
    let mut w = W::new(33, 0);
    w.u(4, 0);
    w.u(3, 0);
    w.u(1, 1);
    w.u(48, 0); // profile_tier_level
    w.u(48, 0);
    w.ue(0); // id
    w.ue(1); // 4:2:0
    w.ue(width);
    w.ue(height);
    w.flag(false);
    w.ue(0);
    w.ue(0);
    w.ue(4); // log2_max_pic_order_cnt_lsb_minus4
    w.flag(true);
    w.ue(4);
    w.ue(0);
    w.ue(0);
    w.ue(1); // 16x16 minimum coding blocks
    w.ue(0); // 16x16 CTBs
    for _ in 0..4 {
        w.ue(0);
    }
    w.u(4, 0); // scaling lists, amp, sao, pcm
    w.ue(sets);
    for i in 0..sets.min(70) {
        if i > 0 {
            w.flag(false);
        }
        w.ue(0);
        w.ue(0);
    }
    w.flag(lt > 0);
    if lt > 0 {
        w.ue(lt);
        for _ in 0..lt {
            w.u(8, 0);
            w.flag(true);
        }
    }
    w.u(3, 0); // temporal mvp, strong intra, vui
    w.flag(false);
    w.align();
    w.nal()
}

/// On a real x265 stream (two slices with wavefronts, B-frames, weighted prediction, SEI and
/// parameter sets in-band): the `hvcC` cut at every length and with every byte overwritten,
/// and the first NAL units cut at every length and with every bit of their first 48 bytes
/// flipped, give a result or an error, never a panic; a unit cut inside its slice segment
/// header is always an error, and a clear size never exceeds its unit.
#[test]
fn truncated_and_corrupted_input_gives_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("lt-hevc-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("small.hevc");
    let st = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            "8",
            "-t",
            "0.5",
            "-i",
        ])
        .arg(clip())
        .args([
            "-an",
            "-vf",
            "scale=320:-2,fade=t=in:st=0:d=0.5",
            "-c:v",
            "libx265",
            "-preset",
            "fast",
            "-x265-params",
            "log-level=error:bframes=3:weightp=1:weightb=1:slices=2:wpp=1:repeat-headers=1",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let stream = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let nals = bits::annex_b(&stream);
    let first = |kind: u8| *nals.iter().find(|n| nal_type(n) == kind).unwrap();
    let record = hvcc(&[first(VPS), first(SPS), first(PPS)]);
    let good = HevcConfig::parse(&record).unwrap();
    let check = |cfg: &HevcConfig, nal: &[u8]| {
        let mut c = cfg.clone();
        if let Ok(n) = c.clear_bytes(nal) {
            assert!(n <= nal.len());
        }
    };
    let sample: Vec<&[u8]> = nals.iter().take(24).copied().collect();
    for cut in 0..record.len() {
        if let Ok(cfg) = HevcConfig::parse(&record[..cut]) {
            sample.iter().for_each(|n| check(&cfg, n));
        }
    }
    let mut r = Rng(99);
    for at in 0..record.len() {
        for v in [0x00, 0xff, r.below(256) as u8] {
            let mut bad = record.clone();
            bad[at] = v;
            if let Ok(cfg) = HevcConfig::parse(&bad) {
                sample.iter().take(8).for_each(|n| check(&cfg, n));
            }
        }
    }
    let mut headers = 0;
    for nal in &sample {
        let end = good.slice_header_end(nal).unwrap();
        for cut in 0..nal.len().min(96) {
            let mut c = good.clone();
            let got = c.clear_bytes(&nal[..cut]);
            if let Some(end) = end
                && cut < end.bytes
            {
                assert!(got.is_err(), "cut at {cut} of a {}-byte header", end.bytes);
                headers += 1;
            }
        }
        for bit in 0..nal.len().min(48) * 8 {
            let mut bad = nal.to_vec();
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            check(&good, &bad);
        }
    }
    assert!(headers > 100);
    // Garbage units of every type.
    for kind in 0..64u8 {
        for len in [2usize, 3, 5, 17, 64] {
            let mut nal: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
            nal[0] = kind << 1;
            nal[1] = 1;
            check(&good, &nal);
        }
    }
}

/// Writes the seeds of the `cenc_hevc` fuzz target (fuzz/README.md) into
/// `fuzz/corpus/cenc_hevc/`: in its raw form (byte 0 = 0, a u16 `hvcC` size and the `hvcC`,
/// then u16-sized samples of length-prefixed NAL units), small x265 streams of the corpus
/// clip (8-bit with slices and wavefronts, 10-bit, 4:0:0, 4:4:4, each with weighted
/// prediction over a fade and parameter sets in-band) and generated streams; in its file form
/// (byte 0 = 1 for `cenc`, 3 for `cbcs`, then a fragmented MP4), two tiny x265 CMAF files.
#[test]
#[ignore = "writes the fuzz seed corpus: cargo test -p leaktrace-media --lib -- --ignored write_hevc_fuzz_seeds"]
fn write_hevc_fuzz_seeds() {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cenc_hevc");
    std::fs::create_dir_all(&out).unwrap();
    let tmp = std::env::temp_dir().join(format!("lt-hevc-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // Access units: a new one at an AUD or parameter set or prefix SEI after a slice, or at a
    // slice that starts a picture.
    let samples = |nals: &[&[u8]]| -> Vec<Vec<u8>> {
        let mut aus: Vec<Vec<u8>> = Vec::new();
        let mut after_vcl = true;
        for nal in nals {
            let kind = nal_type(nal);
            let vcl = kind < 32;
            let starts = if vcl {
                nal.get(2).is_some_and(|b| b & 0x80 != 0) // first_slice_segment_in_pic_flag
            } else {
                matches!(kind, 32..=35 | 39)
            };
            if aus.is_empty() || (after_vcl && starts) {
                aus.push(Vec::new());
            }
            after_vcl = vcl;
            let au = aus.last_mut().unwrap();
            au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            au.extend_from_slice(nal);
        }
        aus
    };
    let raw_seed = |record: &[u8], aus: &[Vec<u8>]| -> Vec<u8> {
        let mut seed = vec![0];
        seed.extend_from_slice(&(record.len() as u16).to_be_bytes());
        seed.extend_from_slice(record);
        for au in aus {
            if seed.len() + au.len() > 6000 {
                break;
            }
            seed.extend_from_slice(&(au.len() as u16).to_be_bytes());
            seed.extend_from_slice(au);
        }
        seed
    };
    let encode = |name: &str, pix_fmt: &str, params: &str, container: &[&str]| {
        let file = tmp.join(name);
        let st = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                "8",
                "-t",
                "0.5",
                "-i",
            ])
            .arg(clip())
            .args([
                "-an",
                "-vf",
                "scale=128:-2,fade=t=in:st=0:d=0.5",
                "-pix_fmt",
                pix_fmt,
                "-c:v",
                "libx265",
                "-preset",
                "fast",
                "-x265-params",
                &format!("log-level=error:keyint=6:min-keyint=6:scenecut=0:{params}"),
            ])
            .args(container)
            .arg(&file)
            .status()
            .unwrap();
        assert!(st.success(), "{name}");
        std::fs::read(&file).unwrap()
    };
    let common = "bframes=2:weightp=1:weightb=1:repeat-headers=1:aud=1";
    for (name, pix_fmt, params) in [
        ("x265-8bit", "yuv420p", "slices=2:wpp=1:ctu=16"),
        ("x265-10bit", "yuv420p10le", "wpp=0:no-sao=1:opt-qp-pps=1"),
        ("x265-gray", "gray", "wpp=1:ctu=16"),
        ("x265-444", "yuv444p10le", "wpp=1"),
    ] {
        let stream = encode(
            &format!("{name}.hevc"),
            pix_fmt,
            &format!("{common}:{params}"),
            &[],
        );
        let nals = bits::annex_b(&stream);
        let first = |kind: u8| *nals.iter().find(|n| nal_type(n) == kind).unwrap();
        let record = hvcc(&[first(VPS), first(SPS), first(PPS)]);
        std::fs::write(
            out.join(format!("seed-{name}")),
            raw_seed(&record, &samples(&nals)),
        )
        .unwrap();
    }
    for seed in 1..=4u64 {
        let mut r = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut nals = vec![synth::vps(&mut r, 0)];
        let (sps, s) = synth::sps(&mut r, seed, 0, false);
        let (pps, p) = synth::pps(&mut r, seed * 3, &s, 0, false);
        let record = hvcc(&[&nals[0], &sps, &pps]);
        nals.clear();
        for picture in 0..4 {
            for k in 0..2 {
                let kind = if picture == 0 { 19 } else { 1 };
                nals.push(synth::slice(&mut r, kind, k == 0, &s, &p).0);
            }
        }
        let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
        std::fs::write(
            out.join(format!("seed-synth-{seed}")),
            raw_seed(&record, &samples(&refs)),
        )
        .unwrap();
    }
    let cmaf = [
        "-movflags",
        "+frag_keyframe+empty_moov+default_base_moof+cmaf",
        "-f",
        "mp4",
    ];
    for (mode, name, tag) in [(1u8, "cmaf-hev1", None), (3, "cmaf-hvc1", Some("hvc1"))] {
        let mut container = vec![];
        if let Some(t) = tag {
            container.extend(["-tag:v", t]);
        }
        container.extend(cmaf);
        let file = encode(
            &format!("{name}.mp4"),
            "yuv420p",
            &format!("{common}:slices=2:wpp=1"),
            &container,
        );
        let mut seed = vec![mode];
        seed.extend_from_slice(&file);
        std::fs::write(out.join(format!("seed-{name}")), seed).unwrap();
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
