//! SHA-256 query hashes, the keys of automatic persisted queries.

use sha2::{Digest, Sha256};

/// A SHA-256 digest of query text. Kept as bytes so that comparing a
/// client's hash with the text's digest needs no hex formatting, and so
/// that upper- and lower-case hex name the same query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryHash([u8; 32]);

impl QueryHash {
    /// The digest of `text`, exactly as sent (APQ hashes the bytes the client
    /// holds, whitespace included).
    pub fn of(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// Parses 64 hexadecimal digits (either case); anything else is `None`.
    pub fn parse(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
            *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(digest))
    }
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex, the form Apollo clients send and Redis keys use.
impl std::fmt::Display for QueryHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_round_trips_through_hex() {
        // sha256("{ __typename }"), as computed by `printf '%s' '{ __typename }' | sha256sum`.
        let expected = "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b";
        let hash = QueryHash::of("{ __typename }");
        assert_eq!(hash.to_string(), expected);
        assert_eq!(QueryHash::parse(expected), Some(hash));
        assert_eq!(QueryHash::parse(&expected.to_uppercase()), Some(hash));
    }

    #[test]
    fn malformed_hex_is_refused() {
        assert_eq!(QueryHash::parse("abc"), None);
        assert_eq!(QueryHash::parse(&"g".repeat(64)), None);
        assert_eq!(QueryHash::parse(&"a".repeat(63)), None);
        assert_eq!(QueryHash::parse(&"é".repeat(32)), None);
    }
}
