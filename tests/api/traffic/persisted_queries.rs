//! Automatic persisted queries, shared between routers through Redis.

use reqwest::StatusCode;
use serde_json::json;

use super::{REDIS_PORT, RedisKeys, redis_keys, sha256_hex};
use crate::harness::{RouterProcess, into_gql};
use crate::helpers::{Backend, TestApp};

/// Automatic persisted queries (Apollo protocol) through the router:
/// unknown hash, registration, hash-only, the hash shared by a second
/// router through Redis, a mismatch, and GET with CSRF prevention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_queries_round_trip_and_are_shared_through_redis() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    product
        .create_product("APQ kettle", "30.00", 3, "kettles")
        .await;
    let keys = RedisKeys::unique("apq");
    let vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{REDIS_PORT}")),
        ("APQ_KEY_PREFIX", keys.prefix.clone()),
    ];
    let (first, second) = tokio::join!(RouterProcess::start(&vars), RouterProcess::start(&vars));
    let query = "query Kettles { categories products(first: 5) { totalCount } }";
    let hash = sha256_hex(query);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let hash_only = json!({ "extensions": extensions });

    let unknown = into_gql(first.send(None, &hash_only).await).await;
    assert_eq!(unknown.status, StatusCode::OK, "{:#}", unknown.body);
    assert_eq!(unknown.code(), "PERSISTED_QUERY_NOT_FOUND");

    let registered = into_gql(
        first
            .send(None, &json!({ "query": query, "extensions": extensions }))
            .await,
    )
    .await;
    assert_eq!(registered.data()["products"]["totalCount"], 1);

    let by_hash = into_gql(first.send(None, &hash_only).await).await;
    assert_eq!(by_hash.data(), registered.data());
    let shared = into_gql(second.send(None, &hash_only).await).await;
    assert_eq!(
        shared.data(),
        registered.data(),
        "the second router finds the query through Redis"
    );
    assert!(
        !redis_keys(REDIS_PORT, &keys.prefix).is_empty(),
        "the query is stored under APQ_KEY_PREFIX"
    );

    let mismatch = into_gql(
        first
            .send(
                None,
                &json!({ "query": "{ categories }", "extensions": extensions }),
            )
            .await,
    )
    .await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{:#}",
        mismatch.body
    );
    assert_eq!(mismatch.code(), "PERSISTED_QUERY_HASH_MISMATCH");

    // GET: the hash in the query string, with the preflight header.
    let get = |with_preflight: bool| {
        let mut request = second
            .http
            .get(second.graphql_url())
            .query(&[("extensions", extensions.to_string())]);
        if with_preflight {
            request = request.header("apollo-require-preflight", "true");
        }
        async move { into_gql(request.send().await.expect("the router answers")).await }
    };
    let over_get = get(true).await;
    assert_eq!(over_get.data(), registered.data());
    let no_preflight = get(false).await;
    assert_eq!(
        no_preflight.status,
        StatusCode::BAD_REQUEST,
        "{:#}",
        no_preflight.body
    );
    assert_eq!(no_preflight.code(), "CSRF_PREVENTION");
}
