//! Events end to end: checkouts become stock changes, emptied baskets and
//! live notifications through the router, on a real Kafka-protocol broker
//! (tansu) with PostgreSQL and MariaDB stores, and on the in-process bus
//! with SQLite — including when the broker goes away, when an event is
//! delivered twice, and when a client reconnects.

use std::time::Duration;

use serde_json::{Value, json};
use subgraph_kit::events::contract::{PaymentData, PaymentLine, payment};
use subgraph_kit::events::{CloudEvent, EventBus, Topic};
use uuid::Uuid;

use crate::harness::{RouterProcess, wait_until};
use crate::helpers::{As, Backend, TestApp};
use crate::live::{Broker, NodeSubscriber, RawSocket, Received, ws_url};
use crate::shop::Shop;

/// The live notification a client asks for: fields from three subgraphs.
const NOTIFICATIONS: &str = "subscription($after: String) { notificationAdded(after: $after) { id title type payment { status items { quantity product { name } } } } }";

/// How long an event may take end to end before a test gives up.
const EVENT_WAIT: Duration = Duration::from_secs(20);

impl Shop {
    /// The first product of the demo catalogue with at least `units` in stock.
    pub(crate) async fn stocked_product(&self, units: i64) -> (String, String, i64) {
        let found = self
            .gql(
                As::Anonymous,
                "{ products(first: 50) { edges { node { id name stockQuantity } } } }",
                json!({}),
            )
            .await;
        let edges = found.data()["products"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let node = edges
            .iter()
            .map(|edge| &edge["node"])
            .find(|node| node["stockQuantity"].as_i64().unwrap_or(0) >= units)
            .expect("a stocked product")
            .clone();
        (
            node["id"].as_str().unwrap_or_default().to_owned(),
            node["name"].as_str().unwrap_or_default().to_owned(),
            node["stockQuantity"].as_i64().unwrap_or_default(),
        )
    }

    pub(crate) async fn stock_of(&self, product_id: &str) -> i64 {
        let found = self
            .gql(
                As::Anonymous,
                "query($id: ID!) { product(id: $id) { stockQuantity } }",
                json!({ "id": product_id }),
            )
            .await;
        found.data()["product"]["stockQuantity"]
            .as_i64()
            .unwrap_or(-1)
    }

    /// Puts `quantity` of `product_id` in `who`'s basket and checks out.
    pub(crate) async fn buy(&self, who: As, product_id: &str, quantity: i64, key: &str) -> Value {
        let added = self
            .gql(
                who,
                "mutation($p: ID!, $q: Int!) { addBasketItem(productId: $p, quantity: $q) { itemCount } }",
                json!({ "p": product_id, "q": quantity }),
            )
            .await;
        assert!(added.body["errors"].is_null(), "{}", added.body);
        let paid = self
            .gql(
                who,
                "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }",
                json!({ "input": {
                    "idempotencyKey": key, "method": "CARD",
                    "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": "123" }
                } }),
            )
            .await;
        assert_eq!(
            paid.data()["checkout"]["status"],
            "COMPLETED",
            "{}",
            paid.body
        );
        paid.data()["checkout"].clone()
    }

