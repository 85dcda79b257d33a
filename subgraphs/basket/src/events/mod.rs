//! The basket subgraph's events: [`outgoing`] for now; the next commit
//! splits out the incoming side.

pub mod outgoing;
