//! End-to-end fault tests of the router's traffic management: real
//! processes (`shopgraph serve router`, `shopgraph serve product` replicas,
//! `shopgraph dev`, a private `redis-server`), the machine's real Redis and
//! PostgreSQL, and [`FaultProxy`] links that slow down, fail, lose answers
//! or refuse connections on command.
//!
//! Every test is hermetic: fresh databases, free ports, Redis keys under a
//! prefix of its own (deleted at the end), and routers as separate
//! processes, so one test's metrics and limits never leak into another's.
//! Timings are asserted as bounds only.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shopgraph_core::identity::{ADMIN_ROLE, TokenIssuer};
use tokio::process::{Child, Command};

use crate::fault_proxy::{FaultProxy, Mode, OperationKind};
use crate::helpers::{
    As, Backend, GqlResponse, TEST_JWT_SECRET, TestApp, TestDb, fresh_db, unreachable_url,
};
use crate::shop::{Shop, supergraph_path};

const SHOPGRAPH: &str = env!("CARGO_BIN_EXE_shopgraph");

/// A product page, its size varied so no cache can answer for the subgraph.
const PRODUCTS: &str =
    "query($n: Int!) { products(first: $n) { edges { node { id name price { amount } } } } }";

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A fresh log file under the temp dir for a child process.
fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "shopgraph-traffic-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Where a child process writes: its stdout and its stderr (the services
/// log to stdout) both go to the file at `path`.
fn log_to(command: &mut Command, path: &PathBuf) {
    match std::fs::File::create(path) {
        Ok(file) => {
            let stderr = file.try_clone().map_or_else(|_| Stdio::null(), Stdio::from);
            command.stdout(Stdio::from(file)).stderr(stderr);
        }
        Err(_) => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
}

/// The last lines of a log, for failure messages.
fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A JWT for `user` signed with the test secret (the admin role if asked).
fn token(user: &str, admin: bool) -> String {
    let authority = crate::helpers::test_authority();
    let roles: &[&str] = if admin { &[ADMIN_ROLE] } else { &[] };
    authority
        .issue(user, roles, Duration::from_secs(3600))
        .expect("a test token")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// Applies `service`'s migrations to the store at `database_url` with
/// `shopgraph migrate`, so replicas that start together find it ready.
async fn migrate(service: &str, database_url: &str) {
    let output = Command::new(SHOPGRAPH)
        .args(["migrate", service])
        .env(
            format!("{}_DATABASE_URL", service.to_ascii_uppercase()),
            database_url,
        )
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("shopgraph migrate runs");
    assert!(
        output.status.success(),
        "shopgraph migrate {service}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One subgraph replica: `shopgraph serve <service>` on a free port,
/// killed on drop.
struct SubgraphProcess {
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl SubgraphProcess {
    /// Starts `service` on the store at `database_url` with `extra`
    /// variables and waits until `/health/ready` answers 200.
    async fn start(service: &str, database_url: &str, extra: &[(&str, &str)]) -> Self {
        let prefix = service.to_ascii_uppercase();
        let port = free_port();
        let log = log_path(&format!("{service}-{port}"));
        let mut command = Command::new(SHOPGRAPH);
        log_to(&mut command, &log);
        let child = command
            .args(["serve", service])
            .env("HOST", "127.0.0.1")
            .env(format!("{prefix}_PORT"), port.to_string())
            .env(format!("{prefix}_DATABASE_URL"), database_url)
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("ACCEPT_DIRECT_TOKENS", "true")
            .env("SEED_DEMO_DATA", "false")
            .env("SHUTDOWN_TIMEOUT", "5s")
            .env("LOG_LEVEL", "warn")
            .envs(extra.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("shopgraph serve starts");
        let mut replica = Self {
            port,
            log,
            child: Some(child),
        };
        replica.wait_ready().await;
        replica
    }

    async fn wait_ready(&mut self) {
        let ready = format!("http://127.0.0.1:{}/health/ready", self.port);
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http
                .get(&ready)
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
                panic!("the replica exited ({status}):\n{}", tail(&self.log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the replica was not ready within 60 s:\n{}",
            tail(&self.log)
        );
    }

    fn graphql_url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    /// SIGKILL: the process is gone at once, mid-request or not.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the replica");
        }
    }
}

/// Two product replicas on one fresh PostgreSQL store, the first seeding
/// the demo catalogue.
async fn product_replicas() -> (TestDb, SubgraphProcess, SubgraphProcess) {
    let db = fresh_db(Backend::Postgres).await;
    migrate("product", &db.url).await;
    let (first, second) = tokio::join!(
        SubgraphProcess::start("product", &db.url, &[("SEED_DEMO_DATA", "true")]),
        SubgraphProcess::start("product", &db.url, &[]),
    );
    (db, first, second)
}

/// `shopgraph serve router` on free ports (GraphQL and admin), killed on
/// drop. Subgraphs not given point to ports nobody listens on.
struct RouterProcess {
    port: u16,
    admin_port: u16,
    log: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

impl RouterProcess {
    /// Starts the router with `vars` over the test defaults and waits until
    /// it serves `/health` (not `/health/ready`: a test may start it with a
    /// subgraph down on purpose).
    async fn start(vars: &[(&str, String)]) -> Self {
        let port = free_port();
        let admin_port = free_port();
        let log = log_path(&format!("router-{port}"));
        println!(
            "router on {port} (admin {admin_port}), log {}",
            log.display()
        );
        let mut command = Command::new(SHOPGRAPH);
        command
            .args(["serve", "router"])
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("ADMIN_HOST", "127.0.0.1")
            .env("ADMIN_PORT", admin_port.to_string())
            .env("SUPERGRAPH_PATH", supergraph_path())
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("LOG_LEVEL", "warn")
            .env("SUBGRAPH_TIMEOUT", "5s")
            .env("HEALTH_CHECK_INTERVAL", "200ms");
        for service in ["PRODUCT", "BASKET", "PAYMENT", "NOTIFICATION"] {
            command.env(format!("{service}_SERVICE_URL"), unreachable_url());
        }
        log_to(&mut command, &log);
        let child = command
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true)
            .spawn()
            .expect("shopgraph serve router starts");
        let mut router = Self {
            port,
            admin_port,
            log,
            child: Some(child),
            http: client(),
        };
        let health = router.url("/health");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if router
                .http
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return router;
            }
            if let Some(status) = router
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the router exited ({status}):\n{}", tail(&router.log));
            }
            assert!(
                Instant::now() < deadline,
                "the router did not serve /health within 30 s:\n{}",
                tail(&router.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn graphql_url(&self) -> String {
        self.url("/graphql")
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Whether the process is still running.
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// POSTs `body` as JSON with `token`; the raw response.
    async fn send(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.graphql_url()).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|err| panic!("the router answers: {err:?}\n{}", tail(&self.log)))
    }

    /// POSTs a GraphQL request with `token`.
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        let response = self
            .send(token, &json!({ "query": query, "variables": variables }))
            .await;
        into_gql(response).await
    }

    /// GETs an admin path with `token`: the status and the JSON body (null
    /// when the body is not JSON).
    async fn admin(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(self.admin_url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("the admin listener answers {path}: {err}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `/admin/loadbalancer/{service}` as an admin.
    async fn replicas(&self, service: &str) -> Vec<Value> {
        let (status, body) = self
            .admin(
                Some(&token("admin-1", true)),
                &format!("/admin/loadbalancer/{service}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        body["replicas"].as_array().cloned().unwrap_or_default()
    }

    /// The replica of `service` whose URL is `url`.
    async fn replica(&self, service: &str, url: &str) -> Value {
        let replicas = self.replicas(service).await;
        replicas
            .iter()
            .find(|r| r["url"] == url)
            .cloned()
            .unwrap_or_else(|| panic!("{url} is not listed among {replicas:#?}"))
    }

    /// The breaker state of `service` (`closed`, `open`, `half_open`).
    async fn breaker_state(&self, service: &str) -> String {
        let (status, body) = self
            .admin(
                Some(&token("admin-1", true)),
                &format!("/admin/circuitbreaker/{service}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        body["state"].as_str().unwrap_or_default().to_owned()
    }

    /// The sum of every sample of metric `name` on `/metrics`.
    async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("metrics text");
        metric_sum(&text, name, labels)
    }
}

/// The sum of the samples of `name` whose labels contain `labels` (all
/// samples when `labels` is empty) in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
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

async fn into_gql(response: reqwest::Response) -> GqlResponse {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    GqlResponse { status, body }
}

/// A private `redis-server` (no persistence) on a free port, killed on
/// drop: the test may kill it without touching the machine's Redis.
struct RedisProcess {
    port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let redis = Self {
            port,
            child: Some(child),
        };
        assert!(
            eventually(Duration::from_secs(10), || async {
                redis_cli(port, &["ping"]).trim() == "PONG"
            })
            .await,
            "redis-server answers PING on {port}"
        );
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

/// The machine's Redis (the one the project's services share).
const REDIS_PORT: u16 = 6379;

/// Runs `redis-cli -p port args...` and returns its output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The keys under `prefix` on the Redis at `port`.
fn redis_keys(port: u16, prefix: &str) -> Vec<String> {
    redis_cli(port, &["--scan", "--pattern", &format!("{prefix}*")])
        .lines()
        .map(str::to_owned)
        .filter(|k| !k.is_empty())
        .collect()
}

/// Deletes a test's Redis keys when it ends, even on failure.
struct RedisKeys {
    port: u16,
    prefix: String,
}

impl RedisKeys {
    /// A unique prefix on the machine's Redis.
    fn unique(what: &str) -> Self {
        Self {
            port: REDIS_PORT,
            prefix: format!("shopgraph-test:{what}:{}:", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        for key in redis_keys(self.port, &self.prefix) {
            redis_cli(self.port, &["del", &key]);
        }
    }
}

/// The lowercase hex SHA-256 of `text` (through coreutils' `sha256sum`,
/// independent of the router's own hashing).
fn sha256_hex(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// What one request of a load run got.
#[derive(Debug)]
struct Outcome {
    status: Option<StatusCode>,
    body: Value,
}

impl Outcome {
    /// A product page without errors.
    fn is_complete_page(&self) -> bool {
        self.status == Some(StatusCode::OK)
            && self.body.get("errors").is_none()
            && self.body["data"]["products"]["edges"]
                .as_array()
                .is_some_and(|edges| !edges.is_empty())
    }
}

/// `workers` clients posting product pages to `url` back to back for
/// `duration`.
async fn product_load(url: String, workers: usize, duration: Duration) -> Vec<Outcome> {
    let http = client();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let body = json!({ "query": PRODUCTS, "variables": { "n": 1 + i % 5 } });
                    i += 1;
                    let outcome = match http.post(&url).json(&body).send().await {
                        Ok(response) => {
                            let status = response.status();
                            Outcome {
                                status: Some(status),
                                body: response.json().await.unwrap_or(Value::Null),
                            }
                        }
                        Err(err) => Outcome {
                            status: None,
                            body: json!(err.to_string()),
                        },
                    };
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("a load worker"));
    }
    outcomes
}

/// The router variables that turn off request sharing, so every client
/// request really reaches a subgraph.
fn no_dedupe() -> [(&'static str, String); 2] {
    [
        ("QUERY_DEDUPE", "false".into()),
        ("SUBGRAPH_DEDUPE", "false".into()),
    ]
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Two product replicas on one store; one is SIGKILLed in the middle of a
/// 3 s load: every response still carries data and no error (in-flight
/// queries are retried, new ones fail over, the dead replica is marked
/// down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_no_request() {
    let (_db, mut first, second) = product_replicas().await;
    let mut vars = vec![
        (
            "PRODUCT_SERVICE_URLS",
            format!("{},{}", first.graphql_url(), second.graphql_url()),
        ),
        ("LOAD_BALANCER_STRATEGY", "round_robin".into()),
    ];
    vars.extend(no_dedupe());
    let router = RouterProcess::start(&vars).await;

    let load = tokio::spawn(product_load(
        router.graphql_url(),
        6,
        Duration::from_secs(3),
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_kill = router.replica("product", &first.graphql_url()).await;
    first.kill().await;
    let outcomes = load.await.expect("the load run");

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.is_complete_page()).collect();
    println!(
        "{} requests, {} without complete data",
        outcomes.len(),
        failed.len()
    );
    assert!(
        outcomes.len() >= 30,
        "a real load: {} requests",
        outcomes.len()
    );
    assert!(
        failed.is_empty(),
        "every request succeeds; failures: {:#?}\nrouter log:\n{}",
        &failed[..failed.len().min(5)],
        tail(&router.log)
    );
    assert!(
        before_kill["requests"].as_u64().unwrap_or(0) > 0,
        "the killed replica took traffic before the kill: {before_kill:#}"
    );
    let dead = first.graphql_url();
    assert!(
        eventually(Duration::from_secs(5), || async {
            router.replica("product", &dead).await["healthy"] == false
        })
        .await,
        "the killed replica is marked unhealthy: {:#?}",
        router.replicas("product").await
    );
    let alive = router.replica("product", &second.graphql_url()).await;
    assert_eq!(alive["healthy"], true, "{alive:#}");
}

/// `least_connections` with one replica 150 ms slower than the other: the
/// fast one takes most of the traffic (counted by proxies in front of both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_shifts_load_to_the_fast_replica() {
    let (_db, first, second) = product_replicas().await;
    let fast = FaultProxy::start(&first.graphql_url()).await;
    let slow = FaultProxy::start(&second.graphql_url()).await;
    slow.set_mode(Mode::Forward {
        delay: Duration::from_millis(150),
    })
    .await;
    let mut vars = vec![
        (
            "PRODUCT_SERVICE_URLS",
            format!("{},{}", fast.graphql_url(), slow.graphql_url()),
        ),
        ("LOAD_BALANCER_STRATEGY", "least_connections".into()),
    ];
    vars.extend(no_dedupe());
    let router = RouterProcess::start(&vars).await;
    let (status, lb) = router
        .admin(Some(&token("admin-1", true)), "/admin/loadbalancer/product")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lb["strategy"], "least_connections", "{lb:#}");

    let outcomes = product_load(router.graphql_url(), 8, Duration::from_secs(3)).await;
    assert!(
        outcomes.iter().all(Outcome::is_complete_page),
        "every request succeeds"
    );
    let (to_fast, to_slow) = (fast.graphql_received(), slow.graphql_received());
    let total = to_fast + to_slow;
    let share = to_fast as f64 / total as f64;
    println!(
        "least_connections split: fast {to_fast}, slow {to_slow} ({:.1} % fast) over {} client requests",
        share * 100.0,
        outcomes.len()
    );
    assert!(total >= 50, "a real load: {total} subgraph requests");
    assert!(
        share >= 0.70,
        "the fast replica takes at least 70 %: fast {to_fast}, slow {to_slow}"
    );
}

const PRODUCT_AND_NOTIFICATIONS: &str =
    "query($id: ID!) { product(id: $id) { id name } notificationStats { total } }";

/// The breaker of a failing subgraph opens after the configured failures,
/// answers fast while open without sending anything (the other subgraph's
/// data is still served), lets one probe through after its timeout, and
/// closes once the subgraph recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_fails_fast_and_closes_after_recovery() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let product_id = product
        .create_product("Breaker lamp", "19.90", 10, "lamps")
        .await;
    let notification = TestApp::spawn_notification(Backend::Sqlite, &[]).await;
    let proxy = FaultProxy::start(&product.graphql_url()).await;
    let timeout = Duration::from_secs(3);
    let mut vars = vec![
        ("PRODUCT_SERVICE_URL", proxy.graphql_url()),
        ("NOTIFICATION_SERVICE_URL", notification.graphql_url()),
        ("CIRCUIT_BREAKER_ENABLED", "true".into()),
        ("CIRCUIT_BREAKER_INTERVAL", "5s".into()),
        ("CIRCUIT_BREAKER_TIMEOUT", "3s".into()),
        ("CIRCUIT_BREAKER_MIN_REQUESTS", "4".into()),
        ("CIRCUIT_BREAKER_MAX_REQUESTS", "1".into()),
        ("CIRCUIT_BREAKER_FAILURE_RATIO", "0.5".into()),
        // One client request = one subgraph request, and it is the
        // breaker, not outlier ejection, that stops the traffic.
        ("RETRY_ENABLED", "false".into()),
        ("OUTLIER_CONSECUTIVE_FAILURES", "1000".into()),
    ];
    vars.extend(no_dedupe());
    let router = RouterProcess::start(&vars).await;
    let user = token("user-1", false);
    let ask = || {
        router.gql(
            Some(&user),
            PRODUCT_AND_NOTIFICATIONS,
            json!({ "id": product_id }),
        )
    };

    let healthy = ask().await;
    assert_eq!(healthy.data()["product"]["name"], "Breaker lamp");
    assert_eq!(router.breaker_state("product").await, "closed");

    // Failures: the product part fails, the notification part is served.
    proxy.set_mode(Mode::Fail500).await;
    let mut opened = false;
    for _ in 0..30 {
        let response = ask().await;
        assert_eq!(
            response.body["data"]["product"],
            Value::Null,
            "{:#}",
            response.body
        );
        assert!(
            response.body["data"]["notificationStats"]["total"].is_number(),
            "the other subgraph's data stays: {:#}",
            response.body
        );
        assert!(!response.codes().is_empty(), "{:#}", response.body);
        if router.breaker_state("product").await == "open" {
            opened = true;
            break;
        }
    }
    // The window holds the healthy request and the failures.
    let in_window = proxy.graphql_received();
    assert!(opened, "the breaker opens ({in_window} requests sent)");
    let opened_at = Instant::now();
    assert!(
        in_window >= 4,
        "the breaker waits for CIRCUIT_BREAKER_MIN_REQUESTS requests in its window: opened after {in_window}"
    );
    assert_eq!(
        router
            .metric("router_circuit_breaker_state", "subgraph=\"product\"")
            .await,
        2.0,
        "the breaker gauge says open"
    );

    // Open: fast answers, partial data, nothing sent to the subgraph.
    let sent_before = proxy.graphql_received();
    for _ in 0..5 {
        let started = Instant::now();
        let response = ask().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "an open breaker answers fast: {:?}",
            started.elapsed()
        );
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body["data"]["product"], Value::Null);
        assert!(response.body["data"]["notificationStats"]["total"].is_number());
        assert_eq!(
            response.code(),
            "SUBGRAPH_UNAVAILABLE",
            "{:#}",
            response.body
        );
        assert_eq!(
            response.body["errors"][0]["extensions"]["serviceName"],
            "product"
        );
    }
    assert!(
        opened_at.elapsed() < timeout - Duration::from_millis(500),
        "the open-state checks ran well within CIRCUIT_BREAKER_TIMEOUT ({:?})",
        opened_at.elapsed()
    );
    assert_eq!(
        proxy.graphql_received(),
        sent_before,
        "nothing reaches the subgraph while the breaker is open"
    );

    // After the timeout one probe (MAX_REQUESTS = 1) goes through; it
    // fails, so the breaker opens again.
    tokio::time::sleep(timeout + Duration::from_millis(300)).await;
    // The breaker opens again no earlier than the probe is sent.
    let probe_sent_at = Instant::now();
    for _ in 0..3 {
        ask().await;
    }
    assert_eq!(
        proxy.graphql_received(),
        sent_before + 1,
        "half-open lets exactly CIRCUIT_BREAKER_MAX_REQUESTS probe through"
    );
    assert_eq!(router.breaker_state("product").await, "open");

    // Recovery: the subgraph is healthy at once, but the breaker answers
    // for it until its timeout has passed; then a probe passes and the
    // breaker closes.
    proxy.set_mode(Mode::PASS).await;
    let mut recovered = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let response = ask().await;
        if response.body.get("errors").is_none() {
            recovered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("complete data again after the subgraph recovers");
    assert_eq!(recovered.data()["product"]["name"], "Breaker lamp");
    assert!(
        probe_sent_at.elapsed() >= timeout,
        "the breaker stayed open for CIRCUIT_BREAKER_TIMEOUT after the failed probe ({:?})",
        probe_sent_at.elapsed()
    );
    assert_eq!(router.breaker_state("product").await, "closed");
    assert_eq!(
        router
            .metric("router_circuit_breaker_state", "subgraph=\"product\"")
            .await,
        0.0
    );
}

const ADD_ITEM: &str =
    "mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }";
const BASKET_LINES: &str = "{ myBasket { itemCount items { quantity } } }";

/// A mutation whose answer is lost after the subgraph got it is never
/// resent (the subgraph applied it exactly once); a query is retried,
/// within `RETRY_ATTEMPTS` and within the retry budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_never_resend_a_mutation_and_stay_within_budget() {
    const ATTEMPTS: usize = 2;
    const BUDGET_RATIO: f64 = 0.2;
    let product = TestApp::spawn(Backend::Sqlite).await;
    let product_id = product
        .create_product("Retry mug", "9.50", 100, "mugs")
        .await;
    let basket = TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), &[]).await;
    let proxy = FaultProxy::start(&basket.graphql_url()).await;
    let mut vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("BASKET_SERVICE_URL", proxy.graphql_url()),
        ("RETRY_ENABLED", "true".into()),
        ("RETRY_ATTEMPTS", ATTEMPTS.to_string()),
        ("RETRY_BACKOFF_MIN", "5ms".into()),
        ("RETRY_BACKOFF_MAX", "20ms".into()),
        ("RETRY_BUDGET_RATIO", BUDGET_RATIO.to_string()),
        // No reserve of retries per second: the ratio alone is measured.
        ("RETRY_BUDGET_MIN_PER_SECOND", "0".into()),
        // Keep the single replica in play however often it fails.
        ("CIRCUIT_BREAKER_ENABLED", "false".into()),
        ("OUTLIER_CONSECUTIVE_FAILURES", "1000".into()),
    ];
    vars.extend(no_dedupe());
    let router = RouterProcess::start(&vars).await;
    let user = token("user-1", false);
    let lines = || async {
        basket.gql(As::User, BASKET_LINES, json!({})).await.data()["myBasket"]["items"].clone()
    };

    // A mutation sent and then lost (connection dropped, then a 502): the
    // client gets an error, the subgraph applied it exactly once each time.
    for (mode, expected_quantity) in [
        (Mode::DropAfterForward, 1),
        (Mode::BadGatewayAfterForward, 2),
    ] {
        proxy.set_mode(mode).await;
        let mutations_before = proxy.received_of(OperationKind::Mutation);
        let response = router
            .gql(Some(&user), ADD_ITEM, json!({ "id": product_id }))
            .await;
        assert!(
            !response.codes().is_empty(),
            "a lost answer is an error for the client ({mode:?}): {:#}",
            response.body
        );
        assert_eq!(
            proxy.received_of(OperationKind::Mutation) - mutations_before,
            1,
            "the mutation reached the subgraph exactly once ({mode:?})"
        );
        assert_eq!(
            lines().await,
            json!([{ "quantity": expected_quantity }]),
            "the subgraph applied the mutation once ({mode:?})"
        );
    }

    // Healthy traffic first (it funds the retry budget), then one query
    // whose answers are all lost: it is attempted more than once, at most
    // 1 + RETRY_ATTEMPTS times.
    proxy.set_mode(Mode::PASS).await;
    for _ in 0..20 {
        router
            .gql(Some(&user), BASKET_LINES, json!({}))
            .await
            .data();
    }
    proxy.set_mode(Mode::DropAfterForward).await;
    let queries_before = proxy.received_of(OperationKind::Query);
    let failed = router.gql(Some(&user), BASKET_LINES, json!({})).await;
    assert!(!failed.codes().is_empty(), "{:#}", failed.body);
    let attempts = proxy.received_of(OperationKind::Query) - queries_before;
    println!("one failing query: {attempts} attempts");
    assert!(
        (2..=1 + ATTEMPTS).contains(&attempts),
        "a query is retried, at most RETRY_ATTEMPTS times: {attempts} attempts"
    );

    // A run of failing queries: retries stay within the budget, far below
    // what RETRY_ATTEMPTS alone would allow.
    let queries = 60;
    let queries_before = proxy.received_of(OperationKind::Query);
    for _ in 0..queries {
        router.gql(Some(&user), BASKET_LINES, json!({})).await;
    }
    let retries = proxy.received_of(OperationKind::Query) - queries_before - queries;
    // Every basket request so far (2 mutations, 20 + 1 + `queries`
    // queries) funds the budget; retries are not requests of their own.
    let requests_so_far = 2 + 20 + 1 + queries;
    let budget = (BUDGET_RATIO * requests_so_far as f64).ceil() as usize;
    println!(
        "{queries} failing queries: {retries} retries (budget bound {budget}, uncapped {})",
        queries * ATTEMPTS
    );
    assert!(
        retries <= budget,
        "retries stay within RETRY_BUDGET_RATIO of recent requests: {retries} > {budget}"
    );
    assert_eq!(
        proxy.received_of(OperationKind::Mutation),
        2,
        "no mutation was ever resent"
    );
    assert!(
        router
            .metric("router_subgraph_retries_total", "subgraph=\"basket\"")
            .await
            >= 1.0,
        "retries are counted"
    );
}

/// Two router processes share one budget through the real Redis: one
/// client alternating between them gets 100 ± 5 requests admitted out of
/// 300; refusals are 429 with `Retry-After` and `RATE_LIMITED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_share_one_rate_limit_budget_through_redis() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let keys = RedisKeys::unique("ratelimit");
    let vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{REDIS_PORT}")),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_REQUESTS", "100".into()),
        ("RATE_LIMIT_BURST", "100".into()),
        ("RATE_LIMIT_WINDOW", "1h".into()),
        ("RATE_LIMIT_KEY_PREFIX", keys.prefix.clone()),
    ];
    let (first, second) = tokio::join!(RouterProcess::start(&vars), RouterProcess::start(&vars));
    let user = token("user-1", false);
    let body = json!({ "query": "{ categories }" });

    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..300 {
        let router = if i % 2 == 0 { &first } else { &second };
        let response = router.send(Some(&user), &body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK {
            assert!(answer["data"]["categories"].is_array(), "{answer:#}");
            admitted += 1;
            continue;
        }
        refused += 1;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer:#}");
        let retry_after: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Retry-After in seconds: {headers:?}"));
        assert!(retry_after >= 1, "{retry_after}");
        assert_eq!(
            headers.get("ratelimit-limit").and_then(|v| v.to_str().ok()),
            Some("100"),
            "{headers:?}"
        );
        assert_eq!(
            headers
                .get("ratelimit-remaining")
                .and_then(|v| v.to_str().ok()),
            Some("0"),
            "{headers:?}"
        );
        assert!(headers.contains_key("ratelimit-reset"), "{headers:?}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{answer:#}"
        );
    }
    println!("shared budget: {admitted} admitted, {refused} refused of 300");
    assert!(
        (95..=105).contains(&admitted),
        "the two routers admit 100 ± 5 together: {admitted}"
    );
    assert!(
        !redis_keys(REDIS_PORT, &keys.prefix).is_empty(),
        "the budget lives in Redis under RATE_LIMIT_KEY_PREFIX"
    );
    let counted = first.metric("router_rate_limited_total", "").await
        + second.metric("router_rate_limited_total", "").await;
    assert_eq!(
        counted, refused as f64,
        "router_rate_limited_total counts refusals"
    );

    // The budget is per client: another user is still served.
    let other = first
        .gql(Some(&token("user-2", false)), "{ categories }", json!({}))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.body);
}

/// With its Redis killed, a router falls back to its local limiter: every
/// request is still answered, and still limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_falls_back_to_local_when_redis_dies() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let mut redis = RedisProcess::start().await;
    let prefix = format!("shopgraph-test:fallback:{}:", uuid::Uuid::new_v4().simple());
    let mut router = RouterProcess::start(&[
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", redis.url()),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_REQUESTS", "20".into()),
        ("RATE_LIMIT_BURST", "20".into()),
        ("RATE_LIMIT_WINDOW", "1h".into()),
        ("RATE_LIMIT_KEY_PREFIX", prefix.clone()),
    ])
    .await;
    let body = json!({ "query": "{ categories }" });
    let statuses = |who: String, n: usize| {
        let router = &router;
        let body = &body;
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let status = router.send(Some(&who), body).await.status();
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "answered without hanging ({:?})",
                    started.elapsed()
                );
                statuses.push(status);
            }
            statuses
        }
    };
    let count = |statuses: &[StatusCode], status: StatusCode| {
        statuses.iter().filter(|s| **s == status).count()
    };

    // With Redis up: limited through Redis.
    let exhausted = statuses(token("user-2", false), 30).await;
    assert_eq!(count(&exhausted, StatusCode::OK), 20, "{exhausted:?}");
    assert_eq!(count(&exhausted, StatusCode::TOO_MANY_REQUESTS), 10);
    assert!(
        !redis_keys(redis.port, &prefix).is_empty(),
        "the limiter keeps its state in Redis"
    );
    let early = statuses(token("user-1", false), 5).await;
    assert_eq!(count(&early, StatusCode::OK), 5, "{early:?}");

    // Redis dies: answered by the local limiter, still limited.
    let log_before = std::fs::read_to_string(&router.log)
        .unwrap_or_default()
        .len();
    redis.kill().await;
    let after = statuses(token("user-1", false), 60).await;
    println!(
        "after the Redis kill: {} admitted, {} refused of 60",
        count(&after, StatusCode::OK),
        count(&after, StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(
        count(&after, StatusCode::OK) + count(&after, StatusCode::TOO_MANY_REQUESTS),
        60,
        "every request is admitted or refused: {after:?}"
    );
    assert!(
        count(&after, StatusCode::OK) > 0,
        "it does not fail closed: {after:?}"
    );
    assert!(
        count(&after, StatusCode::TOO_MANY_REQUESTS) > 0,
        "it does not fail open: {after:?}"
    );
    assert!(router.running(), "the router stays up");
    let health = router
        .http
        .get(router.url("/health"))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), StatusCode::OK);
    let log = std::fs::read_to_string(&router.log).unwrap_or_default();
    assert!(
        log[log_before..].to_ascii_lowercase().contains("redis"),
        "the fallback is logged:\n{}",
        &log[log_before..]
    );
}

