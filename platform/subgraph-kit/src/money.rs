//! Money as exact decimals, shared by every subgraph.
//!
//! Amounts are `rust_decimal::Decimal` in Rust, `NUMERIC` in the stores and
//! the `Decimal` scalar (a string such as `"19.99"`) in GraphQL: no binary
//! floating point touches a price. [`Money`] is `@shareable` because product,
//! basket and payment all return it.

use async_graphql::SimpleObject;
use rust_decimal::Decimal;

/// Minor-unit digits kept for every amount (cents).
pub const MONEY_SCALE: u32 = 2;

/// An amount in a currency.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
#[graphql(shareable)]
pub struct Money {
    /// The amount, with exactly two decimal places.
    pub amount: Decimal,
    /// ISO 4217 currency code, e.g. `EUR`.
    pub currency: String,
}

impl Money {
    /// An amount normalised to [`MONEY_SCALE`] decimal places.
    pub fn new(amount: Decimal, currency: impl Into<String>) -> Self {
        Self {
            amount: normalize(amount),
            currency: currency.into(),
        }
    }
}

/// Rounds to cents (banker's rounding) and pads to exactly two places, so
/// `"5"` and `"5.00"` render alike.
///
/// Values read back from SQLite (whose `NUMERIC` columns hold doubles) are
/// exact again after this step for any amount below 10^13.
pub fn normalize(amount: Decimal) -> Decimal {
    let mut rounded = amount.round_dp(MONEY_SCALE);
    rounded.rescale(MONEY_SCALE);
    rounded
}

/// Whether `code` looks like an ISO 4217 currency code (three capitals).
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_render_with_two_places() {
        assert_eq!(normalize(Decimal::from(5)).to_string(), "5.00");
        assert_eq!(
            normalize(Decimal::from_str("19.9").unwrap()).to_string(),
            "19.90"
        );
        let from_double = Decimal::try_from(19.99_f64).unwrap();
        assert_eq!(normalize(from_double).to_string(), "19.99");
    }

    #[test]
    fn currency_codes() {
        assert!(is_currency_code("EUR"));
        assert!(!is_currency_code("eur"));
        assert!(!is_currency_code("EURO"));
    }
}
