//! Hostile input at the router's door (issue 17): client strings that are
//! not ASCII, operations sent over a websocket past the rate limit,
//! documents with several operations and no `operationName`, and
//! connections that send their headers slowly.

use serde_json::json;

use crate::harness::{RouterProcess, token};
use crate::helpers::{Backend, TestApp};
use crate::live::{RawSocket, Received};

/// A `connection_init` whose token is not ASCII closes with 4401 (it
/// panicked: the token was sliced at byte 7, inside a `€`), the token
/// never reaches the log, the connection gauge comes back to zero and the
/// router serves the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ascii_websocket_token_closes_4401_and_the_router_keeps_serving() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let router = RouterProcess::start(&[("PRODUCT_SERVICE_URL", product.graphql_url())]).await;
    let url = router.graphql_url();

    // `€` is three bytes: byte 7 falls inside the third one.
    for secret in ["€€€-secret-token", "Bearer €-secret-token"] {
        let mut raw = RawSocket::connect(&url).await;
        raw.send(json!({ "type": "connection_init", "payload": { "Authorization": secret } }))
            .await;
        let closed = raw.receive().await;
        assert!(
            matches!(closed, Received::Closed(4401, _)),
            "{secret}: {closed:?}\n{}",
            router.log.tail()
        );
    }

    // The router still serves websockets and HTTP.
    let mut raw = RawSocket::connect(&url).await;
    raw.init(&token("user-1", false)).await;
    raw.send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ categories }" } }))
        .await;
    let Received::Message(next) = raw.receive().await else {
        panic!("a next message");
    };
    assert_eq!(next["type"], "next", "{next}");
    assert!(next["payload"]["data"]["categories"].is_array(), "{next}");
    drop(raw);
    let answer = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);

    let log = router.log.text();
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    assert!(!log.contains("secret-token"), "the token is never logged");
    let mut open = f64::NAN;
    for _ in 0..50 {
        open = router.metric("router_websocket_connections", "").await;
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0, "every closed connection left the gauge");
}

/// Queries sent over one websocket count against the caller's rate limit
/// like HTTP requests: past the burst (the upgrade took one cell), each is
/// answered with an `error` carrying `RATE_LIMITED` for its id, and the
/// connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_operations_past_the_burst_are_rate_limited() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let router = RouterProcess::start(&[
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_REQUESTS", "5".into()),
        ("RATE_LIMIT_BURST", "5".into()),
        ("RATE_LIMIT_WINDOW", "1h".into()),
    ])
    .await;
    let user = token("user-1", false);
    let mut raw = RawSocket::connect(&router.graphql_url()).await;
    raw.init(&user).await;

    let mut served = 0;
    let mut limited = 0;
    for i in 0..10 {
        let id = format!("q{i}");
        raw.send(
            json!({ "id": id, "type": "subscribe", "payload": { "query": "{ categories }" } }),
        )
        .await;
        let Received::Message(answer) = raw.receive().await else {
            panic!("an answer to {id}, the connection open");
        };
        assert_eq!(answer["id"], id, "{answer}");
        match answer["type"].as_str() {
            Some("next") => {
                served += 1;
                assert_eq!(
                    raw.receive().await,
                    Received::Message(json!({ "id": id, "type": "complete" }))
                );
            }
            Some("error") => {
                limited += 1;
                assert_eq!(
                    answer["payload"][0]["extensions"]["code"], "RATE_LIMITED",
                    "{answer}"
                );
            }
            _ => panic!("next or error: {answer}"),
        }
    }
    // The upgrade is a request of the user's too when it carries the
    // token; here the token came in `connection_init`, so the upgrade
    // counted against the address and the user has the whole burst.
    assert_eq!((served, limited), (5, 5), "served, limited");

    // Still open: a ping is answered.
    raw.send(json!({ "type": "ping" })).await;
    assert_eq!(
        raw.receive().await,
        Received::Message(json!({ "type": "pong" }))
    );
    // And the same budget refuses HTTP now.
    let answer = router.gql(Some(&user), "{ categories }", json!({})).await;
    assert_eq!(answer.status, 429, "{:#}", answer.body);
    let refused = router.metric("router_rate_limited_total", "").await;
    assert!(refused >= 6.0, "refusals counted: {refused}");
}

/// A document with two operations and no `operationName` is a request
/// error (GraphQL over HTTP), at the router (it ran the first one) and at
/// a subgraph (async-graphql already refused it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_operations_without_an_operation_name_are_refused() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let router = RouterProcess::start(&[("PRODUCT_SERVICE_URL", product.graphql_url())]).await;
    let document = "query A { categories } query B { __typename }";

    let refused = router.gql(None, document, json!({})).await;
    assert_eq!(refused.status, 400, "{:#}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{:#}",
        refused.body
    );
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("operation name")),
        "{:#}",
        refused.body
    );
    assert!(refused.body.get("data").is_none(), "{:#}", refused.body);

    // Naming one runs it.
    let named = router
        .send(None, &json!({ "query": document, "operationName": "A" }))
        .await;
    assert_eq!(named.status(), 200);

    // The subgraph refuses it too, without data.
    let direct = crate::harness::client()
        .post(product.graphql_url())
        .json(&json!({ "query": document }))
        .send()
        .await
        .expect("the subgraph answers");
    let status = direct.status();
    let body: serde_json::Value = direct.json().await.expect("JSON");
    println!("subgraph: {status} {body}");
    assert!(
        body["errors"][0]["message"].is_string(),
        "an error: {status} {body:#}"
    );
    assert!(body["data"].is_null(), "no data: {body:#}");
}
