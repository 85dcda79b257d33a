//! The invariant checker: after the storm and its faults, once the shop
//! has settled, the four stores and the clients' records must agree.
//!
//! It reads the stores directly (SQL, not the API: the API is what is
//! under test) and lists every violation it finds, each in words that say
//! which invariant and which row. The invariants are the issue's:
//!
//! 1. stock: for every product, in stock + reserved + sold = initial
//!    stock, never negative; what reservations sold is what completed
//!    payments bought;
//! 2. every completed payment took its units exactly once (its reservation
//!    SOLD, with its lines) and emptied its basket lines (settled); every
//!    failed, cancelled or expired one took nothing and holds nothing;
//! 3. every payment a client was told of exists, with that client's key,
//!    and in a state that agrees with what the client was told; no key
//!    produced two payments;
//! 4. refunds never exceed what was captured, and the payment's refunded
//!    total is the sum of its succeeded refunds;
//! 5. every payment event produced exactly one notification for its payer;
//! 6. nothing is left PENDING, PROCESSING, REQUESTED, RESERVED, locked or
//!    unpublished.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};
use serde_json::{Value, json};
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::payment;
use uuid::Uuid;

use crate::client::{Answer, Api};
use crate::servers::connect;
use crate::storm::{Item, Records, Told};
use crate::token;
use crate::topology::DatabaseUrls;

const COMPLETED_LIKE: [&str; 3] = ["COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"];
const TOOK_NOTHING: [&str; 3] = ["FAILED", "CANCELLED", "EXPIRED"];

/// The stores, read once.
#[derive(Debug, Default)]
pub struct Snapshot {
    stock: BTreeMap<Uuid, i64>,
    /// Reservation → (status, product → units).
    reservations: BTreeMap<Uuid, (String, BTreeMap<Uuid, i64>)>,
    payments: BTreeMap<Uuid, Payment>,
    /// Payment → product → units.
    payment_items: BTreeMap<Uuid, BTreeMap<Uuid, i64>>,
    /// Payment → (amount, status) of each refund.
    refunds: BTreeMap<Uuid, Vec<(Decimal, String)>>,
    /// Payment → (event kind → how many) in payment's outbox.
    payment_events: BTreeMap<Uuid, BTreeMap<String, usize>>,
    /// Payment → (notification type → users told).
    notifications: BTreeMap<Uuid, BTreeMap<String, Vec<String>>>,
    /// Payment → (lines locked, lines settled) in basket.
    checkout_lines: BTreeMap<Uuid, (usize, usize)>,
    /// Baskets still locked, by the payment that holds them.
    locked_baskets: Vec<Uuid>,
    /// Outbox rows not yet published, by service.
    unpublished: BTreeMap<&'static str, i64>,
}

#[derive(Debug, Clone)]
struct Payment {
    user: String,
    key: String,
    status: String,
    amount: Decimal,
    refunded: Decimal,
}

/// Connections to the four stores.
pub struct Stores {
    product: DatabaseConnection,
    basket: DatabaseConnection,
    payment: DatabaseConnection,
    notification: DatabaseConnection,
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> T {
    row.try_get::<T>("", column)
        .unwrap_or_else(|err| panic!("column {column}: {err:?}"))
}

/// A count the backend may give as any integer type.
fn count(row: &QueryResult) -> i64 {
    row.try_get::<i64>("", "n")
        .or_else(|_| row.try_get::<i32>("", "n").map(i64::from))
        .unwrap_or_else(|err| panic!("a count: {err:?}"))
}

impl Stores {
    pub async fn connect(urls: &DatabaseUrls) -> Self {
        let within = Duration::from_secs(30);
        Self {
            product: connect(&urls.product, within).await,
            basket: connect(&urls.basket, within).await,
            payment: connect(&urls.payment, within).await,
            notification: connect(&urls.notification, within).await,
        }
    }

