//! The payment store's tables as SeaORM entities (schema in `migrations/payment`).

/// `payments`: one row per payment.
pub mod payments {
    use sea_orm::entity::prelude::*;

    /// One row of `payments`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: String,
        pub basket_id: Option<Uuid>,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub amount: Decimal,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub refunded_amount: Decimal,
        pub currency: String,
        pub status: String,
        pub method: String,
        pub provider: String,
        pub provider_id: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub metadata: Option<String>,
        pub failure_reason: Option<String>,
        pub retryable: bool,
        pub card_last4: Option<String>,
        pub idempotency_key: String,
        pub request_fingerprint: String,
        pub order_fingerprint: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub processed_at: Option<DateTimeUtc>,
        pub expires_at: Option<DateTimeUtc>,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `payment_items`: the basket lines a payment was made from.
pub mod payment_items {
    use sea_orm::entity::prelude::*;

    /// One row of `payment_items`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: Uuid,
        pub product_name: String,
        pub quantity: i32,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub unit_price: Decimal,
        pub currency: String,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `payment_refunds`: one row per refund, recorded before the provider is asked.
pub mod payment_refunds {
    use sea_orm::entity::prelude::*;

    /// One row of `payment_refunds`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_refunds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub payment_id: Uuid,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub amount: Decimal,
        pub status: String,
        pub provider_refund_id: Option<String>,
        pub failure_reason: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    /// Relations are navigated by explicit queries.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
