//! Cursor pagination shared by every connection field.
//!
//! Page sizes are checked in one place ([`page_size`]); cursors are opaque
//! base64url-encoded JSON of whatever keyset position the subgraph needs, so
//! a client cannot forge a meaningful cursor by accident and a malformed one
//! is a clear `BAD_USER_INPUT`, never a panic or a silent first page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use shopgraph_core::error::{Coded, ErrorCode};

/// Largest `first` a client may ask for.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when `first` is omitted.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// Why pagination arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// `first` is negative or above [`MAX_PAGE_SIZE`].
    #[error("`first` must be between 0 and {MAX_PAGE_SIZE}, got {0}")]
    FirstOutOfRange(i32),
    /// `after` was not produced by this API.
    #[error("`after` is not a valid cursor")]
    MalformedCursor,
}

impl Coded for PageError {
    fn code(&self) -> ErrorCode {
        ErrorCode::BadUserInput
    }
}

/// Validates `first`, defaulting to [`DEFAULT_PAGE_SIZE`].
pub fn page_size(first: Option<i32>) -> Result<u64, PageError> {
    match first.unwrap_or(DEFAULT_PAGE_SIZE) {
        n @ 0..=MAX_PAGE_SIZE => Ok(n as u64),
        n => Err(PageError::FirstOutOfRange(n)),
    }
}

/// Encodes a keyset position as an opaque cursor.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    // Serialising plain data structs to JSON cannot fail.
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, PageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .map_err(|_| PageError::MalformedCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| PageError::MalformedCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(None), Ok(20));
        assert_eq!(page_size(Some(0)), Ok(0));
        assert_eq!(page_size(Some(100)), Ok(100));
        assert_eq!(page_size(Some(101)), Err(PageError::FirstOutOfRange(101)));
        assert_eq!(page_size(Some(-1)), Err(PageError::FirstOutOfRange(-1)));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = encode_cursor(&("name", 3));
        assert_eq!(
            decode_cursor::<(String, i32)>(&cursor),
            Ok(("name".into(), 3))
        );
        assert_eq!(
            decode_cursor::<(String, i32)>("!!!"),
            Err(PageError::MalformedCursor)
        );
        assert_eq!(
            decode_cursor::<(String, i32)>(&encode_cursor(&"other shape")),
            Err(PageError::MalformedCursor)
        );
    }
}
