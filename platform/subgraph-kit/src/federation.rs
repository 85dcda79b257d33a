//! Federation types more than one subgraph declares.

use async_graphql::{ID, SimpleObject};

/// A product owned by the product subgraph, referenced by id from basket
/// and payment lines; the router fetches its fields from product.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
#[graphql(name = "Product", unresolvable = "id")]
pub struct ProductRef {
    /// The product's id.
    pub id: ID,
}

impl ProductRef {
    /// A reference to product `id`.
    pub fn new(id: impl ToString) -> Self {
        Self {
            id: ID(id.to_string()),
        }
    }
}

/// A payment owned by the payment subgraph, referenced by id (from a
/// notification about it); the router fetches its fields from payment.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
#[graphql(name = "Payment", unresolvable = "id")]
pub struct PaymentRef {
    /// The payment's id.
    pub id: ID,
}

impl PaymentRef {
    /// A reference to payment `id`.
    pub fn new(id: impl ToString) -> Self {
        Self {
            id: ID(id.to_string()),
        }
    }
}
