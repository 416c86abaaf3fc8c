//! Wall-clock strings in the protocol's formats, without a date-time crate.
//!
//! - `eventTime`: ISO-8601 UTC with nanoseconds, `2024-10-06T23:01:01.453026800Z`.
//! - `created` / `dateTime`: `yyyy.MM.dd HH:mm:ss` in the restaurant's local time, taken from
//!   the system time zone (`/etc/localtime`, or `TZ`) through libc's `localtime_r`, which musl
//!   implements too. The protocol does not state the zone; local time is [inferred].

use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day) from days since 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of midnight, local time, on the civil date `y-m-d`.
pub fn local_midnight(y: i64, m: u32, d: u32) -> i64 {
    let midnight_utc = days_from_civil(y, m, d) * 86_400;
    midnight_utc - local_offset(midnight_utc)
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds and nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

/// `2024-10-06T23:01:01.453026800Z`
pub fn utc_iso(secs: i64, nanos: u32) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for people (`expirenza-agent status`, `journal`).
pub fn utc_datetime(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub fn utc_iso_now() -> String {
    let (s, n) = unix_now();
    utc_iso(s, n)
}

/// UTC offset of the local zone at `secs`, in seconds.
// `libc::time_t` is marked deprecated on musl (its width changes in a future libc release);
// it is still the type `localtime_r` takes, so the allowance is scoped to this call.
#[allow(deprecated)]
#[allow(unsafe_code)]
pub fn local_offset(secs: i64) -> i64 {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `libc::tm` is plain old data, so all-zero is a valid value; localtime_r only
    // reads `t` and writes into the `tm` we own, and both pointers are valid for the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// `yyyy.MM.dd HH:mm:ss` for `secs` shifted by `offset` seconds.
pub fn pos_datetime(secs: i64, offset: i64) -> String {
    let t = secs + offset;
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}.{mo:02}.{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub fn pos_datetime_now() -> String {
    let (s, _) = unix_now();
    pos_datetime(s, local_offset(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(utc_iso(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc_iso(1_728_255_661, 453_026_800),
            "2024-10-06T23:01:01.453026800Z"
        );
        assert_eq!(pos_datetime(1_715_710_867, 3 * 3600), "2024.05.14 21:21:07");
        assert_eq!(pos_datetime(951_782_400, 0), "2000.02.29 00:00:00");
        assert_eq!(days_from_civil(2024, 5, 14) * 86_400, 1_715_644_800);
        for days in [-1, 0, 59, 60, 11_016, 19_857, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_datetime(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_datetime(1_790_000_000), "2026-09-21 14:13:20 UTC");
    }
}
