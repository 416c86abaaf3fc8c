//! Money and quantities as integers.
//!
//! Inside the agent money is always an `i64` number of kopecks ([`Kopecks`]) and a quantity an
//! `i64` number of thousandths ([`Qty`]). On the wire both are decimals (`129.20`, `0.5`).
//!
//! Reading is done on the decimal **text** the cloud sent, never through float arithmetic
//! ([`parse_wire`]): the frame reader (`json_in.rs`) hands over a number token's text or a
//! string's content, so `10`, `10.0`, `"389.50"` and `1.0E2` are all read exactly. The cloud's
//! Java client holds amounts as `Double`, so a value may carry float noise
//! (`89.9999999999999`): within 1e-6 of a whole kopeck (a whole thousandth for quantities) it is
//! rounded to it. Refused, with the reason: text that is not a number, a negative value, more
//! than 2 decimals (3 for quantities) beyond that noise, and amounts over [`MAX_KOPECKS`] /
//! [`MAX_QTY_MILLI`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Largest accepted amount: 10 billion hryvnia. Anything above is a malformed request.
pub const MAX_KOPECKS: i64 = 1_000_000_000_000;
/// Largest accepted quantity: one million units.
pub const MAX_QTY_MILLI: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kopecks(pub i64);

/// Quantity in thousandths of a unit (`1.3` is `Qty(1300)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Qty(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not a number")]
    NotANumber,
    #[error("more than {0} decimal places (beyond float noise of 1e-6)")]
    TooPrecise(u32),
    #[error("out of range (absurdly large)")]
    OutOfRange,
    #[error("negative")]
    Negative,
}

/// Longest decimal text read (a Java `Double` prints at most ~25 characters).
pub const MAX_DECIMAL_TEXT: usize = 64;

/// Parse a wire decimal (a JSON number's text or a string's content: `10`, `10.0`, `"389.50"`,
/// `1.0E7`, `89.9999999999999`) into units of 10^-scale, from its text alone.
///
/// Within 1e-6 of a whole unit the value is float noise and is rounded to it; other digits
/// beyond `scale` are refused ([`AmountError::TooPrecise`]). Negative values are refused
/// (`-0` is 0), as is anything over `max`.
pub fn parse_wire(text: &str, scale: u32, max: i64) -> Result<i64, AmountError> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_DECIMAL_TEXT {
        return Err(AmountError::NotANumber);
    }
    let b = t.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int = &b[int_start..i];
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac = &b[s..i];
    }
    if int.is_empty() && frac.is_empty() {
        return Err(AmountError::NotANumber);
    }
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let s = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            exp = (exp * 10 + i64::from(d - b'0')).min(1000);
            i += 1;
        }
        if i == s {
            return Err(AmountError::NotANumber);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return Err(AmountError::NotANumber);
    }
    // The digits int ++ frac, with the decimal point after `point` of them.
    let n = int.len() + frac.len();
    let digit = |k: i64| -> i64 {
        if k < 0 || k >= n as i64 {
            return 0;
        }
        let k = k as usize;
        let d = if k < int.len() {
            int[k]
        } else {
            frac[k - int.len()]
        };
        i64::from(d - b'0')
    };
    // Whole units: the digits before `point + scale`.
    let cut = int.len() as i64 + exp + i64::from(scale);
    let mut whole: i64 = 0;
    for k in 0..cut.max(0) {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(digit(k)))
            .filter(|w| *w <= max)
            .ok_or(AmountError::OutOfRange)?;
    }
    // The rest, as a 12-digit window of a unit plus whether anything non-zero follows it.
    const WINDOW: u32 = 12;
    let mut rest: i64 = 0;
    for k in cut..cut + i64::from(WINDOW) {
        rest = rest * 10 + digit(k);
    }
    let more = ((cut + i64::from(WINDOW)).max(0)..n as i64).any(|k| digit(k) != 0);
    // 1e-6 of a whole hryvnia/unit is 10^(scale-6) units, 10^(scale+6) window steps.
    let tol = 10_i64.pow(scale + 6);
    let full = 10_i64.pow(WINDOW);
    if rest == 0 && !more {
    } else if rest < tol || (rest == tol && !more) {
        // noise above a whole unit: round down
    } else if full - rest <= tol {
        whole = whole
            .checked_add(1)
            .filter(|w| *w <= max)
            .ok_or(AmountError::OutOfRange)?;
    } else {
        return Err(AmountError::TooPrecise(scale));
    }
    if neg && whole != 0 {
        return Err(AmountError::Negative);
    }
    Ok(whole)
}

