//! The basket source adapter: reads the caller's basket from the basket
//! subgraph over GraphQL, with the caller's own credentials.

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use subgraph_kit::upstream::{Credentials, GraphqlClient, UpstreamError};
use uuid::Uuid;

use crate::domain::{BasketLine, BasketSnapshot, BasketSource};

const BASKET_QUERY: &str = "query PaymentBasket { myBasket { id items { product { id } productName quantity unitPrice { amount currency } } } }";

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
}
