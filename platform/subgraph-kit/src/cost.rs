//! Federation's demand-control directives, `@cost` and `@listSize` (IBM's
//! GraphQL cost specification as Apollo Federation 2.9 adopted it), so a
//! subgraph can state in its schema what its fields cost and how long its
//! lists are. The router reads them from the composed supergraph and
//! estimates an operation's cost from them before planning it
//! (`router/src/planner/limits.rs`, `GRAPHQL_MAX_COMPLEXITY`): without
//! them it has to assume every list is `GRAPHQL_DEFAULT_LIST_SIZE` long,
//! which overestimates the shop's small lists and underestimates none of
//! them only by luck.
//!
//! Annotate a resolver with `#[graphql(directive = cost::apply(5))]` or
//! `#[graphql(directive = list_size::apply(...))]`; async-graphql prints
//! the invocation in the federation SDL, and [`link_cost_directives`] (run
//! by [`crate::graphql::federation_sdl`]) imports the two directives from
//! Federation 2.9 so composition keeps them in the supergraph.

use async_graphql::TypeDirective;

use crate::pagination::MAX_PAGE_SIZE;

/// `@cost(weight: Int!)`: what resolving one instance of the field (or of
/// any field returning the type) costs, instead of the default (1 for an
/// object, 0 for a scalar or enum). For resolvers that are much dearer than
/// their shape says. (The spec also allows it on scalars, which
/// async-graphql cannot annotate; the router reads it there too.)
#[TypeDirective(
    location = "FieldDefinition",
    location = "Object",
    location = "Enum",
    location = "ArgumentDefinition",
    location = "InputFieldDefinition"
)]
pub fn cost(weight: i32) {}

/// `@listSize(assumedSize, slicingArguments, sizedFields,
/// requireOneSlicingArgument)`: how many items a list field returns. The
/// largest value given to one of `slicingArguments` when there is one,
/// else `assumedSize`; `sizedFields` passes that size on to the lists of a
/// connection (`edges`, `nodes`). Without it the router assumes
/// `GRAPHQL_DEFAULT_LIST_SIZE`.
#[TypeDirective(name = "listSize", location = "FieldDefinition")]
pub fn list_size(
    assumed_size: Option<i32>,
    slicing_arguments: Option<Vec<String>>,
    sized_fields: Option<Vec<String>>,
    require_one_slicing_argument: Option<bool>,
) {
}

/// The `assumedSize` of a paginated connection: the largest `first` the
/// subgraphs accept ([`MAX_PAGE_SIZE`]), so the router's estimate is an
/// upper bound when `first` is a variable or left out.
pub const PAGE_ASSUMED_SIZE: Option<i32> = Some(MAX_PAGE_SIZE);

/// A connection's `slicingArguments`: its page size, `first`.
pub fn page_slicing() -> Option<Vec<String>> {
    Some(vec!["first".to_owned()])
}

/// A connection's `sizedFields`: the two lists a page has, one item per
/// node.
pub fn page_fields() -> Option<Vec<String>> {
    Some(vec!["edges".to_owned(), "nodes".to_owned()])
}

/// A connection's `requireOneSlicingArgument`: false, because `first` is
/// optional (the subgraph's default page size applies without it).
pub const FIRST_IS_OPTIONAL: Option<bool> = Some(false);

/// The `assumedSize` of a basket's lines, and of a payment's (a snapshot
/// of them): one line per product, and nothing caps them but the
/// catalogue, so this is what a large real basket holds, not a bound.
pub const ASSUMED_BASKET_LINES: Option<i32> = Some(20);

/// The `assumedSize` of `categories`: the demo catalogue has 8; a shop's
/// navigation rarely shows more than a few dozen. (A list of strings costs
/// nothing in the estimate whatever its size; the annotation documents
/// it.)
pub const ASSUMED_CATEGORIES: Option<i32> = Some(50);

/// The Federation version that defines `@cost` and `@listSize`.
const COST_FEDERATION_VERSION: &str = "v2.9";

/// The two directives, as imported from the federation spec.
const COST_IMPORTS: [&str; 2] = ["\"@cost\"", "\"@listSize\""];

