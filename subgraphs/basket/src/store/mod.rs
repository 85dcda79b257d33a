//! The basket store: SeaORM queries behind a repository that owns every
//! transaction.
//!
//! Concurrency is handled by the database, not by read-modify-write:
//! the basket row is created with `INSERT .. ON CONFLICT (user_id) DO
//! NOTHING`, and adding a product is one `INSERT .. ON CONFLICT DO UPDATE
//! SET quantity = quantity + n WHERE quantity + n <= max`, so two adds for
//! one user both count and neither can push the line past its limit.
//!
//! Clearing and abandoning write their basket events to the outbox in the
//! same transaction.
//!
//! The checkout lock (the protocol is described in `domain/checkout.rs`) is a
//! conditional update of the basket row: `SET checkout_payment_id = P ..
//! WHERE checkout_payment_id IS NULL OR checkout_locked_until <= now OR
//! checkout_payment_id = P`. On PostgreSQL a second writer waits for the
//! first's row lock and re-evaluates the condition on the committed row;
//! on SQLite writers are serialised. Either way two checkouts racing for
//! one basket lock it at most once. The lines a checkout locked go to
//! `basket_checkout_lines`, keyed by payment, because they must outlive
//! the lock: a lapsed lock may be replaced by a newer checkout's while the
//! older payment still settles late, and that payment must then remove
//! only its own lines. Each row is marked settled when its payment's
//! outcome is applied (or the checkout is released), so a second report of
//! the same outcome changes nothing; settled rows are pruned by the
//! sweeper after [`SETTLED_CHECKOUT_RETENTION`]. A lock past its time is
//! cleared when the basket is next read (no sweeper).

mod entity;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait, UpdateMany,
};
use subgraph_kit::events::Topic;
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use crate::domain::{
    Basket, BasketError, BasketItem, BasketStatus, CatalogProduct, CheckoutLock, CheckoutRequest,
    lines_match, now,
};
use crate::events::outgoing::{BasketChange, basket_event};
use entity::{basket_checkout_lines, basket_items, baskets};

/// How long the lines of a settled checkout are kept (to recognise a late
/// second report of its outcome) before the sweeper deletes them.
pub const SETTLED_CHECKOUT_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How a payment that locked a basket ended, as its event reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// `PaymentCompleted`: remove what it bought.
    Completed,
    /// `PaymentFailed`, `PaymentCancelled` or `PaymentExpired`: nothing was
    /// bought; the lines stay.
    Abandoned,
}

/// Reads and writes baskets.
#[derive(Debug, Clone)]
pub struct BasketStore {
    db: DatabaseConnection,
    relay: RelayWaker,
}

impl BasketStore {
    /// A store over an open, migrated pool; `relay` is woken after each
    /// commit that wrote events.
    pub fn new(db: DatabaseConnection, relay: RelayWaker) -> Self {
        Self { db, relay }
    }