    /// Reads everything the checks need.
    pub async fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for row in rows(&self.product, "SELECT id, stock_quantity FROM products").await {
            snapshot.stock.insert(
                get(&row, "id"),
                i64::from(get::<i32>(&row, "stock_quantity")),
            );
        }
        for row in rows(
            &self.product,
            "SELECT r.id, r.status, l.product_id, l.quantity FROM stock_reservations r \
             JOIN stock_reservation_lines l ON l.reservation_id = r.id",
        )
        .await
        {
            let entry = snapshot
                .reservations
                .entry(get(&row, "id"))
                .or_insert_with(|| (get(&row, "status"), BTreeMap::new()));
            *entry.1.entry(get(&row, "product_id")).or_default() +=
                i64::from(get::<i32>(&row, "quantity"));
        }
        for row in rows(
            &self.payment,
            "SELECT id, user_id, idempotency_key, status, amount, refunded_amount FROM payments",
        )
        .await
        {
            snapshot.payments.insert(
                get(&row, "id"),
                Payment {
                    user: get(&row, "user_id"),
                    key: get(&row, "idempotency_key"),
                    status: get(&row, "status"),
                    amount: get(&row, "amount"),
                    refunded: get(&row, "refunded_amount"),
                },
            );
        }
        for row in rows(
            &self.payment,
            "SELECT payment_id, product_id, quantity FROM payment_items",
        )
        .await
        {
            *snapshot
                .payment_items
                .entry(get(&row, "payment_id"))
                .or_default()
                .entry(get(&row, "product_id"))
                .or_default() += i64::from(get::<i32>(&row, "quantity"));
        }
        for row in rows(
            &self.payment,
            "SELECT payment_id, amount, status FROM payment_refunds",
        )
        .await
        {
            snapshot
                .refunds
                .entry(get(&row, "payment_id"))
                .or_default()
                .push((get(&row, "amount"), get(&row, "status")));
        }
        for row in rows(&self.payment, "SELECT payload FROM event_outbox").await {
            let payload: String = get(&row, "payload");
            let Ok(event) = CloudEvent::from_bytes(payload.as_bytes()) else {
                continue;
            };
            let Some(id) = event.data["paymentId"]
                .as_str()
                .and_then(|id| Uuid::try_parse(id).ok())
            else {
                continue;
            };
            *snapshot
                .payment_events
                .entry(id)
                .or_default()
                .entry(event.kind.clone())
                .or_default() += 1;
        }
        for row in rows(
            &self.notification,
            "SELECT user_id, type, data FROM notifications",
        )
        .await
        {
            let data: Option<String> = get(&row, "data");
            let Some(id) = data
                .and_then(|data| serde_json::from_str::<Value>(&data).ok())
                .and_then(|data| {
                    data["paymentId"]
                        .as_str()
                        .and_then(|id| Uuid::try_parse(id).ok())
                })
            else {
                continue;
            };
            snapshot
                .notifications
                .entry(id)
                .or_default()
                .entry(get(&row, "type"))
                .or_default()
                .push(get(&row, "user_id"));
        }
        for row in rows(
            &self.basket,
            "SELECT payment_id, count(*) AS n, count(settled_at) AS settled \
             FROM basket_checkout_lines GROUP BY payment_id",
        )
        .await
        {
            let settled: i64 = get(&row, "settled");
            snapshot.checkout_lines.insert(
                get(&row, "payment_id"),
                (count(&row) as usize, settled as usize),
            );
        }
        for row in rows(
            &self.basket,
            "SELECT checkout_payment_id FROM baskets WHERE checkout_payment_id IS NOT NULL",
        )
        .await
        {
            snapshot
                .locked_baskets
                .push(get(&row, "checkout_payment_id"));
        }
        for (service, db) in [
            ("product", &self.product),
            ("basket", &self.basket),
            ("payment", &self.payment),
            ("notification", &self.notification),
        ] {
            let unpublished = rows(
                db,
                "SELECT count(*) AS n FROM event_outbox WHERE published_at IS NULL",
            )
            .await;
            snapshot
                .unpublished
                .insert(service, unpublished.first().map_or(0, count));
        }
        snapshot
    }
}

/// Event kinds a notification is made of, and the notification type each
/// makes.
const NOTIFIED: [(&str, &str); 5] = [
    (payment::COMPLETED, "PAYMENT_COMPLETED"),
    (payment::FAILED, "PAYMENT_FAILED"),
    (payment::CANCELLED, "PAYMENT_CANCELLED"),
    (payment::EXPIRED, "PAYMENT_EXPIRED"),
    (payment::REFUNDED, "PAYMENT_REFUNDED"),
];