/// Each request limit rejects its bomb with 400 (413 for the body) and the
/// limit's code, before anything reaches a subgraph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_rejects_its_bomb_before_any_subgraph() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let proxy = FaultProxy::start(&product.graphql_url()).await;
    let router = RouterProcess::start(&[
        ("PRODUCT_SERVICE_URL", proxy.graphql_url()),
        ("BASKET_SERVICE_URL", proxy.graphql_url()),
        ("PAYMENT_SERVICE_URL", proxy.graphql_url()),
        ("NOTIFICATION_SERVICE_URL", proxy.graphql_url()),
        ("GRAPHQL_MAX_DEPTH", "5".into()),
        ("GRAPHQL_MAX_ALIASES", "5".into()),
        ("GRAPHQL_MAX_ROOT_FIELDS", "3".into()),
        ("GRAPHQL_MAX_COMPLEXITY", "100".into()),
        ("GRAPHQL_MAX_TOKENS", "200".into()),
        ("HTTP_MAX_BODY_BYTES", "4096".into()),
    ])
    .await;
    let user = token("user-1", false);

    let aliases: String = (0..10).map(|i| format!("a{i}: name ")).collect();
    let variables: String = (0..60).map(|i| format!("$v{i}: Int ")).collect();
    let bombs = [
        (
            "depth",
            "{ me { payments(first: 1) { edges { node { items { product { price { amount } } } } } } } }"
                .to_owned(),
            "MAX_DEPTH_LIMIT",
        ),
        (
            "aliases",
            format!("{{ products(first: 1) {{ edges {{ node {{ {aliases} }} }} }} }}"),
            "MAX_ALIASES_LIMIT",
        ),
        (
            "root fields",
            "{ categories products(first: 1) { totalCount } product(id: \"x\") { id } myBasket { itemCount } }"
                .to_owned(),
            "MAX_ROOT_FIELDS_LIMIT",
        ),
        (
            "complexity",
            "{ products(first: 100) { edges { node { id name description category imageUrl inStock } } } }"
                .to_owned(),
            "MAX_COMPLEXITY_LIMIT",
        ),
        (
            "tokens",
            format!("query({variables}) {{ categories }}"),
            "MAX_TOKENS_LIMIT",
        ),
    ];
    for (what, query, code) in &bombs {
        let response = router.gql(Some(&user), query, json!({})).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "the {what} bomb: {:#}",
            response.body
        );
        assert_eq!(
            &response.code(),
            code,
            "the {what} bomb: {:#}",
            response.body
        );
    }

    assert_eq!(
        proxy.graphql_received(),
        0,
        "no bomb reached a subgraph: {:?}",
        proxy.seen()
    );

    // The huge body over a raw connection, to check what HTTP/1.1 says
    // about it too: a server that will not read the rest of a request must
    // say `Connection: close`, or a keep-alive client loses its next
    // request on that connection.
    let huge = json!({ "query": "{ categories }", "variables": { "pad": "x".repeat(100_000) } });
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", router.port))
        .await
        .expect("connect to the router");
    let small = json!({ "query": "{ __typename }" });
    for _ in 0..2 {
        let (status, _, body) = http1_exchange(&mut connection, &user, &small).await;
        assert_eq!(status, 200, "a kept-alive connection serves: {body:#}");
    }
    // (`__typename` alone is still fetched from a subgraph.)
    let before_huge = proxy.graphql_received();
    let (status, headers, body) = http1_exchange(&mut connection, &user, &huge).await;
    assert_eq!(status, 413, "{body:#}");
    assert_eq!(
        proxy.graphql_received(),
        before_huge,
        "the huge body did not reach a subgraph"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "MAX_BODY_SIZE_LIMIT",
        "{body:#}"
    );
    if headers.get("connection").map(String::as_str) != Some("close") {
        let (status, _, body) = http1_exchange(&mut connection, &user, &small).await;
        assert_eq!(
            status, 200,
            "after a 413 without `Connection: close` the connection still serves: {body:#}"
        );
    }

    let before_fine = proxy.graphql_received();
    let fine = router.gql(Some(&user), "{ categories }", json!({})).await;
    assert!(fine.data()["categories"].is_array());
    assert_eq!(
        proxy.graphql_received(),
        before_fine + 1,
        "an ordinary query goes through"
    );
}

