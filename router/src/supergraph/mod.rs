//! Beside the request path, read by every request: the loaded supergraph
//! and its hot reload.
//!
//! A [`Supergraph`] bundles everything derived from one supergraph SDL: the
//! planner (with its plan cache), the executor's view of the API schema,
//! the introspection index and the subgraph client. Requests take an
//! `Arc<Supergraph>` snapshot when they start, so swapping in a new one
//! ([`SupergraphHandle::replace`]) never disturbs requests in flight: they
//! finish on the supergraph they started with.
//!
//! The SDL comes from a file (re-read when it changes), from a URL polled
//! with `If-None-Match` ([`remote`]) or, in `dev` outside a checkout, from
//! the copy built into the binary. Whatever the source, a supergraph that
//! cannot be read or loaded is logged and skipped: the router keeps
//! serving the last good one.

pub mod remote;

use shopgraph_core::hop::HopSigner;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::executor::Executor;
use crate::executor::schema::SchemaIndex;
use crate::planner::PlannerSettings;
use crate::planner::introspection::IntrospectionSchema;
use crate::planner::{LoadError, QueryPlanner};
use crate::subgraph::client::HttpFetcher;
use crate::traffic::{self, Upstreams};
pub use remote::SupergraphUrl;
use remote::{Fetched, RemoteSupergraph};

/// The supergraph committed with this build: `shopgraph dev` falls back to
/// it when run outside a checkout.
pub const EMBEDDED_SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");

/// Where the supergraph comes from.
#[derive(Debug, Clone)]
pub enum SupergraphSource {
    /// A file, watched for changes (hot reload).
    File(PathBuf),
    /// A URL, polled with `If-None-Match` (`SUPERGRAPH_URL`).
    Url(SupergraphUrl),
    /// The supergraph compiled into the binary (dev outside a checkout).
    Embedded,
}

/// The part of the router's settings a supergraph is built from
/// ([`crate::config::RouterSettings::supergraph_settings`]); its own type
/// so this module does not depend on the config, which depends on the
/// stages.
#[derive(Debug, Clone)]
pub struct SupergraphSettings {
    /// The supergraph to serve.
    pub source: SupergraphSource,
    /// How often the file or URL is checked for changes.
    pub poll_interval: Duration,
    /// Plan cache, planning time and operation limits.
    pub planner: PlannerSettings,
    /// Limit of one subgraph request.
    pub subgraph_timeout: Duration,
    /// Per-subgraph overrides of `subgraph_timeout`.
    pub subgraph_timeouts: BTreeMap<String, Duration>,
    /// Whether identical in-flight query fetches share one request.
    pub subgraph_dedupe: bool,
    /// Whether subgraphs are asked for gzip answers.
    pub subgraph_compression: bool,
    /// Signs every subgraph request (the signed hop).
    pub hop_signer: HopSigner,
}

/// Why a supergraph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The file could not be read.
    #[error(
        "cannot read the supergraph {path} (set SUPERGRAPH_PATH to the composed supergraph file, e.g. schema/supergraph.graphql of a checkout)"
    )]
    Read {
        /// The file.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The URL could not be fetched (transport error, status other than
    /// 200 or 304, too large, not UTF-8).
    #[error("cannot fetch the supergraph from {url}: {reason}")]
    Fetch {
        /// The source.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The SDL is not a usable supergraph.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Everything derived from one supergraph SDL.
pub struct Supergraph {
    /// Validation, planning and the plan cache.
    pub planner: Arc<QueryPlanner>,
    /// Field types and possible types for projection.
    pub schema: SchemaIndex,
    /// Answers `__schema` / `__type`.
    pub introspection: IntrospectionSchema,
    /// Runs plans against the subgraphs.
    pub executor: Executor,
    /// The subgraphs' replicas, breakers and budgets (shared by every
    /// supergraph the process loads).
    pub upstreams: Arc<Upstreams>,
    fingerprint: u64,
}

impl Supergraph {
    /// Builds the bundle for `sdl`; its subgraphs' replicas are the SDL's
    /// URLs unless `<SUBGRAPH>_SERVICE_URL(S)` override them.
    pub fn build(
        sdl: &str,
        settings: &SupergraphSettings,
        upstreams: &Arc<Upstreams>,
    ) -> Result<Self, SupergraphError> {
        let planner = QueryPlanner::from_supergraph(sdl, settings.planner.clone())?;
        upstreams.sync(&planner.subgraph_urls());
        let http = HttpFetcher::new(settings.subgraph_timeout, settings.hop_signer.clone())
            .with_compression(settings.subgraph_compression)
            .with_timeouts(settings.subgraph_timeouts.clone());
        let fetcher = traffic::fetch_stack(upstreams, http, settings.subgraph_dedupe);
        Ok(Self {
            schema: SchemaIndex::new(planner.api_schema()),
            introspection: IntrospectionSchema::new(planner.api_schema()),
            executor: Executor::new(fetcher),
            planner: Arc::new(planner),
            upstreams: Arc::clone(upstreams),
            fingerprint: fingerprint(sdl),
        })
    }
}

/// The current supergraph, swappable while requests run.
#[derive(Clone)]
pub struct SupergraphHandle {
    current: Arc<RwLock<Arc<Supergraph>>>,
}

impl SupergraphHandle {
    /// Starts with `supergraph`.
    pub fn new(supergraph: Supergraph) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(supergraph))),
        }
    }

    /// The supergraph new requests should use.
    pub fn current(&self) -> Arc<Supergraph> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Makes `supergraph` the one new requests use.
    pub fn replace(&self, supergraph: Supergraph) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(supergraph);
    }
}

