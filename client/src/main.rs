//! `taskctl`: send work to a tasknode fleet.
//!
//! Speaks the node's line protocol over plain TCP. With several `--server` addresses it uses
//! the first that accepts a connection. Exit status: 0 on success, 1 when the task failed or
//! a node answered an error, 3 when no node could be reached (2 is clap's usage error).

mod bench;
mod connection;

/// Many small allocations per request, freed on other threads: mimalloc copes better than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{anyhow, Context};
use base64::Engine;
use clap::{Parser, Subcommand};
use connection::{Conn, Reply};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Print the node's JSON response lines instead of human output.
    #[arg(long, global = true)]
    json: bool,
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
    /// List the task kinds.
    Kinds,
    /// Check that a node answers (and whether its dependencies do).
    Ping,
    /// Load the fleet and report throughput and latency (see README, Benchmark).
    Bench(bench::BenchArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
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

fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Bench(args) = &cli.command {
        let report = bench::run(args, &cli.servers, cli.json)?;
        let errors = report["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            return Err(Failure::Task(format!("benchmark had {errors} errors")));
        }
        return Ok(());
    }
    let mut conn =
        Conn::connect_any(&cli.servers).map_err(|e| Failure::Unreachable(e.to_string()))?;
    let json = cli.json;
    match cli.command {
        Command::Submit {
            kind,
            payload,
            file,
            no_wait,
            output,
        } => {
            let reply = match file {
                Some(path) => conn.put_file(&kind, &path, !no_wait)?,
                None => {
                    let text = if payload.len() == 1 && payload[0] == "-" {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                            .context("reading standard input")?;
                        buf
                    } else {
                        payload.join(" ").into_bytes()
                    };
                    conn.submit(&kind, &text, !no_wait)?
                }
            };
            if no_wait {
                let v = expect_ok(reply.json)?;
                if json {
                    println!("{v}");
                } else {
                    println!("{}", str_field(&v, "id"));
                }
                return Ok(());
            }
            print_result(&mut conn, reply.json, json, output.as_deref())
        }
        Command::Status { id } => {
            let v = expect_ok(conn.call(&format!("STATUS {id}"))?.json)?;
            if json {
                println!("{v}");
            } else {
                for key in [
                    "id",
                    "kind",
                    "status",
                    "node",
                    "attempts",
                    "result_size",
                    "message",
                ] {
                    if let Some(value) = v.get(key).filter(|x| !x.is_null()) {
                        let text = value
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or(value.to_string());
                        println!("{key}: {text}");
                    }
                }
            }
            Ok(())
        }
        Command::Result { id, output } => {
            let reply = conn.call(&format!("RESULT {id}"))?;
            match reply.body {
                Some(n) => {
                    if json {
                        // The JSON carries result_url; the raw bytes go only to a file.
                        println!("{}", reply.json);
                        if output.is_none() {
                            return Ok(());
                        }
                    }
                    copy_body(&mut conn, n, output.as_deref(), json)
                }
                None => print_result(&mut conn, reply.json, json, output.as_deref()),
            }
        }
        Command::Dead { limit } => {
            let v = expect_ok(conn.call(&format!("DEAD {limit}"))?.json)?;
            if json {
                println!("{v}");
            } else {
                let dead = v["dead"].as_array().cloned().unwrap_or_default();
                if dead.is_empty() {
                    println!("no dead tasks");
                }
                for t in dead {
                    println!(
                        "{}  {:<10} attempts={}  {}",
                        str_field(&t, "id"),
                        str_field(&t, "kind"),
                        t["attempts"],
                        str_field(&t, "message")
                    );
                }
            }
            Ok(())
        }
        Command::Retry { id } => {
            let v = expect_ok(conn.call(&format!("RETRY {id}"))?.json)?;
            if json {
                println!("{v}");
            } else {
                println!("{} queued again", str_field(&v, "id"));
            }
            Ok(())
        }
        Command::Kinds => {
            let v = expect_ok(conn.call("KINDS")?.json)?;
            if json {
                println!("{v}");
            } else {
                for k in v["kinds"].as_array().cloned().unwrap_or_default() {
                    println!("{:<10} {}", str_field(&k, "name"), str_field(&k, "about"));
                }
            }
            Ok(())
        }
        Command::Ping => {
            let v = expect_ok(conn.call("PING")?.json)?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "pong from {} ({}): amqp {}, postgres {}, s3 {}",
                    str_field(&v, "node"),
                    conn.server(),
                    str_field(&v, "amqp"),
                    str_field(&v, "postgres"),
                    str_field(&v, "s3")
                );
            }
            if v["healthy"] == false {
                return Err(Failure::Task(format!(
                    "{} is unhealthy",
                    str_field(&v, "node")
                )));
            }
            Ok(())
        }
        Command::Bench(_) => unreachable!("handled above"),
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// An `{"error":..}` line becomes a failure (unless it describes a failed task, handled later).
fn expect_ok(v: Value) -> Result<Value, Failure> {
    let task_outcome = matches!(
        v.get("status").and_then(Value::as_str),
        Some("failed" | "dead")
    );
    if v.get("error").is_some() && !task_outcome {
        return Err(Failure::Task(format!(
            "{} ({})",
            str_field(&v, "message"),
            str_field(&v, "error")
        )));
    }
    Ok(v)
}

