//! Money and quantities as integers.
//!
//! Inside the agent money is always an `i64` number of kopecks ([`Kopecks`]) and a quantity an
//! `i64` number of thousandths ([`Qty`]). On the wire both are JSON numbers with a decimal
//! fraction (`129.20`, `0.5`). Parsing goes through text, never through float arithmetic:
//! the incoming token is read by the JSON parser as an `f64`, printed back with Rust's shortest
//! round-trip representation (which reproduces the sender's decimal digits for any number with
//! at most 15 significant digits) and that text is parsed as a fixed-point decimal.

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
    #[error("more than {0} decimal places")]
    TooPrecise(u32),
    #[error("out of range")]
    OutOfRange,
    #[error("negative")]
    Negative,
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

struct F64Visitor;
impl Visitor<'_> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        // Integers up to 2^53 are exact in f64; larger are out of range for money anyway.
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
}

impl<'de> Deserialize<'de> for Kopecks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = d.deserialize_f64(F64Visitor)?;
        Kopecks::from_wire(x).map_err(|e| de::Error::custom(format_args!("money: {e}")))
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = d.deserialize_f64(F64Visitor)?;
        Qty::from_wire(x).map_err(|e| de::Error::custom(format_args!("quantity: {e}")))
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
    fn quantities() {
        assert_eq!(Qty::from_wire(0.5), Ok(Qty(500)));
        assert_eq!(Qty::from_wire(1.3), Ok(Qty(1300)));
        assert_eq!(Qty(1300).to_string(), "1.3");
        assert_eq!(Qty(2000).to_string(), "2");
        assert_eq!(Qty(2125).to_string(), "2.125");
        assert_eq!(Qty::parse("0.0005"), Err(AmountError::TooPrecise(3)));
    }
}