    /// Checks out `who`'s basket with card `number`.
    async fn checkout_with(&self, who: As, key: &str, number: &str) -> crate::helpers::GqlResponse {
        self.gql(
            who,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }",
            json!({ "input": {
                "idempotencyKey": key, "method": "CARD",
                "card": { "number": number, "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await
    }

    /// [`Self::buy`], then waits until the checkout's `BasketCleared`
    /// emptied the basket, so that a later purchase's lines are not
    /// cleared by this one's late event.
    pub(crate) async fn buy_settled(&self, who: As, product_id: &str, key: &str) -> Value {
        let paid = self.buy(who, product_id, 1, key).await;
        self.eventually("the basket is emptied", || async {
            self.basket_units(who).await == 0
        })
        .await;
        paid
    }

    /// Waits until `check` holds (the effects of events are eventual).
    pub(crate) async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait_until(what, EVENT_WAIT, check).await;
    }

    async fn basket_units(&self, who: As) -> i64 {
        let basket = self.gql(who, "{ myBasket { itemCount } }", json!({})).await;
        basket.data()["myBasket"]["itemCount"]
            .as_i64()
            .unwrap_or(-1)
    }

    async fn subscribe(&self, who: As, after: Option<&str>) -> NodeSubscriber {
        let mut subscriber = NodeSubscriber::start(
            &ws_url(&self.router.url),
            self.token(who),
            NOTIFICATIONS,
            json!({ "after": after }),
        )
        .await;
        subscriber.ready().await;
        subscriber
    }
}

/// Everything one checkout sets off, seen by the buyer and not by others.
async fn a_checkout_reaches_the_buyer_live_and_nobody_else(shop: Shop) {
    let (product_id, name, stock) = shop.stocked_product(3).await;
    let mut buyer = shop.subscribe(As::User, None).await;
    let mut other = shop.subscribe(As::OtherUser, None).await;
    // A Rust client on the raw protocol, alongside the Node one.
    let mut raw = RawSocket::connect(&shop.router.url).await;
    raw.init(shop.token(As::User).unwrap_or_default()).await;
    raw.send(json!({ "id": "n", "type": "subscribe", "payload": { "query": "subscription { notificationAdded { title } }" } }))
        .await;
    // Live tails are in place once the subgraph has opened the three
    // subscriptions' streams (the router acknowledges them before that).
    shop.notification.wait_for_subscriptions(3).await;

    let paid = shop.buy(As::User, &product_id, 2, "live-1").await;

    let event = buyer
        .next_data(EVENT_WAIT)
        .await
        .expect("the buyer's notification");
    let added = &event["notificationAdded"];
    assert_eq!(added["type"], "PAYMENT_COMPLETED", "{event}");
    assert_eq!(added["payment"]["status"], "COMPLETED", "{event}");
    assert_eq!(
        added["payment"]["items"][0]["product"]["name"], name,
        "{event}"
    );
    assert_eq!(added["payment"]["items"][0]["quantity"], 2, "{event}");
    assert_eq!(
        raw.receive().await,
        Received::Message(
            json!({ "id": "n", "type": "next", "payload": { "data": { "notificationAdded": { "title": "Payment completed" } } } })
        )
    );

    shop.eventually("stock drops by two", || async {
        shop.stock_of(&product_id).await == stock - 2
    })
    .await;
    shop.eventually("the basket is emptied", || async {
        shop.basket_units(As::User).await == 0
    })
    .await;
    assert!(
        other.next(Duration::from_secs(1)).await.is_none(),
        "another user's subscription stays silent"
    );
    assert!(paid["id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_kafka_a_checkout_reaches_the_buyer_live_and_nobody_else() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    a_checkout_reaches_the_buyer_live_and_nobody_else(shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_a_checkout_reaches_the_buyer_live_and_nobody_else() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    a_checkout_reaches_the_buyer_live_and_nobody_else(shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_completed_delivered_twice_takes_stock_once() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    let (product_id, name, stock) = shop.stocked_product(3).await;
    let mut buyer = shop.subscribe(As::User, None).await;
    let data = PaymentData {
        payment_id: Uuid::now_v7(),
        user_id: "user-1".into(),
        status: "COMPLETED".into(),
        amount: "10.00".parse().unwrap_or_default(),
        refunded_amount: Default::default(),
        refund_amount: None,
        currency: "EUR".into(),
        basket_id: None,
        items: vec![PaymentLine {
            product_id: product_id.parse().expect("a UUID"),
            product_name: name,
            quantity: 3,
        }],
        reason: None,
    };
    let event = CloudEvent::new(
        "/subgraphs/payment",
        payment::COMPLETED,
        data.payment_id.to_string(),
        &data,
    )
    .expect("an event");
    // The same event (same id) twice, as a redelivery would bring it.
    shop.bus
        .publish(Topic::Payment, &event)
        .await
        .expect("published");
    shop.bus
        .publish(Topic::Payment, &event)
        .await
        .expect("published again");

    shop.eventually("stock drops by three", || async {
        shop.stock_of(&product_id).await == stock - 3
    })
    .await;
    let first = buyer.next_data(EVENT_WAIT).await.expect("one notification");
    assert_eq!(first["notificationAdded"]["type"], "PAYMENT_COMPLETED");
    // Give the duplicate every chance to do harm, then check nothing did.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        shop.stock_of(&product_id).await,
        stock - 3,
        "stock taken once"
    );
    assert!(
        buyer.next(Duration::from_millis(500)).await.is_none(),
        "notified once"
    );
    let count = shop
        .gql(
            As::User,
            "{ me { notifications(first: 10) { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        count.data()["me"]["notifications"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{}",
        count.body
    );
}

/// A broker that hangs (SIGSTOP: connections open, nothing answered) while
/// checkouts happen. A broker killed and restarted on its data is
/// `broker_restart.rs`; one that restarts empty is the next test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_checkouts_while_the_broker_is_down_are_all_notified_when_it_returns() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    let (product_id, _, stock) = shop.stocked_product(3).await;
    let mut buyer = shop.subscribe(As::User, None).await;
    shop.notification.wait_for_subscriptions(1).await;

    broker.pause().await;
    // Checkout itself needs no broker: the events wait in the outbox. A
    // completed checkout holds the basket until its event arrives (so no
    // second checkout buys its lines again), but a declined one lets go at
    // once: two declined cards, then one that pays, all while it is down.
    let added = shop
        .gql(
            As::User,
            "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 1) { itemCount } }",
            json!({ "p": product_id }),
        )
        .await;
    assert_eq!(added.data()["addBasketItem"]["itemCount"], 1);
    for (n, (number, status)) in [
        ("4000000000000002", "FAILED"),
        ("4000000000000002", "FAILED"),
        ("4242424242424242", "COMPLETED"),
    ]
    .into_iter()
    .enumerate()
    {
        let paid = shop
            .checkout_with(As::User, &format!("down-{n}"), number)
            .await;
        assert_eq!(paid.data()["checkout"]["status"], status, "{}", paid.body);
    }
    let again = shop
        .checkout_with(As::User, "down-again", "4242424242424242")
        .await;
    assert_eq!(
        again.code(),
        "CONFLICT",
        "the paid lines stay locked while their event waits: {}",
        again.body
    );
    // Long enough for publishes to time out and the relay to back off.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(buyer.next(Duration::from_millis(100)).await.is_none());
    broker.unpause().await;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = buyer
            .next_data(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "notification {} of 3 after the broker returned",
                    seen.len() + 1
                )
            });
        seen.push(
            event["notificationAdded"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "three distinct notifications");
    assert_eq!(shop.stock_of(&product_id).await, stock - 1, "one sale");
    shop.eventually("the paid line leaves the basket", || async {
        shop.basket_units(As::User).await == 0
    })
    .await;
}

/// A broker that restarts empty (topics and producer ids gone): the relay
/// recreates the topic and a new producer, and the pending event is
/// published.
///
/// Ignored in the suite: librdkafka 2.12.1 (rdkafka-sys 4.10) crashes the
/// whole test process (SIGSEGV in `rd_kafka_metadata_cache_find`) when the
/// broker comes back with the same topic names under new topic ids, about
/// one run in two since checkouts settle through the basket first. A broker
/// restart on its data, the real case, is `broker_restart.rs`. Run it
/// alone with `cargo test --test api -- --ignored restarted_empty`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "librdkafka 2.12.1 segfaults when a broker returns empty with new topic ids; see the doc comment"]
async fn the_relay_publishes_to_a_broker_that_restarted_empty() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    let (product_id, _, _) = shop.stocked_product(1).await;
    // Settled first: a checkout holds the basket until its event arrives.
    shop.buy_settled(As::User, &product_id, "before").await;
    broker.kill().await;
    let paid = shop.buy(As::User, &product_id, 1, "while-down").await;
    broker.reset().await;
    let mut group = shop
        .bus
        .subscribe(
            &[Topic::Payment],
            subgraph_kit::events::Start::Group("observer".into()),
        )
        .await
        .expect("subscribed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivery = tokio::time::timeout_at(deadline, group.next())
            .await
            .expect("the pending event is published after the restart");
        // The topic may not exist yet until the relay recreates it.
        let Ok(Ok(event)) = delivery.map(|d| d.event) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if event.kind == payment::COMPLETED
            && event.subject == paid["id"].as_str().unwrap_or_default()
        {
            break;
        }
    }
}

/// A client that misses notifications while away gets exactly those, in
/// order, when it resumes with `after`, then the live ones.
async fn a_resumed_subscription_replays_exactly_what_was_missed(shop: Shop) {
    let (product_id, _, _) = shop.stocked_product(5).await;
    let mut first = shop.subscribe(As::User, None).await;
    shop.notification.wait_for_subscriptions(1).await;
    shop.buy_settled(As::User, &product_id, "resume-1").await;
    let seen = first
        .next_data(EVENT_WAIT)
        .await
        .expect("the first notification");
    let last_seen = seen["notificationAdded"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    drop(first);

    shop.buy_settled(As::User, &product_id, "resume-2").await;
    shop.buy_settled(As::User, &product_id, "resume-3").await;
    shop.eventually("both missed notifications are stored", || async {
        let count = shop
            .gql(As::User, "{ me { unreadNotificationCount } }", json!({}))
            .await;
        count.data()["me"]["unreadNotificationCount"] == 3
    })
    .await;
    let stored = shop
        .gql(
            As::User,
            "{ me { notifications(first: 10) { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    let mut missed: Vec<String> = stored.data()["me"]["notifications"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["id"].as_str().map(str::to_owned))
        .filter(|id| *id != last_seen)
        .collect();
    missed.reverse(); // the inbox is newest first; the replay is oldest first

    let mut resumed = shop.subscribe(As::User, Some(&last_seen)).await;
    for expected in &missed {
        let event = resumed
            .next_data(EVENT_WAIT)
            .await
            .expect("a replayed notification");
        assert_eq!(
            event["notificationAdded"]["id"],
            expected.as_str(),
            "{event}"
        );
    }
    // `first` is gone, `resumed` follows the live feed.
    shop.notification.wait_for_subscriptions(1).await;
    shop.buy_settled(As::User, &product_id, "resume-4").await;
    let live = resumed
        .next_data(EVENT_WAIT)
        .await
        .expect("the live notification");
    let live_id = live["notificationAdded"]["id"].as_str().unwrap_or_default();
    assert!(
        !missed.iter().any(|id| id == live_id) && live_id != last_seen,
        "{live}"
    );
    let extra = resumed.next(Duration::from_secs(1)).await;
    assert!(
        extra.is_none(),
        "no duplicate: {extra:?} after {live} (missed {missed:?}, last seen {last_seen})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_kafka_a_resumed_subscription_replays_exactly_what_was_missed() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    a_resumed_subscription_replays_exactly_what_was_missed(shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_a_resumed_subscription_replays_exactly_what_was_missed() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    a_resumed_subscription_replays_exactly_what_was_missed(shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_routers_over_two_notification_replicas_both_deliver() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    // A second notification replica on the same store and bus, and a
    // second router that uses it.
    let replica = TestApp::spawn_notification_on(
        &shop.bus,
        Backend::Postgres,
        &[(
            "NOTIFICATION_DATABASE_URL",
            &shop.notification.database_url(),
        )],
    )
    .await;
    // The second router is a separate process: `shopgraph serve router`.
    let mut second = RouterProcess::start(&Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &replica,
    ))
    .await;
    second.wait_ready().await;

    let (product_id, _, _) = shop.stocked_product(2).await;
    let mut via_first = shop.subscribe(As::User, None).await;
    let mut via_second = NodeSubscriber::start(
        &ws_url(&second.graphql_url()),
        shop.token(As::User),
        NOTIFICATIONS,
        json!({}),
    )
    .await;
    via_second.ready().await;
    shop.notification.wait_for_subscriptions(1).await;
    replica.wait_for_subscriptions(1).await;

    shop.buy(As::User, &product_id, 1, "replicas-1").await;
    let a = via_first
        .next_data(EVENT_WAIT)
        .await
        .expect("router 1 delivers");
    let b = via_second
        .next_data(EVENT_WAIT)
        .await
        .expect("router 2 delivers");
    assert_eq!(a["notificationAdded"]["id"], b["notificationAdded"]["id"]);
    // Exactly once per subscription, and one stored notification (the
    // replicas share the reaction consumer group).
    assert!(via_first.next(Duration::from_secs(1)).await.is_none());
    assert!(via_second.next(Duration::from_millis(200)).await.is_none());
    let count = shop
        .gql(As::User, "{ me { unreadNotificationCount } }", json!({}))
        .await;
    assert_eq!(
        count.data()["me"]["unreadNotificationCount"],
        1,
        "{}",
        count.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_refuse_anonymous_callers_and_protocol_errors() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let url = &shop.router.url;

    // graphql-ws without a token: closed with 4401.
    let mut anonymous = NodeSubscriber::start(&ws_url(url), None, NOTIFICATIONS, json!({})).await;
    let closed = anonymous
        .next(Duration::from_secs(10))
        .await
        .expect("a close");
    assert_eq!(closed["closed"], 4401, "{closed}");

    // A bad token, too.
    let mut raw = RawSocket::connect(url).await;
    raw.send(
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-jwt" } }),
    )
    .await;
    assert!(matches!(raw.receive().await, Received::Closed(4401, _)));

    // Subscribe before connection_init: 4401.
    let mut raw = RawSocket::connect(url).await;
    raw.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { notificationAdded { id } }" } }))
        .await;
    assert!(matches!(raw.receive().await, Received::Closed(4401, _)));

    // A second connection_init: 4429.
    let token = shop.token(As::User).unwrap_or_default();
    let mut raw = RawSocket::connect(url).await;
    raw.init(token).await;
    raw.send(json!({ "type": "connection_init" })).await;
    assert!(matches!(raw.receive().await, Received::Closed(4429, _)));

    // The same live id twice: 4409.
    let mut raw = RawSocket::connect(url).await;
    raw.init(token).await;
    let subscribe = json!({ "id": "same", "type": "subscribe", "payload": { "query": "subscription { notificationAdded { id } }" } });
    raw.send(subscribe.clone()).await;
    raw.send(subscribe).await;
    assert!(matches!(raw.receive().await, Received::Closed(4409, _)));

    // Not a protocol message: 4400.
    let mut raw = RawSocket::connect(url).await;
    raw.init(token).await;
    raw.send_text("{\"type\":\"bogus\"}").await;
    assert!(matches!(raw.receive().await, Received::Closed(4400, _)));

    // An invalid operation is an `error` message, and the connection lives on.
    let mut raw = RawSocket::connect(url).await;
    raw.init(token).await;
    raw.send(json!({ "id": "bad", "type": "subscribe", "payload": { "query": "subscription { nope }" } }))
        .await;
    let Received::Message(error) = raw.receive().await else {
        panic!("an error message");
    };
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{error}"
    );
    raw.send(json!({ "type": "ping" })).await;
    assert_eq!(
        raw.receive().await,
        Received::Message(json!({ "type": "pong" }))
    );

    // Queries run over the socket too: one `next`, then `complete`.
    raw.send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ me { id } }" } }))
        .await;
    assert_eq!(
        raw.receive().await,
        Received::Message(
            json!({ "id": "q", "type": "next", "payload": { "data": { "me": { "id": "user-1" } } } })
        )
    );
    assert_eq!(
        raw.receive().await,
        Received::Message(json!({ "id": "q", "type": "complete" }))
    );

    // SSE: anonymous 401 (`notificationAdded` is @authenticated: the
    // router refuses it before any subgraph), signed in streams.
    let client = reqwest::Client::new();
    let refused = client
        .post(url)
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "subscription { notificationAdded { id } }" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UNAUTHORIZED_FIELD_OR_TYPE"
    );

    // A plain POST of a subscription points to the streaming transports.
    let plain = shop
        .gql(
            As::User,
            "subscription { notificationAdded { id } }",
            json!({}),
        )
        .await;
    assert_eq!(plain.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_streams_a_checkout_notification() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let (product_id, _, _) = shop.stocked_product(1).await;
    let mut stream = reqwest::Client::new()
        .post(&shop.router.url)
        .bearer_auth(shop.token(As::User).unwrap_or_default())
        .header("accept", "text/event-stream")
        .json(
            &json!({ "query": "subscription { notificationAdded { title payment { status } } }" }),
        )
        .send()
        .await
        .expect("a stream");
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    shop.notification.wait_for_subscriptions(1).await;
    shop.buy(As::User, &product_id, 1, "sse-1").await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while !text.contains("\n\n") || !text.contains("event: next") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("an event in time")
            .expect("a chunk")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("a data line");
    let event: Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(
        event,
        json!({ "data": { "notificationAdded": { "title": "Payment completed", "payment": { "status": "COMPLETED" } } } })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_and_payment_status_subscriptions_follow_their_changes() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let url = &shop.router.url;
    let (product_id, _, stock) = shop.stocked_product(2).await;
    let user = shop.token(As::User).unwrap_or_default();

    let mut stock_changes = RawSocket::connect(url).await;
    stock_changes.init(user).await;
    stock_changes
        .send(json!({ "id": "s", "type": "subscribe", "payload": {
            "query": "subscription($id: ID) { stockChanged(productId: $id) { productId previousQuantity quantity delta reason product { stockQuantity } } }",
            "variables": { "id": product_id },
        } }))
        .await;

    shop.product.wait_for_subscriptions(1).await;

    // A pending payment, followed by its owner; another user may not follow
    // it. Creating it reserves its units: that is the stock change.
    shop.gql(
        As::User,
        "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 2) { itemCount } }",
        json!({ "p": product_id }),
    )
    .await
    .data();
    let created = shop
        .gql(
            As::User,
            r#"mutation { createPayment(input: { idempotencyKey: "followed", method: CARD }) { id status } }"#,
            json!({}),
        )
        .await;
    let payment_id = created.data()["createPayment"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let follow = json!({ "id": "p", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { paymentStatusChanged(paymentId: $id) { id status items { quantity } } }",
        "variables": { "id": payment_id },
    } });
    let mut stranger = RawSocket::connect(url).await;
    stranger
        .init(shop.token(As::OtherUser).unwrap_or_default())
        .await;
    stranger.send(follow.clone()).await;
    let Received::Message(refused) = stranger.receive().await else {
        panic!("an answer for the stranger");
    };
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );

    let mut owner = RawSocket::connect(url).await;
    owner.init(user).await;
    owner.send(follow).await;
    // The status is followed on payment (the stranger's refused
    // subscription is closed).
    shop.payment.wait_for_subscriptions(1).await;
    let processed = shop
        .gql(
            As::User,
            r#"mutation($id: ID!) { processPayment(id: $id, card: { number: "4242424242424242", expMonth: 12, expYear: 2040, cvc: "123" }) { status } }"#,
            json!({ "id": payment_id }),
        )
        .await;
    assert_eq!(processed.data()["processPayment"]["status"], "COMPLETED");

    let Received::Message(status) = owner.receive().await else {
        panic!("a status change");
    };
    assert_eq!(
        status["payload"]["data"]["paymentStatusChanged"]["status"], "COMPLETED",
        "{status}"
    );
    assert_eq!(
        status["payload"]["data"]["paymentStatusChanged"]["items"][0]["quantity"],
        2
    );

    let Received::Message(change) = stock_changes.receive().await else {
        panic!("a stock change");
    };
    let change = &change["payload"]["data"]["stockChanged"];
    assert_eq!(change["productId"], product_id.as_str(), "{change}");
    assert_eq!(change["previousQuantity"], stock, "{change}");
    assert_eq!(change["quantity"], stock - 2, "{change}");
    assert_eq!(change["delta"], -2, "{change}");
    assert_eq!(change["reason"], "reservation", "{change}");
    assert_eq!(change["product"]["stockQuantity"], stock - 2, "{change}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_notification_is_pushed_when_it_is_delivered() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let mut subscriber = shop.subscribe(As::User, None).await;
    shop.notification.wait_for_subscriptions(1).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let scheduled = shop
        .gql(
            As::Admin,
            r#"mutation($at: DateTime!) { scheduleNotification(input: { userId: "user-1", type: SYSTEM, title: "Later", message: "Scheduled" }, at: $at) { id status } }"#,
            json!({ "at": at.to_rfc3339() }),
        )
        .await;
    let id = scheduled.data()["scheduleNotification"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        scheduled.data()["scheduleNotification"]["status"],
        "PENDING"
    );

    // Nothing live at creation; the scheduler's delivery announces it.
    let event = subscriber
        .next_data(EVENT_WAIT)
        .await
        .expect("the delivered notification");
    assert_eq!(event["notificationAdded"]["id"], id.as_str(), "{event}");
    assert!(chrono::Utc::now() >= at, "not before its time");
}

/// Notifications a long absence leaves behind: far more than the router's
/// per-subscription buffer towards the subgraph holds (64) or a client's
/// queue (128), so the replay is a burst the router must pull from the
/// subgraph as the client drains it, rather than cut off.
const LONG_ABSENCE: usize = 10_000;

/// A resume that replays ten thousand stored notifications delivers every
/// one, in order, and then stays live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_after_a_long_absence_replays_everything_and_stays_live() {
    let shop = Shop::spawn_on(EventBus::in_process(), Backend::Sqlite).await;
    let create = |title: String| json!({ "userId": "user-1", "type": "SYSTEM", "title": title, "message": "while you were away" });
    let bulk = "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id } }";

    let mut first = shop.subscribe(As::User, None).await;
    shop.notification.wait_for_subscriptions(1).await;
    let seen = shop
        .gql(
            As::Admin,
            bulk,
            json!({ "inputs": [create("seen".into())] }),
        )
        .await;
    let last_seen = seen.data()["bulkCreateNotifications"][0]["id"]
        .as_str()
        .expect("a notification id")
        .to_owned();
    let delivered = first
        .next_data(EVENT_WAIT)
        .await
        .expect("the first notification");
    assert_eq!(delivered["notificationAdded"]["id"], last_seen.as_str());
    drop(first);

    // Created one batch after the other, so id order is creation order.
    let mut missed = Vec::with_capacity(LONG_ABSENCE);
    for batch in 0..LONG_ABSENCE / 100 {
        let inputs: Vec<Value> = (0..100)
            .map(|n| create(format!("missed {}", batch * 100 + n)))
            .collect();
        let created = shop.gql(As::Admin, bulk, json!({ "inputs": inputs })).await;
        missed.extend(
            created.data()["bulkCreateNotifications"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|created| created["id"].as_str().map(str::to_owned)),
        );
    }
    assert_eq!(missed.len(), LONG_ABSENCE);

    let mut resumed = shop.subscribe(As::User, Some(&last_seen)).await;
    for (n, expected) in missed.iter().enumerate() {
        let event = resumed.next(EVENT_WAIT).await;
        assert_eq!(
            event
                .as_ref()
                .and_then(|event| event["next"]["data"]["notificationAdded"]["id"].as_str()),
            Some(expected.as_str()),
            "replayed notification {n} of {LONG_ABSENCE}: {event:?}"
        );
    }
    shop.notification.wait_for_subscriptions(1).await;
    let live = shop
        .gql(
            As::Admin,
            bulk,
            json!({ "inputs": [create("live".into())] }),
        )
        .await;
    let live_id = live.data()["bulkCreateNotifications"][0]["id"].clone();
    let event = resumed
        .next_data(EVENT_WAIT)
        .await
        .expect("the live notification");
    assert_eq!(event["notificationAdded"]["id"], live_id, "{event}");
}
