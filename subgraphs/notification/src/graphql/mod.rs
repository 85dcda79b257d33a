//! The notification subgraph's GraphQL API (Federation v2): the
//! `Notification` entity, inbox queries and stats, admin operations, and
//! `User.notifications` / `User.unreadNotificationCount`.

mod error;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::Schema;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::settings::GraphqlSettings;

use crate::service::Notifications;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;

/// The executable schema of the notification subgraph.
pub type NotificationSchema = Schema<Query, Mutation, Subscription>;

/// The schema wired to the notification use cases, with
/// `notificationAdded` fed by `feed`.
pub fn schema(
    notifications: Notifications,
    limits: &GraphqlSettings,
    feed: LiveFeed,
) -> NotificationSchema {
    subgraph_kit::graphql::federated(Schema::build(Query, Mutation, Subscription), limits)
        .data(notifications)
        .data(feed)
        .finish()
}

/// The federation SDL that composition and `shopgraph sdl notification` use.
pub fn sdl() -> String {
    subgraph_kit::graphql::federation_sdl(Schema::build(Query, Mutation, Subscription))
}
