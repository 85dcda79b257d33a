//! The product subgraph's events (the contract is in
//! `platform/subgraph-kit/src/events/README.md`), split by direction so the
//! store and the reactions do not depend on each other:
//!
//! * [`outgoing`] — what product publishes: the stock events the store
//!   writes to its outbox with each stock change (the store imports this
//!   side only);
//! * [`incoming`] — what product does with other services' events: checkout
//!   reservations sold or released by the payment's outcome, through the
//!   store.

pub mod incoming;
pub mod outgoing;
