//! Entity fetches: finding the objects a `Flatten` path points at, turning
//! them into `_entities` representations, and merging the answers back.
//!
//! A flatten path such as `me.basket.items.@.product` is walked twice over
//! the same data: once (read-only) to build representations, once (mutably)
//! to merge the answers. Both walks visit objects in the same order and
//! apply the same filters, so the n-th object visited while merging is the
//! n-th object seen while collecting.

use std::collections::{BTreeSet, HashMap};

use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet;
use hive_router_query_planner::planner::plan_nodes::{
    FetchNodePathSegment, FetchRewrite, FlattenNodePathSegment,
};
use serde_json::{Map, Value};

use super::error::{PathSegment, ResponsePath};
use super::schema::SchemaIndex;

const TYPENAME: &str = "__typename";

/// The representations of one entity fetch, deduplicated.
#[derive(Debug, Default)]
pub struct Representations {
    /// Distinct representations, in first-seen order: the `representations` variable.
    pub unique: Vec<Value>,
    /// For every object visited on the path, in order: its representation's index
    /// (`None` when it could not be represented, e.g. its key fields are missing).
    pub slots: Vec<Option<usize>>,
    /// The response path of every visited object: only computed (by
    /// [`Representations::fill_paths`]) when the subgraph reported errors.
    pub paths: Vec<ResponsePath>,
    /// Serialised representation → its index in `unique`, for deduplication.
    seen: HashMap<String, usize>,
}

impl Representations {
    /// Hands the distinct representations over (for the request variable);
    /// the slots stay, to merge the answers.
    pub fn take_unique(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.unique)
    }

    /// Records the response path of every object at `paths` below `data`,
    /// in visiting order, so errors can be placed in the client's response.
    pub fn fill_paths<'p>(
        &mut self,
        data: &Value,
        paths: impl IntoIterator<Item = &'p [FlattenNodePathSegment]>,
        schema: &SchemaIndex,
    ) {
        self.paths.clear();
        for path in paths {
            let mut at = Vec::new();
            object_paths(data, path, schema, &mut at, &mut self.paths);
        }
    }

    /// Response paths of the objects that share representation `index`.
    pub fn paths_of(&self, index: usize) -> impl Iterator<Item = &ResponsePath> {
        self.slots
            .iter()
            .zip(&self.paths)
            .filter(move |(slot, _)| **slot == Some(index))
            .map(|(_, path)| path)
    }
}

/// Collects the representations of the objects at `path` below `data`.
pub fn collect(
    data: &Value,
    path: &[FlattenNodePathSegment],
    requires: &SelectionSet,
    input_rewrites: Option<&[FetchRewrite]>,
    schema: &SchemaIndex,
    into: &mut Representations,
) {
    visit(data, path, schema, &mut |object| {
        let slot = represent(object, requires, schema).map(|mut representation| {
            for rewrite in input_rewrites.unwrap_or_default() {
                apply_rewrite(rewrite, &mut representation, schema);
            }
            let key = representation.to_string();
            *into.seen.entry(key).or_insert_with(|| {
                into.unique.push(representation);
                into.unique.len() - 1
            })
        });
        into.slots.push(slot);
    });
}

/// Merges `answers[slot]` into every object at `path` whose slot is set,
/// visiting objects in the same order as [`collect`]. `offset` is the
/// position of this path's first object in `slots` (a batch fetch collects
/// several paths into one slot list).
pub fn merge_answers(
    data: &mut Value,
    path: &[FlattenNodePathSegment],
    schema: &SchemaIndex,
    slots: &[Option<usize>],
    offset: &mut usize,
    answers: &mut Answers,
) {
    visit_mut(data, path, schema, &mut |object| {
        let slot = slots.get(*offset).copied().flatten();
        *offset += 1;
        if let Some(Value::Object(answer)) = slot.and_then(|index| answers.take(index)) {
            deep_merge_object(object, answer);
        }
    });
}

/// The answers of one `_entities` field, handed out so that an answer is
/// moved into the last object that uses it and cloned only for the others
/// (several objects share one representation after deduplication).
pub struct Answers {
    values: Vec<Option<Value>>,
    remaining_uses: Vec<usize>,
}

impl Answers {
    /// `values[i]` answers representation `i`; `slots` says which objects use which.
    pub fn new(values: Vec<Value>, slots: &[Option<usize>]) -> Self {
        let mut remaining_uses = vec![0; values.len()];
        for index in slots.iter().flatten() {
            if let Some(uses) = remaining_uses.get_mut(*index) {
                *uses += 1;
            }
        }
        Self {
            values: values.into_iter().map(Some).collect(),
            remaining_uses,
        }
    }

