//! Parsing one incoming text frame into a bounded request envelope.
//!
//! Parsing is done by the agent's own bounded reader (`json_in.rs`), mostly into
//! fixed-capacity `heapless` strings, so a hostile frame can never make the agent allocate more
//! than the frame itself (already capped by `[limits] max_message_bytes`). Strings are
//! unescaped, so a Cyrillic name sent as `\u0411` arrives as `Б`; fields the agent does not
//! read are skipped without unescaping, whatever their length, and when a key repeats the last
//! one wins. Before serde sees the frame, [`precheck`] bounds the nesting depth: the parser
//! recurses on nested values, and a frame of 100 000 `[` would otherwise overflow the stack.
//!
//! The envelope holds only `rID` and `operation`; each operation parses its own fields from the
//! same frame with [`parse_fields`] (see `ops/*.rs`), so changing one operation's request never
//! touches another's.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use serde::Deserialize;

/// Deepest nesting accepted in a frame (the reader's own cap: the precheck here and the
/// parser in `json_in` hold a frame to the same depth).
pub use crate::json_in::MAX_DEPTH;
pub type RId = heapless::String<256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid UTF-8 text")]
    NotText,
    #[error("frame is not a JSON object")]
    NotObject,
    #[error("frame nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("frame is not valid JSON for this request: {0}")]
    Json(String),
    #[error("frame has no rID")]
    MissingRid,
    #[error("frame has an empty rID")]
    EmptyRid,
    #[error("frame has no operation")]
    MissingOperation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub rid: RId,
    pub operation: heapless::String<64>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "rID", alias = "rId")]
    rid: Option<RId>,
    operation: Option<heapless::String<64>>,
}

