//! `adjustStock` under concurrency: no oversell, no lost update.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::{As, Backend, TestApp, backend_tests};

const ADJUST: &str = "mutation($id: ID!, $delta: Int!) { adjustStock(id: $id, delta: $delta) { stockQuantity inStock } }";

async fn hundred_concurrent_decrements_on_fifty_sell_exactly_fifty(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let id = app
        .create_product("Limited edition", "99.00", 50, "Drops")
        .await;

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let app = Arc::clone(&app);
            let id = id.clone();
            tokio::spawn(async move {
                app.gql(As::Admin, ADJUST, json!({ "id": id, "delta": -1 }))
                    .await
            })
        })
        .collect();
    let mut succeeded = 0;
    let mut conflicts = 0;
    for task in tasks {
        let response = task.await.expect("request task");
        if response.body.get("errors").is_none() {
            succeeded += 1;
        } else {
            assert_eq!(response.code(), "CONFLICT", "{:#}", response.body);
            conflicts += 1;
        }
    }
    assert_eq!((succeeded, conflicts), (50, 50));

    let read = app
        .gql(
            As::Anonymous,
            "query($id: ID!) { product(id: $id) { stockQuantity inStock } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read.data()["product"],
        json!({ "stockQuantity": 0, "inStock": false })
    );
}

async fn adjustments_report_the_new_level_and_refuse_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_product("Mug", "8.00", 3, "Kitchen").await;

    let up = app
        .gql(As::Admin, ADJUST, json!({ "id": id, "delta": 7 }))
        .await;
    assert_eq!(up.data()["adjustStock"]["stockQuantity"], 10);

    let overdraw = app
        .gql(As::Admin, ADJUST, json!({ "id": id, "delta": -11 }))
        .await;
    assert_eq!(overdraw.code(), "CONFLICT");
    assert!(
        overdraw.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("has 10 in stock")
    );

    let overflow = app
        .gql(
            As::Admin,
            ADJUST,
            json!({ "id": id, "delta": 1_000_000_000 }),
        )
        .await;
    assert_eq!(overflow.code(), "CONFLICT");

    let down = app
        .gql(As::Admin, ADJUST, json!({ "id": id, "delta": -10 }))
        .await;
    assert_eq!(
        down.data()["adjustStock"],
        json!({ "stockQuantity": 0, "inStock": false })
    );
}

backend_tests!(
    hundred_concurrent_decrements_on_fifty_sell_exactly_fifty,
    adjustments_report_the_new_level_and_refuse_overdraw,
);
