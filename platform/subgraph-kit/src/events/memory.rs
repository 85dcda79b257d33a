//! The in-process bus: one append-only log per topic, with Kafka's
//! consumer semantics, for `shopgraph dev` and unit tests.
//!
//! * one partition per topic, so order is total (stronger than per key);
//! * a group resumes after its last acknowledged offset; a new group
//!   starts from the earliest retained event; a live tail starts at the end;
//! * an event is kept until every durable group has acknowledged it and
//!   every live tail has read it, so the log does not grow without bound
//!   while consumers keep up.
//!
//! It lives and dies with the process: production uses Kafka.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::{BusError, CloudEvent, Delivery, Positions, Start, Subscription, Transport};

/// The in-process transport (see the module docs).
#[derive(Default)]
pub struct MemoryTransport {
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
}

#[derive(Default)]
struct State {
    logs: HashMap<String, Log>,
}

#[derive(Default)]
struct Log {
    /// Offset of `records[0]`.
    base: i64,
    records: VecDeque<Arc<[u8]>>,
    /// Durable groups and live tails, and the next offset each will read.
    groups: HashMap<String, i64>,
}

impl Log {
    fn end(&self) -> i64 {
        self.base + self.records.len() as i64
    }

    fn get(&self, offset: i64) -> Option<Arc<[u8]>> {
        let index = usize::try_from(offset - self.base).ok()?;
        self.records.get(index).cloned()
    }

    /// Drops what every group and tail is done with. Until a durable group
    /// reads a topic, its last [`UNCLAIMED_RETENTION`] events are kept for
    /// the consumer that has not subscribed yet (start-up order).
    fn trim(&mut self) {
        let end = self.end();
        let durable = self
            .groups
            .iter()
            .filter(|(name, _)| !name.starts_with(LIVE_PREFIX))
            .map(|(_, offset)| *offset)
            .min()
            .unwrap_or(end - UNCLAIMED_RETENTION);
        let live = self
            .groups
            .iter()
            .filter(|(name, _)| name.starts_with(LIVE_PREFIX))
            .map(|(_, offset)| *offset)
            .min()
            .unwrap_or(end);
        let keep_from = durable.min(live);
        while self.base < keep_from && self.records.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// Events kept per topic that no durable group reads yet.
const UNCLAIMED_RETENTION: i64 = 10_000;
/// Names of live tails among a log's readers.
const LIVE_PREFIX: &str = "\u{0}live-";

impl MemoryTransport {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the log consistent (every
    // mutation is a single push/pop/insert), so poisoning is ignored.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Transport for MemoryTransport {
    fn ensure_topics<'a>(&'a self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        let mut state = self.state();
        for topic in topics {
            state.logs.entry(topic.clone()).or_default();
        }
        Box::pin(async { Ok(()) })
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        _key: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        {
            let mut state = self.state();
            let log = state.logs.entry(topic.to_owned()).or_default();
            log.records.push_back(payload.into());
            log.trim();
        }
        self.appended.notify_waiters();
        Box::pin(async { Ok(()) })
    }

    fn subscribe<'a>(
        &'a self,
        topics: &'a [String],
        start: Start,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>> {
        let mut state = self.state();
        let (group, live, from) = match start {
            Start::Group(group) => (group, false, Positions::new()),
            Start::Live => (
                format!("{LIVE_PREFIX}{}", uuid::Uuid::now_v7()),
                true,
                Positions::new(),
            ),
            Start::LiveFrom(from) => (format!("{LIVE_PREFIX}{}", uuid::Uuid::now_v7()), true, from),
        };
        let positions = topics
            .iter()
            .map(|topic| {
                let log = state.logs.entry(topic.clone()).or_default();
                // One partition per topic here: 0.
                let start = match from.get(topic).and_then(|partitions| partitions.get(&0)) {
                    Some(&position) => position.max(log.base),
                    None if live => log.end(),
                    None => log.base,
                };
                (
                    topic.clone(),
                    *log.groups.entry(group.clone()).or_insert(start),
                )
            })
            .collect();
        let subscription = MemorySubscription {
            state: self.state.clone(),
            appended: self.appended.clone(),
            positions,
            group,
            live,
        };
        Box::pin(async move { Ok(Box::new(subscription) as Box<dyn Subscription>) })
    }
}

struct MemorySubscription {
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
    /// Next offset to hand out, per topic.
    positions: Vec<(String, i64)>,
    group: String,
    /// A live tail: reading is acknowledging, and it leaves on drop.
    live: bool,
}

impl MemorySubscription {
    fn poll_once(&mut self) -> Option<Delivery> {
        let mut state = lock(&self.state);
        for (topic, position) in &mut self.positions {
            let Some(log) = state.logs.get_mut(topic.as_str()) else {
                continue;
            };
            *position = (*position).max(log.base);
            if let Some(bytes) = log.get(*position) {
                if self.live {
                    log.groups.insert(self.group.clone(), *position + 1);
                    log.trim();
                }
                let delivery = Delivery {
                    topic: topic.clone(),
                    partition: 0,
                    offset: *position,
                    event: CloudEvent::from_bytes(&bytes).map_err(|err| err.to_string()),
                };
                *position += 1;
                return Some(delivery);
            }
        }
        None
    }
}

impl Subscription for MemorySubscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        Box::pin(async move {
            loop {
                let appended = self.appended.clone();
                let notified = appended.notified();
                tokio::pin!(notified);
                // Register before looking, so an append in between wakes us.
                notified.as_mut().enable();
                if let Some(delivery) = self.poll_once() {
                    return Ok(delivery);
                }
                notified.await;
            }
        })
    }

