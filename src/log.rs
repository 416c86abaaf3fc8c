//! Logging to stderr with syslog priority prefixes (`<3>` error, `<4>` warning, `<6>` info,
//! `<7>` debug), which journald turns into real levels. No timestamps: journald adds them.
//! Lines are written whole with one `write_all` so concurrent tasks never interleave, and are
//! cut at [`MAX_LINE`] bytes.
//!
//! The logger implements the [`log`] facade, so the diagnostics of rustls and tungstenite
//! reach journald too: theirs at warning level and above (prefixed with their target, e.g.
//! `<4>rustls::conn: …`), ours at the level chosen with `-v` / `-q` ([`set_level`]). The
//! `log_error!` / `log_warn!` / `log_info!` / `log_debug!` macros are the agent's way in; the
//! logger installs itself on first use.
//!
//! Never pass the secret to these macros; the `Secret` type prints `<redacted>` if you do.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Once;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 3,
    Warn = 4,
    Info = 6,
    Debug = 7,
}

impl Level {
    fn from_facade(l: ::log::Level) -> Level {
        match l {
            ::log::Level::Error => Level::Error,
            ::log::Level::Warn => Level::Warn,
            ::log::Level::Info => Level::Info,
            ::log::Level::Debug | ::log::Level::Trace => Level::Debug,
        }
    }
    fn to_facade(self) -> ::log::Level {
        match self {
            Level::Error => ::log::Level::Error,
            Level::Warn => ::log::Level::Warn,
            Level::Info => ::log::Level::Info,
            Level::Debug => ::log::Level::Debug,
        }
    }
}

/// The target of the agent's own records (the macros set it).
pub const TARGET: &str = "expirenza_agent";
/// Dependencies are logged at this level and above (or at ours, if that is stricter).
pub const DEPENDENCY_LEVEL: Level = Level::Warn;
/// Longest line written; longer messages are cut (bounded output, and bad input can be long).
pub const MAX_LINE: usize = 2048;

static MAX: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// Lines without the syslog prefix, for one-shot commands run by a person or a script.
static PLAIN: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// The agent's logger: stderr, syslog prefixes, one capped line per record.
struct Journald;

static LOGGER: Journald = Journald;

impl ::log::Log for Journald {
    fn enabled(&self, m: &::log::Metadata<'_>) -> bool {
        allowed(MAX.load(Ordering::Relaxed), m.target(), m.level())
    }

    fn log(&self, r: &::log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let l = Level::from_facade(r.level());
        if is_ours(r.target()) {
            write_line(l, "", r.args());
        } else {
            write_line(l, r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

fn is_ours(target: &str) -> bool {
    target.starts_with("expirenza")
}

/// Our records up to our level; a dependency's up to [`DEPENDENCY_LEVEL`] (or ours if stricter).
fn allowed(ours: u8, target: &str, level: ::log::Level) -> bool {
    let l = Level::from_facade(level) as u8;
    l <= ours && (is_ours(target) || l <= DEPENDENCY_LEVEL as u8)
}

/// Install the logger (once; a no-op if another logger was installed first).
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ::log::set_logger(&LOGGER);
        ::log::set_max_level(level_filter());
    });
}

fn level_filter() -> ::log::LevelFilter {
    let ours = MAX.load(Ordering::Relaxed);
    let l = [Level::Error, Level::Warn, Level::Info, Level::Debug]
        .into_iter()
        .rfind(|l| (*l as u8) <= ours)
        .unwrap_or(Level::Error);
    l.to_facade().to_level_filter()
}

/// The agent's own level (`-v` debug, `-q` warning, info by default). Installs the logger.
pub fn set_level(l: Level) {
    MAX.store(l as u8, Ordering::Relaxed);
    install();
    ::log::set_max_level(level_filter());
}

/// Plain lines (`error: …`, `warning: …`) instead of syslog prefixes: one-shot commands print
/// for a person or a script, not for journald. The service keeps the prefixes.
pub fn set_plain(plain: bool) {
    PLAIN.store(plain, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    (l as u8) <= MAX.load(Ordering::Relaxed)
}

/// Where the macros go: one record through the facade, target [`TARGET`].
#[doc(hidden)]
pub fn write(l: Level, args: std::fmt::Arguments<'_>) {
    install();
    ::log::log!(target: TARGET, l.to_facade(), "{args}");
}

/// `<prio>` + `target: ` (dependencies only) + the message, cut at [`MAX_LINE`], newlines made
/// visible, written with one `write_all`.
fn write_line(l: Level, target: &str, args: &std::fmt::Arguments<'_>) {
    let mut line = format_line(l, target, args, PLAIN.load(Ordering::Relaxed));
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn format_line(l: Level, target: &str, args: &std::fmt::Arguments<'_>, plain: bool) -> String {
    let mut line = if plain {
        match l {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
        }
        .to_string()
    } else {
        format!("<{}>", l as u8)
    };
    if !target.is_empty() {
        line.push_str(target);
        line.push_str(": ");
    }
    let _ = std::fmt::write(&mut line, *args);
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    // One line per record: embedded newlines from bad input are made visible, not obeyed.
    line.replace(['\n', '\r'], "⏎")
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_priority_are_capped_and_stay_one_line() {
        assert_eq!(
            format_line(Level::Warn, "", &format_args!("a\nb\rc"), false),
            "<4>a⏎b⏎c"
        );
        assert_eq!(
            format_line(
                Level::Error,
                "rustls::conn",
                &format_args!("bad cert"),
                false
            ),
            "<3>rustls::conn: bad cert"
        );
        assert_eq!(
            format_line(Level::Error, "", &format_args!("no journal"), true),
            "error: no journal"
        );
        assert_eq!(
            format_line(Level::Info, "", &format_args!("a\nb"), true),
            "a⏎b"
        );
        let long = "é".repeat(MAX_LINE);
        let l = format_line(Level::Info, "", &format_args!("{long}"), false);
        assert!(l.len() <= MAX_LINE + '…'.len_utf8(), "{}", l.len());
        assert!(l.starts_with("<6>é") && l.ends_with('…'));
    }

    #[test]
    fn dependencies_are_held_to_warnings_ours_follow_the_level() {
        use ::log::Level as F;
        let info = Level::Info as u8;
        assert!(allowed(info, TARGET, F::Info));
        assert!(!allowed(info, TARGET, F::Debug));
        assert!(allowed(Level::Debug as u8, TARGET, F::Debug));
        assert!(allowed(info, "rustls::conn", F::Warn));
        assert!(allowed(info, "tungstenite::protocol", F::Error));
        assert!(!allowed(info, "rustls::conn", F::Info));
        assert!(!allowed(Level::Debug as u8, "ureq::unit", F::Debug));
        // -q: warnings and errors only, for everyone
        assert!(!allowed(Level::Warn as u8, TARGET, F::Info));
        assert!(allowed(Level::Warn as u8, "rustls::conn", F::Warn));
    }
}
