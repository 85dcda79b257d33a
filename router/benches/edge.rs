//! What each layer of the HTTP edge costs per request, in isolation.
//!
//!   cargo bench -p shopgraph-router --bench edge
//!
//! The router's real edge ([`shopgraph_router::edge::Edge`], built from
//! the same environment variables as `shopgraph serve router`) wraps a
//! `/graphql` handler that reads the body and answers a fixed JSON
//! document, so everything measured is the edge itself. Each request is
//! what a browser on an allowed origin sends: `POST /graphql` with a
//! bearer token, `Origin` and `content-type: application/json`; it goes
//! through `tower::ServiceExt::oneshot` on one thread, no sockets.
//!
//! Configurations: "bare" (every edge protection off: the trace span,
//! compression, body limit, timeout and token check remain, as in the
//! router benchmark's bare router), then each protection alone on top of
//! bare, then all of them, then bare with every token verified afresh
//! (`JWT_CACHE_SIZE=0`: what remembering verified tokens saves). Each figure is the fastest of EDGE_RUNS runs of
//! EDGE_REQUESTS requests (the configurations take turns, run by run), in
//! nanoseconds per request; "added" is the difference from bare.
//!
//! Knobs: EDGE_REQUESTS=20000 EDGE_RUNS=15, EDGE_ONLY=CORS (bare and the
//! configurations named, comma-separated: for a profiler).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use http::{Request, StatusCode, header};
use shopgraph_core::config::Env;
use shopgraph_core::identity::JwtVerifier;
use shopgraph_core::identity::TokenIssuer;
use shopgraph_core::settings::RunMode;
use shopgraph_router::config::RouterSettings;
use shopgraph_router::edge::Edge;
use tower::ServiceExt;

const SECRET: &str = "edge-bench-secret-edge-bench-secret";
const ORIGIN: &str = "https://shop.example";
const BODY: &str = r#"{"query":"{ products(first: 50) { edges { node { id name price { amount currency } } } } }"}"#;
const ANSWER: &str = r#"{"data":{"products":{"edges":[]}}}"#;

/// Every protection of the edge off.
const BARE: &[(&str, &str)] = &[
    ("SECURITY_HEADERS", "false"),
    ("CSRF_PREVENTION", "false"),
    ("RATE_LIMIT_ENABLED", "false"),
];

/// The variables that turn each protection on, as the router benchmark's
/// protected router sets them (a rate-limit budget never reached).
const PROTECTIONS: &[(&str, &[(&str, &str)])] = &[
    ("security headers", &[("SECURITY_HEADERS", "true")]),
    ("CORS", &[("CORS_ALLOWED_ORIGINS", ORIGIN)]),
    ("CSRF prevention", &[("CSRF_PREVENTION", "true")]),
    (
        "rate limit (memory)",
        &[
            ("RATE_LIMIT_ENABLED", "true"),
            ("RATE_LIMIT_REQUESTS", "1000000"),
            ("RATE_LIMIT_WINDOW", "1s"),
            ("RATE_LIMIT_BURST", "1000000"),
        ],
    ),
];

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The router's edge for these variables (on top of [`BARE`]) around a
/// handler that costs next to nothing.
async fn edge(pairs: &[(&str, &str)]) -> Router {
    let mut vars: Vec<(&str, &str)> = vec![("JWT_SECRET", SECRET), ("ROUTER_PORT", "0")];
    vars.extend(shopgraph_core::hop::HopKeyPair::of_this_process().env_vars());
    vars.extend_from_slice(BARE);
    vars.extend_from_slice(pairs);
    let env = Env::from_pairs(vars);
    let settings = match RouterSettings::from_env(&env, RunMode::Serve) {
        Ok(settings) => settings,
        Err(err) => panic!("bench settings: {err}"),
    };
    let auth = match JwtVerifier::new(&settings.auth).await {
        Ok(auth) => Arc::new(auth),
        Err(err) => panic!("bench auth: {err}"),
    };
    let edge = match Edge::new(
        &settings.http,
        &settings.security,
        &settings.rate_limit,
        auth,
        None,
    ) {
        Ok(edge) => edge,
        Err(err) => panic!("bench edge: {err}"),
    };
    let graphql = post(|body: Bytes| async move {
        std::hint::black_box(body);
        ([(header::CONTENT_TYPE, "application/json")], ANSWER)
    });
    edge.wrap(graphql, Router::new())
}

