//! Schema introspection (`__schema`, `__type`) of the public API.
//!
//! The query planner only plans fields the subgraphs resolve, so the router
//! answers introspection itself, in two steps:
//!
//! * [`strip_introspection`] removes the root `__schema` / `__type` fields
//!   from an operation before it is normalized and planned;
//! * [`IntrospectionSchema::resolve`] answers them, per request, from the API
//!   schema, honouring aliases, fragments, `@skip`/`@include` and variables.
//!
//! The API schema is hive's "consumer schema" (`@inaccessible` pruned,
//! `join__*`/`link__*` stripped). It is close to, but not exactly, what a
//! client should see: it appends hive's copy of the introspection types, adds
//! `__schema`/`__type` to `Query`, repeats `@skip`/`@include`, declares
//! `@oneOf` on the wrong locations and defines all five built-in scalars
//! whether used or not. [`IntrospectionSchema::new`] cleans that up once, so
//! the answer matches what graphql-js gives for the same API.
//!
//! Resolution is a small interpreter: a `Node` is one introspection object
//! (`__Schema`, `__Type`, `__Field`...), `field` resolves one of its fields and
//! `complete` walks a selection set over it, recursively.

use std::collections::{HashMap, HashSet};

use graphql_tools::parser::Pos;
use graphql_tools::static_graphql::query::{self, OperationDefinition, Selection};
use graphql_tools::static_graphql::schema::{self, TypeDefinition};
use serde_json::{Map, Value as Json};

/// What `@deprecated` says when it gives no reason.
const DEFAULT_DEPRECATION_REASON: &str = "No longer supported";

/// The directives every schema has, worded as graphql-js words them.
const SPECIFIED_DIRECTIVES: &str = r#"
"Directs the executor to include this field or fragment only when the `if` argument is true."
directive @include("Included when true." if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
"Directs the executor to skip this field or fragment when the `if` argument is true."
directive @skip("Skipped when true." if: Boolean!) on FIELD | FRAGMENT_SPREAD | INLINE_FRAGMENT
"Marks an element of a GraphQL schema as no longer supported."
directive @deprecated(
  "Explains why this element was deprecated, usually also including a suggestion for how to access supported similar data. Formatted using the Markdown syntax, as specified by [CommonMark](https://commonmark.org/)."
  reason: String = "No longer supported"
) on FIELD_DEFINITION | ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION | ENUM_VALUE
"Exposes a URL that specifies the behavior of this scalar."
directive @specifiedBy("The URL that specifies the behavior of this scalar." url: String!) on SCALAR
"Indicates exactly one field must be supplied and this field must not be `null`."
directive @oneOf on INPUT_OBJECT
"#;

const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

/// Directives of Federation and the specs it links, never part of the API
/// (besides any `namespace__name` one).
const FEDERATION_DIRECTIVES: &[&str] = &[
    "link",
    "core",
    "tag",
    "inaccessible",
    "key",
    "external",
    "shareable",
    "provides",
    "requires",
    "override",
    "extends",
    "interfaceObject",
    "composeDirective",
    "authenticated",
    "requiresScopes",
    "policy",
    "cost",
    "listSize",
    "context",
    "fromContext",
];

/// The introspection lists graphql-js's `MaxIntrospectionDepthRule` counts.
const LIST_FIELDS: [&str; 4] = ["fields", "interfaces", "possibleTypes", "inputFields"];

/// How deep those lists may nest (graphql-js's limit).
const MAX_LIST_DEPTH: usize = 3;

/// Why an operation's introspection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    /// `fields`, `interfaces`, `possibleTypes` and `inputFields` nest three
    /// deep or more: the answer would grow exponentially with the depth.
    #[error("Maximum introspection depth exceeded")]
    TooDeep,
}

/// The API schema, indexed for answering introspection.
pub struct IntrospectionSchema {
    /// Every type a client may see, in schema order (built-in scalars and
    /// introspection types last), federation internals removed.
    types: Vec<TypeDefinition>,
    index: HashMap<String, usize>,
    directives: Vec<schema::DirectiveDefinition>,
    query_type: String,
    mutation_type: Option<String>,
    subscription_type: Option<String>,
}

