//! The checkout lock: the basket's side of the checkout saga (issue 18).
//!
//! Payment orchestrates a checkout: it reserves stock in product, then
//! locks the payer's basket here for the future payment `P`
//! (`beginCheckout`), and settles by events. The lock fences checkouts,
//! not edits: while it is live no other payment may lock the basket (so
//! a second checkout cannot buy the same lines while `PaymentCompleted` is
//! still on its way), but the shopper may keep adding and changing lines.
//! The lines the lock was taken on are kept per payment, so the completed
//! payment removes exactly what it bought and a line added after the lock
//! stays.
//!
//! A lock lapses at its `locked_until` (the payment's own expiry plus a
//! margin, sent by payment and clamped to [`MAX_CHECKOUT_LOCK`]): a lock
//! past it counts as absent, so a payment that never settles cannot hold a
//! basket for ever.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use subgraph_kit::money::{MONEY_SCALE, is_currency_code, normalize};
use uuid::Uuid;

use super::{BasketError, BasketItem, validate_quantity};

/// The longest a checkout may lock a basket, whatever the caller asks:
/// a caller's clock or setting gone wrong cannot freeze a basket for long.
pub const MAX_CHECKOUT_LOCK: TimeDelta = TimeDelta::days(1);

/// A basket locked for one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutLock {
    /// The payment (also the stock reservation) the basket is locked for.
    pub payment_id: Uuid,
    /// When the lock lapses.
    pub locked_until: DateTime<Utc>,
}

impl CheckoutLock {
    /// Whether the lock still holds at `at`.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.locked_until > at
    }
}

/// One line a checkout expects the basket to hold, as payment read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLine {
    /// The product.
    pub product_id: Uuid,
    /// Units.
    pub quantity: i32,
    /// Unit price payment will charge.
    pub unit_price: Decimal,
    /// Currency of `unit_price`.
    pub currency: String,
}

/// A `beginCheckout` request before validation.
#[derive(Debug, Clone)]
pub struct UncheckedLine {
    /// The product id as sent.
    pub product_id: String,
    /// Units as sent.
    pub quantity: i32,
    /// Unit price as sent.
    pub unit_price: Decimal,
    /// Currency as sent.
    pub currency: String,
}

/// A validated `beginCheckout` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The payment to lock for.
    pub payment_id: Uuid,
    /// What the basket must hold, exactly.
    pub lines: Vec<CheckoutLine>,
    /// When the lock lapses, already clamped to [`MAX_CHECKOUT_LOCK`].
    pub locked_until: DateTime<Utc>,
}

/// Checks a `beginCheckout` request at `now`: a UUID payment id, lines with
/// a UUID product (each once), a quantity in 1..=999, a price that is not
/// negative and has at most two decimals, an ISO 4217-shaped currency, and
/// a lock time in the future (clamped to `now + MAX_CHECKOUT_LOCK`).
pub fn validate_checkout(
    payment_id: &str,
    lines: Vec<UncheckedLine>,
    locked_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<CheckoutRequest, BasketError> {
    let payment_id = Uuid::parse_str(payment_id.trim()).map_err(|_| BasketError::Invalid {
        field: "paymentId",
        reason: format!("must be a UUID, got {payment_id:?}"),
    })?;
    if locked_until <= now {
        return Err(BasketError::Invalid {
            field: "lockedUntil",
            reason: format!("must be in the future, got {}", locked_until.to_rfc3339()),
        });
    }
    let locked_until = locked_until.min(now + MAX_CHECKOUT_LOCK);
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        let invalid = |reason: String| BasketError::Invalid {
            field: "lines",
            reason: format!("line {}: {reason}", index + 1),
        };
        let product_id = Uuid::parse_str(line.product_id.trim()).map_err(|_| {
            invalid(format!(
                "productId must be a UUID, got {:?}",
                line.product_id
            ))
        })?;
        if !seen.insert(product_id) {
            return Err(invalid(format!("product {product_id} is listed twice")));
        }
        let quantity = validate_quantity(line.quantity).map_err(|err| invalid(err.to_string()))?;
        if line.unit_price < Decimal::ZERO || line.unit_price.normalize().scale() > MONEY_SCALE {
            return Err(invalid(format!(
                "unitPrice must be a non-negative amount with at most two decimals, got {}",
                line.unit_price
            )));
        }
        if !is_currency_code(&line.currency) {
            return Err(invalid(format!(
                "currency must be a three-letter ISO 4217 code, got {:?}",
                line.currency
            )));
        }
        checked.push(CheckoutLine {
            product_id,
            quantity,
            unit_price: normalize(line.unit_price),
            currency: line.currency,
        });
    }
    Ok(CheckoutRequest {
        payment_id,
        lines: checked,
        locked_until,
    })
}

