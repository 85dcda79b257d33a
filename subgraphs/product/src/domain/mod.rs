//! The catalogue's rules, free of HTTP, GraphQL and SQL.
//!
//! Input from any adapter becomes a validated [`NewProduct`] or
//! [`ProductPatch`] here before it reaches the store, so an invalid name,
//! price or stock level is refused the same way whoever sends it; a
//! checkout's reservation request becomes a [`NewReservation`] the same way.

mod error;
mod product;
mod query;
mod reservation;

pub use error::ProductError;
pub use product::{
    MAX_STOCK, NewProduct, NewProductInput, Product, ProductPatch, ProductPatchInput,
    StockAdjustment, parse_product_id, validate_stock_delta,
};
pub use query::{CursorPosition, ListQuery, Page, ProductFilter, ProductSort, SortKey};
pub use reservation::{
    MAX_RESERVATION_LINES, MAX_RESERVATION_QUANTITY, NewReservation, PriceChange, ReleaseOutcome,
    RequestedLine, ReservationInput, ReservationLineInput, ReservationStatus, ReservedLine,
    SaleOutcome, Shortage, StockReservation, UnavailableLine, max_reservation_ttl,
};
pub(crate) use subgraph_kit::clock::now;
