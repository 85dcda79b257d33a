//! `shopgraph`: one binary for every Shopgraph process.
//!
//! * `shopgraph dev` — the whole shop (router + four subgraphs) in one
//!   process on embedded defaults;
//! * `shopgraph serve <service>` — the router or one subgraph, configured
//!   by environment;
//! * `shopgraph migrate <service>` — apply a store's migrations and exit;
//! * `shopgraph sdl <service>` — print a subgraph's federation SDL;
//! * `shopgraph token --user <id> [--admin]` — print a dev JWT;
//! * `shopgraph hop-keys DIR` — write a key pair for the signed hop;
//! * `shopgraph plan FILE...` — plan operations against the supergraph.

use std::net::SocketAddr;
use std::process::ExitCode;

/// The router allocates and frees many small JSON values per request;
/// mimalloc serves that pattern markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Duration;

use basket_subgraph::BasketSettings;
use clap::{Parser, Subcommand, ValueEnum};
use notification_subgraph::NotificationSettings;
use payment_subgraph::PaymentSettings;
use product_subgraph::ProductSettings;
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::identity::{ADMIN_ROLE, JwtSettings, TokenIssuer, Viewer};
use shopgraph_core::settings::RunMode;
use shopgraph_core::telemetry::{self, TelemetrySettings};
use shopgraph_router::RouterApp;
use shopgraph_router::config::RouterSettings;
use subgraph_kit::events::{EventBus, EventSettings};
use subgraph_kit::service::ServiceApp;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "shopgraph",
    version,
    about = "Federated GraphQL shop backend: router and subgraphs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole shop (router + four subgraphs) in one process on embedded defaults.
    Dev,
    /// Run the router or one subgraph as production does, configured by environment variables.
    Serve {
        /// The service to run.
        service: Service,
    },
    /// Apply a subgraph's database migrations and exit.
    Migrate {
        /// The subgraph whose store to migrate.
        subgraph: Subgraph,
    },
    /// Print a subgraph's federation SDL.
    Sdl {
        /// The subgraph.
        subgraph: Subgraph,
    },
    /// Plan every operation in the given files against a supergraph (schema check).
    Plan {
        /// The supergraph SDL [default: schema/supergraph.graphql, else the
        /// copy built into this binary].
        #[arg(long)]
        supergraph: Option<std::path::PathBuf>,
        /// Files of GraphQL operations.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a JWT for a user, signed with JWT_SECRET (unset: the public dev secret, which only `dev` accepts).
    Token {
        /// The user id (the token's subject).
        #[arg(long, value_parser = parse_user_id)]
        user: String,
        /// Grant the admin role.
        #[arg(long)]
        admin: bool,
        /// How long the token stays valid, e.g. 30m, 24h, 7d (1s to 365d).
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// Write a new Ed25519 key pair for the signed hop: DIR/hop.key (private, for HOP_SIGNING_KEY_FILE) and DIR/hop.pub (public, one entry of HOP_TRUSTED_KEYS_FILE).
    HopKeys {
        /// The directory to write into (created if missing); existing files are not overwritten.
        dir: std::path::PathBuf,
    },
}

/// The processes `serve` can run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
    /// The federation router: one API over the four subgraphs.
    Router,
    /// The product subgraph (catalogue, prices, stock).
    Product,
    /// The basket subgraph (one basket per user).
    Basket,
    /// The payment subgraph (checkout, refunds).
    Payment,
    /// The notification subgraph (per-user inboxes).
    Notification,
}

impl Service {
    /// The subgraph this service is, or `None` for the router.
    fn subgraph(self) -> Option<Subgraph> {
        match self {
            Self::Router => None,
            Self::Product => Some(Subgraph::Product),
            Self::Basket => Some(Subgraph::Basket),
            Self::Payment => Some(Subgraph::Payment),
            Self::Notification => Some(Subgraph::Notification),
        }
    }
}

/// The subgraphs: what `migrate` and `sdl` accept (the router has neither
/// a store nor an SDL of its own).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Subgraph {
    /// The product subgraph (catalogue, prices, stock).
    Product,
    /// The basket subgraph (one basket per user).
    Basket,
    /// The payment subgraph (checkout, refunds).
    Payment,
    /// The notification subgraph (per-user inboxes).
    Notification,
}

