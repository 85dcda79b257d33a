//! Snapshots of the router's query plans: every operation in
//! `tests/operations/*.graphql`, planned against the committed
//! `schema/supergraph.graphql` with the router's own planner (as `shopgraph
//! plan` does), is compared with its `.snap` file under `snapshots/`. A
//! planner upgrade or a supergraph change that alters a plan fails here
//! until the new plan is reviewed and accepted:
//!
//! ```text
//! INSTA_UPDATE=always cargo test --test api query_plans   # rewrite the .snap files
//! git diff tests/api/snapshots                            # review, then commit
//! ```
//!
//! (or, with `cargo-insta` installed, `cargo insta test --test api -- query_plans`
//! then `cargo insta review`). Needs no database or network.

use std::path::{Path, PathBuf};

use shopgraph_router::planner::{PlannerSettings, QueryPlanner, operation_names};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The operation files, in a stable order.
fn operation_files() -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("tests/operations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_client_operation_has_a_reviewed_plan() {
    let supergraph = std::fs::read_to_string(format!("{ROOT}/schema/supergraph.graphql"))
        .expect("the committed supergraph");
    let planner = QueryPlanner::from_supergraph(&supergraph, PlannerSettings::default())
        .expect("the planner loads the supergraph");

    let mut planned = Vec::new();
    for file in operation_files() {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        let document = std::fs::read_to_string(&file).expect("an operation file");
        let names =
            operation_names(&document).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        for name in names {
            let name = name.unwrap_or_else(|| panic!("{}: name every operation", file.display()));
            let prepared = planner
                .prepare(&document, Some(&name))
                .unwrap_or_else(|err| panic!("{stem}#{name} cannot be planned: {err}"));
            let snapshot = format!("{stem}__{name}");
            insta::with_settings!({
                description => format!("tests/operations/{stem}.graphql#{name}"),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(snapshot.clone(), prepared.plan.to_string());
            });
            planned.push(snapshot);
        }
    }

    // Every snapshot on disk belongs to an operation that still exists, so
    // a removed or renamed operation does not leave a stale plan behind.
    let dir = Path::new(ROOT).join("tests/api/snapshots");
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter_map(|file| {
                    let name = file
                        .strip_prefix("api__query_plans__")?
                        .strip_suffix(".snap")?
                        .to_owned();
                    (!planned.contains(&name)).then_some(file)
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stale.is_empty(),
        "snapshots of operations that no longer exist (delete them): {stale:?}"
    );
    assert!(!planned.is_empty(), "tests/operations holds operations");
}
