//! Refunds: recorded before the provider is asked, settled after.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Where a refund is in its life.
///
/// ```text
/// REQUESTED ──provider refunded──▶ SUCCEEDED   (payment total + PaymentRefunded, one transaction)
///     └──────provider refused────▶ FAILED      (its amount is free again)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Recorded, its amount held back; the provider's answer is awaited
    /// (or was lost in a crash: the sweeper asks the provider).
    Requested,
    /// Given back by the provider and counted in the payment's total.
    Succeeded,
    /// Refused by the provider, or never received by it.
    Failed,
}

impl RefundStatus {
    /// The stored form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Requested, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

impl std::fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refund of (part of) a captured payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Stable id; the provider's idempotency key for this refund.
    pub id: Uuid,
    /// The payment refunded.
    pub payment_id: Uuid,
    /// How much this refund gives back.
    pub amount: Decimal,
    /// Where it is.
    pub status: RefundStatus,
    /// The provider's reference, once refunded.
    pub provider_refund_id: Option<String>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_refused() {
        for status in [
            RefundStatus::Requested,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ] {
            assert_eq!(RefundStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RefundStatus::parse("requested"), None);
    }
}
