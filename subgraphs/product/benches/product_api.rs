//! Load benchmark of the product subgraph on PostgreSQL.
//!
//! Starts the real subgraph (release build, fresh PostgreSQL database from
//! the platform testkit, 200 products), then drives it over HTTP on
//! loopback with a fixed number of concurrent clients for a fixed time per
//! scenario, and prints requests/s, latency percentiles and SQL statements
//! per request.
//!
//! ```text
//! cargo bench -p product-subgraph --bench product_api
//! BENCH_SECONDS=10 BENCH_CONCURRENCY=32 cargo bench -p product-subgraph --bench product_api
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use product_subgraph::ProductSettings;
use product_subgraph::domain::Product;
use product_subgraph::store::ProductStore;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shopgraph_platform::config::Env;
use shopgraph_platform::settings::RunMode;
use shopgraph_platform::testkit::{TempBackend, TempDatabase};
use uuid::Uuid;

const PRODUCTS: usize = 200;

struct Scenario {
    name: &'static str,
    body: Value,
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env_number("BENCH_SECONDS", 5);
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 16);

    let db = TempDatabase::create(TempBackend::Postgres).await;
    let env = Env::from_pairs([
        ("HOST", "127.0.0.1".to_owned()),
        ("PRODUCT_PORT", "0".to_owned()),
        ("PRODUCT_DATABASE_URL", db.url.clone()),
        ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
    ]);
    let settings = ProductSettings::from_env(&env, RunMode::Serve).expect("settings");
    let app = product_subgraph::build(settings)
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
        Scenario {
            name: "products(first: 100)",
            body: json!({ "query": "{ products(first: 100) { edges { node { id name price { amount currency } stockQuantity inStock } } pageInfo { hasNextPage endCursor } } }" }),
        },
        Scenario {
            name: "_entities x100",
            body: json!({
                "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name price { amount currency } } } }",
                "variables": { "r": representations },
            }),
        },
        Scenario {
            name: "product(id)",
            body: json!({
                "query": "query($id: ID!) { product(id: $id) { id name price { amount } stockQuantity } }",
                "variables": { "id": ids[0].to_string() },
            }),
        },
    ];

    println!(
        "product subgraph on PostgreSQL, {PRODUCTS} products, {concurrency} concurrent clients, {seconds}s per scenario\n"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}",
        "scenario", "req/s", "p50 ms", "p99 ms", "max ms", "stmts/req", "errors"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let url = format!("http://{addr}/graphql");
    for scenario in scenarios {
        // Warm up connections and caches.
        run(
            &client,
            &url,
            &scenario.body,
            concurrency,
            Duration::from_millis(500),
        )
        .await;
        let before = statements.get();
        let result = run(
            &client,
            &url,
            &scenario.body,
            concurrency,
            Duration::from_secs(seconds),
        )
        .await;
        let executed = statements.get() - before;
        let mut latencies = result.latencies;
        latencies.sort_unstable();
        let requests = latencies.len().max(1);
        println!(
            "{:<22} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>8}",
            scenario.name,
            latencies.len() as f64 / result.elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            executed as f64 / requests as f64,
            result.errors,
        );
    }
}

struct RunResult {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

async fn run(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    concurrency: usize,
    duration: Duration,
) -> RunResult {
    let started = Instant::now();
    let deadline = started + duration;
    let body = Arc::new(serde_json::to_vec(body).expect("body"));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), Arc::clone(&body));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    let ok = match response {
                        Ok(response) if response.status().is_success() => {
                            match response.bytes().await {
                                Ok(bytes) => !bytes.windows(9).any(|w| w == b"\"errors\":"),
                                Err(_) => false,
                            }
                        }
                        _ => false,
                    };
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut result = RunResult {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let (latencies, errors) = worker.await.expect("worker");
        result.latencies.extend(latencies);
        result.errors += errors;
    }
    result.elapsed = started.elapsed();
    result
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
    ProductStore::new(conn)
        .insert_missing(products)
        .await
        .expect("insert products");
    ids
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
