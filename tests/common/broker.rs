//! The persistent test broker (`tests/kafka-broker.sh`: tansu on an S3
//! server of its own) as the integration tests and the chaos suite drive
//! it: started on a free port, killed and resumed on its data, stopped with
//! its data on drop.

use std::process::Stdio;
use std::time::Duration;

use subgraph_kit::events::{EventBus, EventSettings, KafkaSettings};
use tokio::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A tansu broker on a loopback port whose data lives in an S3 server of
/// its own (`tests/kafka-broker.sh`), so killing and resuming it is a real
/// broker restart; both are stopped and their data deleted on drop.
pub struct Broker {
    pub port: u16,
}

impl Broker {
    /// Installs (once per machine) and starts a broker on a free port.
    pub async fn start() -> Self {
        let port = free_port();
        Self::start_on(port, port).await
    }

    /// A broker on a free port that tells clients to connect to
    /// `advertised` instead (a TLS proxy in front of it).
    pub async fn start_advertising(advertised: u16) -> Self {
        Self::start_on(free_port(), advertised).await
    }

    async fn start_on(port: u16, advertised: u16) -> Self {
        let owner = std::process::id().to_string();
        broker_script(&["start", &port.to_string(), &owner, &advertised.to_string()]).await;
        Self { port }
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (`kill -9`); what it stored stays for [`Self::resume`].
    pub async fn kill(&self) {
        self.run("kill").await;
    }

    /// Starts the killed broker again on the same port and data, and waits
    /// until it listens.
    pub async fn resume(&self) {
        self.run("resume").await;
    }

    /// Kills the broker and starts it on empty storage: a broker that lost
    /// its topics, messages, offsets and producer ids.
    pub async fn reset(&self) {
        self.run("reset").await;
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is
    /// answered — a broker that hangs rather than one that crashed.
    pub async fn pause(&self) {
        self.run("pause").await;
    }

    /// Lets a paused broker run again (SIGCONT).
    pub async fn unpause(&self) {
        self.run("unpause").await;
    }

    async fn run(&self, command: &str) {
        broker_script(&[command, &self.port.to_string()]).await;
    }

    /// Settings for this broker with topic names no other test uses.
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings {
            brokers: self.address(),
            topic_prefix: format!("t{}-", uuid::Uuid::new_v4().simple()),
            partitions: 3,
            replication: 1,
            session_timeout: Duration::from_secs(6),
            publish_timeout: Duration::from_secs(3),
            client_properties: TANSU_CLIENT_PROPERTIES
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The variables that put a `shopgraph serve` process on this broker,
    /// with topic names no other test uses (the same for every process
    /// given this list).
    pub fn process_env(&self) -> Vec<(&'static str, String)> {
        let settings = self.settings();
        vec![
            ("KAFKA_BROKERS", settings.brokers),
            ("KAFKA_TOPIC_PREFIX", settings.topic_prefix),
            ("KAFKA_SESSION_TIMEOUT", "6s".into()),
            (
                "KAFKA_CLIENT_PROPERTIES",
                TANSU_CLIENT_PROPERTIES
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }

    /// A bus on this broker with topic names no other test uses.
    pub async fn bus(&self) -> EventBus {
        let settings = EventSettings {
            kafka: Some(self.settings()),
        };
        EventBus::connect(&settings, "shopgraph-test")
            .await
            .expect("the test broker accepts the topics")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Blocking on purpose: the broker must be gone when the test is.
        let stopped = std::process::Command::new(format!("{ROOT}/tests/kafka-broker.sh"))
            .args(["stop", &self.port.to_string()])
            .stdin(Stdio::null())
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!(
                "warning: could not stop the test broker on port {}: {stopped:?}",
                self.port
            );
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `tests/kafka-broker.sh args…`; panics with its output if it fails.
async fn broker_script(args: &[&str]) {
    let output = Command::new(format!("{ROOT}/tests/kafka-broker.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("tests/kafka-broker.sh runs");
    assert!(
        output.status.success(),
        "tests/kafka-broker.sh {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// librdkafka 2.12 crashes (a NULL topic name in `strcmp`) when a Fetch
/// response (v13+, topics by id) reports a leader change and the broker's
/// topic ids are all zero, as the test broker's are. Speaking the Kafka
/// 2.8 protocol (Fetch v12, topics by name) avoids that path.
pub const TANSU_CLIENT_PROPERTIES: &[(&str, &str)] = &[
    ("api.version.request", "false"),
    ("broker.version.fallback", "2.8.0"),
];
