//! What the notification subgraph does with other services' events:
//! user-facing payment, basket and stock events become stored
//! notifications, once per event, in the consumer group
//! `notification-reactions`.
//!
//! [`ReactionHandler::notifications_for`] decides what an event means for
//! whom; the handler stores the result through the store, which writes
//! `NotificationCreated` (see [`super::outgoing`]) in the same transaction.

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use serde_json::json;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{
    BasketData, PaymentData, StockData, basket, payment, product,
};
use subgraph_kit::events::inbox::{Handler, HandlerError};

use crate::domain::{Channel, NewNotification, NotificationError, NotificationType, Priority, now};
use crate::store::NotificationStore;

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
