//! The payment subgraph's events (the contract is in
//! `platform/subgraph-kit/src/events/README.md`).
//!
//! * [`outgoing`] — what payment publishes: the payment events the store
//!   writes to its outbox (the store imports this side only).
//!
//! Payment reacts to no other service's events, so it has no `incoming`
//! side and no consumer group; its only reader of events is the live feed
//! of its own `payment-events` behind `paymentStatusChanged`
//! ([`crate::graphql`]).

pub mod outgoing;
