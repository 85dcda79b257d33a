//! The authorization matrix (issue 17): every root field of
//! `schema/api.graphql` against the table in `authorization_matrix.tsv`.
//!
//! The table is checked against the schema first, so a new root field
//! without a row (or a row whose field is gone) fails before anything
//! starts. Then one `serve` topology — four `shopgraph serve <subgraph>`
//! processes with `ACCEPT_DIRECT_TOKENS=false` and `shopgraph serve
//! router`, real signatures on every hop — answers:
//!
//! * straight to each subgraph, every row as an admin with forged identity
//!   headers, an unsigned admin token, an expired signature, a body changed
//!   after signing, a signature for another subgraph and a key nobody
//!   trusts (rotated out), and (for reads and one mutation) a replay; an
//!   unsigned websocket upgrade to each subgraph owning a subscription: all
//!   401 (`UNAUTHENTICATED`), and the stores are unchanged afterwards (a
//!   correctly signed request is the control);
//! * through the router, every row × {anonymous, user A, user B, admin},
//!   compared with the table's outcome.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::hop::{HopKeyPair, HopSettings, HopSigner};
use shopgraph_core::identity::{ADMIN_ROLE, Identity, Viewer, forward_identity};
use shopgraph_core::settings::RunMode;

use crate::harness::{RouterProcess, SubgraphProcess, client, token};
use crate::helpers::{Backend, GqlResponse, TestDb, fresh_db, test_hop_signer};

const TABLE: &str = include_str!("authorization_matrix.tsv");
const API_SCHEMA: &str = include_str!("../../schema/api.graphql");

/// The callers of every row, in the order each row runs them (and the
/// order of the table's outcome columns).
const CALLERS: [&str; 4] = ["anonymous", "userA", "userB", "admin"];

/// How long an allowed subscription's stream is watched for an error
/// before it counts as open: the refusals the matrix is about (router
/// authorization, the subgraph's owner check) come right after the
/// subscribe, not after an event.
const STREAM_WATCH: Duration = Duration::from_millis(1500);

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    field: String,
    kind: String,
    subgraph: String,
    /// Per caller, in [`CALLERS`] order: `ok` or an `extensions.code`.
    expected: [String; 4],
    /// The operation, with `{fixture}` placeholders.
    operation: String,
}

/// The table's rows, in order. A malformed line fails the test with its
/// line number, so a hand edit that loses a tab is obvious.
fn table() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut header_seen = false;
    for (number, line) in TABLE.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            cells.len(),
            8,
            "authorization_matrix.tsv line {}: 8 tab-separated cells, got {:?}",
            number + 1,
            cells
        );
        if !header_seen {
            assert_eq!(cells[0], "field", "the header comes first");
            header_seen = true;
            continue;
        }
        assert!(
            ["query", "mutation", "subscription"].contains(&cells[1]),
            "line {}: kind {:?}",
            number + 1,
            cells[1]
        );
        rows.push(Row {
            field: cells[0].to_owned(),
            kind: cells[1].to_owned(),
            subgraph: cells[2].to_owned(),
            expected: [cells[3], cells[4], cells[5], cells[6]].map(str::to_owned),
            operation: cells[7].to_owned(),
        });
    }
    rows
}

/// `(kind, field)` of every field of `type Query`, `type Mutation` and
/// `type Subscription` in an SDL document. A line scan rather than a
/// parser: the file is generated (`schema/check.sh`), one field per line,
/// descriptions in block strings on lines of their own.
fn root_fields(sdl: &str) -> BTreeSet<(String, String)> {
    let mut fields = BTreeSet::new();
    let mut current: Option<&str> = None;
    let mut in_description = false;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            let single_line = trimmed.len() >= 6 && trimmed.ends_with("\"\"\"");
            if !single_line {
                in_description = !in_description;
            }
            continue;
        }
        if in_description || trimmed.starts_with('"') || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            current = ["Query", "Mutation", "Subscription"]
                .into_iter()
                .find(|root| {
                    let rest = line
                        .strip_prefix("type ")
                        .or_else(|| line.strip_prefix("extend type "));
                    rest.and_then(|rest| rest.strip_prefix(root))
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                })
                .map(|root| match root {
                    "Query" => "query",
                    "Mutation" => "mutation",
                    _ => "subscription",
                });
            continue;
        }
        if let Some(kind) = current {
            let name: String = trimmed
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                fields.insert((kind.to_owned(), name));
            }
        }
    }
    fields
}

