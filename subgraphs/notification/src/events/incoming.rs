//! The notification subgraph's events (see `platform/subgraph-kit/src/events/README.md`):
//!
//! * [`ReactionHandler`] turns user-facing events (payments, abandoned
//!   baskets, low stock) into stored notifications, once per event, in the
//!   consumer group `notification-reactions`;
//! * every stored notification publishes `NotificationCreated`
//!   ([`created_event`]), whose data is the whole notification, so a live
//!   `notificationAdded` needs no read of the store.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::{DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{
    BasketData, PaymentData, StockData, basket, notification, payment, product,
};
use subgraph_kit::events::inbox::{Handler, HandlerError};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::{
    Channel, NewNotification, Notification, NotificationError, NotificationType, Priority, Status,
    now,
};
use crate::store::NotificationStore;

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
    };
    outbox::event(SOURCE, notification::CREATED, n.user_id.clone(), &data)
}

/// The notification a `NotificationCreated` event carries, if it is one.
pub fn created_notification(event: &CloudEvent) -> Option<Notification> {
    if event.kind != notification::CREATED {
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
    })
}

/// Who is told about stock running low or out.
#[derive(Debug, Clone)]
pub struct ReactionSettings {
    /// User ids of the shop's stock managers (`STOCK_ALERT_RECIPIENTS`).
    pub stock_alert_recipients: Vec<String>,
    /// Lifetime of a notification (`NOTIFICATION_TTL`).
    pub ttl: std::time::Duration,
}

/// User-facing events → stored notifications.
pub struct ReactionHandler {
    settings: ReactionSettings,
}

impl ReactionHandler {
    /// Reactions with `settings`.
    pub fn new(settings: ReactionSettings) -> Self {
        Self { settings }
    }

    /// The notifications `event` means (none for events nobody is told of).
    pub fn notifications_for(
        &self,
        event: &CloudEvent,
    ) -> Result<Vec<NewNotification>, HandlerError> {
        let kind = event.kind.as_str();
        if kind.starts_with("Payment") && kind != payment::CREATED {
            let p: PaymentData = event.data()?;
            let amount = format!("{} {}", p.amount, p.currency);
            let data =
                json!({ "paymentId": p.payment_id, "amount": p.amount, "currency": p.currency });
            let (kind, title, message, priority) = match kind {
                payment::COMPLETED => (
                    NotificationType::PaymentCompleted,
                    "Payment completed".to_owned(),
                    format!("We received your payment of {amount}. Thank you!"),
                    Priority::Normal,
                ),
                payment::FAILED => (
                    NotificationType::PaymentFailed,
                    "Payment failed".to_owned(),
                    format!(
                        "Your payment of {amount} did not go through: {}.",
                        p.reason.as_deref().unwrap_or("declined")
                    ),
                    Priority::High,
                ),
                payment::REFUNDED => (
                    NotificationType::PaymentRefunded,
                    "Payment refunded".to_owned(),
                    format!(
                        "{} {} of your payment of {amount} has been refunded.",
                        p.refunded_amount, p.currency
                    ),
                    Priority::Normal,
                ),
                payment::CANCELLED => (
                    NotificationType::PaymentCancelled,
                    "Payment cancelled".to_owned(),
                    format!("Your payment of {amount} was cancelled."),
                    Priority::Normal,
                ),
                payment::EXPIRED => (
                    NotificationType::PaymentExpired,
                    "Payment expired".to_owned(),
                    format!("Your pending payment of {amount} expired before it was paid."),
                    Priority::Normal,
                ),
                _ => return Ok(Vec::new()),
            };
            return Ok(vec![in_app(
                &p.user_id, kind, title, message, data, priority,
            )]);
        }
        match kind {
            basket::ABANDONED => {
                let b: BasketData = event.data()?;
                let units = if b.item_count == 1 { "item" } else { "items" };
                Ok(vec![in_app(
                    &b.user_id,
                    NotificationType::BasketAbandoned,
                    "Your basket is waiting".to_owned(),
                    format!("You left {} {units} in your basket.", b.item_count),
                    json!({ "basketId": b.basket_id }),
                    Priority::Low,
                )])
            }
            product::STOCK_LOW | product::STOCK_OUT => {
                let s: StockData = event.data()?;
                let (kind, title, message, priority) = if event.kind == product::STOCK_OUT {
                    (
                        NotificationType::StockOut,
                        format!("Out of stock: {}", s.product_name),
                        format!("{} is sold out.", s.product_name),
                        Priority::Urgent,
                    )
                } else {
                    (
                        NotificationType::StockLow,
                        format!("Stock low: {}", s.product_name),
                        format!(
                            "Only {} left of {} (threshold {}).",
                            s.stock_quantity, s.product_name, s.low_stock_threshold
                        ),
                        Priority::High,
                    )
                };
                let data = json!({ "productId": s.product_id, "stockQuantity": s.stock_quantity });
                Ok(self
                    .settings
                    .stock_alert_recipients
                    .iter()
                    .map(|user| {
                        in_app(
                            user,
                            kind,
                            title.clone(),
                            message.clone(),
                            data.clone(),
                            priority,
                        )
                    })
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }
}

fn in_app(
    user_id: &str,
    kind: NotificationType,
    title: String,
    message: String,
    data: serde_json::Value,
    priority: Priority,
) -> NewNotification {
    NewNotification {
        user_id: user_id.to_owned(),
        kind,
        title,
        message,
        data: Some(data),
        channel: Channel::InApp,
        priority,
        scheduled_at: None,
        expires_at: None,
    }
}

impl Handler for ReactionHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let news = self.notifications_for(event)?;
            if news.is_empty() {
                return Ok(());
            }
            let at = now();
            let news = news
                .into_iter()
                .map(|n| n.validate(at))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| HandlerError::Rejected(err.to_string()))?;
            let expiry =
                at + chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::MAX);
            match NotificationStore::insert_in(txn, news, expiry).await {
                Ok(_) => Ok(()),
                Err(NotificationError::Store(err)) => Err(HandlerError::Transient(err)),
                Err(err) => Err(HandlerError::Rejected(err.to_string())),
            }
        })
    }
}
