//! Refunds and reconciliation on the payment subgraph's real stores —
//! MariaDB (production) and SQLite — through its use cases and the
//! simulated provider: a refund and its `PaymentRefunded` commit together;
//! concurrent refunds never exceed the captured amount; payments left
//! PROCESSING and refunds left REQUESTED by a crash are settled by asking
//! the provider.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use payment_migration::{Migrator, MigratorTrait};
use payment_subgraph::domain::provider::{
    CARD_SUCCEEDS, ChargeOutcome, ChargeRequest, PaymentProvider, RefundOutcome, RefundRequest,
    SimulatedProvider,
};
use payment_subgraph::domain::{
    BasketSnapshot, BasketSource, Card, NewPayment, Payment, PaymentError, PaymentItem,
    PaymentMethod, PaymentStatus, RefundStatus, StockReservations, now,
};
use payment_subgraph::service::{Holds, Payments, Reconciled};
use payment_subgraph::store::{Change, PaymentStore};
use rust_decimal::Decimal;
use sea_orm::{EntityTrait, QueryOrder};
use subgraph_kit::db::Database;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::outbox::{RelayWaker, entity as outbox};
use subgraph_kit::settings::DatabaseSettings;
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use subgraph_kit::upstream::{Credentials, UpstreamError};
use uuid::Uuid;

/// Payments here are made in the store and charged by hand: nothing reads
/// a basket.
struct NoBaskets;

impl BasketSource for NoBaskets {
    fn current_basket<'a>(
        &'a self,
        _caller: &'a Credentials,
    ) -> BoxFuture<'a, Result<BasketSnapshot, UpstreamError>> {
        Box::pin(async { panic!("these tests create payments in the store") })
    }

    fn begin_checkout<'a>(
        &'a self,
        _caller: &'a Credentials,
        _payment_id: Uuid,
        _lines: &'a [PaymentItem],
        _locked_until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async { panic!("these tests create payments in the store") })
    }

    fn release_checkout<'a>(
        &'a self,
        _caller: &'a Credentials,
        _payment_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async { panic!("these tests create payments in the store") })
    }
}

/// Nor does anything reserve stock: payments are made in the store.
struct NoStock;

impl StockReservations for NoStock {
    fn reserve<'a>(
        &'a self,
        _caller: &'a Credentials,
        _reservation_id: Uuid,
        _expires_at: DateTime<Utc>,
        _lines: &'a [PaymentItem],
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async { panic!("these tests create payments in the store") })
    }

    fn release<'a>(
        &'a self,
        _caller: &'a Credentials,
        _reservation_id: Uuid,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async { panic!("these tests create payments in the store") })
    }
}

/// The use cases over a fresh, migrated store, with the simulated provider
/// they share with the test (so the test can see and act as the provider).
struct Fixture {
    payments: Payments,
    store: PaymentStore,
    provider: SimulatedProvider,
    db: sea_orm::DatabaseConnection,
    _database: TempDatabase,
}

