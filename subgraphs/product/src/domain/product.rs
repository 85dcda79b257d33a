//! A product and the validated inputs that create or change one.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use subgraph_kit::money::{MONEY_SCALE, is_currency_code, normalize};
use uuid::Uuid;

use subgraph_kit::clock::now;

use super::ProductError;

/// Highest stock level stored; keeps `stock + delta` far from `i32` overflow.
pub const MAX_STOCK: i32 = 1_000_000_000;
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 5_000;
const MAX_CATEGORY_CHARS: usize = 100;
const MAX_IMAGE_URL_CHARS: usize = 2_048;

/// The largest price a `NUMERIC(12, 2)` column holds.
fn max_price() -> Decimal {
    Decimal::new(99_999_999_999, MONEY_SCALE)
}

/// A product as the catalogue knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Stable identifier (UUID v7 for new products, so ids sort by age).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Optional long description.
    pub description: Option<String>,
    /// Unit price, two decimal places.
    pub price: Decimal,
    /// ISO 4217 code of `price`.
    pub currency: String,
    /// Units available to sell, never negative.
    pub stock_quantity: i32,
    /// Category name (free text, used for filtering).
    pub category: String,
    /// Optional picture.
    pub image_url: Option<String>,
    /// When the product was created (microsecond precision, as stored).
    pub created_at: DateTime<Utc>,
    /// When the product last changed.
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// Whether at least one unit can be sold.
    pub fn in_stock(&self) -> bool {
        self.stock_quantity > 0
    }
}

/// Raw fields for a new product, as an adapter received them.
#[derive(Debug, Clone, Default)]
pub struct NewProductInput {
    /// See [`Product::name`].
    pub name: String,
    /// See [`Product::description`].
    pub description: Option<String>,
    /// See [`Product::price`].
    pub price: Decimal,
    /// Currency; the shop's default when absent.
    pub currency: Option<String>,
    /// Initial stock; zero when absent.
    pub stock_quantity: Option<i32>,
    /// See [`Product::category`].
    pub category: String,
    /// See [`Product::image_url`].
    pub image_url: Option<String>,
}

/// A product that passed validation and is ready to store.
#[derive(Debug, Clone)]
pub struct NewProduct(pub(crate) Product);

impl NewProduct {
    /// Validates `input`; ids and timestamps are assigned here.
    pub fn parse(input: NewProductInput, default_currency: &str) -> Result<Self, ProductError> {
        let now = now();
        Ok(Self(Product {
            id: Uuid::now_v7(),
            name: name(&input.name)?,
            description: description(input.description)?,
            price: price(input.price)?,
            currency: currency(input.currency.as_deref().unwrap_or(default_currency))?,
            stock_quantity: stock(input.stock_quantity.unwrap_or(0))?,
            category: category(&input.category)?,
            image_url: image_url(input.image_url)?,
            created_at: now,
            updated_at: now,
        }))
    }

    /// The product to insert.
    pub fn into_product(self) -> Product {
        self.0
    }
}

/// Raw changes to a product; `None` leaves a field as it is, and for the
/// optional fields `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProductPatchInput {
    /// New name.
    pub name: Option<String>,
    /// New description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// New price.
    pub price: Option<Decimal>,
    /// New currency.
    pub currency: Option<String>,
    /// New absolute stock level.
    pub stock_quantity: Option<i32>,
    /// New category.
    pub category: Option<String>,
    /// New image URL, or `Some(None)` to clear it.
    pub image_url: Option<Option<String>>,
}

/// Validated changes to a product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductPatch {
    /// See [`ProductPatchInput::name`].
    pub name: Option<String>,
    /// See [`ProductPatchInput::description`].
    pub description: Option<Option<String>>,
    /// See [`ProductPatchInput::price`].
    pub price: Option<Decimal>,
    /// See [`ProductPatchInput::currency`].
    pub currency: Option<String>,
    /// See [`ProductPatchInput::stock_quantity`].
    pub stock_quantity: Option<i32>,
    /// See [`ProductPatchInput::category`].
    pub category: Option<String>,
    /// See [`ProductPatchInput::image_url`].
    pub image_url: Option<Option<String>>,
    /// The modification time to record.
    pub updated_at: DateTime<Utc>,
}

impl ProductPatch {
    /// Validates every field that is present.
    pub fn parse(input: ProductPatchInput) -> Result<Self, ProductError> {
        Ok(Self {
            name: input.name.as_deref().map(name).transpose()?,
            description: input.description.map(description).transpose()?,
            price: input.price.map(price).transpose()?,
            currency: input.currency.as_deref().map(currency).transpose()?,
            stock_quantity: input.stock_quantity.map(stock).transpose()?,
            category: input.category.as_deref().map(category).transpose()?,
            image_url: input.image_url.map(image_url).transpose()?,
            updated_at: now(),
        })
    }
}

/// The outcome of a stock adjustment: the product after it and the level
/// before it. This is what a stock event (StockUpdated / StockLow / StockOut)
/// is made from; the store returns it from the same transaction that changed
/// the row, which is where an outbox row will be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    /// The product after the change.
    pub product: Product,
    /// Stock level before the change.
    pub previous_stock: i32,
}

/// A product id from a client: anything that is not a UUID names no product.
pub fn parse_product_id(id: &str) -> Result<Uuid, ProductError> {
    Uuid::parse_str(id.trim()).map_err(|_| ProductError::NotFound(id.to_owned()))
}

