//! The notification use cases.
//!
//! [`Notifications::create`] is the creation path of GraphQL (admins). A new
//! notification is stored, then delivered at once unless it is scheduled;
//! the scheduler ([`Notifications::run_due`]) delivers scheduled ones when
//! due and retries failed ones while retries are left. Every delivery
//! first claims the notification (see [`crate::store`]), so several
//! replicas' schedulers hand each one to its channel once.
//!
//! The event reactions ([`crate::events::incoming`]) do not come through
//! here: they store in-app notifications with
//! [`NotificationStore::insert_in`], inside the consumer's transaction that
//! also records the event as processed.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use shopgraph_core::identity::Viewer;
use subgraph_kit::pagination::{decode_cursor, encode_cursor, page_size};
use uuid::Uuid;

use crate::domain::{
    Deliverer, NewNotification, Notification, NotificationError, NotificationPatch, Stats, Status,
    now,
};
use crate::store::{InboxFilter, NotificationCursor, NotificationStore};

/// Most notifications one bulk request may create.
pub const MAX_BULK: usize = 100;
/// Most notifications one scheduler tick delivers or retries.
const TICK_BATCH: u64 = 200;

/// Delivery and lifetime settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Retries of a failed delivery (`DEFAULT_RETRY_ATTEMPTS`).
    pub max_retries: i32,
    /// Wait before retrying a failure automatically (`NOTIFICATION_RETRY_BACKOFF`).
    pub retry_backoff: Duration,
    /// Lifetime of a notification without `expiresAt` (`NOTIFICATION_TTL`).
    pub ttl: Duration,
    /// How long a delivery claim holds (`NOTIFICATION_CLAIM_TIMEOUT`): a
    /// replica that dies mid-delivery leaves the notification to the
    /// others after this. Longer than a delivery may take.
    pub claim_timeout: Duration,
}

/// A page of notifications.
#[derive(Debug, Clone)]
pub struct NotificationPage {
    /// `(cursor, notification)`, newest first.
    pub items: Vec<(String, Notification)>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Where a resumed `notificationAdded` stands once its backlog is read.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The notifications the client missed, oldest (lowest number) first.
    pub backlog: Vec<Notification>,
    /// The user's sequence number the backlog ends at: live events at or
    /// below it are repeats.
    pub last_seq: i64,
}

/// Notification operations over one store and one deliverer.
#[derive(Clone)]
pub struct Notifications {
    store: NotificationStore,
    deliverer: Arc<dyn Deliverer>,
    policy: Policy,
    /// This replica's name on its delivery claims.
    claimant: Arc<str>,
}

impl Notifications {
    /// Use cases over `store`, delivering through `deliverer`.
    pub fn new(store: NotificationStore, deliverer: Arc<dyn Deliverer>, policy: Policy) -> Self {
        Self {
            store,
            deliverer,
            policy,
            claimant: Uuid::new_v4().simple().to_string().into(),
        }
    }

    /// The retry limit in force.
    pub fn max_retries(&self) -> i32 {
        self.policy.max_retries
    }

    /// Creates one notification and delivers it unless it is scheduled.
    pub async fn create(&self, new: NewNotification) -> Result<Notification, NotificationError> {
        let mut created = self.create_many(vec![new]).await?;
        created
            .pop()
            .ok_or_else(|| NotificationError::NotFound("just created".into()))
    }

    /// Creates several notifications atomically (all or none), then
    /// delivers those not scheduled.
    pub async fn create_many(
        &self,
        news: Vec<NewNotification>,
    ) -> Result<Vec<Notification>, NotificationError> {
        if news.is_empty() || news.len() > MAX_BULK {
            return Err(NotificationError::invalid(
                "inputs",
                format!("must hold between 1 and {MAX_BULK} notifications"),
            ));
        }
        let at = now();
        let news = news
            .into_iter()
            .map(|n| n.validate(at))
            .collect::<Result<Vec<_>, _>>()?;
        let expiry =
            at + chrono::Duration::from_std(self.policy.ttl).unwrap_or(chrono::Duration::MAX);
        let stored = self.store.insert(news, expiry).await?;
        let mut result = Vec::with_capacity(stored.len());
        for notification in stored {
            result.push(
                if notification.scheduled_at.is_some() || notification.status == Status::Sent {
                    notification
                } else {
                    self.deliver(notification).await?
                },
            );
        }
        Ok(result)
    }

    /// What a `notificationAdded(after: <id>)` replays before going live:
    /// the user's notifications announced after that one, in commit
    /// order, and the sequence number the live stream continues after
    /// (see [`NotificationStore::resume_point`] for an id that is not the
    /// user's).
    pub async fn resume(&self, user_id: &str, after: &str) -> Result<Resume, NotificationError> {
        let after = Uuid::parse_str(after.trim())
            .map_err(|_| NotificationError::invalid("after", "must be a notification id"))?;
        let mut last_seq = self.store.resume_point(user_id, after).await?;
        let mut backlog = Vec::new();
        loop {
            let page = self
                .store
                .announced_after(user_id, last_seq, None, TICK_BATCH)
                .await?;
            let full = page.len() as u64 == TICK_BATCH;
            if let Some(seq) = page.last().and_then(|n| n.seq) {
                last_seq = seq;
            }
            backlog.extend(page);
            if !full {
                return Ok(Resume { backlog, last_seq });
            }
        }
    }

