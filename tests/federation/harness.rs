//! One router over the four fixture subgraphs, per test, and assertions that
//! compare responses exactly — key order included.
//!
//! Responses are parsed into [`Json`], which keeps object keys in the order
//! the router wrote them whatever `serde_json`'s features (the router turns
//! on `preserve_order`; the suite does not rely on it). Expected `data` is
//! written as JSON text, in the order the query selects the fields.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::settings::RunMode;
use shopgraph_router::RouterApp;
use shopgraph_router::config::RouterSettings;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::fixtures::{self, FixtureServer, SharedCounter};

/// The composed fixture supergraph (`node tests/federation/compose.mjs`).
pub const SUPERGRAPH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/federation/supergraph.graphql"
);

/// The fixture subgraphs and a router in front of them, for one test.
/// Dropping it stops the router and the subgraphs.
pub struct Federation {
    pub router: SocketAddr,
    client: reqwest::Client,
    subgraphs: BTreeMap<&'static str, FixtureServer>,
    _stop: DropGuard,
}

impl Federation {
    /// All four subgraphs up.
    pub async fn start() -> Self {
        Self::start_with_down(&[]).await
    }

    /// Every subgraph in `down` is configured at a loopback port nobody
    /// listens on; the others run.
    pub async fn start_with_down(down: &[&str]) -> Self {
        crate::telemetry::init();
        let counter = SharedCounter::default();
        let mut subgraphs = BTreeMap::new();
        let mut pairs = vec![
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("ROUTER_PORT".to_owned(), "0".to_owned()),
            ("ADMIN_PORT".to_owned(), "0".to_owned()),
            ("SUPERGRAPH_PATH".to_owned(), SUPERGRAPH.to_owned()),
            // `serve` needs a secret of its own and, by default, answers no
            // introspection; these tests exercise it.
            (
                "JWT_SECRET".to_owned(),
                "federation-test-secret-0123456789abcdef".to_owned(),
            ),
            ("GRAPHQL_INTROSPECTION".to_owned(), "true".to_owned()),
        ];
        for name in fixtures::NAMES {
            let url = if down.contains(&name) {
                unreachable_url()
            } else {
                let server = FixtureServer::start(name, &counter).await;
                let url = server.url();
                subgraphs.insert(name, server);
                url
            };
            pairs.push((format!("{}_SERVICE_URL", name.to_ascii_uppercase()), url));
        }

        pairs.extend(
            shopgraph_core::hop::HopKeyPair::of_this_process()
                .env_vars()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let env = Env::from_pairs(pairs);
        let settings = RouterSettings::from_env(&env, RunMode::Serve).expect("router settings");
        let app = RouterApp::bind(settings).await.expect("router starts");
        let router = app.local_addr().expect("router address");
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone().cancelled_owned()));

        Self {
            router,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
            subgraphs,
            _stop: stop.drop_guard(),
        }
    }

    /// Runs `query` with `variables` (`json!({})` for none).
    pub async fn query(&self, query: &str, variables: Value) -> GqlResponse {
        self.post(json!({ "query": query, "variables": variables }))
            .await
    }

    /// Runs operation `name` of a document holding several.
    pub async fn query_named(&self, query: &str, name: &str) -> GqlResponse {
        self.post(json!({ "query": query, "operationName": name }))
            .await
    }

    async fn post(&self, body: Value) -> GqlResponse {
        let response = self
            .client
            .post(format!("http://{}/graphql", self.router))
            .json(&body)
            .send()
            .await
            .expect("the router answers");
        let status = response.status();
        let text = response.text().await.expect("a response body");
        let ordered = Json::parse(&text)
            .unwrap_or_else(|error| panic!("not JSON ({error}), status {status}: {text}"));
        let body = serde_json::from_str(&text).expect("JSON");
        GqlResponse {
            status,
            body,
            ordered,
        }
    }

    /// The request bodies subgraph `name` received, oldest first.
    pub fn requests(&self, name: &str) -> Vec<Value> {
        self.subgraphs
            .get(name)
            .unwrap_or_else(|| panic!("subgraph {name} is not running"))
            .requests()
    }

    /// How many requests subgraph `name` received.
    pub fn request_count(&self, name: &str) -> usize {
        self.requests(name).len()
    }

    /// Every `representations` list sent to subgraph `name`, in order.
    pub fn representations(&self, name: &str) -> Vec<Vec<Value>> {
        self.requests(name)
            .iter()
            .filter_map(|body| {
                let variables = body.get("variables")?.as_object()?;
                variables.values().find_map(|value| {
                    let list = value.as_array()?;
                    let is_representations = list
                        .first()
                        .is_some_and(|first| first.get("__typename").is_some());
                    is_representations.then(|| list.clone())
                })
            })
            .collect()
    }
}

