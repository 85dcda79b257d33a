//! The fixtures themselves, without a router: their SDL matches the
//! committed files, and they answer `_service` and `_entities` as the
//! router will call them.

use serde_json::{Value, json};

use crate::fixtures::{self, FixtureServer, SharedCounter};

async fn post(server: &FixtureServer, query: &str) -> Value {
    reqwest::Client::new()
        .post(server.url())
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the fixture answers")
        .json()
        .await
        .expect("a JSON response")
}

#[test]
fn fixture_sdl_matches_the_committed_files() {
    let write = std::env::var_os("FEDERATION_FIXTURES_WRITE").is_some();
    let mut stale = Vec::new();
    for name in fixtures::NAMES {
        let path = fixtures::sdl_path(name);
        let sdl = fixtures::sdl(name);
        if write {
            std::fs::write(&path, &sdl).expect("write the fixture SDL");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(sdl.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale fixture SDL {stale:?}: run `FEDERATION_FIXTURES_WRITE=1 cargo test --test \
         federation fixture_sdl`, then `node tests/federation/compose.mjs`, and commit"
    );
}

#[tokio::test]
async fn fixtures_serve_their_federation_sdl() {
    let counter = SharedCounter::default();
    for name in fixtures::NAMES {
        let server = FixtureServer::start(name, &counter).await;
        let body = post(&server, "{ _service { sdl } }").await;
        // `_service` adds one trailing newline.
        assert_eq!(
            body["data"]["_service"]["sdl"].as_str().map(str::trim_end),
            Some(fixtures::sdl(name).trim_end()),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn fixture_entity_resolvers_read_keys_and_required_fields() {
    let counter = SharedCounter::default();
    let cases = [
        (
            "accounts",
            r#"{ _entities(representations: [{__typename: "User", id: "1"}, {__typename: "User", id: "404"}]) { ... on User { name } } }"#,
            json!({ "_entities": [{ "name": "Ada Lovelace" }, null] }),
        ),
        (
            "products",
            r#"{ _entities(representations: [{__typename: "Media", id: "m2"}, {__typename: "Product", upc: "3"}]) { __typename ... on Movie { minutes } ... on Product { name } } }"#,
            json!({ "_entities": [
                { "__typename": "Movie", "minutes": 117 },
                { "__typename": "Product", "name": "Chair" },
            ] }),
        ),
        (
            "reviews",
            r#"{ _entities(representations: [{__typename: "User", id: "2", riskScore: 80}, {__typename: "Media", id: "m1"}]) { ... on User { trusted reviews { id } } ... on Media { rating } } }"#,
            json!({ "_entities": [
                { "trusted": false, "reviews": [{ "id": "r2" }] },
                { "rating": 4.5 },
            ] }),
        ),
        (
            "inventory",
            r#"{ _entities(representations: [{__typename: "Product", upc: "1", price: 899, weight: 12.0}, {__typename: "Book", id: "m1"}]) { ... on Product { inStock stock shippingEstimate } ... on Book { stock } } }"#,
            json!({ "_entities": [
                { "inStock": true, "stock": 7, "shippingEstimate": 600 },
                { "stock": 3 },
            ] }),
        ),
    ];
    for (name, query, expected) in cases {
        let server = FixtureServer::start(name, &counter).await;
        let body = post(&server, query).await;
        assert_eq!(body, json!({ "data": expected }), "{name}");
    }
}
