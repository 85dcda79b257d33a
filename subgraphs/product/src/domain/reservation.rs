//! Stock reservations: the units a checkout holds while its payment is
//! settled (the checkout protocol of the README's "Checkout" section).
//!
//! A reservation takes its units out of `stock_quantity` when it is made,
//! all lines or none, and then either becomes a sale (`SOLD`, the units stay
//! taken) or is released (`RELEASED`, the units go back). For every product
//! at all times: stock + units of its `RESERVED` and `SOLD` reservation lines
//! = initial stock + admin adjustments (sales of payments made before
//! reservations existed aside).
//!
//! This module holds the rules, free of SQL and GraphQL: the validated
//! request ([`NewReservation`]), the stored shape ([`StockReservation`]) and
//! the reasons a reservation is refused ([`UnavailableLine`],
//! [`PriceChange`], [`Shortage`]).

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use subgraph_kit::money::{MONEY_SCALE, is_currency_code, normalize};
use uuid::Uuid;

use super::ProductError;

/// Most units of one product a reservation holds: the basket's own limit
/// per line, so any basket line can be reserved and nothing larger can.
pub const MAX_RESERVATION_QUANTITY: i32 = 999;

/// Longest product name a caller may send with a line (the catalogue's own
/// limit).
const MAX_PRODUCT_NAME_CHARS: usize = 200;

/// Most lines one reservation holds; each line is one conditional `UPDATE`
/// in the reserving transaction, which this keeps short.
pub const MAX_RESERVATION_LINES: usize = 100;

/// How far ahead a reservation may expire: a caller asking for later gets
/// this, so a lost checkout cannot hold stock for longer than a day.
pub fn max_reservation_ttl() -> Duration {
    Duration::days(1)
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// Units taken from stock and held for the payment.
    Reserved,
    /// The payment completed: the units are sold (they stay taken).
    Sold,
    /// The payment failed, was cancelled or expired, or the reservation
    /// outlived `expiresAt`: the units went back to stock.
    Released,
}

impl ReservationStatus {
    /// The stored (and GraphQL) form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Sold => "SOLD",
            Self::Released => "RELEASED",
        }
    }

    /// Parses the stored form; `None` for a value this version does not know.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "RESERVED" => Some(Self::Reserved),
            "SOLD" => Some(Self::Sold),
            "RELEASED" => Some(Self::Released),
            _ => None,
        }
    }
}

/// One product's units in a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name when reserved (kept for logs once the product is gone).
    pub product_name: String,
    /// Units held.
    pub quantity: i32,
    /// The unit price the checkout confirmed.
    pub unit_price: Decimal,
    /// ISO 4217 code of `unit_price`.
    pub currency: String,
}

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockReservation {
    /// Chosen by the caller: the payment's id, so the payment's events name it.
    pub id: Uuid,
    /// The payer it was made for.
    pub user_id: String,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// When the sweeper releases it if it is still `RESERVED`.
    pub expires_at: DateTime<Utc>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// Its lines, ordered by product id.
    pub lines: Vec<ReservedLine>,
}

/// One line of a reservation request, as an adapter received it.
#[derive(Debug, Clone)]
pub struct ReservationLineInput {
    /// The product's id.
    pub product_id: String,
    /// Units to hold, 1..=[`MAX_RESERVATION_QUANTITY`].
    pub quantity: i32,
    /// The unit price the caller will charge; must be the catalogue's.
    pub unit_price: Decimal,
    /// The currency of `unit_price`.
    pub currency: String,
    /// The product's name as the caller knows it (the basket's snapshot),
    /// optional: it names a product the catalogue no longer has in the
    /// refusal.
    pub product_name: Option<String>,
}

/// A reservation request, as an adapter received it.
#[derive(Debug, Clone)]
pub struct ReservationInput {
    /// The id to create it under (the future payment's id).
    pub reservation_id: String,
    /// When it should lapse if nothing settles it.
    pub expires_at: DateTime<Utc>,
    /// What to hold.
    pub lines: Vec<ReservationLineInput>,
}