    /// The user's notifications numbered strictly between `after` and
    /// `before`, in order: what a live stream that jumped from `after` to
    /// `before` did not carry (see `notificationAdded`).
    pub async fn announced_between(
        &self,
        user_id: &str,
        after: i64,
        before: i64,
    ) -> Result<Vec<Notification>, NotificationError> {
        let mut found = Vec::new();
        let mut from = after;
        loop {
            let page = self
                .store
                .announced_after(user_id, from, Some(before), TICK_BATCH)
                .await?;
            let full = page.len() as u64 == TICK_BATCH;
            if let Some(seq) = page.last().and_then(|n| n.seq) {
                from = seq;
            }
            found.extend(page);
            if !full {
                return Ok(found);
            }
        }
    }

    /// Delivers a PENDING or FAILED notification now (admin).
    pub async fn send(&self, id: &str) -> Result<Notification, NotificationError> {
        let notification = self.find(id).await?;
        match notification.status {
            Status::Pending | Status::Failed => self.deliver(notification).await,
            current => Err(NotificationError::WrongStatus {
                current,
                action: "send",
            }),
        }
    }

    /// Retries a FAILED notification, counting the attempt (admin).
    pub async fn retry(&self, id: &str) -> Result<Notification, NotificationError> {
        let notification = self.find(id).await?;
        if notification.status != Status::Failed {
            return Err(NotificationError::WrongStatus {
                current: notification.status,
                action: "retry",
            });
        }
        self.claim_or_explain(&notification, "retry").await?;
        if !self
            .store
            .count_retry(notification.id, self.policy.max_retries)
            .await?
        {
            self.store.release(notification.id, &self.claimant).await?;
            let current = self.reload(notification.id).await?;
            return Err(if current.status == Status::Failed {
                NotificationError::RetryLimit {
                    id: id.to_owned(),
                    attempts: current.retry_count,
                }
            } else {
                NotificationError::WrongStatus {
                    current: current.status,
                    action: "retry",
                }
            });
        }
        let notification = self.reload(notification.id).await?;
        self.deliver_claimed(notification).await
    }

