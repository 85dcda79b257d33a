//! Stage 5, execution: running a query plan against the subgraphs and shaping the
//! client's response.
//!
//! 1. [`Executor::execute`] walks the plan (`plan_nodes`-shaped data from the
//!    hive planner): `Sequence` children one after another, `Parallel`
//!    children concurrently, `Condition` by a boolean variable, `Fetch` as
//!    one subgraph request, `Flatten(Fetch)` and `BatchFetch` as `_entities`
//!    requests built from the objects already fetched ([`entities`]).
//! 2. Every answer is merged into one data tree; subgraph errors are
//!    re-pathed into the client's response; a subgraph that cannot be
//!    reached leaves its part `null` with a `SUBGRAPH_UNAVAILABLE` error.
//! 3. [`project`] writes exactly the client's selection from that tree,
//!    propagating nulls per the GraphQL spec.
//!
//! A subscription runs the same plan once per event: the plan's
//! `Subscription` node is the event itself ([`Executor::execute_event`]),
//! the rest of the plan fetches what the client asked across subgraphs.
//!
//! Fetches of a `Parallel` node run concurrently; the data tree sits behind
//! a mutex that is only held for the synchronous steps (building
//! representations, merging answers), never across a subgraph call.

pub mod entities;
pub mod error;
pub mod project;
pub mod schema;

use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;
use hive_router_query_planner::ast::operation::OperationDefinition;
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet;
use hive_router_query_planner::planner::plan_nodes::{
    BatchFetchNode, FetchNode, FetchRewrite, FlattenNodePathSegment, PlanNode, QueryPlan,
};
use hive_router_query_planner::state::supergraph_state::OperationKind;
use serde_json::{Map, Value};
use shopgraph_core::error::ErrorCode;
use shopgraph_core::identity::Identity;
use tracing::Instrument;

use crate::planner::authorization::Denied;
use crate::subgraph::{FetchError, Fetcher, SubgraphRequest, SubgraphResponse};
use entities::{Answers, Representations};
use error::{GraphqlError, PathSegment, ResponsePath, subgraph_path};
use project::Projector;
use schema::SchemaIndex;

/// What one operation needs to run.
pub struct ExecutionRequest<'a> {
    /// The plan from the planner.
    pub plan: &'a QueryPlan,
    /// The normalized client operation (what projection follows).
    pub operation: &'a OperationDefinition,
    /// The name of the root type the operation selects on (`Query`, `Mutation`).
    pub root_type: &'a str,
    /// Coerced variables (defaults applied).
    pub variables: &'a Map<String, Value>,
    /// The verified caller, forwarded to subgraphs.
    pub identity: &'a Identity,
    /// Root fields answered by the router itself (introspection), appended to `data`.
    pub extra_root_fields: Map<String, Value>,
    /// Fields the plan leaves out because the caller may not have them
    /// (`@authenticated` / `@requiresScopes`): projected as `null` with an
    /// `UNAUTHORIZED_FIELD_OR_TYPE` error. `None` when nothing is denied.
    pub denied: Option<&'a Denied>,
}

/// The result of an operation: the `data` JSON and the errors.
#[derive(Debug)]
pub struct ExecutionResult {
    /// The serialized `data` member (`null` when a non-null root field failed).
    pub data: Vec<u8>,
    /// Errors, in the order they happened.
    pub errors: Vec<GraphqlError>,
}

impl ExecutionResult {
    /// The GraphQL response body: `{"data":…,"errors":[…]}`.
    pub fn into_body(self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.data.len() + 16);
        body.extend_from_slice(b"{\"data\":");
        body.extend_from_slice(&self.data);
        if !self.errors.is_empty() {
            body.extend_from_slice(b",\"errors\":");
            // Serialising plain strings and maps into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, &self.errors);
        }
        body.push(b'}');
        body
    }
}

/// Runs plans against subgraphs through a [`Fetcher`].
#[derive(Clone)]
pub struct Executor {
    fetcher: Arc<dyn Fetcher>,
}

/// The data tree and errors of one operation, shared by concurrent fetches.
struct State {
    data: Value,
    errors: Vec<GraphqlError>,
}

