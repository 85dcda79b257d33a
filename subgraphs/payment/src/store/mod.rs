//! The payment store (MariaDB in production, SQLite embedded).
//!
//! Three guarantees live here, enforced by the database rather than by
//! checks in Rust:
//!
//! * idempotency — a unique index on `(user_id, idempotency_key)`: of any
//!   number of concurrent creations with one key, exactly one row exists;
//! * the state machine — every status change is `UPDATE .. WHERE id = ? AND
//!   status = <from>`, so of two racing changes exactly one applies; refunds
//!   (`store/refunds.rs`) lock their payment row first and hold back the amounts
//!   of REQUESTED refunds, so together they never exceed the captured
//!   amount;
//! * no lost event — creating a payment, every status change made by
//!   [`PaymentStore::change_status`] (but PENDING → PROCESSING, which
//!   publishes nothing) or [`PaymentStore::expire_due`], and completing a
//!   refund ([`PaymentStore::complete_refund`]) write their payment event
//!   to the outbox in the same transaction as the change (see
//!   `subgraph_kit::events::outbox`).
//!
//! A refund is recorded REQUESTED before the provider is asked (its id is
//! the provider's idempotency key) and settled after, so a crash in
//! between leaves a REQUESTED row that the reconciliation sweeper settles
//! by asking the provider what happened — never by asking it to refund
//! again. Payments left PROCESSING are found by
//! [`PaymentStore::processing_before`] for the same sweeper.

mod entity;
mod reconcile;
mod refunds;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use subgraph_kit::events::contract::EventKind;
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::events::{CloudEvent, Topic};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use crate::domain::{
    NewPayment, Payment, PaymentError, PaymentItem, PaymentMethod, PaymentStatus, now,
};
use crate::events::outgoing::payment_event;
use entity::{payment_items, payments};

/// A status change and the fields it writes.
#[derive(Debug, Clone)]
pub enum Change {
    /// PENDING → PROCESSING with this card.
    Processing {
        /// Last four digits of the card.
        card_last4: String,
    },
    /// PROCESSING → COMPLETED.
    Completed {
        /// The provider's reference.
        provider_id: String,
    },
    /// PROCESSING → FAILED.
    Failed {
        /// Why.
        reason: String,
        /// Whether a new attempt may succeed.
        retryable: bool,
    },
    /// PENDING → CANCELLED.
    Cancelled,
}

impl Change {
    /// The status the change leads to.
    pub fn target(&self) -> PaymentStatus {
        match self {
            Self::Processing { .. } => PaymentStatus::Processing,
            Self::Completed { .. } => PaymentStatus::Completed,
            Self::Failed { .. } => PaymentStatus::Failed,
            Self::Cancelled => PaymentStatus::Cancelled,
        }
    }

    /// The event the change publishes, if any.
    fn event(&self) -> Option<EventKind> {
        match self {
            Self::Processing { .. } => None,
            Self::Completed { .. } => Some(EventKind::PaymentCompleted),
            Self::Failed { .. } => Some(EventKind::PaymentFailed),
            Self::Cancelled => Some(EventKind::PaymentCancelled),
        }
    }
}

/// Where a page of payments starts: after this (created_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCursor {
    /// Creation time of the last payment seen.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// Which payments to list.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only in this status.
    pub status: Option<PaymentStatus>,
}

/// Reads and writes payments.
#[derive(Debug, Clone)]
pub struct PaymentStore {
    db: DatabaseConnection,
    relay: RelayWaker,
}

impl PaymentStore {
    /// A store over an open, migrated pool; `relay` is woken after each
    /// commit that wrote events.
    pub fn new(db: DatabaseConnection, relay: RelayWaker) -> Self {
        Self { db, relay }
    }

    /// Writes `kind` for payment `id` (as it is inside `txn`) to the outbox.
    async fn emit(txn: &impl ConnectionTrait, kind: EventKind, id: Uuid) -> Result<(), DbErr> {
        let payment = Self::committed_view(txn, id).await?;
        Self::publish(txn, &payment, &payment_event(kind, &payment)?).await
    }

    /// Writes `event` of `payment` to the outbox keyed by the payer, so one
    /// user's payment events (and the notifications made of them) keep
    /// their order across payments, not only within one.
    async fn publish(
        txn: &impl ConnectionTrait,
        payment: &Payment,
        event: &CloudEvent,
    ) -> Result<(), DbErr> {
        outbox::enqueue_keyed(txn, Topic::Payment, event, &payment.user_id).await
    }

