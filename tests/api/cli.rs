//! The `shopgraph` binary as users run it: `dev`, `migrate`, `sdl`, `token`
//! and configuration errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::identity::{JwtSettings, JwtVerifier};
use shopgraph_core::settings::{DEV_JWT_SECRET, RunMode};

/// Service name → GraphQL URL, as `shopgraph dev` printed them.
type Urls = std::collections::HashMap<String, String>;

fn shopgraph() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopgraph"));
    // Start from a clean environment so a developer's variables do not leak in.
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

/// Free ports for `dev`'s four metrics listeners (their defaults, 4101 to
/// 4104, would clash between tests running side by side).
pub(crate) const FREE_METRICS_PORTS: [(&str, &str); 4] = [
    ("PRODUCT_METRICS_PORT", "0"),
    ("BASKET_METRICS_PORT", "0"),
    ("PAYMENT_METRICS_PORT", "0"),
    ("NOTIFICATION_METRICS_PORT", "0"),
];

/// Starts `shopgraph dev` in `data_dir` on free ports; returns the child
/// and the URL it printed for each service (GraphQL), and for each
/// subgraph's metrics listener (`"product metrics"`).
fn start_dev(data_dir: &std::path::Path) -> (Child, Urls) {
    start_dev_with(data_dir, &[])
}

/// [`start_dev`] with extra environment variables (which win over the
/// free-port defaults).
pub(crate) fn start_dev_with(data_dir: &std::path::Path, vars: &[(&str, &str)]) -> (Child, Urls) {
    let mut child = shopgraph()
        .arg("dev")
        .env("ROUTER_PORT", "0")
        .env("PRODUCT_PORT", "0")
        .env("BASKET_PORT", "0")
        .env("PAYMENT_PORT", "0")
        .env("NOTIFICATION_PORT", "0")
        .env("ADMIN_PORT", "0")
        .envs(FREE_METRICS_PORTS)
        .env("SHOPGRAPH_DATA_DIR", data_dir)
        .env("LOG_FORMAT", "json")
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("shopgraph dev starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut words = line.split_whitespace();
            if let (Some(service), Some(url)) = (words.next(), words.next())
                && url.starts_with("http://127.0.0.1:")
            {
                // `  product  http://…/graphql   metrics: http://…/metrics`:
                // the metrics URL first, so it is in once the service is.
                if let Some((_, metrics)) = line.split_once("metrics: ") {
                    let _ = sender.send((format!("{service} metrics"), metrics.trim().to_owned()));
                }
                let _ = sender.send((service.to_owned(), url.to_owned()));
            }
        }
    });
    let mut urls = std::collections::HashMap::new();
    while !["router", "product", "basket", "payment", "notification"]
        .iter()
        .all(|service| urls.contains_key(*service))
    {
        let (service, url) = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("dev prints every service's URL");
        urls.insert(service, url);
    }
    (child, urls)
}

/// Stops `dev` with SIGTERM and asserts it exits cleanly within 30 s.
pub(crate) fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "dev exits cleanly on SIGTERM: {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dev stops within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Posts `query` to a `dev` service and returns the whole answer.
async fn post_query(url: &str, query: &str) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("dev answers")
        .json()
        .await
        .expect("JSON")
}

async fn total_products(url: &str) -> Value {
    post_query(url, "{ products(first: 1) { totalCount } categories }").await["data"].clone()
}

#[tokio::test]
async fn dev_serves_demo_data_and_restarts_without_duplicates() {
    let data_dir =
        std::env::temp_dir().join(format!("shopgraph-dev-{}", uuid::Uuid::new_v4().simple()));
    let (child, urls) = start_dev(&data_dir);
    let first = total_products(&urls["product"]).await;
    assert!(
        first["products"]["totalCount"].as_u64().unwrap() >= 50,
        "{first}"
    );
    assert!(first["categories"].as_array().unwrap().len() >= 5);
    dev_keeps_introspection_and_graphiql(&urls).await;
    dev_serves_subgraph_metrics_apart(&urls).await;
    shop_flow_across_subgraphs(&urls).await;
    stop(child);

    let (child, urls) = start_dev(&data_dir);
    let second = total_products(&urls["product"]).await;
    assert_eq!(second, first, "restarting does not duplicate the catalogue");
    stop(child);
    std::fs::remove_dir_all(&data_dir).ok();
}

