//! The payment state machine (SPEC §2).
//!
//! ```text
//! PENDING ──process──▶ PROCESSING ──▶ COMPLETED ──refund──▶ PARTIALLY_REFUNDED ──▶ REFUNDED
//!    │                     └────────▶ FAILED          └──────refund (all)──────────▶ REFUNDED
//!    ├──cancel──▶ CANCELLED
//!    └──expire──▶ EXPIRED
//! ```
//!
//! Every change goes through [`PaymentStatus::check_transition`]; the store
//! then applies it with `UPDATE .. WHERE status = <from>`, so two racing
//! changes cannot both win.

use super::PaymentError;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Created, waiting to be processed (until `expires_at`).
    Pending,
    /// Handed to the provider.
    Processing,
    /// Captured.
    Completed,
    /// Declined or errored at the provider.
    Failed,
    /// Part of the captured amount was refunded.
    PartiallyRefunded,
    /// All of the captured amount was refunded.
    Refunded,
    /// Cancelled by its owner before processing.
    Cancelled,
    /// Not processed before `expires_at`.
    Expired,
}

impl PaymentStatus {
    /// Every status, for exhaustive tests.
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Processing,
        Self::Completed,
        Self::Failed,
        Self::PartiallyRefunded,
        Self::Refunded,
        Self::Cancelled,
        Self::Expired,
    ];

    /// The stored and GraphQL form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Whether the state machine has an edge `self → to`.
    pub const fn can_become(self, to: Self) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, to),
            (Pending, Processing | Cancelled | Expired)
                | (Processing, Completed | Failed)
                | (Completed | PartiallyRefunded, PartiallyRefunded | Refunded)
        )
    }

    /// `Ok` if `self → to` is allowed, else a `CONFLICT` naming `self`.
    pub fn check_transition(self, to: Self, action: &'static str) -> Result<(), PaymentError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(PaymentError::IllegalTransition {
                current: self,
                action,
            })
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::{self, *};

    #[test]
    fn exactly_the_spec_edges_exist() {
        let allowed = [
            (Pending, Processing),
            (Pending, Cancelled),
            (Pending, Expired),
            (Processing, Completed),
            (Processing, Failed),
            (Completed, PartiallyRefunded),
            (Completed, Refunded),
            (PartiallyRefunded, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
        ];
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for terminal in [Failed, Refunded, Cancelled, Expired] {
            assert!(
                PaymentStatus::ALL
                    .iter()
                    .all(|to| !terminal.can_become(*to))
            );
        }
    }

    #[test]
    fn stored_forms_round_trip() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("LOST"), None);
    }
}