/// Checks done before any parse: object shape and nesting depth (strings are skipped).
pub fn precheck(frame: &[u8]) -> Result<(), FrameError> {
    let first = frame.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(FrameError::NotObject);
    }
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &b in frame {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(FrameError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Some JSON writers prefix a UTF-8 byte-order mark; it carries no meaning.
fn strip_bom(frame: &[u8]) -> &[u8] {
    frame.strip_prefix("\u{feff}".as_bytes()).unwrap_or(frame)
}

/// Parse `T` from the whole frame; trailing bytes other than whitespace are an error.
pub fn parse_fields<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, FrameError> {
    crate::json_in::from_frame(strip_bom(frame)).map_err(|e| FrameError::Json(e.0))
}

/// Precheck, then read `rID` and `operation`.
pub fn parse_envelope(frame: &[u8]) -> Result<Envelope, FrameError> {
    let frame = strip_bom(frame);
    if std::str::from_utf8(frame).is_err() {
        return Err(FrameError::NotText);
    }
    precheck(frame)?;
    let raw: RawEnvelope = parse_fields(frame)?;
    let rid = raw.rid.ok_or(FrameError::MissingRid)?;
    if rid.trim().is_empty() {
        return Err(FrameError::EmptyRid);
    }
    let operation = raw.operation.ok_or(FrameError::MissingOperation)?;
    Ok(Envelope { rid, operation })
}

/// Longest rID recovered from a frame that does not parse (a longer one is not recovered).
pub const MAX_SNIFFED_RID: usize = 1024;
/// Bytes of a bad frame searched for its rID.
const SNIFF_WINDOW: usize = 4096;

/// The `rID` (or `rId`) of a frame that failed to parse, so it can still be answered FAIL.
/// Best effort and bounded: the first [`SNIFF_WINDOW`] bytes are searched (cut back to a char
/// boundary), the value is unescaped as a JSON string, and it must be non-blank and at most
/// [`MAX_SNIFFED_RID`] bytes. Never panics, on any input.
pub fn sniff_rid(frame: &[u8]) -> Option<String> {
    sniff_field(frame, "rID")
        .or_else(|| sniff_field(frame, "rId"))
        .filter(|r| !r.trim().is_empty() && r.len() <= MAX_SNIFFED_RID)
}

/// The first string value of `"key"` in the frame's first bytes, unescaped; `None` when there
/// is none or it is not a well-formed JSON string.
pub fn sniff_field(frame: &[u8], key: &str) -> Option<String> {
    let window = frame.get(..frame.len().min(SNIFF_WINDOW)).unwrap_or(frame);
    let text = match std::str::from_utf8(window) {
        Ok(t) => t,
        // Cut back to the last whole character (the window may end inside one).
        Err(e) => std::str::from_utf8(window.get(..e.valid_up_to())?).ok()?,
    };
    let quoted = format!("\"{key}\"");
    let (_, rest) = text.split_once(quoted.as_str())?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    unescape_until_quote(rest)
}

/// Decode a JSON string body up to its closing quote.
fn unescape_until_quote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '/' => out.push('/'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hi = hex4(&mut chars)?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        let lo = hex4(&mut chars)?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return None;
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c if (c as u32) < 0x20 => return None,
            c => out.push(c),
        }
        if out.len() > MAX_SNIFFED_RID.max(64) {
            return None;
        }
    }
    None
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn envelope_ok_and_unescaped() {
        let e = parse_envelope(br#"{"rID":"2021-03-13 00:32:04.942046#UP57RxE","operation":"getBill","tableNumber":"12","x":{"y":[1,2,null]}}"#).unwrap();
        assert_eq!(e.rid.as_str(), "2021-03-13 00:32:04.942046#UP57RxE");
        assert_eq!(e.operation.as_str(), "getBill");
        let e = parse_envelope(br#"{"rId":"\u0411\"q","operation":"showMessage"}"#).unwrap();
        assert_eq!(e.rid.as_str(), "Б\"q");
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(parse_envelope(b"[1]"), Err(FrameError::NotObject));
        assert_eq!(parse_envelope(b"hello"), Err(FrameError::NotObject));
        assert_eq!(
            parse_envelope(br#"{"operation":"x"}"#),
            Err(FrameError::MissingRid)
        );
        assert_eq!(
            parse_envelope(br#"{"rID":"  ","operation":"x"}"#),
            Err(FrameError::EmptyRid)
        );
        assert_eq!(
            parse_envelope(br#"{"rID":"a"}"#),
            Err(FrameError::MissingOperation)
        );
        assert!(matches!(
            parse_envelope(br#"{"rID":5,"operation":"x"}"#),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            parse_envelope(br#"{"rID":"a","operation":"x"} junk"#),
            Err(FrameError::Json(_))
        ));
        assert_eq!(parse_envelope(&[0xff, 0xfe]), Err(FrameError::NotText));
        let deep = format!(
            "{{\"rID\":\"a\",\"operation\":\"x\",\"v\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_envelope(deep.as_bytes()), Err(FrameError::TooDeep));
        let long = format!("{{\"rID\":\"{}\",\"operation\":\"x\"}}", "a".repeat(300));
        assert!(matches!(
            parse_envelope(long.as_bytes()),
            Err(FrameError::Json(_))
        ));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let f =
            "\u{feff}{\"rID\":\"a\",\"operation\":\"getBill\",\"tableNumber\":\"7\"}".as_bytes();
        assert_eq!(parse_envelope(f).unwrap().operation.as_str(), "getBill");
        #[derive(Deserialize)]
        struct T {
            #[serde(rename = "tableNumber")]
            table: heapless::String<8>,
        }
        assert_eq!(parse_fields::<T>(f).unwrap().table.as_str(), "7");
    }

    #[test]
    fn tolerant_envelope() {
        // A repeated key: the last one wins (as in the cloud's Jackson).
        let e = parse_envelope(br#"{"rID":"a","rID":"b","operation":"x"}"#).unwrap();
        assert_eq!(e.rid.as_str(), "b");
        // A long escaped string in a field the agent does not read is skipped unread.
        let f = format!(
            r#"{{"rID":"r1","note":"{}","operation":"getBill"}}"#,
            "\\u0416\\n".repeat(2000)
        );
        assert!(f.len() > 4096);
        let e = parse_envelope(f.as_bytes()).unwrap();
        assert_eq!((e.rid.as_str(), e.operation.as_str()), ("r1", "getBill"));
    }

    #[test]
    fn long_unicode_escapes_in_an_ignored_field() {
        for n in [1000usize, 4095, 4096, 4097, 20_000] {
            let f = format!(
                r#"{{"rID":"long{n}","operation":"checkWork","x":"{}"}}"#,
                "\\u0041".repeat(n)
            );
            let e = parse_envelope(f.as_bytes()).unwrap_or_else(|e| panic!("n={n}: {e}"));
            assert_eq!(e.rid.as_str(), format!("long{n}"));
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        let f = format!("{{\"rID\":\"{}\",\"operation\":\"x\"}}", "[".repeat(200));
        assert!(precheck(f.as_bytes()).is_ok());
    }

    #[test]
    fn sniff() {
        assert_eq!(sniff_rid(br#"{"rID" : "abc", bad"#).as_deref(), Some("abc"));
        assert_eq!(sniff_rid(b"nope"), None);
        assert_eq!(
            sniff_rid(br#"{"rId":"q\"\u0411\ud83d\ude00"}"#).as_deref(),
            Some("q\"Б😀")
        );
        assert_eq!(sniff_rid(br#"{"rID":"\ud800x"}"#), None, "lone surrogate");
        assert_eq!(sniff_rid(br#"{"rID":"   "}"#), None);
        assert_eq!(sniff_rid(br#"{"rID":"open"#), None);
        assert_eq!(
            sniff_field(br#"{"rID":1,"operation":"getBill"}"#, "operation").as_deref(),
            Some("getBill")
        );
    }

    /// An rID over the envelope's cap made of multi-byte letters puts the cap inside a letter:
    /// the rID is cut at a character boundary, never sliced inside one (a panic).
    #[test]
    fn sniff_never_slices_inside_a_character() {
        for letter in ["Б", "€", "😀"] {
            for n in 0..300 {
                let rid = format!("a{}", letter.repeat(n));
                let f = format!("{{\"rID\":\"{rid}\",\"operation\":\"checkWork\"}}");
                let got = sniff_rid(f.as_bytes());
                assert_eq!(
                    got.as_deref(),
                    (rid.len() <= MAX_SNIFFED_RID).then_some(rid.as_str())
                );
                // Cut at every byte: never a panic.
                for cut in [127, 128, 129, 4095, 4096, 4097] {
                    let _ = sniff_rid(f.as_bytes().get(..cut).unwrap_or(f.as_bytes()));
                }
            }
        }
        let frame = format!(
            "{{\"rID\":\"a{}\",\"operation\":\"checkWork\"}}",
            "Б".repeat(200)
        );
        assert!(parse_envelope(frame.as_bytes()).is_err());
        assert_eq!(sniff_rid(frame.as_bytes()).map(|r| r.len()), Some(401));
    }
}
