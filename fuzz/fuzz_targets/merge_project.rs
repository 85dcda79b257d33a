//! Merging and projecting hostile subgraph answers: the real executor runs
//! the plan of a client operation, and each subgraph fetch it makes is
//! answered with the next piece of the input (pieces separated by a NUL
//! byte; a piece that is not a GraphQL response is a malformed answer).
//! Entity batching, `_entities` merging, null propagation and projection
//! all see what a broken or hostile subgraph could send. Nothing may
//! panic, and the body must be JSON.
#![no_main]

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use serde_json::Map;
use shopgraph_core::identity::Identity;
use shopgraph_router::executor::{ExecutionRequest, Executor};
use shopgraph_router::pipeline::variables::coerce;
use shopgraph_router::subgraph::{FetchError, Fetcher, SubgraphRequest, SubgraphResponse};

/// Answers each fetch with the next input piece.
struct Answers(Mutex<Vec<Vec<u8>>>);

impl Fetcher for Answers {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        _request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        let next = self.0.lock().map(|mut pieces| pieces.pop()).ok().flatten();
        Box::pin(async move {
            let piece = next.ok_or_else(|| FetchError::Malformed {
                subgraph: subgraph.to_owned(),
                reason: "no more answers".to_owned(),
            })?;
            serde_json::from_slice::<SubgraphResponse>(&piece).map_err(|err| {
                FetchError::Malformed {
                    subgraph: subgraph.to_owned(),
                    reason: err.to_string(),
                }
            })
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let prepared = shopgraph_fuzz::operation(selector);
    let mut pieces: Vec<Vec<u8>> = rest.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    pieces.reverse();
    let schema = shopgraph_fuzz::schema();
    let variables = coerce(
        prepared.operation.variable_definitions.as_deref(),
        &Map::new(),
    )
    .unwrap_or_default();
    let identity = Identity::default();
    let executor = Executor::new(Arc::new(Answers(Mutex::new(pieces))));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let result = runtime.block_on(executor.execute(
        &schema,
        ExecutionRequest {
            plan: &prepared.plan,
            operation: &prepared.operation,
            root_type: &prepared.root_type,
            variables: &variables,
            identity: &identity,
            extra_root_fields: Map::new(),
            denied: None,
        },
    ));
    let body = result.into_body();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
        "the response body is JSON: {}",
        String::from_utf8_lossy(&body)
    );
});
