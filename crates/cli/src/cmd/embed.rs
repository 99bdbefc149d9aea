//! `leaktrace embed`.

use crate::cli::EmbedArgs;
use crate::config::Loaded;
use crate::exit::Code;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leaktrace_embed::drm::{Encryption, KeyFile, MAX_KEY_FILE_BYTES, parse_pssh};
use leaktrace_embed::{EmbedError, ProgressEvent, SubtitleInput, embed_file};
use leaktrace_media::cenc::Scheme;
use std::path::Path;

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(json: bool) -> ProgressBar {
    let pb = ProgressBar::new(0);
    if json {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:20} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// Feeds pipeline progress events into a bar.
pub fn on_progress(pb: &ProgressBar) -> impl FnMut(ProgressEvent) + '_ {
    move |ev| match ev {
        ProgressEvent::Started { total_frames } => {
            pb.set_length(total_frames);
            pb.set_message("marking + encoding");
        }
        ProgressEvent::Frames(n) => pb.set_position(n),
        ProgressEvent::Stage(s) => pb.set_message(s),
        _ => {}
    }
}

pub fn run(config: Option<&Path>, a: &EmbedArgs) -> Result<Code> {
    let mut cfg = super::pipeline_config(&a.encode)?;
    cfg.subtitles = a.subtitles.iter().map(|s| subtitle_input(s)).collect();
    cfg.mezzanine_subtitles = !a.no_mezzanine_subtitles;
    cfg.audio = !a.no_audio;
    cfg.audio_bitrate = super::audio_bitrate(&a.audio_bitrate)?;
    cfg.encryption = encryption(a)?;
    let loaded = Loaded::find(config)?;
    let key = loaded.master_key()?;
    let pb = progress_bar(a.json);
    let summary = embed_file(&a.mezzanine, &a.out, &key, &cfg, &mut on_progress(&pb));
    pb.finish_and_clear();
    let summary = summary?;
    for s in &summary.skipped_subtitles {
        eprintln!("warning: subtitles not packaged: {s}");
    }
    super::store::record_title(&loaded, &summary)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "embedded {} -> {} ({} frames, {} positions of {} ms, {:.1} s content) in {:.1} s ({:.1} fps, marking {:.1} s)",
            summary.title,
            summary.output.display(),
            summary.frames,
            summary.positions,
            summary.segment_ms,
            summary.duration_seconds,
            summary.elapsed_seconds,
            summary.frames as f64 / summary.elapsed_seconds.max(1e-9),
            summary.mark_seconds
        );
        for r in &summary.audio_renditions {
            println!(
                "  audio {} ({}, {} ch, {}) from {}, {:.0} kbit/s{}",
                r.name,
                r.role,
                r.channels,
                r.codec,
                r.source,
                r.average_bps as f64 / 1000.0,
                if r.copied { ", copied" } else { "" }
            );
        }
        if let Some(scheme) = &summary.encryption {
            println!("  encrypted: {scheme} (Common Encryption; keys from the key file)");
        }
        if !summary.text_renditions.is_empty() {
            println!("  subtitles: {}", summary.text_renditions.join(", "));
        }
        for r in &summary.renditions {
            println!(
                "  {:>6} {}x{} {:<22} {:>2}-bit  {} segments  A {:.2} MB  B {:.2} MB  peak {:.0} kbit/s",
                r.name,
                r.width,
                r.height,
                r.codec,
                r.bit_depth,
                r.segments,
                r.bytes_a as f64 / 1e6,
                r.bytes_b as f64 / 1e6,
                r.peak_bps as f64 / 1000.0
            );
        }
    }
    Ok(Code::Success)
}

/// The package's encryption from `--encrypt`, `--key-file` and `--pssh`, checked before
/// anything is encoded.
fn encryption(a: &EmbedArgs) -> Result<Option<Encryption>> {
    let (Some(scheme), Some(path)) = (&a.encrypt, &a.key_file) else {
        return Ok(None);
    };
    let scheme: Scheme = scheme
        .parse()
        .map_err(|e: leaktrace_media::MediaError| crate::exit::UsageError(e.to_string()))?;
    let fail = |reason: String| EmbedError::Keys {
        path: path.clone(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if len > MAX_KEY_FILE_BYTES {
        return Err(fail(format!("{len} bytes (at most {MAX_KEY_FILE_BYTES})")).into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let keys = KeyFile::parse(&text).map_err(fail)?;
    let pssh = a
        .pssh
        .iter()
        .map(|p| parse_pssh(p).map_err(crate::exit::UsageError))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Encryption::new(scheme, keys, pssh)))
}

/// `FILE[:LANG]`: the language is what follows the last `:` when it reads as a language tag
/// (letters, digits and `-`); otherwise the whole value is the file and the language `und`.
fn subtitle_input(value: &str) -> SubtitleInput {
    match value.rsplit_once(':') {
        Some((path, lang))
            if !path.is_empty()
                && !lang.is_empty()
                && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            SubtitleInput {
                path: path.into(),
                language: lang.to_owned(),
            }
        }
        _ => SubtitleInput {
            path: value.into(),
            language: "und".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtitle_values_split_on_a_language_suffix_only() {
        let s = subtitle_input("subs/fr.srt:fr");
        assert_eq!(
            (s.path.to_str(), s.language.as_str()),
            (Some("subs/fr.srt"), "fr")
        );
        let s = subtitle_input("subs/en.vtt");
        assert_eq!(
            (s.path.to_str(), s.language.as_str()),
            (Some("subs/en.vtt"), "und")
        );
        let s = subtitle_input("C:/subs/en.vtt");
        assert_eq!(s.language, "und");
        let s = subtitle_input("a:b/c.srt:pt-BR");
        assert_eq!(
            (s.path.to_str(), s.language.as_str()),
            (Some("a:b/c.srt"), "pt-BR")
        );
    }
}