/// Sends one HTTP/1.1 POST of `body` to `/graphql` on `connection` and
/// reads the answer: status, lowercase headers, JSON body (null when the
/// connection ends first, with status 0).
async fn http1_exchange(
    connection: &mut tokio::net::TcpStream,
    token: &str,
    body: &Value,
) -> (u16, std::collections::HashMap<String, String>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let payload = body.to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{payload}",
        payload.len()
    );
    let mut headers = std::collections::HashMap::new();
    if connection.write_all(request.as_bytes()).await.is_err() {
        return (0, headers, Value::Null);
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match tokio::time::timeout(Duration::from_secs(10), connection.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => return (0, headers, Value::Null),
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while received.len() < head_end + length {
        match tokio::time::timeout(Duration::from_secs(10), connection.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    let end = received.len().min(head_end + length);
    let body = serde_json::from_slice(&received[head_end..end]).unwrap_or(Value::Null);
    (status, headers, body)
}

/// Automatic persisted queries (Apollo protocol) through the router:
/// unknown hash, registration, hash-only, the hash shared by a second
/// router through Redis, a mismatch, and GET with CSRF prevention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_queries_round_trip_and_are_shared_through_redis() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    product
        .create_product("APQ kettle", "30.00", 3, "kettles")
        .await;
    let keys = RedisKeys::unique("apq");
    let vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{REDIS_PORT}")),
        ("APQ_KEY_PREFIX", keys.prefix.clone()),
    ];
    let (first, second) = tokio::join!(RouterProcess::start(&vars), RouterProcess::start(&vars));
    let query = "query Kettles { categories products(first: 5) { totalCount } }";
    let hash = sha256_hex(query);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let hash_only = json!({ "extensions": extensions });

    let unknown = into_gql(first.send(None, &hash_only).await).await;
    assert_eq!(unknown.status, StatusCode::OK, "{:#}", unknown.body);
    assert_eq!(unknown.code(), "PERSISTED_QUERY_NOT_FOUND");

    let registered = into_gql(
        first
            .send(None, &json!({ "query": query, "extensions": extensions }))
            .await,
    )
    .await;
    assert_eq!(registered.data()["products"]["totalCount"], 1);

    let by_hash = into_gql(first.send(None, &hash_only).await).await;
    assert_eq!(by_hash.data(), registered.data());
    let shared = into_gql(second.send(None, &hash_only).await).await;
    assert_eq!(
        shared.data(),
        registered.data(),
        "the second router finds the query through Redis"
    );
    assert!(
        !redis_keys(REDIS_PORT, &keys.prefix).is_empty(),
        "the query is stored under APQ_KEY_PREFIX"
    );

    let mismatch = into_gql(
        first
            .send(
                None,
                &json!({ "query": "{ categories }", "extensions": extensions }),
            )
            .await,
    )
    .await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{:#}",
        mismatch.body
    );
    assert_eq!(mismatch.code(), "PERSISTED_QUERY_HASH_MISMATCH");

    // GET: the hash in the query string, with the preflight header.
    let get = |with_preflight: bool| {
        let mut request = second
            .http
            .get(second.graphql_url())
            .query(&[("extensions", extensions.to_string())]);
        if with_preflight {
            request = request.header("apollo-require-preflight", "true");
        }
        async move { into_gql(request.send().await.expect("the router answers")).await }
    };
    let over_get = get(true).await;
    assert_eq!(over_get.data(), registered.data());
    let no_preflight = get(false).await;
    assert_eq!(
        no_preflight.status,
        StatusCode::BAD_REQUEST,
        "{:#}",
        no_preflight.body
    );
    assert_eq!(no_preflight.code(), "CSRF_PREVENTION");
}

/// The admin listener refuses anonymous (401) and non-admin (403) callers
/// on every endpoint, shows replicas and breakers to admins, and follows a
/// replica going down and coming back (as `/health/ready` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_refuse_anonymous_callers_and_show_replica_health() {
    let shop = Shop::spawn(Backend::Sqlite).await;
    let proxy = FaultProxy::start(&shop.product.graphql_url()).await;
    let mut vars: Vec<(&str, String)> = Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &shop.notification,
    );
    vars.retain(|(k, _)| *k != "PRODUCT_SERVICE_URL");
    vars.push(("PRODUCT_SERVICE_URL", proxy.graphql_url()));
    let router = RouterProcess::start(&vars).await;
    let admin = token("admin-1", true);
    let user = token("user-1", false);

    for path in [
        "/admin/status",
        "/admin/services",
        "/admin/loadbalancer/product",
        "/admin/circuitbreaker/product",
    ] {
        let (status, _) = router.admin(None, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous {path}");
        let (status, _) = router.admin(Some(&user), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "user {path}");
        let (status, body) = router.admin(Some(&admin), path).await;
        assert_eq!(status, StatusCode::OK, "admin {path}: {body:#}");
        assert!(body.is_object(), "admin {path} answers JSON: {body:#}");
    }
    let (status, services) = router.admin(Some(&admin), "/admin/services").await;
    assert_eq!(status, StatusCode::OK);
    for service in ["product", "basket", "payment", "notification"] {
        assert!(services.to_string().contains(service), "{services:#}");
    }
    let (status, _) = router.admin(Some(&admin), "/admin/loadbalancer/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = router
        .admin(Some(&admin), "/admin/circuitbreaker/nope")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, lb) = router
        .admin(Some(&admin), "/admin/loadbalancer/product")
        .await;
    assert_eq!(lb["service"], "product");
    let replicas = lb["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 1, "{lb:#}");
    for field in [
        "url",
        "weight",
        "healthy",
        "ejected",
        "in_flight",
        "requests",
        "failures",
        "latency_ms",
    ] {
        assert!(replicas[0].get(field).is_some(), "{field} in {lb:#}");
    }
    assert_eq!(replicas[0]["url"], proxy.graphql_url());
    let (_, breaker) = router
        .admin(Some(&admin), "/admin/circuitbreaker/product")
        .await;
    assert_eq!(breaker["service"], "product");
    assert_eq!(breaker["enabled"], true);
    assert_eq!(breaker["state"], "closed");

    let ready = || async {
        router
            .http
            .get(router.url("/health/ready"))
            .send()
            .await
            .map(|r| r.status())
            .ok()
    };
    let proxy_url = proxy.graphql_url();
    assert!(
        eventually(Duration::from_secs(5), || async {
            ready().await == Some(StatusCode::OK)
        })
        .await,
        "ready once every subgraph has a healthy replica"
    );
    let detailed: Value = router
        .http
        .get(router.url("/health/detailed"))
        .send()
        .await
        .expect("/health/detailed answers")
        .json()
        .await
        .expect("JSON");
    assert!(detailed.to_string().contains(&proxy_url), "{detailed:#}");

    // The replica goes down: unhealthy, not ready, fetches fail fast.
    proxy.set_mode(Mode::Refuse).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            router.replica("product", &proxy_url).await["healthy"] == false
        })
        .await,
        "a refusing replica is marked unhealthy"
    );
    assert_eq!(ready().await, Some(StatusCode::SERVICE_UNAVAILABLE));
    let started = Instant::now();
    let down = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(down.code(), "SUBGRAPH_UNAVAILABLE", "{:#}", down.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails fast, well within SUBGRAPH_TIMEOUT: {:?}",
        started.elapsed()
    );

    // And comes back.
    proxy.set_mode(Mode::PASS).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            router.replica("product", &proxy_url).await["healthy"] == true
        })
        .await,
        "the replica is healthy again"
    );
    assert_eq!(ready().await, Some(StatusCode::OK));
    let back = router.gql(None, "{ categories }", json!({})).await;
    assert!(back.data()["categories"].is_array());
}

