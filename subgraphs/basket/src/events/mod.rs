//! The basket subgraph's events (the contract is in
//! `platform/subgraph-kit/src/events/README.md`), split by direction so the
//! store and the reactions do not depend on each other:
//!
//! * [`outgoing`] — what basket publishes: `BasketCleared` and
//!   `BasketAbandoned`, which the store writes to its outbox (the store
//!   imports this side only);
//! * [`incoming`] — what basket does with other services' events: the
//!   checkout settlement on payment outcomes, which calls the store.

pub mod incoming;
pub mod outgoing;
