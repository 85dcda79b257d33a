//! The persisted query manifest: operations registered ahead of time.
//!
//! Mobile apps cannot be updated on the server's schedule, so their
//! operations are extracted at build time into an Apollo persisted query
//! manifest and shipped to the router. Apps then send only an id; in
//! safelist mode, nothing outside the manifest runs at all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use super::hash::QueryHash;

/// The `format` value every Apollo persisted query manifest carries.
pub const MANIFEST_FORMAT: &str = "apollo-persisted-query-manifest";

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not JSON of the manifest's shape.
    #[error("not an Apollo persisted query manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// `format` is not [`MANIFEST_FORMAT`].
    #[error("`format` is {0:?}, expected \"{MANIFEST_FORMAT}\"")]
    Format(String),
    /// `version` is not 1, the only version published.
    #[error("`version` is {0}, expected 1")]
    Version(u64),
    /// An operation is unusable (empty id or body, unknown type).
    #[error("operation {index}: {problem}")]
    Operation {
        /// Position in `operations`, from 0.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// Two operations share an id but not a body: a request for that id
    /// would be ambiguous.
    #[error("id {0:?} is registered twice with different bodies")]
    DuplicateId(String),
}

/// The file as Apollo's tooling writes it; unknown fields are ignored so
/// that newer generators (which add metadata such as client names) still load.
#[derive(Deserialize)]
struct ManifestFile {
    format: String,
    version: u64,
    operations: Vec<OperationEntry>,
}

#[derive(Deserialize)]
struct OperationEntry {
    id: String,
    body: String,
    /// Checked for sanity only: a manifest with other kinds is not one we understand.
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// The registered operations, indexed for the three lookups a request needs.
#[derive(Default, Clone)]
pub struct Manifest {
    /// Operation id, exactly as written in the manifest → body.
    by_id: HashMap<String, Arc<str>>,
    /// SHA-256 of each body, and every id that is itself a SHA-256 in hex
    /// (matched case-insensitively) → body: clients sending APQ hashes of
    /// registered bodies find them without knowing the manifest's ids.
    by_hash: HashMap<QueryHash, Arc<str>>,
    /// Every body with surrounding whitespace trimmed: the safelist check
    /// for free-form query text.
    bodies: HashSet<Box<str>>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("operations", &self.by_id.len())
            .finish()
    }
}

