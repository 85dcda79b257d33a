//! Write side: admin-only catalogue changes, and the checkout's stock
//! reservations (subgraph-only, `@inaccessible`, for the signed-in payer
//! that payment forwards).

use async_graphql::{Context, ID, Object, Result};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;

use super::CatalogSettings;
use super::error::product_error;
use super::reservation::{ReserveStockInput, StockReservation};
use super::types::{CreateProductInput, ProductNode, UpdateProductInput};
use crate::domain::{
    NewProduct, NewReservation, ProductPatch, ReleaseOutcome, now, parse_product_id,
    validate_stock_delta,
};
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

    /// Takes every line's units from stock for the signed-in payer's
    /// checkout, all or nothing, until the payment settles or `expiresAt`
    /// passes. Refused with `PRODUCT_UNAVAILABLE`, `PRICE_CHANGED` or
    /// `OUT_OF_STOCK` (the first that applies; `extensions.lines` lists
    /// every line concerned); nothing is kept then. The same
    /// `reservationId` again returns the reservation as it is now.
    #[graphql(inaccessible, directive = authenticated::apply())]
    async fn reserve_stock(
        &self,
        ctx: &Context<'_>,
        input: ReserveStockInput,
    ) -> Result<StockReservation> {
        let viewer = auth::viewer(ctx)?;
        let new =
            NewReservation::parse(input.into(), &viewer.user_id, now()).map_err(product_error)?;
        let reservation = store(ctx).reserve(new).await.map_err(product_error)?;
        tracing::debug!(reservation_id = %reservation.id, status = reservation.status.as_str(), "stock reserved");
        Ok(reservation.into())
    }

    /// Gives a `RESERVED` reservation of the signed-in payer back to stock
    /// (the checkout's compensation). Idempotent: an unknown reservation or
    /// one already sold or released is left as it is; `true` either way.
    #[graphql(inaccessible, directive = authenticated::apply())]
    async fn release_stock_reservation(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
    ) -> Result<bool> {
        let viewer = auth::viewer(ctx)?;
        let Ok(id) = uuid::Uuid::parse_str(reservation_id.trim()) else {
            // No reservation has that id: nothing to release.
            return Ok(true);
        };
        let outcome = store(ctx)
            .release_for(&viewer.user_id, id)
            .await
            .map_err(product_error)?;
        if matches!(outcome, ReleaseOutcome::Released(_)) {
            crate::sweeper::record_released("compensation", 1);
            tracing::info!(reservation_id = %id, "stock reservation released by its checkout");
        }
        Ok(true)
    }
}

fn store<'a>(ctx: &Context<'a>) -> &'a ProductStore {
    ctx.data_unchecked::<ProductStore>()
}