impl Snapshot {
    /// What still moves: the shop has settled when this is empty.
    pub fn unsettled(&self) -> Vec<String> {
        let mut open = Vec::new();
        let pending = self
            .payments
            .values()
            .filter(|p| p.status == "PENDING" || p.status == "PROCESSING")
            .count();
        if pending > 0 {
            open.push(format!("{pending} payments PENDING or PROCESSING"));
        }
        let requested = self
            .refunds
            .values()
            .flatten()
            .filter(|(_, status)| status == "REQUESTED")
            .count();
        if requested > 0 {
            open.push(format!("{requested} refunds REQUESTED"));
        }
        let reserved = self
            .reservations
            .values()
            .filter(|(status, _)| status == "RESERVED")
            .count();
        if reserved > 0 {
            open.push(format!("{reserved} reservations RESERVED"));
        }
        for (service, n) in &self.unpublished {
            if *n > 0 {
                open.push(format!("{n} {service} events unpublished"));
            }
        }
        let unsettled_lines: usize = self
            .checkout_lines
            .iter()
            .filter(|(id, (locked, settled))| {
                locked != settled && self.payments.get(id).is_some_and(|p| p.status != "PENDING")
            })
            .count();
        if unsettled_lines > 0 {
            open.push(format!(
                "{unsettled_lines} settled payments' basket lines unsettled"
            ));
        }
        let missing: usize = self.notification_mismatches().len();
        if missing > 0 {
            open.push(format!(
                "{missing} payment events without their notification"
            ));
        }
        open
    }

    /// `(payment, kind, events, notifications)` where the two differ.
    fn notification_mismatches(&self) -> Vec<(Uuid, &'static str, usize, usize)> {
        let mut mismatches = Vec::new();
        let ids: BTreeSet<&Uuid> = self
            .payment_events
            .keys()
            .chain(self.notifications.keys())
            .collect();
        for id in ids {
            for (kind, notification_type) in NOTIFIED {
                let events = self
                    .payment_events
                    .get(id)
                    .and_then(|kinds| kinds.get(kind))
                    .copied()
                    .unwrap_or(0);
                let told = self
                    .notifications
                    .get(id)
                    .and_then(|types| types.get(notification_type))
                    .map_or(0, Vec::len);
                if events != told {
                    mismatches.push((*id, kind, events, told));
                }
            }
        }
        mismatches
    }

    /// Every violated invariant, in words.
    pub fn violations(&self, catalogue: &[Item], records: &Records) -> Vec<String> {
        let mut violations: Vec<String> = self
            .unsettled()
            .into_iter()
            .map(|open| format!("not settled: {open}"))
            .collect();
        self.check_stock(catalogue, &mut violations);
        self.check_payments(&mut violations);
        self.check_clients(records, &mut violations);
        self.check_refunds(&mut violations);
        self.check_notifications(&mut violations);
        for payment in &self.locked_baskets {
            violations.push(format!("a basket is still locked by payment {payment}"));
        }
        violations
    }

    fn check_stock(&self, catalogue: &[Item], violations: &mut Vec<String>) {
        let mut sold_by_payments: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (id, payment) in &self.payments {
            if COMPLETED_LIKE.contains(&payment.status.as_str()) {
                for (product, units) in self.payment_items.get(id).into_iter().flatten() {
                    *sold_by_payments.entry(*product).or_default() += units;
                }
            }
        }
        for item in catalogue {
            let Ok(id) = Uuid::try_parse(&item.id) else {
                violations.push(format!("product id {} is not a UUID", item.id));
                continue;
            };
            let held = |wanted: &str| -> i64 {
                self.reservations
                    .values()
                    .filter(|(status, _)| status == wanted)
                    .filter_map(|(_, lines)| lines.get(&id))
                    .sum()
            };
            let (stock, reserved, sold) = (
                self.stock.get(&id).copied().unwrap_or(0),
                held("RESERVED"),
                held("SOLD"),
            );
            if stock < 0 {
                violations.push(format!("product {id}: stock {stock} is negative"));
            }
            if stock + reserved + sold != item.initial_stock {
                violations.push(format!(
                    "product {id}: in stock {stock} + reserved {reserved} + sold {sold} != initial {}",
                    item.initial_stock
                ));
            }
            let paid = sold_by_payments.get(&id).copied().unwrap_or(0);
            if sold != paid {
                violations.push(format!(
                    "product {id}: reservations sold {sold} units, completed payments bought {paid}"
                ));
            }
        }
    }