    /// Marks one of the caller's delivered notifications read.
    pub async fn mark_read(
        &self,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Notification, NotificationError> {
        let notification = self.owned(viewer, id).await?;
        match notification.status {
            Status::Read => Ok(notification),
            Status::Sent => {
                self.store.mark_read(notification.id).await?;
                self.reload(notification.id).await
            }
            current => Err(NotificationError::WrongStatus {
                current,
                action: "mark read",
            }),
        }
    }

    /// Marks all the caller's delivered notifications read; returns how many.
    pub async fn mark_all_read(&self, viewer: &Viewer) -> Result<u64, NotificationError> {
        self.store.mark_all_read(&viewer.user_id).await
    }

    /// Changes a notification's content (admin).
    pub async fn update(
        &self,
        id: &str,
        patch: NotificationPatch,
    ) -> Result<Notification, NotificationError> {
        let patch = patch.validate(now())?;
        let notification = self.find(id).await?;
        self.store.update(notification.id, patch).await?;
        self.reload(notification.id).await
    }

    /// Deletes one of the caller's notifications (any, for admins).
    pub async fn delete(&self, viewer: &Viewer, id: &str) -> Result<(), NotificationError> {
        let notification = self.visible(viewer, id).await?;
        if self.store.delete(notification.id).await? {
            Ok(())
        } else {
            Err(NotificationError::NotFound(id.to_owned()))
        }
    }

    /// A notification its owner or an admin may see.
    pub async fn get(&self, viewer: &Viewer, id: &str) -> Result<Notification, NotificationError> {
        self.visible(viewer, id).await
    }

    /// A page of `user_id`'s notifications, newest first.
    pub async fn inbox(
        &self,
        user_id: &str,
        filter: InboxFilter,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<NotificationPage, NotificationError> {
        let limit = page_size(first)?;
        let after = after.map(decode_cursor::<NotificationCursor>).transpose()?;
        let (items, has_next_page) = self.store.inbox(user_id, &filter, after, limit).await?;
        Ok(NotificationPage {
            items: items
                .into_iter()
                .map(|n| {
                    let cursor = encode_cursor(&NotificationCursor {
                        created_at: n.created_at,
                        id: n.id,
                    });
                    (cursor, n)
                })
                .collect(),
            has_next_page,
        })
    }

    /// Delivered, unread notifications of `user_id`.
    pub async fn unread_count(&self, user_id: &str) -> Result<u64, NotificationError> {
        self.store.unread_count(user_id).await
    }

    /// Counts of `user_id`'s notifications by status and type.
    pub async fn stats(&self, user_id: &str) -> Result<Stats, NotificationError> {
        self.store.stats(user_id).await
    }

    /// Deletes expired notifications; returns how many.
    pub async fn cleanup_expired(&self) -> Result<u64, NotificationError> {
        self.store.delete_expired(now()).await
    }

    /// One scheduler tick: deliver what is due, retry what failed long
    /// enough ago, each only once this replica has claimed it (another
    /// replica's scheduler may be at the same rows). Returns (delivered or
    /// attempted, retried) by this replica.
    pub async fn run_due(&self) -> Result<(usize, usize), NotificationError> {
        let at = now();
        let due = self.store.due(at, TICK_BATCH).await?;
        let mut delivered = 0;
        for notification in due {
            if self.claim(&notification).await? {
                delivered += 1;
                self.deliver_claimed(notification).await?;
            }
        }
        let backoff =
            chrono::Duration::from_std(self.policy.retry_backoff).unwrap_or(chrono::Duration::MAX);
        let idle_since = at
            .checked_sub_signed(backoff)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let failed = self
            .store
            .retryable(self.policy.max_retries, idle_since, at, TICK_BATCH)
            .await?;
        let mut retried = 0;
        for notification in failed {
            if !self.claim(&notification).await? {
                continue;
            }
            if self
                .store
                .count_retry(notification.id, self.policy.max_retries)
                .await?
            {
                retried += 1;
                let notification = self.reload(notification.id).await?;
                self.deliver_claimed(notification).await?;
            } else {
                self.store.release(notification.id, &self.claimant).await?;
            }
        }
        Ok((delivered, retried))
    }

    /// Claims `notification` (in its current status) for this replica's
    /// delivery; `false` when another holds it or it moved on.
    async fn claim(&self, notification: &Notification) -> Result<bool, NotificationError> {
        let at = now();
        let until = at
            + chrono::Duration::from_std(self.policy.claim_timeout)
                .unwrap_or(chrono::Duration::MAX);
        self.store
            .claim(
                notification.id,
                notification.status,
                &self.claimant,
                at,
                until,
            )
            .await
    }

    /// [`Notifications::claim`] for a caller's request to `action`: a
    /// refusal says whether the notification moved on or is being
    /// delivered by someone else.
    async fn claim_or_explain(
        &self,
        notification: &Notification,
        action: &'static str,
    ) -> Result<(), NotificationError> {
        if self.claim(notification).await? {
            return Ok(());
        }
        let current = self.reload(notification.id).await?;
        Err(if current.status == notification.status {
            NotificationError::BeingDelivered(notification.id.to_string())
        } else {
            NotificationError::WrongStatus {
                current: current.status,
                action,
            }
        })
    }

    /// Claims a notification and hands it to its channel.
    async fn deliver(&self, notification: Notification) -> Result<Notification, NotificationError> {
        self.claim_or_explain(&notification, "send").await?;
        self.deliver_claimed(notification).await
    }

    /// Hands a notification this replica has claimed to its channel and
    /// records the outcome (which ends the claim).
    async fn deliver_claimed(
        &self,
        notification: Notification,
    ) -> Result<Notification, NotificationError> {
        let from = notification.status;
        match self.deliverer.deliver(&notification).await {
            Ok(()) => {
                self.store.mark_sent(notification.id, from).await?;
            }
            Err(err) => {
                tracing::warn!(notification_id = %notification.id, channel = %notification.channel, error = %err, "delivery failed");
                self.store
                    .mark_failed(notification.id, from, &err.0)
                    .await?;
            }
        }
        self.reload(notification.id).await
    }

    async fn find(&self, id: &str) -> Result<Notification, NotificationError> {
        let uuid =
            Uuid::parse_str(id.trim()).map_err(|_| NotificationError::NotFound(id.to_owned()))?;
        self.store
            .get(uuid)
            .await?
            .ok_or_else(|| NotificationError::NotFound(id.to_owned()))
    }

    async fn visible(&self, viewer: &Viewer, id: &str) -> Result<Notification, NotificationError> {
        let notification = self.find(id).await?;
        if notification.user_id == viewer.user_id || viewer.is_admin() {
            Ok(notification)
        } else {
            Err(NotificationError::NotFound(id.to_owned()))
        }
    }

    async fn owned(&self, viewer: &Viewer, id: &str) -> Result<Notification, NotificationError> {
        let notification = self.find(id).await?;
        if notification.user_id == viewer.user_id {
            Ok(notification)
        } else {
            Err(NotificationError::NotFound(id.to_owned()))
        }
    }

    async fn reload(&self, id: Uuid) -> Result<Notification, NotificationError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| NotificationError::NotFound(id.to_string()))
    }
}