struct Run<'a> {
    executor: &'a Executor,
    schema: &'a SchemaIndex,
    request: &'a ExecutionRequest<'a>,
    state: Mutex<State>,
    /// The subscription event answering the plan's `Subscription` node.
    event: Option<&'a SubgraphResponse>,
}

/// The fetch that opens a subscription plan's event stream (its
/// `Subscription` node's primary), if the plan has one.
pub fn subscription_source(plan: &QueryPlan) -> Option<&FetchNode> {
    fn find(node: &PlanNode) -> Option<&FetchNode> {
        match node {
            PlanNode::Subscription(subscription) => Some(&subscription.primary),
            PlanNode::Sequence(sequence) => sequence.nodes.iter().find_map(find),
            PlanNode::Parallel(parallel) => parallel.nodes.iter().find_map(find),
            _ => None,
        }
    }
    plan.node.as_ref().and_then(find)
}

/// The client variables `fetch` uses, from the operation's `variables`.
pub fn fetch_variables(fetch: &FetchNode, variables: &Map<String, Value>) -> Map<String, Value> {
    used_variables(fetch.variable_usages.as_ref(), variables)
}

fn used_variables(
    usages: Option<&std::collections::BTreeSet<String>>,
    variables: &Map<String, Value>,
) -> Map<String, Value> {
    let mut used = Map::new();
    for name in usages.into_iter().flatten() {
        if let Some(value) = variables.get(name) {
            used.insert(name.clone(), value.clone());
        }
    }
    used
}

impl Executor {
    /// An executor sending its fetches through `fetcher`.
    pub fn new(fetcher: Arc<dyn Fetcher>) -> Self {
        Self { fetcher }
    }

    /// Runs `request.plan` and projects the response.
    pub async fn execute(
        &self,
        schema: &SchemaIndex,
        request: ExecutionRequest<'_>,
    ) -> ExecutionResult {
        self.run(schema, request, None).await
    }

    /// Runs a subscription plan for one `event` from its source subgraph
    /// (see [`subscription_source`]) and projects the response.
    pub async fn execute_event(
        &self,
        schema: &SchemaIndex,
        request: ExecutionRequest<'_>,
        event: &SubgraphResponse,
    ) -> ExecutionResult {
        self.run(schema, request, Some(event)).await
    }

    async fn run(
        &self,
        schema: &SchemaIndex,
        request: ExecutionRequest<'_>,
        event: Option<&SubgraphResponse>,
    ) -> ExecutionResult {
        let run = Run {
            executor: self,
            schema,
            request: &request,
            state: Mutex::new(State {
                data: Value::Object(Map::new()),
                errors: Vec::new(),
            }),
            event,
        };
        if let Some(node) = &request.plan.node {
            run.node(node).await;
        }
        let State { data, mut errors } = run
            .state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let empty = Map::new();
        let data_object = data.as_object().unwrap_or(&empty);
        let data = Projector::new(schema, request.variables, &mut errors)
            .with_denied(request.denied)
            .project_root(
                &request.operation.selection_set,
                request.root_type,
                data_object,
                &request.extra_root_fields,
            );
        ExecutionResult { data, errors }
    }
}

