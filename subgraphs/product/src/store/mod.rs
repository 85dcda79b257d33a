//! The product store: SeaORM queries behind a small repository.
//!
//! The repository owns every transaction and converts rows to domain
//! [`Product`]s, so no SeaORM type leaves this module. Two operations are
//! worth a look:
//!
//! * [`ProductStore::get_many`] answers a whole `_entities` batch with one
//!   `SELECT ... WHERE id IN (...)`;
//! * [`ProductStore::adjust_stock`] changes stock with one conditional
//!   `UPDATE ... SET stock = stock + delta WHERE stock + delta >= 0`, so
//!   concurrent adjustments never oversell and never lose an update;
//! * [`ProductStore::sell`] takes a sale's units inside the consumer's
//!   transaction (which also records the event as processed).
//!
//! Every stock change writes its stock events to the outbox in the same
//! transaction. Checkout reservations (reserve, release, sell, sweep) are
//! in [`reservations`](self::reservations), over the same products table.

mod entity;
mod reservation_entity;
mod reservations;

pub use reservations::HeldUnits;

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, TryInsertResult,
};
use subgraph_kit::events::Topic;
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::money::normalize;
use uuid::Uuid;

use crate::domain::{
    CursorPosition, ListQuery, MAX_STOCK, NewProduct, Page, Product, ProductError, ProductPatch,
    ProductSort, SortKey, StockAdjustment,
};
use crate::events::outgoing::{StockReason, stock_events};
use entity::{ActiveModel, Column, Entity, Model};

/// Reads and writes products.
#[derive(Debug, Clone)]
pub struct ProductStore {
    db: DatabaseConnection,
    relay: RelayWaker,
    low_stock_threshold: i32,
}

impl ProductStore {
    /// A store over an open, migrated pool; stock events use
    /// `low_stock_threshold` and wake `relay` after commit.
    pub fn new(db: DatabaseConnection, relay: RelayWaker, low_stock_threshold: i32) -> Self {
        Self {
            db,
            relay,
            low_stock_threshold,
        }
    }

    /// One product, if it exists.
    pub async fn get(&self, id: Uuid) -> Result<Option<Product>, ProductError> {
        Ok(Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(Product::from))
    }

