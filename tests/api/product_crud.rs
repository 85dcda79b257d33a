//! Create, read, update and delete through the GraphQL API.

use serde_json::json;

use crate::helpers::{As, Backend, TestApp, backend_tests};

const PRODUCT_FIELDS: &str = "id name description price { amount currency } stockQuantity inStock category imageUrl createdAt updatedAt";

async fn create_read_update_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let created = app
        .gql(
            As::Admin,
            &format!("mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ {PRODUCT_FIELDS} }} }}"),
            json!({ "input": {
                "name": "  Moka pot ", "description": "Stovetop espresso maker", "price": "34.9",
                "currency": "USD", "stockQuantity": 12, "category": "Kitchen",
                "imageUrl": "https://example.com/moka.jpg"
            }}),
        )
        .await;
    let product = created.data()["createProduct"].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(product["name"], "Moka pot", "names are trimmed");
    assert_eq!(
        product["price"],
        json!({ "amount": "34.90", "currency": "USD" })
    );
    assert_eq!(product["stockQuantity"], 12);
    assert_eq!(product["inStock"], true);

    let read = app
        .gql(
            As::Anonymous,
            &format!("query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read.data()["product"],
        product,
        "a read returns what was created"
    );

    let updated = app
        .gql(
            As::Admin,
            "mutation($id: ID!, $input: UpdateProductInput!) {
                updateProduct(id: $id, input: $input) { name description price { amount } stockQuantity inStock imageUrl category updatedAt }
            }",
            json!({ "id": id, "input": { "name": "Moka pot 6 cup", "description": null, "price": "39.99", "stockQuantity": 0 } }),
        )
        .await;
    let updated = &updated.data()["updateProduct"];
    assert_eq!(updated["name"], "Moka pot 6 cup");
    assert_eq!(
        updated["description"],
        json!(null),
        "null clears the description"
    );
    assert_eq!(
        updated["imageUrl"], "https://example.com/moka.jpg",
        "omitted fields stay"
    );
    assert_eq!(updated["category"], "Kitchen");
    assert_eq!(updated["price"]["amount"], "39.99");
    assert_eq!(updated["inStock"], false);
    assert!(updated["updatedAt"].as_str() >= product["updatedAt"].as_str());

    let deleted = app
        .gql(
            As::Admin,
            "mutation($id: ID!) { deleteProduct(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted.data()["deleteProduct"], true);
    let gone = app
        .gql(
            As::Anonymous,
            "query($id: ID!) { product(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(gone.data()["product"], json!(null));

    let again = app
        .gql(
            As::Admin,
            "mutation($id: ID!) { deleteProduct(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again.code(), "NOT_FOUND");
}

async fn prices_stay_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for price in ["0.10", "0.20", "19.99", "99999999.99", "0.00", "1234567.01"] {
        let id = app.create_product("Exact", price, 1, "Test").await;
        let read = app
            .gql(
                As::Anonymous,
                "query($id: ID!) { product(id: $id) { price { amount } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(read.data()["product"]["price"]["amount"], price);
    }
}

async fn unknown_and_malformed_ids_read_as_null(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let read = app
        .gql(
            As::Anonymous,
            "{ a: product(id: \"0190a0a0-0000-7000-8000-000000000000\") { id } b: product(id: \"not-a-uuid\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(read.data(), &json!({ "a": null, "b": null }));
}

backend_tests!(
    create_read_update_delete,
    prices_stay_exact,
    unknown_and_malformed_ids_read_as_null
);
