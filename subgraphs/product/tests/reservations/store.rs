//! The reservation store: all or nothing, refusals, idempotency, release,
//! the sweeper, the race, and the stock invariant.

use std::sync::Arc;

use chrono::{Duration, Utc};
use product_subgraph::domain::{ProductError, ReleaseOutcome, ReservationStatus};
use product_subgraph::sweeper::ReservationSweeper;
use rust_decimal::Decimal;
use subgraph_kit::testkit::TempBackend;
use uuid::Uuid;

use crate::backend_tests;
use crate::common::{PAYER, Shop, request, request_at};

async fn reserve_is_all_or_nothing(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 5).await;
    let cup = shop.product("Espresso cup", "3.00", 1).await;
    let events_before = shop.stock_events().await.len();

    let id = Uuid::now_v7();
    let refused = shop
        .store
        .reserve(request(id, &[(&mug, 2), (&cup, 2)]))
        .await
        .unwrap_err();
    let ProductError::OutOfStock(lines) = refused else {
        panic!("expected OUT_OF_STOCK, got {refused:?}");
    };
    assert_eq!(lines.len(), 1, "only the short line is listed: {lines:?}");
    assert_eq!(
        (lines[0].product_id, lines[0].requested, lines[0].available),
        (cup.id, 2, 1)
    );
    assert_eq!(lines[0].product_name, "Espresso cup");
    // Nothing kept: the mug's units, the reservation, the events.
    assert_eq!(shop.stock(&mug).await, 5);
    assert_eq!(shop.stock(&cup).await, 1);
    assert!(shop.store.reservation(id).await.unwrap().is_none());
    assert_eq!(shop.stock_events().await.len(), events_before);

    // The same id may be used again once the request fits.
    let reservation = shop
        .store
        .reserve(request(id, &[(&mug, 2), (&cup, 1)]))
        .await
        .expect("reserved");
    assert_eq!(reservation.status, ReservationStatus::Reserved);
    assert_eq!(reservation.user_id, PAYER);
    assert_eq!(reservation.lines.len(), 2);
    assert_eq!(shop.stock(&mug).await, 3);
    assert_eq!(shop.stock(&cup).await, 0);
    assert_eq!(shop.store.reservation(id).await.unwrap(), Some(reservation));

    let events = &shop.stock_events().await[events_before..];
    let kinds: Vec<(&str, Uuid, &str, i32)> = events
        .iter()
        .map(|(kind, data)| {
            (
                kind.as_str(),
                data.product_id,
                data.reason.as_str(),
                data.stock_quantity,
            )
        })
        .collect();
    assert!(kinds.contains(&("StockUpdated", mug.id, "reservation", 3)));
    assert!(kinds.contains(&("StockLow", mug.id, "reservation", 3)));
    assert!(kinds.contains(&("StockUpdated", cup.id, "reservation", 0)));
    assert!(kinds.contains(&("StockOut", cup.id, "reservation", 0)));
    assert!(events.iter().all(|(_, data)| data.payment_id == Some(id)));

    shop.assert_invariant(&mug, 5).await;
    shop.assert_invariant(&cup, 1).await;
}

