//! Authorization declared in the schema: Federation's `@authenticated` and
//! `@requiresScopes`, enforced by the router before it fetches.
//!
//! The subgraphs declare who may read a field (or run a root field) in
//! their SDL; composition carries the directives into the supergraph
//! (`@link(url: "https://specs.apollo.dev/authenticated/v0.1")` and
//! `…/requiresScopes/v0.1`), and the planner's supergraph state parses them.
//! A caller is **signed in** when the router verified its JWT, and holds
//! the **scopes** named by the token's `roles` claim (`admin`): each role is
//! a scope. `@requiresScopes(scopes: [["a", "b"], ["c"]])` is satisfied by
//! a caller holding `a` and `b`, or `c`; it also needs a signed-in caller.
//! A field's rule is its own directives *and* those of the type it returns
//! (a type-level directive guards every field returning that type), and an
//! interface field's rule also guards the same field of its implementations.
//!
//! Per document, when it is prepared (cached), [`OperationGuards::collect`]
//! lists the guarded fields it selects — for almost every document, none,
//! and then nothing more happens per request. Per request,
//! [`OperationGuards::denied`] checks the caller against that short list.
//! When something is denied, the document is *restricted*: the denied
//! fields are removed from the normalized operation ([`restrict`]), which
//! is planned again, so no subgraph request ever carries them — a denied
//! root mutation field is not sent at all. The restricted plan is cached on
//! the prepared operation by which guards were denied (callers of one kind
//! — anonymous, user, admin — share it), so the planner runs once per
//! document and outcome, not per request.
//!
//! The response is still projected from the client's whole operation: a
//! removed field comes out `null` with an `UNAUTHORIZED_FIELD_OR_TYPE`
//! error at its path ([`Denied`], read by the executor's projection), a
//! `null` in a non-null position propagating as the GraphQL spec says, and
//! the rest of the response is served (Apollo Router's behaviour). A
//! subscription whose root field is denied is refused as a whole, with the
//! same code. The subgraphs keep their own owner and admin checks: the
//! directives are a first line, not the only one.

use std::sync::Arc;

use hive_router_query_planner::ast::operation::OperationDefinition;
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::{FieldSelection, SelectionSet};
use hive_router_query_planner::ast::value::Value as AstValue;
use hive_router_query_planner::federation_spec::authorization::{
    AuthenticatedDirective, RequiresScopesDirective,
};
use hive_router_query_planner::planner::plan_nodes::QueryPlan;
use hive_router_query_planner::state::supergraph_state::{SupergraphDefinition, SupergraphState};
use rustc_hash::{FxHashMap, FxHashSet};
use shopgraph_core::identity::Identity;

/// The message of every `UNAUTHORIZED_FIELD_OR_TYPE` error (Apollo
/// Router's wording, so clients written against it read it the same).
pub const UNAUTHORIZED_MESSAGE: &str = "Unauthorized field or type";

/// Most restricted plans kept per prepared document: each is one
/// combination of denied guards, and callers fall into a few kinds, so a
/// document reaching this many is unusual; later outcomes are planned per
/// request rather than growing the cache without bound.
const MAX_RESTRICTED_VARIANTS: usize = 16;

/// Why the supergraph's authorization directives cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthorizationError {
    /// A `@requiresScopes(scopes:)` argument is not a list of lists of
    /// strings.
    #[error("@requiresScopes on {coordinate} must have scopes: [[String!]!]!")]
    MalformedScopes {
        /// `Type.field` or `Type`.
        coordinate: String,
    },
}

/// What a field (or type) needs from its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// A signed-in caller (`@authenticated`).
    pub authenticated: bool,
    /// One entry per `@requiresScopes` that applies: each is satisfied by
    /// holding every scope of at least one of its inner lists, and all
    /// entries must be satisfied.
    pub scopes: Vec<Vec<Vec<String>>>,
}

impl Requirement {
    fn from_directives(
        authenticated: &[AuthenticatedDirective],
        requires_scopes: &[RequiresScopesDirective],
        coordinate: &str,
    ) -> Result<Self, AuthorizationError> {
        let mut scopes = Vec::with_capacity(requires_scopes.len());
        for directive in requires_scopes {
            scopes.push(parse_scopes(&directive.scopes).ok_or_else(|| {
                AuthorizationError::MalformedScopes {
                    coordinate: coordinate.to_owned(),
                }
            })?);
        }
        Ok(Self {
            authenticated: !authenticated.is_empty(),
            scopes,
        })
    }

