//! The router's front door on hostile bytes: the HTTP request reader
//! (GET query string or POST body, as `pipeline::read_request` reads it),
//! then parse, operation limits, validation and planning of the document
//! it carries. Nothing may panic or hang; refusals are errors.
#![no_main]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use libfuzzer_sys::fuzz_target;
use shopgraph_router::pipeline::read_request;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let content_type = match selector % 4 {
        0 => "application/json",
        1 => "application/graphql-response+json; charset=utf-8",
        2 => "text/plain",
        _ => "application/json; charset=latin1",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (method, uri, body) = if selector & 0x80 == 0 {
        (
            Method::POST,
            Uri::from_static("/graphql"),
            Bytes::copy_from_slice(rest),
        )
    } else {
        let Ok(query) = std::str::from_utf8(rest) else {
            return;
        };
        let Ok(uri) = format!("/graphql?{query}").parse::<Uri>() else {
            return;
        };
        (Method::GET, uri, Bytes::new())
    };
    let Ok(request) = read_request(&method, &uri, &headers, &body) else {
        return;
    };
    if let Some(query) = request.query.as_deref() {
        let _ = shopgraph_fuzz::planner().prepare(query, request.operation_name.as_deref());
    }
});