/// Reads a [`SupergraphSource`], keeping what it needs to ask for changes
/// only (a URL's `ETag`).
pub enum SourceReader {
    /// A file, read in full each time.
    File(PathBuf),
    /// A URL, asked with `If-None-Match`.
    Remote(RemoteSupergraph),
    /// The copy in the binary: read once, never changes.
    Embedded,
}

impl SourceReader {
    /// A reader for `source`.
    pub fn new(source: &SupergraphSource) -> Result<Self, SupergraphError> {
        Ok(match source {
            SupergraphSource::File(path) => Self::File(path.clone()),
            SupergraphSource::Url(url) => Self::Remote(RemoteSupergraph::new(url.clone())?),
            SupergraphSource::Embedded => Self::Embedded,
        })
    }

    /// The first SDL, to start with; a URL is retried for its startup
    /// timeout.
    pub async fn read_at_start(&mut self) -> Result<String, SupergraphError> {
        match self {
            Self::File(path) => read_file(path).await,
            Self::Remote(remote) => remote.fetch_at_start().await,
            Self::Embedded => Ok(EMBEDDED_SUPERGRAPH.to_owned()),
        }
    }

    /// One poll: the SDL and its `ETag`, or `None` when the source says
    /// nothing changed.
    async fn poll(&self) -> Result<Option<(String, Option<http::HeaderValue>)>, SupergraphError> {
        match self {
            Self::File(path) => read_file(path).await.map(|sdl| Some((sdl, None))),
            Self::Remote(remote) => match remote.fetch().await? {
                (Fetched::Unchanged, _) => Ok(None),
                (Fetched::Sdl(sdl), etag) => Ok(Some((sdl, etag))),
            },
            Self::Embedded => Ok(None),
        }
    }

    /// The source's version now served: a URL is asked `If-None-Match` it.
    fn accept(&mut self, etag: Option<http::HeaderValue>) {
        if let Self::Remote(remote) = self {
            remote.accept(etag);
        }
    }

    /// Where the SDL comes from, for logs.
    fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Remote(remote) => remote.url().to_string(),
            Self::Embedded => "(embedded)".to_owned(),
        }
    }
}

async fn read_file(path: &std::path::Path) -> Result<String, SupergraphError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| SupergraphError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// Checks the source every `settings.poll_interval` and swaps in a new
/// [`Supergraph`] when its content changes. A source that cannot be read,
/// or serves a supergraph that fails to load, is logged and counted: the
/// router keeps serving the last good one, and a rejected supergraph is not
/// rebuilt until its content changes again.
pub async fn watch(
    handle: SupergraphHandle,
    settings: SupergraphSettings,
    upstreams: Arc<Upstreams>,
    mut reader: SourceReader,
    stop: CancellationToken,
) {
    if matches!(reader, SourceReader::Embedded) {
        return;
    }
    let source = reader.describe();
    let mut timer = tokio::time::interval(settings.poll_interval.max(Duration::from_millis(50)));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the start just read the source.
    timer.tick().await;
    let mut rejected = None;
    // Whether the last read failed: a source that stays down is logged
    // once, not every poll.
    let mut unreachable = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        let (sdl, etag) = match reader.poll().await {
            Ok(Some(read)) => {
                if unreachable {
                    tracing::info!(%source, "supergraph source reachable again");
                }
                unreachable = false;
                read
            }
            Ok(None) => {
                unreachable = false;
                continue;
            }
            Err(err) => {
                metrics::counter!("router_supergraph_reloads_total", "outcome" => "unreachable")
                    .increment(1);
                if !unreachable {
                    tracing::warn!(error = %err, "supergraph source unreadable; keeping the current supergraph");
                }
                unreachable = true;
                continue;
            }
        };
        let print = fingerprint(&sdl);
        if print == handle.current().fingerprint {
            reader.accept(etag);
            continue;
        }
        if rejected == Some(print) {
            continue;
        }
        let build_settings = settings.clone();
        let build_upstreams = Arc::clone(&upstreams);
        let built = tokio::task::spawn_blocking(move || {
            Supergraph::build(&sdl, &build_settings, &build_upstreams)
        })
        .await;
        match built {
            Ok(Ok(supergraph)) => {
                handle.replace(supergraph);
                reader.accept(etag);
                metrics::counter!("router_supergraph_reloads_total", "outcome" => "ok")
                    .increment(1);
                tracing::info!(%source, "supergraph reloaded");
            }
            Ok(Err(err)) => {
                rejected = Some(print);
                metrics::counter!("router_supergraph_reloads_total", "outcome" => "error")
                    .increment(1);
                tracing::error!(%source, error = %err, "supergraph changed but cannot be loaded; keeping the previous one");
            }
            Err(err) => tracing::error!(%err, "supergraph reload task failed"),
        }
    }
}

fn fingerprint(sdl: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    sdl.hash(&mut hasher);
    hasher.finish()
}
