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
use subgraph_kit::events::contract::{BasketData, EventKind, PaymentData, StockData};
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

    /// The notifications `event` means (none for events nobody is told
    /// of, and none for a type this build does not know).
    pub fn notifications_for(
        &self,
        event: &CloudEvent,
    ) -> Result<Vec<NewNotification>, HandlerError> {
        let kind = match event.event_kind() {
            Ok(kind) => kind,
            Err(unknown) => {
                tracing::warn!(event_id = %event.id, %unknown, "notification reactions ignore an event of a type they do not know");
                return Ok(Vec::new());
            }
        };
        match kind {
            EventKind::PaymentCompleted => to_payer(event, |_, amount| Notice {
                kind: NotificationType::PaymentCompleted,
                title: "Payment completed".to_owned(),
                message: format!("We received your payment of {amount}. Thank you!"),
                priority: Priority::Normal,
            }),
            EventKind::PaymentFailed => to_payer(event, |p, amount| Notice {
                kind: NotificationType::PaymentFailed,
                title: "Payment failed".to_owned(),
                message: format!(
                    "Your payment of {amount} did not go through: {}.",
                    p.reason.as_deref().unwrap_or("declined")
                ),
                priority: Priority::High,
            }),
            EventKind::PaymentRefunded => to_payer(event, |p, amount| Notice {
                kind: NotificationType::PaymentRefunded,
                title: "Payment refunded".to_owned(),
                message: format!(
                    "{} {} of your payment of {amount} has been refunded.",
                    p.refunded_amount, p.currency
                ),
                priority: Priority::Normal,
            }),
            EventKind::PaymentCancelled => to_payer(event, |_, amount| Notice {
                kind: NotificationType::PaymentCancelled,
                title: "Payment cancelled".to_owned(),
                message: format!("Your payment of {amount} was cancelled."),
                priority: Priority::Normal,
            }),
            EventKind::PaymentExpired => to_payer(event, |_, amount| Notice {
                kind: NotificationType::PaymentExpired,
                title: "Payment expired".to_owned(),
                message: format!("Your pending payment of {amount} expired before it was paid."),
                priority: Priority::Normal,
            }),
            EventKind::BasketAbandoned => {
                let b: BasketData = event.data()?;
                let units = if b.item_count == 1 { "item" } else { "items" };
                let notice = Notice {
                    kind: NotificationType::BasketAbandoned,
                    title: "Your basket is waiting".to_owned(),
                    message: format!("You left {} {units} in your basket.", b.item_count),
                    priority: Priority::Low,
                };
                Ok(vec![in_app(
                    &b.user_id,
                    notice,
                    json!({ "basketId": b.basket_id }),
                )])
            }
            EventKind::StockLow => self.to_stock_managers(event, |s| Notice {
                kind: NotificationType::StockLow,
                title: format!("Stock low: {}", s.product_name),
                message: format!(
                    "Only {} left of {} (threshold {}).",
                    s.stock_quantity, s.product_name, s.low_stock_threshold
                ),
                priority: Priority::High,
            }),
            EventKind::StockOut => self.to_stock_managers(event, |s| Notice {
                kind: NotificationType::StockOut,
                title: format!("Out of stock: {}", s.product_name),
                message: format!("{} is sold out.", s.product_name),
                priority: Priority::Urgent,
            }),
            // Nobody is told of these: a new payment is not news to its
            // payer, every stock change is too many, and an emptied basket
            // is the owner's own doing or follows `PaymentCompleted`.
            EventKind::PaymentCreated | EventKind::StockUpdated | EventKind::BasketCleared => {
                Ok(Vec::new())
            }
            // This service's own event, on a topic this consumer does not
            // read.
            EventKind::NotificationCreated => Ok(Vec::new()),
        }
    }

    /// The same `notice` about the stock event `event` for each of the
    /// shop's stock managers.
    fn to_stock_managers(
        &self,
        event: &CloudEvent,
        notice: impl FnOnce(&StockData) -> Notice,
    ) -> Result<Vec<NewNotification>, HandlerError> {
        let s: StockData = event.data()?;
        let notice = notice(&s);
        let data = json!({ "productId": s.product_id, "stockQuantity": s.stock_quantity });
        Ok(self
            .settings
            .stock_alert_recipients
            .iter()
            .map(|user| in_app(user, notice.clone(), data.clone()))
            .collect())
    }
}

