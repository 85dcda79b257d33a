//! Authorization declared in the schema (`@authenticated`,
//! `@requiresScopes`), enforced by the router before it fetches.
//!
//! Every subgraph sits behind a [`FaultProxy`] that records the documents
//! it receives, so each test proves not only what the client got (`null`
//! and `UNAUTHORIZED_FIELD_OR_TYPE` at the field's path, the rest served)
//! but that the denied field never reached a subgraph — a denied mutation
//! is not sent at all. Real subgraphs on SQLite, the real router.

use serde_json::{Value, json};

use crate::fault_proxy::{FaultProxy, OperationKind};
use crate::harness::Router;
use crate::helpers::{As, Backend, GqlResponse, Options, TestApp};
use crate::live::{RawSocket, Received};

const UNAUTHORIZED: &str = "UNAUTHORIZED_FIELD_OR_TYPE";

/// The four subgraphs, each behind a recording proxy, and a router over
/// the proxies.
struct GuardedShop {
    product: TestApp,
    _basket: TestApp,
    _payment: TestApp,
    _notification: TestApp,
    product_proxy: FaultProxy,
    basket_proxy: FaultProxy,
    payment_proxy: FaultProxy,
    notification_proxy: FaultProxy,
    router: Router,
}

impl GuardedShop {
    async fn spawn() -> Self {
        let product = TestApp::spawn_with(
            Backend::Sqlite,
            Options {
                seed: true,
                ..Options::default()
            },
        )
        .await;
        let basket = TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), &[]).await;
        let payment = TestApp::spawn_payment(
            Backend::Sqlite,
            &product.graphql_url(),
            &basket.graphql_url(),
            &[],
        )
        .await;
        let notification = TestApp::spawn_notification(Backend::Sqlite, &[]).await;
        let product_proxy = FaultProxy::start(&product.graphql_url()).await;
        let basket_proxy = FaultProxy::start(&basket.graphql_url()).await;
        let payment_proxy = FaultProxy::start(&payment.graphql_url()).await;
        let notification_proxy = FaultProxy::start(&notification.graphql_url()).await;
        let router = Router::start(&[
            ("PRODUCT_SERVICE_URL", product_proxy.graphql_url()),
            ("BASKET_SERVICE_URL", basket_proxy.graphql_url()),
            ("PAYMENT_SERVICE_URL", payment_proxy.graphql_url()),
            ("NOTIFICATION_SERVICE_URL", notification_proxy.graphql_url()),
        ])
        .await;
        Self {
            product,
            _basket: basket,
            _payment: payment,
            _notification: notification,
            product_proxy,
            basket_proxy,
            payment_proxy,
            notification_proxy,
            router,
        }
    }

    fn token(&self, who: As) -> Option<&str> {
        match who {
            As::Anonymous => None,
            As::User => Some(self.product.user_token.as_str()),
            As::OtherUser => Some(self.product.other_user_token.as_str()),
            As::Admin => Some(self.product.admin_token.as_str()),
        }
    }

    async fn gql(&self, who: As, query: &str) -> GqlResponse {
        self.router.post(self.token(who), query, json!({})).await
    }

    /// Every document any subgraph received.
    fn all_documents(&self) -> Vec<String> {
        [
            &self.product_proxy,
            &self.basket_proxy,
            &self.payment_proxy,
            &self.notification_proxy,
        ]
        .iter()
        .flat_map(|proxy| proxy.documents())
        .collect()
    }
}

