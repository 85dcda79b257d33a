//! The published events: their types and data, shared by producers and
//! consumers so both sides read the same contract.
//!
//! `platform/subgraph-kit/src/events/README.md` describes each one for
//! people; this module is the same list for the compiler:
//!
//! * [`EventKind`] — every event type, typed. Producers build events from
//!   it and consumers `match` on it (`CloudEvent::event_kind`), so adding
//!   a kind makes the compiler point at every reaction that must decide
//!   what to do with it. A type string no variant spells is an
//!   [`UnknownEventKind`], never a near match.
//! * [`payment`], [`product`], [`basket`], [`notification`] — the same
//!   wire names as string constants, for code that handles raw envelopes.
//! * [`PaymentData`], [`StockData`], [`BasketData`] (with its
//!   [`BasketLine`]s) — the data of the events other services react to.
//!
//! Data is camelCase JSON; money amounts are decimal strings, as in the
//! GraphQL API.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every event type Shopgraph publishes. [`EventKind::as_str`] is its
/// CloudEvents `type` on the wire; those strings are the contract with
/// every deployed consumer and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `PaymentCreated` on `payment-events`: a payment was created from a
    /// basket (PENDING).
    PaymentCreated,
    /// `PaymentCompleted` on `payment-events`: the provider captured the
    /// money.
    PaymentCompleted,
    /// `PaymentFailed` on `payment-events`: the provider declined or failed.
    PaymentFailed,
    /// `PaymentRefunded` on `payment-events`: some or all of a captured
    /// payment was refunded.
    PaymentRefunded,
    /// `PaymentCancelled` on `payment-events`: the owner cancelled a
    /// pending payment.
    PaymentCancelled,
    /// `PaymentExpired` on `payment-events`: a pending payment outlived its
    /// time to pay.
    PaymentExpired,
    /// `StockUpdated` on `product-events`: stock changed (a sale, an admin
    /// adjustment).
    StockUpdated,
    /// `StockLow` on `product-events`: stock fell below the low-stock
    /// threshold.
    StockLow,
    /// `StockOut` on `product-events`: stock reached zero.
    StockOut,
    /// `BasketCleared` on `basket-events`: the basket was emptied (by its
    /// owner or by a completed payment).
    BasketCleared,
    /// `BasketAbandoned` on `basket-events`: a basket with items was left
    /// untouched for the basket TTL.
    BasketAbandoned,
    /// `NotificationCreated` on `notification-events`: a notification was
    /// stored for a user (feeds `notificationAdded`).
    NotificationCreated,
}

impl EventKind {
    /// Every kind, topic by topic as in the README. [`EventKind::parse`]
    /// knows exactly these.
    pub const ALL: [Self; 12] = [
        Self::PaymentCreated,
        Self::PaymentCompleted,
        Self::PaymentFailed,
        Self::PaymentRefunded,
        Self::PaymentCancelled,
        Self::PaymentExpired,
        Self::StockUpdated,
        Self::StockLow,
        Self::StockOut,
        Self::BasketCleared,
        Self::BasketAbandoned,
        Self::NotificationCreated,
    ];

    /// The CloudEvents `type` of this kind (`"PaymentCompleted"`...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PaymentCreated => "PaymentCreated",
            Self::PaymentCompleted => "PaymentCompleted",
            Self::PaymentFailed => "PaymentFailed",
            Self::PaymentRefunded => "PaymentRefunded",
            Self::PaymentCancelled => "PaymentCancelled",
            Self::PaymentExpired => "PaymentExpired",
            Self::StockUpdated => "StockUpdated",
            Self::StockLow => "StockLow",
            Self::StockOut => "StockOut",
            Self::BasketCleared => "BasketCleared",
            Self::BasketAbandoned => "BasketAbandoned",
            Self::NotificationCreated => "NotificationCreated",
        }
    }

    /// The kind whose CloudEvents `type` is exactly `kind` (case and all);
    /// anything else is an [`UnknownEventKind`] carrying the string.
    pub fn parse(kind: &str) -> Result<Self, UnknownEventKind> {
        Self::ALL
            .into_iter()
            .find(|known| known.as_str() == kind)
            .ok_or_else(|| UnknownEventKind(kind.to_owned()))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(kind: &str) -> Result<Self, Self::Err> {
        Self::parse(kind)
    }
}

