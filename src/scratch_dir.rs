//! A private temporary directory, removed on drop: the throw-away journal that `preview` and
//! `check` run operations against, so that neither touches the agent's own journal.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The directory could not be created.
#[derive(Debug, thiserror::Error)]
#[error("creating the scratch directory {path}: {source}")]
pub struct ScratchError {
    path: PathBuf,
    source: std::io::Error,
}

/// `<temp dir>/expirenza-<purpose>-<pid>-<time>`, mode 0700.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(purpose: &str) -> Result<ScratchDir, ScratchError> {
        let (secs, nanos) = crate::clock::unix_now();
        let path = std::env::temp_dir().join(format!(
            "expirenza-{purpose}-{}-{secs}-{nanos}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => Ok(ScratchDir(path)),
            Err(source) => Err(ScratchError { path, source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_removed_on_drop() {
        let d = ScratchDir::new("unit").unwrap();
        let p = d.path().to_path_buf();
        std::fs::write(p.join("journal.sqlite"), b"x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        drop(d);
        assert!(!p.exists());
    }
}
