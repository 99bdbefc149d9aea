//! Invisibility: PSNR-Y and SSIM-Y with the system ffmpeg's `psnr` and `ssim` filters, VMAF
//! with an ffmpeg that has `libvmaf` (the static build of PyPI `imageio-ffmpeg`, as
//! `tools/quality.sh` uses), and the mark-only PSNR (marked vs unmarked source frames before
//! any encoding, computed with the embedder itself).

use leaktrace_core::{MasterKey, SegmentDuration, TitleId};
use leaktrace_embed::{EmbedConfig, Embedder, FrameTime, LumaPlane, MaskParams};
use leaktrace_media::{Decoder, Samples};
use serde::Serialize;
use std::path::Path;
use std::process::Command;

use crate::ForensicError;

/// Full-reference quality of one clip against another.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quality {
    /// Frames compared.
    pub frames: usize,
    /// Mean per-frame PSNR-Y (identical frames count as 100 dB).
    pub psnr_y_mean: f64,
    /// Worst frame PSNR-Y.
    pub psnr_y_min: f64,
    /// Mean SSIM-Y.
    pub ssim_y_mean: f64,
    /// Worst frame SSIM-Y.
    pub ssim_y_min: f64,
}

fn parse_field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key))
        .map(|v| {
            if v == "inf" {
                100.0
            } else {
                v.parse().unwrap_or(f64::NAN)
            }
        })
}

fn mean_min(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (
        v.iter().sum::<f64>() / v.len() as f64,
        v.iter().copied().fold(f64::INFINITY, f64::min),
    )
}

fn read(path: &Path) -> Result<String, ForensicError> {
    std::fs::read_to_string(path).map_err(|source| ForensicError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// PSNR-Y and SSIM-Y of `distorted` against `reference` (same size; frames paired from the
/// start). `work` holds the stats files (its path must be free of `:,;[]'` characters).
pub fn psnr_ssim(
    distorted: &Path,
    reference: &Path,
    work: &Path,
) -> Result<Quality, ForensicError> {
    let (p, s) = (work.join("psnr.log"), work.join("ssim.log"));
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS,split[d1][d2];[1:v]setpts=PTS-STARTPTS,split[r1][r2];[d1][r1]psnr=stats_file={};[d2][r2]ssim=stats_file={}",
        p.display(),
        s.display()
    );
    crate::attack::ffmpeg(
        "psnr/ssim",
        &[
            "-i".into(),
            distorted.to_string_lossy().into_owned(),
            "-i".into(),
            reference.to_string_lossy().into_owned(),
            "-lavfi".into(),
            graph,
            "-f".into(),
            "null".into(),
            "-".into(),
        ],
    )?;
    let psnr: Vec<f64> = read(&p)?
        .lines()
        .filter_map(|l| parse_field(l, "psnr_y:"))
        .collect();
    let ssim: Vec<f64> = read(&s)?
        .lines()
        .filter_map(|l| parse_field(l, "Y:"))
        .collect();
    let (pm, pn) = mean_min(&psnr);
    let (sm, sn) = mean_min(&ssim);
    Ok(Quality {
        frames: psnr.len(),
        psnr_y_mean: pm,
        psnr_y_min: pn,
        ssim_y_mean: sm,
        ssim_y_min: sn,
    })
}

/// VMAF (model v0.6.1, pooled mean) of `distorted` against `reference` with `ffmpeg_vmaf`.
pub fn vmaf(
    ffmpeg_vmaf: &Path,
    distorted: &Path,
    reference: &Path,
    work: &Path,
) -> Result<f64, ForensicError> {
    let log = work.join("vmaf.json");
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];[d][r]libvmaf=log_fmt=json:log_path={}:n_threads=2",
        log.display()
    );
    let out = Command::new(ffmpeg_vmaf)
        .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(distorted)
        .arg("-i")
        .arg(reference)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .map_err(|e| ForensicError::Ffmpeg {
            what: "vmaf".into(),
            stderr: format!("cannot start {}: {e}", ffmpeg_vmaf.display()),
        })?;
    if !out.status.success() {
        return Err(ForensicError::Ffmpeg {
            what: "vmaf".into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let v: serde_json::Value =
        serde_json::from_str(&read(&log)?).map_err(crate::error::json("vmaf log"))?;
    v["pooled_metrics"]["vmaf"]["mean"]
        .as_f64()
        .ok_or_else(|| ForensicError::Invalid("vmaf log has no pooled_metrics.vmaf.mean".into()))
}

/// Mark-only PSNR-Y: variant A and B against the unmarked frame, before any encoding.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MarkOnly {
    /// Frames measured.
    pub frames: usize,
    /// Mean per-frame PSNR-Y of A (dB).
    pub a_mean: f64,
    /// Worst frame of A.
    pub a_min: f64,
    /// Mean per-frame PSNR-Y of B.
    pub b_mean: f64,
    /// Worst frame of B.
    pub b_min: f64,
}

fn psnr8(x: &[u8], y: &[u8]) -> f64 {
    let mse = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / x.len().max(1) as f64;
    if mse == 0.0 {
        100.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// Marks every `step`-th frame of `source` (8-bit, at the package size) with the package's
/// mark settings and measures the change.
pub fn mark_only(
    source: &Path,
    key: &MasterKey,
    title: &TitleId,
    segment: SegmentDuration,
    mask: MaskParams,
    step: usize,
) -> Result<MarkOnly, ForensicError> {
    let mut dec = Decoder::open(source).map_err(ForensicError::Media)?;
    let (w, h) = dec.size();
    let fr = dec.frame_rate();
    let mut emb = Embedder::new(key, title, EmbedConfig { segment, mask });
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut i = 0usize;
    while let Some(f) = dec.next_frame().map_err(ForensicError::Media)? {
        if i.is_multiple_of(step.max(1)) {
            let Samples::U8(y) = &f.y else {
                return Err(ForensicError::Invalid(
                    "mark-only PSNR needs an 8-bit source".into(),
                ));
            };
            let plane = LumaPlane::new(y, w, h, w, 8)?;
            let m = emb.mark_frame(
                &plane,
                FrameTime::new(i as i64, i64::from(fr.den), i64::from(fr.num)),
            )?;
            a.push(psnr8(&m.a, y));
            b.push(psnr8(&m.b, y));
        }
        i += 1;
    }
    let (am, an) = mean_min(&a);
    let (bm, bn) = mean_min(&b);
    Ok(MarkOnly {
        frames: a.len(),
        a_mean: am,
        a_min: an,
        b_mean: bm,
        b_min: bn,
    })
}