/// In `dev` too, each subgraph serves `/metrics` on its metrics listener
/// (printed beside its GraphQL URL) and not on its GraphQL port.
async fn dev_serves_subgraph_metrics_apart(urls: &Urls) {
    let client = reqwest::Client::new();
    for service in ["product", "basket", "payment", "notification"] {
        let metrics = &urls[&format!("{service} metrics")];
        let scraped = client.get(metrics).send().await.expect("dev answers");
        assert_eq!(scraped.status(), 200, "{service}: {metrics}");
        let text = scraped.text().await.expect("text");
        assert!(text.contains("# TYPE"), "{service}: {text}");
        let public = urls[service].replace("/graphql", "/metrics");
        let refused = client.get(&public).send().await.expect("dev answers");
        assert_eq!(refused.status(), 404, "{service}: {public}");
    }
}

/// `dev` is for trying the shop: introspection and GraphiQL stay on at
/// the router and at the subgraphs (`serve` turns both off by default),
/// GraphiQL with its files served by each server itself.
async fn dev_keeps_introspection_and_graphiql(urls: &Urls) {
    let client = reqwest::Client::new();
    let assets = shopgraph_core::graphiql::asset_paths();
    for service in ["router", "product", "basket", "payment", "notification"] {
        let url = &urls[service];
        let body = post_query(url, "{ __schema { queryType { name } } }").await;
        assert_eq!(
            body["data"]["__schema"]["queryType"]["name"], "Query",
            "{service}: {body:#}"
        );
        let page = client
            .get(url)
            .header("accept", "text/html")
            .send()
            .await
            .expect("dev answers");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .is_ok_and(|value| value.starts_with("text/html")),
            "{service}: no GraphiQL in dev"
        );
        assert_eq!(
            page.headers()["content-security-policy"],
            shopgraph_core::graphiql::CONTENT_SECURITY_POLICY,
            "{service}"
        );
        let html = page.text().await.expect("the page");
        assert!(html.contains("/graphiql/assets/"), "{service}: {html}");
        for asset in &assets {
            let file = client
                .get(url.replace("/graphql", asset))
                .send()
                .await
                .expect("dev answers");
            assert_eq!(file.status(), 200, "{service}: {asset}");
            assert_eq!(
                file.headers()["cache-control"],
                shopgraph_core::static_files::CACHE_HASHED,
                "{service}: {asset}"
            );
        }
    }
}

