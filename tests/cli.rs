//! The command line as a person or a script meets it: each command's own `--help`, mistakes
//! named with the command's usage, read-only commands that need no secret, and one-shot
//! commands that keep stderr quiet unless `-v`.

use std::path::{Path, PathBuf};
use std::process::Output;

use expirenza_agent::cli::COMMANDS;
use expirenza_agent::journal::Journal;
use expirenza_agent::Config;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("expirenza-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn agent(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .args(args)
        .env_remove("EXPIRENZA_SECRET_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config as the .deb documents it: the secret is a credential of the service, so the
/// technician's shell has none.
fn config_without_secret(dir: &Path) -> PathBuf {
    let mirror = dir.join("mirror.sqlite");
    let mut conn = expirenza_agent::mirror::create_schema(&mirror).unwrap();
    expirenza_agent::mirror::demo::fill(&mut conn).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "resto_id = \"resto-cli\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn each_command_prints_its_own_usage() {
    for c in COMMANDS {
        for flag in ["--help", "-h"] {
            let out = agent(&[c.name, flag]);
            assert_eq!(out.status.code(), Some(0), "{} {flag}", c.name);
            let stdout = text(&out.stdout);
            assert!(
                stdout.starts_with(&format!("expirenza-agent {}", c.name)),
                "{} {flag} printed:\n{stdout}",
                c.name
            );
            // Not the global usage, which lists every command.
            assert!(!stdout.contains("COMMANDS:"), "{} {flag}", c.name);
        }
    }
    let out = agent(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for c in COMMANDS {
        assert!(
            text(&out.stdout).contains(c.name),
            "global usage lacks {}",
            c.name
        );
    }
}

#[test]
fn mistakes_are_named_with_the_usage_of_the_command() {
    let out = agent(&["journal", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: invalid option '--bogus'"), "{err}");
    assert!(err.contains("expirenza-agent journal ["), "{err}");
    let out = agent(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: unknown command 'frobnicate'"));
    let out = agent(&["preview"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: preview needs an OPERATION"));
}

#[test]
fn read_only_commands_need_no_secret() {
    let dir = Dir::new("nosecret");
    let cfg_path = config_without_secret(&dir.0);
    let cfg_text = cfg_path.to_str().unwrap();

    // journal: the file exists once the agent has journaled anything.
    let mut cfg = Config::for_loopback(
        "r",
        "s",
        "ws://127.0.0.1:1",
        "http://127.0.0.1:1",
        &dir.0,
        &dir.0,
    );
    cfg.state_dir = dir.0.clone();
    Journal::new(&cfg).open_by_status().unwrap();
    assert!(dir.0.join("journal.sqlite").exists());
    let out = agent(&["journal", "--config", cfg_text]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Quiet unless -v: nothing on stderr, not even the journal's "open" line.
    assert_eq!(text(&out.stderr), "");
    let out = agent(&["journal", "--config", cfg_text, "-v"]);
    assert_eq!(out.status.code(), Some(0));

    // status: reads the file the agent writes.
    let board = expirenza_agent::status::StatusBoard::new("resto-cli");
    board.link_up();
    expirenza_agent::status::snapshot::write(&dir.0.join("status"), &board.snapshot()).unwrap();
    let out = agent(&["status", "--config", cfg_text]);
    assert!(
        !text(&out.stderr).contains("secret"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("resto-cli"),
        "{}",
        text(&out.stdout)
    );

    // check: runs, and says where the secret is and how to check it.
    let out = agent(&["check", "--config", cfg_text]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("secret       not loaded here"), "{stdout}");
    assert!(stdout.contains("CREDENTIALS_DIRECTORY="), "{stdout}");

    // What connects or signs still needs it, and says so.
    for args in [
        vec!["preview", "checkWork", "--config", cfg_text],
        vec!["check", "--online", "--config", cfg_text],
        vec!["run", "--config", cfg_text],
    ] {
        let out = agent(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("no secret"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
