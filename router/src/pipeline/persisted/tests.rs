//! Persisted queries against the real in-memory cache and a real Redis
//! (`TEST_REDIS_URL`, or redis://127.0.0.1:6379).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const PRODUCTS: &str = "query Products { products { id name } }";
const BASKET: &str = "query Basket { basket { id } }";

fn sha(text: &str) -> String {
    QueryHash::of(text).to_string()
}

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

fn memory_only(settings: PersistedSettings) -> PersistedQueries {
    PersistedQueries::new(settings, None)
}

fn manifest() -> Arc<Manifest> {
    let json = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            { "id": "products-v1", "name": "Products", "type": "query", "body": PRODUCTS },
        ],
    });
    Arc::new(Manifest::parse(&json.to_string()).unwrap())
}

fn safelist(allow_text: bool) -> PersistedQueries {
    memory_only(PersistedSettings {
        manifest: Some(manifest()),
        safelist: true,
        allow_text,
        ..PersistedSettings::default()
    })
}

#[tokio::test]
async fn apq_round_trip_in_memory() {
    let pq = memory_only(PersistedSettings::default());
    let hash = sha(PRODUCTS);

    let miss = pq.resolve(None, Some(&apq(&hash))).await.unwrap_err();
    assert_eq!(miss, PersistedError::NotFound);
    assert_eq!(miss.to_string(), "PersistedQueryNotFound");
    assert_eq!(miss.code(), ErrorCode::PersistedQueryNotFound);
    assert_eq!(miss.status(), StatusCode::OK);

    let registered = pq.resolve(Some(PRODUCTS), Some(&apq(&hash))).await;
    assert_eq!(registered, Ok(None), "the client's own text runs");

    let hit = pq.resolve(None, Some(&apq(&hash))).await.unwrap();
    assert_eq!(hit.as_deref(), Some(PRODUCTS));

    // Upper-case hex names the same query; blank text means "no text".
    let upper = pq
        .resolve(Some(" "), Some(&apq(&hash.to_uppercase())))
        .await;
    assert_eq!(upper.unwrap().as_deref(), Some(PRODUCTS));

    // The pipeline's one-line form.
    let mut query = None;
    pq.apply(&mut query, Some(&apq(&hash))).await.unwrap();
    assert_eq!(query.as_deref(), Some(PRODUCTS));
    let mut plain = Some(BASKET.to_owned());
    pq.apply(&mut plain, None).await.unwrap();
    assert_eq!(plain.as_deref(), Some(BASKET));
}

#[tokio::test]
async fn hash_mismatch_is_refused_and_not_stored() {
    let pq = memory_only(PersistedSettings::default());
    let hash = sha(BASKET);
    let err = pq
        .resolve(Some(PRODUCTS), Some(&apq(&hash)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PersistedQueryHashMismatch);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(
        pq.resolve(None, Some(&apq(&hash))).await,
        Err(PersistedError::NotFound)
    );
}

#[tokio::test]
async fn malformed_persisted_query_extensions_are_bad_requests() {
    let pq = memory_only(PersistedSettings::default());
    let hash = sha(PRODUCTS);

    let v2 = json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } });
    let err = pq.resolve(None, Some(&v2)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PersistedQueryNotSupported);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("version 2"), "{err}");

    let cases = [
        (
            json!({ "persistedQuery": { "version": "1", "sha256Hash": hash } }),
            "version",
        ),
        (
            json!({ "persistedQuery": { "sha256Hash": hash } }),
            "version",
        ),
        (json!({ "persistedQuery": { "version": 1 } }), "sha256Hash"),
        (
            json!({ "persistedQuery": { "version": 1, "sha256Hash": 7 } }),
            "sha256Hash",
        ),
        (apq("abc123"), "64 hexadecimal digits"),
        (apq(&"z".repeat(64)), "64 hexadecimal digits"),
        (json!({ "persistedQuery": "abc" }), "must be an object"),
        (
            json!(["persistedQuery"]),
            "`extensions` must be a JSON object",
        ),
    ];
    for (extensions, expected) in cases {
        let err = pq.resolve(None, Some(&extensions)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{extensions}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains(expected), "{extensions}: {err}");
    }

    // Absent or null persistedQuery: an ordinary request.
    let other = json!({ "persistedQuery": null, "tracing": true });
    assert_eq!(pq.resolve(Some(BASKET), Some(&other)).await, Ok(None));
    assert_eq!(pq.resolve(Some(BASKET), Some(&Value::Null)).await, Ok(None));
}