impl Manifest {
    /// Reads and indexes the manifest file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, ManifestError> {
        let json = std::fs::read_to_string(path)?;
        Self::parse(&json)
    }

    /// Indexes a manifest given as JSON text.
    pub fn parse(json: &str) -> Result<Self, ManifestError> {
        let file: ManifestFile = serde_json::from_str(json)?;
        if file.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(file.format));
        }
        if file.version != 1 {
            return Err(ManifestError::Version(file.version));
        }
        let mut manifest = Self::default();
        for (index, entry) in file.operations.into_iter().enumerate() {
            let problem = |problem: &str| ManifestError::Operation {
                index,
                problem: problem.to_owned(),
            };
            if entry.id.trim().is_empty() {
                return Err(problem("`id` is empty"));
            }
            if entry.body.trim().is_empty() {
                return Err(problem("`body` is empty"));
            }
            if let Some(kind) = entry.kind.as_deref()
                && !matches!(kind, "query" | "mutation" | "subscription")
            {
                return Err(problem(&format!(
                    "`type` is {kind:?}, expected query, mutation or subscription"
                )));
            }
            manifest.insert(entry.id, entry.body)?;
        }
        Ok(manifest)
    }

    /// Registers persisted documents as GraphQL Code Generator's client
    /// preset writes them (`persisted-documents.json`: a JSON object from
    /// id to document text), so an app built with codegen needs no separate
    /// manifest to be sent by id.
    pub fn add_documents(&mut self, json: &str) -> Result<usize, ManifestError> {
        let documents: std::collections::BTreeMap<String, String> = serde_json::from_str(json)?;
        let count = documents.len();
        for (index, (id, body)) in documents.into_iter().enumerate() {
            if id.trim().is_empty() || body.trim().is_empty() {
                return Err(ManifestError::Operation {
                    index,
                    problem: "an empty id or document".to_owned(),
                });
            }
            self.insert(id, body)?;
        }
        Ok(count)
    }

    fn insert(&mut self, id: String, body: String) -> Result<(), ManifestError> {
        let body: Arc<str> = body.into();
        if let Some(existing) = self.by_id.get(&id) {
            if **existing != *body {
                return Err(ManifestError::DuplicateId(id));
            }
            return Ok(());
        }
        if let Some(hash) = QueryHash::parse(&id) {
            self.by_hash.insert(hash, body.clone());
        }
        self.by_hash.insert(QueryHash::of(&body), body.clone());
        self.bodies.insert(body.trim().into());
        self.by_id.insert(id, body);
        Ok(())
    }

    /// The body registered under `id`: a manifest id, or the SHA-256 of a
    /// registered body.
    pub fn lookup(&self, id: &str) -> Option<&Arc<str>> {
        self.by_id
            .get(id)
            .or_else(|| QueryHash::parse(id).and_then(|hash| self.by_hash.get(&hash)))
    }

    /// Whether `text` is exactly a registered body, ignoring whitespace
    /// around it (editors and clients add trailing newlines).
    pub fn contains_body(&self, text: &str) -> bool {
        self.bodies.contains(text.trim())
    }

    /// How many operations are registered.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the manifest registers no operation.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(operations: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&format!(
            r#"{{"format":"apollo-persisted-query-manifest","version":1,"operations":[{operations}]}}"#
        ))
    }

    #[test]
    fn ids_and_body_hashes_resolve() {
        let m = manifest(r#"{"id":"products-v1","name":"P","type":"query","body":"query P { products { id } }\n"}"#)
            .unwrap();
        assert_eq!(m.len(), 1);
        let body = m.lookup("products-v1").unwrap();
        assert_eq!(&**body, "query P { products { id } }\n");
        let hash = QueryHash::of("query P { products { id } }\n").to_string();
        assert_eq!(m.lookup(&hash).unwrap(), body);
        assert_eq!(m.lookup(&hash.to_uppercase()).unwrap(), body);
        assert!(m.lookup("products-v2").is_none());
        assert!(m.contains_body("  query P { products { id } }"));
        assert!(!m.contains_body("query P { products { id name } }"));
    }

    #[test]
    fn codegen_persisted_documents_add_to_a_manifest() {
        let mut m = manifest(r#"{"id":"a","body":"{ a }"}"#).unwrap();
        let hash = QueryHash::of("query B { b }").to_string();
        let added = m
            .add_documents(&format!(r#"{{"{hash}":"query B {{ b }}"}}"#))
            .unwrap();
        assert_eq!((added, m.len()), (1, 2));
        assert_eq!(&**m.lookup(&hash).unwrap(), "query B { b }");
        assert!(m.contains_body("query B { b }") && m.contains_body("{ a }"));
        assert!(matches!(
            m.add_documents(r#"{"a":"{ not a }"}"#),
            Err(ManifestError::DuplicateId(_))
        ));
        assert!(matches!(
            m.add_documents(r#"{"c":""}"#),
            Err(ManifestError::Operation { .. })
        ));
        assert!(matches!(
            m.add_documents(r#"["not", "a map"]"#),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn wrong_format_version_and_entries_are_refused() {
        let wrong_format = Manifest::parse(r#"{"format":"relay","version":1,"operations":[]}"#);
        assert!(matches!(wrong_format, Err(ManifestError::Format(_))));
        let wrong_version = Manifest::parse(
            r#"{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}"#,
        );
        assert!(matches!(wrong_version, Err(ManifestError::Version(2))));
        assert!(matches!(
            manifest(r#"{"id":"","body":"{ a }"}"#),
            Err(ManifestError::Operation { index: 0, .. })
        ));
        assert!(matches!(
            manifest(r#"{"id":"a","body":"{ a }","type":"fragment"}"#),
            Err(ManifestError::Operation { index: 0, .. })
        ));
        assert!(matches!(
            manifest(r#"{"id":"a","body":"{ a }"},{"id":"a","body":"{ b }"}"#),
            Err(ManifestError::DuplicateId(_))
        ));
        assert!(matches!(
            Manifest::parse("not json"),
            Err(ManifestError::Json(_))
        ));
    }
}