async fn refusals_come_in_order_and_keep_nothing(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let gone = shop.product("Discontinued vase", "20.00", 10).await;
    let mut repriced = shop.product("Teapot", "30.00", 10).await;
    let scarce = shop.product("Blue Mug", "4.50", 2).await;
    shop.store.delete(gone.id).await.unwrap();
    let id = Uuid::now_v7();
    // The basket still has the old price of the teapot.
    let old_price = repriced.price;
    let patch = product_subgraph::domain::ProductPatch::parse(
        product_subgraph::domain::ProductPatchInput {
            price: Some(Decimal::new(3250, 2)),
            ..Default::default()
        },
    )
    .unwrap();
    shop.store.update(repriced.id, patch).await.unwrap();

    // All three problems: the unavailable product is reported first.
    let err = shop
        .store
        .reserve(request(id, &[(&gone, 1), (&repriced, 1), (&scarce, 3)]))
        .await
        .unwrap_err();
    let ProductError::ProductUnavailable(lines) = &err else {
        panic!("expected PRODUCT_UNAVAILABLE, got {err:?}");
    };
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].product_id, gone.id);
    assert_eq!(lines[0].product_name.as_deref(), Some("Discontinued vase"));
    assert_eq!(err.to_string(), "Discontinued vase is no longer available");

    // Without it: the price change.
    let err = shop
        .store
        .reserve(request(id, &[(&repriced, 1), (&scarce, 3)]))
        .await
        .unwrap_err();
    let ProductError::PriceChanged(lines) = &err else {
        panic!("expected PRICE_CHANGED, got {err:?}");
    };
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].product_name, "Teapot");
    assert_eq!(lines[0].basket_price, old_price);
    assert_eq!(lines[0].current_price.to_string(), "32.50");
    assert_eq!(
        err.to_string(),
        "The price of Teapot is now 32.50 EUR (your basket has 30.00 EUR)"
    );

    // At the current price: the shortage, named, with what is left.
    repriced.price = Decimal::new(3250, 2);
    let err = shop
        .store
        .reserve(request(id, &[(&repriced, 1), (&scarce, 3)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProductError::OutOfStock(_)), "{err:?}");
    assert_eq!(err.to_string(), "Only 2 left of Blue Mug (you asked for 3)");

    // A currency that is not the catalogue's is a price change too.
    let mut in_dollars = repriced.clone();
    in_dollars.currency = "USD".into();
    let err = shop
        .store
        .reserve(request(id, &[(&in_dollars, 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProductError::PriceChanged(_)), "{err:?}");

    // Nothing was kept by any refusal.
    assert_eq!(shop.stock(&repriced).await, 10);
    assert_eq!(shop.stock(&scarce).await, 2);
    assert!(shop.store.reservation(id).await.unwrap().is_none());
    assert!(shop.stock_events().await.is_empty());
}

async fn the_same_id_is_one_reservation(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 10).await;
    let id = Uuid::now_v7();
    let first = shop.store.reserve(request(id, &[(&mug, 3)])).await.unwrap();
    // Again, even with other lines: the existing reservation, nothing taken.
    let again = shop.store.reserve(request(id, &[(&mug, 5)])).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(shop.stock(&mug).await, 7);

    // Concurrent duplicates of a new id take the units once.
    let store = Arc::new(shop.store.clone());
    let id = Uuid::now_v7();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let new = request(id, &[(&mug, 2)]);
            tokio::spawn(async move { store.reserve(new).await })
        })
        .collect();
    for call in calls {
        let reservation = call.await.unwrap().expect("every duplicate succeeds");
        assert_eq!(reservation.id, id);
    }
    assert_eq!(shop.stock(&mug).await, 5);

    // Another payer cannot take over the id.
    let mut theirs = request(id, &[(&mug, 1)]);
    theirs.user_id = "mallory".into();
    let err = shop.store.reserve(theirs).await.unwrap_err();
    assert!(matches!(err, ProductError::ReservationTaken(taken) if taken == id));
    shop.assert_invariant(&mug, 10).await;
}

async fn release_returns_the_units_once(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 5).await;
    let id = Uuid::now_v7();
    shop.store.reserve(request(id, &[(&mug, 3)])).await.unwrap();
    assert_eq!(shop.stock(&mug).await, 2);

    // Another payer's release is a no-op, as is an unknown id.
    assert_eq!(
        shop.store.release_for("mallory", id).await.unwrap(),
        ReleaseOutcome::Unknown
    );
    assert_eq!(
        shop.store.release_for(PAYER, Uuid::now_v7()).await.unwrap(),
        ReleaseOutcome::Unknown
    );
    assert_eq!(shop.stock(&mug).await, 2);

    let ReleaseOutcome::Released(released) = shop.store.release_for(PAYER, id).await.unwrap()
    else {
        panic!("expected the reservation to be released");
    };
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(shop.stock(&mug).await, 5);
    let (kind, data) = shop.stock_events().await.pop().expect("an event");
    assert_eq!(
        (kind.as_str(), data.reason.as_str(), data.delta),
        ("StockUpdated", "release", 3)
    );
    assert_eq!(data.payment_id, Some(id));

    // Again: nothing more comes back.
    assert_eq!(
        shop.store.release_for(PAYER, id).await.unwrap(),
        ReleaseOutcome::Unchanged(ReservationStatus::Released)
    );
    assert_eq!(shop.stock(&mug).await, 5);
    shop.assert_invariant(&mug, 5).await;

    // A reservation whose product was deleted meanwhile still releases.
    let vase = shop.product("Vase", "9.00", 4).await;
    let id = Uuid::now_v7();
    shop.store
        .reserve(request(id, &[(&vase, 1)]))
        .await
        .unwrap();
    shop.store.delete(vase.id).await.unwrap();
    assert!(matches!(
        shop.store.release_for(PAYER, id).await.unwrap(),
        ReleaseOutcome::Released(_)
    ));
}

