//! Variable coercion (`pipeline::variables::coerce`) of hostile JSON
//! against the declarations of every client operation: defaults, lists,
//! built-in scalars, nulls. Nothing may panic; refusals are errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use shopgraph_router::pipeline::variables::coerce;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(provided) = serde_json::from_slice::<Map<String, Value>>(rest) else {
        return;
    };
    let operation = shopgraph_fuzz::operation(selector);
    if let Ok(coerced) = coerce(
        operation.operation.variable_definitions.as_deref(),
        &provided,
    ) {
        // What the router forwards must serialise.
        let _ = serde_json::to_vec(&coerced);
    }
});
