//! A router inside the test process, on a free port.

use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::settings::RunMode;
use shopgraph_router::RouterApp;
use shopgraph_router::config::RouterSettings;
use tokio_util::sync::CancellationToken;

use super::supergraph_path;
use crate::helpers::{GqlResponse, TEST_JWT_SECRET};

/// A running in-process router and a client for it; stopped on drop.
pub struct Router {
    pub url: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Router {
    /// Starts a router with `vars` on top of the test defaults. It serves
    /// once this returns: the listener is bound before `run` is spawned.
    pub async fn start(vars: &[(&str, String)]) -> Self {
        crate::telemetry::init();
        let mut pairs: Vec<(String, String)> = vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("ROUTER_PORT".into(), "0".into()),
            ("SUPERGRAPH_PATH".into(), supergraph_path()),
            ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("SUBGRAPH_TIMEOUT".into(), "5s".into()),
            // A free port for the admin listener (its default, 4100, would
            // clash between routers running side by side).
            ("ADMIN_PORT".into(), "0".into()),
        ];
        pairs.extend(
            shopgraph_core::hop::HopKeyPair::of_this_process()
                .env_vars()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        pairs.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let settings = RouterSettings::from_env(&Env::from_pairs(pairs), RunMode::Serve)
            .expect("valid router settings");
        let app = RouterApp::bind(settings).await.expect("router starts");
        let url = format!("http://{}/graphql", app.local_addr().expect("bound"));
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone().cancelled_owned()));
        Self {
            url,
            client: reqwest::Client::new(),
            stop,
        }
    }

    /// POSTs a GraphQL request with `token`.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the router answers");
        let status = response.status();
        GqlResponse {
            status,
            body: response.json().await.expect("a JSON body"),
        }
    }
}
