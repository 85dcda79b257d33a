//! Stage 4, planning: the pipeline's prepare step, from an
//! operation's text to a cached query plan.
//!
//! It is a module of its own, not part of `pipeline/`, because each loaded
//! supergraph builds one [`QueryPlanner`] (and one introspection schema)
//! and swaps it in on reload ([`crate::supergraph`]); the pipeline reads the
//! current supergraph, so the planner must sit below both.
//!
//! 1. parse (with a token limit, so a huge document is refused cheaply);
//! 2. check the operation's depth, aliases, root fields, fields and
//!    estimated cost (from the supergraph's `@cost` / `@listSize`) against
//!    [`OperationLimits`] ([`limits`]), before any costlier step;
//! 3. validate against the public API schema (the planner trusts its
//!    input, so this is where unknown fields and bad arguments are caught);
//! 4. set root introspection fields (`__schema`, `__type`) aside: the
//!    router answers those itself ([`introspection`]);
//! 5. normalize (fragments inlined, fields merged) and plan with
//!    `hive-router-query-planner`;
//! 6. cache the [`PreparedOperation`] by document hash and operation name,
//!    with the fields it selects that the schema guards with
//!    `@authenticated` / `@requiresScopes` ([`authorization`]).
//!
//! Per request, [`QueryPlanner::authorize`] checks the caller against those
//! guards: nothing to do for most documents; otherwise a plan without the
//! denied fields, cached on the prepared operation by outcome.
//!
//! Only a cache miss runs steps 1 to 5: a cached document passed the
//! limits, and the limits are fixed for the process. The pipeline calls
//! [`QueryPlanner::prepare_off_workers`]: a cache hit is answered on the
//! spot, a miss runs steps 1 to 5 on tokio's blocking pool, at most one
//! document per core at a time ([`PlannerSettings::workers`]), within
//! `PLAN_TIMEOUT` ([`PlannerSettings::timeout`], queueing included). An
//! expensive document then delays other new documents at worst by the
//! budget, never the async workers that answer cached queries, health
//! checks and subgraph responses. Over the budget the request is refused
//! with `QUERY_PLAN_TIMEOUT`; the abandoned work stops at the next step
//! (or inside the planner, which checks the deadline) and its result is
//! not cached.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graphql_tools::static_graphql::query::Document as QueryDocument;
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::{ValidationPlan, validate};
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::ast::operation::OperationDefinition;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::plan_nodes::{PlanNode, QueryPlan};
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::state::supergraph_state::OperationKind;
use hive_router_query_planner::utils::cancellation::CancellationToken;
use hive_router_query_planner::utils::parsing::{
    safe_parse_operation_with_token_limit, safe_parse_schema,
};
use lru::LruCache;
use tokio::sync::Semaphore;

use crate::executor::error::{Location, PathSegment};
use authorization::{
    Access, AuthorizationError, AuthorizationIndex, Caller, OperationGuards, Restricted,
    RestrictedPlans,
};
use limits::{CostModel, LimitExceeded, OperationLimits};
use shopgraph_core::identity::Identity;

pub mod authorization;
pub mod introspection;
pub mod limits;

/// Why the supergraph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The supergraph SDL does not parse.
    #[error("the supergraph does not parse: {0}")]
    Parse(String),
    /// The planner rejected the supergraph.
    #[error("the planner cannot use the supergraph: {0}")]
    Planner(String),
    /// An `@requiresScopes` in the supergraph is malformed: refusing the
    /// supergraph is safer than serving the field unguarded.
    #[error("the supergraph's authorization directives are unusable: {0}")]
    Authorization(#[from] AuthorizationError),
}

/// Why an operation could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// Not GraphQL (`GRAPHQL_PARSE_FAILED`).
    #[error("syntax error: {0}")]
    Parse(String),
    /// Over one of the operation limits, tokens included (the limit's own
    /// `MAX_*_LIMIT` code).
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// Not valid against the API schema (`GRAPHQL_VALIDATION_FAILED`):
    /// every problem, each with where it is in the document.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// Valid, but the planner could not plan it
    /// (`QUERY_PLAN_BUILD_FAILED`; the text is for the logs only).
    #[error("cannot plan the operation: {0}")]
    Plan(String),
    /// Not prepared within `PLAN_TIMEOUT` (`QUERY_PLAN_TIMEOUT`), waiting
    /// for a planning thread included.
    #[error(
        "the router could not prepare the operation within {} ms (PLAN_TIMEOUT)",
        .0.as_millis()
    )]
    Timeout(Duration),
}

impl PlanError {
    /// Where the error points into the document: every validation
    /// problem's positions, in order, each once.
    pub fn locations(&self) -> Vec<Location> {
        let mut locations = Vec::new();
        if let Self::Invalid(problems) = self {
            for location in problems.iter().flat_map(|problem| &problem.locations) {
                if !locations.contains(location) {
                    locations.push(*location);
                }
            }
        }
        locations
    }
}

