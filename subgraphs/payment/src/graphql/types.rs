//! GraphQL shapes of payments.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use subgraph_kit::cost::{ASSUMED_BASKET_LINES, list_size};
use subgraph_kit::federation::ProductRef;
use subgraph_kit::money::Money;

use crate::domain::{
    Card, Payment, PaymentError, PaymentItem, PaymentMethod as DomainMethod,
    PaymentStatus as DomainStatus,
};
use crate::service::{PaymentPage, PaymentRequest, Payments};

/// A payment for the contents of a basket.
pub struct PaymentNode(pub Payment);

#[Object(name = "Payment")]
impl PaymentNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Who paid: the payer's user id. A shopper only ever sees their own
    /// payments; an admin listing `payments` sees whose payment they are
    /// about to refund.
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.clone())
    }

    /// Amount due, from the basket at creation.
    async fn amount(&self) -> Money {
        Money::new(self.0.amount, self.0.currency.clone())
    }

    /// Amount refunded so far.
    async fn refunded_amount(&self) -> Money {
        Money::new(self.0.refunded_amount, self.0.currency.clone())
    }

    async fn status(&self) -> PaymentStatus {
        self.0.status.into()
    }

    async fn method(&self) -> PaymentMethod {
        self.0.method.into()
    }

    /// The basket lines the payment was created from.
    #[graphql(directive = list_size::apply(ASSUMED_BASKET_LINES, None, None, None))]
    async fn items(&self) -> Vec<PaymentItemNode> {
        self.0.items.iter().cloned().map(PaymentItemNode).collect()
    }

    /// The provider that charges it.
    async fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The provider's reference for the charge.
    async fn provider_id(&self) -> Option<&str> {
        self.0.provider_id.as_deref()
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Why the payment failed.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    /// Whether the failure was transient: a new payment may succeed.
    async fn retryable(&self) -> bool {
        self.0.retryable
    }

    /// Last four digits of the card charged.
    async fn card_last4(&self) -> Option<&str> {
        self.0.card_last4.as_deref()
    }

    async fn idempotency_key(&self) -> &str {
        &self.0.idempotency_key
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When the provider answered.
    async fn processed_at(&self) -> Option<DateTime<Utc>> {
        self.0.processed_at
    }

    /// When a pending payment expires.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

/// One basket line a payment covers.
pub struct PaymentItemNode(pub PaymentItem);

#[Object(name = "PaymentItem")]
impl PaymentItemNode {
    /// The product as the catalogue has it now (its fields come from the
    /// product subgraph); `null` once the product is deleted. The order
    /// itself outlives the catalogue: `productName` and `unitPrice` are
    /// the snapshot taken at checkout.
    async fn product(&self) -> Option<ProductRef> {
        Some(ProductRef::new(self.0.product_id))
    }

    /// The product's name when the payment was created (kept after the
    /// product is renamed or deleted).
    async fn product_name(&self) -> &str {
        &self.0.product_name
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    /// The unit price charged (the catalogue's price at checkout).
    async fn unit_price(&self) -> Money {
        Money::new(self.0.unit_price, self.0.currency.clone())
    }

    async fn subtotal(&self) -> Money {
        Money::new(self.0.subtotal(), self.0.currency.clone())
    }
}

subgraph_kit::mirror_enum! {
    /// Where a payment is in its life.
    PaymentStatus <=> DomainStatus {
        Pending, Processing, Completed, Failed, PartiallyRefunded, Refunded, Cancelled, Expired,
    }
}

subgraph_kit::mirror_enum! {
    /// How a payment is paid.
    PaymentMethod <=> DomainMethod {
        /// A payment card (see `CardInput`).
        Card,
    }
}

/// A payment card. Only the last four digits are ever stored.
#[derive(InputObject)]
pub struct CardInput {
    /// The card number (spaces and dashes allowed).
    pub number: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cvc: String,
}

impl CardInput {
    /// The validated card.
    pub fn parse(&self) -> Result<Card, PaymentError> {
        Card::parse(&self.number, self.exp_month, self.exp_year, &self.cvc)
    }
}

/// Pay for the basket in one step.
#[derive(InputObject)]
pub struct CheckoutInput {
    /// Repeating a request with the same key returns the same payment.
    pub idempotency_key: String,
    pub method: PaymentMethod,
    pub card: CardInput,
    pub description: Option<String>,
}

/// Create a pending payment for the basket (process it later).
#[derive(InputObject)]
pub struct CreatePaymentInput {
    /// Repeating a request with the same key returns the same payment.
    pub idempotency_key: String,
    pub method: PaymentMethod,
    pub description: Option<String>,
}

impl From<&CheckoutInput> for PaymentRequest {
    fn from(input: &CheckoutInput) -> Self {
        Self {
            idempotency_key: input.idempotency_key.clone(),
            method: input.method.into(),
            description: input.description.clone(),
        }
    }
}

impl From<CreatePaymentInput> for PaymentRequest {
    fn from(input: CreatePaymentInput) -> Self {
        Self {
            idempotency_key: input.idempotency_key,
            method: input.method.into(),
            description: input.description,
        }
    }
}

/// A page of payments, newest first.
pub type PaymentConnection = Connection<String, PaymentNode>;

/// Turns a page into the GraphQL connection.
pub fn connection(page: PaymentPage, after_given: bool) -> PaymentConnection {
    let mut connection = Connection::new(after_given, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, p)| Edge::new(cursor, PaymentNode(p))),
    );
    connection
}

/// The payment use cases from the schema data.
pub fn payments<'a>(ctx: &Context<'a>) -> &'a Payments {
    ctx.data_unchecked::<Payments>()
}

pub use super::error::payment_error;
