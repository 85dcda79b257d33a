//! The port through which a payment reads, locks and releases the
//! caller's basket.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use subgraph_kit::upstream::{Credentials, UpstreamError};
use uuid::Uuid;

use super::PaymentItem;

/// One line of the caller's basket, as the basket subgraph priced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name when added.
    pub product_name: String,
    /// Units.
    pub quantity: i32,
    /// Unit price when added.
    pub unit_price: Decimal,
    /// Currency of `unit_price`.
    pub currency: String,
}

/// The caller's basket at the moment a payment is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketSnapshot {
    /// The basket.
    pub id: Uuid,
    /// Its lines.
    pub lines: Vec<BasketLine>,
}

/// The caller's basket in the basket subgraph: read it, and lock it for
/// one checkout so no second checkout buys the same lines while the
/// first one's events are still on their way.
pub trait BasketSource: Send + Sync + 'static {
    /// The caller's current basket.
    fn current_basket<'a>(
        &'a self,
        caller: &'a Credentials,
    ) -> BoxFuture<'a, Result<BasketSnapshot, UpstreamError>>;

    /// Locks the caller's basket for payment `payment_id` until
    /// `locked_until`, if it is unlocked (or already locked for this
    /// payment) and its lines are still exactly `lines`. A refusal is a
    /// coded [`UpstreamError::Rejected`] (`CONFLICT`, `BAD_USER_INPUT`).
    fn begin_checkout<'a>(
        &'a self,
        caller: &'a Credentials,
        payment_id: Uuid,
        lines: &'a [PaymentItem],
        locked_until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>>;

    /// Removes the lock of payment `payment_id` (lines stay); releasing a
    /// lock that is gone or another payment's is a no-op.
    fn release_checkout<'a>(
        &'a self,
        caller: &'a Credentials,
        payment_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>>;
}
