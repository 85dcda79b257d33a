//! The notification subgraph's GraphQL API (Federation v2): the
//! `Notification` entity, inbox queries and stats, admin operations, and
//! `User.notifications` / `User.unreadNotificationCount`.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use shopgraph_platform::settings::GraphqlSettings;

use crate::service::Notifications;
use mutation::Mutation;
use query::Query;

/// The executable schema of the notification subgraph.
pub type NotificationSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).enable_federation()
}

/// The schema wired to the notification use cases.
pub fn schema(notifications: Notifications, limits: &GraphqlSettings) -> NotificationSchema {
    let mut builder = builder()
        .data(notifications)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The federation SDL that composition and `shopgraph sdl notification` use.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}
