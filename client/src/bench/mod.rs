//! `taskctl bench`: load a fleet with tasks and measure throughput and latency; with
//! `--broker-baseline`, measure the same request/reply pattern through RabbitMQ alone
//! (publish confirmed and persistent to a durable queue, consume and ack, answer on a reply
//! queue), the per-message ceiling of the broker on this machine; with `--http`, the same
//! tasks through the HTTP API.
//!
//! `concurrency` requests are kept in flight, `pipeline` of them on each connection (the
//! node answers a connection's requests in order, so a connection can carry many at once).
//! With `--rate`, requests are scheduled at fixed intervals and a request held back by the
//! system (no room on its connection at its time) counts from its scheduled time, so a
//! stall is charged to every request it delays (no coordinated omission); one sent on time
//! counts from when it was sent, so the client's own timer granularity (about a
//! millisecond) is not charged to the system.

mod broker;
mod http;
mod nodes;

use anyhow::{bail, Result};
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
    /// Schedule each task this many milliseconds ahead instead of running it: a request is
    /// done once the task is accepted `scheduled` (to load the fleet with tasks for later).
    #[arg(long, conflicts_with_all = ["broker_baseline", "http"])]
    pub delay_ms: Option<u64>,
    /// Measure RabbitMQ alone instead of the nodes.
    #[arg(long)]
    pub broker_baseline: bool,
    /// Measure the HTTP API (`--server` names HTTP addresses, e.g. 127.0.0.1:8001).
    #[arg(long, conflicts_with = "broker_baseline")]
    pub http: bool,
    /// AMQP URL for --broker-baseline.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// The type of the durable queue --broker-baseline publishes to: `classic` (the
    /// baseline's own), or `quorum`, as a fleet's task queues are by default (a replicated log
    /// written before each delivery), for a like-for-like comparison.
    #[arg(long, value_enum, default_value_t = QueueType::Classic, requires = "broker_baseline")]
    pub queue_type: QueueType,
}

/// The durable queue type of `--broker-baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    Classic,
    Quorum,
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
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3)
                    .expect("fixed, valid histogram bounds"),
            ),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            first_error: Mutex::new(None),
        })
    }

    /// A request scheduled at `at` completed now.
    fn record(&self, at: Instant) {
        let us = at.elapsed().as_micros() as u64;
        self.histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(us.max(1));
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
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
pub fn run(args: &BenchArgs, fleet: &crate::fleet::Fleet, json_out: bool) -> Result<Value> {
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
    let label = if args.broker_baseline && args.queue_type == QueueType::Quorum {
        "broker-quorum"
    } else if args.broker_baseline {
        "broker"
    } else if args.http {
        "tasknode-http"
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
    } else if args.http {
        http::run(args, &fleet.servers, fleet.token(), &plan, &shared)
    } else {
        nodes::run(args, fleet, &plan, &shared)
    };
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = reporter.join();
    result?;

    let h = shared.histogram.lock().unwrap_or_else(|e| e.into_inner());
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
        "first_error": *shared.first_error.lock().unwrap_or_else(|e| e.into_inner()),
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
