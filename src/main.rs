//! `shopgraph`: one binary for every Shopgraph process.
//!
//! * `shopgraph dev` — the whole shop in one process on embedded defaults;
//! * `shopgraph serve <service>` — one service, configured by environment;
//! * `shopgraph migrate <service>` — apply a store's migrations and exit;
//! * `shopgraph sdl <service>` — print a subgraph's federation SDL;
//! * `shopgraph token --user <id> [--admin]` — print a dev JWT;
//! * `shopgraph plan FILE...` — plan operations against the supergraph.

use std::process::ExitCode;
use std::time::Duration;

use basket_subgraph::BasketSettings;
use clap::{Parser, Subcommand, ValueEnum};
use notification_subgraph::NotificationSettings;
use payment_subgraph::PaymentSettings;
use product_subgraph::ProductSettings;
use shopgraph_platform::config::{ConfigError, Env};
use shopgraph_platform::identity::{ADMIN_ROLE, JwtAuthority};
use shopgraph_platform::service::ServiceApp;
use shopgraph_platform::settings::{RunMode, ServiceSettings};
use shopgraph_platform::telemetry::{self, TelemetrySettings};
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
    /// Run the whole shop in one process on embedded defaults (SQLite, demo data).
    Dev,
    /// Run one service as production does, configured by environment variables.
    Serve {
        /// The service to run.
        service: Service,
    },
    /// Apply a service's database migrations and exit.
    Migrate {
        /// The service whose store to migrate.
        service: Service,
    },
    /// Print a subgraph's federation SDL.
    Sdl {
        /// The subgraph.
        service: Service,
    },
    /// Plan every operation in the given files against a supergraph (schema check).
    Plan {
        /// The supergraph SDL.
        #[arg(long, default_value = "schema/supergraph.graphql")]
        supergraph: std::path::PathBuf,
        /// Files of GraphQL operations.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a JWT for a user, signed with JWT_SECRET (or the dev secret).
    Token {
        /// The user id (the token's subject).
        #[arg(long)]
        user: String,
        /// Grant the admin role.
        #[arg(long)]
        admin: bool,
        /// How long the token stays valid, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// The services this build contains.
#[derive(Clone, Copy, ValueEnum)]
enum Service {
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
    fn name(self) -> &'static str {
        match self {
            Self::Product => product_subgraph::SERVICE_NAME,
            Self::Basket => basket_subgraph::SERVICE_NAME,
            Self::Payment => payment_subgraph::SERVICE_NAME,
            Self::Notification => notification_subgraph::SERVICE_NAME,
        }
    }

    /// Reads the service's settings and builds it, ready to run.
    async fn build(self, env: &Env, mode: RunMode) -> anyhow::Result<ServiceApp> {
        Ok(match self {
            Self::Product => product_subgraph::build(ProductSettings::from_env(env, mode)?).await?,
            Self::Basket => basket_subgraph::build(BasketSettings::from_env(env, mode)?).await?,
            Self::Payment => payment_subgraph::build(PaymentSettings::from_env(env, mode)?).await?,
            Self::Notification => {
                notification_subgraph::build(NotificationSettings::from_env(env, mode)?).await?
            }
        })
    }

    async fn migrate(self, env: &Env) -> anyhow::Result<()> {
        let mode = RunMode::Serve;
        match self {
            Self::Product => {
                product_subgraph::migrate(&ProductSettings::from_env(env, mode)?).await?
            }
            Self::Basket => basket_subgraph::migrate(&BasketSettings::from_env(env, mode)?).await?,
            Self::Payment => {
                payment_subgraph::migrate(&PaymentSettings::from_env(env, mode)?).await?
            }
            Self::Notification => {
                notification_subgraph::migrate(&NotificationSettings::from_env(env, mode)?).await?
            }
        }
        Ok(())
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
        Command::Migrate { service } => migrate(service, env).await,
        Command::Sdl { service } => {
            print!("{}", service.sdl());
            Ok(())
        }
        Command::Plan { supergraph, files } => plan(&supergraph, &files),
        Command::Token { user, admin, ttl } => {
            // Reuses the services' own auth settings so the token matches them.
            let settings = ServiceSettings::from_env(&env, "token", 0, RunMode::Serve)?;
            let roles: &[&str] = if admin { &[ADMIN_ROLE] } else { &[] };
            let token = JwtAuthority::from_settings(&settings.auth).issue(&user, roles, ttl)?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn dev(mut env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Dev)?;
    // Validate every service's configuration before anything starts.
    ProductSettings::from_env(&env, RunMode::Dev)?;
    BasketSettings::from_env(&env, RunMode::Dev)?;
    PaymentSettings::from_env(&env, RunMode::Dev)?;
    NotificationSettings::from_env(&env, RunMode::Dev)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;

    let mut apps = Vec::new();
    let mut banner = String::from("\nShopgraph dev is up (embedded SQLite, demo data):\n");
    for service in [
        Service::Product,
        Service::Basket,
        Service::Payment,
        Service::Notification,
    ] {
        let app = service.build(&env, RunMode::Dev).await?;
        let addr = app.local_addr()?;
        banner.push_str(&format!("  {:<12} http://{addr}/graphql\n", service.name()));
        // Later services call earlier ones where they really listen.
        let url_var = format!("{}_SERVICE_URL", service.name().to_ascii_uppercase());
        env = env.with_default(&url_var, format!("http://{addr}/graphql"));
        apps.push(app);
    }
    banner.push_str(
        "\nGraphiQL: open a URL above in a browser.\nAdmin token: cargo run --release -- token --user admin --admin\nPress Ctrl-C to stop.\n",
    );
    println!("{banner}");

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shopgraph_platform::shutdown::signal().await;
        trigger.cancel();
    });
    let results = futures::future::join_all(
        apps.into_iter()
            .map(|app| app.run(stop.clone().cancelled_owned())),
    )
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

async fn serve(service: Service, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    let app = service.build(&env, RunMode::Serve).await?;
    app.run(shopgraph_platform::shutdown::signal()).await?;
    Ok(())
}

/// Plans every operation in `files`; fails listing the ones that cannot be.
fn plan(supergraph: &std::path::Path, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    use shopgraph_router::planner::{PlannerSettings, QueryPlanner, operation_names, subgraphs_of};
    let sdl = std::fs::read_to_string(supergraph)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", supergraph.display()))?;
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
            match planner.plan(&document, name.as_deref()) {
                Ok(plan) => {
                    println!("  ok      {label}  ({})", subgraphs_of(&plan).join(", "));
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
    println!(
        "planning: ok, {planned} operation(s) planned against {}",
        supergraph.display()
    );
    Ok(())
}

async fn migrate(service: Service, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    service.migrate(&env).await?;
    tracing::info!(service = service.name(), "migrations applied");
    Ok(())
}
