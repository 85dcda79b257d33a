//! Abstract types: the `Media` entity interface (owned by `products`,
//! extended by `inventory` on `Book` and by `reviews` as an
//! `@interfaceObject`), the `Recommendation` union whose members live in
//! three subgraphs, and `__typename`.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn interface_fragments_fetch_entities_only_for_matching_types() {
    let fed = Federation::start().await;
    fed.query(
        "{ media { __typename id title ... on Book { pages stock } ... on Movie { minutes } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"media": [
            {"__typename": "Book", "id": "m1", "title": "Dune", "pages": 412, "stock": 3},
            {"__typename": "Movie", "id": "m2", "title": "Alien", "minutes": 117},
            {"__typename": "Book", "id": "m3", "title": "Neuromancer", "pages": 271, "stock": 0}
        ]}"#,
    );
    assert_eq!(
        fed.representations("inventory"),
        vec![vec![
            json!({"__typename": "Book", "id": "m1"}),
            json!({"__typename": "Book", "id": "m3"}),
        ]]
    );
}

#[tokio::test]
async fn interface_object_fields_resolve_for_every_implementation() {
    // `reviews` only knows `Media`: the router must send it `Media`
    // representations, whatever the concrete type.
    let fed = Federation::start().await;
    fed.query("{ media { title rating } }", json!({}))
        .await
        .assert_data(
            r#"{"media": [
                {"title": "Dune", "rating": 4.5},
                {"title": "Alien", "rating": 3.0},
                {"title": "Neuromancer", "rating": 4.8}
            ]}"#,
        );
    for batch in fed.representations("reviews") {
        for representation in batch {
            assert_eq!(representation["__typename"], "Media", "{representation}");
        }
    }
}

#[tokio::test]
async fn an_interface_object_root_field_gets_concrete_types_from_the_interface_owner() {
    let fed = Federation::start().await;
    fed.query(
        "{ topRatedMedia { __typename id rating ... on Book { title pages } ... on Movie { title minutes } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"topRatedMedia": [
            {"__typename": "Book", "id": "m3", "rating": 4.8, "title": "Neuromancer", "pages": 271},
            {"__typename": "Book", "id": "m1", "rating": 4.5, "title": "Dune", "pages": 412},
            {"__typename": "Movie", "id": "m2", "rating": 3.0, "title": "Alien", "minutes": 117}
        ]}"#,
    );
}

#[tokio::test]
async fn union_members_are_completed_by_their_own_subgraphs() {
    let fed = Federation::start().await;
    fed.query(
        "{ recommendations {
            __typename
            ... on Product { name price }
            ... on User { name }
            ... on Review { body author { username } }
        } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"recommendations": [
            {"__typename": "Product", "name": "Chair", "price": 54},
            {"__typename": "User", "name": "Ada Lovelace"},
            {"__typename": "Review", "body": "Could be better.", "author": {"username": "ada"}},
            {"__typename": "Product", "name": "Table", "price": 899},
            {"__typename": "User", "name": "Alan Turing"}
        ]}"#,
    );
}

#[tokio::test]
async fn typename_is_the_concrete_type_on_roots_unions_interfaces_and_interface_objects() {
    // `reviews` would say "Media" for `topRatedMedia`: only `products`
    // knows the concrete type, and "Media" must never reach the client.
    let fed = Federation::start().await;
    fed.query(
        "{ __typename recommendations { __typename } media { __typename } topRatedMedia { __typename } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{
            "__typename": "Query",
            "recommendations": [
                {"__typename": "Product"}, {"__typename": "User"}, {"__typename": "Review"},
                {"__typename": "Product"}, {"__typename": "User"}
            ],
            "media": [{"__typename": "Book"}, {"__typename": "Movie"}, {"__typename": "Book"}],
            "topRatedMedia": [{"__typename": "Book"}, {"__typename": "Book"}, {"__typename": "Movie"}]
        }"#,
    );
}

#[tokio::test]
async fn an_aliased_typename_on_abstract_types_is_the_concrete_type() {
    let fed = Federation::start().await;
    fed.query(
        "{ recommendations { kind: __typename } media { kind: __typename } topRatedMedia { kind: __typename } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{
            "recommendations": [
                {"kind": "Product"}, {"kind": "User"}, {"kind": "Review"},
                {"kind": "Product"}, {"kind": "User"}
            ],
            "media": [{"kind": "Book"}, {"kind": "Movie"}, {"kind": "Book"}],
            "topRatedMedia": [{"kind": "Book"}, {"kind": "Book"}, {"kind": "Movie"}]
        }"#,
    );
}
