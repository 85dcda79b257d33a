//! The notification subgraph's GraphQL API (Federation v2): the
//! `Notification` entity, inbox queries and stats, admin operations, and
//! `User.notifications` / `User.unreadNotificationCount`.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};
use shopgraph_platform::settings::GraphqlSettings;

use crate::service::Notifications;
use mutation::Mutation;
use query::Query;

/// The executable schema of the notification subgraph.
pub type NotificationSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema wired to the notification use cases.
pub fn schema(notifications: Notifications, limits: &GraphqlSettings) -> NotificationSchema {
    shopgraph_platform::graphql::federated(
        Schema::build(Query, Mutation, EmptySubscription),
        limits,
    )
    .data(notifications)
    .finish()
}

/// The federation SDL that composition and `shopgraph sdl notification` use.
pub fn sdl() -> String {
    shopgraph_platform::graphql::federation_sdl(Schema::build(Query, Mutation, EmptySubscription))
}
