//! An MQTT broker (rmqtt) whose hooks run an EMQX-format backend config.
//!
//! ```text
//! broker [--config FILE] [--backend configured|memory] [--data-dir DIR] [--listen ADDR]
//!        [--node NAME] [--require-storage] [--drain-timeout SECS] [--metrics ADDR]
//! broker --check-config FILE
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backend_core::delivery::DeliveryConfig;
use backend_core::{Config, Engine, StartMode};
use examples::backends::{self, Storage};
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;

// Under glibc's malloc, allocation and freeing were about a quarter of the
// broker's CPU per stored message (perf, Cassandra run); mimalloc's
// per-thread pages make them cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The rules the broker runs without `--config`: the project's SQLite
/// configuration (offline messages, retained messages, client status,
/// stored subscriptions) in `<data dir>/mqtt.db`: durable, with no server.
const DEFAULT_CONFIG: &str = include_str!("../../../etc/emqx_backend_sqlite.conf");

const USAGE: &str = "\
broker: an MQTT broker (rmqtt) storing client state, offline and retained
messages through an EMQX-format backend configuration.

USAGE:
    broker [--config FILE] [--backend configured|memory] [--data-dir DIR] [--listen ADDR]
           [--node NAME] [--require-storage] [--drain-timeout SECS] [--metrics ADDR]
    broker --check-config FILE

OPTIONS:
    --config FILE         emqx_backend_<kind>.conf to run (default: the built-in
                          SQLite rules, stored in DIR/mqtt.db: offline and
                          retained messages survive a restart)
    --backend KIND        `configured` (the database the file is for; the
                          default) or `memory` (run the rules in-process:
                          everything is forgotten when the broker stops)
    --data-dir DIR        where the built-in SQLite rules keep their database
                          (default ./data)
    --listen ADDR         MQTT TCP listener (default 127.0.0.1:1883)
    --node NAME           node name recorded with client status
                          (default broker@<listen address>)
    --require-storage     exit at start when a database cannot be reached
                          (default: start without it, queue writes, and
                          connect in the background; a wrong password or a
                          missing table fails at start either way)
    --drain-timeout SECS  on SIGTERM or SIGINT: stop taking connections, close
                          the clients, then wait up to SECS (default 10) for
                          hooks under way and buffered writes to land before
                          exiting; what cannot land is logged with its count
    --metrics ADDR        serve Prometheus text on http://ADDR/metrics (storage's
                          writes, buffer, reads, rules, pools) and the pools'
                          health on /healthz (200, or 503 naming the pool)
    --check-config FILE   check a configuration, print every problem with its
                          line, and exit (0: valid, 1: problems)
    -h, --help            this text

Logs go to stderr; RUST_LOG sets the level (default info).";

struct Args {
    config: Option<String>,
    data_dir: std::path::PathBuf,
    storage: Option<Storage>,
    listen: SocketAddr,
    node: Option<String>,
    check: Option<String>,
    mode: StartMode,
    drain: Duration,
    metrics: Option<SocketAddr>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        config: None,
        data_dir: std::path::PathBuf::from("data"),
        storage: None,
        listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
        node: None,
        check: None,
        mode: StartMode::Background,
        drain: Duration::from_secs(10),
        metrics: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => args.config = Some(value("--config")?),
            "--data-dir" => args.data_dir = value("--data-dir")?.into(),
            "--check-config" => args.check = Some(value("--check-config")?),
            "--node" => args.node = Some(value("--node")?),
            "--require-storage" => args.mode = StartMode::Required,
            "--drain-timeout" => {
                let v = value("--drain-timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| format!("--drain-timeout {v}: expected seconds (0 to 86400)"))?;
                args.drain = Duration::from_secs_f64(secs);
            }
            "--metrics" => {
                let v = value("--metrics")?;
                args.metrics = Some(v.parse().map_err(|e| format!("--metrics {v}: {e}"))?);
            }
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--backend" => {
                args.storage = Some(match value("--backend")?.as_str() {
                    "memory" => Storage::Memory,
                    "configured" => Storage::Configured,
                    other => {
                        return Err(format!(
                            "--backend {other}: expected `configured` or `memory`"
                        ))
                    }
                })
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(args))
}

/// The built-in SQLite rules, their database in `data_dir`.
fn default_config(data_dir: &std::path::Path) -> Result<Config, String> {
    let config = Config::parse(DEFAULT_CONFIG).map_err(|e| format!("built-in config: {e}"))?;
    let mut pool = config
        .pools()
        .get("pool1")
        .cloned()
        .ok_or("built-in config: no pool1")?;
    let file = data_dir.join("mqtt.db");
    let file = file.to_str().ok_or_else(|| {
        format!(
            "--data-dir {}: not a UTF-8 path",
            data_dir.to_string_lossy()
        )
    })?;
    pool.set("path", file).map_err(|e| e.to_string())?;
    Ok(config.with_pool(pool))
}