/// A line that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    /// The product.
    pub product_id: Uuid,
    /// Units to hold.
    pub quantity: i32,
    /// The price the caller expects, to two places.
    pub unit_price: Decimal,
    /// Its currency.
    pub currency: String,
    /// The caller's name for the product, if it sent one.
    pub product_name: Option<String>,
}

/// A reservation request that passed validation and is ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// The reservation's id.
    pub id: Uuid,
    /// The payer.
    pub user_id: String,
    /// When it lapses (clamped to at most [`max_reservation_ttl`] ahead).
    pub expires_at: DateTime<Utc>,
    /// Lines ordered by product id: every reserving transaction locks rows
    /// in that order, so two of them never wait for each other in a cycle.
    pub lines: Vec<RequestedLine>,
}

impl NewReservation {
    /// Validates `input` for `user_id` at time `now`.
    pub fn parse(
        input: ReservationInput,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, ProductError> {
        let id = Uuid::parse_str(input.reservation_id.trim())
            .map_err(|_| ProductError::invalid("reservationId", "must be a UUID"))?;
        if input.expires_at <= now {
            return Err(ProductError::invalid("expiresAt", "must be in the future"));
        }
        let latest = now + max_reservation_ttl();
        let expires_at = Ord::min(input.expires_at, latest);
        // The stores keep microseconds: what is returned equals what is read back.
        let expires_at =
            DateTime::from_timestamp_micros(expires_at.timestamp_micros()).unwrap_or(expires_at);
        if input.lines.is_empty() {
            return Err(ProductError::invalid("lines", "must not be empty"));
        }
        if input.lines.len() > MAX_RESERVATION_LINES {
            return Err(ProductError::invalid(
                "lines",
                format!("must hold at most {MAX_RESERVATION_LINES} lines"),
            ));
        }
        let mut lines = input
            .lines
            .into_iter()
            .map(line)
            .collect::<Result<Vec<_>, _>>()?;
        lines.sort_by_key(|line| line.product_id);
        if let Some(pair) = lines
            .windows(2)
            .find(|pair| pair[0].product_id == pair[1].product_id)
        {
            return Err(ProductError::invalid(
                "lines",
                format!("product {} appears more than once", pair[0].product_id),
            ));
        }
        Ok(Self {
            id,
            user_id: user_id.to_owned(),
            expires_at,
            lines,
        })
    }
}

fn line(input: ReservationLineInput) -> Result<RequestedLine, ProductError> {
    let product_id = Uuid::parse_str(input.product_id.trim())
        .map_err(|_| ProductError::invalid("lines.productId", "must be a product id"))?;
    if !(1..=MAX_RESERVATION_QUANTITY).contains(&input.quantity) {
        return Err(ProductError::invalid(
            "lines.quantity",
            format!(
                "must be between 1 and {MAX_RESERVATION_QUANTITY}, got {}",
                input.quantity
            ),
        ));
    }
    if input.unit_price.is_sign_negative() && !input.unit_price.is_zero() {
        return Err(ProductError::invalid(
            "lines.unitPrice",
            "must not be negative",
        ));
    }
    if input.unit_price.normalize().scale() > MONEY_SCALE {
        return Err(ProductError::invalid(
            "lines.unitPrice",
            "must have at most 2 decimal places",
        ));
    }
    let currency = input.currency.trim();
    if !is_currency_code(currency) {
        return Err(ProductError::invalid(
            "lines.currency",
            "must be an ISO 4217 code of three capital letters, e.g. EUR",
        ));
    }
    let product_name = input
        .product_name
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    if product_name
        .as_ref()
        .is_some_and(|name| name.chars().count() > MAX_PRODUCT_NAME_CHARS)
    {
        return Err(ProductError::invalid(
            "lines.productName",
            format!("must be at most {MAX_PRODUCT_NAME_CHARS} characters"),
        ));
    }
    Ok(RequestedLine {
        product_id,
        quantity: input.quantity,
        unit_price: normalize(input.unit_price),
        currency: currency.to_owned(),
        product_name,
    })
}

/// A line whose product the catalogue does not have (deleted or never
/// existed). The catalogue no longer knows its name: it is the one the
/// caller sent with the line, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableLine {
    /// The product asked for.
    pub product_id: Uuid,
    /// The caller's name for it.
    pub product_name: Option<String>,
}

