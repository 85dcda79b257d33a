//! Failures: null propagation through non-null fields, subgraph errors
//! carried to the client's path, subgraphs that are down, and requests the
//! router must refuse before planning.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn a_null_entity_under_a_non_null_field_nulls_the_nearest_nullable_parent() {
    // Review r5's author (user 404) is unknown to `accounts`, so `name`
    // (String!) is null, `author` (User!) cannot be null either: `review`
    // (nullable) becomes null, with one error at the field that was null.
    let fed = Federation::start().await;
    fed.query(
        r#"{ review(id: "r5") { body author { name } } }"#,
        json!({}),
    )
    .await
    .assert_errors(
        r#"{"review": null}"#,
        &[json!({ "path": ["review", "author", "name"] })],
    );
}

#[tokio::test]
async fn a_subgraph_error_on_a_non_null_entity_field_nulls_the_parent_with_one_error() {
    // `accounts` fails `name` of user 13 with its own error: the router
    // passes that error on (at the client's path) and adds no second one.
    let fed = Federation::start().await;
    fed.query(
        r#"{ review(id: "r6") { body author { name } } }"#,
        json!({}),
    )
    .await
    .assert_errors(
        r#"{"review": null}"#,
        &[json!({
            "message": "the name store is unavailable",
            "path": ["review", "author", "name"],
            "extensions": { "code": "STORAGE_ERROR", "serviceName": "accounts" },
        })],
    );
}

#[tokio::test]
async fn an_entity_fetch_error_carries_the_client_path_service_name_and_code() {
    let fed = Federation::start().await;
    fed.query("{ topReviews { id author { email } } }", json!({}))
        .await
        .assert_errors(
            r#"{"topReviews": [
                {"id": "r1", "author": {"email": "ada@example.com"}},
                {"id": "r2", "author": {"email": null}},
                {"id": "r3", "author": {"email": "ada@example.com"}},
                {"id": "r4", "author": {"email": "grace@example.com"}}
            ]}"#,
            &[json!({
                "message": "this email address is private",
                "path": ["topReviews", 1, "author", "email"],
                "extensions": { "code": "FORBIDDEN", "serviceName": "accounts" },
            })],
        );
}

#[tokio::test]
async fn a_root_field_error_keeps_its_path_and_code() {
    let fed = Federation::start().await;
    fed.query(r#"{ me { name } user(id: "999") { name } }"#, json!({}))
        .await
        .assert_errors(
            r#"{"me": {"name": "Ada Lovelace"}, "user": null}"#,
            &[json!({
                "message": "no user 999",
                "path": ["user"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "accounts" },
            })],
        );
}

#[tokio::test]
async fn a_subgraph_that_is_down_nulls_its_root_field_and_keeps_the_rest() {
    let fed = Federation::start_with_down(&["products"]).await;
    fed.query(r#"{ me { name } product(upc: "1") { name } }"#, json!({}))
        .await
        .assert_errors(
            r#"{"me": {"name": "Ada Lovelace"}, "product": null}"#,
            &[json!({
                "path": ["product"],
                "extensions": { "code": "SUBGRAPH_UNAVAILABLE", "serviceName": "products" },
            })],
        );
}

#[tokio::test]
async fn a_subgraph_that_is_down_nulls_only_the_fields_of_its_entity_fetch() {
    let fed = Federation::start_with_down(&["inventory"]).await;
    let response = fed.query("{ topProducts { name stock } }", json!({})).await;
    // One error for the one failed fetch. Its path is not pinned (a fetch
    // feeds several fields), but if present it points into `topProducts`.
    response.assert_errors(
        r#"{"topProducts": [
            {"name": "Table", "stock": null},
            {"name": "Couch", "stock": null},
            {"name": "Chair", "stock": null}
        ]}"#,
        &[json!({
            "extensions": { "code": "SUBGRAPH_UNAVAILABLE", "serviceName": "inventory" },
        })],
    );
    if let Some(path) = response.errors()[0].get("path") {
        assert_eq!(path[0], "topProducts", "error path {path}");
    }
}

#[tokio::test]
async fn invalid_requests_are_refused_with_400_and_no_data() {
    let fed = Federation::start().await;
    fed.query(r#"{ product(upc: "1") { nope } }"#, json!({}))
        .await
        .assert_rejected(Some("GRAPHQL_VALIDATION_FAILED"));
    fed.query(r#"{ product(upc: "1") { name "#, json!({}))
        .await
        .assert_rejected(Some("GRAPHQL_PARSE_FAILED"));
    // A required variable that is missing fails variable coercion.
    fed.query(
        "query ($upc: String!) { product(upc: $upc) { name } }",
        json!({}),
    )
    .await
    .assert_rejected(None);
    for name in crate::fixtures::NAMES {
        assert_eq!(fed.request_count(name), 0, "{name} was called");
    }
}
