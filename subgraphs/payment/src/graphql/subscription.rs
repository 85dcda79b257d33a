//! `paymentStatusChanged`: one payment's status changes, live, for its
//! owner or an admin.

use async_graphql::{Context, ID, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt};
use subgraph_kit::auth;
use subgraph_kit::events::contract::{PaymentData, payment};
use subgraph_kit::events::live::LiveFeed;

use crate::graphql::types::{PaymentNode, payment_error, payments};

/// The subscription root.
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// The payment each time its status changes, from now on. Only its
    /// owner or an admin may follow it (others get `NOT_FOUND`).
    async fn payment_status_changed(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
    ) -> Result<impl Stream<Item = Result<PaymentNode>> + use<>> {
        let viewer = auth::viewer(ctx)?.clone();
        let live = ctx.data_unchecked::<LiveFeed>().events();
        let service = payments(ctx).clone();
        let followed = service
            .get(&viewer, &payment_id)
            .await
            .map_err(payment_error)?
            .id;
        Ok(live.filter_map(move |item| {
            let service = service.clone();
            let viewer = viewer.clone();
            async move {
                match item {
                    Err(lagged) => Some(Err(lagged.to_graphql())),
                    Ok(event) if event.kind == payment::CREATED => None,
                    Ok(event) => {
                        let data = event.data::<PaymentData>().ok()?;
                        if data.payment_id != followed {
                            return None;
                        }
                        Some(
                            service
                                .get(&viewer, &followed.to_string())
                                .await
                                .map(PaymentNode)
                                .map_err(payment_error),
                        )
                    }
                }
            }
        }))
    }
}
