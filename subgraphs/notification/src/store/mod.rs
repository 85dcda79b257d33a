//! The notification store (PostgreSQL in production, SQLite embedded).
//!
//! Status changes are conditional updates (`WHERE status = <expected>`), so
//! a notification is recorded as delivered once even when the scheduler and
//! an admin send it at the same moment, and a retry is counted once.
//!
//! Before a notification is handed to its channel it is **claimed**: a
//! conditional update that names the claimant and a deadline, and succeeds
//! only while nobody else's claim is live. So N scheduler replicas (and an
//! admin) over one store hand each notification to the gateway once; a
//! claim whose holder died mid-delivery lapses at its deadline and the
//! notification is claimable again. Recording the outcome (sent, failed)
//! clears the claim.
//!
//! A stored notification that is not scheduled writes `NotificationCreated`
//! to the outbox in the same transaction (a scheduled one, in the
//! transaction that records its delivery): that event feeds
//! `notificationAdded` on every replica. In-app notifications are delivered
//! by being stored, so they are stored SENT.
//!
//! That transaction also gives the notification its user's next
//! **sequence number** ([`sequence`]): numbers follow commit order, so
//! `notificationAdded(after:)` resumes by them ([`NotificationStore::resume_point`],
//! [`NotificationStore::announced_after`]) — ids are taken before commit
//! and do not.

mod entity;
mod sequence;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use subgraph_kit::events::Topic;
use subgraph_kit::events::outbox::{self, RelayWaker};
use uuid::Uuid;

use crate::domain::{
    Channel, NewNotification, Notification, NotificationError, NotificationPatch, NotificationType,
    Priority, Stats, Status, now,
};
use crate::events::outgoing::created_event;
use entity::{ActiveModel, Column, Entity, Model};

/// Where a page starts: after this (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCursor {
    /// Creation time of the last notification seen.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// Which of a user's notifications to list.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    /// Only in this status.
    pub status: Option<Status>,
    /// Only of this type.
    pub kind: Option<NotificationType>,
}

/// Reads and writes notifications.
#[derive(Debug, Clone)]
pub struct NotificationStore {
    db: DatabaseConnection,
    relay: RelayWaker,
}

impl NotificationStore {
    /// A store over an open, migrated pool; `relay` is woken after each
    /// commit that wrote events.
    pub fn new(db: DatabaseConnection, relay: RelayWaker) -> Self {
        Self { db, relay }
    }

    /// Stores validated notifications in one transaction (see the module
    /// docs for their initial status and event).
    pub async fn insert(
        &self,
        notifications: Vec<NewNotification>,
        default_expiry: DateTime<Utc>,
    ) -> Result<Vec<Notification>, NotificationError> {
        sequence::ensure_rows(&self.db, announced_users(&notifications).into_keys()).await?;
        let txn = self.db.begin().await?;
        let stored = Self::insert_in(&txn, notifications, default_expiry).await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(stored)
    }

