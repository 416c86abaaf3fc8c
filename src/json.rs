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
            buf: Vec::with_capacity(cap.min(4096)),
            sink: None,
            written: 0,
            closed: false,
            cap,
            overflow: false,
            need_comma: false,
            after_key: false,
        }
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
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }
    /// The writer stopped: the next byte would pass the cap, or a streaming sink closed.
    /// Loops that produce a body check this to stop reading.
    pub fn overflowed(&self) -> bool {
        self.overflow || self.closed
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.overflow || self.closed {
            return;
        }
        let need = self.written + bytes.len();
        if need > self.cap {
            self.overflow = true;
            return;
        }
        self.written = need;
        if let Some(sink) = &mut self.sink {
            self.closed = sink.put(bytes).is_err();
            return;
        }
        if need > self.buf.capacity() {
            // Grow by doubling, but never reserve past the cap: the buffer's capacity, not just
            // its length, is what the cap bounds.
            let target = (self.buf.capacity() * 2).max(need).min(self.cap);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    fn pre_value(&mut self) {
        if self.after_key {
            self.after_key = false;
        } else if self.need_comma {
            self.raw(b",");
        }
        self.need_comma = true;
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

    pub fn key(&mut self, k: &str) -> &mut Self {
        self.pre_value();
        self.escaped(k);
        self.raw(b":");
        self.after_key = true;
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.pre_value();
        self.escaped(v);
        self
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
        self.pre_value();
        let mut s = heapless::String::<24>::new();
        let _ = write!(s, "{v}");
        self.raw(s.as_bytes());
        self
    }
    pub fn money(&mut self, v: Kopecks) -> &mut Self {
        self.pre_value();
        let mut s = heapless::String::<32>::new();
        let _ = write!(s, "{v}");
        self.raw(s.as_bytes());
        self
    }
    pub fn qty(&mut self, v: Qty) -> &mut Self {
        self.pre_value();
        let mut s = heapless::String::<32>::new();
        let _ = write!(s, "{v}");
        self.raw(s.as_bytes());
        self
    }

    // Field helpers: key + value in one call.
    pub fn f_str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).str(v)
    }
    /// Writes the field only when `v` is `Some`: the protocol omits empty fields (§3).
    pub fn f_opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.key(k).str(v);
        }
        self
    }
    /// `"k": "v"` or `"k": null`.
    pub fn f_str_or_null(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        self.key(k);
        match v {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }
    pub fn f_int(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k).int(v)
    }
    pub fn f_bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k).bool(v)
    }
    pub fn f_money(&mut self, k: &str, v: Kopecks) -> &mut Self {
        self.key(k).money(v)
    }
    pub fn f_qty(&mut self, k: &str, v: Qty) -> &mut Self {
        self.key(k).qty(v)
    }

    fn escaped(&mut self, s: &str) {
        self.raw(b"\"");
        let bytes = s.as_bytes();
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
            Ok(self.buf)
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

#[cfg(test)]
mod tests {
    use super::*;

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
