//! Federation `_entities`: batched, ordered, `null` for unknown ids.

use serde_json::{Value, json};

use crate::helpers::{As, Backend, GqlResponse, TestApp, backend_tests};

/// Runs `query` three times and returns the last answer with the fewest
/// statements any run cost. The counter sees the whole pool, so the outbox
/// relay publishing the products just created may add statements to one
/// run; unbatched, every run would cost more than one.
async fn fewest_statements(app: &TestApp, query: &str, variables: Value) -> (GqlResponse, u64) {
    let mut fewest = u64::MAX;
    let mut last = None;
    for _ in 0..3 {
        let before = app.statements.get();
        let response = app.gql(As::Anonymous, query, variables.clone()).await;
        fewest = fewest.min(app.statements.get() - before);
        last = Some(response);
    }
    (last.expect("three runs"), fewest)
}

const ENTITIES: &str = "query($representations: [_Any!]!) {
    _entities(representations: $representations) {
        ... on Product { id name price { amount } }
    }
}";

async fn a_batch_of_100_costs_one_statement_and_keeps_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut known = Vec::new();
    for i in 0..80 {
        known.push(
            app.create_product(&format!("Product {i:03}"), "2.50", 1, "Batch")
                .await,
        );
    }
    // Interleave 20 unknown ids (valid UUIDs and garbage) with the known ones.
    let mut requested: Vec<Option<&str>> = Vec::new();
    for (i, id) in known.iter().enumerate() {
        requested.push(Some(id));
        if i % 4 == 0 {
            requested.push(None);
        }
    }
    assert_eq!(requested.len(), 100);
    let representations: Vec<Value> = requested
        .iter()
        .enumerate()
        .map(|(i, id)| match id {
            Some(id) => json!({ "__typename": "Product", "id": id }),
            None if i % 2 == 0 => {
                json!({ "__typename": "Product", "id": uuid::Uuid::now_v7().to_string() })
            }
            None => json!({ "__typename": "Product", "id": "not-a-uuid" }),
        })
        .collect();

    let (response, statements) = fewest_statements(
        &app,
        ENTITIES,
        json!({ "representations": representations }),
    )
    .await;

    let entities = response.data()["_entities"].as_array().unwrap().clone();
    assert_eq!(entities.len(), 100);
    for (entity, id) in entities.iter().zip(&requested) {
        match id {
            Some(id) => assert_eq!(entity["id"], *id, "results follow representation order"),
            None => assert_eq!(entity, &json!(null), "unknown ids resolve to null"),
        }
    }
    assert_eq!(statements, 1, "one SQL statement for the whole batch");
}

async fn product_fields_in_one_request_share_a_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_product("A", "1.00", 1, "T").await;
    let b = app.create_product("B", "2.00", 1, "T").await;
    let (response, statements) = fewest_statements(
        &app,
        "query($a: ID!, $b: ID!) { a: product(id: $a) { name } b: product(id: $b) { name } }",
        json!({ "a": a, "b": b }),
    )
    .await;
    assert_eq!(
        response.data(),
        &json!({ "a": { "name": "A" }, "b": { "name": "B" } })
    );
    assert_eq!(statements, 1, "both fields share one statement");
}

async fn service_sdl_is_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // To the router (a signed caller); see identity_hop for the others.
    let response = app
        .gql_forwarded(
            &shopgraph_core::identity::Identity::Anonymous,
            "{ _service { sdl } }",
            json!({}),
        )
        .await;
    let sdl = response.data()["_service"]["sdl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sdl.contains("type Product @key(fields: \"id\")"), "{sdl}");
    assert!(sdl.contains("adjustStock(id: ID!, delta: Int!): Product!"));
}

backend_tests!(
    a_batch_of_100_costs_one_statement_and_keeps_order,
    product_fields_in_one_request_share_a_batch,
    service_sdl_is_served,
);