    /// Applies `f` to every answer (output rewrites).
    pub fn for_each_mut(&mut self, f: impl FnMut(&mut Value)) {
        self.values.iter_mut().flatten().for_each(f);
    }

    fn take(&mut self, index: usize) -> Option<Value> {
        let uses = self.remaining_uses.get_mut(index)?;
        *uses = uses.saturating_sub(1);
        if *uses == 0 {
            self.values.get_mut(index)?.take()
        } else {
            self.values.get(index)?.clone()
        }
    }
}

fn visit<'v>(
    value: &'v Value,
    path: &[FlattenNodePathSegment],
    schema: &SchemaIndex,
    on_object: &mut dyn FnMut(&'v Map<String, Value>),
) {
    let Some((segment, rest)) = path.split_first() else {
        if let Value::Object(object) = value {
            on_object(object);
        }
        return;
    };
    match (segment, value) {
        (FlattenNodePathSegment::Field(key), Value::Object(object)) => {
            if let Some(child) = object.get(key) {
                visit(child, rest, schema, on_object);
            }
        }
        (FlattenNodePathSegment::List, Value::Array(items)) => {
            for item in items {
                visit(item, rest, schema, on_object);
            }
        }
        (FlattenNodePathSegment::TypeCondition(types), Value::Object(object))
            if matches_types(object, types, schema) =>
        {
            visit(value, rest, schema, on_object);
        }
        _ => {}
    }
}

/// [`visit`]'s walk, recording where each object sits in the response.
fn object_paths(
    value: &Value,
    path: &[FlattenNodePathSegment],
    schema: &SchemaIndex,
    at: &mut ResponsePath,
    out: &mut Vec<ResponsePath>,
) {
    let Some((segment, rest)) = path.split_first() else {
        if value.is_object() {
            out.push(at.clone());
        }
        return;
    };
    match (segment, value) {
        (FlattenNodePathSegment::Field(key), Value::Object(object)) => {
            if let Some(child) = object.get(key) {
                at.push(PathSegment::Key(key.clone()));
                object_paths(child, rest, schema, at, out);
                at.pop();
            }
        }
        (FlattenNodePathSegment::List, Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                at.push(PathSegment::Index(index));
                object_paths(item, rest, schema, at, out);
                at.pop();
            }
        }
        (FlattenNodePathSegment::TypeCondition(types), Value::Object(object))
            if matches_types(object, types, schema) =>
        {
            object_paths(value, rest, schema, at, out);
        }
        _ => {}
    }
}

fn visit_mut(
    value: &mut Value,
    path: &[FlattenNodePathSegment],
    schema: &SchemaIndex,
    on_object: &mut dyn FnMut(&mut Map<String, Value>),
) {
    let Some((segment, rest)) = path.split_first() else {
        if let Value::Object(object) = value {
            on_object(object);
        }
        return;
    };
    match segment {
        FlattenNodePathSegment::Field(key) => {
            if let Some(child) = value.as_object_mut().and_then(|object| object.get_mut(key)) {
                visit_mut(child, rest, schema, on_object);
            }
        }
        FlattenNodePathSegment::List => {
            if let Value::Array(items) = value {
                for item in items {
                    visit_mut(item, rest, schema, on_object);
                }
            }
        }
        FlattenNodePathSegment::TypeCondition(types) => {
            if value
                .as_object()
                .is_some_and(|object| matches_types(object, types, schema))
            {
                visit_mut(value, rest, schema, on_object);
            }
        }
    }
}

fn matches_types(
    object: &Map<String, Value>,
    types: &BTreeSet<String>,
    schema: &SchemaIndex,
) -> bool {
    object
        .get(TYPENAME)
        .and_then(Value::as_str)
        .is_some_and(|typename| types.iter().any(|t| schema.satisfies(typename, t)))
}

/// Projects `object` onto the `requires` selection (`... on Product {
/// __typename id }`). `None` when nothing but `__typename` could be
/// projected (e.g. the object's key fields are missing because the fetch
/// that should have brought them failed).
fn represent(
    object: &Map<String, Value>,
    requires: &SelectionSet,
    schema: &SchemaIndex,
) -> Option<Value> {
    let mut representation = Map::new();
    project_into(object, &requires.items, None, schema, &mut representation);
    let has_fields = representation.keys().any(|key| key != TYPENAME);
    has_fields.then_some(Value::Object(representation))
}

