//! The payment subgraph on MariaDB and SQLite, with real product and basket
//! subgraphs in front of it, all on one event bus: checkout outcomes per
//! test card, idempotency under concurrency, every transition (legal or
//! not), refunds, ownership, expiry and a basket outage. (The checkout
//! saga's own cases — stock, prices, the basket lock — are in
//! `checkout.rs`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use subgraph_kit::events::EventBus;

use crate::helpers::{As, Backend, GqlResponse, Options, TestApp, backend_tests, unreachable_url};

const PAYMENT: &str = "id status amount { amount currency } refundedAmount { amount } method provider providerId \
    failureReason retryable cardLast4 createdAt processedAt expiresAt \
    items { product { id } productName quantity unitPrice { amount } subtotal { amount } }";

const SUCCEEDS: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const PROVIDER_ERROR: &str = "4000000000000119";

/// Product and basket (SQLite) and the payment subgraph under test.
struct Shop {
    product: TestApp,
    basket: TestApp,
    payment: TestApp,
}

fn card(number: &str) -> Value {
    json!({ "number": number, "expMonth": 12, "expYear": 2040, "cvc": "123" })
}

impl Shop {
    /// The three on one event bus, as in `shopgraph dev`: a checkout's
    /// events settle its stock reservation and basket lock.
    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let bus = EventBus::in_process();
        let product = TestApp::spawn_with(
            Backend::Sqlite,
            Options {
                bus: Some(bus.clone()),
                ..Options::default()
            },
        )
        .await;
        let basket =
            TestApp::spawn_basket_on(&bus, Backend::Sqlite, &product.graphql_url(), &[]).await;
        let payment = TestApp::spawn_payment_on(
            &bus,
            backend,
            &product.graphql_url(),
            &basket.graphql_url(),
            extra,
        )
        .await;
        Self {
            product,
            basket,
            payment,
        }
    }

    /// Waits until no checkout holds `who`'s basket (a settled checkout's
    /// event clears its lock and removes what it bought), then leaves one
    /// new line in it: the next checkout's order.
    async fn refill(&self, who: As, price: &str, quantity: i32) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let basket = self
                .basket
                .gql(who, "{ myBasket { checkoutInProgress } }", json!({}))
                .await;
            if basket.data()["myBasket"]["checkoutInProgress"] == false {
                break;
            }
            assert!(Instant::now() < deadline, "the basket's checkout settles");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.basket
            .gql(who, "mutation { clearBasket { itemCount } }", json!({}))
            .await
            .data();
        self.fill_basket(who, price, quantity).await
    }

    /// Puts `quantity` of a new product at `price` in `who`'s basket.
    async fn fill_basket(&self, who: As, price: &str, quantity: i32) -> String {
        let id = self
            .product
            .create_product("Thing", price, 1000, "Test")
            .await;
        self.basket
            .gql(
                who,
                "mutation($p: ID!, $q: Int!) { addBasketItem(productId: $p, quantity: $q) { itemCount } }",
                json!({ "p": id, "q": quantity }),
            )
            .await
            .data();
        id
    }

    async fn checkout(&self, who: As, key: &str, card_number: &str) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("mutation($input: CheckoutInput!) {{ checkout(input: $input) {{ {PAYMENT} }} }}"),
                json!({ "input": { "idempotencyKey": key, "method": "CARD", "card": card(card_number) } }),
            )
            .await
    }

    async fn create(&self, who: As, key: &str) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("mutation($input: CreatePaymentInput!) {{ createPayment(input: $input) {{ {PAYMENT} }} }}"),
                json!({ "input": { "idempotencyKey": key, "method": "CARD" } }),
            )
            .await
    }

    async fn process(&self, who: As, id: &str, card_number: &str) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("mutation($id: ID!, $card: CardInput) {{ processPayment(id: $id, card: $card) {{ {PAYMENT} }} }}"),
                json!({ "id": id, "card": card(card_number) }),
            )
            .await
    }

    async fn cancel(&self, who: As, id: &str) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("mutation($id: ID!) {{ cancelPayment(id: $id) {{ {PAYMENT} }} }}"),
                json!({ "id": id }),
            )
            .await
    }

    async fn refund(&self, who: As, id: &str, amount: Option<&str>) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("mutation($id: ID!, $amount: Decimal) {{ refundPayment(id: $id, amount: $amount) {{ {PAYMENT} }} }}"),
                json!({ "id": id, "amount": amount }),
            )
            .await
    }

    async fn get(&self, who: As, id: &str) -> GqlResponse {
        self.payment
            .gql(
                who,
                &format!("query($id: ID!) {{ payment(id: $id) {{ {PAYMENT} }} }}"),
                json!({ "id": id }),
            )
            .await
    }
}

