//! A bounded JSON writer for callback bodies.
//!
//! Callback bodies are written once, straight into one `Vec<u8>` that may never grow past
//! `cap` bytes (`[limits] max_body_bytes`). Past the cap the writer stops writing, remembers
//! that it overflowed, and [`JsonBuf::finish`] returns [`BodyTooLarge`]: a large menu is refused
//! cleanly, never allocated without bound. Strings are written as raw UTF-8 with the escapes
//! JSON requires (what the reference Java client sends); money and quantities are written from
//! integers ([`Kopecks`], [`Qty`]) so no float ever touches a wire amount.
//!
//! Commas are automatic: every value or key checks whether it follows a sibling.
//!
//! A writer can also stream: [`JsonBuf::streaming`] sends every byte to a [`Sink`] instead of
//! the buffer (still counted against `cap`), so a body too large to hold (menuInfo of any size)
//! can be generated twice in constant memory: once into a signer, once onto the wire
//! (see `crate::body_stream`).

use std::fmt::Write as _;

use crate::money::{Kopecks, Qty};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("callback body exceeds max_body_bytes ({cap} bytes)")]
pub struct BodyTooLarge {
    pub cap: usize,
}

/// Why a streaming writer has no sink to give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamStopped {
    #[error(transparent)]
    TooLarge(BodyTooLarge),
    #[error(transparent)]
    Closed(SinkClosed),
    #[error("the writer was not streaming")]
    NotStreaming,
}

/// Where a streaming [`JsonBuf`] puts its bytes.
pub trait Sink: std::any::Any + Send {
    /// Take the next bytes. `Err` stops the writer for good (the consumer went away).
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkClosed>;
}

/// A [`Sink`] refused bytes: its consumer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body's consumer went away")]
pub struct SinkClosed;

pub struct JsonBuf {
    /// The body so far is `buf[..written]`. The rest of `buf` is zeroed room, so a field is
    /// copied into a slice already there (a bounds check and a copy), not pushed part by part.
    buf: Vec<u8>,
    /// Streaming: bytes go here, not into `buf`.
    sink: Option<Box<dyn Sink>>,
    /// Bytes written (into `buf` or the sink).
    written: usize,
    closed: bool,
    cap: usize,
    overflow: bool,
    need_comma: bool,
    after_key: bool,
}

impl JsonBuf {
    pub fn new(cap: usize) -> Self {
        JsonBuf {
            buf: vec![0; cap.min(4096)],
            sink: None,
            written: 0,
            closed: false,
            cap,
            overflow: false,
            need_comma: false,
            after_key: false,
        }
    }

    /// A writer capped at `cap` bytes with room for `room` of them from the start (the body's
    /// size when it is known, e.g. a cached answer's): no growing on the way.
    pub fn with_room(cap: usize, room: usize) -> Self {
        let mut j = JsonBuf::new(cap);
        j.buf = vec![0; room.min(cap).max(64)];
        j
    }

    /// A writer that sends its bytes to `sink` (at most `cap` of them) instead of a buffer.
    pub fn streaming(sink: Box<dyn Sink>, cap: usize) -> Self {
        JsonBuf {
            buf: Vec::new(),
            sink: Some(sink),
            written: 0,
            closed: false,
            cap,
            overflow: false,
            need_comma: false,
            after_key: false,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.written
    }

    /// The bytes written from offset `start` on, while they are all held (not for a streaming
    /// or an overflowed writer).
    pub fn since(&self, start: usize) -> Option<&[u8]> {
        if self.sink.is_some() || self.overflow {
            return None;
        }
        self.buf.get(start..self.written)
    }

    /// Appends `bytes`, JSON that a `JsonBuf` wrote before (a cached answer's rest, from
    /// [`JsonBuf::since`]), as they are: no check, no escape. The writer is left as after a
    /// value.
    pub fn json_written_before(&mut self, bytes: &[u8]) -> &mut Self {
        self.raw(bytes);
        self.after_key = false;
        self.need_comma = true;
        self
    }
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }
    /// The writer stopped: the next byte would pass the cap, or a streaming sink closed.
    /// Loops that produce a body check this to stop reading.
    pub fn overflowed(&self) -> bool {
        self.overflow || self.closed
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.put(&[bytes]);
    }

