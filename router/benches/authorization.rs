//! What schema-declared authorization costs per request (issue 17).
//!
//!   cargo bench -p shopgraph-router --bench authorization
//!
//! Runs in process against the committed supergraph's [`QueryPlanner`]; no
//! subgraph is called. For a cached document, the per-request prepare step
//! before this change (a plan-cache hit) is compared with the step now (a
//! cache hit, then [`QueryPlanner::authorize`]), for: a public document
//! (no guarded field: the common case), a guarded document whose caller is
//! allowed, and one whose caller is denied (its restricted plan cached
//! after the first request). Prints nanoseconds per request (median of
//! alternating rounds), no assertions.
//!
//! Knobs: AUTHZ_ITERATIONS=200000 (requests per round).

use std::sync::Arc;
use std::time::Instant;

use shopgraph_core::identity::{Identity, Viewer};
use shopgraph_router::planner::{PlannerSettings, QueryPlanner};

const SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

fn iterations() -> usize {
    std::env::var("AUTHZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Median nanoseconds per request of `rounds` rounds of `body`.
async fn per_request<F, Fut>(rounds: usize, n: usize, mut body: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..n {
            body().await;
        }
        samples.push(started.elapsed().as_nanos() as f64 / n as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Rounds of each measurement.
const ROUNDS: usize = 9;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let planner = Arc::new(
            QueryPlanner::from_supergraph(SUPERGRAPH, PlannerSettings::default())
                .expect("the committed supergraph loads"),
        );
        let n = iterations();
        let admin = Identity::User(Viewer {
            user_id: "admin-1".into(),
            roles: vec!["admin".into()],
        });
        let user = Identity::User(Viewer {
            user_id: "user-1".into(),
            roles: Vec::new(),
        });
        let cases: [(&str, &str, &Identity); 4] = [
            (
                "public document, anonymous",
                "{ products(first: 10) { edges { node { id name price { amount currency } } } } categories }",
                &Identity::Anonymous,
            ),
            (
                "guarded document, allowed (user)",
                "{ me { id basket { itemCount total { amount } } } categories }",
                &user,
            ),
            (
                "admin document, allowed (admin)",
                "{ payments(first: 5) { pageInfo { hasNextPage } } categories }",
                &admin,
            ),
            (
                "admin document, denied (user)",
                "{ payments(first: 5) { pageInfo { hasNextPage } } categories }",
                &user,
            ),
        ];
        println!("per request, cached document (median of {ROUNDS} alternating rounds of {n}):");
        for (label, document, identity) in cases {
            let document: Arc<str> = Arc::from(document);
            // Warm the plan cache and the restricted plan.
            let prepared = planner
                .prepare_off_workers(Arc::clone(&document), None)
                .await
                .expect("plans");
            planner
                .authorize(&prepared, identity)
                .await
                .expect("authorizes");
            // Rounds alternate between the two, so background load hits
            // both alike; the medians are compared.
            let mut before = Vec::new();
            let mut after = Vec::new();
            for _ in 0..ROUNDS {
                before.push(
                    per_request(1, n, || {
                        let planner = Arc::clone(&planner);
                        let document = Arc::clone(&document);
                        async move {
                            let prepared = planner
                                .prepare_off_workers(document, None)
                                .await
                                .expect("cached");
                            std::hint::black_box(&prepared);
                        }
                    })
                    .await,
                );
                after.push(
                    per_request(1, n, || {
                        let planner = Arc::clone(&planner);
                        let document = Arc::clone(&document);
                        async move {
                            let prepared = planner
                                .prepare_off_workers(document, None)
                                .await
                                .expect("cached");
                            let access = planner
                                .authorize(&prepared, identity)
                                .await
                                .expect("authorizes");
                            std::hint::black_box(&access);
                        }
                    })
                    .await,
                );
            }
            let before = median(&mut before);
            let after = median(&mut after);
            println!(
                "  {label:<36} plan-cache hit {before:>7.0} ns, + authorize {after:>7.0} ns ({:+.0} ns)",
                after - before
            );
        }
    });
}
