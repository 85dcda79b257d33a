//! The signed router → subgraph hop: behind the router a subgraph takes the
//! caller from the forwarded identity headers of a request whose hop
//! signature it verified, refuses everything unsigned
//! (`ACCEPT_DIRECT_TOKENS=false`, the `serve` default) and every forged,
//! replayed, expired, tampered, misaddressed or rotated-out signature;
//! service-to-service calls (payment → basket → product) are signed and
//! pass the caller on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use shopgraph_core::config::Env;
use shopgraph_core::hop::{HopKeyPair, HopSettings, HopSigner};
use shopgraph_core::identity::{ADMIN_ROLE, Identity, USER_ID_HEADER, Viewer, forward_identity};
use shopgraph_core::settings::RunMode;

use crate::helpers::{As, Backend, TestApp, test_hop_signer};

const BEHIND_ROUTER: &[(&str, &str)] = &[("ACCEPT_DIRECT_TOKENS", "false")];

fn user(id: &str, roles: &[&str]) -> Identity {
    Identity::User(Viewer {
        user_id: id.to_owned(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    })
}

const INBOX: &str = "{ myNotifications(first: 10) { edges { node { title userId } } } }";
const CREATE: &str = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id userId } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_token_is_refused_behind_the_router() {
    let app = TestApp::spawn_notification(Backend::Sqlite, BEHIND_ROUTER).await;

    let direct = app.gql(As::User, INBOX, json!({})).await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);
    assert_eq!(direct.code(), "UNAUTHENTICATED");
    let message = direct.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("router"), "{message}");

    // Unsigned and anonymous: refused too, before any GraphQL runs.
    let anonymous = app.gql(As::Anonymous, INBOX, json!({})).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");

    let malformed = app
        .client
        .post(app.graphql_url())
        .header(USER_ID_HEADER, "  ")
        .json(&json!({ "query": INBOX }))
        .send()
        .await
        .expect("request reaches the subgraph");
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_identity_is_the_caller() {
    let app = TestApp::spawn_notification(Backend::Sqlite, BEHIND_ROUTER).await;
    let input = json!({ "input": {
        "userId": "user-1", "type": "SYSTEM", "title": "Hello", "message": "Forwarded"
    } });

    let not_admin = app
        .gql_forwarded(&user("user-1", &[]), CREATE, input.clone())
        .await;
    assert_eq!(not_admin.code(), "FORBIDDEN");
    let created = app
        .gql_forwarded(&user("admin-1", &[ADMIN_ROLE]), CREATE, input)
        .await;
    assert_eq!(created.data()["createNotification"]["userId"], "user-1");

    let mine = app
        .gql_forwarded(&user("user-1", &[]), INBOX, json!({}))
        .await;
    let edges = mine.data()["myNotifications"]["edges"].as_array().cloned();
    assert_eq!(edges.map(|e| e.len()), Some(1));
    assert_eq!(
        mine.data()["myNotifications"]["edges"][0]["node"]["title"],
        "Hello"
    );
    let theirs = app
        .gql_forwarded(&user("user-2", &[]), INBOX, json!({}))
        .await;
    assert_eq!(theirs.data()["myNotifications"]["edges"], json!([]));

    let anonymous = app
        .gql_forwarded(&Identity::Anonymous, INBOX, json!({}))
        .await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_passes_the_forwarded_caller_on_to_basket() {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let basket =
        TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), BEHIND_ROUTER).await;
    let payment = TestApp::spawn_payment(
        Backend::Sqlite,
        &product.graphql_url(),
        &basket.graphql_url(),
        BEHIND_ROUTER,
    )
    .await;
    let product_id = product.create_product("Lamp", "12.50", 10, "Home").await;
    let alice = user("user-1", &[]);

    basket
        .gql_forwarded(
            &alice,
            "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 2) { itemCount } }",
            json!({ "p": product_id }),
        )
        .await
        .data();
    let checkout = payment
        .gql_forwarded(
            &alice,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { status amount { amount } items { quantity } } }",
            json!({ "input": {
                "idempotencyKey": "hop-1", "method": "CARD",
                "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await;
    let paid = &checkout.data()["checkout"];
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(paid["amount"]["amount"], "25.00");
    assert_eq!(paid["items"][0]["quantity"], 2);

    let bob = payment
        .gql_forwarded(
            &user("user-2", &[]),
            "mutation($input: CheckoutInput!) { checkout(input: $input) { status } }",
            json!({ "input": {
                "idempotencyKey": "hop-2", "method": "CARD",
                "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await;
    assert_eq!(
        bob.code(),
        "BAD_USER_INPUT",
        "user-2's basket is empty: {:#}",
        bob.body
    );
}

/// A signer with a key of its own, which no test service trusts (a key
/// that was rotated out, or an attacker's).
fn untrusted_signer() -> HopSigner {
    let pair = HopKeyPair::generate();
    HopSettings::from_env(&Env::from_pairs(pair.env_vars()), RunMode::Serve)
        .and_then(|settings| settings.require_signer())
        .expect("a valid key")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A request to `app` as the router would send it, signed by `signer` at
/// `created` for `audience`, with the body then replaced by `sent_body`
/// (the signed one when `None`).
async fn send(
    app: &TestApp,
    signer: &HopSigner,
    identity: &Identity,
    audience: &str,
    created: u64,
    sent_body: Option<&str>,
) -> (StatusCode, serde_json::Value, HeaderMap) {
    let body = Bytes::from(
        serde_json::to_vec(
            &json!({ "query": "{ myNotifications(first: 5) { edges { node { id } } } }" }),
        )
        .expect("JSON"),
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    forward_identity(identity, &mut headers);
    let url = app.url("/graphql");
    signer
        .sign_at(
            &reqwest::Method::POST,
            &url.parse().expect("URL"),
            &mut headers,
            &body,
            audience,
            created,
        )
        .await
        .expect("signs");
    let sent = sent_body.map_or(body, |text| Bytes::from(text.to_owned()));
    let response = app
        .client
        .post(url)
        .headers(headers.clone())
        .body(sent)
        .send()
        .await
        .expect("reaches the subgraph");
    let status = response.status();
    let body = response.json().await.unwrap_or_default();
    (status, body, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_signature_is_refused_before_graphql_runs() {
    let app = TestApp::spawn_notification(Backend::Sqlite, BEHIND_ROUTER).await;
    let trusted = test_hop_signer();
    let admin = user("admin-1", &[ADMIN_ROLE]);

    // The genuine article works, once.
    let (status, body, headers) = send(&app, &trusted, &admin, "notification", now(), None).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["myNotifications"]["edges"], json!([]));
    let replayed = app
        .client
        .post(app.url("/graphql"))
        .headers(headers)
        .body(r#"{"query":"{ myNotifications(first: 5) { edges { node { id } } } }"}"#)
        .send()
        .await
        .expect("reaches the subgraph");
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED, "a replay");

    let cases: [(&str, HopSigner, &str, u64, Option<&str>); 5] = [
        (
            "signed by an untrusted (rotated-out) key",
            untrusted_signer(),
            "notification",
            now(),
            None,
        ),
        (
            "expired",
            trusted.clone(),
            "notification",
            now() - 3600,
            None,
        ),
        (
            "created in the future",
            trusted.clone(),
            "notification",
            now() + 600,
            None,
        ),
        (
            "signed for another subgraph",
            trusted.clone(),
            "payment",
            now(),
            None,
        ),
        (
            "body changed after signing",
            trusted.clone(),
            "notification",
            now(),
            Some(r#"{"query":"{ myNotifications(first: 5) { edges { node { title } } } }"}"#),
        ),
    ];
    for (case, signer, audience, created, body) in cases {
        let (status, answer, _) = send(&app, &signer, &admin, audience, created, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer:#}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{case}"
        );
        assert!(answer.get("data").is_none(), "{case}: no GraphQL ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_are_never_read() {
    // Even where unsigned requests with direct tokens are accepted (dev's
    // default), identity headers need a signature.
    for extra in [BEHIND_ROUTER, &[("ACCEPT_DIRECT_TOKENS", "true")]] {
        let app = TestApp::spawn_notification(Backend::Sqlite, extra).await;
        let mut forged = HeaderMap::new();
        forward_identity(&user("admin-1", &[ADMIN_ROLE]), &mut forged);
        for token in [None, Some(app.user_token.clone())] {
            let mut request = app
                .client
                .post(app.url("/graphql"))
                .headers(forged.clone())
                .json(&json!({ "query": INBOX }));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("reaches the subgraph");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{extra:?}, token: {}",
                token.is_some()
            );
            assert!(response.headers().contains_key("www-authenticate"));
        }

        // A signed anonymous request with an identity header added later.
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let body = Bytes::from_static(
            br#"{"query":"{ myNotifications(first: 1) { edges { node { id } } } }"}"#,
        );
        let url = app.url("/graphql");
        test_hop_signer()
            .sign(
                &reqwest::Method::POST,
                &url.parse().expect("URL"),
                &mut headers,
                &body,
                "notification",
            )
            .await
            .expect("signs");
        headers.insert(USER_ID_HEADER, HeaderValue::from_static("admin-1"));
        let response = app
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .expect("reaches the subgraph");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_sdl_is_only_for_signed_callers_in_serve() {
    let app = TestApp::spawn_notification(
        Backend::Sqlite,
        &[
            ("ACCEPT_DIRECT_TOKENS", "true"),
            ("GRAPHQL_INTROSPECTION", "false"),
        ],
    )
    .await;
    let sdl_queries = [
        "{ _service { sdl } }",
        "{ ...Sdl } fragment Sdl on Query { _service { sdl } }",
        "{ ... on Query { _service { sdl } } }",
    ];
    for query in sdl_queries {
        let unsigned = app.gql(As::User, query, json!({})).await;
        assert_eq!(unsigned.status, StatusCode::FORBIDDEN, "{query}");
        assert_eq!(unsigned.code(), "FORBIDDEN", "{query}");
        let signed = app
            .gql_forwarded(&Identity::Anonymous, query, json!({}))
            .await;
        let sdl = signed.data()["_service"]["sdl"]
            .as_str()
            .unwrap_or_default();
        assert!(sdl.contains("myNotifications"), "{query}");
    }
    // Introspection on (dev): anyone may read it.
    let open = TestApp::spawn_notification(
        Backend::Sqlite,
        &[
            ("ACCEPT_DIRECT_TOKENS", "true"),
            ("GRAPHQL_INTROSPECTION", "true"),
        ],
    )
    .await;
    let sdl = open.gql(As::Anonymous, sdl_queries[0], json!({})).await;
    assert!(sdl.data()["_service"]["sdl"].is_string());
}

/// A request signed long ago is refused even though nothing else changed:
/// the window is `HOP_SIGNATURE_TTL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_window_is_honoured() {
    let app = TestApp::spawn_notification(
        Backend::Sqlite,
        &[
            ("ACCEPT_DIRECT_TOKENS", "false"),
            ("HOP_SIGNATURE_TTL", "2s"),
        ],
    )
    .await;
    let signer = test_hop_signer();
    let anyone = user("user-1", &[]);
    let (fresh, _, _) = send(&app, &signer, &anyone, "notification", now(), None).await;
    assert_eq!(
        fresh,
        StatusCode::UNAUTHORIZED,
        "the test signer's 30s validity is longer than 2s"
    );
    let short = HopSettings::from_env(
        &Env::from_pairs(
            HopKeyPair::of_this_process()
                .env_vars()
                .into_iter()
                .chain([("HOP_SIGNATURE_TTL", "2s")]),
        ),
        RunMode::Serve,
    )
    .and_then(|settings| settings.require_signer())
    .expect("signer");
    let (ok, body, _) = send(&app, &short, &anyone, "notification", now(), None).await;
    assert_eq!(ok, StatusCode::OK, "{body:#}");
    let (old, _, _) = send(
        &app,
        &short,
        &anyone,
        "notification",
        now() - Duration::from_secs(10).as_secs(),
        None,
    )
    .await;
    assert_eq!(old, StatusCode::UNAUTHORIZED);
}
