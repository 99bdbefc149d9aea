//! `leaktrace bench encode`: the cost of the A/B pair against one plain encode.

use crate::cli::{BenchEncodeArgs, BenchFlickerArgs};
use crate::exit::Code;
use anyhow::{Context, Result};
use leaktrace_core::{KeyVersion, MasterKey};
use leaktrace_embed::{embed_file, encode_plain};
use leaktrace_media::{Decoder, Samples};

pub fn encode(a: &BenchEncodeArgs) -> Result<Code> {
    let cfg = super::pipeline_config(&a.encode)?;
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
    let out = base.join("ab");
    let (mut ratios, mut plain_s, mut ab_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    // One discarded warm-up pair first (page cache, encoder start-up), then the measured runs.
    for run in 0..=a.repeat {
        // Alternate which goes first, so cache and clock effects fall on both sides.
        let mut pair = [0f64; 2];
        for step in 0..2 {
            if (step + run) % 2 == 0 {
                if plain_dir.exists() {
                    std::fs::remove_dir_all(&plain_dir)
                        .with_context(|| format!("clearing {}", plain_dir.display()))?;
                }
                std::fs::create_dir_all(&plain_dir)
                    .with_context(|| format!("creating {}", plain_dir.display()))?;
                let plain = encode_plain(&a.input, &plain_dir, &cfg)?;
                pair[0] = plain.elapsed_seconds;
            } else {
                if out.exists() {
                    std::fs::remove_dir_all(&out)
                        .with_context(|| format!("clearing {}", out.display()))?;
                }
                let ab = embed_file(&a.input, &out, &key, &cfg, &mut |_| {})?;
                pair[1] = ab.elapsed_seconds;
                last = Some(ab);
            }
        }
        if run == 0 {
            continue;
        }
        ratios.push(pair[1] / pair[0].max(1e-9));
        plain_s.push(pair[0]);
        ab_s.push(pair[1]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios.clone());
    let ab = last.ok_or_else(|| anyhow::anyhow!("no run"))?;
    let plain_median = median(&mut plain_s.clone());
    let ab_median = median(&mut ab_s.clone());
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "input": a.input, "frames": ab.frames, "renditions": ab.renditions.len(),
                "codec": ab.codec, "runs": a.repeat, "plain_seconds": plain_median, "ab_seconds": ab_median,
                "ratios": ratios, "mark_seconds": ab.mark_seconds, "ratio": ratio, "target": 2.0,
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
            "A/B package  {ab_median:.2} s (median; mask+mark {:.2} s in the last run)",
            ab.mark_seconds
        );
        let list: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "ratio        {ratio:.3}, median of [{}] (target <= 2.0)",
            list.join(", ")
        );
    }
    Ok(Code::Success)
}

/// Per-frame luma as f32 (8-bit scale).
fn luma_f32(f: &leaktrace_media::VideoFrame) -> Vec<f32> {
    match &f.y {
        Samples::U8(y) => y.iter().map(|&v| f32::from(v)).collect(),
        Samples::U16(y) => y.iter().map(|&v| f32::from(v) / 4.0).collect(),
    }
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
        let (lm, lp) = (luma_f32(&m), luma_f32(&p));
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
