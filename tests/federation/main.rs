//! The router's federation suite: small in-memory fixture subgraphs
//! (`fixtures/`), composed into `supergraph.graphql`, behind a real router
//! per test, checking the cases a Federation v2 gateway must get right —
//! entity fetches, `@requires`/`@provides`/`@override`/`@shareable`/
//! `@inaccessible`, entity interfaces and interface objects, unions,
//! fragments, directives, null propagation, subgraph errors and outages,
//! and serial mutations. Needs no database.
//!
//! After changing a fixture: `FEDERATION_FIXTURES_WRITE=1 cargo test --test
//! federation fixture_sdl`, then `node tests/federation/compose.mjs`.

#[path = "../common/telemetry.rs"]
mod telemetry;

mod fixtures;
mod harness;

mod abstract_types;
mod directives;
mod entities;
mod errors;
mod mutations;
mod operations;
mod subgraph_fixtures;
