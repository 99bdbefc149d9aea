//! Streams as the edge serves them: `init.mp4` followed by the `a/` or `b/` segment of each
//! position, chosen by a variant sequence (a session's codeword, or a colluders' mix).

use leaktrace_core::{Codebook, SessionId, Variant};
use std::path::{Path, PathBuf};

use crate::ForensicError;

/// One rendition of an embedded package (`PKG/<rendition>/{a,b}/seg_NNNNN.m4s` + `init.mp4`).
#[derive(Clone, Debug)]
pub struct Package {
    /// The rendition directory.
    pub rendition: PathBuf,
    /// Number of positions (segments).
    pub positions: u32,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ForensicError + '_ {
    move |source| ForensicError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Package {
    /// Opens a rendition directory and counts its segments.
    pub fn open(rendition: &Path) -> Result<Self, ForensicError> {
        let mut positions = 0u32;
        while rendition
            .join("a")
            .join(format!("seg_{positions:05}.m4s"))
            .is_file()
        {
            positions += 1;
        }
        if positions == 0 {
            return Err(ForensicError::Invalid(format!(
                "{} has no segments (expected a/seg_00000.m4s …)",
                rendition.display()
            )));
        }
        Ok(Self {
            rendition: rendition.to_path_buf(),
            positions,
        })
    }

    /// Writes the stream of `variants` (one per position, from position 0) to `out`.
    pub fn render(&self, variants: &[Variant], out: &Path) -> Result<(), ForensicError> {
        let init = self.rendition.join("a/init.mp4");
        let mut bytes = std::fs::read(&init).map_err(io(&init))?;
        for (p, v) in variants.iter().enumerate() {
            let seg = self.rendition.join(v.dir()).join(format!("seg_{p:05}.m4s"));
            bytes.extend(std::fs::read(&seg).map_err(io(&seg))?);
        }
        std::fs::write(out, &bytes).map_err(io(out))
    }

    /// A session's codeword over every position of the package (what the edge serves it).
    pub fn codeword(&self, book: &Codebook, session: &SessionId) -> Vec<Variant> {
        book.bits(session, 0..self.positions)
    }
}

/// Segment interleaving: position `p` comes from colluder `p mod c`.
pub fn interleave(words: &[Vec<Variant>]) -> Vec<Variant> {
    let n = words.iter().map(Vec::len).min().unwrap_or(0);
    (0..n).map(|p| words[p % words.len()][p]).collect()
}

/// Per-position majority of the colluders' variants; a tie takes the variant of
/// `tie_break(p)` (a fair coin per position).
pub fn majority(words: &[Vec<Variant>], tie_break: impl Fn(usize) -> Variant) -> Vec<Variant> {
    vote(words, tie_break, false)
}

/// Per-position minority: the variant fewer colluders hold wherever they differ (the coalition
/// hides its majority); where all agree they can only pass the one variant they have. A tie
/// takes `tie_break(p)`.
pub fn minority(words: &[Vec<Variant>], tie_break: impl Fn(usize) -> Variant) -> Vec<Variant> {
    vote(words, tie_break, true)
}

fn vote(
    words: &[Vec<Variant>],
    tie_break: impl Fn(usize) -> Variant,
    minority: bool,
) -> Vec<Variant> {
    let n = words.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|p| {
            let a = words.iter().filter(|w| w[p] == Variant::A).count();
            let b = words.len() - a;
            if a == 0 || b == 0 {
                return words[0][p];
            }
            match (a.cmp(&b), minority) {
                (std::cmp::Ordering::Equal, _) => tie_break(p),
                (std::cmp::Ordering::Greater, false) | (std::cmp::Ordering::Less, true) => {
                    Variant::A
                }
                _ => Variant::B,
            }
        })
        .collect()
}

/// Random pick: position `p` comes from colluder `pick(p) mod c`, drawn independently per
/// position (a fair die), so no colluder's share is predictable.
pub fn random_pick(words: &[Vec<Variant>], pick: impl Fn(usize) -> usize) -> Vec<Variant> {
    let n = words.iter().map(Vec::len).min().unwrap_or(0);
    (0..n).map(|p| words[pick(p) % words.len()][p]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Variant::{A, B};

    #[test]
    fn interleave_and_majority() {
        let w = vec![vec![A, A, B, B], vec![B, A, A, B], vec![B, B, B, A]];
        assert_eq!(interleave(&w), vec![A, A, B, B]);
        assert_eq!(majority(&w, |_| A), vec![B, A, B, B]);
        let two = vec![vec![A, B], vec![B, B]];
        assert_eq!(majority(&two, |_| A), vec![A, B]);
    }

    #[test]
    fn minority_passes_agreement_and_hides_the_majority() {
        let w = vec![vec![A, A, B, B], vec![B, A, A, B], vec![B, B, B, A]];
        assert_eq!(minority(&w, |_| A), vec![A, B, A, A]);
        let two = vec![vec![A, B], vec![B, B]];
        assert_eq!(minority(&two, |_| B), vec![B, B]);
        assert_eq!(minority(&two, |_| A), vec![A, B]);
    }

    #[test]
    fn random_pick_takes_the_drawn_colluder() {
        let w = vec![vec![A, A, A, A], vec![B, B, B, B], vec![A, B, A, B]];
        assert_eq!(random_pick(&w, |p| [1, 0, 2, 4][p]), vec![B, A, A, B]);
    }
}
