//! Writes need an admin; a bad token is refused before GraphQL runs.

use serde_json::json;
use shopgraph_core::identity::TokenIssuer;

use crate::helpers::{As, Backend, TestApp, backend_tests};

const CREATE: &str =
    "mutation { createProduct(input: { name: \"N\", price: \"1.00\", category: \"C\" }) { id } }";

async fn writes_need_the_admin_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = app.gql(As::Anonymous, CREATE, json!({})).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    let user = app.gql(As::User, CREATE, json!({})).await;
    assert_eq!(user.code(), "FORBIDDEN");
    let admin = app.gql(As::Admin, CREATE, json!({})).await;
    admin.data();

    let id = admin.data()["createProduct"]["id"].clone();
    for mutation in [
        "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"x\" }) { id } }",
        "mutation($id: ID!) { deleteProduct(id: $id) }",
        "mutation($id: ID!) { adjustStock(id: $id, delta: 1) { id } }",
    ] {
        assert_eq!(
            app.gql(As::User, mutation, json!({ "id": id }))
                .await
                .code(),
            "FORBIDDEN"
        );
        assert_eq!(
            app.gql(As::Anonymous, mutation, json!({ "id": id }))
                .await
                .code(),
            "UNAUTHENTICATED"
        );
    }
    let read = app
        .gql(As::User, "{ products { totalCount } }", json!({}))
        .await;
    assert_eq!(
        read.data()["products"]["totalCount"],
        1,
        "refused writes changed nothing"
    );
}

async fn invalid_tokens_get_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let foreign = TokenIssuer::new(
        "some-other-secret-that-is-long-enough",
        "shopgraph",
        "shopgraph",
    )
    .issue("admin-1", &["admin"], std::time::Duration::from_secs(60))
    .unwrap();
    for header in [
        format!("Bearer {foreign}"),
        "Bearer not.a.jwt".into(),
        "Basic YWRtaW46YWRtaW4=".into(),
    ] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("authorization", header.clone())
            .json(&json!({ "query": "{ categories }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
        assert!(response.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
}

backend_tests!(writes_need_the_admin_role, invalid_tokens_get_401);
