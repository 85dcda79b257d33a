//! `reserveStock` and `releaseStockReservation` through the product
//! subgraph's schema, as payment calls them over the signed hop (the
//! forwarded payer is the request's `Identity`).

use async_graphql::{Request, Response, Variables};
use product_subgraph::graphql::{CatalogSettings, ProductSchema};
use serde_json::{Value, json};
use shopgraph_core::identity::{Identity, Viewer};
use subgraph_kit::events::live::{DEFAULT_BACKLOG, LiveFeed};
use subgraph_kit::events::{EventBus, Topic};
use subgraph_kit::settings::GraphqlSettings;
use subgraph_kit::testkit::TempBackend;
use uuid::Uuid;

use crate::backend_tests;
use crate::common::{PAYER, Shop};

const RESERVE: &str = "mutation($input: ReserveStockInput!) { reserveStock(input: $input) { id status expiresAt lines { productId quantity } } }";
const RELEASE: &str = "mutation($id: ID!) { releaseStockReservation(reservationId: $id) }";
const STOCK: &str = "query($id: ID!) { product(id: $id) { stockQuantity } }";

async fn schema(shop: &Shop) -> ProductSchema {
    let (feed, _forwarder) = LiveFeed::start(
        &EventBus::in_process(),
        vec![Topic::Product],
        DEFAULT_BACKLOG,
    )
    .await
    .expect("live feed");
    product_subgraph::graphql::schema(
        shop.store.clone(),
        CatalogSettings {
            default_currency: "EUR".into(),
        },
        &GraphqlSettings {
            max_depth: 16,
            max_complexity: 10_000,
            introspection: false,
            graphiql: false,
        },
        feed,
    )
}

async fn run(schema: &ProductSchema, caller: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = Request::new(query).variables(Variables::from_json(variables));
    if let Some(user) = caller {
        let viewer = Viewer::from_claims(user.into(), vec![]).expect("a viewer");
        request = request.data(Identity::User(viewer));
    }
    let response: Response = schema.execute(request).await;
    serde_json::to_value(&response).expect("a JSON response")
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {response:#}"))
}

fn input(id: Uuid, lines: Value) -> Value {
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(25);
    json!({ "input": { "reservationId": id, "expiresAt": expires_at, "lines": lines } })
}

async fn reserve_and_release_through_the_schema(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 5).await;
    let schema = schema(&shop).await;
    let id = Uuid::now_v7();
    let lines =
        json!([{ "productId": mug.id, "quantity": 3, "unitPrice": "4.50", "currency": "EUR" }]);

    let anonymous = run(&schema, None, RESERVE, input(id, lines.clone())).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");

    let reserved = run(&schema, Some(PAYER), RESERVE, input(id, lines.clone())).await;
    assert!(reserved.get("errors").is_none(), "{reserved:#}");
    assert_eq!(
        reserved["data"]["reserveStock"]["id"],
        json!(id.to_string())
    );
    assert_eq!(reserved["data"]["reserveStock"]["status"], "RESERVED");
    assert_eq!(
        reserved["data"]["reserveStock"]["lines"],
        json!([{ "productId": mug.id.to_string(), "quantity": 3 }])
    );
    // The same id again: the same reservation, nothing more taken.
    let again = run(&schema, Some(PAYER), RESERVE, input(id, lines)).await;
    assert_eq!(again["data"], reserved["data"]);
    let stock = run(&schema, None, STOCK, json!({ "id": mug.id })).await;
    assert_eq!(stock["data"]["product"]["stockQuantity"], 2);

    // Another user's release does nothing (and says true all the same).
    let theirs = run(&schema, Some("mallory"), RELEASE, json!({ "id": id })).await;
    assert_eq!(theirs["data"]["releaseStockReservation"], true);
    let stock = run(&schema, None, STOCK, json!({ "id": mug.id })).await;
    assert_eq!(stock["data"]["product"]["stockQuantity"], 2);

    for _ in 0..2 {
        let released = run(&schema, Some(PAYER), RELEASE, json!({ "id": id })).await;
        assert_eq!(
            released["data"]["releaseStockReservation"], true,
            "{released:#}"
        );
    }
    let stock = run(&schema, None, STOCK, json!({ "id": mug.id })).await;
    assert_eq!(stock["data"]["product"]["stockQuantity"], 5);
    // Unknown and malformed ids are no-ops too.
    for unknown in [json!(Uuid::now_v7()), json!("not-an-id")] {
        let released = run(&schema, Some(PAYER), RELEASE, json!({ "id": unknown })).await;
        assert_eq!(released["data"]["releaseStockReservation"], true);
    }
    let reservation = shop.store.reservation(id).await.unwrap().unwrap();
    assert_eq!(reservation.status.as_str(), "RELEASED");
}