    /// Writes `parts` one after the other: in place when the buffer has room, else (a
    /// streaming writer, a full buffer, the cap) part by part on the slow path.
    #[inline]
    fn put(&mut self, parts: &[&[u8]]) {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if !self.in_place(n, |c| parts.iter().for_each(|p| c.bytes(p))) {
            for p in parts {
                self.put_slow(p);
            }
        }
    }

    /// The fast path: when the next `n` bytes fit in the buffer, `write` puts exactly those
    /// `n` bytes through a [`Cursor`] over them, and this returns `true`. Otherwise nothing is
    /// written and the caller takes the slow path.
    #[inline(always)]
    fn in_place(&mut self, n: usize, write: impl FnOnce(&mut Cursor<'_>)) -> bool {
        if self.sink.is_some() || self.overflow {
            return false;
        }
        let need = self.written + n;
        // The buffer's length never passes the cap, so bytes that fit are allowed.
        let Some(dst) = self.buf.get_mut(self.written..need) else {
            return false;
        };
        write(&mut Cursor { dst, at: 0 });
        self.written = need;
        true
    }

    #[cold]
    fn put_slow(&mut self, bytes: &[u8]) {
        if self.overflow || self.closed {
            return;
        }
        let need = self.written + bytes.len();
        if need > self.cap {
            self.overflow = true;
            return;
        }
        if let Some(sink) = &mut self.sink {
            self.written = need;
            self.closed = sink.put(bytes).is_err();
            return;
        }
        if need > self.buf.len() {
            // Grow by doubling, but never reserve past the cap: the buffer's capacity, not just
            // its length, is what the cap bounds.
            let target = (self.buf.len() * 2).max(need).min(self.cap);
            self.buf.reserve_exact(target - self.buf.len());
            self.buf.resize(target, 0);
        }
        if let Some(dst) = self.buf.get_mut(self.written..need) {
            dst.copy_from_slice(bytes);
        }
        self.written = need;
    }

    /// Whether the next value needs a `,` before it (it follows a sibling, not a key or an
    /// opening bracket), and the state after it.
    #[inline]
    fn comma(&mut self) -> bool {
        let c = !self.after_key && self.need_comma;
        self.after_key = false;
        self.need_comma = true;
        c
    }

    fn pre_value(&mut self) {
        if self.comma() {
            self.raw(b",");
        }
    }

    pub fn begin_obj(&mut self) -> &mut Self {
        self.pre_value();
        self.raw(b"{");
        self.need_comma = false;
        self
    }
    pub fn end_obj(&mut self) -> &mut Self {
        self.raw(b"}");
        self.need_comma = true;
        self
    }
    pub fn begin_arr(&mut self) -> &mut Self {
        self.pre_value();
        self.raw(b"[");
        self.need_comma = false;
        self
    }
    pub fn end_arr(&mut self) -> &mut Self {
        self.raw(b"]");
        self.need_comma = true;
        self
    }

    /// A key: a `&str` (checked for bytes to escape as it is written) or a [`Key`] made by
    /// [`key!`](crate::key) (checked when the program is compiled, written as one copy).
    pub fn key(&mut self, k: impl KeyArg) -> &mut Self {
        k.put_key(self);
        self.after_key = true;
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.quoted(v.as_bytes(), b"\"");
        self
    }

    /// `"v"` followed by the rest of `close` (`"` for a string, `":` for a key), after a comma
    /// when one is due: in place when `v` needs no escape and fits, else on the slow path.
    #[inline(always)]
    fn quoted(&mut self, v: &[u8], close: &'static [u8]) {
        let comma = self.comma();
        let fits = !needs_escape(v)
            && self.in_place(usize::from(comma) + 1 + v.len() + close.len(), |c| {
                c.comma(comma);
                c.byte(b'"');
                c.bytes(v);
                c.bytes(close);
            });
        if !fits {
            self.slow_str(comma, v);
            self.raw(close.get(1..).unwrap_or_default());
        }
    }

    /// A string (or key) off the fast path: it has bytes to escape, or the buffer is full or
    /// streaming.
    #[cold]
    fn slow_str(&mut self, comma: bool, v: &[u8]) {
        if comma {
            self.raw(b",");
        }
        if needs_escape(v) {
            self.escaped(v);
        } else {
            self.put(&[b"\"", v, b"\""]);
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.pre_value();
        self.raw(b"null");
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.pre_value();
        self.raw(if v { b"true" } else { b"false" });
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        let sep: &[u8] = if self.comma() { b"," } else { b"" };
        let mut b = itoa::Buffer::new();
        self.put(&[sep, b.format(v).as_bytes()]);
        self
    }
    /// `129.20`: whole hryvnias, a dot, two digits of kopecks (no float involved).
    pub fn money(&mut self, v: Kopecks) -> &mut Self {
        let sep: &[u8] = if self.comma() { b"," } else { b"" };
        let a = v.0.unsigned_abs();
        let sign: &[u8] = if v.0 < 0 { b"-" } else { b"" };
        let mut b = itoa::Buffer::new();
        let k = (a % 100) as usize;
        let cents = [b'0' + (k / 10) as u8, b'0' + (k % 10) as u8];
        self.put(&[sep, sign, b.format(a / 100).as_bytes(), b".", &cents]);
        self
    }
    /// A quantity in thousandths as a decimal: `2`, `1.5`, `0.125`, `-0.25` (what
    /// [`Qty`]'s `Display` writes), from integers.
    pub fn qty(&mut self, v: Qty) -> &mut Self {
        let sep: &[u8] = if self.comma() { b"," } else { b"" };
        let a = v.0.unsigned_abs();
        let sign: &[u8] = if v.0 < 0 { b"-" } else { b"" };
        let fr = (a % 1000) as u16;
        let digits = [
            b'0' + (fr / 100) as u8,
            b'0' + (fr / 10 % 10) as u8,
            b'0' + (fr % 10) as u8,
        ];
        let kept = match fr {
            0 => 0,
            _ if fr.is_multiple_of(100) => 1,
            _ if fr.is_multiple_of(10) => 2,
            _ => 3,
        };
        let dot: &[u8] = if kept == 0 { b"" } else { b"." };
        let frac = digits.get(..kept).unwrap_or_default();
        let mut b = itoa::Buffer::new();
        self.put(&[sep, sign, b.format(a / 1000).as_bytes(), dot, frac]);
        self
    }

    // Field helpers: key + value in one call.
    pub fn f_str(&mut self, k: impl KeyArg, v: &str) -> &mut Self {
        self.key(k).str(v)
    }
    /// Writes the field only when `v` is `Some`: the protocol omits empty fields (§3).
    pub fn f_opt_str(&mut self, k: impl KeyArg, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.key(k).str(v);
        }
        self
    }
    /// `"k": "v"` or `"k": null`.
    pub fn f_str_or_null(&mut self, k: impl KeyArg, v: Option<&str>) -> &mut Self {
        self.key(k);
        match v {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }
    pub fn f_int(&mut self, k: impl KeyArg, v: i64) -> &mut Self {
        self.key(k).int(v)
    }
    pub fn f_bool(&mut self, k: impl KeyArg, v: bool) -> &mut Self {
        self.key(k).bool(v)
    }
    pub fn f_money(&mut self, k: impl KeyArg, v: Kopecks) -> &mut Self {
        self.key(k).money(v)
    }
    pub fn f_qty(&mut self, k: impl KeyArg, v: Qty) -> &mut Self {
        self.key(k).qty(v)
    }

    /// A string with at least one byte to escape (the caller checked): the runs between
    /// escapes are copied whole.
    fn escaped(&mut self, bytes: &[u8]) {
        self.raw(b"\"");
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => {
                    self.raw(&bytes[start..i]);
                    let mut u = heapless::String::<8>::new();
                    let _ = write!(u, "\\u{b:04x}");
                    self.raw(u.as_bytes());
                    start = i + 1;
                    continue;
                }
                _ => continue,
            };
            self.raw(&bytes[start..i]);
            self.raw(esc);
            start = i + 1;
        }
        self.raw(&bytes[start..]);
        self.raw(b"\"");
    }

