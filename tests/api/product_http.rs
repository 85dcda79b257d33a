//! GraphQL over HTTP details, health and metrics endpoints.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::helpers::{As, Backend, Options, TestApp};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await
}

#[tokio::test]
async fn queries_work_over_get_but_mutations_do_not() {
    let app = app().await;
    let ok = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ categories }")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({ "data": { "categories": [] } })
    );

    let mutation = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { deleteProduct(id: \"x\") }")])
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "METHOD_NOT_ALLOWED"
    );
}

/// In `serve` a subgraph shows GraphiQL only when `GRAPHIQL=true`.
#[tokio::test]
async fn browsers_get_graphiql_only_when_enabled() {
    let closed = app().await;
    let page = closed
        .client
        .get(closed.url("/graphql"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert!(
        !page.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "GraphiQL is off by default in serve"
    );
    assert!(!page.text().await.unwrap().contains("graphiql"));

    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            graphiql: true,
            ..Options::default()
        },
    )
    .await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("graphiql"));
}

#[tokio::test]
async fn request_errors_are_400_with_codes() {
    let app = app().await;
    let cases = [
        (
            "application/json",
            "{\"query\": \"{ categories \"}",
            "GRAPHQL_PARSE_FAILED",
        ),
        (
            "application/json",
            "{\"query\": \"{ nope }\"}",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("application/json", "{not json", "BAD_REQUEST"),
    ];
    for (content_type, body, code) in cases {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, "application/graphql-response+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/graphql-response+json"
        );
        let json: Value = response.json().await.unwrap();
        assert_eq!(
            json["errors"][0]["extensions"]["code"], code,
            "{body}: {json}"
        );
        assert!(json.get("data").is_none_or(Value::is_null));
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            max_body_bytes: 4096,
            ..Options::default()
        },
    )
    .await;
    let padding = " ".repeat(8192);
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": format!("{{ categories }}{padding}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn deep_queries_are_refused() {
    let app = app().await;
    let deep = format!(
        "{{ {}__typename{} }}",
        "__schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name ",
        "} } } } } } } } } } } } } } } } } } }"
    );
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": deep }))
        .send()
        .await
        .unwrap();
    let json: Value = response.json().await.unwrap();
    assert_eq!(
        json["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{json}"
    );
}

#[tokio::test]
async fn health_and_metrics() {
    let app = app().await;
    for path in ["/health", "/health/live", "/health/ready"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["checks"]["database"]["status"], "ok");

    app.gql(As::Anonymous, "{ categories }", json!({})).await;
    let refused = app
        .gql(
            As::Anonymous,
            "mutation { deleteProduct(id: \"x\") }",
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), "UNAUTHENTICATED");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        "graphql_requests_total{service=\"product\",operation_type=\"query\"}",
        "graphql_requests_total{service=\"product\",operation_type=\"mutation\"}",
        "graphql_request_duration_seconds_bucket{service=\"product\",operation_type=\"query\"",
        "graphql_errors_total{service=\"product\",code=\"UNAUTHENTICATED\"}",
        "db_statements_total{service=\"product\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
}
