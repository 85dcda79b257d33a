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
    let assets = shopgraph_core::graphiql::asset_paths();
    for asset in &assets {
        let file = closed.client.get(closed.url(asset)).send().await.unwrap();
        assert_eq!(file.status(), 404, "{asset} without GraphiQL");
    }

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
    assert_eq!(
        page.headers()["content-security-policy"],
        shopgraph_core::graphiql::CONTENT_SECURITY_POLICY
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("content=\"/graphql/ws\""), "{html}");
    for asset in &assets {
        let file = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(file.status(), 200, "{asset}");
    }
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

/// The public port serves the probes and GraphQL; `/metrics` only on the
/// metrics listener (the public port answers 404 there, whoever asks).
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
    let public = app.get("/metrics").await;
    assert_eq!(public.status(), 404, "no /metrics on the public port");
    let public_text = public.text().await.unwrap_or_default();
    assert!(
        !public_text.contains("graphql_requests_total"),
        "{public_text}"
    );
    let scraped = app.metrics().await;
    assert_eq!(scraped.status(), 200);
    let metrics = scraped.text().await.unwrap();
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
    // The metrics listener serves nothing else.
    let addr = app.metrics_addr.expect("the metrics listener runs");
    for path in ["/graphql", "/health", "/"] {
        let other = app
            .client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "{path} on the metrics listener");
    }
}

/// `shopgraph serve product` as production runs it: the public port answers
/// the probes and GraphQL, and 404 on `/metrics`; the metrics listener
/// (`PRODUCT_METRICS_PORT`) serves the exposition, counting the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_metrics_off_the_public_port() {
    let db = crate::helpers::fresh_db(Backend::Sqlite).await;
    let product = crate::harness::SubgraphProcess::start("product", &db.url, &[]).await;
    let http = crate::harness::client();
    for path in ["/health", "/health/live", "/health/ready"] {
        let response = http.get(product.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let answer: Value = http
        .post(product.graphql_url())
        .json(&json!({ "query": "{ categories }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["data"]["categories"], json!([]), "{answer:#}");
    let public = http.get(product.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "no /metrics on the public port");
    let scraped = http.get(product.metrics_url()).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains("graphql_requests_total{service=\"product\",operation_type=\"query\"} 1"),
        "{text}"
    );
}
