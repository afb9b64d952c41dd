//! Test helpers: the broker as a child process, and real MQTT clients.

#![allow(dead_code)]

pub mod db;
pub mod scenarios;

/// One `#[tokio::test]` per broker scenario of [`scenarios`], each on the
/// database `$db` (an expression giving a future of a [`db::Db`]): the
/// same behaviour checked on every backend.
#[macro_export]
macro_rules! broker_scenarios {
    ($db:expr) => {
        $crate::broker_scenarios!(@each $db;
            offline_messages_survive_a_broker_restart,
            persistent_session_gets_each_message_once,
            stored_subscriptions_are_applied_on_connect,
            retained_message_survives_a_restart,
            client_status_is_recorded,
            quick_reconnects_are_accepted,
            no_local_is_kept_for_stored_messages,
            acks_survive_a_sigterm,
            persistent_v5_session_gets_each_message_once,
            retained_messages_come_once,
            a_message_after_the_suback_comes_once,
            retain_handling_holds_for_stored_retained_messages,
            user_properties_arrive_once,
            mqtt5_properties_come_back_from_storage,
        );
    };
    (@each $db:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                common::scenarios::$name(&$db.await).await;
            }
        )*
    };
}

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    examples::testbed::free_port().expect("bind an ephemeral port")
}

/// The broker binary running as a child process; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    args: Vec<String>,
}

impl Broker {
    /// Starts `broker` with `args` (plus `--listen`) and waits until it
    /// accepts MQTT connections.
    pub async fn start(args: &[&str]) -> Broker {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // A port found free can be taken by someone else's connection before
        // the broker binds it: then try another.
        for _ in 0..3 {
            match Self::start_on(free_port(), args.clone()).await {
                Ok(b) => return b,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("the broker did not start:\n{log}"),
            }
        }
        panic!("the broker found no free port in three tries");
    }

    async fn start_on(port: u16, args: Vec<String>) -> Result<Broker, String> {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let log = dir.join(format!("broker-{port}-{}.log", std::process::id()));
        // Appended to: a restart on the same port keeps what came before.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the broker log");
        let child = Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(&args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env(
                "RUST_LOG",
                std::env::var("BROKER_LOG").unwrap_or_else(|_| "info,rmqtt=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn the broker");
        let mut broker = Broker {
            child,
            port,
            log,
            args,
        };
        broker.wait_ready().await?;
        Ok(broker)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("broker exited with {status}:\n{}", self.log_text()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "broker did not listen on {} within 30 s:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the broker and starts it again with the same arguments, on the
    /// same port if it can be had again (clients read `port` afterwards).
    pub async fn restart(mut self) -> Broker {
        self.stop();
        let args = std::mem::take(&mut self.args);
        let port = self.port;
        drop(self);
        for _ in 0..20 {
            match Self::start_on(port, args.clone()).await {
                Ok(b) => return b,
                Err(log) if log.contains("Address already in use") => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(log) => panic!("the broker did not restart:\n{log}"),
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Broker::start(&refs).await
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the broker with SIGTERM (its graceful shutdown) and waits up
    /// to 30 s for it to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within 30 s of SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM (every write it took lands) and
    /// starts it again, as [`Broker::restart`].
    pub async fn restart_gracefully(mut self) -> Broker {
        let status = self.terminate();
        assert!(
            status.success(),
            "the broker's shutdown failed ({status}):\n{}",
            self.log_text()
        );
        self.restart().await
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connected MQTT client whose received publishes arrive on a channel.
pub struct Client {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Publish>,
    subacks: mpsc::UnboundedReceiver<()>,
    task: JoinHandle<()>,
}

impl Client {
    /// Connects `id` (clean session or not) and waits for the CONNACK.
    pub async fn connect(port: u16, id: &str, clean: bool) -> Client {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(clean);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (suback_tx, subacks) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = suback_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .unwrap_or_else(|_| panic!("{id}: no CONNACK within 10 s"))
            .unwrap_or_else(|_| panic!("{id}: event loop ended before CONNACK"));
        Client {
            client,
            rx,
            subacks,
            task,
        }
    }

    /// Subscribes and waits for the SUBACK, as a client does before it
    /// counts on the subscription: a message published before the broker
    /// took the SUBSCRIBE is not the subscriber's.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("send SUBSCRIBE");
        tokio::time::timeout(Duration::from_secs(15), self.subacks.recv())
            .await
            .unwrap_or_else(|_| panic!("no SUBACK for {filter} within 15 s"))
            .expect("the event loop ended before the SUBACK");
    }

    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("send PUBLISH");
    }

    /// Every publish received until `quiet` passes with nothing new (or
    /// `max` passes in all).
    pub async fn collect(&mut self, quiet: Duration, max: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + max;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            match tokio::time::timeout(quiet, self.rx.recv()).await {
                Ok(Some(p)) => got.push(p),
                Ok(None) | Err(_) => break,
            }
        }
        got
    }

    /// Waits for `n` publishes (failing after `max`), then a short quiet
    /// period to catch duplicates.
    pub async fn expect(&mut self, n: usize, max: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + max;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(p)) => got.push(p),
                _ => panic!(
                    "expected {n} messages, got {}: {:?}",
                    got.len(),
                    payloads(&got)
                ),
            }
        }
        got.extend(
            self.collect(Duration::from_millis(700), Duration::from_secs(2))
                .await,
        );
        got
    }

    /// Disconnects cleanly and stops the event loop.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.task.abort();
    }
}

pub fn payloads(ps: &[Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

pub use examples::testbed::unique;
