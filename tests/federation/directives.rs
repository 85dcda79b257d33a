//! The federation directives as the router must honour them: `@requires`,
//! `@provides`, `@override`, `@shareable` and `@inaccessible`.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn requires_fields_are_fetched_before_the_dependent_entity_call() {
    let fed = Federation::start().await;
    fed.query(r#"{ product(upc: "1") { shippingEstimate } }"#, json!({}))
        .await
        .assert_data(r#"{"product": {"shippingEstimate": 600}}"#);
    // `inventory` got the required fields, with `weight` in kilograms.
    let batches = fed.representations("inventory");
    assert_eq!(batches.len(), 1, "{batches:?}");
    let representation = &batches[0][0];
    assert_eq!(representation["__typename"], "Product", "{representation}");
    assert_eq!(representation["upc"], "1", "{representation}");
    assert_eq!(representation["price"], 899, "{representation}");
    assert_eq!(
        representation["weight"].as_f64(),
        Some(12.0),
        "{representation}"
    );
}

#[tokio::test]
async fn requires_with_an_argument_keeps_the_clients_own_argument() {
    // The client wants grams (the default); the requirement wants
    // kilograms: both must be fetched, each where it belongs.
    let fed = Federation::start().await;
    fed.query(
        r#"{ product(upc: "3") { weight shippingEstimate } }"#,
        json!({}),
    )
    .await
    .assert_data(r#"{"product": {"weight": 5500.0, "shippingEstimate": 275}}"#);
}

#[tokio::test]
async fn requires_field_selected_through_fragments() {
    let fed = Federation::start().await;
    fed.query(
        "query { topProducts { ...Shipping } }
         fragment Shipping on Product { upc ... on Product { shippingEstimate } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"topProducts": [
            {"upc": "1", "shippingEstimate": 600},
            {"upc": "2", "shippingEstimate": 0},
            {"upc": "3", "shippingEstimate": 275}
        ]}"#,
    );
}

#[tokio::test]
async fn requires_an_inaccessible_field_the_client_cannot_select() {
    let fed = Federation::start().await;
    fed.query(
        r#"{ me { trusted } alan: user(id: "2") { name trusted } }"#,
        json!({}),
    )
    .await
    .assert_data(r#"{"me": {"trusted": true}, "alan": {"name": "Alan Turing", "trusted": false}}"#);
}

#[tokio::test]
async fn provided_fields_need_no_entity_call() {
    let fed = Federation::start().await;
    fed.query(
        "{ topReviews(first: 2) { body author { username } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"topReviews": [
            {"body": "Love it!", "author": {"username": "ada"}},
            {"body": "Too expensive.", "author": {"username": "alan"}}
        ]}"#,
    );
    assert_eq!(
        fed.request_count("accounts"),
        0,
        "{:?}",
        fed.requests("accounts")
    );
}

#[tokio::test]
async fn fields_beyond_the_provided_ones_come_from_the_owner() {
    let fed = Federation::start().await;
    fed.query(
        "{ topReviews(first: 2) { author { username name } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"topReviews": [
            {"author": {"username": "ada", "name": "Ada Lovelace"}},
            {"author": {"username": "alan", "name": "Alan Turing"}}
        ]}"#,
    );
    assert_eq!(
        fed.request_count("accounts"),
        1,
        "{:?}",
        fed.requests("accounts")
    );
}

#[tokio::test]
async fn an_overridden_field_comes_from_the_overriding_subgraph() {
    // `products` still serves a stale `inStock` (always false).
    let fed = Federation::start().await;
    fed.query("{ topProducts { upc inStock } }", json!({}))
        .await
        .assert_data(
            r#"{"topProducts": [
                {"upc": "1", "inStock": true},
                {"upc": "2", "inStock": true},
                {"upc": "3", "inStock": false}
            ]}"#,
        );
    for request in fed.requests("products") {
        let query = request["query"].as_str().unwrap_or_default();
        assert!(
            !query.contains("inStock"),
            "products was asked for inStock: {query}"
        );
    }
}

#[tokio::test]
async fn a_shareable_root_field_is_merged_from_both_subgraphs() {
    // `currency` exists only in products, `warehouseCount` only in
    // inventory, and `Storefront` has no key: both root fields are needed.
    let fed = Federation::start().await;
    fed.query("{ storefront { name currency warehouseCount } }", json!({}))
        .await
        .assert_data(
            r#"{"storefront": {"name": "Fixture Store", "currency": "EUR", "warehouseCount": 2}}"#,
        );
}

#[tokio::test]
async fn a_shareable_root_field_is_fetched_from_one_subgraph_when_one_suffices() {
    let fed = Federation::start().await;
    fed.query("{ storefront { name } }", json!({}))
        .await
        .assert_data(r#"{"storefront": {"name": "Fixture Store"}}"#);
    let calls = fed.request_count("products") + fed.request_count("inventory");
    assert_eq!(calls, 1, "one subgraph suffices for shared fields only");
}

#[tokio::test]
async fn an_inaccessible_field_is_rejected_by_validation() {
    let fed = Federation::start().await;
    fed.query("{ me { name riskScore } }", json!({}))
        .await
        .assert_rejected(Some("GRAPHQL_VALIDATION_FAILED"));
    assert_eq!(fed.request_count("accounts"), 0);
}

#[tokio::test]
async fn an_inaccessible_field_is_absent_from_introspection() {
    // (With a subgraph field beside it: an introspection-only query is
    // `operations::an_introspection_only_query_answers_exactly_what_was_asked`.)
    let fed = Federation::start().await;
    fed.query(
        r#"{ me { name } __type(name: "User") { fields { name } } }"#,
        json!({}),
    )
    .await
    .assert_data(
        r#"{"me": {"name": "Ada Lovelace"}, "__type": {"fields": [
            {"name": "id"}, {"name": "name"}, {"name": "username"},
            {"name": "email"}, {"name": "reviews"}, {"name": "trusted"}
        ]}}"#,
    );
}