    fn is_empty(&self) -> bool {
        !self.authenticated && self.scopes.is_empty()
    }

    /// Both `self` and `other`.
    fn and(&mut self, other: &Self) {
        self.authenticated |= other.authenticated;
        for scopes in &other.scopes {
            if !self.scopes.contains(scopes) {
                self.scopes.push(scopes.clone());
            }
        }
    }

    /// Whether `caller` meets the requirement. Scopes need a signed-in
    /// caller too: an anonymous one holds none.
    pub fn allows(&self, caller: &Caller<'_>) -> bool {
        if self.is_empty() {
            return true;
        }
        if !caller.signed_in {
            return false;
        }
        self.scopes.iter().all(|alternatives| {
            alternatives
                .iter()
                .any(|all| all.iter().all(|scope| caller.has_scope(scope)))
        })
    }
}

/// `[["a", "b"], ["c"]]` as lists of strings (a single list or a single
/// string is accepted too, as GraphQL input coercion would).
fn parse_scopes(value: &AstValue) -> Option<Vec<Vec<String>>> {
    let strings = |value: &AstValue| -> Option<Vec<String>> {
        match value {
            AstValue::String(scope) => Some(vec![scope.clone()]),
            AstValue::List(items) => items
                .iter()
                .map(|item| match item {
                    AstValue::String(scope) => Some(scope.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    };
    match value {
        AstValue::List(items) if items.iter().all(|i| matches!(i, AstValue::List(_))) => {
            items.iter().map(strings).collect()
        }
        other => strings(other).map(|all| vec![all]),
    }
}

/// The caller as authorization sees it: signed in or not, and its scopes
/// (the verified token's roles).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    signed_in: bool,
    scopes: &'a [String],
}

impl<'a> Caller<'a> {
    /// The caller of a request. Its outcome depends only on the user's
    /// roles, which the query deduplication key already includes
    /// ([`crate::inflight::key`]), so a shared execution never crosses
    /// authorization outcomes.
    pub fn of(identity: &'a Identity) -> Self {
        match identity {
            Identity::Anonymous => Self {
                signed_in: false,
                scopes: &[],
            },
            Identity::User(viewer) => Self {
                signed_in: true,
                scopes: &viewer.roles,
            },
        }
    }

    fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }
}

/// The supergraph's authorization rules, built once per loaded supergraph.
#[derive(Debug, Default)]
pub struct AuthorizationIndex {
    /// `type → field →` the field's effective rule, only for guarded fields.
    rules: FxHashMap<String, FxHashMap<String, Arc<Requirement>>>,
    /// `type → field →` the named type it returns, for walking operations.
    field_types: FxHashMap<String, FxHashMap<String, String>>,
    /// `interface →` its object types, so a denied interface field is also
    /// denied on the objects the response carries.
    implementations: FxHashMap<String, Vec<String>>,
}

impl AuthorizationIndex {
    /// Reads the directives the planner's supergraph state parsed (only
    /// when the supergraph links the `authenticated` / `requiresScopes`
    /// specs, as composition writes it).
    pub fn new(state: &SupergraphState) -> Result<Self, AuthorizationError> {
        let mut index = Self::default();
        let mut type_rules: FxHashMap<&str, Requirement> = FxHashMap::default();
        for (name, definition) in &state.definitions {
            let rule = match definition {
                SupergraphDefinition::Object(object) => {
                    for implemented in &object.join_implements {
                        let objects = index
                            .implementations
                            .entry(implemented.interface.clone())
                            .or_default();
                        if !objects.contains(name) {
                            objects.push(name.clone());
                        }
                    }
                    Requirement::from_directives(
                        &object.authenticated,
                        &object.requires_scopes,
                        name,
                    )?
                }
                SupergraphDefinition::Interface(interface) => Requirement::from_directives(
                    &interface.authenticated,
                    &interface.requires_scopes,
                    name,
                )?,
                SupergraphDefinition::Scalar(scalar) => Requirement::from_directives(
                    &scalar.authenticated,
                    &scalar.requires_scopes,
                    name,
                )?,
                SupergraphDefinition::Enum(enumeration) => Requirement::from_directives(
                    &enumeration.authenticated,
                    &enumeration.requires_scopes,
                    name,
                )?,
                SupergraphDefinition::Union(_) | SupergraphDefinition::InputObject(_) => {
                    continue;
                }
            };
            if !rule.is_empty() {
                type_rules.insert(name, rule);
            }
        }
        let mut field_rules: Vec<(String, String, Requirement)> = Vec::new();
        for (name, definition) in &state.definitions {
            let fields = match definition {
                SupergraphDefinition::Object(object) => &object.fields,
                SupergraphDefinition::Interface(interface) => &interface.fields,
                _ => continue,
            };
            let types = index.field_types.entry(name.clone()).or_default();
            for (field_name, field) in fields {
                let returns = field.field_type.inner_type();
                types.insert(field_name.clone(), returns.to_owned());
                let mut rule = Requirement::from_directives(
                    &field.authenticated,
                    &field.requires_scopes,
                    &format!("{name}.{field_name}"),
                )?;
                if let Some(type_rule) = type_rules.get(returns) {
                    rule.and(type_rule);
                }
                if !rule.is_empty() {
                    field_rules.push((name.clone(), field_name.clone(), rule));
                }
            }
        }
        // An interface field's rule also guards the field on each
        // implementation (a fragment on the object type selects it there).
        let mut inherited = Vec::new();
        for (type_name, field_name, rule) in &field_rules {
            for object in index.implementations.get(type_name).into_iter().flatten() {
                inherited.push((object.clone(), field_name.clone(), rule.clone()));
            }
        }
        for (type_name, field_name, rule) in field_rules.into_iter().chain(inherited) {
            let slot = index
                .rules
                .entry(type_name)
                .or_default()
                .entry(field_name)
                .or_insert_with(|| Arc::new(Requirement::default()));
            Arc::make_mut(slot).and(&rule);
        }
        Ok(index)
    }

    /// Whether the supergraph declares no authorization at all (then
    /// nothing is ever collected or checked).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule of `type_name.field_name`, if it has one.
    pub fn rule(&self, type_name: &str, field_name: &str) -> Option<&Arc<Requirement>> {
        self.rules.get(type_name)?.get(field_name)
    }

    fn field_type(&self, type_name: &str, field_name: &str) -> Option<&str> {
        self.field_types
            .get(type_name)?
            .get(field_name)
            .map(String::as_str)
    }
}

/// One guarded field an operation selects.
#[derive(Debug, Clone)]
struct Guard {
    type_name: String,
    field_name: String,
    rule: Arc<Requirement>,
    /// Selected at the operation's root.
    root: bool,
}

/// The guarded fields one operation selects, collected when it is
/// prepared; empty for most operations.
#[derive(Debug, Default)]
pub struct OperationGuards {
    guards: Vec<Guard>,
}

impl OperationGuards {
    /// Walks the normalized `operation` (on `root_type`) and lists every
    /// distinct guarded field it selects.
    pub fn collect(
        index: &AuthorizationIndex,
        operation: &OperationDefinition,
        root_type: &str,
    ) -> Self {
        let mut guards = Self::default();
        if !index.is_empty() {
            guards.walk(index, &operation.selection_set, root_type, true);
        }
        guards
    }

    fn walk(&mut self, index: &AuthorizationIndex, set: &SelectionSet, parent: &str, root: bool) {
        for item in &set.items {
            match item {
                SelectionItem::Field(field) => {
                    if let Some(rule) = index.rule(parent, &field.name)
                        && !self.guards.iter().any(|guard| {
                            guard.type_name == parent && guard.field_name == field.name
                        })
                    {
                        self.guards.push(Guard {
                            type_name: parent.to_owned(),
                            field_name: field.name.clone(),
                            rule: Arc::clone(rule),
                            root,
                        });
                    }
                    if !field.selections.is_empty()
                        && let Some(returns) = index.field_type(parent, &field.name)
                    {
                        self.walk(index, &field.selections, returns, false);
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    self.walk(index, &fragment.selections, &fragment.type_condition, root);
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
    }

    /// Whether the operation selects no guarded field.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// The guards `caller` fails, as their indices (empty when everything
    /// is allowed: the common case, no allocation).
    pub fn denied(&self, caller: &Caller<'_>) -> Vec<u16> {
        let mut denied = Vec::new();
        for (position, guard) in self.guards.iter().enumerate() {
            if !guard.rule.allows(caller) {
                // At most u16::MAX distinct fields fit in any document the
                // limits accept.
                denied.push(u16::try_from(position).unwrap_or(u16::MAX));
            }
        }
        denied
    }

    /// The denied fields of `indices`, with interface fields also denied on
    /// their implementations.
    fn denied_fields(&self, index: &AuthorizationIndex, indices: &[u16]) -> Denied {
        let mut denied = Denied::default();
        for guard in indices
            .iter()
            .filter_map(|position| self.guards.get(usize::from(*position)))
        {
            denied.insert(&guard.type_name, &guard.field_name);
            for object in index
                .implementations
                .get(&guard.type_name)
                .into_iter()
                .flatten()
            {
                denied.insert(object, &guard.field_name);
            }
            denied.root_field |= guard.root;
            if guard.root && denied.first_root.is_none() {
                denied.first_root = Some(format!("{}.{}", guard.type_name, guard.field_name));
            }
        }
        denied
    }
}

/// The fields removed for one caller, by `type → field`: what the
/// projection writes as `null` with an `UNAUTHORIZED_FIELD_OR_TYPE` error.
#[derive(Debug, Default, Clone)]
pub struct Denied {
    fields: FxHashMap<String, FxHashSet<String>>,
    root_field: bool,
    first_root: Option<String>,
}

impl Denied {
    fn insert(&mut self, type_name: &str, field_name: &str) {
        self.fields
            .entry(type_name.to_owned())
            .or_default()
            .insert(field_name.to_owned());
    }

    /// Whether `type_name.field_name` was removed.
    pub fn contains(&self, type_name: &str, field_name: &str) -> bool {
        self.fields
            .get(type_name)
            .is_some_and(|fields| fields.contains(field_name))
    }

    /// The first denied root field (`Subscription.notificationAdded`), if
    /// a root field is denied: a subscription is then refused.
    pub fn root_field(&self) -> Option<&str> {
        self.first_root.as_deref().filter(|_| self.root_field)
    }
}

/// One authorization outcome of a prepared document: its plan without the
/// denied fields, and which fields those are.
#[derive(Debug)]
pub struct Restricted {
    /// The plan of the operation without the denied fields (no fetch at
    /// all when every root field is denied).
    pub plan: QueryPlan,
    /// The fields removed.
    pub denied: Denied,
}

/// The restricted plans of one prepared document, by denied guards.
#[derive(Debug, Default)]
pub struct RestrictedPlans {
    plans: std::sync::Mutex<FxHashMap<Vec<u16>, Arc<Restricted>>>,
}

impl RestrictedPlans {
    /// The cached outcome for `denied`, if any.
    pub fn get(&self, denied: &[u16]) -> Option<Arc<Restricted>> {
        let plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        plans.get(denied).cloned()
    }

    /// Caches `restricted` for `denied`, unless the document already has
    /// `MAX_RESTRICTED_VARIANTS` outcomes.
    pub fn remember(&self, denied: Vec<u16>, restricted: &Arc<Restricted>) {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() < MAX_RESTRICTED_VARIANTS {
            plans.insert(denied, Arc::clone(restricted));
        }
    }
}

/// What one request may run: the prepared plan as it is (nothing denied),
/// or a restricted one.
#[derive(Debug, Clone, Default)]
pub struct Access(Option<Arc<Restricted>>);

impl Access {
    /// Everything allowed.
    pub fn full() -> Self {
        Self(None)
    }

    /// Some fields denied.
    pub fn restricted(restricted: Arc<Restricted>) -> Self {
        Self(Some(restricted))
    }

    /// The plan to run: the restricted one, or else `full`.
    pub fn plan<'a>(&'a self, full: &'a QueryPlan) -> &'a QueryPlan {
        self.0.as_ref().map_or(full, |restricted| &restricted.plan)
    }

    /// The fields removed, when any are.
    pub fn denied(&self) -> Option<&Denied> {
        self.0.as_ref().map(|restricted| &restricted.denied)
    }
}

/// The normalized `operation` (on `root_type`) without the fields of
/// `indices`, and those fields; `None` as the operation when no root field
/// is left (nothing to plan). A field whose every sub-selection was removed
/// keeps a hidden `__typename`, so the subgraph request stays valid and the
/// object itself is still served.
pub fn restrict(
    index: &AuthorizationIndex,
    guards: &OperationGuards,
    indices: &[u16],
    operation: &OperationDefinition,
    root_type: &str,
) -> (Option<OperationDefinition>, Denied) {
    let denied = guards.denied_fields(index, indices);
    let mut restricted = operation.clone();
    restrict_set(index, &denied, &mut restricted.selection_set, root_type);
    let any_root_field = restricted
        .selection_set
        .items
        .iter()
        .any(|item| !matches!(item, SelectionItem::Field(f) if f.omit_from_response));
    (any_root_field.then_some(restricted), denied)
}

fn restrict_set(index: &AuthorizationIndex, denied: &Denied, set: &mut SelectionSet, parent: &str) {
    set.items.retain_mut(|item| match item {
        SelectionItem::Field(field) => {
            if denied.contains(parent, &field.name) {
                return false;
            }
            if !field.selections.is_empty()
                && let Some(returns) = index.field_type(parent, &field.name)
            {
                restrict_set(index, denied, &mut field.selections, returns);
                if field.selections.is_empty() {
                    field
                        .selections
                        .items
                        .push(SelectionItem::Field(FieldSelection::new_skipped_typename()));
                }
            }
            true
        }
        SelectionItem::InlineFragment(fragment) => {
            let had = !fragment.selections.is_empty();
            restrict_set(
                index,
                denied,
                &mut fragment.selections,
                &fragment.type_condition,
            );
            // An emptied fragment selects nothing: drop it.
            !had || !fragment.selections.is_empty()
        }
        SelectionItem::FragmentSpread(_) => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopgraph_core::identity::Viewer;

    fn rule(authenticated: bool, scopes: &[&[&str]]) -> Requirement {
        Requirement {
            authenticated,
            scopes: if scopes.is_empty() {
                Vec::new()
            } else {
                vec![
                    scopes
                        .iter()
                        .map(|all| all.iter().map(|s| (*s).to_owned()).collect())
                        .collect(),
                ]
            },
        }
    }

    fn user(roles: &[&str]) -> Identity {
        Identity::User(Viewer {
            user_id: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
    }

    #[test]
    fn requirements_check_sign_in_and_scope_alternatives() {
        let anonymous = Identity::Anonymous;
        let plain = user(&[]);
        let admin = user(&["admin"]);
        let both = user(&["a", "b"]);
        let authenticated = rule(true, &[]);
        assert!(!authenticated.allows(&Caller::of(&anonymous)));
        assert!(authenticated.allows(&Caller::of(&plain)));
        let admin_only = rule(false, &[&["admin"]]);
        assert!(!admin_only.allows(&Caller::of(&anonymous)));
        assert!(!admin_only.allows(&Caller::of(&plain)));
        assert!(admin_only.allows(&Caller::of(&admin)));
        // [["a", "b"], ["admin"]]: a and b, or admin.
        let either = rule(false, &[&["a", "b"], &["admin"]]);
        assert!(either.allows(&Caller::of(&both)));
        assert!(either.allows(&Caller::of(&admin)));
        assert!(!either.allows(&Caller::of(&user(&["a"]))));
        // Two applications must both hold.
        let mut two = rule(false, &[&["a"]]);
        two.and(&rule(false, &[&["b"]]));
        assert!(two.allows(&Caller::of(&both)));
        assert!(!two.allows(&Caller::of(&user(&["a"]))));
        assert!(Requirement::default().allows(&Caller::of(&anonymous)));
    }

    #[test]
    fn scopes_parse_as_lists_of_lists() {
        let s = |v: &str| AstValue::String(v.to_owned());
        let nested = AstValue::List(vec![
            AstValue::List(vec![s("a"), s("b")]),
            AstValue::List(vec![s("c")]),
        ]);
        assert_eq!(
            parse_scopes(&nested),
            Some(vec![vec!["a".into(), "b".into()], vec!["c".into()]])
        );
        assert_eq!(parse_scopes(&s("x")), Some(vec![vec!["x".into()]]));
        assert_eq!(parse_scopes(&AstValue::Int(1)), None);
    }
}
