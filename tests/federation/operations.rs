//! The client's operation, shaped exactly: aliases, fragments, key order,
//! variables and their defaults, `@skip`/`@include`, operation names.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn aliases_and_named_fragments_shape_the_response() {
    let fed = Federation::start().await;
    fed.query(
        r#"query {
            table: product(upc: "1") { ...Card }
            chair: product(upc: "3") { title: name ...Card }
        }
        fragment Card on Product { id: upc cents: price units: stock }"#,
        json!({}),
    )
    .await
    .assert_data(
        r#"{
            "table": {"id": "1", "cents": 899, "units": 7},
            "chair": {"title": "Chair", "id": "3", "cents": 54, "units": 0}
        }"#,
    );
}

#[tokio::test]
async fn one_field_under_two_aliases_with_different_arguments_in_an_entity_fetch() {
    let fed = Federation::start().await;
    fed.query(
        "{ topReviews(first: 1) { product { grams: weight kilos: weight(unit: KILOGRAM) } } }",
        json!({}),
    )
    .await
    .assert_data(r#"{"topReviews": [{"product": {"grams": 12000.0, "kilos": 12.0}}]}"#);
}

#[tokio::test]
async fn response_keys_follow_the_query_not_the_order_subgraphs_answer_in() {
    // `stock` and `reviews` arrive after `name`, `inStock` from yet another
    // fetch; the response must still list the keys as selected.
    let fed = Federation::start().await;
    fed.query(
        r#"{
            topReviews(first: 1) { id }
            me { username }
            product(upc: "1") { stock reviews(first: 1) { body } name inStock upc }
        }"#,
        json!({}),
    )
    .await
    .assert_data(
        r#"{
            "topReviews": [{"id": "r1"}],
            "me": {"username": "ada"},
            "product": {"stock": 7, "reviews": [{"body": "Love it!"}], "name": "Table", "inStock": true, "upc": "1"}
        }"#,
    );
}

#[tokio::test]
async fn variable_and_argument_defaults_apply_when_omitted() {
    let fed = Federation::start().await;
    let query = "query Top($first: Int! = 2, $unit: WeightUnit! = KILOGRAM) {
        topProducts(first: $first) { upc weight(unit: $unit) }
    }";
    fed.query(query, json!({})).await.assert_data(
        r#"{"topProducts": [{"upc": "1", "weight": 12.0}, {"upc": "2", "weight": 40.0}]}"#,
    );
    fed.query(query, json!({ "first": 1, "unit": "GRAM" }))
        .await
        .assert_data(r#"{"topProducts": [{"upc": "1", "weight": 12000.0}]}"#);
    // Without a variable, the schema's argument defaults apply.
    fed.query("{ topProducts { upc } topReviews { id } }", json!({}))
        .await
        .assert_data(
            r#"{
                "topProducts": [{"upc": "1"}, {"upc": "2"}, {"upc": "3"}],
                "topReviews": [{"id": "r1"}, {"id": "r2"}, {"id": "r3"}, {"id": "r4"}]
            }"#,
        );
}

#[tokio::test]
async fn include_false_on_an_entity_field_skips_the_entity_fetch() {
    let fed = Federation::start().await;
    let query = r#"query ($withReviews: Boolean!) {
        product(upc: "1") { name reviews @include(if: $withReviews) { body } }
    }"#;
    fed.query(query, json!({ "withReviews": false }))
        .await
        .assert_data(r#"{"product": {"name": "Table"}}"#);
    assert_eq!(
        fed.request_count("reviews"),
        0,
        "{:?}",
        fed.requests("reviews")
    );

    fed.query(query, json!({ "withReviews": true }))
        .await
        .assert_data(
            r#"{"product": {"name": "Table", "reviews": [{"body": "Love it!"}, {"body": "Too expensive."}]}}"#,
        );
}

#[tokio::test]
async fn skip_and_include_on_fragments_follow_variables() {
    let fed = Federation::start().await;
    let query = r#"query ($compact: Boolean!) {
        product(upc: "3") {
            name
            ...Stock @skip(if: $compact)
            ... on Product @include(if: $compact) { upc }
        }
    }
    fragment Stock on Product { stock inStock }"#;
    fed.query(query, json!({ "compact": true }))
        .await
        .assert_data(r#"{"product": {"name": "Chair", "upc": "3"}}"#);
    fed.query(query, json!({ "compact": false }))
        .await
        .assert_data(r#"{"product": {"name": "Chair", "stock": 0, "inStock": false}}"#);
}

#[tokio::test]
async fn the_operation_name_selects_the_operation_to_run() {
    let fed = Federation::start().await;
    fed.query_named(
        r#"query Me { me { name } } query Couch { product(upc: "2") { name } }"#,
        "Couch",
    )
    .await
    .assert_data(r#"{"product": {"name": "Couch"}}"#);
}

#[tokio::test]
async fn an_introspection_only_query_answers_exactly_what_was_asked() {
    let fed = Federation::start().await;
    fed.query(
        r#"{ __schema { queryType { name } } __type(name: "Book") { kind } }"#,
        json!({}),
    )
    .await
    .assert_data(r#"{"__schema": {"queryType": {"name": "Query"}}, "__type": {"kind": "OBJECT"}}"#);
    for name in crate::fixtures::NAMES {
        assert_eq!(
            fed.request_count(name),
            0,
            "{name} was called: {:?}",
            fed.requests(name)
        );
    }
}
