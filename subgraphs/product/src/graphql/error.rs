//! How catalogue errors look to clients.
//!
//! Most errors are a code and a message ([`to_graphql`]); the three
//! checkout refusals also carry `extensions.lines`, one entry per line
//! concerned, so the caller (payment, and through it the shopper's client)
//! can show each product without parsing the message. The shapes are the
//! checkout contract's:
//!
//! * `PRODUCT_UNAVAILABLE`: `{ productId, productName }` (the catalogue no
//!   longer knows the name: `productName` is the one the caller sent with
//!   the line, `null` if it sent none);
//! * `PRICE_CHANGED`: `{ productId, productName, basketPrice, currentPrice }`,
//!   both prices `{ amount, currency }`;
//! * `OUT_OF_STOCK`: `{ productId, productName, requested, available }`.

use async_graphql::{ErrorExtensions, Name, Value};
use rust_decimal::Decimal;
use shopgraph_core::error::{Coded, ErrorCode, to_graphql};
use subgraph_kit::money::normalize;

use crate::domain::ProductError;

impl Coded for ProductError {
    fn code(&self) -> ErrorCode {
        match self {
            ProductError::Invalid { .. } | ProductError::Page(_) => ErrorCode::BadUserInput,
            ProductError::NotFound(_) => ErrorCode::NotFound,
            ProductError::InsufficientStock { .. }
            | ProductError::StockOverflow { .. }
            | ProductError::ReservationTaken(_) => ErrorCode::Conflict,
            ProductError::ProductUnavailable(_) => ErrorCode::ProductUnavailable,
            ProductError::PriceChanged(_) => ErrorCode::PriceChanged,
            ProductError::OutOfStock(_) => ErrorCode::OutOfStock,
            ProductError::UnknownReservationStatus { .. } | ProductError::Store(_) => {
                ErrorCode::Internal
            }
        }
    }
}

/// A catalogue error as GraphQL: code and message, plus `extensions.lines`
/// for the checkout refusals.
pub fn product_error(error: ProductError) -> async_graphql::Error {
    let lines = lines_of(&error);
    let graphql = to_graphql(error);
    match lines {
        Some(lines) => graphql.extend_with(|_, ext| ext.set("lines", lines)),
        None => graphql,
    }
}

fn lines_of(error: &ProductError) -> Option<Value> {
    let lines: Vec<Value> = match error {
        ProductError::ProductUnavailable(lines) => lines
            .iter()
            .map(|line| {
                object([
                    ("productId", Value::from(line.product_id.to_string())),
                    (
                        "productName",
                        line.product_name.clone().map_or(Value::Null, Value::from),
                    ),
                ])
            })
            .collect(),
        ProductError::PriceChanged(lines) => lines
            .iter()
            .map(|line| {
                object([
                    ("productId", Value::from(line.product_id.to_string())),
                    ("productName", Value::from(line.product_name.clone())),
                    (
                        "basketPrice",
                        money(line.basket_price, &line.basket_currency),
                    ),
                    (
                        "currentPrice",
                        money(line.current_price, &line.current_currency),
                    ),
                ])
            })
            .collect(),
        ProductError::OutOfStock(lines) => lines
            .iter()
            .map(|line| {
                object([
                    ("productId", Value::from(line.product_id.to_string())),
                    ("productName", Value::from(line.product_name.clone())),
                    ("requested", Value::from(line.requested)),
                    ("available", Value::from(line.available)),
                ])
            })
            .collect(),
        _ => return None,
    };
    Some(Value::List(lines))
}

/// `{ amount, currency }` as the `Money` type renders it (amount a string
/// with two places).
fn money(amount: Decimal, currency: &str) -> Value {
    object([
        ("amount", Value::from(normalize(amount).to_string())),
        ("currency", Value::from(currency)),
    ])
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(name, value)| (Name::new(name), value))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::Shortage;

    #[test]
    fn out_of_stock_lists_each_line() {
        let id = Uuid::nil();
        let error = product_error(ProductError::OutOfStock(vec![Shortage {
            product_id: id,
            product_name: "Blue Mug".into(),
            requested: 3,
            available: 2,
        }]))
        .into_server_error(Default::default());
        assert_eq!(error.message, "Only 2 left of Blue Mug (you asked for 3)");
        let extensions = error.extensions.expect("extensions");
        assert_eq!(extensions.get("code"), Some(&Value::from("OUT_OF_STOCK")));
        let lines = extensions.get("lines").expect("lines").clone();
        assert_eq!(
            lines.into_json().unwrap(),
            serde_json::json!([{
                "productId": id.to_string(),
                "productName": "Blue Mug",
                "requested": 3,
                "available": 2,
            }])
        );
    }

    #[test]
    fn other_errors_carry_no_lines() {
        let error =
            product_error(ProductError::NotFound("x".into())).into_server_error(Default::default());
        assert!(error.extensions.unwrap().get("lines").is_none());
    }
}
