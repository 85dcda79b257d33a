//! Integration tests: real subgraphs on real stores (PostgreSQL and
//! SQLite), driven over HTTP. PostgreSQL must be reachable at
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! `tests/run.sh` makes sure it is.

#[path = "../common/broker.rs"]
mod broker;
#[path = "../common/migrate.rs"]
mod migrate;
#[path = "../common/telemetry.rs"]
mod telemetry;

mod harness;
mod helpers;

mod authorization;
mod authorization_matrix;
mod basket;
mod broker_restart;
mod checkout;
mod cli;
mod config_reference;
mod events;
mod fault_proxy;
mod hostile_input;
mod identity_hop;
mod kafka_tls;
mod live;
mod multipart;

mod notification;
mod payment;
mod product_auth;
mod product_crud;
mod product_entities;
mod product_http;
mod product_listing;
mod product_reservations;
mod product_stock;
mod product_store_lifecycle;
mod product_validation;
mod query_plans;
mod router;
mod shop;
mod text_inputs;
mod traffic;
mod upstream_subscriptions;
