//! `shopgraph` processes on free ports: routers and subgraph replicas,
//! each logging to a file of its own and killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{SHOPGRAPH, child_log_level, client, free_port, supergraph_path, token};
use shopgraph_core::hop::HopKeyPair;

use crate::helpers::{GqlResponse, TEST_JWT_SECRET, unreachable_url};

/// The log file of a process a test starts (stdout and stderr: the
/// services log to stdout), under the temp dir; its tail is printed when
/// the process fails.
#[derive(Debug, Clone)]
pub struct ChildLog {
    pub path: PathBuf,
}

impl ChildLog {
    /// A fresh log named after `name`.
    pub fn new(name: &str) -> Self {
        Self {
            path: std::env::temp_dir().join(format!(
                "shopgraph-test-{name}-{}.log",
                uuid::Uuid::new_v4().simple()
            )),
        }
    }

    /// Sends `command`'s stdout and stderr to this log.
    pub fn attach(&self, command: &mut Command) {
        match std::fs::File::create(&self.path) {
            Ok(file) => {
                let stderr = file.try_clone().map_or_else(|_| Stdio::null(), Stdio::from);
                command.stdout(Stdio::from(file)).stderr(stderr);
            }
            Err(_) => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// The last 30 lines, for failure messages.
    pub fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "({}):\n{}",
            self.path.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

/// The process could not bind a port [`free_port`] had found free: another
/// process took it in between (the pick-then-bind race no test can close).
/// The caller starts it again on other ports.
struct PortTaken;

/// How many times a process is started on new ports after [`PortTaken`].
const START_ATTEMPTS: usize = 3;

/// Waits until GET `url` answers 2xx. Fails the test, with the log's tail,
/// as soon as `child` exits (unless its port was taken: [`PortTaken`]) or
/// once `within` has passed.
async fn wait_healthy(
    child: &mut Option<Child>,
    log: &ChildLog,
    url: &str,
    within: Duration,
) -> Result<(), PortTaken> {
    let http = client();
    let deadline = Instant::now() + within;
    loop {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            if log.text().contains("Address already in use") {
                return Err(PortTaken);
            }
            panic!(
                "the process exited ({status}) before {url} answered {}",
                log.tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer within {within:?} {}",
            log.tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One subgraph replica: `shopgraph serve <service>` on a free port,
/// killed on drop.
pub struct SubgraphProcess {
    pub port: u16,
    /// The metrics listener's port (`<SERVICE>_METRICS_PORT`).
    pub metrics_port: u16,
    pub log: ChildLog,
    child: Option<Child>,
}

impl SubgraphProcess {
    /// Starts `service` on the store at `database_url` with `extra`
    /// variables and waits until `/health/ready` answers 200.
    pub async fn start(service: &str, database_url: &str, extra: &[(&str, &str)]) -> Self {
        for _ in 0..START_ATTEMPTS {
            if let Ok(replica) = Self::try_start(service, database_url, extra).await {
                return replica;
            }
        }
        panic!("{service}: its free ports were taken {START_ATTEMPTS} times in a row");
    }

    async fn try_start(
        service: &str,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self, PortTaken> {
        let prefix = service.to_ascii_uppercase();
        let (port, metrics_port) = (free_port(), free_port());
        let log = ChildLog::new(&format!("{service}-{port}"));
        let mut command = Command::new(SHOPGRAPH);
        log.attach(&mut command);
        let child = command
            .args(["serve", service])
            .env("HOST", "127.0.0.1")
            .env(format!("{prefix}_PORT"), port.to_string())
            .env(format!("{prefix}_METRICS_PORT"), metrics_port.to_string())
            .env(format!("{prefix}_DATABASE_URL"), database_url)
            .env("JWT_SECRET", TEST_JWT_SECRET)
            .env("ACCEPT_DIRECT_TOKENS", "true")
            .envs(HopKeyPair::of_this_process().env_vars())
            .env("SEED_DEMO_DATA", "false")
            .env("SHUTDOWN_TIMEOUT", "5s")
            .env("LOG_LEVEL", child_log_level())
            .envs(extra.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("shopgraph serve starts");
        let mut replica = Self {
            port,
            metrics_port,
            log,
            child: Some(child),
        };
        let ready = format!("http://127.0.0.1:{port}/health/ready");
        wait_healthy(
            &mut replica.child,
            &replica.log,
            &ready,
            Duration::from_secs(60),
        )
        .await?;
        Ok(replica)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    /// `http://127.0.0.1:<port>/path` on the public port.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `/metrics` on the metrics listener.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// SIGKILL: the process is gone at once, mid-request or not.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the replica");
        }
    }

    /// The sum of the samples of `name` whose labels contain `labels`
    /// (all samples when empty), from its `/metrics`.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        scrape(&client(), &self.metrics_url(), name, labels).await
    }
}

/// `shopgraph serve router` on free ports (GraphQL and admin), killed on
/// drop, with its own `/metrics` on the admin port (a process of its own,
/// so one test's metrics and limits never leak into another's).
pub struct RouterProcess {
    pub port: u16,
    pub admin_port: u16,
    pub log: ChildLog,
    pub http: reqwest::Client,
    child: Option<Child>,
}

impl RouterProcess {
    /// Starts the router with `vars` over the test defaults and waits until
    /// it serves `/health` (not `/health/ready`: a test may start it with a
    /// subgraph down on purpose; see [`RouterProcess::wait_ready`]).
    /// Subgraphs not given point to ports nobody listens on.
    pub async fn start(vars: &[(&str, String)]) -> Self {
        Self::spawn(vars, true).await
    }

    /// [`RouterProcess::start`] without subgraph URL variables: the router
    /// uses the URLs the supergraph file gives (unless `vars` set some).
    pub async fn start_on_supergraph_urls(vars: &[(&str, String)]) -> Self {
        Self::spawn(vars, false).await
    }

    async fn spawn(vars: &[(&str, String)], subgraphs_nowhere: bool) -> Self {
        for _ in 0..START_ATTEMPTS {
            if let Ok(router) = Self::try_spawn(vars, subgraphs_nowhere).await {
                return router;
            }
        }
        panic!("the router's free ports were taken {START_ATTEMPTS} times in a row");
    }

    async fn try_spawn(
        vars: &[(&str, String)],
        subgraphs_nowhere: bool,
    ) -> Result<Self, PortTaken> {
        let port = free_port();
        let admin_port = free_port();
        let log = ChildLog::new(&format!("router-{port}"));
        println!(
            "router on {port} (admin {admin_port}), log {}",
            log.path.display()
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
            .env("LOG_LEVEL", child_log_level())
            .env("SUBGRAPH_TIMEOUT", "5s")
            .env("HEALTH_CHECK_INTERVAL", "200ms")
            .envs(HopKeyPair::of_this_process().env_vars());
        if subgraphs_nowhere {
            for service in ["PRODUCT", "BASKET", "PAYMENT", "NOTIFICATION"] {
                command.env(format!("{service}_SERVICE_URL"), unreachable_url());
            }
        }
        log.attach(&mut command);
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
        wait_healthy(
            &mut router.child,
            &router.log,
            &health,
            Duration::from_secs(30),
        )
        .await?;
        Ok(router)
    }

    /// Waits until `/health/ready` answers 200: every subgraph has a
    /// healthy replica.
    pub async fn wait_ready(&mut self) {
        let ready = self.url("/health/ready");
        if wait_healthy(&mut self.child, &self.log, &ready, Duration::from_secs(30))
            .await
            .is_err()
        {
            panic!("the router lost its port while running {}", self.log.tail());
        }
    }

    /// SIGKILL: the router is gone at once, its clients' sockets with it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the router");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn graphql_url(&self) -> String {
        self.url("/graphql")
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// POSTs `body` as JSON with `token`; the raw response.
    pub async fn send(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.graphql_url()).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .unwrap_or_else(|err| panic!("the router answers: {err:?}\n{}", self.log.tail()))
    }

    /// POSTs a GraphQL request with `token`.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        let response = self
            .send(token, &json!({ "query": query, "variables": variables }))
            .await;
        into_gql(response).await
    }

    /// GETs an admin path with `token`: the status and the JSON body (null
    /// when the body is not JSON).
    pub async fn admin(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
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
    pub async fn replicas(&self, service: &str) -> Vec<Value> {
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
    pub async fn replica(&self, service: &str, url: &str) -> Value {
        let replicas = self.replicas(service).await;
        replicas
            .iter()
            .find(|r| r["url"] == url)
            .cloned()
            .unwrap_or_else(|| panic!("{url} is not listed among {replicas:#?}"))
    }

    /// The breaker state of `service` (`closed`, `open`, `half_open`).
    pub async fn breaker_state(&self, service: &str) -> String {
        let (status, body) = self
            .admin(
                Some(&token("admin-1", true)),
                &format!("/admin/circuitbreaker/{service}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        body["state"].as_str().unwrap_or_default().to_owned()
    }

    /// The sum of every sample of metric `name` whose labels contain
    /// `labels` on `/metrics` (served on the admin listener, not the API
    /// port).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        scrape(&self.http, &self.admin_url("/metrics"), name, labels).await
    }
}

/// The sum of the samples of `name` whose labels contain `labels` in the
/// Prometheus exposition at `url`.
async fn scrape(http: &reqwest::Client, url: &str, name: &str, labels: &str) -> f64 {
    let text = http
        .get(url)
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("metrics text");
    metric_sum(&text, name, labels)
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

/// A raw response as a [`GqlResponse`] (a non-JSON body is null).
pub async fn into_gql(response: reqwest::Response) -> GqlResponse {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    GqlResponse { status, body }
}
