//! Spawning real subgraphs for a test.
//!
//! Every [`TestApp`] gets its own store from the subgraph kit's testkit: a fresh
//! PostgreSQL database (dropped when the test ends, even on panic) or a fresh
//! SQLite file in the temp directory. The app listens on a random
//! port and is driven over HTTP, exactly as clients use it.

use std::net::SocketAddr;
use std::time::Duration;

use basket_subgraph::BasketSettings;
use notification_subgraph::NotificationSettings;
use payment_subgraph::PaymentSettings;
use product_subgraph::ProductSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::identity::{ADMIN_ROLE, Identity, TokenIssuer, forward_identity};
use shopgraph_core::settings::RunMode;
use subgraph_kit::db::StatementCounter;
use subgraph_kit::events::EventBus;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::service::ServiceApp;
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The secret test apps verify tokens with.
pub const TEST_JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Which production-like store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

/// Runs each listed `async fn name(backend: Backend)` on SQLite and on the
/// subgraph's production backend: PostgreSQL, or MariaDB with `mariadb:`.
macro_rules! backend_tests {
    (mariadb: $($name:ident),* $(,)?) => {
        $crate::helpers::backend_tests!(@on mariadb MariaDb; $($name),*);
    };
    (@on $module:ident $backend:ident; $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::$backend).await
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::helpers::backend_tests!(@on postgres Postgres; $($name),*);
    };
}
pub(crate) use backend_tests;

/// A store that exists for one test.
pub type TestDb = TempDatabase;

impl From<Backend> for TempBackend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => TempBackend::Sqlite,
            Backend::Postgres => TempBackend::Postgres,
            Backend::MariaDb => TempBackend::MariaDb,
        }
    }
}

/// A fresh, empty store on `backend`.
pub async fn fresh_db(backend: Backend) -> TestDb {
    TempDatabase::create(backend.into()).await
}

/// A GraphQL URL on a loopback port nobody listens on (a subgraph that is down).
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("http://{}/graphql", listener.local_addr().expect("address"))
}

/// Test-time knobs for [`TestApp::spawn_with`].
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: bool,
    pub max_body_bytes: usize,
    /// The event bus; a private in-process one when `None`.
    pub bus: Option<EventBus>,
    /// `GRAPHIQL`: off by default, as in `serve`.
    pub graphiql: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: false,
            max_body_bytes: 2 * 1024 * 1024,
            bus: None,
            graphiql: false,
        }
    }
}