    pub fn finish(self) -> Result<Vec<u8>, BodyTooLarge> {
        if self.overflow {
            Err(BodyTooLarge { cap: self.cap })
        } else {
            let mut buf = self.buf;
            buf.truncate(self.written);
            Ok(buf)
        }
    }

    /// The end of a streaming writer: its sink (downcast it to the type given to
    /// [`JsonBuf::streaming`]), or why it stopped.
    pub fn into_sink(self) -> Result<Box<dyn Sink>, StreamStopped> {
        match self.sink {
            _ if self.overflow => Err(StreamStopped::TooLarge(BodyTooLarge { cap: self.cap })),
            _ if self.closed => Err(StreamStopped::Closed(SinkClosed)),
            Some(sink) => Ok(sink),
            None => Err(StreamStopped::NotStreaming),
        }
    }
}

/// What [`JsonBuf::key`] takes: a `&str` or a [`Key`].
pub trait KeyArg {
    fn put_key(self, j: &mut JsonBuf);
}

impl KeyArg for &str {
    #[inline]
    fn put_key(self, j: &mut JsonBuf) {
        j.quoted(self.as_bytes(), b"\":");
    }
}

/// A key whose bytes need no escape, known when the program is compiled, and kept as the bytes
/// it is written as (`"name":`): make one with [`key!`](crate::key). The hot writers (a bill's
/// lines) use these; writing one is a comma when due and one copy.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    quoted: &'static [u8],
}

