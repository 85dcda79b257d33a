//! The event envelope: CloudEvents 1.0 in its JSON format.
//!
//! Every event Shopgraph publishes is one JSON object with the CloudEvents
//! context attributes (`specversion`, `id`, `source`, `type`, `time`,
//! `subject`, `datacontenttype`) and the event's own `data`. Consumers
//! de-duplicate by `id`; `subject` names the aggregate the event is about
//! (a payment, a product, a basket, a user) and is also the Kafka message
//! key, so one aggregate's events stay in order within a partition.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contract::{EventKind, UnknownEventKind};

/// The CloudEvents version this envelope follows.
pub const SPEC_VERSION: &str = "1.0";
/// The only content type Shopgraph puts in `data`.
pub const JSON: &str = "application/json";

/// One event, as it travels on the bus and sits in an outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique per event; the key consumers de-duplicate on.
    pub id: String,
    /// The producer, e.g. `/subgraphs/payment`.
    pub source: String,
    /// What happened, e.g. `PaymentCompleted` (see
    /// `platform/subgraph-kit/src/events/README.md`). Kept as the string
    /// the producer sent; [`CloudEvent::event_kind`] reads it as an
    /// [`EventKind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (the producer's commit time).
    pub time: DateTime<Utc>,
    /// The aggregate the event is about; also the partitioning key.
    pub subject: String,
    /// `application/json`.
    pub datacontenttype: String,
    /// The event's payload.
    pub data: serde_json::Value,
}

/// The event could not be read as the payload its type promises.
#[derive(Debug, thiserror::Error)]
#[error("event {id} ({kind}) has malformed data: {source}")]
pub struct MalformedEvent {
    /// The event id.
    pub id: String,
    /// The event type.
    pub kind: String,
    /// What did not match.
    #[source]
    pub source: serde_json::Error,
}

impl CloudEvent {
    /// A new event from `source` about `subject`, happening now, with a
    /// time-ordered id.
    pub fn new(
        source: &str,
        kind: &str,
        subject: impl Into<String>,
        data: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::now_v7().to_string(),
            source: source.to_owned(),
            kind: kind.to_owned(),
            time: crate::clock::now(),
            subject: subject.into(),
            datacontenttype: JSON.to_owned(),
            data: serde_json::to_value(data)?,
        })
    }

    /// What happened, typed: `Err` names a `type` this build does not know
    /// (consumers must decide what to do with it, not guess).
    pub fn event_kind(&self) -> Result<EventKind, UnknownEventKind> {
        EventKind::parse(&self.kind)
    }

    /// Whether this event is of `kind`.
    pub fn is(&self, kind: EventKind) -> bool {
        self.kind == kind.as_str()
    }

    /// The payload as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, MalformedEvent> {
        T::deserialize(&self.data).map_err(|source| MalformedEvent {
            id: self.id.clone(),
            kind: self.kind.clone(),
            source,
        })
    }

    /// The envelope as JSON bytes (what goes on the wire).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, a timestamp and a JSON value always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an envelope from the wire.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_as_cloudevents_json() {
        let event = CloudEvent::new(
            "/subgraphs/payment",
            "PaymentCompleted",
            "p-1",
            &json!({"x": 1}),
        )
        .unwrap();
        let wire: serde_json::Value = serde_json::from_slice(&event.to_bytes()).unwrap();
        assert_eq!(wire["specversion"], "1.0");
        assert_eq!(wire["type"], "PaymentCompleted");
        assert_eq!(wire["subject"], "p-1");
        assert_eq!(wire["datacontenttype"], "application/json");
        assert_eq!(wire["data"]["x"], 1);
        assert_eq!(CloudEvent::from_bytes(&event.to_bytes()).unwrap(), event);
    }

    #[test]
    fn the_type_reads_as_a_kind_or_as_unknown() {
        let known = CloudEvent::new("/s", "StockLow", "k", &json!({})).unwrap();
        assert_eq!(known.event_kind(), Ok(EventKind::StockLow));
        assert!(known.is(EventKind::StockLow));
        assert!(!known.is(EventKind::StockOut));

        let unknown = CloudEvent::new("/s", "StockReserved", "k", &json!({})).unwrap();
        assert_eq!(
            unknown.event_kind(),
            Err(UnknownEventKind("StockReserved".to_owned()))
        );
        assert!(EventKind::ALL.into_iter().all(|kind| !unknown.is(kind)));
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let event = CloudEvent::new("/s", "T", "k", &json!({"x": "no"})).unwrap();
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Expected {
            x: i32,
        }
        assert!(event.data::<Expected>().is_err());
    }
}
