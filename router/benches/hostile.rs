//! Hostile documents (issue 17): how fast the router refuses them, and how
//! long an ordinary request waits while some are being prepared.
//!
//!   cargo bench -p shopgraph-router --bench hostile
//!
//! Everything runs in process against the committed supergraph's
//! [`QueryPlanner`]; no subgraph is called, so "a normal query" is its
//! prepare step only (a cached `{ categories }`, then a new small
//! document), the part hostile documents compete with. Prints numbers, no
//! assertions:
//!
//! 1. the time to refuse each hostile case with the default limits
//!    (fastest of a few runs, each a new planner so nothing is cached);
//! 2. the time to prepare repeated-field documents with every limit off:
//!    the cost `GRAPHQL_MAX_FIELDS` guards against, split by step (parse,
//!    validation, normalisation, planning) to show where it grows
//!    quadratically;
//! 3. with four 9,000-field documents in flight (limits off,
//!    `PLAN_TIMEOUT` 3 s) on a two-worker runtime: the latency of a timer
//!    tick on the async workers and of a normal query, once preparing on
//!    the async workers (the old path) and once through
//!    [`QueryPlanner::prepare_off_workers`].
//!
//! Knobs: HOSTILE_FIELDS=9000 (fields per hostile document in part 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use graphql_tools::validation::rules::{
    OverlappingFieldsCanBeMerged, ValidationRule, default_rules_validation_plan,
};
use graphql_tools::validation::validate::{ValidationPlan, validate};
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::utils::cancellation::CancellationToken;
use hive_router_query_planner::utils::parsing::{
    safe_parse_operation_with_token_limit, safe_parse_schema,
};
use shopgraph_router::planner::limits::OperationLimits;
use shopgraph_router::planner::{PlanError, PlannerSettings, QueryPlanner};

const SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

fn planner(settings: PlannerSettings) -> QueryPlanner {
    QueryPlanner::from_supergraph(SUPERGRAPH, settings).expect("the committed supergraph loads")
}

fn lenient() -> PlannerSettings {
    PlannerSettings {
        limits: OperationLimits::unlimited(),
        max_tokens: 1_000_000,
        timeout: Duration::from_secs(3),
        ..PlannerSettings::default()
    }
}

fn repeated_nested(times: usize) -> String {
    format!("{{ me {{ {} }} }}", "id ".repeat(times))
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

fn refusals() {
    println!("1. refusing hostile documents with the default limits (fastest of 5)");
    let mut bomb = String::from("{ me { ...F20 } } fragment F0 on User { id }");
    for level in 1..=20 {
        bomb.push_str(&format!(
            " fragment F{level} on User {{ ...F{below} ...F{below} }}",
            below = level - 1
        ));
    }
    let cases = [
        ("9,000 × `id` under `me`", repeated_nested(9_000)),
        (
            "9,000 × root `categories`",
            format!("{{ {} }}", "categories ".repeat(9_000)),
        ),
        (
            "2,000 × root `__typename`",
            format!("{{ {} }}", "__typename ".repeat(2_000)),
        ),
        ("fragment bomb, 2^20 fields", bomb),
        (
            "two nested 100-item connections",
            "{ me { payments(first: 100) { edges { node { items { product { price { amount } } } } } }
               notifications(first: 100) { edges { node { payment { items { product { price { amount } } } } } } } } }"
                .to_owned(),
        ),
    ];
    for (label, document) in &cases {
        let mut best = Duration::MAX;
        let mut code = String::new();
        for _ in 0..5 {
            let planner = planner(PlannerSettings::default());
            let started = Instant::now();
            let result = planner.prepare(document, None);
            best = best.min(started.elapsed());
            code = match result {
                Err(PlanError::Limit(limit)) => limit.code().to_string(),
                Err(other) => format!("{other}"),
                Ok(_) => "accepted".to_owned(),
            };
        }
        println!("   {label:32} {:>12}  {code}", ms(best));
    }
}

