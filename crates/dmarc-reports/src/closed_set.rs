//! The one way a closed set of report values is defined: an enum read case-insensitively and
//! trimmed, with the aliases real reporters use, and written back in the RFC's spelling.

/// Defines a closed set of values read from report text: case-insensitive, trimmed, with the
/// aliases real reporters use, and written back in the RFC's spelling.
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Reads a value as reporters write it; `None` if it is not one of the set.
            pub fn parse(text: &str) -> Option<Self> {
                let text = text.trim();
                $(
                    if text.eq_ignore_ascii_case($text) $(|| text.eq_ignore_ascii_case($alias))* {
                        return Some($name::$variant);
                    }
                )+
                None
            }

            /// The RFC's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored and sent in the RFC's spelling, read back as leniently as from a report.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "\"{}\" is not a {}",
                        text,
                        stringify!($name)
                    ))
                })
            }
        }
    };
}
