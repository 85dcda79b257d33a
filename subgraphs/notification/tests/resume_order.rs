//! `notificationAdded` under concurrent creations for one user, on every
//! store the notification subgraph runs on (SQLite, PostgreSQL, MariaDB):
//! the real store, outbox relay, in-process bus, live feed and GraphQL
//! subscription of one replica.
//!
//! * Numbers follow commit order: with 160 notifications created at once,
//!   the outbox (commit order) and the live stream carry numbers 1..=160
//!   in order, and a subscriber sees each one once, in that order.
//! * A resume is exact: a client that stops after some notification and
//!   resumes with `after: <its id>` while creations go on receives every
//!   later one once, in the order the live stream published them. (Ids are
//!   taken before commit, so an id cursor loses some and repeats others.)

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Request, Variables};
use futures::StreamExt;
use notification_migration::{Migrator, MigratorTrait};
use notification_subgraph::delivery::GatewayDeliverer;
use notification_subgraph::domain::{Channel, NewNotification, NotificationType, Priority};
use notification_subgraph::graphql::{self, NotificationSchema};
use notification_subgraph::service::{Notifications, Policy};
use notification_subgraph::store::NotificationStore;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use shopgraph_core::identity::{Identity, Viewer};
use subgraph_kit::db::Database;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::events::outbox::{Relay, RelaySettings, RelayWaker};
use subgraph_kit::events::{CloudEvent, EventBus, Topic};
use subgraph_kit::settings::{DatabaseSettings, GraphqlSettings};
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const USER: &str = "resume-user";
const WAIT: Duration = Duration::from_secs(20);
const SUBSCRIBE: &str = "subscription($after: String) { notificationAdded(after: $after) { id } }";

