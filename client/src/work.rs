//! `taskctl work <kind>[,<kind>…] [-c N] -- <command> [args…]`: a worker that runs a command
//! per task. The payload is the command's standard input, its standard output the result;
//! exit status 0 is `DONE`, 65 (`EX_DATAERR`: the input is wrong) a final `FAIL`, any other a
//! `FAIL` that is retried, with the last line of standard error as its message. So a shell
//! script can be a worker.
//!
//! Large payloads come as raw bytes after their task line (`WORK … stream=1`) and go to the
//! command from a temporary file; a large result goes back as `DONE <lease> PUT`. A cancelled
//! task's command is killed. SIGTERM or Ctrl-C: `QUIET`, then the running commands finish.

use crate::fleet::Fleet;
use anyhow::{bail, Context, Result};
use protocol::work::{WorkCommand, WorkTask, WorkerLine};
use protocol::Request;
use std::collections::HashMap;
use std::io::SeekFrom;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Results up to this size go back in the `DONE` line; larger ones as a `PUT` body.
const INLINE_RESULT: u64 = 512 * 1024;
/// The exit status that makes a final `FAIL` (sysexits' `EX_DATAERR`).
const EX_DATAERR: i32 = 65;

#[derive(clap::Args, Clone)]
pub struct WorkArgs {
    /// The kinds to run, comma-separated.
    kinds: String,
    /// Tasks run at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: u16,
    /// The command (after `--`): the payload on its standard input, the result from its
    /// standard output.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// What a command's run came to.
enum Outcome {
    Done(tokio::fs::File, u64),
    Fail { last: bool, message: String },
}

/// Work until told to stop; reconnect (with backoff, across the servers) when the
/// connection is lost.
pub async fn run(fleet: &Fleet, args: &WorkArgs) -> Result<()> {
    if args.concurrency == 0 || args.concurrency > protocol::work::MAX_SLOTS {
        bail!("-c is from 1 to {}", protocol::work::MAX_SLOTS);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let (mut failures, mut start) = (0u32, 0usize);
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match session(fleet, args, start, stop.clone()).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.downcast_ref::<protocol::ClientError>()
                    .is_some_and(refused) =>
            {
                return Err(e)
            }
            Err(e) => {
                failures += 1;
                start += 1;
                let wait = Duration::from_millis(200 * 2u64.pow(failures.min(6)));
                eprintln!("worker connection lost ({e:#}); again in {wait:?}");
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
    }
}

fn refused(e: &protocol::ClientError) -> bool {
    matches!(e, protocol::ClientError::Refused(_))
}

async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// One connection's work; `Ok` once stopped and every command has finished.
async fn session(
    fleet: &Fleet,
    args: &WorkArgs,
    start: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut conn = fleet.connect(start).await?;
    let work = WorkCommand::Work {
        kinds: args
            .kinds
            .split(',')
            .map(|k| k.trim().to_string())
            .collect(),
        slots: args.concurrency,
        stream: true,
    };
    let working: serde_json::Value = conn.call(&Request::Work(work)).await?;
    eprintln!("working on {} for {}", conn.server(), working["working"]);
    let (mut answers, mut requests) = conn.into_split();
    let (lines_tx, mut lines) = mpsc::channel::<(WorkTask, Option<tempfile::NamedTempFile>)>(64);
    let (cancel_tx, mut cancels) = mpsc::channel::<String>(64);
    // The reader: task lines (with their bodies), cancels; answers are only logged.
    let reader = tokio::spawn(async move {
        let read: Result<()> = async {
            loop {
                let line = answers.recv_line().await?.to_vec();
                match serde_json::from_slice::<WorkerLine>(&line) {
                    Ok(WorkerLine::Task(leased)) => {
                        let body = match leased.task.bytes {
                            Some(n) => {
                                let file = tempfile::NamedTempFile::new()?;
                                let mut out = tokio::fs::File::from_std(file.reopen()?);
                                answers.read_body(n, &mut out).await?;
                                out.flush().await?;
                                Some(file)
                            }
                            None => None,
                        };
                        let _ = lines_tx.send((leased.task, body)).await;
                    }
                    Ok(WorkerLine::Cancel(c)) => {
                        let _ = cancel_tx.send(c.cancel).await;
                    }
                    Ok(WorkerLine::Error(e)) => eprintln!("refused: {e}"),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("unreadable line ({e}): {}", String::from_utf8_lossy(&line))
                    }
                }
            }
        }
        .await;
        if let Err(e) = read {
            eprintln!("reading from the node: {e:#}");
        }
    });
    let (done_tx, mut done) = mpsc::channel::<(String, Outcome)>(64);
    let mut running: HashMap<String, oneshot::Sender<()>> = HashMap::new();
    let mut quiet = false;
    let result = loop {
        if quiet && running.is_empty() {
            break Ok(());
        }
        tokio::select! {
            line = lines.recv() => {
                let Some((task, body)) = line else {
                    break Err(anyhow::anyhow!("the connection ended"));
                };
                let (kill, killed) = oneshot::channel();
                running.insert(task.lease.clone(), kill);
                let (command, done_tx) = (args.command.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let lease = task.lease.clone();
                    let outcome = tokio::select! {
                        outcome = run_command(&command, &task, body) => outcome,
                        _ = killed => return,
                    };
                    let _ = done_tx.send((lease, outcome)).await;
                });
            }
            Some(lease) = cancels.recv() => {
                if let Some(kill) = running.remove(&lease) {
                    let _ = kill.send(());
                    eprintln!("task of lease {lease} cancelled; its command was killed");
                }
            }
            Some((lease, outcome)) = done.recv() => {
                running.remove(&lease);
                if let Err(e) = report(&mut requests, &lease, outcome).await {
                    break Err(e);
                }
            }
            _ = stop.wait_for(|s| *s), if !quiet => {
                quiet = true;
                eprintln!("stopping: no new tasks; waiting for {} running", running.len());
                if let Err(e) = requests.send(&Request::Work(WorkCommand::Quiet)).await {
                    break Err(e.into());
                }
            }
        }
    };
    reader.abort();
    result
}