/// Parse a plain decimal (`"129.2"`, `"-0.01"`, `"1e3"` is refused) into units of 10^-scale.
pub fn parse_fixed(text: &str, scale: u32, max_abs: i64) -> Result<i64, AmountError> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(AmountError::NotANumber);
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(AmountError::TooPrecise(scale));
    }
    let mut v: i64 = 0;
    for b in int.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::OutOfRange)?;
    }
    let mut f: i64 = 0;
    for i in 0..scale as usize {
        let d = frac_trimmed
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        f = f * 10 + d;
    }
    let v = v
        .checked_mul(10_i64.pow(scale))
        .and_then(|v| v.checked_add(f))
        .ok_or(AmountError::OutOfRange)?;
    if v > max_abs {
        return Err(AmountError::OutOfRange);
    }
    Ok(if neg { -v } else { v })
}

/// Convert a JSON number, as parsed into an `f64`, back to its decimal text and then to fixed point.
fn from_wire_f64(x: f64, scale: u32, max_abs: i64) -> Result<i64, AmountError> {
    if !x.is_finite() {
        return Err(AmountError::NotANumber);
    }
    // `{}` on f64 prints the shortest string that round-trips, never exponent notation.
    let mut buf = heapless::String::<400>::new();
    fmt::write(&mut buf, format_args!("{x}")).map_err(|_| AmountError::OutOfRange)?;
    parse_fixed(&buf, scale, max_abs)
}

impl Kopecks {
    pub const ZERO: Kopecks = Kopecks(0);

    pub fn parse(text: &str) -> Result<Self, AmountError> {
        parse_fixed(text, 2, MAX_KOPECKS).map(Kopecks)
    }
    /// A wire amount from its decimal text ([`parse_wire`]).
    pub fn from_text(text: &str) -> Result<Self, AmountError> {
        parse_wire(text, 2, MAX_KOPECKS).map(Kopecks)
    }
    pub fn from_wire(x: f64) -> Result<Self, AmountError> {
        let v = from_wire_f64(x, 2, MAX_KOPECKS)?;
        if v < 0 {
            return Err(AmountError::Negative);
        }
        Ok(Kopecks(v))
    }
}

impl Qty {
    pub const ONE: Qty = Qty(1000);

    pub fn parse(text: &str) -> Result<Self, AmountError> {
        parse_fixed(text, 3, MAX_QTY_MILLI).map(Qty)
    }
    /// A wire quantity from its decimal text ([`parse_wire`]).
    pub fn from_text(text: &str) -> Result<Self, AmountError> {
        parse_wire(text, 3, MAX_QTY_MILLI).map(Qty)
    }
    pub fn from_wire(x: f64) -> Result<Self, AmountError> {
        let v = from_wire_f64(x, 3, MAX_QTY_MILLI)?;
        if v < 0 {
            return Err(AmountError::Negative);
        }
        Ok(Qty(v))
    }
}

/// Prints `129.20`, `0.01`, `-5.00`: always two decimals, as in the protocol's examples.
impl fmt::Display for Kopecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// Prints `1`, `0.5`, `1.3`, `2.125`: no trailing zeros.
impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let (i, fr) = (a / 1000, a % 1000);
        if fr == 0 {
            write!(f, "{sign}{i}")
        } else {
            let s = format!("{fr:03}");
            write!(f, "{sign}{i}.{}", s.trim_end_matches('0'))
        }
    }
}

/// Reads a number or a decimal string as text (`json_in::DECIMAL`), then [`parse_wire`]; other
/// deserializers (tests' `serde_json`) hand over numbers, read through [`from_wire_f64`].
struct DecimalVisitor {
    what: &'static str,
    scale: u32,
    max: i64,
}

impl DecimalVisitor {
    fn read<E: de::Error>(&self, text: &str) -> Result<i64, E> {
        parse_wire(text, self.scale, self.max).map_err(|e| {
            let shown: String = text.chars().take(40).collect();
            de::Error::custom(format_args!("{} {shown:?}: {e}", self.what))
        })
    }
}

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as a decimal number or string", self.what)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<i64, E> {
        self.read(std::str::from_utf8(v).unwrap_or(""))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        self.read(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        let x = from_wire_f64(v, self.scale, self.max)
            .map_err(|e| de::Error::custom(format_args!("{} {v}: {e}", self.what)))?;
        if x < 0 {
            return Err(de::Error::custom(format_args!(
                "{} {v}: negative",
                self.what
            )));
        }
        Ok(x)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        self.read(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        self.read(&v.to_string())
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Kopecks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = DecimalVisitor {
            what: "money",
            scale: 2,
            max: MAX_KOPECKS,
        };
        d.deserialize_newtype_struct(crate::json_in::DECIMAL, v)
            .map(Kopecks)
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = DecimalVisitor {
            what: "quantity",
            scale: 3,
            max: MAX_QTY_MILLI,
        };
        d.deserialize_newtype_struct(crate::json_in::DECIMAL, v)
            .map(Qty)
    }
}

