//! `shopgraph`: one binary for every Shopgraph process.
//!
//! * `shopgraph dev` — the whole shop in one process on embedded defaults;
//! * `shopgraph serve <service>` — one service, configured by environment;
//! * `shopgraph migrate <service>` — apply a store's migrations and exit;
//! * `shopgraph sdl <service>` — print a subgraph's federation SDL;
//! * `shopgraph token --user <id> [--admin]` — print a dev JWT.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use product_subgraph::ProductSettings;
use shopgraph_platform::config::{ConfigError, Env};
use shopgraph_platform::identity::{ADMIN_ROLE, JwtAuthority};
use shopgraph_platform::settings::{RunMode, ServiceSettings};
use shopgraph_platform::telemetry::{self, TelemetrySettings};

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
            match service {
                Service::Product => print!("{}", product_subgraph::graphql::sdl()),
            }
            Ok(())
        }
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

async fn dev(env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Dev)?;
    let product = ProductSettings::from_env(&env, RunMode::Dev)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;

    let app = product_subgraph::build(product).await?;
    let addr = app.local_addr()?;
    println!(
        "\nShopgraph dev is up (embedded SQLite, demo data):\n  product   http://{addr}/graphql  (GraphiQL in a browser)\n\nAdmin token: cargo run --release -- token --user admin --admin\nPress Ctrl-C to stop.\n"
    );
    app.run(shopgraph_platform::shutdown::signal()).await?;
    Ok(())
}

async fn serve(service: Service, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    match service {
        Service::Product => {
            let settings = ProductSettings::from_env(&env, RunMode::Serve)?;
            let _telemetry = telemetry::init(&telemetry_settings)?;
            product_subgraph::build(settings)
                .await?
                .run(shopgraph_platform::shutdown::signal())
                .await?;
        }
    }
    Ok(())
}

async fn migrate(service: Service, env: Env) -> anyhow::Result<()> {
    let telemetry_settings = TelemetrySettings::from_env(&env, RunMode::Serve)?;
    let _telemetry = telemetry::init(&telemetry_settings)?;
    match service {
        Service::Product => {
            let settings = ProductSettings::from_env(&env, RunMode::Serve)?;
            product_subgraph::migrate(&settings).await?;
            tracing::info!(service = "product", "migrations applied");
        }
    }
    Ok(())
}