/// One validation problem: the validator's message and the positions in
/// the client's document it names (none for problems found after
/// validation, such as normalization failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// Where, 1-based.
    pub locations: Vec<Location>,
}

impl Problem {
    /// A problem with no position.
    pub fn unplaced(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            locations: Vec::new(),
        }
    }
}

/// The problems' messages joined with `; `: the client still gets one
/// error, its message unchanged from before `locations` were added.
fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| problem.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// An operation ready to execute: its plan and the normalized operation the
/// response is projected from. Cached and shared between requests.
#[derive(Debug)]
pub struct PreparedOperation {
    /// The query plan.
    pub plan: QueryPlan,
    /// The normalized operation (fragments inlined, introspection removed).
    pub operation: OperationDefinition,
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// The root type's name in the API schema (`Query`, `Mutation`...).
    pub root_type: String,
    /// The parsed document, kept when the operation selects `__schema` or
    /// `__type` at its root: the router resolves those from it per request.
    pub introspection: Option<Arc<QueryDocument>>,
    /// The client's document as parsed, kept so errors can point into it
    /// ([`PreparedOperation::locate`]); shared with `introspection`.
    pub source: Arc<QueryDocument>,
    /// The operation name the client selected (or the document's only one).
    pub name: Option<String>,
    /// The fields it selects that `@authenticated` / `@requiresScopes`
    /// guard (usually none).
    pub guards: OperationGuards,
    /// Its plans for callers denied some of `guards`, by outcome.
    pub restricted: RestrictedPlans,
}

/// Planner settings.
#[derive(Debug, Clone)]
pub struct PlannerSettings {
    /// Plans kept in the LRU cache.
    pub cache_size: NonZeroUsize,
    /// Longest preparing a new document may take, waiting for a planning
    /// thread included (`PLAN_TIMEOUT`).
    pub timeout: Duration,
    /// Documents prepared at once, each on a blocking thread: the number of
    /// cores, so planning never takes every core from the async workers'
    /// share for longer than the timeout.
    pub workers: NonZeroUsize,
    /// Most tokens an operation may have.
    pub max_tokens: usize,
    /// Depth, alias, root-field and complexity limits, checked before
    /// validation.
    pub limits: OperationLimits,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            cache_size: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            timeout: DEFAULT_PLAN_TIMEOUT,
            workers: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            max_tokens: 15_000,
            limits: OperationLimits::default(),
        }
    }
}

/// Default of `PLAN_TIMEOUT`: every shop operation prepares in a few
/// milliseconds; the limits keep any accepted document well under a second.
pub const DEFAULT_PLAN_TIMEOUT: Duration = Duration::from_secs(3);

type CacheKey = (u64, Option<String>);
type Cached = Arc<PreparedOperation>;

/// The supergraph, ready to plan operations.
pub struct QueryPlanner {
    planner: Planner,
    validation: ValidationPlan,
    /// Field weights and list sizes (`@cost`, `@listSize`) for the
    /// complexity limit; built once per supergraph.
    cost_model: CostModel,
    /// `@authenticated` / `@requiresScopes` rules; built once per
    /// supergraph.
    authorization: AuthorizationIndex,
    cache: Mutex<LruCache<CacheKey, Cached>>,
    /// One permit per document being prepared off the async workers.
    pool: Arc<Semaphore>,
    settings: PlannerSettings,
}

impl QueryPlanner {
    /// Loads a supergraph SDL (Apollo join/v0.x format).
    pub fn from_supergraph(sdl: &str, settings: PlannerSettings) -> Result<Self, LoadError> {
        let document = safe_parse_schema(sdl).map_err(|err| LoadError::Parse(err.to_string()))?;
        let planner = Planner::new_from_supergraph(&document, QueryPlannerOptions::default())
            .map_err(|err| LoadError::Planner(err.to_string()))?;
        let cost_model = CostModel::new(&planner.consumer_schema.document, &document);
        let authorization = AuthorizationIndex::new(&planner.supergraph)?;
        Ok(Self {
            planner,
            validation: default_rules_validation_plan(),
            cost_model,
            authorization,
            cache: Mutex::new(LruCache::new(settings.cache_size)),
            pool: Arc::new(Semaphore::new(settings.workers.get())),
            settings,
        })
    }

    /// Subgraph name → URL, as the supergraph records them.
    pub fn subgraph_urls(&self) -> BTreeMap<String, String> {
        self.planner
            .supergraph
            .subgraph_endpoint_map
            .iter()
            .map(|(name, url)| (name.clone(), url.clone()))
            .collect()
    }

    /// The API schema the planner validates against (for introspection and
    /// the executor's type information).
    pub fn api_schema(&self) -> &graphql_tools::static_graphql::schema::Document {
        &self.planner.consumer_schema.document
    }

    /// The cost model the complexity limit uses (for the cost table and
    /// tests).
    pub fn cost_model(&self) -> &CostModel {
        &self.cost_model
    }

