//! Control characters in text inputs are refused before anything runs.
//!
//! Why: a NUL cuts a string short in SQLite and makes PostgreSQL refuse the
//! statement (a 500 where the client sent bad input), and the other C0
//! controls and DEL let a value rewrite what a terminal, a log viewer, a
//! CSV export or an e-mail shows (ESC sequences, backspace, a bare CR).
//! No product name, search, idempotency key or card field needs them.
//!
//! One check for every subgraph, done by the GraphQL handler on the parsed
//! document and its variables before the schema executes anything
//! ([`check_request`]), rather than in each resolver or input type: every
//! argument of every field — inline literals, variables, the operation's
//! variable defaults, inside input objects, lists and JSON scalars — is
//! covered, including arguments added later. The rule is that of the
//! subgraphs' `String`/`ID` input coercion made stricter, so a violation is
//! a request error as the GraphQL spec has it for a value that fails
//! coercion: HTTP 400, `extensions.code = BAD_USER_INPUT`, a message that
//! starts with the argument path (`input.name`), and no resolver runs, so
//! nothing is written.
//!
//! What is refused: U+0000–U+001F and U+007F. Long free text — any value
//! under an argument or input field named in [`FREE_TEXT_FIELDS`]
//! (`description`, `message`, and a notification's JSON `data`) — may also
//! hold TAB, LF and CR, because paragraphs and pasted text need them and
//! both stores keep them intact. Everything else (names, titles,
//! categories, URLs, searches, ids, keys, card fields) is one line.
//! Unicode beyond ASCII (accents, emoji, right-to-left scripts) is text
//! and passes.
//!
//! Subscriptions reach a subgraph over its websocket, which async-graphql
//! serves without this handler; their arguments are ids and cursors, which
//! the resolvers parse strictly anyway.

use std::collections::HashSet;
use std::fmt;

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql_value::{ConstValue, Name, Value};

/// Arguments and input fields holding long free text, where TAB, LF and CR
/// are allowed (every other control character is still refused). A value
/// is free text when any step of its path has one of these names, so the
/// strings inside a notification's JSON `data` are too.
pub const FREE_TEXT_FIELDS: &[&str] = &["description", "message", "data"];

/// A text input holding a character the shop refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path} must not contain control characters: {} at character {position} (argument of `{field}`)",
    CodePoint(*character)
)]
pub struct ControlCharacterError {
    /// Where the value is, from the argument down: `input.name`,
    /// `inputs[2].title`.
    pub path: String,
    /// The field whose argument it is (`createProduct`).
    pub field: String,
    /// The first refused character.
    pub character: char,
    /// Its position in the string, counted in characters from 1.
    pub position: usize,
}

/// `U+001B`, as the error message shows a character that cannot be printed.
struct CodePoint(char);

impl fmt::Display for CodePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

/// Whether `c` is refused in text: a C0 control or DEL, except TAB, LF and
/// CR in free text.
pub fn is_refused(c: char, free_text: bool) -> bool {
    let control = c.is_ascii_control();
    control && !(free_text && matches!(c, '\t' | '\n' | '\r'))
}

/// The first refused character of `text` and its position (from 1), if any.
pub fn first_refused(text: &str, free_text: bool) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| is_refused(*c, free_text))
        .map(|(index, c)| (index + 1, c))
}

/// Checks every string argument of the operation the request runs (and of
/// the fragments it spreads) against the rule of this module, with
/// variables substituted (the operation's defaults where a variable is not
/// given). A document whose operation cannot be chosen is left to the
/// executor, which refuses it.
pub fn check_request(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<(), ControlCharacterError> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => &operation.node,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => &operation.node,
            None => return Ok(()),
        },
        (DocumentOperations::Multiple(_), None) => return Ok(()),
    };
    let mut walk = Walk {
        document,
        variables,
        operation,
        visited: HashSet::new(),
    };
    walk.selection_set(&operation.selection_set.node)
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    operation: &'a OperationDefinition,
    /// Fragments already walked: each is walked once (its arguments are the
    /// same wherever it is spread), which also ends fragment cycles, which
    /// validation refuses only later.
    visited: HashSet<&'a Name>,
}

