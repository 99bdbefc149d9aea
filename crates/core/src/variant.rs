//! The two variants of a watermarked segment.

use std::fmt;

/// Which of the two encodes of a position a viewer receives (TS 104 002 `variant` 0 or 1).
///
/// A carries the position's pattern with a positive sign, B with a negative sign.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): TS 104 002 defines exactly two variants,
/// so callers may match A and B without a fallback arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Variant A, id 0, path `a/`.
    A,
    /// Variant B, id 1, path `b/`.
    B,
}

impl Variant {
    /// Both variants, A first.
    pub const BOTH: [Variant; 2] = [Variant::A, Variant::B];

    /// The TS 104 002 variant id (0 for A, 1 for B).
    pub fn id(self) -> u8 {
        match self {
            Variant::A => 0,
            Variant::B => 1,
        }
    }

    /// The variant of a TS 104 002 id, `None` for ids other than 0 and 1.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Variant::A),
            1 => Some(Variant::B),
            _ => None,
        }
    }

    /// The origin directory of the variant, `a` or `b` (`variantPath` without the slash).
    pub const fn dir(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "b",
        }
    }

    /// The variant for a codeword bit: `false`/0 is A, `true`/1 is B.
    pub const fn from_bit(bit: bool) -> Self {
        if bit { Variant::B } else { Variant::A }
    }

    /// The codeword bit: 0 for A, 1 for B.
    pub const fn bit(self) -> u8 {
        match self {
            Variant::A => 0,
            Variant::B => 1,
        }
    }

    /// The other variant.
    pub const fn other(self) -> Self {
        match self {
            Variant::A => Variant::B,
            Variant::B => Variant::A,
        }
    }

    /// The lower-case id used in paths, `"a"` or `"b"`.
    pub const fn as_str(self) -> &'static str {
        self.dir()
    }

    /// The sign the variant gives the pattern: +1 for A, -1 for B.
    pub fn sign(self) -> i32 {
        match self {
            Variant::A => 1,
            Variant::B => -1,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::A => "A",
            Variant::B => "B",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for v in Variant::BOTH {
            assert_eq!(Variant::from_id(v.id()), Some(v));
        }
        assert_eq!(Variant::from_id(2), None);
        assert_eq!(Variant::A.sign() + Variant::B.sign(), 0);
    }
}
