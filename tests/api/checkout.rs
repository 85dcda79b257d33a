//! The checkout saga end to end (issue 18), through the router over the
//! whole shop on one event bus: stock reserved before the charge (the race
//! for the last units), prices checked against the catalogue, deleted
//! products refused, idempotency keys bound to the order, the basket
//! closed by the checkout itself, and orders that outlive the catalogue.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{token, wait_until};
use crate::helpers::{As, Backend, GqlResponse, backend_tests};
use crate::shop::Shop;

const SUCCEEDS: &str = "4242424242424242";

/// How long an event may take to settle a checkout before a test gives up.
const SETTLE: Duration = Duration::from_secs(20);

const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkout(input: $input) { id status amount { amount currency } items { productName quantity unitPrice { amount } } } }";

/// A shopper with a token of their own (the race needs four).
struct Shopper {
    token: String,
}

impl Shopper {
    fn new(name: &str) -> Self {
        Self {
            token: token(name, false),
        }
    }

    async fn gql(&self, shop: &Shop, query: &str, variables: Value) -> GqlResponse {
        shop.router.post(Some(&self.token), query, variables).await
    }

    async fn add(&self, shop: &Shop, product: &str, quantity: i32) {
        let added = self
            .gql(
                shop,
                "mutation($p: ID!, $q: Int!) { addBasketItem(productId: $p, quantity: $q) { itemCount } }",
                json!({ "p": product, "q": quantity }),
            )
            .await;
        added.data();
    }

    async fn checkout(&self, shop: &Shop, key: &str) -> GqlResponse {
        self.gql(
            shop,
            CHECKOUT,
            json!({ "input": {
                "idempotencyKey": key, "method": "CARD",
                "card": { "number": SUCCEEDS, "expMonth": 12, "expYear": 2040, "cvc": "123" }
            } }),
        )
        .await
    }

    async fn payments(&self, shop: &Shop) -> Vec<Value> {
        let mine = self
            .gql(
                shop,
                "{ myPayments(first: 100) { edges { node { id status amount { amount } } } } }",
                json!({}),
            )
            .await;
        mine.data()["myPayments"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|edge| edge["node"].clone())
            .collect()
    }