#[tokio::test]
async fn disabled_apq_refuses_hashes_but_runs_plain_queries() {
    let pq = memory_only(PersistedSettings {
        apq_enabled: false,
        ..PersistedSettings::default()
    });
    let hash = sha(PRODUCTS);
    for query in [None, Some(PRODUCTS)] {
        let err = pq.resolve(query, Some(&apq(&hash))).await.unwrap_err();
        assert_eq!(err, PersistedError::NotSupported);
        assert_eq!(err.to_string(), "PersistedQueryNotSupported");
        assert_eq!(err.code(), ErrorCode::PersistedQueryNotSupported);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(pq.resolve(Some(PRODUCTS), None).await, Ok(None));
}

#[tokio::test]
async fn manifest_ids_resolve_in_every_mode() {
    let open = memory_only(PersistedSettings {
        manifest: Some(manifest()),
        ..PersistedSettings::default()
    });
    let no_apq = memory_only(PersistedSettings {
        manifest: Some(manifest()),
        apq_enabled: false,
        ..PersistedSettings::default()
    });
    for pq in [&open, &no_apq, &safelist(true), &safelist(false)] {
        for id in ["products-v1".to_owned(), sha(PRODUCTS)] {
            let body = pq.resolve(None, Some(&apq(&id))).await.unwrap();
            assert_eq!(body.as_deref(), Some(PRODUCTS), "{pq:?} {id}");
        }
        // An id sent with its own body (whitespace aside) is fine...
        let with_text = pq
            .resolve(
                Some("\n  query Products { products { id name } }\n"),
                Some(&apq("products-v1")),
            )
            .await;
        assert_eq!(with_text.unwrap().as_deref(), Some(PRODUCTS));
        // ...with another text it is a mismatch.
        let err = pq
            .resolve(Some(BASKET), Some(&apq("products-v1")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PersistedQueryHashMismatch);
    }
    // Outside safelist mode, unknown hashes follow the APQ protocol.
    assert_eq!(
        open.resolve(None, Some(&apq(&sha(BASKET)))).await,
        Err(PersistedError::NotFound)
    );
    assert_eq!(
        no_apq.resolve(None, Some(&apq(&sha(BASKET)))).await,
        Err(PersistedError::NotSupported)
    );
}

#[tokio::test]
async fn safelist_runs_only_registered_operations() {
    let pq = safelist(true);

    let err = pq
        .resolve(None, Some(&apq(&sha(BASKET))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PersistedQueryNotInList);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let err = pq.resolve(None, Some(&apq("basket-v1"))).await.unwrap_err();
    assert_eq!(err, PersistedError::NotInList("basket-v1".to_owned()));

    let err = pq.resolve(Some(BASKET), None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::QueryNotInSafelist);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);

    // Registered text runs, surrounding whitespace aside; inner changes do not.
    let registered = format!("\n\t{PRODUCTS}  \n");
    assert_eq!(pq.resolve(Some(&registered), None).await, Ok(None));
    let altered = PRODUCTS.replace("id name", "id  name");
    assert_eq!(
        pq.resolve(Some(&altered), None).await,
        Err(PersistedError::NotInSafelist)
    );

    // APQ registration of unregistered text is refused and stores nothing.
    assert_eq!(
        pq.resolve(Some(BASKET), Some(&apq(&sha(BASKET)))).await,
        Err(PersistedError::NotInSafelist)
    );
    assert_eq!(
        pq.resolve(None, Some(&apq(&sha(BASKET)))).await,
        Err(PersistedError::NotInList(sha(BASKET)))
    );
    // APQ "registration" of registered text (hashed with extra whitespace) runs.
    assert_eq!(
        pq.resolve(Some(&registered), Some(&apq(&sha(&registered))))
            .await,
        Ok(None)
    );

    // No query at all is left for the pipeline to report.
    assert_eq!(pq.resolve(None, None).await, Ok(None));
}

#[tokio::test]
async fn ids_only_safelist_refuses_all_text() {
    let pq = safelist(false);
    let err = pq.resolve(Some(PRODUCTS), None).await.unwrap_err();
    assert_eq!(err, PersistedError::IdRequired);
    assert_eq!(err.code(), ErrorCode::QueryNotInSafelist);
    assert_eq!(
        pq.resolve(Some(PRODUCTS), Some(&apq(&sha(&format!("{PRODUCTS} ")))))
            .await,
        Err(PersistedError::NotInList(sha(&format!("{PRODUCTS} "))))
    );
    let body = pq.resolve(None, Some(&apq("products-v1"))).await.unwrap();
    assert_eq!(body.as_deref(), Some(PRODUCTS));
}

/// The shop's own operations registry (`schema/operations.json`, written by
/// `schema/operations.mjs`) is a manifest this router runs in safelist
/// mode: every operation by its id (the SHA-256 of its body) and by its
/// text, and nothing else.
#[tokio::test]
async fn the_shops_operations_registry_runs_in_safelist_mode() {
    let registry = include_str!("../../../../schema/operations.json");
    let pq = memory_only(PersistedSettings {
        manifest: Some(Arc::new(Manifest::parse(registry).unwrap())),
        safelist: true,
        allow_text: true,
        ..PersistedSettings::default()
    });
    let registry: Value = serde_json::from_str(registry).unwrap();
    let operations = registry["operations"].as_array().unwrap();
    assert!(operations.len() >= 10, "{} operations", operations.len());
    for operation in operations {
        let (id, body) = (
            operation["id"].as_str().unwrap(),
            operation["body"].as_str().unwrap(),
        );
        assert_eq!(
            id,
            sha(body),
            "{} is registered under its hash",
            operation["name"]
        );
        let resolved = pq.resolve(None, Some(&apq(id))).await.unwrap();
        assert_eq!(resolved.as_deref(), Some(body));
        assert_eq!(pq.resolve(Some(body), None).await, Ok(None));
    }
    assert_eq!(
        pq.resolve(Some(BASKET), None).await,
        Err(PersistedError::NotInSafelist)
    );
}

#[tokio::test]
async fn lru_of_one_keeps_only_the_latest_query() {
    let pq = memory_only(PersistedSettings {
        cache_size: NonZeroUsize::MIN,
        ..PersistedSettings::default()
    });
    for text in [PRODUCTS, BASKET] {
        assert_eq!(
            pq.resolve(Some(text), Some(&apq(&sha(text)))).await,
            Ok(None)
        );
    }
    assert_eq!(
        pq.resolve(None, Some(&apq(&sha(PRODUCTS)))).await,
        Err(PersistedError::NotFound)
    );
    let latest = pq.resolve(None, Some(&apq(&sha(BASKET)))).await.unwrap();
    assert_eq!(latest.as_deref(), Some(BASKET));
}

// ---- settings ---------------------------------------------------------------

fn temp_file(contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.json", unique("manifest")));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn settings_default_when_unset() {
    let settings = PersistedSettings::from_env(&Env::default()).unwrap();
    assert!(settings.apq_enabled);
    assert_eq!(settings.cache_size.get(), 2000);
    assert_eq!(settings.redis_ttl, Duration::from_secs(86_400));
    assert_eq!(settings.key_prefix, "shopgraph:apq");
    assert!(settings.manifest.is_none());
    assert!(!settings.safelist);
    assert!(settings.allow_text);
}

#[test]
fn settings_read_every_variable() {
    let manifest = temp_file(
        &json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": "a", "name": "A", "type": "query", "body": "{ a }" }],
        })
        .to_string(),
    );
    let env = Env::from_pairs([
        ("APQ_ENABLED", "false"),
        ("APQ_CACHE_SIZE", "10"),
        ("APQ_REDIS_TTL", "1h"),
        ("APQ_KEY_PREFIX", "shop:pq"),
        ("PERSISTED_QUERIES_MANIFEST", manifest.to_str().unwrap()),
        ("PERSISTED_QUERIES_SAFELIST", "true"),
        ("PERSISTED_QUERIES_ALLOW_TEXT", "false"),
    ]);
    let settings = PersistedSettings::from_env(&env);
    std::fs::remove_file(&manifest).unwrap();
    let settings = settings.unwrap();
    assert!(!settings.apq_enabled);
    assert_eq!(settings.cache_size.get(), 10);
    assert_eq!(settings.redis_ttl, Duration::from_secs(3600));
    assert_eq!(settings.key_prefix, "shop:pq");
    assert_eq!(settings.manifest.as_ref().map(|m| m.len()), Some(1));
    assert!(settings.safelist);
    assert!(!settings.allow_text);
}