/// Print a finished task: its result, or why it failed. A result kept in the object store is
/// fetched with `RESULT <id>`.
fn print_result(
    conn: &mut Conn,
    v: Value,
    json: bool,
    output: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let v = expect_ok(v)?;
    if json {
        println!("{v}");
    }
    match v.get("status").and_then(Value::as_str) {
        Some("succeeded") => {}
        Some("failed" | "dead") => {
            return Err(Failure::Task(format!(
                "task {} failed: {}",
                str_field(&v, "id"),
                str_field(&v, "message")
            )))
        }
        other => {
            return Err(Failure::Task(format!(
                "task {} is {}",
                str_field(&v, "id"),
                other.unwrap_or("in an unknown state")
            )))
        }
    }
    if let Some(result) = v.get("result").and_then(Value::as_str) {
        if json && output.is_none() {
            return Ok(());
        }
        let bytes = if v.get("result_encoding").and_then(Value::as_str) == Some("base64") {
            base64::engine::general_purpose::STANDARD
                .decode(result)
                .map_err(|e| anyhow!("bad base64 result: {e}"))?
        } else {
            result.as_bytes().to_vec()
        };
        return write_bytes(output, &bytes, json);
    }
    if v.get("result_key").is_some() {
        if json && output.is_none() {
            return Ok(());
        }
        let id = str_field(&v, "id");
        let reply: Reply = conn.call(&format!("RESULT {id}"))?;
        let n = reply
            .body
            .ok_or_else(|| Failure::Task(format!("node sent no result body: {}", reply.json)))?;
        return copy_body(conn, n, output, json);
    }
    Ok(())
}

/// Stream a large result's body to `output` or standard output.
fn copy_body(
    conn: &mut Conn,
    n: u64,
    output: Option<&std::path::Path>,
    json: bool,
) -> Result<(), Failure> {
    match output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            conn.copy_body(n, &mut file)?;
            if !json {
                eprintln!("wrote {n} bytes to {}", path.display());
            }
        }
        None => conn.copy_body(n, &mut std::io::stdout().lock())?,
    }
    Ok(())
}

fn write_bytes(output: Option<&std::path::Path>, bytes: &[u8], json: bool) -> Result<(), Failure> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            if !json {
                eprintln!("wrote {} bytes to {}", bytes.len(), path.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).context("writing standard output")?;
            // Text results end with a newline on a terminal; binary ones stay exact.
            if std::str::from_utf8(bytes).is_ok() && !bytes.ends_with(b"\n") {
                out.write_all(b"\n").context("writing standard output")?;
            }
        }
    }
    Ok(())
}
