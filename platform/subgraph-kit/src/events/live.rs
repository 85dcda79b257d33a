//! Live fan-out: the events of some topics, as they happen, to every
//! GraphQL subscription in this replica.
//!
//! Each replica tails the topics itself ([`Start::Live`]: no consumer
//! group, all partitions), so every replica sees every event and a client
//! connected to any replica (through any router) gets its events: no sticky
//! sessions. The tail knows where it stands in every partition: when its
//! broker connection fails it subscribes again from there
//! ([`Start::LiveFrom`]), so nothing published meanwhile is skipped.
//! Inside the replica one broadcast channel fans out to the
//! subscriptions; each has a bounded backlog, and a subscription that falls
//! further behind ends with an error instead of holding memory.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use shopgraph_core::metrics::GaugeGuard;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;

use super::outbox::Backoff;
use super::{CloudEvent, EventBus, Start, Subscription, Topic};

/// Events a subscription may fall behind by before it is ended.
pub const DEFAULT_BACKLOG: usize = 1024;

/// A subscription fell too far behind the live stream and was ended.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the subscription fell {0} events behind and was ended; resubscribe (with `after` where offered)"
)]
pub struct Lagged(pub u64);

/// The live events of one replica (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<CloudEvent>>,
}

impl Lagged {
    /// The GraphQL error a lagging subscriber ends with.
    pub fn to_graphql(self) -> async_graphql::Error {
        shopgraph_core::error::coded(
            shopgraph_core::error::ErrorCode::SubscriptionOverflow,
            self.to_string(),
        )
    }
}

impl LiveFeed {
    /// Starts tailing `topics` on `bus`; returns once the tail is in place
    /// (events published from now on are seen) with the [`Forwarder`] that
    /// must run (as a service job) to deliver them.
    pub async fn start(
        bus: &EventBus,
        topics: Vec<Topic>,
        backlog: usize,
    ) -> Result<(Self, Forwarder), super::BusError> {
        let (sender, _) = broadcast::channel(backlog.max(1));
        let subscription = bus.subscribe(&topics, Start::Live).await?;
        let feed = Self { sender };
        let forwarder = Forwarder {
            feed: feed.clone(),
            bus: bus.clone(),
            topics,
            subscription,
        };
        Ok((feed, forwarder))
    }

    /// How many subscriptions follow the feed right now: each stream from
    /// [`LiveFeed::events`] counts from the moment it is opened (events
    /// published after that reach it) until it is dropped.
    pub fn subscriptions(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Every live event from now on; `Err(Lagged)` once, then the end, if
    /// the subscriber falls more than the backlog behind.
    pub fn events(&self) -> Pin<Box<dyn Stream<Item = Result<Arc<CloudEvent>, Lagged>> + Send>> {
        let mut ended = false;
        // Counted while it exists: where a router's subscriptions are.
        let following = GaugeGuard::new(metrics::gauge!("subgraph_live_subscriptions"));
        BroadcastStream::new(self.sender.subscribe())
            .map(move |item| {
                let _counted = &following;
                item.map_err(|BroadcastStreamRecvError::Lagged(n)| Lagged(n))
            })
            .take_while(move |item| {
                let keep = !ended;
                ended |= item.is_err();
                futures::future::ready(keep)
            })
            .boxed()
    }
}

/// Moves events from the bus into a [`LiveFeed`].
pub struct Forwarder {
    feed: LiveFeed,
    bus: EventBus,
    topics: Vec<Topic>,
    subscription: Box<dyn Subscription>,
}

impl Forwarder {
    /// Forwards until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let Self {
            feed,
            bus,
            topics,
            mut subscription,
        } = self;
        let mut backoff = Backoff::default();
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => return,
                delivery = subscription.next() => delivery,
            };
            match delivery {
                Ok(delivery) => match delivery.event {
                    Ok(event) => {
                        // No subscriber is not an error: nobody is listening.
                        let _ = feed.sender.send(Arc::new(event));
                    }
                    Err(reason) => {
                        tracing::warn!(topic = %delivery.topic, %reason, "live feed skipped a malformed message");
                    }
                },
                Err(err) => {
                    // Where the tail stood, kept across failed attempts:
                    // the events published meanwhile are still delivered.
                    let from = subscription.position();
                    tracing::warn!(%err, "live feed cannot receive; retrying from where it stood");
                    if backoff.sleep(&stop).await {
                        return;
                    }
                    match bus.subscribe(&topics, Start::LiveFrom(from)).await {
                        Ok(again) => {
                            subscription = again;
                            backoff.reset();
                        }
                        Err(err) => tracing::warn!(%err, "live feed cannot subscribe again yet"),
                    }
                }
            }
        }
    }
}