#[test]
fn the_table_has_a_row_for_every_root_field_and_no_other() {
    let schema = root_fields(API_SCHEMA);
    assert!(
        schema.contains(&("query".to_owned(), "categories".to_owned()))
            && schema.contains(&("subscription".to_owned(), "stockChanged".to_owned())),
        "the scan finds the root fields: {schema:?}"
    );
    let rows = table();
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|row| (row.kind.clone(), row.field.clone()))
        .collect();
    assert_eq!(tabled.len(), rows.len(), "a field has two rows");
    let missing: Vec<_> = schema.difference(&tabled).collect();
    let stale: Vec<_> = tabled.difference(&schema).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "root fields without a row in tests/api/authorization_matrix.tsv: {missing:?}; \
         rows for fields not in schema/api.graphql: {stale:?}"
    );
    for row in &rows {
        assert!(
            ["product", "basket", "payment", "notification"].contains(&row.subgraph.as_str()),
            "{}: subgraph {:?}",
            row.field,
            row.subgraph
        );
        assert!(
            row.operation.contains(&format!("{}(", row.field))
                || row.operation.contains(&format!("{} ", row.field))
                || row.operation.contains(&format!("{} }}", row.field)),
            "{}: the operation selects the field: {}",
            row.field,
            row.operation
        );
    }
}

/// The ids the setup created, for the operations' `{placeholders}`.
struct Fixtures(Vec<(&'static str, String)>);

impl Fixtures {
    fn fill(&self, operation: &str) -> String {
        self.fill_for(operation, "userA")
    }

    /// `operation` with its placeholders filled for `caller`: a fixture
    /// named `name.caller` stands in for `{name}` (a single-use object of
    /// the caller's own), else the one named `name`.
    fn fill_for(&self, operation: &str, caller: &str) -> String {
        let mut filled = operation.to_owned();
        for (name, id) in &self.0 {
            if let Some(base) = name.strip_suffix(&format!(".{caller}")) {
                filled = filled.replace(&format!("{{{base}}}"), id);
            }
        }
        for (name, id) in &self.0 {
            filled = filled.replace(&format!("{{{name}}}"), id);
        }
        let unknown = filled.split('{').skip(1).find_map(|rest| {
            let name = rest.split('}').next()?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then_some(name)
        });
        assert!(
            unknown.is_none(),
            "unknown fixture {unknown:?} in {operation}"
        );
        filled
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, id)| id.as_str())
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }
}

/// The `serve` topology: four subgraph processes that accept only signed
/// requests, and the router over them.
struct Topology {
    _dbs: Vec<TestDb>,
    product: SubgraphProcess,
    basket: SubgraphProcess,
    payment: SubgraphProcess,
    notification: SubgraphProcess,
    router: RouterProcess,
}

const SIGNED_ONLY: (&str, &str) = ("ACCEPT_DIRECT_TOKENS", "false");

impl Topology {
    async fn start() -> Self {
        let (product_db, basket_db, payment_db, notification_db) = tokio::join!(
            fresh_db(Backend::Sqlite),
            fresh_db(Backend::Sqlite),
            fresh_db(Backend::Sqlite),
            fresh_db(Backend::Sqlite),
        );
        let (product, notification) = tokio::join!(
            SubgraphProcess::start("product", &product_db.url, &[SIGNED_ONLY]),
            SubgraphProcess::start("notification", &notification_db.url, &[SIGNED_ONLY]),
        );
        let product_url = product.graphql_url();
        let basket = SubgraphProcess::start(
            "basket",
            &basket_db.url,
            &[SIGNED_ONLY, ("PRODUCT_SERVICE_URL", &product_url)],
        )
        .await;
        let basket_url = basket.graphql_url();
        // A checkout holds its units and the basket until its payment
        // settles, and events do not cross these processes (no broker):
        // holds lapse after half a second instead (PENDING payments stay
        // PENDING, their expiry never runs during the test), so one user
        // may create, check out and process several payments, as the rows
        // and fixtures do.
        let payment = SubgraphProcess::start(
            "payment",
            &payment_db.url,
            &[
                SIGNED_ONLY,
                ("BASKET_SERVICE_URL", &basket_url),
                ("PRODUCT_SERVICE_URL", &product_url),
                ("PAYMENT_TTL", "0s"),
                ("CHECKOUT_SETTLE_MARGIN", "500ms"),
                ("PAYMENT_EXPIRY_INTERVAL", "1h"),
            ],
        )
        .await;
        let mut router = RouterProcess::start(&[
            ("PRODUCT_SERVICE_URL", product.graphql_url()),
            ("BASKET_SERVICE_URL", basket.graphql_url()),
            ("PAYMENT_SERVICE_URL", payment.graphql_url()),
            ("NOTIFICATION_SERVICE_URL", notification.graphql_url()),
        ])
        .await;
        router.wait_ready().await;
        Self {
            _dbs: vec![product_db, basket_db, payment_db, notification_db],
            product,
            basket,
            payment,
            notification,
            router,
        }
    }

