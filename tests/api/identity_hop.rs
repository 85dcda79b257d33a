//! The router → subgraph identity hop: behind the router a subgraph takes
//! the caller from the forwarded identity headers and refuses bearer tokens
//! sent straight to it (`ACCEPT_DIRECT_TOKENS=false`, the `serve` default);
//! service-to-service calls (payment → basket) pass the caller on.

use reqwest::StatusCode;
use serde_json::json;
use shopgraph_core::identity::{ADMIN_ROLE, Identity, USER_ID_HEADER, Viewer};

use crate::helpers::{As, Backend, TestApp};

const BEHIND_ROUTER: &[(&str, &str)] = &[("ACCEPT_DIRECT_TOKENS", "false")];

fn user(id: &str, roles: &[&str]) -> Identity {
    Identity::User(Viewer {
        user_id: id.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    })
}

const INBOX: &str = "{ myNotifications(first: 10) { edges { node { title userId } } } }";
const CREATE: &str = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id userId } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_token_is_refused_behind_the_router() {
    let app = TestApp::spawn_notification(Backend::Sqlite, BEHIND_ROUTER).await;

    let direct = app.gql(As::User, INBOX, json!({})).await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);
    assert_eq!(direct.code(), "UNAUTHENTICATED");
    let message = direct.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("router"), "{message}");

    let anonymous = app.gql(As::Anonymous, INBOX, json!({})).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(
        anonymous.code(),
        "UNAUTHENTICATED",
        "anonymous stays anonymous"
    );

    let malformed = app
        .client
        .post(app.graphql_url())
        .header(USER_ID_HEADER, "  ")
        .json(&json!({ "query": INBOX }))
        .send()
        .await
        .expect("request reaches the subgraph");
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_identity_is_the_caller() {
    let app = TestApp::spawn_notification(Backend::Sqlite, BEHIND_ROUTER).await;
    let input = json!({ "input": {
        "userId": "user-1", "type": "SYSTEM", "title": "Hello", "message": "Forwarded"
    } });

    let not_admin = app
        .gql_forwarded(&user("user-1", &[]), CREATE, input.clone())
        .await;
    assert_eq!(not_admin.code(), "FORBIDDEN");
    let created = app
        .gql_forwarded(&user("admin-1", &[ADMIN_ROLE]), CREATE, input)
        .await;
    assert_eq!(created.data()["createNotification"]["userId"], "user-1");

    let mine = app
        .gql_forwarded(&user("user-1", &[]), INBOX, json!({}))
        .await;
    let edges = mine.data()["myNotifications"]["edges"].as_array().cloned();
    assert_eq!(edges.map(|e| e.len()), Some(1));
    assert_eq!(
        mine.data()["myNotifications"]["edges"][0]["node"]["title"],
        "Hello"
    );
    let theirs = app
        .gql_forwarded(&user("user-2", &[]), INBOX, json!({}))
        .await;
    assert_eq!(theirs.data()["myNotifications"]["edges"], json!([]));

    let anonymous = app
        .gql_forwarded(&Identity::Anonymous, INBOX, json!({}))
        .await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_passes_the_forwarded_caller_on_to_basket() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let basket =
        TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), BEHIND_ROUTER).await;
    let payment =
        TestApp::spawn_payment(Backend::Sqlite, &basket.graphql_url(), BEHIND_ROUTER).await;
    let product_id = product.create_product("Lamp", "12.50", 10, "Home").await;
    let alice = user("user-1", &[]);

    basket
        .gql_forwarded(
            &alice,
            "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 2) { itemCount } }",
            json!({ "p": product_id }),
        )
        .await
        .data();
    let checkout = payment
        .gql_forwarded(
            &alice,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { status amount { amount } items { quantity } } }",
            json!({ "input": {
                "idempotencyKey": "hop-1", "method": "CARD",
                "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await;
    let paid = &checkout.data()["checkout"];
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(paid["amount"]["amount"], "25.00");
    assert_eq!(paid["items"][0]["quantity"], 2);

    let bob = payment
        .gql_forwarded(
            &user("user-2", &[]),
            "mutation($input: CheckoutInput!) { checkout(input: $input) { status } }",
            json!({ "input": {
                "idempotencyKey": "hop-2", "method": "CARD",
                "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await;
    assert_eq!(
        bob.code(),
        "BAD_USER_INPUT",
        "user-2's basket is empty: {:#}",
        bob.body
    );
}
