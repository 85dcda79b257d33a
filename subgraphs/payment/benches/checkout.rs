//! Checkout throughput of the payment subgraph on MariaDB.
//!
//! Starts product and basket (SQLite) and payment (fresh MariaDB database
//! from the subgraph kit's testkit), then each client, back to back, puts
//! one line in the basket of a new shopper and checks it out: every
//! checkout reads the basket over GraphQL, reserves its units in product,
//! locks the basket, inserts the payment and its lines, charges the
//! simulated provider and records the outcome. (A new shopper per
//! iteration, because a checked-out basket stays locked until its
//! `PaymentCompleted` arrives; the add is part of every iteration, so
//! compare numbers of this version of the bench only.)
//!
//! ```text
//! cargo bench -p payment-subgraph --bench checkout
//! ```

use std::time::Duration;

use basket_subgraph::BasketSettings;
use payment_subgraph::PaymentSettings;
use product_subgraph::ProductSettings;
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::identity::{ADMIN_ROLE, TokenIssuer};
use shopgraph_core::settings::RunMode;
use subgraph_kit::service::ServiceApp;
use subgraph_kit::settings::ServiceSettings;
use subgraph_kit::testkit::load::{self, LoadReport, env_number, graphql_ok};
use subgraph_kit::testkit::{TempBackend, TempDatabase};

const SECRET: &str = "benchmark-secret-0123456789abcdef0123";

fn env(service: &str, db: &TempDatabase, extra: &[(&str, String)]) -> Env {
    let prefix = service.to_ascii_uppercase();
    let mut pairs = vec![
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        (format!("{prefix}_PORT"), "0".to_owned()),
        (format!("{prefix}_METRICS_PORT"), "0".to_owned()),
        (format!("{prefix}_DATABASE_URL"), db.url.clone()),
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
        ("ACCEPT_DIRECT_TOKENS".to_owned(), "true".to_owned()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "20".to_owned()),
    ];
    pairs.extend(
        shopgraph_core::hop::HopKeyPair::of_this_process()
            .env_vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Env::from_pairs(pairs)
}

fn start(app: ServiceApp) -> String {
    let url = format!("http://{}/graphql", app.local_addr().expect("address"));
    tokio::spawn(app.run(std::future::pending()));
    url
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env_number("BENCH_SECONDS", 5);
    let concurrency: usize = env_number("BENCH_CONCURRENCY", 16);

    let (product_db, basket_db) = (
        TempDatabase::create(TempBackend::Sqlite).await,
        TempDatabase::create(TempBackend::Sqlite).await,
    );
    let payment_db = TempDatabase::create(TempBackend::MariaDb).await;
    // One bus, as in `shopgraph dev`: sales reach product and basket.
    let bus = subgraph_kit::events::EventBus::in_process();
    let product = start(
        product_subgraph::build(
            ProductSettings::from_env(&env("product", &product_db, &[]), RunMode::Serve).unwrap(),
            bus.clone(),
        )
        .await
        .unwrap(),
    );
    let basket_env = env(
        "basket",
        &basket_db,
        &[("PRODUCT_SERVICE_URL", product.clone())],
    );
    let basket = start(
        basket_subgraph::build(
            BasketSettings::from_env(&basket_env, RunMode::Serve).unwrap(),
            bus.clone(),
        )
        .await
        .unwrap(),
    );
    let payment_env = env(
        "payment",
        &payment_db,
        &[
            ("BASKET_SERVICE_URL", basket.clone()),
            ("PRODUCT_SERVICE_URL", product.clone()),
        ],
    );
    let payment = start(
        payment_subgraph::build(
            PaymentSettings::from_env(&payment_env, RunMode::Serve).unwrap(),
            bus.clone(),
        )
        .await
        .unwrap(),
    );

    let jwt =
        ServiceSettings::from_env(&env("bench", &payment_db, &[]), "bench", 0, RunMode::Serve)
            .unwrap()
            .auth
            .direct_tokens
            .expect("the bench accepts direct tokens");
    let authority = TokenIssuer::from_settings(&jwt).expect("HS256 is on");
    let hour = Duration::from_secs(3600);
    let admin = authority.issue("admin", &[ADMIN_ROLE], hour).unwrap();
    let client = reqwest::Client::new();
    let created = post(
        &client,
        &product,
        &admin,
        "mutation { createProduct(input: { name: \"Bench mug\", price: \"9.99\", category: \"Bench\", stockQuantity: 100000000 }) { id } }",
        json!({}),
    )
    .await;
    let product_id = created["data"]["createProduct"]["id"]
        .as_str()
        .expect("product")
        .to_owned();
    println!(
        "checkout on MariaDB (product + basket on SQLite), {concurrency} concurrent clients, {seconds}s\n"
    );
    println!("{}", LoadReport::header("payments"));
    let report = load::run(concurrency, Duration::from_secs(seconds), move |worker, iteration| {
        let (client, authority) = (client.clone(), authority.clone());
        let (basket, payment, product_id) = (basket.clone(), payment.clone(), product_id.clone());
        async move {
            let Ok(token) = authority.issue(&format!("bench-{worker}-{iteration}"), &[], hour)
            else {
                return false;
            };
            let added = client.post(&basket).bearer_auth(&token).json(&json!({
                "query": "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 2) { itemCount } }",
                "variables": { "p": product_id },
            }));
            if !graphql_ok(added).await {
                return false;
            }
            let request = client.post(&payment).bearer_auth(&token).json(&json!({
                "query": "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }",
                "variables": { "input": {
                    "idempotencyKey": format!("bench-{worker}-{iteration}"),
                    "method": "CARD",
                    "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" },
                } },
            }));
            graphql_ok(request).await
        }
    })
    .await;
    println!(
        "{}",
        report.row("add + checkout (payments/s)", report.latencies.len() as f64)
    );
    report.require_success("add + checkout");
}
