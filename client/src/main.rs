//! `taskctl`: send work to a tasknode fleet.
//!
//! Speaks the node's line protocol through the typed client of `tasknode-protocol`. With
//! several `--server` addresses it uses the first that accepts a connection. Exit status: 0
//! on success, 1 when the task failed or a node answered an error, 3 when no node could be
//! reached (2 is clap's usage error).

mod admin;
mod bench;
mod control;
mod fleet;
mod output;
mod progress;
mod token;
mod work;

/// Many small allocations per request, freed on other threads: mimalloc copes better than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use output::{copy_body, print_json, print_result, put_file};
use protocol::{Check, ClientError};
use std::path::PathBuf;
use std::process::ExitCode;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "taskctl", version, about = "Send tasks to tasknode nodes")]
struct Cli {
    /// Node address host:port; repeat for fail-over (the next is tried when one is down).
    #[arg(
        long = "server",
        short = 's',
        env = "TASKCTL_SERVER",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001",
        global = true
    )]
    servers: Vec<String>,
    /// Print the node's JSON answers instead of human output.
    #[arg(long, global = true)]
    json: bool,
    /// Access token (`AUTH`); else TASKCTL_TOKEN, else $XDG_CONFIG_HOME/tasknode/token.
    #[arg(long, env = "TASKCTL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Speak TLS to the nodes (their certificates checked against --ca, or the system's roots).
    #[arg(long, env = "TASKCTL_TLS", global = true)]
    tls: bool,
    /// CA certificate(s) (PEM) to check the nodes' certificates against; implies --tls.
    #[arg(long, env = "TASKCTL_CA", global = true, value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task and print its result (or, with --async, its id).
    Submit {
        /// Task kind (see `taskctl kinds`).
        kind: String,
        /// Payload text; several words are joined with spaces. `-` reads standard input.
        payload: Vec<String>,
        /// Send this file as the payload (binary-safe, streamed; for large payloads).
        #[arg(long, conflicts_with = "payload")]
        file: Option<PathBuf>,
        /// Do not wait: print the task id at once.
        #[arg(long = "async")]
        no_wait: bool,
        /// Write the result to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        flags: control::SubmitFlags,
    },
    /// Show a task's state.
    Status { id: String },
    /// Print a finished task's result.
    Result {
        id: String,
        /// Write the result to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List tasks that failed every attempt (newest first).
    Dead {
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Run a dead or failed task again, with a fresh attempt budget.
    Retry { id: String },
    /// Cancel a task that has not ended (a running one is stopped).
    Cancel { id: String },
    /// Hold a lane's or a kind's tasks (still accepted; they wait), or list what is held
    /// (an admin token).
    Pause {
        #[command(flatten)]
        target: Option<control::Target>,
    },
    /// Let a paused lane's or kind's tasks run again (an admin token).
    Resume {
        #[command(flatten)]
        target: control::Target,
    },
    /// Periodic tasks.
    #[command(subcommand)]
    Schedule(control::ScheduleCmd),
    /// List the task kinds.
    Kinds,
    /// Check that a node answers (and whether its dependencies do).
    Ping,
    /// Load the fleet and report throughput and latency (see docs/benchmark.md).
    Bench(bench::BenchArgs),
    /// Manage tokens (an admin token).
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Be a worker: run a command per task of these kinds (payload on its stdin, result from
    /// its stdout; a worker token). See docs/workers.md.
    Work(work::WorkArgs),
}

/// A failure that maps to an exit code.
enum Failure {
    /// The task failed or the node refused the request.
    Task(String),
    /// No node could be reached.
    Unreachable(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    /// An error of the control commands: a node's refusal or an unreachable node keeps its
    /// exit code.
    fn of(e: anyhow::Error) -> Self {
        match e.downcast::<ClientError>() {
            Ok(e) => e.into(),
            Err(e) => Failure::Other(e),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused(line) => Failure::Task(line.to_string()),
            ClientError::Unreachable(_) => Failure::Unreachable(e.to_string()),
            other => Failure::Other(other.into()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(Failure::Other(e.into())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Task(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(3)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn task_id(text: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Failure::Task(format!("`{text}` is not a task id (a UUID) (malformed)")))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let token = token::resolve(cli.token.clone())?;
    let fleet = fleet::Fleet::new(cli.servers.clone(), cli.tls, cli.ca.as_deref(), token)?;
    if let Command::Work(args) = &cli.command {
        return work::run(&fleet, args).await.map_err(Failure::of);
    }
    if let Command::Bench(args) = &cli.command {
        let (args, json) = (args.clone(), cli.json);
        // The benchmark drives its own runtimes.
        let report = tokio::task::spawn_blocking(move || bench::run(&args, &fleet, json))
            .await
            .context("benchmark thread")??;
        let errors = report["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            return Err(Failure::Task(format!("benchmark had {errors} errors")));
        }
        return Ok(());
    }
    let start = spread_start(cli.servers.len());
    let mut conn = fleet.connect(start).await?;
    let json = cli.json;
    match cli.command {
        Command::Submit {
            kind,
            payload,
            file,
            no_wait,
            output,
            flags,
        } => {
            let options = flags.options()?;
            let view = match file {
                Some(_) if !options.is_plain() => {
                    return Err(Failure::Task(
                        "--key, --in, --at and --priority go with a payload on the command line or standard input, not --file".into(),
                    ))
                }
                Some(path) => put_file(&mut conn, &kind, &path, !no_wait).await?,
                None => {
                    let bytes = if payload.len() == 1 && payload[0] == "-" {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                            .context("reading standard input")?;
                        buf
                    } else {
                        payload.join(" ").into_bytes()
                    };
                    conn.submit_with(&kind, &bytes, !no_wait, options).await?
                }
            };
            if no_wait && json {
                {
                    print_json(&view);
                    return Ok(());
                }
            }
            if no_wait {
                println!("{}", view.id);
                return Ok(());
            }
            print_result(&mut conn, view, json, output.as_deref()).await
        }
        Command::Status { id } => {
            let v = conn.status(task_id(&id)?).await?;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!("id: {}\nkind: {}\nstatus: {}", v.id, v.kind, v.status);
            let optional = [
                ("node", v.node.clone()),
                ("attempts", v.attempts.map(|n| n.to_string())),
                (
                    "progress",
                    v.progress.map(|p| match &v.progress_note {
                        Some(note) => format!("{p}% {note}"),
                        None => format!("{p}%"),
                    }),
                ),
                ("result_size", v.result_size.map(|n| n.to_string())),
                ("run_at", v.run_at.map(|t| t.to_rfc3339())),
                ("priority", v.priority.map(|p| p.to_string())),
                ("key", v.key.clone()),
                ("paused", v.paused.map(|p| p.to_string())),
                ("message", v.message.clone()),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    println!("{key}: {value}");
                }
            }
            Ok(())
        }
        Command::Result { id, output } => {
            let view = conn.result(task_id(&id)?).await?;
            match view.bytes {
                Some(n) => {
                    if json {
                        // The JSON carries result_url; the raw bytes go only to a file.
                        print_json(&view);
                        if output.is_none() {
                            return Ok(());
                        }
                    }
                    copy_body(&mut conn, n, output.as_deref(), json).await
                }
                None => print_result(&mut conn, view, json, output.as_deref()).await,
            }
        }
        Command::Dead { limit } => {
            let list = conn.dead(limit).await?;
            if json {
                {
                    print_json(&list);
                    return Ok(());
                }
            }
            if list.dead.is_empty() {
                println!("no dead tasks");
            }
            for t in list.dead {
                let message = t.message.unwrap_or_default();
                println!(
                    "{}  {:<10} attempts={}  {message}",
                    t.id, t.kind, t.attempts
                );
            }
            Ok(())
        }
        Command::Retry { id } => {
            let v = conn.retry(task_id(&id)?).await?;
            if json {
                {
                    print_json(&v);
                    return Ok(());
                }
            }
            println!("{} queued again", v.id);
            Ok(())
        }
        Command::Kinds => {
            let list = conn.kinds().await?;
            if json {
                {
                    print_json(&list);
                    return Ok(());
                }
            }
            for k in list.kinds {
                match k.workers {
                    Some(n) => println!("{:<10} {} ({n} connected)", k.name, k.about),
                    None => println!("{:<10} {}", k.name, k.about),
                }
            }
            Ok(())
        }
        Command::Ping => {
            let p = conn.ping().await?;
            if json {
                print_json(&p);
            } else {
                let word = |c: Option<Check>| if c == Some(Check::Ok) { "ok" } else { "down" };
                println!(
                    "pong from {} ({}): amqp {}, postgres {}, s3 {}",
                    p.node.as_deref().unwrap_or("?"),
                    conn.server(),
                    word(p.amqp),
                    word(p.postgres),
                    word(p.s3)
                );
            }
            if !p.healthy {
                let node = p.node.unwrap_or_else(|| conn.server().to_string());
                return Err(Failure::Task(format!("{node} is unhealthy")));
            }
            Ok(())
        }
        Command::Token(cmd) => Ok(admin::run(&mut conn, cmd, json).await?),
        Command::Cancel { id } => {
            let v = conn.cancel(task_id(&id)?).await?;
            if json {
                {
                    print_json(&v);
                    return Ok(());
                }
            }
            println!("{} cancelled", v.id);
            Ok(())
        }
        Command::Pause { target } => control::pause(&mut conn, target, json)
            .await
            .map_err(Failure::of),
        Command::Resume { target } => control::resume(&mut conn, target, json)
            .await
            .map_err(Failure::of),
        Command::Schedule(cmd) => control::schedule(&mut conn, cmd, json)
            .await
            .map_err(Failure::of),
        Command::Bench(_) | Command::Work(_) => unreachable!("handled above"),
    }
}

/// A starting index that differs between processes and calls, so many clients spread over
/// the fleet.
fn spread_start(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    (nanos ^ std::process::id() as usize) % n
}
