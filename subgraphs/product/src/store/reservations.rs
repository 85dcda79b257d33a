//! Stock reservations in the product store: reserve, release, sell, sweep.
//!
//! Each operation is one transaction (or runs inside the consumer's), and
//! every stock change in it writes its stock events to the outbox in that
//! same transaction, as [`ProductStore::adjust_stock`] does.
//!
//! * [`ProductStore::reserve`] inserts the reservation's row first (so a
//!   second call with the same id waits for the first and then finds it),
//!   then takes each line's units with a conditional
//!   `UPDATE products SET stock_quantity = stock_quantity - q WHERE id = ?
//!   AND stock_quantity >= q`, in product-id order; if any line cannot be
//!   taken, nothing is kept. Concurrent reservations for the last units
//!   queue on the product's row and each sees the stock the previous one
//!   left: exactly as many succeed as there are units.
//! * Status moves are conditional `UPDATE`s on the reservation's row
//!   (`WHERE status = 'RESERVED'`): of the payment's event, the sweeper and
//!   a compensation, one wins, and a repeated call changes nothing.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, TryInsertResult,
};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use super::ProductStore;
use super::entity;
use super::reservation_entity::{stock_reservation_lines as lines, stock_reservations as header};
use crate::domain::{
    NewReservation, PriceChange, Product, ProductError, ReleaseOutcome, ReservationStatus,
    ReservedLine, SaleOutcome, Shortage, StockAdjustment, StockReservation, UnavailableLine, now,
};
use crate::events::outgoing::StockReason;

/// Units of one product held by reservations, by status (the stock
/// invariant's terms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldUnits {
    /// Units in `RESERVED` reservations (out of stock, not yet sold).
    pub reserved: i64,
    /// Units in `SOLD` reservations.
    pub sold: i64,
}

