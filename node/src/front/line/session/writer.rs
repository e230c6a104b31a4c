//! The ordered writer of a connection: each request takes a [`Slot`] in the answer queue
//! when it is read; the writer writes the slots' answers strictly in that order, many per
//! write when they are ready together, and gives up when the client does not take them
//! within the write timeout.

use bytes::Bytes;
use futures_util::SinkExt;
use protocol::codec::{LineCodec, Outbound};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::codec::FramedWrite;

/// What goes out for one request, in order.
pub enum Item {
    Out(Outbound),
    /// Close the connection once everything before has been written.
    Close,
}

/// A request's place in the answer queue: one answer, or a stream of them (a `RESULT`
/// header and its bytes). Holds the request's pipelining permit until written.
pub struct Slot {
    pub answer: Pending,
    pub permit: Option<OwnedSemaphorePermit>,
}

pub enum Pending {
    One(oneshot::Receiver<Item>),
    Stream(mpsc::Receiver<Item>),
}

impl Pending {
    /// The next item if it is there: `Some(None)` when the answer is complete.
    fn try_next(&mut self) -> Option<Option<Item>> {
        match self {
            Pending::One(rx) => match rx.try_recv() {
                Ok(item) => Some(Some(item)),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(None),
            },
            Pending::Stream(rx) => match rx.try_recv() {
                Ok(item) => Some(Some(item)),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            },
        }
    }

    /// Wait for the next item; `None` when the answer is complete.
    async fn next(&mut self) -> Option<Item> {
        match self {
            Pending::One(rx) => rx.await.ok(),
            Pending::Stream(rx) => rx.recv().await,
        }
    }
}

/// Where a streaming answer writes. `send` fails when the client has not taken its answers
/// for the write timeout (or has gone): the answer then ends and the connection closes.
pub struct Outbox {
    pub tx: mpsc::Sender<Item>,
    pub timeout: Duration,
}

impl Outbox {
    pub async fn send(&self, item: Outbound) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, self.tx.send(Item::Out(item))).await,
            Ok(Ok(()))
        )
    }

    /// A result body: the header, then exactly `size` bytes from `chunks`. Returns `true`
    /// when the connection must close (the promised bytes could not all be sent).
    pub async fn stream(
        &self,
        header: Outbound,
        size: u64,
        mut chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> bool {
        if !self.send(header).await {
            return true;
        }
        let mut sent = 0u64;
        while let Some(chunk) = chunks.recv().await {
            match chunk {
                Ok(bytes) => {
                    sent += bytes.len() as u64;
                    if !self.send(Outbound::Raw(bytes)).await {
                        return true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "result stream failed mid-way");
                    break;
                }
            }
        }
        if sent != size {
            // The header promised `size` bytes; the stream is now out of step, so end it.
            tracing::warn!(sent, size, "result stream short; closing connection");
            return true;
        }
        false
    }
}

/// The writing side of a connection: buffers answers, sends them when the next one is not
/// ready yet, and gives up when the client does not take them within `timeout`.
pub struct Writer<W> {
    sink: FramedWrite<W, LineCodec>,
    timeout: Duration,
    unflushed: bool,
    /// When an answer last went out (the session's idle check reads it).
    last_activity: Rc<Cell<Instant>>,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(write: W, timeout: Duration, last_activity: Rc<Cell<Instant>>) -> Self {
        Writer {
            sink: FramedWrite::new(write, LineCodec::new(0, 0)),
            timeout,
            unflushed: false,
            last_activity,
        }
    }

    async fn feed(&mut self, out: Outbound) -> bool {
        self.unflushed = true;
        matches!(
            tokio::time::timeout(self.timeout, self.sink.feed(out)).await,
            Ok(Ok(()))
        )
    }

    async fn flush(&mut self) -> bool {
        if !self.unflushed {
            return true;
        }
        self.unflushed = false;
        self.last_activity.set(Instant::now());
        matches!(
            tokio::time::timeout(self.timeout, self.sink.flush()).await,
            Ok(Ok(()))
        )
    }

