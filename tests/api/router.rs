//! The router in front of the real shop: four subgraphs on their
//! production stores (PostgreSQL; MariaDB for payment) or on SQLite,
//! driven through one federated endpoint, as clients use it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Router, RouterProcess, supergraph_path, wait_until};
use crate::helpers::{As, Backend, Options, TestApp, unreachable_url};
use crate::shop::Shop;

const ME: &str =
    "{ me { id basket { total { amount } items { quantity product { name price { amount } } } }
    payments(first: 5) { edges { node { status items { product { name } } } } }
    notifications(first: 5) { edges { node { title } } } unreadNotificationCount } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_gathers_the_user_from_all_four_subgraphs() {
    let shop = Shop::spawn(Backend::Postgres).await;
    let products = shop
        .gql(
            As::User,
            "{ products(first: 2, sort: NAME) { edges { node { id name price { amount } } } } }",
            json!({}),
        )
        .await;
    let edges = products.data()["products"]["edges"]
        .as_array()
        .expect("a page")
        .clone();
    let (first, second) = (&edges[0]["node"], &edges[1]["node"]);

    let add = "mutation($id: ID!, $n: Int!) { addBasketItem(productId: $id, quantity: $n) { itemCount } }";
    shop.gql(As::User, add, json!({ "id": first["id"], "n": 2 }))
        .await
        .data();
    let checkout = shop
        .gql(
            As::User,
            r#"mutation { checkout(input: { idempotencyKey: "router-1", method: CARD,
                card: { number: "4242424242424242", expMonth: 12, expYear: 2030, cvc: "123" } }) { status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(checkout.data()["checkout"]["status"], "COMPLETED");
    // The completed payment empties the basket (an event reaction): wait
    // for it, then fill the basket again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let basket = shop
            .gql(As::User, "{ myBasket { itemCount } }", json!({}))
            .await;
        if basket.data()["myBasket"]["itemCount"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the basket is emptied after checkout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shop.gql(As::User, add, json!({ "id": first["id"], "n": 2 }))
        .await
        .data();
    shop.gql(As::User, add, json!({ "id": second["id"], "n": 1 }))
        .await
        .data();
    shop.gql(
        As::Admin,
        r#"mutation { createNotification(input: { userId: "user-1", type: SYSTEM, title: "Welcome", message: "hi" }) { id } }"#,
        json!({}),
    )
    .await
    .data();

    // The payment's own notification arrives by event, beside "Welcome".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while shop
        .gql(As::User, "{ me { unreadNotificationCount } }", json!({}))
        .await
        .data()["me"]["unreadNotificationCount"]
        != 2
    {
        assert!(tokio::time::Instant::now() < deadline, "two notifications");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let me = shop.gql(As::User, ME, json!({})).await;
    assert_eq!(me.status, StatusCode::OK);
    let me = &me.data()["me"];
    assert_eq!(me["id"], "user-1");
    let items = me["basket"]["items"].as_array().expect("basket items");
    assert_eq!(items.len(), 2, "{me:#}");
    assert_eq!(items[0]["product"]["name"], first["name"]);
    assert_eq!(items[0]["quantity"], 2);
    assert_eq!(items[1]["product"]["name"], second["name"]);
    let payments = me["payments"]["edges"].as_array().expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["node"]["status"], "COMPLETED");
    assert_eq!(
        payments[0]["node"]["items"][0]["product"]["name"],
        first["name"]
    );
    let titles: Vec<&Value> = me["notifications"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| &edge["node"]["title"])
        .collect();
    assert!(titles.contains(&&json!("Welcome")), "{titles:?}");
    assert!(titles.contains(&&json!("Payment completed")), "{titles:?}");
    assert_eq!(me["unreadNotificationCount"], 2);

    // Another user sees only their own (empty) picture.
    let other = shop.gql(As::OtherUser, ME, json!({})).await;
    let other = &other.data()["me"];
    assert_eq!(other["id"], "user-2");
    assert_eq!(other["basket"]["items"], json!([]));
    assert_eq!(other["unreadNotificationCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_refuses_bad_requests_with_coded_errors() {
    let shop = Shop::spawn(Backend::Sqlite).await;

    // `me` is @authenticated: the router refuses it itself, before the
    // basket subgraph (whose own check would say UNAUTHENTICATED).
    let anonymous = shop.gql(As::Anonymous, "{ me { id } }", json!({})).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.code(), "UNAUTHORIZED_FIELD_OR_TYPE");
    assert_eq!(anonymous.body["data"], Value::Null);

    let bad_token = shop
        .router
        .post(Some("not-a-jwt"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_token.code(), "UNAUTHENTICATED");

    let syntax = shop.gql(As::User, "{ me { id ", json!({})).await;
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
    assert_eq!(syntax.code(), "GRAPHQL_PARSE_FAILED");

    let invalid = shop.gql(As::User, "{ me { nope } }", json!({})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.code(), "GRAPHQL_VALIDATION_FAILED");

    let internals = shop
        .gql(
            As::User,
            "{ _entities(representations: []) { __typename } }",
            json!({}),
        )
        .await;
    assert_eq!(internals.code(), "GRAPHQL_VALIDATION_FAILED");

    let missing = shop
        .gql(
            As::User,
            "query($n: Int!) { products(first: $n) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.code(), "BAD_USER_INPUT");

    // A GET without a preflight-forcing header could come from any web
    // page: refused as a possible cross-site request forgery.
    let csrf = shop
        .router
        .client
        .get(&shop.router.url)
        .query(&[("query", "{ categories }")])
        .send()
        .await
        .expect("the router answers");
    assert_eq!(csrf.status(), StatusCode::BAD_REQUEST);
    let body: Value = csrf.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["extensions"]["code"], "CSRF_PREVENTION");

    let get_mutation = shop
        .router
        .client
        .get(&shop.router.url)
        .header("apollo-require-preflight", "true")
        .query(&[("query", "mutation { clearBasket { id } }")])
        .bearer_auth(&shop.product.user_token)
        .send()
        .await
        .expect("the router answers");
    assert_eq!(get_mutation.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_mutation.headers()["allow"], "POST");

    let get_query = shop
        .router
        .client
        .get(&shop.router.url)
        .header("apollo-require-preflight", "true")
        .query(&[("query", "{ categories }")])
        .send()
        .await
        .expect("the router answers");
    assert_eq!(get_query.status(), StatusCode::OK);
    let body: Value = get_query.json().await.expect("JSON");
    assert!(
        !body["data"]["categories"]
            .as_array()
            .expect("categories")
            .is_empty()
    );

    // A form-like content type (a cross-site form could send it) is a
    // CSRF refusal; any other non-JSON type is 415.
    let text_plain = shop
        .router
        .client
        .post(&shop.router.url)
        .header("content-type", "text/plain")
        .body("{ categories }")
        .send()
        .await
        .expect("the router answers");
    assert_eq!(text_plain.status(), StatusCode::BAD_REQUEST);
    let body: Value = text_plain.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["extensions"]["code"], "CSRF_PREVENTION");
    let not_json = shop
        .router
        .client
        .post(&shop.router.url)
        .header("content-type", "application/xml")
        .body("{ categories }")
        .send()
        .await
        .expect("the router answers");
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_that_is_down_leaves_partial_data_and_a_coded_error() {
    let mut shop = Shop::spawn(Backend::Sqlite).await;
    shop.notification.begin_shutdown();
    shop.notification
        .wait_stopped()
        .await
        .expect("notification stops");

    let response = shop
        .gql(
            As::User,
            r#"{ categories notification(id: "00000000-0000-0000-0000-000000000000") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response.body["data"]["categories"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(response.body["data"]["notification"], Value::Null);
    assert_eq!(response.code(), "SUBGRAPH_UNAVAILABLE");
    assert_eq!(
        response.body["errors"][0]["extensions"]["serviceName"],
        "notification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_shows_the_api_when_switched_on_and_is_off_by_default() {
    let router = Router::start(&[("GRAPHQL_INTROSPECTION", "true".into())]).await;
    let response = router
        .post(
            None,
            "{ __schema { queryType { name } types { name } } }",
            json!({}),
        )
        .await;
    let data = response.data();
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(
        data.as_object().map(|o| o.len()),
        Some(1),
        "only what was asked: {data:#}"
    );
    let names: Vec<&str> = data["__schema"]["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"Product") && names.contains(&"User"));
    for internal in [
        "_Any",
        "_Entity",
        "_Service",
        "join__Graph",
        "link__Purpose",
    ] {
        assert!(
            !names.contains(&internal),
            "{internal} leaked into introspection"
        );
    }

    // `serve`'s default (the in-process router reads settings as `serve`).
    let closed = Router::start(&[]).await;
    let refused = closed
        .post(None, "{ __type(name: \"Product\") { name } }", json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "GRAPHQL_VALIDATION_FAILED");
}

/// `shopgraph serve router` with a secret and nothing else: no
/// introspection, no GraphiQL page, and the operators' endpoints
/// (`/metrics`, `/health/detailed`) only on the admin listener, where
/// they need no token while the admin API still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_defaults_hide_the_schema_and_the_operators_endpoints() {
    let router = RouterProcess::start(&[]).await;
    let refused = router
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:#}",
        refused.body
    );
    assert_eq!(refused.code(), "GRAPHQL_VALIDATION_FAILED");

    let page = router
        .http
        .get(router.graphql_url())
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("the router answers");
    let html = page
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    assert!(!html, "GraphiQL is off by default in serve");
    assert!(!page.text().await.unwrap_or_default().contains("graphiql"));
    // Nor are its files served (fail closed).
    for asset in shopgraph_core::graphiql::asset_paths() {
        let file = router
            .http
            .get(router.url(&asset))
            .send()
            .await
            .expect("the router answers");
        assert_eq!(file.status(), StatusCode::NOT_FOUND, "{asset}");
    }

    for path in ["/health", "/health/live"] {
        let status = router
            .http
            .get(router.url(path))
            .send()
            .await
            .map(|r| r.status());
        assert_eq!(
            status.ok(),
            Some(StatusCode::OK),
            "{path} on the public port"
        );
    }
    let ready = router.http.get(router.url("/health/ready")).send().await;
    assert!(
        ready.is_ok_and(|r| r.status() != StatusCode::NOT_FOUND),
        "/health/ready"
    );
    for path in ["/metrics", "/health/detailed"] {
        let public = router
            .http
            .get(router.url(path))
            .send()
            .await
            .expect("the public port answers");
        assert_eq!(
            public.status(),
            StatusCode::NOT_FOUND,
            "{path} on the public port"
        );
        let admin = router
            .http
            .get(router.admin_url(path))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(admin.status(), StatusCode::OK, "{path} on the admin port");
    }
    let (status, _) = router.admin(None, "/admin/status").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the admin API still needs a token"
    );
}

/// `serve` has no demo sign-in: `POST /dev/token` is 404 whatever is
/// asked, with the storefront off (the default) and on. The storefront is
/// off by default (`GET /` is 404), and `STOREFRONT=true` serves it, with
/// its CSP, beside an unchanged `/graphql`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_has_no_dev_token_route_and_serves_the_storefront_only_when_asked() {
    for storefront in ["false", "true"] {
        let router = RouterProcess::start(&[("STOREFRONT", storefront.to_owned())]).await;
        for user in ["alice", "admin"] {
            let token = router
                .http
                .post(router.url("/dev/token"))
                .json(&json!({ "user": user }))
                .send()
                .await
                .expect("the router answers");
            assert_eq!(
                token.status(),
                StatusCode::NOT_FOUND,
                "STOREFRONT={storefront}: no dev token for {user} in serve"
            );
            let body = token.text().await.unwrap_or_default();
            assert!(!body.contains("token"), "{body}");
        }
        let page = router
            .http
            .get(router.url("/"))
            .header("accept", "text/html")
            .send()
            .await
            .expect("the router answers");
        if storefront == "false" {
            assert_eq!(
                page.status(),
                StatusCode::NOT_FOUND,
                "off by default in serve"
            );
            continue;
        }
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page
            .headers()
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        assert!(
            page.text()
                .await
                .unwrap_or_default()
                .contains("id=\"root\"")
        );
        // The API is where it was.
        let api = router.gql(None, "{ __typename }", json!({})).await;
        assert_eq!(api.status, StatusCode::OK, "{:#}", api.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_supergraph_file_is_picked_up_without_a_restart() {
    let product = seeded_product().await;
    let dir = std::env::temp_dir().join(format!("shopgraph-reload-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("supergraph.graphql");
    write_atomically(&path, &supergraph_with_product_at(&unreachable_url()));

    // A process of its own: its `/metrics` counts this router's reloads only.
    let router = RouterProcess::start_on_supergraph_urls(&[
        ("SUPERGRAPH_PATH", path.display().to_string()),
        ("SUPERGRAPH_POLL_INTERVAL", "100ms".into()),
    ])
    .await;
    let reloads = |outcome| supergraph_reloads(&router, outcome);
    assert_product_unreachable(&router).await;

    // A broken file is rejected, and the router keeps the last good
    // supergraph.
    write_atomically(&path, "type Query {");
    wait_until(
        "the broken supergraph is rejected",
        Duration::from_secs(10),
        || async { reloads("error").await == 1.0 },
    )
    .await;
    assert_product_unreachable(&router).await;
    assert_eq!(reloads("ok").await, 0.0);

    // A good file is swapped in, and served from the next request on.
    write_atomically(&path, &supergraph_with_product_at(&product.graphql_url()));
    wait_until(
        "the new supergraph is loaded",
        Duration::from_secs(10),
        || async { reloads("ok").await == 1.0 },
    )
    .await;
    assert_categories_served(&router).await;
    assert_eq!(
        reloads("error").await,
        1.0,
        "the broken file is not retried"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A supergraph URL is polled as Hive's CDN and Apollo Uplink are: with the
/// source's key, and with `If-None-Match` once a version is served, so an
/// unchanged supergraph is a `304`. A source that is down or serves a
/// broken supergraph changes nothing for clients; a good new one is served
/// from the next request on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supergraph_url_is_polled_with_if_none_match_and_survives_its_source_failing() {
    let product = seeded_product().await;
    let cdn = SupergraphCdn::start(&supergraph_with_product_at(&unreachable_url())).await;

    let router = RouterProcess::start_on_supergraph_urls(&[
        ("SUPERGRAPH_PATH", String::new()),
        ("SUPERGRAPH_URL", cdn.url.clone()),
        (
            "SUPERGRAPH_URL_HEADER",
            "X-Hive-CDN-Key: cdn-test-key".into(),
        ),
        ("SUPERGRAPH_POLL_INTERVAL", "100ms".into()),
    ])
    .await;
    let reloads = |outcome| supergraph_reloads(&router, outcome);
    assert_product_unreachable(&router).await;
    wait_until(
        "polls are answered 304",
        Duration::from_secs(10),
        || async { cdn.seen().not_modified >= 3 },
    )
    .await;
    let seen = cdn.seen();
    assert_eq!(seen.full, 1, "fetched in full once, then by ETag");
    assert_eq!(seen.without_key, 0, "every poll carries the key");

    // The source goes down: counted, and the router keeps its supergraph.
    cdn.serve(None);
    wait_until("the outage is noticed", Duration::from_secs(10), || async {
        reloads("unreachable").await >= 2.0
    })
    .await;
    assert_product_unreachable(&router).await;

    // It comes back with a broken supergraph: rejected, still kept.
    cdn.serve(Some("type Query {"));
    wait_until(
        "the broken supergraph is rejected",
        Duration::from_secs(10),
        || async { reloads("error").await == 1.0 },
    )
    .await;
    assert_product_unreachable(&router).await;

    // A good one is swapped in and served; then polled by its ETag again.
    cdn.serve(Some(&supergraph_with_product_at(&product.graphql_url())));
    wait_until(
        "the new supergraph is loaded",
        Duration::from_secs(10),
        || async { reloads("ok").await == 1.0 },
    )
    .await;
    assert_categories_served(&router).await;
    let settled = cdn.seen().not_modified;
    wait_until(
        "the new version is polled by its ETag",
        Duration::from_secs(10),
        || async { cdn.seen().not_modified >= settled + 3 },
    )
    .await;
    assert_eq!(reloads("error").await, 1.0, "the broken one is not rebuilt");
    assert_eq!(cdn.seen().without_key, 0);
}

/// With no supergraph there is nothing to serve: a router whose URL never
/// answers gives up after `SUPERGRAPH_URL_STARTUP_TIMEOUT`, naming the URL,
/// and never prints the source's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_whose_supergraph_url_never_answers_does_not_start() {
    let dead = unreachable_url();
    let output = tokio::process::Command::new(crate::harness::SHOPGRAPH)
        .args(["serve", "router"])
        .env("HOST", "127.0.0.1")
        .env("ROUTER_PORT", "0")
        .env("ADMIN_ENABLED", "false")
        .env("JWT_SECRET", crate::helpers::TEST_JWT_SECRET)
        .env("SUPERGRAPH_URL", &dead)
        .env("SUPERGRAPH_URL_HEADER", "Authorization: Bearer very-secret")
        .env("SUPERGRAPH_URL_STARTUP_TIMEOUT", "1s")
        .env("LOG_LEVEL", "warn")
        .envs(shopgraph_core::hop::HopKeyPair::of_this_process().env_vars())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("gives up within its startup timeout")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot fetch the supergraph from") && stderr.contains(&dead),
        "{stderr}"
    );
    assert!(!stderr.contains("very-secret"), "{stderr}");
}

/// What [`SupergraphCdn`] has been asked.
#[derive(Debug, Clone, Copy, Default)]
struct CdnSeen {
    /// Answered with the SDL.
    full: u32,
    /// Answered `304` to `If-None-Match`.
    not_modified: u32,
    /// Asked without the key (answered 401).
    without_key: u32,
}

/// A supergraph source that behaves as Hive's CDN does: the key in
/// `X-Hive-CDN-Key`, an `ETag` per version, `304` to `If-None-Match` of the
/// current one; `None` makes it answer 503.
struct SupergraphCdn {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<(Option<String>, u32, CdnSeen)>>,
    server: tokio::task::JoinHandle<()>,
}

impl SupergraphCdn {
    async fn start(sdl: &str) -> Self {
        use axum::http::{HeaderMap, StatusCode as Status, header};
        use axum::response::{IntoResponse, Response};
        let state = std::sync::Arc::new(std::sync::Mutex::new((
            Some(sdl.to_owned()),
            1,
            CdnSeen::default(),
        )));
        let shared = std::sync::Arc::clone(&state);
        let app = axum::Router::new().route(
            "/artifacts/v1/shop/supergraph",
            axum::routing::get(move |headers: HeaderMap| {
                let shared = std::sync::Arc::clone(&shared);
                async move {
                    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let (sdl, version, seen) = &mut *guard;
                    if headers
                        .get("x-hive-cdn-key")
                        .is_none_or(|k| k != "cdn-test-key")
                    {
                        seen.without_key += 1;
                        return Status::UNAUTHORIZED.into_response();
                    }
                    let Some(sdl) = sdl.clone() else {
                        return Status::SERVICE_UNAVAILABLE.into_response();
                    };
                    let etag = format!("\"v{version}\"");
                    if headers
                        .get(header::IF_NONE_MATCH)
                        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes())
                    {
                        seen.not_modified += 1;
                        return Status::NOT_MODIFIED.into_response();
                    }
                    seen.full += 1;
                    let response: Response = ([(header::ETAG, etag)], sdl).into_response();
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            url: format!("http://{addr}/artifacts/v1/shop/supergraph"),
            state,
            server,
        }
    }

    /// Serves `sdl` as a new version (or 503 for `None`).
    fn serve(&self, sdl: Option<&str>) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 = sdl.map(str::to_owned);
        guard.1 += 1;
    }

    fn seen(&self) -> CdnSeen {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).2
    }
}

impl Drop for SupergraphCdn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The product subgraph on SQLite with the demo catalogue.
async fn seeded_product() -> TestApp {
    TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            seed: true,
            ..Options::default()
        },
    )
    .await
}

/// The committed supergraph with the product subgraph at `url`.
fn supergraph_with_product_at(url: &str) -> String {
    std::fs::read_to_string(supergraph_path())
        .expect("supergraph")
        .replace("http://127.0.0.1:4001/graphql", url)
}

/// `router_supergraph_reloads_total{outcome}` of this router process.
async fn supergraph_reloads(router: &RouterProcess, outcome: &str) -> f64 {
    router
        .metric(
            "router_supergraph_reloads_total",
            &format!("outcome=\"{outcome}\""),
        )
        .await
}

/// The router still serves a supergraph whose product subgraph is nowhere.
async fn assert_product_unreachable(router: &RouterProcess) {
    let answer = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(answer.code(), "SUBGRAPH_UNAVAILABLE", "{:#}", answer.body);
}

/// The router serves a supergraph whose product subgraph answers.
async fn assert_categories_served(router: &RouterProcess) {
    let answer = router.gql(None, "{ categories }", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    assert!(
        answer.data()["categories"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{:#}",
        answer.body
    );
}

/// Replaces `path` with `content` in one step (write aside, rename), as a
/// deployment would: the router polling it never sees a half-written file.
fn write_atomically(path: &std::path::Path, content: &str) {
    let aside = path.with_extension("next");
    std::fs::write(&aside, content).expect("write the new supergraph");
    std::fs::rename(&aside, path).expect("swap it in");
}

/// Apollo's clients name themselves in `apollographql-client-name`; the
/// router counts requests by that name, for a bounded set of names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_client_name_with_a_bounded_set_of_labels() {
    let router = RouterProcess::start(&[("CLIENT_NAMES_MAX", "2".into())]).await;
    let send = |name: Option<&'static str>| {
        let router = &router;
        async move {
            let mut request = router
                .http
                .post(router.graphql_url())
                .json(&json!({ "query": "{ __typename }" }));
            if let Some(name) = name {
                request = request
                    .header("apollographql-client-name", name)
                    .header("apollographql-client-version", "1.0.0");
            }
            let response = request.send().await.expect("the router answers");
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    for name in [
        Some("storefront-web"),
        Some("storefront-web"),
        Some("com.shop.ios"),
        // The limit is reached: a third name, and a name that is no plain
        // label, count as `other`.
        Some("scraper"),
        Some("<script>"),
        None,
    ] {
        send(name).await;
    }
    let requests = |client: &'static str| {
        let router = &router;
        async move {
            router
                .metric(
                    "router_requests_total",
                    &format!("client_name=\"{client}\""),
                )
                .await
        }
    };
    assert_eq!(requests("storefront-web").await, 2.0);
    assert_eq!(requests("com.shop.ios").await, 1.0);
    assert_eq!(requests("other").await, 2.0);
    assert_eq!(requests("unknown").await, 1.0);
    assert_eq!(requests("scraper").await, 0.0);
}
