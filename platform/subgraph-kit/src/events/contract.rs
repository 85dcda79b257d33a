//! The published events: their type names and data, shared by producers
//! and consumers so both sides read the same contract.
//!
//! `platform/subgraph-kit/src/events/README.md` describes each one for people; this module is the
//! same list for the compiler. Data is camelCase JSON; money amounts are
//! decimal strings, as in the GraphQL API.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `payment-events`, keyed by payment id.
pub mod payment {
    /// A payment was created from a basket (PENDING).
    pub const CREATED: &str = "PaymentCreated";
    /// The provider captured the money.
    pub const COMPLETED: &str = "PaymentCompleted";
    /// The provider declined or failed.
    pub const FAILED: &str = "PaymentFailed";
    /// Some or all of a captured payment was refunded.
    pub const REFUNDED: &str = "PaymentRefunded";
    /// The owner cancelled a pending payment.
    pub const CANCELLED: &str = "PaymentCancelled";
    /// A pending payment outlived its time to pay.
    pub const EXPIRED: &str = "PaymentExpired";
}

/// `product-events`, keyed by product id.
pub mod product {
    /// Stock changed (a sale, an admin adjustment).
    pub const STOCK_UPDATED: &str = "StockUpdated";
    /// Stock fell below the low-stock threshold.
    pub const STOCK_LOW: &str = "StockLow";
    /// Stock reached zero.
    pub const STOCK_OUT: &str = "StockOut";
}

/// `basket-events`, keyed by user id.
pub mod basket {
    /// The basket was emptied (by its owner or by a completed payment).
    pub const CLEARED: &str = "BasketCleared";
    /// A basket with items was left untouched for the basket TTL.
    pub const ABANDONED: &str = "BasketAbandoned";
}

/// `notification-events`, keyed by user id.
pub mod notification {
    /// A notification was stored for a user (feeds `notificationAdded`).
    pub const CREATED: &str = "NotificationCreated";
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
    /// `sale` or `adjustment`.
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
    /// Units in it before the event (cleared) or now (abandoned).
    pub item_count: i32,
    /// `checkout`, `owner` or `idle`.
    pub reason: String,
    /// The payment that emptied it, for checkouts.
    pub payment_id: Option<Uuid>,
}
