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
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body:#}"
    );
    assert!(body["data"].is_null(), "no data: {body:#}");
}

/// Connects to `url`'s host and port, sends half a request line and waits:
/// the server must close the connection (with or without a 408 first)
/// after about `HTTP_HEADER_READ_TIMEOUT`; returns how long that took.
async fn time_to_drop_half_a_request(url: &str) -> std::time::Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connects");
    stream.write_all(b"GET /health HT").await.expect("sends");
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(6), stream.read(&mut buffer))
            .await
        {
            Err(_) => panic!("{authority}: still open after 6 s without headers"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Every listener (router public and admin, a subgraph) closes a
/// connection that has not sent its headers within
/// `HTTP_HEADER_READ_TIMEOUT`, and still serves normal requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_headers_slowly_is_closed() {
    let timeout = ("HTTP_HEADER_READ_TIMEOUT", "1s");
    let product = TestApp::spawn(Backend::Sqlite).await;
    let basket = TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), &[timeout]).await;
    let router = RouterProcess::start(&[
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        (timeout.0, timeout.1.into()),
    ])
    .await;

    for url in [router.url("/"), router.admin_url("/"), basket.graphql_url()] {
        let took = time_to_drop_half_a_request(&url).await;
        assert!(
            took >= std::time::Duration::from_millis(800),
            "{url}: closed only after the timeout, not at once: {took:?}"
        );
    }

    // Whole requests are still served.
    let answer = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    // The admin port answers (401 without an admin token).
    let admin = crate::harness::client()
        .get(router.admin_url("/health"))
        .send()
        .await
        .expect("admin answers");
    assert!(!admin.status().is_server_error(), "{}", admin.status());
    let health = crate::harness::client()
        .get(basket.graphql_url().replace("/graphql", "/health"))
        .send()
        .await
        .expect("basket answers");
    assert!(health.status().is_success(), "{}", health.status());
}
