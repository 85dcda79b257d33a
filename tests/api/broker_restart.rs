//! A broker restart that is a real restart: the test broker keeps its data
//! in an S3 server of its own (`tests/kafka-broker.sh`), so a `kill -9` in
//! the middle of a stream loses what a Kafka broker restart would not —
//! topics, messages, a consumer group's committed offsets — only if the
//! broker does. A consumer resumes after its committed offset with nothing
//! lost, and the outbox relays publish what piled up while it was down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use subgraph_kit::events::contract::payment;
use subgraph_kit::events::{CloudEvent, Delivery, EventBus, Start, Subscription, Topic};
use tokio::time::Instant;

use crate::harness::wait_until;
use crate::helpers::{As, Backend};
use crate::live::Broker;
use crate::shop::Shop;

/// Events in the stream.
const TOTAL: usize = 120;
/// Published (and held) before the first consumer reads.
const FIRST_HALF: usize = 60;
/// How many the first consumer acknowledges before it goes away.
const FIRST_CONSUMER_ACKS: usize = 30;
/// The broker is killed after this many of the second half were published.
const KILL_AFTER: usize = 10;

fn numbered(n: usize) -> CloudEvent {
    // Subjects are the Kafka keys: spread over the topic's partitions.
    CloudEvent::new(
        "/tests/broker-restart",
        "test.Numbered",
        format!("key-{n}"),
        &json!({ "n": n }),
    )
    .expect("an event")
}