    /// The products among `ids` that exist, in one statement, in no
    /// particular order.
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Product>, ProductError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    /// One page of products.
    pub async fn list(&self, query: &ListQuery) -> Result<Page, ProductError> {
        let mut select = Entity::find().filter(filter_condition(query));
        if let Some(after) = &query.after {
            select = select.filter(after_condition(after));
        }
        select = match query.sort {
            ProductSort::Name => select.order_by_asc(Column::Name).order_by_asc(Column::Id),
            ProductSort::Price => select.order_by_asc(Column::Price).order_by_asc(Column::Id),
            ProductSort::PriceDesc => select
                .order_by_desc(Column::Price)
                .order_by_desc(Column::Id),
            ProductSort::Newest => select
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::Id),
        };
        // One extra row tells whether another page follows.
        let mut rows = select.limit(query.limit + 1).all(&self.db).await?;
        let has_next_page = rows.len() as u64 > query.limit;
        rows.truncate(query.limit as usize);
        Ok(Page {
            items: rows.into_iter().map(Product::from).collect(),
            has_next_page,
        })
    }

    /// How many products match the filter (ignoring the cursor).
    pub async fn count(&self, query: &ListQuery) -> Result<u64, ProductError> {
        use sea_orm::PaginatorTrait;
        Ok(Entity::find()
            .filter(filter_condition(query))
            .count(&self.db)
            .await?)
    }

    /// Every category in use, alphabetically.
    pub async fn categories(&self) -> Result<Vec<String>, ProductError> {
        Ok(Entity::find()
            .select_only()
            .column(Column::Category)
            .distinct()
            .order_by_asc(Column::Category)
            .into_tuple::<String>()
            .all(&self.db)
            .await?)
    }

    /// Stores a new product.
    pub async fn create(&self, product: NewProduct) -> Result<Product, ProductError> {
        let model = to_active_model(product.into_product());
        Ok(model.insert(&self.db).await?.into())
    }

    /// Applies `patch` to product `id`.
    pub async fn update(&self, id: Uuid, patch: ProductPatch) -> Result<Product, ProductError> {
        let txn = self.db.begin().await?;
        let model = Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| ProductError::NotFound(id.to_string()))?;
        let mut active = model.into_active_model();
        if let Some(name) = patch.name {
            active.name = Set(name);
        }
        if let Some(description) = patch.description {
            active.description = Set(description);
        }
        if let Some(price) = patch.price {
            active.price = Set(price);
        }
        if let Some(currency) = patch.currency {
            active.currency = Set(currency);
        }
        if let Some(stock) = patch.stock_quantity {
            active.stock_quantity = Set(stock);
        }
        if let Some(category) = patch.category {
            active.category = Set(category);
        }
        if let Some(image_url) = patch.image_url {
            active.image_url = Set(image_url);
        }
        active.updated_at = Set(patch.updated_at);
        let updated = active.update(&txn).await?;
        txn.commit().await?;
        Ok(updated.into())
    }

    /// Deletes product `id`.
    pub async fn delete(&self, id: Uuid) -> Result<(), ProductError> {
        let result = Entity::delete_by_id(id).exec(&self.db).await?;
        if result.rows_affected == 0 {
            return Err(ProductError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Adds `delta` (negative to remove) to the stock of product `id`,
    /// atomically: the condition is checked by the same UPDATE that writes.
    pub async fn adjust_stock(
        &self,
        id: Uuid,
        delta: i32,
    ) -> Result<StockAdjustment, ProductError> {
        let within_bounds = if delta < 0 {
            Column::StockQuantity.gte(-(delta as i64))
        } else {
            Column::StockQuantity.lte(MAX_STOCK as i64 - delta as i64)
        };
        let txn = self.db.begin().await?;
        let updated = Entity::update_many()
            .col_expr(
                Column::StockQuantity,
                Expr::col(Column::StockQuantity).add(delta),
            )
            .col_expr(Column::UpdatedAt, Expr::value(crate::domain::now()))
            .filter(Column::Id.eq(id))
            .filter(within_bounds)
            .exec(&txn)
            .await?;
        let current = Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| ProductError::NotFound(id.to_string()))?;
        if updated.rows_affected == 0 {
            return Err(if delta < 0 {
                ProductError::InsufficientStock {
                    id: id.to_string(),
                    available: current.stock_quantity,
                    requested: -(delta as i64),
                }
            } else {
                ProductError::StockOverflow {
                    id: id.to_string(),
                    max: MAX_STOCK,
                }
            });
        }
        let product = Product::from(current);
        let adjustment = StockAdjustment {
            previous_stock: product.stock_quantity - delta,
            product,
        };
        self.record(&txn, &adjustment, StockReason::Adjustment)
            .await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(adjustment)
    }

    /// Takes `quantity` units of product `id` for a sale, inside `txn`;
    /// stock stops at zero (an oversold sale is logged, not refused: the
    /// money is already captured). `None` when the product is gone.
    pub async fn sell(
        &self,
        txn: &impl ConnectionTrait,
        id: Uuid,
        quantity: i32,
        payment_id: Uuid,
    ) -> Result<Option<StockAdjustment>, ProductError> {
        // Lock the row first (the write lock, on SQLite), then read.
        let at = crate::domain::now();
        let touched = Entity::update_many()
            .col_expr(Column::UpdatedAt, Expr::value(at))
            .filter(Column::Id.eq(id))
            .exec(txn)
            .await?;
        if touched.rows_affected == 0 {
            return Ok(None);
        }
        let Some(current) = Entity::find_by_id(id).one(txn).await? else {
            return Ok(None);
        };
        let previous = current.stock_quantity;
        let left = Ord::max(previous - Ord::max(quantity, 0), 0);
        if previous < quantity {
            tracing::warn!(product_id = %id, %payment_id, stock = previous, sold = quantity, "sale exceeds stock; stock set to zero");
        }
        Entity::update_many()
            .col_expr(Column::StockQuantity, Expr::value(left))
            .filter(Column::Id.eq(id))
            .exec(txn)
            .await?;
        let mut product = Product::from(current);
        product.stock_quantity = left;
        product.updated_at = at;
        let adjustment = StockAdjustment {
            previous_stock: previous,
            product,
        };
        self.record(txn, &adjustment, StockReason::Sale(payment_id))
            .await?;
        Ok(Some(adjustment))
    }

    /// Writes the stock events of `adjustment` to the outbox.
    async fn record(
        &self,
        txn: &impl ConnectionTrait,
        adjustment: &StockAdjustment,
        reason: StockReason,
    ) -> Result<(), ProductError> {
        for event in stock_events(adjustment, self.low_stock_threshold, reason)? {
            outbox::enqueue(txn, Topic::Product, &event).await?;
        }
        Ok(())
    }

    /// Inserts `products` whose ids are not stored yet; returns how many
    /// were new. Safe to call on every start (demo catalogue).
    pub async fn insert_missing(&self, products: Vec<Product>) -> Result<u64, ProductError> {
        let result = Entity::insert_many(products.into_iter().map(to_active_model))
            .on_conflict_do_nothing_on([Column::Id])
            .exec_without_returning(&self.db)
            .await?;
        Ok(match result {
            TryInsertResult::Inserted(rows) => rows,
            TryInsertResult::Empty | TryInsertResult::Conflicted => 0,
        })
    }
}

fn filter_condition(query: &ListQuery) -> Condition {
    let filter = &query.filter;
    let mut condition = Condition::all();
    if let Some(category) = &filter.category {
        condition = condition.add(Column::Category.eq(category.as_str()));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        let matches = |column: Column| {
            Expr::expr(Func::lower(Expr::col(column)))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        condition = condition.add(
            Condition::any()
                .add(matches(Column::Name))
                .add(matches(Column::Description)),
        );
    }
    if let Some(min) = filter.min_price {
        condition = condition.add(Column::Price.gte(min));
    }
    if let Some(max) = filter.max_price {
        condition = condition.add(Column::Price.lte(max));
    }
    match filter.in_stock {
        Some(true) => condition = condition.add(Column::StockQuantity.gt(0)),
        Some(false) => condition = condition.add(Column::StockQuantity.eq(0)),
        None => {}
    }
    condition
}

/// Rows strictly after `after` in its sort order.
fn after_condition(after: &CursorPosition) -> Condition {
    let id = after.id;
    match (&after.key, after.sort) {
        (SortKey::Name(name), _) => keyset(
            Column::Name.gt(name.as_str()),
            Column::Name.eq(name.as_str()),
            Column::Id.gt(id),
        ),
        (SortKey::Price(price), ProductSort::PriceDesc) => keyset(
            Column::Price.lt(*price),
            Column::Price.eq(*price),
            Column::Id.lt(id),
        ),
        (SortKey::Price(price), _) => keyset(
            Column::Price.gt(*price),
            Column::Price.eq(*price),
            Column::Id.gt(id),
        ),
        (SortKey::CreatedAt(at), _) => keyset(
            Column::CreatedAt.lt(*at),
            Column::CreatedAt.eq(*at),
            Column::Id.lt(id),
        ),
    }
}

/// `key beyond cursor OR (key = cursor AND id beyond cursor)`.
fn keyset(beyond: Expr, same_key: Expr, id_beyond: Expr) -> Condition {
    Condition::any()
        .add(beyond)
        .add(Condition::all().add(same_key).add(id_beyond))
}

fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn to_active_model(product: Product) -> ActiveModel {
    ActiveModel {
        id: Set(product.id),
        name: Set(product.name),
        description: Set(product.description),
        price: Set(product.price),
        currency: Set(product.currency),
        stock_quantity: Set(product.stock_quantity),
        category: Set(product.category),
        image_url: Set(product.image_url),
        created_at: Set(product.created_at),
        updated_at: Set(product.updated_at),
    }
}

impl From<Model> for Product {
    fn from(row: Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            // SQLite hands NUMERIC back as a double; restore exact cents.
            price: normalize(row.price),
            currency: row.currency,
            stock_quantity: row.stock_quantity,
            category: row.category,
            image_url: row.image_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
