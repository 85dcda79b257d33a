//! The basket source adapter: reads, locks and releases the caller's
//! basket in the basket subgraph over GraphQL (the signed hop), with the
//! caller's own credentials. `beginCheckout` and `releaseCheckout` are
//! `@inaccessible` in the basket's schema: only services call them.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use subgraph_kit::upstream::{Credentials, GraphqlClient, UpstreamError};
use uuid::Uuid;

use crate::domain::{BasketLine, BasketSnapshot, BasketSource, PaymentItem};

const BASKET_QUERY: &str = "query PaymentBasket { myBasket { id items { product { id } productName quantity unitPrice { amount currency } } } }";

const BEGIN_CHECKOUT: &str = "mutation PaymentBeginCheckout($paymentId: ID!, $lines: [CheckoutLineInput!]!, $lockedUntil: DateTime!) { beginCheckout(paymentId: $paymentId, lines: $lines, lockedUntil: $lockedUntil) { id } }";

const RELEASE_CHECKOUT: &str =
    "mutation PaymentReleaseCheckout($paymentId: ID!) { releaseCheckout(paymentId: $paymentId) }";

/// [`BasketSource`] backed by the basket subgraph.
pub struct GraphqlBaskets {
    client: GraphqlClient,
}

impl GraphqlBaskets {
    /// A basket source that asks the basket subgraph through `client`.
    pub fn new(client: GraphqlClient) -> Self {
        Self { client }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    my_basket: Basket,
}

#[derive(Deserialize)]
struct Basket {
    id: Uuid,
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    product: ProductId,
    product_name: String,
    quantity: i32,
    unit_price: Price,
}

/// `beginCheckout`'s answer: present (a locked basket) or an error.
#[derive(Deserialize)]
struct Begun {
    #[serde(rename = "beginCheckout")]
    _basket: IgnoredAny,
}

/// `releaseCheckout`'s answer (always `true` when there is no error).
#[derive(Deserialize)]
struct Released {
    #[serde(rename = "releaseCheckout")]
    _released: bool,
}

/// The `lines` variable of `beginCheckout` and `reserveStock`: product,
/// quantity and the price the basket holds, as `Decimal` strings.
pub(crate) fn line_inputs(lines: &[PaymentItem]) -> serde_json::Value {
    lines
        .iter()
        .map(|line| {
            json!({
                "productId": line.product_id,
                "quantity": line.quantity,
                "unitPrice": line.unit_price.to_string(),
                "currency": line.currency,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ProductId {
    id: Uuid,
}

#[derive(Deserialize)]
struct Price {
    amount: Decimal,
    currency: String,
}

impl BasketSource for GraphqlBaskets {
    fn current_basket<'a>(
        &'a self,
        caller: &'a Credentials,
    ) -> BoxFuture<'a, Result<BasketSnapshot, UpstreamError>> {
        Box::pin(async move {
            let data: Data = self
                .client
                .query(BASKET_QUERY, json!({}), Some(caller))
                .await?;
            Ok(BasketSnapshot {
                id: data.my_basket.id,
                lines: data
                    .my_basket
                    .items
                    .into_iter()
                    .map(|item| BasketLine {
                        product_id: item.product.id,
                        product_name: item.product_name,
                        quantity: item.quantity,
                        unit_price: item.unit_price.amount,
                        currency: item.unit_price.currency,
                    })
                    .collect(),
            })
        })
    }

    fn begin_checkout<'a>(
        &'a self,
        caller: &'a Credentials,
        payment_id: Uuid,
        lines: &'a [PaymentItem],
        locked_until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            let variables = json!({
                "paymentId": payment_id,
                "lines": line_inputs(lines),
                "lockedUntil": locked_until.to_rfc3339(),
            });
            self.client
                .query::<Begun>(BEGIN_CHECKOUT, variables, Some(caller))
                .await
                .map(drop)
        })
    }

    fn release_checkout<'a>(
        &'a self,
        caller: &'a Credentials,
        payment_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            self.client
                .query::<Released>(
                    RELEASE_CHECKOUT,
                    json!({ "paymentId": payment_id }),
                    Some(caller),
                )
                .await
                .map(drop)
        })
    }
}
