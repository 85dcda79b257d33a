//! `notificationAdded`: the signed-in user's new notifications, live, and
//! resumable from the last one a client saw.
//!
//! Order and resumption follow each notification's per-user sequence
//! number (see [`crate::store`]), which is commit order, not its id (taken
//! before commit). `after` is still a notification id, as the API has it:
//! it is resolved to that notification's number.
//!
//! The hand-over from stored to live is gap-free and duplicate-free: the
//! live stream is opened first, then the backlog numbered after `after` is
//! read; the backlog is sent, then live events numbered above the last
//! one sent. A live event at or below it (one the backlog carried, a
//! re-published one: delivery is at-least-once) is dropped; a live event
//! that skips numbers (the bus handed events over out of order) is
//! preceded by the skipped ones, read from the store, so the client still
//! sees every number once and in order. A live stream that lagged (more
//! events arrived than the feed holds while this subscription was busy,
//! replaying a long backlog, say) is followed again and what it dropped is
//! read from the store, so a subscriber that keeps reading is never ended
//! for it. Events from a replica that
//! predates numbering carry none and are de-duplicated by id, as before.
//!
//! Each notification sent is recorded as the subscription's resume token
//! ([`Resume`]): when the router loses its connection to this replica, it
//! subscribes again (on any replica) with the last token it received, which
//! stands for `after`, so its client sees neither a gap nor a repeat.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use async_graphql::{Context, Result, Subscription as GqlSubscription};
use futures::{Stream, StreamExt, stream};
use shopgraph_core::error::to_graphql;
use subgraph_kit::auth;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::live::{Lagged, LiveFeed};
use subgraph_kit::graphql::authenticated;
use subgraph_kit::subscriptions::Resume;
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
    /// created since are sent first, in order, then live ones. A client
    /// that has seen none passes the nil UUID
    /// (`00000000-0000-0000-0000-000000000000`): everything stored is sent
    /// first, so an inbox that was empty when it loaded misses nothing.
    #[graphql(directive = authenticated::apply())]
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<NotificationNode>> + use<>> {
        let user_id = auth::viewer(ctx)?.user_id.clone();
        let notifications = ctx.data_unchecked::<Notifications>().clone();
        // A subscriber that lost its connection (the router, re-subscribing
        // for its client) resumes after the last notification it received.
        let resume = ctx.data_opt::<Resume>().cloned();
        let after = resume
            .as_ref()
            .and_then(Resume::requested)
            .and_then(|token| token.as_str().map(str::to_owned))
            .or(after);
        // Live first, so nothing created during the backlog read is missed.
        let feed = ctx.data_unchecked::<LiveFeed>().clone();
        let live = feed.events();
        let (backlog, last_seq, after_id) = match after {
            Some(after) => {
                let resume = notifications
                    .resume(&user_id, &after)
                    .await
                    .map_err(to_graphql)?;
                let after_id = Uuid::parse_str(after.trim()).ok();
                (resume.backlog, Some(resume.last_seq), after_id)
            }
            None => (Vec::new(), None, None),
        };
        let mut seen = RecentIds::with_capacity(RECENT_IDS.max(backlog.len()));
        for notification in &backlog {
            seen.insert(notification.id);
        }
        let follow = Follow {
            live,
            feed,
            user_id,
            notifications,
            last_seq,
            after_id,
            seen,
            ended: false,
        };
        let live = stream::unfold(follow, |mut follow| async move {
            let batch = follow.next_batch().await?;
            Some((batch, follow))
        })
        .flat_map(stream::iter);
        let all = stream::iter(backlog.into_iter().map(|n| Ok(NotificationNode(n)))).chain(live);
        Ok(all.inspect(move |item| {
            if let (Some(resume), Ok(NotificationNode(notification))) = (&resume, item) {
                resume.record(notification.id.to_string().into());
            }
        }))
    }
}

/// The live part of one subscription: what it has delivered so far.
struct Follow {
    live: Pin<Box<dyn Stream<Item = std::result::Result<Arc<CloudEvent>, Lagged>> + Send>>,
    /// Where `live` comes from, to follow again after it lagged.
    feed: LiveFeed,
    user_id: String,
    notifications: Notifications,
    /// The highest sequence number delivered (or replayed, or resumed
    /// after); `None` until the first numbered event without `after`.
    last_seq: Option<i64>,
    /// `after` as an id, for events without a number.
    after_id: Option<Uuid>,
    /// Ids delivered lately, for events without a number.
    seen: RecentIds,
    ended: bool,
}

impl Follow {
    /// The next notifications to send (one, or a filled gap and the one
    /// after it, or a final error); `None` at the end of the live stream.
    async fn next_batch(&mut self) -> Option<Vec<Result<NotificationNode>>> {
        loop {
            if self.ended {
                return None;
            }
            let event = match self.live.next().await? {
                Ok(event) => event,
                Err(lagged) => match self.last_seq {
                    // Numbered: what the feed dropped is in the store.
                    Some(last) => match self.catch_up(last).await {
                        Ok(batch) if batch.is_empty() => continue,
                        Ok(batch) => return Some(batch),
                        Err(err) => {
                            self.ended = true;
                            return Some(vec![Err(to_graphql(err))]);
                        }
                    },
                    None => {
                        self.ended = true;
                        return Some(vec![Err(lagged.to_graphql())]);
                    }
                },
            };
            let Some(notification) =
                created_notification(&event).filter(|n| n.user_id == self.user_id)
            else {
                continue;
            };
            let Some(seq) = notification.seq else {
                // From a replica that predates numbering.
                let after = self.after_id;
                if after.is_none_or(|a| notification.id > a) && self.seen.insert(notification.id) {
                    return Some(vec![Ok(NotificationNode(notification))]);
                }
                continue;
            };
            let mut batch = Vec::new();
            match self.last_seq {
                Some(last) if seq <= last => continue,
                Some(last) if seq > last + 1 => {
                    // Every lower number committed before this one did.
                    match self
                        .notifications
                        .announced_between(&self.user_id, last, seq)
                        .await
                    {
                        Ok(missing) => batch = missing,
                        Err(err) => {
                            self.ended = true;
                            return Some(vec![Err(to_graphql(err))]);
                        }
                    }
                }
                _ => {}
            }
            batch.push(notification);
            self.last_seq = Some(seq);
            let delivered = batch
                .into_iter()
                .map(|n| {
                    self.seen.insert(n.id);
                    Ok(NotificationNode(n))
                })
                .collect();
            return Some(delivered);
        }
    }
}

impl Follow {
    /// After the live feed dropped events for this subscription (a burst
    /// of other users' notifications, say, while it was replaying): follow
    /// the feed again, then read from the store everything numbered after
    /// `last`, as a resume does. Live events at or below the new last
    /// number are then repeats and dropped.
    async fn catch_up(
        &mut self,
        last: i64,
    ) -> std::result::Result<Vec<Result<NotificationNode>>, crate::domain::NotificationError> {
        self.live = self.feed.events();
        let missed = self
            .notifications
            .announced_between(&self.user_id, last, i64::MAX)
            .await?;
        if let Some(seq) = missed.last().and_then(|n| n.seq) {
            self.last_seq = Some(seq);
        }
        Ok(missed
            .into_iter()
            .map(|n| {
                self.seen.insert(n.id);
                Ok(NotificationNode(n))
            })
            .collect())
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
