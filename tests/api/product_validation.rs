//! Every bad input gets a coded error, never a panic or a 500.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{As, Backend, TestApp, backend_tests};

const CREATE: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";

fn input(overrides: Value) -> Value {
    let mut base =
        json!({ "name": "Valid", "price": "1.00", "category": "Test", "stockQuantity": 1 });
    for (key, value) in overrides.as_object().unwrap() {
        base[key] = value.clone();
    }
    json!({ "input": base })
}

async fn invalid_product_input_is_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (overrides, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "   " }), "name"),
        (json!({ "price": "-0.01" }), "price"),
        (json!({ "price": "1.001" }), "price"),
        (json!({ "price": "1000000000000" }), "price"),
        (json!({ "stockQuantity": -1 }), "stockQuantity"),
        (json!({ "category": "" }), "category"),
        (json!({ "currency": "euro" }), "currency"),
        (json!({ "imageUrl": "javascript:alert(1)" }), "imageUrl"),
    ] {
        let response = app.gql(As::Admin, CREATE, input(overrides.clone())).await;
        assert_eq!(
            response.code(),
            "BAD_USER_INPUT",
            "{overrides}: {:#}",
            response.body
        );
        let message = response.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message} names {field}");
    }
    let listing = app
        .gql(
            As::Anonymous,
            "{ products(first: 100) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listing.data()["products"]["totalCount"],
        0,
        "nothing invalid was stored"
    );
}

async fn malformed_values_get_codes_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Each malformed request, and exactly the status and error codes it gets.
    // (A variable of the wrong type or a literal argument of the wrong type
    // is refused before execution: 400. A value the domain refuses, or a
    // missing required variable, is an error of the field: 200.)
    let cases = [
        (
            CREATE,
            input(json!({ "price": "twelve" })),
            StatusCode::OK,
            vec!["BAD_USER_INPUT"],
        ),
        (
            CREATE,
            input(json!({ "stockQuantity": "lots" })),
            StatusCode::BAD_REQUEST,
            vec!["BAD_USER_INPUT"],
        ),
        (CREATE, json!({}), StatusCode::OK, vec!["BAD_USER_INPUT"]),
        (
            "{ products(first: \"ten\") { totalCount } }",
            json!({}),
            StatusCode::BAD_REQUEST,
            vec!["BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"],
        ),
        (
            "{ products { noSuchField } }",
            json!({}),
            StatusCode::BAD_REQUEST,
            vec!["GRAPHQL_VALIDATION_FAILED"],
        ),
    ];
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for (query, variables, status, codes) in cases {
        let response = app.gql(As::Admin, query, variables.clone()).await;
        expected.push((
            query,
            variables.clone(),
            status,
            codes.into_iter().map(str::to_owned).collect::<Vec<_>>(),
        ));
        got.push((query, variables, response.status, response.codes()));
    }
    assert_eq!(got, expected);
}

async fn unknown_ids_on_writes_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        for (query, variables) in [
            (
                "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"x\" }) { id } }",
                json!({ "id": id }),
            ),
            (
                "mutation($id: ID!) { deleteProduct(id: $id) }",
                json!({ "id": id }),
            ),
            (
                "mutation($id: ID!) { adjustStock(id: $id, delta: 1) { id } }",
                json!({ "id": id }),
            ),
        ] {
            let response = app.gql(As::Admin, query, variables).await;
            assert_eq!(response.code(), "NOT_FOUND", "{query} with {id}");
        }
    }
    let id = app.create_product("Real", "1.00", 1, "T").await;
    let zero = app
        .gql(
            As::Admin,
            "mutation($id: ID!) { adjustStock(id: $id, delta: 0) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(zero.code(), "BAD_USER_INPUT");
    let empty_name = app
        .gql(
            As::Admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"\" }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(empty_name.code(), "BAD_USER_INPUT");
}

backend_tests!(
    invalid_product_input_is_bad_user_input,
    malformed_values_get_codes_too,
    unknown_ids_on_writes_are_not_found,
);
