//! Write side: reading, admin creation and delivery operations.

use subgraph_kit::cost::list_size;

use crate::service::MAX_BULK;
use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;

use super::types::{
    CreateNotificationInput, NotificationNode, UpdateNotificationInput, notifications,
};

/// Root mutation type of the notification subgraph.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Marks one of the caller's delivered notifications read.
    #[graphql(directive = authenticated::apply())]
    async fn mark_notification_read(&self, ctx: &Context<'_>, id: ID) -> Result<NotificationNode> {
        let viewer = auth::viewer(ctx)?;
        notifications(ctx)
            .mark_read(viewer, &id)
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Marks all the caller's delivered notifications read; returns how many changed.
    #[graphql(directive = authenticated::apply())]
    async fn mark_all_notifications_read(&self, ctx: &Context<'_>) -> Result<u64> {
        let viewer = auth::viewer(ctx)?;
        notifications(ctx)
            .mark_all_read(viewer)
            .await
            .map_err(to_graphql)
    }

    /// Creates a notification and delivers it now (admin).
    #[graphql(requires_scopes = "admin")]
    async fn create_notification(
        &self,
        ctx: &Context<'_>,
        input: CreateNotificationInput,
    ) -> Result<NotificationNode> {
        auth::admin(ctx)?;
        notifications(ctx)
            .create(input.into_new(None))
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Creates up to 100 notifications, all or none, and delivers them (admin).
    #[graphql(
        directive = list_size::apply(i32::try_from(MAX_BULK).ok(), None, None, None),
        requires_scopes = "admin"
    )]
    async fn bulk_create_notifications(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<CreateNotificationInput>,
    ) -> Result<Vec<NotificationNode>> {
        auth::admin(ctx)?;
        let news = inputs
            .into_iter()
            .map(|input| input.into_new(None))
            .collect();
        notifications(ctx)
            .create_many(news)
            .await
            .map(|created| created.into_iter().map(NotificationNode).collect())
            .map_err(to_graphql)
    }

    /// Creates a notification to be delivered at `at` (admin).
    #[graphql(requires_scopes = "admin")]
    async fn schedule_notification(
        &self,
        ctx: &Context<'_>,
        input: CreateNotificationInput,
        at: DateTime<Utc>,
    ) -> Result<NotificationNode> {
        auth::admin(ctx)?;
        notifications(ctx)
            .create(input.into_new(Some(at)))
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Delivers a PENDING or FAILED notification now (admin).
    #[graphql(requires_scopes = "admin")]
    async fn send_notification(&self, ctx: &Context<'_>, id: ID) -> Result<NotificationNode> {
        auth::admin(ctx)?;
        notifications(ctx)
            .send(&id)
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Retries a FAILED notification, up to `DEFAULT_RETRY_ATTEMPTS` times (admin).
    #[graphql(requires_scopes = "admin")]
    async fn retry_notification(&self, ctx: &Context<'_>, id: ID) -> Result<NotificationNode> {
        auth::admin(ctx)?;
        notifications(ctx)
            .retry(&id)
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Changes a notification's content (admin).
    #[graphql(requires_scopes = "admin")]
    async fn update_notification(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateNotificationInput,
    ) -> Result<NotificationNode> {
        auth::admin(ctx)?;
        notifications(ctx)
            .update(&id, input.into())
            .await
            .map(NotificationNode)
            .map_err(to_graphql)
    }

    /// Deletes one of the caller's notifications (any, for admins).
    #[graphql(directive = authenticated::apply())]
    async fn delete_notification(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let viewer = auth::viewer(ctx)?;
        notifications(ctx)
            .delete(viewer, &id)
            .await
            .map_err(to_graphql)?;
        Ok(true)
    }

    /// Deletes expired notifications now; returns how many (admin).
    #[graphql(requires_scopes = "admin")]
    async fn cleanup_expired_notifications(&self, ctx: &Context<'_>) -> Result<u64> {
        auth::admin(ctx)?;
        notifications(ctx)
            .cleanup_expired()
            .await
            .map_err(to_graphql)
    }
}
