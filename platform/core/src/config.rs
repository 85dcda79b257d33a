//! Typed configuration from environment variables.
//!
//! Every service reads its settings through [`Env`], which turns a missing or
//! malformed variable into a [`ConfigError`] naming the variable, the value it
//! saw and what it expected, so a bad deployment stops at start-up with a
//! message an operator can act on. [`Env`] reads from a map rather than the
//! process environment directly, so tests build configurations without
//! touching global state.
//!
//! [`Env`] also remembers every name it was asked for
//! ([`Env::names_read`]): the README's configuration reference is tested
//! against that list, so a variable the code reads without documentation
//! (or documentation of a variable nothing reads) fails a test.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set but its value is unusable.
    #[error("invalid value for {var}: {value:?} (expected {expected})")]
    Invalid {
        /// The environment variable's name.
        var: String,
        /// The value found.
        value: String,
        /// A human description of an acceptable value.
        expected: String,
    },
    /// A required variable is not set.
    #[error("missing required variable {var} (expected {expected})")]
    Missing {
        /// The environment variable's name.
        var: String,
        /// A human description of an acceptable value.
        expected: String,
    },
}

/// A snapshot of environment variables with typed accessors.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Every name looked up, set or not (families as `*_SUFFIX`), shared by
    /// clones: the code's own list of the variables it reads.
    names_read: Arc<Mutex<BTreeSet<String>>>,
}

impl Env {
    /// The process environment, read once.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
            names_read: Arc::default(),
        }
    }

    /// An environment made of the given pairs (tests, embedded `dev` mode).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            names_read: Arc::default(),
        }
    }

    /// Returns a copy with `key` set to `value` unless it is already set.
    pub fn with_default(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars
            .entry(key.to_owned())
            .or_insert_with(|| value.into());
        self
    }

    /// The raw value; empty strings count as unset, as most deploy tools
    /// cannot distinguish the two.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.note_read(key.to_owned());
        self.vars
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every set variable whose name ends with `suffix`, as (name, value),
    /// sorted by name: for families such as `<SUBGRAPH>_SERVICE_URL`.
    pub fn with_suffix<'a>(&'a self, suffix: &'a str) -> Vec<(&'a str, &'a str)> {
        self.note_read(format!("*{suffix}"));
        let mut found: Vec<(&str, &str)> = self
            .vars
            .keys()
            .filter(|key| key.ends_with(suffix) && key.len() > suffix.len())
            .filter_map(|key| self.raw(key).map(|value| (key.as_str(), value)))
            .collect();
        found.sort_unstable();
        found
    }

    /// Every variable name this environment (or a clone of it) was asked
    /// for so far, whether set or not; a family read with
    /// [`Env::with_suffix`] appears as `*_SUFFIX`.
    pub fn names_read(&self) -> BTreeSet<String> {
        self.names_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn note_read(&self, name: String) {
        self.names_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name);
    }

    /// The first of `keys` that is set, with its name.
    pub fn first_raw<'a>(&'a self, keys: &[&'a str]) -> Option<(&'a str, &'a str)> {
        keys.iter()
            .find_map(|key| self.raw(key).map(|value| (*key, value)))
    }

    /// A string value, if set.
    pub fn string(&self, key: &str) -> Option<String> {
        self.raw(key).map(str::to_owned)
    }

    /// A value parsed with `FromStr`; `expected` describes valid values.
    pub fn parse<T>(&self, key: &str, expected: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
    {
        self.raw(key)
            .map(|value| parse_value(key, value, expected))
            .transpose()
    }

    /// Like [`Env::parse`], falling back to `default` when unset.
    pub fn parse_or<T: FromStr>(
        &self,
        key: &str,
        expected: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.parse(key, expected)?.unwrap_or(default))
    }

    /// A boolean: `true/false`, `1/0`, `yes/no`, `on/off`.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(key, value, "a boolean: true or false")),
            },
        }
    }

    /// A duration in humantime form (`500ms`, `30s`, `5m`, `1h`).
    pub fn duration_or(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => humantime::parse_duration(value)
                .map_err(|_| invalid(key, value, "a duration such as 500ms, 30s, 5m or 1h")),
        }
    }

    /// An integer within `range`, inclusive.
    pub fn int_in_or<T>(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<T>,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        match self.parse::<T>(key, &expected)? {
            None => Ok(default),
            Some(value) if range.contains(&value) => Ok(value),
            Some(value) => Err(invalid(key, &value.to_string(), &expected)),
        }
    }

    /// An `http://` or `https://` URL, if set; `expected` describes it.
    pub fn http_url(&self, key: &str, expected: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Some(url.to_owned()))
            }
            Some(url) => Err(invalid(key, url, expected)),
        }
    }

    /// A TCP port: the first of `keys` that is set (a service's own
    /// variable before the shared one), else `default`.
    pub fn port_or(&self, keys: &[&str], default: u16) -> Result<u16, ConfigError> {
        match self.first_raw(keys) {
            None => Ok(default),
            Some((var, value)) => value
                .parse::<u16>()
                .map_err(|_| invalid(var, value, "a TCP port from 0 to 65535")),
        }
    }

    /// An IP address to bind to.
    pub fn ip_or(&self, key: &str, default: IpAddr) -> Result<IpAddr, ConfigError> {
        self.parse_or(key, "an IP address such as 0.0.0.0 or 127.0.0.1", default)
    }
}

