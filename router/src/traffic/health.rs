//! Active health checks: every `HEALTH_CHECK_INTERVAL`, each replica's
//! readiness endpoint (`/health/ready` on the replica's host) is asked.
//!
//! A 2xx passes. A 404 passes too: the replica answers HTTP but has no
//! such endpoint (a third-party subgraph); passive outlier detection still
//! watches its real traffic. Anything else (5xx, connection refused, no
//! answer within `HEALTH_CHECK_TIMEOUT`) marks it unhealthy until a check
//! passes again.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::upstream::{Replica, Upstreams};

/// Checks every replica on `interval` until `stop` is cancelled.
pub async fn run(
    upstreams: Arc<Upstreams>,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(interval.saturating_mul(2))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "cannot build the health check client; active health checks are off");
            return;
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut checks = Vec::new();
        for upstream in upstreams.all() {
            for replica in upstream.pool.replicas() {
                let (client, replica, upstream) =
                    (client.clone(), Arc::clone(replica), Arc::clone(&upstream));
                checks.push(async move { check(&client, &upstream.name, &replica).await });
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = futures::future::join_all(checks) => {}
        }
    }
}

async fn check(client: &reqwest::Client, subgraph: &str, replica: &Arc<Replica>) {
    let Some(uri) = replica.health_uri() else {
        return;
    };
    let outcome = match client.get(uri.to_string()).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => Ok(()),
        Ok(response) => Err(format!("health check answered HTTP {}", response.status())),
        Err(err) if err.is_timeout() => Err("health check timed out".to_owned()),
        Err(err) => Err(format!(
            "health check failed: {}",
            shopgraph_core::error::error_chain(&err)
        )),
    };
    match outcome {
        Ok(()) => replica.set_healthy(subgraph, true, None),
        Err(error) => replica.set_healthy(subgraph, false, Some(error)),
    }
}
