//! The broker alone: per request, publish (persistent, confirmed) to a durable queue (classic,
//! or quorum with `--queue-type quorum`); a consumer acks it and answers on a reply queue;
//! the requester waits for the answer.

use super::{payload, start_at, BenchArgs, Plan, QueueType, Shared};
use anyhow::{Context, Result};
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
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
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let mut durable_args = FieldTable::default();
    if args.queue_type == QueueType::Quorum {
        durable_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    for (name, options, args) in [
        (&queue, durable, durable_args),
        (&replies, private, FieldTable::default()),
    ] {
        setup
            .queue_declare(name.as_str().into(), options, args)
            .await?;
    }

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
                if let Some(tx) = waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
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
                waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), tx);
                // Persistent, mandatory, confirmed: as a node publishes a task.
                let options = BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                };
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_correlation_id(id.as_str().into());
                let to = queue.as_str().into();
                let sent = async {
                    let confirm = publish.basic_publish("".into(), to, options, &body, props);
                    confirm.await?.await
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