    /// The estimated cost of `operation_name` (or the only operation) in
    /// `document`, as `GRAPHQL_MAX_COMPLEXITY` is checked against it, and
    /// that limit: what `shopgraph plan` prints beside each registered
    /// operation. `None` when the document does not parse or selects no
    /// operation.
    pub fn estimated_cost(
        &self,
        document: &str,
        operation_name: Option<&str>,
    ) -> Option<(u64, Option<u64>)> {
        let parsed =
            safe_parse_operation_with_token_limit(document, self.settings.max_tokens).ok()?;
        let limits = &self.settings.limits;
        let measured = limits::measure(
            &parsed,
            operation_name,
            &self.cost_model,
            limits.default_list_size,
        )?;
        Some((measured.complexity, limits.max_complexity))
    }

    /// Parses, validates, normalizes and plans `operation_name` (or the
    /// only operation) in `document`, or returns the cached result, on the
    /// calling thread (tests, benchmarks; the pipeline uses
    /// [`QueryPlanner::prepare_off_workers`]).
    pub fn prepare(
        &self,
        document: &str,
        operation_name: Option<&str>,
    ) -> Result<Cached, PlanError> {
        let key = (hash(document), operation_name.map(str::to_owned));
        if let Some(prepared) = self.cached(&key) {
            return Ok(prepared);
        }
        let deadline = Instant::now() + self.settings.timeout;
        let prepared = Arc::new(self.prepare_uncached(document, operation_name, deadline)?);
        self.remember(key, &prepared);
        Ok(prepared)
    }

