//! `expirenza-agent init-mirror PATH [--demo]`: a new mirror file with the schema.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::{Command, Common};
use crate::mirror;

pub const COMMAND: Command = Command {
    name: "init-mirror",
    summary: "Create the mirror schema in a new SQLite file (--demo: a demo restaurant).",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent init-mirror PATH [--demo]
expirenza-agent init-mirror --print-schema

Create a new SQLite file at PATH with the mirror's schema (docs/mirror.md), for the POS or its
sync job to fill. An existing file is never touched.

OPTIONS:
    --demo          fill it with the demo restaurant (halls, tables, open bills, a menu)
    --print-schema  print the mirror's SQL schema (the contract's tables and columns) and exit
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let (mut demo, mut schema) = (false, false);
    let mut path: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("demo") => demo = true,
            Long("print-schema") => schema = true,
            Value(v) if path.is_none() => path = Some(v.into()),
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    if schema {
        print!("{}", mirror::SCHEMA_SQL);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = path else {
        return Err(super::usage_error("init-mirror needs a PATH", USAGE));
    };
    if path.exists() {
        bail!(
            "{} already exists; init-mirror only creates new files",
            path.display()
        );
    }
    let mut conn =
        mirror::create_schema(&path).with_context(|| format!("creating {}", path.display()))?;
    if demo {
        mirror::demo::fill(&mut conn).context("filling the demo restaurant")?;
    }
    println!(
        "created {}{}",
        path.display(),
        if demo {
            " with the demo restaurant"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
