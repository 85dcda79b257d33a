//! Read side: payments by id, lists, the `Payment` and `User` entities.

use async_graphql::{Context, ID, Object, Result};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::cost::{
    FIRST_IS_OPTIONAL, PAGE_ASSUMED_SIZE, list_size, page_fields, page_slicing,
};
use subgraph_kit::graphql::authenticated;

use super::types::{
    PaymentConnection, PaymentNode, PaymentStatus, connection, payment_error, payments,
};
use crate::domain::PaymentError;
use crate::store::PaymentFilter;

/// Root query type of the payment subgraph.
pub struct Query;

#[Object]
impl Query {
    /// A payment of the caller's (any payment, for admins); `NOT_FOUND`
    /// for unknown ids and for other users' payments alike.
    #[graphql(directive = authenticated::apply())]
    async fn payment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<PaymentNode>> {
        let viewer = auth::viewer(ctx)?;
        payments(ctx)
            .get(viewer, &id)
            .await
            .map(|p| Some(PaymentNode(p)))
            .map_err(payment_error)
    }

    /// The caller's payments, newest first.
    #[graphql(
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL),
        directive = authenticated::apply()
    )]
    async fn my_payments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PaymentConnection> {
        let viewer = auth::viewer(ctx)?;
        list(
            ctx,
            PaymentFilter {
                user_id: Some(viewer.user_id.clone()),
                status: None,
            },
            first,
            after,
        )
        .await
    }

    /// Every payment, optionally in one status (admin).
    #[graphql(
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL),
        requires_scopes = "admin"
    )]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<PaymentStatus>,
    ) -> Result<PaymentConnection> {
        auth::admin(ctx)?;
        let filter = PaymentFilter {
            user_id: None,
            status: status.map(Into::into),
        };
        list(ctx, filter, first, after).await
    }

    /// Federation entry point for `Payment`: `null` unless the caller owns
    /// it or is an admin.
    #[graphql(entity)]
    async fn find_payment_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<PaymentNode>> {
        let viewer = auth::viewer(ctx)?;
        match payments(ctx).get(viewer, &id).await {
            Ok(payment) => Ok(Some(PaymentNode(payment))),
            Err(PaymentError::NotFound(_)) => Ok(None),
            Err(err) => Err(to_graphql(err)),
        }
    }

    /// Federation entry point for `User`.
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> UserNode {
        UserNode { id: id.0 }
    }
}

async fn list(
    ctx: &Context<'_>,
    filter: PaymentFilter,
    first: Option<i32>,
    after: Option<String>,
) -> Result<PaymentConnection> {
    let page = payments(ctx)
        .list(filter, first, after.as_deref())
        .await
        .map_err(payment_error)?;
    Ok(connection(page, after.is_some()))
}

/// A shop user; this subgraph adds their payments.
pub struct UserNode {
    id: String,
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// The user's payments, newest first; only the user (or an admin) may see them.
    #[graphql(
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL),
        directive = authenticated::apply()
    )]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PaymentConnection> {
        let viewer = auth::viewer(ctx)?;
        if viewer.user_id != self.id && !viewer.is_admin() {
            return Err(to_graphql(PaymentError::NotFound(format!(
                "payments of {}",
                self.id
            ))));
        }
        list(
            ctx,
            PaymentFilter {
                user_id: Some(self.id.clone()),
                status: None,
            },
            first,
            after,
        )
        .await
    }
}
