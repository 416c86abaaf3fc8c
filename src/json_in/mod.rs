//! A bounded, lenient JSON reader for incoming frames: a small serde `Deserializer` over the
//! frame's bytes.
//!
//! Why not a general JSON library: the agent reads a handful of fields from frames that may hold
//! anything else, and must not refuse a frame because of what it does not read. So:
//!
//! - **Unknown fields are skipped without unescaping**: a 100 KiB escaped string in a field the
//!   agent ignores costs a byte scan, no buffer (the syntax is still checked).
//! - **Duplicate keys**: the last occurrence of a field wins (what Jackson, the cloud's JSON
//!   library, does); earlier ones are skipped unread. Found in one pre-scan per object, so a
//!   hostile frame of many repeats costs linear time.
//! - **Strings** borrow from the frame when they hold no escape; otherwise they are unescaped
//!   into a `String` no longer than the escaped text (the frame is capped by
//!   `[limits] max_message_bytes`, so is every string).
//! - **Numbers keep their decimal text** for money and quantities: [`DECIMAL`] hands the token's
//!   text (or a string's content) to the visitor, so no float ever touches an amount
//!   (`money.rs`).
//! - **Depth** is capped at [`MAX_DEPTH`]; a deeper value is an error, never a stack overflow.
//!   No input panics: every index is checked.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting accepted in a frame. Real requests nest 4 levels (items → modifier).
pub const MAX_DEPTH: usize = 16;

mod capped;
mod scalar;
pub use capped::Capped;
pub use scalar::Scalar;

/// Newtype-struct name that asks for a scalar's raw text: a number arrives as
/// `visit_borrowed_bytes(<number text>)`, a string as `visit_str`/`visit_string`, `null` as
/// `visit_none`, a boolean as `visit_bool`; an array or object is skipped and arrives as
/// `visit_unit`.
pub const DECIMAL: &str = "$expirenza_agent::json_in::Decimal";

/// Why a frame could not be read: the cause and the byte offset it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let mut s = msg.to_string();
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        Error(s)
    }
}

type Result<T> = std::result::Result<T, Error>;

/// Deserialize `T` from the whole of `frame` (trailing bytes other than whitespace are an error).
pub fn from_frame<'a, T: de::Deserialize<'a>>(frame: &'a [u8]) -> Result<T> {
    let mut d = De {
        b: frame,
        i: 0,
        depth: 0,
    };
    let v = T::deserialize(&mut d).map_err(|e| Error(format!("{} (at byte {})", e.0, d.i)))?;
    if d.peek().is_some() {
        return Err(Error(format!(
            "trailing characters after the value (at byte {})",
            d.i
        )));
    }
    Ok(v)
}

pub struct De<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

/// A string token: its content between the quotes, and whether it holds escapes.
#[derive(Clone, Copy)]
struct RawStr<'a> {
    content: &'a [u8],
    escaped: bool,
}

impl<'a> RawStr<'a> {
    fn text(self) -> Result<std::borrow::Cow<'a, str>> {
        if !self.escaped {
            return std::str::from_utf8(self.content)
                .map(std::borrow::Cow::Borrowed)
                .map_err(|_| Error("string is not valid UTF-8".into()));
        }
        unescape(self.content).map(std::borrow::Cow::Owned)
    }
    /// Equal to `name` once unescaped (without allocating when there is no escape).
    fn eq(self, name: &str) -> bool {
        if !self.escaped {
            return self.content == name.as_bytes();
        }
        // An escaped key is at most 6× longer than its text; anything longer cannot match.
        if self.content.len() > name.len() * 6 {
            return false;
        }
        unescape(self.content).is_ok_and(|s| s == name)
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Unescape a string's content (already syntax-checked by [`De::raw_str`]). A lone surrogate
/// becomes U+FFFD rather than an error.
fn unescape(c: &[u8]) -> Result<String> {
    let mut out: Vec<u8> = Vec::with_capacity(c.len());
    let mut i = 0;
    while i < c.len() {
        let b = c[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *c.get(i + 1).ok_or_else(|| Error("bad escape".into()))?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(c.get(i..).unwrap_or_default())
                    .ok_or_else(|| Error("bad \\u escape".into()))?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi)
                    && c.get(i) == Some(&b'\\')
                    && c.get(i + 1) == Some(&b'u')
                {
                    match hex4(c.get(i + 2..).unwrap_or_default()) {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        _ => 0xFFFD,
                    }
                } else {
                    hi
                };
                char::from_u32(code).unwrap_or('\u{FFFD}')
            }
            _ => return Err(Error("bad escape".into())),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|_| Error("string is not valid UTF-8".into()))
}

