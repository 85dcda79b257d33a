//! The `notifications` table as a SeaORM entity (schema in `migrations/notification`).

use sea_orm::entity::prelude::*;

/// One row of `notifications`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: String,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub data: Option<String>,
    pub channel: String,
    pub status: String,
    pub priority: String,
    pub retry_count: i32,
    pub failure_reason: Option<String>,
    pub scheduled_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The scheduler replica delivering it now, if any.
    pub claimed_by: Option<String>,
    /// When that claim lapses (a replica that died mid-delivery).
    pub claimed_until: Option<DateTimeUtc>,
    /// Its place in its user's announcement (commit) order; null until
    /// announced.
    pub seq: Option<i64>,
}

/// Notifications reference no other table of this store.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
