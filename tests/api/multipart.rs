//! Multipart HTTP subscriptions (Apollo's protocol) through the router,
//! end to end on the whole shop: events arrive as parts between
//! heartbeats, a client that leaves frees the subgraph subscription, a
//! resumed subscription replays what was missed, the end of the
//! subscription (here: the router shutting down) closes the body with the
//! final boundary after a transport-level error, a client that
//! falls behind ends with a transport-level `SUBSCRIPTION_OVERFLOW`, and
//! identity, rate limits, operation limits and CSRF prevention refuse as
//! they do on the other transports. Apollo Client's own `HttpLink`
//! (Node, `tests/subscriptions/apollo-subscribe.mjs`) runs against the
//! router too.

use std::time::Duration;

use serde_json::{Value, json};
use subgraph_kit::events::EventBus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Router;
use crate::helpers::{As, Backend};
use crate::live::{
    MULTIPART_ACCEPT, MultipartParser, MultipartStream, NodeSubscriber, Part, post_multipart,
};
use crate::shop::Shop;

/// The live notification a client asks for: fields from three subgraphs.
const NOTIFICATIONS: &str = "subscription($after: String) { notificationAdded(after: $after) { id title payment { status items { quantity product { name } } } } }";

/// How long an event may take end to end before a test gives up.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// The variables of a router in front of `shop`'s subgraphs, plus `extra`.
fn router_vars(shop: &Shop, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut vars = Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &shop.notification,
    );
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    vars
}

/// The JSON of the next part that is not a heartbeat.
async fn next_json(stream: &mut MultipartStream) -> Value {
    match stream.next_payload(EVENT_WAIT).await {
        Some(Part::Json(value)) => value,
        other => panic!("a part, not {other:?}"),
    }
}

