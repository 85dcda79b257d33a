//! The payment use cases.
//!
//! * [`Payments::create`] snapshots the caller's basket into a PENDING
//!   payment, idempotently per `(user, idempotencyKey)`;
//! * [`Payments::process`] takes a PENDING payment through PROCESSING to
//!   COMPLETED or FAILED with the provider;
//! * [`Payments::checkout`] is both in one call;
//! * cancel, refund (admin, `service/refund.rs`), read and list;
//!   [`Payments::expire_due`] is the expiry sweeper's step and
//!   [`Payments::reconcile`] (`service/reconcile.rs`) the reconciliation
//!   sweeper's.

use std::sync::Arc;
use std::time::Duration;

use shopgraph_core::identity::Viewer;
use subgraph_kit::pagination::{decode_cursor, encode_cursor, page_size};
use subgraph_kit::upstream::Credentials;
use uuid::Uuid;

use crate::domain::provider::{ChargeOutcome, ChargeRequest, PaymentProvider};
use crate::domain::{
    BasketSource, Card, NewPayment, Payment, PaymentError, PaymentItem, PaymentMethod,
    PaymentStatus, now, validate_description, validate_idempotency_key,
};
use crate::store::{Change, PaymentCursor, PaymentFilter, PaymentStore};

mod reconcile;
mod refund;

pub use reconcile::Reconciled;

/// What a client asks for when it creates a payment.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// How to pay.
    pub method: PaymentMethod,
    /// Free text.
    pub description: Option<String>,
}

/// A page of payments.
#[derive(Debug, Clone)]
pub struct PaymentPage {
    /// `(cursor, payment)`, newest first.
    pub items: Vec<(String, Payment)>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Payment operations over one store, basket source and provider.
#[derive(Clone)]
pub struct Payments {
    store: PaymentStore,
    baskets: Arc<dyn BasketSource>,
    provider: Arc<dyn PaymentProvider>,
    pending_ttl: Duration,
}

impl Payments {
    /// Use cases over `store`, reading baskets from `baskets`, charging
    /// through `provider`; pending payments live `pending_ttl`.
    pub fn new(
        store: PaymentStore,
        baskets: Arc<dyn BasketSource>,
        provider: Arc<dyn PaymentProvider>,
        pending_ttl: Duration,
    ) -> Self {
        Self {
            store,
            baskets,
            provider,
            pending_ttl,
        }
    }

    /// Creates a PENDING payment from the caller's basket; the same key and
    /// request return the same payment.
    pub async fn create(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        request: PaymentRequest,
    ) -> Result<Payment, PaymentError> {
        let fingerprint = fingerprint("create", &request, None);
        self.create_once(viewer, caller, request, fingerprint)
            .await
            .map(|(payment, _)| payment)
    }

    /// Creates a payment from the caller's basket and processes it with
    /// `card`; a repeated request returns the first one's payment as it is now.
    pub async fn checkout(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        request: PaymentRequest,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let fingerprint = fingerprint("checkout", &request, Some(&card));
        let (payment, created) = self
            .create_once(viewer, caller, request, fingerprint)
            .await?;
        if !created {
            return Ok(payment);
        }
        self.charge(payment, card).await
    }

    /// Processes the caller's PENDING payment with `card`.
    pub async fn process(
        &self,
        viewer: &Viewer,
        id: &str,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let payment = self.owned(viewer, id).await?;
        payment
            .status
            .check_transition(PaymentStatus::Processing, "process")?;
        self.charge(payment, card).await
    }

    /// Cancels the caller's PENDING payment.
    pub async fn cancel(&self, viewer: &Viewer, id: &str) -> Result<Payment, PaymentError> {
        let payment = self.owned(viewer, id).await?;
        self.transition(&payment, "cancel", Change::Cancelled)
            .await?;
        self.reload(payment.id).await
    }

    /// A payment its owner or an admin may see.
    pub async fn get(&self, viewer: &Viewer, id: &str) -> Result<Payment, PaymentError> {
        let payment = self.find(id).await?;
        if payment.is_owned_by(&viewer.user_id) || viewer.is_admin() {
            Ok(payment)
        } else {
            Err(PaymentError::NotFound(id.to_owned()))
        }
    }