    /// [`QueryPlanner::prepare`] for the async workers: a cached plan is
    /// returned at once; a new document is prepared on the blocking pool,
    /// at most [`PlannerSettings::workers`] at a time, and refused with
    /// [`PlanError::Timeout`] when it is not ready within
    /// [`PlannerSettings::timeout`] of the call (the work left stops at its
    /// next step and is not cached).
    pub async fn prepare_off_workers(
        self: &Arc<Self>,
        document: Arc<str>,
        operation_name: Option<&str>,
    ) -> Result<Cached, PlanError> {
        let key = (hash(&document), operation_name.map(str::to_owned));
        if let Some(prepared) = self.cached(&key) {
            return Ok(prepared);
        }
        let budget = self.settings.timeout;
        let started = Instant::now();
        let deadline = started + budget;
        let planner = Arc::clone(self);
        let name = key.1.clone();
        let size = document.len();
        let work = async move {
            let permit = Arc::clone(&planner.pool)
                .acquire_owned()
                .await
                .map_err(|_| PlanError::Plan("the planning pool is closed".to_owned()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                planner.prepare_uncached(&document, name.as_deref(), deadline)
            })
            .await
            .map_err(|err| PlanError::Plan(format!("the planning task failed: {err}")))?
        };
        let result = match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => Err(PlanError::Timeout(budget)),
        };
        match result {
            Ok(prepared) => {
                let prepared = Arc::new(prepared);
                self.remember(key, &prepared);
                Ok(prepared)
            }
            Err(PlanError::Timeout(budget)) => {
                metrics::counter!("router_plan_timeouts_total").increment(1);
                tracing::warn!(
                    code = "QUERY_PLAN_TIMEOUT",
                    budget_ms = budget.as_millis(),
                    elapsed_ms = started.elapsed().as_millis(),
                    document_bytes = size,
                    "a new document was not prepared within PLAN_TIMEOUT; refused"
                );
                Err(PlanError::Timeout(budget))
            }
            Err(err) => Err(err),
        }
    }

    /// The cached plan for `key`, counting the hit or miss.
    fn cached(&self, key: &CacheKey) -> Option<Cached> {
        let hit = self
            .cache
            .lock()
            .ok()
            .and_then(|mut cache| cache.get(key).cloned());
        if hit.is_some() {
            metrics::counter!("router_plan_cache_hits_total").increment(1);
        } else {
            metrics::counter!("router_plan_cache_misses_total").increment(1);
        }
        hit
    }

    fn remember(&self, key: CacheKey, prepared: &Cached) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, Arc::clone(prepared));
        }
    }

    /// Steps 1 to 5, giving up between steps once `deadline` has passed
    /// (the planner itself checks it as it goes).
    fn prepare_uncached(
        &self,
        document: &str,
        operation_name: Option<&str>,
        deadline: Instant,
    ) -> Result<PreparedOperation, PlanError> {
        let in_time = || {
            if Instant::now() >= deadline {
                Err(PlanError::Timeout(self.settings.timeout))
            } else {
                Ok(())
            }
        };
        let max_tokens = self.settings.max_tokens;
        let parsed =
            safe_parse_operation_with_token_limit(document, max_tokens).map_err(|err| {
                match LimitExceeded::from_parse_error(&err, max_tokens) {
                    Some(limit) => PlanError::Limit(limit),
                    None => PlanError::Parse(err.to_string()),
                }
            })?;
        require_operation_name(&parsed, operation_name)?;
        limits::check(
            &parsed,
            operation_name,
            &self.settings.limits,
            &self.cost_model,
        )?;
        in_time()?;
        let errors = validate(
            &self.planner.consumer_schema.document,
            &parsed,
            &self.validation,
        );
        if !errors.is_empty() {
            return Err(PlanError::Invalid(
                errors
                    .into_iter()
                    .map(|e| Problem {
                        message: e.message,
                        locations: e
                            .locations
                            .iter()
                            .map(|pos| Location {
                                line: pos.line,
                                column: pos.column,
                            })
                            .collect(),
                    })
                    .collect(),
            ));
        }
        introspection::check_introspection_depth(&parsed)
            .map_err(|err| PlanError::Invalid(vec![Problem::unplaced(err.to_string())]))?;
        let mut to_plan = parsed.clone();
        let source = Arc::new(parsed);
        let introspection = introspection::strip_introspection(&mut to_plan, operation_name)
            .then(|| Arc::clone(&source));
        in_time()?;
        let normalized = normalize_operation(&self.planner.supergraph, &to_plan, operation_name)
            .map_err(|err| PlanError::Invalid(vec![Problem::unplaced(err.to_string())]))?;
        in_time()?;
        let mut operation = normalized.operation;
        let plan = if only_placeholder(&mut operation) {
            // Introspection only: nothing to fetch.
            QueryPlan {
                kind: "QueryPlan",
                node: None,
            }
        } else {
            self.planner
                .plan_from_normalized_operation(
                    &operation,
                    PlannerOverrideContext::default(),
                    &CancellationToken::with_timeout(
                        deadline.saturating_duration_since(Instant::now()),
                    ),
                )
                .map_err(|err| {
                    // Cancelled at the deadline: over the budget, not a
                    // planner failure.
                    in_time()
                        .err()
                        .unwrap_or_else(|| PlanError::Plan(err.to_string()))
                })?
        };
        let kind = operation
            .operation_kind
            .clone()
            .unwrap_or(OperationKind::Query);
        let root_type = self
            .planner
            .supergraph
            .root_type_name(Some(&kind))
            .map_err(|err| PlanError::Invalid(vec![Problem::unplaced(err.to_string())]))?
            .to_owned();
        let guards = OperationGuards::collect(&self.authorization, &operation, &root_type);
        Ok(PreparedOperation {
            plan,
            operation,
            kind,
            root_type,
            introspection,
            source,
            name: normalized.operation_name,
            guards,
            restricted: RestrictedPlans::default(),
        })
    }

    /// The supergraph's authorization rules (for tests and tools).
    pub fn authorization(&self) -> &AuthorizationIndex {
        &self.authorization
    }

    /// What `identity` may run of `prepared`: everything (no guarded field
    /// denied — at once, no allocation), or a plan without the denied
    /// fields, cached on `prepared` by outcome. A new outcome is planned on
    /// the blocking pool within `PLAN_TIMEOUT`, like a new document.
    pub async fn authorize(
        self: &Arc<Self>,
        prepared: &Arc<PreparedOperation>,
        identity: &Identity,
    ) -> Result<Access, PlanError> {
        if prepared.guards.is_empty() {
            return Ok(Access::full());
        }
        let denied = prepared.guards.denied(&Caller::of(identity));
        if denied.is_empty() {
            return Ok(Access::full());
        }
        metrics::counter!("router_unauthorized_operations_total").increment(1);
        if let Some(restricted) = prepared.restricted.get(&denied) {
            return Ok(Access::restricted(restricted));
        }
        let budget = self.settings.timeout;
        let deadline = Instant::now() + budget;
        let planner = Arc::clone(self);
        let operation = Arc::clone(prepared);
        let indices = denied.clone();
        let work = async move {
            let permit = Arc::clone(&planner.pool)
                .acquire_owned()
                .await
                .map_err(|_| PlanError::Plan("the planning pool is closed".to_owned()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                planner.restrict(&operation, &indices, deadline)
            })
            .await
            .map_err(|err| PlanError::Plan(format!("the planning task failed: {err}")))?
        };
        let restricted = match tokio::time::timeout(budget, work).await {
            Ok(result) => Arc::new(result?),
            Err(_) => return Err(PlanError::Timeout(budget)),
        };
        prepared.restricted.remember(denied, &restricted);
        Ok(Access::restricted(restricted))
    }

    /// Plans `prepared` without the fields of the guards at `indices`
    /// ([`authorization::restrict`]).
    fn restrict(
        &self,
        prepared: &PreparedOperation,
        indices: &[u16],
        deadline: Instant,
    ) -> Result<Restricted, PlanError> {
        let (operation, denied) = authorization::restrict(
            &self.authorization,
            &prepared.guards,
            indices,
            &prepared.operation,
            &prepared.root_type,
        );
        let plan = match operation {
            // Every root field denied: nothing to fetch.
            None => QueryPlan {
                kind: "QueryPlan",
                node: None,
            },
            Some(operation) => self
                .planner
                .plan_from_normalized_operation(
                    &operation,
                    PlannerOverrideContext::default(),
                    &CancellationToken::with_timeout(
                        deadline.saturating_duration_since(Instant::now()),
                    ),
                )
                .map_err(|err| {
                    if Instant::now() >= deadline {
                        PlanError::Timeout(self.settings.timeout)
                    } else {
                        PlanError::Plan(err.to_string())
                    }
                })?,
        };
        Ok(Restricted { plan, denied })
    }
}

