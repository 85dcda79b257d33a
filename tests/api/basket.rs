//! The basket subgraph against a real product subgraph, on PostgreSQL and
//! SQLite: every operation, exact totals, price snapshots, ownership,
//! concurrency, product outages, the abandonment sweeper, and the checkout
//! fields (the lock payment takes over the signed hop, which the router's
//! API does not offer, and the shopper's `confirmBasketPrices`). The lock's
//! races and its settlement by events are in
//! `subgraphs/basket/tests/checkout.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{As, Backend, GqlResponse, TestApp, backend_tests, unreachable_url};

const BASKET: &str = "id itemCount status checkoutInProgress total { amount currency } items { product { id } productName category quantity unitPrice { amount currency } subtotal { amount } }";

/// A product subgraph and a basket subgraph that prices from it.
struct Shop {
    product: TestApp,
    basket: TestApp,
}

impl Shop {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let product = TestApp::spawn(backend).await;
        let basket = TestApp::spawn_basket(backend, &product.graphql_url(), extra).await;
        Self { product, basket }
    }

    async fn add(&self, who: As, product_id: &str, quantity: i32) -> GqlResponse {
        self.basket
            .gql(
                who,
                &format!("mutation($p: ID!, $q: Int!) {{ addBasketItem(productId: $p, quantity: $q) {{ {BASKET} }} }}"),
                json!({ "p": product_id, "q": quantity }),
            )
            .await
    }

    async fn update(&self, who: As, product_id: &str, quantity: i32) -> GqlResponse {
        self.basket
            .gql(
                who,
                &format!("mutation($p: ID!, $q: Int!) {{ updateBasketItem(productId: $p, quantity: $q) {{ {BASKET} }} }}"),
                json!({ "p": product_id, "q": quantity }),
            )
            .await
    }

    async fn remove(&self, who: As, product_id: &str) -> GqlResponse {
        self.basket
            .gql(
                who,
                &format!("mutation($p: ID!) {{ removeBasketItem(productId: $p) {{ {BASKET} }} }}"),
                json!({ "p": product_id }),
            )
            .await
    }

    async fn my_basket(&self, who: As) -> Value {
        self.basket
            .gql(who, &format!("{{ myBasket {{ {BASKET} }} }}"), json!({}))
            .await
            .data()["myBasket"]
            .clone()
    }
}

