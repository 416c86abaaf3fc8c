//! The `expirenza-agent` command: run, check, init-mirror, sign (and more as they land).

#![deny(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use expirenza_agent::config::{Config, StatusConfig, DEFAULT_CONFIG_PATH, DEFAULT_RUNTIME_DIR};
use std::sync::Arc;
use std::time::Duration;

use expirenza_agent::status::{self, StatusBoard};
use expirenza_agent::{agent, log, metrics, mirror, secret::Secret, shutdown, sign, systemd};

const USAGE: &str = "\
expirenza-agent: the POS side of the Expirenza (Shake To Pay) pay-at-table integration

USAGE:
    expirenza-agent run         [--config PATH] [-v|--verbose] [-q|--quiet]
    expirenza-agent check       [--config PATH] [--online]
    expirenza-agent preview     OPERATION [--table N] [--bill ID] [--config PATH]
    expirenza-agent init-mirror PATH [--demo]
    expirenza-agent sign        [--secret-file F] [FILE|-]
    expirenza-agent journal     [--config PATH] [--since YYYY-MM-DD|unix-secs] [--status S]
    expirenza-agent status      [--config PATH]
    expirenza-agent --version | --help

COMMANDS:
    run          Connect to the cloud and answer its operations (the service).
    check        Validate the config and the POS mirror; print what was found. --online: then
                 connect to ws_url with the configured credentials (DNS, TCP, TLS, HTTP
                 upgrade, each timed) and reach callback_url's host (TCP, TLS; nothing
                 posted). Exit 0 only when everything passed, the upgrade included.
    preview      Print to stdout the exact callback body `run` would send for a read operation
                 (checkWork, versionInfo, tablesInfo, hallplansInfo, getBill, usersInfo,
                 categoriesInfo, menuInfo, stopList) from the local mirror, with rID
                 `preview`; its signature header goes to stderr. No network.
    init-mirror  Create the mirror schema in a new SQLite file (--demo: fill a demo restaurant).
    sign         Print base64(HMAC-SHA256(secret, body)) of FILE or stdin, to check a callback
                 by hand. The secret comes from --secret-file or EXPIRENZA_SECRET_KEY.
    journal      List journaled commands (payments, splits, orders, messages) with their status,
                 for end-of-shift reconciliation. --status: pending, claimed, applied, rejected,
                 review. Exit status 1 while commands are still pending or claimed.
    status       Print the running agent's state (link, last connect/disconnect, operations in
                 the last hour, journal backlog); exit 0 when healthy, 1 when not.

The default config path is /etc/expirenza-agent/config.toml. Environment overrides:
EXPIRENZA_RESTO_ID, EXPIRENZA_SECRET_KEY, EXPIRENZA_WS_URL, EXPIRENZA_CALLBACK_URL,
EXPIRENZA_MIRROR. See README.md for every config key and its default.
";

/// The static builds' allocator (see Cargo.toml): dlmalloc returns freed memory to the system
/// (trimmed segments, unmapped large blocks), where the libc they link keeps it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the context chain on one line; no error here carries the secret.
            expirenza_agent::log_error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

enum Cmd {
    Run,
    Check {
        online: bool,
    },
    Preview {
        operation: String,
        table: Option<String>,
        bill: Option<String>,
    },
    InitMirror {
        path: PathBuf,
        demo: bool,
    },
    Sign {
        secret_file: Option<PathBuf>,
        input: Option<PathBuf>,
    },
    Journal {
        since: Option<String>,
        status: Option<String>,
    },
    Status,
}

