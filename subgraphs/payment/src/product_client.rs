//! The stock reservation adapter: reserves and releases a checkout's
//! units in the product subgraph over GraphQL (the signed hop), with the
//! caller's own credentials. `reserveStock` and `releaseStockReservation`
//! are `@inaccessible` in the product's schema: only services call them.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use subgraph_kit::upstream::{Credentials, GraphqlClient, UpstreamError};
use uuid::Uuid;

use crate::basket_client::line_inputs;
use crate::domain::{PaymentItem, StockReservations};

/// `reserveStock`'s lines: the basket's lines as `beginCheckout` gets
/// them, plus each product's name in the basket, with which product names
/// a product it no longer has in a `PRODUCT_UNAVAILABLE` refusal.
fn reservation_lines(lines: &[PaymentItem]) -> serde_json::Value {
    let mut inputs = line_inputs(lines);
    if let serde_json::Value::Array(inputs) = &mut inputs {
        for (input, line) in inputs.iter_mut().zip(lines) {
            if let serde_json::Value::Object(input) = input {
                input.insert("productName".into(), line.product_name.clone().into());
            }
        }
    }
    inputs
}

const RESERVE_STOCK: &str = "mutation PaymentReserveStock($input: ReserveStockInput!) { reserveStock(input: $input) { id status } }";

const RELEASE_STOCK: &str = "mutation PaymentReleaseStock($reservationId: ID!) { releaseStockReservation(reservationId: $reservationId) }";

/// [`StockReservations`] backed by the product subgraph.
pub struct GraphqlStock {
    client: GraphqlClient,
}

impl GraphqlStock {
    /// Stock reservations made through `client` (the product subgraph).
    pub fn new(client: GraphqlClient) -> Self {
        Self { client }
    }
}

/// `reserveStock`'s answer: present (the reservation) or an error.
#[derive(Deserialize)]
struct Reserved {
    #[serde(rename = "reserveStock")]
    _reservation: IgnoredAny,
}

/// `releaseStockReservation`'s answer (always `true` without an error).
#[derive(Deserialize)]
struct Released {
    #[serde(rename = "releaseStockReservation")]
    _released: bool,
}

impl StockReservations for GraphqlStock {
    fn reserve<'a>(
        &'a self,
        caller: &'a Credentials,
        reservation_id: Uuid,
        expires_at: DateTime<Utc>,
        lines: &'a [PaymentItem],
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            let input = json!({
                "reservationId": reservation_id,
                "expiresAt": expires_at.to_rfc3339(),
                "lines": reservation_lines(lines),
            });
            self.client
                .query::<Reserved>(RESERVE_STOCK, json!({ "input": input }), Some(caller))
                .await
                .map(drop)
        })
    }

    fn release<'a>(
        &'a self,
        caller: &'a Credentials,
        reservation_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            self.client
                .query::<Released>(
                    RELEASE_STOCK,
                    json!({ "reservationId": reservation_id }),
                    Some(caller),
                )
                .await
                .map(drop)
        })
    }
}