impl Subgraph {
    const ALL: [Self; 4] = [
        Self::Product,
        Self::Basket,
        Self::Payment,
        Self::Notification,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Product => product_subgraph::SERVICE_NAME,
            Self::Basket => basket_subgraph::SERVICE_NAME,
            Self::Payment => payment_subgraph::SERVICE_NAME,
            Self::Notification => notification_subgraph::SERVICE_NAME,
        }
    }

    /// The subgraph's settings in `mode`, as every command reads them.
    fn settings(self, env: &Env, mode: RunMode) -> Result<SubgraphSettings, ConfigError> {
        Ok(match self {
            Self::Product => SubgraphSettings::Product(ProductSettings::from_env(env, mode)?),
            Self::Basket => SubgraphSettings::Basket(BasketSettings::from_env(env, mode)?),
            Self::Payment => SubgraphSettings::Payment(PaymentSettings::from_env(env, mode)?),
            Self::Notification => {
                SubgraphSettings::Notification(NotificationSettings::from_env(env, mode)?)
            }
        })
    }

    fn sdl(self) -> String {
        match self {
            Self::Product => product_subgraph::graphql::sdl(),
            Self::Basket => basket_subgraph::graphql::sdl(),
            Self::Payment => payment_subgraph::graphql::sdl(),
            Self::Notification => notification_subgraph::graphql::sdl(),
        }
    }
}

/// One subgraph's settings, read and validated before anything starts.
enum SubgraphSettings {
    Product(ProductSettings),
    Basket(BasketSettings),
    Payment(PaymentSettings),
    Notification(NotificationSettings),
}

impl SubgraphSettings {
    /// Where the subgraph will listen.
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Product(settings) => settings.service.http.addr,
            Self::Basket(settings) => settings.service.http.addr,
            Self::Payment(settings) => settings.service.http.addr,
            Self::Notification(settings) => settings.service.http.addr,
        }
    }

    /// Fails closed before serving: the hop keys this subgraph needs.
    fn check_hop_keys(&self) -> Result<(), ConfigError> {
        match self {
            Self::Product(settings) => settings.service.check_hop_keys(),
            Self::Basket(settings) => settings.check_hop_keys(),
            Self::Payment(settings) => settings.check_hop_keys(),
            Self::Notification(settings) => settings.service.check_hop_keys(),
        }
    }

    /// Where the subgraph will serve `/metrics`, unless it is turned off.
    fn metrics_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Product(settings) => settings.service.metrics.addr,
            Self::Basket(settings) => settings.service.metrics.addr,
            Self::Payment(settings) => settings.service.metrics.addr,
            Self::Notification(settings) => settings.service.metrics.addr,
        }
    }

    /// Opens and migrates the store, then binds: a subgraph ready to run.
    async fn build(self, bus: EventBus) -> anyhow::Result<ServiceApp> {
        Ok(match self {
            Self::Product(settings) => product_subgraph::build(settings, bus).await?,
            Self::Basket(settings) => basket_subgraph::build(settings, bus).await?,
            Self::Payment(settings) => payment_subgraph::build(settings, bus).await?,
            Self::Notification(settings) => notification_subgraph::build(settings, bus).await?,
        })
    }

    /// Applies the store's migrations and closes it.
    async fn migrate(self) -> anyhow::Result<()> {
        match self {
            Self::Product(settings) => product_subgraph::migrate(&settings).await?,
            Self::Basket(settings) => basket_subgraph::migrate(&settings).await?,
            Self::Payment(settings) => payment_subgraph::migrate(&settings).await?,
            Self::Notification(settings) => notification_subgraph::migrate(&settings).await?,
        }
        Ok(())
    }
}

/// A user id a token can carry intact to every subgraph (the rules of
/// [`Viewer::from_claims`]): not empty, no surrounding spaces, no control
/// characters.
fn parse_user_id(value: &str) -> Result<String, String> {
    Viewer::from_claims(value.to_owned(), Vec::new())
        .map(|viewer| viewer.user_id)
        .map_err(|_| {
            "a user id is non-empty text without control characters or surrounding spaces".into()
        })
}

