//! The product catalogue adapter: asks the product subgraph over GraphQL.

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use subgraph_kit::upstream::GraphqlClient;
use uuid::Uuid;

use crate::domain::{CatalogProduct, CatalogUnavailable, ProductCatalog};

const PRODUCT_QUERY: &str = "query BasketProduct($id: ID!) { product(id: $id) { id name category stockQuantity price { amount currency } } }";

/// [`ProductCatalog`] backed by the product subgraph.
pub struct GraphqlCatalog {
    client: GraphqlClient,
}

impl GraphqlCatalog {
    /// A catalogue that asks the product subgraph through `client`.
    pub fn new(client: GraphqlClient) -> Self {
        Self { client }
    }
}

#[derive(Deserialize)]
struct Data {
    product: Option<Product>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    id: Uuid,
    name: String,
    category: String,
    stock_quantity: i32,
    price: Price,
}

#[derive(Deserialize)]
struct Price {
    amount: Decimal,
    currency: String,
}

impl ProductCatalog for GraphqlCatalog {
    fn product(
        &self,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<CatalogProduct>, CatalogUnavailable>> {
        Box::pin(async move {
            let data: Data = self
                .client
                .query(PRODUCT_QUERY, json!({ "id": id.to_string() }), None)
                .await
                .map_err(|err| CatalogUnavailable(Box::new(err)))?;
            Ok(data.product.map(|p| CatalogProduct {
                id: p.id,
                name: p.name,
                category: p.category,
                price: p.price.amount,
                currency: p.price.currency,
                stock: p.stock_quantity,
            }))
        })
    }
}