impl PreparedOperation {
    /// Where the field at a response `path` (`["me", "orders", 0, "total"]`)
    /// is in the client's document: the first field of the operation with
    /// each path key as its response key (alias or name), looked up through
    /// inline fragments and fragment spreads; list indices are skipped.
    /// `None` when the path does not name a field of the operation (e.g. a
    /// subgraph's own `_entities` path that was not mapped).
    pub fn locate(&self, path: &[PathSegment]) -> Option<Location> {
        use graphql_tools::static_graphql::query::{Definition, OperationDefinition};
        let operation = self.source.definitions.iter().find_map(|definition| {
            let Definition::Operation(operation) = definition else {
                return None;
            };
            let (name, selection_set) = match operation {
                OperationDefinition::SelectionSet(set) => (None, set),
                OperationDefinition::Query(q) => (q.name.as_deref(), &q.selection_set),
                OperationDefinition::Mutation(m) => (m.name.as_deref(), &m.selection_set),
                OperationDefinition::Subscription(s) => (s.name.as_deref(), &s.selection_set),
            };
            match self.name.as_deref() {
                Some(wanted) => (name == Some(wanted)).then_some(selection_set),
                None => Some(selection_set),
            }
        })?;
        let mut selection_set = operation;
        let mut found = None;
        for segment in path {
            let PathSegment::Key(key) = segment else {
                continue;
            };
            let field = find_field(&self.source, selection_set, key, 0)?;
            found = Some(Location {
                line: field.position.line,
                column: field.position.column,
            });
            selection_set = &field.selection_set;
        }
        found
    }
}

/// The first field answering to `key` in `selection_set`, fragments
/// included. `depth` bounds fragment spreads within spreads (validation
/// already refused cycles; this only keeps a bug from recursing forever).
fn find_field<'d>(
    document: &'d QueryDocument,
    selection_set: &'d graphql_tools::static_graphql::query::SelectionSet,
    key: &str,
    depth: usize,
) -> Option<&'d graphql_tools::static_graphql::query::Field> {
    use graphql_tools::static_graphql::query::{Definition, Selection};
    const MAX_FRAGMENT_DEPTH: usize = 64;
    if depth > MAX_FRAGMENT_DEPTH {
        return None;
    }
    selection_set.items.iter().find_map(|item| match item {
        Selection::Field(field) => {
            (field.alias.as_deref().unwrap_or(&field.name) == key).then_some(field)
        }
        Selection::InlineFragment(inline) => {
            find_field(document, &inline.selection_set, key, depth + 1)
        }
        Selection::FragmentSpread(spread) => {
            document
                .definitions
                .iter()
                .find_map(|definition| match definition {
                    Definition::Fragment(fragment) if fragment.name == spread.fragment_name => {
                        find_field(document, &fragment.selection_set, key, depth + 1)
                    }
                    _ => None,
                })
        }
    })
}

/// Whether the root selection is only the placeholder `__typename` left by
/// [`introspection::strip_introspection`]; if so, it is hidden from
/// the response.
fn only_placeholder(operation: &mut OperationDefinition) -> bool {
    use hive_router_query_planner::ast::selection_item::SelectionItem;
    let items = &mut operation.selection_set.items;
    match items.as_mut_slice() {
        [SelectionItem::Field(field)]
            if field.alias.as_deref() == Some(introspection::PLACEHOLDER_ALIAS) =>
        {
            field.omit_from_response = true;
            true
        }
        _ => false,
    }
}

/// Refuses a document with several operations and no `operationName`:
/// GraphQL-over-HTTP makes that a request error, where the planner would
/// otherwise run the first operation, which the client did not choose.
/// `GRAPHQL_VALIDATION_FAILED`, as Apollo Router answers it.
fn require_operation_name(
    document: &QueryDocument,
    operation_name: Option<&str>,
) -> Result<(), PlanError> {
    use graphql_tools::static_graphql::query::Definition;
    if operation_name.is_some() {
        return Ok(());
    }
    let operations = document
        .definitions
        .iter()
        .filter(|definition| matches!(definition, Definition::Operation(_)))
        .count();
    if operations > 1 {
        return Err(PlanError::Invalid(vec![Problem::unplaced(
            "Must provide operation name if query contains multiple operations.",
        )]));
    }
    Ok(())
}

