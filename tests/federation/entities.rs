//! Entity fetches: fields of one entity from several subgraphs, nested
//! entities, lists, batching and variables inside entity fetches.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn fields_from_another_subgraph_are_merged_into_a_root_entity() {
    let fed = Federation::start().await;
    fed.query(
        r#"{ product(upc: "2") { upc name price stock } }"#,
        json!({}),
    )
    .await
    .assert_data(r#"{"product": {"upc": "2", "name": "Couch", "price": 1299, "stock": 2}}"#);
}

#[tokio::test]
async fn nested_entities_resolve_across_three_subgraphs() {
    let fed = Federation::start().await;
    fed.query(
        "{ topProducts(first: 2) { name reviews { body author { name } } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"topProducts": [
            {"name": "Table", "reviews": [
                {"body": "Love it!", "author": {"name": "Ada Lovelace"}},
                {"body": "Too expensive.", "author": {"name": "Alan Turing"}}
            ]},
            {"name": "Couch", "reviews": [
                {"body": "Prefer something else.", "author": {"name": "Grace Hopper"}}
            ]}
        ]}"#,
    );
}

#[tokio::test]
async fn an_entity_chain_runs_through_all_four_subgraphs() {
    let fed = Federation::start().await;
    fed.query(
        "{ me { name reviews { body product { name inStock } } } }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{"me": {"name": "Ada Lovelace", "reviews": [
            {"body": "Love it!", "product": {"name": "Table", "inStock": true}},
            {"body": "Could be better.", "product": {"name": "Chair", "inStock": false}}
        ]}}"#,
    );
}

#[tokio::test]
async fn entity_lists_keep_their_order_duplicates_and_nulls() {
    let fed = Federation::start().await;
    fed.query(
        r#"{ productsByUpc(upcs: ["3", "9", "1", "3"]) { upc name stock } }"#,
        json!({}),
    )
    .await
    .assert_data(
        r#"{"productsByUpc": [
            {"upc": "3", "name": "Chair", "stock": 0},
            null,
            {"upc": "1", "name": "Table", "stock": 7},
            {"upc": "3", "name": "Chair", "stock": 0}
        ]}"#,
    );
}

#[tokio::test]
async fn an_entity_fetch_for_a_list_is_one_batched_request() {
    let fed = Federation::start().await;
    fed.query("{ topProducts { upc stock } }", json!({}))
        .await
        .assert_data(
            r#"{"topProducts": [
                {"upc": "1", "stock": 7}, {"upc": "2", "stock": 2}, {"upc": "3", "stock": 0}
            ]}"#,
        );
    let batches = fed.representations("inventory");
    assert_eq!(fed.request_count("inventory"), 1, "{batches:?}");
    assert_eq!(
        batches,
        vec![vec![
            json!({"__typename": "Product", "upc": "1"}),
            json!({"__typename": "Product", "upc": "2"}),
            json!({"__typename": "Product", "upc": "3"}),
        ]]
    );
}

#[tokio::test]
async fn variables_reach_the_subgraph_that_uses_them_in_an_entity_fetch() {
    let fed = Federation::start().await;
    fed.query(
        r#"query ($n: Int) { product(upc: "1") { name reviews(first: $n) { id } } }"#,
        json!({ "n": 1 }),
    )
    .await
    .assert_data(r#"{"product": {"name": "Table", "reviews": [{"id": "r1"}]}}"#);
}