impl Key {
    /// `quoted` is `"name":`; a name with a byte to escape stops the build ([`key!`] evaluates
    /// this in a constant).
    #[doc(hidden)]
    pub const fn checked(quoted: &'static str) -> Key {
        let b = quoted.as_bytes();
        assert!(b.len() >= 3, "a key is written as \"name\":");
        let mut i = 1;
        while i + 2 < b.len() {
            let c = b[i];
            assert!(
                c >= 0x20 && c != b'"' && c != b'\\',
                "a key! name has a byte JSON must escape"
            );
            i += 1;
        }
        Key { quoted: b }
    }
}

impl KeyArg for Key {
    #[inline]
    fn put_key(self, j: &mut JsonBuf) {
        let comma = j.comma();
        let fits = j.in_place(usize::from(comma) + self.quoted.len(), |c| {
            c.comma(comma);
            c.bytes(self.quoted);
        });
        if !fits {
            j.put_slow(if comma { b"," } else { b"" });
            j.put_slow(self.quoted);
        }
    }
}

/// A [`json::Key`](crate::json::Key) checked at compile time: `j.f_str(key!("billId"), id)`.
/// A name with a byte JSON must escape does not compile:
///
/// ```compile_fail
/// let _ = expirenza_agent::key!("bad\"key");
/// ```
#[macro_export]
macro_rules! key {
    ($name:literal) => {{
        const K: $crate::json::Key = $crate::json::Key::checked(concat!("\"", $name, "\":"));
        K
    }};
}

/// Writes into a slice the fast path has already sized: every write fits by construction, so
/// the checks below never fail (and never panic if they did).
struct Cursor<'a> {
    dst: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        if let Some(d) = self.dst.get_mut(self.at) {
            *d = b;
        }
        self.at += 1;
    }
    #[inline(always)]
    fn comma(&mut self, comma: bool) {
        if comma {
            self.byte(b',');
        }
    }
    #[inline(always)]
    fn bytes(&mut self, s: &[u8]) {
        if let Some(d) = self.dst.get_mut(self.at..self.at + s.len()) {
            d.copy_from_slice(s);
        }
        self.at += s.len();
    }
}

