//! Operation limits: the planner's first check after parsing, before
//! validation, so a hostile document is refused before any expensive work.
//!
//! Five measures of the selected operation, each with its own limit and
//! error code ([`OperationLimits`], [`LimitExceeded`]):
//!
//! | measure | counts | variable |
//! |---|---|---|
//! | depth | deepest field nesting; root fields are depth 1 | `GRAPHQL_MAX_DEPTH` |
//! | aliases | aliased fields | `GRAPHQL_MAX_ALIASES` |
//! | root fields | fields selected at the root | `GRAPHQL_MAX_ROOT_FIELDS` |
//! | fields | every field selected anywhere, `__typename` included | `GRAPHQL_MAX_FIELDS` |
//! | complexity | 1 per field, list fields multiply their selection by the list size | `GRAPHQL_MAX_COMPLEXITY` |
//!
//! All five follow fragment spreads and inline fragments, as if every
//! fragment were inlined where it is spread; `@skip`/`@include` are ignored
//! (the check runs once per document, whatever the variables). `__typename`
//! is free for the first four: no depth, no cost, not a root field (an alias
//! on it still counts as an alias). The field count counts it like any
//! other field: validation, normalisation and planning each pay for every
//! selected field, and a document repeating one field (`{ me { id id id
//! ... } }`, `{ __typename __typename ... }`) otherwise passes the other
//! limits while costing the planner time that grows with the square of its
//! length. The sixth limit, tokens, is the parser's
//! ([`LimitExceeded::from_parse_error`]).
//!
//! Validation has not run yet, so the document may be anything the parser
//! accepts: unknown fields, unknown fragments, fragments that spread each
//! other in a cycle, a fragment spread a thousand times. The measures are
//! therefore computed without expanding anything: each fragment is
//! summarised once, in dependency order (a topological sort, no recursion
//! through spreads), and a spread adds its fragment's summary. The work is
//! linear in the document's size, and the document's size is bounded by the
//! token limit. A fragment that is part of (or spreads into) a cycle would
//! expand without end: an operation that reaches one has an unbounded depth.
//!
//! Complexity needs the schema: [`CostModel`] knows, per `Type.field`,
//! whether it returns a list. A list's size is an int literal argument
//! named `first`, `last`, `limit`, `pageSize` or `take`, else
//! `GRAPHQL_DEFAULT_LIST_SIZE`. A size argument on a field that is not a
//! list (a Relay connection such as `products(first: 100)`) sizes the lists
//! selected directly under it (`edges`, `nodes`). Fields the model does not
//! know cost 1 and multiply nothing: a typo (validation reports it later)
//! and introspection, whose answer is as large as the schema whatever the
//! client asks (it has its own guard,
//! [`crate::planner::introspection::check_introspection_depth`], and its switch,
//! `GRAPHQL_INTROSPECTION`).

use std::collections::{HashMap, HashSet};
use std::fmt;

use graphql_tools::parser::query::ParseError;
use graphql_tools::static_graphql::query::{
    Definition, Document, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
    TypeCondition, Value,
};
use graphql_tools::static_graphql::schema;
use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::error::ErrorCode;

/// Default of `GRAPHQL_MAX_DEPTH`: the full introspection query (depth 14)
/// and every shop operation (at most 7) fit.
pub const DEFAULT_MAX_DEPTH: u64 = 16;
/// Default of `GRAPHQL_MAX_ALIASES`: the shop's clients use none; aliases
/// are how one request asks for the same expensive field many times.
pub const DEFAULT_MAX_ALIASES: u64 = 30;
/// Default of `GRAPHQL_MAX_ROOT_FIELDS`: the shop's clients select at most
/// two; each root field is at least one subgraph fetch.
pub const DEFAULT_MAX_ROOT_FIELDS: u64 = 20;
/// Default of `GRAPHQL_MAX_COMPLEXITY`: the largest shop operation costs a
/// few hundred, a full page of 100 products with every field under 2,000.
pub const DEFAULT_MAX_COMPLEXITY: u64 = 10_000;
/// Default of `GRAPHQL_MAX_FIELDS`: the largest shop operation selects 28
/// fields (fragments expanded), GraphiQL's introspection query 212.
/// Validation costs grow with the square of the field count (its
/// overlapping-fields rule compares fields pairwise): 500 fields take about
/// 15 ms, 2,000 a quarter of a second, 9,000 four to seven seconds.
pub const DEFAULT_MAX_FIELDS: u64 = 500;
/// Default of `GRAPHQL_DEFAULT_LIST_SIZE`: the size assumed for a list
/// without a literal size argument.
pub const DEFAULT_LIST_SIZE: u64 = 10;

/// The argument names that give a list's size.
const SIZE_ARGUMENTS: [&str; 5] = ["first", "last", "limit", "pageSize", "take"];

/// Deepest selection-set nesting walked inside one definition. The parser
/// already refuses more than 50 nested brackets; this guards documents
/// built by other means.
const MAX_NESTING: usize = 128;

/// The parser's message when a document has more tokens than allowed.
const TOKEN_LIMIT_MESSAGE: &str = "Token limit exceeded";

/// The limits every operation is checked against before it is planned.
/// `None` disables a limit (the variable set to 0). Fixed for the process,
/// so a cached plan never needs checking again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationLimits {
    /// Deepest field nesting (`GRAPHQL_MAX_DEPTH`).
    pub max_depth: Option<u64>,
    /// Most aliased fields (`GRAPHQL_MAX_ALIASES`).
    pub max_aliases: Option<u64>,
    /// Most fields selected at the root (`GRAPHQL_MAX_ROOT_FIELDS`).
    pub max_root_fields: Option<u64>,
    /// Highest estimated cost (`GRAPHQL_MAX_COMPLEXITY`).
    pub max_complexity: Option<u64>,
    /// Most fields selected in all, `__typename` included
    /// (`GRAPHQL_MAX_FIELDS`).
    pub max_fields: Option<u64>,
    /// The size assumed for a list without a literal size argument
    /// (`GRAPHQL_DEFAULT_LIST_SIZE`), in the complexity estimate.
    pub default_list_size: u64,
}