    /// [`NotificationStore::insert`] inside the caller's transaction (an
    /// event consumer's); the caller wakes the relay after commit.
    pub async fn insert_in(
        txn: &impl ConnectionTrait,
        notifications: Vec<NewNotification>,
        default_expiry: DateTime<Utc>,
    ) -> Result<Vec<Notification>, NotificationError> {
        let created_at = now();
        // Numbers first, users in sorted order (see [`sequence`]); each
        // user's are then handed out in input order.
        let mut next_seq = BTreeMap::new();
        for (user_id, count) in announced_users(&notifications) {
            let last = sequence::reserve(txn, user_id, count).await?;
            next_seq.insert(user_id.to_owned(), last - count + 1);
        }
        let mut stored = Vec::with_capacity(notifications.len());
        for new in notifications {
            let seq = match new.scheduled_at {
                Some(_) => None,
                None => next_seq.get_mut(&new.user_id).map(|next| {
                    *next += 1;
                    *next - 1
                }),
            };
            let delivered = new.channel == Channel::InApp && new.scheduled_at.is_none();
            let status = if delivered {
                Status::Sent
            } else {
                Status::Pending
            };
            let model = ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(new.user_id),
                kind: Set(new.kind.as_str().to_owned()),
                title: Set(new.title),
                message: Set(new.message),
                data: Set(new.data.map(|d| d.to_string())),
                channel: Set(new.channel.as_str().to_owned()),
                status: Set(status.as_str().to_owned()),
                priority: Set(new.priority.as_str().to_owned()),
                retry_count: Set(0),
                failure_reason: Set(None),
                scheduled_at: Set(new.scheduled_at),
                sent_at: Set(delivered.then_some(created_at)),
                read_at: Set(None),
                expires_at: Set(Some(new.expires_at.unwrap_or(default_expiry))),
                created_at: Set(created_at),
                updated_at: Set(created_at),
                claimed_by: Set(None),
                claimed_until: Set(None),
                seq: Set(seq),
            };
            let row = Entity::insert(model).exec_with_returning(txn).await?;
            let notification = to_domain(row)?;
            if notification.scheduled_at.is_none() {
                outbox::enqueue(txn, Topic::Notification, &created_event(&notification)?).await?;
            }
            stored.push(notification);
        }
        Ok(stored)
    }

    /// The sequence number a `notificationAdded(after: <id>)` resumes
    /// after: that notification's, when it is `user_id`'s and announced.
    ///
    /// For an id that is not (deleted since, never announced, another
    /// user's, made up) the best estimate from ids: just before the
    /// first of the user's notifications with a later id, or the user's
    /// last number if none is later. Exact only up to notifications
    /// committed within moments of that id's creation.
    pub async fn resume_point(&self, user_id: &str, after: Uuid) -> Result<i64, NotificationError> {
        let own: Option<Option<i64>> = Entity::find_by_id(after)
            .select_only()
            .column(Column::Seq)
            .filter(Column::UserId.eq(user_id))
            .into_tuple()
            .one(&self.db)
            .await?;
        if let Some(Some(seq)) = own {
            return Ok(seq);
        }
        let later: Option<Option<i64>> = Entity::find()
            .select_only()
            .column_as(Column::Seq.min(), "first")
            .filter(Column::UserId.eq(user_id))
            .filter(Column::Id.gt(after))
            .filter(Column::Seq.is_not_null())
            .into_tuple()
            .one(&self.db)
            .await?;
        match later.flatten() {
            Some(first) => Ok(first - 1),
            None => Ok(sequence::current(&self.db, user_id).await?),
        }
    }

    /// The user's announced notifications numbered after `after` (and
    /// before `before`, if given), in number (commit) order: a resumed
    /// `notificationAdded`'s backlog, or a hole its live stream skipped.
    pub async fn announced_after(
        &self,
        user_id: &str,
        after: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        let mut query = Entity::find()
            .filter(Column::UserId.eq(user_id))
            .filter(Column::Seq.gt(after));
        if let Some(before) = before {
            query = query.filter(Column::Seq.lt(before));
        }
        query
            .order_by_asc(Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| to_domain(row).map_err(Into::into))
            .collect()
    }

    /// One notification.
    pub async fn get(&self, id: Uuid) -> Result<Option<Notification>, NotificationError> {
        Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(to_domain)
            .transpose()
            .map_err(Into::into)
    }

    /// Claims notification `id` for delivery by `claimant` until `until`,
    /// if it is still in `from` and nobody else's claim is live at `at`;
    /// returns whether it is now `claimant`'s.
    pub async fn claim(
        &self,
        id: Uuid,
        from: Status,
        claimant: &str,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, NotificationError> {
        let result = Entity::update_many()
            .col_expr(Column::ClaimedBy, Expr::value(claimant))
            .col_expr(Column::ClaimedUntil, Expr::value(until))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(from.as_str()))
            .filter(unclaimed(at))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Gives up `claimant`'s claim on notification `id` without recording
    /// a delivery (it turned out not to be deliverable now).
    pub async fn release(&self, id: Uuid, claimant: &str) -> Result<(), NotificationError> {
        Entity::update_many()
            .col_expr(Column::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(
                Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(Column::Id.eq(id))
            .filter(Column::ClaimedBy.eq(claimant))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records a delivery if the notification is still in `from`, ending
    /// any claim on it.
    pub async fn mark_sent(&self, id: Uuid, from: Status) -> Result<bool, NotificationError> {
        let at = now();
        if self.db.get_database_backend() == DatabaseBackend::MySql {
            // A scheduled notification is announced (numbered) below: its
            // user's counter row must exist before the transaction.
            let scheduled_for: Option<(String, Option<DateTime<Utc>>)> = Entity::find_by_id(id)
                .select_only()
                .column(Column::UserId)
                .column(Column::ScheduledAt)
                .into_tuple()
                .one(&self.db)
                .await?;
            if let Some((user_id, Some(_))) = &scheduled_for {
                sequence::ensure_rows(&self.db, [user_id.as_str()]).await?;
            }
        }
        let txn = self.db.begin().await?;
        let sent = change(&txn, id, from, |update| {
            update
                .col_expr(Column::Status, Expr::value(Status::Sent.as_str()))
                .col_expr(Column::SentAt, Expr::value(at))
                .col_expr(Column::FailureReason, Expr::value(Option::<String>::None))
                .col_expr(Column::ClaimedBy, Expr::value(Option::<String>::None))
                .col_expr(
                    Column::ClaimedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
        })
        .await?;
        // A scheduled notification is announced when it is delivered, not
        // when it was created for later, and once.
        let mut announced = false;
        if sent && let Some(row) = Entity::find_by_id(id).one(&txn).await? {
            let mut notification = to_domain(row)?;
            if notification.scheduled_at.is_some() && notification.seq.is_none() {
                let seq = sequence::reserve(&txn, &notification.user_id, 1).await?;
                Entity::update_many()
                    .col_expr(Column::Seq, Expr::value(seq))
                    .filter(Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                notification.seq = Some(seq);
                outbox::enqueue(&txn, Topic::Notification, &created_event(&notification)?).await?;
                announced = true;
            }
        }
        txn.commit().await?;
        if announced {
            self.relay.wake();
        }
        Ok(sent)
    }

    /// Records a failed delivery if the notification is still in `from`,
    /// ending any claim on it.
    pub async fn mark_failed(
        &self,
        id: Uuid,
        from: Status,
        reason: &str,
    ) -> Result<bool, NotificationError> {
        let reason: String = reason.chars().take(500).collect();
        self.change(id, from, |update| {
            update
                .col_expr(Column::Status, Expr::value(Status::Failed.as_str()))
                .col_expr(Column::FailureReason, Expr::value(reason))
                .col_expr(Column::ClaimedBy, Expr::value(Option::<String>::None))
                .col_expr(
                    Column::ClaimedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
        })
        .await
    }

    /// Counts one more retry of a FAILED notification, unless `max` were made.
    pub async fn count_retry(&self, id: Uuid, max: i32) -> Result<bool, NotificationError> {
        let result = Entity::update_many()
            .col_expr(Column::RetryCount, Expr::col(Column::RetryCount).add(1))
            .col_expr(Column::UpdatedAt, Expr::value(now()))
            .filter(Column::Id.eq(id))
            .filter(Column::Status.eq(Status::Failed.as_str()))
            .filter(Column::RetryCount.lt(max))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Marks a delivered notification read.
    pub async fn mark_read(&self, id: Uuid) -> Result<bool, NotificationError> {
        let at = now();
        self.change(id, Status::Sent, |update| {
            update
                .col_expr(Column::Status, Expr::value(Status::Read.as_str()))
                .col_expr(Column::ReadAt, Expr::value(at))
        })
        .await
    }

    /// Marks every delivered notification of `user_id` read; returns how many.
    pub async fn mark_all_read(&self, user_id: &str) -> Result<u64, NotificationError> {
        let at = now();
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(Status::Read.as_str()))
            .col_expr(Column::ReadAt, Expr::value(at))
            .col_expr(Column::UpdatedAt, Expr::value(at))
            .filter(Column::UserId.eq(user_id))
            .filter(Column::Status.eq(Status::Sent.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Applies `patch` to notification `id`.
    pub async fn update(
        &self,
        id: Uuid,
        patch: NotificationPatch,
    ) -> Result<bool, NotificationError> {
        let mut update = Entity::update_many().col_expr(Column::UpdatedAt, Expr::value(now()));
        if let Some(title) = patch.title {
            update = update.col_expr(Column::Title, Expr::value(title));
        }
        if let Some(message) = patch.message {
            update = update.col_expr(Column::Message, Expr::value(message));
        }
        if let Some(data) = patch.data {
            update = update.col_expr(Column::Data, Expr::value(data.map(|d| d.to_string())));
        }
        if let Some(priority) = patch.priority {
            update = update.col_expr(Column::Priority, Expr::value(priority.as_str()));
        }
        if let Some(expires_at) = patch.expires_at {
            update = update.col_expr(Column::ExpiresAt, Expr::value(expires_at));
        }
        let result = update.filter(Column::Id.eq(id)).exec(&self.db).await?;
        Ok(result.rows_affected == 1)
    }

    /// Deletes notification `id`; returns whether it existed.
    pub async fn delete(&self, id: Uuid) -> Result<bool, NotificationError> {
        Ok(Entity::delete_by_id(id).exec(&self.db).await?.rows_affected == 1)
    }

    /// Deletes notifications whose `expires_at` has passed; returns how many.
    pub async fn delete_expired(&self, at: DateTime<Utc>) -> Result<u64, NotificationError> {
        Ok(Entity::delete_many()
            .filter(Column::ExpiresAt.lt(at))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Scheduled notifications now due and not claimed by anyone, oldest
    /// first.
    pub async fn due(
        &self,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        self.find_many(
            Condition::all()
                .add(Column::Status.eq(Status::Pending.as_str()))
                .add(Column::ScheduledAt.lte(at))
                .add(unclaimed(at)),
            limit,
        )
        .await
    }

    /// Failed notifications with retries left, untouched since `idle_since`
    /// and not claimed by anyone at `at`.
    pub async fn retryable(
        &self,
        max: i32,
        idle_since: DateTime<Utc>,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        self.find_many(
            Condition::all()
                .add(Column::Status.eq(Status::Failed.as_str()))
                .add(Column::RetryCount.lt(max))
                .add(Column::UpdatedAt.lt(idle_since))
                .add(unclaimed(at)),
            limit,
        )
        .await
    }

    /// A page of `user_id`'s notifications, newest first (scheduled ones
    /// appear once due), and whether more follow.
    pub async fn inbox(
        &self,
        user_id: &str,
        filter: &InboxFilter,
        after: Option<NotificationCursor>,
        limit: u64,
    ) -> Result<(Vec<Notification>, bool), NotificationError> {
        let mut condition = visible_to(user_id, now());
        if let Some(status) = filter.status {
            condition = condition.add(Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = filter.kind {
            condition = condition.add(Column::Kind.eq(kind.as_str()));
        }
        if let Some(after) = after {
            condition = condition.add(
                Condition::any()
                    .add(Column::CreatedAt.lt(after.created_at))
                    .add(
                        Condition::all()
                            .add(Column::CreatedAt.eq(after.created_at))
                            .add(Column::Id.lt(after.id)),
                    ),
            );
        }
        let mut rows = Entity::find()
            .filter(condition)
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let has_next = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok((
            rows.into_iter().map(to_domain).collect::<Result<_, _>>()?,
            has_next,
        ))
    }

    /// Delivered, unread notifications of `user_id`.
    pub async fn unread_count(&self, user_id: &str) -> Result<u64, NotificationError> {
        Ok(Entity::find()
            .filter(Column::UserId.eq(user_id))
            .filter(Column::Status.eq(Status::Sent.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Counts of `user_id`'s notifications by status and by type.
    pub async fn stats(&self, user_id: &str) -> Result<Stats, NotificationError> {
        let visible = visible_to(user_id, now());
        let by_status: Vec<(String, i64)> = Entity::find()
            .select_only()
            .column(Column::Status)
            .column_as(Column::Id.count(), "count")
            .filter(visible.clone())
            .group_by(Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let by_type: Vec<(String, i64)> = Entity::find()
            .select_only()
            .column(Column::Kind)
            .column_as(Column::Id.count(), "count")
            .filter(visible)
            .group_by(Column::Kind)
            .into_tuple()
            .all(&self.db)
            .await?;
        let by_status: Vec<(Status, i64)> = Status::ALL
            .iter()
            .map(|s| {
                (
                    *s,
                    by_status
                        .iter()
                        .find(|(name, _)| name == s.as_str())
                        .map_or(0, |(_, n)| *n),
                )
            })
            .collect();
        let mut by_type: Vec<(NotificationType, i64)> = by_type
            .into_iter()
            .filter_map(|(name, n)| NotificationType::parse(&name).map(|k| (k, n)))
            .collect();
        by_type.sort_by_key(|(kind, _)| kind.as_str());
        Ok(Stats {
            total: by_status.iter().map(|(_, n)| n).sum(),
            unread: by_status
                .iter()
                .find(|(s, _)| *s == Status::Sent)
                .map_or(0, |(_, n)| *n),
            by_status,
            by_type,
        })
    }

    async fn find_many(
        &self,
        condition: Condition,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        Entity::find()
            .filter(condition)
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| to_domain(row).map_err(Into::into))
            .collect()
    }

    async fn change(
        &self,
        id: Uuid,
        from: Status,
        set: impl FnOnce(sea_orm::UpdateMany<Entity>) -> sea_orm::UpdateMany<Entity>,
    ) -> Result<bool, NotificationError> {
        change(&self.db, id, from, set).await
    }
}

/// Applies `set` to notification `id` if it is still in `from`; returns
/// whether it applied.
async fn change(
    conn: &impl ConnectionTrait,
    id: Uuid,
    from: Status,
    set: impl FnOnce(sea_orm::UpdateMany<Entity>) -> sea_orm::UpdateMany<Entity>,
) -> Result<bool, NotificationError> {
    let update = Entity::update_many().col_expr(Column::UpdatedAt, Expr::value(now()));
    let result = set(update)
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(from.as_str()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The users `notifications` announces at once (the unscheduled ones), in
/// sorted order, with how many each.
fn announced_users(notifications: &[NewNotification]) -> BTreeMap<&str, i64> {
    let mut users = BTreeMap::new();
    for new in notifications.iter().filter(|n| n.scheduled_at.is_none()) {
        *users.entry(new.user_id.as_str()).or_insert(0) += 1;
    }
    users
}

/// Notifications nobody's claim holds at `at`.
fn unclaimed(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::ClaimedUntil.is_null())
        .add(Column::ClaimedUntil.lt(at))
}

/// A user's notifications, without those scheduled for later.
fn visible_to(user_id: &str, at: DateTime<Utc>) -> Condition {
    Condition::all().add(Column::UserId.eq(user_id)).add(
        Condition::any()
            .add(Column::ScheduledAt.is_null())
            .add(Column::ScheduledAt.lte(at))
            .add(Column::Status.ne(Status::Pending.as_str())),
    )
}

fn to_domain(row: Model) -> Result<Notification, DbErr> {
    let bad = |what: &str, value: &str| {
        DbErr::Custom(format!(
            "notification {} has unknown {what} {value:?}",
            row.id
        ))
    };
    Ok(Notification {
        id: row.id,
        kind: NotificationType::parse(&row.kind).ok_or_else(|| bad("type", &row.kind))?,
        channel: Channel::parse(&row.channel).ok_or_else(|| bad("channel", &row.channel))?,
        status: Status::parse(&row.status).ok_or_else(|| bad("status", &row.status))?,
        priority: Priority::parse(&row.priority).ok_or_else(|| bad("priority", &row.priority))?,
        data: row
            .data
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| DbErr::Custom(e.to_string()))?,
        user_id: row.user_id,
        title: row.title,
        message: row.message,
        retry_count: row.retry_count,
        failure_reason: row.failure_reason,
        scheduled_at: row.scheduled_at,
        sent_at: row.sent_at,
        read_at: row.read_at,
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        seq: row.seq,
    })
}
