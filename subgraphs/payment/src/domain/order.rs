//! What an order is, for idempotency: the caller, the lines (product,
//! quantity, unit price, currency) and the amount. Two requests with one
//! idempotency key are the same request only if they buy the same order.

use sha2::{Digest, Sha256};

use super::PaymentItem;
use subgraph_kit::money::normalize;

/// `(product, quantity, unit price in cents, currency)` of every line,
/// sorted: the order of lines in a basket does not make another order.
fn canonical_lines(items: &[PaymentItem]) -> Vec<(uuid::Uuid, i32, String, &str)> {
    let mut lines: Vec<_> = items
        .iter()
        .map(|item| {
            (
                item.product_id,
                item.quantity,
                normalize(item.unit_price).to_string(),
                item.currency.as_str(),
            )
        })
        .collect();
    lines.sort();
    lines
}

/// SHA-256 (hex) of the caller, the lines and the amount, stored with a
/// payment so a later request with its key can be told apart by content.
pub fn order_fingerprint(user_id: &str, items: &[PaymentItem]) -> String {
    let mut canonical = format!("user={user_id}\n");
    for (product, quantity, price, currency) in canonical_lines(items) {
        canonical.push_str(&format!("line={product}|{quantity}|{price}|{currency}\n"));
    }
    let amount: rust_decimal::Decimal = items.iter().map(PaymentItem::subtotal).sum();
    let currency = items.first().map_or("", |item| item.currency.as_str());
    canonical.push_str(&format!("amount={}|{currency}\n", normalize(amount)));
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether two sets of lines buy the same units at the same prices,
/// whatever their order and names.
pub fn same_lines(a: &[PaymentItem], b: &[PaymentItem]) -> bool {
    canonical_lines(a) == canonical_lines(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;
    use uuid::Uuid;

    fn item(product: Uuid, quantity: i32, price: &str) -> PaymentItem {
        PaymentItem {
            product_id: product,
            product_name: "Mug".into(),
            quantity,
            unit_price: Decimal::from_str(price).unwrap(),
            currency: "EUR".into(),
        }
    }

    #[test]
    fn the_fingerprint_covers_caller_lines_and_prices() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let order = vec![item(a, 1, "4.50"), item(b, 2, "1.00")];
        let base = order_fingerprint("user-1", &order);
        assert_eq!(base.len(), 64);
        let reordered = vec![item(b, 2, "1"), item(a, 1, "4.5")];
        assert_eq!(
            order_fingerprint("user-1", &reordered),
            base,
            "order and scale do not matter"
        );
        assert_ne!(order_fingerprint("user-2", &order), base, "caller");
        let repriced = vec![item(a, 1, "13.50"), item(b, 2, "1.00")];
        assert_ne!(order_fingerprint("user-1", &repriced), base, "unit price");
        let more = vec![item(a, 3, "4.50"), item(b, 2, "1.00")];
        assert_ne!(order_fingerprint("user-1", &more), base, "quantity");
        let mut dollars = order.clone();
        dollars.iter_mut().for_each(|i| i.currency = "USD".into());
        assert_ne!(order_fingerprint("user-1", &dollars), base, "currency");
    }

    #[test]
    fn same_lines_ignores_order_and_names() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut renamed = item(a, 1, "4.50");
        renamed.product_name = "Blue Mug".into();
        assert!(same_lines(
            &[item(a, 1, "4.50"), item(b, 2, "1.00")],
            &[item(b, 2, "1.00"), renamed]
        ));
        assert!(!same_lines(&[item(a, 1, "4.50")], &[item(a, 1, "13.50")]));
        assert!(!same_lines(&[item(a, 1, "4.50")], &[]));
    }
}