/// In `dev`, the router serves the shop and the subgraphs find each other:
/// a basket is priced by product and paid through payment, which reads the
/// basket with the user's identity; `me` gathers all four subgraphs; a dev
/// token sent straight to a subgraph still works (dev only).
async fn shop_flow_across_subgraphs(urls: &Urls) {
    let client = reqwest::Client::new();
    let token = String::from_utf8(
        shopgraph()
            .args(["token", "--user", "dev-test-user"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let call = |service: &str, query: &str| {
        client
            .post(&urls[service])
            .bearer_auth(token.trim())
            .json(&json!({ "query": query }))
            .send()
    };
    let products: Value = call(
        "router",
        "{ products(first: 1, filter: { inStock: true }) { edges { node { id } } } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let product = products["data"]["products"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added: Value = call(
        "router",
        &format!(
            "mutation {{ addBasketItem(productId: \"{product}\", quantity: 1) {{ itemCount }} }}"
        ),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(added["data"]["addBasketItem"]["itemCount"], 1, "{added}");
    let paid: Value = call(
        "router",
        "mutation { checkout(input: { idempotencyKey: \"dev\", method: CARD, card: { number: \"4242424242424242\", expMonth: 1, expYear: 2040, cvc: \"123\" } }) { status } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(paid["data"]["checkout"]["status"], "COMPLETED", "{paid}");
    let inbox: Value = call(
        "notification",
        "{ myNotifications { edges { node { id } } } notificationStats { total } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        inbox["data"]["notificationStats"]["total"].is_number(),
        "{inbox}"
    );
    let me: Value = call(
        "router",
        "{ me { id basket { itemCount } payments(first: 1) { edges { node { status items { product { id } } } } } unreadNotificationCount } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let me = &me["data"]["me"];
    assert_eq!(me["id"], "dev-test-user", "{me}");
    let payment = &me["payments"]["edges"][0]["node"];
    assert_eq!(payment["status"], "COMPLETED", "{me}");
    assert_eq!(payment["items"][0]["product"]["id"], product.as_str());
    assert!(me["unreadNotificationCount"].is_number(), "{me}");
}

#[test]
fn sdl_prints_the_federation_schema() {
    for (service, entity) in [
        ("product", "type Product @key(fields: \"id\")"),
        ("basket", "type User @key(fields: \"id\")"),
        ("payment", "type Payment @key(fields: \"id\")"),
        ("notification", "type Notification @key(fields: \"id\")"),
    ] {
        let output = shopgraph().args(["sdl", service]).output().expect("runs");
        assert!(output.status.success());
        let sdl = String::from_utf8(output.stdout).unwrap();
        assert!(sdl.contains(entity), "{service}");
        assert!(sdl.contains("specs.apollo.dev/federation/v2"), "{service}");
    }
}

#[tokio::test]
async fn token_prints_a_verifiable_dev_token() {
    let output = shopgraph()
        .args(["token", "--user", "alice", "--admin"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let settings = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", DEV_JWT_SECRET)]),
        RunMode::Dev,
    )
    .expect("the dev secret is a valid JWT_SECRET");
    let viewer = JwtVerifier::new(&settings)
        .await
        .expect("HS256 needs no key download")
        .verify(token.trim())
        .expect("signed with the dev secret");
    assert_eq!(viewer.user_id, "alice");
    assert!(viewer.is_admin());
}

#[test]
fn invalid_configuration_names_the_variable() {
    let output = shopgraph()
        .args(["serve", "product"])
        .env("PRODUCT_PORT", "eighty")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("PRODUCT_PORT") && stderr.contains("eighty"),
        "{stderr}"
    );

    let output = shopgraph()
        .args(["migrate", "product"])
        .env("DATABASE_URL", "oracle://db")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("DATABASE_URL")
    );
}

/// Waits up to 30 s for `command` to exit; a process still running then
/// (serving, where it should have refused to start) is killed and fails
/// the test. Returns the exit code and stderr.
fn exit_of(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("still running after 30 s: it started instead of refusing to");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
    }
    (status.code(), stderr)
}

/// `serve router` without `JWT_SECRET` or a JWKS would accept tokens
/// signed with the public dev secret (anyone could mint an admin token
/// from the README): it refuses to start, exit 2, naming the variables.
/// The same for a subgraph that accepts direct tokens.
#[test]
fn serve_without_a_jwt_secret_exits_2_naming_it() {
    let mut router = shopgraph();
    router
        .args(["serve", "router"])
        .env("HOST", "127.0.0.1")
        .env("ROUTER_PORT", "0")
        .env("ADMIN_PORT", "0")
        .env("SUPERGRAPH_PATH", crate::harness::supergraph_path())
        .env("LOG_LEVEL", "warn");
    let (code, stderr) = exit_of(router);
    assert_eq!(code, Some(2), "{stderr}");
    for var in ["JWT_SECRET", "JWT_JWKS_URL", "JWT_JWKS_FILE"] {
        assert!(stderr.contains(var), "{var} not named: {stderr}");
    }
    assert!(stderr.contains("configuration error"), "{stderr}");
    assert!(!stderr.contains(DEV_JWT_SECRET), "{stderr}");

    let data_dir = std::env::temp_dir().join(format!(
        "shopgraph-nosecret-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut subgraph = shopgraph();
    subgraph
        .args(["serve", "product"])
        .env("HOST", "127.0.0.1")
        .env("PRODUCT_PORT", "0")
        .env("SHOPGRAPH_DATA_DIR", &data_dir)
        .env("ACCEPT_DIRECT_TOKENS", "true")
        .env("LOG_LEVEL", "warn");
    let (code, stderr) = exit_of(subgraph);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("JWT_JWKS_FILE"),
        "{stderr}"
    );
    assert!(
        !data_dir.exists(),
        "the store was touched before the refusal"
    );
}

/// `serve` without the hop's keys would have to trust headers (a
/// subgraph) or could not prove who it is (a signer): it refuses to start,
/// exit 2, naming the variable, before touching any store. Keys written by
/// `shopgraph hop-keys` are accepted.
#[test]
fn serve_without_hop_keys_exits_2_naming_them() {
    let keys = std::env::temp_dir().join(format!(
        "shopgraph-hop-keys-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let written = shopgraph()
        .args(["hop-keys"])
        .arg(&keys)
        .output()
        .expect("runs");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let again = shopgraph()
        .args(["hop-keys"])
        .arg(&keys)
        .output()
        .expect("runs");
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    let (private, public) = (keys.join("hop.key"), keys.join("hop.pub"));
    let env = Env::from_pairs([
        ("HOP_SIGNING_KEY_FILE", private.to_str().unwrap_or_default()),
        ("HOP_TRUSTED_KEYS_FILE", public.to_str().unwrap_or_default()),
    ]);
    let hop = shopgraph_core::hop::HopSettings::from_env(&env, RunMode::Serve).expect("valid keys");
    // The pair matches: what the private key signs, the public key verifies.
    let (method, uri) = (http::Method::POST, http::Uri::from_static("/graphql"));
    let body = axum::body::Bytes::from_static(b"{}");
    let mut headers = http::HeaderMap::new();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(async {
            let signer = hop.require_signer().expect("a signer");
            signer
                .sign(&method, &uri, &mut headers, &body, "product")
                .await
                .expect("signs");
            let verifier = hop.require_verifier("product").expect("a verifier");
            verifier
                .verify(&method, &uri, &headers, &body)
                .await
                .expect("verifies");
        });

    let data_dir = std::env::temp_dir().join(format!(
        "shopgraph-nohopkeys-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let secret = "a-serve-secret-that-is-long-enough-0123";
    // (service, key files given, the variable it must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a std::path::Path)], &'a str);
    let cases: [Case; 4] = [
        ("router", &[], "HOP_SIGNING_KEY_FILE"),
        ("product", &[], "HOP_TRUSTED_KEYS_FILE"),
        (
            "notification",
            &[("HOP_SIGNING_KEY_FILE", &private)],
            "HOP_TRUSTED_KEYS_FILE",
        ),
        // basket signs its calls to product: trusting is not enough.
        (
            "basket",
            &[("HOP_TRUSTED_KEYS_FILE", &public)],
            "HOP_SIGNING_KEY_FILE",
        ),
    ];
    for (service, vars, missing) in cases {
        let mut command = shopgraph();
        command
            .args(["serve", service])
            .env("HOST", "127.0.0.1")
            .env("ROUTER_PORT", "0")
            .env("ADMIN_PORT", "0")
            .env(format!("{}_PORT", service.to_ascii_uppercase()), "0")
            .env("SUPERGRAPH_PATH", crate::harness::supergraph_path())
            .env("SHOPGRAPH_DATA_DIR", &data_dir)
            .env("JWT_SECRET", secret)
            .env("LOG_LEVEL", "warn");
        for (var, path) in vars {
            command.env(var, path);
        }
        let (code, stderr) = exit_of(command);
        assert_eq!(code, Some(2), "{service}: {stderr}");
        assert!(stderr.contains(missing), "{service}: {stderr}");
    }
    assert!(!data_dir.exists(), "a store was touched before the refusal");
    std::fs::remove_dir_all(&keys).ok();
}

#[test]
fn migrate_runs_twice() {
    let path = std::env::temp_dir().join(format!(
        "shopgraph-migrate-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    for _ in 0..2 {
        let output = shopgraph()
            .args(["migrate", "product"])
            .env("PRODUCT_DATABASE_URL", &url)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::remove_file(&path).ok();
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, request spans reach the collector
/// over OTLP/HTTP, in the caller's trace (W3C `traceparent`), and are
/// flushed on shutdown.
// Multi-threaded: the collector must keep answering while `stop` blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_in_the_callers_trace() {
    let received = otlp_receiver::Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let collector = otlp_receiver::routes(received.clone());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let data_dir =
        std::env::temp_dir().join(format!("shopgraph-otel-{}", uuid::Uuid::new_v4().simple()));
    let endpoint = format!("http://{collector_addr}");
    let (child, urls) = start_dev_with(
        &data_dir,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    let direct = "4bf92f3577b34da6a3ce929d0e0e4736";
    let routed = "5cf92f3577b34da6a3ce929d0e0e4737";
    let caller_span = "00f067aa0ba902b7";
    for (url, trace_id) in [(&urls["product"], direct), (&urls["router"], routed)] {
        let response = reqwest::Client::new()
            .post(url)
            .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
            .json(&json!({ "query": "{ categories }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    stop(child);
    std::fs::remove_dir_all(&data_dir).ok();

    // Straight to the subgraph: its request span is the caller's child.
    let spans = received.trace(direct);
    assert!(
        spans
            .iter()
            .any(|s| s.name == "http_request" && s.parent_span_id == caller_span),
        "the product subgraph's request span is the caller's child: {spans:#?}"
    );
    // Through the router: a span per request, per plan node and per
    // subgraph fetch, and the subgraph's own request span, all in the
    // caller's trace and nested. (`dev` is one process: one service name;
    // the deploy test checks names across processes.)
    let spans = received.trace(routed);
    for name in ["http_request", "plan_node", "subgraph_request"] {
        assert!(
            spans.iter().any(|s| s.name == name),
            "a `{name}` span in the caller's trace: {spans:#?}\nall received: {:#?}",
            received.all()
        );
    }
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert!(
        spans
            .iter()
            .all(|s| s.parent_span_id == caller_span || ids.contains(&s.parent_span_id.as_str())),
        "one tree under the caller's span, no span cut loose: {spans:#?}"
    );
    let fetches: Vec<&str> = spans
        .iter()
        .filter(|s| s.name == "subgraph_request")
        .map(|s| s.span_id.as_str())
        .collect();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "http_request" && fetches.contains(&s.parent_span_id.as_str())),
        "the subgraph's request span hangs under the router's fetch: {spans:#?}"
    );
}

/// What a newcomer types wrong is refused with a reason, before anything
/// runs: an empty or padded user id, a token lifetime of nothing or of
/// years, `sdl`/`migrate` of the router (which has neither).
#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for (args, says) in [
        (&["token", "--user", ""][..], "user id"),
        (&["token", "--user", " alice"][..], "user id"),
        (
            &["token", "--user", "alice", "--ttl", "0s"][..],
            "at least 1s",
        ),
        (
            &["token", "--user", "alice", "--ttl", "400d"][..],
            "at most 365d",
        ),
        (&["sdl", "router"][..], "invalid value 'router'"),
        (&["migrate", "router"][..], "invalid value 'router'"),
    ] {
        let output = shopgraph().args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    for command in ["sdl", "migrate"] {
        let output = shopgraph()
            .args([command, "--help"])
            .output()
            .expect("runs");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("notification"), "{help}");
        assert!(
            !help.contains("router"),
            "{command} --help offers the router: {help}"
        );
    }
}

/// `plan` outside a checkout plans against the supergraph built into the
/// binary, as `dev` serves it; a `--supergraph` that is not there is named.
#[test]
fn plan_falls_back_to_the_built_in_supergraph() {
    let dir =
        std::env::temp_dir().join(format!("shopgraph-plan-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let operation = dir.join("op.graphql");
    std::fs::write(&operation, "query Cats { categories }").expect("writes");
    let output = shopgraph()
        .current_dir(&dir)
        .args(["plan", "op.graphql"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("the supergraph built into this binary"),
        "{stdout}"
    );

    let output = shopgraph()
        .current_dir(&dir)
        .args(["plan", "--supergraph", "missing.graphql", "op.graphql"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing.graphql") && stderr.contains("--supergraph"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A second `dev` whose port is taken fails before it creates, migrates or
/// seeds a single store.
#[test]
fn dev_with_a_taken_port_fails_before_touching_any_store() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = taken.local_addr().expect("bound").port().to_string();
    let data_dir =
        std::env::temp_dir().join(format!("shopgraph-busy-{}", uuid::Uuid::new_v4().simple()));
    let output = shopgraph()
        .arg("dev")
        .env("ROUTER_PORT", "0")
        .env("PRODUCT_PORT", "0")
        .env("BASKET_PORT", "0")
        .env("PAYMENT_PORT", &port)
        .env("NOTIFICATION_PORT", "0")
        .env("ADMIN_PORT", "0")
        .envs(FREE_METRICS_PORTS)
        .env("SHOPGRAPH_DATA_DIR", &data_dir)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("payment"),
        "{stderr}"
    );
    assert!(
        !data_dir.exists(),
        "dev created {} before failing",
        data_dir.display()
    );
    drop(taken);
}
