//! `expirenza-agent status`: the snapshot rendered for a technician, and the health rules.

use super::process::Process;
use super::snapshot::Status;

/// [`render`] warns when the file is older than this (the agent rewrites it every 5 s by default).
pub const DEFAULT_STALE_AFTER_SECS: u64 = 30;
/// [`health`]: a link that is not up is tolerated this long after a disconnect or the start
/// (reconnects are normal; the protocol's backoff floor is 15 s).
pub const LINK_GRACE_SECS: u64 = 120;
/// [`health`]: the POS is considered stuck when this many journal commands wait for it.
pub const JOURNAL_BACKLOG_UNHEALTHY: u64 = 100;
/// [`health`]: failures only count once there are at least this many in the last hour.
pub const MIN_FAILED_UNHEALTHY: u64 = 3;

/// `s` for a terminal: control characters (and the Unicode line separators) shown as Rust
/// escapes (`\n`, `\u{1b}`), so a hostile reason stays on its line and cannot colour it.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// "42 s ago", "12 min ago", "3 h 5 min ago", "4 d ago"; "in the future" on clock skew.
fn ago(then: u64, now: u64) -> String {
    if then > now {
        return format!("{} s in the future (clock changed?)", then - now);
    }
    let d = now - then;
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=172_799 => format!("{} h {} min ago", d / 3600, (d % 3600) / 60),
        _ => format!("{} d ago", d / 86_400),
    }
}

fn when(t: Option<u64>, now: u64) -> String {
    match t {
        Some(t) => format!("{} ({})", crate::clock::utc_datetime(t), ago(t, now)),
        None => "never".into(),
    }
}

/// Human-readable report for a technician, given whether the file's process still runs.
/// Control characters in strings are shown escaped.
pub fn render(s: &Status, now: u64, process: &Process) -> String {
    let mut o = String::new();
    let age = now.saturating_sub(s.written_at);
    let stopped = match process {
        Process::Gone(why) => Some(why),
        _ => None,
    };
    o.push_str(&format!(
        "expirenza-agent {} (pid {}), restaurant {}{}\n",
        shown(&s.version),
        s.pid,
        shown(&s.resto_id),
        if stopped.is_some() { ": stopped" } else { "" }
    ));
    o.push_str(&format!(
        "  running since     {}\n",
        when(Some(s.started_at), now)
    ));
    o.push_str(&format!("  link              {}\n", shown(&s.link)));
    o.push_str(&format!(
        "  last connect      {}\n",
        when(s.last_connect, now)
    ));
    o.push_str(&format!(
        "  last disconnect   {}\n",
        when(s.last_disconnect, now)
    ));
    if let Some(r) = &s.last_disconnect_reason {
        o.push_str(&format!("    reason          {}\n", shown(r)));
    }
    o.push_str(&format!(
        "  last hour         {} operations answered, {} failed\n",
        s.answered_last_hour, s.failed_last_hour
    ));
    o.push_str(&format!(
        "  journal pending   {} command(s) waiting for the POS\n",
        s.journal_pending
    ));
    let p = &s.callback_pool;
    if p.is_quiet() {
        o.push_str("  callback pool     no callback has waited for a free connection\n");
    } else {
        o.push_str(&format!(
            "  callback pool     {} callback(s) waited for a free connection (longest {:.1} s), {} gave up at their deadline, {} waiting now ([callback] max_connections = {})\n",
            p.waited,
            p.longest_wait_ms as f64 / 1000.0,
            p.gave_up,
            p.waiting,
            p.max_connections
        ));
    }
    o.push_str(&format!("  orders cache      {}\n", shown(&s.cache)));
    o.push_str(&format!(
        "  status file       written {}\n",
        ago(s.written_at, now)
    ));
    if let Some(why) = stopped {
        o.push_str(&format!(
            "  health            STOPPED: {why}; what is above is what it last wrote\n"
        ));
        o.push_str(
            "           (systemctl status expirenza-agent; journalctl -u expirenza-agent)\n",
        );
        return o;
    }
    if age > DEFAULT_STALE_AFTER_SECS {
        o.push_str("  WARNING: the status file is stale: the agent is not running or is stuck\n");
        o.push_str(
            "           (systemctl status expirenza-agent; journalctl -u expirenza-agent)\n",
        );
    }
    match health(s, now, DEFAULT_STALE_AFTER_SECS) {
        Ok(()) => o.push_str("  health            OK\n"),
        Err(why) => o.push_str(&format!("  health            UNHEALTHY: {why}\n")),
    }
    o
}