/// `shopgraph dev` honours `PRODUCT_SERVICE_URLS`: with the real product
/// URL and a dead one, queries succeed and the admin API shows the dead
/// replica unhealthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_with_a_dead_product_replica_still_serves() {
    let data_dir = std::env::temp_dir().join(format!(
        "shopgraph-dev-lb-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let (product_port, dead_port, admin_port) = (free_port(), free_port(), free_port());
    let live = format!("http://127.0.0.1:{product_port}/graphql");
    let dead = format!("http://127.0.0.1:{dead_port}/graphql");
    let urls_var = format!("{live},{dead}");
    let product_port = product_port.to_string();
    let admin_port_var = admin_port.to_string();
    let (child, urls) = crate::cli::start_dev_with(
        &data_dir,
        &[
            ("PRODUCT_PORT", product_port.as_str()),
            ("PRODUCT_SERVICE_URLS", urls_var.as_str()),
            ("ADMIN_PORT", admin_port_var.as_str()),
            ("HEALTH_CHECK_INTERVAL", "200ms"),
        ],
    );
    let dev = DevProcess(Some(child));
    assert_eq!(urls["product"], live, "dev listens where it was told");

    let http = client();
    for n in 1..=20 {
        let body: Value = http
            .post(&urls["router"])
            .json(&json!({ "query": PRODUCTS, "variables": { "n": n % 5 + 1 } }))
            .send()
            .await
            .expect("dev's router answers")
            .json()
            .await
            .expect("JSON");
        assert!(body.get("errors").is_none(), "request {n}: {body:#}");
        assert!(
            body["data"]["products"]["edges"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{body:#}"
        );
    }

    let authority = TokenIssuer::new(
        shopgraph_core::settings::DEV_JWT_SECRET,
        "shopgraph",
        "shopgraph",
    );
    let admin = authority
        .issue("dev-admin", &[ADMIN_ROLE], Duration::from_secs(600))
        .expect("a dev token");
    let lb_url = format!("http://127.0.0.1:{admin_port}/admin/loadbalancer/product");
    let replica = |url: String| {
        let (http, lb_url, admin) = (http.clone(), lb_url.clone(), admin.clone());
        async move {
            let lb: Value = http
                .get(&lb_url)
                .bearer_auth(&admin)
                .send()
                .await
                .expect("dev's admin listener answers")
                .json()
                .await
                .expect("JSON");
            lb["replicas"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["url"] == url.as_str()).cloned())
                .unwrap_or_else(|| panic!("{url} in {lb:#}"))
        }
    };
    assert!(
        eventually(Duration::from_secs(5), || {
            let dead = dead.clone();
            let replica = &replica;
            async move { replica(dead).await["healthy"] == false }
        })
        .await,
        "the dead replica is marked unhealthy"
    );
    assert_eq!(replica(live.clone()).await["healthy"], true);

    dev.stop();
    std::fs::remove_dir_all(&data_dir).ok();
}

/// `shopgraph dev` as a test started it: stopped cleanly by
/// [`DevProcess::stop`], killed if the test fails first.
struct DevProcess(Option<std::process::Child>);

impl DevProcess {
    /// SIGTERM, asserting a clean exit (see `cli::stop`).
    fn stop(mut self) {
        if let Some(child) = self.0.take() {
            crate::cli::stop(child);
        }
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