impl IntrospectionSchema {
    /// Built once per loaded supergraph, from the planner's consumer schema.
    ///
    /// Keeps the first definition of each type; drops federation types
    /// (`_Any`, `_Entity`, `_Service`, `namespace__Name`) and every field,
    /// argument or member that refers to a dropped or undefined type, the
    /// `__schema`/`__type` meta-fields hive adds to `Query`, and built-in
    /// scalars nothing refers to. Directives are the specified ones (graphql-js
    /// wording) followed by any custom, non-federation ones.
    pub fn new(api_schema: &schema::Document) -> Self {
        let mut names = HashSet::new();
        let mut types: Vec<TypeDefinition> = api_schema
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                schema::Definition::TypeDefinition(t)
                    if !is_federation_type(t.name()) && names.insert(t.name().to_owned()) =>
                {
                    Some(t.clone())
                }
                _ => None,
            })
            .collect();
        for t in &mut types {
            prune_type(t, &names);
        }

        let defined: Vec<&schema::DirectiveDefinition> = api_schema
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                schema::Definition::DirectiveDefinition(d) => Some(d),
                _ => None,
            })
            .collect();
        let mut directives: Vec<schema::DirectiveDefinition> =
            graphql_tools::parser::parse_schema::<String>(SPECIFIED_DIRECTIVES)
                .map(|document| document.definitions)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|definition| match definition {
                    schema::Definition::DirectiveDefinition(d)
                        if d.name != "oneOf" || defined.iter().any(|e| e.name == "oneOf") =>
                    {
                        Some(d)
                    }
                    _ => None,
                })
                .collect();
        for custom in defined {
            let name = custom.name.as_str();
            let federation = name.contains("__") || FEDERATION_DIRECTIVES.contains(&name);
            if !federation && !directives.iter().any(|d| d.name == name) {
                let mut custom = custom.clone();
                custom
                    .arguments
                    .retain(|a| names.contains(a.value_type.inner_type()));
                directives.push(custom);
            }
        }

        // Built-in scalars are listed only when something refers to them.
        let mut used = HashSet::new();
        let mut inputs: Vec<&schema::InputValue> = Vec::new();
        for t in &types {
            for field in fields_of(t) {
                used.insert(field.field_type.inner_type().to_owned());
                inputs.extend(&field.arguments);
            }
            if let TypeDefinition::InputObject(i) = t {
                inputs.extend(&i.fields);
            }
        }
        inputs.extend(directives.iter().flat_map(|d| &d.arguments));
        used.extend(inputs.iter().map(|i| i.value_type.inner_type().to_owned()));
        types.retain(|t| !BUILT_IN_SCALARS.contains(&t.name()) || used.contains(t.name()));

        Self {
            index: types
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name().to_owned(), i))
                .collect(),
            types,
            directives,
            query_type: api_schema
                .query_type_name()
                .cloned()
                .unwrap_or_else(|| "Query".to_owned()),
            mutation_type: api_schema.mutation_type_name().cloned(),
            subscription_type: api_schema.subscription_type_name().cloned(),
        }
    }

    /// Resolves the root-level `__schema` and `__type(name:)` selections of the
    /// selected query (including those inside root-level inline fragments and
    /// fragment spreads, honouring aliases, `@skip`/`@include` with literal or
    /// variable conditions, and variables in arguments) and returns response
    /// key -> value, in selection order. `__typename` is left to the executor.
    ///
    /// The document is assumed valid. A field nested deeper than
    /// [`check_introspection_depth`] allows resolves to `null`; so does
    /// `__type` of an unknown type. Mutations and subscriptions get nothing.
    pub fn resolve(
        &self,
        document: &query::Document,
        operation_name: Option<&str>,
        variables: &Map<String, Json>,
    ) -> Map<String, Json> {
        let mut out = Map::new();
        let Some((_, operation)) = selected_query(document, operation_name) else {
            return out;
        };
        let request = Request::new(document, operation, variables);
        let mut groups = Groups::default();
        let root = operation.selection_set();
        self.collect(
            &request,
            &self.query_type,
            root,
            &mut HashSet::new(),
            &mut groups,
        );
        for (key, fields) in groups.list {
            let Some(first) = fields.first() else {
                continue;
            };
            let node = match first.name.as_str() {
                "__schema" => Some(Node::Schema),
                "__type" => (request.arguments(first).get("name"))
                    .and_then(Json::as_str)
                    .and_then(|name| self.lookup(name))
                    .map(Node::Type),
                _ => continue,
            };
            let value = match node {
                Some(node) if !fields.iter().any(|f| request.too_deep(f)) => {
                    self.complete(&request, node, &fields)
                }
                _ => Json::Null,
            };
            out.insert(key.to_owned(), value);
        }
        out
    }

    fn lookup(&self, name: &str) -> Option<&TypeDefinition> {
        self.index.get(name).and_then(|&i| self.types.get(i))
    }

    /// The `__Type` of a field's (or argument's) type, wrappers included.
    fn type_ref<'s>(&'s self, t: &'s schema::Type) -> Option<Node<'s>> {
        match t {
            schema::Type::NamedType(name) => self.lookup(name).map(Node::Type),
            _ => Some(Node::Wrapper(t)),
        }
    }

    fn named<'s>(&'s self, names: &'s [String]) -> Resolved<'s> {
        let types = names.iter().filter_map(|name| self.lookup(name));
        Resolved::List(types.map(Node::Type).collect())
    }

    fn root_type(&self, name: Option<&str>) -> Resolved<'_> {
        Resolved::Object(name.and_then(|name| self.lookup(name)).map(Node::Type))
    }

    /// Whether a fragment on `condition` applies to `object` (spec's
    /// `DoesFragmentTypeApply`).
    fn applies(&self, condition: Option<&query::TypeCondition>, object: &str) -> bool {
        let Some(query::TypeCondition::On(name)) = condition else {
            return true;
        };
        name == object
            || match self.lookup(name) {
                Some(TypeDefinition::Union(u)) => u.types.iter().any(|t| t == object),
                Some(TypeDefinition::Interface(_)) => matches!(
                    self.lookup(object),
                    Some(TypeDefinition::Object(o)) if o.implements_interfaces.contains(name)
                ),
                _ => false,
            }
    }

    /// Groups the fields `set` selects on `object` by response key (spec's
    /// `CollectFields`).
    fn collect<'q>(
        &self,
        request: &Request<'q>,
        object: &str,
        set: &'q query::SelectionSet,
        visited: &mut HashSet<&'q str>,
        groups: &mut Groups<'q>,
    ) {
        for selection in &set.items {
            match selection {
                Selection::Field(field) if request.included(&field.directives) => {
                    groups.push(field.alias.as_deref().unwrap_or(&field.name), field);
                }
                Selection::InlineFragment(inline)
                    if request.included(&inline.directives)
                        && self.applies(inline.type_condition.as_ref(), object) =>
                {
                    self.collect(request, object, &inline.selection_set, visited, groups);
                }
                Selection::FragmentSpread(spread)
                    if request.included(&spread.directives)
                        && visited.insert(&spread.fragment_name) =>
                {
                    if let Some(fragment) = request.fragments.get(spread.fragment_name.as_str())
                        && self.applies(Some(&fragment.type_condition), object)
                    {
                        self.collect(request, object, &fragment.selection_set, visited, groups);
                    }
                }
                _ => {}
            }
        }
    }

    /// The JSON object for `node`, selected by the merged sub-selections of
    /// `fields` (all the query's fields with the same response key).
    fn complete<'q>(
        &self,
        request: &Request<'q>,
        node: Node<'_>,
        fields: &[&'q query::Field],
    ) -> Json {
        let mut groups = Groups::default();
        for field in fields {
            let set = &field.selection_set;
            self.collect(
                request,
                node.type_name(),
                set,
                &mut HashSet::new(),
                &mut groups,
            );
        }
        let mut object = Map::new();
        for (key, group) in groups.list {
            let Some(first) = group.first() else {
                continue;
            };
            let value = if first.name == "__typename" {
                Json::from(node.type_name())
            } else {
                match self.field(node, &first.name, &request.arguments(first)) {
                    Resolved::Leaf(value) => value,
                    Resolved::Object(Some(child)) => self.complete(request, child, &group),
                    Resolved::Object(None) => Json::Null,
                    Resolved::List(children) => children
                        .into_iter()
                        .map(|child| self.complete(request, child, &group))
                        .collect(),
                }
            };
            object.insert(key.to_owned(), value);
        }
        Json::Object(object)
    }

    /// One field of an introspection object.
    fn field<'s>(
        &'s self,
        node: Node<'s>,
        name: &str,
        arguments: &Map<String, Json>,
    ) -> Resolved<'s> {
        let deprecated = arguments
            .get("includeDeprecated")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        match node {
            Node::Schema => match name {
                "types" => Resolved::List(self.types.iter().map(Node::Type).collect()),
                "queryType" => self.root_type(Some(&self.query_type)),
                "mutationType" => self.root_type(self.mutation_type.as_deref()),
                "subscriptionType" => self.root_type(self.subscription_type.as_deref()),
                "directives" => {
                    Resolved::List(self.directives.iter().map(Node::Directive).collect())
                }
                _ => Resolved::Leaf(Json::Null),
            },
            Node::Type(t) => self.type_field(t, name, deprecated),
            Node::Wrapper(t) => match (name, t) {
                ("kind", schema::Type::ListType(_)) => text("LIST"),
                ("kind", _) => text("NON_NULL"),
                ("ofType", schema::Type::ListType(inner) | schema::Type::NonNullType(inner)) => {
                    Resolved::Object(self.type_ref(inner))
                }
                _ => Resolved::Leaf(Json::Null),
            },
            Node::Field(f) => match name {
                "name" => text(&f.name),
                "description" => optional(f.description.as_deref()),
                "args" => input_values(&f.arguments, deprecated),
                "type" => Resolved::Object(self.type_ref(&f.field_type)),
                _ => deprecation_field(name, &f.directives),
            },
            Node::InputValue(v) => match name {
                "name" => text(&v.name),
                "description" => optional(v.description.as_deref()),
                "type" => Resolved::Object(self.type_ref(&v.value_type)),
                "defaultValue" => optional(v.default_value.as_ref().map(literal).as_deref()),
                _ => deprecation_field(name, &v.directives),
            },
            Node::EnumValue(v) => match name {
                "name" => text(&v.name),
                "description" => optional(v.description.as_deref()),
                _ => deprecation_field(name, &v.directives),
            },
            Node::Directive(d) => match name {
                "name" => text(&d.name),
                "description" => optional(d.description.as_deref()),
                "locations" => Resolved::Leaf(d.locations.iter().map(|l| l.as_str()).collect()),
                "args" => input_values(&d.arguments, deprecated),
                "isRepeatable" => Resolved::Leaf(Json::Bool(d.repeatable)),
                _ => Resolved::Leaf(Json::Null),
            },
        }
    }

    /// One field of a named `__Type`.
    fn type_field<'s>(
        &'s self,
        t: &'s TypeDefinition,
        name: &str,
        deprecated: bool,
    ) -> Resolved<'s> {
        use TypeDefinition as T;
        match (name, t) {
            ("kind", _) => text(match t {
                T::Scalar(_) => "SCALAR",
                T::Object(_) => "OBJECT",
                T::Interface(_) => "INTERFACE",
                T::Union(_) => "UNION",
                T::Enum(_) => "ENUM",
                T::InputObject(_) => "INPUT_OBJECT",
            }),
            ("name", _) => text(t.name()),
            ("description", _) => optional(match t {
                T::Scalar(s) => s.description.as_deref(),
                T::Object(o) => o.description.as_deref(),
                T::Interface(i) => i.description.as_deref(),
                T::Union(u) => u.description.as_deref(),
                T::Enum(e) => e.description.as_deref(),
                T::InputObject(i) => i.description.as_deref(),
            }),
            ("specifiedByURL" | "specifiedByUrl", T::Scalar(s)) => {
                match argument(&s.directives, "specifiedBy", "url") {
                    Some(query::Value::String(url)) => text(url),
                    _ => Resolved::Leaf(Json::Null),
                }
            }
            ("fields", T::Object(_) | T::Interface(_)) => {
                listed(fields_of(t), deprecated, |f| &f.directives, Node::Field)
            }
            ("interfaces", T::Object(o)) => self.named(&o.implements_interfaces),
            ("interfaces", T::Interface(i)) => self.named(&i.implements_interfaces),
            ("possibleTypes", T::Union(u)) => self.named(&u.types),
            ("possibleTypes", T::Interface(i)) => Resolved::List(
                self.types
                    .iter()
                    .filter(
                        |o| matches!(o, T::Object(o) if o.implements_interfaces.contains(&i.name)),
                    )
                    .map(Node::Type)
                    .collect(),
            ),
            ("enumValues", T::Enum(e)) => {
                listed(&e.values, deprecated, |v| &v.directives, Node::EnumValue)
            }
            ("inputFields", T::InputObject(i)) => input_values(&i.fields, deprecated),
            ("isOneOf", T::InputObject(i)) => {
                Resolved::Leaf(Json::Bool(i.directives.iter().any(|d| d.name == "oneOf")))
            }
            _ => Resolved::Leaf(Json::Null),
        }
    }
}