impl Default for OperationLimits {
    fn default() -> Self {
        Self {
            max_depth: Some(DEFAULT_MAX_DEPTH),
            max_aliases: Some(DEFAULT_MAX_ALIASES),
            max_root_fields: Some(DEFAULT_MAX_ROOT_FIELDS),
            max_complexity: Some(DEFAULT_MAX_COMPLEXITY),
            max_fields: Some(DEFAULT_MAX_FIELDS),
            default_list_size: DEFAULT_LIST_SIZE,
        }
    }
}

impl OperationLimits {
    /// No limit at all: for benchmarks that measure the checks' overhead.
    pub fn unlimited() -> Self {
        Self {
            max_depth: None,
            max_aliases: None,
            max_root_fields: None,
            max_complexity: None,
            max_fields: None,
            default_list_size: DEFAULT_LIST_SIZE,
        }
    }

    /// Reads `GRAPHQL_MAX_DEPTH`, `GRAPHQL_MAX_ALIASES`,
    /// `GRAPHQL_MAX_ROOT_FIELDS`, `GRAPHQL_MAX_COMPLEXITY`,
    /// `GRAPHQL_MAX_FIELDS` (0 disables each)
    /// and `GRAPHQL_DEFAULT_LIST_SIZE`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_depth: limit(env, "GRAPHQL_MAX_DEPTH", 1_000, DEFAULT_MAX_DEPTH)?,
            max_aliases: limit(env, "GRAPHQL_MAX_ALIASES", 100_000, DEFAULT_MAX_ALIASES)?,
            max_root_fields: limit(
                env,
                "GRAPHQL_MAX_ROOT_FIELDS",
                10_000,
                DEFAULT_MAX_ROOT_FIELDS,
            )?,
            max_complexity: limit(
                env,
                "GRAPHQL_MAX_COMPLEXITY",
                1_000_000_000,
                DEFAULT_MAX_COMPLEXITY,
            )?,
            max_fields: limit(env, "GRAPHQL_MAX_FIELDS", 1_000_000, DEFAULT_MAX_FIELDS)?,
            default_list_size: env.int_in_or(
                "GRAPHQL_DEFAULT_LIST_SIZE",
                1..=100_000,
                DEFAULT_LIST_SIZE,
            )?,
        })
    }

    fn all_disabled(&self) -> bool {
        self.max_depth.is_none()
            && self.max_aliases.is_none()
            && self.max_root_fields.is_none()
            && self.max_complexity.is_none()
            && self.max_fields.is_none()
    }
}

/// A limit from 0 (disabled) to `max`.
fn limit(env: &Env, var: &str, max: u64, default: u64) -> Result<Option<u64>, ConfigError> {
    let expected = format!("an integer from 1 to {max}, or 0 for no limit");
    let value = match env.parse::<u64>(var, &expected)? {
        None => default,
        Some(value) if value <= max => value,
        Some(value) => return Err(invalid(var, &value.to_string(), &expected)),
    };
    Ok((value > 0).then_some(value))
}

/// Which limit an operation broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `GRAPHQL_MAX_DEPTH`.
    Depth,
    /// `GRAPHQL_MAX_ALIASES`.
    Aliases,
    /// `GRAPHQL_MAX_ROOT_FIELDS`.
    RootFields,
    /// `GRAPHQL_MAX_COMPLEXITY`.
    Complexity,
    /// `GRAPHQL_MAX_FIELDS`.
    Fields,
    /// `GRAPHQL_MAX_TOKENS` (enforced by the parser).
    Tokens,
}

impl Limit {
    /// The `extensions.code` clients see.
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::Depth => ErrorCode::MaxDepthLimit,
            Self::Aliases => ErrorCode::MaxAliasesLimit,
            Self::RootFields => ErrorCode::MaxRootFieldsLimit,
            Self::Complexity => ErrorCode::MaxComplexityLimit,
            Self::Fields => ErrorCode::MaxFieldsLimit,
            Self::Tokens => ErrorCode::MaxTokensLimit,
        }
    }

    /// The environment variable that sets it, so an operator knows what to
    /// raise.
    pub const fn variable(self) -> &'static str {
        match self {
            Self::Depth => "GRAPHQL_MAX_DEPTH",
            Self::Aliases => "GRAPHQL_MAX_ALIASES",
            Self::RootFields => "GRAPHQL_MAX_ROOT_FIELDS",
            Self::Complexity => "GRAPHQL_MAX_COMPLEXITY",
            Self::Fields => "GRAPHQL_MAX_FIELDS",
            Self::Tokens => "GRAPHQL_MAX_TOKENS",
        }
    }

    /// What is measured, in the error message.
    const fn noun(self) -> &'static str {
        match self {
            Self::Depth => "depth",
            Self::Aliases => "alias count",
            Self::RootFields => "root field count",
            Self::Complexity => "complexity",
            Self::Fields => "field count",
            Self::Tokens => "token count",
        }
    }
}

/// A measured value: exact, or only known to be above a bound (the parser
/// stops at the token limit; a fragment cycle has no depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// The value.
    Exactly(u64),
    /// More than this.
    MoreThan(u64),
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(value) => write!(f, "{value}"),
            Self::MoreThan(value) => write!(f, "more than {value}"),
        }
    }
}

/// An operation over one of the limits: refused with HTTP 400 and
/// [`LimitExceeded::code`]; the message names the limit and its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operation's {noun} ({measured}) exceeds the maximum {noun} of {max} ({variable})",
    noun = .limit.noun(),
    variable = .limit.variable()
)]
pub struct LimitExceeded {
    /// Which limit.
    pub limit: Limit,
    /// What the operation measured.
    pub measured: Measured,
    /// The configured maximum.
    pub max: u64,
}

