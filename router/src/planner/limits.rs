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
//! | complexity | the estimated cost: field weights, lists multiplied by their sizes (`@cost`, `@listSize`; below) | `GRAPHQL_MAX_COMPLEXITY` |
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
//! ## Complexity: the estimated cost
//!
//! Complexity is Apollo Router's "static estimated cost" (demand control),
//! from IBM's GraphQL cost specification as Apollo Federation 2.9 adopted
//! it. The subgraphs state in their schemas what fields cost and how long
//! lists are, with `@cost(weight:)` and `@listSize(assumedSize:,
//! slicingArguments:, sizedFields:, requireOneSlicingArgument:)`;
//! composition keeps them in the supergraph, and [`CostModel`] reads them
//! from there (under the names the supergraph's `@link` to
//! `https://specs.apollo.dev/cost/` gives them). Then:
//!
//! - a field costs its `@cost` weight, else its type's `@cost`, else 1
//!   when it returns an object, interface or union and 0 when it returns a
//!   scalar or enum; plus the cost of its selection; `__typename` is free;
//! - a list field costs that times its size: the size its enclosing field
//!   gives it (`sizedFields`: a connection's `edges`/`nodes` under
//!   `first: 5`), else its own `@listSize` (the largest slicing argument
//!   given, else `assumedSize`), else `GRAPHQL_DEFAULT_LIST_SIZE`;
//! - arguments add their `@cost` (and an input object 1 plus its fields),
//!   once per field, not per item; an argument given by a variable adds
//!   nothing (its value is not known; Apollo scores the value);
//! - a mutation adds [`MUTATION_BASE_COST`].
//!
//! Variables are not evaluated. The check runs once per document, before
//! variables are known, and its verdict is cached with the plan; a slicing
//! argument given by a variable counts as the field's `assumedSize`, or
//! `GRAPHQL_DEFAULT_LIST_SIZE` without one. The shop sets `assumedSize` of
//! every paginated connection to the largest `first` its subgraph accepts
//! (100), so the estimate is an upper bound whatever the variables say (a
//! larger `first` is refused by the subgraph). A literal is taken as
//! written, however large. `requireOneSlicingArgument` is read but not
//! enforced (the subgraph validates its arguments), `@skip`/`@include`
//! do not lower the estimate, and `@requires` selections are not added.
//!
//! Without the directives (a supergraph composed without them), a field
//! with an argument named `first`, `last`, `limit`, `pageSize` or `take`
//! is sliced by it and, when it returns an object (a Relay connection),
//! sizes that object's lists: the old rule, as an implied `@listSize`.
//! Fields the model does not know cost 1 when they select something, else
//! 0, and multiply nothing: a typo (validation reports it later) and
//! introspection, whose answer is as large as the schema whatever the
//! client asks (it has its own guard,
//! [`crate::planner::introspection::check_introspection_depth`], and its
//! switch, `GRAPHQL_INTROSPECTION`).
//!
//! Fragments are summarised once, like the other measures: a summary keeps
//! the cost of the lists at its top level per item, by field name, until
//! the field it is spread under says whether it sizes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use graphql_tools::parser::query::ParseError;
use graphql_tools::static_graphql::query::{
    Definition, Document, Field, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
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
/// Default of `GRAPHQL_MAX_COMPLEXITY`: every registered shop operation
/// costs at most 402 (`MyPayments` with its page size a variable, so
/// counted as 100), a full page of 100 products 302, so a quarter of the
/// limit leaves room for richer clients; two nested 100-item connections
/// with their lines' products (the complexity bomb in the tests, ~12,500)
/// do not fit.
pub const DEFAULT_MAX_COMPLEXITY: u64 = 10_000;
/// Default of `GRAPHQL_MAX_FIELDS`: the largest shop operation selects 28
/// fields (fragments expanded), GraphiQL's introspection query 212.
/// Validation costs grow with the square of the field count (its
/// overlapping-fields rule compares fields pairwise): 500 fields take about
/// 15 ms, 2,000 a quarter of a second, 9,000 four to seven seconds.
pub const DEFAULT_MAX_FIELDS: u64 = 500;
/// Default of `GRAPHQL_DEFAULT_LIST_SIZE`: the size assumed for a list
/// whose schema gives none (no `@listSize`, no size argument).
pub const DEFAULT_LIST_SIZE: u64 = 10;

/// The argument names that give a list's size when the schema has no
/// `@listSize` for it.
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
    /// The size assumed for a list whose schema gives none
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

/// The spec `@cost` and `@listSize` come from in a supergraph's `@link`.
const COST_SPEC: &str = "https://specs.apollo.dev/cost/";

/// Base cost of a mutation operation, as in Apollo Router's demand control:
/// a mutation writes, so even a small one is not free.
pub const MUTATION_BASE_COST: u64 = 10;

/// A field's `@listSize`: how many items the list it returns has (or, on a
/// connection, the lists under it named in `sized_fields`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSize {
    /// The size when no slicing argument gives one.
    pub assumed_size: Option<u64>,
    /// Int arguments whose value is the size (the largest one given).
    pub slicing_arguments: Vec<String>,
    /// Fields of the returned type whose lists get the size (a
    /// connection's `edges` and `nodes`) instead of the field itself.
    pub sized_fields: Vec<String>,
    /// The spec's "exactly one slicing argument" requirement. Read, not
    /// enforced: the estimate takes the largest size given, and the
    /// subgraph validates its own arguments.
    pub require_one_slicing_argument: bool,
}