/// One notification replica over a fresh store: use cases, relay, live
/// feed and schema; everything stops when dropped.
struct Replica {
    _temp: TempDatabase,
    db: DatabaseConnection,
    bus: EventBus,
    store: NotificationStore,
    notifications: Notifications,
    feed: LiveFeed,
    schema: NotificationSchema,
    stop: CancellationToken,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Replica {
    async fn start(backend: TempBackend) -> Self {
        Self::start_with(backend, true).await
    }

    /// A replica whose outbox relay runs only if `relay` (without it, the
    /// test publishes the outbox's events itself).
    async fn start_with(backend: TempBackend, relay: bool) -> Self {
        let temp = TempDatabase::create(backend).await;
        let settings = DatabaseSettings {
            url: temp.url.clone(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        };
        let db = Database::connect(&settings, "notification")
            .await
            .expect("store opens")
            .conn;
        Migrator::up(&db, None).await.expect("migrations apply");
        let bus = EventBus::in_process();
        let waker = RelayWaker::default();
        let store = NotificationStore::new(db.clone(), waker.clone());
        let notifications = Notifications::new(
            store.clone(),
            Arc::new(GatewayDeliverer::new(None, Duration::from_secs(1))),
            Policy {
                max_retries: 3,
                retry_backoff: Duration::from_secs(30),
                ttl: Duration::from_secs(3600),
                claim_timeout: Duration::from_secs(60),
            },
        );
        let (feed, forwarder) = LiveFeed::start(&bus, vec![Topic::Notification], 4096)
            .await
            .expect("live feed starts");
        let stop = CancellationToken::new();
        tokio::spawn(forwarder.run(stop.clone()));
        if relay {
            let relay = Relay::new(
                "notification",
                db.clone(),
                bus.clone(),
                waker,
                RelaySettings {
                    poll_interval: Duration::from_millis(50),
                    ..RelaySettings::default()
                },
            );
            tokio::spawn(relay.run(stop.clone()));
        }
        let limits = GraphqlSettings {
            max_depth: 16,
            max_complexity: 1000,
            introspection: false,
            graphiql: false,
        };
        let schema = graphql::schema(notifications.clone(), &limits, feed.clone());
        Self {
            _temp: temp,
            db,
            bus,
            store,
            notifications,
            feed,
            schema,
            stop,
        }
    }

    /// Creates `waves` × `width` in-app notifications for [`USER`], each
    /// wave's at once; returns when all are stored.
    fn create_concurrently(&self, width: usize, waves: usize) -> JoinHandle<()> {
        let notifications = self.notifications.clone();
        tokio::spawn(async move {
            let writers = (0..width).map(|w| {
                let notifications = notifications.clone();
                tokio::spawn(async move {
                    for n in 0..waves {
                        notifications
                            .create(new_notification(&format!("writer {w}, #{n}")))
                            .await
                            .expect("a notification is created");
                    }
                })
            });
            for writer in futures::future::join_all(writers).await {
                writer.expect("writer task");
            }
        })
    }

    /// Subscribes as [`USER`] (after `after`, if given); the stream runs in
    /// a task until the returned handle is aborted. Returns once the
    /// subscription follows the live feed.
    async fn subscribe(&self, after: Option<&str>) -> Subscriber {
        let following = self.feed.subscriptions();
        let request = Request::new(SUBSCRIBE)
            .variables(Variables::from_json(json!({ "after": after })))
            .data(Identity::User(Viewer {
                user_id: USER.into(),
                roles: Vec::new(),
            }));
        let mut stream = self.schema.execute_stream(request);
        let (sender, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(response) = stream.next().await {
                let item = if response.errors.is_empty() {
                    let data = response.data.into_json().expect("JSON data");
                    Ok(data["notificationAdded"]["id"]
                        .as_str()
                        .expect("an id")
                        .to_owned())
                } else {
                    Err(format!("{:?}", response.errors))
                };
                if sender.send(item).is_err() {
                    return;
                }
            }
        });
        tokio::time::timeout(WAIT, async {
            while self.feed.subscriptions() <= following {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the subscription follows the live feed");
        Subscriber { received, task }
    }

    /// Waits until exactly `count` subscriptions follow the live feed.
    async fn wait_for_subscriptions(&self, count: usize) {
        tokio::time::timeout(WAIT, async {
            while self.feed.subscriptions() != count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the subscriptions follow the live feed");
    }

    /// The sequence numbers of the outbox's `NotificationCreated` rows, in
    /// outbox (commit) order.
    async fn outbox_numbers(&self) -> Vec<i64> {
        self.outbox_events()
            .await
            .iter()
            .map(|event| {
                let data: Value = event.data().expect("JSON data");
                data["seq"].as_i64().expect("a sequence number")
            })
            .collect()
    }

    /// The outbox's events, in outbox (commit) order.
    async fn outbox_events(&self) -> Vec<CloudEvent> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT payload FROM event_outbox ORDER BY seq",
            ))
            .await
            .expect("outbox rows");
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("", "payload").expect("payload");
                CloudEvent::from_bytes(payload.as_bytes()).expect("a CloudEvent")
            })
            .collect()
    }
}

/// A running subscription: the ids it delivered, or its errors.
struct Subscriber {
    received: mpsc::UnboundedReceiver<Result<String, String>>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// The next `count` ids, failing on an error or a wait over [`WAIT`].
    async fn take(&mut self, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            let next = tokio::time::timeout(WAIT, self.received.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} notifications arrived", ids.len()))
                .expect("the subscription is running");
            ids.push(next.expect("a notification, not an error"));
        }
        ids
    }

    /// Whatever arrives within `within`.
    async fn rest(&mut self, within: Duration) -> Vec<Result<String, String>> {
        let mut rest = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.received.recv()).await {
            rest.push(item);
        }
        rest
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn new_notification(title: &str) -> NewNotification {
    NewNotification {
        user_id: USER.into(),
        kind: NotificationType::System,
        title: title.into(),
        message: "Something happened.".into(),
        data: None,
        channel: Channel::InApp,
        priority: Priority::Normal,
        scheduled_at: None,
        expires_at: None,
    }
}

fn assert_unique(ids: &[String], what: &str) {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "{what} repeats a notification");
}

