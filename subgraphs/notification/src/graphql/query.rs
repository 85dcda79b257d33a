//! Read side: one notification, the inbox, stats, and the entities.

use async_graphql::{Context, ID, Object, Result};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::cost::{
    FIRST_IS_OPTIONAL, PAGE_ASSUMED_SIZE, list_size, page_fields, page_slicing,
};
use subgraph_kit::graphql::authenticated;

use super::types::{
    NotificationConnection, NotificationNode, NotificationStats, NotificationStatus,
    NotificationType, connection, notifications,
};
use crate::domain::NotificationError;
use crate::store::InboxFilter;

/// Root query type of the notification subgraph.
pub struct Query;

#[Object]
impl Query {
    /// One of the caller's notifications (any, for admins); `NOT_FOUND`
    /// for unknown ids and for other users' notifications alike.
    #[graphql(directive = authenticated::apply())]
    async fn notification(&self, ctx: &Context<'_>, id: ID) -> Result<Option<NotificationNode>> {
        let viewer = auth::viewer(ctx)?;
        notifications(ctx)
            .get(viewer, &id)
            .await
            .map(|n| Some(NotificationNode(n)))
            .map_err(to_graphql)
    }

    /// The caller's notifications, newest first, optionally filtered.
    #[graphql(
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL),
        directive = authenticated::apply()
    )]
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<NotificationStatus>,
        #[graphql(name = "type")] kind: Option<NotificationType>,
    ) -> Result<NotificationConnection> {
        let viewer = auth::viewer(ctx)?;
        let filter = InboxFilter {
            status: status.map(Into::into),
            kind: kind.map(Into::into),
        };
        inbox(ctx, &viewer.user_id, filter, first, after).await
    }

    /// Counts of the caller's notifications by status and type.
    #[graphql(directive = authenticated::apply())]
    async fn notification_stats(&self, ctx: &Context<'_>) -> Result<NotificationStats> {
        let viewer = auth::viewer(ctx)?;
        notifications(ctx)
            .stats(&viewer.user_id)
            .await
            .map(Into::into)
            .map_err(to_graphql)
    }

    /// Federation entry point for `Notification`: `null` unless the caller
    /// owns it or is an admin.
    #[graphql(entity)]
    async fn find_notification_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<NotificationNode>> {
        let viewer = auth::viewer(ctx)?;
        match notifications(ctx).get(viewer, &id).await {
            Ok(n) => Ok(Some(NotificationNode(n))),
            Err(NotificationError::NotFound(_)) => Ok(None),
            Err(err) => Err(to_graphql(err)),
        }
    }

    /// Federation entry point for `User`.
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> UserNode {
        UserNode { id: id.0 }
    }
}

async fn inbox(
    ctx: &Context<'_>,
    user_id: &str,
    filter: InboxFilter,
    first: Option<i32>,
    after: Option<String>,
) -> Result<NotificationConnection> {
    let page = notifications(ctx)
        .inbox(user_id, filter, first, after.as_deref())
        .await
        .map_err(to_graphql)?;
    Ok(connection(page, after.is_some()))
}

/// A shop user; this subgraph adds their notifications.
pub struct UserNode {
    id: String,
}

impl UserNode {
    /// The caller, if they are this user or an admin.
    fn check_viewer(&self, ctx: &Context<'_>) -> Result<()> {
        let viewer = auth::viewer(ctx)?;
        if viewer.user_id == self.id || viewer.is_admin() {
            Ok(())
        } else {
            Err(to_graphql(NotificationError::NotFound(format!(
                "notifications of {}",
                self.id
            ))))
        }
    }
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// The user's notifications, newest first (the user or an admin only).
    #[graphql(
        directive = list_size::apply(PAGE_ASSUMED_SIZE, page_slicing(), page_fields(), FIRST_IS_OPTIONAL),
        directive = authenticated::apply()
    )]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<NotificationConnection> {
        self.check_viewer(ctx)?;
        inbox(ctx, &self.id, InboxFilter::default(), first, after).await
    }

    /// Delivered notifications the user has not read.
    #[graphql(directive = authenticated::apply())]
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<u64> {
        self.check_viewer(ctx)?;
        notifications(ctx)
            .unread_count(&self.id)
            .await
            .map_err(to_graphql)
    }
}