/// What a `Type.field` costs and returns.
#[derive(Debug, Clone)]
struct FieldCost {
    /// A list (under any non-null wrappers).
    list: bool,
    /// The named type inside the wrappers: the parent of the sub-selection.
    named: String,
    /// `@cost` on the field, else on its type; `None`: the default (1 for
    /// an object, interface or union, 0 for a scalar or enum).
    weight: Option<u64>,
    /// `@listSize`, declared or implied by a size argument.
    list_size: Option<ListSize>,
    /// Argument name → its input type and `@cost`, for argument costs.
    arguments: HashMap<String, InputCost>,
    /// The schema's Int default values of its arguments, for a slicing
    /// argument left out.
    slicing_defaults: HashMap<String, u64>,
}

/// What an argument or input field costs: its named type (an input object
/// costs its fields) and `@cost`.
#[derive(Debug, Clone)]
struct InputCost {
    named: String,
    weight: Option<u64>,
}

/// The schema facts the cost estimate needs, built once per supergraph
/// (when the planner is) and read by every check: per `Type.field`, its
/// shape (list or not, named type), its weight (`@cost`) and list size
/// (`@listSize`); input types' field weights; which types are objects;
/// and the root types. Introspection types are left out (see the module
/// docs).
#[derive(Debug, Clone, Default)]
pub struct CostModel {
    fields: HashMap<String, HashMap<String, FieldCost>>,
    inputs: HashMap<String, HashMap<String, InputCost>>,
    /// Object, interface and union names: a field returning one costs 1
    /// by default.
    composite: HashSet<String>,
    query: Option<String>,
    mutation: Option<String>,
    subscription: Option<String>,
}

/// The names `@cost` and `@listSize` have in one supergraph: their own,
/// unless its `@link` to the cost spec imports them under another (`as`).
struct DirectiveNames {
    cost: String,
    list_size: String,
}

impl DirectiveNames {
    fn of(supergraph: &schema::Document) -> Self {
        let mut names = Self {
            cost: "cost".to_owned(),
            list_size: "listSize".to_owned(),
        };
        let links = supergraph.definitions.iter().filter_map(|d| match d {
            schema::Definition::SchemaDefinition(s) => Some(&s.directives),
            _ => None,
        });
        for link in links.flatten().filter(|d| d.name == "link") {
            let url = argument(&link.arguments, "url");
            if !matches!(url, Some(Value::String(url)) if url.starts_with(COST_SPEC)) {
                continue;
            }
            let Some(Value::List(imports)) = argument(&link.arguments, "import") else {
                continue;
            };
            for import in imports {
                let Value::Object(renamed) = import else {
                    continue;
                };
                let (Some(Value::String(name)), Some(Value::String(alias))) =
                    (argument(renamed, "name"), argument(renamed, "as"))
                else {
                    continue;
                };
                let alias = alias.trim_start_matches('@').to_owned();
                match name.as_str() {
                    "@cost" => names.cost = alias,
                    "@listSize" => names.list_size = alias,
                    _ => {}
                }
            }
        }
        names
    }
}

fn argument<'v>(arguments: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    arguments
        .iter()
        .find(|(argument, _)| argument == name)
        .map(|(_, value)| value)
}

