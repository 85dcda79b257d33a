//! The circuit breaker: opens on failures, fails fast while open, probes
//! after its timeout, closes after recovery.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::no_dedupe;
use crate::fault_proxy::{FaultProxy, Mode};
use crate::harness::{RouterProcess, token};
use crate::helpers::{Backend, TestApp};

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
