//! `taskctl bench`: load a fleet with tasks and measure throughput and latency; with
//! `--broker-baseline`, measure the same request/reply pattern through RabbitMQ alone
//! (publish confirmed and persistent to a durable queue, consume and ack, answer on a reply
//! queue), the per-message ceiling of the broker on this machine.
//!
//! `concurrency` requests are kept in flight, `pipeline` of them on each connection (the
//! node answers a connection's requests in order, so a connection can carry many at once).
//! With `--rate`, requests are scheduled at fixed intervals and a request held back by the
//! system (no room on its connection at its time) counts from its scheduled time, so a
//! stall is charged to every request it delays (no coordinated omission); one sent on time
//! counts from when it was sent, so the client's own timer granularity (about a
//! millisecond) is not charged to the system.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Task kind to run.
    #[arg(long, default_value = "upper")]
    pub kind: String,
    /// Payload size in bytes (lowercase letters, so text kinds accept it).
    #[arg(long, default_value_t = 16)]
    pub payload_bytes: usize,
    /// Requests kept in flight at once.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Requests in flight on one connection (pipelined; answers come back in order), so
    /// `concurrency / pipeline` connections are opened. 1: one request at a time each.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Stop after this many requests.
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Target requests per second across all workers (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measure RabbitMQ alone instead of the nodes.
    #[arg(long)]
    pub broker_baseline: bool,
    /// AMQP URL for --broker-baseline.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
}

/// What the workers share.
struct Shared {
    histogram: Mutex<Histogram<u64>>,
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            histogram: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            first_error: Mutex::new(None),
        })
    }

    /// A request scheduled at `at` completed now.
    fn record(&self, at: Instant) {
        let us = at.elapsed().as_micros() as u64;
        self.histogram.lock().unwrap().saturating_record(us.max(1));
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }
}

/// Hands out request slots: stops at `total` or after `duration`, paces at `rate`.
struct Plan {
    total: Option<u64>,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    start: Instant,
    issued: AtomicU64,
}

impl Plan {
    /// Whether no further request will be handed out.
    fn over(&self) -> bool {
        self.total
            .is_some_and(|t| self.issued.load(Ordering::Relaxed) >= t)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The next request's scheduled start (possibly in the future: wait for it), or `None`
    /// when the run is over.
    fn next(&self) -> Option<Instant> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.total.is_some_and(|t| n >= t) {
            return None;
        }
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return None;
        }
        match self.interval {
            None => Some(now),
            Some(every) => Some(self.start + every.mul_f64(n as f64)),
        }
    }
}

/// Wait for a request's scheduled time `at`; answers the instant its latency counts from:
/// `at` when the request is late (the system held it back), else the moment it is sent.
async fn start_at(at: Instant) -> Instant {
    if at > Instant::now() {
        tokio::time::sleep_until(at.into()).await;
        Instant::now()
    } else {
        at
    }
}

