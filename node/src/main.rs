//! `tasknode`: run one node. `tasknode --config config/node1.toml`.

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use tasknode::config::Settings;
use tasknode::startup::Node;

// The system allocator (no global allocator is set): mimalloc, tried before, kept about
// 18 MiB of an idle node resident (its per-thread heaps) and was no faster at low
// concurrency (under a pipelined flood it may be a few percent faster).

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Manage access tokens (in the node's database).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the HTTP API's OpenAPI document (what GET /openapi.json serves).
    Openapi,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown this once).
    Create {
        #[arg(long)]
        name: String,
        /// submit, read or admin.
        #[arg(long)]
        role: String,
        /// Unfinished tasks at once.
        #[arg(long)]
        max_inflight: Option<u32>,
        /// Submissions per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Bytes of one payload.
        #[arg(long)]
        max_payload: Option<u64>,
        /// Schedules at once (100 if not given).
        #[arg(long)]
        max_schedules: Option<u32>,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token: every node refuses it within 2 s.
    Revoke { name: String },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tasknode::telemetry::init();
    let settings = Settings::load(cli.config.as_deref())?;
    let system = actix_rt::System::new();
    let prepare_only = cli.prepare;
    match cli.command {
        Some(Command::Token(cmd)) => return system.block_on(token(&settings, cmd)),
        Some(Command::Openapi) => {
            println!("{}", tasknode::front::http::openapi::document());
            return Ok(());
        }
        None => {}
    }
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

/// `tasknode token …`.
async fn token(settings: &Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    use tasknode::auth::{tokens, Role};
    let database = settings.database.target()?;
    tasknode::db::run_migrations(&database)
        .await
        .context("cannot migrate the database")?;
    let mut conn = database
        .establish()
        .await
        .context("cannot connect to the database")?;
    match cmd {
        TokenCommand::Create {
            name,
            role,
            max_inflight,
            rate,
            max_payload,
            max_schedules,
        } => {
            tokens::check_name(&name).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role)
                .with_context(|| format!("no role `{role}`: submit, read or admin"))?;
            let limits = tokens::Limits {
                max_inflight,
                rate,
                max_payload,
                max_schedules,
            };
            limits.check().map_err(anyhow::Error::msg)?;
            let secret = tokens::create(&mut conn, &name, role, limits)
                .await
                .with_context(|| format!("cannot create token `{name}` (does it exist?)"))?;
            eprintln!(
                "token `{name}` ({}) created; its secret, shown this once:",
                role.as_str()
            );
            println!("{}", secret.expose());
        }
        TokenCommand::List => {
            println!("{}", protocol::TokenList::HEADER);
            for t in tokens::list(&mut conn).await? {
                println!("{}", tasknode::service::tokens::info(t).row());
            }
        }
        TokenCommand::Revoke { name } => {
            if !tokens::revoke(&mut conn, &name).await? {
                anyhow::bail!("no live token `{name}`");
            }
            eprintln!("token `{name}` revoked; every node refuses it within 2 s");
        }
    }
    Ok(())
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
