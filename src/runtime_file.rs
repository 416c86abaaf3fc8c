//! Files of the runtime directory (the status file, the metrics textfile), replaced atomically:
//! readers (`expirenza-agent status`, monitoring, node_exporter) never see a torn or
//! half-written file.
//!
//! No fsync: the files live in the runtime directory (tmpfs, `/run/expirenza-agent`) and mean
//! nothing after a reboot; the rename alone keeps readers from a torn file. Rewritten every
//! 5 s, two fsyncs each would be about 17,000 a day on the SD card, where only the journal
//! needs durability.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: a temp file in the same directory, chmod 0644, rename
/// over `path`. Readers never see a torn file. Nothing is fsync'd (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    // A leading dot and a `.tmp.<pid>` suffix: node_exporter (which reads `*.prom`) and
    // `status` never pick up a half-written temp file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        // the process umask (0007 under the unit) would otherwise strip the "other" bits
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_mode_0644_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("expirenza-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status")]);
        // a directory that does not exist: an error, and nothing is created
        assert!(write_atomic(&dir.join("absent/status"), b"x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
