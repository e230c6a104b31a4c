//! The fleet under load: `concurrency` requests in flight, `pipeline` of them on each
//! connection, every answer matched to its request in order. One thread drives every
//! connection: the benchmark shares the machine with the nodes, so it must cost as little
//! CPU per request as it can (an answer is checked for its status, not fully decoded).

use super::{start_at, BenchArgs, Plan, Shared};
use anyhow::{bail, Result};
use protocol::client::{Answers, Requests};
use protocol::{Client, Request};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

pub fn run(
    args: &BenchArgs,
    fleet: &crate::fleet::Fleet,
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async {
        let request = Request::Submit {
            kind: args.kind.clone(),
            payload: super::payload(args.payload_bytes).into_bytes(),
            wait: args.delay_ms.is_none(),
            options: protocol::SubmitOptions {
                delay_ms: args.delay_ms,
                ..Default::default()
            },
        };
        let done: &'static str = match args.delay_ms {
            Some(_) => "scheduled",
            None => "succeeded",
        };
        let line: Arc<[u8]> = request.to_line().into_bytes().into();
        let depth = args.pipeline.min(args.concurrency);
        let connections = args.concurrency.div_ceil(depth);
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..connections {
            // Spread the connections round-robin over the servers.
            let conn = fleet
                .connect(w)
                .await
                .map_err(|e| anyhow::anyhow!("connection {w}: {e}"))?;
            // The last connection carries what is left of the concurrency.
            let depth = depth.min(args.concurrency - w * depth);
            let (plan, shared, line) = (plan.clone(), shared.clone(), line.clone());
            let fleet = fleet.clone();
            workers.spawn_local(async move {
                let mut conn = Some(conn);
                loop {
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match fleet.connect(w + 1).await {
                            Ok(c) => c,
                            Err(e) => {
                                shared.error(e);
                                if plan.over() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    if drive(c, &line, depth, &plan, &shared, done).await.is_ok() {
                        return;
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        Ok(())
    })
}

/// The one field of an answer the benchmark looks at.
#[derive(serde::Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    status: Option<&'a str>,
}

/// Keep `depth` requests in flight on `conn` until the plan is over. `Err` after a
/// connection failure (counted: one error per request it lost), to go on with a new one.
async fn drive(
    conn: Client,
    line: &[u8],
    depth: usize,
    plan: &Plan,
    shared: &Shared,
    done: &str,
) -> Result<()> {
    let (mut answers, mut requests) = conn.into_split();
    let flight = Flight {
        sent: RefCell::new(VecDeque::with_capacity(depth)),
        room: Semaphore::new(depth),
        ended: Cell::new(false),
        wake: Notify::new(),
    };
    let send = send(&mut requests, line, depth, plan, &flight);
    let receive = receive(&mut answers, shared, &flight, done);
    match futures_util::future::try_join(send, receive).await {
        Ok(_) => Ok(()),
        Err(e) => {
            // Every request still unanswered on this connection is lost.
            let lost = flight.sent.borrow().len().max(1);
            for _ in 0..lost {
                shared.error(format!("{e:#}"));
            }
            Err(e)
        }
    }
}

/// The requests in flight on one connection, shared by its sending and receiving sides.
struct Flight {
    /// Scheduled start of each request sent and not yet answered, oldest first.
    sent: RefCell<VecDeque<Instant>>,
    /// Room for more requests on the connection.
    room: Semaphore,
    /// The plan is over: nothing more will be sent.
    ended: Cell<bool>,
    /// Wakes the receiver when a request goes out or the plan is over.
    wake: Notify,
}

/// Wait for room, then send as many requests as there is room for, in one write.
async fn send(
    requests: &mut Requests,
    line: &[u8],
    depth: usize,
    plan: &Plan,
    flight: &Flight,
) -> Result<()> {
    let mut out = Vec::with_capacity(line.len() * depth);
    loop {
        let Ok(first) = flight.room.acquire().await else {
            return Ok(());
        };
        first.forget();
        let mut n = 1;
        while n < depth {
            match flight.room.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => break,
            }
            n += 1;
        }
        out.clear();
        for _ in 0..n {
            let Some(at) = plan.next() else {
                flight.ended.set(true);
                break;
            };
            // Paced (--rate): a request due later waits for its time.
            let at = start_at(at).await;
            out.extend_from_slice(line);
            flight.sent.borrow_mut().push_back(at);
        }
        flight.wake.notify_one();
        if !out.is_empty() {
            requests.send_raw(&out).await?;
        }
        if flight.ended.get() {
            return Ok(());
        }
    }
}

/// Match each answer to the oldest request flight.sent.
/// Read answers; one whose status is `done` counts.
async fn receive(
    answers: &mut Answers,
    shared: &Shared,
    flight: &Flight,
    done: &str,
) -> Result<()> {
    loop {
        if flight.sent.borrow().is_empty() {
            if flight.ended.get() {
                return Ok(());
            }
            flight.wake.notified().await;
            continue;
        }
        let server = answers.server().to_string();
        let line = answers.recv_line().await?;
        let Some(at) = flight.sent.borrow_mut().pop_front() else {
            bail!("{server} answered a request that was not sent");
        };
        match serde_json::from_slice::<Status>(line) {
            Ok(Status { status: Some(s) }) if s == done => shared.record(at),
            Ok(_) => shared.error(String::from_utf8_lossy(line)),
            Err(e) => shared.error(format!("{server} sent a line that is not JSON: {e}")),
        }
        flight.room.add_permits(1);
    }
}