/// The names of the operations in `document` (`None` for an anonymous one).
pub fn operation_names(document: &str) -> Result<Vec<Option<String>>, PlanError> {
    use graphql_tools::parser::query::{Definition, OperationDefinition};
    let parsed = graphql_tools::parser::parse_query::<String>(document)
        .map_err(|err| PlanError::Parse(err.to_string()))?;
    Ok(parsed
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            Definition::Operation(OperationDefinition::Query(q)) => Some(q.name.clone()),
            Definition::Operation(OperationDefinition::Mutation(m)) => Some(m.name.clone()),
            Definition::Operation(OperationDefinition::Subscription(s)) => Some(s.name.clone()),
            Definition::Operation(OperationDefinition::SelectionSet(_)) => Some(None),
            Definition::Fragment(_) => None,
        })
        .collect())
}

/// The subgraphs a plan fetches from, in the order they first appear.
pub fn subgraphs_of(plan: &QueryPlan) -> Vec<String> {
    fn walk(node: &PlanNode, out: &mut Vec<String>) {
        let mut push = |name: &str| {
            if !out.iter().any(|s| s == name) {
                out.push(name.to_owned());
            }
        };
        match node {
            PlanNode::Fetch(fetch) => push(&fetch.service_name),
            PlanNode::BatchFetch(batch) => push(&batch.service_name),
            PlanNode::Sequence(seq) => seq.nodes.iter().for_each(|n| walk(n, out)),
            PlanNode::Parallel(par) => par.nodes.iter().for_each(|n| walk(n, out)),
            PlanNode::Flatten(flatten) => walk(&flatten.node, out),
            PlanNode::Condition(cond) => {
                for branch in [&cond.if_clause, &cond.else_clause].into_iter().flatten() {
                    walk(branch, out);
                }
            }
            PlanNode::Subscription(sub) => push(&sub.primary.service_name),
            PlanNode::Defer(defer) => {
                if let Some(primary) = &defer.primary.node {
                    walk(primary, out);
                }
                for deferred in &defer.deferred {
                    if let Some(node) = &deferred.node {
                        walk(node, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(node) = &plan.node {
        walk(node, &mut out);
    }
    out
}

fn hash(document: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    document.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");
    const ME: &str = include_str!("../../../tests/operations/me.graphql");

    fn planner() -> QueryPlanner {
        QueryPlanner::from_supergraph(SUPERGRAPH, PlannerSettings::default())
            .expect("the committed supergraph loads")
    }

    #[test]
    fn the_me_query_spans_all_four_subgraphs() {
        let plan = planner().prepare(ME, Some("Me")).expect("plans");
        let mut subgraphs = subgraphs_of(&plan.plan);
        subgraphs.sort();
        assert_eq!(subgraphs, ["basket", "notification", "payment", "product"]);
    }

    #[test]
    fn plans_are_cached_by_document_and_operation() {
        let planner = planner();
        let first = planner.prepare(ME, Some("Me")).unwrap();
        let second = planner.prepare(ME, Some("Me")).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn several_operations_need_an_operation_name() {
        let planner = planner();
        let document = "query A { categories } query B { me { id } }";
        let err = planner.prepare(document, None).expect_err("ambiguous");
        assert!(
            matches!(&err, PlanError::Invalid(_)) && err.to_string().contains("operation name"),
            "{err}"
        );
        // An anonymous one beside a named one is ambiguous too.
        assert!(
            planner
                .prepare("{ categories } query B { categories }", None)
                .is_err()
        );
        // Named, each plans; a lone operation needs no name.
        planner.prepare(document, Some("A")).expect("A plans");
        planner.prepare(document, Some("B")).expect("B plans");
        planner
            .prepare("query A { categories }", None)
            .expect("alone");
    }

    #[test]
    fn bad_operations_are_refused_with_the_right_kind() {
        let planner = planner();
        assert!(matches!(
            planner.prepare("{ me { id ", None),
            Err(PlanError::Parse(_))
        ));
        assert!(matches!(
            planner.prepare("{ me { noSuchField } }", None),
            Err(PlanError::Invalid(_))
        ));
        assert!(
            matches!(
                planner.prepare("{ _entities(representations: []) { __typename } }", None),
                Err(PlanError::Invalid(_))
            ),
            "federation internals are not in the API"
        );
        assert!(matches!(
            planner.prepare("{ products(first: \"x\") { totalCount } }", None),
            Err(PlanError::Invalid(_))
        ));
    }

    /// Validation errors keep the validator's positions in the client's
    /// document (rendered by [`crate::pipeline::RouterError`]).
    #[test]
    fn validation_errors_carry_locations() {
        let err = planner()
            .prepare("{\n  me {\n    id\n    noSuchField\n  }\n}", None)
            .expect_err("invalid");
        assert!(matches!(err, PlanError::Invalid(_)), "{err:?}");
        assert_eq!(err.locations(), [Location { line: 4, column: 5 }]);
    }

    /// A subgraph error whose client path names a field of the operation
    /// points at that field, through aliases, list indices and fragments;
    /// router errors and unmapped paths get no `locations`.
    #[test]
    fn forwarded_subgraph_errors_point_at_the_client_field() {
        use crate::executor::error::GraphqlError;
        let document = "query Q {\n  me {\n    ...Who\n  }\n  shop: products(first: 1) { totalCount }\n}\n\nfragment Who on User {\n  basket { items { quantity } }\n}\n";
        let prepared = planner().prepare(document, Some("Q")).expect("plans");
        let key = |k: &str| PathSegment::Key(k.to_owned());
        let quantity = vec![
            key("me"),
            key("basket"),
            key("items"),
            PathSegment::Index(2),
            key("quantity"),
        ];
        let mut errors = vec![
            GraphqlError::from_subgraph(
                &serde_json::json!({ "message": "gone" }),
                "basket",
                Some(quantity),
            ),
            GraphqlError::from_subgraph(
                &serde_json::json!({ "message": "down" }),
                "product",
                Some(vec![key("shop"), key("totalCount")]),
            ),
            GraphqlError::from_subgraph(
                &serde_json::json!({ "message": "unmapped" }),
                "product",
                Some(vec![key("_entities"), PathSegment::Index(0)]),
            ),
            GraphqlError::coded(shopgraph_core::error::ErrorCode::Internal, "router's own")
                .at(vec![key("me")]),
        ];
        GraphqlError::locate(&mut errors, |path| prepared.locate(path));
        let locations: Vec<_> = errors.iter().map(|e| e.locations.clone()).collect();
        assert_eq!(
            locations,
            [
                vec![Location {
                    line: 9,
                    column: 20
                }],
                vec![Location {
                    line: 5,
                    column: 30
                }],
                vec![],
                vec![],
            ]
        );
        let json = serde_json::to_value(&errors[1]).expect("JSON");
        assert_eq!(
            json["locations"],
            serde_json::json!([{ "line": 5, "column": 30 }])
        );
        let json = serde_json::to_value(&errors[3]).expect("JSON");
        assert!(json.get("locations").is_none());
    }

    /// The committed supergraph carries the subgraphs' authorization
    /// directives, and the planner reads them: admin operations need the
    /// `admin` scope, user-scoped fields a signed-in caller, public ones
    /// nothing.
    #[test]
    fn the_supergraph_carries_the_authorization_directives() {
        use authorization::Requirement;
        assert!(SUPERGRAPH.contains("@link(url: \"https://specs.apollo.dev/authenticated/v0.1\""));
        assert!(SUPERGRAPH.contains("@link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\""));
        let planner = planner();
        let rules = planner.authorization();
        let admin = Requirement {
            authenticated: false,
            scopes: vec![vec![vec!["admin".to_owned()]]],
        };
        let signed_in = Requirement {
            authenticated: true,
            scopes: Vec::new(),
        };
        for (type_name, field) in [
            ("Mutation", "createProduct"),
            ("Mutation", "updateProduct"),
            ("Mutation", "deleteProduct"),
            ("Mutation", "adjustStock"),
            ("Query", "payments"),
            ("Mutation", "refundPayment"),
            ("Mutation", "createNotification"),
            ("Mutation", "bulkCreateNotifications"),
            ("Mutation", "scheduleNotification"),
            ("Mutation", "sendNotification"),
            ("Mutation", "retryNotification"),
            ("Mutation", "updateNotification"),
            ("Mutation", "cleanupExpiredNotifications"),
        ] {
            assert_eq!(
                rules.rule(type_name, field).map(|r| &**r),
                Some(&admin),
                "{type_name}.{field}"
            );
        }
        for (type_name, field) in [
            ("Query", "me"),
            ("Query", "myBasket"),
            ("Query", "myPayments"),
            ("Query", "payment"),
            ("Query", "myNotifications"),
            ("Query", "notification"),
            ("Query", "notificationStats"),
            ("Mutation", "addBasketItem"),
            ("Mutation", "clearBasket"),
            ("Mutation", "checkout"),
            ("Mutation", "markNotificationRead"),
            ("User", "basket"),
            ("User", "payments"),
            ("Subscription", "notificationAdded"),
            ("Subscription", "paymentStatusChanged"),
            ("Subscription", "stockChanged"),
        ] {
            assert_eq!(
                rules.rule(type_name, field).map(|r| &**r),
                Some(&signed_in),
                "{type_name}.{field}"
            );
        }
        for (type_name, field) in [
            ("Query", "products"),
            ("Query", "categories"),
            ("Product", "name"),
        ] {
            assert!(
                rules.rule(type_name, field).is_none(),
                "{type_name}.{field}"
            );
        }
    }

    /// A caller denied a field gets a plan without it (cached per
    /// outcome); an allowed caller the prepared plan itself; a document
    /// without guarded fields is not even looked at.
    #[tokio::test]
    async fn denied_fields_are_planned_away_per_outcome() {
        use shopgraph_core::identity::Viewer;
        let planner = Arc::new(planner());
        let document: Arc<str> =
            Arc::from("{ categories payments(first: 1) { pageInfo { hasNextPage } } }");
        let prepared = planner
            .prepare_off_workers(Arc::clone(&document), None)
            .await
            .expect("plans");
        let mut full = subgraphs_of(&prepared.plan);
        full.sort();
        assert_eq!(full, ["payment", "product"]);
        let admin = Identity::User(Viewer {
            user_id: "a".into(),
            roles: vec!["admin".into()],
        });
        let user = Identity::User(Viewer {
            user_id: "u".into(),
            roles: Vec::new(),
        });
        let allowed = planner
            .authorize(&prepared, &admin)
            .await
            .expect("authorizes");
        assert!(std::ptr::eq(allowed.plan(&prepared.plan), &prepared.plan));
        assert!(allowed.denied().is_none());
        for caller in [&Identity::Anonymous, &user] {
            let denied = planner
                .authorize(&prepared, caller)
                .await
                .expect("authorizes");
            assert_eq!(subgraphs_of(denied.plan(&prepared.plan)), ["product"]);
            let removed = denied.denied().expect("denied");
            assert!(removed.contains("Query", "payments"));
            assert!(!removed.contains("Query", "categories"));
        }
        // Anonymous and the plain user fail the same guard: one cached plan.
        let first = planner
            .authorize(&prepared, &Identity::Anonymous)
            .await
            .expect("authorizes");
        let second = planner
            .authorize(&prepared, &user)
            .await
            .expect("authorizes");
        assert!(std::ptr::eq(
            first.plan(&prepared.plan),
            second.plan(&prepared.plan)
        ));
        // Every root field denied: nothing to fetch at all.
        let mutation = planner
            .prepare_off_workers(Arc::from("mutation { deleteProduct(id: \"x\") }"), None)
            .await
            .expect("plans");
        let denied = planner
            .authorize(&mutation, &user)
            .await
            .expect("authorizes");
        assert!(denied.plan(&mutation.plan).node.is_none());
        assert_eq!(
            denied.denied().and_then(|d| d.root_field()),
            Some("Mutation.deleteProduct")
        );
        // A public document has no guards.
        let public = planner.prepare("{ categories }", None).expect("plans");
        assert!(public.guards.is_empty());
    }

    #[test]
    fn the_supergraph_names_every_subgraph() {
        let urls = planner().subgraph_urls();
        assert_eq!(
            urls.get("product").map(String::as_str),
            Some("http://127.0.0.1:4001/graphql")
        );
        assert_eq!(urls.len(), 4);
    }

    /// `{ me { id id ... } }`: valid, and under every limit once they are
    /// off; validating it takes time that grows with the square of `n`.
    fn repeated(n: usize) -> Arc<str> {
        Arc::from(format!("{{ me {{ {} }} }}", "id ".repeat(n)))
    }

    /// Documents over `PLAN_TIMEOUT` are refused with `Timeout`, queued
    /// or running, while a cached plan is answered at once: it finishes
    /// before any of them. The documents are sized so that the planning
    /// thread is surely busy past the budget on any machine (validating
    /// 2,000 fields takes a quarter of a second in release, seconds in
    /// debug), and small enough that the abandoned validation ends soon.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_documents_over_the_budget_time_out_and_cached_ones_do_not_wait() {
        let planner = Arc::new(
            QueryPlanner::from_supergraph(
                SUPERGRAPH,
                PlannerSettings {
                    timeout: Duration::from_millis(100),
                    workers: NonZeroUsize::MIN,
                    limits: OperationLimits::unlimited(),
                    max_tokens: 100_000,
                    ..PlannerSettings::default()
                },
            )
            .expect("loads"),
        );
        let normal: Arc<str> = Arc::from("{ categories }");
        let warm = planner
            .prepare_off_workers(Arc::clone(&normal), None)
            .await
            .expect("plans");
        let hostile: Vec<_> = (0..4)
            .map(|i| {
                let planner = Arc::clone(&planner);
                tokio::spawn(async move {
                    let result = planner.prepare_off_workers(repeated(2_000 + i), None).await;
                    (result, Instant::now())
                })
            })
            .collect();
        // Let them take the planning thread and queue.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cached = planner
            .prepare_off_workers(normal, None)
            .await
            .expect("cached");
        let answered = Instant::now();
        assert!(Arc::ptr_eq(&warm, &cached));
        for task in hostile {
            let (result, finished) = task.await.expect("joins");
            assert!(
                matches!(result, Err(PlanError::Timeout(budget)) if budget == Duration::from_millis(100)),
                "{result:?}"
            );
            assert!(answered < finished);
        }
        // Nothing over the budget was cached.
        let key = (hash(&repeated(2_000)), None);
        assert!(planner.cache.lock().expect("lock").peek(&key).is_none());
    }

    #[test]
    fn the_timeout_error_names_its_variable() {
        let err = PlanError::Timeout(Duration::from_millis(1500));
        assert_eq!(
            err.to_string(),
            "the router could not prepare the operation within 1500 ms (PLAN_TIMEOUT)"
        );
    }

    #[test]
    fn operation_names_are_listed() {
        assert_eq!(
            operation_names("query A { me { id } } mutation B { clearBasket { id } }").unwrap(),
            [Some("A".into()), Some("B".into())]
        );
        assert_eq!(operation_names("{ categories }").unwrap(), [None]);
    }
}
