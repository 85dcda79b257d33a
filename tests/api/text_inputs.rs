//! Control characters in text inputs are refused with `BAD_USER_INPUT`
//! naming the field, before anything is written, in every subgraph and on
//! every store (SQLite cuts a string at NUL, PostgreSQL refuses it); TAB,
//! LF and CR pass only in free text (`description`, `message`); Unicode
//! text passes and comes back intact.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{As, Backend, GqlResponse, TestApp, backend_tests};
use crate::shop::Shop;

/// The control characters every test sends: NUL, SOH, ESC and DEL.
const REFUSED: [char; 4] = ['\u{0}', '\u{1}', '\u{1b}', '\u{7f}'];

const CREATE_PRODUCT: &str = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id name description } }";

fn product(overrides: Value) -> Value {
    let mut base =
        json!({ "name": "Valid", "price": "1.00", "category": "Test", "stockQuantity": 5 });
    for (key, value) in overrides.as_object().expect("an object") {
        base[key] = value.clone();
    }
    json!({ "input": base })
}

/// Asserts `response` is the refusal of a control character in `path`.
#[track_caller]
fn assert_refused(response: &GqlResponse, path: &str, what: &str) {
    assert_eq!(
        (response.status, response.code()),
        (StatusCode::BAD_REQUEST, "BAD_USER_INPUT".to_owned()),
        "{what}: {:#}",
        response.body
    );
    let message = response.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with(&format!("{path} must not contain control characters")),
        "{what}: {message}"
    );
    assert!(
        response.body.get("data").is_none_or(Value::is_null),
        "{what}"
    );
}

async fn product_text_inputs_refuse_control_characters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for c in REFUSED {
        for field in ["name", "description", "category", "imageUrl", "currency"] {
            let value = match field {
                "imageUrl" => format!("https://img.example/{c}.png"),
                "currency" => format!("EU{c}"),
                _ => format!("bad{c}text"),
            };
            let response = app
                .gql(As::Admin, CREATE_PRODUCT, product(json!({ field: value })))
                .await;
            assert_refused(
                &response,
                &format!("input.{field}"),
                &format!("{field} {c:?}"),
            );
        }
        let search = app
            .gql(
                As::Anonymous,
                "query($s: String) { products(filter: { search: $s }) { totalCount } }",
                json!({ "s": format!("x{c}") }),
            )
            .await;
        assert_refused(&search, "filter.search", "search");
    }
    // Free text keeps TAB and line breaks; a name does not.
    let newline_name = app
        .gql(
            As::Admin,
            CREATE_PRODUCT,
            product(json!({ "name": "two\nlines" })),
        )
        .await;
    assert_refused(&newline_name, "input.name", "LF in a name");
    let listing = app
        .gql(
            As::Anonymous,
            "{ products(first: 100) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listing.data()["products"]["totalCount"],
        0,
        "nothing refused was stored"
    );

    // An update is refused too, and leaves the product as it was.
    let id = app.create_product("Kept", "2.00", 1, "Test").await;
    let update = app
        .gql(
            As::Admin,
            "mutation($id: ID!, $name: String) { updateProduct(id: $id, input: { name: $name }) { id } }",
            json!({ "id": id, "name": "Kept\u{0}truncated" }),
        )
        .await;
    assert_refused(&update, "input.name", "update");
    let kept = app
        .gql(
            As::Anonymous,
            "query($id: ID!) { product(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(kept.data()["product"]["name"], "Kept");
}

async fn unicode_and_free_text_line_breaks_pass_intact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let name = "Crème brûlée 🍮 — Ærøskøbing, 東京, עברית";
    let description = "Première ligne\n\tdeuxième ligne\r\nemoji 👩‍🍳";
    let created = app
        .gql(
            As::Admin,
            CREATE_PRODUCT,
            product(json!({ "name": name, "description": description, "category": "Desserts ü" })),
        )
        .await;
    let created = &created.data()["createProduct"];
    assert_eq!(created["name"], name);
    assert_eq!(created["description"], description);
    let read = app
        .gql(
            As::Anonymous,
            "query($id: ID!) { product(id: $id) { name description category } }",
            json!({ "id": created["id"] }),
        )
        .await;
    assert_eq!(
        read.data()["product"],
        json!({ "name": name, "description": description, "category": "Desserts ü" }),
        "stored and read back intact"
    );
    let found = app
        .gql(
            As::Anonymous,
            "query($s: String) { products(filter: { search: $s }) { totalCount } }",
            json!({ "s": "brûlée 🍮" }),
        )
        .await;
    assert_eq!(found.data()["products"]["totalCount"], 1);
}

