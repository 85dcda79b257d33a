//! The payment use cases.
//!
//! * [`Payments::create`] runs the checkout saga up to a PENDING payment:
//!   reads the caller's basket, reserves its units in product, locks the
//!   basket for the payment, stores the payment (idempotently per
//!   `(user, idempotencyKey)`, bound to the order), and compensates every
//!   step already taken when a later one fails;
//! * [`Payments::process`] takes a PENDING payment through PROCESSING to
//!   COMPLETED or FAILED with the provider (its reservation and lock are
//!   already held);
//! * [`Payments::checkout`] is both in one call, and once the provider was
//!   asked it always answers with the payment;
//! * cancel, refund (admin, `service/refund.rs`), read and list;
//!   [`Payments::expire_due`] is the expiry sweeper's step and
//!   [`Payments::reconcile`] (`service/reconcile.rs`) the reconciliation
//!   sweeper's.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shopgraph_core::error::error_chain;
use shopgraph_core::identity::Viewer;
use subgraph_kit::pagination::{decode_cursor, encode_cursor, page_size};
use subgraph_kit::upstream::Credentials;
use uuid::Uuid;

use crate::domain::provider::{ChargeOutcome, ChargeRequest, PaymentProvider};
use crate::domain::{
    BasketSource, Card, NewPayment, Payment, PaymentError, PaymentItem, PaymentMethod,
    PaymentStatus, StockReservations, now, order_fingerprint, same_lines, validate_description,
    validate_idempotency_key,
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

/// How long the things a checkout holds live.
#[derive(Debug, Clone, Copy)]
pub struct Holds {
    /// How long a payment may stay PENDING (`PAYMENT_TTL`).
    pub pending_ttl: Duration,
    /// How much longer than its payment a stock reservation and a basket
    /// lock live (`CHECKOUT_SETTLE_MARGIN`): time for the payment's
    /// settling event to reach product and basket before they give up on
    /// it.
    pub settle_margin: Duration,
}

/// How long a checkout keeps trying to lock a basket that another
/// checkout holds (see `Payments::lock_basket`).
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// One checkout request while its saga runs: what the compensations and
/// the idempotency rule need to know.
struct Attempt<'a> {
    viewer: &'a Viewer,
    caller: &'a Credentials,
    key: &'a str,
    fingerprint: &'a str,
    items: &'a [PaymentItem],
}

/// Payment operations over one store, basket, stock and provider.
#[derive(Clone)]
pub struct Payments {
    store: PaymentStore,
    baskets: Arc<dyn BasketSource>,
    stock: Arc<dyn StockReservations>,
    provider: Arc<dyn PaymentProvider>,
    holds: Holds,
}

impl Payments {
    /// Use cases over `store`, reading and locking baskets through
    /// `baskets`, reserving units through `stock`, charging through
    /// `provider`; pending payments and what they hold live as `holds` says.
    pub fn new(
        store: PaymentStore,
        baskets: Arc<dyn BasketSource>,
        stock: Arc<dyn StockReservations>,
        provider: Arc<dyn PaymentProvider>,
        holds: Holds,
    ) -> Self {
        Self {
            store,
            baskets,
            stock,
            provider,
            holds,
        }
    }