    fn check_payments(&self, violations: &mut Vec<String>) {
        for (id, payment) in &self.payments {
            let reservation = self.reservations.get(id);
            let lines = self.checkout_lines.get(id);
            if COMPLETED_LIKE.contains(&payment.status.as_str()) {
                match reservation {
                    Some((status, units)) if status == "SOLD" => {
                        if Some(units) != self.payment_items.get(id) {
                            violations.push(format!(
                                "payment {id} ({}): its reservation sold {units:?}, it bought {:?}",
                                payment.status,
                                self.payment_items.get(id)
                            ));
                        }
                    }
                    other => violations.push(format!(
                        "payment {id} ({}) took no units: reservation {:?}",
                        payment.status,
                        other.map(|(status, _)| status)
                    )),
                }
                match lines {
                    Some((locked, settled)) if locked == settled => {}
                    other => violations.push(format!(
                        "payment {id} ({}): basket lines (locked, settled) {other:?}, \
                         its basket not emptied of them",
                        payment.status
                    )),
                }
            } else if TOOK_NOTHING.contains(&payment.status.as_str()) {
                if let Some((status, _)) = reservation
                    && status != "RELEASED"
                {
                    violations.push(format!(
                        "payment {id} ({}) still holds its reservation ({status})",
                        payment.status
                    ));
                }
                if let Some((locked, settled)) = lines
                    && locked != settled
                {
                    violations.push(format!(
                        "payment {id} ({}): {locked} basket lines locked, {settled} released",
                        payment.status
                    ));
                }
            }
        }
        for (id, (status, _)) in &self.reservations {
            if status == "SOLD"
                && !self
                    .payments
                    .get(id)
                    .is_some_and(|p| COMPLETED_LIKE.contains(&p.status.as_str()))
            {
                violations.push(format!(
                    "reservation {id} is SOLD but no completed payment has its id ({:?})",
                    self.payments.get(id).map(|p| &p.status)
                ));
            }
        }
    }

    fn check_clients(&self, records: &Records, violations: &mut Vec<String>) {
        let mut by_key: BTreeMap<(&str, &str), Vec<Uuid>> = BTreeMap::new();
        for (id, payment) in &self.payments {
            by_key
                .entry((&payment.user, &payment.key))
                .or_default()
                .push(*id);
        }
        for ((user, key), ids) in &by_key {
            if ids.len() > 1 {
                violations.push(format!(
                    "{user}'s key {key} produced {} payments: {ids:?}",
                    ids.len()
                ));
            }
        }
        for attempt in &records.attempts {
            let Told::Payment { id, status: told } = &attempt.told else {
                continue;
            };
            let stored = Uuid::try_parse(id)
                .ok()
                .and_then(|id| self.payments.get(&id));
            let Some(stored) = stored else {
                violations.push(format!(
                    "{} was told of payment {id} ({told}, key {}), which does not exist",
                    attempt.user, attempt.key
                ));
                continue;
            };
            if stored.user != attempt.user || stored.key != attempt.key {
                violations.push(format!(
                    "{} (key {}) was told of payment {id}, which is {}'s with key {}",
                    attempt.user, attempt.key, stored.user, stored.key
                ));
            }
            let agrees = match told.as_str() {
                "COMPLETED" => COMPLETED_LIKE.contains(&stored.status.as_str()),
                "FAILED" | "CANCELLED" | "EXPIRED" => stored.status == *told,
                // Told while it was in progress: any outcome since.
                _ => true,
            };
            if !agrees {
                violations.push(format!(
                    "{} was told payment {id} is {told}; the store says {}",
                    attempt.user, stored.status
                ));
            }
        }
    }

    fn check_refunds(&self, violations: &mut Vec<String>) {
        for (id, payment) in &self.payments {
            let succeeded: Decimal = self
                .refunds
                .get(id)
                .into_iter()
                .flatten()
                .filter(|(_, status)| status == "SUCCEEDED")
                .map(|(amount, _)| amount)
                .sum();
            if succeeded > payment.amount {
                violations.push(format!(
                    "payment {id}: refunded {succeeded} of {} captured",
                    payment.amount
                ));
            }
            if succeeded != payment.refunded {
                violations.push(format!(
                    "payment {id}: refunded total {} but its refunds add up to {succeeded}",
                    payment.refunded
                ));
            }
            let expected = if payment.refunded.is_zero() {
                None
            } else if payment.refunded == payment.amount {
                Some("REFUNDED")
            } else {
                Some("PARTIALLY_REFUNDED")
            };
            if let Some(expected) = expected
                && payment.status != expected
            {
                violations.push(format!(
                    "payment {id}: {} refunded of {} but status {}",
                    payment.refunded, payment.amount, payment.status
                ));
            }
        }
    }

