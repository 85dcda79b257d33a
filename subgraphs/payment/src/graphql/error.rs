//! How payment errors look to clients.

use async_graphql::ErrorExtensions;
use shopgraph_core::error::{Coded, ErrorCode, error_chain, to_graphql};

use crate::domain::PaymentError;

impl Coded for PaymentError {
    fn code(&self) -> ErrorCode {
        match self {
            PaymentError::Invalid { .. }
            | PaymentError::Page(_)
            | PaymentError::EmptyBasket
            | PaymentError::MixedCurrencies(..) => ErrorCode::BadUserInput,
            PaymentError::NotFound(_) => ErrorCode::NotFound,
            PaymentError::IllegalTransition { .. }
            | PaymentError::IdempotencyConflict(_)
            | PaymentError::RefundRefused(_) => ErrorCode::Conflict,
            PaymentError::Basket(upstream) | PaymentError::Stock(upstream) => upstream.code(),
            PaymentError::Refused { code, .. } => *code,
            PaymentError::ProviderUnavailable(_) => ErrorCode::SubgraphUnavailable,
            PaymentError::Store(_) => ErrorCode::Internal,
        }
    }
}

/// Maps a payment error for clients, logging upstream failures with their
/// cause. A refusal passed on from product or basket keeps its code,
/// message and extensions (`lines`...), so a client of payment sees
/// exactly what the subgraph that refused said.
pub fn payment_error(err: PaymentError) -> async_graphql::Error {
    match err {
        PaymentError::Basket(cause) => {
            tracing::warn!(error = %error_chain(&cause), "basket call failed");
            to_graphql(PaymentError::Basket(cause))
        }
        PaymentError::Stock(cause) => {
            tracing::warn!(error = %error_chain(&cause), "product call failed");
            to_graphql(PaymentError::Stock(cause))
        }
        PaymentError::Refused {
            code,
            message,
            extensions,
        } => async_graphql::Error::new(message).extend_with(|_, ext| {
            for (name, value) in *extensions {
                if let Ok(value) = async_graphql::Value::from_json(value) {
                    ext.set(name, value);
                }
            }
            ext.set("code", code.as_str());
        }),
        err => to_graphql(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_keep_their_code_and_extensions() {
        let Ok(serde_json::Value::Object(extensions)) =
            serde_json::from_value(json!({ "lines": [{ "productId": "p", "available": 2 }] }))
        else {
            panic!("an object");
        };
        let err = payment_error(PaymentError::Refused {
            code: ErrorCode::OutOfStock,
            message: "Only 2 left of Blue Mug (you asked for 3)".into(),
            extensions: Box::new(extensions),
        });
        let server = err.into_server_error(Default::default());
        assert_eq!(server.message, "Only 2 left of Blue Mug (you asked for 3)");
        let extensions = server.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("OUT_OF_STOCK"))
        );
        assert_eq!(
            extensions
                .get("lines")
                .map(|v| v.clone().into_json().unwrap()),
            Some(json!([{ "productId": "p", "available": 2 }]))
        );
    }
}