    fn subgraph(&self, name: &str) -> &SubgraphProcess {
        match name {
            "product" => &self.product,
            "basket" => &self.basket,
            "payment" => &self.payment,
            "notification" => &self.notification,
            other => panic!("no subgraph {other}"),
        }
    }
}

/// The callers' tokens, in [`CALLERS`] order (anonymous has none).
fn tokens() -> [Option<String>; 4] {
    [
        None,
        Some(token("user-1", false)),
        Some(token("user-2", false)),
        Some(token("admin-1", true)),
    ]
}

/// `ok` when the response has data and no errors, else the first error's
/// code (`NO_CODE` / `NO_DATA` when even that is missing).
fn outcome(body: &Value) -> String {
    match body["errors"].as_array().and_then(|errors| errors.first()) {
        Some(error) => error["extensions"]["code"]
            .as_str()
            .unwrap_or("NO_CODE")
            .to_owned(),
        None if body["data"].is_object() => "ok".to_owned(),
        None => "NO_DATA".to_owned(),
    }
}

/// A subscription over SSE: a refusal is the HTTP answer's code, or an
/// error in the first event; a stream that opens and says nothing bad
/// within [`STREAM_WATCH`] is `ok`.
async fn subscribe(router: &RouterProcess, token: Option<&str>, query: &str) -> String {
    let mut request = router
        .http
        .post(router.graphql_url())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.expect("the router answers");
    if !response.status().is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return outcome(&body);
    }
    let deadline = tokio::time::Instant::now() + STREAM_WATCH;
    let mut text = String::new();
    loop {
        for data in text.lines().filter_map(|line| line.strip_prefix("data:")) {
            if let Ok(event) = serde_json::from_str::<Value>(data.trim()) {
                return outcome(&event);
            }
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return "ok".to_owned(),
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => return format!("STREAM_ENDED: {text}"),
            Ok(Err(err)) => return format!("STREAM_FAILED: {err}"),
        }
    }
}

/// Runs `query` through the router as `token`, expecting data; the value
/// at `field`'s `id`.
async fn create(router: &RouterProcess, token: &str, query: &str, field: &str) -> String {
    let answer: GqlResponse = router.gql(Some(token), query, json!({})).await;
    answer.body["data"][field]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("setup {field}: {:#}", answer.body))
        .to_owned()
}