/// The longest `--ttl` accepted: a token that outlives a year is a
/// credential nobody will remember to revoke.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A token lifetime from 1s to [`MAX_TOKEN_TTL`].
fn parse_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|err| err.to_string())?;
    if ttl < Duration::from_secs(1) {
        return Err("a token must stay valid for at least 1s".into());
    }
    if ttl > MAX_TOKEN_TTL {
        return Err("a token may stay valid for at most 365d".into());
    }
    Ok(ttl)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    match run(cli.command, env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err.downcast_ref::<ConfigError>().is_some() {
                eprintln!("configuration error: {err}");
                return ExitCode::from(2);
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, env: Env) -> anyhow::Result<()> {
    match command {
        Command::Dev => dev(env).await,
        Command::Serve { service } => serve(service, env).await,
        Command::Migrate { subgraph } => migrate(subgraph, env).await,
        Command::Sdl { subgraph } => {
            print!("{}", subgraph.sdl());
            Ok(())
        }
        Command::Plan { supergraph, files } => plan(supergraph.as_deref(), &files),
        Command::HopKeys { dir } => hop_keys(&dir),
        Command::Token { user, admin, ttl } => {
            // The same JWT settings every service verifies with, read as
            // `dev` reads them: `token` is a dev tool, so without JWT_SECRET
            // it signs with the public dev secret (which only `dev` accepts).
            let settings = JwtSettings::from_env(&env, RunMode::Dev)?;
            let issuer = TokenIssuer::from_settings(&settings).ok_or_else(|| {
                anyhow::anyhow!(
                    "JWT_SECRET is not set and a JWKS is: tokens come from your identity provider, not from `shopgraph token`"
                )
            })?;
            let roles: &[&str] = if admin { &[ADMIN_ROLE] } else { &[] };
            let token = issuer.issue(&user, roles, ttl)?;
            if settings.using_dev_secret {
                // On stderr, so `$(shopgraph token ...)` still captures the token alone.
                eprintln!(
                    "note: signed with the public dev secret (JWT_SECRET is unset); only `shopgraph dev` accepts it"
                );
            }
            println!("{token}");
            Ok(())
        }
    }
}

async fn dev(mut env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Dev)?;
    // Validate every service's configuration, and check every port is
    // free, before anything starts: a second `dev` must not touch (create,
    // migrate, seed) any store before it finds it cannot listen.
    let mut addrs: Vec<(String, SocketAddr)> = Vec::new();
    for subgraph in Subgraph::ALL {
        let settings = subgraph.settings(&env, RunMode::Dev)?;
        addrs.push((subgraph.name().to_owned(), settings.addr()));
        if let Some(addr) = settings.metrics_addr() {
            addrs.push((format!("{} metrics listener", subgraph.name()), addr));
        }
    }
    let router_settings = RouterSettings::from_env(&env, RunMode::Dev)?;
    addrs.push((
        shopgraph_router::SERVICE_NAME.to_owned(),
        router_settings.http.addr,
    ));
    if router_settings.admin.enabled {
        addrs.push(("router admin API".to_owned(), router_settings.admin.addr));
    }
    let addrs: Vec<(&str, SocketAddr)> = addrs
        .iter()
        .map(|(name, addr)| (name.as_str(), *addr))
        .collect();
    ensure_free(&addrs)?;
    let events = EventSettings::from_env(&env)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    // One bus for the whole shop: in-process unless KAFKA_BROKERS is set.
    let bus = EventBus::connect(&events, "shopgraph-dev").await?;
    tracing::info!(bus = bus.kind(), "event bus ready");

    let mut apps = Vec::new();
    let mut subgraphs = String::new();
    for subgraph in Subgraph::ALL {
        let app = subgraph
            .settings(&env, RunMode::Dev)?
            .build(bus.clone())
            .await?;
        let addr = app.local_addr()?;
        let metrics = app
            .metrics_addr()
            .map(|addr| format!("   metrics: http://{addr}/metrics"))
            .unwrap_or_default();
        subgraphs.push_str(&format!(
            "  {:<12} http://{addr}/graphql{metrics}\n",
            subgraph.name()
        ));
        // Later services call earlier ones where they really listen.
        let url_var = format!("{}_SERVICE_URL", subgraph.name().to_ascii_uppercase());
        env = env.with_default(&url_var, format!("http://{addr}/graphql"));
        apps.push(app);
    }
    // The router reaches each subgraph where it really listens (the
    // <SERVICE>_SERVICE_URL defaults set above).
    let router = RouterApp::bind(RouterSettings::from_env(&env, RunMode::Dev)?).await?;
    let router_addr = router.local_addr()?;
    let admin = router
        .admin_addr()
        .map(|addr| format!("Admin API: http://{addr}/admin/status   (needs an --admin token)\n"))
        .unwrap_or_default();
    let storefront = if router_settings.storefront {
        format!(
            "Storefront: http://{router_addr}/   <- open in a browser, sign in as alice, bob or admin\n"
        )
    } else {
        String::new()
    };
    println!(
        "\nShopgraph dev is up (embedded SQLite, demo data):\n  {:<12} http://{router_addr}/graphql   <- the API\n{subgraphs}\n{storefront}GraphiQL: open a URL above in a browser.\nToken: cargo run --release -q -- token --user alice   (add --admin for admin operations)\n{admin}Press Ctrl-C to stop.\n",
        "router",
    );

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shopgraph_core::shutdown::signal().await;
        trigger.cancel();
    });
    // Stop the router first so no request reaches a stopped subgraph.
    let router_stopped = CancellationToken::new();
    let subgraphs_stop = router_stopped.clone();
    let router = {
        let stop = stop.clone();
        async move {
            let result = router.run(stop.cancelled_owned()).await;
            router_stopped.cancel();
            result
        }
    };
    let subgraphs = futures::future::join_all(
        apps.into_iter()
            .map(|app| app.run(subgraphs_stop.clone().cancelled_owned())),
    );
    let (router_result, results) = futures::future::join(router, subgraphs).await;
    router_result?;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