    fn position(&self) -> Positions {
        if !self.live {
            return Positions::new();
        }
        self.positions
            .iter()
            .map(|(topic, next)| (topic.clone(), [(0, *next)].into()))
            .collect()
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        if self.live {
            return Ok(());
        }
        let mut state = lock(&self.state);
        if let Some(log) = state.logs.get_mut(&delivery.topic) {
            let committed = log.groups.entry(self.group.clone()).or_insert(0);
            *committed = (*committed).max(delivery.offset + 1);
            log.trim();
        }
        Ok(())
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if self.live {
            let mut state = lock(&self.state);
            for (topic, _) in &self.positions {
                if let Some(log) = state.logs.get_mut(topic.as_str()) {
                    log.groups.remove(&self.group);
                    log.trim();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;
    use crate::events::Topic;
    use serde_json::json;
    use std::time::Duration;

    fn event(n: i32) -> CloudEvent {
        CloudEvent::new("/test", "Tested", format!("k{n}"), &json!({ "n": n })).unwrap()
    }

    async fn next_n(sub: &mut Box<dyn Subscription>) -> i64 {
        let delivery = tokio::time::timeout(Duration::from_secs(2), sub.next())
            .await
            .expect("a delivery")
            .unwrap();
        delivery.event.unwrap().data::<serde_json::Value>().unwrap()["n"]
            .as_i64()
            .unwrap()
    }

    #[tokio::test]
    async fn a_group_resumes_after_its_last_ack_and_a_live_tail_sees_only_new_events() {
        let bus = EventBus::in_process();
        bus.ensure_topics().await.unwrap();
        let mut group = bus
            .subscribe(&[Topic::Payment], Start::Group("g".into()))
            .await
            .unwrap();
        for n in 0..3 {
            bus.publish(Topic::Payment, &event(n)).await.unwrap();
        }
        let mut live = bus.subscribe(&[Topic::Payment], Start::Live).await.unwrap();
        bus.publish(Topic::Payment, &event(3)).await.unwrap();

        assert_eq!(next_n(&mut group).await, 0);
        let second = group.next().await.unwrap();
        group.ack(&second).unwrap();
        drop(group);
        assert_eq!(next_n(&mut live).await, 3);

        // The restarted group resumes after offset 1: no loss, no repeat.
        let mut again = bus
            .subscribe(&[Topic::Payment], Start::Group("g".into()))
            .await
            .unwrap();
        assert_eq!(next_n(&mut again).await, 2);
        assert_eq!(next_n(&mut again).await, 3);
    }

    #[tokio::test]
    async fn acknowledged_events_are_released() {
        let transport = MemoryTransport::default();
        let topics = vec!["t".to_owned()];
        transport.ensure_topics(&topics).await.unwrap();
        let mut sub = transport
            .subscribe(&topics, Start::Group("g".into()))
            .await
            .unwrap();
        for n in 0..10 {
            transport
                .publish("t", "k", event(n).to_bytes())
                .await
                .unwrap();
        }
        for _ in 0..10 {
            let delivery = sub.next().await.unwrap();
            sub.ack(&delivery).unwrap();
        }
        assert_eq!(transport.state().logs["t"].records.len(), 0);
    }
}
