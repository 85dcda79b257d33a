//! The basket store's tables as SeaORM entities (schema in `migrations/basket`).

/// `baskets`: one row per user.
pub mod baskets {
    use sea_orm::entity::prelude::*;

    /// One row of `baskets`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "baskets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub user_id: String,
        pub status: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// The payment holding the checkout lock, if any.
        pub checkout_payment_id: Option<Uuid>,
        /// When that lock lapses (a lock past this counts as absent).
        pub checkout_locked_until: Option<DateTimeUtc>,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `basket_items`: one row per product in a basket.
pub mod basket_items {
    use sea_orm::entity::prelude::*;

    /// One row of `basket_items`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "basket_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub basket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: Uuid,
        pub product_name: String,
        pub category: String,
        pub quantity: i32,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub unit_price: Decimal,
        pub currency: String,
        pub added_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `basket_checkout_lines`: the units a checkout locked, per payment and
/// product, so its completion removes exactly those.
pub mod basket_checkout_lines {
    use sea_orm::entity::prelude::*;

    /// One row of `basket_checkout_lines`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "basket_checkout_lines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: Uuid,
        pub basket_id: Uuid,
        pub quantity: i32,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub unit_price: Decimal,
        pub currency: String,
        pub locked_at: DateTimeUtc,
        /// When the payment's outcome was applied (or the checkout
        /// released); `None` while it may still settle.
        pub settled_at: Option<DateTimeUtc>,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
