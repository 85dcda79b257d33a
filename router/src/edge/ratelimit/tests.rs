//! Settings, the layer over an in-memory limiter, and the Redis limiter
//! against the real Redis at `TEST_REDIS_URL` (default redis://127.0.0.1:6379).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ConnectionAddr, ConnectionInfo};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use shopgraph_core::config::Env;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service, ServiceExt};

use super::layer::{RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET};
use super::*;

// ---------------------------------------------------------------- helpers

fn settings(pairs: &[(&str, &str)]) -> RateLimitSettings {
    RateLimitSettings::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap()
}

fn anonymous_keys() -> KeyResolver {
    KeyResolver::new(Arc::new(|_: &http::Extensions, _: &HeaderMap| None), None)
}

/// The layer around an inner service that counts the requests reaching it.
fn limited(
    limiter: Arc<ClientRateLimiter>,
) -> (
    impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let inner = tower::service_fn(move |_: Request<Body>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>((StatusCode::OK, "{\"data\":{}}").into_response()) }
    });
    let layer = RateLimitLayer::new(limiter, anonymous_keys());
    (layer.layer(inner), reached)
}

fn from_peer(peer: &str) -> Request<Body> {
    let mut request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"query\":\"{__typename}\"}"))
        .unwrap();
    let addr: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

fn header_u64(response: &Response, name: impl header::AsHeaderName) -> u64 {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("missing numeric header in {:?}", response.headers()))
}

async fn send<S>(service: &mut S, request: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    service.ready().await.unwrap().call(request).await.unwrap()
}

fn redis_url() -> String {
    crate::test_redis_url()
}