fn token() -> String {
    let authority = TokenIssuer::new(SECRET, "shopgraph", "shopgraph");
    match authority.issue("bench", &[], Duration::from_secs(3600)) {
        Ok(token) => token,
        Err(err) => panic!("bench token: {err}"),
    }
}

fn request(authorization: &str) -> Request<Body> {
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, authorization)
        .header(header::ORIGIN, ORIGIN)
        .header(
            header::ACCEPT,
            "application/graphql-response+json, application/json",
        )
        .body(Body::from(BODY));
    match request {
        Ok(request) => request,
        Err(err) => panic!("bench request: {err}"),
    }
}

/// Nanoseconds per request over `requests` requests.
async fn measure(router: &Router, authorization: &str, requests: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..requests {
        let response = match router.clone().oneshot(request(authorization)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        assert_eq!(response.status(), StatusCode::OK, "the edge refused");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        std::hint::black_box(body.is_ok());
    }
    started.elapsed().as_nanos() as f64 / requests as f64
}

fn main() {
    let requests = knob("EDGE_REQUESTS", 20_000).max(1);
    let runs = knob("EDGE_RUNS", 15).max(1);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("tokio runtime: {err}"),
    };
    runtime.block_on(async {
        let authorization = format!("Bearer {}", token());
        let all: Vec<(&str, &str)> = PROTECTIONS
            .iter()
            .flat_map(|(_, pairs)| pairs.iter().copied())
            .collect();
        let mut configurations: Vec<(&str, Vec<(&str, &str)>)> = vec![("bare", Vec::new())];
        configurations.extend(
            PROTECTIONS
                .iter()
                .map(|(name, pairs)| (*name, pairs.to_vec())),
        );
        configurations.push(("all protections", all));
        // Not a protection: what remembering verified tokens saves (its
        // "added" is what every request would cost without it).
        configurations.push(("tokens not remembered", vec![("JWT_CACHE_SIZE", "0")]));
        // EDGE_ONLY=CORS: bare and the named configurations, for a profiler.
        if let Ok(only) = std::env::var("EDGE_ONLY") {
            configurations.retain(|(name, _)| {
                *name == "bare" || only.split(',').any(|wanted| wanted == *name)
            });
        }
        let mut routers = Vec::with_capacity(configurations.len());
        for (name, pairs) in &configurations {
            routers.push((*name, edge(pairs).await));
        }
        // Round-robin over the configurations, so that a slower moment of
        // the machine hits them all alike; the first round only warms up.
        let mut samples = vec![Vec::with_capacity(runs); routers.len()];
        for round in 0..=runs {
            for ((_, router), samples) in routers.iter().zip(&mut samples) {
                let ns = measure(router, &authorization, requests).await;
                if round > 0 {
                    samples.push(ns);
                }
            }
        }
        println!(
            "edge cost per request: fastest of {runs} runs x {requests} requests, one thread\n"
        );
        println!("{:<22} {:>10} {:>10}", "configuration", "ns/req", "added");
        // The fastest run: the code's own cost, least disturbed by the
        // rest of the machine (a virtual machine's timings are noisy).
        let best: Vec<f64> = samples
            .iter()
            .map(|samples| samples.iter().copied().fold(f64::INFINITY, f64::min))
            .collect();
        for ((name, _), ns) in routers.iter().zip(&best) {
            let added = if *name == "bare" {
                "-".to_owned()
            } else {
                format!("{:+.0}", ns - best[0])
            };
            println!("{name:<22} {ns:>10.0} {added:>10}");
        }
    });
}