/// Refuses introspection nested so deep that its answer could explode
/// (`types { fields { type { fields { type { fields ...`), as graphql-js's
/// `MaxIntrospectionDepthRule` does: call it with the other validation rules,
/// to report a proper error. [`IntrospectionSchema::resolve`] answers such a
/// field with `null` regardless.
pub fn check_introspection_depth(document: &query::Document) -> Result<(), IntrospectionError> {
    fn walk<'q>(set: &'q query::SelectionSet, request: &Request<'q>) -> bool {
        set.items.iter().any(|selection| match selection {
            Selection::Field(f) if f.name == "__schema" || f.name == "__type" => {
                request.too_deep(f)
            }
            Selection::Field(query::Field { selection_set, .. })
            | Selection::InlineFragment(query::InlineFragment { selection_set, .. }) => {
                walk(selection_set, request)
            }
            Selection::FragmentSpread(_) => false,
        })
    }
    let request = Request {
        fragments: fragments(document),
        variables: Map::new(),
    };
    let too_deep = document
        .definitions
        .iter()
        .any(|definition| match definition {
            query::Definition::Operation(operation) => walk(operation.selection_set(), &request),
            query::Definition::Fragment(fragment) => walk(&fragment.selection_set, &request),
        });
    if too_deep {
        Err(IntrospectionError::TooDeep)
    } else {
        Ok(())
    }
}