/// A GraphQL URL on a loopback port nobody listens on (a subgraph that is down).
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("http://{}/graphql", listener.local_addr().expect("address"))
}

/// A router response as the client saw it.
#[derive(Debug)]
pub struct GqlResponse {
    pub status: StatusCode,
    /// For convenient access (key order lost).
    pub body: Value,
    /// Exactly as sent, key order kept.
    pub ordered: Json,
}

impl GqlResponse {
    /// HTTP 200, no `errors`, and `data` equal to `expected`, key order
    /// included.
    #[track_caller]
    pub fn assert_data(&self, expected: &str) {
        self.assert_errors(expected, &[]);
    }

    /// HTTP 200, `data` equal to `expected` (key order included), and
    /// exactly `errors`: each expected error is matched with the actual one
    /// at the same position (both sorted by path) on `path` when given, on
    /// every given `extensions` entry, and on `message` as a substring.
    #[track_caller]
    pub fn assert_errors(&self, expected: &str, errors: &[Value]) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "HTTP status; body: {}",
            self.ordered
        );
        let expected = Json::parse(expected).expect("expected data is JSON");
        let data = self.ordered.get("data").unwrap_or(&Json::Null);
        assert!(
            *data == expected,
            "data differs\n  expected: {expected}\n  actual:   {data}\n  response: {}",
            self.ordered
        );
        let actual = self.errors();
        assert_eq!(
            actual.len(),
            errors.len(),
            "number of errors; expected {errors:#?}\n response: {}",
            self.ordered
        );
        let by_path = |error: &&Value| error.get("path").map(Value::to_string);
        let mut actual: Vec<&Value> = actual.iter().collect();
        actual.sort_by_key(by_path);
        let mut expected_errors: Vec<&Value> = errors.iter().collect();
        expected_errors.sort_by_key(by_path);
        for (actual, expected) in actual.into_iter().zip(expected_errors) {
            assert_error_matches(actual, expected, &self.ordered);
        }
    }

    /// HTTP 400, no `data` at all, and a first error with `extensions.code`
    /// equal to `code` (any code when `None`).
    #[track_caller]
    pub fn assert_rejected(&self, code: Option<&str>) {
        assert_eq!(
            self.status,
            StatusCode::BAD_REQUEST,
            "HTTP status; body: {}",
            self.ordered
        );
        assert!(
            self.body.get("data").is_none(),
            "a request error has no data entry: {}",
            self.ordered
        );
        let errors = self.errors();
        assert!(!errors.is_empty(), "errors expected: {}", self.ordered);
        if let Some(code) = code {
            assert_eq!(
                errors[0]["extensions"]["code"], code,
                "error code; body: {}",
                self.ordered
            );
        }
    }

    /// The `errors` entry (empty when absent).
    pub fn errors(&self) -> Vec<Value> {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

#[track_caller]
fn assert_error_matches(actual: &Value, expected: &Value, response: &Json) {
    if let Some(path) = expected.get("path") {
        assert_eq!(
            actual.get("path"),
            Some(path),
            "error path; response: {response}"
        );
    }
    if let Some(message) = expected.get("message").and_then(Value::as_str) {
        let actual_message = actual["message"].as_str().unwrap_or_default();
        assert!(
            actual_message.contains(message),
            "error message {actual_message:?} should contain {message:?}; response: {response}"
        );
    }
    if let Some(extensions) = expected.get("extensions").and_then(Value::as_object) {
        for (key, value) in extensions {
            assert_eq!(
                actual["extensions"].get(key),
                Some(value),
                "error extensions.{key}; response: {response}"
            );
        }
    }
}

/// A JSON value that keeps object keys in document order; numbers compare
/// by value (`12` equals `12.0`).
#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The entry `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Json::Null, Json::Null) => true,
            (Json::Bool(a), Json::Bool(b)) => a == b,
            (Json::Number(a), Json::Number(b)) => a == b || a.as_f64() == b.as_f64(),
            (Json::String(a), Json::String(b)) => a == b,
            (Json::Array(a), Json::Array(b)) => a == b,
            (Json::Object(a), Json::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => write!(f, "{n}"),
            Json::String(s) => write!(f, "{}", Value::String(s.clone())),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Object(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{value}", Value::String(key.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a non-finite number"))
            }

            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Json>()? {
                    entries.push((key, value));
                }
                Ok(Json::Object(entries))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}