async fn refusals_carry_their_lines(backend: TempBackend) {
    let shop = Shop::open(backend).await;
    let mug = shop.product("Blue Mug", "4.50", 2).await;
    let gone = shop.product("Vase", "9.00", 2).await;
    shop.store.delete(gone.id).await.unwrap();
    let schema = schema(&shop).await;
    let line = |product: Uuid, quantity: i32, price: &str| json!({ "productId": product, "quantity": quantity, "unitPrice": price, "currency": "EUR" });

    let short = run(
        &schema,
        Some(PAYER),
        RESERVE,
        input(Uuid::now_v7(), json!([line(mug.id, 3, "4.50")])),
    )
    .await;
    assert_eq!(code(&short), "OUT_OF_STOCK");
    assert_eq!(
        short["errors"][0]["message"],
        "Only 2 left of Blue Mug (you asked for 3)"
    );
    assert_eq!(
        short["errors"][0]["extensions"]["lines"],
        json!([{ "productId": mug.id.to_string(), "productName": "Blue Mug", "requested": 3, "available": 2 }])
    );

    let repriced = run(
        &schema,
        Some(PAYER),
        RESERVE,
        input(Uuid::now_v7(), json!([line(mug.id, 1, "4.00")])),
    )
    .await;
    assert_eq!(code(&repriced), "PRICE_CHANGED");
    assert_eq!(
        repriced["errors"][0]["extensions"]["lines"],
        json!([{
            "productId": mug.id.to_string(),
            "productName": "Blue Mug",
            "basketPrice": { "amount": "4.00", "currency": "EUR" },
            "currentPrice": { "amount": "4.50", "currency": "EUR" },
        }])
    );

    // Unknown to the catalogue: named by the caller's snapshot if it sent
    // one, by id if not.
    let never = Uuid::now_v7();
    let mut named = line(gone.id, 1, "9.00");
    named["productName"] = json!("Vase");
    let unavailable = run(
        &schema,
        Some(PAYER),
        RESERVE,
        input(
            Uuid::now_v7(),
            json!([named, line(never, 1, "1.00"), line(mug.id, 1, "4.50")]),
        ),
    )
    .await;
    assert_eq!(code(&unavailable), "PRODUCT_UNAVAILABLE");
    let mut expected = vec![
        json!({ "productId": gone.id.to_string(), "productName": "Vase" }),
        json!({ "productId": never.to_string(), "productName": null }),
    ];
    // Lines are reported in product-id order.
    expected.sort_by_key(|line| line["productId"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        unavailable["errors"][0]["extensions"]["lines"],
        json!(expected)
    );
    let message = unavailable["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Vase is no longer available"), "{message}");
    assert!(message.contains(&format!("(product {never})")), "{message}");

    for (bad, field) in [
        (
            input(Uuid::now_v7(), json!([line(mug.id, 0, "4.50")])),
            "lines.quantity",
        ),
        (
            input(Uuid::now_v7(), json!([line(mug.id, 1000, "4.50")])),
            "lines.quantity",
        ),
        (input(Uuid::now_v7(), json!([])), "lines"),
        (
            json!({ "input": { "reservationId": Uuid::now_v7(), "expiresAt": "2020-01-01T00:00:00Z", "lines": [line(mug.id, 1, "4.50")] } }),
            "expiresAt",
        ),
    ] {
        let refused = run(&schema, Some(PAYER), RESERVE, bad).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused:#}");
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
    }
    // Nothing was taken by any refusal.
    assert_eq!(shop.stock(&mug).await, 2);
    assert!(shop.stock_events().await.is_empty());
}

backend_tests!(
    reserve_and_release_through_the_schema,
    refusals_carry_their_lines
);

/// The router must never offer these to clients: the fields and their
/// types are `@inaccessible` in the subgraph's SDL.
#[test]
fn the_checkout_mutations_are_inaccessible() {
    let sdl = product_subgraph::graphql::sdl();
    for field in [
        "reserveStock(input: ReserveStockInput!): StockReservation!",
        "releaseStockReservation(reservationId: ID!): Boolean!",
    ] {
        let line = sdl
            .lines()
            .find(|line| line.trim().starts_with(field))
            .unwrap_or_else(|| panic!("{field} missing from:\n{sdl}"));
        assert!(line.contains(" @inaccessible"), "{line}");
        assert!(line.contains(" @authenticated"), "{line}");
    }
    for ty in [
        "input ReserveStockInput @inaccessible",
        "input StockReservationLineInput @inaccessible",
        "type StockReservation @inaccessible",
        "type StockReservationLine @inaccessible",
        "enum StockReservationStatus @inaccessible",
    ] {
        assert!(sdl.contains(ty), "{ty} missing from:\n{sdl}");
    }
}