/// One step of a value's path below its argument.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<(), ControlCharacterError> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    for (name, value) in &field.arguments {
                        self.argument(field.name.node.as_str(), name.node.as_str(), &value.node)?;
                    }
                    self.selection_set(&field.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if self.visited.insert(name)
                        && let Some(fragment) = self.document.fragments.get(name)
                    {
                        self.selection_set(&fragment.node.selection_set.node)?;
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)?;
                }
            }
        }
        Ok(())
    }

    /// Checks one argument's value, depth first with an explicit stack (a
    /// JSON variable may nest deeply).
    fn argument(
        &self,
        field: &str,
        name: &'a str,
        value: &'a Value,
    ) -> Result<(), ControlCharacterError> {
        enum Item<'v> {
            Literal(&'v Value),
            Const(&'v ConstValue),
        }
        let mut stack: Vec<(Vec<Step<'a>>, Item<'a>)> =
            vec![(vec![Step::Key(name)], Item::Literal(value))];
        while let Some((path, item)) = stack.pop() {
            let free_text = path
                .iter()
                .any(|step| matches!(step, Step::Key(key) if FREE_TEXT_FIELDS.contains(key)));
            let refuse = |text: &str| match first_refused(text, free_text) {
                Some((position, character)) => Err(ControlCharacterError {
                    path: render(&path),
                    field: field.to_owned(),
                    character,
                    position,
                }),
                None => Ok(()),
            };
            match item {
                Item::Literal(Value::Variable(variable)) => {
                    if let Some(value) = self.variable(variable) {
                        stack.push((path, Item::Const(value)));
                    }
                }
                Item::Literal(Value::String(text)) | Item::Const(ConstValue::String(text)) => {
                    refuse(text)?;
                }
                Item::Literal(Value::List(items)) => {
                    for (index, item) in items.iter().enumerate().rev() {
                        stack.push((extend(&path, Step::Index(index)), Item::Literal(item)));
                    }
                }
                Item::Const(ConstValue::List(items)) => {
                    for (index, item) in items.iter().enumerate().rev() {
                        stack.push((extend(&path, Step::Index(index)), Item::Const(item)));
                    }
                }
                Item::Literal(Value::Object(fields)) => {
                    for (key, item) in fields.iter().rev() {
                        stack.push((extend(&path, Step::Key(key.as_ref())), Item::Literal(item)));
                    }
                }
                Item::Const(ConstValue::Object(fields)) => {
                    for (key, item) in fields.iter().rev() {
                        // JSON scalars (`_Any`, `JSON`) carry keys that are data too.
                        if let Some((position, character)) = first_refused(key, false) {
                            return Err(ControlCharacterError {
                                path: render(&path),
                                field: field.to_owned(),
                                character,
                                position,
                            });
                        }
                        stack.push((extend(&path, Step::Key(key.as_ref())), Item::Const(item)));
                    }
                }
                // Numbers, booleans, enums, null and binary hold no text.
                Item::Literal(_) | Item::Const(_) => {}
            }
        }
        Ok(())
    }

    /// The value of `$name`: the request's, else the operation's default.
    fn variable(&self, name: &Name) -> Option<&'a ConstValue> {
        self.variables.get(name).or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|definition| definition.node.name.node == *name)
                .and_then(|definition| definition.node.default_value.as_ref())
                .map(|default| &default.node)
        })
    }
}

fn extend<'a>(path: &[Step<'a>], step: Step<'a>) -> Vec<Step<'a>> {
    let mut path = path.to_vec();
    path.push(step);
    path
}

