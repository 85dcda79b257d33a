//! What the payment subgraph publishes on `payment-events`: one event per
//! payment change, carrying the payment as it is after the change, about
//! (subject) the payment; the store keys it by the payer.
//!
//! The store calls [`payment_event`] and writes the result to its outbox;
//! nothing here touches the store.

use rust_decimal::Decimal;
use sea_orm::DbErr;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, PaymentData, PaymentLine};
use subgraph_kit::events::outbox;

use crate::domain::Payment;

/// The CloudEvents `source` of this subgraph's events.
pub const SOURCE: &str = "/subgraphs/payment";

/// The `kind` event of `payment` as it is now.
pub fn payment_event(kind: EventKind, payment: &Payment) -> Result<CloudEvent, DbErr> {
    event(kind, payment, None)
}

/// `PaymentRefunded` for `payment` after a refund of `amount`: the amount
/// rides along so the payer is told what came back this time, not the
/// running total.
pub fn refund_event(payment: &Payment, amount: Decimal) -> Result<CloudEvent, DbErr> {
    event(EventKind::PaymentRefunded, payment, Some(amount))
}

fn event(
    kind: EventKind,
    payment: &Payment,
    refund_amount: Option<Decimal>,
) -> Result<CloudEvent, DbErr> {
    let data = PaymentData {
        payment_id: payment.id,
        user_id: payment.user_id.clone(),
        status: payment.status.as_str().to_owned(),
        amount: payment.amount,
        refunded_amount: payment.refunded_amount,
        refund_amount,
        currency: payment.currency.clone(),
        basket_id: payment.basket_id,
        items: payment
            .items
            .iter()
            .map(|item| PaymentLine {
                product_id: item.product_id,
                product_name: item.product_name.clone(),
                quantity: item.quantity,
            })
            .collect(),
        reason: payment.failure_reason.clone(),
    };
    outbox::event(SOURCE, kind, payment.id.to_string(), &data)
}
