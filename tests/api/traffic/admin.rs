//! The admin listener (who may see what) and replica health as the admin
//! API and `/health/ready` report it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fault_proxy::{FaultProxy, Mode};
use crate::harness::{RouterProcess, eventually, token};
use crate::helpers::Backend;
use crate::shop::Shop;

/// The admin listener refuses anonymous (401) and non-admin (403) callers
/// on every endpoint, shows replicas and breakers to admins, and follows a
/// replica going down and coming back (as `/health/ready` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_refuse_anonymous_callers_and_show_replica_health() {
    let shop = Shop::spawn(Backend::Sqlite).await;
    let proxy = FaultProxy::start(&shop.product.graphql_url()).await;
    let mut vars: Vec<(&str, String)> = Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &shop.notification,
    );
    vars.retain(|(k, _)| *k != "PRODUCT_SERVICE_URL");
    vars.push(("PRODUCT_SERVICE_URL", proxy.graphql_url()));
    let router = RouterProcess::start(&vars).await;
    let admin = token("admin-1", true);
    let user = token("user-1", false);

    for path in [
        "/admin/status",
        "/admin/services",
        "/admin/loadbalancer/product",
        "/admin/circuitbreaker/product",
    ] {
        let (status, _) = router.admin(None, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "anonymous {path}");
        let (status, _) = router.admin(Some(&user), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "user {path}");
        let (status, body) = router.admin(Some(&admin), path).await;
        assert_eq!(status, StatusCode::OK, "admin {path}: {body:#}");
        assert!(body.is_object(), "admin {path} answers JSON: {body:#}");
    }
    let (status, services) = router.admin(Some(&admin), "/admin/services").await;
    assert_eq!(status, StatusCode::OK);
    for service in ["product", "basket", "payment", "notification"] {
        assert!(services.to_string().contains(service), "{services:#}");
    }
    let (status, _) = router.admin(Some(&admin), "/admin/loadbalancer/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = router
        .admin(Some(&admin), "/admin/circuitbreaker/nope")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, lb) = router
        .admin(Some(&admin), "/admin/loadbalancer/product")
        .await;
    assert_eq!(lb["service"], "product");
    let replicas = lb["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 1, "{lb:#}");
    for field in [
        "url",
        "weight",
        "healthy",
        "ejected",
        "in_flight",
        "requests",
        "failures",
        "latency_ms",
    ] {
        assert!(replicas[0].get(field).is_some(), "{field} in {lb:#}");
    }
    assert_eq!(replicas[0]["url"], proxy.graphql_url());
    let (_, breaker) = router
        .admin(Some(&admin), "/admin/circuitbreaker/product")
        .await;
    assert_eq!(breaker["service"], "product");
    assert_eq!(breaker["enabled"], true);
    assert_eq!(breaker["state"], "closed");

    let ready = || async {
        router
            .http
            .get(router.url("/health/ready"))
            .send()
            .await
            .map(|r| r.status())
            .ok()
    };
    let proxy_url = proxy.graphql_url();
    assert!(
        eventually(Duration::from_secs(5), || async {
            ready().await == Some(StatusCode::OK)
        })
        .await,
        "ready once every subgraph has a healthy replica"
    );
    let detailed: Value = router
        .http
        .get(router.admin_url("/health/detailed"))
        .send()
        .await
        .expect("/health/detailed answers")
        .json()
        .await
        .expect("JSON");
    assert!(detailed.to_string().contains(&proxy_url), "{detailed:#}");

    // The replica goes down: unhealthy, not ready, fetches fail fast.
    proxy.set_mode(Mode::Refuse).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            router.replica("product", &proxy_url).await["healthy"] == false
        })
        .await,
        "a refusing replica is marked unhealthy"
    );
    assert_eq!(ready().await, Some(StatusCode::SERVICE_UNAVAILABLE));
    let started = Instant::now();
    let down = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(down.code(), "SUBGRAPH_UNAVAILABLE", "{:#}", down.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails fast, well within SUBGRAPH_TIMEOUT: {:?}",
        started.elapsed()
    );

    // And comes back.
    proxy.set_mode(Mode::PASS).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            router.replica("product", &proxy_url).await["healthy"] == true
        })
        .await,
        "the replica is healthy again"
    );
    assert_eq!(ready().await, Some(StatusCode::OK));
    let back = router.gql(None, "{ categories }", json!({})).await;
    assert!(back.data()["categories"].is_array());
}