impl LimitExceeded {
    /// The `extensions.code` clients see.
    pub const fn code(&self) -> ErrorCode {
        self.limit.code()
    }

    /// The environment variable that sets the limit.
    pub const fn variable(&self) -> &'static str {
        self.limit.variable()
    }

    /// The token limit's error when `err` is the parser giving up at
    /// `max_tokens` tokens; `None` for any other syntax error.
    pub fn from_parse_error(err: &ParseError, max_tokens: usize) -> Option<Self> {
        // The parser reports the limit as a static message among its errors;
        // matching that one error (not the rendered text) keeps a query
        // containing the phrase from being mistaken for it.
        let over = err
            .0
            .errors
            .iter()
            .any(|error| error.to_string() == TOKEN_LIMIT_MESSAGE);
        over.then(|| {
            let max = u64::try_from(max_tokens).unwrap_or(u64::MAX);
            Self {
                limit: Limit::Tokens,
                measured: Measured::MoreThan(max),
                max,
            }
        })
    }
}

/// What a `Type.field` returns, as far as cost is concerned.
#[derive(Debug, Clone)]
struct FieldShape {
    /// A list (under any non-null wrappers).
    list: bool,
    /// The named type inside the wrappers: the parent of the sub-selection.
    named: String,
}

/// The schema facts the complexity estimate needs: per `Type.field`,
/// whether it returns a list and its named type; and the root types. Built
/// once per supergraph (when the planner is), read by every check.
/// Introspection types are left out: introspection fields cost 1 each.
#[derive(Debug, Clone, Default)]
pub struct CostModel {
    fields: HashMap<String, HashMap<String, FieldShape>>,
    query: Option<String>,
    mutation: Option<String>,
    subscription: Option<String>,
}

impl CostModel {
    /// Reads object and interface fields (with their extensions) and the
    /// root types from the API schema.
    pub fn new(api: &schema::Document) -> Self {
        use schema::{Definition as D, TypeDefinition as T, TypeExtension as X};
        let mut model = Self::default();
        for definition in &api.definitions {
            let (type_name, fields) = match definition {
                D::SchemaDefinition(roots) => {
                    model.query.clone_from(&roots.query);
                    model.mutation.clone_from(&roots.mutation);
                    model.subscription.clone_from(&roots.subscription);
                    continue;
                }
                D::TypeDefinition(T::Object(object)) => (&object.name, &object.fields),
                D::TypeDefinition(T::Interface(interface)) => (&interface.name, &interface.fields),
                D::TypeExtension(X::Object(object)) => (&object.name, &object.fields),
                D::TypeExtension(X::Interface(interface)) => (&interface.name, &interface.fields),
                _ => continue,
            };
            // Introspection (`__schema`, `__Type.fields`...) is answered from
            // the schema in memory: its size is the schema's, whatever the
            // client asks, so its lists multiply nothing.
            if type_name.starts_with("__") {
                continue;
            }
            let shapes = model.fields.entry(type_name.clone()).or_default();
            for field in fields.iter().filter(|f| !f.name.starts_with("__")) {
                shapes.insert(field.name.clone(), shape(&field.field_type));
            }
        }
        model
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldShape> {
        self.fields.get(parent)?.get(name)
    }

    fn root(&self, kind: RootKind) -> &str {
        let (declared, conventional) = match kind {
            RootKind::Query => (&self.query, "Query"),
            RootKind::Mutation => (&self.mutation, "Mutation"),
            RootKind::Subscription => (&self.subscription, "Subscription"),
        };
        declared.as_deref().unwrap_or(conventional)
    }
}

fn shape(field_type: &schema::Type) -> FieldShape {
    let mut current = field_type;
    let mut list = None;
    loop {
        match current {
            schema::Type::NonNullType(inner) => current = inner,
            schema::Type::ListType(inner) => {
                list.get_or_insert(true);
                current = inner;
            }
            schema::Type::NamedType(name) => {
                return FieldShape {
                    list: list.unwrap_or(false),
                    named: name.clone(),
                };
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum RootKind {
    Query,
    Mutation,
    Subscription,
}

/// The measures of one operation (fragments counted where spread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurements {
    /// Deepest field nesting; root fields are depth 1.
    pub depth: u64,
    /// Whether the operation reaches a fragment cycle: its depth is then
    /// unbounded, and the other measures leave the cycle out.
    pub unbounded: bool,
    /// Aliased fields.
    pub aliases: u64,
    /// Fields selected at the root.
    pub root_fields: u64,
    /// Estimated cost.
    pub complexity: u64,
    /// Fields selected anywhere, `__typename` included.
    pub fields: u64,
}

/// Measures `operation_name` (or the only operation) in `document`; `None`
/// when no operation is selected (validation reports that).
pub fn measure(
    document: &Document,
    operation_name: Option<&str>,
    model: &CostModel,
    default_list_size: u64,
) -> Option<Measurements> {
    let (kind, selection_set) = select(document, operation_name)?;
    let fragments = summarise_fragments(document, model, default_list_size);
    let walker = Walker {
        model,
        default_list_size,
        fragments: &fragments,
    };
    let summary = walker.summarise(selection_set, Some(model.root(kind)), 0);
    Some(Measurements {
        depth: summary.depth,
        unbounded: summary.unbounded,
        aliases: summary.aliases,
        root_fields: summary.fields,
        complexity: summary.cost(default_list_size),
        fields: summary.all_fields,
    })
}

/// Checks `operation_name` (or the only operation) in `document` against
/// `limits`: depth first, then aliases, root fields, fields and
/// complexity. A
/// document without a selectable operation passes (validation refuses it).
pub fn check(
    document: &Document,
    operation_name: Option<&str>,
    limits: &OperationLimits,
    model: &CostModel,
) -> Result<(), LimitExceeded> {
    if limits.all_disabled() {
        return Ok(());
    }
    let Some(measured) = measure(document, operation_name, model, limits.default_list_size) else {
        return Ok(());
    };
    if let Some(max) = limits.max_depth {
        if measured.unbounded {
            return Err(LimitExceeded {
                limit: Limit::Depth,
                measured: Measured::MoreThan(max),
                max,
            });
        }
        over(Limit::Depth, measured.depth, max)?;
    }
    let others = [
        (Limit::Aliases, measured.aliases, limits.max_aliases),
        (
            Limit::RootFields,
            measured.root_fields,
            limits.max_root_fields,
        ),
        (Limit::Fields, measured.fields, limits.max_fields),
        (
            Limit::Complexity,
            measured.complexity,
            limits.max_complexity,
        ),
    ];
    for (limit, value, max) in others {
        if let Some(max) = max {
            over(limit, value, max)?;
        }
    }
    Ok(())
}

fn over(limit: Limit, value: u64, max: u64) -> Result<(), LimitExceeded> {
    if value > max {
        Err(LimitExceeded {
            limit,
            measured: Measured::Exactly(value),
            max,
        })
    } else {
        Ok(())
    }
}

/// The operation to check: the named one, or the only one.
fn select<'d>(
    document: &'d Document,
    operation_name: Option<&str>,
) -> Option<(RootKind, &'d SelectionSet)> {
    let mut operations = document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            Definition::Operation(operation) => Some(operation),
            Definition::Fragment(_) => None,
        })
        .map(|operation| match operation {
            OperationDefinition::SelectionSet(set) => (None, RootKind::Query, set),
            OperationDefinition::Query(q) => (q.name.as_deref(), RootKind::Query, &q.selection_set),
            OperationDefinition::Mutation(m) => {
                (m.name.as_deref(), RootKind::Mutation, &m.selection_set)
            }
            OperationDefinition::Subscription(s) => {
                (s.name.as_deref(), RootKind::Subscription, &s.selection_set)
            }
        });
    let (_, kind, set) = match operation_name {
        Some(wanted) => operations.find(|(name, _, _)| *name == Some(wanted))?,
        None => {
            let only = operations.next()?;
            if operations.next().is_some() {
                return None;
            }
            only
        }
    };
    Some((kind, set))
}

/// A selection set's measures, with fragments counted where spread. Adding
/// summaries is how a spread or inline fragment joins its enclosing set.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    /// Deepest field nesting below (and including) this level.
    depth: u64,
    /// Aliased fields at and below this level.
    aliases: u64,
    /// Fields at this level (not `__typename`): root fields, at the root.
    fields: u64,
    /// Fields at and below this level, `__typename` included.
    all_fields: u64,
    /// Cost that does not depend on the size of the enclosing field.
    fixed: u64,
    /// Cost of one item of each list at this level that takes its size from
    /// the enclosing field (a connection's `edges` under `first: 100`).
    per_item: u64,
    /// A fragment cycle, or nesting beyond [`MAX_NESTING`], is reached.
    unbounded: bool,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.fields = self.fields.saturating_add(other.fields);
        self.all_fields = self.all_fields.saturating_add(other.all_fields);
        self.fixed = self.fixed.saturating_add(other.fixed);
        self.per_item = self.per_item.saturating_add(other.per_item);
        self.unbounded |= other.unbounded;
    }

    /// The cost when the lists that take the enclosing size get `size` items.
    fn cost(&self, size: u64) -> u64 {
        self.fixed
            .saturating_add(size.saturating_mul(self.per_item))
    }
}