impl Run<'_> {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tree half-written
        // in a way later steps rely on; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // Plans are trees of unknown depth: recursion goes through a boxed future.
    // Each node runs in its own span, so a trace shows the plan's shape
    // (sequence, parallel, fetch on which subgraph) above the fetches.
    fn node<'n>(&'n self, node: &'n PlanNode) -> BoxFuture<'n, ()> {
        let span = node_span(node);
        async move {
            match node {
                PlanNode::Sequence(sequence) => {
                    for child in &sequence.nodes {
                        self.node(child).await;
                    }
                }
                PlanNode::Parallel(parallel) => {
                    futures::future::join_all(parallel.nodes.iter().map(|child| self.node(child)))
                        .await;
                }
                PlanNode::Condition(condition) => {
                    let flag = self
                        .request
                        .variables
                        .get(&condition.condition)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let branch = if flag {
                        &condition.if_clause
                    } else {
                        &condition.else_clause
                    };
                    if let Some(branch) = branch {
                        self.node(branch).await;
                    }
                }
                PlanNode::Fetch(fetch) => self.root_fetch(fetch).await,
                PlanNode::Flatten(flatten) => match flatten.node.as_ref() {
                    PlanNode::Fetch(fetch) => {
                        self.entity_fetch(fetch, flatten.path.as_slice()).await
                    }
                    other => self.unsupported(other),
                },
                PlanNode::BatchFetch(batch) => self.batch_fetch(batch).await,
                PlanNode::Subscription(subscription) => match self.event {
                    Some(event) => self.merge_root(&subscription.primary, Ok(event.clone())),
                    None => self.unsupported(node),
                },
                other @ PlanNode::Defer(_) => self.unsupported(other),
            }
        }
        .instrument(span)
        .boxed()
    }

    fn unsupported(&self, node: &PlanNode) {
        let kind = match node {
            PlanNode::Subscription(_) => "subscriptions",
            PlanNode::Defer(_) => "@defer",
            _ => "this plan shape",
        };
        self.state().errors.push(GraphqlError::coded(
            ErrorCode::BadRequest,
            format!("{kind} are not supported over this transport"),
        ));
    }

    async fn send(
        &self,
        service: &str,
        query: &str,
        variables: Map<String, Value>,
        is_query: bool,
    ) -> Result<SubgraphResponse, FetchError> {
        let request = SubgraphRequest {
            query,
            operation_name: None,
            variables,
            identity: self.request.identity,
            is_query,
        };
        let started = std::time::Instant::now();
        let result = self.executor.fetcher.fetch(service, &request).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("router_subgraph_requests_total", "subgraph" => service.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("router_subgraph_request_duration_seconds", "subgraph" => service.to_owned())
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// A fetch on the root type: its data merges into the root.
    async fn root_fetch(&self, fetch: &FetchNode) {
        let variables = fetch_variables(fetch, self.request.variables);
        let is_query = matches!(fetch.operation_kind, None | Some(OperationKind::Query));
        let result = self
            .send(
                &fetch.service_name,
                &fetch.operation.document_str,
                variables,
                is_query,
            )
            .await;
        self.merge_root(fetch, result);
    }

    /// Merges a root fetch's answer (or failure) into the response.
    fn merge_root(&self, fetch: &FetchNode, result: Result<SubgraphResponse, FetchError>) {
        let mut state = self.state();
        match result {
            Err(err) => {
                // One error per root field the fetch was to answer, at its path.
                let keys = root_keys(&fetch.operation.document.operation.selection_set.items);
                if keys.is_empty() {
                    state
                        .errors
                        .push(unavailable(&fetch.service_name, &err, None));
                }
                for key in keys {
                    let at = vec![PathSegment::Key(key)];
                    state
                        .errors
                        .push(unavailable(&fetch.service_name, &err, Some(at)));
                }
            }
            Ok(response) => {
                for raw in &response.errors {
                    state.errors.push(GraphqlError::from_subgraph(
                        raw,
                        &fetch.service_name,
                        subgraph_path(raw),
                    ));
                }
                if let Some(Value::Object(mut answer)) = response.data {
                    if let Some(rewrites) = &fetch.output_rewrites {
                        let mut value = Value::Object(std::mem::take(&mut answer));
                        for rewrite in rewrites {
                            entities::apply_rewrite(rewrite, &mut value, self.schema);
                        }
                        answer = match value {
                            Value::Object(object) => object,
                            _ => Map::new(),
                        };
                    }
                    if let Value::Object(root) = &mut state.data {
                        entities::deep_merge_object(root, answer);
                    }
                }
            }
        }
    }

    /// `Flatten(path) { Fetch }`: an `_entities` request for the objects at
    /// `path` — an entity batch of one.
    async fn entity_fetch(&self, fetch: &FetchNode, path: &[FlattenNodePathSegment]) {
        let Some(requires) = &fetch.requires else {
            self.unsupported(&PlanNode::Fetch(fetch.clone()));
            return;
        };
        let group = EntityGroup {
            field: "_entities",
            variable: "representations",
            requires,
            paths: vec![path],
            input_rewrites: fetch.input_rewrites.as_deref(),
            output_rewrites: fetch.output_rewrites.as_deref(),
        };
        self.fetch_entities(
            &fetch.service_name,
            &fetch.operation.document_str,
            fetch.variable_usages.as_ref(),
            vec![group],
        )
        .await;
    }

    /// Several entity fetches to one subgraph in a single request, one
    /// aliased `_entities` field each.
    async fn batch_fetch(&self, batch: &BatchFetchNode) {
        let groups = batch
            .entity_batch
            .aliases
            .iter()
            .map(|alias| EntityGroup {
                field: &alias.alias,
                variable: &alias.representations_variable_name,
                requires: &alias.requires,
                paths: alias.merge_paths.iter().map(|p| p.as_slice()).collect(),
                input_rewrites: alias.input_rewrites.as_deref(),
                output_rewrites: alias.output_rewrites.as_deref(),
            })
            .collect();
        self.fetch_entities(
            &batch.service_name,
            &batch.operation.document_str,
            batch.variable_usages.as_ref(),
            groups,
        )
        .await;
    }

    /// Collects the representations of every group, sends them in one
    /// request, and lands each group's answers: errors at the client's
    /// paths, entities merged into the objects they were asked for.
    async fn fetch_entities(
        &self,
        service: &str,
        operation: &str,
        usages: Option<&std::collections::BTreeSet<String>>,
        groups: Vec<EntityGroup<'_>>,
    ) {
        let mut variables = used_variables(usages, self.request.variables);
        let mut collected = Vec::with_capacity(groups.len());
        {
            let state = self.state();
            for group in &groups {
                let mut reps = Representations::default();
                for path in &group.paths {
                    entities::collect(
                        &state.data,
                        path,
                        group.requires,
                        group.input_rewrites,
                        self.schema,
                        &mut reps,
                    );
                }
                variables.insert(group.variable.to_owned(), Value::Array(reps.take_unique()));
                collected.push(reps);
            }
        }
        if collected
            .iter()
            .all(|reps| reps.slots.iter().all(Option::is_none))
        {
            return;
        }
        let result = self.send(service, operation, variables, true).await;
        let mut state = self.state();
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                for path in groups.iter().flat_map(|group| &group.paths) {
                    let at = path_prefix(path);
                    state.errors.push(unavailable(service, &err, Some(at)));
                }
                return;
            }
        };
        let mut data = match response.data {
            Some(Value::Object(data)) => data,
            _ => Map::new(),
        };
        for (position, (group, reps)) in groups.iter().zip(&mut collected).enumerate() {
            // Errors that name no group are reported once, with the first.
            self.land(
                &mut state,
                &mut data,
                &response.errors,
                service,
                group,
                reps,
                position == 0,
            );
        }
    }

    /// Lands one group's `_entities` field of a subgraph answer.
    #[allow(clippy::too_many_arguments)]
    fn land(
        &self,
        state: &mut State,
        data: &mut Map<String, Value>,
        raw_errors: &[Value],
        service: &str,
        group: &EntityGroup<'_>,
        reps: &mut Representations,
        claims_unmatched: bool,
    ) {
        let answers = take_list(data, group.field);
        if !raw_errors.is_empty() {
            reps.fill_paths(&state.data, group.paths.iter().copied(), self.schema);
        }
        state.errors.extend(entity_errors(
            raw_errors,
            &EntityField {
                service,
                field: group.field,
                reps,
                answers: &answers,
                flatten_path: group.paths.first().copied().unwrap_or_default(),
                claims_unmatched,
            },
        ));
        let expected = reps.slots.iter().flatten().max().map_or(0, |max| max + 1);
        if answers.len() != expected {
            if !answers.is_empty() || raw_errors.is_empty() {
                state
                    .errors
                    .push(miscount(service, answers.len(), expected));
            }
            return;
        }
        let mut answers = Answers::new(answers, &reps.slots);
        for rewrite in group.output_rewrites.unwrap_or_default() {
            answers.for_each_mut(|answer| entities::apply_rewrite(rewrite, answer, self.schema));
        }
        let mut offset = 0;
        for path in &group.paths {
            entities::merge_answers(
                &mut state.data,
                path,
                self.schema,
                &reps.slots,
                &mut offset,
                &mut answers,
            );
        }
    }
}