async fn add_increment_update_remove_clear(backend: Backend) {
    let shop = Shop::start(backend).await;
    let mug = shop
        .product
        .create_product("Mug", "8.50", 40, "Kitchen")
        .await;
    let tea = shop.product.create_product("Tea", "0.10", 40, "Tea").await;

    let empty = shop.my_basket(As::User).await;
    assert_eq!(empty["items"], json!([]));
    assert_eq!(
        empty["total"],
        json!({ "amount": "0.00", "currency": "EUR" })
    );
    assert_eq!(
        shop.my_basket(As::User).await["id"],
        empty["id"],
        "one basket per user"
    );

    let basket = shop.add(As::User, &mug, 2).await.data()["addBasketItem"].clone();
    assert_eq!(basket["items"][0]["productName"], "Mug");
    assert_eq!(basket["items"][0]["category"], "Kitchen");
    assert_eq!(basket["items"][0]["product"]["id"], mug);
    assert_eq!(
        basket["items"][0]["unitPrice"],
        json!({ "amount": "8.50", "currency": "EUR" })
    );

    let basket = shop.add(As::User, &mug, 1).await.data()["addBasketItem"].clone();
    assert_eq!(basket["items"][0]["quantity"], 3, "adding again increments");
    let basket = shop.add(As::User, &tea, 3).await.data()["addBasketItem"].clone();
    assert_eq!(basket["itemCount"], 6);
    assert_eq!(basket["items"][1]["subtotal"]["amount"], "0.30");
    assert_eq!(
        basket["total"]["amount"], "25.80",
        "8.50 x 3 + 0.10 x 3, exactly"
    );
    assert_eq!(basket["status"], "ACTIVE");

    let basket = shop.update(As::User, &mug, 1).await.data()["updateBasketItem"].clone();
    assert_eq!(basket["total"]["amount"], "8.80");
    let basket = shop.remove(As::User, &tea).await.data()["removeBasketItem"].clone();
    assert_eq!(basket["itemCount"], 1);

    let cleared = shop
        .basket
        .gql(
            As::User,
            &format!("mutation {{ clearBasket {{ {BASKET} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(cleared.data()["clearBasket"]["items"], json!([]));
    assert_eq!(cleared.data()["clearBasket"]["id"], empty["id"]);
}

async fn prices_are_snapshots_refreshed_on_change(backend: Backend) {
    let shop = Shop::start(backend).await;
    let lamp = shop
        .product
        .create_product("Lamp", "20.00", 10, "Home")
        .await;
    shop.add(As::User, &lamp, 1).await.data();
    shop.product
        .gql(
            As::Admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { price: \"25.00\", name: \"Desk lamp\" }) { id } }",
            json!({ "id": lamp }),
        )
        .await
        .data();
    let basket = shop.my_basket(As::User).await;
    assert_eq!(
        basket["items"][0]["unitPrice"]["amount"], "20.00",
        "the price when added"
    );
    assert_eq!(basket["items"][0]["productName"], "Lamp");
    let basket = shop.update(As::User, &lamp, 2).await.data()["updateBasketItem"].clone();
    assert_eq!(
        basket["items"][0]["unitPrice"]["amount"], "25.00",
        "re-priced on change"
    );
    assert_eq!(basket["items"][0]["productName"], "Desk lamp");
    assert_eq!(basket["total"]["amount"], "50.00");
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let shop = Shop::start(backend).await;
    let few = shop
        .product
        .create_product("Rare", "5.00", 3, "Limited")
        .await;
    let none = shop
        .product
        .create_product("Sold out", "5.00", 0, "Limited")
        .await;
    shop.add(As::User, &few, 2).await.data();

    for (response, code, what) in [
        (
            shop.add(As::User, &few, 0).await,
            "BAD_USER_INPUT",
            "quantity 0",
        ),
        (
            shop.add(As::User, &few, 1000).await,
            "BAD_USER_INPUT",
            "quantity 1000",
        ),
        (
            shop.add(As::User, &few, 2).await,
            "BAD_USER_INPUT",
            "beyond stock in total",
        ),
        (
            shop.add(As::User, &none, 1).await,
            "BAD_USER_INPUT",
            "out of stock",
        ),
        (
            shop.update(As::User, &few, 4).await,
            "BAD_USER_INPUT",
            "update beyond stock",
        ),
        (
            shop.update(As::User, &few, -1).await,
            "BAD_USER_INPUT",
            "negative update",
        ),
        (
            shop.add(As::User, &uuid::Uuid::now_v7().to_string(), 1)
                .await,
            "NOT_FOUND",
            "unknown product",
        ),
        (
            shop.add(As::User, "not-a-uuid", 1).await,
            "NOT_FOUND",
            "malformed id",
        ),
        (
            shop.update(As::User, &none, 1).await,
            "BAD_USER_INPUT",
            "update of a sold-out product",
        ),
        (
            shop.remove(As::User, &none).await,
            "NOT_FOUND",
            "remove what is not there",
        ),
        (
            shop.add(As::Anonymous, &few, 1).await,
            "UNAUTHENTICATED",
            "anonymous",
        ),
    ] {
        assert_eq!(response.code(), code, "{what}: {:#}", response.body);
    }
    let basket = shop.my_basket(As::User).await;
    assert_eq!(basket["itemCount"], 2, "nothing changed");
    let anonymous = shop
        .basket
        .gql(As::Anonymous, "{ myBasket { id } }", json!({}))
        .await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
}

async fn users_only_see_their_own_basket(backend: Backend) {
    let shop = Shop::start(backend).await;
    let pen = shop
        .product
        .create_product("Pen", "1.50", 10, "Stationery")
        .await;
    shop.add(As::User, &pen, 2).await.data();

    assert_eq!(shop.my_basket(As::OtherUser).await["items"], json!([]));
    let me = shop
        .basket
        .gql(
            As::User,
            "{ me { id basket { itemCount total { amount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me.data()["me"],
        json!({ "id": "user-1", "basket": { "itemCount": 2, "total": { "amount": "3.00" } } })
    );

    let entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id basket { itemCount } } } }";
    let representation = json!({ "r": [{ "__typename": "User", "id": "user-1" }] });
    let snooping = shop
        .basket
        .gql(As::OtherUser, entities, representation.clone())
        .await;
    assert_eq!(
        snooping.code(),
        "NOT_FOUND",
        "another user's basket does not exist for you"
    );
    let admin = shop.basket.gql(As::Admin, entities, representation).await;
    assert_eq!(admin.data()["_entities"][0]["basket"]["itemCount"], 2);
}

