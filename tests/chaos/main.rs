//! The chaos suite: checkout under real faults, then invariants over the
//! whole history (Jepsen-style: faults while clients work, judged by what
//! the stores hold and what the clients were told).
//!
//! One run ([`checkout_keeps_money_and_stock_right_through_faults`]):
//!
//! 1. [`topology`]: the `serve` topology as processes — two routers, two
//!    replicas of each subgraph — on a PostgreSQL cluster and a MariaDB
//!    server of the run's own ([`servers`]: the run crashes them, so they
//!    cannot be the machine's shared ones), the persistent test broker and
//!    the machine's Redis under the run's key prefix;
//! 2. [`storm`]: concurrent shoppers and an admin through the routers,
//!    recording everything they were told;
//! 3. [`faults`]: `kill -9` of replicas (a payment replica mid-checkout),
//!    of a router and of the broker, PostgreSQL and MariaDB crashes, a
//!    network stall, one at a time while the storm runs;
//! 4. [`invariants`]: the storm stops, the shop settles (sweepers,
//!    reconciliation, events), and the checker holds the four stores and
//!    the clients' records to the invariants; every violation is listed.
//!
//! Modes:
//!
//! ```sh
//! cargo test --test chaos -- --nocapture                 # short (CI): each fault kind once, ~2 min
//! CHAOS=long cargo test --test chaos -- --nocapture      # long: 10 min of random faults, 24 shoppers
//! CHAOS=long CHAOS_MINUTES=30 CHAOS_SHOPPERS=40 CHAOS_SEED=7 cargo test --test chaos -- --nocapture
//! ```
//!
//! A failed run keeps its directory (every process's log, the database
//! servers' logs) and prints where it is; `TEST_LOG=1` logs at `info`.

#[allow(dead_code)] // shared with tests/api, which uses all of it
#[path = "../common/broker.rs"]
mod broker;
mod client;
#[allow(dead_code)] // shared with tests/api, which uses all of it
#[path = "../api/fault_proxy.rs"]
mod fault_proxy;
mod faults;
mod invariants;
#[path = "../common/migrate.rs"]
mod migrate;
mod servers;
mod storm;
mod topology;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shopgraph_core::identity::{ADMIN_ROLE, TokenIssuer};

use crate::client::Api;
use crate::faults::Fault;
use crate::invariants::Stores;
use crate::storm::{Flow, Storm, StormShape, Told};
use crate::topology::Topology;

/// The `shopgraph` binary under test.
pub const SHOPGRAPH: &str = env!("CARGO_BIN_EXE_shopgraph");

/// The routers' JWT secret in this run.
pub const JWT_SECRET: &str = "chaos-run-secret-0123456789abcdef0123";

/// A JWT for `user` (an admin if asked), signed with [`JWT_SECRET`].
pub fn token(user: &str, admin: bool) -> String {
    let roles: &[&str] = if admin { &[ADMIN_ROLE] } else { &[] };
    TokenIssuer::new(JWT_SECRET, "shopgraph", "shopgraph")
        .issue(user, roles, Duration::from_secs(4 * 3600))
        .expect("a token")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// An HTTP client for the run's processes: no proxy, bounded waits.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("an HTTP client")
}

/// How long and how hard a run goes.
#[derive(Debug, Clone, Copy)]
struct RunShape {
    long: bool,
    shoppers: usize,
    /// The long run's fault time (the short one injects each kind once).
    duration: Duration,
    gap: Duration,
    seed: u64,
}

impl RunShape {
    fn from_env() -> Self {
        let long = std::env::var("CHAOS").is_ok_and(|mode| mode == "long");
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let seed = number(
            "CHAOS_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs()),
        );
        if long {
            Self {
                long,
                shoppers: number("CHAOS_SHOPPERS", 24) as usize,
                duration: Duration::from_secs(60 * number("CHAOS_MINUTES", 10)),
                gap: Duration::from_secs(8),
                seed,
            }
        } else {
            Self {
                long,
                shoppers: number("CHAOS_SHOPPERS", 10) as usize,
                duration: Duration::ZERO,
                gap: Duration::from_secs(4),
                seed,
            }
        }
    }
}

/// The run's directory: logs and database files. Removed after a run
/// that passed, kept (and named) after one that failed.
struct RunDir {
    id: String,
    path: PathBuf,
}

