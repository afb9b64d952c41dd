//! The whole stack, measured: the example broker (this build's `broker`
//! binary) with real MQTT publishers, storage on against storage off, for
//! each backend, in one run; beside it the database's own batched write
//! rate through the raw backend. Every message of a storage-on run is then
//! checked in the database.
//!
//! ```text
//! stack_bench [--backends redis,pgsql,mysql] [--publishers 8]
//!             [--messages 40000] [--rate 2000] [--seconds 5] [--repeat 1]
//!             [--set key=value]...
//! stack_bench --backlog 100000 [--backends ...] [--publishers 8] [--set ...]
//! ```
//!
//! With `--repeat N`, each throughput run (storage off, on, and off paced
//! to the storage-on rate) runs N times in turn and every figure is the
//! median of its N: on a small machine shared with the database, one
//! run's CPU per message varies by a microsecond or more.
//!
//! With `--backlog N`: a persistent subscriber on a wildcard is away while
//! the publishers send N QoS 1 messages (one topic each); back, the time
//! until it has all N, each once and in order on each topic (checked),
//! beside the backend reading the same N rows in one fetch.
//!
//! Run through `scripts/bench-stack.sh`, which builds in release and
//! starts the servers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::{
    Backend, BackendKind, Config, FetchRequest, Message, OfflineMode, QoS, StartMode,
};
use examples::backends::{self, Storage};
use examples::{cpu, testbed};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet};

