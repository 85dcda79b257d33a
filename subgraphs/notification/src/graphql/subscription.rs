//! `notificationAdded`: the signed-in user's new notifications, live, and
//! resumable from the last one a client saw.
//!
//! The hand-over from stored to live is gap-free: the live stream is
//! opened first, then the backlog after `after` is read; the backlog is
//! sent, then live events, skipping any the backlog already carried, any
//! at or before `after` (a re-published old event), and any seen already
//! (delivery is at-least-once: an event may arrive twice).

use std::collections::{HashSet, VecDeque};

use async_graphql::{Context, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt, stream};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::graphql::authenticated;
use uuid::Uuid;

use crate::events::outgoing::created_notification;
use crate::graphql::types::NotificationNode;
use crate::service::Notifications;

/// The subscription root.
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// The signed-in user's notifications as they are created. With
    /// `after` (the id of the last notification the client saw), those
    /// created since are sent first, in order, then live ones.
    #[graphql(directive = authenticated::apply())]
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<NotificationNode>> + use<>> {
        let user_id = auth::viewer(ctx)?.user_id.clone();
        // Live first, so nothing created during the backlog read is missed.
        let live = ctx.data_unchecked::<LiveFeed>().events();
        let (backlog, after) = match after {
            Some(after) => {
                let backlog = ctx
                    .data_unchecked::<Notifications>()
                    .created_after(&user_id, &after)
                    .await
                    .map_err(to_graphql)?;
                (backlog, Uuid::parse_str(after.trim()).ok())
            }
            None => (Vec::new(), None),
        };
        let mut seen = RecentIds::with_capacity(RECENT_IDS.max(backlog.len()));
        for notification in &backlog {
            seen.insert(notification.id);
        }
        let live = live.filter_map(move |item| {
            let next = match item {
                Err(lagged) => Some(Err(lagged.to_graphql())),
                Ok(event) => created_notification(&event)
                    .filter(|n| n.user_id == user_id)
                    .filter(|n| after.is_none_or(|a| n.id > a) && seen.insert(n.id))
                    .map(|n| Ok(NotificationNode(n))),
            };
            futures::future::ready(next)
        });
        Ok(stream::iter(backlog.into_iter().map(|n| Ok(NotificationNode(n)))).chain(live))
    }
}

/// Ids remembered per subscription to drop redelivered events.
const RECENT_IDS: usize = 256;

/// The last ids a subscription delivered, bounded.
struct RecentIds {
    order: VecDeque<Uuid>,
    ids: HashSet<Uuid>,
    capacity: usize,
}

impl RecentIds {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(capacity),
            ids: HashSet::with_capacity(capacity),
            capacity,
        }
    }

    /// Remembers `id`; `false` if it was remembered already.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        true
    }
}