/// Whether `items` are exactly `lines`: the same products, each with the
/// same quantity, unit price and currency, and nothing else.
pub fn lines_match(items: &[BasketItem], lines: &[CheckoutLine]) -> bool {
    items.len() == lines.len()
        && lines.iter().all(|line| {
            items.iter().any(|item| {
                item.product_id == line.product_id
                    && item.quantity == line.quantity
                    && normalize(item.unit_price) == normalize(line.unit_price)
                    && item.currency == line.currency
            })
        })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::domain::now;

    fn line(product_id: &str, quantity: i32, price: &str, currency: &str) -> UncheckedLine {
        UncheckedLine {
            product_id: product_id.into(),
            quantity,
            unit_price: Decimal::from_str(price).unwrap(),
            currency: currency.into(),
        }
    }

    fn item(product_id: Uuid, quantity: i32, price: &str) -> BasketItem {
        BasketItem {
            product_id,
            product_name: "x".into(),
            category: "c".into(),
            quantity,
            unit_price: Decimal::from_str(price).unwrap(),
            currency: "EUR".into(),
            added_at: now(),
        }
    }

    #[test]
    fn a_valid_request_is_accepted_and_its_lock_clamped() {
        let at = now();
        let product = Uuid::now_v7();
        let payment = Uuid::now_v7();
        let request = validate_checkout(
            &payment.to_string(),
            vec![line(&product.to_string(), 2, "4.50", "EUR")],
            at + TimeDelta::days(30),
            at,
        )
        .unwrap();
        assert_eq!(request.payment_id, payment);
        assert_eq!(request.locked_until, at + MAX_CHECKOUT_LOCK);
        assert_eq!(request.lines[0].quantity, 2);
        let soon = at + TimeDelta::minutes(40);
        let request = validate_checkout(&payment.to_string(), vec![], soon, at).unwrap();
        assert_eq!(request.locked_until, soon, "a sane time is kept");
    }

    #[test]
    fn bad_requests_name_the_field() {
        let at = now();
        let later = at + TimeDelta::minutes(5);
        let p = Uuid::now_v7().to_string();
        let product = Uuid::now_v7().to_string();
        let cases = [
            ("nope", vec![], later, "paymentId"),
            (p.as_str(), vec![], at, "lockedUntil"),
            (
                p.as_str(),
                vec![line("x", 1, "1.00", "EUR")],
                later,
                "lines",
            ),
            (
                p.as_str(),
                vec![line(&product, 0, "1.00", "EUR")],
                later,
                "lines",
            ),
            (
                p.as_str(),
                vec![line(&product, 1, "-1.00", "EUR")],
                later,
                "lines",
            ),
            (
                p.as_str(),
                vec![line(&product, 1, "1.005", "EUR")],
                later,
                "lines",
            ),
            (
                p.as_str(),
                vec![line(&product, 1, "1.00", "eur")],
                later,
                "lines",
            ),
            (
                p.as_str(),
                vec![
                    line(&product, 1, "1.00", "EUR"),
                    line(&product, 2, "1.00", "EUR"),
                ],
                later,
                "lines",
            ),
        ];
        for (payment, lines, until, field) in cases {
            match validate_checkout(payment, lines, until, at) {
                Err(BasketError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("expected an invalid {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn lines_match_exactly_or_not_at_all() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let items = vec![item(a, 2, "4.50"), item(b, 1, "0.10")];
        let expect = |qa: i32, price_b: &str| {
            vec![
                CheckoutLine {
                    product_id: b,
                    quantity: 1,
                    unit_price: Decimal::from_str(price_b).unwrap(),
                    currency: "EUR".into(),
                },
                CheckoutLine {
                    product_id: a,
                    quantity: qa,
                    unit_price: Decimal::from_str("4.5").unwrap(),
                    currency: "EUR".into(),
                },
            ]
        };
        assert!(
            lines_match(&items, &expect(2, "0.10")),
            "order and scale do not matter"
        );
        assert!(!lines_match(&items, &expect(3, "0.10")), "quantity");
        assert!(!lines_match(&items, &expect(2, "0.20")), "price");
        assert!(
            !lines_match(&items[..1], &expect(2, "0.10")),
            "a line missing"
        );
        assert!(!lines_match(&items, &expect(2, "0.10")[..1]), "a line more");
    }

    #[test]
    fn a_lock_lapses_at_its_time() {
        let at = now();
        let lock = CheckoutLock {
            payment_id: Uuid::now_v7(),
            locked_until: at,
        };
        assert!(lock.is_live(at - TimeDelta::seconds(1)));
        assert!(!lock.is_live(at));
    }
}
