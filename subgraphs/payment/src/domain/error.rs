//! Everything that can go wrong with a payment.

use sea_orm::DbErr;
use shopgraph_core::error::ErrorCode;
use subgraph_kit::pagination::PageError;
use subgraph_kit::upstream::UpstreamError;

use super::provider::ProviderError;
use super::{PaymentItem, PaymentStatus};

/// A payment operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// An input broke a rule; the message names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input field, as clients spell it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Pagination arguments were refused.
    #[error(transparent)]
    Page(#[from] PageError),
    /// There is nothing to pay for.
    #[error("the basket is empty")]
    EmptyBasket,
    /// The basket mixes currencies, so it has no single amount.
    #[error("the basket mixes currencies ({0} and {1})")]
    MixedCurrencies(String, String),
    /// No such payment, or not the caller's.
    #[error("payment {0} does not exist")]
    NotFound(String),
    /// The state machine has no such edge from the current status.
    #[error("cannot {action} a payment that is {current}")]
    IllegalTransition {
        /// The payment's status now.
        current: PaymentStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The idempotency key was used before for a different request.
    #[error("idempotencyKey {0:?} was already used for a different request")]
    IdempotencyConflict(String),
    /// The basket subgraph could not be asked.
    #[error(transparent)]
    Basket(#[from] UpstreamError),
    /// The product subgraph could not be asked to reserve stock.
    #[error(transparent)]
    Stock(UpstreamError),
    /// The product or basket subgraph refused a checkout step with a coded
    /// error (`OUT_OF_STOCK`, `PRICE_CHANGED`, `CONFLICT`...) that the
    /// payer can act on: passed on with the same code, message and
    /// extensions.
    #[error("{message}")]
    Refused {
        /// The upstream's `extensions.code`.
        code: ErrorCode,
        /// The upstream's message (written for the payer).
        message: String,
        /// The upstream's other extensions (the lines concerned...),
        /// boxed to keep the error small.
        extensions: Box<serde_json::Map<String, serde_json::Value>>,
    },
    /// The provider could not be asked, or did not decide (a refund then
    /// stays requested until the sweeper learns its fate).
    #[error("the payment provider is unavailable")]
    ProviderUnavailable(#[source] ProviderError),
    /// The provider refused a refund; nothing was given back.
    #[error("the payment provider refused the refund: {0}")]
    RefundRefused(String),
    /// The store failed; details go to the logs.
    #[error("payment store failure")]
    Store(#[from] DbErr),
}

impl PaymentError {
    /// Shorthand for [`PaymentError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// A checkout step's upstream failure: a refusal the payer can act on
    /// is passed on as [`PaymentError::Refused`], anything else (an outage,
    /// a malformed answer, an unexpected code) is wrapped by `other`.
    pub fn from_checkout_step(err: UpstreamError, other: fn(UpstreamError) -> Self) -> Self {
        let passed = match &err {
            UpstreamError::Rejected {
                code: Some(code), ..
            } => passed_on(code),
            _ => None,
        };
        match (passed, err) {
            (
                Some(code),
                UpstreamError::Rejected {
                    message,
                    extensions,
                    ..
                },
            ) => Self::Refused {
                code,
                message,
                extensions,
            },
            (_, err) => other(err),
        }
    }

    /// A refusal's `extensions.lines` with every missing `productName`
    /// filled in from the basket's lines (product no longer knows a deleted
    /// product's name; the basket kept it), and a `PRODUCT_UNAVAILABLE`
    /// message that names the products rather than their ids.
    pub fn naming_lines(self, basket: &[PaymentItem]) -> Self {
        let Self::Refused {
            code,
            message,
            mut extensions,
        } = self
        else {
            return self;
        };
        let mut names = Vec::new();
        if let Some(serde_json::Value::Array(lines)) = extensions.get_mut("lines") {
            for line in lines.iter_mut() {
                let Some(line) = line.as_object_mut() else {
                    continue;
                };
                let known = line
                    .get("productName")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
                let name = known.or_else(|| {
                    let id = line.get("productId")?.as_str()?;
                    basket
                        .iter()
                        .find(|item| item.product_id.to_string() == id)
                        .map(|item| item.product_name.clone())
                });
                if let Some(name) = name {
                    line.insert("productName".into(), name.clone().into());
                    names.push(name);
                }
            }
        }
        let message = match (code, names.as_slice()) {
            (ErrorCode::ProductUnavailable, [one]) => format!("{one} is no longer available"),
            (ErrorCode::ProductUnavailable, [first @ .., last]) if !first.is_empty() => {
                format!("{} and {last} are no longer available", first.join(", "))
            }
            _ => message,
        };
        Self::Refused {
            code,
            message,
            extensions,
        }
    }

    /// Whether this is the basket's refusal to lock: another checkout of
    /// the basket is in progress, or its lines changed meanwhile.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                code: ErrorCode::Conflict,
                ..
            }
        )
    }
}

/// The upstream codes a checkout passes on to its caller as they are.
fn passed_on(code: &str) -> Option<ErrorCode> {
    [
        ErrorCode::OutOfStock,
        ErrorCode::ProductUnavailable,
        ErrorCode::PriceChanged,
        ErrorCode::Conflict,
        ErrorCode::BadUserInput,
    ]
    .into_iter()
    .find(|known| known.as_str() == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use serde_json::json;
    use uuid::Uuid;

    fn item(id: Uuid, name: &str) -> PaymentItem {
        PaymentItem {
            product_id: id,
            product_name: name.into(),
            quantity: 1,
            unit_price: Decimal::ONE,
            currency: "EUR".into(),
        }
    }

    fn unavailable(lines: serde_json::Value) -> PaymentError {
        let mut extensions = serde_json::Map::new();
        extensions.insert("lines".into(), lines);
        PaymentError::Refused {
            code: ErrorCode::ProductUnavailable,
            message: "A product in your basket is no longer available (product …)".into(),
            extensions: Box::new(extensions),
        }
    }

    #[test]
    fn deleted_products_are_named_from_the_basket() {
        let (table, chair) = (Uuid::now_v7(), Uuid::now_v7());
        let basket = [item(table, "Gone Table"), item(chair, "Gone Chair")];
        let one = unavailable(json!([{ "productId": table.to_string(), "productName": null }]))
            .naming_lines(&basket);
        let PaymentError::Refused {
            message,
            extensions,
            ..
        } = one
        else {
            panic!("still a refusal");
        };
        assert_eq!(message, "Gone Table is no longer available");
        assert_eq!(extensions["lines"][0]["productName"], "Gone Table");

        let two = unavailable(json!([
            { "productId": table.to_string(), "productName": null },
            { "productId": chair.to_string() },
        ]))
        .naming_lines(&basket);
        assert_eq!(
            two.to_string(),
            "Gone Table and Gone Chair are no longer available"
        );
    }

    #[test]
    fn other_refusals_keep_their_message_and_names() {
        let mut extensions = serde_json::Map::new();
        extensions.insert(
            "lines".into(),
            json!([{ "productId": "x", "productName": "Blue Mug", "available": 2 }]),
        );
        let refusal = PaymentError::Refused {
            code: ErrorCode::OutOfStock,
            message: "Only 2 left of Blue Mug (you asked for 3)".into(),
            extensions: Box::new(extensions),
        }
        .naming_lines(&[]);
        assert_eq!(
            refusal.to_string(),
            "Only 2 left of Blue Mug (you asked for 3)"
        );
        assert!(matches!(
            PaymentError::EmptyBasket.naming_lines(&[]),
            PaymentError::EmptyBasket
        ));
    }
}