/// Writes the selected fields of `object` into `out`. A required field is
/// read by its name (falling back to its response key) and written under
/// its response key: the planner aliases a field it must fetch with other
/// arguments than the client's (`_internal_qp_alias_0: weight(unit: KG)`)
/// and asks for it back as `weight: _internal_qp_alias_0`. Fields missing
/// from `object` are left out. `__typename` is always written first, taken
/// from the object or, failing that, from the enclosing fragment's type.
fn project_into(
    object: &Map<String, Value>,
    items: &[SelectionItem],
    fragment_type: Option<&str>,
    schema: &SchemaIndex,
    out: &mut Map<String, Value>,
) {
    let typename = object
        .get(TYPENAME)
        .and_then(Value::as_str)
        .or(fragment_type);
    for item in items {
        match item {
            SelectionItem::Field(field) => {
                let key = field.selection_identifier();
                if key == TYPENAME {
                    continue;
                }
                let Some(value) = object.get(&field.name).or_else(|| object.get(key)) else {
                    continue;
                };
                let projected = if field.selections.is_empty() {
                    value.clone()
                } else {
                    match project_value(value, &field.selections.items, schema) {
                        Some(projected) => projected,
                        None => continue,
                    }
                };
                if let Some(typename) = typename
                    && !out.contains_key(TYPENAME)
                {
                    out.insert(TYPENAME.to_owned(), Value::String(typename.to_owned()));
                }
                match out.get_mut(key) {
                    Some(Value::Object(existing)) => {
                        if let Value::Object(more) = projected {
                            deep_merge_object(existing, more);
                        }
                    }
                    _ => {
                        out.insert(key.to_owned(), projected);
                    }
                }
            }
            SelectionItem::InlineFragment(fragment) => {
                let condition = fragment.type_condition.as_str();
                let applies = typename.is_none_or(|typename| {
                    schema.satisfies(typename, condition) || schema.satisfies(condition, typename)
                });
                if applies {
                    project_into(
                        object,
                        &fragment.selections.items,
                        Some(typename.unwrap_or(condition)),
                        schema,
                        out,
                    );
                }
            }
            SelectionItem::FragmentSpread(_) => {}
        }
    }
}

/// A required field's value, projected onto its sub-selection; `None` when
/// an object yields nothing (it is then left out of the representation).
fn project_value(value: &Value, items: &[SelectionItem], schema: &SchemaIndex) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let mut out = Map::new();
            project_into(object, items, None, schema, &mut out);
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(values) => Some(Value::Array(
            values
                .iter()
                .filter_map(|value| project_value(value, items, schema))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Applies a planner rewrite: a `ValueSetter` (e.g. `__typename` of an
/// `@interfaceObject` representation set to the interface name) or a
/// `KeyRenamer` (an internally aliased field renamed back to its key).
pub fn apply_rewrite(rewrite: &FetchRewrite, value: &mut Value, schema: &SchemaIndex) {
    match rewrite {
        FetchRewrite::ValueSetter(setter) => {
            set_value(value, &setter.path, &setter.set_value_to, schema);
        }
        FetchRewrite::KeyRenamer(renamer) => {
            rename_key(value, &renamer.path, &renamer.rename_key_to, schema);
        }
    }
}

/// Sets the value at `path` to the string `to`.
fn set_value(value: &mut Value, path: &[FetchNodePathSegment], to: &str, schema: &SchemaIndex) {
    walk_rewrite(value, path, schema, &mut |target| {
        *target = Value::String(to.to_owned())
    });
}

/// Renames the last key of `path` to `to` in the objects the rest of the
/// path reaches.
fn rename_key(value: &mut Value, path: &[FetchNodePathSegment], to: &str, schema: &SchemaIndex) {
    let Some((FetchNodePathSegment::Key(key), parent)) = path.split_last() else {
        return;
    };
    if key == to {
        return;
    }
    walk_rewrite(value, parent, schema, &mut |target| {
        rename_in(target, key, to)
    });
}

fn rename_in(value: &mut Value, key: &str, to: &str) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| rename_in(item, key, to)),
        Value::Object(object) => {
            if let Some(moved) = object.remove(key) {
                object.insert(to.to_owned(), moved);
            }
        }
        _ => {}
    }
}

/// Calls `at` on every value a rewrite path reaches: lists are entered
/// item by item, `TypenameEquals` keeps the objects of those types.
fn walk_rewrite(
    value: &mut Value,
    path: &[FetchNodePathSegment],
    schema: &SchemaIndex,
    at: &mut dyn FnMut(&mut Value),
) {
    let Some((segment, rest)) = path.split_first() else {
        at(value);
        return;
    };
    let object = match value {
        Value::Array(items) => {
            for item in items {
                walk_rewrite(item, path, schema, at);
            }
            return;
        }
        Value::Object(object) => object,
        _ => return,
    };
    match segment {
        FetchNodePathSegment::TypenameEquals(types) => {
            if typename_matches(object, types, schema) {
                walk_rewrite(value, rest, schema, at);
            }
        }
        FetchNodePathSegment::Key(key) => {
            if let Some(child) = object.get_mut(key) {
                walk_rewrite(child, rest, schema, at);
            }
        }
    }
}