fn number_of(delivery: &Delivery) -> usize {
    let event = delivery.event.as_ref().expect("a CloudEvent, intact");
    event.data["n"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .expect("the event's number")
}

/// Publishes until the broker holds the event (it may be down meanwhile).
async fn publish_until_held(bus: &EventBus, event: &CloudEvent) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match bus.publish(Topic::Payment, event).await {
            Ok(()) => return,
            Err(err) => {
                assert!(Instant::now() < deadline, "never published: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn next(subscription: &mut Box<dyn Subscription>, what: &str) -> Delivery {
    tokio::time::timeout(Duration::from_secs(60), subscription.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|err| panic!("{what}: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_resumes_after_its_committed_offset_when_the_broker_is_killed_mid_stream() {
    let broker = Broker::start().await;
    let bus = broker.bus().await;
    for n in 0..FIRST_HALF {
        publish_until_held(&bus, &numbered(n)).await;
    }

    // The first consumer acknowledges a prefix of every partition it reads.
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    {
        let mut first = bus
            .subscribe(&[Topic::Payment], Start::Group("resume".into()))
            .await
            .expect("subscribed");
        while acked.len() < FIRST_CONSUMER_ACKS {
            let delivery = next(&mut first, "the first consumer's events").await;
            first.ack(&delivery).expect("acknowledged");
            acked.insert(number_of(&delivery));
            committed.insert(delivery.partition, delivery.offset + 1);
        }
        // librdkafka commits stored offsets every 500 ms, and once more
        // when the consumer closes.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The second half is published while the broker is killed and comes
    // back on its data. The kill falls between two publishes, so nothing
    // published before it may be sent twice (publishes in flight at a kill
    // are the next test's).
    let published = Arc::new(AtomicUsize::new(0));
    let (killed, on_kill) = tokio::sync::oneshot::channel::<()>();
    let producer = tokio::spawn({
        let (bus, published) = (bus.clone(), published.clone());
        async move {
            let mut on_kill = Some(on_kill);
            for n in FIRST_HALF..TOTAL {
                if n == FIRST_HALF + KILL_AFTER
                    && let Some(on_kill) = on_kill.take()
                {
                    on_kill.await.expect("the broker was killed");
                }
                publish_until_held(&bus, &numbered(n)).await;
                published.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    wait_until(
        "the second half is under way",
        Duration::from_secs(30),
        || {
            let published = published.clone();
            async move { published.load(Ordering::SeqCst) >= KILL_AFTER }
        },
    )
    .await;
    broker.kill().await;
    killed.send(()).expect("the producer waits");
    // Publishes now fail (the producer retries them) until it is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        published.load(Ordering::SeqCst),
        KILL_AFTER,
        "nothing is published while the broker is down"
    );
    broker.resume().await;
    producer.await.expect("the producer finished");

    // The same group, after the restart: it starts exactly after the
    // committed offsets and receives everything else, once.
    let mut second = bus
        .subscribe(&[Topic::Payment], Start::Group("resume".into()))
        .await
        .expect("subscribed again");
    let mut first_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut missing: BTreeSet<usize> = (0..TOTAL).filter(|n| !acked.contains(n)).collect();
    while !missing.is_empty() {
        let delivery = next(
            &mut second,
            &format!(
                "{} events after the restart: {missing:?} (committed {committed:?}, \
                 resumed at {first_offsets:?})",
                missing.len()
            ),
        )
        .await;
        first_offsets
            .entry(delivery.partition)
            .or_insert(delivery.offset);
        let n = number_of(&delivery);
        missing.remove(&n);
        *seen.entry(n).or_default() += 1;
        second.ack(&delivery).expect("acknowledged");
    }

    for (partition, offset) in &first_offsets {
        assert_eq!(
            *offset,
            committed.get(partition).copied().unwrap_or(0),
            "partition {partition} resumes right after its committed offset \
             (committed {committed:?}, resumed at {first_offsets:?})"
        );
    }
    let redelivered: Vec<_> = seen.keys().filter(|n| acked.contains(n)).collect();
    assert!(
        redelivered.is_empty(),
        "acknowledged before the restart, delivered again: {redelivered:?}"
    );
    // Only a publish the broker may have stored just before it died can be
    // sent twice (at least once); nothing held before the kill is.
    let duplicated: Vec<_> = seen
        .iter()
        .filter(|(n, count)| **count > 1 && **n < FIRST_HALF)
        .collect();
    assert!(
        duplicated.is_empty(),
        "duplicated from before the kill: {duplicated:?}"
    );
}

/// The id of a payment `Shop::buy` returned.
fn paid_id(payment: serde_json::Value) -> String {
    payment["id"]
        .as_str()
        .map(str::to_owned)
        .expect("a payment id")
}

/// Whether `who`'s basket is held by a checkout whose outcome basket has
/// not heard of yet.
async fn checkout_in_progress(shop: &Shop, who: As) -> bool {
    let basket = shop
        .gql(who, "{ myBasket { checkoutInProgress } }", json!({}))
        .await;
    basket.data()["myBasket"]["checkoutInProgress"]
        .as_bool()
        .unwrap_or_else(|| panic!("a basket: {}", basket.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_while_the_broker_is_killed_are_published_when_it_restarts_on_its_data() {
    let broker = Broker::start().await;
    let shop = Shop::spawn_on(broker.bus().await, Backend::Postgres).await;
    let (product_id, _, stock) = shop.stocked_product(3).await;
    // Stock leaves at checkout (the reservation); the basket is released by
    // `PaymentCompleted` coming back through the broker, so the basket is
    // what shows that events flow.
    let before = paid_id(shop.buy(As::User, &product_id, 1, "before-kill").await);
    assert_eq!(shop.stock_of(&product_id).await, stock - 1);
    wait_until(
        "the first checkout's basket is released",
        Duration::from_secs(30),
        || async { !checkout_in_progress(&shop, As::User).await },
    )
    .await;

    broker.kill().await;
    // Checkout needs no broker: the events wait in payment's outbox. Two
    // shoppers, as each basket stays held until its event arrives.
    let down: Vec<String> = vec![
        paid_id(shop.buy(As::User, &product_id, 1, "while-down-1").await),
        paid_id(
            shop.buy(As::OtherUser, &product_id, 1, "while-down-2")
                .await,
        ),
    ];
    // Long enough for publishes to fail and the relays to back off.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(shop.stock_of(&product_id).await, stock - 3);
    for who in [As::User, As::OtherUser] {
        assert!(
            checkout_in_progress(&shop, who).await,
            "no event can have released the basket while the broker is down"
        );
    }
    broker.resume().await;

    // Basket's consumer group resumes after its committed offset: both
    // checkouts made while down are settled; product's settles them too and
    // takes nothing more (their units left at reservation).
    wait_until(
        "both baskets held while down are released",
        Duration::from_secs(60),
        || async {
            !checkout_in_progress(&shop, As::User).await
                && !checkout_in_progress(&shop, As::OtherUser).await
        },
    )
    .await;
    assert_eq!(shop.stock_of(&product_id).await, stock - 3);

    // The topic still holds what was published before the kill: a new
    // group reading from the start finds all three completions, each once.
    let mut audit = shop
        .bus
        .subscribe(&[Topic::Payment], Start::Group("audit".into()))
        .await
        .expect("subscribed");
    let wanted: BTreeSet<String> = down.iter().chain([&before]).cloned().collect();
    let mut completed: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed.len() < wanted.len() {
        let delivery = tokio::time::timeout_at(deadline, audit.next())
            .await
            .unwrap_or_else(|_| panic!("completions on the topic: {completed:?} of {wanted:?}"))
            .expect("a delivery");
        let Ok(event) = delivery.event else { continue };
        if event.kind == payment::COMPLETED && wanted.contains(&event.subject) {
            *completed.entry(event.subject.clone()).or_default() += 1;
        }
    }
    // Anything still to come is a second copy of one already seen.
    while let Ok(Ok(delivery)) = tokio::time::timeout(Duration::from_secs(2), audit.next()).await {
        if let Ok(event) = delivery.event
            && event.kind == payment::COMPLETED
            && let Some(count) = completed.get_mut(&event.subject)
        {
            *count += 1;
        }
    }
    // Held by the broker before the kill: there exactly once (not lost,
    // not published again). Those sent after the restart are there (the
    // loop above waited for them), at least once: a publish whose
    // acknowledgement was lost is repeated.
    assert_eq!(completed.get(&before), Some(&1), "{completed:?}");
}

/// Publishers that keep this many events in flight at once, so a `kill -9`
/// always lands on batches the broker has not answered yet.
const IN_FLIGHT: usize = 24;
/// Events each publisher sends.
const PER_PUBLISHER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_in_flight_when_the_broker_is_killed_are_not_lost() {
    // The test broker can acknowledge a retried batch it never stored (it
    // records the producer's sequence number before the batch, see
    // `tests/kafka-broker.sh`); the Kafka adapter does not trust an
    // acknowledgement that crossed a lost connection, and publishing
    // until held sends such an event again.
    let broker = Broker::start().await;
    let bus = broker.bus().await;
    let published = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..IN_FLIGHT)
        .map(|publisher| {
            let (bus, published) = (bus.clone(), published.clone());
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    publish_until_held(&bus, &numbered(publisher * PER_PUBLISHER + i)).await;
                    published.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let total = IN_FLIGHT * PER_PUBLISHER;
    for kill in 1..=3 {
        let under_way = total * kill / 4;
        wait_until("publishing is under way", Duration::from_secs(60), || {
            let published = published.clone();
            async move { published.load(Ordering::SeqCst) >= under_way }
        })
        .await;
        broker.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        broker.resume().await;
    }
    for publisher in publishers {
        publisher.await.expect("a publisher finished");
    }

    let mut audit = bus
        .subscribe(&[Topic::Payment], Start::Group("audit".into()))
        .await
        .expect("subscribed");
    let mut missing: BTreeSet<usize> = (0..total).collect();
    while !missing.is_empty() {
        let delivery = next(
            &mut audit,
            &format!(
                "{} acknowledged events, lost by the broker: {missing:?}",
                missing.len()
            ),
        )
        .await;
        missing.remove(&number_of(&delivery));
    }
}

/// A replica's live tail (the feed its subscriptions follow) keeps its
/// place across a broker restart: every event published after the tail
/// started reaches its followers, those published right after the broker
/// came back included (a tail that started again "at the end" would drop
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_tail_misses_nothing_across_a_broker_restart() {
    use futures::StreamExt;
    use subgraph_kit::events::live::LiveFeed;

    const BEFORE: usize = 20;
    const AFTER: usize = 60;
    let broker = Broker::start().await;
    let bus = broker.bus().await;
    let (feed, forwarder) = LiveFeed::start(&bus, vec![Topic::Payment], 1024)
        .await
        .expect("the tail starts");
    let stop = tokio_util::sync::CancellationToken::new();
    let forwarding = tokio::spawn(forwarder.run(stop.clone()));
    let mut followed = feed.events();
    let received = tokio::spawn(async move {
        let mut numbers = BTreeSet::new();
        while numbers.len() < BEFORE + AFTER {
            let event = tokio::time::timeout(Duration::from_secs(60), followed.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "stalled with {} of {} events",
                        numbers.len(),
                        BEFORE + AFTER
                    )
                })
                .expect("the feed goes on")
                .expect("no lag");
            let n = event.data["n"].as_u64().expect("numbered");
            numbers.insert(usize::try_from(n).expect("small"));
        }
        numbers
    });
    for n in 0..BEFORE {
        publish_until_held(&bus, &numbered(n)).await;
    }
    broker.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.resume().await;
    for n in BEFORE..BEFORE + AFTER {
        publish_until_held(&bus, &numbered(n)).await;
    }
    let numbers = received.await.expect("the follower");
    assert_eq!(numbers, (0..BEFORE + AFTER).collect::<BTreeSet<_>>());
    stop.cancel();
    forwarding.await.expect("the forwarder stops");
}