async fn concurrent_adds_all_count(backend: Backend) {
    let shop = Arc::new(Shop::start(backend).await);
    let sock = shop
        .product
        .create_product("Sock", "2.00", 100, "Apparel")
        .await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (shop, sock) = (Arc::clone(&shop), sock.clone());
            tokio::spawn(async move { shop.add(As::User, &sock, 1).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().data();
    }
    let basket = shop.my_basket(As::User).await;
    assert_eq!(basket["items"].as_array().unwrap().len(), 1);
    assert_eq!(basket["itemCount"], 20, "no lost update");
    assert_eq!(basket["total"]["amount"], "40.00");

    // Racing past the stock limit: at most the stock ends up in the basket.
    let last = shop
        .product
        .create_product("Last ones", "1.00", 5, "Apparel")
        .await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (shop, last) = (Arc::clone(&shop), last.clone());
            tokio::spawn(async move { shop.add(As::OtherUser, &last, 1).await })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        let response = task.await.unwrap();
        if response.body.get("errors").is_some() {
            assert_eq!(response.code(), "BAD_USER_INPUT");
            refused += 1;
        }
    }
    assert_eq!(refused, 5);
    assert_eq!(shop.my_basket(As::OtherUser).await["itemCount"], 5);
}

async fn product_outage_is_subgraph_unavailable_and_harmless(backend: Backend) {
    let shop = Shop::start(backend).await;
    let cup = shop
        .product
        .create_product("Cup", "3.00", 10, "Kitchen")
        .await;
    shop.add(As::User, &cup, 1).await.data();

    // A basket subgraph whose product URL points at a port nobody listens on.
    let dead = unreachable_url();
    let orphan = TestApp::spawn_basket(backend, &dead, &[]).await;
    let response = orphan
        .gql(
            As::User,
            "mutation($p: ID!) { addBasketItem(productId: $p, quantity: 1) { itemCount } }",
            json!({ "p": cup }),
        )
        .await;
    assert_eq!(response.code(), "SUBGRAPH_UNAVAILABLE");
    let basket = orphan
        .gql(As::User, "{ myBasket { itemCount } }", json!({}))
        .await;
    assert_eq!(
        basket.data()["myBasket"]["itemCount"],
        0,
        "basket unchanged"
    );
}

