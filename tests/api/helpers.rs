//! Spawning a real product subgraph for a test.
//!
//! Every [`TestApp`] gets its own store from the platform's testkit: a fresh
//! PostgreSQL database (dropped when the test ends, even on panic) or a fresh
//! SQLite file in the temp directory. The app listens on a random
//! port and is driven over HTTP, exactly as clients use it.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use product_subgraph::ProductSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shopgraph_platform::config::Env;
use shopgraph_platform::db::StatementCounter;
use shopgraph_platform::identity::{ADMIN_ROLE, JwtAuthority};
use shopgraph_platform::settings::RunMode;
use shopgraph_platform::testkit::{TempBackend, TempDatabase};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The secret test apps verify tokens with.
pub const TEST_JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Which production-like store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A store that exists for one test.
pub type TestDb = TempDatabase;

impl From<Backend> for TempBackend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => TempBackend::Sqlite,
            Backend::Postgres => TempBackend::Postgres,
        }
    }
}

/// A fresh, empty store on `backend`.
pub async fn fresh_db(backend: Backend) -> TestDb {
    TempDatabase::create(backend.into()).await
}

/// Test-time knobs for [`TestApp::spawn_with`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub seed: bool,
    pub max_body_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: false,
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// The settings a test app runs with, on `db`.
pub fn settings(db: &TestDb, options: Options) -> ProductSettings {
    let env = Env::from_pairs([
        ("HOST", "127.0.0.1".to_owned()),
        ("PRODUCT_PORT", "0".to_owned()),
        ("PRODUCT_DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", TEST_JWT_SECRET.to_owned()),
        ("SEED_DEMO_DATA", options.seed.to_string()),
        ("HTTP_MAX_BODY_BYTES", options.max_body_bytes.to_string()),
        ("SHUTDOWN_TIMEOUT", "20s".to_owned()),
    ]);
    ProductSettings::from_env(&env, RunMode::Serve).expect("valid test settings")
}

/// A running product subgraph and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub statements: StatementCounter,
    pub admin_token: String,
    pub user_token: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    pub db: TestDb,
}

/// A GraphQL response as the client saw it.
#[derive(Debug)]
pub struct GqlResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl GqlResponse {
    /// `data`, asserting there were no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {:#}",
            self.body
        );
        &self.body["data"]
    }

    /// The `extensions.code` of every error.
    pub fn codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        e["extensions"]["code"]
                            .as_str()
                            .unwrap_or("<none>")
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single error code, asserting there is exactly one error.
    pub fn code(&self) -> String {
        let codes = self.codes();
        assert_eq!(codes.len(), 1, "expected one error: {:#}", self.body);
        codes.into_iter().next().unwrap_or_default()
    }
}

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Anonymous,
    User,
    Admin,
}

impl TestApp {
    /// A product subgraph on a fresh `backend` store, without demo data.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    /// A product subgraph on a fresh store, with `options`.
    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        let db = fresh_db(backend).await;
        Self::spawn_on(db, options).await
    }

    /// A product subgraph on an existing store.
    pub async fn spawn_on(db: TestDb, options: Options) -> Self {
        init_tracing();
        let settings = settings(&db, options);
        let authority = JwtAuthority::from_settings(&settings.service.auth);
        let app = product_subgraph::build(settings)
            .await
            .expect("product subgraph starts");
        let addr = app.local_addr().expect("bound address");
        let statements = app.statements();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run(shutdown.clone().cancelled_owned()));
        let hour = Duration::from_secs(3600);
        Self {
            addr,
            client: reqwest::Client::new(),
            statements,
            admin_token: authority
                .issue("admin-1", &[ADMIN_ROLE], hour)
                .expect("token"),
            user_token: authority.issue("user-1", &[], hour).expect("token"),
            shutdown,
            server: Some(server),
            db,
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `path` (health, metrics, GraphQL over GET).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the subgraph")
    }

    /// POSTs a GraphQL request as `who`.
    pub async fn gql(&self, who: As, query: &str, variables: Value) -> GqlResponse {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = self.token(who) {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request reaches the subgraph");
        let status = response.status();
        let body = response.json().await.expect("JSON body");
        GqlResponse { status, body }
    }

    fn token(&self, who: As) -> Option<&str> {
        match who {
            As::Anonymous => None,
            As::User => Some(&self.user_token),
            As::Admin => Some(&self.admin_token),
        }
    }

    /// Creates a product as admin and returns its id.
    pub async fn create_product(
        &self,
        name: &str,
        price: &str,
        stock: i32,
        category: &str,
    ) -> String {
        let response = self
            .gql(
                As::Admin,
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
                json!({ "input": { "name": name, "price": price, "stockQuantity": stock, "category": category } }),
            )
            .await;
        response.data()["createProduct"]["id"]
            .as_str()
            .expect("created product has an id")
            .to_owned()
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the server task to finish after [`TestApp::begin_shutdown`].
    pub async fn wait_stopped(&mut self) -> std::io::Result<()> {
        match self.server.take() {
            Some(server) => server.await.expect("server task does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
