//! Mutations: root fields run one after another, in document order, even
//! when they alternate between subgraphs.

use serde_json::json;

use crate::harness::Federation;

#[tokio::test]
async fn mutation_fields_run_serially_in_document_order_across_subgraphs() {
    // `add` lives in accounts, `multiply` in inventory, on one counter:
    // any other order or any overlap gives other values.
    let fed = Federation::start().await;
    fed.query(
        "mutation {
            first: add(num: 5) { value }
            second: multiply(by: 2) { value }
            third: add(num: 2) { value log }
            fourth: multiply(by: 3) { log value }
        }",
        json!({}),
    )
    .await
    .assert_data(
        r#"{
            "first": {"value": 5},
            "second": {"value": 10},
            "third": {"value": 12, "log": ["add 5", "multiply 2", "add 2"]},
            "fourth": {"log": ["add 5", "multiply 2", "add 2", "multiply 3"], "value": 36}
        }"#,
    );
    assert_eq!(fed.request_count("accounts"), 2);
    assert_eq!(fed.request_count("inventory"), 2);
}
