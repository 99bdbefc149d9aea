//! `leaktrace bench encode`: the cost of the A/B pair against one plain encode, and of the
//! audio renditions and Common Encryption against the clear video-only package.

use crate::cli::{BenchEncodeArgs, BenchFlickerArgs};
use crate::exit::Code;
use anyhow::{Context, Result};
use leaktrace_core::{KeyVersion, MasterKey};
use leaktrace_embed::{PipelineConfig, embed_file, encode_plain};
use leaktrace_media::{Decoder, Samples};

pub fn encode(a: &BenchEncodeArgs) -> Result<Code> {
    let mut full_cfg = super::pipeline_config(&a.encode)?;
    // The full package: audio renditions and Common Encryption with a fixed bench key.
    full_cfg.encryption = match a.encrypt.as_str() {
        "none" => None,
        scheme => {
            let scheme: leaktrace_media::cenc::Scheme = scheme
                .parse()
                .map_err(|e: leaktrace_media::MediaError| crate::exit::UsageError(e.to_string()))?;
            let keys = leaktrace_embed::drm::KeyFile::parse(
                "video:000102030405060708090a0b0c0d0e0f:101112131415161718191a1b1c1d1e1f\n\
                 audio:202122232425262728292a2b2c2d2e2f:303132333435363738393a3b3c3d3e3f\n",
            )
            .map_err(anyhow::Error::msg)?;
            Some(leaktrace_embed::drm::Encryption::new(
                scheme,
                keys,
                Vec::new(),
            ))
        }
    };
    // The video-only package is what the plain encode is compared with; the full package
    // (with the audio renditions) is compared with the video-only one, when there is audio.
    let video_cfg = PipelineConfig {
        audio: false,
        encryption: None,
        ..full_cfg.clone()
    };
    let audio_tracks =
        leaktrace_media::audio::audio_streams(&a.input, &leaktrace_media::Limits::default())?.len();
    let arms = if audio_tracks > 0 || full_cfg.encryption.is_some() {
        3
    } else {
        2
    };
    // The key does not change the cost; a fixed bench key keeps the run self-contained.
    let key = MasterKey::from_bytes([0x5a; 32], KeyVersion::new(1));
    let tmp = tempfile::Builder::new()
        .prefix("leaktrace-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let base = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let plain_dir = base.join("plain");
    let outs = [base.join("ab"), base.join("ab-full")];
    let (mut ratios, mut extra_ratios) = (Vec::new(), Vec::new());
    let (mut plain_s, mut ab_s, mut full_s) = (Vec::new(), Vec::new(), Vec::new());
    // CPU seconds of every thread of the process (the encoders' own threads included): on a
    // shared machine the CPU ratio moves less than the wall-clock one.
    let (mut plain_cpu, mut ab_cpu, mut cpu_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut last, mut last_full) = (None, None);
    // One discarded warm-up round first (page cache, encoder start-up), then the measured runs.
    for run in 0..=a.repeat {
        // Rotate which goes first, so cache and clock effects fall on every side.
        let mut round = [0f64; 3];
        let mut cpu = [0f64; 3];
        for step in 0..arms {
            let arm = (step + run as usize) % arms;
            let cpu0 = process_cpu_seconds();
            if arm == 0 {
                if plain_dir.exists() {
                    std::fs::remove_dir_all(&plain_dir)
                        .with_context(|| format!("clearing {}", plain_dir.display()))?;
                }
                std::fs::create_dir_all(&plain_dir)
                    .with_context(|| format!("creating {}", plain_dir.display()))?;
                round[0] = encode_plain(&a.input, &plain_dir, &video_cfg)?.elapsed_seconds;
                cpu[0] = process_cpu_seconds() - cpu0;
            } else {
                let out = &outs[arm - 1];
                if out.exists() {
                    std::fs::remove_dir_all(out)
                        .with_context(|| format!("clearing {}", out.display()))?;
                }
                let cfg = if arm == 1 { &video_cfg } else { &full_cfg };
                let summary = embed_file(&a.input, out, &key, cfg, &mut |_| {})?;
                round[arm] = summary.elapsed_seconds;
                cpu[arm] = process_cpu_seconds() - cpu0;
                if arm == 1 {
                    last = Some(summary);
                } else {
                    last_full = Some(summary);
                }
            }
        }
        if run == 0 {
            continue;
        }
        ratios.push(round[1] / round[0].max(1e-9));
        cpu_ratios.push(cpu[1] / cpu[0].max(1e-9));
        plain_cpu.push(cpu[0]);
        ab_cpu.push(cpu[1]);
        plain_s.push(round[0]);
        ab_s.push(round[1]);
        if arms == 3 {
            extra_ratios.push(round[2] / round[1].max(1e-9));
            full_s.push(round[2]);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let ratio = median(&ratios).unwrap_or(f64::NAN);
    let ab = last.ok_or_else(|| anyhow::anyhow!("no run"))?;
    let plain_median = median(&plain_s).unwrap_or(f64::NAN);
    let ab_median = median(&ab_s).unwrap_or(f64::NAN);
    let cpu_ratio = median(&cpu_ratios).unwrap_or(f64::NAN);
    let plain_cpu_median = median(&plain_cpu).unwrap_or(f64::NAN);
    let ab_cpu_median = median(&ab_cpu).unwrap_or(f64::NAN);
    let full_median = median(&full_s);
    let extra_ratio = median(&extra_ratios);
    let audio_renditions = last_full.map_or(0, |s| s.audio_renditions.len());
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "input": a.input, "frames": ab.frames, "renditions": ab.renditions.len(),
                "codec": ab.codec, "runs": a.repeat, "plain_seconds": plain_median, "ab_seconds": ab_median,
                "ratios": ratios, "mark_seconds": ab.mark_seconds, "ratio": ratio, "target": 1.9,
                "plain_cpu_seconds": plain_cpu_median, "ab_cpu_seconds": ab_cpu_median,
                "cpu_ratios": cpu_ratios, "cpu_ratio": cpu_ratio,
                "audio_tracks": audio_tracks, "audio_renditions": audio_renditions,
                "full_seconds": full_median, "extra_ratios": extra_ratios,
                "encryption": a.encrypt,
                "extra_ratio": extra_ratio, "extra_target": 1.05,
            })
        );
    } else {
        println!("input        {}", a.input.display());
        println!(
            "frames       {} x {} rendition(s), {}",
            ab.frames,
            ab.renditions.len(),
            ab.codec
        );
        println!("plain encode {plain_median:.2} s (median of {})", a.repeat);
        println!(
            "A/B package  {ab_median:.2} s, video only (median; mask+mark {:.2} s in the last run)",
            ab.mark_seconds
        );
        println!(
            "ratio        {ratio:.3}, median of [{}] (target <= 1.9)",
            listed(&ratios)
        );
        println!(
            "CPU          plain {plain_cpu_median:.2} s, A/B package {ab_cpu_median:.2} s: ratio {cpu_ratio:.3}, median of [{}]",
            listed(&cpu_ratios)
        );
        if let (Some(full), Some(extra)) = (full_median, extra_ratio) {
            println!(
                "full package {full:.2} s, with {audio_renditions} audio rendition(s), encryption {} (median)",
                a.encrypt
            );
            println!(
                "extras cost  {extra:.3} x the clear video-only package, median of [{}] (target <= 1.05)",
                listed(&extra_ratios)
            );
        } else {
            println!("extras cost  not measured: no audio track and --encrypt none");
        }
    }
    Ok(Code::Success)
}

