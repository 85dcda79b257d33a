//! How the storm's clients talk to the shop: like a mobile app behind a
//! load balancer, each request goes to the next router, and an answer
//! is sorted into what a client can act on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// What a request came to.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `data` with no error.
    Data(Value),
    /// The shop said no, for a reason retrying the same request will not
    /// change (`OUT_OF_STOCK`, `CONFLICT`, ...).
    Refused { code: String, error: Value },
    /// No answer one can act on: the router or a subgraph was unreachable,
    /// timed out or failed. The request may or may not have taken effect.
    Unavailable(String),
}

/// Codes that answer the request: the same request again gets the same
/// refusal until something else changes.
const REFUSALS: &[&str] = &[
    "OUT_OF_STOCK",
    "PRICE_CHANGED",
    "PRODUCT_UNAVAILABLE",
    "CONFLICT",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "FORBIDDEN",
    "UNAUTHENTICATED",
    "GRAPHQL_VALIDATION_FAILED",
];

/// The routers, in turn.
pub struct Api {
    routers: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
}

impl Api {
    pub fn new(routers: Vec<String>) -> Self {
        Self {
            routers,
            next: AtomicUsize::new(0),
            http: crate::http_client(Duration::from_secs(15)),
        }
    }

    /// POSTs the operation to the next router with `token`.
    pub async fn call(&self, token: &str, query: &str, variables: Value) -> Answer {
        let router = &self.routers[self.next.fetch_add(1, Ordering::Relaxed) % self.routers.len()];
        let response = match self
            .http
            .post(router)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return Answer::Unavailable(format!("{router}: {err}")),
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(err) => return Answer::Unavailable(format!("{router}: {status}, body: {err}")),
        };
        classify(body)
    }
}

fn classify(body: Value) -> Answer {
    let first_error = body["errors"].as_array().and_then(|errors| errors.first());
    match first_error {
        None if body["data"].is_object() => Answer::Data(body["data"].clone()),
        None => Answer::Unavailable(format!("neither data nor errors: {body}")),
        Some(error) => {
            let code = error["extensions"]["code"]
                .as_str()
                .unwrap_or("NO_CODE")
                .to_owned();
            if REFUSALS.contains(&code.as_str()) {
                Answer::Refused {
                    code,
                    error: error.clone(),
                }
            } else {
                let message = error["message"].as_str().unwrap_or_default();
                Answer::Unavailable(format!("{code}: {message}"))
            }
        }
    }
}
