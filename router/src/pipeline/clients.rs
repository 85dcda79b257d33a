//! Client awareness: which app sent a request, as a metric label.
//!
//! Apollo Client, Apollo iOS and Apollo Kotlin name themselves in the
//! `apollographql-client-name` header (their `clientAwareness` setting);
//! Apollo Router, and now Shopgraph, count requests by it, so a shop team
//! sees which app's traffic grew or started failing. A header is anyone's
//! to send, so the label is bounded: a name is a short run of plain
//! characters, and only the first [`ClientNames::limit`] distinct names get
//! a label of their own; later ones are counted as `other`, requests
//! without the header as `unknown`. That keeps a hostile client from
//! growing the metrics registry without end.
//!
//! The hot path is one header lookup and a read-locked set lookup; a label
//! is a `&'static str` (each admitted name is leaked once, at most `limit`
//! of them), so counting allocates nothing.

use std::collections::HashSet;
use std::sync::RwLock;

use axum::http::HeaderMap;

/// The header Apollo's clients name themselves in.
pub const CLIENT_NAME_HEADER: &str = "apollographql-client-name";
/// The label of a request that names no client.
pub const UNKNOWN: &str = "unknown";
/// The label of a client named after the limit was reached, or with a
/// name that is not a plain label.
pub const OTHER: &str = "other";
/// The longest name that gets a label of its own.
const MAX_NAME_LENGTH: usize = 64;

/// The client names that have a label of their own (see the module docs).
pub struct ClientNames {
    limit: usize,
    known: RwLock<HashSet<&'static str>>,
}

impl ClientNames {
    /// Labels for at most `limit` distinct names (`CLIENT_NAMES_MAX`).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            known: RwLock::default(),
        }
    }

    /// The metric label of the client that sent `headers`.
    pub fn label(&self, headers: &HeaderMap) -> &'static str {
        let Some(value) = headers.get(CLIENT_NAME_HEADER) else {
            return UNKNOWN;
        };
        let Some(name) = value.to_str().ok().filter(|name| is_plain(name)) else {
            return OTHER;
        };
        if let Some(known) = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
        {
            return known;
        }
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = known.get(name) {
            return known;
        }
        if known.len() >= self.limit {
            return OTHER;
        }
        let label: &'static str = Box::leak(name.to_owned().into_boxed_str());
        known.insert(label);
        label
    }
}

/// Whether `name` can be a label as it is: short, and only letters,
/// digits and `. _ - / @` (what app names and package ids use), so the
/// exposition needs no escaping and no two spellings look alike.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-/@".contains(&byte))
        && name != UNKNOWN
        && name != OTHER
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn named(name: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CLIENT_NAME_HEADER,
            HeaderValue::from_str(name).expect("a header value"),
        );
        headers
    }

    #[test]
    fn a_named_client_gets_its_own_label_until_the_limit() {
        let names = ClientNames::new(2);
        assert_eq!(names.label(&HeaderMap::new()), UNKNOWN);
        assert_eq!(names.label(&named("storefront-web")), "storefront-web");
        assert_eq!(names.label(&named("com.shop.ios")), "com.shop.ios");
        // Full: a third name is `other`, the first two keep their labels.
        assert_eq!(names.label(&named("scraper")), OTHER);
        assert_eq!(names.label(&named("storefront-web")), "storefront-web");
    }

    #[test]
    fn a_name_that_is_not_a_plain_label_is_other() {
        let names = ClientNames::new(10);
        for name in [
            "",
            "has space",
            "quote\"d",
            "x".repeat(MAX_NAME_LENGTH + 1).as_str(),
            "unknown",
            "other",
        ] {
            assert_eq!(names.label(&named(name)), OTHER, "{name:?}");
        }
        let mut not_utf8 = HeaderMap::new();
        not_utf8.insert(
            CLIENT_NAME_HEADER,
            HeaderValue::from_bytes(b"caf\xe9").expect("a header value"),
        );
        assert_eq!(names.label(&not_utf8), OTHER);
        // None of them took a place.
        assert_eq!(names.label(&named("@shop/web")), "@shop/web");
    }
}
