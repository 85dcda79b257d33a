//! `stockChanged`: stock levels as they change, from this replica's live
//! feed of `product-events`.

use async_graphql::{Context, ID, Object, Result, Subscription as GqlSubscription};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::events::contract::{EventKind, StockData};
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::graphql::authenticated;

use crate::domain::parse_product_id;
use crate::graphql::ProductLoader;
use crate::graphql::types::ProductNode;
use async_graphql::dataloader::DataLoader;

/// The subscription root.
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Every stock change of product `productId` (of every product when
    /// omitted), from now on. Signed-in callers only.
    #[graphql(directive = authenticated::apply())]
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        product_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<StockChange>> + use<>> {
        auth::viewer(ctx)?;
        let only = product_id
            .map(|id| parse_product_id(&id))
            .transpose()
            .map_err(to_graphql)?;
        let feed = ctx.data_unchecked::<LiveFeed>();
        Ok(feed.events().filter_map(move |item| {
            let change = match item {
                Err(lagged) => Some(Err(lagged.to_graphql())),
                Ok(event) if event.is(EventKind::StockUpdated) => event
                    .data::<StockData>()
                    .ok()
                    .filter(|data| only.is_none_or(|id| id == data.product_id))
                    .map(|data| {
                        Ok(StockChange {
                            data,
                            at: event.time,
                        })
                    }),
                Ok(_) => None,
            };
            futures::future::ready(change)
        }))
    }
}

/// One change of a product's stock.
pub struct StockChange {
    data: StockData,
    at: DateTime<Utc>,
}

#[Object]
impl StockChange {
    /// The product's id.
    async fn product_id(&self) -> ID {
        ID(self.data.product_id.to_string())
    }

    /// The product as it is now (`null` if it was deleted since).
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<ProductNode>> {
        let loader = ctx.data_unchecked::<DataLoader<ProductLoader>>();
        Ok(loader
            .load_one(self.data.product_id)
            .await
            .map_err(|err| shopgraph_core::error::internal(&*err))?
            .map(ProductNode))
    }

    /// Units before the change.
    async fn previous_quantity(&self) -> i32 {
        self.data.previous_quantity
    }

    /// Units after the change.
    async fn quantity(&self) -> i32 {
        self.data.stock_quantity
    }

    /// `quantity - previousQuantity`.
    async fn delta(&self) -> i32 {
        self.data.delta
    }

    /// Whether stock is now below the low-stock threshold.
    async fn low_stock(&self) -> bool {
        self.data.stock_quantity < self.data.low_stock_threshold
    }

    /// `sale`, `adjustment`, `reservation` (a checkout took the units) or
    /// `release` (a checkout gave them back).
    async fn reason(&self) -> &str {
        &self.data.reason
    }

    /// When it changed.
    async fn at(&self) -> DateTime<Utc> {
        self.at
    }
}
