//! Files compiled into the binary (`rust-embed`), answered as a browser
//! expects: with their content type, an `ETag` (a `304` when the browser
//! already has this version), a `Cache-Control` and the page's
//! Content-Security-Policy. The storefront (`router/src/storefront.rs`) and
//! GraphiQL ([`crate::graphiql`]) both serve their Vite builds this way.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `Cache-Control` of content-hashed files (Vite's `assets/`): a year,
/// never revalidated — a new build has new names.
pub const CACHE_HASHED: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of everything else (an `index.html` above all):
/// revalidate every time, so a new build is picked up at once (the `ETag`
/// makes that a 304).
pub const CACHE_REVALIDATE: &str = "no-cache";

/// One embedded file, answering `request`: its bytes (or a `304` when
/// `If-None-Match` names its `ETag`) with its content type, `ETag`,
/// `cache` as `Cache-Control` and `csp` as Content-Security-Policy.
pub fn file_response(
    file: rust_embed::EmbeddedFile,
    request: &HeaderMap,
    cache: &'static str,
    csp: &'static str,
) -> Response {
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let content_type = content_type(file.metadata.mimetype());
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // Embedded bytes are `'static`: served without a copy.
        match file.data {
            Cow::Borrowed(bytes) => Body::from(bytes).into_response(),
            Cow::Owned(bytes) => Body::from(bytes).into_response(),
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type.as_str()),
        (header::ETAG, etag.as_str()),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, csp),
    ] {
        // Every value is ASCII built here (hex digits, a MIME name).
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if not_modified {
        headers.remove(header::CONTENT_TYPE);
    }
    response
}

/// The `Content-Type` of a MIME type, text in UTF-8 (Vite writes UTF-8).
pub fn content_type(mime: &str) -> String {
    if mime.starts_with("text/") || mime == "application/json" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