/// The ids of `who`'s stored notifications, oldest first.
async fn stored_ids(shop: &Shop, who: As) -> Vec<String> {
    let stored = shop
        .gql(
            who,
            "{ me { notifications(first: 50) { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    let mut ids: Vec<String> = stored.data()["me"]["notifications"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["id"].as_str().map(str::to_owned))
        .collect();
    ids.reverse(); // the inbox is newest first
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_arrive_as_parts_between_heartbeats_resume_and_end_with_the_final_boundary() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let router = Router::start(&router_vars(&shop, &[("MULTIPART_HEARTBEAT", "300ms")])).await;
    let (product_id, product_name, _) = shop.stocked_product(5).await;
    let token = shop.token(As::User).unwrap_or_default().to_owned();

    // A client that accepts gzip still gets each part as it is sent:
    // multipart is never compressed (a compressor would hold the parts).
    let response = reqwest::Client::new()
        .post(&router.url)
        .bearer_auth(&token)
        .header("accept", MULTIPART_ACCEPT)
        .header("accept-encoding", "gzip")
        .json(&json!({ "query": NOTIFICATIONS, "variables": { "after": null } }))
        .send()
        .await
        .expect("the router answers");
    assert!(response.headers().get("content-encoding").is_none());
    let mut stream = MultipartStream::new(response);

    // Nothing happens: heartbeats keep the stream alive.
    for _ in 0..2 {
        assert_eq!(
            stream.next(Duration::from_secs(5)).await,
            Some(Part::Json(json!({}))),
            "a heartbeat while nothing happens"
        );
    }

    // A checkout: its notification arrives as one part, fields from three
    // subgraphs, wrapped in `payload`.
    shop.notification.wait_for_subscriptions(1).await;
    shop.buy_settled(As::User, &product_id, "multipart-1").await;
    let first = next_json(&mut stream).await;
    let last_seen = first["payload"]["data"]["notificationAdded"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        first,
        json!({ "payload": { "data": { "notificationAdded": {
            "id": last_seen,
            "title": "Payment completed",
            "payment": { "status": "COMPLETED", "items": [{ "quantity": 1, "product": { "name": product_name } }] },
        } } } })
    );

    // The client leaves: the router ends the subgraph subscription.
    drop(stream);
    shop.notification.wait_for_subscriptions(0).await;

    // Two checkouts while away; resuming `after` the last one seen replays
    // exactly those, in order, then goes on live.
    shop.buy_settled(As::User, &product_id, "multipart-2").await;
    shop.buy_settled(As::User, &product_id, "multipart-3").await;
    shop.eventually("both missed notifications are stored", || async {
        stored_ids(&shop, As::User).await.len() == 3
    })
    .await;
    let missed: Vec<String> = stored_ids(&shop, As::User)
        .await
        .into_iter()
        .filter(|id| *id != last_seen)
        .collect();
    let mut resumed = MultipartStream::new(
        post_multipart(
            &router.url,
            Some(&token),
            NOTIFICATIONS,
            json!({ "after": last_seen }),
        )
        .await,
    );
    for expected in &missed {
        let replayed = next_json(&mut resumed).await;
        assert_eq!(
            replayed["payload"]["data"]["notificationAdded"]["id"],
            expected.as_str(),
            "{replayed}"
        );
    }

    // The router shuts down: the subscription ends with a transport-level
    // error, then the final boundary closes the body, and the subgraph
    // subscription is freed.
    shop.notification.wait_for_subscriptions(1).await;
    drop(router);
    let ended = next_json(&mut resumed).await;
    assert_eq!(
        ended,
        json!({ "payload": null, "errors": [{
            "message": "the router is shutting down",
            "extensions": { "code": "INTERNAL" },
        }] })
    );
    assert_eq!(resumed.next(EVENT_WAIT).await, Some(Part::End));
    assert_eq!(
        resumed.next(EVENT_WAIT).await,
        None,
        "nothing after the end"
    );
    shop.notification.wait_for_subscriptions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_limits_and_csrf_prevention_apply_as_on_the_other_transports() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let url = &shop.router.url;
    let token = shop.token(As::User).unwrap_or_default().to_owned();
    let client = reqwest::Client::new();
    let code = |body: &Value| body["errors"][0]["extensions"]["code"].clone();

    // Identity: an anonymous caller (every subscription field is
    // `@authenticated`) and an invalid token are refused before any
    // stream, as one JSON error response.
    let anonymous = post_multipart(url, None, NOTIFICATIONS, json!({})).await;
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("JSON");
    assert_eq!(code(&body), "UNAUTHORIZED_FIELD_OR_TYPE", "{body}");
    let forged = post_multipart(url, Some("not-a-token"), NOTIFICATIONS, json!({})).await;
    assert_eq!(forged.status(), 401);
    let body: Value = forged.json().await.expect("JSON");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let stock = "subscription { stockChanged { productId quantity } }";

    // A query sent with Apollo's subscription `Accept` (which lists JSON
    // too) gets a plain JSON answer; with only multipart accepted, one
    // part and the final boundary.
    let query = post_multipart(url, None, "{ categories }", json!({})).await;
    assert_eq!(query.status(), 200);
    assert_eq!(
        query.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = query.json().await.expect("JSON");
    let categories = body["data"]["categories"].clone();
    assert!(
        categories.as_array().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    let only_multipart = client
        .post(url)
        .header("accept", "multipart/mixed;subscriptionSpec=\"1.0\"")
        .json(&json!({ "query": "{ categories }" }))
        .send()
        .await
        .expect("the router answers");
    let mut single = MultipartStream::new(only_multipart);
    assert_eq!(
        single.next(EVENT_WAIT).await,
        Some(Part::Json(
            json!({ "payload": { "data": { "categories": categories } } })
        ))
    );
    assert_eq!(single.next(EVENT_WAIT).await, Some(Part::End));

    // CSRF prevention: a GET carrying a subscription and none of the
    // required headers is what a hostile page could make a browser send;
    // with `apollo-require-preflight` it streams.
    let get = format!("{url}?query=subscription%7BstockChanged%7Bquantity%7D%7D");
    let forged = client
        .get(&get)
        .bearer_auth(&token)
        .header("accept", MULTIPART_ACCEPT)
        .send()
        .await
        .expect("the router answers");
    assert_eq!(forged.status(), 400);
    let body: Value = forged.json().await.expect("JSON");
    assert_eq!(code(&body), "CSRF_PREVENTION", "{body}");
    let preflighted = client
        .get(&get)
        .bearer_auth(&token)
        .header("accept", MULTIPART_ACCEPT)
        .header("apollo-require-preflight", "true")
        .send()
        .await
        .expect("the router answers");
    drop(MultipartStream::new(preflighted));

    // Operation limits, before planning.
    let shallow = Router::start(&router_vars(&shop, &[("GRAPHQL_MAX_DEPTH", "2")])).await;
    let deep = post_multipart(&shallow.url, Some(&token), NOTIFICATIONS, json!({})).await;
    assert_eq!(deep.status(), 400);
    let body: Value = deep.json().await.expect("JSON");
    assert_eq!(code(&body), "MAX_DEPTH_LIMIT", "{body}");

    // The rate limit: a multipart request counts once, when it opens;
    // the one over the budget is refused with 429 while the first streams.
    let limited = Router::start(&router_vars(
        &shop,
        &[
            ("RATE_LIMIT_ENABLED", "true"),
            ("RATE_LIMIT_BURST", "1"),
            ("RATE_LIMIT_REQUESTS", "1"),
            ("RATE_LIMIT_WINDOW", "1h"),
        ],
    ))
    .await;
    let mut open =
        MultipartStream::new(post_multipart(&limited.url, Some(&token), stock, json!({})).await);
    let over = post_multipart(&limited.url, Some(&token), stock, json!({})).await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().get("retry-after").is_some());
    let body: Value = over.json().await.expect("JSON");
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // The first one is still open (a heartbeat or nothing yet, not the end).
    assert_ne!(open.next(Duration::from_millis(300)).await, Some(Part::End));
}

/// A client that reads nothing while events pour in: once the router's
/// queue for it (`SUBSCRIPTION_BUFFER`) is full, the subscription ends —
/// the subgraph's is freed at once — and the client, when it reads, finds
/// what was queued, a transport-level `SUBSCRIPTION_OVERFLOW` error and
/// the final boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_falls_behind_ends_with_a_transport_level_overflow() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let router = Router::start(&router_vars(&shop, &[("SUBSCRIPTION_BUFFER", "2")])).await;
    let token = shop.token(As::User).unwrap_or_default().to_owned();

    // A socket with a small receive buffer, so that the kernel's buffers
    // do not absorb the flood.
    let address: std::net::SocketAddr = router
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/graphql")
        .parse()
        .expect("host:port");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let mut connection = socket.connect(address).await.expect("connects");
    let body = json!({ "query": "subscription { notificationAdded { id message } }" }).to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         accept: {MULTIPART_ACCEPT}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    connection
        .write_all(request.as_bytes())
        .await
        .expect("sends");
    shop.notification.wait_for_subscriptions(1).await;

    // Batches of 100 notifications of 5,000 characters (500 kB) for a
    // client reading nothing, until the router gives up on it: the first
    // megabytes only fill the kernel's socket buffers, which the router
    // cannot tell from a client that reads.
    let mut batches = 0;
    while shop.notification.open_subscriptions() > 0 {
        assert!(
            batches < 40,
            "a client that reads nothing is still subscribed after 20 MB"
        );
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({ "userId": "user-1", "type": "SYSTEM", "title": format!("Bulk {batches}-{i}"), "message": "x".repeat(5000) }))
            .collect();
        let created = shop
            .gql(
                As::Admin,
                "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id } }",
                json!({ "inputs": inputs }),
            )
            .await;
        assert!(created.body["errors"].is_null(), "{}", created.body);
        batches += 1;
        // The router's grace for a full queue is a second.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The overflow freed the subgraph subscription while the client still
    // read nothing.

    let mut received = Vec::new();
    tokio::time::timeout(EVENT_WAIT, connection.read_to_end(&mut received))
        .await
        .expect("the router ends the response")
        .expect("reads");
    let text = String::from_utf8_lossy(&received);
    let (head, chunked) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut parser = MultipartParser::default();
    parser.push(&dechunk(chunked.as_bytes()));
    let mut parts = Vec::new();
    while let Some(part) = parser.take() {
        parts.push(part);
    }
    assert!(parser.rest().is_empty(), "nothing after the final boundary");
    assert_eq!(
        parts.last(),
        Some(&Part::End),
        "the body ends with the final boundary"
    );
    let Some(Part::Json(error)) = parts.iter().rev().nth(1) else {
        panic!("an error part before the end: {parts:?}");
    };
    assert_eq!(error["payload"], Value::Null, "{error}");
    assert_eq!(
        error["errors"][0]["extensions"]["code"], "SUBSCRIPTION_OVERFLOW",
        "{error}"
    );
    let delivered = parts
        .iter()
        .filter(|part| matches!(part, Part::Json(value) if value["payload"]["data"]["notificationAdded"]["id"].is_string()))
        .count();
    assert!(
        delivered < batches * 100,
        "the subscription ended before the flood did: {delivered} of {} delivered",
        batches * 100
    );
}

/// The body of an HTTP/1.1 chunked response.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&chunked[..line_end]);
        let size = usize::from_str_radix(size_text.trim(), 16).expect("a hex chunk size");
        chunked = &chunked[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunked[..size]);
        chunked = &chunked[size + 2..];
    }
}

