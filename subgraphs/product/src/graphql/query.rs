//! Read side: `product`, `products`, `categories` and the `Product` entity.

use std::sync::Arc;
use subgraph_kit::cost::{
    ASSUMED_CATEGORIES, FIRST_IS_OPTIONAL, PAGE_ASSUMED_SIZE, list_size, page_fields, page_slicing,
};

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Object, Result};
use shopgraph_core::error::{ErrorCode, coded, to_graphql};

use super::loader::ProductLoader;
use super::types::{ProductConnection, ProductFilterInput, ProductNode, ProductSort, connection};
use crate::domain::{ListQuery, parse_product_id};
use crate::store::ProductStore;

/// Root query type of the product subgraph.
pub struct Query;

#[Object]
impl Query {
    /// One product by id; `null` when it does not exist.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductNode>> {
        load(ctx, &id).await
    }

    /// The catalogue, filtered, sorted and paginated (at most 100 per page).
    #[graphql(
        complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity",
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL)
    )]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ProductFilterInput>,
        sort: Option<ProductSort>,
    ) -> Result<ProductConnection> {
        let query = ListQuery::parse(
            first,
            after.as_deref(),
            filter.unwrap_or_default().into(),
            sort.unwrap_or_default().into(),
        )
        .map_err(to_graphql)?;
        let page = ctx
            .data_unchecked::<ProductStore>()
            .list(&query)
            .await
            .map_err(to_graphql)?;
        Ok(connection(query, page))
    }

    /// Every category that has at least one product, alphabetically.
    #[graphql(directive = list_size::apply(ASSUMED_CATEGORIES, None, None, None))]
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        ctx.data_unchecked::<ProductStore>()
            .categories()
            .await
            .map_err(to_graphql)
    }

    /// Federation entry point: resolves `Product` representations in batches.
    #[graphql(entity)]
    async fn find_product_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductNode>> {
        load(ctx, &id).await
    }
}

async fn load(ctx: &Context<'_>, id: &ID) -> Result<Option<ProductNode>> {
    let Ok(id) = parse_product_id(id) else {
        return Ok(None);
    };
    ctx.data_unchecked::<DataLoader<ProductLoader>>()
        .load_one(id)
        .await
        .map(|product| product.map(ProductNode))
        .map_err(|err| match Arc::try_unwrap(err) {
            Ok(err) => to_graphql(err),
            Err(shared) => {
                tracing::error!(error = %shopgraph_core::error::error_chain(&*shared), "product batch failed");
                coded(ErrorCode::Internal, "internal server error")
            }
        })
}