impl<'a> De<'a> {
    /// The next byte after whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.b.get(self.i) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<()> {
        match self.peek() {
            Some(b) if b == c => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(Error(format!("expected {what}"))),
            None => Err(Error(format!("end of frame while expecting {what}"))),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error(format!("nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// A string token at the cursor: checks its syntax, returns its content.
    fn raw_str(&mut self) -> Result<RawStr<'a>> {
        self.expect(b'"', "a string")?;
        let start = self.i;
        let mut escaped = false;
        loop {
            let Some(&b) = self.b.get(self.i) else {
                return Err(Error("end of frame inside a string".into()));
            };
            match b {
                b'"' => {
                    let content = &self.b[start..self.i];
                    self.i += 1;
                    return Ok(RawStr { content, escaped });
                }
                b'\\' => {
                    escaped = true;
                    match self.b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            if hex4(self.b.get(self.i + 2..).unwrap_or_default()).is_none() {
                                return Err(Error("bad \\u escape in a string".into()));
                            }
                            self.i += 6;
                        }
                        _ => return Err(Error("bad escape in a string".into())),
                    }
                }
                0..=0x1f => return Err(Error("control character inside a string".into())),
                _ => self.i += 1,
            }
        }
    }

    /// A number token at the cursor (JSON grammar), as text.
    fn number(&mut self) -> Result<&'a str> {
        self.peek();
        let start = self.i;
        let digits = |d: &mut Self| {
            let s = d.i;
            while d.b.get(d.i).is_some_and(u8::is_ascii_digit) {
                d.i += 1;
            }
            d.i - s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        if digits(self) == 0 {
            return Err(Error("expected a value".into()));
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(Error("bad number".into()));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(Error("bad number".into()));
            }
        }
        // ASCII only, so this cannot fail.
        std::str::from_utf8(&self.b[start..self.i]).map_err(|_| Error("bad number".into()))
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        self.peek();
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Error("expected a value".into()))
        }
    }

    /// Skip one value of any kind, checking its syntax, unescaping nothing.
    fn skip_value(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => self.raw_str().map(drop),
            Some(b'{') => {
                self.enter()?;
                self.i += 1;
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.raw_str()?;
                        self.expect(b':', "`:`")?;
                        self.skip_value()?;
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(Error("expected `,` or `}`".into())),
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            Some(b'[') => {
                self.enter()?;
                self.i += 1;
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.skip_value()?;
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(Error("expected `,` or `]`".into())),
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(_) => self.number().map(drop),
            None => Err(Error("end of frame while expecting a value".into())),
        }
    }

    /// For each of `fields`, the offset of the key of its last occurrence in the object whose
    /// `{` is at the cursor. Reads ahead on a copy; the cursor does not move.
    fn last_keys(&self, fields: &[&str]) -> Result<Vec<Option<usize>>> {
        let mut last = vec![None; fields.len()];
        let mut d = De {
            b: self.b,
            i: self.i,
            depth: self.depth,
        };
        d.expect(b'{', "an object")?;
        if d.peek() == Some(b'}') {
            return Ok(last);
        }
        loop {
            d.peek();
            let at = d.i;
            let key = d.raw_str()?;
            if let Some(k) = fields.iter().position(|f| key.eq(f)) {
                last[k] = Some(at);
            }
            d.expect(b':', "`:`")?;
            d.skip_value()?;
            match d.peek() {
                Some(b',') => d.i += 1,
                _ => return Ok(last),
            }
        }
    }

    fn visit_raw_str<V: Visitor<'a>>(&mut self, v: V) -> Result<V::Value> {
        let s = self.raw_str()?;
        match s.text()? {
            std::borrow::Cow::Borrowed(t) => v.visit_borrowed_str(t),
            std::borrow::Cow::Owned(t) => v.visit_string(t),
        }
    }
}

struct Seq<'d, 'a> {
    de: &'d mut De<'a>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.de.peek() {
            Some(b']') => return Ok(None),
            Some(b',') if !self.first => self.de.i += 1,
            _ if self.first => {}
            _ => return Err(Error("expected `,` or `]`".into())),
        }
        self.first = false;
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct Map<'d, 'a> {
    de: &'d mut De<'a>,
    first: bool,
    fields: &'static [&'static str],
    last: Vec<Option<usize>>,
}

impl<'de> MapAccess<'de> for Map<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        loop {
            match self.de.peek() {
                Some(b'}') => return Ok(None),
                Some(b',') if !self.first => self.de.i += 1,
                _ if self.first => {}
                _ => return Err(Error("expected `,` or `}`".into())),
            }
            self.first = false;
            self.de.peek();
            let at = self.de.i;
            let key = self.de.raw_str()?;
            let earlier_copy = self
                .fields
                .iter()
                .position(|f| key.eq(f))
                .is_some_and(|k| self.last.get(k).copied().flatten() != Some(at));
            self.de.expect(b':', "`:`")?;
            if earlier_copy {
                // A later occurrence of this key wins: skip this one unread.
                self.de.skip_value()?;
                continue;
            }
            let text = key.text()?;
            return seed
                .deserialize(text.as_ref().into_deserializer())
                .map(Some)
                .map_err(|e: de::value::Error| Error(e.to_string()));
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }
}