fn steps() {
    println!("2. preparing `{{ me {{ id × n }} }}` with every limit off, by step");
    let planner = planner(lenient());
    let schema = planner.api_schema();
    let rules = default_rules_validation_plan();
    let overlapping: Vec<Box<dyn ValidationRule>> =
        vec![Box::new(OverlappingFieldsCanBeMerged::new())];
    let overlapping = ValidationPlan::from(overlapping);
    let hive = Planner::new_from_supergraph(
        &safe_parse_schema(SUPERGRAPH).expect("the supergraph parses"),
        QueryPlannerOptions::default(),
    )
    .expect("the supergraph plans");
    for n in [500, 1_000, 2_000, 4_000, 9_000] {
        let document = repeated_nested(n);
        let started = Instant::now();
        let parsed = safe_parse_operation_with_token_limit(&document, 1_000_000).expect("parses");
        let parse = started.elapsed();
        let started = Instant::now();
        let errors = validate(schema, &parsed, &rules);
        let validation = started.elapsed();
        assert!(errors.is_empty(), "{errors:?}");
        let started = Instant::now();
        validate(schema, &parsed, &overlapping);
        let overlap = started.elapsed();
        let started = Instant::now();
        let total = planner.prepare(&document, None).map(|_| ());
        let prepare = started.elapsed();
        let started = Instant::now();
        let normalized = normalize_operation(&hive.supergraph, &parsed, None).expect("normalizes");
        let normalization = started.elapsed();
        let started = Instant::now();
        let plan = hive.plan_from_normalized_operation(
            &normalized.operation,
            PlannerOverrideContext::default(),
            &CancellationToken::new(),
        );
        let planning = started.elapsed();
        println!(
            "   n = {n:>5}: parse {:>11}  validate {:>11} (of which OverlappingFieldsCanBeMerged alone {:>11})  normalize {:>11}  plan {:>11}  whole prepare {:>11}{}",
            ms(parse),
            ms(validation),
            ms(overlap),
            ms(normalization),
            ms(planning),
            ms(prepare),
            match (total, plan) {
                (Ok(()), Ok(_)) => String::new(),
                (total, plan) => format!("  ({total:?}, {:?})", plan.err()),
            }
        );
    }
}

/// The latency of a 1 ms timer tick on the runtime, and of preparing a
/// cached and a new small document, with `hostile` documents being
/// prepared: on the async workers when `on_workers`, else through
/// `prepare_off_workers`.
fn in_flight(hostile: usize, fields: usize, on_workers: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let planner = Arc::new(planner(lenient()));
        let warm: Arc<str> = Arc::from("{ categories }");
        planner
            .prepare_off_workers(Arc::clone(&warm), None)
            .await
            .expect("plans");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..hostile {
            let planner = Arc::clone(&planner);
            let document: Arc<str> = Arc::from(repeated_nested(fields + i));
            tasks.push(tokio::spawn(async move {
                let result = if on_workers {
                    planner.prepare(&document, None).map(|_| ())
                } else {
                    planner
                        .prepare_off_workers(document, None)
                        .await
                        .map(|_| ())
                };
                (result, started.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tick = Instant::now();
        tokio::spawn(tokio::time::sleep(Duration::from_millis(1)))
            .await
            .expect("the tick");
        let tick = tick.elapsed();
        let cached = Instant::now();
        let check = Arc::clone(&planner);
        tokio::spawn(async move { check.prepare_off_workers(warm, None).await.map(|_| ()) })
            .await
            .expect("the cached query")
            .expect("plans");
        let cached = cached.elapsed();
        let fresh = Instant::now();
        let check = Arc::clone(&planner);
        let fresh_result = tokio::spawn(async move {
            check
                .prepare_off_workers(Arc::from("{ product(id: \"1\") { name } }"), None)
                .await
                .map(|_| ())
        })
        .await
        .expect("the new query");
        let fresh = fresh.elapsed();
        let mut outcomes = Vec::new();
        for task in tasks {
            let (result, elapsed) = task.await.expect("a hostile task");
            outcomes.push(format!(
                "{} after {}",
                match result {
                    Ok(()) => "planned".to_owned(),
                    Err(PlanError::Timeout(_)) => "QUERY_PLAN_TIMEOUT".to_owned(),
                    Err(other) => other.to_string(),
                },
                ms(elapsed)
            ));
        }
        println!(
            "   {}: 1 ms tick {:>11}, cached query {:>11}, new query {:>11} ({})",
            if on_workers {
                "on the async workers (old)"
            } else {
                "prepare_off_workers (new)"
            },
            ms(tick),
            ms(cached),
            ms(fresh),
            match fresh_result {
                Ok(()) => "planned".to_owned(),
                Err(err) => err.to_string(),
            }
        );
        println!("     hostile documents: {}", outcomes.join("; "));
    });
}

fn main() {
    let fields = std::env::var("HOSTILE_FIELDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(9_000);
    refusals();
    steps();
    println!(
        "3. latency with 4 × {fields}-field documents in flight (limits off, PLAN_TIMEOUT 3 s, 2 async workers, {} planning threads)",
        PlannerSettings::default().workers
    );
    in_flight(4, fields, true);
    in_flight(4, fields, false);
}
