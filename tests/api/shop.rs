//! The whole shop for end-to-end tests: four subgraphs on real stores,
//! one event bus (in-process or Kafka), and routers in front.

use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::settings::RunMode;
use shopgraph_router::RouterApp;
use shopgraph_router::config::RouterSettings;
use subgraph_kit::events::EventBus;
use tokio_util::sync::CancellationToken;

use crate::helpers::{As, Backend, GqlResponse, Options, TEST_JWT_SECRET, TestApp};

/// The committed supergraph the router serves.
pub fn supergraph_path() -> String {
    format!("{}/schema/supergraph.graphql", env!("CARGO_MANIFEST_DIR"))
}

/// Four subgraphs and a router over them, on one event bus.
pub struct Shop {
    pub product: TestApp,
    pub basket: TestApp,
    pub payment: TestApp,
    pub notification: TestApp,
    pub router: Router,
    pub bus: EventBus,
}

/// A running router and a client for it.
pub struct Router {
    pub url: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Router {
    /// Starts a router with `vars` on top of the test defaults.
    pub async fn start(vars: &[(&str, String)]) -> Self {
        let mut pairs: Vec<(String, String)> = vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("ROUTER_PORT".into(), "0".into()),
            ("SUPERGRAPH_PATH".into(), supergraph_path()),
            ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("SUBGRAPH_TIMEOUT".into(), "5s".into()),
            // A free port for the admin listener (its default, 4100, would
            // clash between routers running side by side).
            ("ADMIN_PORT".into(), "0".into()),
        ];
        pairs.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let settings = RouterSettings::from_env(&Env::from_pairs(pairs), RunMode::Serve)
            .expect("valid router settings");
        let app = RouterApp::bind(settings).await.expect("router starts");
        let url = format!("http://{}/graphql", app.local_addr().expect("bound"));
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone().cancelled_owned()));
        Self {
            url,
            client: reqwest::Client::new(),
            stop,
        }
    }

    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the router answers");
        let status = response.status();
        GqlResponse {
            status,
            body: response.json().await.expect("a JSON body"),
        }
    }
}

impl Shop {
    /// The whole shop on `backend` (payment on MariaDB when `backend` is
    /// PostgreSQL) and the in-process bus.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_on(EventBus::in_process(), backend).await
    }

    /// The whole shop on `backend` and `bus`.
    pub async fn spawn_on(bus: EventBus, backend: Backend) -> Self {
        let product = TestApp::spawn_with(
            backend,
            Options {
                seed: true,
                bus: Some(bus.clone()),
                ..Options::default()
            },
        )
        .await;
        let basket = TestApp::spawn_basket_on(&bus, backend, &product.graphql_url(), &[]).await;
        let payment_backend = match backend {
            Backend::Postgres => Backend::MariaDb,
            other => other,
        };
        let payment =
            TestApp::spawn_payment_on(&bus, payment_backend, &basket.graphql_url(), &[]).await;
        let notification = TestApp::spawn_notification_on(&bus, backend, &[]).await;
        let router = Router::start(&Self::urls(&product, &basket, &payment, &notification)).await;
        Self {
            product,
            basket,
            payment,
            notification,
            router,
            bus,
        }
    }

    /// The router variables that point at these subgraphs.
    pub fn urls(
        product: &TestApp,
        basket: &TestApp,
        payment: &TestApp,
        notification: &TestApp,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("PRODUCT_SERVICE_URL", product.graphql_url()),
            ("BASKET_SERVICE_URL", basket.graphql_url()),
            ("PAYMENT_SERVICE_URL", payment.graphql_url()),
            ("NOTIFICATION_SERVICE_URL", notification.graphql_url()),
        ]
    }

    /// The token of `who` (the subgraphs' test tokens).
    pub fn token(&self, who: As) -> Option<&str> {
        match who {
            As::Anonymous => None,
            As::User => Some(self.product.user_token.as_str()),
            As::OtherUser => Some(self.product.other_user_token.as_str()),
            As::Admin => Some(self.product.admin_token.as_str()),
        }
    }

    /// POSTs through the router as `who` (tokens are the subgraphs' test tokens).
    pub async fn gql(&self, who: As, query: &str, variables: Value) -> GqlResponse {
        self.router.post(self.token(who), query, variables).await
    }
}
