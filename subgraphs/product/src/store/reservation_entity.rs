//! The reservation tables as SeaORM entities (schema in
//! `migrations/product`, `m20261203_000001_create_stock_reservations`).

/// `stock_reservations`: one row per reservation, holding its status.
pub mod stock_reservations {
    use sea_orm::entity::prelude::*;

    /// One row of `stock_reservations`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock_reservations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: String,
        pub status: String,
        pub expires_at: DateTimeUtc,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    /// A reservation has lines.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::stock_reservation_lines::Entity")]
        Lines,
    }

    impl Related<super::stock_reservation_lines::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Lines.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `stock_reservation_lines`: one row per (reservation, product).
pub mod stock_reservation_lines {
    use sea_orm::entity::prelude::*;

    /// One row of `stock_reservation_lines`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock_reservation_lines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub reservation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: Uuid,
        pub product_name: String,
        pub quantity: i32,
        #[sea_orm(column_type = "Decimal(Some((12, 2)))")]
        pub unit_price: Decimal,
        pub currency: String,
    }

    /// Each line belongs to one reservation.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::stock_reservations::Entity",
            from = "Column::ReservationId",
            to = "super::stock_reservations::Column::Id",
            on_delete = "Cascade"
        )]
        Reservation,
    }

    impl Related<super::stock_reservations::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Reservation.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}