/// The errors with `code`, as `(path, message)`.
fn errors_with(response: &GqlResponse, code: &str) -> Vec<(Value, String)> {
    response.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|error| error["extensions"]["code"] == code)
        .map(|error| {
            (
                error["path"].clone(),
                error["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

const CREATE_PRODUCT: &str = r#"createProduct(input: { name: "Forbidden lamp", price: "9.99", category: "lamps" }) { id name }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn denied_fields_are_null_with_a_coded_error_and_never_reach_a_subgraph() {
    let shop = GuardedShop::spawn().await;

    // Anonymous: a public field and an @authenticated nullable one. The
    // public data is served; the guarded field is null with the error at
    // its path, and the payment subgraph is never asked.
    let anonymous = shop
        .gql(
            As::Anonymous,
            r#"{ categories payment(id: "00000000-0000-0000-0000-000000000000") { id } }"#,
        )
        .await;
    assert_eq!(anonymous.status, 200, "{:#}", anonymous.body);
    assert!(
        anonymous.body["data"]["categories"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{:#}",
        anonymous.body
    );
    assert_eq!(anonymous.body["data"]["payment"], Value::Null);
    assert_eq!(
        errors_with(&anonymous, UNAUTHORIZED),
        [(json!(["payment"]), "Unauthorized field or type".to_owned())]
    );
    assert_eq!(anonymous.codes(), [UNAUTHORIZED], "{:#}", anonymous.body);
    assert!(shop.payment_proxy.documents().is_empty());

    // Anonymous and an admin-only field (non-null): it is removed, the
    // error is at its path, and its null propagates to `data` as the
    // GraphQL spec says; no subgraph sees `payments`.
    let admin_list = shop
        .gql(
            As::Anonymous,
            "{ categories payments(first: 1) { pageInfo { hasNextPage } } }",
        )
        .await;
    assert_eq!(
        admin_list.body["data"],
        Value::Null,
        "{:#}",
        admin_list.body
    );
    assert_eq!(
        errors_with(&admin_list, UNAUTHORIZED),
        [(json!(["payments"]), "Unauthorized field or type".to_owned())]
    );
    assert_eq!(admin_list.codes().len(), 1, "{:#}", admin_list.body);

    // A signed-in user without the admin scope: the same.
    let user = shop
        .gql(
            As::User,
            "{ categories payments(first: 1) { pageInfo { hasNextPage } } }",
        )
        .await;
    assert_eq!(user.body["data"], Value::Null, "{:#}", user.body);
    assert_eq!(user.codes(), [UNAUTHORIZED], "{:#}", user.body);
    assert!(
        shop.all_documents()
            .iter()
            .all(|document| !document.contains("payments")),
        "a denied field reached a subgraph: {:?}",
        shop.all_documents()
    );

    // @authenticated for anonymous, nested under public data: `me` is
    // removed (its null propagates: `me` is non-null), the basket
    // subgraph is never asked.
    let me = shop
        .gql(As::Anonymous, "{ me { id basket { itemCount } } }")
        .await;
    assert_eq!(me.body["data"], Value::Null, "{:#}", me.body);
    assert_eq!(
        errors_with(&me, UNAUTHORIZED),
        [(json!(["me"]), "Unauthorized field or type".to_owned())]
    );
    assert!(shop.basket_proxy.documents().is_empty());

    // The signed-in user gets `me`; the admin gets the admin list, and the
    // payment subgraph now sees it.
    let me = shop.gql(As::User, "{ me { id } }").await;
    assert_eq!(me.data()["me"]["id"], "user-1");
    let admin = shop
        .gql(
            As::Admin,
            "{ categories payments(first: 1) { pageInfo { hasNextPage } } }",
        )
        .await;
    assert!(admin.data()["payments"]["pageInfo"]["hasNextPage"].is_boolean());
    assert!(
        shop.payment_proxy
            .documents()
            .iter()
            .any(|document| document.contains("payments"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denied_mutation_is_never_sent_and_an_admin_one_is() {
    let shop = GuardedShop::spawn().await;

    // A user without the admin scope: refused at the router, the product
    // subgraph receives no mutation at all.
    let refused = shop
        .gql(As::User, &format!("mutation {{ {CREATE_PRODUCT} }}"))
        .await;
    assert_eq!(refused.body["data"], Value::Null, "{:#}", refused.body);
    assert_eq!(
        errors_with(&refused, UNAUTHORIZED),
        [(
            json!(["createProduct"]),
            "Unauthorized field or type".to_owned()
        )]
    );
    assert_eq!(refused.codes().len(), 1, "{:#}", refused.body);
    assert_eq!(shop.product_proxy.received_of(OperationKind::Mutation), 0);

    // Anonymous, beside an @authenticated one: neither is sent.
    let anonymous = shop
        .gql(
            As::Anonymous,
            &format!("mutation {{ clearBasket {{ itemCount }} {CREATE_PRODUCT} }}"),
        )
        .await;
    assert_eq!(anonymous.body["data"], Value::Null);
    // The first denied non-null root field nulls `data`; projection stops
    // there, so its error is the one reported.
    assert_eq!(
        errors_with(&anonymous, UNAUTHORIZED),
        [(
            json!(["clearBasket"]),
            "Unauthorized field or type".to_owned()
        )]
    );
    assert_eq!(anonymous.codes().len(), 1, "{:#}", anonymous.body);
    assert_eq!(shop.basket_proxy.received_of(OperationKind::Mutation), 0);
    assert_eq!(shop.product_proxy.received_of(OperationKind::Mutation), 0);

    // A user, beside an allowed one: the allowed mutation runs (and only it
    // is sent), the denied one is not.
    let mixed = shop
        .gql(
            As::User,
            &format!("mutation {{ clearBasket {{ itemCount }} {CREATE_PRODUCT} }}"),
        )
        .await;
    assert_eq!(
        errors_with(&mixed, UNAUTHORIZED),
        [(
            json!(["createProduct"]),
            "Unauthorized field or type".to_owned()
        )]
    );
    assert_eq!(shop.basket_proxy.received_of(OperationKind::Mutation), 1);
    assert_eq!(shop.product_proxy.received_of(OperationKind::Mutation), 0);

    // Nothing was created.
    let search = shop
        .gql(
            As::Anonymous,
            r#"{ products(first: 5, filter: { search: "Forbidden lamp" }) { totalCount } }"#,
        )
        .await;
    assert_eq!(search.data()["products"]["totalCount"], 0);

    // The admin's mutation goes through.
    let created = shop
        .gql(As::Admin, &format!("mutation {{ {CREATE_PRODUCT} }}"))
        .await;
    assert_eq!(created.data()["createProduct"]["name"], "Forbidden lamp");
    assert_eq!(shop.product_proxy.received_of(OperationKind::Mutation), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_and_websocket_operations_are_authorized_too() {
    let shop = GuardedShop::spawn().await;

    // SSE, anonymous, an @authenticated subscription: refused with the
    // coded error before any subgraph is asked.
    let refused = reqwest::Client::new()
        .post(&shop.router.url)
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "subscription { notificationAdded { id } }" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], UNAUTHORIZED,
        "{body:#}"
    );
    assert!(shop.notification_proxy.documents().is_empty());

    // Over a websocket, a signed-in user's admin mutation is refused the
    // same way and never sent.
    let mut socket = RawSocket::connect(&shop.router.url).await;
    socket.init(&shop.product.user_token).await;
    socket
        .send(json!({
            "id": "m",
            "type": "subscribe",
            "payload": { "query": format!("mutation {{ {CREATE_PRODUCT} }}") }
        }))
        .await;
    let Received::Message(next) = socket.receive().await else {
        panic!("the router answers the operation");
    };
    assert_eq!(next["type"], "next", "{next:#}");
    assert_eq!(next["payload"]["data"], Value::Null);
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"], UNAUTHORIZED,
        "{next:#}"
    );
    assert_eq!(
        next["payload"]["errors"][0]["path"],
        json!(["createProduct"])
    );
    assert_eq!(shop.product_proxy.received_of(OperationKind::Mutation), 0);
}
