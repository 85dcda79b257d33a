//! The port through which a checkout holds the units it is about to
//! charge for, so that no two payments are taken for the same last units.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use subgraph_kit::upstream::{Credentials, UpstreamError};
use uuid::Uuid;

use super::PaymentItem;

/// Stock reservations in the product subgraph, one per payment (the
/// reservation id is the payment id). Settling a reservation (sold when
/// the payment completes, released when it fails, is cancelled or
/// expires) happens in product on the payment events, not through here.
pub trait StockReservations: Send + Sync + 'static {
    /// Takes every line's units out of stock under reservation
    /// `reservation_id` until `expires_at`, all or nothing, at the lines'
    /// prices. A refusal is a coded [`UpstreamError::Rejected`]
    /// (`PRODUCT_UNAVAILABLE`, `PRICE_CHANGED`, `OUT_OF_STOCK`); the same
    /// id again is the same reservation.
    fn reserve<'a>(
        &'a self,
        caller: &'a Credentials,
        reservation_id: Uuid,
        expires_at: DateTime<Utc>,
        lines: &'a [PaymentItem],
    ) -> BoxFuture<'a, Result<(), UpstreamError>>;

    /// Puts reservation `reservation_id`'s units back (the compensation of
    /// a checkout that stopped before its payment existed); a no-op for an
    /// unknown, released or sold reservation.
    fn release<'a>(
        &'a self,
        caller: &'a Credentials,
        reservation_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>>;
}