/// CPU seconds used so far by every thread of this process (NaN where that is not readable).
fn process_cpu_seconds() -> f64 {
    leaktrace_forensic::process_cpu().map_or(f64::NAN, |[own, _children]| own)
}

/// `[1.000, 2.000]`-style list of ratios.
fn listed(ratios: &[f64]) -> String {
    let list: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    list.join(", ")
}

/// Per-frame luma as f32 (8-bit scale).
fn luma_f32(f: &leaktrace_media::VideoFrame) -> Result<Vec<f32>> {
    Ok(match &f.y {
        Samples::U8(y) => y.iter().map(|&v| f32::from(v)).collect(),
        Samples::U16(y) => y.iter().map(|&v| f32::from(v) / 4.0).collect(),
        _ => anyhow::bail!("unsupported sample type in {:?}", f.layout),
    })
}

/// Flicker: the mark residual `r_t = marked_t - plain_t` should change at segment boundaries
/// (a new position's pattern) no more visibly than content changes anyway. Reports the mean
/// absolute frame-to-frame change of the residual at boundaries and inside segments, next to
/// the content's own frame-to-frame change, and the residual's RMS.
pub fn flicker(a: &BenchFlickerArgs) -> Result<Code> {
    let seg = super::parse_segment(&a.segment)?;
    let mut dm = Decoder::open(&a.marked)?;
    let mut dp = Decoder::open(&a.plain)?;
    anyhow::ensure!(
        dm.size() == dp.size(),
        "the two files differ in size: {:?} vs {:?}",
        dm.size(),
        dp.size()
    );
    let fr = dp.frame_rate();
    let (mut prev_r, mut prev_p): (Option<Vec<f32>>, Option<Vec<f32>>) = (None, None);
    let (mut b_sum, mut b_n, mut i_sum, mut i_n, mut c_sum, mut c_n, mut r2, mut px) =
        (0f64, 0u64, 0f64, 0u64, 0f64, 0u64, 0f64, 0f64);
    let mut b_max = 0f64;
    let mut index = 0i64;
    while let (Some(m), Some(p)) = (dm.next_frame()?, dp.next_frame()?) {
        let (lm, lp) = (luma_f32(&m)?, luma_f32(&p)?);
        let r: Vec<f32> = lm.iter().zip(&lp).map(|(x, y)| x - y).collect();
        r2 += r.iter().map(|v| f64::from(v * v)).sum::<f64>();
        px += r.len() as f64;
        let pos = seg.position_at(index * i64::from(fr.den), i64::from(fr.num));
        let prev_pos = seg.position_at((index - 1).max(0) * i64::from(fr.den), i64::from(fr.num));
        if let (Some(pr), Some(pp)) = (&prev_r, &prev_p) {
            let d = r
                .iter()
                .zip(pr)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum::<f64>()
                / r.len() as f64;
            let c = lp
                .iter()
                .zip(pp)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum::<f64>()
                / lp.len() as f64;
            c_sum += c;
            c_n += 1;
            if pos != prev_pos {
                b_sum += d;
                b_n += 1;
                b_max = b_max.max(d);
            } else {
                i_sum += d;
                i_n += 1;
            }
        }
        prev_r = Some(r);
        prev_p = Some(lp);
        index += 1;
    }
    let mean = |s: f64, n: u64| if n == 0 { 0.0 } else { s / n as f64 };
    let report = serde_json::json!({
        "frames": index,
        "boundaries": b_n,
        "residual_rms": (r2 / px.max(1.0)).sqrt(),
        "residual_change_at_boundaries_mean_abs": mean(b_sum, b_n),
        "residual_change_at_boundaries_max_abs": b_max,
        "residual_change_inside_segments_mean_abs": mean(i_sum, i_n),
        "content_change_mean_abs": mean(c_sum, c_n),
    });
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(Code::Success)
}