/// An event `type` that no [`EventKind`] spells: from a producer newer
/// than this build, or a mistake. Each consumer decides what to do with it
/// (today all of them log it and leave the event alone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventKind(pub String);

/// `payment-events`, keyed by payment id.
pub mod payment {
    use super::EventKind;

    /// A payment was created from a basket (PENDING).
    pub const CREATED: &str = EventKind::PaymentCreated.as_str();
    /// The provider captured the money.
    pub const COMPLETED: &str = EventKind::PaymentCompleted.as_str();
    /// The provider declined or failed.
    pub const FAILED: &str = EventKind::PaymentFailed.as_str();
    /// Some or all of a captured payment was refunded.
    pub const REFUNDED: &str = EventKind::PaymentRefunded.as_str();
    /// The owner cancelled a pending payment.
    pub const CANCELLED: &str = EventKind::PaymentCancelled.as_str();
    /// A pending payment outlived its time to pay.
    pub const EXPIRED: &str = EventKind::PaymentExpired.as_str();
}

/// `product-events`, keyed by product id.
pub mod product {
    use super::EventKind;

    /// Stock changed (a sale, an admin adjustment).
    pub const STOCK_UPDATED: &str = EventKind::StockUpdated.as_str();
    /// Stock fell below the low-stock threshold.
    pub const STOCK_LOW: &str = EventKind::StockLow.as_str();
    /// Stock reached zero.
    pub const STOCK_OUT: &str = EventKind::StockOut.as_str();
}

/// `basket-events`, keyed by user id.
pub mod basket {
    use super::EventKind;

    /// The basket was emptied (by its owner or by a completed payment).
    pub const CLEARED: &str = EventKind::BasketCleared.as_str();
    /// A basket with items was left untouched for the basket TTL.
    pub const ABANDONED: &str = EventKind::BasketAbandoned.as_str();
}

/// `notification-events`, keyed by user id.
pub mod notification {
    use super::EventKind;

    /// A notification was stored for a user (feeds `notificationAdded`).
    pub const CREATED: &str = EventKind::NotificationCreated.as_str();
}

/// Data of every payment event: the payment as it is after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentData {
    /// The payment.
    pub payment_id: Uuid,
    /// Its owner.
    pub user_id: String,
    /// Its status after the change (`COMPLETED`...).
    pub status: String,
    /// The amount charged.
    pub amount: Decimal,
    /// How much has been refunded so far.
    pub refunded_amount: Decimal,
    /// ISO 4217 currency.
    pub currency: String,
    /// The basket it was created from.
    pub basket_id: Option<Uuid>,
    /// What was bought.
    pub items: Vec<PaymentLine>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// One line of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name when bought.
    pub product_name: String,
    /// How many.
    pub quantity: i32,
}

/// Data of every stock event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockData {
    /// The product.
    pub product_id: Uuid,
    /// Its name.
    pub product_name: String,
    /// Stock before the change.
    pub previous_quantity: i32,
    /// Stock after the change.
    pub stock_quantity: i32,
    /// `stock_quantity - previous_quantity`.
    pub delta: i32,
    /// The low-stock threshold in force.
    pub low_stock_threshold: i32,
    /// `sale`, `adjustment`, `reservation` (a checkout took the units) or
    /// `release` (a checkout gave them back).
    pub reason: String,
    /// The payment that sold it, for sales.
    pub payment_id: Option<Uuid>,
}

/// Data of every basket event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasketData {
    /// The basket.
    pub basket_id: Uuid,
    /// Its owner.
    pub user_id: String,
    /// Units the event is about: those removed (cleared) or those in it
    /// now (abandoned).
    pub item_count: i32,
    /// `checkout`, `owner` or `idle`.
    pub reason: String,
    /// The payment that emptied it, for checkouts.
    pub payment_id: Option<Uuid>,
    /// The lines removed (cleared) or held (abandoned), with the units
    /// concerned. A checkout removes only what its payment bought, so
    /// lines added meanwhile are not listed and stay in the basket.
    /// Absent in events published before it existed (read as empty).
    #[serde(default)]
    pub lines: Vec<BasketLine>,
}