/// Removes root-level `__schema` / `__type` fields (also inside root inline
/// fragments and fragment definitions spread at the root) from the selected
/// query, so the planner never sees them. Returns true if the operation
/// selected any (whatever their `@skip`/`@include`).
///
/// The document stays valid: inline fragments and fragments left empty are
/// removed, with their spreads; a root selection set left empty gets a single
/// `__typename` aliased [`PLACEHOLDER_ALIAS`], which the planner recognises:
/// it plans no fetch for it and keeps it out of the response.
pub fn strip_introspection(document: &mut query::Document, operation_name: Option<&str>) -> bool {
    let Some((index, _)) = selected_query(document, operation_name) else {
        return false;
    };
    let mut root = match document.definitions.get_mut(index) {
        Some(query::Definition::Operation(operation)) => {
            std::mem::take(&mut selection_set_mut(operation).items)
        }
        _ => return false,
    };
    let mut stripper = Stripper {
        definitions: &mut document.definitions,
        fragments: HashMap::new(),
        found: false,
    };
    stripper.strip(&mut root);
    let found = stripper.found;
    let emptied: HashSet<String> = stripper
        .fragments
        .into_iter()
        .filter_map(|(name, empty)| empty.then_some(name))
        .collect();
    if root.is_empty() {
        root.push(typename_field());
    }
    if let Some(query::Definition::Operation(operation)) = document.definitions.get_mut(index) {
        selection_set_mut(operation).items = root;
    }

    if !emptied.is_empty() {
        document.definitions.retain(|definition| {
            !matches!(definition, query::Definition::Fragment(f) if emptied.contains(&f.name))
        });
        for definition in &mut document.definitions {
            let items = match definition {
                query::Definition::Operation(operation) => &mut selection_set_mut(operation).items,
                query::Definition::Fragment(fragment) => &mut fragment.selection_set.items,
            };
            remove_spreads(items, &emptied);
        }
    }
    found
}

/// An introspection object being resolved.
#[derive(Clone, Copy)]
enum Node<'s> {
    Schema,
    Type(&'s TypeDefinition),
    /// A `[T]` or `T!` around another type.
    Wrapper(&'s schema::Type),
    Field(&'s schema::Field),
    InputValue(&'s schema::InputValue),
    EnumValue(&'s schema::EnumValue),
    Directive(&'s schema::DirectiveDefinition),
}

impl Node<'_> {
    /// Its `__typename`.
    fn type_name(self) -> &'static str {
        match self {
            Node::Schema => "__Schema",
            Node::Type(_) | Node::Wrapper(_) => "__Type",
            Node::Field(_) => "__Field",
            Node::InputValue(_) => "__InputValue",
            Node::EnumValue(_) => "__EnumValue",
            Node::Directive(_) => "__Directive",
        }
    }
}

/// A field's value before its sub-selection is applied.
enum Resolved<'s> {
    Leaf(Json),
    Object(Option<Node<'s>>),
    List(Vec<Node<'s>>),
}

fn text(value: &str) -> Resolved<'static> {
    Resolved::Leaf(Json::from(value))
}

fn optional(value: Option<&str>) -> Resolved<'static> {
    Resolved::Leaf(value.map_or(Json::Null, Json::from))
}

fn deprecation_field(name: &str, directives: &[schema::Directive]) -> Resolved<'static> {
    match name {
        "isDeprecated" => Resolved::Leaf(Json::Bool(deprecation(directives).is_some())),
        "deprecationReason" => optional(deprecation(directives).as_deref()),
        _ => Resolved::Leaf(Json::Null),
    }
}

/// A list of fields, arguments or enum values, without the deprecated ones
/// unless `include_deprecated`.
fn listed<'s, T>(
    items: &'s [T],
    include_deprecated: bool,
    directives: fn(&T) -> &[schema::Directive],
    node: fn(&'s T) -> Node<'s>,
) -> Resolved<'s> {
    let current = |item: &&T| include_deprecated || deprecation(directives(item)).is_none();
    Resolved::List(items.iter().filter(current).map(node).collect())
}

fn input_values(values: &[schema::InputValue], include_deprecated: bool) -> Resolved<'_> {
    listed(
        values,
        include_deprecated,
        |v| &v.directives,
        Node::InputValue,
    )
}

/// The reason of an element's `@deprecated`, if it has one.
fn deprecation(directives: &[schema::Directive]) -> Option<String> {
    directives.iter().find(|d| d.name == "deprecated")?;
    Some(match argument(directives, "deprecated", "reason") {
        Some(query::Value::String(reason)) => reason.clone(),
        _ => DEFAULT_DEPRECATION_REASON.to_owned(),
    })
}

fn argument<'a>(
    directives: &'a [schema::Directive],
    directive: &str,
    name: &str,
) -> Option<&'a query::Value> {
    directives
        .iter()
        .filter(|d| d.name == directive)
        .flat_map(|d| &d.arguments)
        .find_map(|(n, value)| (n == name).then_some(value))
}

fn fields_of(t: &TypeDefinition) -> &[schema::Field] {
    match t {
        TypeDefinition::Object(o) => &o.fields,
        TypeDefinition::Interface(i) => &i.fields,
        _ => &[],
    }
}

fn is_federation_type(name: &str) -> bool {
    matches!(name, "_Any" | "_Entity" | "_Service" | "_FieldSet")
        || name.find("__").is_some_and(|i| i > 0)
}

/// Drops from `t` what refers to types outside `names` (and the meta-fields).
fn prune_type(t: &mut TypeDefinition, names: &HashSet<String>) {
    let keep = |t: &schema::Type| names.contains(t.inner_type());
    let prune_fields = |fields: &mut Vec<schema::Field>| {
        fields.retain(|f| {
            !f.name.starts_with("__")
                && !matches!(f.name.as_str(), "_entities" | "_service")
                && keep(&f.field_type)
        });
        for field in fields {
            field.arguments.retain(|a| keep(&a.value_type));
        }
    };
    match t {
        TypeDefinition::Object(o) => {
            prune_fields(&mut o.fields);
            o.implements_interfaces.retain(|i| names.contains(i));
        }
        TypeDefinition::Interface(i) => {
            prune_fields(&mut i.fields);
            i.implements_interfaces.retain(|i| names.contains(i));
        }
        TypeDefinition::Union(u) => u.types.retain(|m| names.contains(m)),
        TypeDefinition::InputObject(i) => i.fields.retain(|f| keep(&f.value_type)),
        TypeDefinition::Scalar(_) | TypeDefinition::Enum(_) => {}
    }
}

