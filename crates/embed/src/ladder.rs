//! Renditions of an ABR ladder.

use crate::EmbedError;

/// One rendition: a name (also its directory), a size and its encoder rate settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    /// Name and directory, e.g. `720p`.
    pub name: String,
    /// Luma width (even).
    pub width: usize,
    /// Luma height (even).
    pub height: usize,
    /// Peak bitrate cap in kbit/s, if any.
    pub max_kbps: Option<u32>,
}

/// Standard rungs: height and a VBV cap suited to it (H.264; other codecs use the same caps).
const RUNGS: [(usize, u32); 6] = [
    (2160, 16000),
    (1440, 9000),
    (1080, 6000),
    (720, 3500),
    (480, 1800),
    (360, 1000),
];

/// A ladder: renditions from largest to smallest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    renditions: Vec<Rendition>,
}

impl Ladder {
    /// Parses `1080p,720p,480p` (heights with a `p`) for a source of `src_w` × `src_h`.
    /// Widths follow the source aspect ratio, rounded to even. Upscaling is refused.
    pub fn parse(spec: &str, src_w: usize, src_h: usize) -> Result<Self, EmbedError> {
        let mut renditions = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let h: usize = item
                .strip_suffix('p')
                .and_then(|n| n.parse().ok())
                .filter(|&h| (144..=2160).contains(&h) && h % 2 == 0)
                .ok_or_else(|| EmbedError::Ladder(format!("{item:?} is not a rendition (expected an even height from 144p to 2160p, e.g. 720p)")))?;
            if h > src_h {
                return Err(EmbedError::Ladder(format!(
                    "{item} is taller than the source ({src_w}x{src_h}); leaktrace does not upscale"
                )));
            }
            renditions.push(Self::rendition(h, src_w, src_h));
        }
        if renditions.is_empty() {
            return Err(EmbedError::Ladder(
                "empty ladder (expected e.g. 1080p,720p,480p)".into(),
            ));
        }
        renditions.sort_by_key(|r| std::cmp::Reverse(r.height));
        renditions.dedup_by(|a, b| a.height == b.height);
        Ok(Self { renditions })
    }

    /// The default ladder for a source: the source height (if it is a standard rung, else the
    /// largest rung below it) and up to two standard rungs below.
    pub fn default_for(src_w: usize, src_h: usize) -> Self {
        let mut renditions: Vec<Rendition> = RUNGS
            .iter()
            .filter(|(h, _)| *h <= src_h)
            .take(3)
            .map(|(h, _)| Self::rendition(*h, src_w, src_h))
            .collect();
        if renditions.is_empty() {
            let h = src_h & !1;
            renditions.push(Rendition {
                name: format!("{h}p"),
                width: src_w & !1,
                height: h,
                max_kbps: None,
            });
        }
        Self { renditions }
    }

    fn rendition(h: usize, src_w: usize, src_h: usize) -> Rendition {
        let w = ((src_w as f64 * h as f64 / src_h as f64 / 2.0).round() as usize * 2).max(2);
        let max_kbps = RUNGS.iter().find(|(rh, _)| *rh == h).map(|(_, k)| *k);
        Rendition {
            name: format!("{h}p"),
            width: w,
            height: h,
            max_kbps,
        }
    }

    /// The renditions, largest first.
    pub fn renditions(&self) -> &[Rendition] {
        &self.renditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_aspect() {
        let l = Ladder::parse("480p, 720p", 1920, 1080).unwrap();
        let r = l.renditions();
        assert_eq!((r[0].width, r[0].height), (1280, 720));
        assert_eq!((r[1].width, r[1].height), (854, 480));
        let sd = Ladder::parse("360p", 768, 576).unwrap();
        assert_eq!(sd.renditions()[0].width, 480);
    }

    #[test]
    fn refuses_upscaling_and_junk_with_the_valid_range() {
        let e = Ladder::parse("1080p", 1280, 720).unwrap_err().to_string();
        assert!(e.contains("does not upscale"), "{e}");
        for bad in ["720", "abc", "99999p", "721p", ""] {
            assert!(Ladder::parse(bad, 1920, 1080).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_ladder() {
        let names: Vec<_> = Ladder::default_for(1920, 1080)
            .renditions()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(names, ["1080p", "720p", "480p"]);
        let small = Ladder::default_for(320, 240);
        assert_eq!(small.renditions()[0].height, 240);
    }
}
