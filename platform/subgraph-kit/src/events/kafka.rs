//! The Kafka adapter of the bus, on `rdkafka` (librdkafka).
//!
//! * producer: idempotent (`enable.idempotence`), `acks=all`, a bounded
//!   delivery timeout so a publish fails (and the outbox retries) instead
//!   of queueing forever while the broker is down;
//! * topics: created explicitly at start-up with the configured partitions
//!   and replication (brokers may forbid auto-creation), and again when a
//!   publish fails while the broker answers; the producer is then
//!   replaced, because a broker that lost its state (a storage-less test
//!   broker that restarted) has lost the idempotent producer's id too,
//!   and librdkafka would otherwise time out every later message;
//! * acknowledgements that crossed a lost connection are not trusted: a
//!   publish whose connection to the broker failed while it was in flight
//!   is reported failed even if librdkafka then counts it delivered, and
//!   the outbox sends it again (see [`ConnectionWatch`]);
//! * group consumers: offsets are *stored* only after the caller's
//!   transaction committed ([`Subscription::ack`]) and committed by
//!   librdkafka from there, so a crash replays at most the unacknowledged
//!   tail (which the inbox skips);
//! * live tails: every partition assigned at its end, without a group, so
//!   a new replica needs no rebalance to start seeing events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{
    BusError, CloudEvent, Delivery, KafkaSettings, Positions, Start, Subscription, Transport,
};

/// The Kafka transport (see the module docs).
pub struct KafkaTransport {
    settings: KafkaSettings,
    client_id: String,
    producer: RwLock<FutureProducer<ConnectionWatch>>,
    /// Shared by every producer this transport creates, so a renewal does
    /// not hide a loss from a publish that began on the old one.
    watch: ConnectionWatch,
    admin: AdminClient<DefaultClientContext>,
}

/// Counts the producer's lost broker connections.
///
/// Why: with the idempotent producer, librdkafka retries a batch whose
/// connection failed, and takes the broker's `DuplicateSequenceNumber`
/// answer to the retry as delivery. A Kafka broker records a batch and its
/// sequence number atomically, so that answer is true there; a broker that
/// records the sequence number first and dies before the batch (the test
/// broker does, at a `kill -9`) has lost a message it then acknowledges.
/// A publish that saw the count change between send and acknowledgement
/// is therefore reported failed and sent again: the cost is a duplicate
/// now and then, which every consumer's inbox drops by event id.
#[derive(Clone, Default)]
struct ConnectionWatch {
    losses: Arc<AtomicU64>,
}

impl ConnectionWatch {
    fn losses(&self) -> u64 {
        self.losses.load(Ordering::SeqCst)
    }
}

/// Whether a client-wide error means a broker connection dropped (with
/// whatever requests were in flight on it).
fn is_connection_loss(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::Global(
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

impl ClientContext for ConnectionWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_connection_loss(&error) {
            self.losses.fetch_add(1, Ordering::SeqCst);
            tracing::info!(%error, reason, "the Kafka producer lost a broker connection");
        } else {
            tracing::warn!(%error, reason, "Kafka producer error");
        }
    }
}

impl KafkaTransport {
    /// Clients for `settings.brokers`; nothing is contacted yet.
    pub fn new(settings: &KafkaSettings, client_id: &str) -> Result<Self, BusError> {
        let admin_error = |err: KafkaError| BusError::Admin(err.to_string());
        let watch = ConnectionWatch::default();
        let producer = producer(settings, client_id, &watch).map_err(admin_error)?;
        let admin = base_config(settings, client_id)
            .create()
            .map_err(admin_error)?;
        Ok(Self {
            settings: settings.clone(),
            client_id: client_id.to_owned(),
            producer: RwLock::new(producer),
            watch,
            admin,
        })
    }

