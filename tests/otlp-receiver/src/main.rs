//! `otlp-receiver [ADDR]`: the test receiver on ADDR (default
//! `0.0.0.0:4318`, OTLP/HTTP's port), until SIGTERM or Ctrl-C.

use otlp_receiver::{Received, routes};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:4318".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("otlp-receiver on {}", listener.local_addr()?);
    let mut terminate = signal(SignalKind::terminate())?;
    axum::serve(listener, routes(Received::default()))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await
}
