//! Raw lines on the typed client: what a test sends when it speaks the protocol as `nc`
//! would (bad input included), and the answers as plain JSON. Each waits at most 60 s and
//! panics with what went wrong, as a test wants.

use protocol::{Client, ClientError};
use serde_json::Value;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(60);

#[allow(async_fn_in_trait)]
pub trait Lines {
    /// Send `line` (a newline is added).
    async fn say(&mut self, line: &str);
    /// Send bytes as they are.
    async fn say_raw(&mut self, bytes: &[u8]);
    /// The next answer line as JSON.
    async fn hear(&mut self) -> Value;
    /// The next answer line, or `None` if the connection ended (or nothing came in time).
    async fn try_hear(&mut self) -> Option<Value>;
    /// Exactly `n` raw bytes (a large result's body).
    async fn hear_raw(&mut self, n: usize) -> Vec<u8>;
    /// Send `line` and read its answer.
    async fn ask(&mut self, line: &str) -> Value;
    /// Whether the node closed this connection (reads its end within 10 s).
    async fn closed(&mut self) -> bool;
}

impl Lines for Client {
    async fn say(&mut self, line: &str) {
        self.say_raw(format!("{line}\n").as_bytes()).await;
    }

    async fn say_raw(&mut self, bytes: &[u8]) {
        self.send_raw(bytes).await.expect("write to node");
    }

    async fn hear(&mut self) -> Value {
        let line = tokio::time::timeout(WITHIN, self.recv_line())
            .await
            .expect("no answer line within 60 s")
            .expect("read an answer line");
        serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)))
    }

    async fn try_hear(&mut self) -> Option<Value> {
        match tokio::time::timeout(WITHIN, self.recv_line()).await {
            Ok(Ok(line)) => serde_json::from_slice(line).ok(),
            _ => None,
        }
    }

    async fn hear_raw(&mut self, n: usize) -> Vec<u8> {
        let mut body = Vec::with_capacity(n);
        let read = self.read_body(n as u64, &mut body);
        tokio::time::timeout(WITHIN, read)
            .await
            .expect("raw bytes within 60 s")
            .expect("read raw bytes");
        body
    }

    async fn ask(&mut self, line: &str) -> Value {
        self.say(line).await;
        self.hear().await
    }

    async fn closed(&mut self) -> bool {
        let end = tokio::time::timeout(Duration::from_secs(10), self.recv_line()).await;
        matches!(
            end,
            Ok(Err(ClientError::Closed(_) | ClientError::Io { .. }))
        )
    }
}
