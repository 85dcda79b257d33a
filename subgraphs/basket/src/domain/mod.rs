//! Baskets and their rules, free of HTTP, GraphQL and SQL.
//!
//! A basket holds snapshots: the product's name and price as the product
//! subgraph reported them when the item was added or last changed. Totals
//! are computed here, in exact decimals, from those snapshots.

mod catalog;
mod checkout;
mod error;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use subgraph_kit::money::normalize;
use uuid::Uuid;

pub use subgraph_kit::clock::now;

pub use catalog::{CatalogProduct, CatalogUnavailable, ProductCatalog};
pub use checkout::{
    CheckoutLine, CheckoutLock, CheckoutRequest, MAX_CHECKOUT_LOCK, UncheckedLine, lines_match,
    validate_checkout,
};
pub use error::BasketError;

/// Most units of one product a basket may hold.
pub const MAX_QUANTITY: i32 = 999;

/// Whether a basket is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasketStatus {
    /// Changed within `BASKET_TTL`, or empty.
    Active,
    /// Holds items but was left untouched longer than `BASKET_TTL`.
    Abandoned,
}

impl BasketStatus {
    /// The stored form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Abandoned => "ABANDONED",
        }
    }

    /// Parses the stored form; unknown values read as active.
    pub fn parse(value: &str) -> Self {
        match value {
            "ABANDONED" => Self::Abandoned,
            _ => Self::Active,
        }
    }
}

/// One line of a basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketItem {
    /// The product (owned by the product subgraph).
    pub product_id: Uuid,
    /// Product name when the line was last priced.
    pub product_name: String,
    /// Product category when the line was last priced.
    pub category: String,
    /// Units, 1..=999.
    pub quantity: i32,
    /// Unit price when the line was last priced.
    pub unit_price: Decimal,
    /// Currency of `unit_price`.
    pub currency: String,
    /// When the product was first put in the basket.
    pub added_at: DateTime<Utc>,
}

impl BasketItem {
    /// `unit_price × quantity`, exact.
    pub fn subtotal(&self) -> Decimal {
        normalize(self.unit_price * Decimal::from(self.quantity))
    }
}

/// A user's basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    /// Stable id.
    pub id: Uuid,
    /// The owner.
    pub user_id: String,
    /// Active or abandoned.
    pub status: BasketStatus,
    /// Lines, oldest first.
    pub items: Vec<BasketItem>,
    /// The live checkout lock, if a payment is under way (an expired lock
    /// is never reported here).
    pub checkout: Option<CheckoutLock>,
    /// When the basket was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Basket {
    /// Units across all lines.
    pub fn item_count(&self) -> i32 {
        self.items.iter().map(|item| item.quantity).sum()
    }

    /// Sum of subtotals, exact.
    pub fn total(&self) -> Decimal {
        normalize(self.items.iter().map(BasketItem::subtotal).sum())
    }

    /// Whether a checkout holds the basket at `at`.
    pub fn checkout_in_progress(&self, at: DateTime<Utc>) -> bool {
        self.checkout.as_ref().is_some_and(|lock| lock.is_live(at))
    }

    /// The basket's currency: its items', or `default` while empty.
    pub fn currency<'a>(&'a self, default: &'a str) -> &'a str {
        self.items
            .first()
            .map_or(default, |item| item.currency.as_str())
    }
}

/// A quantity a client asked for, checked against 1..=999.
pub fn validate_quantity(quantity: i32) -> Result<i32, BasketError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(BasketError::Invalid {
            field: "quantity",
            reason: format!("must be between 1 and {MAX_QUANTITY}, got {quantity}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn item(price: &str, quantity: i32) -> BasketItem {
        BasketItem {
            product_id: Uuid::now_v7(),
            product_name: "x".into(),
            category: "c".into(),
            quantity,
            unit_price: Decimal::from_str(price).unwrap(),
            currency: "EUR".into(),
            added_at: now(),
        }
    }

    #[test]
    fn totals_are_exact() {
        let basket = Basket {
            id: Uuid::now_v7(),
            user_id: "u".into(),
            status: BasketStatus::Active,
            items: vec![item("0.10", 3), item("0.20", 1), item("19.99", 999)],
            checkout: None,
            created_at: now(),
            updated_at: now(),
        };
        assert_eq!(basket.total().to_string(), "19970.51");
        assert_eq!(basket.items[0].subtotal().to_string(), "0.30");
        assert_eq!(basket.item_count(), 1003);
        assert_eq!(basket.currency("USD"), "EUR");
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(validate_quantity(0).is_err());
        assert!(validate_quantity(1000).is_err());
        assert_eq!(validate_quantity(999).unwrap(), 999);
    }
}
