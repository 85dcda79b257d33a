//! `otlp-receiver [ADDR]`: the test receiver on ADDR (default
//! `0.0.0.0:4318`, OTLP/HTTP's port), until SIGTERM or Ctrl-C.

use otlp_receiver::{Received, routes};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:4318".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("otlp-receiver on {}", listener.local_addr()?);
    axum::serve(listener, routes(Received::default()))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(term) => { term.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await
}
