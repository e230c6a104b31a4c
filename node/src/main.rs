//! `tasknode`: run one node. `tasknode --config config/node1.toml`.

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use tasknode::config::Settings;
use tasknode::startup::Node;

/// Many small allocations per request, freed on other threads: mimalloc copes better than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tasknode", version, about = "Run one tasknode node")]
struct Cli {
    /// The node's own config file, layered over the built-in defaults
    /// (see config/default.toml); TASKNODE__SECTION__KEY variables override both.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Apply database migrations and create the bucket, then exit.
    #[arg(long)]
    prepare: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tasknode::telemetry::init();
    let settings = Settings::load(cli.config.as_deref())?;
    let system = actix_rt::System::new();
    let prepare_only = cli.prepare;
    let result = system.block_on(async move {
        if prepare_only {
            tasknode::startup::prepare(&settings)
                .await
                .context("prepare failed")?;
            tracing::info!("database migrated and bucket ready");
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(&settings.listener.address)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listener.address))?;
        let node = Node::build(settings, listener)
            .await
            .context("node could not start")?;
        node.run_until_stopped(shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    });
    if let Err(e) = &result {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "tasknode stopped");
    }
    result
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
