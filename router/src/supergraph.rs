//! Beside the request path, read by every request: the loaded supergraph
//! and its hot reload.
//!
//! A [`Supergraph`] bundles everything derived from one supergraph SDL: the
//! planner (with its plan cache), the executor's view of the API schema,
//! the introspection index and the subgraph client. Requests take an
//! `Arc<Supergraph>` snapshot when they start, so swapping in a new one
//! ([`SupergraphHandle::replace`]) never disturbs requests in flight: they
//! finish on the supergraph they started with.

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

/// The supergraph committed with this build: `shopgraph dev` falls back to
/// it when run outside a checkout.
pub const EMBEDDED_SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

/// Where the supergraph comes from.
#[derive(Debug, Clone)]
pub enum SupergraphSource {
    /// A file, watched for changes (hot reload).
    File(PathBuf),
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
    /// How often a supergraph file is checked for changes.
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

/// Reads the SDL of `source`.
pub fn read_source(source: &SupergraphSource) -> Result<String, SupergraphError> {
    match source {
        SupergraphSource::Embedded => Ok(EMBEDDED_SUPERGRAPH.to_owned()),
        SupergraphSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| SupergraphError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

/// Polls the supergraph file every `settings.poll_interval` and swaps in a
/// new [`Supergraph`] when its content changes. A file that fails to load
/// is logged and ignored: the router keeps serving the last good one.
pub async fn watch(
    handle: SupergraphHandle,
    settings: SupergraphSettings,
    upstreams: Arc<Upstreams>,
    stop: CancellationToken,
) {
    let SupergraphSource::File(path) = &settings.source else {
        return;
    };
    let mut timer = tokio::time::interval(settings.poll_interval.max(Duration::from_millis(50)));
    // A file that failed to load is not retried until it changes again.
    let mut rejected = None;
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        let Ok(sdl) = tokio::fs::read_to_string(path).await else {
            continue;
        };
        let print = fingerprint(&sdl);
        if print == handle.current().fingerprint || rejected == Some(print) {
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
                metrics::counter!("router_supergraph_reloads_total", "outcome" => "ok")
                    .increment(1);
                tracing::info!(path = %path.display(), "supergraph reloaded");
            }
            Ok(Err(err)) => {
                rejected = Some(print);
                metrics::counter!("router_supergraph_reloads_total", "outcome" => "error")
                    .increment(1);
                tracing::error!(path = %path.display(), error = %err, "supergraph changed but cannot be loaded; keeping the previous one");
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