fn parse_value<T: FromStr>(key: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| invalid(key, value, expected))
}

/// Builds a [`ConfigError::Invalid`]; used by services for their own checks.
pub fn invalid(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_lists_every_lookup_set_or_not_across_clones() {
        let env = Env::from_pairs([("PORT", "80")]);
        let clone = env.clone().with_default("HOST", "::1");
        assert_eq!(
            env.first_raw(&["PRODUCT_PORT", "PORT"]),
            Some(("PORT", "80"))
        );
        clone.with_suffix("_SERVICE_URL");
        assert_eq!(
            env.names_read().into_iter().collect::<Vec<_>>(),
            ["*_SERVICE_URL", "PORT", "PRODUCT_PORT"]
        );
    }

    #[test]
    fn invalid_value_names_variable_and_expectation() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let err = env
            .int_in_or::<u16>("PORT", 0..=65535, 4001)
            .expect_err("not a number");
        let message = err.to_string();
        assert!(message.contains("PORT"), "{message}");
        assert!(message.contains("eighty"), "{message}");
        assert!(message.contains("an integer from 0 to 65535"), "{message}");
    }

    #[test]
    fn out_of_range_integer_is_rejected() {
        let env = Env::from_pairs([("DATABASE_MAX_CONNECTIONS", "0")]);
        assert!(
            env.int_in_or::<u32>("DATABASE_MAX_CONNECTIONS", 1..=1000, 10)
                .is_err()
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("LOG_LEVEL", "  ")]);
        assert_eq!(env.raw("LOG_LEVEL"), None);
    }

    #[test]
    fn durations_and_booleans_parse() {
        let env = Env::from_pairs([("T", "250ms"), ("B", "off"), ("X", "maybe")]);
        assert_eq!(
            env.duration_or("T", Duration::ZERO).unwrap(),
            Duration::from_millis(250)
        );
        assert!(!env.bool_or("B", true).unwrap());
        assert!(env.bool_or("X", true).is_err());
        assert!(env.duration_or("B", Duration::ZERO).is_err());
    }

    #[test]
    fn urls_must_be_http() {
        let env = Env::from_pairs([("A", "http://x/graphql"), ("B", "ftp://x")]);
        assert_eq!(
            env.http_url("A", "a URL").unwrap().as_deref(),
            Some("http://x/graphql")
        );
        assert!(env.http_url("B", "a URL").is_err());
        assert_eq!(env.http_url("C", "a URL").unwrap(), None);
    }

    #[test]
    fn first_raw_prefers_the_specific_variable() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://shared"),
            ("PRODUCT_DATABASE_URL", "postgres://own"),
        ]);
        assert_eq!(
            env.first_raw(&["PRODUCT_DATABASE_URL", "DATABASE_URL"]),
            Some(("PRODUCT_DATABASE_URL", "postgres://own"))
        );
    }
}
