//! Refunds in the store: a refund is recorded REQUESTED (its amount held
//! back) before the provider is asked, and settled after, the payment's
//! new total and its `PaymentRefunded` event in the same transaction.
//!
//! Every write that touches a payment's refunds first locks the payment
//! row (an `UPDATE` of it, the statement that opens the transaction), in
//! that order, so they run one at a time per payment on MariaDB (row lock)
//! and SQLite (the write lock, taken before anything is read: a SQLite
//! transaction that reads first fails when another writer commits in
//! between). What may still be refunded — captured − refunded − held by
//! REQUESTED refunds — is therefore read and checked under the lock, and
//! the payment's total changes by a conditional update on the total read.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use super::PaymentStore;
use super::entity::{payment_refunds, payments};
use crate::domain::{PaymentError, PaymentStatus, Refund, RefundStatus, now};
use crate::events::outgoing::refund_event;

/// The statuses a payment can be refunded from.
const REFUNDABLE: [PaymentStatus; 2] = [PaymentStatus::Completed, PaymentStatus::PartiallyRefunded];

impl PaymentStore {
    /// Records a REQUESTED refund of `amount` of payment `payment_id`,
    /// holding the amount back, if the payment is refundable and that much
    /// is left once the other REQUESTED refunds are held back too.
    pub async fn request_refund(
        &self,
        payment_id: Uuid,
        amount: Decimal,
    ) -> Result<Refund, PaymentError> {
        let at = now();
        let txn = self.db.begin().await?;
        if !lock_refundable(&txn, payment_id, at).await? {
            drop(txn);
            let current = self
                .get(payment_id)
                .await?
                .ok_or_else(|| PaymentError::NotFound(payment_id.to_string()))?;
            return Err(PaymentError::IllegalTransition {
                current: current.status,
                action: "refund",
            });
        }
        let payment = payments::Entity::find_by_id(payment_id)
            .one(&txn)
            .await?
            .ok_or_else(|| PaymentError::NotFound(payment_id.to_string()))?;
        let held: Decimal = payment_refunds::Entity::find()
            .filter(payment_refunds::Column::PaymentId.eq(payment_id))
            .filter(payment_refunds::Column::Status.eq(RefundStatus::Requested.as_str()))
            .all(&txn)
            .await?
            .iter()
            .map(|refund| normalize(refund.amount))
            .sum();
        let left = normalize(payment.amount) - normalize(payment.refunded_amount) - held;
        if amount > left {
            return Err(PaymentError::invalid(
                "amount",
                if held.is_zero() {
                    format!("must not exceed the refundable {left}")
                } else {
                    format!("must not exceed the refundable {left} ({held} more is being refunded)")
                },
            ));
        }
        let refund = Refund {
            id: Uuid::now_v7(),
            payment_id,
            amount,
            status: RefundStatus::Requested,
            provider_refund_id: None,
            failure_reason: None,
            created_at: at,
            updated_at: at,
        };
        payment_refunds::Entity::insert(payment_refunds::ActiveModel {
            id: Set(refund.id),
            payment_id: Set(payment_id),
            amount: Set(amount),
            status: Set(RefundStatus::Requested.as_str().to_owned()),
            provider_refund_id: Set(None),
            failure_reason: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(refund)
    }

    /// Settles a REQUESTED refund the provider carried out: in one
    /// transaction the refund is SUCCEEDED, the payment's refunded total and
    /// status move on, and `PaymentRefunded` goes to the outbox. Returns
    /// `false` (and changes nothing) if the refund was settled already.
    pub async fn complete_refund(
        &self,
        refund: &Refund,
        provider_refund_id: &str,
    ) -> Result<bool, PaymentError> {
        let at = now();
        let txn = self.db.begin().await?;
        lock_payment(&txn, refund.payment_id, at).await?;
        if !settle(
            &txn,
            refund.id,
            RefundStatus::Succeeded,
            Some(provider_refund_id),
            None,
            at,
        )
        .await?
        {
            return Ok(false);
        }
        let payment = payments::Entity::find_by_id(refund.payment_id)
            .one(&txn)
            .await?
            .ok_or_else(|| PaymentError::NotFound(refund.payment_id.to_string()))?;
        // A REQUESTED refund's amount is held back, so its payment is still
        // refundable and has room for it.
        let refundable =
            PaymentStatus::parse(&payment.status).is_some_and(|s| REFUNDABLE.contains(&s));
        if !refundable {
            return Err(inconsistent(refund, "its payment is not refundable"));
        }
        let (captured, before) = (
            normalize(payment.amount),
            normalize(payment.refunded_amount),
        );
        let refunded = before + refund.amount;
        if refunded > captured {
            return Err(inconsistent(refund, "it would exceed the captured amount"));
        }
        let status = if refunded == captured {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        let updated = payments::Entity::update_many()
            .col_expr(payments::Column::RefundedAmount, Expr::value(refunded))
            .col_expr(payments::Column::Status, Expr::value(status.as_str()))
            .filter(payments::Column::Id.eq(refund.payment_id))
            .filter(payments::Column::RefundedAmount.eq(before))
            .filter(payments::Column::Amount.gte(refunded))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(inconsistent(refund, "the payment changed under its lock"));
        }
        let refunded_payment = Self::committed_view(&txn, refund.payment_id).await?;
        Self::publish(
            &txn,
            &refunded_payment,
            &refund_event(&refunded_payment, refund.amount)?,
        )
        .await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(true)
    }

    /// Settles a REQUESTED refund the provider refused (or never received):
    /// FAILED with `reason`, its amount no longer held back. Returns `false`
    /// if it was settled already.
    pub async fn fail_refund(&self, refund: &Refund, reason: &str) -> Result<bool, PaymentError> {
        let at = now();
        let txn = self.db.begin().await?;
        // The payment is locked first here too: same order as every refund write.
        lock_payment(&txn, refund.payment_id, at).await?;
        let failed = settle(
            &txn,
            refund.id,
            RefundStatus::Failed,
            None,
            Some(reason),
            at,
        )
        .await?;
        txn.commit().await?;
        Ok(failed)
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(&self, payment_id: Uuid) -> Result<Vec<Refund>, PaymentError> {
        payment_refunds::Entity::find()
            .filter(payment_refunds::Column::PaymentId.eq(payment_id))
            .order_by_asc(payment_refunds::Column::CreatedAt)
            .order_by_asc(payment_refunds::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_refund)
            .collect()
    }

    /// REQUESTED refunds not changed since `before` (left by a crash or an
    /// undecided provider), oldest first, at most `limit`.
    pub async fn requested_refunds_before(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Refund>, PaymentError> {
        use sea_orm::QuerySelect;
        payment_refunds::Entity::find()
            .filter(payment_refunds::Column::Status.eq(RefundStatus::Requested.as_str()))
            .filter(payment_refunds::Column::UpdatedAt.lt(before))
            .order_by_asc(payment_refunds::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_refund)
            .collect()
    }
}

/// Locks payment `id` (touching `updated_at`) if it can be refunded;
/// returns whether it could.
async fn lock_refundable(
    txn: &DatabaseTransaction,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = payments::Entity::update_many()
        .col_expr(payments::Column::UpdatedAt, Expr::value(at))
        .filter(payments::Column::Id.eq(id))
        .filter(payments::Column::Status.is_in(REFUNDABLE.map(PaymentStatus::as_str)))
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Locks payment `id` whatever its status.
async fn lock_payment(txn: &DatabaseTransaction, id: Uuid, at: DateTime<Utc>) -> Result<(), DbErr> {
    payments::Entity::update_many()
        .col_expr(payments::Column::UpdatedAt, Expr::value(at))
        .filter(payments::Column::Id.eq(id))
        .exec(txn)
        .await
        .map(drop)
}

/// Moves refund `id` from REQUESTED to `to`; returns whether it was REQUESTED.
async fn settle(
    conn: &impl ConnectionTrait,
    id: Uuid,
    to: RefundStatus,
    provider_refund_id: Option<&str>,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = payment_refunds::Entity::update_many()
        .col_expr(payment_refunds::Column::Status, Expr::value(to.as_str()))
        .col_expr(
            payment_refunds::Column::ProviderRefundId,
            Expr::value(provider_refund_id.map(str::to_owned)),
        )
        .col_expr(
            payment_refunds::Column::FailureReason,
            Expr::value(reason.map(|reason| reason.chars().take(500).collect::<String>())),
        )
        .col_expr(payment_refunds::Column::UpdatedAt, Expr::value(at))
        .filter(payment_refunds::Column::Id.eq(id))
        .filter(payment_refunds::Column::Status.eq(RefundStatus::Requested.as_str()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// A refund whose settlement would break the store's invariants (the
/// transaction is rolled back).
fn inconsistent(refund: &Refund, why: &str) -> PaymentError {
    PaymentError::Store(DbErr::Custom(format!(
        "refund {} of payment {} cannot be completed: {why}",
        refund.id, refund.payment_id
    )))
}

fn to_refund(row: payment_refunds::Model) -> Result<Refund, PaymentError> {
    let status = RefundStatus::parse(&row.status).ok_or_else(|| {
        DbErr::Custom(format!(
            "refund {} has unknown status {:?}",
            row.id, row.status
        ))
    })?;
    Ok(Refund {
        id: row.id,
        payment_id: row.payment_id,
        amount: normalize(row.amount),
        status,
        provider_refund_id: row.provider_refund_id,
        failure_reason: row.failure_reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