async fn notification_text_inputs_refuse_control_characters(backend: Backend) {
    let app = TestApp::spawn_notification(backend, &[]).await;
    let create = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id message } }";
    let input = |title: &str, message: &str| json!({ "input": { "userId": "user-1", "type": "SYSTEM", "title": title, "message": message } });
    for c in REFUSED {
        let title = app
            .gql(As::Admin, create, input(&format!("Hi{c}"), "Hello"))
            .await;
        assert_refused(&title, "input.title", &format!("title {c:?}"));
        let message = app
            .gql(As::Admin, create, input("Hi", &format!("Hello{c}")))
            .await;
        assert_refused(&message, "input.message", &format!("message {c:?}"));
        let user = app
            .gql(As::Admin, create, json!({ "input": { "userId": format!("user{c}"), "type": "SYSTEM", "title": "t", "message": "m" } }))
            .await;
        assert_refused(&user, "input.userId", &format!("userId {c:?}"));
    }
    let bulk = app
        .gql(
            As::Admin,
            "mutation($inputs: [CreateNotificationInput!]!) { bulkCreateNotifications(inputs: $inputs) { id } }",
            json!({ "inputs": [
                { "userId": "user-1", "type": "SYSTEM", "title": "fine", "message": "fine" },
                { "userId": "user-1", "type": "SYSTEM", "title": "bad\u{1b}[31m", "message": "m" },
            ] }),
        )
        .await;
    assert_refused(&bulk, "inputs[1].title", "bulk");
    let empty = app
        .gql(As::User, "{ notificationStats { total } }", json!({}))
        .await;
    assert_eq!(
        empty.data()["notificationStats"]["total"],
        0,
        "nothing stored"
    );

    let multiline = app
        .gql(As::Admin, create, input("Hi ✉️", "line one\nline two"))
        .await;
    assert_eq!(
        multiline.data()["createNotification"]["message"],
        "line one\nline two"
    );
}

async fn basket_ids_refuse_control_characters(backend: Backend) {
    let product = TestApp::spawn(Backend::Sqlite).await;
    let basket = TestApp::spawn_basket(backend, &product.graphql_url(), &[]).await;
    let response = basket
        .gql(
            As::User,
            "mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }",
            json!({ "id": "\u{0}" }),
        )
        .await;
    assert_refused(&response, "productId", "productId");
}

backend_tests!(
    product_text_inputs_refuse_control_characters,
    unicode_and_free_text_line_breaks_pass_intact,
    notification_text_inputs_refuse_control_characters,
    basket_ids_refuse_control_characters,
);

mod payment {
    use super::*;

    async fn payment_text_inputs_refuse_control_characters(backend: Backend) {
        let product = TestApp::spawn(Backend::Sqlite).await;
        let basket = TestApp::spawn_basket(Backend::Sqlite, &product.graphql_url(), &[]).await;
        let payment =
            TestApp::spawn_payment(backend, &product.graphql_url(), &basket.graphql_url(), &[])
                .await;
        let id = product.create_product("Lamp", "10.00", 5, "Home").await;
        basket
            .gql(
                As::User,
                "mutation($id: ID!) { addBasketItem(productId: $id, quantity: 1) { itemCount } }",
                json!({ "id": id }),
            )
            .await
            .data();
        let checkout = "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }";
        let input = |key: &str, holder_cvc: &str, description: Option<&str>| {
            json!({ "input": {
                "idempotencyKey": key,
                "method": "CARD",
                "card": { "number": "4242424242424242", "expMonth": 12, "expYear": 2040, "cvc": holder_cvc },
                "description": description,
            } })
        };
        for c in REFUSED {
            let key = payment
                .gql(
                    As::User,
                    checkout,
                    input(&format!("order{c}1"), "123", None),
                )
                .await;
            assert_refused(&key, "input.idempotencyKey", &format!("key {c:?}"));
            let cvc = payment
                .gql(
                    As::User,
                    checkout,
                    input("order-1", &format!("12{c}"), None),
                )
                .await;
            assert_refused(&cvc, "input.card.cvc", &format!("cvc {c:?}"));
            let description = payment
                .gql(
                    As::User,
                    checkout,
                    input("order-1", "123", Some(&format!("gift{c}"))),
                )
                .await;
            assert_refused(
                &description,
                "input.description",
                &format!("description {c:?}"),
            );
        }
        let payments = "{ myPayments(first: 10) { edges { node { id } } } }";
        let none = payment.gql(As::User, payments, json!({})).await;
        assert_eq!(
            none.data()["myPayments"]["edges"],
            json!([]),
            "nothing was charged or stored"
        );
        // The same checkout with clean text goes through (so the refusals
        // above were the text's, not the setup's).
        let paid = payment
            .gql(
                As::User,
                checkout,
                input("order-1", "123", Some("a gift\nwith a note ✓")),
            )
            .await;
        assert_eq!(paid.data()["checkout"]["status"], "COMPLETED");
    }

    backend_tests!(mariadb: payment_text_inputs_refuse_control_characters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_passes_the_refusal_on_and_nothing_is_written() {
    let shop = Shop::spawn(Backend::Sqlite).await;
    let response = shop
        .gql(
            As::Admin,
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
            product(json!({ "name": "Evil\u{0}Lamp" })),
        )
        .await;
    assert_eq!(response.code(), "BAD_USER_INPUT", "{:#}", response.body);
    let error = &response.body["errors"][0];
    assert_eq!(error["extensions"]["serviceName"], "product", "{error:#}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("input.name must not contain control characters")),
        "{error:#}"
    );
    assert_eq!(response.body["data"], Value::Null);
    let count = shop
        .gql(
            As::Anonymous,
            "{ products(filter: { search: \"Evil\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        count.data()["products"]["totalCount"],
        0,
        "not stored, cut or whole"
    );
}
