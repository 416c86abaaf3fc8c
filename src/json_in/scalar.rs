//! [`Scalar`]: a field read leniently, whatever its JSON type.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};

use super::DECIMAL;

/// A scalar read as it came, never failing on its type: for fields read leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A string's unescaped content.
    Str(String),
    /// A number's text, as sent (`10`, `89.9999999999999`, `1.0E7`).
    Num(String),
    Bool(bool),
    Null,
    /// An array or object (skipped unread).
    Other,
}

impl Scalar {
    /// The text of a string or a number.
    pub fn text(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) | Scalar::Num(s) => Some(s),
            _ => None,
        }
    }
    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Other => "an array or object",
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Str(s))
            }
            fn visit_bytes<E>(self, b: &[u8]) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(String::from_utf8_lossy(b).into_owned()))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(n.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(n.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_none<E>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_unit<E>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_some<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Scalar, D::Error> {
                d.deserialize_newtype_struct(DECIMAL, V)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<Scalar, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<Scalar, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_newtype_struct(DECIMAL, V)
    }
}