fn field<'a>(response: &'a GqlResponse, name: &str) -> &'a Value {
    &response.data()[name]
}

async fn checkout_outcomes_follow_the_test_cards(backend: Backend) {
    let shop = Shop::start(backend, &[]).await;
    let product = shop.fill_basket(As::User, "0.10", 3).await;
    shop.fill_basket(As::User, "19.99", 2).await;

    let paid = shop.checkout(As::User, "order-1", SUCCEEDS).await;
    let paid = field(&paid, "checkout").clone();
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(
        paid["amount"],
        json!({ "amount": "40.28", "currency": "EUR" }),
        "0.10 x 3 + 19.99 x 2"
    );
    assert_eq!(paid["refundedAmount"]["amount"], "0.00");
    assert_eq!(paid["cardLast4"], "4242");
    assert_eq!(paid["provider"], "simulated");
    assert!(paid["providerId"].as_str().unwrap().starts_with("sim_ch_"));
    assert!(paid["processedAt"].is_string());
    let items = paid["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .any(|i| i["product"]["id"] == product && i["subtotal"]["amount"] == "0.30")
    );

    // The paid lines leave the basket when PaymentCompleted arrives.
    shop.refill(As::User, "1.00", 1).await;
    let declined = shop.checkout(As::User, "order-2", DECLINED).await;
    let declined = field(&declined, "checkout");
    assert_eq!(declined["status"], "FAILED");
    assert_eq!(declined["retryable"], false);
    assert!(
        declined["failureReason"]
            .as_str()
            .unwrap()
            .contains("declined")
    );

    // A declined card lets go of the basket at once: another try may follow.
    let errored = shop.checkout(As::User, "order-3", PROVIDER_ERROR).await;
    let errored = field(&errored, "checkout");
    assert_eq!(errored["status"], "FAILED");
    assert_eq!(errored["retryable"], true);

    let read = shop.get(As::User, paid["id"].as_str().unwrap()).await;
    assert_eq!(field(&read, "payment")["status"], "COMPLETED");
    let mine = shop
        .payment
        .gql(
            As::User,
            "{ myPayments(first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    let page = field(&mine, "myPayments").clone();
    assert_eq!(page["edges"].as_array().unwrap().len(), 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = shop
        .payment
        .gql(
            As::User,
            "query($after: String) { myPayments(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({ "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let rest = field(&rest, "myPayments");
    assert_eq!(rest["edges"][0]["node"]["id"], paid["id"], "oldest last");
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
}

async fn idempotency_holds_under_concurrent_duplicates(backend: Backend) {
    let shop = Arc::new(Shop::start(backend, &[]).await);
    shop.fill_basket(As::User, "12.00", 1).await;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let shop = Arc::clone(&shop);
            tokio::spawn(async move { shop.checkout(As::User, "same-key", SUCCEEDS).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        ids.insert(
            field(&response, "checkout")["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1, "every duplicate got the same payment");
    let all = shop
        .payment
        .gql(
            As::User,
            "{ myPayments(first: 100) { edges { node { id status } } } }",
            json!({}),
        )
        .await;
    let edges = field(&all, "myPayments")["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 1, "exactly one payment exists");
    assert_eq!(edges[0]["node"]["status"], "COMPLETED");

    let replay = shop.checkout(As::User, "same-key", SUCCEEDS).await;
    assert_eq!(field(&replay, "checkout")["id"], edges[0]["node"]["id"]);
    let different = shop.checkout(As::User, "same-key", DECLINED).await;
    assert_eq!(different.code(), "CONFLICT");
    let other_user = shop.fill_basket(As::OtherUser, "1.00", 1).await;
    assert!(!other_user.is_empty());
    let theirs = shop.checkout(As::OtherUser, "same-key", SUCCEEDS).await;
    assert_ne!(
        field(&theirs, "checkout")["id"],
        edges[0]["node"]["id"],
        "keys are per user"
    );
}

async fn two_step_payments_cancel_and_conflicts(backend: Backend) {
    let shop = Shop::start(backend, &[]).await;
    shop.fill_basket(As::User, "5.00", 2).await;

    let created = shop.create(As::User, "two-step").await;
    let created = field(&created, "createPayment").clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "PENDING");
    assert!(created["expiresAt"].is_string());
    assert_eq!(created["amount"]["amount"], "10.00");
    assert_eq!(
        field(&shop.create(As::User, "two-step").await, "createPayment")["id"],
        id.as_str()
    );

    let processed = shop.process(As::User, &id, SUCCEEDS).await;
    assert_eq!(field(&processed, "processPayment")["status"], "COMPLETED");
    let again = shop.process(As::User, &id, SUCCEEDS).await;
    assert_eq!(again.code(), "CONFLICT");
    assert!(
        again.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("COMPLETED"),
        "names the status"
    );
    assert_eq!(shop.cancel(As::User, &id).await.code(), "CONFLICT");

    shop.refill(As::User, "5.00", 1).await;
    let other = field(&shop.create(As::User, "to-cancel").await, "createPayment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        field(&shop.cancel(As::User, &other).await, "cancelPayment")["status"],
        "CANCELLED"
    );
    let late = shop.process(As::User, &other, SUCCEEDS).await;
    assert_eq!(late.code(), "CONFLICT");
    assert!(
        late.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELLED")
    );
    assert_eq!(
        shop.refund(As::Admin, &other, None).await.code(),
        "CONFLICT"
    );
}

async fn refunds_are_partial_full_and_bounded(backend: Backend) {
    let shop = Shop::start(backend, &[]).await;
    shop.fill_basket(As::User, "10.00", 3).await;
    let paid = shop.checkout(As::User, "refund-me", SUCCEEDS).await;
    let id = field(&paid, "checkout")["id"].as_str().unwrap().to_owned();

    assert_eq!(
        shop.refund(As::User, &id, Some("1.00")).await.code(),
        "FORBIDDEN"
    );
    assert_eq!(
        shop.refund(As::Anonymous, &id, Some("1.00")).await.code(),
        "UNAUTHENTICATED"
    );

    let partial = shop.refund(As::Admin, &id, Some("12.50")).await;
    let partial = field(&partial, "refundPayment");
    assert_eq!(partial["status"], "PARTIALLY_REFUNDED");
    assert_eq!(partial["refundedAmount"]["amount"], "12.50");

    for (amount, what) in [
        ("17.51", "more than is left"),
        ("0", "zero"),
        ("-1", "negative"),
        ("1.001", "sub-cent"),
    ] {
        let response = shop.refund(As::Admin, &id, Some(amount)).await;
        assert_eq!(response.code(), "BAD_USER_INPUT", "{what}");
    }
    let rest = shop.refund(As::Admin, &id, None).await;
    let rest = field(&rest, "refundPayment");
    assert_eq!(rest["status"], "REFUNDED");
    assert_eq!(rest["refundedAmount"]["amount"], "30.00");
    let more = shop.refund(As::Admin, &id, Some("0.01")).await;
    assert_eq!(more.code(), "CONFLICT");

    shop.refill(As::User, "1.00", 1).await;
    let failed = shop.checkout(As::User, "declined", DECLINED).await;
    let failed_id = field(&failed, "checkout")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        shop.refund(As::Admin, &failed_id, None).await.code(),
        "CONFLICT"
    );
}

async fn only_owners_and_admins_see_payments(backend: Backend) {
    let shop = Shop::start(backend, &[]).await;
    shop.fill_basket(As::User, "3.00", 1).await;
    let created = shop.create(As::User, "mine").await;
    let id = field(&created, "createPayment")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(shop.get(As::OtherUser, &id).await.code(), "NOT_FOUND");
    assert_eq!(
        shop.get(As::User, &uuid::Uuid::now_v7().to_string())
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(shop.get(As::User, "garbage").await.code(), "NOT_FOUND");
    assert_eq!(shop.cancel(As::OtherUser, &id).await.code(), "NOT_FOUND");
    assert_eq!(
        shop.process(As::OtherUser, &id, SUCCEEDS).await.code(),
        "NOT_FOUND"
    );
    assert_eq!(shop.get(As::Anonymous, &id).await.code(), "UNAUTHENTICATED");
    assert_eq!(
        field(&shop.get(As::Admin, &id).await, "payment")["id"],
        id.as_str()
    );

    let all = "query($s: PaymentStatus) { payments(first: 10, status: $s) { edges { node { id status userId } } } }";
    assert_eq!(
        shop.payment
            .gql(As::User, all, json!({ "s": null }))
            .await
            .code(),
        "FORBIDDEN"
    );
    let pending = shop
        .payment
        .gql(As::Admin, all, json!({ "s": "PENDING" }))
        .await;
    assert_eq!(
        field(&pending, "payments")["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // An admin about to refund sees whose payment it is.
    assert_eq!(
        field(&pending, "payments")["edges"][0]["node"]["userId"],
        "user-1"
    );
    let completed = shop
        .payment
        .gql(As::Admin, all, json!({ "s": "COMPLETED" }))
        .await;
    assert_eq!(field(&completed, "payments")["edges"], json!([]));

    let entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Payment { id } ... on User { payments { edges { node { id } } } } } }";
    let payment_ref = json!({ "r": [{ "__typename": "Payment", "id": id }] });
    let hidden = shop
        .payment
        .gql(As::OtherUser, entities, payment_ref.clone())
        .await;
    assert_eq!(
        field(&hidden, "_entities"),
        &json!([null]),
        "another user's payment resolves to null"
    );
    let visible = shop.payment.gql(As::User, entities, payment_ref).await;
    assert_eq!(field(&visible, "_entities")[0]["id"], id.as_str());
    let user_ref = json!({ "r": [{ "__typename": "User", "id": "user-1" }] });
    assert_eq!(
        shop.payment
            .gql(As::OtherUser, entities, user_ref.clone())
            .await
            .code(),
        "NOT_FOUND"
    );
    let own = shop.payment.gql(As::User, entities, user_ref).await;
    assert_eq!(
        field(&own, "_entities")[0]["payments"]["edges"][0]["node"]["id"],
        id.as_str()
    );
}

async fn bad_input_and_outages_are_coded(backend: Backend) {
    let shop = Shop::start(backend, &[]).await;
    assert_eq!(
        shop.checkout(As::User, "empty", SUCCEEDS).await.code(),
        "BAD_USER_INPUT",
        "empty basket"
    );
    shop.fill_basket(As::User, "2.00", 1).await;
    assert_eq!(
        shop.checkout(As::User, "", SUCCEEDS).await.code(),
        "BAD_USER_INPUT",
        "empty key"
    );
    assert_eq!(
        shop.checkout(As::User, "bad-card", "4242424242424241")
            .await
            .code(),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        shop.checkout(As::Anonymous, "anon", SUCCEEDS).await.code(),
        "UNAUTHENTICATED"
    );
    let no_card = shop
        .payment
        .gql(
            As::User,
            "mutation($id: ID!) { processPayment(id: $id) { id } }",
            json!({ "id": field(&shop.create(As::User, "no-card").await, "createPayment")["id"] }),
        )
        .await;
    assert_eq!(no_card.code(), "BAD_USER_INPUT");

    let dead = unreachable_url();
    let orphan = TestApp::spawn_payment(backend, &dead, &dead, &[]).await;
    let response = orphan
        .gql(
            As::User,
            "mutation($input: CheckoutInput!) { checkout(input: $input) { id } }",
            json!({ "input": { "idempotencyKey": "k", "method": "CARD", "card": card(SUCCEEDS) } }),
        )
        .await;
    assert_eq!(response.code(), "SUBGRAPH_UNAVAILABLE");
    let none = orphan
        .gql(
            As::User,
            "{ myPayments { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        field(&none, "myPayments")["edges"],
        json!([]),
        "nothing half-written"
    );
}

async fn pending_payments_expire(backend: Backend) {
    let shop = Shop::start(
        backend,
        &[
            ("PAYMENT_TTL", "300ms"),
            ("PAYMENT_EXPIRY_INTERVAL", "100ms"),
        ],
    )
    .await;
    shop.fill_basket(As::User, "4.00", 1).await;
    let id = field(&shop.create(As::User, "slow").await, "createPayment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while field(&shop.get(As::User, &id).await, "payment")["status"] != "EXPIRED" {
        assert!(Instant::now() < deadline, "the sweeper expires the payment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = shop.process(As::User, &id, SUCCEEDS).await;
    assert_eq!(late.code(), "CONFLICT");
    assert!(
        late.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("EXPIRED")
    );
}

/// Random operation sequences against the state machine as the oracle:
/// every operation succeeds exactly when SPEC §2 allows it, else CONFLICT.
async fn random_transition_sequences_match_the_state_machine(backend: Backend) {
    use payment_subgraph::domain::PaymentStatus as S;

    let shop = Shop::start(backend, &[]).await;
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for sequence in 0..12 {
        // Each payment holds the basket until it settles: a fresh order each.
        shop.refill(As::User, "8.00", 1).await;
        let created = shop.create(As::User, &format!("seq-{sequence}")).await;
        let id = field(&created, "createPayment")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut state = S::Pending;
        let mut refunded_cents = 0;
        for _ in 0..5 {
            let (response, target) = match next(5) {
                0 => (shop.process(As::User, &id, SUCCEEDS).await, S::Completed),
                1 => (shop.process(As::User, &id, DECLINED).await, S::Failed),
                2 => (shop.cancel(As::User, &id).await, S::Cancelled),
                3 => (shop.refund(As::Admin, &id, Some("2.00")).await, {
                    if refunded_cents + 200 == 800 {
                        S::Refunded
                    } else {
                        S::PartiallyRefunded
                    }
                }),
                _ => (shop.refund(As::Admin, &id, None).await, S::Refunded),
            };
            // Processing passes through PROCESSING, which PENDING may enter.
            let allowed = match target {
                S::Completed | S::Failed => state.can_become(S::Processing),
                other => state.can_become(other),
            };
            if allowed {
                let payment = response
                    .data()
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .clone();
                assert_eq!(payment["status"], target.as_str(), "{state} -> {target}");
                if matches!(target, S::Refunded | S::PartiallyRefunded) {
                    refunded_cents = if target == S::Refunded {
                        800
                    } else {
                        refunded_cents + 200
                    };
                }
                state = target;
            } else {
                assert_eq!(
                    response.code(),
                    "CONFLICT",
                    "{state} -> {target} must be refused: {:#}",
                    response.body
                );
                assert!(
                    response.body["errors"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains(state.as_str())
                );
            }
        }
        let stored = shop.get(As::User, &id).await;
        assert_eq!(field(&stored, "payment")["status"], state.as_str());
        if state == S::Pending {
            // Let go of the basket for the next sequence.
            assert_eq!(
                field(&shop.cancel(As::User, &id).await, "cancelPayment")["status"],
                "CANCELLED"
            );
        }
    }
}

backend_tests!(
    mariadb:
    checkout_outcomes_follow_the_test_cards,
    idempotency_holds_under_concurrent_duplicates,
    two_step_payments_cancel_and_conflicts,
    refunds_are_partial_full_and_bounded,
    only_owners_and_admins_see_payments,
    bad_input_and_outages_are_coded,
    pending_payments_expire,
    random_transition_sequences_match_the_state_machine,
);