/// A line whose price or currency is no longer the catalogue's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    /// The product.
    pub product_id: Uuid,
    /// Its name now.
    pub product_name: String,
    /// The price the caller sent.
    pub basket_price: Decimal,
    /// Its currency.
    pub basket_currency: String,
    /// The catalogue's price now.
    pub current_price: Decimal,
    /// Its currency.
    pub current_currency: String,
}

/// A line asking for more units than are left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The product.
    pub product_id: Uuid,
    /// Its name.
    pub product_name: String,
    /// Units asked for.
    pub requested: i32,
    /// Units left when the request was refused.
    pub available: i32,
}

/// The shopper-facing sentence of a refused reservation, one clause per line.
pub(crate) fn describe_unavailable(lines: &[UnavailableLine]) -> String {
    lines
        .iter()
        .map(|line| match &line.product_name {
            Some(name) => format!("{name} is no longer available"),
            None => format!(
                "A product in your basket is no longer available (product {})",
                line.product_id
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// See [`describe_unavailable`].
pub(crate) fn describe_price_changes(lines: &[PriceChange]) -> String {
    lines
        .iter()
        .map(|line| {
            format!(
                "The price of {} is now {} {} (your basket has {} {})",
                line.product_name,
                normalize(line.current_price),
                line.current_currency,
                normalize(line.basket_price),
                line.basket_currency
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// See [`describe_unavailable`].
pub(crate) fn describe_shortages(lines: &[Shortage]) -> String {
    lines
        .iter()
        .map(|line| match line.available {
            0 => format!(
                "{} is sold out (you asked for {})",
                line.product_name, line.requested
            ),
            left => format!(
                "Only {left} left of {} (you asked for {})",
                line.product_name, line.requested
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What releasing a reservation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// It was `RESERVED`; its units are back in stock.
    Released(StockReservation),
    /// It was already settled (`SOLD` or `RELEASED`): nothing changed.
    Unchanged(ReservationStatus),
    /// No such reservation (for this caller): nothing changed.
    Unknown,
}

/// What a completed payment did to its reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleOutcome {
    /// It was `RESERVED` and is now `SOLD`; stock was taken at reserve time.
    Sold,
    /// It was already `SOLD` (a repeated settlement): nothing changed.
    AlreadySold,
    /// The payment has no reservation (made before reservations existed):
    /// the caller takes the units the old way.
    NoReservation,
    /// It had been `RELEASED` (expired while the payment was stuck) and the
    /// units were still there: taken again, now `SOLD`.
    Retaken,
    /// It had been `RELEASED` and some units are gone: nothing was taken,
    /// it stays `RELEASED`, and the sale is short by these lines.
    Short(Vec<Shortage>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn line_input(product: Uuid, quantity: i32) -> ReservationLineInput {
        ReservationLineInput {
            product_id: product.to_string(),
            quantity,
            unit_price: Decimal::from_str("4.5").unwrap(),
            currency: "EUR".into(),
            product_name: Some(" Blue Mug ".into()),
        }
    }

    fn input(lines: Vec<ReservationLineInput>) -> ReservationInput {
        ReservationInput {
            reservation_id: Uuid::now_v7().to_string(),
            expires_at: at() + Duration::minutes(25),
            lines,
        }
    }

    fn field_of(err: ProductError) -> &'static str {
        match err {
            ProductError::Invalid { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn lines_are_sorted_and_prices_normalised() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let parsed = NewReservation::parse(
            input(vec![line_input(b, 2), line_input(a, 1)]),
            "alice",
            at(),
        )
        .unwrap();
        assert_eq!(
            parsed
                .lines
                .iter()
                .map(|l| l.product_id)
                .collect::<Vec<_>>(),
            vec![a, b]
        );
        assert_eq!(parsed.lines[0].unit_price.to_string(), "4.50");
        assert_eq!(parsed.lines[0].product_name.as_deref(), Some("Blue Mug"));
        assert_eq!(parsed.user_id, "alice");
        assert_eq!(parsed.expires_at, at() + Duration::minutes(25));
    }

    #[test]
    fn expiry_is_clamped_to_a_day_and_never_past() {
        let mut far = input(vec![line_input(Uuid::now_v7(), 1)]);
        far.expires_at = at() + Duration::days(30);
        let parsed = NewReservation::parse(far, "alice", at()).unwrap();
        assert_eq!(parsed.expires_at, at() + max_reservation_ttl());

        let mut past = input(vec![line_input(Uuid::now_v7(), 1)]);
        past.expires_at = at() - Duration::seconds(1);
        assert_eq!(
            field_of(NewReservation::parse(past, "alice", at()).unwrap_err()),
            "expiresAt"
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let product = Uuid::now_v7();
        let mut bad_id = input(vec![line_input(product, 1)]);
        bad_id.reservation_id = "nope".into();
        let mut bad_product = line_input(product, 1);
        bad_product.product_id = "nope".into();
        let mut bad_price = line_input(product, 1);
        bad_price.unit_price = Decimal::from_str("1.234").unwrap();
        let mut negative = line_input(product, 1);
        negative.unit_price = Decimal::from(-1);
        let mut bad_currency = line_input(product, 1);
        bad_currency.currency = "eur".into();
        let mut long_name = line_input(product, 1);
        long_name.product_name = Some("x".repeat(MAX_PRODUCT_NAME_CHARS + 1));
        let too_many = (0..=MAX_RESERVATION_LINES)
            .map(|_| line_input(Uuid::now_v7(), 1))
            .collect();
        let cases = vec![
            (bad_id, "reservationId"),
            (input(vec![]), "lines"),
            (input(too_many), "lines"),
            (
                input(vec![line_input(product, 1), line_input(product, 2)]),
                "lines",
            ),
            (input(vec![bad_product]), "lines.productId"),
            (input(vec![line_input(product, 0)]), "lines.quantity"),
            (
                input(vec![line_input(product, MAX_RESERVATION_QUANTITY + 1)]),
                "lines.quantity",
            ),
            (input(vec![bad_price]), "lines.unitPrice"),
            (input(vec![negative]), "lines.unitPrice"),
            (input(vec![bad_currency]), "lines.currency"),
            (input(vec![long_name]), "lines.productName"),
        ];
        for (case, field) in cases {
            assert_eq!(
                field_of(NewReservation::parse(case, "alice", at()).unwrap_err()),
                field
            );
        }
        assert!(
            NewReservation::parse(
                input(vec![line_input(product, MAX_RESERVATION_QUANTITY)]),
                "alice",
                at()
            )
            .is_ok()
        );
    }

    #[test]
    fn messages_name_products_and_what_is_left() {
        let id = Uuid::nil();
        let short = |available| Shortage {
            product_id: id,
            product_name: "Blue Mug".into(),
            requested: 3,
            available,
        };
        assert_eq!(
            describe_shortages(&[short(2)]),
            "Only 2 left of Blue Mug (you asked for 3)"
        );
        assert_eq!(
            describe_shortages(&[short(0), short(1)]),
            "Blue Mug is sold out (you asked for 3); Only 1 left of Blue Mug (you asked for 3)"
        );
        assert_eq!(
            describe_price_changes(&[PriceChange {
                product_id: id,
                product_name: "Blue Mug".into(),
                basket_price: Decimal::from_str("4.5").unwrap(),
                basket_currency: "EUR".into(),
                current_price: Decimal::from(5),
                current_currency: "EUR".into(),
            }]),
            "The price of Blue Mug is now 5.00 EUR (your basket has 4.50 EUR)"
        );
        assert_eq!(
            describe_unavailable(&[
                UnavailableLine {
                    product_id: id,
                    product_name: Some("Blue Vase".into()),
                },
                UnavailableLine {
                    product_id: id,
                    product_name: None,
                },
            ]),
            format!(
                "Blue Vase is no longer available; A product in your basket is no longer available (product {id})"
            )
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            ReservationStatus::Reserved,
            ReservationStatus::Sold,
            ReservationStatus::Released,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ReservationStatus::parse("LOST"), None);
    }
}
