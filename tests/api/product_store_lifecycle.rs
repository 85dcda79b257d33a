//! Migrations, seeding, readiness and graceful shutdown against real stores.

use std::time::Duration;

use product_subgraph::seed::demo_catalogue;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use serde_json::json;

use crate::helpers::{As, Backend, Options, TestApp, backend_tests, fresh_db, settings};

async fn migrations_apply_twice(backend: Backend) {
    let db = fresh_db(backend).await;
    let settings = settings(&db, Options::default());
    product_subgraph::migrate(&settings)
        .await
        .expect("first run");
    product_subgraph::migrate(&settings)
        .await
        .expect("second run is a no-op");
    let app = TestApp::spawn_on(db, Options::default()).await;
    let response = app
        .gql(As::Anonymous, "{ products { totalCount } }", json!({}))
        .await;
    assert_eq!(response.data()["products"]["totalCount"], 0);
}

async fn seeding_twice_does_not_duplicate(backend: Backend) {
    let db = fresh_db(backend).await;
    let seeded = Options {
        seed: true,
        ..Options::default()
    };
    let mut first = TestApp::spawn_on(db, seeded.clone()).await;
    first.begin_shutdown();
    first.wait_stopped().await.unwrap();
    let db = std::mem::replace(&mut first.db, fresh_db(backend).await);
    drop(first);

    let second = TestApp::spawn_on(db, seeded).await;
    let response = second
        .gql(As::Anonymous, "{ products { totalCount } }", json!({}))
        .await;
    assert_eq!(
        response.data()["products"]["totalCount"],
        demo_catalogue("EUR").len()
    );
}

#[tokio::test]
async fn readiness_fails_when_the_store_is_gone() {
    let mut app = TestApp::spawn(Backend::Postgres).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    app.db.destroy();
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "error");
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200, "liveness does not depend on the store");
}

/// A request blocked on a row lock is in flight when shutdown starts; it
/// must still complete, and the server must stop afterwards.
async fn graceful_shutdown_finishes_in_flight_requests(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let id = app.create_product("Locked", "5.00", 10, "Test").await;

    let locker = Database::connect(&app.db.url).await.unwrap();
    let lock = locker.begin().await.unwrap();
    let db_backend = lock.get_database_backend();
    let touch = match db_backend {
        DbBackend::Postgres => "UPDATE products SET updated_at = updated_at WHERE id = $1::uuid",
        _ => "UPDATE products SET updated_at = updated_at WHERE id = ?",
    };
    let id_value: sea_orm::Value = match db_backend {
        DbBackend::Postgres => id.clone().into(),
        _ => uuid::Uuid::parse_str(&id).unwrap().into(),
    };
    lock.execute_raw(Statement::from_sql_and_values(
        db_backend,
        touch,
        [id_value],
    ))
    .await
    .unwrap();

    let client = app.client.clone();
    let url = app.url("/graphql");
    let token = app.admin_token.clone();
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(token)
            .json(&json!({
                "query": "mutation($id: ID!) { adjustStock(id: $id, delta: -3) { stockQuantity } }",
                "variables": { "id": id },
            }))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the request waits for the lock");

    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "shutdown does not cut the request off"
    );
    let refused = reqwest::Client::new().get(app.url("/health")).send().await;
    assert!(refused.is_err(), "no new connections once shutdown started");

    lock.commit().await.unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["adjustStock"]["stockQuantity"], 7, "{body}");
    tokio::time::timeout(Duration::from_secs(10), app.wait_stopped())
        .await
        .expect("server stops after draining")
        .unwrap();
    locker.close().await.unwrap();
}

backend_tests!(
    migrations_apply_twice,
    seeding_twice_does_not_duplicate,
    graceful_shutdown_finishes_in_flight_requests,
);