/// The fixtures every row's operation may name, all user A's (see the
/// table's header).
async fn fixtures(router: &RouterProcess) -> Fixtures {
    let admin = token("admin-1", true);
    let alice = token("user-1", false);
    let product = create(
        router,
        &admin,
        r#"mutation { createProduct(input: { name: "Matrix product", price: "10.00", stockQuantity: 100, category: "matrix" }) { id } }"#,
        "createProduct",
    )
    .await;
    let doomed = create(
        router,
        &admin,
        r#"mutation { createProduct(input: { name: "Doomed", price: "1.00", stockQuantity: 1, category: "matrix" }) { id } }"#,
        "createProduct",
    )
    .await;
    let added = router
        .gql(
            Some(&alice),
            &format!(
                r#"mutation {{ addBasketItem(productId: "{product}", quantity: 1) {{ itemCount }} }}"#
            ),
            json!({}),
        )
        .await;
    assert_eq!(outcome(&added.body), "ok", "{:#}", added.body);
    let payment = create(
        router,
        &alice,
        r#"mutation { createPayment(input: { idempotencyKey: "fixture-process", method: CARD }) { id } }"#,
        "createPayment",
    )
    .await;
    // The first payment's hold on the basket lapses (see `Topology::start`).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let payment_pending = create(
        router,
        &alice,
        r#"mutation { createPayment(input: { idempotencyKey: "fixture-cancel", method: CARD }) { id } }"#,
        "createPayment",
    )
    .await;
    let notification = create(
        router,
        &admin,
        r#"mutation { createNotification(input: { userId: "user-1", type: SYSTEM, title: "Fixture", message: "Read me" }) { id } }"#,
        "createNotification",
    )
    .await;
    let mut deletable = Vec::new();
    for _ in 0..3 {
        deletable.push(
            create(
                router,
                &admin,
                r#"mutation { createNotification(input: { userId: "user-1", type: SYSTEM, title: "Fixture", message: "Delete me" }) { id } }"#,
                "createNotification",
            )
            .await,
        );
    }
    let [deletable, deletable_by_b, deletable_by_admin] =
        <[String; 3]>::try_from(deletable).expect("three notifications");
    let pending_notification = create(
        router,
        &admin,
        r#"mutation { scheduleNotification(input: { userId: "user-1", type: SYSTEM, title: "Fixture", message: "Later" }, at: "2099-01-01T00:00:00Z") { id } }"#,
        "scheduleNotification",
    )
    .await;
    let failed_notification = create(
        router,
        &admin,
        r#"mutation { createNotification(input: { userId: "user-1", type: SYSTEM, title: "Fixture", message: "No gateway", channel: EMAIL }) { id } }"#,
        "createNotification",
    )
    .await;
    Fixtures(vec![
        ("product", product),
        ("doomed", doomed),
        ("payment_pending", payment_pending),
        ("payment", payment),
        ("notification", notification),
        ("deletable", deletable),
        ("deletable.userB", deletable_by_b),
        ("deletable.admin", deletable_by_admin),
        ("pending_notification", pending_notification),
        ("failed_notification", failed_notification),
    ])
}

