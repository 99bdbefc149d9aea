//! Invisibility versus robustness of one mask setting, measured in one run:
//!
//! ```text
//! cargo run --release -p leaktrace-embed --example tradeoff -- CLIP RUNG FRAMES STRENGTH TEXTURE_GAIN [CRF]
//! ```
//!
//! Embeds CLIP at RUNG (first FRAMES frames) with the given mask parameters, encodes the plain
//! stream with the same settings, and prints PSNR-Y of A against plain (mean and worst frame)
//! and, after an x264 re-encode of A and B at CRF (default 40), the per-position correlation
//! with the expected mark (weakest correct-sign value and mean). Used to choose the default
//! mask; see docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report

use leaktrace_core::{KeyVersion, MasterKey, Position, TitleId};
use leaktrace_embed::{MaskParams, PipelineConfig, embed_file, encode_plain};
use leaktrace_media::{Decoder, Samples};
use leaktrace_reference::Reference;
use leaktrace_reference::position_means;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

fn luma(f: &leaktrace_media::VideoFrame) -> Result<Vec<f64>, Box<dyn Error>> {
    Ok(match &f.y {
        Samples::U8(y) => y.iter().map(|&v| f64::from(v)).collect(),
        Samples::U16(y) => y.iter().map(|&v| f64::from(v) / 4.0).collect(),
        _ => return Err("unsupported sample type".into()),
    })
}

fn psnr(a: &Path, b: &Path) -> Result<(f64, f64), Box<dyn Error>> {
    let (mut da, mut db) = (Decoder::open(a)?, Decoder::open(b)?);
    let (mut sum, mut worst, mut n) = (0.0, f64::MAX, 0.0);
    while let (Some(x), Some(y)) = (da.next_frame()?, db.next_frame()?) {
        let (x, y) = (luma(&x)?, luma(&y)?);
        let mse = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            / x.len() as f64;
        let p = if mse == 0.0 {
            100.0
        } else {
            10.0 * (255.0 * 255.0 / mse).log10()
        };
        sum += p;
        worst = f64::min(worst, p);
        n += 1.0;
    }
    Ok((sum / n, worst))
}

fn join(dir: &Path, out: &Path) -> Result<(), Box<dyn Error>> {
    let mut bytes = std::fs::read(dir.join("init.mp4"))?;
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "m4s"))
        .collect();
    segs.sort();
    for s in segs {
        bytes.extend(std::fs::read(s)?);
    }
    std::fs::write(out, bytes)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        return Err("usage: tradeoff CLIP RUNG FRAMES STRENGTH TEXTURE_GAIN [CRF]".into());
    }
    let (clip, rung, frames) = (PathBuf::from(&a[1]), a[2].clone(), a[3].parse::<u64>()?);
    let mask = MaskParams {
        strength: a[4].parse()?,
        texture_gain: a[5].parse()?,
    };
    let crf = a.get(6).map(|s| s.as_str()).unwrap_or("40").to_string();
    let tmp = tempfile::tempdir()?;
    let key = MasterKey::from_bytes([0x11; 32], KeyVersion::new(1));
    let title = TitleId::new("tradeoff")?;
    let mut cfg = PipelineConfig::new(title.clone());
    cfg.ladder = Some(rung.clone());
    cfg.max_frames = Some(frames);
    cfg.mask = mask;
    let pkg = tmp.path().join("pkg");
    embed_file(&clip, &pkg, &key, &cfg, &mut |_| {})?;
    encode_plain(&clip, tmp.path(), &cfg)?;
    let plain = tmp.path().join(format!("{rung}.mp4"));
    let reference = Reference::load(&pkg.join("reference"))?;
    let mut line = format!("strength {} texture {}:", mask.strength, mask.texture_gain);
    let mut corr = Vec::new();
    for (v, sign) in [("a", 1.0), ("b", -1.0)] {
        let joined = tmp.path().join(format!("{v}.mp4"));
        join(&pkg.join(&rung).join(v), &joined)?;
        if v == "a" {
            let (m, w) = psnr(&joined, &plain)?;
            line.push_str(&format!(" PSNR-Y A/plain mean {m:.2} worst {w:.2};"));
        }
        let attacked = tmp.path().join(format!("{v}-att.mp4"));
        let st = Command::new("ffmpeg")
            .args(["-y", "-loglevel", "error", "-i"])
            .arg(&joined)
            .args(["-c:v", "libx264", "-preset", "medium", "-crf", &crf])
            .arg(&attacked)
            .status()?;
        if !st.success() {
            return Err("ffmpeg failed".into());
        }
        for (p, mean) in position_means(&attacked, &reference.meta)?
            .iter()
            .enumerate()
        {
            if let Some(c) =
                reference.correlate(&key.pattern_key(&title), Position::new(p as u32), mean)
            {
                corr.push(c * sign);
            }
        }
    }
    let weakest = corr.iter().cloned().fold(f64::MAX, f64::min);
    let mean = corr.iter().sum::<f64>() / corr.len() as f64;
    println!(
        "{line} CRF {crf} correlation weakest {weakest:.3} mean {mean:.3} over {} segment-variants",
        corr.len()
    );
    Ok(())
}