fn non_negative(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => Some(n.as_i64().map_or(0, |n| u64::try_from(n).unwrap_or(0))),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl DirectiveNames {
    /// `@cost(weight:)` among `directives` (a negative weight counts as 0).
    fn weight(&self, directives: &[schema::Directive]) -> Option<u64> {
        directives
            .iter()
            .find(|d| d.name == self.cost)
            .and_then(|d| argument(&d.arguments, "weight"))
            .and_then(non_negative)
    }

    /// `@listSize(...)` among `directives`.
    fn list_size(&self, directives: &[schema::Directive]) -> Option<ListSize> {
        let directive = directives.iter().find(|d| d.name == self.list_size)?;
        let args = &directive.arguments;
        Some(ListSize {
            assumed_size: argument(args, "assumedSize").and_then(non_negative),
            slicing_arguments: strings(argument(args, "slicingArguments")),
            sized_fields: strings(argument(args, "sizedFields")),
            require_one_slicing_argument: !matches!(
                argument(args, "requireOneSlicingArgument"),
                Some(Value::Boolean(false))
            ),
        })
    }
}

impl CostModel {
    /// Reads the shapes of object and interface fields (with their
    /// extensions), the input types and the root types from the API
    /// schema, and `@cost` / `@listSize` from the supergraph (the API
    /// schema does not carry them). A supergraph without them gives every
    /// field its default weight, and every list a size from a size
    /// argument or `GRAPHQL_DEFAULT_LIST_SIZE`.
    pub fn new(api: &schema::Document, supergraph: &schema::Document) -> Self {
        use schema::{Definition as D, TypeDefinition as T, TypeExtension as X};
        let names = DirectiveNames::of(supergraph);
        let mut model = Self::default();
        // Type-level `@cost` (objects, scalars, enums) from the supergraph.
        let mut type_weights: HashMap<&str, u64> = HashMap::new();
        // Field- and argument-level directives from the supergraph.
        let mut declared: HashMap<(&str, &str), &schema::Field> = HashMap::new();
        let mut declared_inputs: HashMap<(&str, &str), &schema::InputValue> = HashMap::new();
        for definition in &supergraph.definitions {
            let (name, directives, fields): (&str, &[schema::Directive], &[schema::Field]) =
                match definition {
                    D::TypeDefinition(T::Object(o)) => (&o.name, &o.directives, &o.fields),
                    D::TypeDefinition(T::Interface(i)) => (&i.name, &i.directives, &i.fields),
                    D::TypeExtension(X::Object(o)) => (&o.name, &o.directives, &o.fields),
                    D::TypeExtension(X::Interface(i)) => (&i.name, &i.directives, &i.fields),
                    D::TypeDefinition(T::Scalar(s)) => (&s.name, &s.directives, &[]),
                    D::TypeDefinition(T::Enum(e)) => (&e.name, &e.directives, &[]),
                    D::TypeDefinition(T::InputObject(input)) => {
                        for field in &input.fields {
                            declared_inputs.insert((&input.name, &field.name), field);
                        }
                        continue;
                    }
                    _ => continue,
                };
            if let Some(weight) = names.weight(directives) {
                type_weights.insert(name, weight);
            }
            for field in fields {
                declared.insert((name, &field.name), field);
            }
        }
        let input_cost = |value: &schema::InputValue, declared: Option<&schema::InputValue>| {
            let named = shape(&value.value_type).1;
            let weight = declared
                .and_then(|d| names.weight(&d.directives))
                .or_else(|| type_weights.get(named.as_str()).copied());
            InputCost { named, weight }
        };
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
                D::TypeDefinition(T::Union(union)) => {
                    model.composite.insert(union.name.clone());
                    continue;
                }
                D::TypeDefinition(T::InputObject(input)) => {
                    let fields = model.inputs.entry(input.name.clone()).or_default();
                    for field in &input.fields {
                        let declared = declared_inputs
                            .get(&(input.name.as_str(), field.name.as_str()))
                            .copied();
                        fields.insert(field.name.clone(), input_cost(field, declared));
                    }
                    continue;
                }
                _ => continue,
            };
            // Introspection (`__schema`, `__Type.fields`...) is answered from
            // the schema in memory: its size is the schema's, whatever the
            // client asks, so its lists multiply nothing.
            if type_name.starts_with("__") {
                continue;
            }
            model.composite.insert(type_name.clone());
            let costs = model.fields.entry(type_name.clone()).or_default();
            for field in fields.iter().filter(|f| !f.name.starts_with("__")) {
                let (list, named) = shape(&field.field_type);
                let declared = declared
                    .get(&(type_name.as_str(), field.name.as_str()))
                    .copied();
                let weight = declared
                    .and_then(|d| names.weight(&d.directives))
                    .or_else(|| type_weights.get(named.as_str()).copied());
                let list_size = declared.and_then(|d| names.list_size(&d.directives));
                let arguments = field
                    .arguments
                    .iter()
                    .map(|arg| {
                        let declared =
                            declared.and_then(|d| d.arguments.iter().find(|a| a.name == arg.name));
                        (arg.name.clone(), input_cost(arg, declared))
                    })
                    .collect();
                let slicing_defaults = field
                    .arguments
                    .iter()
                    .filter_map(|arg| {
                        Some((arg.name.clone(), non_negative(arg.default_value.as_ref()?)?))
                    })
                    .collect();
                costs.insert(
                    field.name.clone(),
                    FieldCost {
                        list,
                        named,
                        weight,
                        list_size,
                        arguments,
                        slicing_defaults,
                    },
                );
            }
        }
        model.imply_list_sizes();
        model
    }

    /// Backward compatibility for fields without `@listSize` (a supergraph
    /// composed without cost directives): a field with an argument named
    /// `first`, `last`, `limit`, `pageSize` or `take` is sliced by it, and,
    /// when it returns an object (a Relay connection), sizes that object's
    /// lists (`edges`, `nodes`). No `assumedSize`: without a value the
    /// default list size applies.
    fn imply_list_sizes(&mut self) {
        let list_fields: HashMap<String, Vec<String>> = self
            .fields
            .iter()
            .map(|(type_name, fields)| {
                let mut lists: Vec<String> = fields
                    .iter()
                    .filter(|(_, f)| f.list)
                    .map(|(name, _)| name.clone())
                    .collect();
                lists.sort();
                (type_name.clone(), lists)
            })
            .collect();
        for field in self.fields.values_mut().flat_map(HashMap::values_mut) {
            if field.list_size.is_some() {
                continue;
            }
            let slicing: Vec<String> = SIZE_ARGUMENTS
                .iter()
                .filter(|name| field.arguments.contains_key(**name))
                .map(|name| (*name).to_owned())
                .collect();
            if slicing.is_empty() {
                continue;
            }
            let sized_fields = if field.list {
                Vec::new()
            } else {
                list_fields.get(&field.named).cloned().unwrap_or_default()
            };
            field.list_size = Some(ListSize {
                assumed_size: None,
                slicing_arguments: slicing,
                sized_fields,
                require_one_slicing_argument: false,
            });
        }
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldCost> {
        self.fields.get(parent)?.get(name)
    }

    /// The `@listSize` of `Type.field` (declared, or implied by a size
    /// argument); for tests and the cost table.
    pub fn list_size(&self, parent: &str, name: &str) -> Option<&ListSize> {
        self.field(parent, name)?.list_size.as_ref()
    }

    /// The `@cost` weight of `Type.field` (its own, else its type's).
    pub fn weight(&self, parent: &str, name: &str) -> Option<u64> {
        self.field(parent, name)?.weight
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

/// Whether a type is a list (under any non-null wrappers), and its named
/// type.
fn shape(field_type: &schema::Type) -> (bool, String) {
    let mut current = field_type;
    let mut list = false;
    loop {
        match current {
            schema::Type::NonNullType(inner) => current = inner,
            schema::Type::ListType(inner) => {
                list = true;
                current = inner;
            }
            schema::Type::NamedType(name) => return (list, name.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    let base = if kind == RootKind::Mutation {
        MUTATION_BASE_COST
    } else {
        0
    };
    Some(Measurements {
        depth: summary.depth,
        unbounded: summary.unbounded,
        aliases: summary.aliases,
        root_fields: summary.fields,
        complexity: base.saturating_add(summary.cost(None)),
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
#[derive(Debug, Clone, Default)]
struct Summary {
    /// Deepest field nesting below (and including) this level.
    depth: u64,
    /// Aliased fields at and below this level.
    aliases: u64,
    /// Fields at this level (not `__typename`): root fields, at the root.
    fields: u64,
    /// Fields at and below this level, `__typename` included.
    all_fields: u64,
    /// Cost that does not depend on the enclosing field: fields that are
    /// not lists, and argument costs.
    fixed: u64,
    /// The lists at this level, by field name: the enclosing field's
    /// `@listSize(sizedFields:)` may size them (a connection's `edges`
    /// under `first: 5`), so their cost is kept per item until the
    /// enclosing field is known.
    lists: BTreeMap<String, ListCost>,
    /// A fragment cycle, or nesting beyond [`MAX_NESTING`], is reached.
    unbounded: bool,
}

/// The lists of one name at one level (several when aliased).
#[derive(Debug, Clone, Copy, Default)]
struct ListCost {
    /// The cost of one item of each.
    per_item: u64,
    /// Their cost with their own sizes (`@listSize`, else the default).
    own: u64,
}

/// The size an enclosing field gives the lists it names.
struct Sizing<'a> {
    size: u64,
    fields: &'a [String],
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.fields = self.fields.saturating_add(other.fields);
        self.all_fields = self.all_fields.saturating_add(other.all_fields);
        self.fixed = self.fixed.saturating_add(other.fixed);
        for (name, list) in &other.lists {
            self.add_list(name, *list);
        }
        self.unbounded |= other.unbounded;
    }

    fn add_list(&mut self, name: &str, list: ListCost) {
        let entry = self.lists.entry(name.to_owned()).or_default();
        entry.per_item = entry.per_item.saturating_add(list.per_item);
        entry.own = entry.own.saturating_add(list.own);
    }

    /// The cost of this level, its lists sized by `sizing` where it names
    /// them, else by their own sizes.
    fn cost(&self, sizing: Option<&Sizing>) -> u64 {
        self.lists
            .iter()
            .fold(self.fixed, |total, (name, list)| match sizing {
                Some(sizing) if sizing.fields.iter().any(|f| f == name) => {
                    total.saturating_add(sizing.size.saturating_mul(list.per_item))
                }
                _ => total.saturating_add(list.own),
            })
    }
}

/// The size a field's `@listSize` gives: the largest slicing argument
/// value, else `assumedSize`; `None` when neither says.
///
/// Variables are not evaluated: the check runs once per document, before
/// variables are known, and its verdict is cached with the plan. A slicing
/// argument given by a variable therefore counts as the field's
/// `assumedSize` (which the shop's schema sets to the largest value the
/// subgraph accepts, so the estimate stays an upper bound), or, without
/// one, as `GRAPHQL_DEFAULT_LIST_SIZE`. A slicing argument left out takes
/// its schema default, if any.
fn list_size_of(
    list_size: &ListSize,
    field: &FieldCost,
    arguments: &[(String, Value)],
    default_list_size: u64,
) -> Option<u64> {
    let mut size: Option<u64> = None;
    for name in &list_size.slicing_arguments {
        let given = match argument(arguments, name) {
            Some(value @ Value::Int(_)) => non_negative(value),
            Some(Value::Variable(_)) => Some(list_size.assumed_size.unwrap_or(default_list_size)),
            Some(_) => None,
            None => field.slicing_defaults.get(name).copied(),
        };
        if let Some(given) = given {
            size = Some(size.map_or(given, |size| size.max(given)));
        }
    }
    size.or(list_size.assumed_size)
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
                    let known = parent.and_then(|parent| self.model.field(parent, &field.name));
                    let sub = self.summarise(
                        &field.selection_set,
                        known.map(|k| k.named.as_str()),
                        nesting + 1,
                    );
                    summary.fields = summary.fields.saturating_add(1);
                    summary.depth = summary.depth.max(sub.depth.saturating_add(1));
                    summary.aliases = summary.aliases.saturating_add(sub.aliases);
                    summary.all_fields = summary.all_fields.saturating_add(sub.all_fields);
                    summary.unbounded |= sub.unbounded;
                    let Some(known) = known else {
                        // Unknown (a typo validation reports later, or
                        // introspection): 1 if it selects anything, like
                        // an object; multiplies nothing.
                        let weight = u64::from(!field.selection_set.items.is_empty());
                        summary.fixed = summary
                            .fixed
                            .saturating_add(weight)
                            .saturating_add(sub.cost(None));
                        continue;
                    };
                    self.add_field(&mut summary, field, known, &sub);
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

    /// Adds a known field's cost: its weight plus its selection's cost, per
    /// item when it is a list, and its arguments' cost.
    fn add_field(&self, summary: &mut Summary, field: &Field, known: &FieldCost, sub: &Summary) {
        let default_weight = u64::from(self.model.composite.contains(&known.named));
        let weight = known.weight.unwrap_or(default_weight);
        let size = known
            .list_size
            .as_ref()
            .and_then(|ls| list_size_of(ls, known, &field.arguments, self.default_list_size));
        let sizing = match (&known.list_size, size) {
            (Some(list_size), Some(size)) if !list_size.sized_fields.is_empty() => Some(Sizing {
                size,
                fields: &list_size.sized_fields,
            }),
            _ => None,
        };
        let per_item = weight.saturating_add(sub.cost(sizing.as_ref()));
        let arguments = self.arguments_cost(known, &field.arguments);
        summary.fixed = summary.fixed.saturating_add(arguments);
        if known.list {
            let own = size.unwrap_or(self.default_list_size);
            summary.add_list(
                &field.name,
                ListCost {
                    per_item,
                    own: own.saturating_mul(per_item),
                },
            );
        } else {
            summary.fixed = summary.fixed.saturating_add(per_item);
        }
    }

    /// What a field's literal arguments cost: `@cost` of each argument (or
    /// input field) given, and 1 per input object, as Apollo counts them.
    /// A variable costs 0: its value is not known when the check runs.
    fn arguments_cost(&self, known: &FieldCost, arguments: &[(String, Value)]) -> u64 {
        arguments.iter().fold(0, |total, (name, value)| {
            let cost = known
                .arguments
                .get(name)
                .map_or(0, |input| self.value_cost(value, input, 0));
            total.saturating_add(cost)
        })
    }

    fn value_cost(&self, value: &Value, input: &InputCost, nesting: usize) -> u64 {
        if nesting > MAX_NESTING {
            return 0;
        }
        match value {
            Value::Object(fields) => {
                let Some(definitions) = self.model.inputs.get(&input.named) else {
                    return input.weight.unwrap_or(0);
                };
                fields
                    .iter()
                    .fold(input.weight.unwrap_or(1), |total, (name, value)| {
                        let cost = definitions
                            .get(name)
                            .map_or(0, |field| self.value_cost(value, field, nesting + 1));
                        total.saturating_add(cost)
                    })
            }
            Value::List(items) => items.iter().fold(input.weight.unwrap_or(0), |total, item| {
                total.saturating_add(self.value_cost(item, input, nesting + 1))
            }),
            Value::Variable(_) | Value::Null => 0,
            _ => input.weight.unwrap_or(0),
        }
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

    use hive_router_query_planner::utils::parsing::{safe_parse_operation, safe_parse_schema};

    use super::*;
    use crate::planner::{PlanError, PlannerSettings, QueryPlanner, operation_names};

    const SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");

    fn planner(settings: PlannerSettings) -> QueryPlanner {
        QueryPlanner::from_supergraph(SUPERGRAPH, settings).expect("the committed supergraph loads")
    }

    fn model() -> CostModel {
        planner(PlannerSettings::default()).cost_model().clone()
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
    fn the_shop_costs_match_hand_computed_values() {
        let cases: [(&str, u64); 11] = [
            // products 1 + 3 edges × (edge 1 + node 1); totalCount, id 0.
            (
                "{ products(first: 3) { totalCount edges { node { id } } } }",
                7,
            ),
            // No size: assumedSize, the largest page (100).
            ("{ products { edges { node { id } } } }", 1 + 100 * 2),
            // A variable size is not known when the check runs: the same.
            (
                "query($n: Int) { products(first: $n) { edges { node { id } } } }",
                1 + 100 * 2,
            ),
            // Basket lines assume 20: myBasket 1 + 20 × line 1.
            ("{ myBasket { items { quantity } } }", 1 + 20),
            // A connection's size reaches its lists through a fragment, too.
            (
                "{ products(first: 3) { ...Page } } fragment Page on ProductConnection { edges { node { id } } }",
                7,
            ),
            // __typename is free.
            ("{ __typename myBasket { __typename } }", 1),
            // An unknown field costs 1 when it selects something, and
            // multiplies nothing.
            ("{ noSuchField { a { b } } }", 2),
            // Nested lists multiply: me 1 + notifications 1 + 2 edges ×
            // (edge 1 + node 1 + payment 1 + 20 lines × 1).
            (
                "{ me { notifications(first: 2) { edges { node { payment { items { quantity } } } } } } }",
                2 + 2 * (3 + 20),
            ),
            // Money is an object: products 1 + 3 × (edge, node, price).
            (
                "{ products(first: 3) { edges { node { price { amount } } } } }",
                1 + 3 * 3,
            ),
            // A mutation adds 10; its variables cost nothing.
            ("mutation { clearBasket { itemCount } }", 10 + 1),
            // byStatus has one entry per NotificationStatus value.
            (
                "{ notificationStats { byStatus { count } } }",
                1 + notification_statuses(),
            ),
        ];
        for (operation, expected) in cases {
            assert_eq!(measured(operation).complexity, expected, "{operation}");
        }
    }

    /// The number of `NotificationStatus` values in the committed API
    /// schema.
    fn notification_statuses() -> u64 {
        let api = include_str!("../../../schema/api.graphql");
        let (_, rest) = api
            .split_once("enum NotificationStatus {")
            .expect("defined");
        let (body, _) = rest.split_once('}').expect("closed");
        body.lines()
            .map(str::trim)
            .filter(|line| {
                !line.is_empty() && line.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .count() as u64
    }

    /// The order history an account page shows, a full page of it: four
    /// levels of objects (the user, a page of payments, their lines, each
    /// line's product) whose answer, for a customer with a few orders, is a
    /// few dozen objects. Every field counted 1 and every line list 10
    /// long, it was estimated at 11,706 and refused by the default limit;
    /// counting objects and the lists' declared sizes, 8,403.
    const ORDER_HISTORY: &str = "{ me { payments(first: 100) { edges { cursor node {
        id status method createdAt processedAt description cardLast4 failureReason
        amount { amount currency } refundedAmount { amount currency }
        items { productName quantity unitPrice { amount currency } subtotal { amount currency }
        product { name } } } } pageInfo { hasNextPage endCursor } } } }";

    #[test]
    fn a_deep_everyday_query_passes_and_the_bombs_do_not() {
        let m = measured(ORDER_HISTORY);
        // me 1 + payments 1 + pageInfo 1 + 100 edges × (edge 1 + node 1 +
        // amount 1 + refundedAmount 1 + 20 lines × (line 1 + unitPrice 1 +
        // subtotal 1 + product 1)).
        assert_eq!(m.complexity, 3 + 100 * (4 + 20 * 4));
        assert!(checked(ORDER_HISTORY, &OperationLimits::default()).is_ok());
        let err = refused(COMPLEXITY_BOMB);
        assert_eq!(err.code(), ErrorCode::MaxComplexityLimit);
        // me 1 + payments (1 + 100 × (edge 1 + node 1 + 20 × (line 1 +
        // product 1 + price 1))) + notifications (1 + 100 × (edge 1 +
        // node 1 + payment 1 + 20 × 3)).
        assert_eq!(
            err.measured,
            Measured::Exactly(1 + (1 + 100 * (2 + 20 * 3)) + (1 + 100 * (3 + 20 * 3)))
        );
    }

    /// Every list in the shop's schema states its size: a new list field
    /// without `@listSize` (`subgraph_kit::cost`) would be estimated at
    /// `GRAPHQL_DEFAULT_LIST_SIZE`, whatever it really holds.
    #[test]
    fn every_list_in_the_supergraph_has_a_size() {
        let model = model();
        let mut sized_by_parent = HashSet::new();
        for field in model.fields.values().flat_map(HashMap::values) {
            for sized in field.list_size.iter().flat_map(|ls| &ls.sized_fields) {
                sized_by_parent.insert((field.named.clone(), sized.clone()));
            }
        }
        let mut without_size = Vec::new();
        for (parent, fields) in &model.fields {
            for (name, field) in fields {
                let sized = field.list_size.as_ref().is_some_and(|ls| {
                    ls.assumed_size.is_some() || !ls.slicing_arguments.is_empty()
                }) || sized_by_parent.contains(&(parent.clone(), name.clone()));
                if field.list && !sized {
                    without_size.push(format!("{parent}.{name}"));
                }
            }
        }
        without_size.sort();
        assert!(
            without_size.is_empty(),
            "lists without @listSize: {without_size:?}"
        );
        // The connections' declared sizes are the subgraphs' page limit.
        for (parent, field) in [
            ("Query", "products"),
            ("Query", "myPayments"),
            ("Query", "payments"),
            ("User", "payments"),
            ("Query", "myNotifications"),
            ("User", "notifications"),
        ] {
            assert_eq!(
                model.list_size(parent, field),
                Some(&ListSize {
                    assumed_size: Some(100),
                    slicing_arguments: vec!["first".into()],
                    sized_fields: vec!["edges".into(), "nodes".into()],
                    require_one_slicing_argument: false,
                }),
                "{parent}.{field}"
            );
        }
    }

    /// Prints every registered operation's estimated cost against the
    /// default limit (`cargo test -p shopgraph-router --lib
    /// registered_operations_cost_table -- --nocapture`; `shopgraph plan`
    /// and so `schema/check.sh` print it too), and holds each to a quarter
    /// of it.
    #[test]
    fn registered_operations_cost_table() {
        let model = model();
        let max = DEFAULT_MAX_COMPLEXITY;
        println!("| operation | estimated cost | share of GRAPHQL_MAX_COMPLEXITY ({max}) |");
        println!("|---|---:|---:|");
        let mut highest = 0;
        for (label, document, name) in everyday_operations() {
            let parsed = safe_parse_operation(&document).expect("parses");
            let cost = measure(&parsed, name.as_deref(), &model, DEFAULT_LIST_SIZE)
                .expect(&label)
                .complexity;
            let file = label.rsplit('/').next().unwrap_or(&label);
            let label = match &name {
                Some(name) => format!("{}#{name}", file.split(' ').next().unwrap_or(file)),
                None => file.to_owned(),
            };
            println!(
                "| {label} | {cost} | {:.1} % |",
                cost as f64 * 100.0 / max as f64
            );
            assert!(cost <= max / 4, "{label}: {cost}");
            highest = highest.max(cost);
        }
        // The shop's heaviest registered operation, as the docs state.
        assert_eq!(highest, 402);
    }

    /// A small schema using every cost directive feature, `@listSize`
    /// imported under another name.
    const COST_SCHEMA: &str = r#"
        schema @link(url: "https://specs.apollo.dev/cost/v0.1", import: ["@cost", {name: "@listSize", as: "@size"}]) {
            query: Query
            mutation: Mutation
        }
        type Query {
            books(first: Int, last: Int): BookConnection!
                @size(assumedSize: 50, slicingArguments: ["first", "last"], sizedFields: ["edges"], requireOneSlicingArgument: false)
            shelves: [Shelf!]! @size(assumedSize: 3)
            search(query: String! @cost(weight: 4)): [Book!]! @cost(weight: 20) @size(assumedSize: 5)
            legacy(limit: Int = 7): [Book!]!
            old(first: Int): BookConnection!
            tags: [String!]!
            rating: Score
        }
        type Mutation { addBooks(books: [BookInput!]!): [Book!]! @size(assumedSize: 10) }
        input BookInput { title: String! isbn: String @cost(weight: 2) }
        type BookConnection { edges: [BookEdge!]! nodes: [Book!]! total: Int! }
        type BookEdge { node: Book! cursor: String! }
        type Book { title: String! author: Author! reviews: [Review!]! }
        type Author @cost(weight: 5) { name: String! }
        type Review { stars: Int! }
        type Shelf { books: [Book!]! @size(assumedSize: 8) }
        scalar Score @cost(weight: 3)
    "#;

    fn cost_schema() -> CostModel {
        let schema = safe_parse_schema(COST_SCHEMA).expect("parses");
        CostModel::new(&schema, &schema)
    }

    fn cost(model: &CostModel, operation: &str) -> u64 {
        let document = safe_parse_operation(operation).expect("parses");
        measure(&document, None, model, DEFAULT_LIST_SIZE)
            .expect("one operation")
            .complexity
    }

    #[test]
    fn cost_directives_are_read_from_the_supergraph() {
        let model = cost_schema();
        assert_eq!(
            model.list_size("Query", "books"),
            Some(&ListSize {
                assumed_size: Some(50),
                slicing_arguments: vec!["first".into(), "last".into()],
                sized_fields: vec!["edges".into()],
                require_one_slicing_argument: false,
            })
        );
        // requireOneSlicingArgument defaults to true, as in the spec.
        assert_eq!(
            model.list_size("Query", "shelves"),
            Some(&ListSize {
                assumed_size: Some(3),
                require_one_slicing_argument: true,
                ..ListSize::default()
            })
        );
        // A field's own @cost; else its type's; else none (the default).
        assert_eq!(model.weight("Query", "search"), Some(20));
        assert_eq!(model.weight("Book", "author"), Some(5));
        assert_eq!(model.weight("Query", "rating"), Some(3));
        assert_eq!(model.weight("Book", "title"), None);
        // Without @listSize, a size argument implies one (the old rule):
        // a connection sizes its lists.
        assert_eq!(
            model.list_size("Query", "old"),
            Some(&ListSize {
                assumed_size: None,
                slicing_arguments: vec!["first".into()],
                sized_fields: vec!["edges".into(), "nodes".into()],
                require_one_slicing_argument: false,
            })
        );
        assert_eq!(model.list_size("Book", "reviews"), None);
        // The directives under a name the link does not give them are not
        // the cost directives.
        let renamed = COST_SCHEMA.replace("@size(", "@listSize(");
        let schema = safe_parse_schema(&renamed).expect("parses");
        let model = CostModel::new(&schema, &schema);
        assert_eq!(model.list_size("Query", "shelves"), None);
    }

    #[test]
    fn estimated_costs_match_hand_computed_values() {
        let model = cost_schema();
        let cases: [(&str, u64); 17] = [
            // books 1 + 4 edges × (edge 1 + node 1 + author 5); scalars 0.
            (
                "{ books(first: 4) { edges { node { title author { name } } } total } }",
                29,
            ),
            // `nodes` is not a sized field: its own size, the default 10.
            ("{ books(first: 4) { nodes { title } } }", 1 + 10),
            // The largest slicing argument.
            ("{ books(first: 4, last: 9) { edges { cursor } } }", 1 + 9),
            // A variable counts as assumedSize; so does no argument.
            (
                "query($n: Int) { books(first: $n) { edges { cursor } } }",
                1 + 50,
            ),
            ("{ books { edges { cursor } } }", 1 + 50),
            // Nested plain lists: 3 shelves × (1 + 8 books × 1).
            ("{ shelves { books { title } } }", 3 * (1 + 8)),
            // Field @cost 20 per item × 5, plus the argument's @cost 4...
            ("{ search(query: \"x\") { title } }", 5 * 20 + 4),
            // ...which a variable does not pay.
            ("query($q: String!) { search(query: $q) { title } }", 5 * 20),
            // An implied slicing argument, its schema default or its value.
            ("{ legacy { title } }", 7),
            ("{ legacy(limit: 2) { title } }", 2),
            // An implied connection sizes both its lists.
            (
                "{ old(first: 3) { edges { node { title } } nodes { title } } }",
                1 + 3 * 2 + 3,
            ),
            // Without assumedSize a variable is the default list size.
            (
                "query($n: Int) { old(first: $n) { nodes { title } } }",
                1 + 10,
            ),
            // Scalars cost 0 even in lists; a scalar type's @cost counts.
            ("{ tags rating __typename }", 3),
            // Mutation 10 + 10 books × 1 + input objects 1 each + isbn's 2.
            (
                "mutation { addBooks(books: [{title: \"a\", isbn: \"b\"}, {title: \"c\"}]) { title } }",
                10 + 10 + (1 + 2) + 1,
            ),
            // A fragment sized by where it is spread.
            (
                "{ books(first: 2) { ...E } } fragment E on BookConnection { edges { node { title } } }",
                1 + 2 * 2,
            ),
            // Aliased lists are each sized.
            (
                "{ books(first: 2) { a: edges { cursor } b: edges { cursor } } }",
                1 + 2 * 2,
            ),
            // Unknown fields: 1 with a selection, 0 without; no multiplying.
            ("{ nope { a b { c } } }", 2),
        ];
        for (operation, expected) in cases {
            assert_eq!(cost(&model, operation), expected, "{operation}");
        }
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
        // The issue's documents: 9,000 fields (under the token limit, over
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
