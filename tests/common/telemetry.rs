//! The one tracing setup of the test binaries (`api` and `federation`
//! include this file): initialised once per process, quiet unless
//! `TEST_LOG` is set, and then at `info`, written through the test harness
//! so a passing test's logs stay hidden.
//!
//! Processes the tests start (routers, subgraphs, `shopgraph dev`) log to
//! files of their own; see `tests/api/harness`.

use std::sync::Once;

/// Whether `TEST_LOG` asks for logs.
pub fn enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// Installs the tracing subscriber on first call; later calls do nothing.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if enabled() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}