fn read_config(path: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Config::parse(&text).map_err(|e| {
        let missing = e.problems().iter().find_map(|p| match &p.kind {
            backend_core::config::ProblemKind::UnknownBackend { name, .. } => Some(name.clone()),
            _ => None,
        });
        match missing {
            Some(name) => format!(
                "{path}:\n{e}\nthis broker was built without the {name} backend: rebuild with `--features {name}`"
            ),
            None => format!("{path}:\n{e}"),
        }
    })
}

/// Turns transparent huge pages off for this process. The allocator asks
/// for huge pages on its segments and gives freed parts back to the
/// system; every part it takes again then faults in a whole 2 MiB page
/// that the kernel zeroes first. In perf, that zeroing was 7 to 11% of the
/// storage-on broker's CPU (MySQL run); with huge pages off, none.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only how
    // this process's later page faults are served.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::debug!(
            "transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("broker: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.check {
        return match read_config(path) {
            Ok(c) => {
                println!(
                    "{path}: ok ({} backend, {} pools, {} rules)",
                    c.kind(),
                    c.pools().len(),
                    c.rules().len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Before the runtime's threads allocate anything; the setting also
    // covers memory mapped before it.
    #[cfg(target_os = "linux")]
    no_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("broker: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("broker: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Before the engine: its pools and rules take their metric handles
    // when they are built.
    let recorder = match args.metrics {
        Some(_) => Some(examples::observability::install_recorder()?),
        None => None,
    };
    let (config, storage) = match &args.config {
        Some(path) => (
            read_config(path)?,
            args.storage.unwrap_or(Storage::Configured),
        ),
        None => (
            default_config(&args.data_dir)?,
            args.storage.unwrap_or(Storage::Configured),
        ),
    };
    let started = backends::connect(&config, storage, args.mode)
        .await
        .map_err(|e| e.to_string())?;
    let engine = Arc::new(Engine::new(&config, &started.pools).map_err(|e| e.to_string())?);
    // Health checks (each pool up/down logged) and, with a time_range,
    // the sweeper that keeps storage bounded.
    engine.start_background();
    if let (Some(addr), Some(handle)) = (args.metrics, recorder) {
        let bound = examples::observability::serve(addr, handle, Arc::clone(&engine)).await?;
        tracing::info!("metrics on http://{bound}/metrics, health on http://{bound}/healthz");
    }
    let node = args
        .node
        .unwrap_or_else(|| format!("broker@{}", args.listen));
    let scx = ServerContext::new().build().await;
    examples::session::advertise_retained(&scx, &engine).await;
    // The delivery adapter keeps stored messages within the session queue
    // the listener below is given.
    let delivery = DeliveryConfig::default();
    examples::glue::install(&scx, Arc::clone(&engine), node, delivery).await;
    if let Some(mut commands) = started.commands {
        let scx = scx.clone();
        tokio::spawn(async move {
            while let Some(cmd) = commands.recv().await {
                tracing::info!(?cmd, "subscription command from the backend channel");
                examples::session::apply_command(&scx, cmd);
            }
        });
    }
    tracing::info!(
        kind = %config.kind(),
        storage = ?storage,
        rules = config.rules().len(),
        listen = %args.listen,
        "broker starting"
    );
    let listener = Builder::new()
        .name("tcp")
        .laddr(args.listen)
        .allow_anonymous(true)
        // Small packets (PUBACKs) go out at once: with Nagle's algorithm
        // a PUBACK waits for the ACK of the previous one, which a client
        // sends with its next PUBLISH, so each PUBACK would wait one
        // publish interval.
        .nodelay(true)
        .max_mqueue_len(delivery.session_queue)
        // A restarted broker must get its port back while the old
        // connections linger in TIME_WAIT.
        .reuseaddr(Some(true))
        .bind()
        .and_then(|b| b.tcp())
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let server = MqttServer::new(scx.clone()).listener(listener).build();
    let signal = stop_signal()?;
    tokio::select! {
        r = server.run() => return r.map_err(|e| format!("server stopped: {e}")),
        name = signal => tracing::info!("{name}: no new connections; closing clients"),
    }
    // Graceful shutdown: the listener is gone with `server`; close the
    // clients so no new hook starts, then let the hooks under way finish
    // and the buffered writes land.
    let closed = examples::session::disconnect_all(&scx).await;
    tracing::info!(clients = closed, drain_timeout = ?args.drain, "clients closed; flushing storage");
    let left = engine.flush(args.drain).await;
    if left > 0 {
        return Err(format!(
            "{left} writes could not reach the database within {:?} and are lost",
            args.drain
        ));
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT, with its name.
fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "interrupt"
        })
    }
}
