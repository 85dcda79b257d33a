//! # shopgraph-router
//!
//! The router composes product, basket, payment and notification into one
//! GraphQL API. This crate grows stage by stage (see the router issue);
//! today it holds the planning stage:
//!
//! * [`planner`] — loads the supergraph (`schema/supergraph.graphql`),
//!   validates operations against the public API schema, normalizes and
//!   plans them with `hive-router-query-planner`, and caches plans.
//!
//! The HTTP front, the executor (fetch, entity batching, response
//! projection) and traffic management come next.

pub mod planner;