    /// Creates a PENDING payment from the caller's basket, holding its
    /// units and the basket until it is processed, cancelled or expires;
    /// the same key and request return the same payment.
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
    /// `card`; a repeated request returns the first one's payment as it is
    /// now. Once the provider has been asked, the answer is the payment,
    /// whatever fails afterwards (a client that saw an error would retry and
    /// might pay twice).
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
        self.charge(caller, payment, card).await
    }

    /// Processes the caller's PENDING payment with `card` (its units and
    /// basket were reserved and locked when it was created).
    pub async fn process(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        id: &str,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let payment = self.owned(viewer, id).await?;
        payment
            .status
            .check_transition(PaymentStatus::Processing, "process")?;
        self.charge(caller, payment, card).await
    }

    /// Cancels the caller's PENDING payment and lets go of its units and
    /// basket at once (`PaymentCancelled` does it too, later).
    pub async fn cancel(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        id: &str,
    ) -> Result<Payment, PaymentError> {
        let payment = self.owned(viewer, id).await?;
        self.transition(&payment, "cancel", Change::Cancelled)
            .await?;
        self.compensate(caller, payment.id, "the payment was cancelled")
            .await;
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

    /// The checkout saga up to a stored PENDING payment (contract steps
    /// 1–7); `true` when this call created it, `false` for a repeat.
    async fn create_once(
        &self,
        viewer: &Viewer,
        caller: &Credentials,
        request: PaymentRequest,
        fingerprint: String,
    ) -> Result<(Payment, bool), PaymentError> {
        // 1. The key, then the basket as it is now.
        let key = validate_idempotency_key(&request.idempotency_key)?;
        let description = validate_description(request.description)?;
        let basket = self.baskets.current_basket(caller).await?;
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
        // 2. A payment with this key already: the same request or a conflict.
        if let Some(existing) = self.store.find_by_key(&viewer.user_id, &key).await? {
            return same_request(existing, &fingerprint, &items, &key).map(|p| (p, false));
        }
        // 3. Something to pay, in one currency.
        let Some(first) = items.first() else {
            return Err(PaymentError::EmptyBasket);
        };
        let currency = first.currency.clone();
        if let Some(other) = items.iter().find(|item| item.currency != currency) {
            return Err(PaymentError::MixedCurrencies(
                currency,
                other.currency.clone(),
            ));
        }
        // 4. The payment's id, which its reservation and lock carry too.
        let id = Uuid::now_v7();
        let created_at = now();
        let expires_at = after(created_at, self.holds.pending_ttl);
        let held_until = after(expires_at, self.holds.settle_margin);
        let attempt = Attempt {
            viewer,
            caller,
            key: &key,
            fingerprint: &fingerprint,
            items: &items,
        };
        // 5. Every line's units, all or nothing, at the basket's prices.
        if let Err(err) = self.stock.reserve(caller, id, held_until, &items).await {
            let err =
                PaymentError::from_checkout_step(err, PaymentError::Stock).naming_lines(&items);
            return self.unless_duplicate(&attempt, err).await;
        }
        // 6. The basket, for this payment, if its lines are still these.
        if let Some(duplicate) = self.lock_basket(&attempt, id, held_until).await? {
            return Ok((duplicate, false));
        }
        // 7. The payment, unique per (user, key).
        let new = NewPayment {
            id,
            user_id: viewer.user_id.clone(),
            basket_id: Some(basket.id),
            amount: items.iter().map(PaymentItem::subtotal).sum(),
            currency,
            method: request.method,
            provider: self.provider.name().to_owned(),
            description,
            idempotency_key: key.clone(),
            request_fingerprint: fingerprint.clone(),
            order_fingerprint: order_fingerprint(&viewer.user_id, &items),
            items: items.clone(),
            created_at,
            expires_at,
        };
        match self.store.insert(new).await {
            Ok(Some(payment)) => {
                tracing::info!(payment_id = %payment.id, amount = %payment.amount, "payment created");
                Ok((payment, true))
            }
            Ok(None) => {
                // Lost a race with a request with the same key.
                self.compensate(caller, id, "another payment has its key")
                    .await;
                let existing = self
                    .store
                    .find_by_key(&viewer.user_id, &key)
                    .await?
                    .ok_or_else(|| PaymentError::NotFound(key.clone()))?;
                same_request(existing, &fingerprint, &items, &key).map(|p| (p, false))
            }
            Err(err) => {
                // Release only what certainly has no payment: a commit whose
                // answer was lost would otherwise lose its reservation.
                match self.store.get(id).await {
                    Ok(Some(payment)) => {
                        tracing::warn!(payment_id = %id, error = %error_chain(&err), "payment stored although the insert reported an error");
                        return Ok((payment, true));
                    }
                    Ok(None) => {
                        self.compensate(caller, id, "the payment could not be stored")
                            .await;
                    }
                    Err(_) => {
                        tracing::error!(payment_id = %id, error = %error_chain(&err), "payment insert failed and its outcome is unknown: its reservation and basket lock are left to expire");
                    }
                }
                Err(err)
            }
        }
    }

    /// After a checkout step was refused (and compensated): the payment of
    /// an identical request that got there first, else `err`.
    async fn unless_duplicate(
        &self,
        attempt: &Attempt<'_>,
        err: PaymentError,
    ) -> Result<(Payment, bool), PaymentError> {
        match self.duplicate(attempt).await? {
            Some(existing) => Ok((existing, false)),
            None => Err(err),
        }
    }

    /// The payment already stored under the attempt's key, if it is this
    /// request's (step 2's rule; `CONFLICT` if it is another request's).
    async fn duplicate(&self, attempt: &Attempt<'_>) -> Result<Option<Payment>, PaymentError> {
        match self
            .store
            .find_by_key(&attempt.viewer.user_id, attempt.key)
            .await?
        {
            Some(existing) => {
                same_request(existing, attempt.fingerprint, attempt.items, attempt.key).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Step 6: locks the basket for payment `id`; `Some` when an identical
    /// request's payment answers instead. While another checkout holds the
    /// lock (`CONFLICT`) it tries again for up to [`LOCK_WAIT`]: an
    /// identical request's payment may be about to be stored, or a settled
    /// checkout's lock about to be cleared by its event (a retry right
    /// after a declined card). Any refusal releases reservation `id`.
    async fn lock_basket(
        &self,
        attempt: &Attempt<'_>,
        id: Uuid,
        held_until: DateTime<Utc>,
    ) -> Result<Option<Payment>, PaymentError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let refused = match self
                .baskets
                .begin_checkout(attempt.caller, id, attempt.items, held_until)
                .await
            {
                Ok(()) => return Ok(None),
                Err(err) => PaymentError::from_checkout_step(err, PaymentError::Basket),
            };
            let give_up = !refused.is_conflict() || tokio::time::Instant::now() >= deadline;
            match self.duplicate(attempt).await {
                Ok(None) if !give_up => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    continue;
                }
                Ok(None) => {
                    self.release_reservation(attempt.caller, id, "the basket could not be locked")
                        .await;
                    return Err(refused);
                }
                Ok(Some(existing)) => {
                    self.release_reservation(attempt.caller, id, "an identical request was first")
                        .await;
                    return Ok(Some(existing));
                }
                Err(err) => {
                    self.release_reservation(attempt.caller, id, "the basket could not be locked")
                        .await;
                    return Err(err);
                }
            }
        }
    }

    /// Compensation of steps 5 and 6: the reservation and the basket lock
    /// of payment `id`, which will not exist.
    async fn compensate(&self, caller: &Credentials, id: Uuid, why: &'static str) {
        self.release_reservation(caller, id, why).await;
        match self.baskets.release_checkout(caller, id).await {
            Ok(()) => tracing::info!(payment_id = %id, reason = why, "basket lock released"),
            Err(err) => {
                tracing::warn!(payment_id = %id, reason = why, error = %error_chain(&err), "basket lock not released: it expires on its own");
            }
        }
    }

    /// Compensation of step 5: the reservation of payment `id`.
    async fn release_reservation(&self, caller: &Credentials, id: Uuid, why: &'static str) {
        match self.stock.release(caller, id).await {
            Ok(()) => tracing::info!(payment_id = %id, reason = why, "stock reservation released"),
            Err(err) => {
                tracing::warn!(payment_id = %id, reason = why, error = %error_chain(&err), "stock reservation not released: the product sweeper releases it when it expires");
            }
        }
    }

    /// Step 8: charges a PENDING payment. Errors before the provider is
    /// asked are returned; after it, nothing is: the money may have moved,
    /// so the answer is the payment as stored, or as last known when the
    /// store cannot be read (PROCESSING stays for reconciliation). A
    /// failed charge lets go of its units and basket at once, so the payer
    /// can retry with another card straight away (`PaymentFailed` does it
    /// too, later; both are idempotent).
    async fn charge(
        &self,
        caller: &Credentials,
        payment: Payment,
        card: Card,
    ) -> Result<Payment, PaymentError> {
        let card_last4 = card.last4().to_owned();
        let processing = Change::Processing {
            card_last4: card_last4.clone(),
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
        let mut known = Payment {
            status: PaymentStatus::Processing,
            card_last4: Some(card_last4),
            ..payment
        };
        match self
            .store
            .change_status(known.id, PaymentStatus::Processing, outcome.clone())
            .await
        {
            Ok(true) => {
                let failed = matches!(outcome, Change::Failed { .. });
                known = settled(known, outcome);
                if failed {
                    self.compensate(caller, known.id, "the charge failed").await;
                }
            }
            Ok(false) => {
                tracing::error!(payment_id = %known.id, "payment left PROCESSING while the provider was charging");
            }
            Err(err) => {
                tracing::error!(payment_id = %known.id, error = %error_chain(&err), outcome = ?outcome.target(), "the provider answered but the outcome could not be stored: the payment stays PROCESSING until reconciled");
            }
        }
        match self.reload(known.id).await {
            Ok(stored) => Ok(stored),
            Err(err) => {
                tracing::error!(payment_id = %known.id, error = %error_chain(&err), "charged payment could not be read back: answering with what is known");
                Ok(known)
            }
        }
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

/// Step 2: a payment found under the request's key is this request's when
/// the request asked for the same thing (method, card, description) and
/// the basket still holds exactly the payment's lines, or nothing (they
/// were bought and removed); otherwise the key is reused for a different
/// request.
fn same_request(
    existing: Payment,
    fingerprint: &str,
    basket: &[PaymentItem],
    key: &str,
) -> Result<Payment, PaymentError> {
    let same_order = basket.is_empty()
        || match &existing.order_fingerprint {
            Some(stored) => *stored == order_fingerprint(&existing.user_id, basket),
            // Made before order fingerprints were stored: its lines say it.
            None => same_lines(&existing.items, basket),
        };
    if existing.request_fingerprint == fingerprint && same_order {
        Ok(existing)
    } else {
        Err(PaymentError::IdempotencyConflict(key.to_owned()))
    }
}

/// `at + duration`, saturating (a huge setting means "never").
fn after(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| at.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `payment` after `change` was stored (the fields the store wrote).
fn settled(payment: Payment, change: Change) -> Payment {
    let at = now();
    let status = change.target();
    match change {
        Change::Completed { provider_id } => Payment {
            status,
            provider_id: Some(provider_id),
            processed_at: Some(at),
            updated_at: at,
            ..payment
        },
        Change::Failed { reason, retryable } => Payment {
            status,
            failure_reason: Some(reason),
            retryable,
            processed_at: Some(at),
            updated_at: at,
            ..payment
        },
        Change::Processing { .. } | Change::Cancelled => Payment {
            status,
            updated_at: at,
            ..payment
        },
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
