//! Checkout reservations over the signed hop, as payment calls them: the
//! payer forwarded in the identity headers of a signed request (the
//! store-level tests are in `subgraphs/product/tests/reservations/`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopgraph_core::identity::{Identity, Viewer};

use crate::helpers::{As, Backend, TestApp, backend_tests};

const RESERVE: &str = "mutation($input: ReserveStockInput!) { reserveStock(input: $input) { id status lines { productId quantity } } }";
const RELEASE: &str = "mutation($id: ID!) { releaseStockReservation(reservationId: $id) }";
const STOCK: &str = "query($id: ID!) { product(id: $id) { stockQuantity } }";

fn payer(id: &str) -> Identity {
    Identity::User(Viewer {
        user_id: id.to_owned(),
        roles: vec![],
    })
}

fn reservation(id: uuid::Uuid, product: &str, quantity: i32, expires_in: Duration) -> Value {
    let expires_at = chrono::Utc::now() + expires_in;
    json!({ "input": {
        "reservationId": id,
        "expiresAt": expires_at,
        "lines": [{ "productId": product, "quantity": quantity, "unitPrice": "25.00", "currency": "EUR" }],
    } })
}

async fn stock(app: &TestApp, product: &str) -> Value {
    app.gql(As::Anonymous, STOCK, json!({ "id": product }))
        .await
        .data()["product"]["stockQuantity"]
        .clone()
}

/// The race over real HTTP and hop signatures: stock 3, four
/// payers reserving 3 at once: one reservation, three `OUT_OF_STOCK`.
async fn four_signed_checkouts_of_the_last_three(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let product = app.create_product("Limited print", "25.00", 3, "Art").await;
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let app = Arc::clone(&app);
            let variables =
                reservation(uuid::Uuid::now_v7(), &product, 3, Duration::from_secs(1500));
            tokio::spawn(async move {
                let who = payer(&format!("buyer-{n}"));
                (
                    who.clone(),
                    app.gql_forwarded(&who, RESERVE, variables).await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for call in calls {
        let (who, response) = call.await.expect("request task");
        if response.body.get("errors").is_none() {
            winners.push((who, response.data()["reserveStock"]["id"].clone()));
        } else {
            assert_eq!(response.code(), "OUT_OF_STOCK", "{:#}", response.body);
            assert_eq!(
                response.body["errors"][0]["extensions"]["lines"][0]["available"],
                0
            );
            assert_eq!(
                response.body["errors"][0]["message"],
                "Limited print is sold out (you asked for 3)"
            );
        }
    }
    assert_eq!(winners.len(), 1, "exactly one reservation");
    assert_eq!(stock(&app, &product).await, 0);

    // The winner's checkout gives up: its units come back, once.
    let (who, id) = winners.pop().expect("a winner");
    for _ in 0..2 {
        let released = app.gql_forwarded(&who, RELEASE, json!({ "id": id })).await;
        assert_eq!(released.data()["releaseStockReservation"], true);
    }
    assert_eq!(stock(&app, &product).await, 3);
}

/// The sweeper runs inside the service: a reservation nobody settles is
/// released once its `expiresAt` has passed.
async fn the_service_sweeps_expired_reservations(backend: Backend) {
    let app =
        TestApp::spawn_product_with_env(backend, &[("RESERVATION_SWEEP_INTERVAL", "100ms")]).await;
    let product = app.create_product("Blue Mug", "25.00", 5, "Kitchen").await;
    let reserved = app
        .gql_forwarded(
            &payer("alice"),
            RESERVE,
            reservation(uuid::Uuid::now_v7(), &product, 4, Duration::from_secs(1)),
        )
        .await;
    assert_eq!(reserved.data()["reserveStock"]["status"], "RESERVED");
    assert_eq!(stock(&app, &product).await, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stock(&app, &product).await != 5 {
        assert!(
            Instant::now() < deadline,
            "the expired reservation was not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_tests!(
    four_signed_checkouts_of_the_last_three,
    the_service_sweeps_expired_reservations,
);
