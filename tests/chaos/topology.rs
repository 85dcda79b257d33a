//! The `serve` topology as separate processes: two routers, two replicas
//! of each subgraph, on this run's own PostgreSQL, MariaDB and broker.
//!
//! Every process keeps its ports for the whole run, so one that was
//! killed is started again where the routers (and the subgraphs that call
//! it) expect it. Product's second replica is reached through a
//! [`FaultProxy`] — by the routers and by the payment replica that
//! reserves stock there — so the run can stall that link without killing
//! anything.
//!
//! Replica pairs are wired the way a small deployment would be: payment
//! `i` reserves stock at product `i` and reads baskets at basket `i` (a
//! subgraph-to-subgraph URL names one service address; a replica that
//! dies takes its partner's checkouts down with it until it is back).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use shopgraph_core::hop::HopKeyPair;
use tokio::process::{Child, Command};

use crate::fault_proxy::FaultProxy;
use crate::migrate::migrate;
use crate::servers::{Broker, MariaDb, Postgres, ROOT, RedisKeys};
use crate::{JWT_SECRET, SHOPGRAPH, free_port};

/// The four subgraphs, in the order replicas are listed.
pub const SERVICES: [&str; 4] = ["product", "basket", "payment", "notification"];
/// Replicas per subgraph, and routers.
pub const REPLICAS: usize = 2;

/// Deadlines short enough that the run sees them pass: a pending payment
/// expires after 20 s, its reservation and lock 30 s later, a payment
/// stuck PROCESSING is reconciled after 5 s.
const SAGA_TIMINGS: &[(&str, &str)] = &[
    ("PAYMENT_TTL", "20s"),
    ("PAYMENT_EXPIRY_INTERVAL", "1s"),
    ("PAYMENT_RECONCILE_AFTER", "5s"),
    ("PAYMENT_RECONCILE_INTERVAL", "1s"),
    ("CHECKOUT_SETTLE_MARGIN", "30s"),
    ("RESERVATION_SWEEP_INTERVAL", "1s"),
    ("NOTIFICATION_SCHEDULER_INTERVAL", "1s"),
    ("UPSTREAM_TIMEOUT", "3s"),
];

/// The test broker speaks the Kafka 2.8 protocol best (see
/// `tests/api/live.rs`). Producers stay idempotent, as in production: with
/// idempotence off, the test broker began refusing every produce with
/// `ProducerFenced` after its third restart in a long run (a producer
/// without an id cannot be renewed past that). The test broker's loss
/// window (`tests/kafka-broker.sh`: a batch in flight at a `kill -9` can
/// be acknowledged unstored) is closed by the Kafka adapter, which sends
/// again what was acknowledged across a lost connection.
const KAFKA_CLIENT_PROPERTIES: &str = "api.version.request=false,broker.version.fallback=2.8.0";

/// One `shopgraph serve` process that can be killed and started again.
pub struct Process {
    pub name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// What answers 200 once it serves.
    ready_url: String,
    /// Where its `/metrics` are.
    pub metrics_url: String,
    pub log: PathBuf,
    child: Option<Child>,
    /// Counters read from earlier lives of this process, by metric.
    banked: Vec<(String, f64)>,
}

impl Process {
    /// Starts it (again) and waits until it is ready.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a process log");
        let child = Command::new(SHOPGRAPH)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("a process log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("shopgraph serve starts");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(90)).await;
    }

