//! Inbox latency of the notification subgraph on PostgreSQL:
//! `myNotifications(first: 50)` for a user with 1000 notifications.
//!
//! ```text
//! cargo bench -p notification-subgraph --bench inbox
//! ```

use std::time::Duration;

use notification_subgraph::NotificationSettings;
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::identity::{ADMIN_ROLE, TokenIssuer};
use shopgraph_core::settings::RunMode;
use subgraph_kit::testkit::load::{self, LoadReport, env_number, graphql_ok};
use subgraph_kit::testkit::{TempBackend, TempDatabase};

const SECRET: &str = "benchmark-secret-0123456789abcdef0123";
const NOTIFICATIONS: usize = 1000;

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
        ("NOTIFICATION_PORT", "0".to_owned()),
        ("METRICS_PORT", "0".to_owned()),
        ("NOTIFICATION_DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("ACCEPT_DIRECT_TOKENS", "true".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
    ]);
    let settings = NotificationSettings::from_env(&env, RunMode::Serve).expect("settings");
    let app = notification_subgraph::build(settings, subgraph_kit::events::EventBus::in_process())
        .await
        .expect("subgraph starts");
    let url = format!("http://{}/graphql", app.local_addr().expect("address"));
    let statements = app.statements();
    tokio::spawn(app.run(std::future::pending()));

    let authority = TokenIssuer::new(SECRET, "shopgraph", "shopgraph");
    let hour = Duration::from_secs(3600);
    let admin = authority.issue("admin", &[ADMIN_ROLE], hour).unwrap();
    let user = authority.issue("bench-user", &[], hour).unwrap();
    let client = reqwest::Client::new();
    for batch in 0..NOTIFICATIONS / 100 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| {
                json!({ "userId": "bench-user", "type": "SYSTEM", "title": format!("Notice {batch}-{i}"),
                        "message": "Something happened in the shop.", "data": { "batch": batch } })
            })
            .collect();
        let response: Value = client
            .post(&url)
            .bearer_auth(&admin)
            .json(&json!({
                "query": "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id } }",
                "variables": { "inputs": inputs },
            }))
            .send()
            .await
            .expect("seed request")
            .json()
            .await
            .expect("JSON");
        assert!(response.get("errors").is_none(), "{response}");
    }

    println!(
        "notification subgraph on PostgreSQL, {NOTIFICATIONS} notifications for one user, {concurrency} concurrent clients, {seconds}s\n"
    );
    println!("{}", LoadReport::header("stmts/req"));
    let body = serde_json::to_vec(&json!({
        "query": "{ myNotifications(first: 50) { edges { node { id type title message data status priority createdAt } } pageInfo { hasNextPage endCursor } } }"
    }))
    .unwrap();
    let send = move |_, _| {
        let request = client
            .post(&url)
            .bearer_auth(&user)
            .header("content-type", "application/json")
            .body(body.clone());
        graphql_ok(request)
    };
    load::run(concurrency, Duration::from_millis(500), send.clone()).await;
    let before = statements.get();
    let report = load::run(concurrency, Duration::from_secs(seconds), send).await;
    let per_request = (statements.get() - before) as f64 / report.latencies.len().max(1) as f64;
    println!("{}", report.row("myNotifications(first: 50)", per_request));
    report.require_success("myNotifications(first: 50)");
}
