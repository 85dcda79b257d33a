//! Variable coercion (GraphQL spec §6.1.2): before anything is fetched, the
//! client's variables are checked against the operation's declarations,
//! defaults are filled in, and a single value given for a list is wrapped.
//! Built-in scalars are checked here; enum values and input objects are
//! checked by the subgraph that receives them.

use hive_router_query_planner::ast::operation::VariableDefinition;
use hive_router_query_planner::ast::value::Value as AstValue;
use hive_router_query_planner::state::supergraph_state::TypeNode;
use serde_json::{Map, Number, Value};

/// Coerces `provided` against `definitions`; every problem is reported.
pub fn coerce(
    definitions: Option<&[VariableDefinition]>,
    provided: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut coerced = Map::new();
    let mut problems = Vec::new();
    for definition in definitions.unwrap_or_default() {
        let name = &definition.name;
        match provided.get(name) {
            Some(value) => match coerce_value(value, &definition.variable_type) {
                Ok(value) => {
                    coerced.insert(name.clone(), value);
                }
                Err(problem) => problems.push(format!(
                    "Variable \"${name}\" got an invalid value: {problem}"
                )),
            },
            None => {
                if let Some(default) = &definition.default_value {
                    coerced.insert(name.clone(), to_json(default));
                } else if definition.variable_type.is_non_null() {
                    problems.push(format!(
                        "Variable \"${name}\" of required type \"{}\" was not provided.",
                        type_name(&definition.variable_type)
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(coerced)
    } else {
        Err(problems)
    }
}

fn coerce_value(value: &Value, ty: &TypeNode) -> Result<Value, String> {
    match ty {
        TypeNode::NonNull(inner) => {
            if value.is_null() {
                return Err(format!("expected a non-null {}", type_name(inner)));
            }
            coerce_value(value, inner)
        }
        _ if value.is_null() => Ok(Value::Null),
        TypeNode::List(item) => match value {
            Value::Array(items) => items
                .iter()
                .map(|value| coerce_value(value, item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            single => Ok(Value::Array(vec![coerce_value(single, item)?])),
        },
        TypeNode::Named(name) => coerce_scalar(value, name),
    }
}

fn coerce_scalar(value: &Value, type_name: &str) -> Result<Value, String> {
    let ok = match type_name {
        "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Float" => value.is_number(),
        "String" => value.is_string(),
        "Boolean" => value.is_boolean(),
        "ID" => value.is_string() || value.is_i64() || value.is_u64(),
        // Custom scalars, enums and input objects: the owning subgraph decides.
        _ => true,
    };
    if !ok {
        return Err(format!("{value} is not a valid {type_name}"));
    }
    Ok(match (type_name, value) {
        // An integer given for an ID is sent as its string form.
        ("ID", Value::Number(n)) => Value::String(n.to_string()),
        _ => value.clone(),
    })
}

fn type_name(ty: &TypeNode) -> String {
    match ty {
        TypeNode::Named(name) => name.clone(),
        TypeNode::List(inner) => format!("[{}]", type_name(inner)),
        TypeNode::NonNull(inner) => format!("{}!", type_name(inner)),
    }
}

/// A GraphQL literal (a default value) as JSON.
pub fn to_json(value: &AstValue) -> Value {
    match value {
        AstValue::Variable(_) | AstValue::Null => Value::Null,
        AstValue::Int(n) => Value::Number((*n).into()),
        AstValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AstValue::String(s) | AstValue::Enum(s) => Value::String(s.clone()),
        AstValue::Boolean(b) => Value::Bool(*b),
        AstValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        AstValue::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), to_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(name: &str, ty: TypeNode, default: Option<AstValue>) -> VariableDefinition {
        VariableDefinition {
            name: name.into(),
            variable_type: ty,
            default_value: default,
        }
    }

    fn named(name: &str) -> TypeNode {
        TypeNode::Named(name.into())
    }

    fn non_null(ty: TypeNode) -> TypeNode {
        TypeNode::NonNull(Box::new(ty))
    }

    #[test]
    fn defaults_fill_missing_variables_and_required_ones_must_be_given() {
        let defs = [
            def("first", named("Int"), Some(AstValue::Int(10))),
            def("id", non_null(named("ID")), None),
        ];
        let provided = json!({ "id": 7 });
        let coerced = coerce(Some(&defs), provided.as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(coerced), json!({ "first": 10, "id": "7" }));

        let problems = coerce(Some(&defs), &Map::new()).unwrap_err();
        assert_eq!(
            problems,
            ["Variable \"$id\" of required type \"ID!\" was not provided."]
        );
    }

    #[test]
    fn wrong_scalars_and_nulls_are_refused_and_single_values_become_lists() {
        let defs = [
            def("n", named("Int"), None),
            def("tags", TypeNode::List(Box::new(named("String"))), None),
            def("flag", non_null(named("Boolean")), None),
        ];
        let provided = json!({ "n": "x", "tags": "a", "flag": null });
        let problems = coerce(Some(&defs), provided.as_object().unwrap()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let ok = json!({ "n": 3, "tags": "a", "flag": true });
        let coerced = coerce(Some(&defs), ok.as_object().unwrap()).unwrap();
        assert_eq!(coerced["tags"], json!(["a"]));
    }
}
