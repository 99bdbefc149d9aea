//! Text tracks: SubRip (`.srt`) and WebVTT (`.vtt`) files become WebVTT renditions.
//!
//! Subtitles are the same for every viewer (not A/B): each track is written as plain files the
//! edge serves as they are, in a directory `text-<language>` of the package:
//!
//! - `seg_NNNNN.vtt`, one WebVTT segment per position, aligned with the video segments, holding
//!   every cue that overlaps the position (a cue spanning a boundary is repeated in both
//!   segments with its full times, as HLS allows; players drop the duplicate);
//! - `playlist.m3u8`, the HLS media playlist of those segments (`EXT-X-MEDIA TYPE=SUBTITLES`
//!   in the multivariant playlist);
//! - `subtitles.vtt`, the whole track in one file for DASH (a text `AdaptationSet` whose
//!   `BaseURL` names it: the side-loaded form DASH players read).
//!
//! Cue times are media times: 0 is the start of the title, as in the video segments, so no
//! `X-TIMESTAMP-MAP` is written.
//!
//! The parser is strict where a mistake would show on screen (a cue's timing line, its end
//! before its start) and says where (`line N`); it is bounded by [`SubtitleLimits`] against
//! hostile or broken files. SubRip markup is kept where WebVTT has it (`<i>`, `<b>`, `<u>`),
//! other tags (`<font …>`, `{\an8}`) are dropped, and text that WebVTT would read as markup is
//! escaped.
//!
//! ```
//! use leaktrace_embed::subtitles::{parse, SubtitleFormat, SubtitleLimits};
//! let srt = "1\n00:00:01,000 --> 00:00:02,500\n<i>Hello</i> & welcome\n";
//! let cues = parse(srt, SubtitleFormat::SubRip, &SubtitleLimits::default()).unwrap();
//! assert_eq!((cues[0].start_ms, cues[0].end_ms), (1000, 2500));
//! assert_eq!(cues[0].text, "<i>Hello</i> &amp; welcome");
//! ```

use std::fmt::Write as _;

/// Bounds on a subtitle file (hostile input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubtitleLimits {
    /// Largest file read, bytes.
    pub max_bytes: u64,
    /// Most cues in one file.
    pub max_cues: usize,
    /// Longest cue text, bytes.
    pub max_cue_bytes: usize,
}

impl Default for SubtitleLimits {
    /// 16 MiB, 200 000 cues, 4 KiB of text per cue (a feature film has 1 000–2 000 cues).
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            max_cues: 200_000,
            max_cue_bytes: 4096,
        }
    }
}

/// A subtitle file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubtitleFormat {
    /// SubRip (`.srt`).
    SubRip,
    /// WebVTT (`.vtt`).
    WebVtt,
}

impl SubtitleFormat {
    /// The format of a file name (`.srt` or `.vtt`, any case).
    pub fn of_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "srt" => Some(Self::SubRip),
            "vtt" => Some(Self::WebVtt),
            _ => None,
        }
    }
}

/// One cue: when it shows and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    /// Start, milliseconds of media time.
    pub start_ms: u64,
    /// End, milliseconds of media time (after the start).
    pub end_ms: u64,
    /// WebVTT cue settings (`line:0 align:start`), empty for SubRip.
    pub settings: String,
    /// The cue text as WebVTT cue payload (lines joined by `\n`).
    pub text: String,
}

/// Why a subtitle file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubtitleError {
    /// A line could not be read as what it must be.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was expected.
        reason: String,
    },
    /// The file exceeds a [`SubtitleLimits`] bound.
    #[error("{0}")]
    TooLarge(String),
}

fn syntax(line: usize, reason: impl Into<String>) -> SubtitleError {
    SubtitleError::Syntax {
        line,
        reason: reason.into(),
    }
}

/// Parses a timestamp `[HH:]MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SubRip; `.` accepted too).
fn timestamp(s: &str, line: usize) -> Result<u64, SubtitleError> {
    let bad = || {
        syntax(
            line,
            format!("bad timestamp {s:?} (expected HH:MM:SS,mmm or HH:MM:SS.mmm)"),
        )
    };
    let (clock, frac) = s.rsplit_once([',', '.']).ok_or_else(bad)?;
    if frac.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let num = |p: &str| p.parse::<u64>().map_err(|_| bad());
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, num(m)?, num(s)?),
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        _ => return Err(bad()),
    };
    if m > 59 || sec > 59 {
        return Err(syntax(
            line,
            format!("timestamp {s:?} out of range (minutes and seconds 0 to 59)"),
        ));
    }
    Ok(((h * 60 + m) * 60 + sec) * 1000 + num(frac)?)
}