/// Send a run's outcome on its lease.
async fn report(
    requests: &mut protocol::client::Requests,
    lease: &str,
    outcome: Outcome,
) -> Result<()> {
    match outcome {
        Outcome::Done(mut file, size) if size <= INLINE_RESULT => {
            let mut result = Vec::with_capacity(size as usize);
            file.read_to_end(&mut result).await?;
            let done = WorkCommand::Done {
                lease: lease.to_string(),
                result,
            };
            requests.send(&Request::Work(done)).await?;
        }
        Outcome::Done(mut file, size) => {
            let put = WorkCommand::DonePut {
                lease: lease.to_string(),
                size,
            };
            requests.send(&Request::Work(put)).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut left = size;
            while left > 0 {
                let take = left.min(buf.len() as u64) as usize;
                let n = file.read(&mut buf[..take]).await?;
                if n == 0 {
                    bail!("the result file ended {left} bytes short");
                }
                requests.send_raw(&buf[..n]).await?;
                left -= n as u64;
            }
        }
        Outcome::Fail { last, message } => {
            let fail = WorkCommand::Fail {
                lease: lease.to_string(),
                last,
                message,
            };
            requests.send(&Request::Work(fail)).await?;
        }
    }
    Ok(())
}

/// Run `command` on `task`'s payload.
async fn run_command(
    command: &[String],
    task: &WorkTask,
    body: Option<tempfile::NamedTempFile>,
) -> Outcome {
    match try_run(command, task, body).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Fail {
            last: false,
            message: format!("taskctl could not run the command: {e:#}"),
        },
    }
}

async fn try_run(
    command: &[String],
    task: &WorkTask,
    body: Option<tempfile::NamedTempFile>,
) -> Result<Outcome> {
    let payload: Vec<u8> = match (&task.payload, &task.payload_base64) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(b64)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64)?
        }
        (None, None) => Vec::new(),
    };
    let out = tempfile::tempfile().context("a temporary file for the result")?;
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("TASKNODE_TASK_ID", task.id.to_string())
        .env("TASKNODE_KIND", &task.kind)
        .env("TASKNODE_ATTEMPT", task.attempt.to_string())
        .env("TASKNODE_LEASE", &task.lease)
        .stdin(Stdio::piped())
        .stdout(out.try_clone()?)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start `{}`", command[0]))?;
    let mut stdin = child.stdin.take().context("the command's stdin")?;
    let feed = async move {
        match body {
            Some(file) => {
                let mut f = tokio::fs::File::open(file.path()).await?;
                tokio::io::copy(&mut f, &mut stdin).await?;
            }
            None => stdin.write_all(&payload).await?,
        }
        drop(stdin);
        Ok::<(), std::io::Error>(())
    };
    let mut stderr = child.stderr.take().context("the command's stderr")?;
    let errors = async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        text
    };
    // A command that does not read its input ends the feed early: not an error.
    let (_, errors, status) = tokio::join!(feed, errors, child.wait());
    let status = status?;
    if status.success() {
        let mut file = tokio::fs::File::from_std(out);
        let size = file.seek(SeekFrom::End(0)).await?;
        file.seek(SeekFrom::Start(0)).await?;
        return Ok(Outcome::Done(file, size));
    }
    let text = String::from_utf8_lossy(&errors);
    let last_line = text.lines().rev().find(|l| !l.trim().is_empty());
    let message = match (last_line, status.code()) {
        (Some(line), _) => line.trim().to_string(),
        (None, Some(code)) => format!("`{}` exited with status {code}", command[0]),
        (None, None) => format!("`{}` was killed by a signal", command[0]),
    };
    Ok(Outcome::Fail {
        last: status.code() == Some(EX_DATAERR),
        message,
    })
}