/// What one notification says; whom it goes to depends on the event.
#[derive(Debug, Clone)]
struct Notice {
    kind: NotificationType,
    title: String,
    message: String,
    priority: Priority,
}

/// One notification, `notice` about the payment event `event`, for its
/// payer; `notice` also gets the amount as text (`"19.99 EUR"`).
fn to_payer(
    event: &CloudEvent,
    notice: impl FnOnce(&PaymentData, &str) -> Notice,
) -> Result<Vec<NewNotification>, HandlerError> {
    let p: PaymentData = event.data()?;
    let amount = format!("{} {}", p.amount, p.currency);
    let data = json!({ "paymentId": p.payment_id, "amount": p.amount, "currency": p.currency });
    Ok(vec![in_app(&p.user_id, notice(&p, &amount), data)])
}

fn in_app(user_id: &str, notice: Notice, data: serde_json::Value) -> NewNotification {
    NewNotification {
        user_id: user_id.to_owned(),
        kind: notice.kind,
        title: notice.title,
        message: notice.message,
        data: Some(data),
        channel: Channel::InApp,
        priority: notice.priority,
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

#[cfg(test)]
mod tests {
    //! What each event type means to the reactions, decided by the typed
    //! kind: every known kind, and a type nobody knows.

    use serde_json::{Value, json};

    use super::*;

    fn reactions() -> ReactionHandler {
        ReactionHandler::new(ReactionSettings {
            stock_alert_recipients: vec!["admin".to_owned(), "stock-lead".to_owned()],
            ttl: std::time::Duration::from_secs(3600),
        })
    }

    fn event(kind: &str, data: Value) -> CloudEvent {
        CloudEvent::new("/test", kind, "subject", &data).unwrap()
    }

    fn payment(reason: Option<&str>) -> Value {
        json!({
            "paymentId": "01a203fa-2f09-7245-a3f7-f3ba7e44b7f3",
            "userId": "payer",
            "status": "COMPLETED",
            "amount": "19.99",
            "refundedAmount": "5.00",
            "currency": "EUR",
            "basketId": null,
            "items": [],
            "reason": reason,
        })
    }

    fn stock(quantity: i32) -> Value {
        json!({
            "productId": "01a203fa-2f09-7245-a3f7-f3ba7e44b7f4",
            "productName": "Lamp",
            "previousQuantity": 6,
            "stockQuantity": quantity,
            "delta": quantity - 6,
            "lowStockThreshold": 5,
            "reason": "sale",
            "paymentId": null,
        })
    }

    fn basket(item_count: i32, reason: &str) -> Value {
        json!({
            "basketId": "01a203fa-2f09-7245-a3f7-f3ba7e44b7f5",
            "userId": "shopper",
            "itemCount": item_count,
            "reason": reason,
            "paymentId": null,
        })
    }

    /// (recipient, type, title, message, priority) of each notification.
    fn summary(news: &[NewNotification]) -> Vec<(&str, NotificationType, &str, &str, Priority)> {
        news.iter()
            .map(|n| {
                assert_eq!(n.channel, Channel::InApp);
                (
                    n.user_id.as_str(),
                    n.kind,
                    n.title.as_str(),
                    n.message.as_str(),
                    n.priority,
                )
            })
            .collect()
    }

    #[test]
    fn payment_events_tell_the_payer() {
        let cases = [
            (
                EventKind::PaymentCompleted,
                NotificationType::PaymentCompleted,
                "Payment completed",
                "We received your payment of 19.99 EUR. Thank you!",
                Priority::Normal,
            ),
            (
                EventKind::PaymentFailed,
                NotificationType::PaymentFailed,
                "Payment failed",
                "Your payment of 19.99 EUR did not go through: declined.",
                Priority::High,
            ),
            (
                EventKind::PaymentRefunded,
                NotificationType::PaymentRefunded,
                "Payment refunded",
                "5.00 EUR of your payment of 19.99 EUR has been refunded.",
                Priority::Normal,
            ),
            (
                EventKind::PaymentCancelled,
                NotificationType::PaymentCancelled,
                "Payment cancelled",
                "Your payment of 19.99 EUR was cancelled.",
                Priority::Normal,
            ),
            (
                EventKind::PaymentExpired,
                NotificationType::PaymentExpired,
                "Payment expired",
                "Your pending payment of 19.99 EUR expired before it was paid.",
                Priority::Normal,
            ),
        ];
        for (kind, notification, title, message, priority) in cases {
            let news = reactions()
                .notifications_for(&event(kind.as_str(), payment(None)))
                .unwrap();
            assert_eq!(
                summary(&news),
                vec![("payer", notification, title, message, priority)],
                "{kind}"
            );
            assert_eq!(
                news[0].data,
                Some(
                    json!({ "paymentId": "01a203fa-2f09-7245-a3f7-f3ba7e44b7f3", "amount": "19.99", "currency": "EUR" })
                )
            );
        }
        let failed = reactions()
            .notifications_for(&event("PaymentFailed", payment(Some("card expired"))))
            .unwrap();
        assert_eq!(
            failed[0].message,
            "Your payment of 19.99 EUR did not go through: card expired."
        );
    }

    #[test]
    fn stock_alerts_go_to_every_stock_manager() {
        let low = reactions()
            .notifications_for(&event("StockLow", stock(3)))
            .unwrap();
        let said = (
            NotificationType::StockLow,
            "Stock low: Lamp",
            "Only 3 left of Lamp (threshold 5).",
            Priority::High,
        );
        assert_eq!(
            summary(&low),
            vec![
                ("admin", said.0, said.1, said.2, said.3),
                ("stock-lead", said.0, said.1, said.2, said.3),
            ]
        );
        let out = reactions()
            .notifications_for(&event("StockOut", stock(0)))
            .unwrap();
        assert_eq!(
            summary(&out),
            vec![
                (
                    "admin",
                    NotificationType::StockOut,
                    "Out of stock: Lamp",
                    "Lamp is sold out.",
                    Priority::Urgent
                ),
                (
                    "stock-lead",
                    NotificationType::StockOut,
                    "Out of stock: Lamp",
                    "Lamp is sold out.",
                    Priority::Urgent
                ),
            ]
        );
    }

    #[test]
    fn an_abandoned_basket_tells_its_owner() {
        let news = reactions()
            .notifications_for(&event("BasketAbandoned", basket(1, "idle")))
            .unwrap();
        assert_eq!(
            summary(&news),
            vec![(
                "shopper",
                NotificationType::BasketAbandoned,
                "Your basket is waiting",
                "You left 1 item in your basket.",
                Priority::Low
            )]
        );
        let news = reactions()
            .notifications_for(&event("BasketAbandoned", basket(3, "idle")))
            .unwrap();
        assert_eq!(news[0].message, "You left 3 items in your basket.");
    }

    #[test]
    fn events_nobody_is_told_of_make_no_notification() {
        for (kind, data) in [
            (EventKind::PaymentCreated, payment(None)),
            (EventKind::StockUpdated, stock(3)),
            (EventKind::BasketCleared, basket(2, "checkout")),
            (EventKind::NotificationCreated, json!({})),
        ] {
            let news = reactions()
                .notifications_for(&event(kind.as_str(), data))
                .unwrap();
            assert!(news.is_empty(), "{kind}");
        }
    }

    #[test]
    fn a_known_kind_with_the_wrong_data_is_rejected() {
        let wrong = reactions().notifications_for(&event("PaymentCompleted", json!({ "n": 1 })));
        assert!(matches!(wrong, Err(HandlerError::Rejected(_))));
    }

    #[test]
    fn an_unknown_kind_is_not_taken_for_a_known_one() {
        // Payment-like names used to be read as payment events (a prefix
        // test); whatever their data, they now mean nothing here.
        for kind in [
            "PaymentSettled",
            "Payment",
            "paymentCompleted",
            "StockLowish",
        ] {
            for data in [payment(None), stock(3), json!({ "n": 1 })] {
                let news = reactions().notifications_for(&event(kind, data));
                assert!(matches!(&news, Ok(news) if news.is_empty()), "{kind}");
            }
        }
    }
}