    fn check_notifications(&self, violations: &mut Vec<String>) {
        for (id, kind, events, told) in self.notification_mismatches() {
            violations.push(format!(
                "payment {id}: {events} {kind} events, {told} notifications of them"
            ));
        }
        for (id, types) in &self.notifications {
            let Some(payment) = self.payments.get(id) else {
                violations.push(format!(
                    "notifications about payment {id}, which does not exist"
                ));
                continue;
            };
            for (kind, users) in types {
                if let Some(other) = users.iter().find(|user| **user != payment.user) {
                    violations.push(format!(
                        "{other} was notified ({kind}) of {}'s payment {id}",
                        payment.user
                    ));
                }
            }
        }
        for (id, payment) in &self.payments {
            let settles: usize = self
                .payment_events
                .get(id)
                .into_iter()
                .flatten()
                .filter(|(kind, _)| {
                    [
                        payment::COMPLETED,
                        payment::FAILED,
                        payment::CANCELLED,
                        payment::EXPIRED,
                    ]
                    .contains(&kind.as_str())
                })
                .map(|(_, n)| n)
                .sum();
            if payment.status != "PENDING" && payment.status != "PROCESSING" && settles != 1 {
                violations.push(format!(
                    "payment {id} ({}) has {settles} settling events (one expected)",
                    payment.status
                ));
            }
        }
    }

    /// Figures for the report.
    pub fn figures(&self) -> Vec<(String, String)> {
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for payment in self.payments.values() {
            *by_status.entry(payment.status.as_str()).or_default() += 1;
        }
        let refunds_succeeded = self
            .refunds
            .values()
            .flatten()
            .filter(|(_, status)| status == "SUCCEEDED")
            .count();
        let released = self
            .reservations
            .values()
            .filter(|(status, _)| status == "RELEASED")
            .count();
        vec![
            ("payments by status".into(), format!("{by_status:?}")),
            ("refunds succeeded".into(), refunds_succeeded.to_string()),
            (
                "reservations released (all reasons)".into(),
                released.to_string(),
            ),
        ]
    }
}