/// `input.lines[2].name`.
fn render(path: &[Step<'_>]) -> String {
    let mut rendered = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !rendered.is_empty() {
                    rendered.push('.');
                }
                rendered.push_str(key);
            }
            Step::Index(index) => rendered.push_str(&format!("[{index}]")),
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, variables: serde_json::Value) -> Result<(), ControlCharacterError> {
        let document = async_graphql::parser::parse_query(query).expect("a valid document");
        check_request(&document, None, &Variables::from_json(variables))
    }

    #[test]
    fn control_characters_are_refused_and_named() {
        for c in ['\0', '\u{1}', '\u{8}', '\u{1b}', '\u{7f}', '\t', '\n', '\r'] {
            let text = format!("ab{c}");
            let err = check(
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
                serde_json::json!({ "input": { "name": text } }),
            )
            .expect_err("refused");
            assert_eq!(err.path, "input.name");
            assert_eq!(err.field, "createProduct");
            assert_eq!((err.position, err.character), (3, c));
            assert!(
                err.to_string()
                    .starts_with("input.name must not contain control characters: U+00"),
                "{err}"
            );
        }
    }

    #[test]
    fn free_text_keeps_tabs_and_line_breaks_but_nothing_else() {
        let query = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
        check(
            query,
            serde_json::json!({ "input": { "description": "one\n\ttwo\r\n" } }),
        )
        .expect("paragraphs in a description");
        let err = check(
            query,
            serde_json::json!({ "input": { "description": "one\u{0}" } }),
        )
        .expect_err("NUL even in a description");
        assert_eq!(err.path, "input.description");
        let err = check(
            "mutation { bulkCreateNotifications(inputs: [{ title: \"ok\", message: \"a\\nb\" }, { title: \"x\\ny\", message: \"m\" }]) }",
            serde_json::json!({}),
        )
        .expect_err("a title is one line");
        assert_eq!(err.path, "inputs[1].title");
        assert_eq!(err.field, "bulkCreateNotifications");
    }

    #[test]
    fn literals_defaults_fragments_and_json_keys_are_covered() {
        let err = check(
            "{ products(filter: { search: \"a\\u001bb\" }) { totalCount } }",
            serde_json::json!({}),
        )
        .expect_err("a literal");
        assert_eq!(
            (err.path.as_str(), err.character),
            ("filter.search", '\u{1b}')
        );
        let err = check(
            "query($s: String = \"\\u0000\") { products(filter: { search: $s }) { totalCount } }",
            serde_json::json!({}),
        )
        .expect_err("a variable's default");
        assert_eq!(err.path, "filter.search");
        let err = check(
            "query { ...F } fragment F on Query { me { notifications(after: \"\\u007f\") { totalCount } ...F } }",
            serde_json::json!({}),
        )
        .expect_err("inside a (cyclic) fragment");
        assert_eq!(
            (err.path.as_str(), err.field.as_str()),
            ("after", "notifications")
        );
        let err = check(
            "mutation($d: JSON) { createNotification(input: { data: $d }) { id } }",
            serde_json::json!({ "d": { "k\u{0}": 1 } }),
        )
        .expect_err("a JSON key");
        assert_eq!(err.path, "input.data");
    }

    #[test]
    fn ordinary_text_passes() {
        check(
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
            serde_json::json!({ "input": {
                "name": "Crème brûlée 🍮 — Ærø, 東京, עברית",
                "description": "Zeile 1\nZeile 2\ttab",
                "price": "1.00",
                "category": "Desserts",
                "stockQuantity": 3,
            } }),
        )
        .expect("Unicode text passes");
        check(
            "{ products(first: 3) { totalCount } }",
            serde_json::json!({ "unused": "\u{0}" }),
        )
        .expect("a variable the operation does not use is not an input");
    }

    #[test]
    fn only_the_chosen_operation_is_checked() {
        let document = async_graphql::parser::parse_query(
            "query A { products(filter: { search: \"\\u0000\" }) { totalCount } } query B { categories }",
        )
        .expect("a valid document");
        check_request(&document, Some("B"), &Variables::default()).expect("B has no input");
        check_request(&document, Some("A"), &Variables::default()).expect_err("A has");
        check_request(&document, None, &Variables::default())
            .expect("no operation chosen: the executor refuses the request");
    }
}