    /// A page of payments matching `filter`, newest first.
    pub async fn list(
        &self,
        filter: PaymentFilter,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<PaymentPage, PaymentError> {
        let limit = page_size(first)?;
        let after = after.map(decode_cursor::<PaymentCursor>).transpose()?;
        let (payments, has_next_page) = self.store.list(&filter, after, limit).await?;
        Ok(PaymentPage {
            items: payments
                .into_iter()
                .map(|p| {
                    let cursor = encode_cursor(&PaymentCursor {
                        created_at: p.created_at,
                        id: p.id,
                    });
                    (cursor, p)
                })
                .collect(),
            has_next_page,
        })
    }

    /// Expires pending payments past `expires_at`; returns how many.
    pub async fn expire_due(&self) -> Result<u64, PaymentError> {
        self.store.expire_due(now()).await
    }

    async fn create_once(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        request: PaymentRequest,
        fingerprint: String,
    ) -> Result<(Payment, bool), PaymentError> {
        let key = validate_idempotency_key(&request.idempotency_key)?;
        let description = validate_description(request.description)?;
        if let Some(existing) = self.store.find_by_key(&viewer.user_id, &key).await? {
            return same_request(existing, &fingerprint, &key).map(|p| (p, false));
        }

        let basket = self.baskets.current_basket(caller).await?;
        let Some(first) = basket.lines.first() else {
            return Err(PaymentError::EmptyBasket);
        };
        let currency = first.currency.clone();
        if let Some(other) = basket.lines.iter().find(|line| line.currency != currency) {
            return Err(PaymentError::MixedCurrencies(
                currency,
                other.currency.clone(),
            ));
        }
        let items: Vec<PaymentItem> = basket
            .lines
            .into_iter()
            .map(|line| PaymentItem {
                product_id: line.product_id,
                product_name: line.product_name,
                quantity: line.quantity,
                unit_price: line.unit_price,
                currency: line.currency,
            })
            .collect();
        let created_at = now();
        let ttl = chrono::Duration::from_std(self.pending_ttl).unwrap_or(chrono::Duration::MAX);
        let new = NewPayment {
            user_id: viewer.user_id.clone(),
            basket_id: Some(basket.id),
            amount: items.iter().map(PaymentItem::subtotal).sum(),
            currency,
            method: request.method,
            provider: self.provider.name().to_owned(),
            description,
            idempotency_key: key.clone(),
            request_fingerprint: fingerprint.clone(),
            items,
            created_at,
            expires_at: created_at.checked_add_signed(ttl).unwrap_or(created_at),
        };
        match self.store.insert(new).await? {
            Some(payment) => {
                tracing::info!(payment_id = %payment.id, amount = %payment.amount, "payment created");
                Ok((payment, true))
            }
            None => {
                // Lost a race with an identical request: return the winner's.
                let existing = self
                    .store
                    .find_by_key(&viewer.user_id, &key)
                    .await?
                    .ok_or_else(|| PaymentError::NotFound(key.clone()))?;
                same_request(existing, &fingerprint, &key).map(|p| (p, false))
            }
        }
    }

    async fn charge(&self, payment: Payment, card: Card) -> Result<Payment, PaymentError> {
        let processing = Change::Processing {
            card_last4: card.last4().to_owned(),
        };
        self.transition(&payment, "process", processing).await?;
        let request = ChargeRequest {
            payment_id: payment.id,
            amount: payment.amount,
            currency: payment.currency.clone(),
            card,
        };
        let outcome = match self.provider.charge(request).await {
            Ok(ChargeOutcome::Captured { provider_id }) => Change::Completed { provider_id },
            Ok(ChargeOutcome::Declined { reason }) => Change::Failed {
                reason,
                retryable: false,
            },
            Err(err) => Change::Failed {
                reason: err.reason,
                retryable: true,
            },
        };
        if let Change::Failed { reason, .. } = &outcome {
            tracing::info!(payment_id = %payment.id, %reason, "payment failed");
        }
        if !self
            .store
            .change_status(payment.id, PaymentStatus::Processing, outcome)
            .await?
        {
            tracing::error!(payment_id = %payment.id, "payment left PROCESSING while the provider was charging");
        }
        self.reload(payment.id).await
    }

    /// Applies a change from the payment's current status, or explains why not.
    async fn transition(
        &self,
        payment: &Payment,
        action: &'static str,
        change: Change,
    ) -> Result<(), PaymentError> {
        payment.status.check_transition(change.target(), action)?;
        if self
            .store
            .change_status(payment.id, payment.status, change)
            .await?
        {
            Ok(())
        } else {
            let current = self.reload(payment.id).await?.status;
            Err(PaymentError::IllegalTransition { current, action })
        }
    }

    async fn find(&self, id: &str) -> Result<Payment, PaymentError> {
        let uuid = Uuid::parse_str(id.trim()).map_err(|_| PaymentError::NotFound(id.to_owned()))?;
        self.store
            .get(uuid)
            .await?
            .ok_or_else(|| PaymentError::NotFound(id.to_owned()))
    }

    async fn owned(&self, viewer: &Viewer, id: &str) -> Result<Payment, PaymentError> {
        let payment = self.find(id).await?;
        if payment.is_owned_by(&viewer.user_id) {
            Ok(payment)
        } else {
            Err(PaymentError::NotFound(id.to_owned()))
        }
    }

    async fn reload(&self, id: Uuid) -> Result<Payment, PaymentError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(id.to_string()))
    }
}

/// What a request asked for, minus secrets: equal fingerprints mean the
/// same request.
fn fingerprint(kind: &str, request: &PaymentRequest, card: Option<&Card>) -> String {
    format!(
        "{kind}|{}|{}|{}|{}",
        request.method.as_str(),
        card.map_or("", Card::last4),
        card.map(Card::expiry).unwrap_or_default(),
        request.description.as_deref().unwrap_or("").trim(),
    )
}

fn same_request(existing: Payment, fingerprint: &str, key: &str) -> Result<Payment, PaymentError> {
    if existing.request_fingerprint == fingerprint {
        Ok(existing)
    } else {
        Err(PaymentError::IdempotencyConflict(key.to_owned()))
    }
}