/// A stock delta must change something and stay within the stock range.
pub fn validate_stock_delta(delta: i32) -> Result<i32, ProductError> {
    if delta == 0 {
        return Err(ProductError::invalid("delta", "must not be zero"));
    }
    if delta.unsigned_abs() > MAX_STOCK as u32 {
        return Err(ProductError::invalid(
            "delta",
            format!("must be between -{MAX_STOCK} and {MAX_STOCK}"),
        ));
    }
    Ok(delta)
}

fn name(value: &str) -> Result<String, ProductError> {
    required_text("name", value, MAX_NAME_CHARS)
}

fn category(value: &str) -> Result<String, ProductError> {
    required_text("category", value, MAX_CATEGORY_CHARS)
}

fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, ProductError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ProductError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ProductError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn description(value: Option<String>) -> Result<Option<String>, ProductError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ProductError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(Some(value))
}

fn price(value: Decimal) -> Result<Decimal, ProductError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(ProductError::invalid("price", "must not be negative"));
    }
    if value.normalize().scale() > MONEY_SCALE {
        return Err(ProductError::invalid(
            "price",
            "must have at most 2 decimal places",
        ));
    }
    if value > max_price() {
        return Err(ProductError::invalid(
            "price",
            format!("must be at most {}", max_price()),
        ));
    }
    Ok(normalize(value))
}

fn currency(value: &str) -> Result<String, ProductError> {
    let value = value.trim();
    if !is_currency_code(value) {
        return Err(ProductError::invalid(
            "currency",
            "must be an ISO 4217 code of three capital letters, e.g. EUR",
        ));
    }
    Ok(value.to_owned())
}

fn stock(value: i32) -> Result<i32, ProductError> {
    if value < 0 {
        return Err(ProductError::invalid(
            "stockQuantity",
            "must not be negative",
        ));
    }
    if value > MAX_STOCK {
        return Err(ProductError::invalid(
            "stockQuantity",
            format!("must be at most {MAX_STOCK}"),
        ));
    }
    Ok(value)
}

fn image_url(value: Option<String>) -> Result<Option<String>, ProductError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !(value.starts_with("https://") || value.starts_with("http://"))
        || value.contains(char::is_whitespace)
    {
        return Err(ProductError::invalid(
            "imageUrl",
            "must be an http:// or https:// URL",
        ));
    }
    if value.len() > MAX_IMAGE_URL_CHARS {
        return Err(ProductError::invalid(
            "imageUrl",
            format!("must be at most {MAX_IMAGE_URL_CHARS} characters"),
        ));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn input() -> NewProductInput {
        NewProductInput {
            name: "  Espresso cup ".into(),
            price: Decimal::from_str("4.5").unwrap(),
            category: "Kitchen".into(),
            ..Default::default()
        }
    }

    fn field_of(err: ProductError) -> &'static str {
        match err {
            ProductError::Invalid { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn valid_input_is_normalised() {
        let product = NewProduct::parse(input(), "EUR").unwrap().into_product();
        assert_eq!(product.name, "Espresso cup");
        assert_eq!(product.price.to_string(), "4.50");
        assert_eq!(product.currency, "EUR");
        assert_eq!(product.stock_quantity, 0);
        assert!(!product.in_stock());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(NewProductInput, &str)> = vec![
            (
                NewProductInput {
                    name: "  ".into(),
                    ..input()
                },
                "name",
            ),
            (
                NewProductInput {
                    category: "".into(),
                    ..input()
                },
                "category",
            ),
            (
                NewProductInput {
                    price: Decimal::from(-1),
                    ..input()
                },
                "price",
            ),
            (
                NewProductInput {
                    price: Decimal::from_str("1.234").unwrap(),
                    ..input()
                },
                "price",
            ),
            (
                NewProductInput {
                    price: Decimal::from(10_i64.pow(12)),
                    ..input()
                },
                "price",
            ),
            (
                NewProductInput {
                    stock_quantity: Some(-1),
                    ..input()
                },
                "stockQuantity",
            ),
            (
                NewProductInput {
                    currency: Some("euro".into()),
                    ..input()
                },
                "currency",
            ),
            (
                NewProductInput {
                    image_url: Some("ftp://x".into()),
                    ..input()
                },
                "imageUrl",
            ),
            (
                NewProductInput {
                    name: "x".repeat(201),
                    ..input()
                },
                "name",
            ),
        ];
        for (case, field) in cases {
            assert_eq!(field_of(NewProduct::parse(case, "EUR").unwrap_err()), field);
        }
    }

    #[test]
    fn trailing_zeros_do_not_count_as_extra_places() {
        let parsed = NewProduct::parse(
            NewProductInput {
                price: Decimal::from_str("2.5000").unwrap(),
                ..input()
            },
            "EUR",
        )
        .unwrap();
        assert_eq!(parsed.into_product().price.to_string(), "2.50");
    }

    #[test]
    fn patch_can_clear_optional_fields() {
        let patch = ProductPatch::parse(ProductPatchInput {
            description: Some(None),
            image_url: Some(Some(" ".into())),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.image_url, Some(None));
        assert_eq!(patch.name, None);
    }

    #[test]
    fn stock_deltas() {
        assert!(validate_stock_delta(0).is_err());
        assert!(validate_stock_delta(i32::MIN).is_err());
        assert_eq!(validate_stock_delta(-5).unwrap(), -5);
    }

    #[test]
    fn malformed_ids_name_no_product() {
        assert!(matches!(
            parse_product_id("nope"),
            Err(ProductError::NotFound(_))
        ));
        assert!(parse_product_id(&Uuid::now_v7().to_string()).is_ok());
    }
}
