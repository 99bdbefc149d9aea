//! Text subtitle tracks inside a media file (mov_text, SubRip, ASS/SSA, WebVTT): their cues as
//! plain text lines, read with FFmpeg's subtitle decoders.
//!
//! Image-based tracks (PGS, DVB, VobSub) carry pictures, not text: they are listed as skipped.
//! Reading demuxes the file once without decoding any video; a file without subtitle streams
//! is not read beyond its headers, and an HLS playlist is not read at all.

use crate::{Limits, MediaError};
use ffmpeg_next as ffm;
use std::path::Path;

/// One cue of a text track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextCue {
    /// Start, milliseconds from the start of the file.
    pub start_ms: u64,
    /// End, milliseconds (after the start).
    pub end_ms: u64,
    /// Plain text, lines joined by `\n` (ASS override blocks removed, `\N` as a line break).
    pub text: String,
}

/// A text track of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextStream {
    /// Stream index in the file.
    pub index: usize,
    /// The stream's `language` tag (ISO 639-2 in most containers), if it has one.
    pub language: Option<String>,
    /// FFmpeg's codec name (`mov_text`, `subrip`, `ass`, …).
    pub codec: String,
    /// The cues, by start time.
    pub cues: Vec<TextCue>,
}

/// A subtitle stream that was not read as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedStream {
    /// Stream index in the file.
    pub index: usize,
    /// FFmpeg's codec name (`hdmv_pgs_subtitle`, `dvd_subtitle`, …).
    pub codec: String,
    /// Why: image-based, or no decoder.
    pub reason: String,
}

/// Most cues read from one file (all its text streams together).
pub const MAX_CUES: usize = 200_000;

/// The text of an ASS dialogue event as FFmpeg gives it (`ReadOrder,Layer,Style,Name,MarginL,
/// MarginR,MarginV,Effect,Text`), or plain text: override blocks `{…}` removed, `\N` and `\n`
/// as line breaks, `\h` as a space; blank lines dropped.
pub fn ass_text(event: &str, ass: bool) -> String {
    let text = if ass {
        event.splitn(9, ',').nth(8).unwrap_or("")
    } else {
        event
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '{'
            && let Some(end) = rest.find('}')
        {
            rest = &rest[end + 1..];
            continue;
        }
        if c == '\\' {
            match rest.as_bytes().get(1) {
                Some(b'N' | b'n') => {
                    out.push('\n');
                    rest = &rest[2..];
                    continue;
                }
                Some(b'h') => {
                    out.push(' ');
                    rest = &rest[2..];
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads every text subtitle track of `path`, under `limits` (the file checks of
/// [`crate::Decoder::open_with_limits`]), and lists the subtitle streams it could not read as
/// text.
///
/// # Errors
/// The file cannot be opened as media ([`MediaError::NotMedia`], [`MediaError::Truncated`]), or
/// holds more than [`MAX_CUES`] cues ([`MediaError::NotMedia`], naming the bound).
pub fn read_text_tracks(
    path: &Path,
    limits: &Limits,
) -> Result<(Vec<TextStream>, Vec<SkippedStream>), MediaError> {
    limits.validate()?;
    // An HLS playlist (a capture read by the detector) carries no text track this reads.
    if crate::decode::is_hls(path) {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut input = crate::probe::open_input(path)?;
    // Cue times are made relative to the video's first timestamp, the packager's time 0.
    let origin_ms = crate::probe::origin_seconds(&input) * 1000.0;
    let mut decoders: Vec<(usize, ffm::decoder::Subtitle, ffm::Rational, bool)> = Vec::new();
    let mut streams: Vec<TextStream> = Vec::new();
    let mut skipped: Vec<SkippedStream> = Vec::new();
    for s in input.streams() {
        let params = s.parameters();
        if params.medium() != ffm::media::Type::Subtitle {
            continue;
        }
        let id = params.id();
        let codec = format!("{id:?}").to_ascii_lowercase();
        let bitmap = matches!(
            id,
            ffm::codec::Id::HDMV_PGS_SUBTITLE
                | ffm::codec::Id::DVB_SUBTITLE
                | ffm::codec::Id::DVD_SUBTITLE
                | ffm::codec::Id::XSUB
                | ffm::codec::Id::DVB_TELETEXT
        );
        if bitmap {
            skipped.push(SkippedStream {
                index: s.index(),
                codec,
                reason: "image-based subtitles (pictures, not text)".into(),
            });
            continue;
        }
        let opened = ffm::codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().subtitle());
        let Ok(decoder) = opened else {
            skipped.push(SkippedStream {
                index: s.index(),
                codec,
                reason: "no text decoder for it in this FFmpeg".into(),
            });
            continue;
        };
        let ass = !matches!(id, ffm::codec::Id::TEXT);
        decoders.push((s.index(), decoder, s.time_base(), ass));
        streams.push(TextStream {
            index: s.index(),
            language: s.metadata().get("language").map(str::to_owned),
            codec,
            cues: Vec::new(),
        });
    }
    if decoders.is_empty() {
        return Ok((streams, skipped));
    }
    let mut total = 0usize;
    for (stream, packet) in input.packets() {
        let Some(k) = decoders.iter().position(|d| d.0 == stream.index()) else {
            continue;
        };
        let (_, decoder, tb, ass) = &mut decoders[k];
        let mut sub = ffm::Subtitle::new();
        let Ok(true) = decoder.decode(&packet, &mut sub) else {
            continue;
        };
        let to_ms = |v: i64| {
            v as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)) * 1000.0
        };
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let at = to_ms(pts) - origin_ms;
        let start = at + f64::from(sub.start());
        let end = if sub.end() > sub.start() && sub.end() != u32::MAX {
            at + f64::from(sub.end())
        } else {
            at + to_ms(packet.duration())
        };
        if !(start.is_finite() && end.is_finite()) || end <= start || end <= 0.0 {
            continue;
        }
        let text: Vec<String> = sub
            .rects()
            .filter_map(|r| match r {
                ffm::codec::subtitle::Rect::Ass(a) => Some(ass_text(a.get(), *ass)),
                ffm::codec::subtitle::Rect::Text(t) => Some(ass_text(t.get(), false)),
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect();
        if text.is_empty() {
            continue;
        }
        total += 1;
        if total > MAX_CUES {
            return Err(MediaError::NotMedia {
                path: path.into(),
                reason: format!("more than {MAX_CUES} subtitle cues"),
            });
        }
        streams[k].cues.push(TextCue {
            start_ms: start.max(0.0).round() as u64,
            end_ms: end.round() as u64,
            text: text.join("\n"),
        });
    }
    for s in &mut streams {
        s.cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    }
    Ok((streams, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ass_events_become_plain_lines() {
        assert_eq!(
            ass_text("0,0,Default,,0,0,0,,{\\i1}Hello{\\i0}\\Nworld, again", true),
            "Hello\nworld, again"
        );
        assert_eq!(ass_text("3,0,Top,Ann,0,0,0,,a\\hb", true), "a b");
        assert_eq!(ass_text("plain\n\ntext", false), "plain\ntext");
        assert_eq!(ass_text("no commas", true), "");
    }
}