/// A value as a GraphQL literal, printed as graphql-js prints it.
fn literal(value: &query::Value) -> String {
    match value {
        query::Value::Variable(name) => format!("${name}"),
        query::Value::Int(n) => n.as_i64().map(|n| n.to_string()).unwrap_or_default(),
        query::Value::Float(f) => f.to_string(),
        query::Value::String(s) => Json::from(s.as_str()).to_string(),
        query::Value::Boolean(b) => b.to_string(),
        query::Value::Null => "null".to_owned(),
        query::Value::Enum(name) => name.clone(),
        query::Value::List(items) => {
            format!(
                "[{}]",
                items.iter().map(literal).collect::<Vec<_>>().join(", ")
            )
        }
        query::Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(name, value)| format!("{name}: {}", literal(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A query value as JSON, variables substituted.
fn to_json(value: &query::Value, variables: &Map<String, Json>) -> Json {
    match value {
        query::Value::Variable(name) => variables.get(name).cloned().unwrap_or(Json::Null),
        query::Value::Int(n) => n.as_i64().map_or(Json::Null, Json::from),
        query::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        query::Value::String(s) => Json::from(s.as_str()),
        query::Value::Boolean(b) => Json::Bool(*b),
        query::Value::Null => Json::Null,
        query::Value::Enum(name) => Json::from(name.as_str()),
        query::Value::List(items) => items.iter().map(|item| to_json(item, variables)).collect(),
        query::Value::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), to_json(value, variables)))
                .collect(),
        ),
    }
}

/// The query `operation_name` names (or the document's only operation), and
/// its index in the document; `None` for mutations and subscriptions.
fn selected_query<'q>(
    document: &'q query::Document,
    operation_name: Option<&str>,
) -> Option<(usize, &'q OperationDefinition)> {
    let mut operations = document.definitions.iter().enumerate().filter_map(
        |(index, definition)| match definition {
            query::Definition::Operation(operation) => Some((index, operation)),
            query::Definition::Fragment(_) => None,
        },
    );
    let (index, operation) = match operation_name {
        Some(wanted) => operations.find(|(_, operation)| {
            let name = match operation {
                OperationDefinition::Query(q) => q.name.as_deref(),
                OperationDefinition::Mutation(m) => m.name.as_deref(),
                OperationDefinition::Subscription(s) => s.name.as_deref(),
                OperationDefinition::SelectionSet(_) => None,
            };
            name == Some(wanted)
        })?,
        None => {
            let only = operations.next()?;
            if operations.next().is_some() {
                return None;
            }
            only
        }
    };
    matches!(
        operation,
        OperationDefinition::Query(_) | OperationDefinition::SelectionSet(_)
    )
    .then_some((index, operation))
}

fn fragments(document: &query::Document) -> HashMap<&str, &query::FragmentDefinition> {
    document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            query::Definition::Fragment(fragment) => Some((fragment.name.as_str(), fragment)),
            query::Definition::Operation(_) => None,
        })
        .collect()
}

/// What resolving needs from the request besides the schema.
struct Request<'q> {
    fragments: HashMap<&'q str, &'q query::FragmentDefinition>,
    /// The request's variables, with the operation's defaults for missing ones.
    variables: Map<String, Json>,
}

impl<'q> Request<'q> {
    fn new(
        document: &'q query::Document,
        operation: &'q OperationDefinition,
        provided: &Map<String, Json>,
    ) -> Self {
        let mut variables = provided.clone();
        for definition in operation.variable_definitions() {
            if let Some(default) = &definition.default_value
                && !variables.contains_key(&definition.name)
            {
                variables.insert(definition.name.clone(), to_json(default, &Map::new()));
            }
        }
        Self {
            fragments: fragments(document),
            variables,
        }
    }

    fn arguments(&self, field: &query::Field) -> Map<String, Json> {
        field
            .arguments
            .iter()
            .map(|(name, value)| (name.clone(), to_json(value, &self.variables)))
            .collect()
    }

    /// Whether `@skip` / `@include` keep a selection.
    fn included(&self, directives: &[query::Directive]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .map(|(_, value)| to_json(value, &self.variables));
            match directive.name.as_str() {
                "skip" => condition != Some(Json::Bool(true)),
                "include" => condition == Some(Json::Bool(true)),
                _ => true,
            }
        })
    }

    /// Whether a `__schema` / `__type` field nests introspection lists too deep.
    fn too_deep(&self, field: &'q query::Field) -> bool {
        self.nests_too_deep(
            &field.selection_set,
            0,
            &mut Vec::new(),
            &mut HashSet::new(),
        )
    }

    /// `memo` holds (fragment, depth) pairs known to be shallow enough, so that
    /// fragments spread many times are checked once per depth.
    fn nests_too_deep(
        &self,
        set: &'q query::SelectionSet,
        depth: usize,
        path: &mut Vec<&'q str>,
        memo: &mut HashSet<(&'q str, usize)>,
    ) -> bool {
        set.items.iter().any(|selection| match selection {
            Selection::Field(field) => {
                let depth = depth + usize::from(LIST_FIELDS.contains(&field.name.as_str()));
                depth >= MAX_LIST_DEPTH
                    || self.nests_too_deep(&field.selection_set, depth, path, memo)
            }
            Selection::InlineFragment(inline) => {
                self.nests_too_deep(&inline.selection_set, depth, path, memo)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.fragment_name.as_str();
                let Some(fragment) = self.fragments.get(name) else {
                    return false;
                };
                if path.contains(&name) || memo.contains(&(name, depth)) {
                    return false;
                }
                path.push(name);
                let deep = self.nests_too_deep(&fragment.selection_set, depth, path, memo);
                path.pop();
                if !deep {
                    memo.insert((name, depth));
                }
                deep
            }
        })
    }
}

/// Fields grouped by response key, in first-seen order.
#[derive(Default)]
struct Groups<'q> {
    list: Vec<(&'q str, Vec<&'q query::Field>)>,
    index: HashMap<&'q str, usize>,
}

impl<'q> Groups<'q> {
    fn push(&mut self, key: &'q str, field: &'q query::Field) {
        match self.index.get(key).and_then(|&i| self.list.get_mut(i)) {
            Some((_, fields)) => fields.push(field),
            None => {
                self.index.insert(key, self.list.len());
                self.list.push((key, vec![field]));
            }
        }
    }
}

/// Removes root introspection fields, following spreads into fragments.
struct Stripper<'d> {
    definitions: &'d mut Vec<query::Definition>,
    /// Fragments done (or in progress), and whether stripping emptied them.
    fragments: HashMap<String, bool>,
    found: bool,
}

