//! Payment events settling reservations, applied by the `product-stock`
//! handler inside a transaction, as the consumer applies them.

use chrono::{Duration, Utc};
use product_subgraph::domain::{Product, ReservationStatus};
use product_subgraph::events::incoming::SaleHandler;
use product_subgraph::sweeper::ReservationSweeper;
use rust_decimal::Decimal;
use sea_orm::TransactionTrait;
use subgraph_kit::events::contract::{EventKind, PaymentData, PaymentLine};
use subgraph_kit::events::inbox::Handler;
use subgraph_kit::events::outbox;
use subgraph_kit::testkit::TempBackend;
use uuid::Uuid;

use crate::backend_tests;
use crate::common::{PAYER, Shop, request, request_at};

/// Applies a payment event of `kind` for `payment_id` buying `lines`.
async fn deliver(shop: &Shop, kind: EventKind, payment_id: Uuid, lines: &[(&Product, i32)]) {
    let data = PaymentData {
        payment_id,
        user_id: PAYER.into(),
        status: "SETTLED".into(),
        amount: Decimal::ZERO,
        refunded_amount: Decimal::ZERO,
        currency: "EUR".into(),
        basket_id: None,
        items: lines
            .iter()
            .map(|(product, quantity)| PaymentLine {
                product_id: product.id,
                product_name: product.name.clone(),
                quantity: *quantity,
            })
            .collect(),
        reason: None,
    };
    let event =
        outbox::event("/subgraphs/payment", kind, payment_id.to_string(), &data).expect("an event");
    let handler = SaleHandler::new(shop.store.clone());
    let txn = shop.conn.begin().await.unwrap();
    handler.handle(&txn, &event).await.expect("applied");
    txn.commit().await.unwrap();
}

async fn status(shop: &Shop, id: Uuid) -> ReservationStatus {
    shop.store.reservation(id).await.unwrap().unwrap().status
}

async fn completed_payments_sell_their_reservation_once(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 10).await;
    let payment = Uuid::now_v7();
    shop.store
        .reserve(request(payment, &[(&mug, 3)]))
        .await
        .unwrap();
    let events_before = shop.stock_events().await.len();

    deliver(&shop, EventKind::PaymentCompleted, payment, &[(&mug, 3)]).await;
    assert_eq!(status(&shop, payment).await, ReservationStatus::Sold);
    // Taken at reserve time, not again.
    assert_eq!(shop.stock(&mug).await, 7);
    assert_eq!(shop.stock_events().await.len(), events_before);

    // A repeated outcome (a second consumer, a replay) changes nothing,
    // and a late failure cannot release a sold reservation.
    deliver(&shop, EventKind::PaymentCompleted, payment, &[(&mug, 3)]).await;
    deliver(&shop, EventKind::PaymentFailed, payment, &[(&mug, 3)]).await;
    assert_eq!(status(&shop, payment).await, ReservationStatus::Sold);
    assert_eq!(shop.stock(&mug).await, 7);
    shop.assert_invariant(&mug, 10).await;
    let held = shop.store.held_units(mug.id).await.unwrap();
    assert_eq!((held.reserved, held.sold), (0, 3));
}

async fn failed_cancelled_and_expired_payments_release(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 10).await;
    for kind in [
        EventKind::PaymentFailed,
        EventKind::PaymentCancelled,
        EventKind::PaymentExpired,
    ] {
        let payment = Uuid::now_v7();
        shop.store
            .reserve(request(payment, &[(&mug, 4)]))
            .await
            .unwrap();
        assert_eq!(shop.stock(&mug).await, 6);
        deliver(&shop, kind, payment, &[(&mug, 4)]).await;
        assert_eq!(
            status(&shop, payment).await,
            ReservationStatus::Released,
            "{kind}"
        );
        assert_eq!(shop.stock(&mug).await, 10, "{kind}");
        // Twice: the units come back once.
        deliver(&shop, kind, payment, &[(&mug, 4)]).await;
        assert_eq!(shop.stock(&mug).await, 10, "{kind}");
        // A completion after the release with the units still there
        // takes them again (the "stuck payment" case below).
    }
    shop.assert_invariant(&mug, 10).await;
    // A payment without a reservation: nothing to release, nothing changes.
    deliver(
        &shop,
        EventKind::PaymentFailed,
        Uuid::now_v7(),
        &[(&mug, 4)],
    )
    .await;
    assert_eq!(shop.stock(&mug).await, 10);
}

async fn a_payment_without_reservation_sells_the_old_way(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 2).await;
    let payment = Uuid::now_v7();
    deliver(&shop, EventKind::PaymentCompleted, payment, &[(&mug, 3)]).await;
    // Never below zero; no reservation is invented.
    assert_eq!(shop.stock(&mug).await, 0);
    assert!(shop.store.reservation(payment).await.unwrap().is_none());
    let (_, data) = shop.stock_events().await.into_iter().next().unwrap();
    assert_eq!(
        (data.reason.as_str(), data.payment_id),
        ("sale", Some(payment))
    );
}

async fn sold_after_its_reservation_expired(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 5).await;
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let stuck = |lines: &[(&Product, i32)]| {
        request_at(
            Uuid::now_v7(),
            lines,
            an_hour_ago,
            an_hour_ago + Duration::minutes(25),
        )
    };

    // Expired and swept while the payment was stuck; the units are still
    // there when it completes: taken again, SOLD.
    let first = stuck(&[(&mug, 2)]);
    let payment = first.id;
    shop.store.reserve(first).await.unwrap();
    ReservationSweeper::new(shop.store.clone())
        .sweep()
        .await
        .unwrap();
    assert_eq!(shop.stock(&mug).await, 5);
    deliver(&shop, EventKind::PaymentCompleted, payment, &[(&mug, 2)]).await;
    assert_eq!(status(&shop, payment).await, ReservationStatus::Sold);
    assert_eq!(shop.stock(&mug).await, 3);
    let (_, data) = shop.stock_events().await.pop().unwrap();
    assert_eq!((data.reason.as_str(), data.delta), ("sale", -2));
    shop.assert_invariant(&mug, 5).await;

    // This time another checkout bought the units meanwhile: nothing is
    // taken (all lines or none), it stays RELEASED, an ERROR is logged.
    let cup = shop.product("Espresso cup", "3.00", 10).await;
    let second = stuck(&[(&mug, 3), (&cup, 1)]);
    let payment = second.id;
    shop.store.reserve(second).await.unwrap();
    ReservationSweeper::new(shop.store.clone())
        .sweep()
        .await
        .unwrap();
    shop.store
        .reserve(request(Uuid::now_v7(), &[(&mug, 2)]))
        .await
        .unwrap();
    assert_eq!(shop.stock(&mug).await, 1);
    deliver(
        &shop,
        EventKind::PaymentCompleted,
        payment,
        &[(&mug, 3), (&cup, 1)],
    )
    .await;
    assert_eq!(status(&shop, payment).await, ReservationStatus::Released);
    assert_eq!(shop.stock(&mug).await, 1);
    assert_eq!(
        shop.stock(&cup).await,
        10,
        "the cup line is not taken alone"
    );
    shop.assert_invariant(&mug, 5).await;
    shop.assert_invariant(&cup, 10).await;
}

backend_tests!(
    completed_payments_sell_their_reservation_once,
    failed_cancelled_and_expired_payments_release,
    a_payment_without_reservation_sells_the_old_way,
    sold_after_its_reservation_expired,
);