/// A `ConnectionManager` as the router should build one: short connect and
/// response timeouts, few reconnect attempts, connected lazily.
fn manager_for(info: ConnectionInfo) -> ConnectionManager {
    let client = ::redis::Client::open(info).unwrap();
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(250)))
        .set_response_timeout(Some(Duration::from_millis(250)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_lazy_with_config(client, config).unwrap()
}

fn redis_info() -> ConnectionInfo {
    ::redis::Client::open(redis_url())
        .unwrap()
        .get_connection_info()
        .clone()
}

/// A prefix no other test (or test run) uses.
fn unique_prefix() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "shopgraph-test:ratelimit:{}:{nanos}:{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

async fn redis_keys(prefix: &str) -> Vec<String> {
    let mut connection = manager_for(redis_info());
    ::redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

async fn delete_keys(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if !keys.is_empty() {
        let mut connection = manager_for(redis_info());
        let _: () = ::redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    assert!(redis_keys(prefix).await.is_empty());
}

fn redis_settings(prefix: &str, requests: &str, window: &str, burst: &str) -> RateLimitSettings {
    settings(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_REQUESTS", requests),
        ("RATE_LIMIT_WINDOW", window),
        ("RATE_LIMIT_BURST", burst),
        ("RATE_LIMIT_KEY_PREFIX", prefix),
        // Generous: these tests check sharing, not latency.
        ("RATE_LIMIT_REDIS_TIMEOUT", "2s"),
    ])
}

/// Counts `metrics` counters by name (labels summed), installed for the
/// current thread only, so parallel tests do not see each other.
#[derive(Default)]
struct CountingRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl CountingRecorder {
    fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let counter = Arc::clone(
            self.counters
                .lock()
                .unwrap()
                .entry(key.name().to_owned())
                .or_default(),
        );
        metrics::Counter::from_arc(counter)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Log lines written while the returned guard lives (this thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self, level: &str, containing: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|line| line.contains(level) && line.contains(containing))
            .count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- settings

#[test]
fn defaults_are_opt_in_100_per_minute_burst_10() {
    let settings = RateLimitSettings::from_env(&Env::default()).unwrap();
    assert_eq!(settings, RateLimitSettings::default());
    assert!(!settings.enabled);
    assert_eq!(settings.requests, 100);
    assert_eq!(settings.window, Duration::from_secs(60));
    assert_eq!(settings.burst, 10);
    assert_eq!(settings.trusted_proxy_header, None);
    assert_eq!(settings.redis_timeout, Duration::from_millis(100));
    assert_eq!(settings.key_prefix, "shopgraph:ratelimit");
    assert_eq!(settings.emission_interval(), Duration::from_millis(600));
    assert_eq!(settings.policy(), "100;w=60;burst=10");
}

#[test]
fn every_variable_is_read() {
    let settings = settings(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1s"),
        ("RATE_LIMIT_BURST", "3"),
        ("RATE_LIMIT_TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ("RATE_LIMIT_REDIS_TIMEOUT", "50ms"),
        ("RATE_LIMIT_KEY_PREFIX", "shop:rl"),
    ]);
    assert!(settings.enabled);
    assert_eq!(settings.emission_interval(), Duration::from_millis(100));
    assert_eq!(settings.burst, 3);
    assert_eq!(
        settings.trusted_proxy_header.as_ref().map(|h| h.as_str()),
        Some("x-forwarded-for")
    );
    assert_eq!(settings.redis_timeout, Duration::from_millis(50));
    assert_eq!(settings.key_prefix, "shop:rl");
    assert_eq!(settings.policy(), "10;w=1;burst=3");
}

#[test]
fn invalid_values_name_their_variable() {
    let cases = [
        ("RATE_LIMIT_ENABLED", "maybe"),
        ("RATE_LIMIT_REQUESTS", "lots"),
        ("RATE_LIMIT_REQUESTS", "0"),
        ("RATE_LIMIT_WINDOW", "soon"),
        ("RATE_LIMIT_WINDOW", "0s"),
        ("RATE_LIMIT_WINDOW", "2days"),
        ("RATE_LIMIT_BURST", "0"),
        ("RATE_LIMIT_BURST", "-1"),
        ("RATE_LIMIT_TRUSTED_PROXY_HEADER", "not a header"),
        ("RATE_LIMIT_REDIS_TIMEOUT", "0ms"),
        ("RATE_LIMIT_REDIS_TIMEOUT", "1m"),
    ];
    for (var, value) in cases {
        let err = RateLimitSettings::from_env(&Env::from_pairs([(var, value)]))
            .expect_err(&format!("{var}={value} must be refused"));
        assert!(err.to_string().contains(var), "{var}={value}: {err}");
    }
    // More requests than microseconds in the window.
    let err = RateLimitSettings::from_env(&Env::from_pairs([
        ("RATE_LIMIT_REQUESTS", "2000"),
        ("RATE_LIMIT_WINDOW", "1ms"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("RATE_LIMIT_REQUESTS"), "{err}");
}

#[test]
fn a_hand_built_invalid_setting_cannot_build_a_limiter() {
    let settings = RateLimitSettings {
        burst: 0,
        ..RateLimitSettings::default()
    };
    let err = ClientRateLimiter::new(&settings, None).unwrap_err();
    assert!(err.to_string().contains("RATE_LIMIT_BURST"), "{err}");
}

// ---------------------------------------------------------------- layer, local

/// Counts past the pre-formatted small numbers are formatted per request,
/// and read the same. A day's window (one cell per 86.4 s) keeps any cell
/// from coming back during the test, so every count is exact.
#[tokio::test]
async fn headers_carry_large_budgets_exactly() {
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "1000"),
        ("RATE_LIMIT_WINDOW", "24h"),
        ("RATE_LIMIT_BURST", "1000"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let (mut service, _reached) = limited(limiter);
    // Reset: `sent` cells of 86.4 s to re-emit, rounded up: 87, 173, 260
    // (the last past the small numbers too).
    for sent in 1..=3_u64 {
        let response = send(&mut service, from_peer("192.0.2.7:1000")).await;
        assert_eq!(header_u64(&response, RATELIMIT_LIMIT), 1000);
        assert_eq!(header_u64(&response, RATELIMIT_REMAINING), 1000 - sent);
        assert_eq!(
            header_u64(&response, RATELIMIT_RESET),
            (864 * sent).div_ceil(10)
        );
    }
}

#[tokio::test]
async fn the_burst_passes_then_429_with_retry_after_and_headers() {
    let recorder = CountingRecorder::default();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1m"),
        ("RATE_LIMIT_BURST", "3"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let (mut service, reached) = limited(limiter);

    for expected_remaining in [2, 1, 0] {
        let response = send(&mut service, from_peer("192.0.2.1:1000")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_u64(&response, RATELIMIT_LIMIT), 3);
        assert_eq!(
            header_u64(&response, RATELIMIT_REMAINING),
            expected_remaining
        );
        let reset = header_u64(&response, RATELIMIT_RESET);
        // (3 - remaining) cells of 6 s each to re-emit.
        assert!(
            (1..=(3 - expected_remaining) * 6).contains(&reset),
            "reset {reset}"
        );
        assert_eq!(response.headers()[RATELIMIT_POLICY], "10;w=60;burst=3");
    }
    assert_eq!(reached.load(Ordering::SeqCst), 3);

    let mut request = from_peer("192.0.2.1:1001");
    request.headers_mut().insert(
        header::ACCEPT,
        "application/graphql-response+json".parse().unwrap(),
    );
    let refused = send(&mut service, request).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        3,
        "a refused request reached the service"
    );
    let retry_after = header_u64(&refused, header::RETRY_AFTER);
    assert!((1..=6).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header_u64(&refused, RATELIMIT_LIMIT), 3);
    assert_eq!(header_u64(&refused, RATELIMIT_REMAINING), 0);
    let reset = header_u64(&refused, RATELIMIT_RESET);
    assert!((12..=18).contains(&reset), "reset {reset}");
    assert_eq!(refused.headers()[RATELIMIT_POLICY], "10;w=60;burst=3");
    assert_eq!(
        refused.headers()[header::CONTENT_TYPE],
        "application/graphql-response+json"
    );
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("retryAfter: {retry_after} seconds")),
        "{message}"
    );
    assert!(body.get("data").is_none());
    assert_eq!(recorder.get("router_rate_limited_total"), 1);
    assert_eq!(recorder.get("router_rate_limit_fallback_total"), 0);
}

#[tokio::test]
async fn clients_have_independent_budgets() {
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1m"),
        ("RATE_LIMIT_BURST", "2"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let (mut service, _) = limited(limiter);
    for _ in 0..2 {
        assert_eq!(
            send(&mut service, from_peer("192.0.2.1:1")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&mut service, from_peer("192.0.2.1:2")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another address, and an API client behind the exhausted address.
    assert_eq!(
        send(&mut service, from_peer("192.0.2.2:1")).await.status(),
        StatusCode::OK
    );
    let mut with_key = from_peer("192.0.2.1:3");
    with_key
        .headers_mut()
        .insert("x-api-key", "partner-key".parse().unwrap());
    assert_eq!(send(&mut service, with_key).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_budget_refills_one_cell_per_interval() {
    // One cell per 100 ms, five at once.
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1s"),
        ("RATE_LIMIT_BURST", "5"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let (mut service, _) = limited(limiter);
    let first = Instant::now();
    let mut admitted = 0;
    while send(&mut service, from_peer("192.0.2.9:1")).await.status() == StatusCode::OK {
        admitted += 1;
        assert!(admitted <= 5, "more than the burst admitted");
    }
    assert_eq!(admitted, 5);
    let refused = send(&mut service, from_peer("192.0.2.9:1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Sub-second waits still say "retry after 1 second", never 0.
    assert_eq!(header_u64(&refused, header::RETRY_AFTER), 1);

    // After at least one interval, at least one cell, and never more than
    // the time since the first request could have re-emitted.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut refilled = 0;
    while send(&mut service, from_peer("192.0.2.9:1")).await.status() == StatusCode::OK {
        refilled += 1;
    }
    let elapsed_cells = first.elapsed().as_millis() / 100;
    assert!(refilled >= 1, "nothing refilled after 150 ms");
    assert!(
        refilled <= elapsed_cells,
        "{refilled} cells after {elapsed_cells} intervals"
    );

    // After the whole burst's worth of intervals, the bucket is full again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let full = send(&mut service, from_peer("192.0.2.9:1")).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(header_u64(&full, RATELIMIT_REMAINING), 4);
}

#[tokio::test]
async fn websocket_upgrades_are_counted_and_refused_like_any_request() {
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1m"),
        ("RATE_LIMIT_BURST", "2"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let upgrades = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&upgrades);
    let app = axum::Router::new()
        .route(
            "/graphql",
            axum::routing::get(move |ws: axum::extract::WebSocketUpgrade| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { ws.on_upgrade(|_socket| async {}) }
            }),
        )
        .layer(RateLimitLayer::new(limiter, anonymous_keys()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let url = format!("ws://{addr}/graphql");
    for _ in 0..2 {
        let (_socket, response) = tokio_tungstenite::connect_async(&url).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert!(response.headers().contains_key("ratelimit-remaining"));
    }
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
        other => panic!("the third connection must be refused, got {other:?}"),
    }
    assert_eq!(upgrades.load(Ordering::SeqCst), 2);
    server.abort();
}

#[tokio::test]
async fn sse_requests_pass_through_the_same_budget() {
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "10"),
        ("RATE_LIMIT_WINDOW", "1m"),
        ("RATE_LIMIT_BURST", "1"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, None).unwrap());
    let (mut service, reached) = limited(limiter);
    let sse = || {
        let mut request = from_peer("192.0.2.5:1");
        request
            .headers_mut()
            .insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        request
    };
    assert_eq!(send(&mut service, sse()).await.status(), StatusCode::OK);
    assert_eq!(
        send(&mut service, sse()).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- Redis

#[tokio::test]
async fn redis_refuses_after_the_burst_and_expires_its_keys() {
    let prefix = unique_prefix();
    let settings = redis_settings(&prefix, "100", "1h", "5");
    let limiter = ClientRateLimiter::new(&settings, Some(manager_for(redis_info()))).unwrap();
    let key = ClientKey::Subject("alice".into());

    for expected_remaining in (0..5).rev() {
        let decision = limiter.check(&key).await;
        assert!(decision.allowed);
        assert_eq!(decision.remaining, expected_remaining);
    }
    let refused = limiter.check(&key).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One cell is 36 s; the bucket is full 5 cells after the first request.
    assert!(refused.retry_after > Duration::from_secs(35), "{refused:?}");
    assert!(
        refused.retry_after <= Duration::from_secs(36),
        "{refused:?}"
    );
    assert!(
        refused.reset_after > Duration::from_secs(179),
        "{refused:?}"
    );
    assert!(
        refused.reset_after <= Duration::from_secs(180),
        "{refused:?}"
    );
    assert_eq!(limiter.fallback_decisions(), 0);
    assert!(!limiter.redis_degraded());
    // Nothing was decided in memory.
    assert!(limiter.local.is_empty());

    let stored = limiter.redis.as_ref().unwrap().storage_key(&key);
    assert_eq!(stored, format!("{prefix}:sub:alice"));
    let mut connection = manager_for(redis_info());
    let ttl_ms: i64 = ::redis::cmd("PTTL")
        .arg(&stored)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((170_000..=180_000).contains(&ttl_ms), "PTTL {ttl_ms}");
    delete_keys(&prefix).await;
}

#[tokio::test]
async fn api_keys_reach_redis_only_as_digests() {
    let prefix = unique_prefix();
    let settings = redis_settings(&prefix, "100", "1h", "5");
    let limiter = ClientRateLimiter::new(&settings, Some(manager_for(redis_info()))).unwrap();
    assert!(
        limiter
            .check(&ClientKey::api_key(b"top-secret"))
            .await
            .allowed
    );
    let keys = redis_keys(&prefix).await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with(&format!("{prefix}:key:")), "{keys:?}");
    assert!(!keys[0].contains("top-secret"));
    delete_keys(&prefix).await;
}

#[tokio::test]
async fn two_limiters_on_one_redis_share_one_budget() {
    let prefix = unique_prefix();
    let settings = redis_settings(&prefix, "100", "1h", "100");
    // Two connection managers: as two router processes would have.
    let a = Arc::new(ClientRateLimiter::new(&settings, Some(manager_for(redis_info()))).unwrap());
    let b = Arc::new(ClientRateLimiter::new(&settings, Some(manager_for(redis_info()))).unwrap());
    let key = ClientKey::ip("198.51.100.20".parse().unwrap());

    let checks = (0..300).map(|n| {
        let limiter = Arc::clone(if n % 2 == 0 { &a } else { &b });
        let key = key.clone();
        async move { limiter.check(&key).await.allowed }
    });
    let admitted = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|allowed| *allowed)
        .count();
    assert!((95..=105).contains(&admitted), "admitted {admitted} of 300");
    assert_eq!(a.fallback_decisions() + b.fallback_decisions(), 0);
    delete_keys(&prefix).await;
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_the_local_limiter() {
    let recorder = CountingRecorder::default();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let logs = Logs::default();
    let _logs = logs.capture();

    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let info = redis_info().set_addr(ConnectionAddr::Tcp("127.0.0.1".into(), closed_port));
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "100"),
        ("RATE_LIMIT_WINDOW", "1h"),
        ("RATE_LIMIT_BURST", "3"),
        ("RATE_LIMIT_REDIS_TIMEOUT", "100ms"),
    ]);
    let limiter = Arc::new(ClientRateLimiter::new(&settings, Some(manager_for(info))).unwrap());
    let (mut service, reached) = limited(Arc::clone(&limiter));

    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(send(&mut service, from_peer("192.0.2.77:1")).await.status());
    }
    // The local limiter limits: the burst passes, the rest is refused.
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    assert_eq!(&statuses[3..], &[StatusCode::TOO_MANY_REQUESTS; 7]);
    assert_eq!(reached.load(Ordering::SeqCst), 3);
    // Another client is not refused.
    assert_eq!(
        send(&mut service, from_peer("192.0.2.78:1")).await.status(),
        StatusCode::OK
    );
    // Only the first request waited for Redis; the rest decided at once.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    assert!(limiter.redis_degraded());
    assert_eq!(limiter.fallback_decisions(), 11);
    assert_eq!(recorder.get("router_rate_limit_fallback_total"), 11);
    assert_eq!(recorder.get("router_rate_limited_total"), 7);
    assert_eq!(logs.lines("WARN", "Redis rate limiter unavailable"), 1);
}

/// A TCP proxy to Redis that can be cut (existing connections closed, new
/// ones dropped at once) and restored.
struct CuttableProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let (accept_up, accept_connections) = (Arc::clone(&up), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropping `client` closes it
                }
                let cut = accept_connections.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            connections,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut connections = self.connections.lock().unwrap();
        connections.cancel();
        *connections = CancellationToken::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.connections.lock().unwrap().cancel();
    }
}

#[tokio::test]
async fn an_outage_logs_once_when_it_starts_and_once_when_it_ends() {
    let recorder = CountingRecorder::default();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let logs = Logs::default();
    let _logs = logs.capture();

    let direct = redis_info();
    let proxy = CuttableProxy::start(direct.addr().to_string()).await;
    let proxied = direct.set_addr(ConnectionAddr::Tcp("127.0.0.1".into(), proxy.addr.port()));
    let prefix = unique_prefix();
    let settings = settings(&[
        ("RATE_LIMIT_REQUESTS", "1000"),
        ("RATE_LIMIT_WINDOW", "1h"),
        ("RATE_LIMIT_BURST", "1000"),
        ("RATE_LIMIT_KEY_PREFIX", &prefix),
        ("RATE_LIMIT_REDIS_TIMEOUT", "500ms"),
    ]);
    let limiter = ClientRateLimiter::new(&settings, Some(manager_for(proxied)))
        .unwrap()
        .with_retry_every(Duration::from_millis(50));
    let key = ClientKey::Subject("outage".into());

    // Healthy: Redis decides.
    for _ in 0..3 {
        assert!(limiter.check(&key).await.allowed);
    }
    assert_eq!(limiter.fallback_decisions(), 0);

    // Cut: requests are still decided (locally), never all refused.
    proxy.cut();
    for _ in 0..20 {
        assert!(limiter.check(&key).await.allowed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(limiter.redis_degraded());
    let during_outage = limiter.fallback_decisions();
    assert!(during_outage >= 1, "{during_outage}");
    assert_eq!(
        recorder.get("router_rate_limit_fallback_total"),
        during_outage
    );

    // Restored: Redis decides again, within a few retries.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.redis_degraded() && Instant::now() < deadline {
        limiter.check(&key).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!limiter.redis_degraded(), "Redis never came back");
    let after = limiter.fallback_decisions();
    for _ in 0..3 {
        assert!(limiter.check(&key).await.allowed);
    }
    assert_eq!(limiter.fallback_decisions(), after);

    assert_eq!(logs.lines("WARN", "Redis rate limiter unavailable"), 1);
    assert_eq!(logs.lines("INFO", "Redis answers again"), 1);
    delete_keys(&prefix).await;
}
