//! The router's websockets to subgraphs: many callers' subscriptions on a
//! few sockets, each signed for its own caller, and subscriptions that
//! survive the loss of the replica they were on.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream;
use serde_json::{Value, json};
use shopgraph_core::config::Env;
use shopgraph_core::hop::operation::EXTENSION;
use shopgraph_core::hop::{HopKeyPair, HopSettings, HopSigner};
use shopgraph_core::identity::{Identity, Viewer};
use shopgraph_core::settings::RunMode;

use crate::broker::Broker;
use crate::harness::{RouterProcess, SubgraphProcess, client, migrate, token, wait_until};
use crate::helpers::{Backend, fresh_db};
use crate::live::{NodeSubscriber, RawSocket, Received, ws_url};
use crate::shop::Shop;

const NOTIFICATIONS: &str =
    "subscription($after: String) { notificationAdded(after: $after) { id title } }";
const BULK: &str = "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id userId } }";
const CONNECTIONS: &str = "router_subgraph_subscription_connections";

fn user(n: usize) -> String {
    format!("fan-{n}")
}

fn notification_for(user: &str, title: &str) -> Value {
    json!({ "userId": user, "type": "SYSTEM", "title": title, "message": "upstream multiplexing" })
}

/// A `graphql-transport-ws` connection to `url` signed in as `user`,
/// subscribed to `notificationAdded` (after `after`) under id `s`.
async fn subscribed(url: &str, user: &str, after: Option<&str>) -> RawSocket {
    let mut socket = RawSocket::connect(url).await;
    socket.init(&token(user, false)).await;
    socket
        .send(json!({ "id": "s", "type": "subscribe", "payload": { "query": NOTIFICATIONS, "variables": { "after": after } } }))
        .await;
    socket
}

/// The `notificationAdded` of the next message, or what came instead.
async fn next_notification(socket: &mut RawSocket) -> Result<Value, Received> {
    match socket.receive().await {
        Received::Message(message) if message["type"] == "next" => {
            Ok(message["payload"]["data"]["notificationAdded"].clone())
        }
        other => Err(other),
    }
}

/// A thousand signed-in users, each with a subscription of their own,
/// share one or a few sockets between the router and the notification
/// subgraph (at most four per replica), and each receives their own
/// notification and nobody else's: the subgraph ran every operation as
/// the caller its signature names.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_share_a_few_upstream_sockets_and_see_only_their_own() {
    const USERS: usize = 1000;
    let shop = Shop::spawn(Backend::Sqlite).await;
    let router = RouterProcess::start(&Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &shop.notification,
    ))
    .await;
    let url = router.graphql_url();
    let mut sockets: Vec<RawSocket> = stream::iter(0..USERS)
        .map(|n| {
            let url = url.clone();
            async move { subscribed(&url, &user(n), None).await }
        })
        .buffered(50)
        .collect()
        .await;
    shop.notification.wait_for_subscriptions(USERS).await;
    let sockets_used = router
        .metric(CONNECTIONS, "subgraph=\"notification\"")
        .await;
    assert!(
        (1.0..=4.0).contains(&sockets_used),
        "{USERS} subscribers over {sockets_used} upstream sockets"
    );

    for batch in 0..USERS / 100 {
        let inputs: Vec<Value> = (batch * 100..(batch + 1) * 100)
            .map(|n| notification_for(&user(n), &format!("for {}", user(n))))
            .collect();
        let created = router
            .gql(
                Some(&token("admin-1", true)),
                BULK,
                json!({ "inputs": inputs }),
            )
            .await;
        created.data();
    }
    let received: Vec<Result<Value, Received>> = stream::iter(sockets.iter_mut())
        .map(next_notification)
        .buffered(100)
        .collect()
        .await;
    for (n, notification) in received.into_iter().enumerate() {
        let notification = notification.unwrap_or_else(|other| panic!("{}: {other:?}", user(n)));
        assert_eq!(
            notification["title"],
            format!("for {}", user(n)),
            "{} received another user's notification",
            user(n)
        );
    }
    // And nothing else: one more notification each for two users only.
    let created = router
        .gql(
            Some(&token("admin-1", true)),
            BULK,
            json!({ "inputs": [notification_for(&user(0), "last"), notification_for(&user(999), "last")] }),
        )
        .await;
    created.data();
    for n in [0, 999] {
        let last = next_notification(&mut sockets[n])
            .await
            .expect("the last one");
        assert_eq!(last["title"], "last");
    }
    for n in [1, 500, 998] {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sockets[n].receive())
                .await
                .is_err(),
            "{} received a notification that was not theirs",
            user(n)
        );
    }
}

