//! Card details: validated on arrival, never stored or logged whole.

use chrono::Datelike;

use super::PaymentError;

/// A payment card as the payer typed it. Only [`Card::last4`] may leave
/// the process's memory; `Debug` prints nothing else.
#[derive(Clone)]
pub struct Card {
    number: String,
    exp_month: u32,
    exp_year: i32,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Card(**** {})", self.last4())
    }
}

impl Card {
    /// Validates number (Luhn), expiry (not in the past) and CVC.
    pub fn parse(
        number: &str,
        exp_month: i32,
        exp_year: i32,
        cvc: &str,
    ) -> Result<Self, PaymentError> {
        let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || !luhn(&digits)
        {
            return Err(PaymentError::invalid(
                "card.number",
                "is not a valid card number",
            ));
        }
        if !(1..=12).contains(&exp_month) {
            return Err(PaymentError::invalid(
                "card.expMonth",
                "must be between 1 and 12",
            ));
        }
        let today = chrono::Utc::now().date_naive();
        if (exp_year, exp_month as u32) < (today.year(), today.month())
            || exp_year > today.year() + 30
        {
            return Err(PaymentError::invalid(
                "card.expYear",
                "the card has expired or the date is invalid",
            ));
        }
        if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaymentError::invalid("card.cvc", "must be 3 or 4 digits"));
        }
        Ok(Self {
            number: digits,
            exp_month: exp_month as u32,
            exp_year,
        })
    }

    /// The full number, for the provider only.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The last four digits: all that is stored or shown.
    pub fn last4(&self) -> &str {
        &self.number[self.number.len() - 4..]
    }

    /// `MM/YYYY`, part of the idempotency fingerprint.
    pub fn expiry(&self) -> String {
        format!("{:02}/{}", self.exp_month, self.exp_year)
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_valid_and_redacted() {
        let card = Card::parse("4242 4242 4242 4242", 12, 2099 - 70, "123").unwrap();
        assert_eq!(card.last4(), "4242");
        assert_eq!(format!("{card:?}"), "Card(**** 4242)");
        for number in ["4000000000000002", "4000000000000119"] {
            assert!(Card::parse(number, 1, 2040, "999").is_ok());
        }
    }

    #[test]
    fn bad_cards_name_the_field() {
        let field = |r: Result<Card, PaymentError>| match r {
            Err(PaymentError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(
            field(Card::parse("4242424242424241", 1, 2040, "123")),
            "card.number"
        );
        assert_eq!(field(Card::parse("abcd", 1, 2040, "123")), "card.number");
        assert_eq!(
            field(Card::parse("4242424242424242", 13, 2040, "123")),
            "card.expMonth"
        );
        assert_eq!(
            field(Card::parse("4242424242424242", 1, 2001, "123")),
            "card.expYear"
        );
        assert_eq!(
            field(Card::parse("4242424242424242", 1, 2040, "12a")),
            "card.cvc"
        );
    }
}
