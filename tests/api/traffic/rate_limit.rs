//! Rate limiting: one budget shared by two routers through Redis, and the
//! local fallback when Redis dies.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{REDIS_PORT, RedisKeys, RedisProcess, redis_keys};
use crate::harness::{RouterProcess, token};
use crate::helpers::{Backend, TestApp};

/// Two router processes share one budget through the real Redis: one
/// client alternating between them gets 100 ± 5 requests admitted out of
/// 300; refusals are 429 with `Retry-After` and `RATE_LIMITED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_share_one_rate_limit_budget_through_redis() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let keys = RedisKeys::unique("ratelimit");
    let vars = vec![
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", format!("redis://127.0.0.1:{REDIS_PORT}")),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_REQUESTS", "100".into()),
        ("RATE_LIMIT_BURST", "100".into()),
        ("RATE_LIMIT_WINDOW", "1h".into()),
        ("RATE_LIMIT_KEY_PREFIX", keys.prefix.clone()),
    ];
    let (first, second) = tokio::join!(RouterProcess::start(&vars), RouterProcess::start(&vars));
    let user = token("user-1", false);
    let body = json!({ "query": "{ categories }" });

    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..300 {
        let router = if i % 2 == 0 { &first } else { &second };
        let response = router.send(Some(&user), &body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK {
            assert!(answer["data"]["categories"].is_array(), "{answer:#}");
            admitted += 1;
            continue;
        }
        refused += 1;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer:#}");
        let retry_after: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Retry-After in seconds: {headers:?}"));
        assert!(retry_after >= 1, "{retry_after}");
        assert_eq!(
            headers.get("ratelimit-limit").and_then(|v| v.to_str().ok()),
            Some("100"),
            "{headers:?}"
        );
        assert_eq!(
            headers
                .get("ratelimit-remaining")
                .and_then(|v| v.to_str().ok()),
            Some("0"),
            "{headers:?}"
        );
        assert!(headers.contains_key("ratelimit-reset"), "{headers:?}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{answer:#}"
        );
    }
    println!("shared budget: {admitted} admitted, {refused} refused of 300");
    assert!(
        (95..=105).contains(&admitted),
        "the two routers admit 100 ± 5 together: {admitted}"
    );
    assert!(
        !redis_keys(REDIS_PORT, &keys.prefix).is_empty(),
        "the budget lives in Redis under RATE_LIMIT_KEY_PREFIX"
    );
    let counted = first.metric("router_rate_limited_total", "").await
        + second.metric("router_rate_limited_total", "").await;
    assert_eq!(
        counted, refused as f64,
        "router_rate_limited_total counts refusals"
    );

    // The budget is per client: another user is still served.
    let other = first
        .gql(Some(&token("user-2", false)), "{ categories }", json!({}))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.body);
}

/// With its Redis killed, a router falls back to its local limiter: every
/// request is still answered, and still limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_falls_back_to_local_when_redis_dies() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let mut redis = RedisProcess::start().await;
    let prefix = format!("shopgraph-test:fallback:{}:", uuid::Uuid::new_v4().simple());
    let mut router = RouterProcess::start(&[
        ("PRODUCT_SERVICE_URL", product.graphql_url()),
        ("REDIS_URL", redis.url()),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_REQUESTS", "20".into()),
        ("RATE_LIMIT_BURST", "20".into()),
        ("RATE_LIMIT_WINDOW", "1h".into()),
        ("RATE_LIMIT_KEY_PREFIX", prefix.clone()),
    ])
    .await;
    let body = json!({ "query": "{ categories }" });
    let statuses = |who: String, n: usize| {
        let router = &router;
        let body = &body;
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let status = router.send(Some(&who), body).await.status();
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "answered without hanging ({:?})",
                    started.elapsed()
                );
                statuses.push(status);
            }
            statuses
        }
    };
    let count = |statuses: &[StatusCode], status: StatusCode| {
        statuses.iter().filter(|s| **s == status).count()
    };

    // With Redis up: limited through Redis.
    let exhausted = statuses(token("user-2", false), 30).await;
    assert_eq!(count(&exhausted, StatusCode::OK), 20, "{exhausted:?}");
    assert_eq!(count(&exhausted, StatusCode::TOO_MANY_REQUESTS), 10);
    assert!(
        !redis_keys(redis.port, &prefix).is_empty(),
        "the limiter keeps its state in Redis"
    );
    let early = statuses(token("user-1", false), 5).await;
    assert_eq!(count(&early, StatusCode::OK), 5, "{early:?}");

    // Redis dies: answered by the local limiter, still limited.
    let log_before = router.log.text().len();
    redis.kill().await;
    let after = statuses(token("user-1", false), 60).await;
    println!(
        "after the Redis kill: {} admitted, {} refused of 60",
        count(&after, StatusCode::OK),
        count(&after, StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(
        count(&after, StatusCode::OK) + count(&after, StatusCode::TOO_MANY_REQUESTS),
        60,
        "every request is admitted or refused: {after:?}"
    );
    assert!(
        count(&after, StatusCode::OK) > 0,
        "it does not fail closed: {after:?}"
    );
    assert!(
        count(&after, StatusCode::TOO_MANY_REQUESTS) > 0,
        "it does not fail open: {after:?}"
    );
    assert!(router.running(), "the router stays up");
    let health = router
        .http
        .get(router.url("/health"))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), StatusCode::OK);
    let log = router.log.text();
    assert!(
        log[log_before..].to_ascii_lowercase().contains("redis"),
        "the fallback is logged:\n{}",
        &log[log_before..]
    );
}