fn user(id: &str, roles: &[&str]) -> Identity {
    Identity::User(Viewer {
        user_id: id.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A signer with a key no test service trusts: a rotated-out key.
fn untrusted_signer() -> HopSigner {
    let pair = HopKeyPair::generate();
    HopSettings::from_env(&Env::from_pairs(pair.env_vars()), RunMode::Serve)
        .and_then(|settings| settings.require_signer())
        .expect("a valid key")
}

fn body_of(query: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({ "query": query })).expect("JSON"))
}

/// Headers as the router sends them for `identity`, signed by `signer` at
/// `created` for `audience` over `body`.
async fn signed_headers(
    signer: &HopSigner,
    url: &str,
    audience: &str,
    identity: &Identity,
    body: &Bytes,
    created: u64,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    forward_identity(identity, &mut headers);
    signer
        .sign_at(
            &reqwest::Method::POST,
            &url.parse().expect("URL"),
            &mut headers,
            body,
            audience,
            created,
        )
        .await
        .expect("signs");
    headers
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Value) {
    let response = http
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the subgraph answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A correctly signed request (the positive control): 200 with data and
/// no errors; the data.
async fn signed_query(
    http: &reqwest::Client,
    subgraph: &SubgraphProcess,
    audience: &str,
    identity: &Identity,
    query: &str,
) -> Value {
    let url = subgraph.graphql_url();
    let body = body_of(query);
    let headers = signed_headers(&test_hop_signer(), &url, audience, identity, &body, now()).await;
    let (status, answer) = post(http, &url, headers, body).await;
    assert_eq!(status, StatusCode::OK, "{audience} {query}: {answer:#}");
    assert_eq!(outcome(&answer), "ok", "{audience} {query}: {answer:#}");
    answer["data"].clone()
}

/// What the direct requests could have changed, read with correctly
/// signed requests (which also proves each subgraph answers a good one).
async fn store_state(topology: &Topology, http: &reqwest::Client, fixtures: &Fixtures) -> Value {
    let admin = user("admin-1", &[ADMIN_ROLE]);
    let alice = user("user-1", &[]);
    let product = signed_query(
        http,
        &topology.product,
        "product",
        &admin,
        &fixtures.fill(
            r#"{ product(id: "{product}") { stockQuantity description } doomed: product(id: "{doomed}") { id } products(first: 1) { totalCount } }"#,
        ),
    )
    .await;
    let basket = signed_query(
        http,
        &topology.basket,
        "basket",
        &admin,
        "{ myBasket { itemCount } }",
    )
    .await;
    let payment = signed_query(
        http,
        &topology.payment,
        "payment",
        &admin,
        &fixtures.fill(
            r#"{ payment(id: "{payment}") { status } pending: payment(id: "{payment_pending}") { status } payments(first: 100) { nodes { id } } }"#,
        ),
    )
    .await;
    let notification = signed_query(
        http,
        &topology.notification,
        "notification",
        &alice,
        &fixtures.fill(
            r#"{ notificationStats { total unread } notification(id: "{notification}") { title status } deletable: notification(id: "{deletable}") { id } }"#,
        ),
    )
    .await;
    json!({ "product": product, "basket": basket, "payment": payment, "notification": notification })
}

/// Every row straight to its subgraph as an admin, every way but a
/// correct signature: all 401 `UNAUTHENTICATED` before GraphQL runs, and
/// nothing changed. Then a replay of every read (and of one mutation):
/// the first send passes, the second is 401, the mutation counts once.
async fn direct_to_subgraphs(topology: &Topology, rows: &[Row], fixtures: &Fixtures) -> usize {
    let http = client();
    let admin = user("admin-1", &[ADMIN_ROLE]);
    let admin_token = token("admin-1", true);
    let trusted = test_hop_signer();
    let rotated_out = untrusted_signer();
    let before = store_state(topology, &http, fixtures).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in rows {
        let subgraph = topology.subgraph(&row.subgraph);
        let url = subgraph.graphql_url();
        let operation = fixtures.fill(&row.operation);
        let body = body_of(&operation);
        let tampered = Bytes::from(
            serde_json::to_vec(&json!({ "query": operation, "variables": { "tampered": true } }))
                .expect("JSON"),
        );

        let elsewhere = if row.subgraph == "product" {
            "payment"
        } else {
            "product"
        };
        let mut forged = HeaderMap::new();
        forged.insert("content-type", HeaderValue::from_static("application/json"));
        forward_identity(&admin, &mut forged);
        let mut bearer = HeaderMap::new();
        bearer.insert("content-type", HeaderValue::from_static("application/json"));
        bearer.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {admin_token}")).expect("a header value"),
        );
        let cases = [
            ("forged identity headers, unsigned", forged, body.clone()),
            ("admin bearer token, unsigned", bearer, body.clone()),
            (
                "expired signature",
                signed_headers(&trusted, &url, &row.subgraph, &admin, &body, now() - 3600).await,
                body.clone(),
            ),
            (
                "body changed after signing",
                signed_headers(&trusted, &url, &row.subgraph, &admin, &body, now()).await,
                tampered,
            ),
            (
                "signed for another subgraph",
                signed_headers(&trusted, &url, elsewhere, &admin, &body, now()).await,
                body.clone(),
            ),
            (
                "signed by a rotated-out key",
                signed_headers(&rotated_out, &url, &row.subgraph, &admin, &body, now()).await,
                body.clone(),
            ),
        ];
        for (case, headers, sent) in cases {
            let (status, answer) = post(&http, &url, headers, sent).await;
            checked += 1;
            if status != StatusCode::UNAUTHORIZED
                || answer["errors"][0]["extensions"]["code"] != "UNAUTHENTICATED"
                || answer.get("data").is_some()
            {
                failures.push(format!("{} ({case}): {status} {answer}", row.field));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "direct requests not refused:\n{}",
        failures.join("\n")
    );
    checked += refused_upgrades(topology, rows).await;
    let after = store_state(topology, &http, fixtures).await;
    assert_eq!(before, after, "a refused direct request changed a store");

    // Replays: reads (and subscriptions sent as plain POSTs, which the
    // subgraph refuses after the signature passes) and adjustStock, whose
    // effect is then counted.
    for row in rows
        .iter()
        .filter(|row| row.kind != "mutation" || row.field == "adjustStock")
    {
        let subgraph = topology.subgraph(&row.subgraph);
        let url = subgraph.graphql_url();
        let body = body_of(&fixtures.fill(&row.operation));
        let headers = signed_headers(&trusted, &url, &row.subgraph, &admin, &body, now()).await;
        let (first, answer) = post(&http, &url, headers.clone(), body.clone()).await;
        assert_ne!(
            first,
            StatusCode::UNAUTHORIZED,
            "{}: the original: {answer:#}",
            row.field
        );
        let (second, answer) = post(&http, &url, headers, body).await;
        checked += 1;
        assert_eq!(
            second,
            StatusCode::UNAUTHORIZED,
            "{}: the replay: {answer:#}",
            row.field
        );
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{}",
            row.field
        );
    }
    let replayed = store_state(topology, &http, fixtures).await;
    let stock = |state: &Value| state["product"]["product"]["stockQuantity"].as_i64();
    assert_eq!(
        stock(&replayed),
        stock(&before).map(|units| units + 1),
        "adjustStock(delta: 1) sent and replayed counts once"
    );
    checked
}

/// The subgraphs' own subscription transport: a websocket upgrade
/// straight to a subgraph that owns a subscription, unsigned with forged
/// admin headers or an admin token, is refused with 401 before it
/// upgrades. Returns how many upgrades were tried.
async fn refused_upgrades(topology: &Topology, rows: &[Row]) -> usize {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let owners: BTreeSet<&str> = rows
        .iter()
        .filter(|row| row.kind == "subscription")
        .map(|row| row.subgraph.as_str())
        .collect();
    let admin_token = token("admin-1", true);
    let mut tried = 0;
    for owner in owners {
        let url = topology
            .subgraph(owner)
            .graphql_url()
            .replacen("http://", "ws://", 1);
        for case in ["forged identity headers", "admin bearer token"] {
            let mut request = url.as_str().into_client_request().expect("a ws URL");
            let headers = request.headers_mut();
            headers.insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("graphql-transport-ws"),
            );
            if case == "admin bearer token" {
                headers.insert(
                    "authorization",
                    HeaderValue::from_str(&format!("Bearer {admin_token}")).expect("a header"),
                );
            } else {
                forward_identity(&user("admin-1", &[ADMIN_ROLE]), headers);
            }
            tried += 1;
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{owner} websocket, {case}"
                ),
                Err(other) => panic!("{owner} websocket, {case}: {other}"),
                Ok(_) => panic!("{owner} upgraded an unsigned websocket ({case})"),
            }
        }
    }
    tried
}