/// An object without `__typename` is taken to match: rewrites address
/// representations the planner built for exactly those types.
fn typename_matches(
    object: &Map<String, Value>,
    types: &BTreeSet<String>,
    schema: &SchemaIndex,
) -> bool {
    object
        .get(TYPENAME)
        .and_then(Value::as_str)
        .is_none_or(|typename| types.iter().any(|t| schema.satisfies(typename, t)))
}

/// Merges `source` into `target`: nested objects merge key by key, lists of
/// equal length merge item by item, anything else is replaced.
pub fn deep_merge_object(target: &mut Map<String, Value>, source: Map<String, Value>) {
    for (key, incoming) in source {
        match target.get_mut(&key) {
            Some(existing) => deep_merge(existing, incoming),
            None => {
                target.insert(key, incoming);
            }
        }
    }
}

fn deep_merge(target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => deep_merge_object(target, source),
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (t, s) in target.iter_mut().zip(source) {
                deep_merge(t, s);
            }
        }
        (target, source) => *target = source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> Vec<FlattenNodePathSegment> {
        text.split('.')
            .map(|segment| match segment {
                "@" => FlattenNodePathSegment::List,
                field => FlattenNodePathSegment::Field(field.to_owned()),
            })
            .collect()
    }

    fn requires(fields: &[&str]) -> SelectionSet {
        use hive_router_query_planner::ast::selection_set::{
            FieldSelection, InlineFragmentSelection,
        };
        SelectionSet {
            items: vec![SelectionItem::InlineFragment(InlineFragmentSelection {
                type_condition: "Product".into(),
                selections: SelectionSet {
                    items: fields
                        .iter()
                        .map(|name| {
                            SelectionItem::Field(FieldSelection {
                                name: (*name).into(),
                                ..Default::default()
                            })
                        })
                        .collect(),
                },
                skip_if: None,
                include_if: None,
            })],
        }
    }

    #[test]
    fn representations_are_deduplicated_and_answers_reach_every_copy() {
        let mut data = json!({ "items": [
            { "product": { "__typename": "Product", "id": "1" } },
            { "product": { "__typename": "Product", "id": "2" } },
            { "product": { "__typename": "Product", "id": "1" } },
            { "product": null },
        ]});
        let schema = SchemaIndex::default();
        let mut reps = Representations::default();
        let path = path("items.@.product");
        collect(
            &data,
            &path,
            &requires(&["__typename", "id"]),
            None,
            &schema,
            &mut reps,
        );
        assert_eq!(
            reps.unique,
            [
                json!({"__typename":"Product","id":"1"}),
                json!({"__typename":"Product","id":"2"})
            ]
        );
        assert_eq!(reps.slots, [Some(0), Some(1), Some(0)]);
        reps.fill_paths(&data, [path.as_slice()], &schema);
        assert_eq!(reps.paths_of(0).count(), 2);
        assert_eq!(
            reps.paths_of(1).next(),
            Some(&vec![
                PathSegment::Key("items".into()),
                PathSegment::Index(1),
                PathSegment::Key("product".into())
            ])
        );

        let mut answers = Answers::new(
            vec![json!({ "name": "one" }), json!({ "name": "two" })],
            &reps.slots,
        );
        merge_answers(&mut data, &path, &schema, &reps.slots, &mut 0, &mut answers);
        assert_eq!(data["items"][0]["product"]["name"], "one");
        assert_eq!(data["items"][1]["product"]["name"], "two");
        assert_eq!(data["items"][2]["product"]["name"], "one");
        assert_eq!(data["items"][3]["product"], Value::Null);
    }

    #[test]
    fn objects_missing_key_fields_are_not_represented() {
        let data = json!({ "product": { "__typename": "Product" } });
        let mut reps = Representations::default();
        collect(
            &data,
            &path("product"),
            &requires(&["__typename", "id"]),
            None,
            &SchemaIndex::default(),
            &mut reps,
        );
        assert!(reps.unique.is_empty());
        assert_eq!(reps.slots, [None]);
    }

    #[test]
    fn deep_merge_combines_nested_objects_and_lists() {
        let mut target = json!({ "a": { "x": 1 }, "l": [{ "id": 1 }, { "id": 2 }] });
        let source = json!({ "a": { "y": 2 }, "l": [{ "n": "a" }, { "n": "b" }], "b": true });
        deep_merge(&mut target, source);
        assert_eq!(
            target,
            json!({ "a": { "x": 1, "y": 2 }, "l": [{ "id": 1, "n": "a" }, { "id": 2, "n": "b" }], "b": true })
        );
    }
}