/// The environment of test service `service` on `db`, plus `extra`.
pub fn test_env(service: &str, db: &TestDb, options: Options, extra: &[(&str, &str)]) -> Env {
    let prefix = service.to_ascii_uppercase();
    let mut pairs = vec![
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        (format!("{prefix}_PORT"), "0".to_owned()),
        (format!("{prefix}_METRICS_PORT"), "0".to_owned()),
        (format!("{prefix}_DATABASE_URL"), db.url.clone()),
        ("JWT_SECRET".to_owned(), TEST_JWT_SECRET.to_owned()),
        ("SEED_DEMO_DATA".to_owned(), options.seed.to_string()),
        ("GRAPHIQL".to_owned(), options.graphiql.to_string()),
        (
            "HTTP_MAX_BODY_BYTES".to_owned(),
            options.max_body_bytes.to_string(),
        ),
        ("SHUTDOWN_TIMEOUT".to_owned(), "20s".to_owned()),
        // The tests send bearer tokens straight to subgraphs, as a client of
        // a lone subgraph in dev would; `identity_hop` covers the refusal.
        ("ACCEPT_DIRECT_TOKENS".to_owned(), "true".to_owned()),
    ];
    // Every test service signs and trusts this test process's hop key.
    pairs.extend(
        shopgraph_core::hop::HopKeyPair::of_this_process()
            .env_vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Env::from_pairs(pairs)
}

/// Signs as the router of this test process does: with the key every
/// test service trusts ([`test_env`]).
pub fn test_hop_signer() -> shopgraph_core::hop::HopSigner {
    let env = Env::from_pairs(shopgraph_core::hop::HopKeyPair::of_this_process().env_vars());
    shopgraph_core::hop::HopSettings::from_env(&env, RunMode::Serve)
        .and_then(|settings| settings.require_signer())
        .expect("the test key signs")
}

/// The settings a test product subgraph runs with, on `db`.
pub fn settings(db: &TestDb, options: Options) -> ProductSettings {
    ProductSettings::from_env(&test_env("product", db, options, &[]), RunMode::Serve)
        .expect("valid test settings")
}

/// A running subgraph and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The subgraph's name (`product`...): the audience of its hop signatures.
    pub service: &'static str,
    /// The metrics listener (`/metrics`), apart from the API port.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub statements: StatementCounter,
    pub admin_token: String,
    pub user_token: String,
    pub other_user_token: String,
    /// The feed the subgraph's subscriptions follow (none for basket).
    live: Option<LiveFeed>,
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

/// Issues tokens with the test secret, as every service and router in the
/// tests is configured.
pub fn test_authority() -> TokenIssuer {
    TokenIssuer::new(TEST_JWT_SECRET, "shopgraph", "shopgraph")
}

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
pub enum As {
    Anonymous,
    /// `user-1`.
    User,
    /// `user-2`.
    OtherUser,
    /// `admin-1`, with the admin role.
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

    /// A product subgraph on a fresh store, with `extra` variables set.
    pub async fn spawn_product_with_env(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let db = fresh_db(backend).await;
        let env = test_env("product", &db, Options::default(), extra);
        let settings =
            ProductSettings::from_env(&env, RunMode::Serve).expect("valid test settings");
        let app = product_subgraph::build(settings, EventBus::in_process())
            .await
            .expect("product subgraph starts");
        Self::start(app, db)
    }

    /// A product subgraph on an existing store.
    pub async fn spawn_on(db: TestDb, options: Options) -> Self {
        let bus = options.bus.clone().unwrap_or_else(EventBus::in_process);
        let app = product_subgraph::build(settings(&db, options), bus)
            .await
            .expect("product subgraph starts");
        Self::start(app, db)
    }

    /// A basket subgraph on a fresh store, pricing from `product_url`.
    pub async fn spawn_basket(backend: Backend, product_url: &str, extra: &[(&str, &str)]) -> Self {
        Self::spawn_basket_on(&EventBus::in_process(), backend, product_url, extra).await
    }

    /// [`TestApp::spawn_basket`] on `bus`.
    pub async fn spawn_basket_on(
        bus: &EventBus,
        backend: Backend,
        product_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let db = fresh_db(backend).await;
        let mut vars = vec![
            ("PRODUCT_SERVICE_URL", product_url),
            ("UPSTREAM_TIMEOUT", "2s"),
        ];
        vars.extend_from_slice(extra);
        let env = test_env("basket", &db, Options::default(), &vars);
        let settings = BasketSettings::from_env(&env, RunMode::Serve).expect("valid test settings");
        let app = basket_subgraph::build(settings, bus.clone())
            .await
            .expect("basket subgraph starts");
        Self::start(app, db)
    }

    /// A payment subgraph on a fresh store, reserving stock at
    /// `product_url` and reading baskets from `basket_url`.
    pub async fn spawn_payment(
        backend: Backend,
        product_url: &str,
        basket_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::spawn_payment_on(
            &EventBus::in_process(),
            backend,
            product_url,
            basket_url,
            extra,
        )
        .await
    }

    /// [`TestApp::spawn_payment`] on `bus`.
    pub async fn spawn_payment_on(
        bus: &EventBus,
        backend: Backend,
        product_url: &str,
        basket_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let db = fresh_db(backend).await;
        let mut vars = vec![
            ("PRODUCT_SERVICE_URL", product_url),
            ("BASKET_SERVICE_URL", basket_url),
            ("UPSTREAM_TIMEOUT", "2s"),
        ];
        vars.extend_from_slice(extra);
        let env = test_env("payment", &db, Options::default(), &vars);
        let settings =
            PaymentSettings::from_env(&env, RunMode::Serve).expect("valid test settings");
        let app = payment_subgraph::build(settings, bus.clone())
            .await
            .expect("payment subgraph starts");
        Self::start(app, db)
    }

    /// A notification subgraph on a fresh store, with `extra` settings.
    pub async fn spawn_notification(backend: Backend, extra: &[(&str, &str)]) -> Self {
        Self::spawn_notification_on(&EventBus::in_process(), backend, extra).await
    }

    /// [`TestApp::spawn_notification`] on `bus`.
    pub async fn spawn_notification_on(
        bus: &EventBus,
        backend: Backend,
        extra: &[(&str, &str)],
    ) -> Self {
        let db = fresh_db(backend).await;
        let env = test_env("notification", &db, Options::default(), extra);
        let settings =
            NotificationSettings::from_env(&env, RunMode::Serve).expect("valid test settings");
        let app = notification_subgraph::build(settings, bus.clone())
            .await
            .expect("notification subgraph starts");
        Self::start(app, db)
    }

    /// Runs a built service in the background.
    fn start(app: ServiceApp, db: TestDb) -> Self {
        crate::telemetry::init();
        let authority = test_authority();
        let addr = app.local_addr().expect("bound address");
        let service = app.name();
        let metrics_addr = app.metrics_addr();
        let statements = app.statements();
        let live = app.live_feed();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run(shutdown.clone().cancelled_owned()));
        let hour = Duration::from_secs(3600);
        let token = |user: &str, roles: &[&str]| authority.issue(user, roles, hour).expect("token");
        Self {
            addr,
            service,
            metrics_addr,
            client: reqwest::Client::new(),
            statements,
            admin_token: token("admin-1", &[ADMIN_ROLE]),
            user_token: token("user-1", &[]),
            other_user_token: token("user-2", &[]),
            live,
            shutdown,
            server: Some(server),
            db,
        }
    }

    /// How many subscriptions follow this subgraph's live feed now.
    pub fn open_subscriptions(&self) -> usize {
        self.live
            .as_ref()
            .expect("a subgraph with subscriptions")
            .subscriptions()
    }

    /// Waits until exactly `count` subscriptions follow this subgraph's
    /// live feed: a subscription made through a router is in place (events
    /// from now on reach it) once the subgraph has opened its stream.
    pub async fn wait_for_subscriptions(&self, count: usize) {
        let live = self.live.as_ref().expect("a subgraph with subscriptions");
        let mut open = live.subscriptions();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while open != count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} subscription(s) on the subgraph at {}: {open} open after 10 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            open = live.subscriptions();
        }
    }

    /// The URL of the service's store (a replica shares it).
    pub fn database_url(&self) -> String {
        self.db.url.clone()
    }

    /// The GraphQL endpoint's URL.
    pub fn graphql_url(&self) -> String {
        self.url("/graphql")
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `/metrics` from the metrics listener, as Prometheus scrapes it.
    pub async fn metrics(&self) -> reqwest::Response {
        let addr = self.metrics_addr.expect("the metrics listener runs");
        self.client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("the metrics listener answers")
    }

    /// GETs `path` on the API port (health, GraphQL over GET).
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

    /// POSTs a GraphQL request carrying `identity` in the forwarded identity
    /// headers, signed for the hop as the router sends it (no bearer token).
    pub async fn gql_forwarded(
        &self,
        identity: &Identity,
        query: &str,
        variables: Value,
    ) -> GqlResponse {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
            .expect("JSON body");
        let response = self.post_signed(identity, body.into(), self.service).await;
        let status = response.status();
        let body = response.json().await.expect("JSON body");
        GqlResponse { status, body }
    }

    /// POSTs `body` to `/graphql` with `identity` forwarded and a hop
    /// signature made by the test key for `audience`.
    pub async fn post_signed(
        &self,
        identity: &Identity,
        body: axum::body::Bytes,
        audience: &str,
    ) -> reqwest::Response {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        forward_identity(identity, &mut headers);
        let url = self.url("/graphql");
        test_hop_signer()
            .sign(
                &reqwest::Method::POST,
                &url.parse().expect("a URL"),
                &mut headers,
                &body,
                audience,
            )
            .await
            .expect("signs");
        self.client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .expect("request reaches the subgraph")
    }

    fn token(&self, who: As) -> Option<&str> {
        match who {
            As::Anonymous => None,
            As::User => Some(&self.user_token),
            As::OtherUser => Some(&self.other_user_token),
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
