//! Write side: checkout and the payment life cycle.

use async_graphql::{Context, ID, Object, Result};
use rust_decimal::Decimal;
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;
use subgraph_kit::upstream::Credentials;

use super::types::{
    CardInput, CheckoutInput, CreatePaymentInput, PaymentNode, payment_error, payments,
};
use crate::domain::PaymentError;

/// Root mutation type of the payment subgraph.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Pays for the caller's basket: reserve its units, lock it, create the
    /// payment, charge. Idempotent on `idempotencyKey` (bound to the
    /// order). Refused with `OUT_OF_STOCK`, `PRODUCT_UNAVAILABLE` or
    /// `PRICE_CHANGED` (`extensions.lines`) before anything is charged;
    /// once charged, always answers with the payment.
    #[graphql(directive = authenticated::apply())]
    async fn checkout(&self, ctx: &Context<'_>, input: CheckoutInput) -> Result<PaymentNode> {
        let viewer = auth::viewer(ctx)?;
        let card = input.card.parse().map_err(payment_error)?;
        payments(ctx)
            .checkout(viewer, credentials(ctx), (&input).into(), card)
            .await
            .map(PaymentNode)
            .map_err(payment_error)
    }

    /// Creates a PENDING payment for the caller's basket, holding its units
    /// and the basket until it is processed, cancelled or expires.
    /// Idempotent on `idempotencyKey` (bound to the order).
    #[graphql(directive = authenticated::apply())]
    async fn create_payment(
        &self,
        ctx: &Context<'_>,
        input: CreatePaymentInput,
    ) -> Result<PaymentNode> {
        let viewer = auth::viewer(ctx)?;
        payments(ctx)
            .create(viewer, credentials(ctx), input.into())
            .await
            .map(PaymentNode)
            .map_err(payment_error)
    }

    /// Charges a PENDING payment of the caller's with `card`.
    #[graphql(directive = authenticated::apply())]
    async fn process_payment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        card: Option<CardInput>,
    ) -> Result<PaymentNode> {
        let viewer = auth::viewer(ctx)?;
        let card = card
            .ok_or_else(|| PaymentError::invalid("card", "is required for card payments"))
            .and_then(|card| card.parse())
            .map_err(payment_error)?;
        payments(ctx)
            .process(viewer, credentials(ctx), &id, card)
            .await
            .map(PaymentNode)
            .map_err(payment_error)
    }

    /// Cancels a PENDING payment of the caller's.
    #[graphql(directive = authenticated::apply())]
    async fn cancel_payment(&self, ctx: &Context<'_>, id: ID) -> Result<PaymentNode> {
        let viewer = auth::viewer(ctx)?;
        payments(ctx)
            .cancel(viewer, credentials(ctx), &id)
            .await
            .map(PaymentNode)
            .map_err(payment_error)
    }

    /// Refunds `amount` (everything left when omitted) of a captured
    /// payment (admin).
    #[graphql(requires_scopes = "admin")]
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        amount: Option<Decimal>,
    ) -> Result<PaymentNode> {
        auth::admin(ctx)?;
        payments(ctx)
            .refund(&id, amount)
            .await
            .map(PaymentNode)
            .map_err(payment_error)
    }
}

fn credentials<'a>(ctx: &Context<'a>) -> &'a Credentials {
    ctx.data_unchecked::<Credentials>()
}