    fn producer(&self) -> FutureProducer<ConnectionWatch> {
        self.producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the producer (a new producer id and sequence numbers).
    fn renew_producer(&self) {
        match producer(&self.settings, &self.client_id, &self.watch) {
            Ok(fresh) => {
                tracing::warn!("replacing the Kafka producer after a failed publish");
                *self
                    .producer
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
            }
            Err(err) => tracing::warn!(%err, "cannot create a new Kafka producer"),
        }
    }

    /// Creates missing topics; returns how many were missing.
    async fn create_topics(&self, topics: &[String]) -> Result<usize, BusError> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|err| BusError::Admin(err.to_string()))?;
        let mut created = 0;
        for result in results {
            match result {
                Ok(_) => created += 1,
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Admin(format!("{topic}: {code}")));
                }
            }
        }
        Ok(created)
    }

    fn consumer(
        &self,
        group: &str,
        topics: &[String],
        reset: &str,
    ) -> Result<StreamConsumer, BusError> {
        let consume_error = |err: KafkaError| BusError::Consume {
            topics: topics.join(","),
            reason: err.to_string(),
        };
        base_config(&self.settings, &self.client_id)
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            // Offsets are stored by `ack`, after the effect committed.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", reset)
            .set(
                "session.timeout.ms",
                self.settings.session_timeout.as_millis().to_string(),
            )
            .set("heartbeat.interval.ms", "1000")
            .create()
            .map_err(consume_error)
    }
}

/// Whether a failed publish calls for a new producer: only when the
/// producer cannot go on (a fatal error of the idempotent producer, or the
/// broker refusing its producer id or epoch) or the broker lost its state (`recreated_topics`: the publish's topic had to be
/// created again). Not when the broker is down (`None`) or answers but too
/// slowly: replacing the producer then throws away its connection and
/// queued messages, and against a broker slower than the publish timeout
/// every attempt would start from scratch and time out again — the relay
/// would never publish (found by the chaos suite's long run).
fn renew_after_failed_publish(recreated_topics: Option<usize>, cannot_go_on: bool) -> bool {
    cannot_go_on || recreated_topics.is_some_and(|created| created > 0)
}

/// Whether the broker refused the producer's identity (its producer id or
/// epoch): every later message of this producer is refused the same way,
/// and only a new producer, with a new id, gets past it. A broker that
/// restarted, or (the test broker) reassigned ids, answers so.
fn refuses_producer_identity(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerIdMapping
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
        )
    )
}

/// The idempotent, all-replicas-acknowledged producer, reporting lost
/// connections to `watch`.
fn producer(
    settings: &KafkaSettings,
    client_id: &str,
    watch: &ConnectionWatch,
) -> Result<FutureProducer<ConnectionWatch>, KafkaError> {
    base_config(settings, client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set(
            "message.timeout.ms",
            settings.publish_timeout.as_millis().to_string(),
        )
        .create_with_context(watch.clone())
}

fn base_config(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "2000");
    for (key, value) in &settings.client_properties {
        config.set(key, value);
    }
    config
}

