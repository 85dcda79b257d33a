//! `products` filters, sorts and cursor pagination, `categories`, checked
//! against the demo catalogue computed independently in Rust.

use std::collections::HashSet;
use std::str::FromStr;

use product_subgraph::domain::Product;
use product_subgraph::seed::demo_catalogue;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{As, Backend, Options, TestApp, backend_tests};

const LIST: &str =
    "query($first: Int, $after: String, $filter: ProductFilter, $sort: ProductSort) {
    products(first: $first, after: $after, filter: $filter, sort: $sort) {
        totalCount
        edges { cursor node { id name price { amount } stockQuantity category createdAt } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

async fn seeded(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            seed: true,
            ..Options::default()
        },
    )
    .await
}

async fn list(app: &TestApp, variables: Value) -> Value {
    app.gql(As::Anonymous, LIST, variables).await.data()["products"].clone()
}

fn names(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of a listing, following `endCursor`.
async fn walk(app: &TestApp, first: i32, filter: Value, sort: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list(
            app,
            json!({ "first": first, "after": after, "filter": filter, "sort": sort }),
        )
        .await;
        let edges = page["edges"].as_array().unwrap();
        assert!(edges.len() <= first as usize);
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        assert_eq!(
            edges.len(),
            first as usize,
            "only the last page may be short"
        );
        after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        assert!(nodes.len() <= 1000, "pagination terminates");
    }
    nodes
}

fn expected_names(mut products: Vec<Product>, sort: &str) -> Vec<String> {
    match sort {
        "NAME" => products.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id))),
        "PRICE" => products.sort_by_key(|p| (p.price, p.id)),
        "PRICE_DESC" => products.sort_by_key(|p| std::cmp::Reverse((p.price, p.id))),
        "NEWEST" => products.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id))),
        other => panic!("unknown sort {other}"),
    }
    products.into_iter().map(|p| p.name).collect()
}

async fn every_sort_pages_through_the_whole_catalogue(backend: Backend) {
    let app = seeded(backend).await;
    let catalogue = demo_catalogue("EUR");
    for sort in ["NAME", "PRICE", "PRICE_DESC", "NEWEST"] {
        let nodes = walk(&app, 7, json!(null), sort).await;
        let got: Vec<String> = nodes
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            got,
            expected_names(catalogue.clone(), sort),
            "order for {sort}"
        );
        let ids: HashSet<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids.len(),
            catalogue.len(),
            "no duplicates or gaps for {sort}"
        );
    }
}

async fn filters_match_the_catalogue(backend: Backend) {
    let app = seeded(backend).await;
    let catalogue = demo_catalogue("EUR");
    let count = |pred: &dyn Fn(&Product) -> bool| catalogue.iter().filter(|p| pred(p)).count();

    let cases: Vec<(Value, usize)> = vec![
        (
            json!({ "category": "Tea" }),
            count(&|p| p.category == "Tea"),
        ),
        (json!({ "inStock": true }), count(&|p| p.stock_quantity > 0)),
        (
            json!({ "inStock": false }),
            count(&|p| p.stock_quantity == 0),
        ),
        (
            json!({ "minPrice": "10", "maxPrice": "30.00" }),
            count(&|p| p.price >= Decimal::from(10) && p.price <= Decimal::from(30)),
        ),
        (
            json!({ "search": "BEANS" }),
            count(&|p| {
                p.name.to_lowercase().contains("beans")
                    || p.description
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains("beans")
            }),
        ),
        (
            json!({ "category": "Coffee", "inStock": true, "maxPrice": "13.40" }),
            count(&|p| {
                p.category == "Coffee"
                    && p.stock_quantity > 0
                    && p.price <= Decimal::from_str("13.40").unwrap()
            }),
        ),
        (json!({ "search": "100%" }), 0),
        (json!({ "search": "_" }), 0),
        (json!({ "category": "No such category" }), 0),
    ];
    for (filter, expected) in cases {
        assert!(
            expected < catalogue.len(),
            "filter {filter} must exclude something"
        );
        let nodes = walk(&app, 10, filter.clone(), "NAME").await;
        assert_eq!(nodes.len(), expected, "filter {filter}");
        let page = list(&app, json!({ "first": 1, "filter": filter })).await;
        assert_eq!(page["totalCount"], expected, "totalCount for {filter}");
    }
    let beans = walk(&app, 100, json!({ "search": "beans" }), "NAME").await;
    assert!(!beans.is_empty(), "search finds something");
}

async fn pagination_edges(backend: Backend) {
    let app = seeded(backend).await;
    let total = demo_catalogue("EUR").len();

    let empty = list(&app, json!({ "first": 0 })).await;
    assert_eq!(empty["edges"], json!([]));
    assert_eq!(empty["pageInfo"]["hasNextPage"], true);
    assert_eq!(empty["totalCount"], total);

    let all = list(&app, json!({ "first": 100 })).await;
    assert_eq!(all["edges"].as_array().unwrap().len(), total);
    assert_eq!(all["pageInfo"]["hasNextPage"], false, "last page");
    assert_eq!(all["pageInfo"]["hasPreviousPage"], false);

    let default = list(&app, json!({})).await;
    assert_eq!(
        default["edges"].as_array().unwrap().len(),
        20,
        "default page size"
    );

    let first = list(&app, json!({ "first": 5, "sort": "NAME" })).await;
    let second = list(
        &app,
        json!({ "first": 5, "sort": "NAME", "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(second["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(
        second["pageInfo"]["startCursor"], second["edges"][0]["cursor"],
        "startCursor is the first edge's cursor"
    );
    let last_name = names(&first).pop().unwrap();
    assert!(names(&second).iter().all(|n| *n > last_name));

    for (variables, what) in [
        (json!({ "first": 101 }), "first above 100"),
        (json!({ "first": -1 }), "negative first"),
        (
            json!({ "first": 5, "after": "garbage" }),
            "malformed cursor",
        ),
        (
            json!({ "first": 5, "after": "eyJ4IjoxfQ" }),
            "cursor of another shape",
        ),
        (
            json!({ "first": 5, "sort": "PRICE", "after": first["pageInfo"]["endCursor"] }),
            "cursor of another sort",
        ),
        (
            json!({ "filter": { "minPrice": "5", "maxPrice": "1" } }),
            "inverted price range",
        ),
        (
            json!({ "filter": { "minPrice": "-1" } }),
            "negative price bound",
        ),
    ] {
        let response = app.gql(As::Anonymous, LIST, variables).await;
        assert_eq!(
            response.code(),
            "BAD_USER_INPUT",
            "{what}: {:#}",
            response.body
        );
    }
}

async fn categories_are_distinct_and_sorted(backend: Backend) {
    let app = seeded(backend).await;
    let mut expected: Vec<String> = demo_catalogue("EUR")
        .into_iter()
        .map(|p| p.category)
        .collect();
    expected.sort();
    expected.dedup();
    let response = app.gql(As::Anonymous, "{ categories }", json!({})).await;
    assert_eq!(response.data()["categories"], json!(expected));
}

async fn newest_lists_recent_products_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let older = app.create_product("Older", "1.00", 1, "Test").await;
    let newer = app.create_product("Newer", "1.00", 1, "Test").await;
    let page = list(&app, json!({ "first": 2 })).await;
    let ids: Vec<&str> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![newer.as_str(), older.as_str()]);
}

backend_tests!(
    every_sort_pages_through_the_whole_catalogue,
    filters_match_the_catalogue,
    pagination_edges,
    categories_are_distinct_and_sorted,
    newest_lists_recent_products_first,
);
