//! Status columns stored as TEXT: the macro that defines their enums, and the error of
//! parsing one.

/// Text that names no value of one of the crate's status enums ([`JobState`](crate::JobState),
/// [`NoticeDelivery`](crate::NoticeDelivery), …): the error of their `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected {})", .expected.join(", "))]
#[non_exhaustive]
pub struct UnknownValue {
    /// What was parsed, e.g. `"job state"`.
    pub what: &'static str,
    /// The text.
    pub value: String,
    /// The texts that name a value.
    pub expected: &'static [&'static str],
}

/// Defines a status enum whose values are stored as TEXT: `as_str` gives the stored text
/// (also what the CLI prints), `FromStr` parses it back ([`UnknownValue`] names the valid
/// texts), `Display` writes it (honouring width and alignment), `ALL` lists every value, and
/// the value binds to a statement as its text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database (and printed by the CLI).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl From<$name> for $crate::sql::Arg {
            fn from(value: $name) -> Self {
                $crate::sql::Arg::from(value.as_str())
            }
        }
    };
}