#[test]
fn bad_settings_name_their_variable() {
    let not_a_manifest = temp_file(r#"{"format":"relay","version":1,"operations":[]}"#);
    let not_a_manifest = not_a_manifest.to_str().unwrap().to_owned();
    let cases = [
        (vec![("APQ_ENABLED", "maybe")], "APQ_ENABLED"),
        (vec![("APQ_CACHE_SIZE", "0")], "APQ_CACHE_SIZE"),
        (vec![("APQ_CACHE_SIZE", "lots")], "APQ_CACHE_SIZE"),
        (vec![("APQ_REDIS_TTL", "10ms")], "APQ_REDIS_TTL"),
        (vec![("APQ_REDIS_TTL", "forever")], "APQ_REDIS_TTL"),
        (
            vec![("PERSISTED_QUERIES_MANIFEST", "/nonexistent/manifest.json")],
            "PERSISTED_QUERIES_MANIFEST",
        ),
        (
            vec![("PERSISTED_QUERIES_MANIFEST", not_a_manifest.as_str())],
            "PERSISTED_QUERIES_MANIFEST",
        ),
        (
            vec![("PERSISTED_QUERIES_SAFELIST", "true")],
            "PERSISTED_QUERIES_MANIFEST",
        ),
        (
            vec![("PERSISTED_QUERIES_ALLOW_TEXT", "false")],
            "PERSISTED_QUERIES_ALLOW_TEXT",
        ),
    ];
    let mut failures = Vec::new();
    for (pairs, var) in cases {
        match PersistedSettings::from_env(&Env::from_pairs(pairs.clone())) {
            Err(err) if err.to_string().contains(var) => {}
            other => failures.push(format!("{pairs:?}: {other:?}")),
        }
    }
    std::fs::remove_file(&not_a_manifest).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---- Redis ------------------------------------------------------------------

fn redis_url() -> String {
    crate::test_redis_url()
}

fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "shopgraph-test-{what}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique key prefix whose keys are deleted when the test ends, even when
/// it fails.
struct TestPrefix(String);

impl TestPrefix {
    fn new() -> Self {
        Self(unique("apq"))
    }

    fn settings(&self) -> PersistedSettings {
        PersistedSettings {
            key_prefix: self.0.clone(),
            ..PersistedSettings::default()
        }
    }

    fn key(&self, text: &str) -> String {
        format!("{}:{}", self.0, sha(text))
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let Ok(mut redis) = redis::Client::open(redis_url()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut redis)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut redis);
        }
    }
}

