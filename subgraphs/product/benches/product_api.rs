//! Load benchmark of the product subgraph on PostgreSQL.
//!
//! Starts the real subgraph (release build, fresh PostgreSQL database from
//! the subgraph kit's testkit, 200 products), then drives it over HTTP on
//! loopback with a fixed number of concurrent clients for a fixed time per
//! scenario, and prints requests/s, latency percentiles and SQL statements
//! per request.
//!
//! ```text
//! cargo bench -p product-subgraph --bench product_api
//! BENCH_SECONDS=10 BENCH_CONCURRENCY=32 cargo bench -p product-subgraph --bench product_api
//! ```

use std::time::Duration;

use chrono::Utc;
use product_subgraph::ProductSettings;
use product_subgraph::domain::Product;
use product_subgraph::store::ProductStore;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::settings::RunMode;
use subgraph_kit::testkit::load::{self, LoadReport, env_number, graphql_ok};
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use uuid::Uuid;

const PRODUCTS: usize = 200;

#[tokio::main]
async fn main() {
    let seconds: u64 = env_number("BENCH_SECONDS", 5);
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 16);

    let db = TempDatabase::create(TempBackend::Postgres).await;
    let [signing, trusted] = shopgraph_core::hop::HopKeyPair::of_this_process().env_vars();
    let env = Env::from_pairs([
        (signing.0, signing.1.to_owned()),
        (trusted.0, trusted.1.to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PRODUCT_PORT", "0".to_owned()),
        ("METRICS_PORT", "0".to_owned()),
        ("PRODUCT_DATABASE_URL", db.url.clone()),
        ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
    ]);
    let settings = ProductSettings::from_env(&env, RunMode::Serve).expect("settings");
    // Every request signed, as the router signs it: `serve` refuses
    // unsigned ones, and verifying the signature is part of the cost.
    let signer = shopgraph_core::hop::HopSettings::from_env(&env, RunMode::Serve)
        .and_then(|hop| hop.require_signer())
        .expect("the hop signing key");
    let app = product_subgraph::build(settings, subgraph_kit::events::EventBus::in_process())
        .await
        .expect("subgraph starts");
    let addr = app.local_addr().expect("address");
    let statements = app.statements();
    tokio::spawn(app.run(std::future::pending()));

    let ids = insert_products(&db.url).await;
    let representations: Vec<Value> = ids
        .iter()
        .take(100)
        .map(|id| json!({ "__typename": "Product", "id": id.to_string() }))
        .collect();
    let scenarios = [
        (
            "products(first: 100)",
            json!({ "query": "{ products(first: 100) { edges { node { id name price { amount currency } stockQuantity inStock } } pageInfo { hasNextPage endCursor } } }" }),
        ),
        (
            "_entities x100",
            json!({
                "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name price { amount currency } } } }",
                "variables": { "r": representations },
            }),
        ),
        (
            "product(id)",
            json!({
                "query": "query($id: ID!) { product(id: $id) { id name price { amount } stockQuantity } }",
                "variables": { "id": ids[0].to_string() },
            }),
        ),
    ];

    println!(
        "product subgraph on PostgreSQL, {PRODUCTS} products, {concurrency} concurrent clients, {seconds}s per scenario\n"
    );
    println!("{}", LoadReport::header("stmts/req"));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/graphql");
    let uri: axum::http::Uri = url.parse().expect("a URI");
    for (name, body) in scenarios {
        let body = axum::body::Bytes::from(serde_json::to_vec(&body).expect("body"));
        let send = {
            let (client, url, uri, signer) =
                (client.clone(), url.clone(), uri.clone(), signer.clone());
            move |_, _| {
                let (client, url, uri, signer, body) = (
                    client.clone(),
                    url.clone(),
                    uri.clone(),
                    signer.clone(),
                    body.clone(),
                );
                async move {
                    let mut headers = axum::http::HeaderMap::new();
                    headers.insert(
                        axum::http::header::CONTENT_TYPE,
                        axum::http::HeaderValue::from_static("application/json"),
                    );
                    if signer
                        .sign(
                            &axum::http::Method::POST,
                            &uri,
                            &mut headers,
                            &body,
                            "product",
                        )
                        .await
                        .is_err()
                    {
                        return false;
                    }
                    graphql_ok(client.post(&url).headers(headers).body(body)).await
                }
            }
        };
        // Warm up connections and caches.
        load::run(concurrency, Duration::from_millis(500), send.clone()).await;
        let before = statements.get();
        let report = load::run(concurrency, Duration::from_secs(seconds), send).await;
        let per_request = (statements.get() - before) as f64 / report.latencies.len().max(1) as f64;
        println!("{}", report.row(name, per_request));
        report.require_success(name);
    }
}

async fn insert_products(url: &str) -> Vec<Uuid> {
    let conn = sea_orm::Database::connect(url).await.expect("connect");
    let now = Utc::now();
    let products: Vec<Product> = (0..PRODUCTS)
        .map(|i| Product {
            id: Uuid::now_v7(),
            name: format!("Benchmark product {i:04}"),
            description: Some("A product that exists to be fetched quickly.".into()),
            price: Decimal::new(199 + i as i64 * 37, 2),
            currency: "EUR".into(),
            stock_quantity: (i % 17) as i32,
            category: format!("Category {}", i % 8),
            image_url: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let ids = products.iter().map(|p| p.id).collect();
    ProductStore::new(conn, Default::default(), 5)
        .insert_missing(products)
        .await
        .expect("insert products");
    ids
}
