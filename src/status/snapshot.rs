//! The status snapshot: what the status file holds, written and read with serde (JSON).
//!
//! The file is one JSON object. Strings are escaped by the serialiser, so a hostile disconnect
//! reason cannot forge another field; optional values are simply absent; unknown keys are
//! ignored when reading (newer agents may add some). [`read`] is bounded to 64 KiB.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime_file::write_atomic;

/// Largest status file [`read`] accepts.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What the status file holds. `written_at`/`started_at`/`last_*` are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// When that process started, in clock ticks since boot (`process.rs`): tells it from a
    /// later process given the same pid. Absent in files of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    pub resto_id: String,
    /// `"up"`, `"down"` or `"connecting"`.
    pub link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connect: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_disconnect: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_disconnect_reason: Option<String>,
    pub answered_last_hour: u64,
    pub failed_last_hour: u64,
    pub journal_pending: u64,
    /// How callbacks waited for a free connection since the start; absent while none did.
    #[serde(default, skip_serializing_if = "CallbackPool::is_quiet")]
    pub callback_pool: CallbackPool,
    pub cache: String,
    pub written_at: u64,
    pub started_at: u64,
    pub version: String,
}

/// Waits for a free callback connection (`[callback] max_connections`), since the start: a
/// saturated pool (a slow cloud, or too few connections) shows here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallbackPool {
    pub max_connections: u64,
    /// Callbacks that found every connection busy and waited.
    pub waited: u64,
    pub longest_wait_ms: u64,
    /// Callbacks whose deadline passed while they waited.
    pub gave_up: u64,
    /// Waiting when the file was written.
    pub waiting: u64,
}

impl CallbackPool {
    /// No callback has waited yet.
    pub fn is_quiet(&self) -> bool {
        self.waited == 0 && self.waiting == 0 && self.gave_up == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    // The io error is in the message, not a `source`: `{:#}` would print it twice.
    #[error(
        "cannot read the status file {path}: {err} (is the agent running? it writes this file)"
    )]
    Io { path: PathBuf, err: std::io::Error },
    #[error("the status file {0} is larger than 64 KiB; it is not an agent status file")]
    TooLarge(PathBuf),
    #[error("the status file is not UTF-8")]
    NotUtf8,
    #[error("the status file is malformed: {0}")]
    Malformed(serde_json::Error),
}

/// Serialise `s` and write it to `path` atomically (see [`write_atomic`]).
pub fn write(path: &Path, s: &Status) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Read and parse a status file, refusing anything larger than 64 KiB.
pub fn read(path: &Path) -> Result<Status, StatusError> {
    let io = |err| StatusError::Io {
        path: path.into(),
        err,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(StatusError::TooLarge(path.into()));
    }
    let text = String::from_utf8(buf).map_err(|_| StatusError::NotUtf8)?;
    serde_json::from_str(&text).map_err(StatusError::Malformed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const T0: u64 = 1_790_000_000; // 2026-09-21

    pub(crate) fn sample() -> Status {
        Status {
            pid: 1234,
            pid_start: Some(98_765),
            resto_id: "resto-42".into(),
            link: "up".into(),
            last_connect: Some(T0 - 600),
            last_disconnect: Some(T0 - 700),
            last_disconnect_reason: Some("pong timeout".into()),
            answered_last_hour: 10,
            failed_last_hour: 1,
            journal_pending: 0,
            callback_pool: CallbackPool::default(),
            cache: "ok".into(),
            written_at: T0,
            started_at: T0 - 3600,
            version: "0.1.0".into(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("expirenza-snap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = temp_dir("rt");
        let path = dir.join("status");
        let mut s = sample();
        write(&path, &s).unwrap();
        assert_eq!(read(&path).unwrap(), s);
        // optional fields absent; rewrite replaces the file
        s.last_connect = None;
        s.last_disconnect = None;
        s.last_disconnect_reason = None;
        s.link = "connecting".into();
        write(&path, &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("last_connect"), "{text}");
        assert_eq!(read(&path).unwrap(), s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hostile_text_cannot_forge_fields() {
        let dir = temp_dir("hostile");
        let path = dir.join("status");
        let mut s = sample();
        let evil =
            "closed\",\"link\":\"up\"\n\r\nfailed_last_hour=0\\n\u{0}\u{1b}[31m\u{2028}pid=1\t";
        s.last_disconnect_reason = Some(evil.into());
        s.cache = "failing: 500\n\"journal_pending\": 0".into();
        s.resto_id = "r=1\n# comment".into();
        write(&path, &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{0}'),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["link"], "up");
        assert_eq!(v["pid"], 1234);
        assert_eq!(v["journal_pending"], 0);
        assert_eq!(v.as_object().unwrap().len(), 14, "{text}");
        assert_eq!(read(&path).unwrap(), s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reader_is_bounded_and_tolerant_of_new_keys() {
        let dir = temp_dir("bad");
        let path = dir.join("status");
        std::fs::write(&path, vec![b' '; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(matches!(read(&path), Err(StatusError::TooLarge(_))));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read(&path), Err(StatusError::NotUtf8)));
        let json = serde_json::to_string(&sample()).unwrap();
        for bad in [
            "no json".to_string(),
            r#"{"pid":1}"#.to_string(),
            json.replace("1234", "\"12x\""),
            json.replacen('{', r#"{"pid":1,"#, 1),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(read(&path), Err(StatusError::Malformed(_))),
                "{bad}"
            );
        }
        // the callback pool's waits are written once there are some, and read back
        let mut busy = sample();
        busy.callback_pool = CallbackPool {
            max_connections: 4,
            waited: 12,
            longest_wait_ms: 5_030,
            gave_up: 1,
            waiting: 2,
        };
        write(&path, &busy).unwrap();
        assert_eq!(read(&path).unwrap(), busy);
        // unknown keys from a newer agent are ignored
        let newer = json.replacen('{', r#"{"future_key":{"a":[1,2]},"#, 1);
        std::fs::write(&path, newer).unwrap();
        assert_eq!(read(&path).unwrap(), sample());
        assert!(matches!(
            read(&dir.join("absent")),
            Err(StatusError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