    /// The user's basket, created empty on first use.
    pub async fn basket(&self, user_id: &str) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let row = ensure_basket(&txn, user_id).await?;
        let basket = load(&txn, row).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Adds `quantity` units of `product` (or more units to its line),
    /// refusing to let the line exceed `max_total` units.
    pub async fn add_item(
        &self,
        user_id: &str,
        product: &CatalogProduct,
        quantity: i32,
        max_total: i32,
    ) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let mut basket = ensure_basket(&txn, user_id).await?;
        check_currency(&txn, basket.id, product).await?;
        let now = now();
        let item = basket_items::ActiveModel {
            basket_id: Set(basket.id),
            product_id: Set(product.id),
            product_name: Set(product.name.clone()),
            category: Set(product.category.clone()),
            quantity: Set(quantity),
            unit_price: Set(product.price),
            currency: Set(product.currency.clone()),
            added_at: Set(now),
            updated_at: Set(now),
        };
        let existing_quantity = Expr::col((basket_items::Entity, basket_items::Column::Quantity));
        let upsert = OnConflict::columns([
            basket_items::Column::BasketId,
            basket_items::Column::ProductId,
        ])
        .update_columns([
            basket_items::Column::ProductName,
            basket_items::Column::Category,
            basket_items::Column::UnitPrice,
            basket_items::Column::Currency,
            basket_items::Column::UpdatedAt,
        ])
        .value(
            basket_items::Column::Quantity,
            existing_quantity.clone().add(quantity),
        )
        .action_and_where(existing_quantity.add(quantity).lte(max_total))
        .to_owned();
        let written = basket_items::Entity::insert(item)
            .on_conflict(upsert)
            .exec_without_returning(&txn)
            .await?;
        if written == 0 {
            let held = basket_items::Entity::find_by_id((basket.id, product.id))
                .one(&txn)
                .await?
                .map_or(0, |line| line.quantity);
            return Err(BasketError::over_limit(product, held + quantity));
        }
        touch(&txn, &mut basket, now).await?;
        let basket = load(&txn, basket).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Sets the quantity of an existing line, re-pricing it from `product`.
    pub async fn set_quantity(
        &self,
        user_id: &str,
        product: &CatalogProduct,
        quantity: i32,
    ) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let mut basket = ensure_basket(&txn, user_id).await?;
        check_currency(&txn, basket.id, product).await?;
        let now = now();
        let updated = catalogue_refresh(basket.id, product, now)
            .col_expr(basket_items::Column::Quantity, Expr::value(quantity))
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(BasketError::ItemNotFound(product.id));
        }
        touch(&txn, &mut basket, now).await?;
        let basket = load(&txn, basket).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Removes a product's line.
    pub async fn remove_item(
        &self,
        user_id: &str,
        product_id: Uuid,
    ) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let mut basket = ensure_basket(&txn, user_id).await?;
        let deleted = basket_items::Entity::delete_many()
            .filter(basket_items::Column::BasketId.eq(basket.id))
            .filter(basket_items::Column::ProductId.eq(product_id))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(BasketError::ItemNotFound(product_id));
        }
        touch(&txn, &mut basket, now()).await?;
        let basket = load(&txn, basket).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Empties the basket.
    pub async fn clear(&self, user_id: &str) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let basket = Self::clear_in(&txn, user_id, BasketChange::ClearedByOwner).await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(basket)
    }

    /// Empties the user's basket inside `txn` and writes `BasketCleared`
    /// (when it held anything).
    pub async fn clear_in(
        txn: &impl ConnectionTrait,
        user_id: &str,
        reason: BasketChange,
    ) -> Result<Basket, BasketError> {
        let mut row = ensure_basket(txn, user_id).await?;
        let before = load(txn, row.clone()).await?;
        basket_items::Entity::delete_many()
            .filter(basket_items::Column::BasketId.eq(row.id))
            .exec(txn)
            .await?;
        touch(txn, &mut row, now()).await?;
        if !before.items.is_empty() {
            let event = basket_event(&before, &before.items, reason)?;
            outbox::enqueue(txn, Topic::Basket, &event).await?;
        }
        load(txn, row).await
    }

    /// Locks the user's basket for the checkout `request` describes: if no
    /// other payment holds a live lock on it (an expired lock, or one
    /// already held by this payment, does not count) and its lines are
    /// exactly `request.lines`. Records the locked lines for the payment.
    /// Repeating the same request is harmless.
    pub async fn begin_checkout(
        &self,
        user_id: &str,
        request: &CheckoutRequest,
    ) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let mut row = ensure_basket(&txn, user_id).await?;
        let at = now();
        // The lock first: on PostgreSQL the row stays locked until commit,
        // so the lines compared below are the lines that get locked.
        let taken = baskets::Entity::update_many()
            .col_expr(
                baskets::Column::CheckoutPaymentId,
                Expr::value(request.payment_id),
            )
            .col_expr(
                baskets::Column::CheckoutLockedUntil,
                Expr::value(request.locked_until),
            )
            .filter(baskets::Column::Id.eq(row.id))
            .filter(unlocked_at(at).add(baskets::Column::CheckoutPaymentId.eq(request.payment_id)))
            .exec(&txn)
            .await?;
        if taken.rows_affected == 0 {
            return Err(BasketError::CheckoutInProgress);
        }
        row.checkout_payment_id = Some(request.payment_id);
        row.checkout_locked_until = Some(request.locked_until);
        let items = load_items(&txn, row.id).await?;
        if items.is_empty() {
            return Err(BasketError::EmptyBasket);
        }
        if !lines_match(&items, &request.lines) {
            return Err(BasketError::CheckoutChanged);
        }
        let earlier = basket_checkout_lines::Entity::find()
            .filter(basket_checkout_lines::Column::PaymentId.eq(request.payment_id))
            .all(&txn)
            .await?;
        if earlier.iter().any(|line| line.basket_id != row.id) {
            // Payment ids are fresh per checkout: this one belongs to
            // another user's basket, which a caller may never touch.
            return Err(BasketError::Invalid {
                field: "paymentId",
                reason: "is already used by another checkout".into(),
            });
        }
        if earlier.iter().any(|line| line.settled_at.is_some()) {
            return Err(BasketError::CheckoutSettled);
        }
        // The same request again: its lines are the ones recorded then.
        basket_checkout_lines::Entity::delete_many()
            .filter(basket_checkout_lines::Column::PaymentId.eq(request.payment_id))
            .filter(basket_checkout_lines::Column::BasketId.eq(row.id))
            .exec(&txn)
            .await?;
        basket_checkout_lines::Entity::insert_many(request.lines.iter().map(|line| {
            basket_checkout_lines::ActiveModel {
                payment_id: Set(request.payment_id),
                product_id: Set(line.product_id),
                basket_id: Set(row.id),
                quantity: Set(line.quantity),
                unit_price: Set(line.unit_price),
                currency: Set(line.currency.clone()),
                locked_at: Set(at),
                settled_at: Set(None),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
        touch(&txn, &mut row, at).await?;
        let basket = load(&txn, row).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Releases the user's basket from `payment_id`'s checkout (the
    /// compensation when that payment was never created): clears the lock
    /// if this payment holds it and marks the lines it locked settled, so
    /// they can never be removed for it. Releasing an unknown, expired or
    /// already settled checkout changes nothing.
    pub async fn release_checkout(
        &self,
        user_id: &str,
        payment_id: Uuid,
    ) -> Result<(), BasketError> {
        let txn = self.db.begin().await?;
        let row = baskets::Entity::find()
            .filter(baskets::Column::UserId.eq(user_id))
            .one(&txn)
            .await?;
        if let Some(row) = row {
            release_in(&txn, row.id, payment_id).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Applies how `payment_id` (paid by `user_id`) ended, inside the
    /// consumer's `txn`. Completed: subtracts the units it locked from the
    /// current lines (a line at zero or less goes), clears its lock and
    /// writes `BasketCleared` listing what was removed; lines added since
    /// the lock stay. A completed payment that locked nothing (made before
    /// the lock existed) empties the basket, as checkouts did then.
    /// Abandoned: clears its lock; the lines stay.
    pub async fn settle_checkout_in(
        txn: &impl ConnectionTrait,
        user_id: &str,
        payment_id: Uuid,
        outcome: CheckoutOutcome,
    ) -> Result<(), BasketError> {
        let row = baskets::Entity::find()
            .filter(baskets::Column::UserId.eq(user_id))
            .one(txn)
            .await?;
        let Some(mut row) = row else {
            // No basket: nothing was locked and nothing is left to remove.
            return Ok(());
        };
        if outcome == CheckoutOutcome::Abandoned {
            return release_in(txn, row.id, payment_id).await;
        }
        let locked = basket_checkout_lines::Entity::find()
            .filter(basket_checkout_lines::Column::PaymentId.eq(payment_id))
            .filter(basket_checkout_lines::Column::BasketId.eq(row.id))
            .all(txn)
            .await?;
        if locked.is_empty() {
            release_in(txn, row.id, payment_id).await?;
            Self::clear_in(txn, user_id, BasketChange::ClearedByCheckout(payment_id)).await?;
            return Ok(());
        }
        if locked.iter().any(|line| line.settled_at.is_some()) {
            // Already settled (its lines removed, or released): a second
            // report of the outcome changes nothing.
            tracing::info!(%payment_id, "checkout already settled; nothing to remove");
            return release_in(txn, row.id, payment_id).await;
        }
        let at = now();
        let current = load_items(txn, row.id).await?;
        let mut removed = Vec::new();
        for line in &locked {
            let Some(item) = current
                .iter()
                .find(|item| item.product_id == line.product_id)
            else {
                continue; // the shopper removed it meanwhile
            };
            // Both statements re-check the quantity they act on, so a
            // concurrent change to the line is never overwritten.
            let line_filter = Condition::all()
                .add(basket_items::Column::BasketId.eq(row.id))
                .add(basket_items::Column::ProductId.eq(line.product_id));
            let dropped = basket_items::Entity::delete_many()
                .filter(line_filter.clone())
                .filter(basket_items::Column::Quantity.lte(line.quantity))
                .exec(txn)
                .await?;
            let reduced = basket_items::Entity::update_many()
                .col_expr(
                    basket_items::Column::Quantity,
                    Expr::col(basket_items::Column::Quantity).sub(line.quantity),
                )
                .col_expr(basket_items::Column::UpdatedAt, Expr::value(at))
                .filter(line_filter)
                .filter(basket_items::Column::Quantity.gt(line.quantity))
                .exec(txn)
                .await?;
            if dropped.rows_affected + reduced.rows_affected > 0 {
                removed.push(BasketItem {
                    quantity: Ord::min(item.quantity, line.quantity),
                    ..item.clone()
                });
            }
        }
        release_in(txn, row.id, payment_id).await?;
        touch(txn, &mut row, at).await?;
        if !removed.is_empty() {
            let basket = load(txn, row).await?;
            let event = basket_event(
                &basket,
                &removed,
                BasketChange::ClearedByCheckout(payment_id),
            )?;
            outbox::enqueue(txn, Topic::Basket, &event).await?;
        }
        Ok(())
    }

    /// Re-prices every line of the user's basket from `products` (the
    /// catalogue's answers, one per product it still knows): name,
    /// category, unit price and currency as they are now; quantities stay.
    /// Lines of products not in `products` are left as they are.
    pub async fn reprice(
        &self,
        user_id: &str,
        products: &[CatalogProduct],
    ) -> Result<Basket, BasketError> {
        let txn = self.db.begin().await?;
        let mut basket = ensure_basket(&txn, user_id).await?;
        let at = now();
        let mut changed = 0;
        for product in products {
            let updated = catalogue_refresh(basket.id, product, at).exec(&txn).await?;
            changed += updated.rows_affected;
        }
        if changed > 0 {
            touch(&txn, &mut basket, at).await?;
        }
        let basket = load(&txn, basket).await?;
        txn.commit().await?;
        Ok(basket)
    }

    /// Deletes the locked lines of checkouts settled before `before`;
    /// returns how many rows went.
    pub async fn prune_settled_checkouts(&self, before: DateTime<Utc>) -> Result<u64, BasketError> {
        let deleted = basket_checkout_lines::Entity::delete_many()
            .filter(basket_checkout_lines::Column::SettledAt.lt(before))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }

    /// Marks active, non-empty baskets untouched since `idle_since` as
    /// abandoned; returns `(basket id, user id)` of each one marked. A
    /// basket being paid for (a live checkout lock) is not abandoned,
    /// however long ago it was last changed.
    pub async fn mark_abandoned(
        &self,
        idle_since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>, BasketError> {
        let txn = self.db.begin().await?;
        let at = now();
        let stale = baskets::Entity::find()
            .filter(baskets::Column::Status.eq(BasketStatus::Active.as_str()))
            .filter(baskets::Column::UpdatedAt.lt(idle_since))
            .filter(unlocked_at(at))
            .all(&txn)
            .await?;
        let mut marked = Vec::new();
        for basket in stale {
            let has_items = basket_items::Entity::find()
                .filter(basket_items::Column::BasketId.eq(basket.id))
                .one(&txn)
                .await?
                .is_some();
            if !has_items {
                continue;
            }
            // Re-check the conditions: a concurrent change keeps it active.
            let updated = baskets::Entity::update_many()
                .col_expr(
                    baskets::Column::Status,
                    Expr::value(BasketStatus::Abandoned.as_str()),
                )
                .filter(baskets::Column::Id.eq(basket.id))
                .filter(baskets::Column::Status.eq(BasketStatus::Active.as_str()))
                .filter(baskets::Column::UpdatedAt.lt(idle_since))
                .filter(unlocked_at(at))
                .exec(&txn)
                .await?;
            if updated.rows_affected == 1 {
                let abandoned = load(&txn, basket.clone()).await?;
                let event = basket_event(&abandoned, &abandoned.items, BasketChange::Abandoned)?;
                outbox::enqueue(&txn, Topic::Basket, &event).await?;
                marked.push((basket.id, basket.user_id));
            }
        }
        txn.commit().await?;
        if !marked.is_empty() {
            self.relay.wake();
        }
        Ok(marked)
    }
}

/// The update that gives `product`'s line in basket `basket_id` the
/// catalogue's name, category, price and currency as of `at`: a changed
/// quantity and a re-confirmation of prices both refresh a line this way.
fn catalogue_refresh(
    basket_id: Uuid,
    product: &CatalogProduct,
    at: DateTime<Utc>,
) -> UpdateMany<basket_items::Entity> {
    basket_items::Entity::update_many()
        .col_expr(
            basket_items::Column::ProductName,
            Expr::value(product.name.clone()),
        )
        .col_expr(
            basket_items::Column::Category,
            Expr::value(product.category.clone()),
        )
        .col_expr(basket_items::Column::UnitPrice, Expr::value(product.price))
        .col_expr(
            basket_items::Column::Currency,
            Expr::value(product.currency.clone()),
        )
        .col_expr(basket_items::Column::UpdatedAt, Expr::value(at))
        .filter(basket_items::Column::BasketId.eq(basket_id))
        .filter(basket_items::Column::ProductId.eq(product.id))
}

async fn ensure_basket(
    conn: &impl ConnectionTrait,
    user_id: &str,
) -> Result<baskets::Model, BasketError> {
    let now = now();
    baskets::Entity::insert(baskets::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id.to_owned()),
        status: Set(BasketStatus::Active.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        checkout_payment_id: Set(None),
        checkout_locked_until: Set(None),
    })
    .on_conflict_do_nothing_on([baskets::Column::UserId])
    .exec_without_returning(conn)
    .await?;
    baskets::Entity::find()
        .filter(baskets::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .ok_or_else(|| {
            BasketError::Store(sea_orm::DbErr::RecordNotFound(format!(
                "basket of {user_id}"
            )))
        })
}

async fn check_currency(
    conn: &impl ConnectionTrait,
    basket_id: Uuid,
    product: &CatalogProduct,
) -> Result<(), BasketError> {
    let other = basket_items::Entity::find()
        .filter(basket_items::Column::BasketId.eq(basket_id))
        .filter(basket_items::Column::ProductId.ne(product.id))
        .filter(basket_items::Column::Currency.ne(product.currency.as_str()))
        .one(conn)
        .await?;
    match other {
        Some(line) => Err(BasketError::CurrencyMismatch {
            basket: line.currency,
            product: product.currency.clone(),
        }),
        None => Ok(()),
    }
}

/// Records a change: the basket is active again as of `at`.
async fn touch(
    conn: &impl ConnectionTrait,
    basket: &mut baskets::Model,
    at: DateTime<Utc>,
) -> Result<(), BasketError> {
    let active = BasketStatus::Active.as_str();
    baskets::Entity::update_many()
        .col_expr(baskets::Column::UpdatedAt, Expr::value(at))
        .col_expr(baskets::Column::Status, Expr::value(active))
        .filter(baskets::Column::Id.eq(basket.id))
        .exec(conn)
        .await?;
    basket.updated_at = at;
    basket.status = active.to_owned();
    Ok(())
}

/// Baskets no checkout holds at `at`: no lock, or a lapsed one.
fn unlocked_at(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(baskets::Column::CheckoutPaymentId.is_null())
        .add(baskets::Column::CheckoutLockedUntil.is_null())
        .add(baskets::Column::CheckoutLockedUntil.lte(at))
}

/// Clears `payment_id`'s lock on the basket (if it holds it) and marks
/// the lines it locked settled.
async fn release_in(
    conn: &impl ConnectionTrait,
    basket_id: Uuid,
    payment_id: Uuid,
) -> Result<(), BasketError> {
    baskets::Entity::update_many()
        .col_expr(
            baskets::Column::CheckoutPaymentId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            baskets::Column::CheckoutLockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(baskets::Column::Id.eq(basket_id))
        .filter(baskets::Column::CheckoutPaymentId.eq(payment_id))
        .exec(conn)
        .await?;
    basket_checkout_lines::Entity::update_many()
        .col_expr(
            basket_checkout_lines::Column::SettledAt,
            Expr::value(Some(now())),
        )
        .filter(basket_checkout_lines::Column::PaymentId.eq(payment_id))
        .filter(basket_checkout_lines::Column::BasketId.eq(basket_id))
        .filter(basket_checkout_lines::Column::SettledAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// The basket's checkout lock as seen at `at`: a lapsed lock is cleared
/// now (only if it is still the same lock) and reads as none. The lines
/// it locked are kept: its payment may still settle late.
async fn live_lock(
    conn: &impl ConnectionTrait,
    basket: &baskets::Model,
    at: DateTime<Utc>,
) -> Result<Option<CheckoutLock>, BasketError> {
    let (Some(payment_id), Some(locked_until)) =
        (basket.checkout_payment_id, basket.checkout_locked_until)
    else {
        return Ok(None);
    };
    let lock = CheckoutLock {
        payment_id,
        locked_until,
    };
    if lock.is_live(at) {
        return Ok(Some(lock));
    }
    baskets::Entity::update_many()
        .col_expr(
            baskets::Column::CheckoutPaymentId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            baskets::Column::CheckoutLockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(baskets::Column::Id.eq(basket.id))
        .filter(baskets::Column::CheckoutPaymentId.eq(payment_id))
        .filter(baskets::Column::CheckoutLockedUntil.lte(at))
        .exec(conn)
        .await?;
    tracing::info!(basket_id = %basket.id, %payment_id, "checkout lock lapsed");
    Ok(None)
}

async fn load_items(
    conn: &impl ConnectionTrait,
    basket_id: Uuid,
) -> Result<Vec<BasketItem>, BasketError> {
    let items = basket_items::Entity::find()
        .filter(basket_items::Column::BasketId.eq(basket_id))
        .order_by_asc(basket_items::Column::AddedAt)
        .order_by_asc(basket_items::Column::ProductId)
        .all(conn)
        .await?;
    Ok(items
        .into_iter()
        .map(|line| BasketItem {
            product_id: line.product_id,
            product_name: line.product_name,
            category: line.category,
            quantity: line.quantity,
            // SQLite hands NUMERIC back as a double; restore exact cents.
            unit_price: normalize(line.unit_price),
            currency: line.currency,
            added_at: line.added_at,
        })
        .collect())
}

async fn load(conn: &impl ConnectionTrait, basket: baskets::Model) -> Result<Basket, BasketError> {
    let items = load_items(conn, basket.id).await?;
    let checkout = live_lock(conn, &basket, now()).await?;
    Ok(Basket {
        id: basket.id,
        status: BasketStatus::parse(&basket.status),
        user_id: basket.user_id,
        items,
        checkout,
        created_at: basket.created_at,
        updated_at: basket.updated_at,
    })
}
