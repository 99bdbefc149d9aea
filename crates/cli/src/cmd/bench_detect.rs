//! `leaktrace bench detect`: detection time against FFmpeg's own decode time.
//!
//! Measured in one run, alternating: the time of `leaktrace_detect::decide` on the suspect
//! (one decode pass, registration in time, space and luma, per-position decisions with decoys;
//! accusation over the registry is benchmarked separately) against the time the `ffmpeg` CLI
//! takes to decode the suspect, plus the reference mezzanine when `--mezzanine` is given, to
//! a null sink. One discarded warm-up round first (page cache); the ratio reported is the
//! median over `--repeat` rounds. Target: ≤ 1.5.

use crate::cli::BenchDetectArgs;
use crate::config::Loaded;
use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use leaktrace_core::TitleId;
use leaktrace_detect::{DecideOptions, decide};
use leaktrace_reference::Reference;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn ffmpeg_decode(path: &Path) -> Result<f64> {
    let t = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "null", "-"])
        .stdin(Stdio::null())
        .status()
        .context("running ffmpeg (is it installed?)")?;
    if !status.success() {
        anyhow::bail!("ffmpeg could not decode {}", path.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Runs `leaktrace bench detect`.
pub fn run(config: Option<&Path>, a: &BenchDetectArgs) -> Result<Code> {
    let title = TitleId::new(a.title.clone()).map_err(|e| UsageError(e.to_string()))?;
    let key = Loaded::find(config)?.master_key()?;
    let reference = Reference::load(&a.reference)
        .with_context(|| format!("loading the reference index {}", a.reference.display()))?;
    let pattern_key = key.pattern_key(&title);
    let opts = DecideOptions::default();
    let (mut ratios, mut detect_s, mut decode_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut suspect_ratios, mut suspect_s) = (Vec::new(), Vec::new());
    let mut positions = 0;
    for round in 0..=a.repeat {
        let suspect_decode = ffmpeg_decode(&a.suspect)?;
        let mut decode = suspect_decode;
        if let Some(m) = &a.mezzanine {
            decode += ffmpeg_decode(m)?;
        }
        let t = Instant::now();
        let d = decide(&a.suspect, &reference, &pattern_key, &opts)?;
        let detect = t.elapsed().as_secs_f64();
        positions = d.positions.len();
        if round == 0 {
            continue;
        }
        ratios.push(detect / decode.max(1e-9));
        suspect_ratios.push(detect / suspect_decode.max(1e-9));
        suspect_s.push(suspect_decode);
        detect_s.push(detect);
        decode_s.push(decode);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ratio, det, dec) = (median(&ratios), median(&detect_s), median(&decode_s));
    let (suspect_ratio, sdec) = (median(&suspect_ratios), median(&suspect_s));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "suspect": a.suspect, "mezzanine": a.mezzanine, "positions": positions,
                "runs": a.repeat, "detect_seconds": det, "ffmpeg_decode_seconds": dec,
                "ratios": ratios, "ratio": ratio, "target": 1.5,
                "suspect_decode_seconds": sdec, "suspect_only_ratio": suspect_ratio,
            })
        );
    } else {
        println!("suspect      {}", a.suspect.display());
        if let Some(m) = &a.mezzanine {
            println!("mezzanine    {}", m.display());
        }
        println!("positions    {positions} decided");
        println!("detect       {det:.2} s (median of {})", a.repeat);
        if a.mezzanine.is_some() {
            println!("ffmpeg       {sdec:.2} s suspect + mezzanine {dec:.2} s, decode to null");
            println!(
                "ratio        {ratio:.2} against suspect + mezzanine (target <= 1.5); \
                 {suspect_ratio:.2} against the suspect alone (target <= 1.3)"
            );
        } else {
            println!("ffmpeg       {dec:.2} s decode to null");
            println!("ratio        {ratio:.2} against the suspect alone (target <= 1.3)");
        }
    }
    Ok(Code::Success)
}
