//! GraphQL shapes of the catalogue: the `Product` entity, inputs, enums and
//! the connection type.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use shopgraph_core::error::to_graphql;
use subgraph_kit::money::Money;

use crate::domain::{
    CursorPosition, ListQuery, NewProductInput, Page, Product, ProductFilter, ProductPatchInput,
    ProductSort as DomainSort,
};
use crate::store::ProductStore;

/// A product of the catalogue; other subgraphs reference it by `id`.
pub struct ProductNode(pub Product);

#[Object(name = "Product")]
impl ProductNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Unit price.
    async fn price(&self) -> Money {
        Money::new(self.0.price, self.0.currency.clone())
    }

    /// Units available to sell right now.
    async fn stock_quantity(&self) -> i32 {
        self.0.stock_quantity
    }

    async fn in_stock(&self) -> bool {
        self.0.in_stock()
    }

    async fn category(&self) -> &str {
        &self.0.category
    }

    async fn image_url(&self) -> Option<&str> {
        self.0.image_url.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Fields of a new product.
#[derive(InputObject)]
pub struct CreateProductInput {
    pub name: String,
    pub description: Option<String>,
    /// Unit price, at most two decimal places, not negative.
    pub price: Decimal,
    /// ISO 4217 code; the shop's default currency when omitted.
    pub currency: Option<String>,
    /// Initial stock, 0 when omitted.
    pub stock_quantity: Option<i32>,
    pub category: String,
    pub image_url: Option<String>,
}

impl From<CreateProductInput> for NewProductInput {
    fn from(input: CreateProductInput) -> Self {
        Self {
            name: input.name,
            description: input.description,
            price: input.price,
            currency: input.currency,
            stock_quantity: input.stock_quantity,
            category: input.category,
            image_url: input.image_url,
        }
    }
}

/// Changes to a product: omitted fields stay as they are; `null` clears
/// `description` and `imageUrl`.
#[derive(InputObject)]
pub struct UpdateProductInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub price: Option<Decimal>,
    pub currency: Option<String>,
    /// New absolute stock level (use `adjustStock` for relative changes).
    pub stock_quantity: Option<i32>,
    pub category: Option<String>,
    pub image_url: MaybeUndefined<String>,
}

fn patch_value<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

impl From<UpdateProductInput> for ProductPatchInput {
    fn from(input: UpdateProductInput) -> Self {
        Self {
            name: input.name,
            description: patch_value(input.description),
            price: input.price,
            currency: input.currency,
            stock_quantity: input.stock_quantity,
            category: input.category,
            image_url: patch_value(input.image_url),
        }
    }
}

/// Which products `products` returns; all conditions must hold.
#[derive(InputObject, Default)]
#[graphql(name = "ProductFilter")]
pub struct ProductFilterInput {
    /// Exact category name.
    pub category: Option<String>,
    /// Case-insensitive text found in the name or description.
    pub search: Option<String>,
    /// Lowest unit price, inclusive.
    pub min_price: Option<Decimal>,
    /// Highest unit price, inclusive.
    pub max_price: Option<Decimal>,
    /// Only products with stock (true) or sold out (false).
    pub in_stock: Option<bool>,
}

impl From<ProductFilterInput> for ProductFilter {
    fn from(input: ProductFilterInput) -> Self {
        Self {
            category: input.category,
            search: input.search,
            min_price: input.min_price,
            max_price: input.max_price,
            in_stock: input.in_stock,
        }
    }
}

/// Order of `products`.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSort {
    /// Alphabetical by name.
    Name,
    /// Cheapest first.
    Price,
    /// Most expensive first.
    PriceDesc,
    /// Most recently added first (the default).
    #[default]
    Newest,
}

impl From<ProductSort> for DomainSort {
    fn from(sort: ProductSort) -> Self {
        match sort {
            ProductSort::Name => Self::Name,
            ProductSort::Price => Self::Price,
            ProductSort::PriceDesc => Self::PriceDesc,
            ProductSort::Newest => Self::Newest,
        }
    }
}

/// Extra fields of `ProductConnection`, computed only when asked for.
pub struct ProductListTotals {
    query: ListQuery,
}

#[Object]
impl ProductListTotals {
    /// How many products match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        ctx.data_unchecked::<ProductStore>()
            .count(&self.query)
            .await
            .map_err(to_graphql)
    }
}

/// A page of products with Relay cursors.
pub type ProductConnection = Connection<String, ProductNode, ProductListTotals>;

/// Turns a store page into the GraphQL connection.
pub fn connection(query: ListQuery, page: Page) -> ProductConnection {
    let sort = query.sort;
    let has_previous_page = query.after.is_some();
    let mut connection = Connection::with_additional_fields(
        has_previous_page,
        page.has_next_page,
        ProductListTotals { query },
    );
    connection
        .edges
        .extend(page.items.into_iter().map(|product| {
            Edge::new(
                CursorPosition::of(&product, sort).encode(),
                ProductNode(product),
            )
        }));
    connection
}