    /// Write the answers of `queue`'s slots in order. Ends on [`Item::Close`], when the
    /// queue closes, or when a write does not complete within the timeout (the client does
    /// not read); then closes the connection.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Slot>) {
        'slots: loop {
            let mut slot = match queue.try_recv() {
                Ok(slot) => slot,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if !self.flush().await {
                        break;
                    }
                    match queue.recv().await {
                        Some(slot) => slot,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            loop {
                let item = match slot.answer.try_next() {
                    Some(item) => item,
                    // Not ready: send what is written so far, then wait for it.
                    None if self.flush().await => slot.answer.next().await,
                    None => break 'slots,
                };
                match item {
                    None => break,
                    Some(Item::Close) => break 'slots,
                    Some(Item::Out(item)) => {
                        if !self.feed(item).await {
                            break 'slots;
                        }
                        if matches!(slot.answer, Pending::One(_)) {
                            break;
                        }
                    }
                }
            }
        }
        let _ = tokio::time::timeout(self.timeout, self.sink.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn one(queue: &mpsc::Sender<Slot>) -> oneshot::Sender<Item> {
        let (tx, rx) = oneshot::channel();
        let slot = Slot {
            answer: Pending::One(rx),
            permit: None,
        };
        assert!(queue.try_send(slot).is_ok());
        tx
    }

    fn line(text: &str) -> Item {
        Item::Out(Outbound::Line(Bytes::copy_from_slice(text.as_bytes())))
    }

    async fn read_all(mut r: tokio::io::DuplexStream) -> String {
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_go_out_in_request_order_whatever_order_they_are_ready_in() {
        let (w, r) = tokio::io::duplex(1 << 16);
        let (queue, slots) = mpsc::channel(8);
        let writer = Writer::new(
            w,
            Duration::from_secs(5),
            Rc::new(Cell::new(Instant::now())),
        );
        let (a, b) = (one(&queue), one(&queue));
        let (stream_tx, stream_rx) = mpsc::channel(4);
        queue
            .try_send(Slot {
                answer: Pending::Stream(stream_rx),
                permit: None,
            })
            .ok()
            .unwrap();
        let c = one(&queue);
        drop(queue);
        // Ready backwards: the last first.
        c.send(line("c")).ok().unwrap();
        stream_tx.send(line("header")).await.ok().unwrap();
        let body = Outbound::Raw(Bytes::from_static(b"raw"));
        stream_tx.send(Item::Out(body)).await.ok().unwrap();
        drop(stream_tx);
        b.send(line("b")).ok().unwrap();
        a.send(line("a")).ok().unwrap();
        let (_, text) = tokio::join!(writer.run(slots), read_all(r));
        assert_eq!(text, "a\nb\nheader\nrawc\n");
    }

    #[tokio::test]
    async fn close_ends_the_connection_after_what_came_before() {
        let (w, r) = tokio::io::duplex(1 << 16);
        let (queue, slots) = mpsc::channel(8);
        let writer = Writer::new(
            w,
            Duration::from_secs(5),
            Rc::new(Cell::new(Instant::now())),
        );
        one(&queue).send(line("bye")).ok().unwrap();
        one(&queue).send(Item::Close).ok().unwrap();
        let never = one(&queue);
        let (_, text) = tokio::join!(writer.run(slots), read_all(r));
        assert_eq!(text, "bye\n");
        drop(never);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_given_up_on() {
        let (w, _r) = tokio::io::duplex(64);
        let (queue, slots) = mpsc::channel(8);
        let writer = Writer::new(
            w,
            Duration::from_millis(50),
            Rc::new(Cell::new(Instant::now())),
        );
        for _ in 0..4 {
            one(&queue).send(line(&"x".repeat(100))).ok().unwrap();
        }
        // Returns although the queue stays open: the writes timed out.
        let gave_up = tokio::time::timeout(Duration::from_secs(10), writer.run(slots)).await;
        assert!(
            gave_up.is_ok(),
            "the writer waits for a client that never reads"
        );
        drop(queue);
    }
}