async fn serve(service: Service, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    let Some(subgraph) = service.subgraph() else {
        let settings = RouterSettings::from_env(&env, RunMode::Serve)?;
        let _telemetry = telemetry::init(&telemetry_settings)?;
        let router = RouterApp::bind(settings).await?;
        router.run(shopgraph_core::shutdown::signal()).await?;
        return Ok(());
    };
    let settings = subgraph.settings(&env, RunMode::Serve)?;
    settings.check_hop_keys()?;
    let events = EventSettings::from_env(&env)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    if events.kafka.is_none() {
        tracing::warn!(
            service = subgraph.name(),
            "KAFKA_BROKERS is not set: events stay inside this process (no reactions in other services, no live events from them)"
        );
    }
    let bus = EventBus::connect(&events, subgraph.name()).await?;
    let app = settings.build(bus).await?;
    app.run(shopgraph_core::shutdown::signal()).await?;
    Ok(())
}

/// Writes a fresh hop key pair into `dir`: the private key readable by its
/// owner only, and never over an existing file (a key in use would be lost).
fn hop_keys(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let pair = shopgraph_core::hop::HopKeyPair::generate();
    std::fs::create_dir_all(dir)?;
    for (name, pem, mode) in [
        ("hop.key", &pair.private_pem, 0o600),
        ("hop.pub", &pair.public_pem, 0o644),
    ] {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", path.display()))?;
        file.write_all(pem.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Fails naming the first of `addrs` that cannot be bound (another `dev`,
/// or anything else, listening there).
fn ensure_free(addrs: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    for (name, addr) in addrs {
        if addr.port() == 0 {
            continue;
        }
        if let Err(err) = std::net::TcpListener::bind(addr) {
            anyhow::bail!(
                "cannot listen for the {name} on {addr} ({err}); is another `shopgraph dev` running? Stop it, or set the ports (README, Configuration)"
            );
        }
    }
    Ok(())
}

/// The supergraph `plan` reads when `--supergraph` is not given.
const DEFAULT_SUPERGRAPH: &str = "schema/supergraph.graphql";

/// Plans every operation in `files`, printing each one's subgraphs and
/// estimated cost against `GRAPHQL_MAX_COMPLEXITY`'s default; fails listing
/// the ones that cannot be planned. Without `--supergraph`, reads
/// `schema/supergraph.graphql`, or outside a checkout the supergraph built
/// into this binary (as `dev` does).
fn plan(supergraph: Option<&std::path::Path>, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    use shopgraph_router::planner::{PlannerSettings, QueryPlanner, operation_names, subgraphs_of};
    let default = std::path::Path::new(DEFAULT_SUPERGRAPH);
    let (sdl, source) = match supergraph {
        Some(path) => (read_supergraph(path)?, path.display().to_string()),
        None if default.exists() => (read_supergraph(default)?, DEFAULT_SUPERGRAPH.to_owned()),
        None => (
            shopgraph_router::config::EMBEDDED_SUPERGRAPH.to_owned(),
            "the supergraph built into this binary".to_owned(),
        ),
    };
    let planner = QueryPlanner::from_supergraph(&sdl, PlannerSettings::default())?;
    let (mut planned, mut failed) = (0, 0);
    for file in files {
        let document = std::fs::read_to_string(file)
            .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", file.display()))?;
        let names = match operation_names(&document) {
            Ok(names) => names,
            Err(err) => {
                println!("  FAILED  {}: {err}", file.display());
                failed += 1;
                continue;
            }
        };
        for name in names {
            let label = format!(
                "{}#{}",
                file.display(),
                name.as_deref().unwrap_or("<anonymous>")
            );
            match planner.prepare(&document, name.as_deref()) {
                Ok(prepared) => {
                    let cost = match planner.estimated_cost(&document, name.as_deref()) {
                        Some((cost, Some(max))) => format!("  cost {cost} of {max}"),
                        Some((cost, None)) => format!("  cost {cost}"),
                        None => String::new(),
                    };
                    println!(
                        "  ok      {label}  ({}){cost}",
                        subgraphs_of(&prepared.plan).join(", ")
                    );
                    planned += 1;
                }
                Err(err) => {
                    println!("  FAILED  {label}: {err}");
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} operation(s) cannot be planned ({planned} can)");
    }
    println!("planning: ok, {planned} operation(s) planned against {source}");
    Ok(())
}

fn read_supergraph(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|err| {
        anyhow::anyhow!(
            "cannot read the supergraph {}: {err} (point --supergraph at the composed supergraph, e.g. schema/supergraph.graphql)",
            path.display()
        )
    })
}

async fn migrate(subgraph: Subgraph, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    let settings = subgraph.settings(&env, RunMode::Serve)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    settings.migrate().await?;
    tracing::info!(service = subgraph.name(), "migrations applied");
    Ok(())
}