/// One `_entities` field of an entity request: where its representations
/// come from and where its answers go.
struct EntityGroup<'a> {
    /// `_entities`, or a batch alias such as `_e0`.
    field: &'a str,
    /// The variable carrying its representations.
    variable: &'a str,
    /// What a representation holds (`... on Product { __typename id }`).
    requires: &'a SelectionSet,
    /// The flatten paths of the objects it resolves, in order.
    paths: Vec<&'a [FlattenNodePathSegment]>,
    input_rewrites: Option<&'a [FetchRewrite]>,
    output_rewrites: Option<&'a [FetchRewrite]>,
}

/// The response keys a root fetch selects (through root inline fragments too).
fn root_keys(items: &[SelectionItem]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        match item {
            SelectionItem::Field(field) if field.name != "__typename" => {
                let key = field.selection_identifier();
                if !keys.iter().any(|k| k == key) {
                    keys.push(key.to_owned());
                }
            }
            SelectionItem::InlineFragment(fragment) => {
                for key in root_keys(&fragment.selections.items) {
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
            _ => {}
        }
    }
    keys
}

/// Removes and returns the list at `data[field]` (empty when it is not a list).
fn take_list(data: &mut Map<String, Value>, field: &str) -> Vec<Value> {
    match data.remove(field) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn miscount(service: &str, got: usize, expected: usize) -> GraphqlError {
    GraphqlError::coded(
        ErrorCode::Internal,
        format!("subgraph `{service}` returned {got} entities for {expected} representations"),
    )
    .from_service(service)
}

/// Where the errors of one `_entities` field (`_entities`, or a batch
/// alias such as `_e0`) come from and go to.
struct EntityField<'a> {
    service: &'a str,
    /// The field's name in the subgraph response.
    field: &'a str,
    reps: &'a Representations,
    /// Its answers, to place errors whose path lacks the list index.
    answers: &'a [Value],
    /// Where errors that name no entity are reported.
    flatten_path: &'a [FlattenNodePathSegment],
    /// Whether errors whose path does not start at `field` belong here (in
    /// a batch, only the first alias takes them, so none is repeated).
    claims_unmatched: bool,
}

/// Subgraph errors of an entity fetch, re-pathed from `_entities.N.rest` to
/// the client path of every object that used representation N.
fn entity_errors(raw_errors: &[Value], at: &EntityField<'_>) -> Vec<GraphqlError> {
    let fallback = || Some(path_prefix(at.flatten_path));
    let mut errors = Vec::new();
    for raw in raw_errors {
        let path = subgraph_path(raw).unwrap_or_default();
        let (index, rest) = match path.as_slice() {
            [PathSegment::Key(root), PathSegment::Index(index), rest @ ..] if root == at.field => {
                (Some(*index), rest)
            }
            // Some servers (async-graphql among them) leave the list index
            // out: `_entities.email`. It is still known when exactly one
            // answer is null along the rest of the path.
            [PathSegment::Key(root), rest @ ..] if root == at.field => {
                (sole_null_along(at.answers, rest), rest)
            }
            _ => {
                if at.claims_unmatched {
                    errors.push(GraphqlError::from_subgraph(raw, at.service, fallback()));
                }
                continue;
            }
        };
        let targets: Vec<&ResponsePath> = index
            .map(|i| at.reps.paths_of(i).collect())
            .unwrap_or_default();
        if targets.is_empty() {
            errors.push(GraphqlError::from_subgraph(raw, at.service, fallback()));
        }
        for target in targets {
            let mut full = target.clone();
            full.extend_from_slice(rest);
            errors.push(GraphqlError::from_subgraph(raw, at.service, Some(full)));
        }
    }
    errors
}

/// The index of the only answer that is `null` somewhere along `path`.
fn sole_null_along(answers: &[Value], path: &[PathSegment]) -> Option<usize> {
    let is_null_along = |answer: &Value| {
        let mut value = answer;
        for segment in path {
            if value.is_null() {
                return true;
            }
            value = match (segment, value) {
                (PathSegment::Key(key), Value::Object(object)) => {
                    object.get(key).unwrap_or(&Value::Null)
                }
                (PathSegment::Index(i), Value::Array(items)) => {
                    items.get(*i).unwrap_or(&Value::Null)
                }
                _ => return false,
            };
        }
        value.is_null()
    };
    let mut found = answers
        .iter()
        .enumerate()
        .filter(|(_, answer)| is_null_along(answer));
    match (found.next(), found.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

/// The `plan_node` span of one node: its kind and, for fetches, the subgraph.
fn node_span(node: &PlanNode) -> tracing::Span {
    let (kind, subgraph) = match node {
        PlanNode::Sequence(_) => ("sequence", None),
        PlanNode::Parallel(_) => ("parallel", None),
        PlanNode::Condition(_) => ("condition", None),
        PlanNode::Fetch(fetch) => ("fetch", Some(fetch.service_name.as_str())),
        PlanNode::Flatten(flatten) => match flatten.node.as_ref() {
            PlanNode::Fetch(fetch) => ("flatten", Some(fetch.service_name.as_str())),
            _ => ("flatten", None),
        },
        PlanNode::BatchFetch(_) => ("batch_fetch", None),
        PlanNode::Subscription(subscription) => (
            "subscription",
            Some(subscription.primary.service_name.as_str()),
        ),
        PlanNode::Defer(_) => ("defer", None),
    };
    tracing::info_span!("plan_node", kind, subgraph = subgraph.unwrap_or(""))
}

/// The part of a flatten path before its first list: where an error about
/// the whole fetch is reported.
fn path_prefix(path: &[FlattenNodePathSegment]) -> ResponsePath {
    path.iter()
        .map_while(|segment| match segment {
            FlattenNodePathSegment::Field(key) => Some(PathSegment::Key(key.clone())),
            _ => None,
        })
        .collect()
}

fn unavailable(service: &str, err: &FetchError, path: Option<ResponsePath>) -> GraphqlError {
    tracing::warn!(subgraph = service, error = %err, "subgraph fetch failed");
    let error = GraphqlError::coded(
        ErrorCode::SubgraphUnavailable,
        format!("the {service} subgraph is unavailable"),
    )
    .from_service(service);
    match path {
        Some(path) => error.at(path),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.to_owned())
    }

    #[test]
    fn entity_errors_land_on_the_client_path_with_or_without_the_list_index() {
        let mut reps = Representations::default();
        reps.slots = vec![Some(0), Some(1)];
        reps.paths = vec![
            vec![key("items"), PathSegment::Index(0), key("product")],
            vec![key("items"), PathSegment::Index(1), key("product")],
        ];
        let answers = [json!({ "name": "a" }), json!({ "name": null })];
        let flatten = [FlattenNodePathSegment::Field("items".into())];
        let at = EntityField {
            service: "product",
            field: "_entities",
            reps: &reps,
            answers: &answers,
            flatten_path: &flatten,
            claims_unmatched: true,
        };
        let raw = [
            json!({ "message": "indexed", "path": ["_entities", 0, "name"] }),
            json!({ "message": "no index", "path": ["_entities", "name"], "extensions": { "code": "NOT_FOUND" } }),
            json!({ "message": "no path" }),
        ];
        let errors = entity_errors(&raw, &at);
        let paths: Vec<_> = errors
            .iter()
            .map(|e| e.path.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            [
                vec![
                    key("items"),
                    PathSegment::Index(0),
                    key("product"),
                    key("name")
                ],
                vec![
                    key("items"),
                    PathSegment::Index(1),
                    key("product"),
                    key("name")
                ],
                vec![key("items")],
            ]
        );
        assert_eq!(errors[1].code(), "NOT_FOUND");
        assert_eq!(
            errors[0].code(),
            "INTERNAL",
            "a missing code becomes INTERNAL"
        );
        assert!(
            errors
                .iter()
                .all(|e| e.extensions["serviceName"] == "product")
        );

        let batch_alias = EntityField {
            claims_unmatched: false,
            ..at
        };
        assert_eq!(
            entity_errors(&raw[2..], &batch_alias).len(),
            0,
            "not repeated per alias"
        );
    }
}
