//! Checkout reservations of the product subgraph on its real stores:
//! PostgreSQL (production) and SQLite (embedded), a fresh database per test
//! from the subgraph kit's testkit. PostgreSQL must be reachable at
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! * [`store`] — reserve (all or nothing, each refusal, idempotent ids,
//!   the stock-3 / four-buyers-of-3 race), release, the sweeper, and the
//!   stock invariant after each;
//! * [`settlement`] — the payment events that sell or release a
//!   reservation, applied as the `product-stock` consumer applies them;
//! * [`graphql`] — `reserveStock` / `releaseStockReservation` through the
//!   subgraph's schema, their coded errors and their `@inaccessible` SDL.

mod common;
mod graphql;
mod settlement;
mod store;

/// Runs each listed `async fn(TempBackend)` as one test per backend.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(subgraph_kit::testkit::TempBackend::Postgres).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(subgraph_kit::testkit::TempBackend::Sqlite).await;
                }
            )+
        }
    };
}
pub(crate) use backend_tests;
