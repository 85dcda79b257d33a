//! The basket's side of checkout (issue 18), on PostgreSQL (basket's
//! production store) and SQLite, each test on a fresh database: the lock
//! (taken once, repeated, released, lapsed, raced), the settlement by
//! payment events (only the bought lines go; once per outcome), the
//! abandonment sweeper leaving a basket being paid for alone, and the
//! GraphQL fields (`beginCheckout`, `releaseCheckout`,
//! `confirmBasketPrices`, `Basket.checkoutInProgress`).
//!
//! The product catalogue is a fake of basket's own `ProductCatalog` port
//! (the product subgraph itself is exercised in `tests/api/basket.rs`);
//! the stores are real.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{Request, Variables};
use basket_migration::{Migrator, MigratorTrait};
use basket_subgraph::domain::{
    Basket, BasketError, CatalogProduct, CatalogUnavailable, ProductCatalog, UncheckedLine, now,
};
use basket_subgraph::events::incoming::CheckoutHandler;
use basket_subgraph::graphql::{BasketSchema, ShopCurrency, schema};
use basket_subgraph::service::Baskets;
use basket_subgraph::store::BasketStore;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use serde_json::{Value, json};
use shopgraph_core::identity::{Identity, Viewer};
use subgraph_kit::db::Database;
use subgraph_kit::events::contract::{BasketData, EventKind, PaymentData, PaymentLine};
use subgraph_kit::events::inbox::{Consumer, Outcome};
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::events::{CloudEvent, Delivery, EventBus, Topic};
use subgraph_kit::settings::{DatabaseSettings, GraphqlSettings};
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use uuid::Uuid;

const USER: &str = "user-1";
const OTHER: &str = "user-2";

/// Runs each `async fn name(backend)` on PostgreSQL and on SQLite.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(subgraph_kit::testkit::TempBackend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(subgraph_kit::testkit::TempBackend::Sqlite).await
                }
            )*
        }
    };
}

/// The basket's product catalogue port, answered from memory.
#[derive(Default)]
struct FakeCatalog {
    products: Mutex<HashMap<Uuid, CatalogProduct>>,
    down: AtomicBool,
}

impl FakeCatalog {
    fn put(&self, name: &str, price: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.products.lock().unwrap().insert(
            id,
            CatalogProduct {
                id,
                name: name.into(),
                category: "Kitchen".into(),
                price: Decimal::from_str(price).unwrap(),
                currency: "EUR".into(),
                stock: 100,
            },
        );
        id
    }

    fn reprice(&self, id: Uuid, name: &str, price: &str) {
        let mut products = self.products.lock().unwrap();
        let product = products.get_mut(&id).unwrap();
        product.name = name.into();
        product.price = Decimal::from_str(price).unwrap();
    }

