//! Subcommand implementations.

mod bench;
mod bench_detect;
pub mod bench_forensic;
pub mod cdn_export;
pub mod crawl;
pub mod detect;
mod detect_follow;
pub mod edge;
mod embed;
mod init;
pub mod key;
mod live;
pub mod revocation;
pub mod session;
pub mod store;
pub mod takedown;

use crate::cli::{BenchCommand, Cli, Command, EncodeOpts};
use crate::exit::{Code, UsageError};
use anyhow::Result;
use leaktrace_core::{SegmentDuration, TitleId};
use leaktrace_embed::PipelineConfig;
use leaktrace_media::Codec;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Code> {
    match cli.command {
        Command::Init(a) => init::run(&a),
        Command::Key(c) => key::run(cli.config.as_deref(), &c),
        Command::Embed(a) => embed::run(cli.config.as_deref(), &a),
        Command::Live(a) => live::run(cli.config.as_deref(), &a),
        Command::Bench(BenchCommand::Encode(a)) => bench::encode(&a),
        Command::Bench(BenchCommand::Flicker(a)) => bench::flicker(&a),
        Command::Bench(BenchCommand::Detect(a)) => bench_detect::run(cli.config.as_deref(), &a),
        Command::Bench(BenchCommand::Forensic(a)) => bench_forensic::run(&a),
        Command::Session(c) => session::run(cli.config.as_deref(), &c),
        Command::Edge(a) => edge::run(cli.config.as_deref(), &a),
        Command::Cdn(c) => cdn_export::run(cli.config.as_deref(), &c),
        Command::Detect(a) => detect::run(cli.config.as_deref(), &a),
        Command::Takedown(c) => takedown::run(cli.config.as_deref(), &c),
        Command::Evidence(c) => takedown::run_evidence(cli.config.as_deref(), &c),
        Command::Crawl(a) => crawl::crawl(cli.config.as_deref(), &a),
        Command::Worker(a) => crawl::worker(cli.config.as_deref(), &a),
        Command::Findings(c) => crawl::findings(cli.config.as_deref(), &c),
    }
}

/// An audio bitrate: bits per second, or kilobits with a `k` suffix (`128k`). The range is
/// checked by the packager, which names it.
pub fn audio_bitrate(value: &str) -> Result<u32> {
    let v = value.trim();
    let (digits, scale) = match v.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1000),
        None => (v, 1),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            UsageError(format!(
                "--audio-bitrate {value:?}: expected bits per second like 128000 or 128k"
            ))
            .into()
        })
}

/// Parses `2s`, `2000ms` or `1.5s` into a segment duration (1 to 6 s).
pub fn parse_segment(s: &str) -> Result<SegmentDuration> {
    let t = s.trim();
    let ms = if let Some(v) = t.strip_suffix("ms") {
        v.trim().parse::<u64>().ok()
    } else if let Some(v) = t.strip_suffix('s') {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| (x * 1000.0).round() as u64)
    } else {
        None
    };
    let ms = ms.ok_or_else(|| {
        UsageError(format!(
            "invalid segment duration {s:?} (expected e.g. 2s or 2000ms, from 1s to 6s)"
        ))
    })?;
    SegmentDuration::from_millis(ms).map_err(|e| UsageError(e.to_string()).into())
}

/// The title, codec, CRF and mask the packaging commands (`embed`, `live`) share, checked:
/// `(title, codec, mask)`; an out-of-range CRF or strength is a usage error naming the range.
pub fn encode_basics(
    title: &str,
    codec: &str,
    crf: Option<u8>,
    strength: f32,
) -> Result<(TitleId, Codec, leaktrace_embed::MaskParams)> {
    let title = TitleId::new(title.to_owned()).map_err(|e| UsageError(e.to_string()))?;
    let codec: Codec = codec
        .parse()
        .map_err(|e: leaktrace_media::MediaError| UsageError(e.to_string()))?;
    if let Some(crf) = crf {
        let r = codec.crf_range();
        if !r.contains(&crf) {
            return Err(UsageError(format!(
                "crf {crf} out of range for {} (expected {} to {})",
                codec.name(),
                r.start(),
                r.end()
            ))
            .into());
        }
    }
    let range = leaktrace_embed::mask::STRENGTH_RANGE;
    if !range.contains(&strength) {
        return Err(UsageError(format!(
            "strength {strength} out of range (expected {} to {})",
            range.start(),
            range.end()
        ))
        .into());
    }
    Ok((
        title,
        codec,
        leaktrace_embed::MaskParams::default().scaled(strength),
    ))
}

/// Validated pipeline settings from the shared options.
pub fn pipeline_config(o: &EncodeOpts) -> Result<PipelineConfig> {
    let e = &o.settings;
    let (title, codec, mask) = encode_basics(&o.title, &e.codec, e.crf, e.strength)?;
    let mut cfg = PipelineConfig::new(title);
    cfg.segment = parse_segment(&e.segment)?;
    cfg.codec = codec;
    cfg.crf = e.crf;
    cfg.preset = e.preset.clone();
    cfg.ladder = e.ladder.clone();
    cfg.threads = e.threads;
    cfg.bit_depth = e.bit_depth;
    cfg.max_frames = o.max_frames;
    cfg.mask = mask;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_parsing() {
        assert_eq!(parse_segment("2s").unwrap().as_millis(), 2000);
        assert_eq!(parse_segment("1500ms").unwrap().as_millis(), 1500);
        assert_eq!(parse_segment("6s").unwrap().as_millis(), 6000);
        for bad in ["7s", "0s", "abc", "2", "-1s", "NaNs"] {
            assert!(parse_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audio_bitrates_read_with_or_without_k() {
        assert_eq!(audio_bitrate("128k").unwrap(), 128_000);
        assert_eq!(audio_bitrate("96000").unwrap(), 96_000);
        assert!(audio_bitrate("fast").is_err());
        assert!(audio_bitrate("99999999k").is_err());
    }
}