async fn the_sweeper_releases_expired_reservations(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 10).await;
    let an_hour_ago = Utc::now() - Duration::hours(1);
    let expired = Uuid::now_v7();
    shop.store
        .reserve(request_at(
            expired,
            &[(&mug, 4)],
            an_hour_ago,
            an_hour_ago + Duration::minutes(25),
        ))
        .await
        .unwrap();
    let live = Uuid::now_v7();
    shop.store
        .reserve(request(live, &[(&mug, 2)]))
        .await
        .unwrap();
    assert_eq!(shop.stock(&mug).await, 4);

    let sweeper = ReservationSweeper::new(shop.store.clone());
    assert_eq!(sweeper.sweep().await.unwrap(), 1);
    assert_eq!(shop.stock(&mug).await, 8);
    let status = |id| {
        let store = shop.store.clone();
        async move { store.reservation(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(expired).await, ReservationStatus::Released);
    assert_eq!(status(live).await, ReservationStatus::Reserved);
    // Nothing left to do on the next pass.
    assert_eq!(sweeper.sweep().await.unwrap(), 0);
    assert_eq!(shop.stock(&mug).await, 8);
    shop.assert_invariant(&mug, 10).await;
}

/// The race: stock 3, four checkouts of 3 at once: exactly one
/// reservation, three `OUT_OF_STOCK` saying none is left. Run on several
/// products at once so the race really overlaps.
async fn four_buyers_of_the_last_three(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let store = Arc::new(shop.store.clone());
    let mut products = Vec::new();
    for round in 0..5 {
        products.push(
            shop.product(&format!("Limited print {round}"), "25.00", 3)
                .await,
        );
    }
    let calls: Vec<_> = products
        .iter()
        .flat_map(|product| {
            (0..4).map(|_| {
                let store = Arc::clone(&store);
                let new = request(Uuid::now_v7(), &[(product, 3)]);
                let product_id = product.id;
                tokio::spawn(async move { (product_id, store.reserve(new).await) })
            })
        })
        .collect();
    let mut won = std::collections::HashMap::new();
    for call in calls {
        let (product_id, outcome) = call.await.unwrap();
        match outcome {
            Ok(reservation) => {
                assert_eq!(reservation.lines[0].quantity, 3);
                *won.entry(product_id).or_insert(0) += 1;
            }
            Err(ProductError::OutOfStock(lines)) => {
                assert_eq!((lines[0].requested, lines[0].available), (3, 0));
            }
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    for product in &products {
        assert_eq!(won.get(&product.id), Some(&1), "{}", product.name);
        assert_eq!(shop.stock(product).await, 0);
        shop.assert_invariant(product, 3).await;
    }
}

/// Reserve, sell, release, expire and adjust one product, checking after
/// every step that stock + reserved + sold = initial + adjustments.
async fn the_stock_invariant_holds_through_a_life(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 20).await;
    let mut expected = 20;

    let sold = Uuid::now_v7();
    shop.store
        .reserve(request(sold, &[(&mug, 4)]))
        .await
        .unwrap();
    shop.assert_invariant(&mug, expected).await;
    let txn = sea_orm::TransactionTrait::begin(&shop.conn).await.unwrap();
    shop.store.sell_reserved(&txn, sold).await.unwrap();
    txn.commit().await.unwrap();
    shop.assert_invariant(&mug, expected).await;

    let released = Uuid::now_v7();
    shop.store
        .reserve(request(released, &[(&mug, 5)]))
        .await
        .unwrap();
    shop.store.release_for(PAYER, released).await.unwrap();
    shop.assert_invariant(&mug, expected).await;

    shop.store.adjust_stock(mug.id, 7).await.unwrap();
    expected += 7;
    shop.assert_invariant(&mug, expected).await;

    let past = Utc::now() - Duration::hours(2);
    shop.store
        .reserve(request_at(
            Uuid::now_v7(),
            &[(&mug, 6)],
            past,
            past + Duration::minutes(1),
        ))
        .await
        .unwrap();
    shop.store
        .reserve(request(Uuid::now_v7(), &[(&mug, 2)]))
        .await
        .unwrap();
    shop.assert_invariant(&mug, expected).await;
    ReservationSweeper::new(shop.store.clone())
        .sweep()
        .await
        .unwrap();
    shop.assert_invariant(&mug, expected).await;
    assert_eq!(shop.stock(&mug).await, 27 - 4 - 2);
}

backend_tests!(
    reserve_is_all_or_nothing,
    refusals_come_in_order_and_keep_nothing,
    the_same_id_is_one_reservation,
    release_returns_the_units_once,
    the_sweeper_releases_expired_reservations,
    four_buyers_of_the_last_three,
    the_stock_invariant_holds_through_a_life,
);
