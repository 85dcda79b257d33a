//! The signed hop's cost per subgraph request (issue 17): signing at the
//! router, verifying at the subgraph, for a typical subgraph request.
//!
//!   cargo bench -p shopgraph-core --bench hop
//!
//! Prints the mean over many iterations (after a warm-up) for: signing a
//! request with the caller's identity, verifying it (signature, digest,
//! replay check), and, for scale, hashing the same body once. No
//! assertions: figures, not a timed test. Knob: HOP_BENCH_ITERATIONS.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Uri};
use hyper::body::Bytes;
use shopgraph_core::config::Env;
use shopgraph_core::hop::{HopKeyPair, HopSettings};
use shopgraph_core::identity::{ADMIN_ROLE, Identity, Viewer, forward_identity};
use shopgraph_core::settings::RunMode;

/// A products-page fetch as the router sends it: about 300 bytes of JSON.
const BODY: &str = r#"{"query":"query Catalogue($first:Int,$after:String){products(first:$first,after:$after){edges{cursor node{id name price{amount currency} stockQuantity inStock category imageUrl}}pageInfo{hasNextPage endCursor}}}","operationName":"Catalogue","variables":{"first":20,"after":null}}"#;

fn main() {
    let iterations: u32 = std::env::var("HOP_BENCH_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    let pair = HopKeyPair::generate();
    let settings = HopSettings::from_env(&Env::from_pairs(pair.env_vars()), RunMode::Serve)
        .unwrap_or_else(|err| panic!("settings: {err}"));
    let signer = settings
        .require_signer()
        .unwrap_or_else(|err| panic!("signer: {err}"));
    let verifier = settings
        .require_verifier("product")
        .unwrap_or_else(|err| panic!("verifier: {err}"));
    let uri = Uri::from_static("http://127.0.0.1:4001/graphql");
    let at_server = Uri::from_static("/graphql");
    let body = Bytes::from_static(BODY.as_bytes());
    let identity = Identity::User(Viewer {
        user_id: "user-0042".into(),
        roles: vec![ADMIN_ROLE.into()],
    });
    let request_headers = || {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            "accept",
            HeaderValue::from_static("application/graphql-response+json, application/json"),
        );
        forward_identity(&identity, &mut headers);
        headers
    };

    runtime.block_on(async {
        // Warm-up, and the signed requests the verifier will check.
        let mut signed = Vec::with_capacity(iterations as usize);
        for _ in 0..iterations.min(1_000) {
            let mut headers = request_headers();
            signer
                .sign(&Method::POST, &uri, &mut headers, &body, "product")
                .await
                .unwrap_or_else(|err| panic!("sign: {err}"));
        }
        let started = Instant::now();
        for _ in 0..iterations {
            let mut headers = request_headers();
            signer
                .sign(&Method::POST, &uri, &mut headers, &body, "product")
                .await
                .unwrap_or_else(|err| panic!("sign: {err}"));
            signed.push(headers);
        }
        let sign = started.elapsed();

        let started = Instant::now();
        for headers in &signed {
            verifier
                .verify(&Method::POST, &at_server, headers, &body)
                .await
                .unwrap_or_else(|err| panic!("verify: {err}"));
        }
        let verify = started.elapsed();

        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(request_headers());
        }
        let baseline = started.elapsed();

        // The Ed25519 operations alone (httpsig's ed25519-compact), on a
        // signature base of the size the hop signs.
        let key = HopKeyPair::generate();
        let secret = httpsig_hyper::prelude::SecretKey::from_pem(
            &httpsig_hyper::prelude::AlgorithmName::Ed25519,
            &key.private_pem,
        )
        .unwrap_or_else(|err| panic!("key: {err}"));
        let base = vec![b'x'; 420];
        let started = Instant::now();
        let mut signature = Vec::new();
        for _ in 0..iterations {
            signature = httpsig_hyper::prelude::SigningKey::sign(&secret, &base)
                .unwrap_or_else(|err| panic!("sign: {err}"));
        }
        let raw_sign = started.elapsed();
        let public = secret.public_key();
        let started = Instant::now();
        for _ in 0..iterations {
            httpsig_hyper::prelude::VerifyingKey::verify(&public, &base, &signature)
                .unwrap_or_else(|err| panic!("verify: {err}"));
        }
        let raw_verify = started.elapsed();

        let per = |total: Duration| total.as_secs_f64() * 1e6 / f64::from(iterations);
        println!("signed hop, {iterations} requests of {} bytes:", BODY.len());
        println!(
            "  sign (router, per subgraph request)   {:>7.1} µs",
            per(sign) - per(baseline)
        );
        println!(
            "  verify (subgraph, per request)        {:>7.1} µs",
            per(verify)
        );
        println!(
            "  of which Ed25519 alone: sign {:.1} µs, verify {:.1} µs",
            per(raw_sign),
            per(raw_verify)
        );
        println!(
            "  (building the unsigned headers alone  {:>7.1} µs, not counted above)",
            per(baseline)
        );
    });
}