    async fn wait_ready(&mut self, within: Duration) {
        let http = crate::http_client(Duration::from_secs(2));
        let deadline = Instant::now() + within;
        loop {
            if http
                .get(&self.ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited ({status}) while starting; log: {}",
                    self.name,
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; log: {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`, after banking its counters (`counters`: name and label
    /// filter) so totals over the run survive the restart.
    pub async fn kill(&mut self, counters: &[(&str, &str)]) {
        for (name, labels) in counters {
            let value = self.metric_now(name, labels).await;
            let key = format!("{name}{{{labels}");
            match self.banked.iter_mut().find(|(k, _)| *k == key) {
                Some((_, total)) => *total += value,
                None => self.banked.push((key, value)),
            }
        }
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9");
        }
    }

    /// Counter `name` (samples whose labels contain `labels`) over all of
    /// this process's lives.
    pub async fn metric_total(&self, name: &str, labels: &str) -> f64 {
        let key = format!("{name}{{{labels}");
        let banked: f64 = self
            .banked
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .sum();
        banked + self.metric_now(name, labels).await
    }

    /// Counter `name` of the running process (0 if it is down).
    async fn metric_now(&self, name: &str, labels: &str) -> f64 {
        let http = crate::http_client(Duration::from_secs(2));
        let Ok(response) = http.get(&self.metrics_url).send().await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter(|line| labels.is_empty() || line.contains(labels))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A subgraph replica.
pub struct Replica {
    pub service: &'static str,
    pub index: usize,
    pub process: Process,
}

/// Everything the run starts, stopped (and its data removed) on drop.
pub struct Topology {
    pub routers: Vec<Process>,
    pub router_urls: Vec<String>,
    pub replicas: Vec<Replica>,
    /// In front of product replica 2.
    pub stall_proxy: FaultProxy,
    pub postgres: Postgres,
    pub mariadb: MariaDb,
    pub broker: Broker,
    pub database_urls: DatabaseUrls,
    _redis: RedisKeys,
}

/// Where each subgraph's store is.
#[derive(Debug, Clone)]
pub struct DatabaseUrls {
    pub product: String,
    pub basket: String,
    pub payment: String,
    pub notification: String,
}

impl Topology {
    /// Starts servers, migrations, replicas and routers, in that order.
    pub async fn start(dir: &Path, run_id: &str) -> Self {
        let (postgres, mariadb, broker) =
            tokio::join!(Postgres::start(dir), MariaDb::start(dir), Broker::start());
        for name in ["product", "basket", "notification"] {
            postgres.create_database(name).await;
        }
        mariadb.create_database("payment").await;
        let database_urls = DatabaseUrls {
            product: postgres.url("product"),
            basket: postgres.url("basket"),
            payment: mariadb.url("payment"),
            notification: postgres.url("notification"),
        };
        for service in SERVICES {
            migrate(service, database_urls.of(service)).await;
        }

        let ports: Vec<(usize, &str, u16)> = SERVICES
            .iter()
            .flat_map(|service| (0..REPLICAS).map(move |i| (i, *service, free_port())))
            .collect();
        let port_of = |service: &str, index: usize| {
            ports
                .iter()
                .find(|(i, s, _)| *s == service && *i == index)
                .map(|(_, _, port)| *port)
                .expect("a port per replica")
        };
        // Product replica 2 is known by its proxy's address.
        let stall_proxy = FaultProxy::start(&format!(
            "http://127.0.0.1:{}/graphql",
            port_of("product", 1)
        ))
        .await;
        let public_url = |service: &str, index: usize| {
            if service == "product" && index == 1 {
                stall_proxy.graphql_url()
            } else {
                format!("http://127.0.0.1:{}/graphql", port_of(service, index))
            }
        };

        let redis = RedisKeys::new(run_id);
        let topic_prefix = format!("chaos-{run_id}-");
        let mut replicas = Vec::new();
        for &(index, service, port) in &ports {
            let prefix = service.to_ascii_uppercase();
            let metrics_port = free_port();
            let mut env = common_env();
            env.extend([
                (format!("{prefix}_PORT"), port.to_string()),
                (format!("{prefix}_METRICS_PORT"), metrics_port.to_string()),
                (
                    format!("{prefix}_DATABASE_URL"),
                    database_urls.of(service).to_owned(),
                ),
                ("SEED_DEMO_DATA".into(), "false".into()),
                ("DATABASE_MAX_CONNECTIONS".into(), "8".into()),
                ("DATABASE_ACQUIRE_TIMEOUT".into(), "3s".into()),
                ("KAFKA_BROKERS".into(), broker.address()),
                ("KAFKA_TOPIC_PREFIX".into(), topic_prefix.clone()),
                ("KAFKA_SESSION_TIMEOUT".into(), "6s".into()),
                (
                    "KAFKA_CLIENT_PROPERTIES".into(),
                    KAFKA_CLIENT_PROPERTIES.into(),
                ),
                ("PRODUCT_SERVICE_URL".into(), public_url("product", index)),
                ("BASKET_SERVICE_URL".into(), public_url("basket", index)),
            ]);
            env.extend(
                SAGA_TIMINGS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            let name = format!("{service}-{}", index + 1);
            let mut process = Process {
                log: dir.join(format!("{name}.log")),
                name,
                args: vec!["serve".into(), service.into()],
                env,
                ready_url: format!("http://127.0.0.1:{port}/health/ready"),
                metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
                child: None,
                banked: Vec::new(),
            };
            process.start().await;
            replicas.push(Replica {
                service,
                index,
                process,
            });
        }

        let mut routers = Vec::new();
        let mut router_urls = Vec::new();
        for index in 0..REPLICAS {
            let (port, admin_port) = (free_port(), free_port());
            let mut env = common_env();
            env.extend([
                ("PORT".into(), port.to_string()),
                ("ADMIN_HOST".into(), "127.0.0.1".into()),
                ("ADMIN_PORT".into(), admin_port.to_string()),
                (
                    "SUPERGRAPH_PATH".into(),
                    format!("{ROOT}/schema/supergraph.graphql"),
                ),
                ("SUBGRAPH_TIMEOUT".into(), "5s".into()),
                ("HEALTH_CHECK_INTERVAL".into(), "500ms".into()),
                ("REDIS_URL".into(), redis.url.clone()),
                ("RATE_LIMIT_ENABLED".into(), "true".into()),
                // Many shoppers behind one loopback address: a budget
                // the storm never exhausts, so Redis is consulted on
                // every request without refusing any.
                ("RATE_LIMIT_REQUESTS".into(), "10000000".into()),
                ("RATE_LIMIT_BURST".into(), "1000000".into()),
                (
                    "RATE_LIMIT_KEY_PREFIX".into(),
                    format!("{}:ratelimit", redis.prefix),
                ),
                ("APQ_KEY_PREFIX".into(), format!("{}:apq", redis.prefix)),
            ]);
            for service in SERVICES {
                let urls: Vec<String> = (0..REPLICAS).map(|i| public_url(service, i)).collect();
                env.push((
                    format!("{}_SERVICE_URLS", service.to_ascii_uppercase()),
                    urls.join(","),
                ));
            }
            let name = format!("router-{}", index + 1);
            let mut process = Process {
                log: dir.join(format!("{name}.log")),
                name,
                args: vec!["serve".into(), "router".into()],
                env,
                ready_url: format!("http://127.0.0.1:{port}/health/ready"),
                metrics_url: format!("http://127.0.0.1:{admin_port}/metrics"),
                child: None,
                banked: Vec::new(),
            };
            process.start().await;
            routers.push(process);
            router_urls.push(format!("http://127.0.0.1:{port}/graphql"));
        }

        Self {
            routers,
            router_urls,
            replicas,
            stall_proxy,
            postgres,
            mariadb,
            broker,
            database_urls,
            _redis: redis,
        }
    }

    /// Replica `index` of `service`.
    pub fn replica_mut(&mut self, service: &str, index: usize) -> &mut Replica {
        self.replicas
            .iter_mut()
            .find(|r| r.service == service && r.index == index)
            .expect("a replica of a known service")
    }

    /// The sum of counter `name` (labels containing `labels`) over every
    /// replica of `service`, over all their lives.
    pub async fn service_metric(&self, service: &str, name: &str, labels: &str) -> f64 {
        let mut total = 0.0;
        for replica in self.replicas.iter().filter(|r| r.service == service) {
            total += replica.process.metric_total(name, labels).await;
        }
        total
    }
}

impl DatabaseUrls {
    pub fn of(&self, service: &str) -> &str {
        match service {
            "product" => &self.product,
            "basket" => &self.basket,
            "payment" => &self.payment,
            _ => &self.notification,
        }
    }
}

/// What every process of the run shares: loopback, the JWT secret, the
/// hop keys, quiet JSON logs (`TEST_LOG` for info).
fn common_env() -> Vec<(String, String)> {
    let level = if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "warn"
    };
    let mut env: Vec<(String, String)> = vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        ("LOG_LEVEL".into(), level.into()),
        ("SHUTDOWN_TIMEOUT".into(), "2s".into()),
    ];
    env.extend(
        HopKeyPair::of_this_process()
            .env_vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env
}
