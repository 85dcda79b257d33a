//! # subgraph-kit
//!
//! What every Shopgraph subgraph needs and the router does not. A subgraph
//! crate brings its schema, its domain and its store; this crate brings the
//! rest (and [`shopgraph_core`] what every process shares):
//!
//! | module | what it gives a subgraph |
//! |---|---|
//! | [`settings`] | a subgraph's settings: listener, store, JWT policy, GraphQL limits, event bus |
//! | [`service`] | a subgraph's life: migrate, bind, serve, background jobs, stop |
//! | [`auth`] | the caller of a subgraph request (forwarded on a verified hop signature, or a direct token) and the resolver guards |
//! | [`graphql`] | serving an async-graphql schema over HTTP and websockets, the federated schema builder, `mirror_enum!` |
//! | [`subscriptions`] | the websocket server: many callers' subscriptions on one connection, each signed for its caller, resumable |
//! | [`db`] | opening a SeaORM pool for PostgreSQL, MariaDB or SQLite, with statement counting |
//! | [`migration`] | column helpers the migration sets share |
//! | [`events`] | the event bus (Kafka or in-process), CloudEvents, the transactional outbox, idempotent consumers, live fan-out |
//! | [`upstream`] | calling another subgraph's GraphQL API with the caller's credentials |
//! | [`metrics`] | what a subgraph records: GraphQL requests, statements, events |
//! | [`clock`] | the microsecond clock stores write with |
//! | [`cost`] | `@cost` and `@listSize`, the cost directives the router's complexity estimate reads |
//! | [`text_input`] | control characters refused in every text input, before execution (`BAD_USER_INPUT`) |
//! | [`money`], [`pagination`], [`federation`] | types shared across subgraphs |
//! | `testkit` (feature) | throw-away databases for tests and benchmarks |

pub mod auth;
pub mod clock;
pub mod cost;
pub mod db;
pub mod events;
pub mod federation;
pub mod graphql;
pub mod metrics;
pub mod migration;
pub mod money;
pub mod pagination;
pub mod service;
pub mod settings;
pub mod subscriptions;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod text_input;
pub mod upstream;