/// Apollo Client, as a web app uses it (`HttpLink`, so multipart HTTP):
/// it sits through heartbeats, receives a checkout's notification, and
/// its unsubscribe (an aborted request) frees the subgraph subscription;
/// an anonymous client gets the GraphQL error; a router shutting down
/// reaches it as a transport-level (protocol) error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apollo_client_subscribes_over_multipart_http() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let router = Router::start(&router_vars(&shop, &[("MULTIPART_HEARTBEAT", "200ms")])).await;
    let (product_id, product_name, _) = shop.stocked_product(2).await;
    let token = shop.token(As::User).unwrap_or_default().to_owned();
    let line_wait = EVENT_WAIT;

    let mut apollo =
        NodeSubscriber::apollo(&router.url, Some(&token), NOTIFICATIONS, json!({}), Some(1)).await;
    apollo.ready().await;
    shop.notification.wait_for_subscriptions(1).await;
    // A few heartbeats go by; Apollo Client reports none of them.
    tokio::time::sleep(Duration::from_millis(700)).await;
    shop.buy_settled(As::User, &product_id, "apollo-1").await;
    let event = apollo.next(line_wait).await.expect("a line");
    let added = &event["next"]["data"]["notificationAdded"];
    assert_eq!(added["title"], "Payment completed", "{event}");
    assert_eq!(added["payment"]["status"], "COMPLETED", "{event}");
    assert_eq!(
        added["payment"]["items"][0]["product"]["name"],
        product_name.as_str(),
        "{event}"
    );
    assert_eq!(
        apollo.next(line_wait).await,
        Some(json!({ "complete": true }))
    );
    // The client unsubscribed after its one event: the request is aborted
    // and the router frees the subgraph subscription.
    shop.notification.wait_for_subscriptions(0).await;

    // No token: the router's GraphQL error reaches the client.
    let mut anonymous =
        NodeSubscriber::apollo(&router.url, None, NOTIFICATIONS, json!({}), None).await;
    anonymous.ready().await;
    let refused = anonymous.next(line_wait).await.expect("a line");
    assert_eq!(
        refused["error"]["codes"],
        json!(["UNAUTHORIZED_FIELD_OR_TYPE"]),
        "{refused}"
    );

    // The router shuts down: a protocol error, then the subscription ends.
    let mut ending =
        NodeSubscriber::apollo(&router.url, Some(&token), NOTIFICATIONS, json!({}), None).await;
    ending.ready().await;
    shop.notification.wait_for_subscriptions(1).await;
    drop(router);
    let ended = ending.next(line_wait).await.expect("a line");
    assert_eq!(ended["error"]["name"], "CombinedProtocolErrors", "{ended}");
    assert_eq!(
        ended["error"]["messages"],
        json!(["the router is shutting down"]),
        "{ended}"
    );
    shop.notification.wait_for_subscriptions(0).await;
}