async fn idle_baskets_are_abandoned(backend: Backend) {
    let shop = Shop::start_with(
        backend,
        &[("BASKET_TTL", "300ms"), ("BASKET_SWEEP_INTERVAL", "100ms")],
    )
    .await;
    let hat = shop
        .product
        .create_product("Hat", "12.00", 5, "Apparel")
        .await;
    shop.add(As::User, &hat, 1).await.data();
    shop.my_basket(As::OtherUser).await; // empty baskets are never abandoned

    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.my_basket(As::User).await["status"] != "ABANDONED" {
        assert!(
            Instant::now() < deadline,
            "the sweeper marks the idle basket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shop.my_basket(As::OtherUser).await["status"], "ACTIVE");
    let revived = shop.add(As::User, &hat, 1).await;
    assert_eq!(
        revived.data()["addBasketItem"]["status"],
        "ACTIVE",
        "a change revives it"
    );
}

async fn confirm_basket_prices_takes_the_catalogues_current_prices(backend: Backend) {
    let shop = Shop::start(backend).await;
    let lamp = shop
        .product
        .create_product("Lamp", "20.00", 10, "Home")
        .await;
    let bulb = shop
        .product
        .create_product("Bulb", "3.00", 10, "Home")
        .await;
    shop.add(As::User, &lamp, 2).await.data();
    shop.add(As::User, &bulb, 1).await.data();
    shop.product
        .gql(
            As::Admin,
            "mutation($id: ID!) { updateProduct(id: $id, input: { price: \"25.00\", name: \"Desk lamp\" }) { id } }",
            json!({ "id": lamp }),
        )
        .await
        .data();
    let stale = shop.my_basket(As::User).await;
    assert_eq!(stale["items"][0]["unitPrice"]["amount"], "20.00");
    assert_eq!(stale["checkoutInProgress"], false);

    let confirm = format!("mutation {{ confirmBasketPrices {{ {BASKET} }} }}");
    let confirmed = shop.basket.gql(As::User, &confirm, json!({})).await;
    let basket = &confirmed.data()["confirmBasketPrices"];
    assert_eq!(basket["items"][0]["productName"], "Desk lamp");
    assert_eq!(
        basket["items"][0]["unitPrice"],
        json!({ "amount": "25.00", "currency": "EUR" })
    );
    assert_eq!(basket["items"][0]["quantity"], 2, "quantities stay");
    assert_eq!(basket["items"][1]["unitPrice"]["amount"], "3.00");
    assert_eq!(basket["total"]["amount"], "53.00");
    assert_eq!(shop.my_basket(As::User).await["total"]["amount"], "53.00");

    let anonymous = shop.basket.gql(As::Anonymous, &confirm, json!({})).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
}

async fn the_checkout_lock_is_taken_and_released_for_the_caller(backend: Backend) {
    let shop = Shop::start(backend).await;
    let mug = shop
        .product
        .create_product("Mug", "8.50", 10, "Kitchen")
        .await;
    shop.add(As::User, &mug, 2).await.data();
    let lines =
        json!([{ "productId": mug, "quantity": 2, "unitPrice": "8.50", "currency": "EUR" }]);
    let until = (chrono::Utc::now() + chrono::TimeDelta::minutes(40)).to_rfc3339();
    let begin = "mutation($p: ID!, $lines: [CheckoutLineInput!]!, $until: DateTime!) { beginCheckout(paymentId: $p, lines: $lines, lockedUntil: $until) { itemCount checkoutInProgress } }";
    let payment = uuid::Uuid::now_v7().to_string();

    let locked = shop
        .basket
        .gql(
            As::User,
            begin,
            json!({ "p": payment, "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(
        locked.data()["beginCheckout"],
        json!({ "itemCount": 2, "checkoutInProgress": true })
    );
    assert_eq!(shop.my_basket(As::User).await["checkoutInProgress"], true);
    assert_eq!(
        shop.my_basket(As::OtherUser).await["checkoutInProgress"],
        false,
        "only the caller's basket is locked"
    );
    let second = shop
        .basket
        .gql(
            As::User,
            begin,
            json!({ "p": uuid::Uuid::now_v7().to_string(), "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(second.code(), "CONFLICT", "{:#}", second.body);
    // The shopper may still change the basket while it is being paid for.
    shop.add(As::User, &mug, 1).await.data();

    let release = "mutation($p: ID!) { releaseCheckout(paymentId: $p) }";
    let released = shop
        .basket
        .gql(As::User, release, json!({ "p": payment }))
        .await;
    assert_eq!(released.data()["releaseCheckout"], true);
    let basket = shop.my_basket(As::User).await;
    assert_eq!(basket["checkoutInProgress"], false);
    assert_eq!(basket["itemCount"], 3, "the lines stay");

    let changed = shop
        .basket
        .gql(
            As::User,
            begin,
            json!({ "p": uuid::Uuid::now_v7().to_string(), "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(
        changed.code(),
        "CONFLICT",
        "the basket no longer holds those lines"
    );
    let empty = shop
        .basket
        .gql(
            As::OtherUser,
            begin,
            json!({ "p": uuid::Uuid::now_v7().to_string(), "lines": lines, "until": until }),
        )
        .await;
    assert_eq!(empty.code(), "BAD_USER_INPUT", "{:#}", empty.body);
}

/// `beginCheckout` and `releaseCheckout` are `@inaccessible`: payment calls
/// them on basket directly, but they are not in the router's API schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_lock_is_not_in_the_routers_api() {
    let shop = crate::shop::Shop::spawn(Backend::Sqlite).await;
    let release = "mutation($p: ID!) { releaseCheckout(paymentId: $p) }";
    let payment = json!({ "p": uuid::Uuid::now_v7().to_string() });
    let through_router = shop.gql(As::User, release, payment.clone()).await;
    assert_eq!(
        through_router.code(),
        "GRAPHQL_VALIDATION_FAILED",
        "{:#}",
        through_router.body
    );
    let begin = "mutation($l: [CheckoutLineInput!]!) { beginCheckout(paymentId: \"x\", lines: $l, lockedUntil: \"2099-01-01T00:00:00Z\") { id } }";
    let hidden = shop.gql(As::User, begin, json!({ "l": [] })).await;
    assert_eq!(
        hidden.code(),
        "GRAPHQL_VALIDATION_FAILED",
        "{:#}",
        hidden.body
    );
    let direct = shop.basket.gql(As::User, release, payment).await;
    assert_eq!(
        direct.data()["releaseCheckout"],
        true,
        "the subgraph itself serves it"
    );
    let public = shop
        .gql(
            As::User,
            "mutation { confirmBasketPrices { checkoutInProgress } }",
            json!({}),
        )
        .await;
    assert_eq!(
        public.data()["confirmBasketPrices"]["checkoutInProgress"],
        false
    );
}

backend_tests!(
    add_increment_update_remove_clear,
    prices_are_snapshots_refreshed_on_change,
    bad_input_is_refused_and_changes_nothing,
    users_only_see_their_own_basket,
    concurrent_adds_all_count,
    product_outage_is_subgraph_unavailable_and_harmless,
    idle_baskets_are_abandoned,
    confirm_basket_prices_takes_the_catalogues_current_prices,
    the_checkout_lock_is_taken_and_released_for_the_caller,
);