/// A timing line: `start --> end [settings]`.
fn timing(s: &str, line: usize) -> Result<(u64, u64, String), SubtitleError> {
    let (a, rest) = s
        .split_once("-->")
        .ok_or_else(|| syntax(line, "expected a timing line `start --> end`"))?;
    let rest = rest.trim_start();
    let (b, settings) = rest
        .split_once([' ', '\t'])
        .map_or((rest, ""), |(b, st)| (b, st.trim()));
    let (start, end) = (timestamp(a.trim(), line)?, timestamp(b.trim(), line)?);
    if end <= start {
        return Err(syntax(
            line,
            format!("cue ends at {b:?}, not after its start {:?}", a.trim()),
        ));
    }
    Ok((start, end, settings.to_owned()))
}

/// SubRip markup made WebVTT payload: `<i>`, `<b>`, `<u>` kept, other tags and ASS override
/// blocks (`{\an8}`) dropped, `&`, `<`, `>` escaped otherwise.
fn srt_payload(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
        {
            let tag = rest[1..end].trim().to_ascii_lowercase();
            if matches!(tag.as_str(), "i" | "b" | "u" | "/i" | "/b" | "/u") {
                let _ = write!(out, "<{tag}>");
            }
            rest = &rest[end + 1..];
            continue;
        }
        if c == '{'
            && rest.starts_with("{\\")
            && let Some(end) = rest.find('}')
        {
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Plain text made WebVTT cue payload: `&`, `<`, `>` escaped (so `-->` cannot appear), blank
/// lines dropped.
pub fn plain_payload(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses a subtitle file's text into cues sorted by start time.
///
/// # Errors
/// [`SubtitleError::Syntax`] with the line of a malformed timing line, a cue that ends before it
/// starts, a WebVTT file without its `WEBVTT` header, or cue text containing `-->`;
/// [`SubtitleError::TooLarge`] beyond `limits`.
pub fn parse(
    text: &str,
    format: SubtitleFormat,
    limits: &SubtitleLimits,
) -> Result<Vec<Cue>, SubtitleError> {
    if text.len() as u64 > limits.max_bytes {
        return Err(SubtitleError::TooLarge(format!(
            "{} bytes (at most {} bytes)",
            text.len(),
            limits.max_bytes
        )));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // CRLF, LF and a lone CR all end a line (as in WebVTT): a lone CR kept inside a cue's text
    // would end the line in every WebVTT reader downstream.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0usize;
    if format == SubtitleFormat::WebVtt {
        let first = lines.first().copied().unwrap_or("");
        if !(first == "WEBVTT" || first.starts_with("WEBVTT ") || first.starts_with("WEBVTT\t")) {
            return Err(syntax(1, "a WebVTT file starts with `WEBVTT`"));
        }
        // The header runs to the first blank line.
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
    }
    let mut cues = Vec::new();
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        // A block: up to the next blank line.
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        if format == SubtitleFormat::WebVtt {
            let head = block[0].trim_start();
            if head == "NOTE"
                || head.starts_with("NOTE ")
                || head.starts_with("NOTE\t")
                || head == "STYLE"
                || head == "REGION"
            {
                continue;
            }
        }
        // An identifier (SubRip's counter, WebVTT's optional id) precedes the timing line.
        let t = usize::from(!block[0].contains("-->"));
        let Some(timing_line) = block.get(t) else {
            return Err(syntax(
                start + 1,
                "a cue without a timing line `start --> end`",
            ));
        };
        let (start_ms, end_ms, settings) = timing(timing_line, start + t + 1)?;
        let body = &block[t + 1..];
        if let Some(k) = body.iter().position(|l| l.contains("-->")) {
            return Err(syntax(
                start + t + 2 + k,
                "cue text contains `-->` (a missing blank line between cues?)",
            ));
        }
        let raw = body.join("\n");
        let text = match format {
            // A line left blank by dropped markup (`{\an8}` alone) would end the cue in the
            // WebVTT output: such lines go.
            SubtitleFormat::SubRip => srt_payload(&raw)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
            SubtitleFormat::WebVtt => raw,
        };
        if text.len() > limits.max_cue_bytes {
            return Err(SubtitleError::TooLarge(format!(
                "cue at line {} has {} bytes of text (at most {})",
                start + 1,
                text.len(),
                limits.max_cue_bytes
            )));
        }
        if cues.len() >= limits.max_cues {
            return Err(SubtitleError::TooLarge(format!(
                "more than {} cues",
                limits.max_cues
            )));
        }
        cues.push(Cue {
            start_ms,
            end_ms,
            settings: if format == SubtitleFormat::WebVtt {
                settings
            } else {
                String::new()
            },
            text,
        });
    }
    cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    Ok(cues)
}

fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn write_cue(out: &mut String, c: &Cue) {
    let _ = write!(out, "{} --> {}", vtt_time(c.start_ms), vtt_time(c.end_ms));
    if !c.settings.is_empty() {
        let _ = write!(out, " {}", c.settings);
    }
    out.push('\n');
    if !c.text.is_empty() {
        out.push_str(&c.text);
        out.push('\n');
    }
    out.push('\n');
}

/// A WebVTT document of `cues`.
pub fn webvtt<'a>(cues: impl IntoIterator<Item = &'a Cue>) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        write_cue(&mut out, c);
    }
    out
}

