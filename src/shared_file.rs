//! Database files shared with the POS through the group `expirenza-agent` (docs/deploy.md):
//! the journal, and a mirror made by `init-mirror`.
//!
//! SQLite creates a database file with mode 0644 minus the umask: 0640 under the unit's
//! `UMask=0007`, which the group can read but not write, so a POS in the group could not
//! acknowledge a single command (and an agent could not use the `-shm` file of a mirror made
//! that way). So a new file is created here, empty (SQLite reads an empty file as an empty
//! database), with mode 0660 set explicitly, whatever the umask. SQLite gives the `-wal` and
//! `-shm` files it creates next to a database the database's own mode, so they are
//! group-writable too. An existing file is left as it is.

use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner and group read and write; nothing for others.
pub const MODE: u32 = 0o660;

/// Create `path` empty with mode [`MODE`] unless it exists.
pub fn create(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)
    {
        // the umask applied to `mode`: set the bits exactly
        Ok(f) => f.set_permissions(Permissions::from_mode(MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("shared-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The journal as the agent opens it, and SQLite's companion files: all 0660, whatever
    /// the test runner's umask (0022 usually: without the explicit mode the file is 0644).
    #[test]
    fn journal_and_its_wal_and_shm_are_group_writable() {
        let d = dir("journal");
        let p = d.join("journal.sqlite");
        let conn = crate::journal::store::open(&p, std::time::Duration::from_secs(1)).unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (a); INSERT INTO t VALUES (1);")
            .unwrap();
        for f in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
            assert_eq!(mode(&d.join(f)), MODE, "{f}");
        }
        drop(conn);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn init_mirror_schema_is_group_writable() {
        let d = dir("mirror");
        let p = d.join("mirror.sqlite");
        drop(crate::mirror::create_schema(&p).unwrap());
        assert_eq!(mode(&p), MODE);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_existing_file_keeps_its_mode_and_content() {
        let d = dir("existing");
        let p = d.join("db.sqlite");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        create(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
