//! `shopgraph migrate <service>`, before any replica of a service starts
//! (replicas that start together then find their store ready).

use tokio::process::Command;

/// Applies `service`'s migrations to the store at `database_url` with
/// `shopgraph migrate`, so replicas that start together find it ready.
pub async fn migrate(service: &str, database_url: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_shopgraph"))
        .args(["migrate", service])
        .env(
            format!("{}_DATABASE_URL", service.to_ascii_uppercase()),
            database_url,
        )
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("shopgraph migrate runs");
    assert!(
        output.status.success(),
        "shopgraph migrate {service}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
