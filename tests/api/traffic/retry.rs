//! Retries: never for a mutation, bounded by `RETRY_ATTEMPTS` and the
//! retry budget for queries.

use serde_json::json;

use super::no_dedupe;
use crate::fault_proxy::{FaultProxy, Mode, OperationKind};
use crate::harness::{RouterProcess, token};
use crate::helpers::{As, Backend, TestApp};

const ADD_ITEM: &str =
    "mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }";
const BASKET_LINES: &str = "{ myBasket { itemCount items { quantity } } }";

/// A mutation whose answer is lost after the subgraph got it is never
/// resent (the subgraph applied it exactly once); a query is retried,
/// within `RETRY_ATTEMPTS` and within the retry budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_never_resend_a_mutation_and_stay_within_budget() {
    const ATTEMPTS: usize = 2;
    const BUDGET_RATIO: f64 = 0.2;
    let product = TestApp::spawn(Backend::Sqlite).await;
    let product_id = product
        .create_product("Retry mug", "9.50", 100, "mugs")
        .await;
    let basket = TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), &[]).await;
    let proxy = FaultProxy::start(&basket.graphql_url()).await;
    let mut vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("BASKET_SERVICE_URL", proxy.graphql_url()),
        ("RETRY_ENABLED", "true".into()),
        ("RETRY_ATTEMPTS", ATTEMPTS.to_string()),
        ("RETRY_BACKOFF_MIN", "5ms".into()),
        ("RETRY_BACKOFF_MAX", "20ms".into()),
        ("RETRY_BUDGET_RATIO", BUDGET_RATIO.to_string()),
        // No reserve of retries per second: the ratio alone is measured.
        ("RETRY_BUDGET_MIN_PER_SECOND", "0".into()),
        // Keep the single replica in play however often it fails.
        ("CIRCUIT_BREAKER_ENABLED", "false".into()),
        ("OUTLIER_CONSECUTIVE_FAILURES", "1000".into()),
    ];
    vars.extend(no_dedupe());
    let router = RouterProcess::start(&vars).await;
    let user = token("user-1", false);
    let lines = || async {
        basket.gql(As::User, BASKET_LINES, json!({})).await.data()["myBasket"]["items"].clone()
    };

    // A mutation sent and then lost (connection dropped, then a 502): the
    // client gets an error, the subgraph applied it exactly once each time.
    for (mode, expected_quantity) in [
        (Mode::DropAfterForward, 1),
        (Mode::BadGatewayAfterForward, 2),
    ] {
        proxy.set_mode(mode).await;
        let mutations_before = proxy.received_of(OperationKind::Mutation);
        let response = router
            .gql(Some(&user), ADD_ITEM, json!({ "id": product_id }))
            .await;
        assert!(
            !response.codes().is_empty(),
            "a lost answer is an error for the client ({mode:?}): {:#}",
            response.body
        );
        assert_eq!(
            proxy.received_of(OperationKind::Mutation) - mutations_before,
            1,
            "the mutation reached the subgraph exactly once ({mode:?})"
        );
        assert_eq!(
            lines().await,
            json!([{ "quantity": expected_quantity }]),
            "the subgraph applied the mutation once ({mode:?})"
        );
    }

    // Healthy traffic first (it funds the retry budget), then one query
    // whose answers are all lost: it is attempted more than once, at most
    // 1 + RETRY_ATTEMPTS times.
    proxy.set_mode(Mode::PASS).await;
    for _ in 0..20 {
        router
            .gql(Some(&user), BASKET_LINES, json!({}))
            .await
            .data();
    }
    proxy.set_mode(Mode::DropAfterForward).await;
    let queries_before = proxy.received_of(OperationKind::Query);
    let failed = router.gql(Some(&user), BASKET_LINES, json!({})).await;
    assert!(!failed.codes().is_empty(), "{:#}", failed.body);
    let attempts = proxy.received_of(OperationKind::Query) - queries_before;
    println!("one failing query: {attempts} attempts");
    assert!(
        (2..=1 + ATTEMPTS).contains(&attempts),
        "a query is retried, at most RETRY_ATTEMPTS times: {attempts} attempts"
    );

    // A run of failing queries: retries stay within the budget, far below
    // what RETRY_ATTEMPTS alone would allow.
    let queries = 60;
    let queries_before = proxy.received_of(OperationKind::Query);
    for _ in 0..queries {
        router.gql(Some(&user), BASKET_LINES, json!({})).await;
    }
    let retries = proxy.received_of(OperationKind::Query) - queries_before - queries;
    // Every basket request so far (2 mutations, 20 + 1 + `queries`
    // queries) funds the budget; retries are not requests of their own.
    let requests_so_far = 2 + 20 + 1 + queries;
    let budget = (BUDGET_RATIO * requests_so_far as f64).ceil() as usize;
    println!(
        "{queries} failing queries: {retries} retries (budget bound {budget}, uncapped {})",
        queries * ATTEMPTS
    );
    assert!(
        retries <= budget,
        "retries stay within RETRY_BUDGET_RATIO of recent requests: {retries} > {budget}"
    );
    assert_eq!(
        proxy.received_of(OperationKind::Mutation),
        2,
        "no mutation was ever resent"
    );
    assert!(
        router
            .metric("router_subgraph_retries_total", "subgraph=\"basket\"")
            .await
            >= 1.0,
        "retries are counted"
    );
}
