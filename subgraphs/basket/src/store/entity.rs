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
