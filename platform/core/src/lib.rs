//! # shopgraph-core
//!
//! What every Shopgraph process needs, router and subgraphs alike, written
//! once. It knows nothing of stores or event buses, so the router builds
//! without SeaORM, sqlx or librdkafka; what only subgraphs need is in the
//! `subgraph-kit` crate beside this one.
//!
//! | module | what it gives a process |
//! |---|---|
//! | [`config`] | typed reads of environment variables with errors that name the variable, and the reference of every variable |
//! | [`settings`] | the settings every process shares: listener, run mode, the JWT secret's rules |
//! | [`error`] | the `extensions.code` vocabulary and error-chain formatting for logs |
//! | [`identity`] | who is calling: [`identity::Identity`], the router → subgraph identity hop, and the one JWT verifier |
//! | [`hop`] | the signed hop: RFC 9421 signatures on every router → subgraph and subgraph → subgraph request, its keys and replay guard |
//! | [`graphql_http`] | GraphQL over HTTP: reading GET/POST requests, GraphiQL, content negotiation, coded error bodies |
//! | [`graphiql`] | the GraphiQL page and its bundled files (`web-demo/graphiql/`), served from each server's own origin |
//! | [`static_files`] | answering a file compiled into the binary: content type, `ETag`/304, caching, CSP |
//! | [`server`] | the middleware every request passes, binding, graceful serving |
//! | [`health`] | `/health`, `/health/live`, `/health/ready` |
//! | [`metrics`] | the Prometheus registry behind `/metrics` |
//! | [`telemetry`] | `tracing` logs (JSON or human), OTLP trace export, trace-context propagation |
//! | [`shutdown`] | SIGINT/SIGTERM handling |
//! | [`backoff`] | jittered exponential backoff for reconnecting loops |

pub mod backoff;
pub mod config;
pub mod error;
pub mod graphiql;
pub mod graphql_http;
pub mod health;
pub mod hop;
pub mod identity;
pub mod metrics;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod static_files;
pub mod telemetry;
