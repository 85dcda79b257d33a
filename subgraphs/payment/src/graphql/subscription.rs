//! `paymentStatusChanged`: one payment's status changes, live, for its
//! owner or an admin.

use async_graphql::{Context, ID, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt};
use subgraph_kit::auth;
use subgraph_kit::events::contract::{EventKind, PaymentData};
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::graphql::authenticated;

use crate::graphql::types::{PaymentNode, payment_error, payments};

/// The subscription root.
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// The payment each time its status changes, from now on. Only its
    /// owner or an admin may follow it (others get `NOT_FOUND`).
    #[graphql(directive = authenticated::apply())]
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
                let event = match item {
                    Err(lagged) => return Some(Err(lagged.to_graphql())),
                    Ok(event) => event,
                };
                match event.event_kind() {
                    // A payment is created PENDING: no change to report.
                    Ok(EventKind::PaymentCreated) => return None,
                    // Every other payment event is a status change. An
                    // unknown type on `payment-events` (from a newer
                    // producer) is taken as one too, as before typed
                    // kinds: the payment is read afresh below, so the
                    // client only ever sees what is stored.
                    Ok(
                        EventKind::PaymentCompleted
                        | EventKind::PaymentFailed
                        | EventKind::PaymentRefunded
                        | EventKind::PaymentCancelled
                        | EventKind::PaymentExpired,
                    )
                    | Err(_) => {}
                    // Not on `payment-events`, the one topic of this feed.
                    Ok(
                        EventKind::StockUpdated
                        | EventKind::StockLow
                        | EventKind::StockOut
                        | EventKind::BasketCleared
                        | EventKind::BasketAbandoned
                        | EventKind::NotificationCreated,
                    ) => return None,
                }
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
        }))
    }
}
