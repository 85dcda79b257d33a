//! Subscription fan-out benchmark: N websocket subscribers on one router,
//! every one following the same product's `stockChanged`, while stock
//! changes at a steady rate.
//!
//!   router/benches/fanout.sh            # builds release, runs this, prints the table
//!
//! Setup (all release builds, 127.0.0.1): `shopgraph dev` (the four
//! subgraphs on SQLite, the in-process event bus) and a separate
//! `shopgraph serve router` in front of it, whose memory is measured. Each
//! subscriber is a graphql-transport-ws connection to that router,
//! signed in as a user of its own (or one of `FANOUT_USERS`). For each N in `FANOUT_SIZES`:
//!
//! 1. connect N subscribers and subscribe; measure the router's RSS before
//!    and after → memory per idle subscriber (client socket, router
//!    state, its share of the upstream connection), and the router's
//!    websockets to the product subgraph (its admin `/metrics`);
//! 2. change the product's stock `FANOUT_EVENTS` times at `FANOUT_RATE`
//!    per second (admin `adjustStock` through the router);
//! 3. every subscriber records, per event, the time from the event's
//!    `at` (the product store's commit time) to receipt → p50 / p99 /
//!    max, deliveries per second, and deliveries missing after 30 s.
//!
//! Knobs: FANOUT_SIZES=1000,10000 FANOUT_EVENTS=50 FANOUT_RATE=10
//! FANOUT_USERS (unset: every subscriber a user of its own; N: spread over
//! N users) FANOUT_PORT_BASE=15000 SHOPGRAPH_BIN=<release binary>.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shopgraph_core::identity::TokenIssuer;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.start_kill();
        }
    }
}

/// The router's websockets to the product subgraph
/// (`router_subgraph_subscription_connections`), from its admin `/metrics`.
async fn upstream_sockets(client: &reqwest::Client, metrics_url: &str) -> String {
    let Ok(response) = client.get(metrics_url).send().await else {
        return "?".into();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|line| {
            line.starts_with("router_subgraph_subscription_connections")
                && line.contains("subgraph=\"product\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .map_or_else(|| "?".into(), str::to_owned)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become ready");
}

/// The HS256 secret of the bench's router (`serve` refuses to start
/// without one) and of the tokens it verifies.
const JWT_SECRET: &str = "shopgraph-fanout-bench-secret-0123456789abcdef";

/// A token of `user` as the router verifies them (the bench's secret,
/// the default issuer and audience), made in-process: ten thousand users
/// would take minutes as `shopgraph token` runs.
fn token(user: &str, admin: bool) -> String {
    let roles: &[&str] = if admin { &["admin"] } else { &[] };
    TokenIssuer::new(JWT_SECRET, "shopgraph", "shopgraph")
        .issue(user, roles, Duration::from_secs(24 * 3600))
        .expect("a token")
}

/// Latencies (µs) of every delivery, and how many arrived.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    last_receipt: Mutex<Option<Instant>>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(url: &str, token: &str, product_id: &str) -> Socket {
    let mut request = url.into_client_request().expect("ws url");
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket
        .send(Message::text(init.to_string()))
        .await
        .expect("init");
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(_)) => continue,
            other => panic!("no ack: {other:?}"),
        }
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($id: ID) { stockChanged(productId: $id) { quantity at } }",
        "variables": { "id": product_id },
    }});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("subscribe");
    socket
}