fn payload(n: usize) -> String {
    (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

fn progress(shared: &Shared, plan: &Plan, label: &str) {
    let tty = std::io::stderr().is_terminal();
    let mut last = (Instant::now(), 0u64);
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(if tty { 200 } else { 1000 }));
        let done = shared.done.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        let frac = match (plan.total, plan.deadline) {
            (Some(t), _) => done as f64 / t as f64,
            (_, Some(d)) => {
                plan.start.elapsed().as_secs_f64() / d.duration_since(plan.start).as_secs_f64()
            }
            _ => 0.0,
        }
        .min(1.0);
        let filled = (frac * 30.0) as usize;
        let bar = format!("[{}{}]", "#".repeat(filled), " ".repeat(30 - filled));
        let line = format!("{label} {bar} {done} done, {rate:.0}/s, {errors} errors");
        if tty {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }
}

/// Run the benchmark; print the report (JSON with `json`). Errors make the exit non-zero.
pub fn run(args: &BenchArgs, servers: &[String], json_out: bool) -> Result<Value> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.pipeline == 0 {
        bail!("--pipeline must be at least 1");
    }
    if args.total.is_none() && args.duration.is_none() {
        bail!("give --total N or --duration S");
    }
    let plan = Arc::new(Plan {
        total: args.total,
        deadline: args
            .duration
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
        interval: args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        start: Instant::now(),
        issued: AtomicU64::new(0),
    });
    let shared = Shared::new();
    let label = if args.broker_baseline {
        "broker"
    } else {
        "tasknode"
    };
    let reporter = {
        let (shared, plan) = (shared.clone(), plan.clone());
        std::thread::spawn(move || progress(&shared, &plan, label))
    };
    let started = Instant::now();
    let result = if args.broker_baseline {
        broker::run(args, &plan, &shared)
    } else {
        run_nodes(args, servers, &plan, &shared)
    };
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = reporter.join();
    result?;

    let h = shared.histogram.lock().unwrap();
    let done = shared.done.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let ms = |v: u64| v as f64 / 1000.0;
    let report = json!({
        "target": label,
        "kind": args.kind,
        "payload_bytes": args.payload_bytes,
        "concurrency": args.concurrency,
        "pipeline": args.pipeline,
        "rate": args.rate,
        "completed": done,
        "errors": errors,
        "first_error": *shared.first_error.lock().unwrap(),
        "seconds": elapsed.as_secs_f64(),
        "throughput_per_s": done as f64 / elapsed.as_secs_f64(),
        "latency_ms": {
            "p50": ms(h.value_at_quantile(0.50)),
            "p90": ms(h.value_at_quantile(0.90)),
            "p99": ms(h.value_at_quantile(0.99)),
            "p99.9": ms(h.value_at_quantile(0.999)),
            "max": ms(h.max()),
        },
    });
    if json_out {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(report)
}

pub fn print_report(r: &Value) {
    let l = &r["latency_ms"];
    println!(
        "{}: {} completed in {:.2}s = {:.0}/s (concurrency {}, {} {}-byte)",
        r["target"].as_str().unwrap_or(""),
        r["completed"],
        r["seconds"].as_f64().unwrap_or(0.0),
        r["throughput_per_s"].as_f64().unwrap_or(0.0),
        r["concurrency"],
        r["kind"].as_str().unwrap_or(""),
        r["payload_bytes"]
    );
    println!(
        "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        l["p50"].as_f64().unwrap_or(0.0),
        l["p90"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["p99.9"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0)
    );
    let errors = r["errors"].as_u64().unwrap_or(0);
    if errors > 0 {
        println!(
            "  !!! {errors} ERRORS !!! first: {}",
            r["first_error"].as_str().unwrap_or("?")
        );
    }
}

fn run_nodes(
    args: &BenchArgs,
    servers: &[String],
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
) -> Result<()> {
    // One thread drives every connection: the benchmark shares the machine with the nodes,
    // so it must cost as little CPU per request as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async {
        let line: Arc<[u8]> = format!("{} {}\n", args.kind, payload(args.payload_bytes))
            .into_bytes()
            .into();
        let depth = args.pipeline.min(args.concurrency);
        let connections = args.concurrency.div_ceil(depth);
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..connections {
            // Spread the connections round-robin over the servers.
            let conn = connect_from(servers, w)
                .await
                .with_context(|| format!("connection {w}: no node reachable"))?;
            // The last connection carries what is left of the concurrency.
            let depth = depth.min(args.concurrency - w * depth);
            let (plan, shared, line) = (plan.clone(), shared.clone(), line.clone());
            let servers = servers.to_vec();
            workers.spawn_local(async move {
                let mut conn = Some(conn);
                loop {
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match connect_from(&servers, w + 1).await {
                            Ok(c) => c,
                            Err(e) => {
                                shared.error(format!("{e:#}"));
                                if plan.over() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    if c.run(&line, depth, &plan, &shared).await.is_ok() {
                        return;
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        Ok(())
    })
}

/// A bench connection: request lines out, answer lines back in the same order.
struct BenchConn {
    server: String,
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
}

/// The one field of an answer the benchmark looks at.
#[derive(serde::Deserialize)]
struct Answer {
    status: Option<String>,
}

impl BenchConn {
    /// Keep `depth` requests in flight until the plan is over. `Err` after a connection
    /// failure (counted: one error per request it lost), to go on with a new connection.
    async fn run(self, line: &[u8], depth: usize, plan: &Plan, shared: &Shared) -> Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let BenchConn {
            server,
            mut reader,
            mut writer,
            mut buf,
        } = self;
        // Scheduled start of each request sent and not yet answered, oldest first.
        let sent = std::cell::RefCell::new(std::collections::VecDeque::with_capacity(depth));
        let room = tokio::sync::Semaphore::new(depth);
        let ended = std::cell::Cell::new(false);
        // Wakes the receiver when a request goes out or the plan is over.
        let wake = tokio::sync::Notify::new();
        let send = async {
            let mut out = Vec::with_capacity(line.len() * depth);
            loop {
                // Wait for room, then send as many requests as there is room for at once.
                let Ok(first) = room.acquire().await else {
                    return Ok(());
                };
                first.forget();
                let mut n = 1;
                while n < depth {
                    match room.try_acquire() {
                        Ok(p) => p.forget(),
                        Err(_) => break,
                    }
                    n += 1;
                }
                out.clear();
                for _ in 0..n {
                    let Some(at) = plan.next() else {
                        ended.set(true);
                        break;
                    };
                    // Paced (--rate): a request due later waits for its time.
                    let at = start_at(at).await;
                    out.extend_from_slice(line);
                    sent.borrow_mut().push_back(at);
                }
                wake.notify_one();
                if !out.is_empty() {
                    writer
                        .write_all(&out)
                        .await
                        .with_context(|| format!("writing to {server}"))?;
                }
                if ended.get() {
                    return Ok::<(), anyhow::Error>(());
                }
            }
        };
        let receive = async {
            loop {
                if sent.borrow().is_empty() {
                    if ended.get() {
                        return Ok(());
                    }
                    wake.notified().await;
                    continue;
                }
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .await
                    .with_context(|| format!("reading from {server}"))?;
                if n == 0 {
                    bail!("{server} closed the connection");
                }
                let Some(at) = sent.borrow_mut().pop_front() else {
                    bail!("{server} answered a request that was not sent");
                };
                match serde_json::from_slice::<Answer>(&buf) {
                    Ok(Answer { status: Some(s) }) if s == "succeeded" => shared.record(at),
                    Ok(_) => shared.error(String::from_utf8_lossy(&buf).trim_end()),
                    Err(e) => shared.error(format!("{server} sent a line that is not JSON: {e}")),
                }
                room.add_permits(1);
            }
        };
        let outcome = match futures_util::future::try_join(send, receive).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Every request still unanswered on this connection is lost.
                let lost = sent.borrow().len().max(1);
                for _ in 0..lost {
                    shared.error(format!("{e:#}"));
                }
                Err(e)
            }
        };
        outcome
    }
}

/// Connect to the first of `servers` that accepts, trying from index `start` on.
async fn connect_from(servers: &[String], start: usize) -> Result<BenchConn> {
    let mut errors = Vec::new();
    for server in crate::connection::rotation(servers, start) {
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(server.as_str()),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).ok();
                let (read, writer) = stream.into_split();
                return Ok(BenchConn {
                    server: server.clone(),
                    reader: tokio::io::BufReader::new(read),
                    writer,
                    buf: Vec::with_capacity(512),
                });
            }
            Ok(Err(e)) => errors.push(format!("{server}: {e}")),
            Err(_) => errors.push(format!("{server}: connect timed out")),
        }
    }
    bail!("no node reachable ({})", errors.join("; "))
}

mod broker {
    //! The broker alone: per request, publish (persistent, confirmed) to a durable queue; a
    //! consumer acks it and answers on a reply queue; the requester waits for the answer.

    use super::{payload, start_at, BenchArgs, Plan, Shared};
    use anyhow::{Context, Result};
    use futures_util::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    async fn connect(url: &str) -> Result<Connection> {
        Connection::connect_with_runtime(
            url,
            ConnectionProperties::default(),
            async_rs::Runtime::tokio_current(),
        )
        .await
        .with_context(|| format!("RabbitMQ at {url}"))
    }

    pub fn run(args: &BenchArgs, plan: &Arc<Plan>, shared: &Arc<Shared>) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(run_async(args, plan.clone(), shared.clone()))
    }

    async fn run_async(args: &BenchArgs, plan: Arc<Plan>, shared: Arc<Shared>) -> Result<()> {
        let tag = std::process::id();
        let queue = format!("bench-{tag}.tasks");
        let replies = format!("bench-{tag}.replies");
        let conn = connect(&args.amqp_url).await?;
        let setup = conn.create_channel().await?;
        setup
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        setup
            .queue_declare(
                replies.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;

        // The "worker": consume with manual ack, answer on the reply queue.
        let work = conn.create_channel().await?;
        work.basic_qos(64, BasicQosOptions::default()).await?;
        let answer = conn.create_channel().await?;
        let mut deliveries = work
            .basic_consume(
                queue.as_str().into(),
                "bench-worker".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let reply_queue = replies.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = deliveries.next().await {
                let id = d.properties.correlation_id().clone().unwrap_or_default();
                let _ = answer
                    .basic_publish(
                        "".into(),
                        reply_queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &d.data,
                        BasicProperties::default().with_correlation_id(id),
                    )
                    .await;
                let _ = d.ack(BasicAckOptions::default()).await;
            }
        });

        // Replies back to the waiting requesters.
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Default::default();
        let listen = conn.create_channel().await?;
        let mut answers = listen
            .basic_consume(
                replies.as_str().into(),
                "bench-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        {
            let waiting = waiting.clone();
            tokio::spawn(async move {
                while let Some(Ok(d)) = answers.next().await {
                    let id = d
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    if let Some(tx) = waiting.lock().unwrap().remove(&id) {
                        let _ = tx.send(());
                    }
                }
            });
        }

        let body = payload(args.payload_bytes).into_bytes();
        let mut requesters = Vec::new();
        for w in 0..args.concurrency {
            let publish = conn.create_channel().await?;
            publish
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let (plan, shared, waiting, queue, body) = (
                plan.clone(),
                shared.clone(),
                waiting.clone(),
                queue.clone(),
                body.clone(),
            );
            requesters.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(at) = plan.next() {
                    let at = start_at(at).await;
                    n += 1;
                    let id = format!("{w}-{n}");
                    let (tx, rx) = oneshot::channel();
                    waiting.lock().unwrap().insert(id.clone(), tx);
                    let sent = async {
                        publish
                            .basic_publish(
                                "".into(),
                                queue.as_str().into(),
                                BasicPublishOptions {
                                    mandatory: true,
                                    ..Default::default()
                                },
                                &body,
                                BasicProperties::default()
                                    .with_delivery_mode(2)
                                    .with_correlation_id(id.as_str().into()),
                            )
                            .await?
                            .await
                    };
                    match sent.await {
                        Ok(c) if c.is_ack() => {}
                        Ok(c) => {
                            shared.error(format!("not confirmed: {c:?}"));
                            continue;
                        }
                        Err(e) => {
                            shared.error(e);
                            continue;
                        }
                    }
                    match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
                        Ok(Ok(())) => shared.record(at),
                        _ => shared.error("no reply within 30 s"),
                    }
                }
            }));
        }
        for r in requesters {
            let _ = r.await;
        }
        let _ = setup
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = conn.close(200, "bench done".into()).await;
        Ok(())
    }
}
