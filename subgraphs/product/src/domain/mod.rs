//! The catalogue's rules, free of HTTP, GraphQL and SQL.
//!
//! Input from any adapter becomes a validated [`NewProduct`] or
//! [`ProductPatch`] here before it reaches the store, so an invalid name,
//! price or stock level is refused the same way whoever sends it.

mod error;
mod product;
mod query;

pub use error::ProductError;
pub use product::{
    MAX_STOCK, NewProduct, NewProductInput, Product, ProductPatch, ProductPatchInput,
    StockAdjustment, parse_product_id, validate_stock_delta,
};
pub use query::{CursorPosition, ListQuery, Page, ProductFilter, ProductSort, SortKey};
pub(crate) use subgraph_kit::clock::now;
