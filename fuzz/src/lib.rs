//! What the fuzz targets share: the shop's supergraph loaded once, and the
//! client operations of `tests/operations/` prepared against it.

use std::sync::{Arc, OnceLock};

use shopgraph_router::executor::schema::SchemaIndex;
use shopgraph_router::planner::{
    PlannerSettings, PreparedOperation, QueryPlanner, operation_names,
};

/// The supergraph the router serves in production, as committed.
pub const SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

/// The documents clients send (`tests/operations/`).
pub const DOCUMENTS: [&str; 5] = [
    include_str!("../../tests/operations/basket.graphql"),
    include_str!("../../tests/operations/catalogue.graphql"),
    include_str!("../../tests/operations/checkout.graphql"),
    include_str!("../../tests/operations/me.graphql"),
    include_str!("../../tests/operations/notifications.graphql"),
];

/// The planner over [`SUPERGRAPH`], with the router's default limits.
pub fn planner() -> &'static QueryPlanner {
    static PLANNER: OnceLock<QueryPlanner> = OnceLock::new();
    PLANNER.get_or_init(|| {
        QueryPlanner::from_supergraph(SUPERGRAPH, PlannerSettings::default())
            .expect("the committed supergraph loads")
    })
}

/// Every named operation of [`DOCUMENTS`], prepared (parsed, validated,
/// planned) once.
pub fn operations() -> &'static [Arc<PreparedOperation>] {
    static OPERATIONS: OnceLock<Vec<Arc<PreparedOperation>>> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        let mut prepared = Vec::new();
        for document in DOCUMENTS {
            for name in operation_names(document).expect("a client document parses") {
                prepared.push(
                    planner()
                        .prepare(document, name.as_deref())
                        .expect("every client operation plans"),
                );
            }
        }
        prepared
    })
}

/// The operation `selector` picks (modulo their number).
pub fn operation(selector: u8) -> &'static Arc<PreparedOperation> {
    let all = operations();
    &all[usize::from(selector) % all.len()]
}

/// The executor's index of the API schema, built once.
pub fn schema() -> &'static SchemaIndex {
    static SCHEMA: OnceLock<SchemaIndex> = OnceLock::new();
    SCHEMA.get_or_init(|| SchemaIndex::new(planner().api_schema()))
}