/// Reads every shopper's basket through the API, which clears a lock
/// that lapsed (a checkout that died before its payment was stored).
pub async fn read_baskets(api: &Api, records: &Records) {
    let users: BTreeSet<&str> = records.attempts.iter().map(|a| a.user.as_str()).collect();
    for user in users {
        let token = token(user, false);
        for _ in 0..10 {
            if let Answer::Data(_) = api
                .call(&token, "{ myBasket { checkoutInProgress } }", json!({}))
                .await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Polls the stores until the shop has settled or `within` passed; the
/// last snapshot either way.
pub async fn settle(stores: &Stores, within: Duration) -> Snapshot {
    let started = Instant::now();
    loop {
        let snapshot = stores.snapshot().await;
        let open = snapshot.unsettled();
        if open.is_empty() || started.elapsed() >= within {
            if !open.is_empty() {
                println!("chaos: not settled after {within:?}: {open:?}");
            }
            return snapshot;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    //! The checker against stores that break each invariant: a checker
    //! that cannot find a violation would pass every run.

    use super::*;
    use crate::storm::{Attempt, Card, Flow};

    const USER: &str = "chaos-shopper-0";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn money(amount: &str) -> Decimal {
        amount.parse().expect("an amount")
    }

    /// One product (initial stock 10) and one completed payment of 2 units
    /// for 8.00, as a settled shop stores them.
    fn consistent() -> (Snapshot, Vec<Item>, Records) {
        let (product, paid) = (id(1), id(2));
        let mut snapshot = Snapshot::default();
        snapshot.stock.insert(product, 8);
        snapshot
            .reservations
            .insert(paid, ("SOLD".into(), BTreeMap::from([(product, 2)])));
        snapshot.payments.insert(
            paid,
            Payment {
                user: USER.into(),
                key: "k1".into(),
                status: "COMPLETED".into(),
                amount: money("8.00"),
                refunded: Decimal::ZERO,
            },
        );
        snapshot
            .payment_items
            .insert(paid, BTreeMap::from([(product, 2)]));
        snapshot.checkout_lines.insert(paid, (1, 1));
        snapshot.payment_events.insert(
            paid,
            BTreeMap::from([(payment::CREATED.into(), 1), (payment::COMPLETED.into(), 1)]),
        );
        snapshot.notifications.insert(
            paid,
            BTreeMap::from([("PAYMENT_COMPLETED".into(), vec![USER.into()])]),
        );
        let catalogue = vec![Item {
            id: product.to_string(),
            initial_stock: 10,
            scarce: false,
        }];
        let records = Records {
            attempts: vec![Attempt {
                user: USER.into(),
                key: "k1".into(),
                flow: Flow::Checkout(Card::Good),
                told: Told::Payment {
                    id: paid.to_string(),
                    status: "COMPLETED".into(),
                },
                requests: 1,
            }],
            ..Records::default()
        };
        (snapshot, catalogue, records)
    }

    fn violations_after(change: impl FnOnce(&mut Snapshot, &mut Records)) -> Vec<String> {
        let (mut snapshot, catalogue, mut records) = consistent();
        change(&mut snapshot, &mut records);
        snapshot.violations(&catalogue, &records)
    }

    fn assert_found(violations: &[String], words: &str) {
        assert!(
            violations.iter().any(|v| v.contains(words)),
            "expected a violation mentioning {words:?}, got {violations:#?}"
        );
    }

    #[test]
    fn a_consistent_shop_has_no_violation() {
        assert_eq!(violations_after(|_, _| {}), Vec::<String>::new());
    }

    #[test]
    fn units_taken_twice_or_lost_are_found() {
        let taken_twice = violations_after(|s, _| {
            s.stock.insert(id(1), 6);
        });
        assert_found(&taken_twice, "!= initial 10");
        let negative = violations_after(|s, _| {
            s.stock.insert(id(1), -2);
        });
        assert_found(&negative, "is negative");
        let never_sold = violations_after(|s, _| {
            s.reservations.get_mut(&id(2)).expect("reservation").0 = "RELEASED".into();
            s.stock.insert(id(1), 10);
        });
        assert_found(&never_sold, "took no units");
    }

    #[test]
    fn a_failed_payment_that_holds_stock_is_found() {
        let violations = violations_after(|s, _| {
            s.payments.get_mut(&id(2)).expect("payment").status = "FAILED".into();
            s.reservations.get_mut(&id(2)).expect("reservation").0 = "RESERVED".into();
        });
        assert_found(&violations, "still holds its reservation");
        assert_found(&violations, "reservations RESERVED");
    }

    #[test]
    fn what_clients_were_told_is_held_against_the_store() {
        let wrong_status = violations_after(|s, _| {
            s.payments.get_mut(&id(2)).expect("payment").status = "FAILED".into();
        });
        assert_found(&wrong_status, "the store says FAILED");
        let missing = violations_after(|_, r| {
            r.attempts[0].told = Told::Payment {
                id: id(9).to_string(),
                status: "COMPLETED".into(),
            };
        });
        assert_found(&missing, "which does not exist");
        let twice = violations_after(|s, _| {
            let mut copy = s.payments[&id(2)].clone();
            copy.status = "FAILED".into();
            s.payments.insert(id(3), copy);
        });
        assert_found(&twice, "produced 2 payments");
    }

    #[test]
    fn refunds_beyond_the_capture_are_found() {
        let violations = violations_after(|s, _| {
            let payment = s.payments.get_mut(&id(2)).expect("payment");
            payment.refunded = money("9.00");
            payment.status = "REFUNDED".into();
            s.refunds
                .insert(id(2), vec![(money("9.00"), "SUCCEEDED".into())]);
        });
        assert_found(&violations, "refunded 9.00 of 8.00 captured");
    }

    #[test]
    fn an_event_notified_never_or_twice_is_found() {
        let never = violations_after(|s, _| {
            s.notifications.clear();
        });
        assert_found(&never, "1 PaymentCompleted events, 0 notifications");
        let twice = violations_after(|s, _| {
            s.notifications.insert(
                id(2),
                BTreeMap::from([("PAYMENT_COMPLETED".into(), vec![USER.into(), USER.into()])]),
            );
        });
        assert_found(&twice, "1 PaymentCompleted events, 2 notifications");
        let settled_twice = violations_after(|s, _| {
            s.payment_events
                .get_mut(&id(2))
                .expect("events")
                .insert(payment::FAILED.into(), 1);
            s.notifications
                .get_mut(&id(2))
                .expect("notifications")
                .insert("PAYMENT_FAILED".into(), vec![USER.into()]);
        });
        assert_found(&settled_twice, "2 settling events");
    }

    #[test]
    fn a_basket_left_locked_or_unemptied_is_found() {
        let locked = violations_after(|s, _| s.locked_baskets.push(id(2)));
        assert_found(&locked, "still locked");
        let unemptied = violations_after(|s, _| {
            s.checkout_lines.insert(id(2), (1, 0));
        });
        assert_found(&unemptied, "not emptied");
    }
}