    /// `(product id, quantity)` of every basket line, and whether a
    /// checkout holds the basket.
    async fn basket(&self, shop: &Shop) -> (Vec<(String, i64)>, bool) {
        let basket = self
            .gql(
                shop,
                "{ myBasket { checkoutInProgress items { product { id } quantity } } }",
                json!({}),
            )
            .await;
        let basket = &basket.data()["myBasket"];
        let lines = basket["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|item| {
                (
                    item["product"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    item["quantity"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        (lines, basket["checkoutInProgress"] == true)
    }

    /// Waits until the last checkout's events have settled the basket.
    async fn settled(&self, shop: &Shop) -> Vec<(String, i64)> {
        wait_until("the checkout's lock is cleared", SETTLE, || async {
            !self.basket(shop).await.1
        })
        .await;
        self.basket(shop).await.0
    }
}

async fn create_product(shop: &Shop, name: &str, price: &str, stock: i32) -> String {
    let created = shop
        .gql(
            As::Admin,
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
            json!({ "input": { "name": name, "price": price, "stockQuantity": stock, "category": "Checkout" } }),
        )
        .await;
    created.data()["createProduct"]["id"]
        .as_str()
        .expect("a product id")
        .to_owned()
}

async fn stock_of(shop: &Shop, product: &str) -> i64 {
    let found = shop
        .gql(
            As::Anonymous,
            "query($id: ID!) { product(id: $id) { stockQuantity } }",
            json!({ "id": product }),
        )
        .await;
    found.data()["product"]["stockQuantity"]
        .as_i64()
        .unwrap_or(-1)
}

async fn delete_product(shop: &Shop, product: &str) {
    let deleted = shop
        .gql(
            As::Admin,
            "mutation($id: ID!) { deleteProduct(id: $id) }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(deleted.data()["deleteProduct"], true);
}

/// The race: stock 3, four buyers of 3 at once. Exactly one order
/// is sold; the three others are refused before any charge.
async fn four_buyers_race_for_the_last_three_units(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let mug = create_product(&shop, "Blue Mug", "10.00", 3).await;
    let buyers: Vec<Shopper> = (0..4)
        .map(|n| Shopper::new(&format!("race-buyer-{n}")))
        .collect();
    for buyer in &buyers {
        buyer.add(&shop, &mug, 3).await;
    }

    let keys: Vec<String> = (0..buyers.len()).map(|n| format!("race-{n}")).collect();
    let answers = futures::future::join_all(
        buyers
            .iter()
            .zip(&keys)
            .map(|(buyer, key)| buyer.checkout(&shop, key)),
    )
    .await;
    let mut completed = 0;
    let mut refused = Vec::new();
    for (n, answer) in answers.iter().enumerate() {
        if answer.body["errors"].is_null() {
            assert_eq!(
                answer.data()["checkout"]["status"],
                "COMPLETED",
                "{}",
                answer.body
            );
            completed += 1;
        } else {
            assert_eq!(answer.code(), "OUT_OF_STOCK", "buyer {n}: {}", answer.body);
            refused.push(n);
            let error = &answer.body["errors"][0];
            let message = error["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("Blue Mug") && message.contains("3"),
                "names the product and the request: {message}"
            );
            let line = &error["extensions"]["lines"][0];
            assert_eq!(line["productId"], mug.as_str(), "{error}");
            assert_eq!(line["productName"], "Blue Mug");
            assert_eq!(line["requested"], 3);
            assert_eq!(line["available"], 0);
        }
    }
    assert_eq!(
        (completed, refused.len()),
        (1, 3),
        "exactly one order of 3 sold"
    );
    assert_eq!(stock_of(&shop, &mug).await, 0);
    for n in refused {
        assert!(
            buyers[n].payments(&shop).await.is_empty(),
            "buyer {n} was charged nothing"
        );
        let (lines, locked) = buyers[n].basket(&shop).await;
        assert_eq!(
            (lines, locked),
            (vec![(mug.clone(), 3)], false),
            "basket {n} untouched"
        );
    }
    // The sale settles without taking the units a second time.
    let winner = answers
        .iter()
        .position(|a| a.body["errors"].is_null())
        .unwrap_or_default();
    assert!(
        buyers[winner].settled(&shop).await.is_empty(),
        "bought lines go"
    );
    assert_eq!(
        stock_of(&shop, &mug).await,
        0,
        "never below zero, never taken twice"
    );
}

/// A price changed after the line was added: refused with both prices,
/// nothing charged; once the buyer confirms, the checkout charges the new
/// price.
async fn a_changed_price_is_refused_until_the_buyer_confirms_it(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let lamp = create_product(&shop, "Desk Lamp", "4.50", 10).await;
    let buyer = Shopper::new("price-buyer");
    buyer.add(&shop, &lamp, 2).await;
    let repriced = shop
        .gql(
            As::Admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { price: \"13.50\" }) { price { amount } } }",
            json!({ "id": lamp }),
        )
        .await;
    assert_eq!(repriced.data()["updateProduct"]["price"]["amount"], "13.50");

    let refused = buyer.checkout(&shop, "price-1").await;
    assert_eq!(refused.code(), "PRICE_CHANGED", "{}", refused.body);
    let line = &refused.body["errors"][0]["extensions"]["lines"][0];
    assert_eq!(line["productId"], lamp.as_str());
    assert_eq!(line["productName"], "Desk Lamp");
    assert_eq!(
        line["basketPrice"],
        json!({ "amount": "4.50", "currency": "EUR" })
    );
    assert_eq!(
        line["currentPrice"],
        json!({ "amount": "13.50", "currency": "EUR" })
    );
    assert!(buyer.payments(&shop).await.is_empty(), "nothing charged");
    assert_eq!(stock_of(&shop, &lamp).await, 10, "nothing reserved");

    let confirmed = buyer
        .gql(
            &shop,
            "mutation { confirmBasketPrices { total { amount } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        confirmed.data()["confirmBasketPrices"]["total"]["amount"],
        "27.00"
    );
    // Nothing was stored for the refused request: its key is free.
    let paid = buyer.checkout(&shop, "price-1").await;
    let paid = &paid.data()["checkout"];
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(paid["amount"]["amount"], "27.00");
    assert_eq!(paid["items"][0]["unitPrice"]["amount"], "13.50");
    assert_eq!(stock_of(&shop, &lamp).await, 8);
}

/// A product deleted while it sits in a basket cannot be bought.
async fn a_deleted_product_is_unavailable_at_checkout(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let kept = create_product(&shop, "Kept Chair", "20.00", 5).await;
    let gone = create_product(&shop, "Gone Table", "80.00", 5).await;
    let buyer = Shopper::new("deleted-buyer");
    buyer.add(&shop, &kept, 1).await;
    buyer.add(&shop, &gone, 1).await;
    delete_product(&shop, &gone).await;

    let refused = buyer.checkout(&shop, "deleted-1").await;
    assert_eq!(refused.code(), "PRODUCT_UNAVAILABLE", "{}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["message"], "Gone Table is no longer available",
        "named from the basket: the catalogue no longer knows it"
    );
    let lines = &refused.body["errors"][0]["extensions"]["lines"];
    assert_eq!(
        lines,
        &json!([{ "productId": gone, "productName": "Gone Table" }]),
        "names the deleted line only"
    );
    assert!(buyer.payments(&shop).await.is_empty(), "nothing charged");
    assert_eq!(stock_of(&shop, &kept).await, 5, "nothing reserved");
    assert!(!buyer.basket(&shop).await.1, "the basket is not locked");
}

/// An idempotency key is bound to the order: the case (the same
/// key after the basket changed from 4.50 to 13.50) is `CONFLICT`; the
/// same key retried after the checkout succeeded (its lines bought and
/// removed) returns the payment.
async fn an_idempotency_key_is_bound_to_its_order(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let cheap = create_product(&shop, "Tea", "4.50", 10).await;
    let dear = create_product(&shop, "Coffee", "13.50", 10).await;
    let buyer = Shopper::new("key-buyer");
    buyer.add(&shop, &cheap, 1).await;
    let first = buyer.checkout(&shop, "order-1").await;
    let first = first.data()["checkout"].clone();
    assert_eq!(first["status"], "COMPLETED");
    assert_eq!(first["amount"]["amount"], "4.50");
    assert!(buyer.settled(&shop).await.is_empty());

    // Retried after success: the basket is empty, its lines were bought.
    let retried = buyer.checkout(&shop, "order-1").await;
    assert_eq!(retried.data()["checkout"]["id"], first["id"]);
    assert_eq!(retried.data()["checkout"]["status"], "COMPLETED");

    buyer.add(&shop, &dear, 1).await;
    let reused = buyer.checkout(&shop, "order-1").await;
    assert_eq!(reused.code(), "CONFLICT", "{}", reused.body);
    assert_eq!(
        buyer.payments(&shop).await.len(),
        1,
        "one payment for the key"
    );
    assert_eq!(
        stock_of(&shop, &dear).await,
        10,
        "the conflict reserved nothing"
    );
    let (lines, locked) = buyer.basket(&shop).await;
    assert_eq!((lines, locked), (vec![(dear.clone(), 1)], false));
}

/// An item added right after a checkout stays: the checkout's event
/// removes only the units it bought, and the next checkout buys the rest.
async fn an_item_added_right_after_a_checkout_stays_in_the_basket(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let pen = create_product(&shop, "Pen", "1.00", 100).await;
    let pad = create_product(&shop, "Pad", "2.00", 100).await;
    let buyer = Shopper::new("steady-buyer");
    for round in 0..5 {
        buyer.add(&shop, &pen, 2).await;
        let paid = buyer.checkout(&shop, &format!("steady-{round}")).await;
        assert_eq!(
            paid.data()["checkout"]["status"],
            "COMPLETED",
            "round {round}"
        );
        // At once, before or after the checkout's events arrive.
        buyer.add(&shop, &pen, 1).await;
        buyer.add(&shop, &pad, 1).await;
        let mut left = buyer.settled(&shop).await;
        left.sort();
        let mut expected = vec![(pen.clone(), 1), (pad.clone(), 1)];
        expected.sort();
        assert_eq!(left, expected, "round {round}: only the bought units went");
        let next = buyer.checkout(&shop, &format!("steady-next-{round}")).await;
        assert_eq!(
            next.data()["checkout"]["amount"]["amount"],
            "3.00",
            "round {round}"
        );
        assert!(buyer.settled(&shop).await.is_empty(), "round {round}");
    }
    assert_eq!(stock_of(&shop, &pen).await, 100 - 5 * 3);
    assert_eq!(stock_of(&shop, &pad).await, 100 - 5);
    let paid = buyer.payments(&shop).await;
    assert_eq!(paid.len(), 10);
    assert!(paid.iter().all(|p| p["status"] == "COMPLETED"));
    let ids: HashSet<_> = paid.iter().map(|p| p["id"].to_string()).collect();
    assert_eq!(ids.len(), 10);
}

/// Orders outlive the catalogue: after a product is deleted, the list of
/// payments is still served, that item's `product` is `null`, and its
/// snapshot (name, unit price) is kept.
async fn payments_list_a_deleted_products_item_with_a_null_product(backend: Backend) {
    let shop = Shop::spawn(backend).await;
    let kept = create_product(&shop, "Kept Vase", "7.00", 5).await;
    let gone = create_product(&shop, "Gone Plate", "3.25", 5).await;
    let buyer = Shopper::new("history-buyer");
    buyer.add(&shop, &kept, 1).await;
    buyer.add(&shop, &gone, 2).await;
    let paid = buyer.checkout(&shop, "history-1").await;
    assert_eq!(paid.data()["checkout"]["status"], "COMPLETED");
    buyer.settled(&shop).await;
    delete_product(&shop, &gone).await;

    let history = buyer
        .gql(
            &shop,
            "{ myPayments(first: 10) { edges { node { amount { amount } items { productName quantity unitPrice { amount } product { id name } } } } } }",
            json!({}),
        )
        .await;
    // The list is served. The product subgraph answers `null` for the
    // deleted entity, and the router, as federation routers do, reports
    // that one item's `product.name` (non-null) as an error at its path
    // and nulls the nearest nullable field: that item's `product`.
    let errors = history.body["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for error in &errors {
        assert_eq!(
            error["path"]
                .as_array()
                .map(|path| path.iter().take(6).cloned().collect::<Vec<_>>()),
            Some(vec![
                json!("myPayments"),
                json!("edges"),
                json!(0),
                json!("node"),
                json!("items"),
                json!(0),
            ]),
            "only the deleted product's item is reported: {}",
            history.body
        );
    }
    let node = &history.body["data"]["myPayments"]["edges"][0]["node"];
    assert_eq!(node["amount"]["amount"], "13.50");
    let items = node["items"].as_array().cloned().unwrap_or_default();
    let item = |name: &str| {
        items
            .iter()
            .find(|item| item["productName"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("an item {name}: {items:?}"))
    };
    let deleted = item("Gone Plate");
    assert_eq!(deleted["product"], Value::Null);
    assert_eq!(deleted["unitPrice"]["amount"], "3.25");
    assert_eq!(deleted["quantity"], 2);
    let still = item("Kept Vase");
    assert_eq!(still["product"], json!({ "id": kept, "name": "Kept Vase" }));
}

backend_tests!(
    four_buyers_race_for_the_last_three_units,
    a_changed_price_is_refused_until_the_buyer_confirms_it,
    a_deleted_product_is_unavailable_at_checkout,
    an_idempotency_key_is_bound_to_its_order,
    an_item_added_right_after_a_checkout_stays_in_the_basket,
    payments_list_a_deleted_products_item_with_a_null_product,
);
