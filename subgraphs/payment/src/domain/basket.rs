//! The port through which a payment reads the caller's basket.

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use subgraph_kit::upstream::{Credentials, UpstreamError};
use uuid::Uuid;

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

/// Reads the basket of the caller whose credentials are given.
pub trait BasketSource: Send + Sync + 'static {
    /// The caller's current basket.
    fn current_basket<'a>(
        &'a self,
        caller: &'a Credentials,
    ) -> BoxFuture<'a, Result<BasketSnapshot, UpstreamError>>;
}
