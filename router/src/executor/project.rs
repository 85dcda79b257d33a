//! Response projection: from the merged subgraph data to exactly what the
//! client asked for.
//!
//! The merged data holds everything the subgraphs returned, including keys
//! and `__typename`s the planner added. Projection walks the client's
//! (normalized) operation and writes JSON straight into a byte buffer:
//! aliases become keys, `@skip`/`@include` are evaluated, fragments apply by
//! runtime type, and a `null` in a non-null position nulls the nearest
//! nullable ancestor (GraphQL spec §6.4.4) by truncating the buffer back to
//! where that ancestor's value started.
//!
//! Fields the router took out of the plan because the caller may not have
//! them ([`Denied`], from schema authorization) are projected too: `null`
//! with an `UNAUTHORIZED_FIELD_OR_TYPE` error at their path, propagating
//! like any other `null`.

use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::{FieldSelection, SelectionSet};
use serde_json::{Map, Value};
use shopgraph_core::error::ErrorCode;

use crate::planner::authorization::{Denied, UNAUTHORIZED_MESSAGE};

use super::error::{GraphqlError, PathSegment, ResponsePath};
use super::schema::{SchemaIndex, TypeRef};

/// One response key of an object: its first field and any later ones
/// selected under the same key (whose sub-selections merge).
struct CollectedField<'s> {
    key: &'s str,
    field: &'s FieldSelection,
    more: Vec<&'s FieldSelection>,
}

/// A non-null position received `null`: the nearest nullable ancestor must
/// become `null`.
struct Bubble;

/// Writes the projected `data` member.
pub struct Projector<'a> {
    schema: &'a SchemaIndex,
    variables: &'a Map<String, Value>,
    errors: &'a mut Vec<GraphqlError>,
    /// Set when an error without a path exists (a failed root fetch): such
    /// an error already explains missing data, so no synthetic
    /// "cannot return null" errors are added.
    pathless_error: bool,
    out: Vec<u8>,
    path: ResponsePath,
    /// Fields removed from the plan by schema authorization.
    denied: Option<&'a Denied>,
}

impl<'a> Projector<'a> {
    /// A projector that appends null-propagation errors to `errors`.
    pub fn new(
        schema: &'a SchemaIndex,
        variables: &'a Map<String, Value>,
        errors: &'a mut Vec<GraphqlError>,
    ) -> Self {
        let pathless_error = errors.iter().any(|e| e.path.is_none());
        Self {
            schema,
            variables,
            errors,
            pathless_error,
            out: Vec::with_capacity(1024),
            path: Vec::new(),
            denied: None,
        }
    }

    /// Projects the fields in `denied` as `null`, each with an
    /// `UNAUTHORIZED_FIELD_OR_TYPE` error at its path (one per occurrence
    /// in the response, list positions included), `null` propagating from
    /// a non-null one like any other.
    pub fn with_denied(mut self, denied: Option<&'a Denied>) -> Self {
        self.denied = denied;
        self
    }

