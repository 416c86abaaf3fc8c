//! Logging to stderr with syslog priority prefixes (`<3>` error, `<4>` warning, `<6>` info,
//! `<7>` debug), which journald turns into real levels. No timestamps: journald adds them.
//! Lines are written whole with one `write_all` so concurrent tasks never interleave.
//!
//! Never pass the secret to these macros; the `Secret` type prints `<redacted>` if you do.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 3,
    Warn = 4,
    Info = 6,
    Debug = 7,
}

static MAX: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// Longest line written; longer messages are cut (bounded output, and bad input can be long).
pub const MAX_LINE: usize = 2048;

pub fn set_level(l: Level) {
    MAX.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    (l as u8) <= MAX.load(Ordering::Relaxed)
}

pub fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" | "trace" => Some(Level::Debug),
        _ => None,
    }
}

#[doc(hidden)]
pub fn write(l: Level, args: std::fmt::Arguments<'_>) {
    if !enabled(l) {
        return;
    }
    let mut line = format!("<{}>", l as u8);
    let _ = std::fmt::write(&mut line, args);
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    // One line per record: embedded newlines from bad input are made visible, not obeyed.
    let mut line = line.replace(['\n', '\r'], "⏎");
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }
