//! The checkout saga against fakes of payment's own ports (basket and
//! stock, each a small in-memory model of the other subgraph's contract)
//! and the real store on SQLite: what is reserved, locked, stored and
//! released on every path, and the idempotency rule.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use payment_migration::{Migrator, MigratorTrait};
use rust_decimal::Decimal;
use sea_orm::ConnectionTrait;
use shopgraph_core::error::ErrorCode;
use shopgraph_core::identity::{Identity, Viewer};
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use subgraph_kit::upstream::{Credentials, UpstreamError};
use uuid::Uuid;

use super::{Holds, PaymentRequest, Payments};
use crate::domain::provider::{CARD_DECLINED, CARD_SUCCEEDS, SimulatedProvider};
use crate::domain::{
    BasketLine, BasketSnapshot, BasketSource, Card, PaymentError, PaymentItem, PaymentMethod,
    PaymentStatus, StockReservations, now,
};
use crate::store::{PaymentFilter, PaymentStore};

fn refusal(service: &'static str, code: &str, message: &str) -> UpstreamError {
    let mut extensions = serde_json::Map::new();
    extensions.insert(
        "lines".into(),
        serde_json::json!([{ "productId": "p", "requested": 3, "available": 2 }]),
    );
    UpstreamError::Rejected {
        service,
        code: Some(code.into()),
        message: message.into(),
        extensions: Box::new(extensions),
    }
}

/// Product's side of the contract: reservations by id, all or nothing.
#[derive(Default)]
struct FakeStock {
    /// The refusal the next reservations get, if any.
    refuse_with: Mutex<Option<(&'static str, &'static str)>>,
    /// Reservation id → still held (`false` once released).
    held: Mutex<HashMap<Uuid, bool>>,
    reserve_calls: Mutex<u32>,
}

impl FakeStock {
    fn held(&self) -> Vec<Uuid> {
        let held = self.held.lock().unwrap();
        held.iter()
            .filter(|(_, h)| **h)
            .map(|(id, _)| *id)
            .collect()
    }

    fn released(&self) -> Vec<Uuid> {
        let held = self.held.lock().unwrap();
        held.iter()
            .filter(|(_, h)| !**h)
            .map(|(id, _)| *id)
            .collect()
    }
}

impl StockReservations for FakeStock {
    fn reserve<'a>(
        &'a self,
        _caller: &'a Credentials,
        reservation_id: Uuid,
        expires_at: DateTime<Utc>,
        _lines: &'a [PaymentItem],
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            *self.reserve_calls.lock().unwrap() += 1;
            assert!(
                expires_at > now(),
                "a reservation is sent with its deadline"
            );
            if let Some((code, message)) = *self.refuse_with.lock().unwrap() {
                return Err(refusal("product", code, message));
            }
            self.held.lock().unwrap().insert(reservation_id, true);
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        _caller: &'a Credentials,
        reservation_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            if let Some(held) = self.held.lock().unwrap().get_mut(&reservation_id) {
                *held = false;
            }
            Ok(())
        })
    }
}

/// Something another request does while this one is between two steps.
type Meanwhile = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// Basket's side of the contract: one basket, one lock.
#[derive(Default)]
struct FakeBasket {
    lines: Mutex<Vec<BasketLine>>,
    lock: Mutex<Option<Uuid>>,
    released: Mutex<Vec<Uuid>>,
    /// Runs inside `beginCheckout` once (a concurrent request's effect).
    meanwhile: Mutex<Option<Meanwhile>>,
}

impl FakeBasket {
    fn put(&self, price: &str, quantity: i32, product: Uuid) {
        self.lines.lock().unwrap().push(BasketLine {
            product_id: product,
            product_name: "Blue Mug".into(),
            quantity,
            unit_price: Decimal::from_str(price).unwrap(),
            currency: "EUR".into(),
        });
    }

    fn set_price(&self, price: &str) {
        for line in self.lines.lock().unwrap().iter_mut() {
            line.unit_price = Decimal::from_str(price).unwrap();
        }
    }

    /// What basket does on `PaymentCompleted`: the bought lines go.
    fn bought(&self) {
        self.lines.lock().unwrap().clear();
        *self.lock.lock().unwrap() = None;
    }
}

impl BasketSource for FakeBasket {
    fn current_basket<'a>(
        &'a self,
        _caller: &'a Credentials,
    ) -> BoxFuture<'a, Result<BasketSnapshot, UpstreamError>> {
        Box::pin(async move {
            Ok(BasketSnapshot {
                id: Uuid::nil(),
                lines: self.lines.lock().unwrap().clone(),
            })
        })
    }

    fn begin_checkout<'a>(
        &'a self,
        _caller: &'a Credentials,
        payment_id: Uuid,
        lines: &'a [PaymentItem],
        locked_until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            let meanwhile = self.meanwhile.lock().unwrap().take();
            if let Some(meanwhile) = meanwhile {
                meanwhile().await;
            }
            assert!(locked_until > now(), "a lock is sent with its deadline");
            let current: Vec<PaymentItem> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .map(|line| PaymentItem {
                    product_id: line.product_id,
                    product_name: line.product_name.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    currency: line.currency.clone(),
                })
                .collect();
            let mut lock = self.lock.lock().unwrap();
            if lock.is_some_and(|holder| holder != payment_id) {
                return Err(refusal(
                    "basket",
                    "CONFLICT",
                    "another checkout of this basket is in progress",
                ));
            }
            if current.is_empty() {
                return Err(refusal("basket", "BAD_USER_INPUT", "the basket is empty"));
            }
            if !crate::domain::same_lines(&current, lines) {
                return Err(refusal(
                    "basket",
                    "CONFLICT",
                    "the basket changed during checkout",
                ));
            }
            *lock = Some(payment_id);
            Ok(())
        })
    }

    fn release_checkout<'a>(
        &'a self,
        _caller: &'a Credentials,
        payment_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            let mut lock = self.lock.lock().unwrap();
            if *lock == Some(payment_id) {
                *lock = None;
            }
            self.released.lock().unwrap().push(payment_id);
            Ok(())
        })
    }
}

struct Saga {
    payments: Payments,
    store: PaymentStore,
    basket: Arc<FakeBasket>,
    stock: Arc<FakeStock>,
    viewer: Viewer,
    caller: Credentials,
    _db: TempDatabase,
    conn: sea_orm::DatabaseConnection,
}

impl Saga {
    async fn start() -> Self {
        let db = TempDatabase::create(TempBackend::Sqlite).await;
        let conn = sea_orm::Database::connect(db.url.as_str()).await.unwrap();
        Migrator::up(&conn, None).await.unwrap();
        let store = PaymentStore::new(conn.clone(), RelayWaker::default());
        let basket = Arc::new(FakeBasket::default());
        let stock = Arc::new(FakeStock::default());
        let payments = Payments::new(
            store.clone(),
            basket.clone(),
            stock.clone(),
            Arc::new(SimulatedProvider::default()),
            Holds {
                pending_ttl: std::time::Duration::from_secs(900),
                settle_margin: std::time::Duration::from_secs(600),
            },
        );
        let viewer = Viewer {
            user_id: "user-1".into(),
            roles: Vec::new(),
        };
        let caller = Credentials {
            authorization: None,
            identity: Identity::User(viewer.clone()),
        };
        Self {
            payments,
            store,
            basket,
            stock,
            viewer,
            caller,
            _db: db,
            conn,
        }
    }

    fn request(key: &str) -> PaymentRequest {
        PaymentRequest {
            idempotency_key: key.into(),
            method: PaymentMethod::Card,
            description: None,
        }
    }

    async fn checkout(
        &self,
        key: &str,
        card: &str,
    ) -> Result<crate::domain::Payment, PaymentError> {
        let card = Card::parse(card, 12, 2040, "123").unwrap();
        self.payments
            .checkout(&self.viewer, &self.caller, Self::request(key), card)
            .await
    }

    async fn create(&self, key: &str) -> Result<crate::domain::Payment, PaymentError> {
        self.payments
            .create(&self.viewer, &self.caller, Self::request(key))
            .await
    }

    async fn stored(&self) -> usize {
        let filter = PaymentFilter::default();
        self.store.list(&filter, None, 100).await.unwrap().0.len()
    }
}

fn code_of(err: &PaymentError) -> ErrorCode {
    shopgraph_core::error::Coded::code(err)
}

#[tokio::test]
async fn a_refused_reservation_stores_nothing_and_passes_the_refusal_on() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 3, Uuid::now_v7());
    *saga.stock.refuse_with.lock().unwrap() =
        Some(("OUT_OF_STOCK", "Only 2 left of Blue Mug (you asked for 3)"));

    let err = saga.checkout("k1", CARD_SUCCEEDS).await.unwrap_err();
    let PaymentError::Refused {
        code,
        message,
        extensions,
    } = &err
    else {
        panic!("expected the refusal passed on, got {err:?}");
    };
    assert_eq!(*code, ErrorCode::OutOfStock);
    assert_eq!(message, "Only 2 left of Blue Mug (you asked for 3)");
    assert_eq!(extensions["lines"][0]["available"], 2);
    assert_eq!(saga.stored().await, 0, "nothing persisted");
    assert!(
        saga.basket.lock.lock().unwrap().is_none(),
        "basket not locked"
    );
    assert!(saga.stock.held().is_empty());

    // The same key may be used again once stock is there.
    *saga.stock.refuse_with.lock().unwrap() = None;
    let paid = saga.checkout("k1", CARD_SUCCEEDS).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Completed);
    assert_eq!(
        saga.stock.held(),
        vec![paid.id],
        "reservation id = payment id"
    );
    assert_eq!(
        *saga.basket.lock.lock().unwrap(),
        Some(paid.id),
        "lock id = payment id"
    );
}

#[tokio::test]
async fn every_pass_through_code_keeps_its_code() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    for (code, expected) in [
        ("PRODUCT_UNAVAILABLE", ErrorCode::ProductUnavailable),
        ("PRICE_CHANGED", ErrorCode::PriceChanged),
        ("OUT_OF_STOCK", ErrorCode::OutOfStock),
    ] {
        *saga.stock.refuse_with.lock().unwrap() = Some((code, "refused"));
        let err = saga.create("k").await.unwrap_err();
        assert_eq!(code_of(&err), expected, "{code}");
    }
    // Anything else from product is its failure, not the payer's.
    *saga.stock.refuse_with.lock().unwrap() = Some(("INTERNAL", "boom"));
    let err = saga.create("k").await.unwrap_err();
    assert!(matches!(err, PaymentError::Stock(_)), "{err:?}");
    assert_eq!(code_of(&err), ErrorCode::SubgraphUnavailable);
    assert_eq!(saga.stored().await, 0);
}

#[tokio::test]
async fn a_refused_lock_releases_the_reservation() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    let other_checkout = Uuid::now_v7();
    *saga.basket.lock.lock().unwrap() = Some(other_checkout);

    let started = std::time::Instant::now();
    let err = saga.checkout("k1", CARD_SUCCEEDS).await.unwrap_err();
    assert_eq!(code_of(&err), ErrorCode::Conflict, "{err:?}");
    assert!(err.to_string().contains("in progress"), "{err}");
    assert!(
        started.elapsed() >= super::LOCK_WAIT,
        "a lock conflict waits for a duplicate's payment first"
    );
    assert_eq!(saga.stored().await, 0);
    assert!(saga.stock.held().is_empty(), "reservation released");
    assert_eq!(saga.stock.released().len(), 1);
    assert_eq!(*saga.basket.lock.lock().unwrap(), Some(other_checkout));

    // The basket's own BAD_USER_INPUT passes through too.
    *saga.basket.lock.lock().unwrap() = None;
    let empty_between_read_and_lock = saga.basket.clone();
    *saga.basket.meanwhile.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move { empty_between_read_and_lock.lines.lock().unwrap().clear() })
    }));
    let err = saga.checkout("k2", CARD_SUCCEEDS).await.unwrap_err();
    assert_eq!(code_of(&err), ErrorCode::BadUserInput, "{err:?}");
    assert_eq!(err.to_string(), "the basket is empty");
    assert!(saga.stock.held().is_empty());
    assert_eq!(saga.stock.released().len(), 2);
}

#[tokio::test]
async fn losing_the_key_race_releases_both_and_returns_the_winner() {
    let saga = Saga::start().await;
    let product = Uuid::now_v7();
    saga.basket.put("4.50", 2, product);

    // While this request holds its lock, an identical request with the
    // same key stores its payment (its own reservation and lock elided).
    let store = saga.store.clone();
    let winner_id = Uuid::now_v7();
    let winner_items = vec![PaymentItem {
        product_id: product,
        product_name: "Blue Mug".into(),
        quantity: 2,
        unit_price: Decimal::from_str("4.50").unwrap(),
        currency: "EUR".into(),
    }];
    *saga.basket.meanwhile.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            let created_at = now();
            store
                .insert(crate::domain::NewPayment {
                    id: winner_id,
                    user_id: "user-1".into(),
                    basket_id: None,
                    amount: Decimal::from_str("9.00").unwrap(),
                    currency: "EUR".into(),
                    method: PaymentMethod::Card,
                    provider: "simulated".into(),
                    description: None,
                    idempotency_key: "race".into(),
                    request_fingerprint: "create|CARD|||".into(),
                    order_fingerprint: crate::domain::order_fingerprint("user-1", &winner_items),
                    items: winner_items,
                    created_at,
                    expires_at: created_at + chrono::Duration::minutes(15),
                })
                .await
                .unwrap()
                .expect("the winner is stored");
        })
    }));

    let answer = saga.create("race").await.unwrap();
    assert_eq!(answer.id, winner_id, "the winner's payment");
    assert_eq!(saga.stored().await, 1);
    let released = saga.stock.released();
    assert_eq!(released.len(), 1, "the loser's reservation is released");
    assert_ne!(released[0], winner_id);
    assert_eq!(
        *saga.basket.released.lock().unwrap(),
        released,
        "and its lock"
    );
    assert!(saga.basket.lock.lock().unwrap().is_none());
}

#[tokio::test]
async fn a_key_is_bound_to_its_order() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    let first = saga.checkout("order-1", CARD_SUCCEEDS).await.unwrap();
    assert_eq!(first.status, PaymentStatus::Completed);
    assert_eq!(first.order_fingerprint.as_ref().map(String::len), Some(64));

    // Same key, same basket (its clearing event not applied yet): a retry.
    assert_eq!(
        saga.checkout("order-1", CARD_SUCCEEDS).await.unwrap().id,
        first.id
    );
    // Same key, another card: another request.
    let err = saga.checkout("order-1", CARD_DECLINED).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::IdempotencyConflict(_)),
        "{err:?}"
    );

    // The case: the basket's price changed 4.50 -> 13.50.
    saga.basket.set_price("13.50");
    let err = saga.checkout("order-1", CARD_SUCCEEDS).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::IdempotencyConflict(_)),
        "{err:?}"
    );
    assert_eq!(code_of(&err), ErrorCode::Conflict);

    // The lines were bought and removed: a retry returns the payment.
    saga.basket.bought();
    assert_eq!(
        saga.checkout("order-1", CARD_SUCCEEDS).await.unwrap().id,
        first.id
    );
    // Something else added since: not the same order any more.
    saga.basket.put("1.00", 1, Uuid::now_v7());
    assert!(matches!(
        saga.checkout("order-1", CARD_SUCCEEDS).await,
        Err(PaymentError::IdempotencyConflict(_))
    ));
    assert_eq!(saga.stored().await, 1);
    assert_eq!(
        *saga.stock.reserve_calls.lock().unwrap(),
        1,
        "repeats reserve nothing"
    );
}

#[tokio::test]
async fn payments_without_an_order_fingerprint_compare_their_lines() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    let first = saga.create("old").await.unwrap();
    saga.conn
        .execute_unprepared("UPDATE payments SET order_fingerprint = NULL")
        .await
        .unwrap();
    let again = saga.create("old").await.unwrap();
    assert_eq!((again.id, again.order_fingerprint), (first.id, None));
    saga.basket.set_price("13.50");
    assert!(matches!(
        saga.create("old").await,
        Err(PaymentError::IdempotencyConflict(_))
    ));
}

#[tokio::test]
async fn a_pending_payment_holds_its_reservation_and_processing_does_not_reserve_again() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 2, Uuid::now_v7());
    let pending = saga.create("two-step").await.unwrap();
    assert_eq!(pending.status, PaymentStatus::Pending);
    assert_eq!(saga.stock.held(), vec![pending.id]);
    assert_eq!(*saga.basket.lock.lock().unwrap(), Some(pending.id));

    let card = Card::parse(CARD_SUCCEEDS, 12, 2040, "123").unwrap();
    let paid = saga
        .payments
        .process(&saga.viewer, &saga.caller, &pending.id.to_string(), card)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Completed);
    assert_eq!(*saga.stock.reserve_calls.lock().unwrap(), 1);
    assert_eq!(
        saga.stock.held(),
        vec![pending.id],
        "settled by events, not here"
    );
}

#[tokio::test]
async fn a_basket_that_cannot_be_paid_reserves_nothing() {
    let saga = Saga::start().await;
    assert!(matches!(
        saga.create("empty").await,
        Err(PaymentError::EmptyBasket)
    ));
    saga.basket.put("1.00", 1, Uuid::now_v7());
    saga.basket.lines.lock().unwrap()[0].currency = "USD".into();
    saga.basket.put("1.00", 1, Uuid::now_v7());
    assert!(matches!(
        saga.create("mixed").await,
        Err(PaymentError::MixedCurrencies(..))
    ));
    assert_eq!(*saga.stock.reserve_calls.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_lock_cleared_while_waiting_is_taken() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    // A settled checkout's lock, cleared by its event a moment later.
    *saga.basket.lock.lock().unwrap() = Some(Uuid::now_v7());
    let basket = saga.basket.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        *basket.lock.lock().unwrap() = None;
    });
    let paid = saga
        .checkout("after-the-event", CARD_SUCCEEDS)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Completed);
    assert_eq!(*saga.basket.lock.lock().unwrap(), Some(paid.id));
    assert_eq!(saga.stock.held(), vec![paid.id]);
}

#[tokio::test]
async fn a_declined_or_cancelled_payment_lets_go_at_once() {
    let saga = Saga::start().await;
    saga.basket.put("4.50", 1, Uuid::now_v7());
    let declined = saga.checkout("declined", CARD_DECLINED).await.unwrap();
    assert_eq!(declined.status, PaymentStatus::Failed);
    assert!(saga.stock.held().is_empty(), "reservation released");
    assert!(
        saga.basket.lock.lock().unwrap().is_none(),
        "basket unlocked"
    );
    // So another card works straight away, with a new key.
    let paid = saga.checkout("second-card", CARD_SUCCEEDS).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Completed);

    saga.basket.bought();
    saga.basket.put("1.00", 1, Uuid::now_v7());
    let pending = saga.create("to-cancel").await.unwrap();
    assert_eq!(*saga.basket.lock.lock().unwrap(), Some(pending.id));
    let cancelled = saga
        .payments
        .cancel(&saga.viewer, &saga.caller, &pending.id.to_string())
        .await
        .unwrap();
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);
    assert!(saga.basket.lock.lock().unwrap().is_none());
    assert_eq!(saga.stock.held(), vec![paid.id]);
}