fn real_main() -> Result<ExitCode> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut cmd_name: Option<String> = None;
    let mut config: Option<PathBuf> = None;
    let mut demo = false;
    let mut online = false;
    let (mut table, mut bill) = (None, None);
    let mut secret_file = None;
    let (mut since, mut status) = (None, None);
    let mut positional: Vec<PathBuf> = Vec::new();
    let mut level = log::Level::Info;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Short('V') | Long("version") => {
                println!("expirenza-agent {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            Short('c') | Long("config") => config = Some(parser.value()?.into()),
            Long("demo") => demo = true,
            Long("online") => online = true,
            Long("table") => table = Some(parser.value()?.string()?),
            Long("bill") => bill = Some(parser.value()?.string()?),
            Long("secret-file") => secret_file = Some(parser.value()?.into()),
            Long("since") => since = Some(parser.value()?.string()?),
            Long("status") => status = Some(parser.value()?.string()?),
            Short('v') | Long("verbose") => level = log::Level::Debug,
            Short('q') | Long("quiet") => level = log::Level::Warn,
            Value(v) if cmd_name.is_none() => cmd_name = Some(v.string()?),
            Value(v) => positional.push(v.into()),
            _ => bail!("{}\n\n{USAGE}", arg.unexpected()),
        }
    }
    log::set_level(level);
    let config_path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let cmd = match cmd_name.as_deref() {
        Some("run") => Cmd::Run,
        Some("check") => Cmd::Check { online },
        Some("preview") => {
            let Some(operation) = positional.pop() else {
                bail!("preview needs an OPERATION\n\n{USAGE}")
            };
            Cmd::Preview {
                operation: operation.to_string_lossy().into_owned(),
                table,
                bill,
            }
        }
        Some("status") => Cmd::Status,
        Some("init-mirror") => {
            let Some(path) = positional.pop() else {
                bail!("init-mirror needs a PATH\n\n{USAGE}")
            };
            Cmd::InitMirror { path, demo }
        }
        Some("sign") => Cmd::Sign {
            secret_file,
            input: positional.pop().filter(|p| p != Path::new("-")),
        },
        Some("journal") => Cmd::Journal { since, status },
        Some(other) => bail!("unknown command '{other}'\n\n{USAGE}"),
        None => {
            print!("{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    match cmd {
        Cmd::Run => run(&config_path),
        Cmd::Check { online } => check(&config_path, online),
        Cmd::Preview {
            operation,
            table,
            bill,
        } => preview_cmd(&config_path, &operation, table, bill),
        Cmd::Status => status_cmd(&config_path),
        Cmd::InitMirror { path, demo } => init_mirror(&path, demo),
        Cmd::Sign { secret_file, input } => sign_cmd(secret_file.as_deref(), input.as_deref()),
        Cmd::Journal { since, status } => journal_cmd(&config_path, since, status),
    }
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).with_context(|| format!("loading configuration {}", path.display()))
}

/// How long an idle blocking-pool thread is kept (tokio's default is 10 s).
/// The blocking pool's threads are started once and kept: a day without work before one ends.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);
/// Blocking threads beyond `max_in_flight`: the status writer, the ORDERS_CACHE push, the
/// metrics file and a streamed menu run there too.
const BLOCKING_EXTRA: usize = 2;