    fn delete(&self, id: Uuid) {
        self.products.lock().unwrap().remove(&id);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the fake catalogue is down")]
struct Down;

impl ProductCatalog for FakeCatalog {
    fn product(
        &self,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<CatalogProduct>, CatalogUnavailable>> {
        let answer = if self.down.load(Ordering::SeqCst) {
            Err(CatalogUnavailable(Box::new(Down)))
        } else {
            Ok(self.products.lock().unwrap().get(&id).cloned())
        };
        Box::pin(async move { answer })
    }
}

/// A migrated basket store on a fresh database, its use cases, schema and
/// checkout consumer.
struct Shop {
    conn: DatabaseConnection,
    store: BasketStore,
    baskets: Baskets,
    schema: BasketSchema,
    catalog: Arc<FakeCatalog>,
    consumer: Consumer<CheckoutHandler>,
    _db: TempDatabase,
}

impl Shop {
    async fn start(backend: TempBackend) -> Self {
        let db = TempDatabase::create(backend).await;
        let settings = DatabaseSettings {
            url: db.url.clone(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        };
        let conn = Database::connect(&settings, "basket")
            .await
            .expect("test database")
            .conn;
        Migrator::up(&conn, None).await.expect("migrations");
        let store = BasketStore::new(conn.clone(), RelayWaker::default());
        let catalog = Arc::new(FakeCatalog::default());
        let baskets = Baskets::new(store.clone(), catalog.clone());
        let limits = GraphqlSettings {
            max_depth: 16,
            max_complexity: 1000,
            introspection: false,
            graphiql: false,
        };
        let schema = schema(baskets.clone(), ShopCurrency("EUR".into()), &limits);
        let consumer = Consumer::new(
            "basket-checkout",
            vec![Topic::Payment],
            conn.clone(),
            EventBus::in_process(),
            CheckoutHandler,
        );
        Self {
            conn,
            store,
            baskets,
            schema,
            catalog,
            consumer,
            _db: db,
        }
    }

    async fn add(&self, user: &str, product: Uuid, quantity: i32) -> Basket {
        self.baskets
            .add(user, &product.to_string(), quantity)
            .await
            .expect("added")
    }

    async fn basket(&self, user: &str) -> Basket {
        self.baskets.basket(user).await.expect("basket")
    }

    /// Locks `user`'s basket for `payment` on the lines it holds now.
    async fn lock(&self, user: &str, payment: Uuid, for_how_long: TimeDelta) -> Basket {
        let lines = lines_of(&self.basket(user).await);
        self.baskets
            .begin_checkout(user, &payment.to_string(), lines, now() + for_how_long)
            .await
            .expect("locked")
    }

    /// Delivers a payment event for `payment` of `user` to the consumer.
    async fn payment_event(&self, kind: EventKind, user: &str, payment: Uuid) -> Outcome {
        let event = payment_event(kind, user, payment);
        self.deliver(event).await
    }

    async fn deliver(&self, event: CloudEvent) -> Outcome {
        let delivery = Delivery {
            topic: "payment-events".into(),
            partition: 0,
            offset: 0,
            event: Ok(event),
        };
        self.consumer.apply(&delivery).await.expect("applied")
    }

    /// Every `BasketCleared` in the outbox, oldest first.
    async fn basket_cleared(&self) -> Vec<BasketData> {
        let rows = outbox::entity::Entity::find()
            .all(&self.conn)
            .await
            .expect("outbox");
        let mut events: Vec<_> = rows
            .into_iter()
            .map(|row| {
                (
                    row.seq,
                    CloudEvent::from_bytes(row.payload.as_bytes()).unwrap(),
                )
            })
            .filter(|(_, event)| event.is(EventKind::BasketCleared))
            .collect();
        events.sort_by_key(|(seq, _)| *seq);
        events
            .into_iter()
            .map(|(_, event)| event.data().unwrap())
            .collect()
    }

    /// The stored lock columns of `user`'s basket, as written (no lazy
    /// clearing on this read).
    async fn stored_lock(&self, user: &str) -> Option<Uuid> {
        let backend = self.conn.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "SELECT checkout_payment_id AS p FROM baskets WHERE user_id = $1"
            }
            _ => "SELECT checkout_payment_id AS p FROM baskets WHERE user_id = ?",
        };
        let row = self
            .conn
            .query_one_raw(Statement::from_sql_and_values(backend, sql, [user.into()]))
            .await
            .expect("query")
            .expect("a basket");
        row.try_get::<Option<Uuid>>("", "p").expect("column")
    }

    async fn gql(&self, user: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        if let Some(user) = user {
            request = request.data(Identity::User(Viewer {
                user_id: user.into(),
                roles: vec![],
            }));
        }
        serde_json::to_value(self.schema.execute(request).await).expect("json")
    }
}

fn lines_of(basket: &Basket) -> Vec<UncheckedLine> {
    basket
        .items
        .iter()
        .map(|item| UncheckedLine {
            product_id: item.product_id.to_string(),
            quantity: item.quantity,
            unit_price: item.unit_price,
            currency: item.currency.clone(),
        })
        .collect()
}

fn payment_event(kind: EventKind, user: &str, payment: Uuid) -> CloudEvent {
    let data = PaymentData {
        payment_id: payment,
        user_id: user.into(),
        status: "COMPLETED".into(),
        amount: Decimal::ONE,
        refunded_amount: Decimal::ZERO,
        currency: "EUR".into(),
        basket_id: None,
        items: vec![PaymentLine {
            product_id: Uuid::now_v7(),
            product_name: "irrelevant".into(),
            quantity: 1,
        }],
        reason: None,
    };
    CloudEvent::new(
        "/subgraphs/payment",
        kind.as_str(),
        payment.to_string(),
        &data,
    )
    .unwrap()
}

fn quantities(basket: &Basket) -> Vec<(Uuid, i32)> {
    let mut lines: Vec<_> = basket
        .items
        .iter()
        .map(|item| (item.product_id, item.quantity))
        .collect();
    lines.sort();
    lines
}

fn sorted(mut lines: Vec<(Uuid, i32)>) -> Vec<(Uuid, i32)> {
    lines.sort();
    lines
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error with a code: {response:#}"))
}

fn data(response: &Value) -> &Value {
    assert!(
        response["errors"].is_null(),
        "unexpected errors: {response:#}"
    );
    &response["data"]
}

const HOUR: TimeDelta = TimeDelta::hours(1);

async fn a_lock_is_taken_once_repeated_and_released(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());

    let locked = shop.lock(USER, first, HOUR).await;
    let lock = locked.checkout.expect("locked");
    assert_eq!(lock.payment_id, first);
    assert!(locked.checkout_in_progress(now()));
    let again = shop.lock(USER, first, HOUR).await;
    assert_eq!(
        again.checkout.map(|lock| lock.payment_id),
        Some(first),
        "the same payment again is harmless"
    );

    let lines = lines_of(&shop.basket(USER).await);
    let refused = shop
        .baskets
        .begin_checkout(USER, &second.to_string(), lines.clone(), now() + HOUR)
        .await;
    assert!(
        matches!(refused, Err(BasketError::CheckoutInProgress)),
        "{refused:?}"
    );

    // Releasing another payment's checkout changes nothing.
    shop.baskets
        .release_checkout(USER, &second.to_string())
        .await
        .unwrap();
    assert_eq!(
        shop.basket(USER).await.checkout.map(|l| l.payment_id),
        Some(first)
    );
    shop.baskets
        .release_checkout(USER, &first.to_string())
        .await
        .unwrap();
    let released = shop.basket(USER).await;
    assert_eq!(released.checkout, None);
    assert_eq!(quantities(&released), vec![(mug, 2)], "the lines stay");
    shop.baskets
        .release_checkout(USER, &first.to_string())
        .await
        .expect("releasing twice is a no-op");

    // A released checkout cannot lock again; a new payment can.
    let ended = shop
        .baskets
        .begin_checkout(USER, &first.to_string(), lines.clone(), now() + HOUR)
        .await;
    assert!(
        matches!(ended, Err(BasketError::CheckoutSettled)),
        "{ended:?}"
    );
    let relocked = shop.lock(USER, second, HOUR).await;
    assert_eq!(relocked.checkout.map(|l| l.payment_id), Some(second));

    // The lock is clamped to a day, whatever is asked.
    let third = Uuid::now_v7();
    shop.baskets
        .release_checkout(USER, &second.to_string())
        .await
        .unwrap();
    let far = shop.lock(USER, third, TimeDelta::days(365)).await;
    let until = far.checkout.expect("locked").locked_until;
    assert!(until <= now() + TimeDelta::days(1), "{until}");
}

async fn a_lock_needs_the_exact_lines_and_a_non_empty_basket(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let payment = Uuid::now_v7();
    let empty = shop
        .baskets
        .begin_checkout(USER, &payment.to_string(), vec![], now() + HOUR)
        .await;
    assert!(matches!(empty, Err(BasketError::EmptyBasket)), "{empty:?}");

    let mug = shop.catalog.put("Mug", "8.50");
    let tea = shop.catalog.put("Tea", "0.10");
    shop.add(USER, mug, 2).await;
    shop.add(USER, tea, 3).await;
    let exact = lines_of(&shop.basket(USER).await);
    let mut more = exact.clone();
    more[0].quantity += 1;
    let mut cheaper = exact.clone();
    cheaper[1].unit_price = Decimal::from_str("0.05").unwrap();
    let mut other_currency = exact.clone();
    other_currency[0].currency = "USD".into();
    for (lines, what) in [
        (more, "a quantity differs"),
        (cheaper, "a price differs"),
        (other_currency, "a currency differs"),
        (exact[..1].to_vec(), "a line is missing"),
        (vec![], "no lines"),
    ] {
        let refused = shop
            .baskets
            .begin_checkout(USER, &payment.to_string(), lines, now() + HOUR)
            .await;
        assert!(
            matches!(refused, Err(BasketError::CheckoutChanged)),
            "{what}: {refused:?}"
        );
        assert_eq!(
            shop.basket(USER).await.checkout,
            None,
            "{what}: no lock left"
        );
    }
    let past = shop
        .baskets
        .begin_checkout(
            USER,
            &payment.to_string(),
            exact.clone(),
            now() - TimeDelta::seconds(1),
        )
        .await;
    assert!(
        matches!(
            past,
            Err(BasketError::Invalid {
                field: "lockedUntil",
                ..
            })
        ),
        "{past:?}"
    );
    let locked = shop
        .baskets
        .begin_checkout(USER, &payment.to_string(), exact, now() + HOUR)
        .await
        .expect("the exact lines lock");
    assert!(locked.checkout.is_some());
}

async fn a_lapsed_lock_counts_as_absent_and_is_cleared_when_seen(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 1).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    shop.lock(USER, first, TimeDelta::milliseconds(400)).await;
    assert_eq!(shop.stored_lock(USER).await, Some(first));
    tokio::time::sleep(Duration::from_millis(600)).await;

    assert_eq!(shop.stored_lock(USER).await, Some(first));
    let seen = shop.basket(USER).await;
    assert_eq!(seen.checkout, None, "a lapsed lock reads as none");
    assert!(!seen.checkout_in_progress(now()));
    assert_eq!(
        shop.stored_lock(USER).await,
        None,
        "and is cleared when seen"
    );
    let relocked = shop.lock(USER, second, HOUR).await;
    assert_eq!(relocked.checkout.map(|l| l.payment_id), Some(second));

    // A lapsed lock does not stop another checkout even before it is seen.
    let third = Uuid::now_v7();
    shop.baskets
        .release_checkout(USER, &second.to_string())
        .await
        .unwrap();
    shop.lock(USER, third, TimeDelta::milliseconds(300)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fourth = Uuid::now_v7();
    let lines = lines_of(&shop.basket(USER).await);
    let taken = shop
        .baskets
        .begin_checkout(USER, &fourth.to_string(), lines, now() + HOUR)
        .await
        .expect("a lapsed lock does not count");
    assert_eq!(taken.checkout.map(|l| l.payment_id), Some(fourth));
}

async fn concurrent_checkouts_lock_the_basket_once(backend: TempBackend) {
    let shop = Arc::new(Shop::start(backend).await);
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 3).await;
    let lines = lines_of(&shop.basket(USER).await);
    for round in 0..4 {
        let payments: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
        let tasks: Vec<_> = payments
            .iter()
            .map(|payment| {
                let (shop, lines, payment) = (Arc::clone(&shop), lines.clone(), *payment);
                tokio::spawn(async move {
                    shop.baskets
                        .begin_checkout(USER, &payment.to_string(), lines, now() + HOUR)
                        .await
                        .map(|basket| (payment, basket))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok((payment, basket)) => {
                    assert_eq!(basket.checkout.map(|l| l.payment_id), Some(payment));
                    winners.push(payment);
                }
                Err(BasketError::CheckoutInProgress) => {}
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one lock");
        assert_eq!(
            shop.basket(USER).await.checkout.map(|l| l.payment_id),
            Some(winners[0]),
            "round {round}: the winner holds it"
        );
        shop.baskets
            .release_checkout(USER, &winners[0].to_string())
            .await
            .unwrap();
    }
}

async fn a_locked_basket_is_not_abandoned(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 1).await;
    shop.add(OTHER, mug, 1).await;
    let payment = Uuid::now_v7();
    shop.lock(USER, payment, HOUR).await;
    // Everything counts as idle: only the basket being paid for is spared.
    let marked = shop
        .store
        .mark_abandoned(now() + TimeDelta::minutes(1))
        .await
        .unwrap();
    let users: Vec<_> = marked.iter().map(|(_, user)| user.as_str()).collect();
    assert_eq!(users, vec![OTHER]);
    shop.baskets
        .release_checkout(USER, &payment.to_string())
        .await
        .unwrap();
    let marked = shop
        .store
        .mark_abandoned(now() + TimeDelta::minutes(1))
        .await
        .unwrap();
    let users: Vec<_> = marked.iter().map(|(_, user)| user.as_str()).collect();
    assert_eq!(users, vec![USER], "released, it may be abandoned");
}

/// The "an item added right after a checkout vanishes": the old
/// reaction emptied the whole basket on `PaymentCompleted`.
async fn a_completed_payment_removes_only_what_it_bought(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    let tea = shop.catalog.put("Tea", "0.10");
    let pen = shop.catalog.put("Pen", "1.50");
    shop.add(USER, mug, 2).await;
    shop.add(USER, pen, 1).await;
    let payment = Uuid::now_v7();
    shop.lock(USER, payment, HOUR).await;
    // While the payment is under way the shopper keeps shopping.
    shop.add(USER, tea, 3).await;
    shop.add(USER, mug, 1).await;

    let outcome = shop
        .payment_event(EventKind::PaymentCompleted, USER, payment)
        .await;
    assert_eq!(outcome, Outcome::Applied);
    let after = shop.basket(USER).await;
    assert_eq!(
        quantities(&after),
        sorted(vec![(mug, 1), (tea, 3)]),
        "the bought units went, the rest stayed"
    );
    assert_eq!(after.checkout, None, "the lock is cleared");
    assert_eq!(shop.stored_lock(USER).await, None);

    let cleared = shop.basket_cleared().await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    let event = &cleared[0];
    assert_eq!(event.reason, "checkout");
    assert_eq!(event.payment_id, Some(payment));
    assert_eq!(event.user_id, USER);
    assert_eq!(event.item_count, 3);
    let mut removed: Vec<_> = event
        .lines
        .iter()
        .map(|line| (line.product_id, line.quantity))
        .collect();
    removed.sort();
    assert_eq!(removed, sorted(vec![(mug, 2), (pen, 1)]));
    assert!(event.lines.iter().any(|line| line.product_name == "Mug"));

    // The next checkout of what is left works right away.
    let next = Uuid::now_v7();
    shop.lock(USER, next, HOUR).await;
}

async fn a_completed_payment_applies_once(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    let payment = Uuid::now_v7();
    shop.lock(USER, payment, HOUR).await;
    let event = payment_event(EventKind::PaymentCompleted, USER, payment);
    assert_eq!(shop.deliver(event.clone()).await, Outcome::Applied);
    shop.add(USER, mug, 2).await;
    assert_eq!(
        shop.deliver(event).await,
        Outcome::Duplicate,
        "the same event again"
    );
    // The same outcome reported again under another event id: the checkout
    // is settled, so nothing more is removed (not the old "empty it all").
    assert_eq!(
        shop.payment_event(EventKind::PaymentCompleted, USER, payment)
            .await,
        Outcome::Applied
    );
    assert_eq!(quantities(&shop.basket(USER).await), vec![(mug, 2)]);
    assert_eq!(shop.basket_cleared().await.len(), 1, "one BasketCleared");
}

async fn an_unpaid_payment_releases_the_lock_and_keeps_the_lines(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    for kind in [
        EventKind::PaymentFailed,
        EventKind::PaymentCancelled,
        EventKind::PaymentExpired,
    ] {
        let payment = Uuid::now_v7();
        shop.lock(USER, payment, HOUR).await;
        // Another payer's outcome does not touch this basket.
        shop.payment_event(kind, OTHER, payment).await;
        assert!(shop.basket(USER).await.checkout.is_some(), "{kind}");
        shop.payment_event(kind, USER, payment).await;
        let after = shop.basket(USER).await;
        assert_eq!(after.checkout, None, "{kind}: unlocked");
        assert_eq!(quantities(&after), vec![(mug, 2)], "{kind}: lines stay");
        // A late completion of a payment that ended unpaid removes nothing.
        shop.payment_event(EventKind::PaymentCompleted, USER, payment)
            .await;
        assert_eq!(quantities(&shop.basket(USER).await), vec![(mug, 2)]);
    }
    // Events for a payment that never locked this basket leave it alone.
    let locked = Uuid::now_v7();
    shop.lock(USER, locked, HOUR).await;
    shop.payment_event(EventKind::PaymentFailed, USER, Uuid::now_v7())
        .await;
    shop.payment_event(EventKind::PaymentCreated, USER, locked)
        .await;
    shop.payment_event(EventKind::PaymentRefunded, USER, locked)
        .await;
    assert_eq!(
        shop.basket(USER).await.checkout.map(|l| l.payment_id),
        Some(locked)
    );
    assert!(shop.basket_cleared().await.is_empty());
}

async fn a_payment_that_locked_nothing_empties_the_basket_as_before(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    let before_the_lock_existed = Uuid::now_v7();
    shop.payment_event(EventKind::PaymentCompleted, USER, before_the_lock_existed)
        .await;
    assert!(shop.basket(USER).await.items.is_empty());
    let cleared = shop.basket_cleared().await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].item_count, 2);
    assert_eq!(cleared[0].lines.len(), 1);
    // A payer with no basket at all: nothing to do, nothing published.
    shop.payment_event(EventKind::PaymentCompleted, "nobody", Uuid::now_v7())
        .await;
    assert_eq!(shop.basket_cleared().await.len(), 1);
}

/// Why the locked lines live in their own table: a lapsed lock replaced by
/// a newer checkout's, and the older payment completing late.
async fn a_late_completion_removes_its_own_lines_and_keeps_the_newer_lock(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    let tea = shop.catalog.put("Tea", "0.10");
    shop.add(USER, mug, 2).await;
    let (late, newer) = (Uuid::now_v7(), Uuid::now_v7());
    shop.lock(USER, late, TimeDelta::milliseconds(300)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    shop.add(USER, tea, 1).await;
    shop.lock(USER, newer, HOUR).await;

    shop.payment_event(EventKind::PaymentCompleted, USER, late)
        .await;
    let after = shop.basket(USER).await;
    assert_eq!(quantities(&after), vec![(tea, 1)]);
    assert_eq!(
        after.checkout.map(|l| l.payment_id),
        Some(newer),
        "the newer checkout keeps its lock"
    );
}

async fn settled_lines_are_pruned(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    let (settled, live) = (Uuid::now_v7(), Uuid::now_v7());
    shop.lock(USER, settled, HOUR).await;
    shop.baskets
        .release_checkout(USER, &settled.to_string())
        .await
        .unwrap();
    shop.lock(USER, live, HOUR).await;
    let pruned = shop
        .store
        .prune_settled_checkouts(now() + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the settled checkout's line");
    shop.payment_event(EventKind::PaymentCompleted, USER, live)
        .await;
    assert!(
        shop.basket(USER).await.items.is_empty(),
        "the live one still settles"
    );
}

const BASKET: &str = "id itemCount checkoutInProgress items { product { id } productName quantity unitPrice { amount currency } }";

fn begin_mutation() -> String {
    format!(
        "mutation($p: ID!, $lines: [CheckoutLineInput!]!, $until: DateTime!) {{ beginCheckout(paymentId: $p, lines: $lines, lockedUntil: $until) {{ {BASKET} }} }}"
    )
}

fn graphql_lines(basket: &Basket) -> Value {
    Value::Array(
        basket
            .items
            .iter()
            .map(|item| {
                json!({
                    "productId": item.product_id.to_string(),
                    "quantity": item.quantity,
                    "unitPrice": item.unit_price.to_string(),
                    "currency": item.currency,
                })
            })
            .collect(),
    )
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

async fn checkout_mutations_over_graphql(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let mug = shop.catalog.put("Mug", "8.50");
    shop.add(USER, mug, 2).await;
    let lines = graphql_lines(&shop.basket(USER).await);
    let until = rfc3339(now() + HOUR);
    let payment = Uuid::now_v7().to_string();

    let before = shop
        .gql(
            Some(USER),
            &format!("{{ myBasket {{ {BASKET} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(data(&before)["myBasket"]["checkoutInProgress"], false);

    let begin = begin_mutation();
    let locked = shop
        .gql(
            Some(USER),
            &begin,
            json!({ "p": payment, "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(data(&locked)["beginCheckout"]["checkoutInProgress"], true);
    assert_eq!(data(&locked)["beginCheckout"]["itemCount"], 2);
    let seen = shop
        .gql(Some(USER), "{ myBasket { checkoutInProgress } }", json!({}))
        .await;
    assert_eq!(data(&seen)["myBasket"]["checkoutInProgress"], true);

    let another = shop
        .gql(
            Some(USER),
            &begin,
            json!({ "p": Uuid::now_v7().to_string(), "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(code(&another), "CONFLICT", "{another:#}");
    assert!(
        another["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("another checkout of this basket is in progress"),
        "{another:#}"
    );
    assert!(another["data"].is_null());

    // The payer's identity scopes everything: another user's call acts on
    // their own (empty) basket and cannot release this one.
    let other = shop
        .gql(
            Some(OTHER),
            &begin,
            json!({ "p": payment, "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(code(&other), "BAD_USER_INPUT", "{other:#}");
    assert!(
        other["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the basket is empty")
    );
    let release = "mutation($p: ID!) { releaseCheckout(paymentId: $p) }";
    let foreign = shop
        .gql(Some(OTHER), release, json!({ "p": payment }))
        .await;
    assert_eq!(data(&foreign)["releaseCheckout"], true);
    let still = shop
        .gql(Some(USER), "{ myBasket { checkoutInProgress } }", json!({}))
        .await;
    assert_eq!(data(&still)["myBasket"]["checkoutInProgress"], true);
    shop.add(OTHER, mug, 1).await;
    let other_lines = graphql_lines(&shop.basket(OTHER).await);
    let reused = shop
        .gql(
            Some(OTHER),
            &begin,
            json!({ "p": payment, "lines": other_lines, "until": until }),
        )
        .await;
    assert_eq!(code(&reused), "BAD_USER_INPUT", "{reused:#}");
    assert_eq!(
        shop.basket(OTHER).await.checkout,
        None,
        "another basket's payment id locks nothing"
    );

    let released = shop.gql(Some(USER), release, json!({ "p": payment })).await;
    assert_eq!(data(&released)["releaseCheckout"], true);
    let again = shop.gql(Some(USER), release, json!({ "p": payment })).await;
    assert_eq!(
        data(&again)["releaseCheckout"],
        true,
        "idempotent, and true for what is not locked"
    );
    let unlocked = shop
        .gql(Some(USER), "{ myBasket { checkoutInProgress } }", json!({}))
        .await;
    assert_eq!(data(&unlocked)["myBasket"]["checkoutInProgress"], false);

    let changed = shop
        .gql(
            Some(USER),
            &begin,
            json!({
                "p": Uuid::now_v7().to_string(),
                "lines": [{ "productId": mug.to_string(), "quantity": 3, "unitPrice": "8.50", "currency": "EUR" }],
                "until": until,
            }),
        )
        .await;
    assert_eq!(code(&changed), "CONFLICT");
    assert!(
        changed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the basket changed during checkout")
    );

    for (variables, what) in [
        (
            json!({ "p": "not-a-uuid", "lines": lines, "until": until }),
            "paymentId",
        ),
        (
            json!({ "p": Uuid::now_v7().to_string(), "lines": lines, "until": rfc3339(now() - HOUR) }),
            "lockedUntil",
        ),
        (
            json!({ "p": Uuid::now_v7().to_string(), "lines": [{ "productId": mug.to_string(), "quantity": 0, "unitPrice": "8.50", "currency": "EUR" }], "until": until }),
            "lines",
        ),
    ] {
        let refused = shop.gql(Some(USER), &begin, variables).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{what}: {refused:#}");
        assert!(
            refused["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(what),
            "the message names {what}: {refused:#}"
        );
    }
    let bad_release = shop.gql(Some(USER), release, json!({ "p": "nope" })).await;
    assert_eq!(code(&bad_release), "BAD_USER_INPUT");

    for query in [
        begin.as_str(),
        release,
        "mutation { confirmBasketPrices { id } }",
    ] {
        let anonymous = shop
            .gql(
                None,
                query,
                json!({ "p": payment, "lines": lines, "until": until }),
            )
            .await;
        assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{query}");
    }
}

async fn confirm_basket_prices_takes_the_catalogues_prices(backend: TempBackend) {
    let shop = Shop::start(backend).await;
    let lamp = shop.catalog.put("Lamp", "20.00");
    let bulb = shop.catalog.put("Bulb", "3.00");
    let gone = shop.catalog.put("Old stock", "1.00");
    shop.add(USER, lamp, 2).await;
    shop.add(USER, bulb, 1).await;
    shop.add(USER, gone, 1).await;
    shop.catalog.reprice(lamp, "Desk lamp", "25.00");
    shop.catalog.delete(gone);

    let confirm = format!("mutation {{ confirmBasketPrices {{ {BASKET} total {{ amount }} }} }}");
    shop.catalog.down.store(true, Ordering::SeqCst);
    let down = shop.gql(Some(USER), &confirm, json!({})).await;
    assert_eq!(code(&down), "SUBGRAPH_UNAVAILABLE");
    let unchanged = shop.basket(USER).await;
    assert_eq!(
        unchanged.items[0].unit_price,
        Decimal::from_str("20.00").unwrap(),
        "nothing written when the catalogue cannot be asked"
    );
    shop.catalog.down.store(false, Ordering::SeqCst);

    let confirmed = shop.gql(Some(USER), &confirm, json!({})).await;
    let basket = &data(&confirmed)["confirmBasketPrices"];
    let items = basket["items"].as_array().unwrap();
    assert_eq!(items[0]["productName"], "Desk lamp");
    assert_eq!(
        items[0]["unitPrice"],
        json!({ "amount": "25.00", "currency": "EUR" })
    );
    assert_eq!(items[0]["quantity"], 2, "quantities stay");
    assert_eq!(items[1]["unitPrice"]["amount"], "3.00");
    assert_eq!(
        items[2]["unitPrice"]["amount"], "1.00",
        "a product the catalogue no longer knows keeps its line"
    );
    assert_eq!(basket["total"]["amount"], "54.00");

    // The re-confirmed lines are what a checkout locks.
    let lines = graphql_lines(&shop.basket(USER).await);
    let locked = shop
        .gql(
            Some(USER),
            &begin_mutation(),
            json!({ "p": Uuid::now_v7().to_string(), "lines": lines, "until": rfc3339(now() + HOUR) }),
        )
        .await;
    assert_eq!(data(&locked)["beginCheckout"]["checkoutInProgress"], true);

    let empty = shop.gql(Some(OTHER), &confirm, json!({})).await;
    assert_eq!(data(&empty)["confirmBasketPrices"]["itemCount"], 0);
}

backend_tests!(
    a_lock_is_taken_once_repeated_and_released,
    a_lock_needs_the_exact_lines_and_a_non_empty_basket,
    a_lapsed_lock_counts_as_absent_and_is_cleared_when_seen,
    concurrent_checkouts_lock_the_basket_once,
    a_locked_basket_is_not_abandoned,
    a_completed_payment_removes_only_what_it_bought,
    a_completed_payment_applies_once,
    an_unpaid_payment_releases_the_lock_and_keeps_the_lines,
    a_payment_that_locked_nothing_empties_the_basket_as_before,
    a_late_completion_removes_its_own_lines_and_keeps_the_newer_lock,
    settled_lines_are_pruned,
    checkout_mutations_over_graphql,
    confirm_basket_prices_takes_the_catalogues_prices,
);

/// The internal mutations stay out of the router's API schema; the
/// shopper's re-confirmation and `checkoutInProgress` are public.
#[test]
fn the_internal_mutations_are_inaccessible() {
    let sdl = basket_subgraph::graphql::sdl();
    let line = |needle: &str| {
        sdl.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in the SDL:\n{sdl}"))
            .to_owned()
    };
    assert!(line("beginCheckout(").contains("@inaccessible"));
    assert!(line("releaseCheckout(").contains("@inaccessible"));
    assert!(line("input CheckoutLineInput").contains("@inaccessible"));
    assert!(!line("confirmBasketPrices").contains("@inaccessible"));
    assert!(!line("checkoutInProgress").contains("@inaccessible"));
}
