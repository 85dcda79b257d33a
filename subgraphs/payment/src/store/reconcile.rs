//! What the reconciliation sweeper looks for in the store.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::PaymentStore;
use super::entity::payments;
use crate::domain::{PaymentError, PaymentStatus};

impl PaymentStore {
    /// Payments PROCESSING since before `before` (their process died while
    /// the provider was asked, or its answer was lost), oldest first, at
    /// most `limit`.
    pub async fn processing_before(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Uuid>, PaymentError> {
        Ok(payments::Entity::find()
            .select_only()
            .column(payments::Column::Id)
            .filter(payments::Column::Status.eq(PaymentStatus::Processing.as_str()))
            .filter(payments::Column::UpdatedAt.lt(before))
            .order_by_asc(payments::Column::UpdatedAt)
            .limit(limit)
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?)
    }
}