impl ProductStore {
    /// Takes every line's units from stock and records them as reservation
    /// `new.id`, all or nothing. The same id again returns the reservation
    /// as it is now (whatever its status), without taking anything.
    ///
    /// Refusals, in this order (the first that applies, listing every line
    /// it applies to): [`ProductError::ProductUnavailable`],
    /// [`ProductError::PriceChanged`], [`ProductError::OutOfStock`]; nothing
    /// is stored on any of them, so the same id may be used again.
    pub async fn reserve(&self, new: NewReservation) -> Result<StockReservation, ProductError> {
        let at = now();
        let txn = self.db.begin().await?;
        // The header first: it takes SQLite's write lock before anything
        // is read, and on PostgreSQL a concurrent call with the same id
        // waits here for this one to commit or roll back.
        let inserted = header::Entity::insert(header::ActiveModel {
            id: Set(new.id),
            user_id: Set(new.user_id.clone()),
            status: Set(ReservationStatus::Reserved.as_str().to_owned()),
            expires_at: Set(new.expires_at),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict_do_nothing_on([header::Column::Id])
        .exec_without_returning(&txn)
        .await?;
        if !matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0) {
            drop(txn);
            return match self.reservation(new.id).await? {
                Some(existing) if existing.user_id == new.user_id => Ok(existing),
                Some(_) => Err(ProductError::ReservationTaken(new.id)),
                // Only a concurrent insert that rolled back gets here.
                None => Box::pin(self.reserve(new)).await,
            };
        }

        let ids: Vec<Uuid> = new.lines.iter().map(|line| line.product_id).collect();
        let products = products_by_id(&txn, &ids).await?;
        let unavailable: Vec<UnavailableLine> = new
            .lines
            .iter()
            .filter(|line| !products.contains_key(&line.product_id))
            .map(|line| UnavailableLine {
                product_id: line.product_id,
                product_name: line.product_name.clone(),
            })
            .collect();
        if !unavailable.is_empty() {
            return Err(ProductError::ProductUnavailable(unavailable));
        }
        let changed: Vec<PriceChange> = new
            .lines
            .iter()
            .filter_map(|line| {
                let product = products.get(&line.product_id)?;
                (product.price != line.unit_price || product.currency != line.currency).then(|| {
                    PriceChange {
                        product_id: line.product_id,
                        product_name: product.name.clone(),
                        basket_price: line.unit_price,
                        basket_currency: line.currency.clone(),
                        current_price: product.price,
                        current_currency: product.currency.clone(),
                    }
                })
            })
            .collect();
        if !changed.is_empty() {
            return Err(ProductError::PriceChanged(changed));
        }

        // Lines are in product-id order (NewReservation sorts them), so
        // every reserving transaction locks rows in the same order.
        let mut vanished = Vec::new();
        let mut short = Vec::new();
        for line in &new.lines {
            if take_units(&txn, line.product_id, line.quantity, at).await? {
                continue;
            }
            match entity::Entity::find_by_id(line.product_id)
                .one(&txn)
                .await?
            {
                None => vanished.push(UnavailableLine {
                    product_id: line.product_id,
                    product_name: line.product_name.clone(),
                }),
                Some(product) => short.push(Shortage {
                    product_id: line.product_id,
                    product_name: product.name,
                    requested: line.quantity,
                    available: product.stock_quantity,
                }),
            }
        }
        if !vanished.is_empty() {
            return Err(ProductError::ProductUnavailable(vanished));
        }
        if !short.is_empty() {
            return Err(ProductError::OutOfStock(short));
        }

        let after = products_by_id(&txn, &ids).await?;
        let mut reserved_lines = Vec::with_capacity(new.lines.len());
        for line in &new.lines {
            let product = after
                .get(&line.product_id)
                .cloned()
                .ok_or_else(|| ProductError::NotFound(line.product_id.to_string()))?;
            reserved_lines.push(ReservedLine {
                product_id: line.product_id,
                product_name: product.name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                currency: line.currency.clone(),
            });
            let adjustment = StockAdjustment {
                previous_stock: product.stock_quantity + line.quantity,
                product,
            };
            self.record(&txn, &adjustment, StockReason::Reservation(new.id))
                .await?;
        }
        lines::Entity::insert_many(reserved_lines.iter().map(|line| lines::ActiveModel {
            reservation_id: Set(new.id),
            product_id: Set(line.product_id),
            product_name: Set(line.product_name.clone()),
            quantity: Set(line.quantity),
            unit_price: Set(line.unit_price),
            currency: Set(line.currency.clone()),
        }))
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(StockReservation {
            id: new.id,
            user_id: new.user_id,
            status: ReservationStatus::Reserved,
            expires_at: new.expires_at,
            created_at: at,
            updated_at: at,
            lines: reserved_lines,
        })
    }

    /// Reservation `id` with its lines, if it exists.
    pub async fn reservation(&self, id: Uuid) -> Result<Option<StockReservation>, ProductError> {
        reservation_in(&self.db, id).await
    }

    /// Releases reservation `id` for its payer `user_id` (the checkout's
    /// compensation): a `RESERVED` one gives its units back; an unknown
    /// one, another user's, or one already settled is left as it is.
    pub async fn release_for(
        &self,
        user_id: &str,
        id: Uuid,
    ) -> Result<ReleaseOutcome, ProductError> {
        let txn = self.db.begin().await?;
        let outcome = self.release_in(&txn, id, Some(user_id)).await?;
        txn.commit().await?;
        if matches!(outcome, ReleaseOutcome::Released(_)) {
            self.relay.wake();
        }
        Ok(outcome)
    }

    /// Releases reservation `id` inside `txn` (the payment's failure,
    /// cancellation or expiry, read by the consumer): see
    /// [`ProductStore::release_for`]. `owner`, when given, must be its payer.
    pub async fn release_in(
        &self,
        txn: &impl ConnectionTrait,
        id: Uuid,
        owner: Option<&str>,
    ) -> Result<ReleaseOutcome, ProductError> {
        let at = now();
        let mut claim = header::Entity::update_many()
            .col_expr(
                header::Column::Status,
                Expr::value(ReservationStatus::Released.as_str()),
            )
            .col_expr(header::Column::UpdatedAt, Expr::value(at))
            .filter(header::Column::Id.eq(id))
            .filter(header::Column::Status.eq(ReservationStatus::Reserved.as_str()));
        if let Some(owner) = owner {
            claim = claim.filter(header::Column::UserId.eq(owner));
        }
        if claim.exec(txn).await?.rows_affected == 0 {
            return Ok(match reservation_in(txn, id).await? {
                Some(found) if owner.is_none_or(|owner| owner == found.user_id) => {
                    ReleaseOutcome::Unchanged(found.status)
                }
                _ => ReleaseOutcome::Unknown,
            });
        }
        let reservation = reservation_in(txn, id)
            .await?
            .ok_or_else(|| ProductError::NotFound(id.to_string()))?;
        for line in &reservation.lines {
            let returned = entity::Entity::update_many()
                .col_expr(
                    entity::Column::StockQuantity,
                    Expr::col(entity::Column::StockQuantity).add(line.quantity),
                )
                .col_expr(entity::Column::UpdatedAt, Expr::value(at))
                .filter(entity::Column::Id.eq(line.product_id))
                .exec(txn)
                .await?;
            if returned.rows_affected == 0 {
                tracing::warn!(reservation_id = %id, product_id = %line.product_id, quantity = line.quantity, "released units of a deleted product are dropped");
                continue;
            }
            if let Some(row) = entity::Entity::find_by_id(line.product_id).one(txn).await? {
                let product = Product::from(row);
                let adjustment = StockAdjustment {
                    previous_stock: product.stock_quantity - line.quantity,
                    product,
                };
                self.record(txn, &adjustment, StockReason::Release(id))
                    .await?;
            }
        }
        Ok(ReleaseOutcome::Released(StockReservation {
            status: ReservationStatus::Released,
            updated_at: at,
            ..reservation
        }))
    }

    /// Settles payment `payment_id`'s reservation as sold, inside the
    /// consumer's `txn`: `RESERVED` becomes `SOLD` with no stock change
    /// (the units were taken at reserve time); `RELEASED` (it expired while
    /// the payment was stuck) takes the units again if every line still
    /// has them, else takes nothing and reports the shortage.
    pub async fn sell_reserved(
        &self,
        txn: &DatabaseTransaction,
        payment_id: Uuid,
    ) -> Result<SaleOutcome, ProductError> {
        let at = now();
        if mark(txn, payment_id, ReservationStatus::Reserved, at).await? {
            return Ok(SaleOutcome::Sold);
        }
        let Some(reservation) = reservation_in(txn, payment_id).await? else {
            return Ok(SaleOutcome::NoReservation);
        };
        match reservation.status {
            ReservationStatus::Sold => Ok(SaleOutcome::AlreadySold),
            // Lost a race with a settlement between the two statements.
            ReservationStatus::Reserved => Err(ProductError::Store(sea_orm::DbErr::Custom(
                format!("reservation {payment_id} changed while it was being sold"),
            ))),
            ReservationStatus::Released => self.retake(txn, &reservation, at).await,
        }
    }

    /// Takes a released reservation's units again, all lines or none (a
    /// savepoint inside the consumer's transaction), and marks it `SOLD`.
    async fn retake(
        &self,
        txn: &DatabaseTransaction,
        reservation: &StockReservation,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<SaleOutcome, ProductError> {
        let savepoint = txn.begin().await?;
        let mut short = Vec::new();
        for line in &reservation.lines {
            if !take_units(&savepoint, line.product_id, line.quantity, at).await? {
                let available = entity::Entity::find_by_id(line.product_id)
                    .one(&savepoint)
                    .await?
                    .map_or(0, |row| row.stock_quantity);
                short.push(Shortage {
                    product_id: line.product_id,
                    product_name: line.product_name.clone(),
                    requested: line.quantity,
                    available,
                });
            }
        }
        if !short.is_empty() {
            savepoint.rollback().await?;
            return Ok(SaleOutcome::Short(short));
        }
        let ids: Vec<Uuid> = reservation.lines.iter().map(|l| l.product_id).collect();
        let after = products_by_id(&savepoint, &ids).await?;
        for line in &reservation.lines {
            if let Some(product) = after.get(&line.product_id).cloned() {
                let adjustment = StockAdjustment {
                    previous_stock: product.stock_quantity + line.quantity,
                    product,
                };
                self.record(&savepoint, &adjustment, StockReason::Sale(reservation.id))
                    .await?;
            }
        }
        if !mark(&savepoint, reservation.id, ReservationStatus::Released, at).await? {
            savepoint.rollback().await?;
            return Err(ProductError::Store(sea_orm::DbErr::Custom(format!(
                "reservation {} changed while it was being sold",
                reservation.id
            ))));
        }
        savepoint.commit().await?;
        Ok(SaleOutcome::Retaken)
    }

    /// Releases up to `limit` `RESERVED` reservations whose `expires_at` is
    /// at or before `cutoff`, each in its own transaction; returns the ones
    /// this call released (one settled meanwhile by its payment is skipped).
    pub async fn release_expired(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: u64,
    ) -> Result<Vec<StockReservation>, ProductError> {
        let due: Vec<Uuid> = header::Entity::find()
            .select_only()
            .column(header::Column::Id)
            .filter(header::Column::Status.eq(ReservationStatus::Reserved.as_str()))
            .filter(header::Column::ExpiresAt.lte(cutoff))
            .order_by_asc(header::Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut released = Vec::new();
        for id in due {
            let txn = self.db.begin().await?;
            let outcome = self.release_in(&txn, id, None).await?;
            txn.commit().await?;
            if let ReleaseOutcome::Released(reservation) = outcome {
                released.push(reservation);
            }
        }
        if !released.is_empty() {
            self.relay.wake();
        }
        Ok(released)
    }

    /// Units of `product_id` held by `RESERVED` and by `SOLD` reservations.
    pub async fn held_units(&self, product_id: Uuid) -> Result<HeldUnits, ProductError> {
        let rows: Vec<(String, Option<i64>)> = lines::Entity::find()
            .select_only()
            .inner_join(header::Entity)
            .column(header::Column::Status)
            .column_as(
                Expr::from(Func::sum(Expr::col(lines::Column::Quantity))),
                "units",
            )
            .filter(lines::Column::ProductId.eq(product_id))
            .group_by(header::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut held = HeldUnits::default();
        for (status, units) in rows {
            let units = units.unwrap_or(0);
            match ReservationStatus::parse(&status) {
                Some(ReservationStatus::Reserved) => held.reserved += units,
                Some(ReservationStatus::Sold) => held.sold += units,
                Some(ReservationStatus::Released) | None => {}
            }
        }
        Ok(held)
    }
}

/// `UPDATE products SET stock_quantity = stock_quantity - quantity WHERE id
/// = ? AND stock_quantity >= quantity`: whether the units were taken.
async fn take_units(
    txn: &impl ConnectionTrait,
    product_id: Uuid,
    quantity: i32,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ProductError> {
    let taken = entity::Entity::update_many()
        .col_expr(
            entity::Column::StockQuantity,
            Expr::col(entity::Column::StockQuantity).sub(quantity),
        )
        .col_expr(entity::Column::UpdatedAt, Expr::value(at))
        .filter(entity::Column::Id.eq(product_id))
        .filter(entity::Column::StockQuantity.gte(quantity))
        .exec(txn)
        .await?;
    Ok(taken.rows_affected > 0)
}

/// Moves reservation `id` from `from` to `SOLD`; whether it was in `from`.
async fn mark(
    txn: &impl ConnectionTrait,
    id: Uuid,
    from: ReservationStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ProductError> {
    let moved = header::Entity::update_many()
        .col_expr(
            header::Column::Status,
            Expr::value(ReservationStatus::Sold.as_str()),
        )
        .col_expr(header::Column::UpdatedAt, Expr::value(at))
        .filter(header::Column::Id.eq(id))
        .filter(header::Column::Status.eq(from.as_str()))
        .exec(txn)
        .await?;
    Ok(moved.rows_affected > 0)
}

async fn products_by_id(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Product>, ProductError> {
    Ok(entity::Entity::find()
        .filter(entity::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.id, Product::from(row)))
        .collect())
}

async fn reservation_in(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<StockReservation>, ProductError> {
    let Some(row) = header::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let status =
        ReservationStatus::parse(&row.status).ok_or(ProductError::UnknownReservationStatus {
            id,
            status: row.status.clone(),
        })?;
    let line_rows = lines::Entity::find()
        .filter(lines::Column::ReservationId.eq(id))
        .order_by_asc(lines::Column::ProductId)
        .all(db)
        .await?;
    Ok(Some(StockReservation {
        id: row.id,
        user_id: row.user_id,
        status,
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        lines: line_rows
            .into_iter()
            .map(|line| ReservedLine {
                product_id: line.product_id,
                product_name: line.product_name,
                quantity: line.quantity,
                // SQLite hands NUMERIC back as a double; restore exact cents.
                unit_price: normalize(line.unit_price),
                currency: line.currency,
            })
            .collect(),
    }))
}