/// Start every thread of the blocking pool now, so none is created under load (the thread
/// count is flat from the start). Each start-up task waits, at most a second, until all have
/// started, which forces the pool to give each its own thread.
async fn start_blocking_pool(n: usize) {
    use std::sync::{Condvar, Mutex};
    let gate = Arc::new((Mutex::new(0usize), Condvar::new()));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            tokio::task::spawn_blocking(move || {
                let (count, cv) = &*gate;
                let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
                *c += 1;
                cv.notify_all();
                let deadline = std::time::Instant::now() + Duration::from_secs(1);
                while *c < n {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    c = cv
                        .wait_timeout(c, left)
                        .map_or_else(|p| p.into_inner().0, |r| r.0);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

fn run(config_path: &Path) -> Result<ExitCode> {
    let cfg = load_config(config_path)?;
    limit_malloc_arenas();
    expirenza_agent::sqlite_mem::limit_process(
        cfg.limits.sqlite_cache_kib,
        cfg.limits.sqlite_heap_limit_kib,
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One runtime thread for all I/O, timers and the short reads (`inline_reads`); the
    // blocking pool (`max_in_flight` + BLOCKING_EXTRA threads, all started here and kept)
    // runs journal writes, menus and file writes. No thread is created after start-up.
    let blocking = cfg.limits.max_in_flight + BLOCKING_EXTRA;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .thread_name("expirenza-op")
        .build()
        .context("starting the async runtime")?;
    let code = rt.block_on(async move {
        start_blocking_pool(blocking).await;
        let (trigger, shutdown) = shutdown::channel();
        expirenza_agent::log_info!(
            "expirenza-agent {} starting: resto {} -> {} (mirror {})",
            env!("CARGO_PKG_VERSION"),
            cfg.resto_id,
            cfg.ws_url,
            cfg.mirror_path.display()
        );
        let board = Arc::new(StatusBoard::new(&cfg.resto_id));
        let status_task = tokio::spawn(status::writer(
            board.clone(),
            cfg.status_path(),
            Duration::from_secs(cfg.status.write_interval_secs),
            shutdown.receiver(),
        ));
        match expirenza_agent::check::mirror_problem(&cfg) {
            None => expirenza_agent::log_info!("mirror {} is readable", cfg.mirror_path.display()),
            Some(p) => expirenza_agent::log_warn!(
                "mirror: {p}; operations that need it will answer FAIL until it is fixed"
            ),
        }
        let status_every = Duration::from_secs(cfg.status.write_interval_secs);
        let metrics_path = cfg.metrics.textfile_path.clone();
        let running = agent::spawn(cfg, agent::Hooks::status(board.clone()), shutdown.clone())
            .context("starting the agent")?;
        let (metrics_stop, metrics_task) = spawn_metrics(metrics_path, status_every, &running);
        tokio::spawn(expirenza_agent::status::backlog::feed(
            board,
            running.ctx.clone(),
            status_every,
            shutdown.receiver(),
        ));
        // Config loaded, mirror looked at, tasks started: tell systemd (Type=notify).
        let _ = systemd::ready();
        if let Some(iv) = systemd::watchdog_interval() {
            // On this runtime, not a thread: if the event loop stalls, the heartbeat stops.
            tokio::spawn(systemd::watchdog(iv, shutdown.receiver()));
        }
        wait_for_signal().await;
        expirenza_agent::log_info!("shutdown requested");
        let _ = systemd::stopping();
        trigger.fire();
        running.finished().await;
        // After the link recorded its end: the last metrics file shows the link down.
        metrics_stop.fire();
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        let _ = status_task.await;
        expirenza_agent::log_info!("stopped");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    });
    // Operations still running after the grace period (a callback retrying towards its 80 s
    // deadline) are abandoned here rather than holding the exit: the bound is explicit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and the
/// blocking pool's threads keep theirs, with freed memory in them, resident after a burst.
/// Two arenas serve `max_in_flight` operations well (docs/performance.md has the figures).
/// musl, which the board builds use, has no per-thread arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter and takes no pointers; it is called
    // before any thread is started, so no allocation races with it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn check(config_path: &Path, online: bool) -> Result<ExitCode> {
    let cfg = load_config(config_path)?;
    let mut problems = 0;
    println!("config       {}", config_path.display());
    println!("resto_id     {}", cfg.resto_id);
    println!(
        "secret       loaded from {} ({} bytes, not shown)",
        cfg.secret_source,
        cfg.secret.expose().len()
    );
    println!("pos_system   {}", cfg.pos_system);
    println!("ws_url       {}", cfg.ws_url);
    println!("callback_url {}", cfg.callback_url);
    println!("mirror       {}", cfg.mirror_path.display());
    if let Some(w) = expirenza_agent::check::config_permissions_warning(config_path) {
        println!("WARN         {w}");
    }
    for w in expirenza_agent::check::config_warnings(&cfg) {
        println!("WARN         {w}");
    }
    problems += expirenza_agent::check::report_mirror(&cfg, &mut std::io::stdout())?;
    if online && !check_online(&cfg)? {
        problems += 1;
    }
    if problems > 0 {
        println!("FAIL         {problems} problem(s) found");
        return Ok(ExitCode::from(1));
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

fn journal_cmd(
    config_path: &Path,
    since: Option<String>,
    status: Option<String>,
) -> Result<ExitCode> {
    use expirenza_agent::journal::{report, Journal, Status};
    let cfg = load_config(config_path)?;
    let since_ms = match since {
        Some(s) => report::parse_since(&s)?,
        None => 0,
    };
    let status = match status {
        Some(s) => Some(Status::parse(&s).with_context(|| {
            format!("--status {s}: use pending, claimed, applied, rejected or review")
        })?),
        None => None,
    };
    if !cfg.journal_path().exists() {
        bail!("no journal at {} yet", cfg.journal_path().display());
    }
    let journal = Journal::new(&cfg);
    let open = report::print(&journal, since_ms, status, &mut std::io::stdout())?;
    Ok(if open > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn init_mirror(path: &Path, demo: bool) -> Result<ExitCode> {
    if path.exists() {
        bail!(
            "{} already exists; init-mirror only creates new files",
            path.display()
        );
    }
    let mut conn =
        mirror::create_schema(path).with_context(|| format!("creating {}", path.display()))?;
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

fn sign_cmd(secret_file: Option<&Path>, input: Option<&Path>) -> Result<ExitCode> {
    let secret = match secret_file {
        Some(p) => Secret::new(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the secret from {}", p.display()))?
                .trim(),
        ),
        None => match std::env::var("EXPIRENZA_SECRET_KEY") {
            Ok(s) if !s.is_empty() => Secret::new(s),
            _ => bail!("no secret: pass --secret-file F or set EXPIRENZA_SECRET_KEY"),
        },
    };
    let mut body = Vec::new();
    match input {
        Some(p) => body = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from stdin")?;
        }
    }
    println!("{}", sign::sign(&secret, &body));
    Ok(ExitCode::SUCCESS)
}

fn status_cmd(config_path: &Path) -> Result<ExitCode> {
    // The file the running agent writes, from its config; without a loadable config (a user
    // who may not read it), the default runtime path, said so on stderr.
    let (path, interval) = match load_config(config_path) {
        Ok(cfg) => (cfg.status_path(), cfg.status.write_interval_secs),
        Err(e) => {
            let p = Path::new(DEFAULT_RUNTIME_DIR).join("status");
            eprintln!(
                "note: {e:#}; reading the default status file {}",
                p.display()
            );
            (p, StatusConfig::default().write_interval_secs)
        }
    };
    let st = status::read(&path).with_context(|| {
        format!(
            "reading the status file {} (is the agent running?)",
            path.display()
        )
    })?;
    let now = status::now_unix();
    print!("{}", status::render(&st, now));
    // The same rule `render` printed; stale means the agent is gone or its event loop is stuck.
    let stale_after = status::DEFAULT_STALE_AFTER_SECS.max(interval * 3);
    Ok(match status::health(&st, now, stale_after) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    })
}

/// The metrics textfile writer, when `[metrics] textfile_path` is set; its own stop switch so
/// the last write comes after the link has gone down.
fn spawn_metrics(
    path: Option<PathBuf>,
    every: Duration,
    running: &agent::Running,
) -> (shutdown::Trigger, Option<tokio::task::JoinHandle<()>>) {
    let (stop, rx) = shutdown::channel();
    let task = path.map(|path| {
        let ctx = running.ctx.clone();
        let backlog: metrics::textfile::BacklogFn =
            Arc::new(move || ctx.journal.open_by_status().map_err(|e| e.to_string()));
        tokio::spawn(metrics::textfile::writer(
            metrics::global(),
            path,
            every,
            backlog,
            rx.receiver(),
        ))
    });
    (stop, task)
}

/// `check --online`: the network steps, printed as they end. `Ok(true)` when all passed.
fn check_online(cfg: &Config) -> Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let steps = rt.block_on(expirenza_agent::cli::check_online::run(
        cfg,
        &mut std::io::stdout(),
    ));
    Ok(expirenza_agent::cli::check_online::passed(&steps))
}

/// `preview`: the body on stdout (exact bytes; a newline only for a terminal), the signature
/// header on stderr.
fn preview_cmd(
    config_path: &Path,
    operation: &str,
    table: Option<String>,
    bill: Option<String>,
) -> Result<ExitCode> {
    use expirenza_agent::cli::preview;
    use std::io::Write;
    let cfg = load_config(config_path)?;
    // Opening the mirror and the scratch journal logs at info level: keep stderr to the header.
    log::set_level(log::Level::Warn);
    let op = preview::read_op(operation)?;
    let frame = preview::request_frame(op, table.as_deref(), bill.as_deref())?;
    let signed = preview::answer(&cfg, op, &frame)?;
    let mut out = std::io::stdout().lock();
    out.write_all(signed.body())?;
    if std::io::IsTerminal::is_terminal(&out) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("signature: {}", signed.signature());
    Ok(ExitCode::SUCCESS)
}