impl RunDir {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let path = std::env::temp_dir().join(format!("shopgraph-chaos-{id}"));
        std::fs::create_dir_all(&path).expect("the run directory");
        Self { id, path }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos: the run's logs and data are kept in {}",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_keeps_money_and_stock_right_through_faults() {
    let shape = RunShape::from_env();
    let run = RunDir::new();
    println!(
        "chaos: {} run, {} shoppers, seed {} (CHAOS_SEED), in {}",
        if shape.long { "long" } else { "short" },
        shape.shoppers,
        shape.seed,
        run.path.display()
    );
    let setup = Instant::now();
    let mut topology = Topology::start(&run.path, &run.id).await;
    println!(
        "chaos: topology up in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    let api = Arc::new(Api::new(topology.router_urls.clone()));
    let catalogue = Arc::new(storm::create_catalogue(&api).await);

    let started = Instant::now();
    let storm = Storm::start(
        api.clone(),
        catalogue.clone(),
        StormShape {
            shoppers: shape.shoppers,
            seed: shape.seed,
        },
    );
    let in_flight = storm.in_flight.clone();
    let fault_log = if shape.long {
        let mut rng = fastrand::Rng::with_seed(shape.seed);
        let faults = std::iter::repeat_with(move || Fault::random(&mut rng));
        faults::run_schedule(
            &mut topology,
            faults,
            shape.gap,
            started,
            Some(shape.duration),
            &in_flight,
        )
        .await
    } else {
        faults::run_schedule(
            &mut topology,
            Fault::each_once(),
            shape.gap,
            started,
            None,
            &in_flight,
        )
        .await
    };
    let storm_time = started.elapsed();
    println!(
        "chaos: storm over after {:.0}s, {} payment attempts",
        storm_time.as_secs_f64(),
        storm.attempts_so_far()
    );
    let records = storm.finish().await;

    // Settling: pending payments expire (20 s), stuck ones are reconciled
    // (5 s), reservations and locks of checkouts that died before their
    // payment was stored lapse (50 s), events reach their consumers.
    let settling = Instant::now();
    let stores = Stores::connect(&topology.database_urls).await;
    invariants::settle(&stores, Duration::from_secs(90)).await;
    invariants::read_baskets(&api, &records).await;
    let snapshot = invariants::settle(&stores, Duration::from_secs(30)).await;
    let settle_time = settling.elapsed();
    let violations = snapshot.violations(&catalogue, &records);

    report(
        &topology,
        &records,
        &fault_log,
        &snapshot,
        storm_time,
        settle_time,
    )
    .await;
    assert!(
        violations.is_empty(),
        "{} invariant violations (seed {}):\n  {}",
        violations.len(),
        shape.seed,
        violations.join("\n  ")
    );
    assert!(
        !fault_log.by_kind.is_empty() && records.seen_completed().len() >= 5,
        "the run must inject faults and complete checkouts to prove anything: {:?}, {} completed",
        fault_log.by_kind,
        records.seen_completed().len()
    );
}

/// Prints the run's figures: what was attempted and told, which faults,
/// what the sweepers did.
async fn report(
    topology: &Topology,
    records: &storm::Records,
    faults: &faults::FaultLog,
    snapshot: &invariants::Snapshot,
    storm_time: Duration,
    settle_time: Duration,
) {
    let mut told: std::collections::BTreeMap<String, usize> = Default::default();
    for attempt in &records.attempts {
        let flow = match attempt.flow {
            Flow::Checkout(card) => format!("checkout {card:?}"),
            other => format!("{other:?}"),
        };
        let outcome = match &attempt.told {
            Told::Payment { status, .. } => status.clone(),
            Told::Refused(code) => format!("refused {code}"),
            Told::Unresolved => "unresolved".to_owned(),
        };
        *told.entry(format!("{flow} -> {outcome}")).or_default() += 1;
    }
    println!("\n== chaos report ==");
    println!(
        "storm: {:.0}s; settled {:.0}s after",
        storm_time.as_secs_f64(),
        settle_time.as_secs_f64()
    );
    println!(
        "payment attempts: {} ({} told COMPLETED); requests {} ({} without a usable answer: {:?})",
        records.attempts.len(),
        records.seen_completed().len(),
        records.requests,
        records.unavailable,
        records.unavailable_kinds
    );
    for (what, n) in &told {
        println!("  {what}: {n}");
    }
    println!(
        "refunds asked: {} ({} answered)",
        records.refunds.len(),
        records
            .refunds
            .iter()
            .filter(|told| matches!(told, Told::Payment { .. }))
            .count()
    );
    println!(
        "most requests one payment attempt took: {}",
        records
            .attempts
            .iter()
            .map(|a| a.requests)
            .max()
            .unwrap_or(0)
    );
    println!("faults injected: {:?}", faults.by_kind);
    for (at, fault, took) in &faults.timeline {
        println!(
            "  {at:6.1}s {:<32} back after {:.1}s",
            fault.kind(),
            took.as_secs_f64()
        );
    }
    for (what, value) in snapshot.figures() {
        println!("{what}: {value}");
    }
    println!(
        "reservations released by the sweeper: {}; by compensation: {}",
        topology
            .service_metric(
                "product",
                "stock_reservations_released_total",
                "reason=\"expired\""
            )
            .await,
        topology
            .service_metric(
                "product",
                "stock_reservations_released_total",
                "reason=\"compensation\""
            )
            .await
    );
    println!(
        "completions that arrived after their reservation expired: {} retaken, {} short",
        topology
            .service_metric(
                "product",
                "stock_reservations_late_sales_total",
                "outcome=\"retaken\""
            )
            .await,
        topology
            .service_metric(
                "product",
                "stock_reservations_late_sales_total",
                "outcome=\"short\""
            )
            .await
    );
    println!(
        "payments reconciled: {} completed, {} failed; refunds reconciled: {}",
        topology
            .service_metric(
                "payment",
                "payments_reconciled_total",
                "outcome=\"completed\""
            )
            .await,
        topology
            .service_metric("payment", "payments_reconciled_total", "outcome=\"failed\"")
            .await,
        topology
            .service_metric("payment", "payment_refunds_reconciled_total", "")
            .await
    );
}
