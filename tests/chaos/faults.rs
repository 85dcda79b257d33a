//! The fault schedule: real faults, one at a time, while the storm runs.
//!
//! | fault | how |
//! |---|---|
//! | a subgraph replica dies | `kill -9` (a payment replica while checkouts are in flight), started again 2 s later on its port |
//! | a router dies | `kill -9`, started again 2 s later |
//! | the broker dies | `kill -9`, started again on its data 3 s later |
//! | PostgreSQL crashes | `pg_ctl stop -m immediate` (every connection cut, WAL replayed at start), started again 2 s later |
//! | MariaDB crashes | `kill -9` of `mariadbd` (InnoDB recovery at start), started again 2 s later |
//! | a network stall | product replica 2's link (routers and payment 2 use it) holds every request 8 s, for 6 s |
//!
//! The short run (CI) injects each kind at least once; the long run
//! cycles through them with random targets until its time is up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fault_proxy::Mode;
use crate::topology::{REPLICAS, SERVICES, Topology};

/// Counters banked before a process is killed (so the run's totals
/// survive its restart).
pub const BANKED_COUNTERS: &[(&str, &str)] = &[
    ("stock_reservations_released_total", "reason=\"expired\""),
    (
        "stock_reservations_released_total",
        "reason=\"compensation\"",
    ),
    ("payments_reconciled_total", "outcome=\"completed\""),
    ("payments_reconciled_total", "outcome=\"failed\""),
    ("payment_refunds_reconciled_total", ""),
];

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillReplica(&'static str, usize),
    KillRouter(usize),
    KillBroker,
    CrashPostgres,
    CrashMariaDb,
    StallProduct,
}

impl Fault {
    /// The fault's kind, for the report.
    pub fn kind(self) -> &'static str {
        match self {
            Self::KillReplica("payment", _) => "kill -9 payment replica",
            Self::KillReplica("product", _) => "kill -9 product replica",
            Self::KillReplica("basket", _) => "kill -9 basket replica",
            Self::KillReplica(_, _) => "kill -9 notification replica",
            Self::KillRouter(_) => "kill -9 router",
            Self::KillBroker => "kill -9 broker",
            Self::CrashPostgres => "PostgreSQL crash + restart",
            Self::CrashMariaDb => "MariaDB crash + restart",
            Self::StallProduct => "network stall (product)",
        }
    }

    /// Every kind once, in an order that puts a recovery between two
    /// faults on the same path.
    pub fn each_once() -> Vec<Fault> {
        vec![
            Self::KillReplica("payment", 0),
            Self::KillRouter(0),
            Self::KillBroker,
            Self::CrashPostgres,
            Self::KillReplica("product", 0),
            Self::CrashMariaDb,
            Self::StallProduct,
            Self::KillReplica("basket", 1),
            Self::KillReplica("notification", 0),
            Self::KillReplica("payment", 1),
        ]
    }

    /// A random fault with a random target.
    pub fn random(rng: &mut fastrand::Rng) -> Fault {
        match rng.u8(0..9) {
            0..3 => Self::KillReplica(
                SERVICES[rng.usize(0..SERVICES.len())],
                rng.usize(0..REPLICAS),
            ),
            3 => Self::KillReplica("payment", rng.usize(0..REPLICAS)),
            4 => Self::KillRouter(rng.usize(0..REPLICAS)),
            5 => Self::KillBroker,
            6 => Self::CrashPostgres,
            7 => Self::CrashMariaDb,
            _ => Self::StallProduct,
        }
    }
}

/// What the schedule did.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Faults injected, by kind.
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Each fault, when it started (seconds into the storm) and how long
    /// until everything was back.
    pub timeline: Vec<(f64, Fault, Duration)>,
}

/// Injects `fault` and waits until what it broke is back.
pub async fn inject(topology: &mut Topology, fault: Fault, checkouts_in_flight: &AtomicUsize) {
    match fault {
        Fault::KillReplica(service, index) => {
            if service == "payment" {
                // Mid-checkout: wait (a little) for one to be in flight.
                let deadline = Instant::now() + Duration::from_secs(3);
                while checkouts_in_flight.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let replica = topology.replica_mut(service, index);
            replica.process.kill(BANKED_COUNTERS).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            replica.process.start().await;
        }
        Fault::KillRouter(index) => {
            let router = &mut topology.routers[index];
            router.kill(&[]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            router.start().await;
        }
        Fault::KillBroker => {
            topology.broker.kill().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            topology.broker.resume().await;
        }
        Fault::CrashPostgres => {
            topology
                .postgres
                .crash_and_restart(Duration::from_secs(2))
                .await;
        }
        Fault::CrashMariaDb => {
            topology
                .mariadb
                .crash_and_restart(Duration::from_secs(2))
                .await;
        }
        Fault::StallProduct => {
            topology
                .stall_proxy
                .set_mode(Mode::Forward {
                    delay: Duration::from_secs(8),
                })
                .await;
            tokio::time::sleep(Duration::from_secs(6)).await;
            topology.stall_proxy.set_mode(Mode::PASS).await;
        }
    }
}

/// Runs `faults` one after the other, `gap` apart (and `gap` after the
/// last, for the storm to meet a recovered shop), stopping early once
/// `until` has passed since `started`.
pub async fn run_schedule(
    topology: &mut Topology,
    faults: impl IntoIterator<Item = Fault>,
    gap: Duration,
    started: Instant,
    until: Option<Duration>,
    checkouts_in_flight: &AtomicUsize,
) -> FaultLog {
    let mut log = FaultLog::default();
    for fault in faults {
        tokio::time::sleep(gap).await;
        if until.is_some_and(|until| started.elapsed() + gap > until) {
            break;
        }
        let at = started.elapsed().as_secs_f64();
        let began = Instant::now();
        println!("chaos: {at:6.1}s {}", fault.kind());
        inject(topology, fault, checkouts_in_flight).await;
        *log.by_kind.entry(fault.kind()).or_default() += 1;
        log.timeline.push((at, fault, began.elapsed()));
    }
    tokio::time::sleep(gap).await;
    log
}
