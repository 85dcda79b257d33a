//! Starting what a test drives and waiting until it is ready.
//!
//! * [`Router`]: a router inside the test process (`RouterApp::bind` on a
//!   free port), for tests that need no process boundary;
//! * [`RouterProcess`] and [`SubgraphProcess`]: `shopgraph serve router` /
//!   `shopgraph serve <service>` as child processes on free ports, each with
//!   its own log file and `/metrics`, killed on drop;
//! * waiting on real signals: [`eventually`] / [`wait_until`] poll a check
//!   with a deadline instead of sleeping a fixed time.
//!
//! In-process subgraphs are [`crate::helpers::TestApp`]; the whole shop on
//! one bus is [`crate::shop::Shop`]. Tracing is set up once for the binary
//! (`tests/common/telemetry.rs`); child processes log at `warn`, or `info`
//! with `TEST_LOG` set, to the files their failures print the tail of.

mod process;
mod router;

use std::future::Future;
use std::time::{Duration, Instant};

use shopgraph_core::identity::ADMIN_ROLE;

pub use crate::migrate::migrate;
pub use process::{RouterProcess, SubgraphProcess, into_gql};
pub use router::Router;

/// The `shopgraph` binary under test.
pub const SHOPGRAPH: &str = env!("CARGO_BIN_EXE_shopgraph");

/// The committed supergraph routers serve.
pub fn supergraph_path() -> String {
    format!("{}/schema/supergraph.graphql", env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The `LOG_LEVEL` of the processes a test starts: `info` with `TEST_LOG`
/// set, `warn` otherwise.
pub fn child_log_level() -> &'static str {
    if crate::telemetry::enabled() {
        "info"
    } else {
        "warn"
    }
}

/// An HTTP client for talking to test processes: no proxy, and a timeout
/// so a hung server fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A JWT for `user` signed with the test secret (the admin role if asked).
pub fn token(user: &str, admin: bool) -> String {
    let roles: &[&str] = if admin { &[ADMIN_ROLE] } else { &[] };
    crate::helpers::test_authority()
        .issue(user, roles, Duration::from_secs(3600))
        .expect("a test token")
}

/// Polls `check` every 50 ms until it holds (`true`) or `within` passes
/// (`false`).
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`], failing the test with "timed out waiting until `what`".
pub async fn wait_until<F, Fut>(what: &str, within: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        eventually(within, check).await,
        "timed out after {within:?} waiting until {what}"
    );
}
