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
                    "Your payment of {amount} did not go through: {}; nothing was charged.",
                    failure_in_words(p.reason.as_deref())
                ),
                priority: Priority::High,
            }),
            EventKind::PaymentRefunded => to_payer(event, |p, amount| Notice {
                kind: NotificationType::PaymentRefunded,
                title: "Payment refunded".to_owned(),
                message: refund_in_words(p, amount),
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
                title: format!("Stock low: {}", product_name(s)),
                message: format!(
                    "{} is running low: {} left (alerts start below {}).",
                    product_name(s),
                    units(s.stock_quantity),
                    s.low_stock_threshold
                ),
                priority: Priority::High,
            }),
            EventKind::StockOut => self.to_stock_managers(event, |s| Notice {
                kind: NotificationType::StockOut,
                title: format!("Out of stock: {}", product_name(s)),
                message: format!("{} is sold out: none left in stock.", product_name(s)),
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

/// Why a payment failed, in words a shopper understands, from the
/// provider's reason (`"card_declined: the issuer declined the card"`: a
/// machine code, then the provider's own text). Known codes get their own
/// sentence; anything else, or no reason, a general one — provider codes
/// and texts are for the shop's staff, who see them on the payment.
fn failure_in_words(reason: Option<&str>) -> &'static str {
    const GENERAL: &str = "the payment could not be completed";
    let Some(reason) = reason else {
        return GENERAL;
    };
    let code = reason.split(':').next().unwrap_or(reason).trim();
    match code.to_ascii_lowercase().as_str() {
        "card_declined" | "declined" | "do_not_honor" | "generic_decline" => {
            "your card was declined"
        }
        "insufficient_funds" => "your card was declined for insufficient funds",
        "expired_card" | "card_expired" => "your card has expired",
        "incorrect_cvc" | "invalid_cvc" => "the card's security code was not accepted",
        "incorrect_number" | "invalid_number" => "the card number was not accepted",
        "card_not_supported" => "this card cannot be used for this payment",
        "processing_error" | "provider_unavailable" | "provider_timeout" | "timeout" => {
            "the payment provider did not answer"
        }
        _ => GENERAL,
    }
}

/// What a `PaymentRefunded` event means to the payer: the amount of that
/// refund (`refundAmount`), not the running total (`refundedAmount`),
/// which after a second refund is more than the payer got back this time.
/// An event without `refundAmount` (written before the field existed)
/// names no amount rather than the wrong one.
fn refund_in_words(p: &PaymentData, amount: &str) -> String {
    let in_full = p.refunded_amount >= p.amount;
    match p.refund_amount {
        Some(refund) if in_full && refund >= p.amount => {
            format!("Your payment of {amount} has been refunded in full.")
        }
        Some(refund) if in_full => format!(
            "We refunded {refund} {} of your payment of {amount}; it is now refunded in full.",
            p.currency
        ),
        Some(refund) => format!(
            "We refunded {refund} {} of your payment of {amount}.",
            p.currency
        ),
        None if in_full => {
            format!("A refund was issued on your payment of {amount}; it is now refunded in full.")
        }
        None => format!("A refund was issued on your payment of {amount}."),
    }
}

/// The product a stock event is about, by name (its id only if the event
/// carries no name).
fn product_name(s: &StockData) -> String {
    let name = s.product_name.trim();
    if name.is_empty() {
        format!("Product {}", s.product_id)
    } else {
        name.to_owned()
    }
}

/// `"1 unit"`, `"3 units"`.
fn units(count: i32) -> String {
    if count == 1 {
        "1 unit".to_owned()
    } else {
        format!("{count} units")
    }
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
                "Your payment of 19.99 EUR did not go through: the payment could not be completed; nothing was charged.",
                Priority::High,
            ),
            (
                EventKind::PaymentRefunded,
                NotificationType::PaymentRefunded,
                "Payment refunded",
                "A refund was issued on your payment of 19.99 EUR.",
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
    }

    /// The message of the notification `kind` with payment data `data`.
    fn message(kind: EventKind, data: Value) -> String {
        let news = reactions()
            .notifications_for(&event(kind.as_str(), data))
            .unwrap();
        assert_eq!(news.len(), 1);
        news[0].message.clone()
    }

    #[test]
    fn a_failed_payment_says_why_in_words_not_codes() {
        // The first three are the simulated provider's reasons
        // (subgraphs/payment/src/domain/provider.rs), word for word.
        let cases = [
            (
                "card_declined: the issuer declined the card",
                "your card was declined",
            ),
            (
                "processing_error: the provider could not reach the issuer",
                "the payment provider did not answer",
            ),
            (
                "card_not_supported: not a test card of the simulated provider",
                "this card cannot be used for this payment",
            ),
            (
                "insufficient_funds",
                "your card was declined for insufficient funds",
            ),
            ("expired_card: card expired", "your card has expired"),
            ("INCORRECT_CVC", "the card's security code was not accepted"),
            (
                "risk_engine_v2: rule 17 matched",
                "the payment could not be completed",
            ),
            ("", "the payment could not be completed"),
        ];
        for (reason, words) in cases {
            let said = message(EventKind::PaymentFailed, payment(Some(reason)));
            assert_eq!(
                said,
                format!(
                    "Your payment of 19.99 EUR did not go through: {words}; nothing was charged."
                ),
                "{reason}"
            );
            if let Some((code, text)) = reason.split_once(':') {
                assert!(
                    !said.contains(code) && !said.contains(text.trim()),
                    "{said}"
                );
            }
        }
    }

    /// Payment data after a refund: `refunded` in all, `refund` this time.
    fn refunded(refunded: &str, refund: Option<&str>) -> Value {
        let mut data = payment(None);
        data["status"] = json!("PARTIALLY_REFUNDED");
        data["refundedAmount"] = json!(refunded);
        if let Some(refund) = refund {
            data["refundAmount"] = json!(refund);
        }
        data
    }

    #[test]
    fn a_refund_states_the_amount_of_that_refund() {
        // A second refund of 5.00 after 4.00: 5.00, not the 9.00 total.
        let second = message(EventKind::PaymentRefunded, refunded("9.00", Some("5.00")));
        assert_eq!(second, "We refunded 5.00 EUR of your payment of 19.99 EUR.");
        assert!(!second.contains("9.00"), "{second}");
        assert_eq!(
            message(EventKind::PaymentRefunded, refunded("19.99", Some("19.99"))),
            "Your payment of 19.99 EUR has been refunded in full."
        );
        assert_eq!(
            message(EventKind::PaymentRefunded, refunded("19.99", Some("10.99"))),
            "We refunded 10.99 EUR of your payment of 19.99 EUR; it is now refunded in full."
        );
        // An event from before `refundAmount`: no amount rather than the total.
        let old = message(EventKind::PaymentRefunded, refunded("9.00", None));
        assert_eq!(old, "A refund was issued on your payment of 19.99 EUR.");
        assert!(!old.contains("9.00"), "{old}");
        assert_eq!(
            message(EventKind::PaymentRefunded, refunded("19.99", None)),
            "A refund was issued on your payment of 19.99 EUR; it is now refunded in full."
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
            "Lamp is running low: 3 units left (alerts start below 5).",
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
                    "Lamp is sold out: none left in stock.",
                    Priority::Urgent
                ),
                (
                    "stock-lead",
                    NotificationType::StockOut,
                    "Out of stock: Lamp",
                    "Lamp is sold out: none left in stock.",
                    Priority::Urgent
                ),
            ]
        );
    }

    #[test]
    fn stock_alerts_name_the_product_and_say_how_many_are_left() {
        let one = reactions()
            .notifications_for(&event("StockLow", stock(1)))
            .unwrap();
        assert_eq!(one[0].title, "Stock low: Lamp");
        assert_eq!(
            one[0].message,
            "Lamp is running low: 1 unit left (alerts start below 5)."
        );
        let mut nameless = stock(2);
        nameless["productName"] = json!(" ");
        let news = reactions()
            .notifications_for(&event("StockLow", nameless))
            .unwrap();
        assert_eq!(
            news[0].message,
            "Product 01a203fa-2f09-7245-a3f7-f3ba7e44b7f4 is running low: 2 units left (alerts start below 5)."
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