/// How a field states its list size.
enum SizeArgument {
    /// An int literal (negative counts as 0).
    Literal(u64),
    /// A variable: unknown when the check runs, so the default applies.
    Variable,
    /// No size argument.
    Absent,
}

fn size_argument(arguments: &[(String, Value)]) -> SizeArgument {
    let size = arguments
        .iter()
        .find(|(name, _)| SIZE_ARGUMENTS.contains(&name.as_str()));
    match size {
        Some((_, Value::Int(n))) => {
            SizeArgument::Literal(n.as_i64().map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        }
        Some(_) => SizeArgument::Variable,
        None => SizeArgument::Absent,
    }
}

struct Walker<'a> {
    model: &'a CostModel,
    default_list_size: u64,
    /// Summaries of the fragments computed so far; a defined fragment
    /// missing here is part of (or depends on) a cycle.
    fragments: &'a Fragments<'a>,
}

struct Fragments<'d> {
    definitions: HashMap<&'d str, &'d FragmentDefinition>,
    summaries: HashMap<&'d str, Summary>,
}

impl Walker<'_> {
    fn summarise(&self, set: &SelectionSet, parent: Option<&str>, nesting: usize) -> Summary {
        let mut summary = Summary::default();
        if nesting > MAX_NESTING {
            summary.unbounded = true;
            return summary;
        }
        for selection in &set.items {
            match selection {
                Selection::Field(field) => {
                    if field.alias.is_some() {
                        summary.aliases = summary.aliases.saturating_add(1);
                    }
                    summary.all_fields = summary.all_fields.saturating_add(1);
                    if field.name == "__typename" {
                        continue;
                    }
                    let shape = parent.and_then(|parent| self.model.field(parent, &field.name));
                    let sub = self.summarise(
                        &field.selection_set,
                        shape.map(|s| s.named.as_str()),
                        nesting + 1,
                    );
                    summary.fields = summary.fields.saturating_add(1);
                    summary.depth = summary.depth.max(sub.depth.saturating_add(1));
                    summary.aliases = summary.aliases.saturating_add(sub.aliases);
                    summary.all_fields = summary.all_fields.saturating_add(sub.all_fields);
                    summary.unbounded |= sub.unbounded;
                    let default = self.default_list_size;
                    let is_list = shape.is_some_and(|s| s.list);
                    match (is_list, size_argument(&field.arguments)) {
                        (true, SizeArgument::Literal(size)) => {
                            summary.fixed = summary
                                .fixed
                                .saturating_add(1)
                                .saturating_add(size.saturating_mul(sub.cost(default)));
                        }
                        (true, SizeArgument::Variable) => {
                            summary.fixed = summary
                                .fixed
                                .saturating_add(1)
                                .saturating_add(default.saturating_mul(sub.cost(default)));
                        }
                        (true, SizeArgument::Absent) => {
                            // Sized by the enclosing field (a connection's
                            // `first`), else by the default.
                            summary.fixed = summary.fixed.saturating_add(1);
                            summary.per_item = summary.per_item.saturating_add(sub.cost(default));
                        }
                        (false, SizeArgument::Literal(size)) => {
                            // A connection: its size is its lists' size.
                            summary.fixed = summary
                                .fixed
                                .saturating_add(1)
                                .saturating_add(sub.cost(size));
                        }
                        (false, SizeArgument::Variable | SizeArgument::Absent) => {
                            summary.fixed = summary
                                .fixed
                                .saturating_add(1)
                                .saturating_add(sub.cost(default));
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    let parent = match &inline.type_condition {
                        Some(TypeCondition::On(name)) => Some(name.as_str()),
                        None => parent,
                    };
                    summary.add(&self.summarise(&inline.selection_set, parent, nesting + 1));
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    match self.fragments.summaries.get(name) {
                        Some(fragment) => summary.add(fragment),
                        // Defined but not summarised: a cycle.
                        None if self.fragments.definitions.contains_key(name) => {
                            summary.unbounded = true;
                        }
                        // Unknown: validation reports it.
                        None => {}
                    }
                }
            }
        }
        summary
    }
}

/// Summarises every fragment once, each after the fragments it spreads
/// (Kahn's topological sort); fragments in or depending on a cycle are left
/// out, which is how spreads recognise them.
fn summarise_fragments<'d>(
    document: &'d Document,
    model: &CostModel,
    default_list_size: u64,
) -> Fragments<'d> {
    let mut definitions: HashMap<&str, &FragmentDefinition> = HashMap::new();
    for definition in &document.definitions {
        if let Definition::Fragment(fragment) = definition {
            // A duplicate name is a validation error; the first one counts.
            definitions
                .entry(fragment.name.as_str())
                .or_insert(fragment);
        }
    }
    let mut waiting_on: HashMap<&str, usize> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (&name, fragment) in &definitions {
        let mut spreads = HashSet::new();
        collect_spreads(&fragment.selection_set, &mut spreads, 0);
        spreads.retain(|spread| definitions.contains_key(spread));
        waiting_on.insert(name, spreads.len());
        for spread in spreads {
            dependents.entry(spread).or_default().push(name);
        }
    }
    let mut ready: Vec<&str> = waiting_on
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut fragments = Fragments {
        definitions,
        summaries: HashMap::new(),
    };
    while let Some(name) = ready.pop() {
        let Some(fragment) = fragments.definitions.get(name) else {
            continue;
        };
        let TypeCondition::On(type_name) = &fragment.type_condition;
        let summary = Walker {
            model,
            default_list_size,
            fragments: &fragments,
        }
        .summarise(&fragment.selection_set, Some(type_name), 0);
        fragments.summaries.insert(name, summary);
        for dependent in dependents.get(name).into_iter().flatten() {
            if let Some(count) = waiting_on.get_mut(dependent) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.push(dependent);
                }
            }
        }
    }
    fragments
}