impl Transport for KafkaTransport {
    fn ensure_topics<'a>(&'a self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.create_topics(topics).await.map(|_| ()) })
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        key: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let record = FutureRecord::to(topic).key(key).payload(&payload);
            let producer = self.producer();
            let losses_before = self.watch.losses();
            match producer.send(record, Duration::from_secs(0)).await {
                Ok(_) if self.watch.losses() == losses_before => Ok(()),
                Ok(_) => Err(BusError::Publish {
                    topic: topic.to_owned(),
                    reason: "the broker connection was lost while the message was in flight; \
                             its acknowledgement is not trusted and it is sent again"
                        .into(),
                }),
                Err((err, _)) => {
                    // A broker that lost its state (topics, producer ids)
                    // times messages out rather than saying so: if the
                    // topic had to be created again, start over with a new
                    // producer id too. A broker that is merely down or slow
                    // keeps this producer, whose queued messages librdkafka
                    // still delivers (see [`renew_after_failed_publish`]).
                    let recreated = self.create_topics(&[topic.to_owned()]).await;
                    if let Err(admin) = &recreated {
                        tracing::debug!(%admin, "the broker is unreachable after a failed publish");
                    }
                    let cannot_go_on = producer.client().fatal_error().is_some()
                        || refuses_producer_identity(&err);
                    if renew_after_failed_publish(recreated.ok(), cannot_go_on) {
                        self.renew_producer();
                    }
                    Err(BusError::Publish {
                        topic: topic.to_owned(),
                        reason: err.to_string(),
                    })
                }
            }
        })
    }

    fn subscribe<'a>(
        &'a self,
        topics: &'a [String],
        start: Start,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>> {
        Box::pin(async move {
            let consume_error = |err: KafkaError| BusError::Consume {
                topics: topics.join(","),
                reason: err.to_string(),
            };
            let subscription = match start {
                Start::Group(group) => {
                    // A new group reads what is retained.
                    let consumer = self.consumer(&group, topics, "earliest")?;
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    consumer.subscribe(&names).map_err(consume_error)?;
                    KafkaSubscription {
                        consumer: Some(consumer),
                        topics: topics.join(","),
                        grouped: true,
                        positions: Positions::new(),
                    }
                }
                Start::Live | Start::LiveFrom(_) => {
                    let from = match start {
                        Start::LiveFrom(from) => from,
                        _ => Positions::new(),
                    };
                    // The group id is required by librdkafka but never
                    // joined: partitions are assigned by hand. A position
                    // the broker no longer has (it lost its data) resumes
                    // at the end, never replays the retained past.
                    let group = format!("{}-live-{}", self.client_id, uuid::Uuid::now_v7());
                    let consumer = self.consumer(&group, topics, "latest")?;
                    let (consumer, positions) = tokio::task::spawn_blocking({
                        let topics = topics.to_vec();
                        move || assign_live(consumer, &topics, &from)
                    })
                    .await
                    .map_err(|err| BusError::Consume {
                        topics: topics.join(","),
                        reason: err.to_string(),
                    })?
                    .map_err(consume_error)?;
                    KafkaSubscription {
                        consumer: Some(consumer),
                        topics: topics.join(","),
                        grouped: false,
                        positions,
                    }
                }
            };
            Ok(Box::new(subscription) as Box<dyn Subscription>)
        })
    }
}

/// Assigns every partition of `topics` at its place in `from`, or at its
/// end (its high watermark, read now, so the tail knows its position from
/// the first moment); returns the positions it starts at (blocking:
/// metadata and watermarks).
fn assign_live(
    consumer: StreamConsumer,
    topics: &[String],
    from: &Positions,
) -> Result<(StreamConsumer, Positions), KafkaError> {
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut positions = Positions::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                let id = partition.id();
                let offset = match from.get(topic).and_then(|partitions| partitions.get(&id)) {
                    Some(&offset) => offset,
                    None => consumer.fetch_watermarks(topic, id, timeout)?.1,
                };
                assignment.add_partition_offset(topic, id, Offset::Offset(offset))?;
                positions
                    .entry(topic.clone())
                    .or_default()
                    .insert(id, offset);
            }
        }
    }
    consumer.assign(&assignment)?;
    Ok((consumer, positions))
}

struct KafkaSubscription {
    /// Always `Some` until dropped.
    consumer: Option<StreamConsumer>,
    topics: String,
    grouped: bool,
    /// A live tail's next offset per partition (empty for a group).
    positions: Positions,
}

impl KafkaSubscription {
    fn consumer(&self) -> Result<&StreamConsumer, BusError> {
        self.consumer.as_ref().ok_or_else(|| BusError::Consume {
            topics: self.topics.clone(),
            reason: "the consumer is closed".into(),
        })
    }
}