/// A signed operation on a subgraph's websocket runs as the caller its
/// signature names, once; a forged one (another key), a replayed one or
/// one whose operation was changed is refused with `UNAUTHENTICATED`,
/// and the connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_runs_each_signed_operation_as_its_own_caller_and_refuses_the_rest() {
    let shop = Shop::spawn(Backend::Sqlite).await;
    let ws = format!("{}/ws", shop.notification.graphql_url());
    let mut socket = RawSocket::connect(&ws).await;
    socket
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(
        socket.receive().await,
        Received::Message(json!({ "type": "connection_ack" }))
    );
    let operation = json!({ "query": NOTIFICATIONS, "variables": {} }).to_string();
    let alice = Identity::User(Viewer::from_claims("alice".into(), vec![]).expect("a viewer"));
    let trusted = signer(HopKeyPair::of_this_process());
    let untrusted = signer(&HopKeyPair::generate());
    let sign = |signer: &HopSigner, operation: &str| {
        let (signer, operation, alice) = (signer.clone(), operation.to_owned(), alice.clone());
        async move {
            signer
                .sign_operation("/graphql/ws", &alice, operation, "notification")
                .await
                .expect("signed")
        }
    };
    let subscribe = |id: &str, signed: &shopgraph_core::hop::operation::SignedOperation| json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { notificationAdded { id } }", "extensions": { EXTENSION: signed } } });

    let genuine = sign(&trusted, &operation).await;
    socket.send(subscribe("genuine", &genuine)).await;
    let forged = sign(&untrusted, &operation).await;
    socket.send(subscribe("forged", &forged)).await;
    socket.send(subscribe("replayed", &genuine)).await;
    let mut changed = sign(&trusted, &operation).await;
    changed.operation =
        json!({ "query": "subscription { notificationAdded { id title message } }" }).to_string();
    socket.send(subscribe("changed", &changed)).await;
    let mut refused = HashMap::new();
    for _ in 0..3 {
        match socket.receive().await {
            Received::Message(message) if message["type"] == "error" => {
                refused.insert(
                    message["id"].as_str().unwrap_or_default().to_owned(),
                    message["payload"][0]["extensions"]["code"].clone(),
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    for id in ["forged", "replayed", "changed"] {
        assert_eq!(
            refused.get(id),
            Some(&json!("UNAUTHENTICATED")),
            "{id}: {refused:?}"
        );
    }
    // The genuine one runs as alice: her notification arrives on it.
    shop.notification.wait_for_subscriptions(1).await;
    let created = shop
        .gql(
            crate::helpers::As::Admin,
            BULK,
            json!({ "inputs": [notification_for("alice", "for alice")] }),
        )
        .await;
    created.data();
    match socket.receive().await {
        Received::Message(message) => {
            assert_eq!(message["id"], "genuine");
            assert_eq!(message["type"], "next");
            assert!(
                message["payload"]["extensions"]["resume"].is_string(),
                "{message}"
            );
        }
        other => panic!("expected alice's notification, got {other:?}"),
    }
}

fn signer(pair: &HopKeyPair) -> HopSigner {
    HopSettings::from_env(&Env::from_pairs(pair.env_vars()), RunMode::Serve)
        .and_then(|settings| settings.require_signer())
        .expect("a valid key")
}

/// Two notification replicas on one PostgreSQL store and one broker; the
/// router in front of both. One replica is killed (SIGKILL) while
/// notifications keep coming: the router subscribes again on the other,
/// from the last notification each client received, so every client gets
/// every one of its notifications exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_under_live_subscriptions_loses_and_repeats_nothing() {
    const USERS: usize = 12;
    const WAVES: usize = 40;
    const KILL_AT: usize = 12;
    let broker = Broker::start().await;
    let db = fresh_db(Backend::Postgres).await;
    migrate("notification", &db.url).await;
    let kafka = broker.process_env();
    let kafka: Vec<(&str, &str)> = kafka.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut doomed, survivor) = tokio::join!(
        SubgraphProcess::start("notification", &db.url, &kafka),
        SubgraphProcess::start("notification", &db.url, &kafka),
    );
    let router = RouterProcess::start(&[(
        "NOTIFICATION_SERVICE_URLS",
        format!("{},{}", doomed.graphql_url(), survivor.graphql_url()),
    )])
    .await;
    let url = router.graphql_url();
    let mut sockets = Vec::new();
    for n in 0..USERS {
        sockets.push(subscribed(&url, &user(n), None).await);
    }
    // Both replicas carry some of them.
    let on_doomed = subgraph_subscriptions(&doomed).await;
    let on_survivor = subgraph_subscriptions(&survivor).await;
    assert!(
        on_doomed > 0.0 && on_survivor > 0.0,
        "subscriptions per replica: {on_doomed} and {on_survivor}"
    );

    // Notifications are written on the survivor (straight, as an admin),
    // so the writes themselves never fail; the doomed replica's
    // subscribers see them through the broker until it dies.
    let admin = token("admin-1", true);
    let writer = {
        let survivor_url = survivor.graphql_url();
        tokio::spawn(async move {
            let http = client();
            for wave in 0..WAVES {
                let inputs: Vec<Value> = (0..USERS)
                    .map(|n| notification_for(&user(n), &format!("wave {wave}")))
                    .collect();
                let response: Value = http
                    .post(&survivor_url)
                    .bearer_auth(&admin)
                    .json(&json!({ "query": BULK, "variables": { "inputs": inputs } }))
                    .send()
                    .await
                    .expect("the survivor answers")
                    .json()
                    .await
                    .expect("JSON");
                assert!(response["errors"].is_null(), "{response}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut received: Vec<Vec<String>> = vec![Vec::new(); USERS];
    let mut killed = false;
    while received.iter().any(|titles| titles.len() < WAVES) {
        if !killed && received.iter().all(|titles| titles.len() >= KILL_AT) {
            doomed.kill().await;
            killed = true;
        }
        let next: Vec<(usize, Result<Value, Received>)> = stream::iter(
            sockets
                .iter_mut()
                .enumerate()
                .filter(|(n, _)| received[*n].len() < WAVES),
        )
        .map(|(n, socket)| async move { (n, next_notification(socket).await) })
        .buffer_unordered(USERS)
        .collect()
        .await;
        for (n, notification) in next {
            let notification =
                notification.unwrap_or_else(|other| panic!("{} got {other:?}", user(n)));
            received[n].push(
                notification["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    writer.await.expect("the writer");
    assert!(killed, "the replica was killed mid-stream");
    let expected: Vec<String> = (0..WAVES).map(|wave| format!("wave {wave}")).collect();
    for (n, titles) in received.iter().enumerate() {
        assert_eq!(titles, &expected, "{}: gap, repeat or disorder", user(n));
    }
    for (n, socket) in sockets.iter_mut().enumerate() {
        assert!(
            tokio::time::timeout(Duration::from_millis(200), socket.receive())
                .await
                .is_err(),
            "{} received more than its {WAVES} notifications",
            user(n)
        );
    }
    let resubscribed = router
        .metric(
            "router_subgraph_resubscriptions_total",
            "subgraph=\"notification\"",
        )
        .await;
    assert!(
        resubscribed >= on_doomed,
        "{resubscribed} resubscriptions for {on_doomed} subscriptions on the killed replica"
    );
    wait_until(
        "every subscription is on the survivor",
        Duration::from_secs(10),
        || async { subgraph_subscriptions(&survivor).await == USERS as f64 },
    )
    .await;
}

/// Live subscriptions a subgraph replica holds, from its `/metrics`.
async fn subgraph_subscriptions(replica: &SubgraphProcess) -> f64 {
    replica.metric("subgraph_live_subscriptions", "").await
}

/// The subgraph's websocket server speaks `graphql-transport-ws` as the
/// reference server does: a broken message, a subscribe before the ack, a
/// second `connection_init` and a repeated id each close the socket with
/// the protocol's code; ping is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_websocket_closes_on_protocol_errors_with_the_protocols_codes() {
    let shop = Shop::spawn(Backend::Sqlite).await;
    let ws = format!("{}/ws", shop.notification.graphql_url());
    let subscribe =
        |id: &str| json!({ "id": id, "type": "subscribe", "payload": { "query": NOTIFICATIONS } });

    let mut early = RawSocket::connect(&ws).await;
    early.send(subscribe("1")).await;
    assert_eq!(
        early.receive().await,
        Received::Closed(4401, "Unauthorized".into())
    );

    let mut garbled = RawSocket::connect(&ws).await;
    garbled.send_text("{ not json").await;
    assert_eq!(
        garbled.receive().await,
        Received::Closed(4400, "Invalid message received".into())
    );

    let user = token("user-1", false);
    let mut twice = RawSocket::connect(&ws).await;
    twice.init(&user).await;
    twice
        .send(json!({ "type": "ping", "payload": { "n": 1 } }))
        .await;
    assert_eq!(
        twice.receive().await,
        Received::Message(json!({ "type": "pong", "payload": { "n": 1 } }))
    );
    twice
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(
        twice.receive().await,
        Received::Closed(4429, "Too many initialisation requests".into())
    );

    let mut repeated = RawSocket::connect(&ws).await;
    repeated.init(&user).await;
    repeated.send(subscribe("same")).await;
    repeated.send(subscribe("same")).await;
    assert_eq!(
        repeated.receive().await,
        Received::Closed(4409, "Subscriber for same already exists".into())
    );
}

/// Two routers over the same subgraphs, standing for one address behind a
/// load balancer. The router a client is connected to is killed while
/// notifications keep coming; the client (graphql-ws, retrying with
/// `after` = the last notification it saw) reconnects to the other and
/// misses nothing, repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_of_a_killed_router_resumes_on_the_other_and_misses_nothing() {
    const COUNT: usize = 60;
    const KILL_AT: usize = 20;
    let shop = Shop::spawn(Backend::Sqlite).await;
    let urls = Shop::urls(
        &shop.product,
        &shop.basket,
        &shop.payment,
        &shop.notification,
    );
    let (mut first, second) =
        tokio::join!(RouterProcess::start(&urls), RouterProcess::start(&urls));
    let mut subscriber = NodeSubscriber::resuming(
        &[ws_url(&first.graphql_url()), ws_url(&second.graphql_url())],
        &token("user-1", false),
        NOTIFICATIONS,
    )
    .await;
    assert_eq!(
        subscriber.next(Duration::from_secs(10)).await,
        Some(json!({ "connected": 1 }))
    );
    shop.notification.wait_for_subscriptions(1).await;

    let writer = {
        let router = second.graphql_url();
        tokio::spawn(async move {
            let http = client();
            let mut ids = Vec::with_capacity(COUNT);
            for n in 0..COUNT {
                let response: Value = http
                    .post(&router)
                    .bearer_auth(token("admin-1", true))
                    .json(&json!({ "query": BULK, "variables": { "inputs": [notification_for("user-1", &format!("#{n}"))] } }))
                    .send()
                    .await
                    .expect("the second router answers")
                    .json()
                    .await
                    .expect("JSON");
                ids.push(
                    response["data"]["bulkCreateNotifications"][0]["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{response}"))
                        .to_owned(),
                );
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            ids
        })
    };
    let mut received = Vec::new();
    let mut connections = 1;
    while received.len() < COUNT {
        if received.len() == KILL_AT && connections == 1 {
            first.kill().await;
        }
        let line = subscriber
            .next(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("stalled after {} notifications", received.len()));
        if let Some(n) = line.get("connected") {
            connections = n.as_u64().unwrap_or_default();
            continue;
        }
        let id = line["next"]["data"]["notificationAdded"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not a notification: {line}"))
            .to_owned();
        received.push(id);
    }
    let created = writer.await.expect("the writer");
    assert_eq!(connections, 2, "the client reconnected once");
    assert_eq!(
        received, created,
        "a gap, a repeat or disorder across the router kill"
    );
    assert_eq!(
        subscriber.next(Duration::from_millis(300)).await,
        None,
        "nothing more"
    );
}