/// The names of the fragments spread anywhere in `set`.
fn collect_spreads<'d>(set: &'d SelectionSet, out: &mut HashSet<&'d str>, nesting: usize) {
    if nesting > MAX_NESTING {
        return;
    }
    for selection in &set.items {
        match selection {
            Selection::Field(field) => collect_spreads(&field.selection_set, out, nesting + 1),
            Selection::InlineFragment(inline) => {
                collect_spreads(&inline.selection_set, out, nesting + 1);
            }
            Selection::FragmentSpread(spread) => {
                out.insert(spread.fragment_name.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use hive_router_query_planner::utils::parsing::safe_parse_operation;

    use super::*;
    use crate::planner::{PlanError, PlannerSettings, QueryPlanner, operation_names};

    const SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");

    fn planner(settings: PlannerSettings) -> QueryPlanner {
        QueryPlanner::from_supergraph(SUPERGRAPH, settings).expect("the committed supergraph loads")
    }

    fn model() -> CostModel {
        CostModel::new(planner(PlannerSettings::default()).api_schema())
    }

    fn measured(operation: &str) -> Measurements {
        let document = safe_parse_operation(operation).expect("parses");
        measure(&document, None, &model(), DEFAULT_LIST_SIZE).expect("one operation")
    }

    fn checked(operation: &str, limits: &OperationLimits) -> Result<(), LimitExceeded> {
        let document = safe_parse_operation(operation).expect("parses");
        check(&document, None, limits, &model())
    }

    fn refused(operation: &str) -> LimitExceeded {
        checked(operation, &OperationLimits::default()).expect_err("over a limit")
    }

    /// `{ __type(name: "Query") { ofType { ofType ... { name } } } }`,
    /// `levels` fields deep.
    fn nested_introspection(levels: usize) -> String {
        let inner = levels.saturating_sub(2);
        format!(
            "{{ __type(name: \"Query\") {{ {}name{} }} }}",
            "ofType { ".repeat(inner),
            " }".repeat(inner)
        )
    }

    /// The router test's `me` query (tests/api/router.rs).
    const ROUTER_TEST_ME: &str =
        "{ me { id basket { total { amount } items { quantity product { name price { amount } } } }
        payments(first: 5) { edges { node { status items { product { name } } } } }
        notifications(first: 5) { edges { node { title } } } unreadNotificationCount } }";

    /// A full page of the catalogue with every product field.
    const FULL_PAGE: &str = "{ products(first: 100) { totalCount pageInfo { hasNextPage endCursor }
        edges { cursor node { id name description price { amount currency } stockQuantity
        inStock category imageUrl createdAt updatedAt } } } }";

    /// Every operation the shop's clients send (tests/operations), plus
    /// the router test's query, a full catalogue page and GraphiQL's
    /// introspection: (label, document, operation name).
    fn everyday_operations() -> Vec<(String, String, Option<String>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/operations");
        let mut operations = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("tests/operations exists") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|ext| ext == "graphql") {
                let document = std::fs::read_to_string(&path).expect("readable");
                for name in operation_names(&document).expect("parses") {
                    let label = format!("{} {name:?}", path.display());
                    operations.push((label, document.clone(), name));
                }
            }
        }
        assert!(
            operations.len() >= 10,
            "only {} operations found",
            operations.len()
        );
        for (label, document) in [
            ("router test me", ROUTER_TEST_ME),
            ("full page", FULL_PAGE),
            (
                "introspection",
                crate::planner::introspection::INTROSPECTION_QUERY,
            ),
        ] {
            operations.push((label.to_owned(), document.to_owned(), None));
        }
        operations
    }

    #[test]
    fn everyday_operations_pass_the_defaults_with_margin() {
        let model = model();
        let planner = planner(PlannerSettings::default());
        for (label, document, name) in everyday_operations() {
            let parsed = safe_parse_operation(&document).expect("parses");
            let m = measure(&parsed, name.as_deref(), &model, DEFAULT_LIST_SIZE).expect(&label);
            assert!(!m.unbounded, "{label}");
            assert!(m.depth < DEFAULT_MAX_DEPTH, "{label}: {m:?}");
            assert!(m.aliases <= DEFAULT_MAX_ALIASES / 2, "{label}: {m:?}");
            assert!(
                m.root_fields <= DEFAULT_MAX_ROOT_FIELDS / 2,
                "{label}: {m:?}"
            );
            assert!(m.complexity <= DEFAULT_MAX_COMPLEXITY / 4, "{label}: {m:?}");
            // GraphiQL's introspection selects 212 fields (its `TypeRef`
            // fragment nests eight levels); the shop's own operations at
            // most a fifth of the limit.
            let room = if label == "introspection" { 2 } else { 5 };
            assert!(m.fields <= DEFAULT_MAX_FIELDS / room, "{label}: {m:?}");
            planner
                .prepare(&document, name.as_deref())
                .unwrap_or_else(|err| panic!("{label}: {err}"));
        }
    }

    #[test]
    fn complexity_multiplies_by_list_sizes() {
        // products 1 + totalCount 1 + edges 1 + 3 × (node 1 + id 1)
        assert_eq!(
            measured("{ products(first: 3) { totalCount edges { node { id } } } }").complexity,
            9
        );
        // No size: the default (10) sizes the connection's lists.
        assert_eq!(
            measured("{ products { edges { node { id } } } }").complexity,
            22
        );
        // A variable size is unknown when the check runs: the default.
        assert_eq!(
            measured("query($n: Int) { products(first: $n) { edges { node { id } } } }").complexity,
            22
        );
        // A plain list: myBasket 1 + items 1 + 10 × quantity 1.
        assert_eq!(
            measured("{ myBasket { items { quantity } } }").complexity,
            12
        );
        // A connection's size reaches its lists through a fragment, too.
        assert_eq!(
            measured(
                "{ products(first: 3) { ...Page } } fragment Page on ProductConnection { edges { node { id } } }"
            )
            .complexity,
            8
        );
        // __typename is free; an unknown field costs 1 and multiplies nothing.
        assert_eq!(
            measured("{ __typename myBasket { __typename } }").complexity,
            1
        );
        assert_eq!(measured("{ noSuchField { a { b } } }").complexity, 3);
        // Nested lists multiply: notifications(first: 2) → items (10 each).
        assert_eq!(
            measured("{ me { notifications(first: 2) { edges { node { payment { items { quantity } } } } } } }")
                .complexity,
            // me 1 + notifications 1 + edges 1 + 2 × (node 1 + payment 1 + items 1 + 10 × 1)
            3 + 2 * 13
        );
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        assert_eq!(measured("{ categories }").depth, 1);
        assert_eq!(measured("{ __typename }").depth, 0);
        assert_eq!(
            measured(
                "{ me { ...Basket } } fragment Basket on User { basket { ... on Basket { items { ...Line } } } }
                 fragment Line on BasketItem { product { price { amount } } }"
            )
            .depth,
            6
        );
        assert_eq!(measured(&nested_introspection(16)).depth, 16);
    }

    #[test]
    fn the_depth_limit_refuses_deep_operations() {
        let err = refused(&nested_introspection(17));
        assert_eq!(
            err.to_string(),
            "the operation's depth (17) exceeds the maximum depth of 16 (GRAPHQL_MAX_DEPTH)"
        );
        assert_eq!(err.code(), ErrorCode::MaxDepthLimit);
        assert!(checked(&nested_introspection(16), &OperationLimits::default()).is_ok());
        let shallow = OperationLimits {
            max_depth: Some(3),
            ..OperationLimits::default()
        };
        let err = checked("{ me { basket { items { quantity } } } }", &shallow).unwrap_err();
        assert_eq!(err.measured, Measured::Exactly(4));
        // A chain of fragments, each one level deeper than the last.
        let mut chain = String::from("{ __type(name: \"Query\") { ...F0 } }");
        for i in 0..40 {
            chain.push_str(&format!(
                " fragment F{i} on __Type {{ ofType {{ ...F{} }} }}",
                i + 1
            ));
        }
        chain.push_str(" fragment F40 on __Type { name }");
        let err = refused(&chain);
        assert_eq!(
            (err.limit, err.measured),
            (Limit::Depth, Measured::Exactly(42))
        );
    }

    #[test]
    fn fragment_cycles_are_refused_without_hanging() {
        for bomb in [
            "{ me { ...A } } fragment A on User { basket { items { product { id } } } ...B } fragment B on User { ...A }",
            "{ ...A } fragment A on Query { categories ...A ...A ...A }",
            "{ ...A } fragment A on Query { ...B } fragment B on Query { c: categories ...C } fragment C on Query { ...A ...Unknown }",
        ] {
            let err = refused(bomb);
            assert_eq!(
                (err.limit, err.measured),
                (Limit::Depth, Measured::MoreThan(DEFAULT_MAX_DEPTH)),
                "{bomb}"
            );
            assert!(err.to_string().contains("more than 16"), "{err}");
        }
        // An unused cycle does not matter to the operation; validation
        // refuses it later.
        assert!(
            checked(
                "{ categories } fragment A on Query { ...A }",
                &OperationLimits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn exponential_fragment_fan_out_is_measured_in_linear_time() {
        // F0 spreads F1 twice, F1 spreads F2 twice...: 2^60 aliases once
        // expanded, summarised in 60 steps.
        let mut bomb = String::from("{ ...F0 }");
        for i in 0..60 {
            bomb.push_str(&format!(
                " fragment F{i} on Query {{ a{i}: categories ...F{next} ...F{next} }}",
                next = i + 1
            ));
        }
        bomb.push_str(" fragment F60 on Query { categories }");
        let started = Instant::now();
        let m = measured(&bomb);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(m.aliases, (1u64 << 60) - 1);
        assert_eq!(m.root_fields, (1u64 << 61) - 1);
        let err = refused(&bomb);
        assert_eq!(err.limit, Limit::Aliases);
    }

    #[test]
    fn the_alias_limit_refuses_alias_bombs() {
        let bomb = format!(
            "{{ {} }}",
            (0..1000)
                .map(|i| format!("a{i}: __typename"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let err = refused(&bomb);
        assert_eq!(err.code(), ErrorCode::MaxAliasesLimit);
        assert_eq!(err.measured, Measured::Exactly(1000));
        assert!(err.to_string().contains("GRAPHQL_MAX_ALIASES"), "{err}");
        // Aliases inside a fragment count where it is spread.
        let twice = "{ a: me { ...Ids } b: me { ...Ids } } fragment Ids on User { x: id y: id }";
        assert_eq!(measured(twice).aliases, 6);
    }

    #[test]
    fn the_root_field_limit_refuses_wide_operations() {
        let wide = format!("{{ {} }}", "categories ".repeat(21));
        let err = refused(&wide);
        assert_eq!(err.code(), ErrorCode::MaxRootFieldsLimit);
        assert_eq!(err.measured, Measured::Exactly(21));
        let through_fragment = format!(
            "{{ ...Wide }} fragment Wide on Query {{ ... on Query {{ {} }} }}",
            "categories ".repeat(21)
        );
        assert_eq!(refused(&through_fragment).limit, Limit::RootFields);
        assert!(
            checked(
                &format!("{{ {} }}", "categories ".repeat(20)),
                &OperationLimits::default()
            )
            .is_ok()
        );
        assert_eq!(
            measured("{ __typename categories __schema { description } }").root_fields,
            2
        );
    }

    /// Two connections of 100, each item with a list of 10 products.
    const COMPLEXITY_BOMB: &str = "{ me {
        payments(first: 100) { edges { node { items { product { id name description category imageUrl price { amount currency } } } } } }
        notifications(first: 100) { edges { node { payment { items { product { id name description category imageUrl price { amount currency } } } } } } }
    } }";

    #[test]
    fn the_complexity_limit_refuses_nested_list_bombs() {
        let err = refused(COMPLEXITY_BOMB);
        assert_eq!(err.code(), ErrorCode::MaxComplexityLimit);
        let Measured::Exactly(cost) = err.measured else {
            panic!("{err:?}")
        };
        assert!(cost > DEFAULT_MAX_COMPLEXITY, "{cost}");
        assert!(err.to_string().contains("GRAPHQL_MAX_COMPLEXITY"), "{err}");
        // The same shape with small pages passes.
        assert!(
            checked(
                &COMPLEXITY_BOMB.replace("100", "5"),
                &OperationLimits::default()
            )
            .is_ok()
        );
        // Literal sizes are trusted, even absurd ones: saturating, refused.
        let huge = "{ a: products(first: 2000000000) { edges { node { id } } }
                      myBasket { items(first: 2000000000) { product { id } } } }";
        assert_eq!(refused(huge).limit, Limit::Complexity);
        let saturated = format!(
            "{{ me {{ notifications(first: {max}) {{ edges {{ node {{ payment {{ items(first: {max}) {{ product {{ id }} }} }} }} }} }} }} }}",
            max = i64::MAX
        );
        assert_eq!(measured(&saturated).complexity, u64::MAX);
    }

    /// `{ me { id id id ... } }`: one field repeated `times` under `me`.
    /// It passes depth (2), aliases (0), root fields (1) and, up to 9,998
    /// repeats, complexity; the planner's time grows with its square.
    fn repeated_nested(times: usize) -> String {
        format!("{{ me {{ {} }} }}", "id ".repeat(times))
    }

    #[test]
    fn the_field_limit_refuses_repeated_fields() {
        // The documents: 9,000 fields (under the token limit, over
        // no other limit) and 2,000 root `__typename`, free for every other
        // limit.
        let nested = refused(&repeated_nested(9_000));
        assert_eq!(nested.code(), ErrorCode::MaxFieldsLimit);
        assert_eq!(nested.measured, Measured::Exactly(9_001));
        assert_eq!(
            nested.to_string(),
            "the operation's field count (9001) exceeds the maximum field count of 500 (GRAPHQL_MAX_FIELDS)"
        );
        let typenames = format!("{{ {} }}", "__typename ".repeat(2_000));
        let err = refused(&typenames);
        assert_eq!(err.code(), ErrorCode::MaxFieldsLimit);
        assert_eq!(err.measured, Measured::Exactly(2_000));
        // Nested `__typename` counts as well.
        let nested_typenames = format!("{{ me {{ {} }} }}", "__typename ".repeat(600));
        assert_eq!(refused(&nested_typenames).limit, Limit::Fields);
        // Just under: 499 + `me`.
        assert!(checked(&repeated_nested(499), &OperationLimits::default()).is_ok());
        assert_eq!(refused(&repeated_nested(500)).limit, Limit::Fields);
    }

    #[test]
    fn the_field_count_expands_fragments_without_expanding_them() {
        // Each fragment is counted once and multiplied where spread.
        assert_eq!(
            measured(
                "{ me { ...A ...A } } fragment A on User { id __typename basket { itemCount } }"
            )
            .fields,
            1 + 2 * 4
        );
        // A fragment bomb: 20 levels each spreading the previous one twice
        // select 2^20 fields; counting them is still linear in the document.
        let mut bomb = String::from("{ me { ...F20 } } fragment F0 on User { id }");
        for level in 1..=20 {
            let below = level - 1;
            bomb.push_str(&format!(
                " fragment F{level} on User {{ ...F{below} ...F{below} }}"
            ));
        }
        let err = refused(&bomb);
        assert_eq!(err.limit, Limit::Fields);
        assert_eq!(err.measured, Measured::Exactly(1 + (1 << 20)));
    }

    #[test]
    fn disabled_limits_let_everything_through() {
        let unlimited = OperationLimits::unlimited();
        let bombs = [
            nested_introspection(30),
            "{ ...A } fragment A on Query { categories ...A }".to_owned(),
            format!(
                "{{ {} }}",
                (0..1000)
                    .map(|i| format!("a{i}: categories"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            COMPLEXITY_BOMB.to_owned(),
        ];
        for bomb in &bombs {
            assert!(checked(bomb, &unlimited).is_ok(), "{bomb}");
        }
        // One limit off, the others still apply.
        let no_depth = OperationLimits {
            max_depth: None,
            ..OperationLimits::default()
        };
        assert!(checked(&bombs[0], &no_depth).is_ok());
        assert_eq!(
            checked(&bombs[2], &no_depth).unwrap_err().limit,
            Limit::Aliases
        );
    }

    #[test]
    fn the_planner_refuses_before_validating() {
        let strict = planner(PlannerSettings::default());
        // Over the depth limit and invalid: the limit answers first.
        let deep = nested_introspection(20).replace("name }", "noSuchField }");
        match strict.prepare(&deep, None) {
            Err(PlanError::Limit(err)) => assert_eq!(err.limit, Limit::Depth),
            other => panic!("{other:?}"),
        }
        match strict.prepare(COMPLEXITY_BOMB, None) {
            Err(PlanError::Limit(err)) => assert_eq!(err.limit, Limit::Complexity),
            other => panic!("{other:?}"),
        }
        // 9,000 fields (invalid, too: `User.nope`) are counted before
        // anything validates or plans them.
        let wide = format!("{{ me {{ nope {} }} }}", "id ".repeat(9_000));
        match strict.prepare(&wide, None) {
            Err(PlanError::Limit(err)) => assert_eq!(err.limit, Limit::Fields),
            other => panic!("{other:?}"),
        }
        // A cycle with the depth limit off reaches validation, which
        // names it.
        let lenient = planner(PlannerSettings {
            limits: OperationLimits::unlimited(),
            ..PlannerSettings::default()
        });
        let cycle = "{ me { ...A } } fragment A on User { basket { itemCount } ...B } fragment B on User { ...A }";
        assert!(matches!(
            lenient.prepare(cycle, None),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn too_many_tokens_is_a_limit_not_a_syntax_error() {
        let planner = planner(PlannerSettings {
            max_tokens: 100,
            ..PlannerSettings::default()
        });
        let long = format!("{{ {} }}", "categories ".repeat(200));
        let Err(PlanError::Limit(err)) = planner.prepare(&long, None) else {
            panic!("refused for its tokens")
        };
        assert_eq!(err.code(), ErrorCode::MaxTokensLimit);
        assert_eq!(
            err.to_string(),
            "the operation's token count (more than 100) exceeds the maximum token count of 100 (GRAPHQL_MAX_TOKENS)"
        );
        // A short syntax error stays one, even one mentioning the limit.
        assert!(matches!(
            planner.prepare("{ categories \"Token limit exceeded\" ", None),
            Err(PlanError::Parse(_))
        ));
    }

    #[test]
    fn limits_come_from_the_environment() {
        assert_eq!(
            OperationLimits::from_env(&Env::default()).unwrap(),
            OperationLimits::default()
        );
        let env = Env::from_pairs([
            ("GRAPHQL_MAX_DEPTH", "0"),
            ("GRAPHQL_MAX_ALIASES", "5"),
            ("GRAPHQL_MAX_ROOT_FIELDS", "7"),
            ("GRAPHQL_MAX_COMPLEXITY", "0"),
            ("GRAPHQL_MAX_FIELDS", "300"),
            ("GRAPHQL_DEFAULT_LIST_SIZE", "25"),
        ]);
        assert_eq!(
            OperationLimits::from_env(&env).unwrap(),
            OperationLimits {
                max_depth: None,
                max_aliases: Some(5),
                max_root_fields: Some(7),
                max_complexity: None,
                max_fields: Some(300),
                default_list_size: 25,
            }
        );
        for (var, value) in [
            ("GRAPHQL_MAX_DEPTH", "deep"),
            ("GRAPHQL_MAX_ALIASES", "-1"),
            ("GRAPHQL_MAX_ROOT_FIELDS", "99999999"),
            ("GRAPHQL_MAX_COMPLEXITY", "1e6"),
            ("GRAPHQL_MAX_FIELDS", "2000000"),
            ("GRAPHQL_DEFAULT_LIST_SIZE", "0"),
        ] {
            let err = OperationLimits::from_env(&Env::from_pairs([(var, value)]))
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}