struct Args {
    backends: Vec<BackendKind>,
    publishers: usize,
    messages: usize,
    rate: u64,
    seconds: u64,
    /// `--repeat N`: throughput runs per figure, which is their median.
    repeat: usize,
    /// Pool settings for the storage-on runs (`--set batch_size=500`).
    set: Vec<(String, String)>,
    /// `--backlog N`: the backlog drain benchmark instead.
    backlog: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        // MongoDB on request (`--backends mongo`): the test set-up's
        // FerretDB scans whole collections, so its figures say little.
        backends: vec![
            backend_sqlite::KIND,
            backend_redis::KIND,
            backend_pgsql::KIND,
            backend_mysql::KIND,
            backend_cassa::KIND,
        ],
        publishers: 8,
        messages: 40_000,
        rate: 2_000,
        seconds: 5,
        repeat: 1,
        set: Vec::new(),
        backlog: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} {v}: expected a positive number"))
        };
        match flag.as_str() {
            "--backends" => {
                a.backends = v
                    .split(',')
                    .map(|k| {
                        BackendKind::named(k.trim())
                            .ok_or_else(|| format!("--backends: unknown backend `{k}`"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--publishers" => a.publishers = num(&v)? as usize,
            "--messages" => a.messages = num(&v)? as usize,
            "--rate" => a.rate = num(&v)?,
            "--seconds" => a.seconds = num(&v)?,
            "--repeat" => a.repeat = num(&v)? as usize,
            "--backlog" => a.backlog = Some(num(&v)? as usize),
            "--set" => {
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--set {v}: expected key=value"))?;
                a.set.push((k.trim().to_owned(), val.trim().to_owned()));
            }
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    Ok(a)
}

/// The broker as a child process, stopped with SIGTERM on drop.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    async fn start(conf: &Path, log: &Path) -> Result<Broker, String> {
        let exe = sibling("broker")?;
        let port = testbed::free_port().map_err(|e| format!("no free port: {e}"))?;
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&exe)
            .arg("--config")
            .arg(conf)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--require-storage"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let mut b = Broker { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = b.child.try_wait() {
                return Err(format!("broker exited ({st}); see {}", log.display()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(b);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "broker not listening after 30 s; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the exit: the broker flushes its storage
    /// first. Fails if it reports writes it could not store.
    async fn terminate(&mut self) -> Result<(), String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(()),
                Ok(Some(st)) => return Err(format!("broker exited with {st} after SIGTERM")),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        Err("broker still running 120 s after SIGTERM".into())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no directory for this executable")?;
    let exe = dir.join(name);
    if exe.exists() {
        Ok(exe)
    } else {
        Err(format!(
            "{} not found: build it with this binary",
            exe.display()
        ))
    }
}

async fn connect(port: u16, id: &str) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    // Long: a publisher held back by a full buffer sends nothing, PINGREQ
    // included, until there is room.
    opts.set_keep_alive(Duration::from_secs(600));
    opts.set_inflight(100);
    let (client, mut ev) = AsyncClient::new(opts, 1_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, ev)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("{id}: {e}")),
            Err(_) => return Err(format!("{id}: no CONNACK in 10 s")),
        }
    }
}

/// `publishers` clients send `total` QoS 1 messages on `topic/<n>` as fast
/// as their in-flight windows allow, or at `pace` messages per second in
/// all; returns the messages sent and when the first PUBLISH went.
async fn throughput(
    port: u16,
    topic: &str,
    publishers: usize,
    total: usize,
    pace: Option<f64>,
) -> Result<(usize, Instant), String> {
    let each = total / publishers;
    let mut clients = Vec::new();
    for p in 0..publishers {
        clients.push(connect(port, &testbed::unique("bench-pub")).await?);
        let _ = p;
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (p, (client, mut ev)) in clients.into_iter().enumerate() {
        let topic = format!("{topic}/{p}");
        tasks.spawn(async move {
            let sender = tokio::spawn({
                let client = client.clone();
                async move {
                    let mut tick = pace.map(|rate| {
                        tokio::time::interval(Duration::from_secs_f64(publishers as f64 / rate))
                    });
                    for i in 0..each {
                        if let Some(t) = tick.as_mut() {
                            t.tick().await;
                        }
                        // 100 bytes, `<publisher>:<n>` first: checkable.
                        let mut payload = format!("{p}:{i}:").into_bytes();
                        payload.resize(100, b'x');
                        if client
                            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
            let mut acked = 0;
            while acked < each {
                match tokio::time::timeout(Duration::from_secs(60), ev.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(format!("publisher {p}: {e}")),
                    Err(_) => return Err(format!("publisher {p}: no PUBACK for 60 s")),
                }
            }
            sender.abort();
            let _ = client.disconnect().await;
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok((each * publishers, start))
}

/// The broker's rates on `conf`: messages per second until the last
/// PUBACK, and until the broker, stopped with SIGTERM right after, has
/// stored them all and exited. Publishers go as fast as they can, or at
/// `pace` messages per second in all.
async fn rates(
    conf: &Path,
    log: &Path,
    topic: &str,
    a: &Args,
    pace: Option<f64>,
) -> Result<(f64, f64), String> {
    let mut broker = Broker::start(conf, log).await?;
    let (n, start) = throughput(broker.port, topic, a.publishers, a.messages, pace).await?;
    let acked = n as f64 / start.elapsed().as_secs_f64();
    broker.terminate().await?;
    let stored = n as f64 / start.elapsed().as_secs_f64();
    Ok((acked, stored))
}

/// PUBACK latencies (p50, p99 in ms) at the paced load, on a fresh broker.
async fn latencies(conf: &Path, log: &Path, topic: &str, a: &Args) -> Result<(f64, f64), String> {
    let mut broker = Broker::start(conf, log).await?;
    let lat = latency(broker.port, topic, a.publishers, a.rate, a.seconds).await?;
    broker.terminate().await?;
    Ok((pct(&lat, 0.5), pct(&lat, 0.99)))
}

/// `publishers` clients send `rate` QoS 1 messages per second in all, for
/// `seconds`; returns the PUBLISH-to-PUBACK latencies, sorted.
async fn latency(
    port: u16,
    topic: &str,
    publishers: usize,
    rate: u64,
    seconds: u64,
) -> Result<Vec<Duration>, String> {
    let per = rate as f64 / publishers as f64;
    let count = (per * seconds as f64) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..publishers {
        let (client, mut ev) = connect(port, &testbed::unique("bench-lat")).await?;
        let topic = format!("{topic}/{p}");
        tasks.spawn(async move {
            let sender = tokio::spawn({
                let client = client.clone();
                async move {
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per));
                    for _ in 0..count {
                        tick.tick().await;
                        if client
                            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, vec![b'x'; 100])
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
            let mut sent: HashMap<u16, Instant> = HashMap::new();
            let mut out = Vec::with_capacity(count);
            while out.len() < count {
                match tokio::time::timeout(Duration::from_secs(30), ev.poll()).await {
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        sent.insert(pkid, Instant::now());
                    }
                    Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                        if let Some(t) = sent.remove(&a.pkid) {
                            out.push(t.elapsed());
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(format!("publisher {p}: {e}")),
                    Err(_) => return Err(format!("publisher {p}: no PUBACK for 30 s")),
                }
            }
            sender.abort();
            let _ = client.disconnect().await;
            Ok(out)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    Ok(all)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// The raw backend's batched rate: `total` messages stored 100 at a time
/// (the write path's default batch) by 4 tasks.
async fn raw_rate(backend: &Arc<dyn Backend>, topic: &str, total: usize) -> Result<f64, String> {
    let tasks = 4;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let b = Arc::clone(backend);
        let topic = format!("{topic}/{t}");
        set.spawn(async move {
            for _ in 0..total / tasks / 100 {
                let batch: Vec<Message> = (0..100)
                    .map(|_| Message::new("raw", topic.clone(), QoS::AtLeastOnce, vec![b'x'; 100]))
                    .collect();
                b.store_messages(&batch, Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok((total / tasks / 100 * 100 * tasks) as f64 / start.elapsed().as_secs_f64())
}

/// Removes the run's messages, so runs do not pile up on the servers.
async fn remove(backend: &Arc<dyn Backend>, filter: &str) {
    if let Err(e) = testbed::remove_stored(&**backend, filter).await {
        eprintln!("could not remove the messages under {filter}: {e}");
    }
}

/// Messages stored under `filter`, read back through the backend.
async fn stored(backend: &Arc<dyn Backend>, filter: &str) -> Result<usize, String> {
    let req = FetchRequest {
        client_id: testbed::unique("bench-check"),
        filter: filter.to_owned(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    };
    backend
        .fetch_messages(&req)
        .await
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// CPU seconds a run took: the broker's, and the database server's (when
/// it runs here, from `scripts/services.sh`).
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    broker: f64,
    /// This process: the raw backend's driver in the raw runs.
    client: f64,
    db: Option<f64>,
}

/// The local test server's pid (from `scripts/services.sh`'s pid files).
fn server_pid(kind: BackendKind) -> Option<u32> {
    let file = match kind.name() {
        "redis" => "target/services/redis/redis.pid",
        "pgsql" => "target/services/postgres/data/postmaster.pid",
        "mysql" => "target/services/mariadb/mysqld.pid",
        "mongo" => "target/services/ferretdb/ferretdb.pid",
        "cassa" => "target/services/cassandra/cassandra.pid",
        _ => return None,
    };
    cpu::pid_file(Path::new(file))
}

/// Runs `run`, measuring the CPU the brokers it waited for and the
/// database server `db` used meanwhile.
async fn measured<T>(
    db: Option<u32>,
    run: impl std::future::Future<Output = Result<T, String>>,
) -> Result<(T, Cpu), String> {
    let broker = cpu::children();
    let client = cpu::own();
    let server = db.map(cpu::tree);
    let out = run.await?;
    let used = Cpu {
        broker: cpu::children() - broker,
        client: cpu::own() - client,
        db: server.zip(db).map(|(before, pid)| cpu::tree(pid) - before),
    };
    Ok((out, used))
}

/// One throughput run's figures: msg/s until the last PUBACK and until
/// all stored, and the CPU used.
type RunFigures = ((f64, f64), Cpu);

/// The median of each figure over runs of one kind: rates, broker CPU,
/// client CPU and database CPU each taken on its own.
fn median_run(runs: impl Iterator<Item = RunFigures>) -> RunFigures {
    let runs: Vec<_> = runs.collect();
    let med = |f: &dyn Fn(&RunFigures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let db = runs
        .iter()
        .all(|r| r.1.db.is_some())
        .then(|| med(&|r| r.1.db.unwrap_or(0.0)));
    (
        (med(&|r| r.0 .0), med(&|r| r.0 .1)),
        Cpu {
            broker: med(&|r| r.1.broker),
            client: med(&|r| r.1.client),
            db,
        },
    )
}

struct Row {
    kind: BackendKind,
    /// CPU of the storage-off and storage-on throughput runs, and of the
    /// raw batched stores (`raw_n` messages).
    cpu_off: Cpu,
    /// The bare broker paced to the storage-on run's rate.
    cpu_paced: Cpu,
    cpu_on: Cpu,
    cpu_raw: Cpu,
    raw_n: usize,
    /// The server's bulk path for as many rows (see `examples::bulk`), if
    /// it has one of its own here.
    cpu_bulk: Option<Cpu>,
    /// msg/s until the last PUBACK, and until all stored.
    off: (f64, f64),
    on: (f64, f64),
    raw: f64,
    stored: usize,
    sent: usize,
    lat_off: (f64, f64),
    lat_on: (f64, f64),
}

async fn bench(kind: BackendKind, a: &Args, dir: &Path) -> Result<Row, String> {
    let on_text = storage_conf(kind, a, true)?;
    let off_text = storage_conf(kind, a, false)?;
    let on_conf = dir.join(format!("{}-on.conf", kind.name()));
    let off_conf = dir.join(format!("{}-off.conf", kind.name()));
    std::fs::write(&on_conf, &on_text).map_err(|e| e.to_string())?;
    std::fs::write(&off_conf, &off_text).map_err(|e| e.to_string())?;
    let run = testbed::unique("bench");

    let log = |what: &str| dir.join(format!("{}-{what}.log", kind.name()));
    let db = server_pid(kind);
    let mut runs = Vec::new();
    for i in 0..a.repeat {
        let (off, cpu_off) = measured(
            db,
            rates(&off_conf, &log("off"), &format!("{run}/off{i}"), a, None),
        )
        .await?;
        let (on, cpu_on) = measured(
            db,
            rates(&on_conf, &log("on"), &format!("{run}/on{i}"), a, None),
        )
        .await?;
        // The bare broker again, paced to the rate the storage-on run
        // reached: a broker that routes fewer messages per second reads
        // and writes fewer per system call, so part of "off against on" at
        // full speed is the rate, not storage.
        let (_, cpu_paced) = measured(
            db,
            rates(
                &off_conf,
                &log("paced"),
                &format!("{run}/paced{i}"),
                a,
                Some(on.0),
            ),
        )
        .await?;
        runs.push([(off, cpu_off), (on, cpu_on), ((0.0, 0.0), cpu_paced)]);
    }
    let [(off, cpu_off), (on, cpu_on), (_, cpu_paced)] =
        [0, 1, 2].map(|k| median_run(runs.iter().map(|r| r[k])));
    let lat_off = latencies(&off_conf, &log("off-lat"), &format!("{run}/offlat"), a).await?;
    let lat_on = latencies(&on_conf, &log("on-lat"), &format!("{run}/onlat"), a).await?;
    // Checked after the broker's SIGTERM flush, with the same backend the
    // broker used.
    let backend = pool_backend(&on_text).await?;
    let sent = a.messages / a.publishers * a.publishers;
    let mut stored_all = 0;
    for i in 0..a.repeat {
        stored_all += stored(&backend, &format!("{run}/on{i}/#")).await?;
    }
    // Every run's messages are checked; the table shows one run's share.
    let stored = stored_all / a.repeat;
    if stored_all != sent * a.repeat {
        return Err(format!(
            "{stored_all} of {} messages stored over {} runs",
            sent * a.repeat,
            a.repeat
        ));
    }
    let (raw, cpu_raw) =
        measured(db, raw_rate(&backend, &format!("{run}/raw"), a.messages)).await?;
    let url = testbed::server_url(kind);
    let bulk_topic = format!("{run}/bulk");
    let (has_bulk, cpu_bulk) = measured(
        db,
        examples::bulk::store(kind, &url, &bulk_topic, a.messages / 400 * 400),
    )
    .await?;
    remove(&backend, &format!("{run}/#")).await;
    Ok(Row {
        kind,
        cpu_off,
        cpu_paced,
        cpu_on,
        cpu_raw,
        raw_n: a.messages / 400 * 400,
        cpu_bulk: has_bulk.then_some(cpu_bulk),
        off,
        on,
        raw,
        stored,
        sent,
        lat_off,
        lat_on,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stack_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/bench".into()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("stack_bench: {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    if let Some(n) = a.backlog {
        return backlogs(&a, n, &dir).await;
    }
    println!(
        "whole stack: {} QoS 1 publishers, {} messages of 100 bytes; latency at {} msg/s for {} s",
        a.publishers, a.messages, a.rate, a.seconds
    );
    println!("msg/s: until the last PUBACK / until the broker, stopped right after, stored all and exited");
    println!(
        "{:<8} {:>15} {:>15} {:>6} {:>12} {:>13} {:>17} {:>17}",
        "backend",
        "off msg/s",
        "on msg/s",
        "ratio",
        "raw batch/s",
        "stored",
        "p50/p99 off ms",
        "p50/p99 on ms"
    );
    let mut failed = false;
    let mut rows = Vec::new();
    for kind in &a.backends {
        match bench(*kind, &a, &dir).await {
            Ok(r) => {
                println!(
                    "{:<8} {:>7.0}/{:<7.0} {:>7.0}/{:<7.0} {:>6.2} {:>12.0} {:>6}/{:<6} {:>8.2}/{:<8.2} {:>8.2}/{:<8.2}",
                    r.kind.name(),
                    r.off.0,
                    r.off.1,
                    r.on.0,
                    r.on.1,
                    r.on.1 / r.off.1,
                    r.raw,
                    r.stored,
                    r.sent,
                    r.lat_off.0,
                    r.lat_off.1,
                    r.lat_on.0,
                    r.lat_on.1,
                );
                if r.stored != r.sent {
                    eprintln!("{}: {} of {} messages stored", r.kind, r.stored, r.sent);
                    failed = true;
                }
                rows.push(r);
            }
            Err(e) => {
                eprintln!("{kind}: {e}");
                failed = true;
            }
        }
    }
    print_cpu(&rows);
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The cost per stored message: CPU µs in the broker process (storage off
/// at full speed and paced to the storage-on run's rate, on, and what
/// storage added against each), in this process when the raw backend
/// stores the rows in batches of 100 (the backend and its driver alone),
/// and in the database server's processes
/// (during the storage-on run, less the storage-off run's background; for
/// the same rows stored by the raw backend in batches of 100; and for them
/// taken through the server's bulk path, the floor).
fn print_cpu(rows: &[Row]) {
    println!();
    println!(
        "CPU µs per stored message (broker process; database server processes, `-` when not local)"
    );
    println!("broker off: full speed / paced to the storage-on rate; added: against each");
    println!(
        "{:<8} {:>11} {:>10} {:>11} {:>11} {:>10} {:>13} {:>8} {:>11}",
        "backend",
        "broker off",
        "broker on",
        "added",
        "raw client",
        "db added",
        "db raw batch",
        "db bulk",
        "added/bulk"
    );
    let us = |secs: f64, n: usize| secs * 1e6 / n.max(1) as f64;
    let db = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for r in rows {
        let off = us(r.cpu_off.broker, r.sent);
        let paced = us(r.cpu_paced.broker, r.sent);
        let on = us(r.cpu_on.broker, r.sent);
        let db_added = r
            .cpu_on
            .db
            .zip(r.cpu_off.db)
            .map(|(on, off)| us(on - off, r.sent));
        let db_raw = r.cpu_raw.db.map(|d| us(d, r.raw_n));
        let db_bulk = r.cpu_bulk.and_then(|c| c.db).map(|d| us(d, r.raw_n));
        let ratio = db_added
            .zip(db_bulk)
            .map_or_else(|| "-".to_owned(), |(a, b)| format!("{:.2}", a / b));
        println!(
            "{:<8} {:>11} {:>10.1} {:>11} {:>11.1} {:>10} {:>13} {:>8} {:>11}",
            r.kind.name(),
            format!("{off:.1}/{paced:.1}"),
            on,
            format!("{:.1}/{:.1}", on - off, on - paced),
            us(r.cpu_raw.client, r.raw_n),
            db(db_added),
            db(db_raw),
            db(db_bulk),
            ratio
        );
    }
}

/// `--backlog N` for each backend: the drain through the broker beside
/// the backend's one-fetch read of the same rows.
async fn backlogs(a: &Args, n: usize, dir: &Path) -> ExitCode {
    println!(
        "backlog: {n} QoS 1 messages on {} topics for a persistent subscriber that was away",
        a.publishers
    );
    println!("drain: SUBSCRIBE to the last message, every one once and in order (rmqtt's session keeps 1,000)");
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>14}",
        "backend", "drain s", "drain/s", "raw fetch s", "raw fetch/s"
    );
    let mut failed = false;
    for kind in &a.backends {
        match backlog(*kind, a, n, dir).await {
            Ok((drain, raw)) => println!(
                "{:<8} {:>10.2} {:>10.0} {:>14.2} {:>14.0}",
                kind.name(),
                drain,
                n as f64 / drain,
                raw,
                n as f64 / raw
            ),
            Err(e) => {
                eprintln!("{kind}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The project's conf for `kind` on its test server: with its hook rules
/// and `--set` applied (storage on), or without both (storage off).
fn storage_conf(kind: BackendKind, a: &Args, storage_on: bool) -> Result<String, String> {
    let url = testbed::server_url(kind);
    let extra: Vec<String> = if storage_on {
        a.set
            .iter()
            .map(|(k, v)| format!("backend.{}.pool1.{k} = {v}", kind.pool_prefix()))
            .collect()
    } else {
        Vec::new()
    };
    testbed::conf_text(kind, Some(&url), &extra, storage_on)
}

/// The backend of the conf's `pool1`, connected as the broker connects it.
async fn pool_backend(text: &str) -> Result<Arc<dyn Backend>, String> {
    let config = Config::parse(text).map_err(|e| e.to_string())?;
    let started = backends::connect(&config, Storage::Configured, StartMode::Required)
        .await
        .map_err(|e| e.to_string())?;
    started
        .pools
        .get("pool1")
        .cloned()
        .ok_or_else(|| "no pool1 in the conf".to_owned())
}

/// One backend's backlog drain (seconds) and raw fetch (seconds).
async fn backlog(kind: BackendKind, a: &Args, n: usize, dir: &Path) -> Result<(f64, f64), String> {
    let text = storage_conf(kind, a, true)?;
    let conf = dir.join(format!("{}-backlog.conf", kind.name()));
    std::fs::write(&conf, &text).map_err(|e| e.to_string())?;
    let root = format!("pubsub/{}", testbed::unique("backlog"));
    let filter = format!("{root}/#");
    let sub_id = testbed::unique("drain");
    let mut broker =
        Broker::start(&conf, &dir.join(format!("{}-backlog.log", kind.name()))).await?;
    let sub = Drainer::connect(broker.port, &sub_id, &filter).await?;
    sub.leave().await;
    let (sent, _) = throughput(broker.port, &root, a.publishers, n, None).await?;
    let mut sub = Drainer::connect(broker.port, &sub_id, &filter).await?;
    let start = Instant::now();
    sub.drain(sent, a.publishers).await?;
    let drain = start.elapsed().as_secs_f64();
    sub.leave().await;
    broker.terminate().await?;
    // The same rows, read by the backend in one fetch.
    let backend = pool_backend(&text).await?;
    let start = Instant::now();
    let read = stored(&backend, &filter).await?;
    let raw = start.elapsed().as_secs_f64();
    if read != sent {
        return Err(format!("the backend holds {read} of {sent} messages"));
    }
    remove(&backend, &filter).await;
    Ok((drain, raw))
}

/// A persistent subscriber whose event loop acks what arrives.
struct Drainer {
    client: AsyncClient,
    ev: rumqttc::EventLoop,
}

impl Drainer {
    async fn connect(port: u16, id: &str, filter: &str) -> Result<Drainer, String> {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(600));
        let (client, mut ev) = AsyncClient::new(opts, 100);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline.into(), ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok(Drainer { client, ev }),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("{id}: {e}")),
                Err(_) => return Err(format!("{id}: no SUBACK in 10 s")),
            }
        }
    }

    /// Receives `n` messages of `publishers` topics, each once and in
    /// order on its topic (the payloads [`throughput`] sends).
    async fn drain(&mut self, n: usize, publishers: usize) -> Result<(), String> {
        let mut next = vec![0usize; publishers];
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(60), self.ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    let text = String::from_utf8_lossy(&p.payload);
                    let mut parts = text.split(':');
                    let (Some(Ok(k)), Some(Ok(i))) = (
                        parts.next().map(str::parse::<usize>),
                        parts.next().map(str::parse::<usize>),
                    ) else {
                        return Err(format!("an unexpected payload {text:?}"));
                    };
                    if k >= publishers || i != next[k] {
                        return Err(format!(
                            "message {k}:{i} after {got}: expected {k}:{} (out of order or twice)",
                            next.get(k).copied().unwrap_or(0)
                        ));
                    }
                    next[k] = i + 1;
                    got += 1;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("{got} of {n} after 60 s without a message")),
            }
        }
        Ok(())
    }

    async fn leave(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.ev.poll().await.is_ok() {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::{median_run, Cpu};

    fn run(rate: f64, broker: f64, db: Option<f64>) -> super::RunFigures {
        let cpu = Cpu {
            broker,
            client: broker / 2.0,
            db,
        };
        ((rate, rate / 2.0), cpu)
    }

    #[test]
    fn each_figure_is_its_own_median() {
        let runs = [
            run(3.0, 10.0, Some(7.0)),
            run(1.0, 30.0, Some(5.0)),
            run(2.0, 20.0, Some(9.0)),
        ];
        let ((acked, stored), cpu) = median_run(runs.into_iter());
        assert_eq!((acked, stored), (2.0, 1.0));
        assert_eq!((cpu.broker, cpu.client), (20.0, 10.0));
        assert_eq!(cpu.db, Some(7.0));
    }

    #[test]
    fn a_run_without_database_figures_leaves_none() {
        let runs = [run(1.0, 1.0, Some(1.0)), run(2.0, 2.0, None)];
        assert_eq!(median_run(runs.into_iter()).1.db, None);
    }
}