impl Stripper<'_> {
    fn strip(&mut self, items: &mut Vec<Selection>) {
        items.retain_mut(|selection| match selection {
            Selection::Field(field) => {
                let meta = field.name == "__schema" || field.name == "__type";
                self.found |= meta;
                !meta
            }
            Selection::InlineFragment(inline) => {
                self.strip(&mut inline.selection_set.items);
                !inline.selection_set.items.is_empty()
            }
            Selection::FragmentSpread(spread) => !self.strip_fragment(&spread.fragment_name),
        });
    }

    /// Strips a fragment spread at the root; true if nothing is left of it.
    fn strip_fragment(&mut self, name: &str) -> bool {
        if let Some(&empty) = self.fragments.get(name) {
            return empty;
        }
        // In progress: a (invalid) cycle keeps its spread.
        self.fragments.insert(name.to_owned(), false);
        let Some(mut items) = self.fragment_items(name).map(std::mem::take) else {
            return false;
        };
        self.strip(&mut items);
        let empty = items.is_empty();
        if let Some(slot) = self.fragment_items(name) {
            *slot = items;
        }
        self.fragments.insert(name.to_owned(), empty);
        empty
    }

    fn fragment_items(&mut self, name: &str) -> Option<&mut Vec<Selection>> {
        self.definitions
            .iter_mut()
            .find_map(|definition| match definition {
                query::Definition::Fragment(fragment) if fragment.name == name => {
                    Some(&mut fragment.selection_set.items)
                }
                _ => None,
            })
    }
}

/// Removes spreads of `emptied` fragments anywhere in `items`; a selection
/// set left empty by that gets `__typename`.
fn remove_spreads(items: &mut Vec<Selection>, emptied: &HashSet<String>) {
    let had_items = !items.is_empty();
    items.retain_mut(|selection| match selection {
        Selection::FragmentSpread(spread) => !emptied.contains(&spread.fragment_name),
        Selection::InlineFragment(query::InlineFragment { selection_set, .. })
        | Selection::Field(query::Field { selection_set, .. }) => {
            remove_spreads(&mut selection_set.items, emptied);
            true
        }
    });
    if had_items && items.is_empty() {
        items.push(typename_field());
    }
}

fn selection_set_mut(operation: &mut OperationDefinition) -> &mut query::SelectionSet {
    match operation {
        OperationDefinition::Query(q) => &mut q.selection_set,
        OperationDefinition::Mutation(m) => &mut m.selection_set,
        OperationDefinition::Subscription(s) => &mut s.selection_set,
        OperationDefinition::SelectionSet(set) => set,
    }
}

/// The response key of the `__typename` that keeps an introspection-only
/// operation valid once stripped; the router neither plans nor returns it.
pub const PLACEHOLDER_ALIAS: &str = "__shopgraph_placeholder";

fn typename_field() -> Selection {
    Selection::Field(query::Field {
        position: Pos::default(),
        alias: Some(PLACEHOLDER_ALIAS.to_owned()),
        name: "__typename".to_owned(),
        arguments: Vec::new(),
        directives: Vec::new(),
        selection_set: query::SelectionSet {
            span: (Pos::default(), Pos::default()),
            items: Vec::new(),
        },
    })
}