impl Subscription for KafkaSubscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        Box::pin(async move {
            let message = self
                .consumer()?
                .recv()
                .await
                .map_err(|err| BusError::Consume {
                    topics: self.topics.clone(),
                    reason: err.to_string(),
                })?;
            let event = match message.payload() {
                Some(bytes) => CloudEvent::from_bytes(bytes).map_err(|err| err.to_string()),
                None => Err("empty message".to_owned()),
            };
            let delivery = Delivery {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                event,
            };
            if !self.grouped
                && let Some(next) = self
                    .positions
                    .get_mut(&delivery.topic)
                    .and_then(|partitions| partitions.get_mut(&delivery.partition))
            {
                *next = delivery.offset + 1;
            }
            Ok(delivery)
        })
    }

    fn position(&self) -> Positions {
        self.positions.clone()
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        if !self.grouped {
            return Ok(());
        }
        self.consumer()?
            .store_offset(&delivery.topic, delivery.partition, delivery.offset)
            .map_err(|err| BusError::Consume {
                topics: self.topics.clone(),
                reason: err.to_string(),
            })
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (grouped, topics) = (self.grouped, std::mem::take(&mut self.topics));
        // Closing a consumer blocks (leaving the group, a final commit) and
        // can hang on an unreachable broker: do it off the async threads,
        // on a thread nothing waits for.
        let closing = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(move || {
                if grouped
                    && let Err(err) =
                        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
                {
                    tracing::debug!(%topics, %err, "final offset commit skipped");
                }
                drop(consumer);
            });
        if let Err(err) = closing {
            tracing::warn!(%err, "cannot start a thread to close a Kafka consumer");
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use std::time::Duration;

    use super::{
        ConnectionWatch, KafkaSettings, is_connection_loss, producer, refuses_producer_identity,
        renew_after_failed_publish,
    };

    #[test]
    fn a_producer_is_replaced_only_when_it_cannot_go_on_or_the_broker_lost_its_state() {
        // The broker answered and had to create the topic again: it lost
        // its state, producer ids included.
        assert!(renew_after_failed_publish(Some(1), false));
        // A fatal error of the idempotent producer, broker up or down.
        assert!(renew_after_failed_publish(Some(0), true));
        assert!(renew_after_failed_publish(None, true));
        // Down (no answer) or slow (the topic is there): keep the producer
        // and its queued messages.
        assert!(!renew_after_failed_publish(None, false));
        assert!(!renew_after_failed_publish(Some(0), false));
    }

    #[test]
    fn a_fenced_producer_cannot_go_on_but_a_timed_out_one_can() {
        let refused = |code| refuses_producer_identity(&KafkaError::MessageProduction(code));
        assert!(refused(RDKafkaErrorCode::ProducerFenced));
        assert!(refused(RDKafkaErrorCode::UnknownProducerId));
        assert!(refused(RDKafkaErrorCode::InvalidProducerEpoch));
        assert!(!refused(RDKafkaErrorCode::MessageTimedOut));
        assert!(!refused(RDKafkaErrorCode::AllBrokersDown));
        assert!(!refused(RDKafkaErrorCode::NotLeaderForPartition));
    }

    #[test]
    fn a_dropped_broker_connection_is_a_loss_but_a_refused_message_is_not() {
        assert!(is_connection_loss(&KafkaError::Global(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(is_connection_loss(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_connection_loss(&KafkaError::Global(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_connection_loss(&KafkaError::MessageProduction(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }

    /// Managed Kafka services want TLS with SASL; librdkafka refuses these
    /// settings when it was built without OpenSSL, so a client is made
    /// with each mechanism the README documents (nothing is contacted).
    #[test]
    fn tls_and_sasl_settings_are_accepted() {
        for (protocol, mechanism) in [
            ("ssl", None),
            ("sasl_ssl", Some("PLAIN")),
            ("sasl_ssl", Some("SCRAM-SHA-256")),
            ("sasl_ssl", Some("SCRAM-SHA-512")),
        ] {
            let mut client_properties = vec![("security.protocol".to_owned(), protocol.to_owned())];
            if let Some(mechanism) = mechanism {
                client_properties.extend([
                    ("sasl.mechanisms".to_owned(), mechanism.to_owned()),
                    ("sasl.username".to_owned(), "shop".to_owned()),
                    ("sasl.password".to_owned(), "secret".to_owned()),
                ]);
            }
            let settings = KafkaSettings {
                brokers: "127.0.0.1:9".into(),
                topic_prefix: String::new(),
                partitions: 1,
                replication: 1,
                session_timeout: Duration::from_secs(6),
                publish_timeout: Duration::from_secs(1),
                client_properties,
            };
            if let Err(err) = producer(&settings, "tls-test", &ConnectionWatch::default()) {
                panic!("{protocol} {mechanism:?}: {err}");
            }
        }
    }
}
