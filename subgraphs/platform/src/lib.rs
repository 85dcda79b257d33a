//! # shopgraph-platform
//!
//! What every Shopgraph service needs, written once. A subgraph crate brings
//! its schema and its store; this crate brings the rest:
//!
//! | module | what it gives a service |
//! |---|---|
//! | [`config`] | typed reads of environment variables with errors that name the variable |
//! | [`settings`] | the settings all services share (port, store, JWT, limits) |
//! | [`telemetry`] | `tracing` logs (JSON or human) and OTLP trace export |
//! | [`migration`] | column helpers the migration sets share |
//! | [`metrics`] | the Prometheus registry behind `/metrics` |
//! | [`events`] | the event bus (Kafka or in-process), CloudEvents, the transactional outbox, idempotent consumers, live fan-out |
//! | [`db`] | opening a SeaORM pool for PostgreSQL, MariaDB or SQLite, with statement counting |
//! | [`health`] | `/health`, `/health/live`, `/health/ready` |
//! | [`identity`] | who is calling: JWT verification into a `Viewer` |
//! | [`graphql`] | GraphQL over HTTP (POST, GET for queries, GraphiQL), the federated schema builder, `mirror_enum!` |
//! | [`server`] | the common middleware stack and graceful serving |
//! | [`service`] | a subgraph's life: migrate, bind, serve, background jobs, stop |
//! | [`shutdown`] | SIGINT/SIGTERM handling |
//! | [`upstream`] | calling another subgraph's GraphQL API with the caller's credentials |
//! | [`error`] | the `extensions.code` vocabulary |
//! | [`clock`] | the microsecond clock stores write with |
//! | [`money`], [`pagination`], [`federation`] | types shared across subgraphs |
//! | `testkit` (feature) | throw-away databases for tests and benchmarks |
//!
//! It lives under `subgraphs/` because the subgraphs are its main users; the
//! router uses the parts that are not GraphQL-serving specific.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod federation;
pub mod graphql;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod migration;
pub mod money;
pub mod pagination;
pub mod server;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod upstream;