    /// Projects the root selection of an operation on `root_type` and
    /// returns the JSON of `data` (`null` when a root field bubbled).
    /// `extra` holds root fields resolved outside the plan (introspection).
    pub fn project_root<'s>(
        mut self,
        selections: &'s SelectionSet,
        root_type: &str,
        data: &Map<String, Value>,
        extra: &'s Map<String, Value>,
    ) -> Vec<u8> {
        let started = self.out.len();
        let mut fields = Vec::new();
        self.collect_fields(&selections.items, root_type, &mut fields);
        let result = self.write_object(&fields, root_type, data);
        let result = result.map(|()| {
            for (index, (key, value)) in extra.iter().enumerate() {
                self.separator(fields.is_empty() && index == 0);
                self.write_key(key);
                self.write_json(value);
            }
        });
        match result {
            Ok(()) => self.out.push(b'}'),
            Err(Bubble) => {
                self.out.truncate(started);
                self.out.extend_from_slice(b"null");
            }
        }
        self.out
    }

    /// The fields selected on an object of `runtime_type`, grouped by
    /// response key in first-seen order (spec §6.3.2 CollectFields): a key
    /// selected in several fragments appears once, with every occurrence.
    fn collect_fields<'s>(
        &self,
        items: &'s [SelectionItem],
        runtime_type: &str,
        fields: &mut Vec<CollectedField<'s>>,
    ) {
        for item in items {
            match item {
                SelectionItem::Field(field) => {
                    if field.omit_from_response
                        || !self.included(field.skip_if.as_deref(), field.include_if.as_deref())
                    {
                        continue;
                    }
                    let key = field.selection_identifier();
                    match fields.iter_mut().find(|collected| collected.key == key) {
                        Some(collected) => collected.more.push(field),
                        None => fields.push(CollectedField {
                            key,
                            field,
                            more: Vec::new(),
                        }),
                    }
                }
                SelectionItem::InlineFragment(fragment) => {
                    if self
                        .schema
                        .satisfies(runtime_type, &fragment.type_condition)
                        && self
                            .included(fragment.skip_if.as_deref(), fragment.include_if.as_deref())
                    {
                        self.collect_fields(&fragment.selections.items, runtime_type, fields);
                    }
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
    }

    /// Writes `{` and the collected fields of an object of `runtime_type`;
    /// the closing brace is the caller's.
    fn write_object(
        &mut self,
        fields: &[CollectedField<'_>],
        runtime_type: &str,
        object: &Map<String, Value>,
    ) -> Result<(), Bubble> {
        self.out.push(b'{');
        for (index, collected) in fields.iter().enumerate() {
            let CollectedField { key, field, more } = collected;
            self.separator(index == 0);
            self.write_key(key);
            if field.name == "__typename" {
                // An aliased `__typename` comes back under its alias (from
                // the subgraph that knows the concrete type).
                let typename = match object.get(*key) {
                    Some(Value::String(typename)) if *key != "__typename" => typename,
                    _ => runtime_type,
                };
                self.write_str(typename);
                continue;
            }
            if self
                .denied
                .is_some_and(|denied| denied.contains(runtime_type, &field.name))
            {
                self.unauthorized(key, runtime_type, &field.name)?;
                continue;
            }
            let value = object.get(*key).unwrap_or(&Value::Null);
            let Some(ty) = self.schema.field_type(runtime_type, &field.name) else {
                // A field the API schema does not know (cannot pass
                // validation); write what the subgraph sent.
                self.write_json(value);
                continue;
            };
            self.path.push(PathSegment::Key((*key).to_owned()));
            let result = if more.is_empty() {
                self.complete(value, ty, &field.selections, runtime_type, &field.name)
            } else {
                // The same key selected in several places: complete it once
                // with all their sub-selections.
                let merged = SelectionSet {
                    items: std::iter::once(*field)
                        .chain(more.iter().copied())
                        .flat_map(|f| f.selections.items.iter().cloned())
                        .collect(),
                };
                self.complete(value, ty, &merged, runtime_type, &field.name)
            };
            self.path.pop();
            result?;
        }
        Ok(())
    }

    /// Completes a value of declared type `ty` (spec §6.4.3).
    fn complete(
        &mut self,
        value: &Value,
        ty: &TypeRef,
        selections: &SelectionSet,
        parent_type: &str,
        field_name: &str,
    ) -> Result<(), Bubble> {
        match ty {
            TypeRef::NonNull(inner) => {
                if value.is_null() {
                    self.null_in_non_null(parent_type, field_name);
                    return Err(Bubble);
                }
                self.complete_non_null(value, inner, selections, parent_type, field_name)
            }
            nullable => {
                if value.is_null() {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
                let started = self.out.len();
                if self
                    .complete_non_null(value, nullable, selections, parent_type, field_name)
                    .is_err()
                {
                    self.out.truncate(started);
                    self.out.extend_from_slice(b"null");
                }
                Ok(())
            }
        }
    }

    fn complete_non_null(
        &mut self,
        value: &Value,
        ty: &TypeRef,
        selections: &SelectionSet,
        parent_type: &str,
        field_name: &str,
    ) -> Result<(), Bubble> {
        match ty {
            TypeRef::NonNull(inner) => {
                self.complete_non_null(value, inner, selections, parent_type, field_name)
            }
            TypeRef::List(item_type) => {
                let Value::Array(items) = value else {
                    return self.invalid(parent_type, field_name, "a list");
                };
                self.out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(PathSegment::Index(index));
                    let result =
                        self.complete(item, item_type, selections, parent_type, field_name);
                    self.path.pop();
                    result?;
                }
                self.out.push(b']');
                Ok(())
            }
            TypeRef::Named(type_name) => {
                if selections.is_empty() {
                    if let (Some(values), Value::String(name)) =
                        (self.schema.enum_values(type_name), value)
                        && !values.contains(name.as_str())
                    {
                        // A value the API does not have (an @inaccessible enum value).
                        return self.field_error(format!(
                            "Enum \"{type_name}\" cannot represent value: \"{name}\""
                        ));
                    }
                    self.write_json(value);
                    return Ok(());
                }
                let Value::Object(object) = value else {
                    return self.invalid(parent_type, field_name, "an object");
                };
                let Some(runtime_type) = self.runtime_type(object, type_name, selections) else {
                    return self.invalid(parent_type, field_name, "an object with __typename");
                };
                if !self.schema.has_object_type(runtime_type)
                    && !self.schema.is_abstract(runtime_type)
                {
                    // An object of a type the API hides (@inaccessible).
                    return self.field_error(format!(
                        "{parent_type}.{field_name} resolved to a type that is not part of the API"
                    ));
                }
                let mut fields = Vec::new();
                self.collect_fields(&selections.items, runtime_type, &mut fields);
                self.write_object(&fields, runtime_type, object)?;
                self.out.push(b'}');
                Ok(())
            }
        }
    }

    /// The concrete type of `object`, declared as `declared`: its
    /// `__typename`, unless that names an abstract type (an
    /// `@interfaceObject` answer) and an aliased `__typename` the client
    /// selected carries the concrete one.
    fn runtime_type<'v>(
        &self,
        object: &'v Map<String, Value>,
        declared: &'v str,
        selections: &SelectionSet,
    ) -> Option<&'v str> {
        let typename = object.get("__typename").and_then(Value::as_str);
        if let Some(typename) = typename
            && !self.schema.is_abstract(typename)
        {
            return Some(typename);
        }
        // Without a `__typename`, the planner did not need the concrete type
        // (no fragment on a member type is selected): the declared type
        // answers fragments on itself.
        aliased_typename(object, &selections.items)
            .or(typename)
            .or(Some(declared))
    }

    fn invalid(
        &mut self,
        parent_type: &str,
        field_name: &str,
        expected: &str,
    ) -> Result<(), Bubble> {
        self.field_error(format!(
            "a subgraph returned a value for {parent_type}.{field_name} that is not {expected}"
        ))
    }

    /// A value that cannot be completed: an error at this path (unless one
    /// already explains it), and `null` in its place.
    fn field_error(&mut self, message: String) -> Result<(), Bubble> {
        if !self.has_error_near() {
            self.errors
                .push(GraphqlError::coded(ErrorCode::Internal, message).at(self.path.clone()));
        }
        Err(Bubble)
    }

    /// A field the caller may not have: its error, then `null`, or a
    /// bubble when the field is non-null.
    fn unauthorized(
        &mut self,
        key: &str,
        parent_type: &str,
        field_name: &str,
    ) -> Result<(), Bubble> {
        self.path.push(PathSegment::Key(key.to_owned()));
        self.errors.push(
            GraphqlError::coded(ErrorCode::UnauthorizedFieldOrType, UNAUTHORIZED_MESSAGE)
                .at(self.path.clone()),
        );
        self.path.pop();
        match self.schema.field_type(parent_type, field_name) {
            Some(TypeRef::NonNull(_)) => Err(Bubble),
            _ => {
                self.out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }

    fn null_in_non_null(&mut self, parent_type: &str, field_name: &str) {
        if self.pathless_error || self.has_error_near() {
            return;
        }
        self.errors.push(
            GraphqlError::coded(
                ErrorCode::Internal,
                format!("Cannot return null for non-nullable field {parent_type}.{field_name}."),
            )
            .at(self.path.clone()),
        );
    }

    /// Whether an error already explains a null here: one at this path, above
    /// it, or below it.
    fn has_error_near(&self) -> bool {
        self.errors.iter().any(|error| {
            error.path.as_ref().is_some_and(|path| {
                let shared = path.len().min(self.path.len());
                path[..shared] == self.path[..shared]
            })
        })
    }

    fn included(&self, skip_if: Option<&str>, include_if: Option<&str>) -> bool {
        let flag = |name: &str| self.variables.get(name).and_then(Value::as_bool);
        let skipped = skip_if.is_some_and(|name| flag(name).unwrap_or(false));
        let included = include_if.is_none_or(|name| flag(name).unwrap_or(true));
        !skipped && included
    }

    fn separator(&mut self, first: bool) {
        if !first {
            self.out.push(b',');
        }
    }

    fn write_key(&mut self, key: &str) {
        self.write_str(key);
        self.out.push(b':');
    }

    fn write_str(&mut self, text: &str) {
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, text);
    }

    fn write_json(&mut self, value: &Value) {
        let _ = serde_json::to_writer(&mut self.out, value);
    }
}

/// The value of a `__typename` the client selected under an alias, if any.
fn aliased_typename<'v>(
    object: &'v Map<String, Value>,
    items: &[SelectionItem],
) -> Option<&'v str> {
    items.iter().find_map(|item| match item {
        SelectionItem::Field(field) if field.name == "__typename" => object
            .get(field.selection_identifier())
            .and_then(Value::as_str),
        SelectionItem::InlineFragment(fragment) => {
            aliased_typename(object, &fragment.selections.items)
        }
        _ => None,
    })
}