/// Health rules, first failing one wins:
/// 1. the file is older than `stale_after_secs`: the agent is not running (or its loop stalled);
/// 2. the link is not `up` and has not been for more than [`LINK_GRACE_SECS`] since the last
///    disconnect (or since the start, if it never connected): normal reconnects are tolerated;
/// 3. at least [`MIN_FAILED_UNHEALTHY`] operations failed in the last hour and failures exceed
///    half the successful answers;
/// 4. [`JOURNAL_BACKLOG_UNHEALTHY`] or more journal commands wait for the POS (the POS is not
///    consuming the journal). A few pending commands are normal while the POS works.
pub fn health(s: &Status, now: u64, stale_after_secs: u64) -> Result<(), String> {
    let age = now.saturating_sub(s.written_at);
    if age > stale_after_secs {
        return Err(format!(
            "status file is {age} s old (agent not running or stuck)"
        ));
    }
    if s.link != "up" {
        let since = s.last_disconnect.unwrap_or(s.started_at);
        let down_for = now.saturating_sub(since);
        if down_for > LINK_GRACE_SECS {
            let why = s
                .last_disconnect_reason
                .as_deref()
                .map(|r| format!(": {}", shown(r)))
                .unwrap_or_default();
            return Err(format!("link {} for {} s{}", shown(&s.link), down_for, why));
        }
    }
    if s.failed_last_hour >= MIN_FAILED_UNHEALTHY && s.failed_last_hour > s.answered_last_hour / 2 {
        return Err(format!(
            "{} operations failed in the last hour ({} answered)",
            s.failed_last_hour, s.answered_last_hour
        ));
    }
    if s.journal_pending >= JOURNAL_BACKLOG_UNHEALTHY {
        return Err(format!(
            "{} journal commands wait for the POS",
            s.journal_pending
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::tests::sample;

    const T0: u64 = 1_790_000_000; // 2026-09-21

    #[test]
    fn health_rules() {
        let ok = sample();
        assert_eq!(health(&ok, T0 + 5, 30), Ok(()));
        // 1. stale file
        assert!(health(&ok, T0 + 31, 30)
            .unwrap_err()
            .contains("not running"));
        // 2. link down: tolerated for LINK_GRACE_SECS after the disconnect
        let mut s = sample();
        s.link = "down".into();
        s.last_disconnect = Some(T0 - 60);
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.last_disconnect = Some(T0 - LINK_GRACE_SECS - 1);
        let e = health(&s, T0, 30).unwrap_err();
        assert!(e.contains("link down") && e.contains("pong timeout"), "{e}");
        //    never connected since the start
        s.link = "connecting".into();
        s.last_disconnect = None;
        s.started_at = T0 - 10;
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.started_at = T0 - 1000;
        assert!(health(&s, T0, 30).is_err());
        // 3. failures
        let mut s = sample();
        (s.answered_last_hour, s.failed_last_hour) = (0, 2);
        assert_eq!(
            health(&s, T0, 30),
            Ok(()),
            "fewer than 3 failures never count"
        );
        (s.answered_last_hour, s.failed_last_hour) = (0, 3);
        assert!(health(&s, T0, 30).is_err());
        (s.answered_last_hour, s.failed_last_hour) = (6, 3);
        assert_eq!(health(&s, T0, 30), Ok(()), "3 is not more than 6/2");
        (s.answered_last_hour, s.failed_last_hour) = (6, 4);
        assert!(health(&s, T0, 30).is_err());
        // 4. journal backlog
        let mut s = sample();
        s.journal_pending = JOURNAL_BACKLOG_UNHEALTHY - 1;
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.journal_pending = JOURNAL_BACKLOG_UNHEALTHY;
        assert!(health(&s, T0, 30).is_err());
    }

    #[test]
    fn render_for_a_technician() {
        let r = render(&sample(), T0 + 3, &Process::Running);
        assert!(r.contains("restaurant resto-42"), "{r}");
        assert!(r.contains("link              up"), "{r}");
        assert!(r.contains("(10 min ago)"), "{r}");
        assert!(r.contains("(11 min ago)"), "{r}");
        assert!(r.contains("reason          pong timeout"), "{r}");
        assert!(r.contains("10 operations answered, 1 failed"), "{r}");
        assert!(r.contains("journal pending   0"), "{r}");
        assert!(
            r.contains("callback pool     no callback has waited"),
            "{r}"
        );
        assert!(r.contains("written 3 s ago"), "{r}");
        assert!(r.contains("health            OK"), "{r}");
        assert!(!r.contains("WARNING"));
        let r = render(&sample(), T0 + 3 * 3600, &Process::Running);
        assert!(r.contains("stale") && r.contains("UNHEALTHY"), "{r}");
        assert_eq!(ago(T0, T0 + 7200 + 300), "2 h 5 min ago");
        // The process is gone: stopped, whatever the file says.
        let gone = Process::Gone("process 1234 is gone".into());
        let r = render(&sample(), T0 + 3, &gone);
        assert!(r.starts_with("expirenza-agent 0.1.0 (pid 1234), restaurant resto-42: stopped\n"));
        assert!(
            r.contains("health            STOPPED: process 1234 is gone"),
            "{r}"
        );
        assert!(!r.contains("health            OK"), "{r}");
        assert_eq!(ago(T0 + 5, T0), "5 s in the future (clock changed?)");
    }

    #[test]
    fn a_saturated_callback_pool_is_visible() {
        let mut s = sample();
        s.callback_pool = crate::status::snapshot::CallbackPool {
            max_connections: 4,
            waited: 12,
            longest_wait_ms: 5_030,
            gave_up: 1,
            waiting: 2,
        };
        let r = render(&s, T0 + 3, &Process::Running);
        assert!(
            r.contains("callback pool     12 callback(s) waited for a free connection (longest 5.0 s), 1 gave up at their deadline, 2 waiting now ([callback] max_connections = 4)"),
            "{r}"
        );
    }

    #[test]
    fn hostile_text_is_shown_on_one_line() {
        let mut s = sample();
        s.last_disconnect_reason = Some("closed\nlink up\r\n\u{1b}[31m\u{2028}x".into());
        let r = render(&s, T0 + 3, &Process::Unknown);
        assert!(
            r.contains("reason          closed\\nlink up\\r\\n\\u{1b}[31m\\u{2028}x\n"),
            "{r}"
        );
        assert!(!r.contains('\u{1b}') && !r.contains('\u{2028}'));
    }
}