/// 160 notifications for one user, 16 at a time: numbers 1..=160 in
/// commit order, and one subscriber sees each once, in that order.
async fn numbers_follow_commit_order(backend: TempBackend) {
    let replica = Replica::start(backend).await;
    let mut subscriber = replica.subscribe(None).await;
    replica
        .create_concurrently(16, 10)
        .await
        .expect("creations");
    let seen = subscriber.take(160).await;
    assert_unique(&seen, "the live stream");
    let expected: Vec<i64> = (1..=160).collect();
    assert_eq!(
        replica.outbox_numbers().await,
        expected,
        "the outbox (commit order) carries each number once, in order"
    );
    // The subscriber's order is number order: read each id's number back.
    let mut numbers = Vec::with_capacity(seen.len());
    for id in &seen {
        let id = uuid::Uuid::parse_str(id).expect("a UUID");
        let stored = replica
            .store
            .get(id)
            .await
            .expect("the store answers")
            .expect("the notification is stored");
        numbers.push(stored.seq.expect("an announced notification has a number"));
    }
    assert_eq!(
        numbers, expected,
        "the subscriber sees numbers 1..=160 in order"
    );
    let extra = subscriber.rest(Duration::from_millis(300)).await;
    assert!(extra.is_empty(), "nothing more: {extra:?}");
}

