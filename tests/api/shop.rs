//! The whole shop for end-to-end tests: four subgraphs on real stores,
//! one event bus (in-process or Kafka), and a router in front
//! ([`crate::harness::Router`]).

use serde_json::Value;
use subgraph_kit::events::EventBus;

use crate::harness::Router;
use crate::helpers::{As, Backend, GqlResponse, Options, TestApp};

/// Four subgraphs and a router over them, on one event bus.
pub struct Shop {
    pub product: TestApp,
    pub basket: TestApp,
    pub payment: TestApp,
    pub notification: TestApp,
    pub router: Router,
    pub bus: EventBus,
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
        let payment = TestApp::spawn_payment_on(
            &bus,
            payment_backend,
            &product.graphql_url(),
            &basket.graphql_url(),
            &[],
        )
        .await;
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