/// Whether `bytes` holds a byte a JSON string must escape: a control character, `"` or `\\`.
/// Eight bytes at a time (each test below is exact for "any byte in the word"); the tail of a
/// string of eight bytes or more is its last eight bytes, overlapping the word before.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(L) & !v & H;
    let test = |w: &[u8]| {
        let x = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        let control = x.wrapping_sub(L * 0x20) & !x & H;
        control | zero(x ^ (L * u64::from(b'"'))) | zero(x ^ (L * u64::from(b'\\'))) != 0
    };
    let Some(last) = bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) else {
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    };
    bytes.chunks_exact(8).any(test) || test(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_finds_every_escapable_byte_at_every_position() {
        let naive = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        for len in 0..20 {
            for pos in 0..len {
                for byte in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = byte;
                    assert_eq!(
                        needs_escape(&v),
                        naive(&v),
                        "byte {byte:#x} at {pos} of {len}"
                    );
                }
            }
        }
        // UTF-8 multi-byte text needs no escape.
        assert!(!needs_escape("Гість 1: борщ, «Київ» — 129.20 ₴".as_bytes()));
    }

    #[test]
    fn compile_time_keys_write_what_str_keys_write() {
        let write = |with_macro: bool, cap: usize| {
            let mut j = JsonBuf::new(cap);
            j.begin_obj();
            if with_macro {
                j.f_str(crate::key!("a"), "x")
                    .key(crate::key!("list"))
                    .begin_arr()
                    .begin_obj()
                    .f_int(crate::key!("n"), 1)
                    .f_str_or_null(crate::key!("m"), None)
                    .end_obj()
                    .end_arr();
            } else {
                j.f_str("a", "x")
                    .key("list")
                    .begin_arr()
                    .begin_obj()
                    .f_int("n", 1)
                    .f_str_or_null("m", None)
                    .end_obj()
                    .end_arr();
            }
            j.end_obj();
            j.finish()
        };
        let want = br#"{"a":"x","list":[{"n":1,"m":null}]}"#;
        assert_eq!(write(true, 1024).unwrap(), want);
        assert_eq!(write(false, 1024).unwrap(), want);
        // Past the cap, both stop the same way.
        assert!(write(true, 20).is_err() && write(false, 20).is_err());
        // Off the in-place path (the buffer grows past its first 4 KiB), the same bytes.
        let mut j = JsonBuf::new(1 << 20);
        j.begin_arr();
        for _ in 0..800 {
            j.begin_obj().f_int(crate::key!("k"), 7).end_obj();
        }
        j.end_arr();
        let body = j.finish().unwrap();
        assert_eq!(
            body.len(),
            2 + 800 * 8 - 1,
            "{{\"k\":7}} and a comma, 800 times"
        );
        assert!(body.starts_with(br#"[{"k":7},{"k":7}"#) && body.ends_with(br#"{"k":7}]"#));
    }

    #[test]
    fn quantities_are_written_as_their_display_text() {
        let values = [
            0,
            1,
            10,
            100,
            999,
            1000,
            1500,
            1250,
            1125,
            -250,
            -1001,
            i64::MAX,
            i64::MIN,
        ];
        let mut j = JsonBuf::new(4096);
        j.begin_arr();
        for v in values {
            j.qty(Qty(v));
        }
        j.end_arr();
        let want: Vec<String> = values.iter().map(|&v| Qty(v).to_string()).collect();
        assert_eq!(
            String::from_utf8(j.finish().unwrap()).unwrap(),
            format!("[{}]", want.join(","))
        );
        assert_eq!(Qty(1500).to_string(), "1.5");
        assert_eq!(Qty(-1001).to_string(), "-1.001");
    }

    #[test]
    fn money_and_int_are_written_as_decimal_text() {
        let mut j = JsonBuf::new(1024);
        j.begin_arr()
            .money(Kopecks(12920))
            .money(Kopecks(-5))
            .money(Kopecks(0))
            .money(Kopecks(i64::MIN))
            .int(i64::MIN)
            .int(7)
            .end_arr();
        assert_eq!(
            String::from_utf8(j.finish().unwrap()).unwrap(),
            format!("[129.20,-0.05,0.00,{},{},7]", Kopecks(i64::MIN), i64::MIN)
        );
    }

    #[test]
    fn writes_nested_values_with_commas() {
        let mut j = JsonBuf::new(1024);
        j.begin_obj()
            .f_str("rID", "a\"b\\c\n")
            .key("tables")
            .begin_arr();
        for n in 1..=2 {
            j.begin_obj()
                .f_int("number", n)
                .f_str("name", "Біля каміна")
                .end_obj();
        }
        j.end_arr()
            .f_money("sum", Kopecks(12920))
            .f_qty("count", Qty(500))
            .f_str_or_null("linkedTo", None)
            .end_obj();
        let out = String::from_utf8(j.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"rID":"a\"b\\c\n","tables":[{"number":1,"name":"Біля каміна"},{"number":2,"name":"Біля каміна"}],"sum":129.20,"count":0.5,"linkedTo":null}"#
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut j = JsonBuf::new(64);
        j.str("\u{1}x\u{1f}");
        assert_eq!(j.finish().unwrap(), br#""\u0001x\u001f""#);
    }

    #[test]
    fn stops_at_the_cap() {
        let mut j = JsonBuf::new(16);
        j.begin_arr();
        for _ in 0..100 {
            j.str("0123456789");
        }
        j.end_arr();
        assert!(j.len() <= 16);
        assert_eq!(j.finish(), Err(BodyTooLarge { cap: 16 }));
    }

    struct Collect(Vec<u8>, usize);
    impl Sink for Collect {
        fn put(&mut self, bytes: &[u8]) -> Result<(), SinkClosed> {
            if self.0.len() + bytes.len() > self.1 {
                return Err(SinkClosed);
            }
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn sample(j: &mut JsonBuf) {
        j.begin_obj().f_str("rID", "r\"1").key("a").begin_arr();
        for n in 0..50 {
            j.begin_obj().f_int("n", n).f_str("name", "Борщ").end_obj();
        }
        j.end_arr().end_obj();
    }

    #[test]
    fn streaming_writes_the_same_bytes_as_buffering() {
        let mut b = JsonBuf::new(1 << 20);
        sample(&mut b);
        let buffered = b.finish().unwrap();
        let mut s = JsonBuf::streaming(Box::new(Collect(Vec::new(), usize::MAX)), 1 << 20);
        sample(&mut s);
        assert_eq!(s.len(), buffered.len());
        let sink: Box<dyn std::any::Any> = s.into_sink().unwrap();
        let sink = sink.downcast::<Collect>().unwrap();
        assert_eq!(sink.0, buffered);
    }

    #[test]
    fn streaming_stops_at_the_cap_and_when_the_sink_closes() {
        let mut s = JsonBuf::streaming(Box::new(Collect(Vec::new(), usize::MAX)), 100);
        sample(&mut s);
        assert!(s.overflowed());
        assert_eq!(
            s.into_sink().err(),
            Some(StreamStopped::TooLarge(BodyTooLarge { cap: 100 }))
        );
        let mut s = JsonBuf::streaming(Box::new(Collect(Vec::new(), 10)), 1 << 20);
        sample(&mut s);
        assert!(s.overflowed(), "a closed sink stops the writer");
        assert_eq!(s.into_sink().err(), Some(StreamStopped::Closed(SinkClosed)));
    }

    #[test]
    fn capacity_never_exceeds_the_cap() {
        let cap = 100_000;
        let mut j = JsonBuf::new(cap);
        j.begin_arr();
        while !j.overflowed() {
            j.str("0123456789abcdef");
            assert!(
                j.buf.capacity() <= cap,
                "capacity {} over cap",
                j.buf.capacity()
            );
        }
    }
}