async fn listen(mut socket: Socket, tally: Arc<Tally>) {
    while let Some(message) = socket.next().await {
        let Ok(Message::Text(text)) = message else {
            if matches!(message, Ok(Message::Ping(_))) {
                continue;
            }
            break;
        };
        let received = Utc::now();
        let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        match value["type"].as_str() {
            Some("ping") => {
                let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            Some("next") => {
                let at = value["payload"]["data"]["stockChanged"]["at"]
                    .as_str()
                    .and_then(|at| at.parse::<DateTime<Utc>>().ok());
                if let Some(at) = at {
                    let micros = (received - at).num_microseconds().unwrap_or(0).max(0) as u64;
                    tally.latencies.lock().await.push(micros);
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                    *tally.last_receipt.lock().await = Some(Instant::now());
                }
            }
            _ => {}
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let bin = std::env::var("SHOPGRAPH_BIN").expect("SHOPGRAPH_BIN: the release shopgraph binary");
    let sizes: Vec<usize> = std::env::var("FANOUT_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let events: u64 = knob("FANOUT_EVENTS", 50);
    let rate: f64 = knob("FANOUT_RATE", 10.0);
    // Distinct users by default: one per subscriber, as a shop's are.
    let users: Option<usize> = std::env::var("FANOUT_USERS")
        .ok()
        .and_then(|users| users.parse().ok())
        .filter(|&users| users > 0);
    let base: u16 = knob("FANOUT_PORT_BASE", 15000);
    let data = std::env::temp_dir().join(format!("shopgraph-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&data).expect("temp dir");
    let supergraph = format!(
        "{}/../schema/supergraph.graphql",
        env!("CARGO_MANIFEST_DIR")
    );

    // One hop key pair for both processes: the separate router signs, the
    // subgraphs inside `dev` trust it (and sign their own calls with it).
    let keys = data.join("keys");
    let made = Command::new(&bin)
        .arg("hop-keys")
        .arg(&keys)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("shopgraph hop-keys runs");
    assert!(made.success(), "shopgraph hop-keys failed");
    let (signing_key, trusted_keys) = (keys.join("hop.key"), keys.join("hop.pub"));

    let port = |n: u16| (base + n).to_string();
    let dev = Command::new(&bin)
        .arg("dev")
        .env("HOP_SIGNING_KEY_FILE", &signing_key)
        .env("HOP_TRUSTED_KEYS_FILE", &trusted_keys)
        .env("SHOPGRAPH_DATA_DIR", &data)
        .env("ROUTER_PORT", port(0))
        .env("ADMIN_PORT", "0")
        .env("PRODUCT_PORT", port(1))
        .env("BASKET_PORT", port(2))
        .env("PAYMENT_PORT", port(3))
        .env("NOTIFICATION_PORT", port(4))
        .env("PRODUCT_METRICS_PORT", port(5))
        .env("BASKET_METRICS_PORT", port(6))
        .env("PAYMENT_METRICS_PORT", port(7))
        .env("NOTIFICATION_METRICS_PORT", port(8))
        .env("LOG_LEVEL", "warn")
        .env("SUBSCRIPTION_BUFFER", "10000")
        .stdout(Stdio::null())
        .spawn()
        .expect("shopgraph dev starts");
    let router = Command::new(&bin)
        .args(["serve", "router"])
        .env("PORT", port(10))
        .env("HOST", "127.0.0.1")
        .env("ADMIN_HOST", "127.0.0.1")
        .env("ADMIN_PORT", port(11))
        .env("HOP_SIGNING_KEY_FILE", &signing_key)
        .env("SUPERGRAPH_PATH", &supergraph)
        .env("JWT_SECRET", JWT_SECRET)
        .env(
            "PRODUCT_SERVICE_URL",
            format!("http://127.0.0.1:{}/graphql", port(1)),
        )
        .env(
            "BASKET_SERVICE_URL",
            format!("http://127.0.0.1:{}/graphql", port(2)),
        )
        .env(
            "PAYMENT_SERVICE_URL",
            format!("http://127.0.0.1:{}/graphql", port(3)),
        )
        .env(
            "NOTIFICATION_SERVICE_URL",
            format!("http://127.0.0.1:{}/graphql", port(4)),
        )
        .env("LOG_LEVEL", "warn")
        .env("SUBSCRIPTIONS_PER_CONNECTION", "10")
        .spawn()
        .expect("shopgraph serve router starts");
    let router_pid = router.id().expect("router pid");
    let _processes = Processes(vec![dev, router]);
    wait_ready(&format!("http://127.0.0.1:{}/health/ready", port(4))).await;
    let http = format!("http://127.0.0.1:{}/graphql", port(10));
    wait_ready(&format!("http://127.0.0.1:{}/health/ready", port(10))).await;
    let ws = http.replacen("http://", "ws://", 1);

    let admin = token("fanout-admin", true);
    let most_users = users.unwrap_or_else(|| sizes.iter().copied().max().unwrap_or(1));
    let tokens: Vec<String> = (0..most_users)
        .map(|n| token(&format!("fanout-user-{n}"), false))
        .collect();
    let client = reqwest::Client::new();
    let products: Value = client
        .post(&http)
        .json(&json!({ "query": "{ products(first: 1) { edges { node { id } } } }" }))
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("json");
    let product_id = products["data"]["products"]["edges"][0]["node"]["id"]
        .as_str()
        .expect("a product")
        .to_owned();

    let spread = users.map_or_else(
        || "each subscriber its own user".to_owned(),
        |users| format!("subscribers spread over {users} users"),
    );
    println!(
        "\nSubscription fan-out: stockChanged of one product, {events} events at {rate}/s, {spread}"
    );
    println!(
        "| subscribers | deliveries | missing | deliveries/s | p50 ms | p99 ms | max ms | router RSS idle MiB | KiB per idle subscriber | upstream sockets |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let metrics_url = format!("http://127.0.0.1:{}/metrics", port(11));
    for &size in &sizes {
        let before = rss_kib(router_pid);
        let tally = Arc::new(Tally::default());
        let users = users.unwrap_or(size);
        let mut sockets = Vec::with_capacity(size);
        for chunk in (0..size).collect::<Vec<_>>().chunks(200) {
            let batch = futures::future::join_all(
                chunk
                    .iter()
                    .map(|n| subscriber(&ws, &tokens[n % users], &product_id)),
            )
            .await;
            sockets.extend(batch);
        }
        // Let every subscription reach its subgraph before measuring.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = rss_kib(router_pid);
        let upstream = upstream_sockets(&client, &metrics_url).await;
        let listeners: Vec<_> = sockets
            .into_iter()
            .map(|socket| tokio::spawn(listen(socket, tally.clone())))
            .collect();

        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate);
        for n in 0..events {
            let delta = if n % 2 == 0 { 1 } else { -1 };
            let answer: Value = client
                .post(&http)
                .bearer_auth(&admin)
                .json(&json!({
                    "query": "mutation($id: ID!, $d: Int!) { adjustStock(id: $id, delta: $d) { stockQuantity } }",
                    "variables": { "id": product_id, "d": delta },
                }))
                .send()
                .await
                .expect("adjustStock")
                .json()
                .await
                .expect("json");
            assert!(answer["errors"].is_null(), "{answer}");
            let next = started + interval * (n as u32 + 1);
            tokio::time::sleep_until(next.into()).await;
        }
        let expected = size as u64 * events;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tally.delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let delivered = tally.delivered.load(Ordering::Relaxed);
        let elapsed = tally
            .last_receipt
            .lock()
            .await
            .map_or(Duration::ZERO, |last| last.duration_since(started));
        let mut latencies = std::mem::take(&mut *tally.latencies.lock().await);
        latencies.sort_unstable();
        println!(
            "| {size} | {delivered} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {upstream} |",
            expected.saturating_sub(delivered),
            delivered as f64 / elapsed.as_secs_f64().max(0.001),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            idle as f64 / 1024.0,
            idle.saturating_sub(before) as f64 / size as f64,
        );
        for listener in listeners {
            listener.abort();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let _ = std::fs::remove_dir_all(&data);
}
