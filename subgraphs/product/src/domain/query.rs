//! Listing products: filters, sorts and keyset cursors.
//!
//! Pages are keyset pages: a cursor holds the sort key and id of the last
//! row seen, so the next page is `WHERE (key, id) > (cursor)`; no OFFSET, so
//! deep pages cost the same as the first and concurrent inserts never
//! shift or repeat rows.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use subgraph_kit::pagination::{PageError, decode_cursor, encode_cursor, page_size};
use uuid::Uuid;

use super::{Product, ProductError};

const MAX_SEARCH_CHARS: usize = 200;

/// Which products to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Case-insensitive substring of name or description.
    pub search: Option<String>,
    /// Lowest price, inclusive.
    pub min_price: Option<Decimal>,
    /// Highest price, inclusive.
    pub max_price: Option<Decimal>,
    /// Only products with (true) or without (false) stock.
    pub in_stock: Option<bool>,
}

impl ProductFilter {
    /// Checks ranges and trims text; empty strings mean "no filter".
    pub fn validated(self) -> Result<Self, ProductError> {
        for (field, bound) in [
            ("filter.minPrice", self.min_price),
            ("filter.maxPrice", self.max_price),
        ] {
            if bound.is_some_and(|p| p.is_sign_negative() && !p.is_zero()) {
                return Err(ProductError::invalid(field, "must not be negative"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(ProductError::invalid(
                "filter.minPrice",
                "must not exceed filter.maxPrice",
            ));
        }
        let search = self
            .search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(ProductError::invalid(
                "filter.search",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        Ok(Self {
            category: self
                .category
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
            search,
            ..self
        })
    }
}

/// Order of a product listing; every order breaks ties by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductSort {
    /// Alphabetical by name.
    Name,
    /// Cheapest first.
    Price,
    /// Most expensive first.
    PriceDesc,
    /// Most recently created first.
    #[default]
    Newest,
}

/// The sort key value of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", content = "v")]
pub enum SortKey {
    /// For [`ProductSort::Name`].
    Name(String),
    /// For [`ProductSort::Price`] and [`ProductSort::PriceDesc`].
    Price(Decimal),
    /// For [`ProductSort::Newest`].
    CreatedAt(DateTime<Utc>),
}

/// Where a page ends: what a cursor encodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPosition {
    /// The order the cursor belongs to.
    pub sort: ProductSort,
    /// Sort key of the last row.
    pub key: SortKey,
    /// Id of the last row (tie-breaker).
    pub id: Uuid,
}

impl CursorPosition {
    /// The position of `product` in `sort` order.
    pub fn of(product: &Product, sort: ProductSort) -> Self {
        let key = match sort {
            ProductSort::Name => SortKey::Name(product.name.clone()),
            ProductSort::Price | ProductSort::PriceDesc => SortKey::Price(product.price),
            ProductSort::Newest => SortKey::CreatedAt(product.created_at),
        };
        Self {
            sort,
            key,
            id: product.id,
        }
    }

    /// The opaque cursor string.
    pub fn encode(&self) -> String {
        encode_cursor(self)
    }
}

/// A validated request for one page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// What to include.
    pub filter: ProductFilter,
    /// In which order.
    pub sort: ProductSort,
    /// Start after this position.
    pub after: Option<CursorPosition>,
    /// Page size, 0..=100.
    pub limit: u64,
}

impl ListQuery {
    /// Validates client arguments; a cursor must belong to the same sort.
    pub fn parse(
        first: Option<i32>,
        after: Option<&str>,
        filter: ProductFilter,
        sort: ProductSort,
    ) -> Result<Self, ProductError> {
        let limit = page_size(first)?;
        let after = after
            .map(|cursor| {
                let position: CursorPosition = decode_cursor(cursor)?;
                let key_matches = matches!(
                    (&position.key, sort),
                    (SortKey::Name(_), ProductSort::Name)
                        | (
                            SortKey::Price(_),
                            ProductSort::Price | ProductSort::PriceDesc
                        )
                        | (SortKey::CreatedAt(_), ProductSort::Newest)
                );
                if position.sort != sort || !key_matches {
                    return Err(PageError::MalformedCursor);
                }
                Ok(position)
            })
            .transpose()?;
        Ok(Self {
            filter: filter.validated()?,
            sort,
            after,
            limit,
        })
    }
}

/// One page of products.
#[derive(Debug, Clone)]
pub struct Page {
    /// The products, in order.
    pub items: Vec<Product>,
    /// Whether more products follow the last one.
    pub has_next_page: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_sort() {
        let position = CursorPosition {
            sort: ProductSort::Name,
            key: SortKey::Name("Mug".into()),
            id: Uuid::nil(),
        };
        let cursor = position.encode();
        let parsed = ListQuery::parse(
            Some(10),
            Some(&cursor),
            ProductFilter::default(),
            ProductSort::Name,
        )
        .unwrap();
        assert_eq!(parsed.after, Some(position));
        let err = ListQuery::parse(
            Some(10),
            Some(&cursor),
            ProductFilter::default(),
            ProductSort::Price,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ProductError::Page(PageError::MalformedCursor)
        ));
    }

    #[test]
    fn price_range_must_be_ordered() {
        let filter = ProductFilter {
            min_price: Some(Decimal::from(10)),
            max_price: Some(Decimal::from(5)),
            ..Default::default()
        };
        assert!(filter.validated().is_err());
    }
}