/// One WebVTT segment per position: `bounds` are the positions' `[start, end)` in
/// milliseconds; each segment holds the cues that overlap its span.
pub fn segments(cues: &[Cue], bounds: &[(u64, u64)]) -> Vec<String> {
    bounds
        .iter()
        .map(|&(s, e)| webvtt(cues.iter().filter(|c| c.start_ms < e && c.end_ms > s)))
        .collect()
}

/// A BCP 47 language tag as the manifests carry it: 2 to 35 characters of letters, digits and
/// `-`, starting with a letter.
pub fn valid_language(tag: &str) -> bool {
    (2..=35).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && !tag.contains("--")
        && !tag.ends_with('-')
}

/// ISO 639-2 bibliographic codes and their terminology (ISO 639-3) equivalents: the twenty
/// languages whose two codes differ (Matroska writes the first kind, MP4 the second).
const ISO_639_2_B_TO_T: [(&str, &str); 20] = [
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "zho"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("mao", "mri"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("tib", "bod"),
    ("wel", "cym"),
];

/// A language tag in its BCP 47 form: a three-letter ISO 639-2 primary subtag (`eng`, `fre`,
/// `ger`), as containers and users often give it, becomes the two-letter code the IANA
/// registry lists for it (`en`, `fr`, `de`); other subtags and tags without a two-letter
/// code (`und`, `yue`) are kept. The primary subtag is lower-cased.
pub fn canonical_language(tag: &str) -> String {
    let (primary, rest) = match tag.split_once('-') {
        Some((p, r)) => (p.to_ascii_lowercase(), Some(r)),
        None => (tag.to_ascii_lowercase(), None),
    };
    let primary = if primary.len() == 3 {
        let t = ISO_639_2_B_TO_T
            .iter()
            .find(|(b, _)| *b == primary)
            .map_or(primary.as_str(), |(_, t)| *t);
        isolang::Language::from_639_3(t)
            .and_then(|l| l.to_639_1())
            .map_or_else(|| primary.clone(), str::to_owned)
    } else {
        primary
    };
    match rest {
        Some(r) => format!("{primary}-{r}"),
        None => primary,
    }
}

/// The ISO 639-2/T code of a tag's primary language, for an MP4 `mdhd` (`en` → `eng`,
/// `pt-BR` → `por`); `und` when it has none.
pub fn iso639_2(tag: &str) -> String {
    let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
    match primary.len() {
        2 => isolang::Language::from_639_1(&primary)
            .map_or_else(|| "und".to_owned(), |l| l.to_639_3().to_owned()),
        3 => primary,
        _ => "und".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_language_codes_have_three_letters() {
        assert_eq!(iso639_2("en"), "eng");
        assert_eq!(iso639_2("pt-BR"), "por");
        assert_eq!(iso639_2("yue"), "yue");
        assert_eq!(iso639_2("x"), "und");
    }

    #[test]
    fn three_letter_codes_become_their_two_letter_tags() {
        for (tag, want) in [
            ("eng", "en"),
            ("fre", "fr"),
            ("fra", "fr"),
            ("ger", "de"),
            ("deu", "de"),
            ("chi", "zh"),
            ("POR-BR", "pt-BR"),
            ("und", "und"),
            ("yue", "yue"),
            ("en", "en"),
            ("pt-BR", "pt-BR"),
        ] {
            assert_eq!(canonical_language(tag), want, "{tag}");
        }
    }

    fn srt(text: &str) -> Result<Vec<Cue>, SubtitleError> {
        parse(text, SubtitleFormat::SubRip, &SubtitleLimits::default())
    }

    fn vtt(text: &str) -> Result<Vec<Cue>, SubtitleError> {
        parse(text, SubtitleFormat::WebVtt, &SubtitleLimits::default())
    }

    #[test]
    fn subrip_with_markup_crlf_and_bom() {
        let t = "\u{feff}1\r\n00:00:01,000 --> 00:00:02,500\r\n<font color=\"red\">Hi</font> <i>there</i>\r\n{\\an8}a < b\r\n\r\n2\r\n01:02:03,004 --> 01:02:04,000\r\nSecond\r\n";
        let c = srt(t).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].start_ms, c[0].end_ms), (1000, 2500));
        assert_eq!(c[0].text, "Hi <i>there</i>\na &lt; b");
        assert_eq!(c[1].start_ms, 3_723_004);
        let doc = webvtt(&c);
        assert!(doc.starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHi <i>there</i>"));
        assert!(doc.contains("01:02:03.004 --> 01:02:04.000\nSecond\n"));
    }

    #[test]
    fn webvtt_with_header_notes_ids_and_settings() {
        let t = "WEBVTT - a title\nKind: captions\n\nNOTE made by hand\nover two lines\n\nSTYLE\n::cue { color: red }\n\nintro\n00:01.500 --> 00:03.000 line:0 align:start\n<v Ann>Hello</v>\n\n00:00:00.000 --> 00:00:01.000\nfirst\n";
        let c = vtt(t).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].start_ms, c[0].text.as_str()), (0, "first"));
        assert_eq!(c[1].settings, "line:0 align:start");
        assert_eq!(c[1].text, "<v Ann>Hello</v>");
    }

    #[test]
    fn errors_name_the_line() {
        let e = srt("1\n00:00:01,000 -> 00:00:02,000\nx\n").unwrap_err();
        assert_eq!(
            e,
            SubtitleError::Syntax {
                line: 2,
                reason: "expected a timing line `start --> end`".into()
            }
        );
        let e =
            srt("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 --> 00:00:04,000\nbad\n")
                .unwrap_err();
        assert!(
            matches!(&e, SubtitleError::Syntax { line: 6, reason } if reason.contains("not after")),
            "{e}"
        );
        let e = srt("1\n00:00:01,000 --> 00:00:02,000\nok\n2\n00:00:03,000 --> 00:00:04,000\n")
            .unwrap_err();
        assert!(matches!(e, SubtitleError::Syntax { line: 5, .. }), "{e}");
        let e = srt("1\n00:61:01,000 --> 00:62:02,000\nx\n").unwrap_err();
        assert!(e.to_string().contains("0 to 59"), "{e}");
        assert!(vtt("1\n00:00.000 --> 00:01.000\nx\n").is_err());
        assert!(srt("1\n00:00:01,00 --> 00:00:02,000\nx\n").is_err());
        assert!(matches!(
            srt("7\n\n").unwrap_err(),
            SubtitleError::Syntax { line: 1, .. }
        ));
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        let c = srt("1\r00:00:01,000 --> 00:00:02,000\rone\rtwo\r\r").unwrap();
        assert_eq!(c[0].text, "one\ntwo");
    }

    #[test]
    fn markup_alone_on_a_line_leaves_no_blank_line() {
        let c = srt("1\n00:00:01,000 --> 00:00:02,000\n{\\an8}\n<font color=red></font>\nText\n")
            .unwrap();
        assert_eq!(c[0].text, "Text");
        assert_eq!(vtt(&webvtt(&c)).unwrap(), c);
    }

    #[test]
    fn limits_hold() {
        let small = SubtitleLimits {
            max_bytes: 1000,
            max_cues: 2,
            max_cue_bytes: 10,
        };
        let three = "00:00:01,000 --> 00:00:02,000\na\n\n00:00:02,000 --> 00:00:03,000\nb\n\n00:00:03,000 --> 00:00:04,000\nc\n";
        assert!(matches!(
            parse(three, SubtitleFormat::SubRip, &small),
            Err(SubtitleError::TooLarge(_))
        ));
        let long = "00:00:01,000 --> 00:00:02,000\nmore than ten bytes\n";
        assert!(matches!(
            parse(long, SubtitleFormat::SubRip, &small),
            Err(SubtitleError::TooLarge(_))
        ));
        let big = "x".repeat(1001);
        assert!(matches!(
            parse(&big, SubtitleFormat::SubRip, &small),
            Err(SubtitleError::TooLarge(_))
        ));
    }

    #[test]
    fn segments_hold_every_overlapping_cue() {
        let c =
            srt("00:00:01,000 --> 00:00:03,000\nacross\n\n00:00:04,500 --> 00:00:05,000\nlater\n")
                .unwrap();
        let s = segments(&c, &[(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000)]);
        assert!(s[0].contains("across") && s[1].contains("across"));
        assert!(!s[2].contains("across") && s[2].contains("later"));
        assert_eq!(s[3], "WEBVTT\n\n");
        // Every segment is itself a WebVTT file that parses back.
        for seg in &s {
            vtt(seg).unwrap();
        }
    }

    #[test]
    fn plain_text_is_escaped() {
        assert_eq!(
            plain_payload("a --> b\n\n<x> & y"),
            "a --&gt; b\n&lt;x&gt; &amp; y"
        );
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "und"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in ["", "e", "en_US", "-en", "en-", "1en", "a--b", "../x"] {
            assert!(!valid_language(bad), "{bad}");
        }
    }
}