impl<'de> de::Deserializer<'de> for &mut De<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self.peek() {
            Some(b'"') => self.visit_raw_str(v),
            Some(b'{') => self.deserialize_map(v),
            Some(b'[') => self.deserialize_seq(v),
            Some(b't') => self.literal(b"true").and_then(|_| v.visit_bool(true)),
            Some(b'f') => self.literal(b"false").and_then(|_| v.visit_bool(false)),
            Some(b'n') => self.literal(b"null").and_then(|_| v.visit_unit()),
            Some(_) => {
                let t = self.number()?;
                if let Ok(n) = t.parse::<u64>() {
                    v.visit_u64(n)
                } else if let Ok(n) = t.parse::<i64>() {
                    v.visit_i64(n)
                } else {
                    v.visit_f64(t.parse::<f64>().map_err(|_| Error("bad number".into()))?)
                }
            }
            None => Err(Error("end of frame while expecting a value".into())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value> {
        if name != DECIMAL {
            return v.visit_newtype_struct(self);
        }
        match self.peek() {
            Some(b'"') => self.visit_raw_str(v),
            Some(b'{' | b'[') => self.skip_value().and_then(|_| v.visit_unit()),
            Some(b't') => self.literal(b"true").and_then(|_| v.visit_bool(true)),
            Some(b'f') => self.literal(b"false").and_then(|_| v.visit_bool(false)),
            Some(b'n') => self.literal(b"null").and_then(|_| v.visit_none()),
            Some(_) => {
                let t = self.number()?;
                v.visit_borrowed_bytes(t.as_bytes())
            }
            None => Err(Error("end of frame while expecting a value".into())),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.enter()?;
        self.expect(b'[', "an array")?;
        let out = v.visit_seq(Seq {
            de: &mut *self,
            first: true,
        })?;
        self.expect(b']', "`]`")?;
        self.depth -= 1;
        Ok(out)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_struct("", &[], v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        if self.peek() != Some(b'{') {
            return Err(Error("expected an object".into()));
        }
        self.enter()?;
        let last = if fields.is_empty() {
            Vec::new()
        } else {
            self.last_keys(fields)?
        };
        self.i += 1;
        let out = v.visit_map(Map {
            de: &mut *self,
            first: true,
            fields,
            last,
        })?;
        self.expect(b'}', "`}`")?;
        self.depth -= 1;
        Ok(out)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.skip_value()?;
        v.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        // Unit variants only, written as strings.
        let s = self.raw_str()?.text()?;
        v.visit_enum(s.as_ref().into_deserializer())
            .map_err(|e: de::value::Error| Error(e.to_string()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct T {
        a: Option<String>,
        #[serde(rename = "sum")]
        s: Option<Scalar>,
    }

    #[test]
    fn skips_unknown_and_keeps_last_duplicate() {
        let long = format!(
            r#"{{"x":"{}","a":"first","a":"s\u0411\"","y":[{{"z":[1,2.5e3,null,true]}}],"sum":"389.50"}}"#,
            "\\u0041".repeat(10_000)
        );
        let t: T = from_frame(long.as_bytes()).unwrap();
        assert_eq!(t.a.as_deref(), Some("sБ\""));
        assert_eq!(t.s, Some(Scalar::Str("389.50".into())));
        let t: T = from_frame(br#"{"sum":89.9999999999999,"sum":10}"#).unwrap();
        assert_eq!(t.s, Some(Scalar::Num("10".into())));
        let t: T = from_frame(br#"{"sum":{"k":[1]}}"#).unwrap();
        assert_eq!(t.s, Some(Scalar::Other));
        let t: T = from_frame(br#"{"sum":null}"#).unwrap();
        assert_eq!(t.s, None);
        let s: Scalar = from_frame(b"null").unwrap();
        assert_eq!(s, Scalar::Null);
    }

    #[test]
    fn syntax_errors_are_errors_not_panics() {
        for bad in [
            &br#"{"a":"x"} junk"#[..],
            br#"{"a":"x""#,
            br#"{"a":"\q"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"b":[1,]}"#,
            br#"{"b":01x}"#,
            br#"{"b":-}"#,
            br#"{"b":tru}"#,
            br#"{"b" 1}"#,
            b"{\"b\":\"\x01\"}",
            b"{",
            b"",
        ] {
            assert!(
                from_frame::<T>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"b\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(from_frame::<T>(deep.as_bytes()).is_err());
    }

    #[test]
    fn surrogates_and_lone_surrogates() {
        let t: T = from_frame(br#"{"a":"\ud83d\ude00 \ud800x"}"#).unwrap();
        assert_eq!(t.a.as_deref(), Some("😀 \u{FFFD}x"));
    }
}
