//! `driftline serve`: the prediction server over the embedded platform.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use driftline_core::config::Config;
use driftline_serve::server::{listen_address, run as serve};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen address. Default serve.addr (0.0.0.0:8000).
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
}

pub fn run(config: Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr = listen_address(&config, args.addr.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, &addr, stop_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("stopping");
}