    /// The payment with its items as `txn` sees it: what its event carries.
    async fn committed_view(txn: &impl ConnectionTrait, id: Uuid) -> Result<Payment, DbErr> {
        let row = payments::Entity::find_by_id(id)
            .one(txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("payment {id}")))?;
        with_items(txn, vec![row])
            .await?
            .pop()
            .ok_or_else(|| DbErr::RecordNotFound(format!("payment {id}")))
    }

    /// One payment with its items.
    pub async fn get(&self, id: Uuid) -> Result<Option<Payment>, PaymentError> {
        let Some(row) = payments::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(with_items(&self.db, vec![row]).await?.pop())
    }

    /// The payment `user_id` created with `key`, if any.
    pub async fn find_by_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Payment>, PaymentError> {
        let row = payments::Entity::find()
            .filter(payments::Column::UserId.eq(user_id))
            .filter(payments::Column::IdempotencyKey.eq(key))
            .one(&self.db)
            .await?;
        Ok(match row {
            Some(row) => with_items(&self.db, vec![row]).await?.pop(),
            None => None,
        })
    }

    /// Inserts a payment (with the id it was given: its stock reservation
    /// and basket lock carry it too) and its lines in one transaction;
    /// `Ok(None)` when the user already has a payment with this
    /// idempotency key.
    pub async fn insert(&self, new: NewPayment) -> Result<Option<Payment>, PaymentError> {
        let id = new.id;
        let txn = self.db.begin().await?;
        let inserted = payments::Entity::insert(payments::ActiveModel {
            id: Set(id),
            user_id: Set(new.user_id),
            basket_id: Set(new.basket_id),
            amount: Set(new.amount),
            refunded_amount: Set(Decimal::ZERO),
            currency: Set(new.currency),
            status: Set(PaymentStatus::Pending.as_str().to_owned()),
            method: Set(new.method.as_str().to_owned()),
            provider: Set(new.provider),
            provider_id: Set(None),
            description: Set(new.description),
            metadata: Set(None),
            failure_reason: Set(None),
            retryable: Set(false),
            card_last4: Set(None),
            idempotency_key: Set(new.idempotency_key),
            request_fingerprint: Set(new.request_fingerprint),
            order_fingerprint: Set(Some(new.order_fingerprint)),
            created_at: Set(new.created_at),
            updated_at: Set(new.created_at),
            processed_at: Set(None),
            expires_at: Set(Some(new.expires_at)),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                // The transaction is rolled back on drop; the caller reads the
                // winner outside it (a fresh snapshot sees the committed row).
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        }
        payment_items::Entity::insert_many(new.items.into_iter().map(|item| {
            payment_items::ActiveModel {
                payment_id: Set(id),
                product_id: Set(item.product_id),
                product_name: Set(item.product_name),
                quantity: Set(item.quantity),
                unit_price: Set(item.unit_price),
                currency: Set(item.currency),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
        Self::emit(&txn, EventKind::PaymentCreated, id).await?;
        txn.commit().await?;
        self.relay.wake();
        self.get(id).await
    }

    /// Applies `change` if the payment is still in `from`; returns whether
    /// it applied.
    pub async fn change_status(
        &self,
        id: Uuid,
        from: PaymentStatus,
        change: Change,
    ) -> Result<bool, PaymentError> {
        let at = now();
        let event = change.event();
        let mut update = payments::Entity::update_many()
            .col_expr(
                payments::Column::Status,
                Expr::value(change.target().as_str()),
            )
            .col_expr(payments::Column::UpdatedAt, Expr::value(at));
        update = match change {
            Change::Processing { card_last4 } => {
                update.col_expr(payments::Column::CardLast4, Expr::value(card_last4))
            }
            Change::Completed { provider_id } => update
                .col_expr(payments::Column::ProviderId, Expr::value(provider_id))
                .col_expr(payments::Column::ProcessedAt, Expr::value(at)),
            Change::Failed { reason, retryable } => update
                .col_expr(payments::Column::FailureReason, Expr::value(reason))
                .col_expr(payments::Column::Retryable, Expr::value(retryable))
                .col_expr(payments::Column::ProcessedAt, Expr::value(at)),
            Change::Cancelled => update,
        };
        let txn = self.db.begin().await?;
        let result = update
            .filter(payments::Column::Id.eq(id))
            .filter(payments::Column::Status.eq(from.as_str()))
            .exec(&txn)
            .await?;
        let applied = result.rows_affected == 1;
        if let (true, Some(kind)) = (applied, event) {
            Self::emit(&txn, kind, id).await?;
        }
        txn.commit().await?;
        if applied && event.is_some() {
            self.relay.wake();
        }
        Ok(applied)
    }

    /// Marks pending payments whose `expires_at` has passed as expired;
    /// returns how many.
    pub async fn expire_due(&self, at: DateTime<Utc>) -> Result<u64, PaymentError> {
        let due = payments::Entity::find()
            .select_only()
            .column(payments::Column::Id)
            .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
            .filter(payments::Column::ExpiresAt.lt(at))
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?;
        let mut expired = 0;
        for id in due {
            // One transaction per payment: its change and its event.
            let txn = self.db.begin().await?;
            let result = payments::Entity::update_many()
                .col_expr(
                    payments::Column::Status,
                    Expr::value(PaymentStatus::Expired.as_str()),
                )
                .col_expr(payments::Column::UpdatedAt, Expr::value(at))
                .filter(payments::Column::Id.eq(id))
                .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
                .exec(&txn)
                .await?;
            if result.rows_affected == 1 {
                Self::emit(&txn, EventKind::PaymentExpired, id).await?;
                expired += 1;
            }
            txn.commit().await?;
        }
        if expired > 0 {
            self.relay.wake();
        }
        Ok(expired)
    }

    /// A page of payments, newest first, and whether more follow.
    pub async fn list(
        &self,
        filter: &PaymentFilter,
        after: Option<PaymentCursor>,
        limit: u64,
    ) -> Result<(Vec<Payment>, bool), PaymentError> {
        let mut select = payments::Entity::find();
        if let Some(user_id) = &filter.user_id {
            select = select.filter(payments::Column::UserId.eq(user_id.as_str()));
        }
        if let Some(status) = filter.status {
            select = select.filter(payments::Column::Status.eq(status.as_str()));
        }
        if let Some(after) = after {
            select = select.filter(
                Condition::any()
                    .add(payments::Column::CreatedAt.lt(after.created_at))
                    .add(
                        Condition::all()
                            .add(payments::Column::CreatedAt.eq(after.created_at))
                            .add(payments::Column::Id.lt(after.id)),
                    ),
            );
        }
        let mut rows = select
            .order_by_desc(payments::Column::CreatedAt)
            .order_by_desc(payments::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let has_next = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok((with_items(&self.db, rows).await?, has_next))
    }
}

/// Attaches items to payment rows with one query for the whole batch.
async fn with_items(
    conn: &impl ConnectionTrait,
    rows: Vec<payments::Model>,
) -> Result<Vec<Payment>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut items: HashMap<Uuid, Vec<PaymentItem>> = HashMap::new();
    for line in payment_items::Entity::find()
        .filter(payment_items::Column::PaymentId.is_in(ids))
        .order_by_asc(payment_items::Column::ProductName)
        .all(conn)
        .await?
    {
        items.entry(line.payment_id).or_default().push(PaymentItem {
            product_id: line.product_id,
            product_name: line.product_name,
            quantity: line.quantity,
            // SQLite hands NUMERIC back as a double; restore exact cents.
            unit_price: normalize(line.unit_price),
            currency: line.currency,
        });
    }
    rows.into_iter()
        .map(|row| {
            let status = PaymentStatus::parse(&row.status).ok_or_else(|| {
                DbErr::Custom(format!(
                    "payment {} has unknown status {:?}",
                    row.id, row.status
                ))
            })?;
            Ok(Payment {
                items: items.remove(&row.id).unwrap_or_default(),
                id: row.id,
                user_id: row.user_id,
                basket_id: row.basket_id,
                amount: normalize(row.amount),
                refunded_amount: normalize(row.refunded_amount),
                currency: row.currency,
                status,
                method: PaymentMethod::Card,
                provider: row.provider,
                provider_id: row.provider_id,
                description: row.description,
                failure_reason: row.failure_reason,
                retryable: row.retryable,
                card_last4: row.card_last4,
                idempotency_key: row.idempotency_key,
                request_fingerprint: row.request_fingerprint,
                order_fingerprint: row.order_fingerprint,
                created_at: row.created_at,
                updated_at: row.updated_at,
                processed_at: row.processed_at,
                expires_at: row.expires_at,
            })
        })
        .collect()
}
