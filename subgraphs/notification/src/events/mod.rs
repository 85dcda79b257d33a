//! The notification subgraph's events: [`incoming`] for now; the next
//! commit splits out the outgoing side.

pub mod incoming;