/// graphql-js 16's `getIntrospectionQuery` with every option on.
#[cfg(test)]
pub(crate) const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        description
        queryType { name kind }
        mutationType { name kind }
        subscriptionType { name kind }
        types { ...FullType }
        directives {
          name description isRepeatable locations
          args(includeDeprecated: true) { ...InputValue }
        }
      }
    }
    fragment FullType on __Type {
      kind name description specifiedByURL isOneOf
      fields(includeDeprecated: true) {
        name description
        args(includeDeprecated: true) { ...InputValue }
        type { ...TypeRef }
        isDeprecated deprecationReason
      }
      inputFields(includeDeprecated: true) { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
    }
    fragment TypeRef on __Type {
      kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
    }
"#;

#[cfg(test)]
mod tests {
    use graphql_tools::validation::rules::default_rules_validation_plan;
    use graphql_tools::validation::validate::validate;
    use hive_router_query_planner::ast::normalization::normalize_operation;
    use hive_router_query_planner::graph::PlannerOverrideContext;
    use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
    use hive_router_query_planner::utils::cancellation::CancellationToken;
    use hive_router_query_planner::utils::parsing::{safe_parse_operation, safe_parse_schema};
    use serde_json::json;

    use super::*;

    const SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");

    fn planner() -> Planner {
        let document = safe_parse_schema(SUPERGRAPH).unwrap();
        Planner::new_from_supergraph(&document, QueryPlannerOptions::default()).unwrap()
    }

    fn schema() -> IntrospectionSchema {
        IntrospectionSchema::new(&planner().consumer_schema.document)
    }

    fn run(schema: &IntrospectionSchema, operation: &str, variables: Json) -> Json {
        let document = safe_parse_operation(operation).unwrap();
        let Json::Object(variables) = variables else {
            panic!("variables are an object")
        };
        Json::Object(schema.resolve(&document, None, &variables))
    }

    fn names(list: &Json) -> Vec<&str> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect()
    }

    fn stripped(operation: &str) -> (bool, String) {
        let mut document = safe_parse_operation(operation).unwrap();
        let found = strip_introspection(&mut document, None);
        (found, document.to_string())
    }

    fn printed(operation: &str) -> String {
        safe_parse_operation(operation).unwrap().to_string()
    }

    #[test]
    fn the_full_introspection_query_describes_the_api_and_nothing_else() {
        let planner = planner();
        let api = &planner.consumer_schema.document;
        let document = safe_parse_operation(INTROSPECTION_QUERY).unwrap();
        let errors = validate(api, &document, &default_rules_validation_plan());
        assert!(
            errors.is_empty(),
            "the API schema accepts the query: {errors:?}"
        );
        assert_eq!(check_introspection_depth(&document), Ok(()));

        let data = IntrospectionSchema::new(api).resolve(&document, None, &Map::new());
        let schema = &data["__schema"];
        assert_eq!(
            schema["queryType"],
            json!({"name": "Query", "kind": "OBJECT"})
        );
        assert_eq!(schema["mutationType"]["name"], "Mutation");
        assert_eq!(schema["subscriptionType"]["name"], "Subscription");

        let types = names(&schema["types"]);
        for wanted in [
            "Product",
            "Money",
            "User",
            "String",
            "Boolean",
            "ID",
            "__Schema",
            "__TypeKind",
        ] {
            assert!(types.contains(&wanted), "{wanted} is listed");
        }
        for name in &types {
            let internal =
                name.starts_with('_') && !name.starts_with("__") || name[1..].contains("__");
            assert!(!internal, "{name} is a federation internal");
        }
        let unique: HashSet<_> = types.iter().collect();
        assert_eq!(unique.len(), types.len(), "no type is listed twice");

        let query = schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "Query")
            .unwrap();
        let fields = names(&query["fields"]);
        assert!(fields.contains(&"products"));
        assert!(
            fields.iter().all(|f| !f.starts_with('_')),
            "no _entities, _service, __schema: {fields:?}"
        );

        let directives = names(&schema["directives"]);
        assert_eq!(
            directives,
            ["include", "skip", "deprecated", "specifiedBy", "oneOf"]
        );

        // What buildClientSchema needs: every referenced type is listed.
        fn referenced<'a>(value: &'a Json, out: &mut Vec<&'a str>) {
            match value {
                Json::Object(o) => {
                    if let (Some(Json::String(name)), Some(_)) = (o.get("name"), o.get("ofType")) {
                        out.push(name);
                    }
                    o.values().for_each(|v| referenced(v, out));
                }
                Json::Array(a) => a.iter().for_each(|v| referenced(v, out)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        referenced(schema, &mut refs);
        assert!(
            refs.iter().all(|r| types.contains(r)),
            "dangling type references"
        );
    }

    #[test]
    fn a_type_s_fields_wrap_their_types() {
        let data = run(
            &schema(),
            r#"{ __type(name: "Product") { kind fields { name type { kind name ofType { kind name } } } } }"#,
            json!({}),
        );
        let product = &data["__type"];
        assert_eq!(product["kind"], "OBJECT");
        let id = product["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "id")
            .unwrap();
        assert_eq!(
            id["type"],
            json!({"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "ID"}})
        );
        let description = product["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "description");
        assert_eq!(
            description.unwrap()["type"],
            json!({"kind": "SCALAR", "name": "String", "ofType": null})
        );
    }

    #[test]
    fn aliases_conditions_and_variables_are_honoured() {
        let schema = schema();
        let operation = r#"query ($name: String!, $yes: Boolean!, $no: Boolean = false) {
            money: __type(name: "Money") { name __typename }
            wanted: __type(name: $name) { name kind }
            skipped: __schema @skip(if: $yes) { description }
            dropped: __schema @include(if: $no) { description }
            kept: __schema @include(if: true) { queryType { name } }
            ... on Query { inline: __type(name: "User") { name } }
            ...Root
            missing: __type(name: "Nope") { name }
            me { id }
        }
        fragment Root on Query { spread: __type(name: "ID") { kind } }"#;
        let data = run(
            &schema,
            operation,
            json!({"name": "BasketStatus", "yes": true}),
        );
        assert_eq!(
            data,
            json!({
                "money": {"name": "Money", "__typename": "__Type"},
                "wanted": {"name": "BasketStatus", "kind": "ENUM"},
                "kept": {"queryType": {"name": "Query"}},
                "inline": {"name": "User"},
                "spread": {"kind": "SCALAR"},
                "missing": null
            })
        );
        let keys: Vec<_> = data.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["money", "wanted", "kept", "inline", "spread", "missing"],
            "selection order"
        );
    }

    #[test]
    fn selections_with_the_same_key_merge() {
        let data = run(
            &schema(),
            r#"{ __schema { queryType { name } } __schema { queryType { kind } mutationType { name } } }"#,
            json!({}),
        );
        assert_eq!(
            data["__schema"],
            json!({"queryType": {"name": "Query", "kind": "OBJECT"}, "mutationType": {"name": "Mutation"}})
        );
    }

    #[test]
    fn every_introspection_object_knows_its_typename() {
        let data = run(
            &schema(),
            r#"{ __schema { __typename directives { __typename args { __typename } }
                 types { ... on __Type { __typename } enumValues { __typename } fields { __typename } } } }"#,
            json!({}),
        );
        let schema = &data["__schema"];
        assert_eq!(schema["__typename"], "__Schema");
        assert_eq!(schema["directives"][0]["__typename"], "__Directive");
        assert_eq!(
            schema["directives"][0]["args"][0]["__typename"],
            "__InputValue"
        );
        let types = schema["types"].as_array().unwrap();
        assert!(types.iter().all(|t| t["__typename"] == "__Type"));
        let status = types.iter().find(|t| t["enumValues"].is_array()).unwrap();
        assert_eq!(status["enumValues"][0]["__typename"], "__EnumValue");
        let object = types.iter().find(|t| t["fields"].is_array()).unwrap();
        assert_eq!(object["fields"][0]["__typename"], "__Field");
    }

    /// The supergraph has no interfaces, unions, deprecations or defaults:
    /// a small schema of its own covers them.
    #[test]
    fn interfaces_unions_deprecations_and_defaults() {
        let sdl = r#"
            schema { query: Root }
            directive @lowercase on FIELD
            "A URL." scalar Url @specifiedBy(url: "https://url.spec.whatwg.org/")
            interface Node { id: ID! }
            type Root implements Node {
              id: ID!
              old: Int @deprecated
              older(x: Int = 10, y: Int @deprecated(reason: "use x")): Int @deprecated(reason: "gone")
              search(currency: String = "EUR", list: [Int] = [1, 2], filter: Filter = {a: 1, b: [RED]}): [Thing!]
              _entities(representations: [_Any!]!): [_Entity]!
            }
            type Item implements Node { id: ID! }
            union Thing = Root | Item
            enum Color { RED BLUE @deprecated(reason: "no") }
            input Filter { a: Int b: [Color!] c: Float @deprecated }
            input Pick @oneOf { a: Int b: String }
            scalar _Any
            union _Entity = Item
            scalar String
            scalar Int
            scalar Float
            scalar Boolean
            scalar ID
        "#;
        let schema = IntrospectionSchema::new(&safe_parse_schema(sdl).unwrap());
        let data = run(
            &schema,
            r#"{
              node: __type(name: "Node") { possibleTypes { name } }
              thing: __type(name: "Thing") { possibleTypes { name } interfaces { name } }
              item: __type(name: "Item") { interfaces { name } }
              url: __type(name: "Url") { description specifiedByURL specifiedByUrl isOneOf }
              pick: __type(name: "Pick") { isOneOf }
              filter: __type(name: "Filter") { isOneOf inputFields { name } all: inputFields(includeDeprecated: true) { name isDeprecated deprecationReason } }
              color: __type(name: "Color") { enumValues { name } all: enumValues(includeDeprecated: true) { name deprecationReason } }
              root: __type(name: "Root") {
                fields { name }
                all: fields(includeDeprecated: true) { name isDeprecated deprecationReason args { name defaultValue } allArgs: args(includeDeprecated: true) { name } }
              }
              any: __type(name: "_Any") { name }
              __schema { queryType { name } directives { name } types { name } }
            }"#,
            json!({}),
        );
        assert_eq!(
            data["node"]["possibleTypes"],
            json!([{"name": "Root"}, {"name": "Item"}])
        );
        assert_eq!(
            data["thing"],
            json!({"possibleTypes": [{"name": "Root"}, {"name": "Item"}], "interfaces": null})
        );
        assert_eq!(data["item"]["interfaces"], json!([{"name": "Node"}]));
        assert_eq!(
            data["url"],
            json!({
                "description": "A URL.",
                "specifiedByURL": "https://url.spec.whatwg.org/",
                "specifiedByUrl": "https://url.spec.whatwg.org/",
                "isOneOf": null
            })
        );
        assert_eq!(data["pick"]["isOneOf"], true);
        assert_eq!(data["filter"]["isOneOf"], false);
        assert_eq!(names(&data["filter"]["inputFields"]), ["a", "b"]);
        assert_eq!(
            data["filter"]["all"][2],
            json!({"name": "c", "isDeprecated": true, "deprecationReason": "No longer supported"})
        );
        assert_eq!(names(&data["color"]["enumValues"]), ["RED"]);
        assert_eq!(
            data["color"]["all"][1],
            json!({"name": "BLUE", "deprecationReason": "no"})
        );

        let root = &data["root"];
        assert_eq!(
            names(&root["fields"]),
            ["id", "search"],
            "deprecated and federation fields hidden"
        );
        let all = root["all"].as_array().unwrap();
        assert_eq!(names(&root["all"]), ["id", "old", "older", "search"]);
        assert_eq!(all[1]["deprecationReason"], "No longer supported");
        assert_eq!(all[2]["deprecationReason"], "gone");
        assert_eq!(all[2]["args"], json!([{"name": "x", "defaultValue": "10"}]));
        assert_eq!(names(&all[2]["allArgs"]), ["x", "y"]);
        assert_eq!(
            all[3]["args"],
            json!([
                {"name": "currency", "defaultValue": "\"EUR\""},
                {"name": "list", "defaultValue": "[1, 2]"},
                {"name": "filter", "defaultValue": "{a: 1, b: [RED]}"}
            ])
        );

        assert_eq!(data["any"], Json::Null);
        assert_eq!(data["__schema"]["queryType"]["name"], "Root");
        let directives = names(&data["__schema"]["directives"]);
        assert_eq!(
            directives,
            ["include", "skip", "deprecated", "specifiedBy", "lowercase"],
            "no @oneOf defined"
        );
        let types = names(&data["__schema"]["types"]);
        assert!(!types.contains(&"_Entity") && !types.contains(&"_Any"));
        assert!(types.contains(&"Float") && types.contains(&"ID"));
    }

    #[test]
    fn unused_built_in_scalars_are_not_listed() {
        let schema = IntrospectionSchema::new(
            &safe_parse_schema("type Query { a: String } scalar Float scalar String").unwrap(),
        );
        let data = run(
            &schema,
            "{ __schema { types { name } } float: __type(name: \"Float\") { name } }",
            json!({}),
        );
        assert_eq!(names(&data["__schema"]["types"]), ["Query", "String"]);
        assert_eq!(data["float"], Json::Null);
    }

    #[test]
    fn only_the_selected_query_is_answered() {
        let schema = schema();
        let document = safe_parse_operation(
            "query A { __typename } query B { __schema { queryType { name } } } mutation C { clearBasket { id } }",
        )
        .unwrap();
        assert!(schema.resolve(&document, Some("A"), &Map::new()).is_empty());
        assert!(schema.resolve(&document, Some("C"), &Map::new()).is_empty());
        assert!(
            schema.resolve(&document, None, &Map::new()).is_empty(),
            "ambiguous"
        );
        assert_eq!(schema.resolve(&document, Some("B"), &Map::new()).len(), 1);
    }

    #[test]
    fn introspection_nested_too_deep_is_refused() {
        let deep =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        let document = safe_parse_operation(deep).unwrap();
        assert_eq!(
            check_introspection_depth(&document),
            Err(IntrospectionError::TooDeep)
        );
        assert_eq!(run(&schema(), deep, json!({})), json!({"__schema": null}));

        let via_fragments =
            "{ ...A } fragment A on Query { __type(name: \"User\") { fields { ...B } } }
            fragment B on __Field { type { fields { type { inputFields { name } } } } }";
        let document = safe_parse_operation(via_fragments).unwrap();
        assert_eq!(
            check_introspection_depth(&document),
            Err(IntrospectionError::TooDeep)
        );

        let shallow =
            safe_parse_operation("{ __schema { types { fields { type { fields { name } } } } } }")
                .unwrap();
        assert_eq!(check_introspection_depth(&shallow), Ok(()));
    }

    #[test]
    fn stripping_removes_root_introspection_only() {
        assert_eq!(
            stripped("{ __schema { queryType { name } } me { id } }"),
            (true, printed("{ me { id } }"))
        );
        assert_eq!(
            stripped("{ __schema { types { name } } }"),
            (
                true,
                printed(&format!("{{ {PLACEHOLDER_ALIAS}: __typename }}"))
            )
        );
        assert_eq!(stripped("{ me { id } }"), (false, printed("{ me { id } }")));
        assert_eq!(
            stripped(
                "query Q { ... on Query { __type(name: \"A\") { name } } ... @skip(if: true) { me { id } } }"
            ),
            (
                true,
                printed("query Q { ... @skip(if: true) { me { id } } }")
            )
        );
        assert_eq!(
            stripped(
                "{ ...Meta ...Mixed } fragment Meta on Query { __schema { description } }
                 fragment Mixed on Query { __type(name: \"A\") { name } me { id } }"
            ),
            (
                true,
                printed("{ ...Mixed } fragment Mixed on Query { me { id } }")
            )
        );
        let mut mutation = safe_parse_operation("mutation { clearBasket { id } }").unwrap();
        assert!(!strip_introspection(&mut mutation, None));
    }

    #[test]
    fn stripped_operations_still_plan() {
        let planner = planner();
        for operation in [
            "{ __schema { queryType { name } } me { id } }",
            "query I { __schema { types { name } } }",
            "{ ...F } fragment F on Query { __type(name: \"User\") { name } products { totalCount } }",
        ] {
            let mut document = safe_parse_operation(operation).unwrap();
            assert!(strip_introspection(&mut document, None));
            let normalized = normalize_operation(&planner.supergraph, &document, None).unwrap();
            let plan = planner.plan_from_normalized_operation(
                &normalized.operation,
                PlannerOverrideContext::default(),
                &CancellationToken::new(),
            );
            assert!(plan.is_ok(), "{operation}");
        }
    }
}