impl Fixture {
    async fn new(backend: TempBackend) -> Self {
        let database = TempDatabase::create(backend).await;
        let settings = DatabaseSettings {
            url: database.url.clone(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        };
        let db = Database::connect(&settings, "payment")
            .await
            .expect("the test store opens")
            .conn;
        Migrator::up(&db, None).await.expect("migrated");
        let store = PaymentStore::new(db.clone(), RelayWaker::default());
        let provider = SimulatedProvider::default();
        let payments = Payments::new(
            store.clone(),
            Arc::new(NoBaskets),
            Arc::new(NoStock),
            Arc::new(provider.clone()),
            Holds {
                pending_ttl: Duration::from_secs(900),
                settle_margin: Duration::from_secs(600),
            },
        );
        Self {
            payments,
            store,
            provider,
            db,
            _database: database,
        }
    }

    /// A PENDING payment of `amount`.
    async fn pending(&self, amount: &str) -> Payment {
        let amount = Decimal::from_str(amount).expect("an amount");
        let created_at = now();
        self.store
            .insert(NewPayment {
                id: Uuid::now_v7(),
                user_id: "user-1".into(),
                basket_id: None,
                amount,
                currency: "EUR".into(),
                method: PaymentMethod::Card,
                provider: "simulated".into(),
                description: None,
                idempotency_key: Uuid::now_v7().to_string(),
                request_fingerprint: "test".into(),
                order_fingerprint: "test".into(),
                items: vec![PaymentItem {
                    product_id: Uuid::now_v7(),
                    product_name: "Teapot".into(),
                    quantity: 1,
                    unit_price: amount,
                    currency: "EUR".into(),
                }],
                created_at,
                expires_at: created_at + chrono::Duration::minutes(15),
            })
            .await
            .expect("inserted")
            .expect("a new key")
    }

    /// Moves a PENDING payment to PROCESSING, as checkout does before it
    /// asks the provider.
    async fn processing(&self, payment: &Payment) {
        assert!(
            self.store
                .change_status(
                    payment.id,
                    PaymentStatus::Pending,
                    Change::Processing {
                        card_last4: "4242".into()
                    },
                )
                .await
                .expect("changed")
        );
    }

    /// The provider captures the payment (as during a checkout).
    async fn capture_at_provider(&self, payment: &Payment) -> String {
        let card = Card::parse(CARD_SUCCEEDS, 12, 2040, "123").expect("a test card");
        let outcome = self
            .provider
            .charge(ChargeRequest {
                payment_id: payment.id,
                amount: payment.amount,
                currency: payment.currency.clone(),
                card,
            })
            .await
            .expect("the provider answers");
        match outcome {
            ChargeOutcome::Captured { provider_id } => provider_id,
            other => panic!("not captured: {other:?}"),
        }
    }

    /// A COMPLETED payment of `amount`, captured by the provider.
    async fn completed(&self, amount: &str) -> Payment {
        let payment = self.pending(amount).await;
        self.processing(&payment).await;
        let provider_id = self.capture_at_provider(&payment).await;
        assert!(
            self.store
                .change_status(
                    payment.id,
                    PaymentStatus::Processing,
                    Change::Completed { provider_id }
                )
                .await
                .expect("changed")
        );
        self.get(payment.id).await
    }

    async fn get(&self, id: Uuid) -> Payment {
        self.store
            .get(id)
            .await
            .expect("read")
            .expect("the payment exists")
    }

    /// The events written to the outbox for payment `id`, in commit order;
    /// each is keyed by the payer (one user's payment events share a
    /// partition and keep their order).
    async fn events(&self, id: Uuid) -> Vec<CloudEvent> {
        let payer = self.get(id).await.user_id;
        outbox::Entity::find()
            .order_by_asc(outbox::Column::Seq)
            .all(&self.db)
            .await
            .expect("the outbox is readable")
            .into_iter()
            .filter_map(|row| {
                let event = CloudEvent::from_bytes(row.payload.as_bytes()).expect("a CloudEvent");
                (event.subject == id.to_string()).then(|| {
                    assert_eq!(row.event_key, payer, "{} is keyed by its payer", event.kind);
                    event
                })
            })
            .collect()
    }

    async fn kinds(&self, id: Uuid) -> Vec<String> {
        self.events(id)
            .await
            .into_iter()
            .map(|event| event.kind)
            .collect()
    }
}

fn money(value: &str) -> Decimal {
    Decimal::from_str(value).expect("an amount")
}

async fn a_refund_commits_with_its_event_and_is_asked_of_the_provider_once(backend: TempBackend) {
    let shop = Fixture::new(backend).await;
    let payment = shop.completed("10.00").await;

    let refunded = shop
        .payments
        .refund(&payment.id.to_string(), Some(money("4.00")))
        .await
        .expect("refunded");
    assert_eq!(refunded.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(refunded.refunded_amount, money("4.00"));

    let refunds = shop.store.refunds_of(payment.id).await.expect("read");
    assert_eq!(refunds.len(), 1);
    let refund = &refunds[0];
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert_eq!(refund.amount, money("4.00"));
    // The provider has it under our refund id, and only once.
    let expected = RefundOutcome::Refunded {
        provider_refund_id: refund.provider_refund_id.clone().expect("a reference"),
    };
    assert_eq!(
        shop.provider
            .lookup_refund(refund.id)
            .await
            .expect("answers"),
        Some(expected)
    );

    let events = shop.events(payment.id).await;
    let last = events.last().expect("events");
    assert_eq!(last.kind, "PaymentRefunded");
    assert_eq!(last.data["refundedAmount"], "4.00", "{}", last.data);
    assert_eq!(last.data["status"], "PARTIALLY_REFUNDED");

    // A settled refund cannot be settled again, and the rest can be refunded.
    assert!(
        !shop
            .store
            .complete_refund(refund, "again")
            .await
            .expect("checked")
    );
    let rest = shop
        .payments
        .refund(&payment.id.to_string(), None)
        .await
        .expect("the rest refunded");
    assert_eq!(rest.status, PaymentStatus::Refunded);
    assert_eq!(rest.refunded_amount, money("10.00"));
    let kinds = shop.kinds(payment.id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "PaymentRefunded").count(),
        2,
        "{kinds:?}"
    );
    let over = shop
        .payments
        .refund(&payment.id.to_string(), Some(money("0.01")))
        .await;
    assert!(
        matches!(
            over,
            Err(PaymentError::IllegalTransition {
                current: PaymentStatus::Refunded,
                ..
            })
        ),
        "{over:?}"
    );
}

#[tokio::test]
async fn on_mariadb_a_refund_commits_with_its_event_and_is_asked_of_the_provider_once() {
    a_refund_commits_with_its_event_and_is_asked_of_the_provider_once(TempBackend::MariaDb).await;
}

#[tokio::test]
async fn on_sqlite_a_refund_commits_with_its_event_and_is_asked_of_the_provider_once() {
    a_refund_commits_with_its_event_and_is_asked_of_the_provider_once(TempBackend::Sqlite).await;
}

/// Eight admins refund 3.00 of a 10.00 payment at the same moment: three
/// succeed (9.00), the others are refused, and the total never exceeds
/// what was captured — in the store, at the provider and in the events.
async fn concurrent_refunds_never_exceed_the_captured_amount(backend: TempBackend) {
    let shop = Fixture::new(backend).await;
    let payment = shop.completed("10.00").await;
    let id = payment.id.to_string();

    let attempts = join_all((0..8).map(|_| {
        let payments = shop.payments.clone();
        let id = id.clone();
        tokio::spawn(async move { payments.refund(&id, Some(money("3.00"))).await })
    }))
    .await;
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.expect("the task ran") {
            Ok(_) => succeeded += 1,
            Err(PaymentError::Invalid {
                field: "amount", ..
            }) => {}
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    assert_eq!(succeeded, 3, "exactly three refunds of 3.00 fit in 10.00");
    let after = shop.get(payment.id).await;
    assert_eq!(after.refunded_amount, money("9.00"));
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    let refunds = shop.store.refunds_of(payment.id).await.expect("read");
    assert_eq!(
        refunds.len(),
        3,
        "refused requests leave no row: {refunds:?}"
    );
    assert!(refunds.iter().all(|r| r.status == RefundStatus::Succeeded));
    let kinds = shop.kinds(payment.id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "PaymentRefunded").count(),
        3,
        "{kinds:?}"
    );

    // Two refunds of the full remaining 1.00 at once: exactly one.
    let last = join_all((0..2).map(|_| {
        let payments = shop.payments.clone();
        let id = id.clone();
        tokio::spawn(async move { payments.refund(&id, None).await })
    }))
    .await;
    let won = last
        .into_iter()
        .filter(|attempt| matches!(attempt, Ok(Ok(_))))
        .count();
    assert_eq!(won, 1);
    let done = shop.get(payment.id).await;
    assert_eq!(done.refunded_amount, money("10.00"));
    assert_eq!(done.status, PaymentStatus::Refunded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_mariadb_concurrent_refunds_never_exceed_the_captured_amount() {
    concurrent_refunds_never_exceed_the_captured_amount(TempBackend::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_concurrent_refunds_never_exceed_the_captured_amount() {
    concurrent_refunds_never_exceed_the_captured_amount(TempBackend::Sqlite).await;
}

/// A refund held back by a REQUESTED one counts against what is left.
async fn a_requested_refund_holds_its_amount_back(backend: TempBackend) {
    let shop = Fixture::new(backend).await;
    let payment = shop.completed("10.00").await;
    let held = shop
        .store
        .request_refund(payment.id, money("7.00"))
        .await
        .expect("requested");
    let refused = shop
        .payments
        .refund(&payment.id.to_string(), Some(money("4.00")))
        .await;
    assert!(
        matches!(&refused, Err(PaymentError::Invalid { field: "amount", reason }) if reason.contains("7.00")),
        "{refused:?}"
    );
    // Once the provider refuses the held refund, its amount is free again.
    assert!(
        shop.store
            .fail_refund(&held, "amount_too_large")
            .await
            .expect("failed")
    );
    shop.payments
        .refund(&payment.id.to_string(), Some(money("4.00")))
        .await
        .expect("fits now");
}

#[tokio::test]
async fn on_mariadb_a_requested_refund_holds_its_amount_back() {
    a_requested_refund_holds_its_amount_back(TempBackend::MariaDb).await;
}

#[tokio::test]
async fn on_sqlite_a_requested_refund_holds_its_amount_back() {
    a_requested_refund_holds_its_amount_back(TempBackend::Sqlite).await;
}

/// How long a payment may be PROCESSING before reconciliation in these
/// tests (checkouts in progress are younger).
const GRACE: Duration = Duration::from_millis(500);

/// What a crash leaves: a payment PROCESSING that the provider captured, one
/// it never saw, one being charged right now (too recent to touch), a
/// refund REQUESTED that the provider made and one it never received.
async fn reconciliation_settles_what_a_crash_left_by_asking_the_provider(backend: TempBackend) {
    let shop = Fixture::new(backend).await;
    let captured = shop.pending("12.50").await;
    shop.processing(&captured).await;
    let provider_id = shop.capture_at_provider(&captured).await;
    let never_seen = shop.pending("3.00").await;
    shop.processing(&never_seen).await;

    let refunded = shop.completed("20.00").await;
    let made = shop
        .store
        .request_refund(refunded.id, money("5.00"))
        .await
        .expect("requested");
    let outcome = shop
        .provider
        .refund(RefundRequest {
            refund_id: made.id,
            charge_id: refunded.provider_id.clone().expect("captured"),
            amount: made.amount,
            currency: "EUR".into(),
        })
        .await
        .expect("answers");
    let lost = shop
        .store
        .request_refund(refunded.id, money("2.00"))
        .await
        .expect("requested");
    // ... and the process died before it recorded any of it.

    tokio::time::sleep(GRACE * 2).await;
    let recent = shop.pending("1.00").await;
    shop.processing(&recent).await;

    let done = shop.payments.reconcile(GRACE).await.expect("reconciled");
    assert_eq!(done.completed, 1, "{done:?}");
    assert_eq!(done.failed, 1, "{done:?}");
    assert_eq!(done.refunds_succeeded, 1, "{done:?}");
    assert_eq!(done.refunds_failed, 1, "{done:?}");

    let settled = shop.get(captured.id).await;
    assert_eq!(settled.status, PaymentStatus::Completed);
    assert_eq!(settled.provider_id.as_deref(), Some(provider_id.as_str()));
    assert_eq!(
        shop.kinds(captured.id).await,
        ["PaymentCreated", "PaymentCompleted"]
    );

    let failed = shop.get(never_seen.id).await;
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert!(
        failed.retryable,
        "nothing was captured: a new attempt may succeed"
    );
    assert_eq!(
        shop.kinds(never_seen.id).await,
        ["PaymentCreated", "PaymentFailed"]
    );

    assert_eq!(
        shop.get(recent.id).await.status,
        PaymentStatus::Processing,
        "a payment within the grace period is being charged: left alone"
    );

    let after = shop.get(refunded.id).await;
    assert_eq!(after.refunded_amount, money("5.00"));
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    let refunds = shop.store.refunds_of(refunded.id).await.expect("read");
    let status_of = |id: Uuid| refunds.iter().find(|r| r.id == id).map(|r| r.status);
    assert_eq!(status_of(made.id), Some(RefundStatus::Succeeded));
    assert_eq!(status_of(lost.id), Some(RefundStatus::Failed));
    assert_eq!(
        refunds
            .iter()
            .find(|r| r.id == made.id)
            .and_then(|r| r.provider_refund_id.clone()),
        match outcome {
            RefundOutcome::Refunded { provider_refund_id } => Some(provider_refund_id),
            RefundOutcome::Refused { .. } => None,
        }
    );
    assert_eq!(
        shop.kinds(refunded.id)
            .await
            .iter()
            .filter(|k| *k == "PaymentRefunded")
            .count(),
        1
    );

    // Later, the recent one is old enough too (and never reached the
    // provider); what was settled is not touched again.
    tokio::time::sleep(GRACE).await;
    let again = shop.payments.reconcile(GRACE).await.expect("reconciled");
    assert_eq!(
        again,
        Reconciled {
            failed: 1,
            ..Reconciled::default()
        }
    );
    assert_eq!(shop.get(recent.id).await.status, PaymentStatus::Failed);
}

#[tokio::test]
async fn on_mariadb_reconciliation_settles_what_a_crash_left_by_asking_the_provider() {
    reconciliation_settles_what_a_crash_left_by_asking_the_provider(TempBackend::MariaDb).await;
}

#[tokio::test]
async fn on_sqlite_reconciliation_settles_what_a_crash_left_by_asking_the_provider() {
    reconciliation_settles_what_a_crash_left_by_asking_the_provider(TempBackend::Sqlite).await;
}
