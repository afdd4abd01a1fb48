//! The `skaerm` binary: parses flags, sets up logging, runs the server until Ctrl-C.

use anyhow::Context;
use clap::Parser;
use skaerm_server::{Server, ServerConfig};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // `rtc_dtls::config` warns on every join that the relay, the DTLS client, names no
            // server: irrelevant, the peer is verified by the certificate fingerprint from its
            // SDP (found by the soak: one WARN line per join).
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new("info,sqlx=warn,rtc=warn,rtc_ice=warn,rtc_dtls::config=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = ServerConfig::parse();
    let server = Server::start(config).await.context("starting skaerm")?;
    // Machine-readable readiness line on stdout (tests and scripts wait for it).
    println!("skaerm ready: {}", server.public_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
