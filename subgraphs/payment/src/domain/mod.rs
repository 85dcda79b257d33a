//! Payments and their rules, free of HTTP, GraphQL and SQL.
//!
//! A payment is created from a snapshot of the caller's basket (amount
//! computed here, in exact decimals), moves through the state machine in
//! [`status`], and is charged through the [`provider`] port; refunds
//! ([`Refund`]) are recorded before the provider is asked. Card numbers
//! live only in [`Card`], whose `Debug` shows the last four digits.

mod basket;
mod card;
mod error;
mod order;
pub mod provider;
mod refund;
mod status;
mod stock;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use subgraph_kit::money::normalize;
use uuid::Uuid;

pub use subgraph_kit::clock::now;

pub use basket::{BasketLine, BasketSnapshot, BasketSource};
pub use card::Card;
pub use error::PaymentError;
pub use order::{order_fingerprint, same_lines};
pub use refund::{Refund, RefundStatus};
pub use status::PaymentStatus;
pub use stock::StockReservations;

/// How a payment is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    /// A payment card, charged through the provider.
    Card,
}

impl PaymentMethod {
    /// The stored form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Card => "CARD",
        }
    }
}

/// One line of the basket a payment was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentItem {
    /// The product (owned by the product subgraph).
    pub product_id: Uuid,
    /// Its name when the basket was snapshotted.
    pub product_name: String,
    /// Units.
    pub quantity: i32,
    /// Unit price when the basket was snapshotted.
    pub unit_price: Decimal,
    /// Currency of `unit_price`.
    pub currency: String,
}

impl PaymentItem {
    /// `unit_price × quantity`, exact.
    pub fn subtotal(&self) -> Decimal {
        normalize(self.unit_price * Decimal::from(self.quantity))
    }
}

/// A payment as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Stable id.
    pub id: Uuid,
    /// The payer.
    pub user_id: String,
    /// The basket it was created from.
    pub basket_id: Option<Uuid>,
    /// Amount due, from the basket snapshot.
    pub amount: Decimal,
    /// Amount refunded so far (0 ≤ refunded ≤ amount).
    pub refunded_amount: Decimal,
    /// Currency of both amounts.
    pub currency: String,
    /// Where it is in its life.
    pub status: PaymentStatus,
    /// How it is paid.
    pub method: PaymentMethod,
    /// The provider's name.
    pub provider: String,
    /// The provider's reference for the charge.
    pub provider_id: Option<String>,
    /// Free text from the payer.
    pub description: Option<String>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    /// Whether a failure was transient (a new attempt may succeed).
    pub retryable: bool,
    /// Last four digits of the card charged.
    pub card_last4: Option<String>,
    /// The payer's idempotency key.
    pub idempotency_key: String,
    /// What the request that created it asked for (idempotency check).
    pub request_fingerprint: String,
    /// [`order_fingerprint`] of its caller and lines (idempotency check);
    /// `None` for payments made before it was stored.
    pub order_fingerprint: Option<String>,
    /// The basket lines it was created from.
    pub items: Vec<PaymentItem>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When the provider answered.
    pub processed_at: Option<DateTime<Utc>>,
    /// When a pending payment expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Payment {
    /// What is left to refund.
    pub fn refundable(&self) -> Decimal {
        self.amount - self.refunded_amount
    }

    /// Whether `user_id` may see and act on this payment as its owner.
    pub fn is_owned_by(&self, user_id: &str) -> bool {
        self.user_id == user_id
    }
}

/// A payment to create (validated, priced from the basket).
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Its id, chosen before it is stored: the checkout's stock
    /// reservation and basket lock carry the same id.
    pub id: Uuid,
    /// The payer.
    pub user_id: String,
    /// The basket snapshot's id.
    pub basket_id: Option<Uuid>,
    /// Sum of the lines.
    pub amount: Decimal,
    /// Currency of the lines.
    pub currency: String,
    /// How it is paid.
    pub method: PaymentMethod,
    /// The provider that will charge it.
    pub provider: String,
    /// Free text.
    pub description: Option<String>,
    /// The payer's idempotency key.
    pub idempotency_key: String,
    /// What the request asked for.
    pub request_fingerprint: String,
    /// [`order_fingerprint`] of the caller and the lines.
    pub order_fingerprint: String,
    /// The lines.
    pub items: Vec<PaymentItem>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it expires unless processed.
    pub expires_at: DateTime<Utc>,
}

/// Checks a client's idempotency key: 1 to 200 visible characters.
pub fn validate_idempotency_key(key: &str) -> Result<String, PaymentError> {
    let key = key.trim();
    if key.is_empty() || key.chars().count() > 200 || key.chars().any(char::is_control) {
        return Err(PaymentError::invalid(
            "idempotencyKey",
            "must be 1 to 200 visible characters",
        ));
    }
    Ok(key.to_owned())
}

/// Checks an optional description: at most 500 characters.
pub fn validate_description(description: Option<String>) -> Result<Option<String>, PaymentError> {
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(PaymentError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(description)
}

/// Checks a refund amount against what is left: positive, cents, not more.
pub fn validate_refund(
    requested: Option<Decimal>,
    refundable: Decimal,
) -> Result<Decimal, PaymentError> {
    let amount = requested.unwrap_or(refundable);
    if amount <= Decimal::ZERO {
        return Err(PaymentError::invalid("amount", "must be positive"));
    }
    if amount.normalize().scale() > subgraph_kit::money::MONEY_SCALE {
        return Err(PaymentError::invalid(
            "amount",
            "must have at most 2 decimal places",
        ));
    }
    if amount > refundable {
        return Err(PaymentError::invalid(
            "amount",
            format!("must not exceed the refundable {refundable}"),
        ));
    }
    Ok(normalize(amount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn refunds_are_bounded_by_what_is_left() {
        let left = Decimal::from_str("10.00").unwrap();
        assert_eq!(validate_refund(None, left).unwrap().to_string(), "10.00");
        assert_eq!(
            validate_refund(Some(Decimal::from_str("2.5").unwrap()), left)
                .unwrap()
                .to_string(),
            "2.50"
        );
        assert!(validate_refund(Some(Decimal::from_str("10.01").unwrap()), left).is_err());
        assert!(validate_refund(Some(Decimal::ZERO), left).is_err());
        assert!(validate_refund(Some(Decimal::from_str("0.001").unwrap()), left).is_err());
        assert!(
            validate_refund(None, Decimal::ZERO).is_err(),
            "nothing left to refund"
        );
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(validate_idempotency_key(" ").is_err());
        assert!(validate_idempotency_key(&"k".repeat(201)).is_err());
        assert_eq!(validate_idempotency_key(" order-1 ").unwrap(), "order-1");
    }
}