/// A client that stops after the 40th of 240 notifications created 12 at
/// a time, and resumes with `after` while creations go on, receives the
/// other 200 exactly once, in the order the live stream published them.
async fn a_resume_during_concurrent_creations_is_exact(backend: TempBackend) {
    let replica = Replica::start(backend).await;
    // The order everything was published in, as a client that never left
    // sees it.
    let mut witness = replica.subscribe(None).await;
    let mut client = replica.subscribe(None).await;
    let creating = replica.create_concurrently(12, 20);

    let before = client.take(40).await;
    let last_seen = before.last().expect("40 ids").clone();
    drop(client);
    replica.wait_for_subscriptions(1).await;
    let mut resumed = replica.subscribe(Some(&last_seen)).await;

    let published = witness.take(240).await;
    creating.await.expect("creations");
    assert_unique(&published, "the live stream");
    assert_eq!(
        before,
        published[..40],
        "the first subscription followed the live stream"
    );
    let after = resumed.take(200).await;
    let missing: Vec<&String> = published[40..]
        .iter()
        .filter(|id| !after.contains(id))
        .collect();
    let repeated: Vec<&String> = after.iter().filter(|id| before.contains(id)).collect();
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "resumed after {last_seen}: {} missing {missing:?}, {} repeated {repeated:?}",
        missing.len(),
        repeated.len()
    );
    assert_eq!(after, published[40..], "in publication order");
    let extra = resumed.rest(Duration::from_millis(300)).await;
    assert!(extra.is_empty(), "nothing more after the resume: {extra:?}");
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn numbers_follow_commit_order() {
        super::numbers_follow_commit_order(TempBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_resume_during_concurrent_creations_is_exact() {
        super::a_resume_during_concurrent_creations_is_exact(TempBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn existing_notifications_are_numbered_in_id_order() {
        super::existing_notifications_are_numbered_in_id_order(TempBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_live_stream_with_a_hole_is_filled_from_the_store() {
        super::a_live_stream_with_a_hole_is_filled_from_the_store(TempBackend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn numbers_follow_commit_order() {
        super::numbers_follow_commit_order(TempBackend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_resume_during_concurrent_creations_is_exact() {
        super::a_resume_during_concurrent_creations_is_exact(TempBackend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn existing_notifications_are_numbered_in_id_order() {
        super::existing_notifications_are_numbered_in_id_order(TempBackend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_live_stream_with_a_hole_is_filled_from_the_store() {
        super::a_live_stream_with_a_hole_is_filled_from_the_store(TempBackend::Postgres).await;
    }
}

mod mariadb {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn numbers_follow_commit_order() {
        super::numbers_follow_commit_order(TempBackend::MariaDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_resume_during_concurrent_creations_is_exact() {
        super::a_resume_during_concurrent_creations_is_exact(TempBackend::MariaDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn existing_notifications_are_numbered_in_id_order() {
        super::existing_notifications_are_numbered_in_id_order(TempBackend::MariaDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_live_stream_with_a_hole_is_filled_from_the_store() {
        super::a_live_stream_with_a_hole_is_filled_from_the_store(TempBackend::MariaDb).await;
    }
}

/// A live stream that repeats events or skips numbers (a bus handing
/// them over out of order) still gives the subscriber every number once,
/// in order: the skipped ones are read from the store.
async fn a_live_stream_with_a_hole_is_filled_from_the_store(backend: TempBackend) {
    let replica = Replica::start_with(backend, false).await;
    let mut stored = Vec::new();
    for n in 1..=4 {
        stored.push(
            replica
                .notifications
                .create(new_notification(&format!("#{n}")))
                .await
                .expect("created")
                .id
                .to_string(),
        );
    }
    let events = replica.outbox_events().await;
    assert_eq!(events.len(), 4, "nothing published yet");
    let mut subscriber = replica.subscribe(None).await;
    // 1, 3 (2 missing), 2 again, 3 again, 4.
    for index in [0, 2, 1, 2, 3] {
        replica
            .bus
            .publish(Topic::Notification, &events[index])
            .await
            .expect("published");
    }
    assert_eq!(subscriber.take(4).await, stored, "1, 2, 3, 4, each once");
    let extra = subscriber.rest(Duration::from_millis(300)).await;
    assert!(extra.is_empty(), "nothing more: {extra:?}");
}

/// The migration numbers notifications stored before it in id order, per
/// user, leaves scheduled ones unnumbered until they are sent, and new
/// notifications continue after the highest number.
async fn existing_notifications_are_numbered_in_id_order(backend: TempBackend) {
    let replica = Replica::start(backend).await;
    let mut mine = Vec::new();
    for n in 0..5 {
        mine.push(
            replica
                .notifications
                .create(new_notification(&format!("mine #{n}")))
                .await
                .expect("created")
                .id,
        );
        let mut theirs = new_notification(&format!("theirs #{n}"));
        theirs.user_id = "someone-else".into();
        replica.notifications.create(theirs).await.expect("created");
    }
    let mut later = new_notification("later");
    later.scheduled_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let later = replica.notifications.create(later).await.expect("created");
    assert_eq!(
        later.seq, None,
        "a scheduled notification waits for its number"
    );

    // Back to the schema before numbering, then forward again.
    Migrator::down(&replica.db, Some(1))
        .await
        .expect("the migration reverts");
    Migrator::up(&replica.db, None)
        .await
        .expect("the migration applies over existing rows");

    let numbered = replica
        .store
        .announced_after(USER, 0, None, 100)
        .await
        .expect("numbered notifications");
    let ids: Vec<_> = numbered.iter().map(|n| n.id).collect();
    let mut by_id = mine.clone();
    by_id.sort();
    assert_eq!(
        ids, by_id,
        "numbered in id order, the scheduled one left out"
    );
    let seqs: Vec<_> = numbered.iter().map(|n| n.seq).collect();
    assert_eq!(seqs, (1..=5).map(Some).collect::<Vec<_>>());
    let theirs = replica
        .store
        .announced_after("someone-else", 0, None, 100)
        .await
        .expect("the other user's");
    assert_eq!(theirs.len(), 5, "each user counts from 1");
    assert_eq!(theirs.last().and_then(|n| n.seq), Some(5));

    let next = replica
        .notifications
        .create(new_notification("after the migration"))
        .await
        .expect("created");
    assert_eq!(next.seq, Some(6), "numbering continues after the highest");
    let sent = replica
        .notifications
        .send(&later.id.to_string())
        .await
        .expect("the scheduled one is sent now");
    assert_eq!(sent.id, later.id);
    let stored = replica
        .store
        .get(later.id)
        .await
        .expect("the store answers")
        .expect("stored");
    assert_eq!(stored.seq, Some(7), "a scheduled one is numbered when sent");
}
