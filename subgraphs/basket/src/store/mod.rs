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

mod entity;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use subgraph_kit::events::Topic;
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use crate::domain::{Basket, BasketError, BasketItem, BasketStatus, CatalogProduct, now};
use crate::events::outgoing::{BasketChange, basket_event};
use entity::{basket_items, baskets};

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
        let updated = basket_items::Entity::update_many()
            .col_expr(basket_items::Column::Quantity, Expr::value(quantity))
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
            .col_expr(basket_items::Column::UpdatedAt, Expr::value(now))
            .filter(basket_items::Column::BasketId.eq(basket.id))
            .filter(basket_items::Column::ProductId.eq(product.id))
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
            let event = basket_event(&before, reason)?;
            outbox::enqueue(txn, Topic::Basket, &event).await?;
        }
        load(txn, row).await
    }

    /// Marks active, non-empty baskets untouched since `idle_since` as
    /// abandoned; returns `(basket id, user id)` of each one marked.
    pub async fn mark_abandoned(
        &self,
        idle_since: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>, BasketError> {
        let txn = self.db.begin().await?;
        let stale = baskets::Entity::find()
            .filter(baskets::Column::Status.eq(BasketStatus::Active.as_str()))
            .filter(baskets::Column::UpdatedAt.lt(idle_since))
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
                .exec(&txn)
                .await?;
            if updated.rows_affected == 1 {
                let abandoned = load(&txn, basket.clone()).await?;
                let event = basket_event(&abandoned, BasketChange::Abandoned)?;
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

async fn load(conn: &impl ConnectionTrait, basket: baskets::Model) -> Result<Basket, BasketError> {
    let items = basket_items::Entity::find()
        .filter(basket_items::Column::BasketId.eq(basket.id))
        .order_by_asc(basket_items::Column::AddedAt)
        .order_by_asc(basket_items::Column::ProductId)
        .all(conn)
        .await?;
    Ok(Basket {
        id: basket.id,
        status: BasketStatus::parse(&basket.status),
        user_id: basket.user_id,
        items: items
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
            .collect(),
        created_at: basket.created_at,
        updated_at: basket.updated_at,
    })
}
