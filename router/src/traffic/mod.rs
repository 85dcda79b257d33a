//! Stage 6, traffic management on the subgraph side: what happens between "the
//! executor wants this fetch" and "bytes go to a subgraph replica".
//!
//! [`fetch_stack`] builds the layers, outer to inner:
//!
//! ```text
//! executor
//!   └─ dedupe      identical in-flight query fetches share one request   (dedupe)
//!      └─ retry    queries again after transient failures, within a budget  (layers::RetryLayer)
//!         └─ breaker   per subgraph: open → fail fast                       (layers::BreakerLayer)
//!            └─ balance   pick a healthy replica, fail over on refused connects (layers::BalanceLayer)
//!               └─ HTTP   pooled client, per-subgraph timeout               (subgraph::client)
//! ```
//!
//! The state those layers share — replicas with their health and load,
//! breakers, retry budgets — lives in [`Upstreams`], created once per
//! router process and kept across supergraph reloads. [`health::run`]
//! checks replicas actively in the background; the admin API and
//! `/health/detailed` read it.
//!
//! Every variable is listed in [`settings`].

pub mod breaker;
pub mod dedupe;
pub mod health;
pub mod layers;
pub mod settings;
pub mod upstream;

use std::sync::Arc;

use tower::ServiceBuilder;

pub use settings::TrafficSettings;
pub use upstream::Upstreams;

use crate::subgraph::Fetcher;
use crate::subgraph::client::HttpFetcher;
use crate::traffic::dedupe::DedupeLayer;
use layers::{BalanceLayer, BreakerLayer, RetryLayer};

/// The fetcher the executor uses: `http` wrapped in the layers above,
/// each optional one as configured.
pub fn fetch_stack(
    upstreams: &Arc<Upstreams>,
    http: HttpFetcher,
    dedupe: bool,
) -> Arc<dyn Fetcher> {
    let settings = upstreams.settings();
    let stack = ServiceBuilder::new()
        .option_layer(dedupe.then_some(DedupeLayer))
        .option_layer(
            settings
                .retry
                .enabled
                .then(|| RetryLayer::new(Arc::clone(upstreams))),
        )
        .option_layer(
            settings
                .breaker
                .enabled
                .then(|| BreakerLayer::new(Arc::clone(upstreams))),
        )
        .layer(BalanceLayer::new(Arc::clone(upstreams)))
        .service(http);
    Arc::new(stack)
}
