//! Title matching: does a page or link talk about a catalogue title?
//!
//! Text is normalised (lowercase, accents and punctuation to spaces, words
//! split), release tags (`1080p`, `x264`, `webrip`, …) ignored. Score, 0 to 100,
//! for one name: 90 if its words appear contiguously, else 70 · (fraction of its
//! words present) if at least half are; then +10 if the title's year appears,
//! −40 if only other years (1900–2099) appear. The best name or alias wins.

use crate::config::CatalogueTitle;

/// A title match.
#[derive(Debug, Clone, PartialEq)]
pub struct TitleMatch {
    /// The catalogue title id.
    pub title_id: String,
    /// 0 to 100.
    pub score: u32,
}

const NOISE: &[&str] = &[
    "1080p", "720p", "480p", "360p", "2160p", "4k", "x264", "x265", "h264", "hevc", "webrip",
    "web", "dl", "bluray", "brrip", "hdrip", "dvdrip", "cam", "hdcam", "ts", "aac", "mp4", "mkv",
    "avi", "m3u8", "watch", "online", "free", "download", "full", "movie", "hd",
];

/// Lowercase words of `text`, ASCII-folded, release tags dropped.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = fold(c);
        if c.is_alphanumeric() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|w| !NOISE.contains(&w.as_str()));
    out
}

fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        c => c,
    }
}

fn name_score(name: &[String], text: &[String]) -> u32 {
    if name.is_empty() {
        return 0;
    }
    if text.windows(name.len()).any(|w| w == name) {
        return 90;
    }
    let present = name.iter().filter(|w| text.contains(w)).count();
    if present * 2 < name.len() {
        return 0;
    }
    (70 * present / name.len()) as u32
}

/// The best-scoring catalogue title for `text`, if any scores above 0.
pub fn best_match(catalogue: &[CatalogueTitle], text: &str) -> Option<TitleMatch> {
    let tw = words(text);
    let years: Vec<u16> = tw
        .iter()
        .filter_map(|w| w.parse::<u16>().ok())
        .filter(|y| (1900..=2099).contains(y))
        .collect();
    let mut best: Option<TitleMatch> = None;
    for t in catalogue {
        let mut s = t
            .names
            .iter()
            .chain(&t.aliases)
            .map(|n| name_score(&words(n), &tw))
            .max()
            .unwrap_or(0);
        if s == 0 {
            continue;
        }
        if let Some(y) = t.year {
            if years.contains(&y) {
                s += 10;
            } else if !years.is_empty() {
                s = s.saturating_sub(40);
            }
        }
        let s = s.min(100);
        if s == 0 {
            // The year ruled it out.
            continue;
        }
        if best.as_ref().is_none_or(|b| s > b.score) {
            best = Some(TitleMatch {
                title_id: t.title_id.clone(),
                score: s,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Vec<CatalogueTitle> {
        vec![
            CatalogueTitle {
                title_id: "bbb".into(),
                names: vec!["Big Buck Bunny".into()],
                aliases: vec!["BBB".into(), "Großer Hase".into()],
                year: Some(2008),
                reference: None,
            },
            CatalogueTitle {
                title_id: "sintel".into(),
                names: vec!["Sintel".into()],
                aliases: vec![],
                year: Some(2010),
                reference: None,
            },
        ]
    }

    #[test]
    fn scores() {
        let c = cat();
        let m = best_match(&c, "Big.Buck.Bunny.2008.1080p.WEBRip.x264").unwrap();
        assert_eq!((m.title_id.as_str(), m.score), ("bbb", 100));
        let m = best_match(&c, "watch big buck bunny online").unwrap();
        assert_eq!(m.score, 90);
        let m = best_match(&c, "Bunny, Big (Buck)").unwrap();
        assert_eq!(m.score, 70);
        // Another year: a remake or another film of the same name.
        let m = best_match(&c, "Big Buck Bunny 1994").unwrap();
        assert_eq!(m.score, 50);
        assert_eq!(best_match(&c, "Sintel (2010)").unwrap().title_id, "sintel");
        assert!(best_match(&c, "Cooking with rabbits").is_none());
        assert_eq!(best_match(&c, "BBB").unwrap().score, 90);
    }
}
