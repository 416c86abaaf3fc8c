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
    u64::try_from(unix_now().0).unwrap_or(0)
}

/// Seconds and nanoseconds since the Unix epoch (0 if the clock is before 1970). Every wall-clock
/// read of the agent goes through here (TLS certificate checks too, `tls.rs`).
pub fn unix_now() -> (i64, u32) {
    realtime()
}

/// The wall clock through `SystemTime`, on every target whose standard library reads it with
/// 64-bit seconds.
#[cfg(not(all(target_env = "musl", target_pointer_width = "32")))]
fn realtime() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// On 32-bit musl (the armv6 and armv7 builds) the standard library calls `clock_gettime`, which
/// there is musl's compatibility symbol for a 32-bit `time_t`: past 2038-01-19 it fails with
/// EOVERFLOW, and `SystemTime::now` panics. musl 1.2's `__clock_gettime64` is called instead.
#[cfg(all(target_env = "musl", target_pointer_width = "32"))]
#[allow(unsafe_code)]
fn realtime() -> (i64, u32) {
    #[cfg(not(target_endian = "little"))]
    compile_error!("the 64-bit timespec below is laid out for little-endian targets");
    /// musl's `struct timespec` with a 64-bit `time_t` on a 32-bit little-endian target.
    #[repr(C)]
    struct Timespec64 {
        tv_sec: i64,
        tv_nsec: i32,
        _pad: i32,
    }
    extern "C" {
        fn __clock_gettime64(clock: libc::clockid_t, ts: *mut Timespec64) -> libc::c_int;
    }
    let mut ts = Timespec64 {
        tv_sec: 0,
        tv_nsec: 0,
        _pad: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec of the layout musl 1.2 writes for this call.
    let rc = unsafe { __clock_gettime64(libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 {
        return (0, 0);
    }
    (ts.tv_sec, u32::try_from(ts.tv_nsec).unwrap_or(0))
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
///
/// Through `localtime_r`, except on 32-bit musl (the armv6 and armv7 builds): there the `libc`
/// crate still declares the 32-bit `time_t` of musl before 1.2, and `localtime_r` is musl's
/// compatibility symbol for it, so an instant past 2038-01-19 would wrap to 1901. musl 1.2 (the
/// libc of every static build) exports the 64-bit `__localtime64_r`, which is called instead.
/// `struct tm` is the same either way. Tested under qemu for both ARM builds (docs/testing.md).
#[allow(unsafe_code)]
pub fn local_offset(secs: i64) -> i64 {
    // SAFETY: `libc::tm` is plain old data, so all-zero is a valid value; the call only reads
    // the time we pass and writes into the `tm` we own, and both pointers are valid for it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if localtime64(secs, &mut tm).is_null() {
            return 0;
        }
        // `c_long`: 32 bits on the ARM builds, 64 elsewhere.
        #[allow(clippy::useless_conversion)]
        i64::from(tm.tm_gmtoff)
    }
}

#[cfg(all(target_env = "musl", target_pointer_width = "32"))]
#[allow(unsafe_code)]
unsafe fn localtime64(secs: i64, tm: *mut libc::tm) -> *mut libc::tm {
    extern "C" {
        fn __localtime64_r(t: *const i64, tm: *mut libc::tm) -> *mut libc::tm;
    }
    // SAFETY: musl 1.2's 64-bit entry point: `t` points at a 64-bit time, `tm` is the caller's.
    unsafe { __localtime64_r(&secs, tm) }
}

// `libc::time_t` is marked deprecated on musl (its width changes in a future libc release); it is
// 64 bits wide on every target this branch is built for.
#[cfg(not(all(target_env = "musl", target_pointer_width = "32")))]
// On 64-bit targets the conversion cannot fail; on a 32-bit glibc it can.
#[allow(unsafe_code, deprecated, irrefutable_let_patterns)]
unsafe fn localtime64(secs: i64, tm: *mut libc::tm) -> *mut libc::tm {
    let Ok(t) = libc::time_t::try_from(secs) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `t` and `tm` are valid for the call; localtime_r writes only into `tm`.
    unsafe { libc::localtime_r(&t, tm) }
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

    /// Past 2038-01-19 the local offset is the one the zone's rules give, not the one of the
    /// instant a 32-bit `time_t` would wrap to (1901-1904: local mean time, or a zone's first
    /// rule). The zone's rules are the same in 2030 and 2040 for the zones this runs in, so
    /// the offsets must agree in winter and in summer. Run with a zone that has DST and a
    /// mean-time past (CI: `TZ=Europe/Kyiv`) under qemu for the armv6/armv7 builds.
    #[test]
    fn local_time_past_2038() {
        let jan_2030 = days_from_civil(2030, 1, 15) * 86_400 + 12 * 3600;
        let jan_2040 = days_from_civil(2040, 1, 15) * 86_400 + 12 * 3600;
        let jul_2030 = days_from_civil(2030, 7, 1) * 86_400 + 12 * 3600;
        let jul_2040 = days_from_civil(2040, 7, 1) * 86_400 + 12 * 3600;
        assert!(jan_2040 > i64::from(i32::MAX));
        assert_eq!(local_offset(jan_2040), local_offset(jan_2030));
        assert_eq!(local_offset(jul_2040), local_offset(jul_2030));
        // Through the formatter the journal listing and createOrderOnTable use.
        let off = local_offset(jul_2040);
        assert!(pos_datetime(jul_2040, off).starts_with("2040.07.01 "));
        // The wall clock read by the agent's own call agrees with the standard library's
        // (which, on 32-bit musl, reads it through the 32-bit compatibility symbol: fine today).
        let std_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = now_unix();
        assert!(now.abs_diff(std_now) <= 1, "{now} vs {std_now}");
        if std::env::var("TZ").as_deref() == Ok("Europe/Kyiv") {
            assert_eq!(
                (local_offset(jan_2040), local_offset(jul_2040)),
                (7200, 10_800)
            );
            assert_eq!(pos_datetime(jul_2040, off), "2040.07.01 15:00:00");
        }
    }
}
