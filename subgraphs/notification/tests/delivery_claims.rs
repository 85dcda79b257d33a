//! Delivery claims on the notification store's production backend
//! (PostgreSQL): several replicas' schedulers over one database hand each
//! due notification to the gateway once, retry each failure once per
//! round, and a claim left by a replica that died lapses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use notification_migration::{Migrator, MigratorTrait};
use notification_subgraph::domain::{
    Channel, Deliverer, DeliveryError, NewNotification, Notification, NotificationError,
    NotificationType, Priority, Status, now,
};
use notification_subgraph::service::{Notifications, Policy};
use notification_subgraph::store::NotificationStore;
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use uuid::Uuid;

/// The delivery gateway every replica posts to: what it received.
#[derive(Default)]
struct Gateway {
    received: Mutex<Vec<Uuid>>,
    failing: AtomicBool,
}

impl Gateway {
    /// How many times each notification reached the gateway.
    fn counts(&self) -> HashMap<Uuid, usize> {
        let mut counts = HashMap::new();
        for id in self.received.lock().unwrap().iter() {
            *counts.entry(*id).or_default() += 1;
        }
        counts
    }
}

impl Deliverer for Gateway {
    fn deliver<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            // A gateway call takes a while: the window in which another
            // replica would send the same notification.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.received.lock().unwrap().push(notification.id);
            if self.failing.load(Ordering::SeqCst) {
                Err(DeliveryError("gateway answered HTTP 503".into()))
            } else {
                Ok(())
            }
        })
    }
}

/// One replica's use cases over its own pool.
async fn replica(url: &str, gateway: &Arc<Gateway>) -> Notifications {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let store = NotificationStore::new(db, RelayWaker::default());
    let policy = Policy {
        max_retries: 3,
        retry_backoff: Duration::ZERO,
        ttl: Duration::from_secs(3600),
        claim_timeout: Duration::from_secs(1),
    };
    Notifications::new(store, gateway.clone(), policy)
}

/// A store with `count` e-mails due now, and their ids.
async fn due_emails(temp: &TempDatabase, count: usize) -> (NotificationStore, Vec<Uuid>) {
    let db = sea_orm::Database::connect(&temp.url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let store = NotificationStore::new(db, RelayWaker::default());
    let due = now() - chrono::Duration::seconds(1);
    let news = (0..count)
        .map(|n| NewNotification {
            user_id: format!("user-{n}"),
            kind: NotificationType::Promotion,
            title: "Spring sale".into(),
            message: "Everything is 10 % off until Sunday.".into(),
            data: None,
            channel: Channel::Email,
            priority: Priority::Normal,
            scheduled_at: Some(due),
            expires_at: None,
        })
        .collect();
    let stored = store
        .insert(news, now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    (store, stored.into_iter().map(|n| n.id).collect())
}

/// Every replica's scheduler tick at the same moment; (delivered, retried)
/// summed over them.
async fn tick_all(replicas: &[Notifications]) -> (usize, usize) {
    join_all(replicas.iter().map(Notifications::run_due))
        .await
        .into_iter()
        .map(Result::unwrap)
        .fold((0, 0), |(d, r), (dd, rr)| (d + dd, r + rr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_schedulers_deliver_each_due_notification_once() {
    let temp = TempDatabase::create(TempBackend::Postgres).await;
    let (store, ids) = due_emails(&temp, 120).await;
    let gateway = Arc::new(Gateway::default());
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(replica(&temp.url, &gateway).await);
    }

    let mut delivered = 0;
    for _ in 0..3 {
        delivered += tick_all(&replicas).await.0;
    }

    assert_eq!(
        delivered,
        ids.len(),
        "each counted by the one replica that sent it"
    );
    let counts = gateway.counts();
    assert_eq!(counts.len(), ids.len());
    assert!(counts.values().all(|&n| n == 1), "sent twice: {counts:?}");
    for id in ids {
        let stored = store.get(id).await.unwrap().unwrap();
        assert_eq!(stored.status, Status::Sent);
        assert_eq!(stored.retry_count, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_schedulers_retry_each_failure_once_per_round() {
    let temp = TempDatabase::create(TempBackend::Postgres).await;
    let (store, ids) = due_emails(&temp, 40).await;
    let gateway = Arc::new(Gateway::default());
    gateway.failing.store(true, Ordering::SeqCst);
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(replica(&temp.url, &gateway).await);
    }

    assert_eq!(tick_all(&replicas).await, (ids.len(), 0));
    for id in &ids {
        assert_eq!(
            store.get(*id).await.unwrap().unwrap().status,
            Status::Failed
        );
    }
    gateway.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(tick_all(&replicas).await, (0, ids.len()));

    let counts = gateway.counts();
    assert!(
        counts.values().all(|&n| n == 2),
        "one attempt and one retry each: {counts:?}"
    );
    for id in ids {
        let stored = store.get(id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.retry_count), (Status::Sent, 1));
    }
}

#[tokio::test]
async fn a_claim_left_by_a_dead_replica_lapses() {
    let temp = TempDatabase::create(TempBackend::Postgres).await;
    let (store, ids) = due_emails(&temp, 1).await;
    let id = ids[0];
    // A replica claimed it, then died before delivering.
    let at = now();
    assert!(
        store
            .claim(
                id,
                Status::Pending,
                "dead-replica",
                at,
                at + chrono::Duration::seconds(1)
            )
            .await
            .unwrap()
    );
    let gateway = Arc::new(Gateway::default());
    let alive = replica(&temp.url, &gateway).await;

    assert_eq!(
        alive.run_due().await.unwrap(),
        (0, 0),
        "the claim is still live"
    );
    assert!(matches!(
        alive.send(&id.to_string()).await,
        Err(NotificationError::BeingDelivered(_))
    ));
    assert!(gateway.counts().is_empty());

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(alive.run_due().await.unwrap(), (1, 0));
    assert_eq!(gateway.counts().get(&id), Some(&1));
    assert_eq!(store.get(id).await.unwrap().unwrap().status, Status::Sent);
    // Sent: nothing left to claim, for the scheduler or an admin.
    assert_eq!(alive.run_due().await.unwrap(), (0, 0));
    assert!(matches!(
        alive.send(&id.to_string()).await,
        Err(NotificationError::WrongStatus {
            current: Status::Sent,
            ..
        })
    ));
}
