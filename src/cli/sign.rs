//! `expirenza-agent sign [--secret-file F] [FILE|-]`: the signature of a body, by hand.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::{Command, Common};
use crate::secret::Secret;
use crate::sign;

pub const COMMAND: Command = Command {
    name: "sign",
    summary: "Print the signature of a body (FILE or stdin), to check a callback by hand.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent sign [--secret-file F] [FILE|-]

Print base64(HMAC-SHA256(secret, body)) of FILE, or of stdin when FILE is - or absent: the
value of the `signature` header for that exact body, to check a callback by hand (Postman).

OPTIONS:
    --secret-file F   read the secret from F; otherwise from EXPIRENZA_SECRET_KEY
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let mut secret_file: Option<PathBuf> = None;
    let mut input: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("secret-file") => secret_file = Some(parser.value()?.into()),
            Value(v) if input.is_none() => input = Some(v.into()),
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    let input = input.filter(|p| p != Path::new("-"));
    let secret = match secret_file {
        Some(p) => {
            // Wiped on drop, like the `Secret` made from it.
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&p)
                    .with_context(|| format!("reading the secret from {}", p.display()))?,
            );
            Secret::new(text.trim())
        }
        None => match std::env::var("EXPIRENZA_SECRET_KEY") {
            Ok(s) if !s.is_empty() => Secret::new(s),
            _ => bail!("no secret: pass --secret-file F or set EXPIRENZA_SECRET_KEY"),
        },
    };
    let mut body = Vec::new();
    match input {
        Some(p) => body = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from stdin")?;
        }
    }
    println!("{}", sign::sign(&secret, &body));
    Ok(ExitCode::SUCCESS)
}