impl std::ops::Add for Kopecks {
    type Output = Kopecks;
    fn add(self, o: Kopecks) -> Kopecks {
        Kopecks(self.0.saturating_add(o.0))
    }
}
impl std::ops::Sub for Kopecks {
    type Output = Kopecks;
    fn sub(self, o: Kopecks) -> Kopecks {
        Kopecks(self.0.saturating_sub(o.0))
    }
}
impl std::iter::Sum for Kopecks {
    fn sum<I: Iterator<Item = Kopecks>>(iter: I) -> Kopecks {
        iter.fold(Kopecks::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_is_exact() {
        for (x, k) in [
            (129.20, 12920),
            (0.01, 1),
            (0.10, 10),
            (1_000_000.00, 100_000_000),
            (34.56, 3456),
            (1080.6, 108060),
            (0.0, 0),
        ] {
            assert_eq!(Kopecks::from_wire(x), Ok(Kopecks(k)), "{x}");
        }
        // 0.1 + 0.2 style artefacts never appear because we never add floats.
        assert_eq!(Kopecks(30).to_string(), "0.30");
        assert_eq!(Kopecks(100_000_000).to_string(), "1000000.00");
        assert_eq!(Kopecks(-5).to_string(), "-0.05");
    }

    #[test]
    fn refuses_bad_amounts() {
        assert_eq!(Kopecks::from_wire(1.005), Err(AmountError::TooPrecise(2)));
        assert_eq!(Kopecks::from_wire(-1.0), Err(AmountError::Negative));
        assert_eq!(Kopecks::from_wire(f64::NAN), Err(AmountError::NotANumber));
        assert_eq!(Kopecks::from_wire(1e300), Err(AmountError::OutOfRange));
        assert_eq!(Kopecks::parse("1e3"), Err(AmountError::NotANumber));
        assert_eq!(Kopecks::parse("."), Err(AmountError::NotANumber));
    }

    #[test]
    fn wire_text_is_read_exactly() {
        let ok: &[(&str, i64)] = &[
            ("10", 1000),
            ("10.0", 1000),
            ("389.50", 38950),
            (" 389.5 ", 38950),
            ("+1", 100),
            ("-0", 0),
            ("-0.00", 0),
            ("89.9999999999999", 9000),
            ("90.0000000000001", 9000),
            ("0.1000000001", 10),
            ("129.19999999", 12920),
            ("1.0E2", 10000),
            ("1e-9", 0),
            ("1.5e1", 1500),
            ("12920e-2", 12920),
            ("0.0000001", 0),
            ("10000000000", MAX_KOPECKS),
        ];
        for (t, k) in ok {
            assert_eq!(Kopecks::from_text(t), Ok(Kopecks(*k)), "{t}");
        }
        let bad: &[(&str, AmountError)] = &[
            ("", AmountError::NotANumber),
            ("abc", AmountError::NotANumber),
            ("1,5", AmountError::NotANumber),
            ("1.2.3", AmountError::NotANumber),
            ("NaN", AmountError::NotANumber),
            ("1e", AmountError::NotANumber),
            ("-1", AmountError::Negative),
            ("-0.01", AmountError::Negative),
            ("1.005", AmountError::TooPrecise(2)),
            ("1.0000011", AmountError::TooPrecise(2)),
            ("10000000000.01", AmountError::OutOfRange),
            ("1e300", AmountError::OutOfRange),
            ("99999999999999999999999", AmountError::OutOfRange),
        ];
        for (t, e) in bad {
            assert_eq!(Kopecks::from_text(t).as_ref(), Err(e), "{t}");
        }
        assert_eq!(Qty::from_text("1.3"), Ok(Qty(1300)));
        assert_eq!(Qty::from_text("0.33300000001"), Ok(Qty(333)));
        assert_eq!(Qty::from_text("0.0005"), Err(AmountError::TooPrecise(3)));
    }

    #[test]
    fn deserialized_from_frames() {
        #[derive(serde::Deserialize)]
        struct F {
            a: Kopecks,
            b: Qty,
        }
        let f: F = crate::json_in::from_frame(br#"{"a":"389.50","b":2}"#).unwrap();
        assert_eq!((f.a, f.b), (Kopecks(38950), Qty(2000)));
        let f: F = crate::json_in::from_frame(br#"{"a":89.9999999999999,"b":"0.5"}"#).unwrap();
        assert_eq!((f.a, f.b), (Kopecks(9000), Qty(500)));
        let e = crate::json_in::from_frame::<F>(br#"{"a":"x1","b":1}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("money \"x1\": not a number"), "{e}");
        let e = crate::json_in::from_frame::<F>(br#"{"a":-1,"b":1}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn quantities() {
        assert_eq!(Qty::from_wire(0.5), Ok(Qty(500)));
        assert_eq!(Qty::from_wire(1.3), Ok(Qty(1300)));
        assert_eq!(Qty(1300).to_string(), "1.3");
        assert_eq!(Qty(2000).to_string(), "2");
        assert_eq!(Qty(2125).to_string(), "2.125");
        assert_eq!(Qty::parse("0.0005"), Err(AmountError::TooPrecise(3)));
    }
}