/// Makes the federation SDL async-graphql prints import `@cost` and
/// `@listSize` when it uses them: async-graphql links federation v2.5 with
/// a fixed import list, and composition only keeps directives the
/// federation link imports (from v2.9 on for these two); without the
/// import it refuses the SDL or drops them. Also drops async-graphql's own
/// definitions of the two, since the linked spec defines them. An SDL that
/// uses neither is returned unchanged.
pub fn link_cost_directives(sdl: &str) -> String {
    if !sdl.contains("@cost(") && !sdl.contains("@listSize(") {
        return sdl.to_owned();
    }
    let mut out: Vec<String> = Vec::new();
    let mut in_federation_link = false;
    for line in sdl.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("directive @cost(") || trimmed.starts_with("directive @listSize(") {
            drop_description(&mut out);
            continue;
        }
        let mut line = line.to_owned();
        if trimmed.starts_with("url: \"https://specs.apollo.dev/federation/v2.") {
            in_federation_link = true;
            line = raise_federation_version(&line);
        } else if in_federation_link && trimmed.starts_with("import: [") {
            in_federation_link = false;
            if let Some(end) = line.rfind(']') {
                let missing: Vec<&str> = COST_IMPORTS
                    .iter()
                    .copied()
                    .filter(|import| !line.contains(import))
                    .collect();
                if !missing.is_empty() {
                    line.insert_str(end, &format!(", {}", missing.join(", ")));
                }
            }
        }
        out.push(line);
    }
    let mut linked = out.join("\n");
    linked.push('\n');
    linked
}

/// Removes the description block (`"""..."""`) that ends `lines`, if any:
/// the description of a definition being dropped.
fn drop_description(lines: &mut Vec<String>) {
    let Some(last) = lines.last().map(|line| line.trim().to_owned()) else {
        return;
    };
    if !last.ends_with("\"\"\"") {
        return;
    }
    if last.len() > 3 && last.starts_with("\"\"\"") {
        lines.pop();
        return;
    }
    lines.pop();
    while let Some(line) = lines.pop() {
        if line.trim_start().starts_with("\"\"\"") {
            return;
        }
    }
}

/// `url: ".../federation/v2.N"` with N raised to at least 9.
fn raise_federation_version(line: &str) -> String {
    let prefix = "federation/v2.";
    let Some(start) = line.find(prefix).map(|at| at + prefix.len()) else {
        return line.to_owned();
    };
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse::<u32>() {
        Ok(minor) if minor < 9 => format!(
            "{}{}{}",
            &line[..start - prefix.len()],
            format_args!("federation/{COST_FEDERATION_VERSION}"),
            &line[start + digits.len()..]
        ),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTED: &str = "type Query {\n\tproducts(first: Int): [Int!]! @listSize(assumedSize: 100)\n}\n\"\"\"\nWhat it costs.\n\"\"\"\ndirective @cost(weight: Int!) on FIELD_DEFINITION | OBJECT\n\"\"\"How long.\"\"\"\ndirective @listSize(assumedSize: Int) on FIELD_DEFINITION\nextend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2.5\",\n\timport: [\"@key\", \"@requiresScopes\"]\n)\n";

    #[test]
    fn the_federation_link_imports_the_cost_directives() {
        let linked = link_cost_directives(PRINTED);
        assert!(
            linked.contains("url: \"https://specs.apollo.dev/federation/v2.9\","),
            "{linked}"
        );
        assert!(
            linked.contains("import: [\"@key\", \"@requiresScopes\", \"@cost\", \"@listSize\"]"),
            "{linked}"
        );
        assert!(!linked.contains("directive @cost"), "{linked}");
        assert!(!linked.contains("directive @listSize"), "{linked}");
        assert!(!linked.contains("What it costs"), "{linked}");
        assert!(!linked.contains("How long"), "{linked}");
        assert!(linked.starts_with("type Query {\n"), "{linked}");
        assert!(linked.contains("}\nextend schema @link("), "{linked}");
        assert!(linked.contains("@listSize(assumedSize: 100)"), "{linked}");
        // Idempotent, and a later version is kept.
        assert_eq!(link_cost_directives(&linked), linked);
        let later = linked.replace("v2.9", "v2.11");
        assert_eq!(link_cost_directives(&later), later);
    }

    #[test]
    fn an_sdl_without_cost_directives_is_unchanged() {
        let plain = PRINTED.replace(" @listSize(assumedSize: 100)", "");
        let plain = plain
            .lines()
            .filter(|line| !line.starts_with("directive @"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(link_cost_directives(&plain), plain);
    }
}
