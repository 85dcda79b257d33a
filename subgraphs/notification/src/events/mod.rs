//! The notification subgraph's events (the contract is in
//! `platform/subgraph-kit/src/events/README.md`), split by direction so the
//! store and the reactions do not depend on each other:
//!
//! * [`outgoing`] — what notification publishes: `NotificationCreated`,
//!   which the store writes to its outbox (the store imports this side
//!   only), and its reading back for the live `notificationAdded`;
//! * [`incoming`] — what notification does with other services' events:
//!   payment, basket and stock events become stored notifications through
//!   the store.

pub mod incoming;
pub mod outgoing;