/// One line of a basket event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasketLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name as the basket held it.
    pub product_name: String,
    /// Units removed (cleared) or held (abandoned).
    pub quantity: i32,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The wire names, written out rather than taken from `as_str`: each
    /// one is a contract with consumers already deployed.
    const WIRE: [(EventKind, &str); 12] = [
        (EventKind::PaymentCreated, "PaymentCreated"),
        (EventKind::PaymentCompleted, "PaymentCompleted"),
        (EventKind::PaymentFailed, "PaymentFailed"),
        (EventKind::PaymentRefunded, "PaymentRefunded"),
        (EventKind::PaymentCancelled, "PaymentCancelled"),
        (EventKind::PaymentExpired, "PaymentExpired"),
        (EventKind::StockUpdated, "StockUpdated"),
        (EventKind::StockLow, "StockLow"),
        (EventKind::StockOut, "StockOut"),
        (EventKind::BasketCleared, "BasketCleared"),
        (EventKind::BasketAbandoned, "BasketAbandoned"),
        (EventKind::NotificationCreated, "NotificationCreated"),
    ];

    #[test]
    fn known_kinds_round_trip_through_their_wire_names() {
        for (kind, wire) in WIRE {
            assert_eq!(kind.as_str(), wire);
            assert_eq!(kind.to_string(), wire);
            assert_eq!(EventKind::parse(wire), Ok(kind));
            assert_eq!(wire.parse::<EventKind>(), Ok(kind));
            assert_eq!(EventKind::parse(kind.as_str()), Ok(kind));
        }
    }

    #[test]
    fn all_lists_every_kind_once() {
        let listed: HashSet<EventKind> = EventKind::ALL.into_iter().collect();
        let pinned: HashSet<EventKind> = WIRE.into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(listed.len(), EventKind::ALL.len(), "a kind listed twice");
        assert_eq!(listed, pinned);
        let names: HashSet<&str> = EventKind::ALL.into_iter().map(EventKind::as_str).collect();
        assert_eq!(names.len(), EventKind::ALL.len(), "two kinds share a name");
    }

    #[test]
    fn the_string_constants_are_the_wire_names() {
        assert_eq!(payment::CREATED, "PaymentCreated");
        assert_eq!(payment::COMPLETED, "PaymentCompleted");
        assert_eq!(payment::FAILED, "PaymentFailed");
        assert_eq!(payment::REFUNDED, "PaymentRefunded");
        assert_eq!(payment::CANCELLED, "PaymentCancelled");
        assert_eq!(payment::EXPIRED, "PaymentExpired");
        assert_eq!(product::STOCK_UPDATED, "StockUpdated");
        assert_eq!(product::STOCK_LOW, "StockLow");
        assert_eq!(product::STOCK_OUT, "StockOut");
        assert_eq!(basket::CLEARED, "BasketCleared");
        assert_eq!(basket::ABANDONED, "BasketAbandoned");
        assert_eq!(notification::CREATED, "NotificationCreated");
    }

    #[test]
    fn an_unknown_kind_is_reported_not_matched_to_a_near_one() {
        for wire in [
            "PaymentSettled",    // a kind this build does not know
            "Payment",           // a prefix of every payment kind
            "PaymentCompletedX", // a known kind with more after it
            "paymentCompleted",  // the wrong case
            "PAYMENT_COMPLETED", // the constant's name, not its value
            " StockLow",         // surrounding space
            "StockLow\n",
            "",
        ] {
            assert_eq!(
                EventKind::parse(wire),
                Err(UnknownEventKind(wire.to_owned())),
                "{wire:?}"
            );
            assert!(wire.parse::<EventKind>().is_err(), "{wire:?}");
        }
        assert_eq!(
            EventKind::parse("PaymentSettled").unwrap_err().to_string(),
            "unknown event type \"PaymentSettled\""
        );
    }

    #[test]
    fn basket_data_without_lines_still_reads() {
        // Published before `lines` existed: still accepted, with no lines.
        let old = serde_json::json!({
            "basketId": "01a203fa-2f09-7245-a3f7-f3ba7e44b7f3",
            "userId": "alice",
            "itemCount": 3,
            "reason": "checkout",
            "paymentId": null,
        });
        let data: BasketData = serde_json::from_value(old).unwrap();
        assert_eq!(data.item_count, 3);
        assert!(data.lines.is_empty());
        let written = serde_json::to_value(&data).unwrap();
        assert_eq!(written["lines"], serde_json::json!([]));
    }
}