async fn redis_command<T: redis::FromRedisValue>(cmd: &mut redis::Cmd) -> T {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut connection).await.unwrap()
}

#[tokio::test]
async fn queries_registered_on_one_replica_are_found_by_another() {
    let prefix = TestPrefix::new();
    let first = PersistedQueries::new(
        prefix.settings(),
        Some(connect_redis(&redis_url()).unwrap()),
    );
    let second = PersistedQueries::new(
        prefix.settings(),
        Some(connect_redis(&redis_url()).unwrap()),
    );
    let hash = sha(PRODUCTS);

    assert_eq!(
        second.resolve(None, Some(&apq(&hash))).await,
        Err(PersistedError::NotFound)
    );
    assert_eq!(
        first.resolve(Some(PRODUCTS), Some(&apq(&hash))).await,
        Ok(None)
    );

    let stored: Option<String> = redis_command(redis::cmd("GET").arg(prefix.key(PRODUCTS))).await;
    assert_eq!(stored.as_deref(), Some(PRODUCTS));
    let ttl: i64 = redis_command(redis::cmd("TTL").arg(prefix.key(PRODUCTS))).await;
    assert!(ttl > 86_000 && ttl <= 86_400, "TTL {ttl}");

    let found = second.resolve(None, Some(&apq(&hash))).await.unwrap();
    assert_eq!(found.as_deref(), Some(PRODUCTS));

    // The Redis hit filled the second replica's memory: it survives the key.
    let _: i64 = redis_command(redis::cmd("DEL").arg(prefix.key(PRODUCTS))).await;
    let remembered = second.resolve(None, Some(&apq(&hash))).await.unwrap();
    assert_eq!(remembered.as_deref(), Some(PRODUCTS));
}

#[tokio::test]
async fn redis_entries_that_do_not_match_their_hash_are_ignored() {
    let prefix = TestPrefix::new();
    let pq = PersistedQueries::new(
        prefix.settings(),
        Some(connect_redis(&redis_url()).unwrap()),
    );
    let _: () = redis_command(redis::cmd("SET").arg(prefix.key(PRODUCTS)).arg(BASKET)).await;
    assert_eq!(
        pq.resolve(None, Some(&apq(&sha(PRODUCTS)))).await,
        Err(PersistedError::NotFound)
    );
}

/// Checks that a resolver whose Redis is broken still registers and serves
/// from memory, without errors and without waiting on Redis.
async fn works_from_memory(redis: ConnectionManager) {
    let pq = PersistedQueries::new(PersistedSettings::default(), Some(redis));
    let hash = sha(PRODUCTS);
    let started = Instant::now();
    assert_eq!(
        pq.resolve(None, Some(&apq(&hash))).await,
        Err(PersistedError::NotFound)
    );
    assert_eq!(
        pq.resolve(Some(PRODUCTS), Some(&apq(&hash))).await,
        Ok(None)
    );
    for _ in 0..50 {
        let hit = pq.resolve(None, Some(&apq(&hash))).await.unwrap();
        assert_eq!(hit.as_deref(), Some(PRODUCTS));
        assert_eq!(
            pq.resolve(None, Some(&apq(&sha(BASKET)))).await,
            Err(PersistedError::NotFound)
        );
    }
    // One bounded Redis call, then the back-off skips Redis entirely.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_memory() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    works_from_memory(connect_redis(&format!("redis://127.0.0.1:{port}")).unwrap()).await;
}

#[tokio::test]
async fn silent_redis_falls_back_to_memory() {
    // Accepts connections and never answers: every call hits the timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    works_from_memory(connect_redis(&format!("redis://127.0.0.1:{port}")).unwrap()).await;
    accept.abort();
}