/// Every row × caller through the router, in table order; the
/// differences from the table.
async fn through_the_router(
    router: &RouterProcess,
    rows: &[Row],
    fixtures: &Fixtures,
) -> Vec<String> {
    let tokens = tokens();
    let mut differences = Vec::new();
    for row in rows {
        let operations: Vec<String> = CALLERS
            .iter()
            .map(|caller| fixtures.fill_for(&row.operation, caller))
            .collect();
        let outcomes: Vec<String> = if row.kind == "subscription" {
            // Streams are watched for a bounded time: all callers at once.
            futures::future::join_all(
                tokens
                    .iter()
                    .zip(&operations)
                    .map(|(token, operation)| subscribe(router, token.as_deref(), operation)),
            )
            .await
        } else {
            let mut outcomes = Vec::new();
            for (token, operation) in tokens.iter().zip(&operations) {
                let answer = router.gql(token.as_deref(), operation, json!({})).await;
                outcomes.push(outcome(&answer.body));
            }
            outcomes
        };
        for ((caller, expected), got) in CALLERS.iter().zip(&row.expected).zip(&outcomes) {
            if expected != got {
                differences.push(format!(
                    "{} as {caller}: expected {expected}, got {got}",
                    row.field
                ));
            }
        }
    }
    differences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_root_field_for_every_caller_through_the_router_and_never_around_it() {
    let started = Instant::now();
    let rows = table();
    let topology = Topology::start().await;
    let fixtures = fixtures(&topology.router).await;
    let ready = started.elapsed();

    let direct = direct_to_subgraphs(&topology, &rows, &fixtures).await;
    let direct_done = started.elapsed();

    let mut differences = through_the_router(&topology.router, &rows, &fixtures).await;
    // User B's refused delete left user A's notification alone.
    let left = signed_query(
        &client(),
        &topology.notification,
        "notification",
        &user("user-1", &[]),
        &fixtures.fill(r#"{ notification(id: "{deletable.userB}") { id } }"#),
    )
    .await;
    if left["notification"].is_null() {
        differences.push("deleteNotification as userB deleted user A's notification".to_owned());
    }
    println!(
        "authorization matrix: topology and fixtures {ready:?}, {direct} direct requests refused by {direct_done:?}, \
         {} rows × {} callers through the router by {:?}",
        rows.len(),
        CALLERS.len(),
        started.elapsed()
    );
    assert!(
        differences.is_empty(),
        "the router's answers differ from tests/api/authorization_matrix.tsv:\n{}\n(fixtures: {}, router log {})",
        differences.join("\n"),
        fixtures.get("product"),
        topology.router.log.tail()
    );
}
