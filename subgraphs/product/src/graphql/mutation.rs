//! Write side: admin-only catalogue changes.

use async_graphql::{Context, ID, Object, Result};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;

use super::CatalogSettings;
use super::types::{CreateProductInput, ProductNode, UpdateProductInput};
use crate::domain::{NewProduct, ProductPatch, parse_product_id, validate_stock_delta};
use crate::store::ProductStore;

/// Root mutation type of the product subgraph.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Adds a product to the catalogue (admin).
    #[graphql(requires_scopes = "admin")]
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Result<ProductNode> {
        auth::admin(ctx)?;
        let currency = &ctx.data_unchecked::<CatalogSettings>().default_currency;
        let product = NewProduct::parse(input.into(), currency).map_err(to_graphql)?;
        let created = store(ctx).create(product).await.map_err(to_graphql)?;
        tracing::info!(product_id = %created.id, "product created");
        Ok(ProductNode(created))
    }

    /// Changes fields of a product (admin).
    #[graphql(requires_scopes = "admin")]
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProductInput,
    ) -> Result<ProductNode> {
        auth::admin(ctx)?;
        let id = parse_product_id(&id).map_err(to_graphql)?;
        let patch = ProductPatch::parse(input.into()).map_err(to_graphql)?;
        let updated = store(ctx).update(id, patch).await.map_err(to_graphql)?;
        Ok(ProductNode(updated))
    }

    /// Removes a product (admin). Existing baskets and payments keep their snapshots.
    #[graphql(requires_scopes = "admin")]
    async fn delete_product(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        auth::admin(ctx)?;
        let id = parse_product_id(&id).map_err(to_graphql)?;
        store(ctx).delete(id).await.map_err(to_graphql)?;
        tracing::info!(product_id = %id, "product deleted");
        Ok(true)
    }

    /// Adds `delta` units to the stock (negative to remove), atomically;
    /// refuses with `CONFLICT` rather than going below zero (admin).
    #[graphql(requires_scopes = "admin")]
    async fn adjust_stock(&self, ctx: &Context<'_>, id: ID, delta: i32) -> Result<ProductNode> {
        auth::admin(ctx)?;
        let id = parse_product_id(&id).map_err(to_graphql)?;
        let delta = validate_stock_delta(delta).map_err(to_graphql)?;
        let adjustment = store(ctx)
            .adjust_stock(id, delta)
            .await
            .map_err(to_graphql)?;
        tracing::debug!(
            product_id = %id,
            from = adjustment.previous_stock,
            to = adjustment.product.stock_quantity,
            "stock adjusted"
        );
        Ok(ProductNode(adjustment.product))
    }
}

fn store<'a>(ctx: &Context<'a>) -> &'a ProductStore {
    ctx.data_unchecked::<ProductStore>()
}
