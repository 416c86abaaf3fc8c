//! The secret's four sources, first match wins: `EXPIRENZA_SECRET_KEY`, the systemd credential
//! `$CREDENTIALS_DIRECTORY/secret_key`, `secret_key_file`, `secret_key`.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{ConfigError, Env};
use crate::secret::Secret;

/// Why no secret was loaded: a mistake in the config itself, or a secret that cannot be read
/// here (none configured, or a file this user may not read). Only the second is tolerated by
/// commands that need no secret.
#[derive(Debug)]
pub(super) enum SecretError {
    Config(ConfigError),
    Unavailable(ConfigError),
}

impl From<SecretError> for ConfigError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Config(e) => e,
            SecretError::Unavailable(e) => e,
        }
    }
}

/// Secret sources, first match wins: `EXPIRENZA_SECRET_KEY`, the systemd credential
/// `$CREDENTIALS_DIRECTORY/secret_key`, `secret_key_file`, `secret_key`.
pub(super) fn load_secret(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    env: &dyn Env,
) -> Result<(Secret, String), SecretError> {
    if inline.is_some() && file.is_some() {
        return Err(SecretError::Config(ConfigError::Invalid(
            "set either secret_key or secret_key_file, not both".into(),
        )));
    }
    if let Some(s) = env.var("EXPIRENZA_SECRET_KEY") {
        let s = Zeroizing::new(s);
        return Ok((
            Secret::new(s.trim()),
            "environment EXPIRENZA_SECRET_KEY".into(),
        ));
    }
    if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join("secret_key");
        if p.exists() {
            return Ok((
                read_secret_file(&p)?,
                format!("systemd credential {}", p.display()),
            ));
        }
    }
    if let Some(p) = file {
        return Ok((read_secret_file(p)?, format!("file {}", p.display())));
    }
    if let Some(s) = inline {
        return Ok((Secret::new(s.expose().trim()), "config secret_key".into()));
    }
    Err(SecretError::Unavailable(ConfigError::Invalid(
        "no secret: set secret_key or secret_key_file, EXPIRENZA_SECRET_KEY, or a systemd credential 'secret_key'".into(),
    )))
}

fn read_secret_file(p: &Path) -> Result<Secret, SecretError> {
    let unreadable = |err| {
        SecretError::Unavailable(ConfigError::SecretFile {
            path: p.into(),
            err,
        })
    };
    let meta = std::fs::metadata(p).map_err(unreadable)?;
    if meta.len() > 4096 {
        return Err(SecretError::Config(ConfigError::Invalid(format!(
            "secret file {} is larger than 4 KiB",
            p.display()
        ))));
    }
    // The file's text is wiped once the trimmed copy is in the `Secret` (wiped on drop too).
    let s = Zeroizing::new(std::fs::read_to_string(p).map_err(unreadable)?);
    Ok(Secret::new(s.trim()))
}
