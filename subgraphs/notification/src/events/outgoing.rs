//! What the notification subgraph publishes on `notification-events`:
//! `NotificationCreated`, whose data is the whole notification with its
//! per-user sequence number, so a live `notificationAdded` needs no read of
//! the store and can tell a repeat or a gap by the number alone.
//!
//! * [`created_event`] — the event of a stored notification; the store
//!   writes it to its outbox in the transaction that stores (or, for a
//!   scheduled one, sends) the notification;
//! * [`created_notification`] — the same event read back, for the live
//!   feed of `notificationAdded` on every replica.
//!
//! Nothing here touches the store.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use serde::{Deserialize, Serialize};
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::EventKind;
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::{Channel, Notification, NotificationType, Priority, Status};

/// The CloudEvents `source` of this subgraph's events.
pub const SOURCE: &str = "/subgraphs/notification";

/// `NotificationCreated` data: the notification as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationData {
    id: Uuid,
    user_id: String,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    message: String,
    data: Option<serde_json::Value>,
    channel: String,
    status: String,
    priority: String,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// The user's sequence number (commit order), which live subscribers
    /// resume and de-duplicate by; absent from events written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
}

/// The `NotificationCreated` event of a stored notification, keyed by its
/// user (one user's notifications stay in order).
pub fn created_event(n: &Notification) -> Result<CloudEvent, DbErr> {
    let data = NotificationData {
        id: n.id,
        user_id: n.user_id.clone(),
        kind: n.kind.as_str().to_owned(),
        title: n.title.clone(),
        message: n.message.clone(),
        data: n.data.clone(),
        channel: n.channel.as_str().to_owned(),
        status: n.status.as_str().to_owned(),
        priority: n.priority.as_str().to_owned(),
        created_at: n.created_at,
        sent_at: n.sent_at,
        expires_at: n.expires_at,
        seq: n.seq,
    };
    outbox::event(
        SOURCE,
        EventKind::NotificationCreated,
        n.user_id.clone(),
        &data,
    )
}

/// The notification a `NotificationCreated` event carries, if it is one.
pub fn created_notification(event: &CloudEvent) -> Option<Notification> {
    if !event.is(EventKind::NotificationCreated) {
        return None;
    }
    let d: NotificationData = event.data().ok()?;
    Some(Notification {
        id: d.id,
        user_id: d.user_id,
        kind: NotificationType::parse(&d.kind)?,
        title: d.title,
        message: d.message,
        data: d.data,
        channel: Channel::parse(&d.channel)?,
        status: Status::parse(&d.status)?,
        priority: Priority::parse(&d.priority)?,
        retry_count: 0,
        failure_reason: None,
        scheduled_at: None,
        sent_at: d.sent_at,
        read_at: None,
        expires_at: d.expires_at,
        created_at: d.created_at,
        updated_at: d.created_at,
        seq: d.seq,
    })
}
